"""Stable identifiers and the server's signing keys: each standard's CASE identifier
(``standards.case_identifier``, a UUID: the framework's CFItem), and ``signing_keys``,
one private key per purpose (a session state's MAC, the LTI tool's RSA key, the badge
issuer's Ed25519 key), made on first use.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0010", "0009"


def upgrade():
    with op.batch_alter_table("standards") as batch:
        batch.add_column(sa.Column("case_identifier", sa.String(64), nullable=True))
    op.create_table(
        "signing_keys",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_signing_keys"))


def downgrade():
    op.drop_table("signing_keys")
    with op.batch_alter_table("standards") as batch:
        batch.drop_column("case_identifier")
