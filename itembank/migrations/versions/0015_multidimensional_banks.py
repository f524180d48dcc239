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


def upgrade():
    with op.batch_alter_table("bank_versions") as table:
        table.add_column(sa.Column("dimensions", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("bank_versions") as table:
        table.drop_column("dimensions")
