"""LTI 1.3: the registered platforms, each OIDC login's state and nonce (a nonce is used
by one launch only), and the sessions LTI launches started with their line item.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0014", "0013"


def upgrade():
    op.create_table(
        "lti_platforms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("deployment_ids", sa.JSON(), nullable=False),
        sa.Column("auth_login_url", sa.String(1000), nullable=False),
        sa.Column("token_url", sa.String(1000), nullable=False),
        sa.Column("jwks_url", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lti_platforms"),
        sa.UniqueConstraint("issuer", "client_id", name="uq_lti_platforms_issuer_client_id"))
    op.create_table(
        "lti_nonces",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["platform_id"], ["lti_platforms.id"],
                                name="fk_lti_nonces_platform_id_lti_platforms"),
        sa.PrimaryKeyConstraint("nonce", name="pk_lti_nonces"),
        sa.UniqueConstraint("state", name="uq_lti_nonces_state"))
    op.create_table(
        "lti_launches",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("deployment_id", sa.String(255), nullable=False),
        sa.Column("lineitem", sa.String(1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name="fk_lti_launches_session_id_sessions"),
        sa.ForeignKeyConstraint(["platform_id"], ["lti_platforms.id"],
                                name="fk_lti_launches_platform_id_lti_platforms"),
        sa.PrimaryKeyConstraint("session_id", name="pk_lti_launches"))


def downgrade():
    op.drop_table("lti_launches")
    op.drop_table("lti_nonces")
    op.drop_table("lti_platforms")
