"""The career framework and the talent network: ``job_roles`` (the levels each role
requires per standard) and ``consents`` (a learner's revocable consent to be found by
employers, with the contact handle they chose and when it was given and revoked).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0012", "0011"

# (name, type, nullable) of each table's columns, in order
JOB_ROLE_COLUMNS = (("id", sa.String(64), False), ("title", sa.String(200), False),
                    ("description", sa.Text(), False), ("required", sa.JSON(), False),
                    ("updated_at", sa.DateTime(timezone=True), False))
CONSENT_COLUMNS = (("id", sa.String(40), False), ("session_id", sa.String(64), False),
                   ("learner_id", sa.String(200), False), ("key_id", sa.Integer(), True),
                   ("contact", sa.String(200), False),
                   ("given_at", sa.DateTime(timezone=True), False),
                   ("revoked_at", sa.DateTime(timezone=True), True))


def _columns(spec):
    return [sa.Column(name, kind, nullable=nullable) for name, kind, nullable in spec]


def upgrade():
    op.create_table("job_roles", *_columns(JOB_ROLE_COLUMNS),
                    sa.PrimaryKeyConstraint("id", name="pk_job_roles"))
    op.create_table("consents", *_columns(CONSENT_COLUMNS),
                    sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                            name="fk_consents_session_id_sessions"),
                    sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"],
                                            name="fk_consents_key_id_api_keys"),
                    sa.PrimaryKeyConstraint("id", name="pk_consents"))
    op.create_index("ix_consents_session_id", "consents", ["session_id"])
    op.create_index("ix_consents_active", "consents", ["revoked_at", "learner_id"])


def downgrade():
    for index in ("ix_consents_active", "ix_consents_session_id"):
        op.drop_index(index, table_name="consents")
    op.drop_table("consents")
    op.drop_table("job_roles")
