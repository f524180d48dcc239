"""The repositories of what delivering stores: keys, test definitions, sessions' rows.

Each guarantee comes from the modules' docstrings: an answer moves a session only from
the position the writer read (compare-and-set) and a (session, item) is recorded once
(the unique constraint); a key is revoked by its 12-character prefix, or only itself
when the whole key is given; a test id is taken once. Runs once per back end.
"""

import pytest

from irtcat.itembank import definitions, keys, sessions
from irtcat.itembank.errors import NotFoundError

FRAMEWORK = {"format": "irtcat-framework/1",
             "standards": [{"code": "S", "title": "Standard", "parent": None, "levels": []}]}
BANK = {"format": "irtcat-bank/1", "metric": "logistic", "items": [
    {"id": f"Q{i}", "standard": "S", "model": "2pl", "a": 1.0, "b": 0.0,
     "status": "operational"} for i in range(3)]}
SESSION = {"test_id": "t", "learner_id": "learner", "token_digest": "d" * 64, "key_id": None,
           "status": "active", "versions": {"S": 1}, "seed": 7, "current_item": "Q0",
           "position": 1}


@pytest.fixture
def session_id(store):
    store.import_framework(FRAMEWORK)
    store.import_items(BANK)
    assert definitions.add_test(store.database, "t", title="T", standards=["S"], config={})
    sessions.add_session(store.database, id="s1", **SESSION)
    return "s1"


def _answer(item_id):
    return {"learner_id": "learner", "item_id": item_id, "raw_response": "1", "score": 1,
            "bank_version_id": None, "pretest": False}


def test_an_answer_moves_a_session_only_from_the_position_read(store, session_id):
    moved = {"position": 2, "current_item": "Q1"}
    assert sessions.advance_session(store.database, session_id, 1, moved, _answer("Q0"))
    # a second writer that read position 1 too: nothing moves, nothing is recorded
    assert not sessions.advance_session(store.database, session_id, 1,
                                        {"position": 2, "current_item": "Q2"}, _answer("Q0"))
    row, answers = sessions.session_snapshot(store.database, session_id)
    assert (row.position, row.current_item) == (2, "Q1")
    assert [tuple(answer) for answer in answers] == [("Q0", "1", 1)]


def test_an_item_is_recorded_once_per_session(store, session_id):
    assert sessions.advance_session(store.database, session_id, 1,
                                    {"position": 2, "current_item": "Q1"}, _answer("Q0"))
    # the position matches, but (session, Q0) is recorded: the unique constraint refuses
    # it and the session stays where it was
    assert not sessions.advance_session(store.database, session_id, 2,
                                        {"position": 3, "current_item": "Q2"}, _answer("Q0"))
    row, answers = sessions.session_snapshot(store.database, session_id)
    assert row.position == 2 and len(answers) == 1


def test_a_finished_session_does_not_move(store, session_id):
    finished = {"status": "finished", "position": 1, "current_item": None}
    assert sessions.advance_session(store.database, session_id, 1, finished)
    assert not sessions.advance_session(store.database, session_id, 1,
                                        {"position": 2, "current_item": "Q1"}, _answer("Q0"))


def test_session_lookups(store, session_id):
    assert sessions.session_key_id(store.database, session_id) is None
    assert sessions.session_of_token(store.database, "d" * 64).id == session_id
    assert sessions.session_of_token(store.database, "e" * 64) is None
    with pytest.raises(NotFoundError):
        sessions.session_snapshot(store.database, "nobody")
    with pytest.raises(NotFoundError):
        sessions.session_key_id(store.database, "nobody")


def test_a_test_id_is_taken_once(store):
    store.import_framework(FRAMEWORK)
    assert definitions.add_test(store.database, "t", title="T", standards=["S"], config={})
    assert not definitions.add_test(store.database, "t", title="Other", standards=["S"],
                                    config={})
    assert definitions.find_test(store.database, "t")["title"] == "T"
    assert [test["id"] for test in definitions.list_tests(store.database)] == ["t"]
    assert definitions.public_test_ids(store.database) == []
    assert definitions.find_test(store.database, "u") is None


def test_keys_are_revoked_by_prefix_or_one_by_digest(store):
    database = store.database
    for digest in ("a" * 64, "b" * 64, "c" * 64):
        keys.add_key(database, "irtk_samepre", digest, "delivery")
    assert keys.revoke_keys(database, "irtk_samepre", "a" * 64) == 1      # that key only
    assert keys.key_by_digest(database, "a" * 64).revoked_at is not None
    assert keys.key_by_digest(database, "b" * 64).revoked_at is None
    assert keys.revoke_keys(database, "irtk_samepre") == 2                # the live others
    assert keys.revoke_keys(database, "irtk_samepre") == 0
    rows = keys.key_rows(database)
    assert len(rows) == 3 and all(row["revoked_at"] is not None for row in rows)
    assert keys.key_revoked(database, keys.key_by_digest(database, "b" * 64).id)
