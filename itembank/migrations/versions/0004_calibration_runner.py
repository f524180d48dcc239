"""Calibration runs: the process that runs each (host:pid), so that a run whose process
ended before it finished is reported failed instead of running for ever.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calibration_runs") as table:
        table.add_column(sa.Column("runner", sa.String(300), nullable=True))


def downgrade():
    with op.batch_alter_table("calibration_runs") as table:
        table.drop_column("runner")
