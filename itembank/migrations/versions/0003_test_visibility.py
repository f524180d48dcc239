"""Tests: whether the learner page lists them, and whether learners see their result.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tests") as table:
        table.add_column(sa.Column("public", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        table.add_column(sa.Column("feedback", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("tests") as table:
        table.drop_column("feedback")
        table.drop_column("public")
