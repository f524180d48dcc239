"""Session traces kept on the rows an answer writes anyway: each answer's ``responses``
row carries the trace of the step it led to (``trace``), and the session's row the
steps no answer carries (``steps``: the first item's choice, the last step of a session
ended early). ``session_steps`` is dropped once its rows are moved: an answer writes
one row fewer. Two tables keep the live exposure counts per θ band, for tests with
``exposure.theta_bands`` (written only for those).

A session's step k (k >= 2) is the trace its (k - 1)-th answer led to; step 1, and a
step past the last answer, stay with the session.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0016", "0015"

_steps = sa.table("session_steps", sa.column("session_id", sa.String),
                  sa.column("step", sa.Integer), sa.column("trace", sa.JSON))
_responses = sa.table("responses", sa.column("id", sa.Integer),
                      sa.column("session_id", sa.String), sa.column("trace", sa.JSON))
_sessions = sa.table("sessions", sa.column("id", sa.String), sa.column("steps", sa.JSON))


def _answer_ids(connection, session_ids):
    """{session_id: [response ids in the order given]} of `session_ids`."""
    answers = defaultdict(list)
    for start in range(0, len(session_ids), 500):
        for row in connection.execute(
                sa.select(_responses.c.session_id, _responses.c.id)
                .where(_responses.c.session_id.in_(session_ids[start:start + 500]))
                .order_by(_responses.c.id)):
            answers[row.session_id].append(row.id)
    return answers


def upgrade():
    op.add_column("responses", sa.Column("trace", sa.JSON(), nullable=True))
    op.add_column("sessions", sa.Column("steps", sa.JSON(), nullable=True))
    connection = op.get_bind()
    traces = defaultdict(list)
    for row in connection.execute(sa.select(_steps.c.session_id, _steps.c.trace)
                                  .order_by(_steps.c.session_id, _steps.c.step)):
        traces[row.session_id].append(row.trace)
    answers = _answer_ids(connection, list(traces))
    for session_id, session_traces in traces.items():
        answer_ids, kept = answers.get(session_id, []), []
        for trace in session_traces:
            step = trace["step"]
            if 2 <= step <= len(answer_ids) + 1:
                connection.execute(_responses.update().where(
                    _responses.c.id == answer_ids[step - 2]).values(trace=trace))
            else:
                kept.append(trace)
        if kept:
            connection.execute(_sessions.update().where(_sessions.c.id == session_id)
                               .values(steps=kept))
    op.drop_table("session_steps")
    op.create_table(
        "exposure_band_counts",
        sa.Column("test_id", sa.String(64), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("pretest", sa.Boolean(), nullable=False),
        sa.Column("administered", sa.BigInteger(), nullable=False),
        sa.Column("ineligible", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("test_id", "band", "item_id", "pretest",
                                name="pk_exposure_band_counts"))
    op.create_table(
        "exposure_band_sessions",
        sa.Column("test_id", sa.String(64), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("sessions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("test_id", "band", name="pk_exposure_band_sessions"))


def downgrade():
    op.drop_table("exposure_band_sessions")
    op.drop_table("exposure_band_counts")
    op.create_table(
        "session_steps",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("trace", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name="fk_session_steps_session_id_sessions"),
        sa.PrimaryKeyConstraint("session_id", "step", name="pk_session_steps"))
    connection = op.get_bind()
    # (a JSON column's None may be stored as JSON null: filtered here, not in SQL)
    rows = [{"session_id": row.session_id, "step": row.trace["step"], "trace": row.trace}
            for row in connection.execute(sa.select(_responses.c.session_id,
                                                    _responses.c.trace))
            if row.trace]
    rows += [{"session_id": row.id, "step": trace["step"], "trace": trace}
             for row in connection.execute(sa.select(_sessions.c.id, _sessions.c.steps))
             for trace in row.steps or ()]
    if rows:
        connection.execute(_steps.insert(), rows)
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("steps")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("trace")
