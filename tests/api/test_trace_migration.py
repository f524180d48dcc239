"""Migration 0016 moves stored session traces: from the ``session_steps`` table (0014)
to the answers' rows and the session's row, and back, without changing a session's
trace as the API reads it.

Expected values: the traces the sessions stored before the round trip (their own
steps, the truth here), read with `session_steps` and ``GET /v1/sessions/{id}/trace``.
"""

import sqlalchemy as sa
from alembic import command

from irtcat.itembank.database import _alembic_config, _rebuildable_tables, upgrade
from irtcat.itembank.exposure import session_steps


def _downgrade(database, revision):
    with database.engine.connect() as connection, _rebuildable_tables(connection), \
            connection.begin():
        command.downgrade(_alembic_config(connection), revision)


def _sessions(api):
    """A finished session, one ended early after 2 answers, one just started."""
    finished = state = api.start("ml", "learner-m1")
    while state["item"] is not None:
        state = api.answer(finished, state["item"]["item_id"],
                           state["item"]["options"][0]["id"]).json
    early = state = api.start("ml", "learner-m2")
    for _ in range(2):
        state = api.answer(early, state["item"]["item_id"],
                           state["item"]["options"][1]["id"]).json
    assert api.call("POST", f"/v1/sessions/{early['session_id']}/finish",
                    api.delivery).status_code == 200
    started = api.start("ml", "learner-m3")
    return [session["session_id"] for session in (finished, early, started)]


def test_stored_traces_survive_the_migration_both_ways(api):
    database = api.store.database
    ids = _sessions(api)
    before = {session_id: session_steps(database, session_id) for session_id in ids}
    views = {session_id: api.call("GET", f"/v1/sessions/{session_id}/trace", api.admin).json
             for session_id in ids}
    assert [len(before[i]) for i in ids[1:]] == [4, 1]      # 3 items given + stop; 1 item
    _downgrade(database, "0015")
    with database.engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT session_id, step FROM session_steps ORDER BY session_id, step")).all()
    assert sorted(rows) == sorted((session_id, trace["step"])
                                  for session_id in ids for trace in before[session_id])
    upgrade(database)
    assert {session_id: session_steps(database, session_id) for session_id in ids} == before
    for session_id in ids:
        assert api.call("GET", f"/v1/sessions/{session_id}/trace",
                        api.admin).json == views[session_id]
