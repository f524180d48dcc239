"""Time and tokens: a test's time limit, how long its session tokens live, and which
items a public test may draw; a session's deadline and its token's expiry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tests") as table:
        table.add_column(sa.Column("time_limit", sa.Integer(), nullable=True))
        table.add_column(sa.Column("token_ttl", sa.Integer(), nullable=True))
        table.add_column(sa.Column("finished_token_ttl", sa.Integer(), nullable=True))
        table.add_column(sa.Column("public_pool", sa.String(16), nullable=False,
                                   server_default="practice"))
    with op.batch_alter_table("sessions") as table:
        table.add_column(sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("token_expires_at", sa.DateTime(timezone=True),
                                   nullable=True))


def downgrade():
    with op.batch_alter_table("sessions") as table:
        table.drop_column("token_expires_at")
        table.drop_column("deadline")
    with op.batch_alter_table("tests") as table:
        table.drop_column("public_pool")
        table.drop_column("finished_token_ttl")
        table.drop_column("token_ttl")
        table.drop_column("time_limit")
