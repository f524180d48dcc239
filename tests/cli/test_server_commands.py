"""`irtcat keys` and `irtcat demo --no-serve` (what `make run` prepares before serving)."""

import re
import socket

import pytest
import sqlalchemy

from irtcat.delivery.keys import authenticate
from irtcat.delivery.sessions import Delivery
from irtcat.itembank.database import Database
from irtcat.itembank.store import Store


@pytest.fixture
def database(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


def test_keys_are_printed_once_stored_hashed_and_revocable(irtcat, database):
    status, out, _ = irtcat("keys", "create", "--role", "delivery", "--name", "lms")
    key = out.strip()
    assert status == 0 and out.count("\n") == 1 and key.startswith("irtk_")
    assert authenticate(database, key)[2] == "delivery"
    with database.reading() as session:
        stored = session.execute(sqlalchemy.text("SELECT prefix, digest FROM api_keys")).all()
    assert all(key not in row.digest for row in stored)
    status, out, _ = irtcat("keys", "list")
    assert key[:12] in out and "active" in out and key not in out
    assert irtcat("keys", "revoke", key)[0] == 0
    assert authenticate(database, key) is None
    status, _, err = irtcat("keys", "revoke", key)
    assert status == 2 and "no active key" in err
    status, _, err = irtcat("keys", "create", "--role", "root")
    assert status == 2 and "invalid choice" in err


def test_the_demo_prepares_calibrated_standards_tests_and_keys(irtcat, database):
    status, out, err = irtcat("demo", "--no-serve")
    assert status == 0
    assert err.count("published as version 1") == 3
    keys = re.findall(r"(irtk_\S+)", out)
    assert authenticate(database, keys[0])[2] == "delivery"
    assert authenticate(database, keys[1])[2] == "admin"
    assert "curl -s 127.0.0.1:8000/v1/sessions" in out
    store = Store(database)
    tests = {test["id"]: test for test in Delivery(store).tests()}
    assert set(tests) == {"ai-ml", "ai-de", "ai-rai", "ai-practitioner",
                          "ai-practitioner-practice"}
    assert tests["ai-practitioner"]["config"]["stop"]["classification"]["cut"] == 0.5
    for code in ("AI-ML", "AI-DE", "AI-RAI"):
        items = [item for item in store.items(code) if item["status"] == "operational"]
        assert len(items) >= 40 and all("a" in item and "fit" in item for item in items)
    # A second run reuses the store: no new version, the same tests.
    status, _, err = irtcat("demo", "--no-serve")
    assert status == 0 and "published" not in err
    assert [v["version"] for v in store.versions("AI-ML")] == [1]


def test_serve_refuses_a_port_something_listens_on(irtcat):
    # Expected: exit 2 with one line naming the address (the workers' SO_REUSEPORT
    # sockets would otherwise share the port with the other server, silently).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, out, err = irtcat("serve", "--port", port)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err
