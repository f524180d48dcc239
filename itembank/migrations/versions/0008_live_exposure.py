"""Live exposure and session traces: per test, day and item the administrations (and
ineligible draws) counted with each administered item, the sessions started per test
and day, and each session step's decision trace.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0008", "0007"


def upgrade():
    op.create_table(
        "session_steps",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("trace", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name="fk_session_steps_session_id_sessions"),
        sa.PrimaryKeyConstraint("session_id", "step", name="pk_session_steps"))
    op.create_table(
        "exposure_counts",
        sa.Column("test_id", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("pretest", sa.Boolean(), nullable=False),
        sa.Column("administered", sa.BigInteger(), nullable=False),
        sa.Column("ineligible", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("test_id", "day", "item_id", "pretest",
                                name="pk_exposure_counts"))
    op.create_table(
        "exposure_sessions",
        sa.Column("test_id", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("test_id", "day", name="pk_exposure_sessions"))


def downgrade():
    op.drop_table("exposure_sessions")
    op.drop_table("exposure_counts")
    op.drop_table("session_steps")
