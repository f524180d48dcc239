"""Initial store: standards, items, calibration runs, bank versions, publications, responses.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "standards",
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parent_code", sa.String(64), nullable=True),
        sa.Column("levels", sa.JSON(), nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.ForeignKeyConstraint(["parent_code"], ["standards.code"],
                                name="fk_standards_parent_code_standards"),
        sa.PrimaryKeyConstraint("code", name="pk_standards"),
    )
    op.create_index("ix_standards_parent_code", "standards", ["parent_code"])

    op.create_table(
        "items",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("standard_code", sa.String(64), nullable=False),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("content", sa.JSON(), nullable=True),
        sa.Column("key", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("enemies", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.CheckConstraint("status IN ('pretest', 'operational', 'retired')",
                           name="ck_items_status"),
        sa.ForeignKeyConstraint(["standard_code"], ["standards.code"],
                                name="fk_items_standard_code_standards"),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
    )
    op.create_index("ix_items_standard_code", "items", ["standard_code"])
    op.create_index("ix_items_seq", "items", ["seq"])

    op.create_table(
        "calibration_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("standard_code", sa.String(64), nullable=False),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("n_responses", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("finished_at", NOW, nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                           name="ck_calibration_runs_status"),
        sa.ForeignKeyConstraint(["standard_code"], ["standards.code"],
                                name="fk_calibration_runs_standard_code_standards"),
        sa.PrimaryKeyConstraint("id", name="pk_calibration_runs"),
    )
    op.create_index("ix_calibration_runs_standard_code", "calibration_runs", ["standard_code"])

    op.create_table(
        "bank_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("standard_code", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("population_mean", sa.Float(), nullable=False),
        sa.Column("population_sd", sa.Float(), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=True),
        sa.Column("arrays", sa.JSON(), nullable=False),
        sa.Column("calibration_run_id", sa.Integer(), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("published_at", NOW, nullable=True),
        sa.ForeignKeyConstraint(["calibration_run_id"], ["calibration_runs.id"],
                                name="fk_bank_versions_calibration_run_id_calibration_runs"),
        sa.ForeignKeyConstraint(["standard_code"], ["standards.code"],
                                name="fk_bank_versions_standard_code_standards"),
        sa.PrimaryKeyConstraint("id", name="pk_bank_versions"),
        sa.UniqueConstraint("standard_code", "number", name="uq_bank_versions_standard_code"),
    )
    op.create_index("ix_bank_versions_standard_code", "bank_versions", ["standard_code"])

    op.create_table(
        "bank_version_items",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"],
                                name="fk_bank_version_items_item_id_items"),
        sa.ForeignKeyConstraint(["version_id"], ["bank_versions.id"],
                                name="fk_bank_version_items_version_id_bank_versions"),
        sa.PrimaryKeyConstraint("version_id", "item_id", name="pk_bank_version_items"),
    )
    op.create_index("ix_bank_version_items_item_id", "bank_version_items", ["item_id"])

    op.create_table(
        "publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("standard_code", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("published_at", NOW, nullable=False),
        sa.ForeignKeyConstraint(["standard_code"], ["standards.code"],
                                name="fk_publications_standard_code_standards"),
        sa.ForeignKeyConstraint(["version_id"], ["bank_versions.id"],
                                name="fk_publications_version_id_bank_versions"),
        sa.PrimaryKeyConstraint("id", name="pk_publications"),
    )
    op.create_index("ix_publications_standard_code", "publications", ["standard_code"])

    op.create_table(
        "responses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("learner_id", sa.String(200), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("raw_response", sa.String(200), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("responded_at", NOW, nullable=False),
        sa.Column("bank_version_id", sa.Integer(), nullable=True),
        sa.Column("pretest", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["bank_version_id"], ["bank_versions.id"],
                                name="fk_responses_bank_version_id_bank_versions"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_responses_item_id_items"),
        sa.PrimaryKeyConstraint("id", name="pk_responses"),
        sa.UniqueConstraint("session_id", "item_id", name="uq_responses_session_id"),
    )
    op.create_index("ix_responses_item_id_id", "responses", ["item_id", "id"])
    op.create_index("ix_responses_learner_id", "responses", ["learner_id"])


def downgrade():
    for table in ("responses", "publications", "bank_version_items", "bank_versions",
                  "calibration_runs", "items", "standards"):
        op.drop_table(table)
