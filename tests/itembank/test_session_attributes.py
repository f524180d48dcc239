"""Migration 0007: a session's learner attributes (`sessions.attributes`), and the
response log read with one attribute's value per person (`attributed_response_log`)."""

import json
import pathlib

import numpy as np
import pytest
import sqlalchemy
from alembic import command

from irtcat.delivery.sessions import Delivery
from irtcat.itembank.database import Database, _alembic_config, upgrade
from irtcat.itembank.errors import NotFoundError
from irtcat.itembank.io import ResponseLog
from irtcat.itembank.sessions import add_session, attributed_response_log
from irtcat.itembank.store import Store

DEMO = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo"


def _columns(database):
    return {column["name"]: column for column in
            sqlalchemy.inspect(database.engine).get_columns("sessions")}


def test_the_migration_adds_a_nullable_column_and_takes_it_back(database_url):
    database = Database(database_url)
    try:
        upgrade(database, "0006")
        assert "attributes" not in _columns(database)
        upgrade(database)
        assert _columns(database)["attributes"]["nullable"]
        with database.engine.connect() as connection, connection.begin():
            command.downgrade(_alembic_config(connection), "0006")
        assert "attributes" not in _columns(database)
    finally:
        database.dispose()


@pytest.fixture
def store(database_url):
    database = Database(database_url)
    upgrade(database)
    store = Store(database)
    store.import_framework(json.loads((DEMO / "framework.json").read_text()))
    store.import_items(_two_items())
    yield store
    database.dispose()


def _two_items():
    content = {"stem": "Q", "options": [{"id": "A", "text": "a"}, {"id": "B", "text": "b"}]}
    return [{"id": f"Q{j}", "standard": "AI-ML", "model": "2pl", "a": 1.0, "b": 0.0,
             "status": "operational", "content": content, "key": {"correct": "A"}}
            for j in (1, 2)]


def test_the_log_carries_each_persons_attribute(store):
    Delivery(store).create_test("t", "T", ["AI-ML"], {})
    for session_id, attributes in (("s1", {"group": "F", "site": "n"}), ("s2", {"site": "s"}),
                                   ("s3", None)):
        add_session(store.database, id=session_id, test_id="t", learner_id=session_id,
                    token_digest=session_id * 8, status="finished", versions={}, seed=1,
                    position=2, attributes=attributes)
    store.add_responses([{"session_id": s, "learner_id": s, "item_id": item,
                          "raw_response": "A", "score": score}
                         for s, item, score in (("s1", "Q1", 1), ("s2", "Q1", 0),
                                                ("s2", "Q2", 1), ("s3", "Q2", 0),
                                                ("s1", "Q2", 0))])
    store.import_response_log(ResponseLog(["h"], ["Q1"], np.array([0]), np.array([0]),
                                          np.array([1.0])))
    log, values = attributed_response_log(store.database, "AI-ML", "group")
    assert log.person_ids == ["s1", "s2", "s3", "import:h"]
    assert values == ["F", None, None, None]
    assert log.response.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    _, sites = attributed_response_log(store.database, "AI-ML", "site")
    assert sites == ["n", "s", None, None]
    with pytest.raises(NotFoundError):
        attributed_response_log(store.database, "NOPE", "group")
