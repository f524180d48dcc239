"""Concurrent answers to one session (spec/API.md "Rules"): applied once, by the database.

Several "workers" (each a `Delivery` with caches of its own, as each gunicorn worker
has) answer the same item of one session at the same moment, released together by a
barrier. The same answer is counted once and every caller gets the same next item;
different answers leave exactly one standing and the others 409. Behind the
compare-and-set on the session's position stands the (session, item) unique
constraint, checked here on its own."""

import threading
from functools import partial

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from irtcat.delivery.errors import ConflictError
from irtcat.delivery.sessions import Delivery
from irtcat.itembank.schema import Response

WORKERS = 6


def _race(workers, calls):
    """Run `calls[i](workers[i])` in threads released at once; their results or errors."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(number):
        barrier.wait()
        try:
            outcomes[number] = calls[number](workers[number])
        except Exception as error:          # noqa: BLE001 - the outcome under test
            outcomes[number] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def _answer(session_id, item_id, choice, worker):
    return worker.answer(session_id, item_id, choice)


def _stored(api, session_id, item_id=None):
    query = select(func.count()).select_from(Response).where(
        Response.session_id == session_id)
    if item_id is not None:
        query = query.where(Response.item_id == item_id)
    with api.store.database.reading() as session:
        return session.scalar(query)


@pytest.fixture
def workers(api):
    made = [api.app.extensions["irtcat"]["delivery"]]
    made += [Delivery(api.store) for _ in range(WORKERS - 1)]
    return made


def test_the_same_answer_sent_at_once_by_many_workers_counts_once(api, workers):
    for _ in range(3):                          # the first answer, then later ones too
        session = api.start("ml", "race-same")
        item = session["item"]
        for step in range(3):
            choice = item["options"][step % len(item["options"])]["id"]
            outcomes = _race(workers, [partial(_answer, session["session_id"],
                                               item["item_id"], choice)] * WORKERS)
            assert all(isinstance(o, dict) for o in outcomes), outcomes
            assert len({(o["position"], o["item"]["item_id"]) for o in outcomes}) == 1
            assert _stored(api, session["session_id"], item["item_id"]) == 1
            assert _stored(api, session["session_id"]) == step + 1
            item = outcomes[0]["item"]
            assert outcomes[0]["position"] == step + 2


def test_different_answers_sent_at_once_leave_one_standing(api, workers):
    session = api.start("ml", "race-different")
    item = session["item"]
    options = [option["id"] for option in item["options"]]
    calls = [partial(_answer, session["session_id"], item["item_id"],
                     options[n % len(options)]) for n in range(WORKERS)]
    outcomes = _race(workers, calls)
    won = [n for n, o in enumerate(outcomes) if isinstance(o, dict)]
    lost = [n for n, o in enumerate(outcomes) if isinstance(o, ConflictError)]
    assert sorted(won + lost) == list(range(WORKERS)), outcomes
    # every caller that sent the standing answer gets 200, every other caller 409
    standing = api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                        api.delivery).json["responses"]
    assert len(standing) == 1 and standing[0]["item_id"] == item["item_id"]
    assert won == [n for n in range(WORKERS) if options[n % len(options)]
                   == standing[0]["response"]]
    assert _stored(api, session["session_id"]) == 1


def test_the_database_refuses_a_second_row_for_one_session_and_item(api):
    session = api.start("ml", "constraint")
    item = session["item"]
    assert api.answer(session, item["item_id"], item["options"][0]["id"]).status_code == 200
    with pytest.raises(IntegrityError) as refused:
        with api.store.database.write_connection() as connection:
            connection.execute(insert(Response.__table__).values(
                session_id=session["session_id"], learner_id="constraint",
                item_id=item["item_id"], raw_response=item["options"][1]["id"], score=0))
    assert "unique" in str(refused.value).lower()          # not some other constraint
    assert _stored(api, session["session_id"]) == 1
