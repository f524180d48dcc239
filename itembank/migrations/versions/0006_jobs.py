"""Queued work: the ``jobs`` table the worker processes (`irtcat worker`) take long
admin work from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0006", "0005"


def _moment(name, required=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=not required)


def upgrade():
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(300), nullable=True),
        _moment("heartbeat_at"),
        sa.Column("calibration_run_id", sa.Integer(), nullable=True),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("media_type", sa.String(100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        _moment("created_at", required=True),
        _moment("started_at"),
        _moment("finished_at"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                           name="ck_jobs_status"),
        sa.ForeignKeyConstraint(["calibration_run_id"], ["calibration_runs.id"],
                                name="fk_jobs_calibration_run_id_calibration_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])


def downgrade():
    op.drop_index("ix_jobs_status_id", table_name="jobs")
    op.drop_table("jobs")
