"""Exposure across live sessions: a session continued by another app rebuilds the
Sympson-Hetter rejections of the one it continues; the store counts each item given and
each session started, whichever app serves it; item eligibility follows the counts.

Expected values are simulation truth: the uninterrupted session's items, the items the
sessions were actually given (their stored answers and current items), and the closed
form P(E) = min(1, r_max * eligible / administered) (van der Linden & Veldkamp, 2007).
"""

import threading

import numpy as np
import pytest
from conftest import Api, demo_items

from irtcat.api.app import close_app, create_app
from irtcat.delivery import sessions as delivery_sessions
from irtcat.delivery.sessions import Delivery
from irtcat.engine.exposure import live_eligibility
from irtcat.itembank.exposure import count_start, live_counts

SEED = 424242


def operational_ids(*standards):
    return [item["id"] for item in demo_items()["items"]
            if item["standard"] in standards and item["status"] != "pretest"]


def define(api, test_id, exposure, stop=None):
    body = {"id": test_id, "standards": ["AI-ML", "AI-DE"],
            "config": {"exposure": exposure,
                       "stop": stop or {"min_items": 10, "max_items": 10, "se": None}}}
    response = api.call("POST", "/v1/tests", api.admin, json=body)
    assert response.status_code == 201, response.json


def first_option(state):
    item = state["item"]
    return item["item_id"], item["options"][0]["id"]


def take(api, session, answers=None, state=None):
    """Answer `session` (from its `state`, default its start) with each item's first
    option until it ends, or `answers` times; returns the item ids answered and the last
    state."""
    state, given = state or session, []
    while state["item"] is not None and (answers is None or len(given) < answers):
        item_id, option = first_option(state)
        given.append(item_id)
        state = api.answer(session, item_id, option).json
    return given, state


@pytest.fixture
def fixed_seed(monkeypatch):
    monkeypatch.setattr(delivery_sessions.secrets, "randbits", lambda bits: SEED)


def test_a_session_continued_by_a_fresh_app_chooses_as_the_uninterrupted_one(
        api, database_url, fixed_seed):
    # Sympson-Hetter with K = 0.25 for every item: most steps pass over some items.
    ids = operational_ids("AI-ML", "AI-DE")
    define(api, "sh", {"method": "sympson-hetter", "parameters": dict.fromkeys(ids, 0.25)})
    whole, _ = take(api, api.start("sh", "learner-a"))
    assert len(whole) == 10
    session = api.start("sh", "learner-b")
    half, state = take(api, session, answers=5)
    fresh = create_app({"DATABASE_URL": database_url})      # another worker, or a restart
    try:
        other = Api(fresh)
        rest, state = take(other, session, state=state)
    finally:
        close_app(fresh)
    assert state["status"] == "finished"
    assert half + rest == whole
    trace = api.call("GET", f"/v1/sessions/{session['session_id']}/trace", api.admin).json
    assert any("rejected" in step for step in trace["steps"])   # the control did act


