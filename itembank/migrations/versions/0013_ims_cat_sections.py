"""The 1EdTech CAT service's sections and sessions: ``ims_cat_sections``, each a section a
delivery platform created (the irtcat test it delivers, the key that created it, the
configuration it sent, when it ended), and ``ims_cat_sessions``, each of its sessions (an
irtcat session) with the prior data the platform sent.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0013", "0012"


def upgrade():
    op.create_table(
        "ims_cat_sections",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("test_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("configuration", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["test_id"], ["tests.id"],
                                name="fk_ims_cat_sections_test_id_tests"),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"],
                                name="fk_ims_cat_sections_key_id_api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_ims_cat_sections"))
    op.create_table(
        "ims_cat_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("section_id", sa.String(64), nullable=False),
        sa.Column("prior_data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name="fk_ims_cat_sessions_session_id_sessions"),
        sa.ForeignKeyConstraint(["section_id"], ["ims_cat_sections.id"],
                                name="fk_ims_cat_sessions_section_id_ims_cat_sections"),
        sa.PrimaryKeyConstraint("session_id", name="pk_ims_cat_sessions"))
    op.create_index("ix_ims_cat_sessions_section_id", "ims_cat_sessions", ["section_id"])


def downgrade():
    op.drop_index("ix_ims_cat_sessions_section_id", "ims_cat_sessions")
    op.drop_table("ims_cat_sessions")
    op.drop_table("ims_cat_sections")
