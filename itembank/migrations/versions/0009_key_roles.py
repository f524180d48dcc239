"""Two more key roles: ``cat-client`` (a delivery platform driving the 1EdTech CAT
service) and ``employer`` (the talent network's search of consenting learners).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from alembic import op

revision, down_revision = "0009", "0008"

ROLES = ("admin", "delivery", "cat-client", "employer")
EARLIER_ROLES = ("admin", "delivery")


def _roles_check(roles):
    # A CHECK constraint cannot be altered in place: the table is rebuilt on SQLite (batch
    # mode), the constraint dropped and made again elsewhere.
    with op.batch_alter_table("api_keys", recreate="auto") as batch:
        batch.drop_constraint("ck_api_keys_role", type_="check")
        batch.create_check_constraint("ck_api_keys_role", f"role IN {roles}")


def upgrade():
    _roles_check(ROLES)


def downgrade():
    _roles_check(EARLIER_ROLES)
