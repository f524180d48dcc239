"""Multidimensional banks: a bank version keeps its ``dimensions`` (factor names,
structure, latent mean and correlation, their standard errors, rotation); null for a
unidimensional version.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0015", "0014"


DIMENSIONS = "dimensions"


def upgrade():
    # a nullable column: a plain ALTER TABLE ... ADD COLUMN on SQLite and PostgreSQL
    op.add_column("bank_versions", sa.Column(DIMENSIONS, sa.JSON(), nullable=True))


def downgrade():
    # SQLite drops a column by copying the table (batch mode)
    with op.batch_alter_table("bank_versions") as table:
        table.drop_column(DIMENSIONS)
