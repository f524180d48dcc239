"""The career framework and the talent network: ``job_roles`` (the levels each role
requires per standard) and ``consents`` (a learner's revocable consent to be found by
employers, with the contact handle they chose and when it was given and revoked).

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0015", "0010"


def upgrade():
    op.create_table(
        "job_roles",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("required", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_roles"))
    op.create_table(
        "consents",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("learner_id", sa.String(200), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name="fk_consents_session_id_sessions"),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"],
                                name="fk_consents_key_id_api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_consents"))
    op.create_index("ix_consents_session_id", "consents", ["session_id"])
    op.create_index("ix_consents_active", "consents", ["revoked_at", "learner_id"])


def downgrade():
    op.drop_index("ix_consents_active", table_name="consents")
    op.drop_index("ix_consents_session_id", table_name="consents")
    op.drop_table("consents")
    op.drop_table("job_roles")
