"""The CASE framework document: ``case_documents``, the CFDocument a CASE package
imported (its identifier, and its title, creator and other descriptive fields), which
the export gives back; at most one row (an import replaces it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0011", "0010"


def upgrade():
    op.create_table(
        "case_documents",
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("identifier", name="pk_case_documents"))


def downgrade():
    op.drop_table("case_documents")
