"""Learner attributes: a session keeps the attributes given at its start (a small JSON
object of short strings, e.g. {"group": "F"}), which DIF analyses group persons by.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0007", "0006"


def upgrade():
    with op.batch_alter_table("sessions") as table:
        table.add_column(sa.Column("attributes", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("sessions") as table:
        table.drop_column("attributes")