def test_every_item_given_and_session_started_is_counted_across_workers(api):
    # Two Delivery objects on one store stand for two workers; 4 threads start and answer.
    define(api, "counted", {"method": "randomesque", "k": 3},
           stop={"min_items": 4, "max_items": 4, "se": None})
    workers = [api.app.extensions["irtcat"]["delivery"], Delivery(api.store)]
    given, lock = [], threading.Lock()

    def learner(number):
        worker = workers[number % 2]
        state = worker.start_session("counted", f"learner-{number}")
        mine = [state["item"]["item_id"]]
        while state["item"] is not None:
            item = state["item"]
            state = worker.answer(state["session_id"], item["item_id"],
                                  item["options"][0]["id"])
            if state["item"] is not None:
                mine.append(state["item"]["item_id"])
        with lock:
            given.extend(mine)

    threads = [threading.Thread(target=learner, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    figures = api.call("GET", "/v1/tests/counted/exposure", api.admin).json
    truth = {item_id: given.count(item_id) for item_id in set(given)}
    assert figures["sessions"] == 12 and len(given) == 48
    assert {row["item_id"]: row["administered"] for row in figures["items"]} == truth
    assert all(not row["pretest"] for row in figures["items"])
    assert figures["max_rate"] == pytest.approx(max(truth.values()) / 12, abs=1e-4)
    assert figures["mean_length"] == pytest.approx(4.0)
    bank = operational_ids("AI-ML", "AI-DE")
    assert figures["unused_share"] == pytest.approx(1 - len(truth) / len(bank), abs=1e-4)
    counts = np.array(list(truth.values()), dtype=float)     # Chen, Ankenmann & Spray (2003)
    overlap = np.sum(counts * (counts - 1)) / (12 * 11) / 4.0
    assert figures["overlap_rate"] == pytest.approx(overlap, abs=1e-4)
    assert [day["sessions"] for day in figures["days"]] == [12]


def test_pretest_items_are_counted_apart(api):
    # The fixture's credential seeds one pretest item per session.
    session = api.start("credential", "learner-p")
    take(api, session)
    figures = api.call("GET", "/v1/tests/credential/exposure", api.admin).json
    pretest = [row for row in figures["items"] if row["pretest"]]
    assert len(pretest) == 1 and pretest[0]["administered"] == 1
    assert pretest[0]["item_id"] not in operational_ids("AI-ML", "AI-DE", "AI-RAI")
    operational = [row["administered"] for row in figures["items"] if not row["pretest"]]
    assert figures["mean_length"] == pytest.approx(sum(operational))


def test_item_eligibility_follows_the_live_counts(api):
    # Counts written as 100 sessions would have: item 0 given 30 times and drawn
    # ineligible 10 times, item 1 given 5 times, item 2 given 15 times and drawn
    # ineligible 40 times. Closed form at r_max = 0.2 (van der Linden & Veldkamp, 2007):
    # P(E_1) = min(1, 0.2 * 100 / 5) = 1, P(E_2) = 0.2 * 60 / 15 = 0.8; item 0's rate
    # 30 / 100 is over r_max: restricted, P(E_0) = 0 (Revuelta & Ponsoda, 1998), where
    # the estimate alone gives min(1, 0.2 * 90 / 30) = 0.6.
    define(api, "eligible", {"method": "item-eligibility", "target": 0.2})
    ids = operational_ids("AI-ML", "AI-DE")
    database = api.store.database
    with database.write_connection() as connection:
        for number in range(100):
            first = ids[0] if number < 30 else ids[1] if number < 35 else \
                ids[2] if number < 50 else ids[5 + number % 25]
            drawn = [ids[0]] if number >= 90 else [ids[2]] if number >= 50 else []
            count_start(connection, "eligible", (first, False), drawn)
    sessions, administered, ineligible = live_counts(database, "eligible")
    assert (sessions, administered[ids[0]], ineligible[ids[0]]) == (100, 30, 10)
    delivery = api.app.extensions["irtcat"]["delivery"]
    test = delivery.test("eligible")
    built = delivery.test_bank("eligible", api.store.current_version_ids(test["standards"]))
    probability = delivery.eligibility.probabilities("eligible", built)
    assert probability[built.position[ids[0]]] == 0.0
    assert probability[built.position[ids[1]]] == pytest.approx(1.0)
    assert probability[built.position[ids[2]]] == pytest.approx(0.8)
    assert probability[built.position[ids[3]]] == 1.0            # never given yet
    assert live_eligibility([30], [90], 0, 0.2) == pytest.approx([0.6])   # no restriction


def test_an_item_no_session_may_see_is_never_given(api):
    # An item drawn ineligible by every one of 10 sessions and given to all: eligible
    # count 0, so P(E) = 0 and no new session is given it while others remain.
    define(api, "closed", {"method": "item-eligibility", "target": 0.2},
           stop={"min_items": 3, "max_items": 3, "se": None})
    ids = operational_ids("AI-ML", "AI-DE")
    with api.store.database.write_connection() as connection:
        for _ in range(10):
            count_start(connection, "closed", (ids[0], False), [ids[0]])
    for number in range(6):
        given, _ = take(api, api.start("closed", f"learner-{number}"))
        assert ids[0] not in given
    figures = api.call("GET", "/v1/tests/closed/exposure", api.admin).json
    assert figures["sessions"] == 16
    row = next(row for row in figures["items"] if row["item_id"] == ids[0])
    assert row["administered"] == 10 and row["ineligible"] >= 16
