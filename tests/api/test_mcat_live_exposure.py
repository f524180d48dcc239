"""Live item eligibility on a multidimensional test (``exposure: {"method":
"item-eligibility", "target": r}`` without parameters), through the delivery API on the
seeded 3-factor bank of test_mcat_delivery.

Expected values: the bound on the highest operational rate of the restricted live method
(van der Linden & Veldkamp, 2007; Revuelta & Ponsoda, 1998): a new session may draw an
item only while its count c is below r k (k sessions before it), so after N sequential
sessions c <= r k + 1 with k < N, a rate below r + 1/N; the same test without control
gives every learner (same answers, deterministic D-rule) the same items, rate 1. A
session continued by another app is compared with the engine's session of the stored
seed and stored ineligible items (simulation truth: the items actually given).
"""

from test_mcat_delivery import client, define, run_session, stored_seed, true_answers  # noqa: F401

from irtcat.engine.mcat import McatSession
from irtcat.itembank.exposure import session_steps

TARGET = 0.3
SESSIONS = 20
STOP = {"min_items": 6, "max_items": 6, "se": None}


def delivery_of(client):  # noqa: F811 - the fixture's object
    delivery = client.app.extensions["irtcat"]["delivery"]
    delivery.eligibility.seconds = 0.0          # each session reads the latest counts
    return delivery


def max_rate(client, test_id):  # noqa: F811
    figures = client.call("GET", f"/v1/tests/{test_id}/exposure", client.admin).json
    assert figures["sessions"] == SESSIONS
    return figures


def test_live_eligibility_keeps_the_highest_rate_at_the_target(client):  # noqa: F811
    define(client, "free", {"selection": {"method": "dprule"}, "stop": STOP})
    define(client, "live", {"selection": {"method": "dprule"}, "stop": STOP,
                            "exposure": {"method": "item-eligibility", "target": TARGET}})
    delivery_of(client)
    for _ in range(SESSIONS):
        run_session(client, "free")
        run_session(client, "live")
    free, live = max_rate(client, "free"), max_rate(client, "live")
    assert free["max_rate"] == 1.0
    assert live["max_rate"] <= TARGET + 1 / SESSIONS
    assert live["mean_length"] == 6.0
    assert sum(row["ineligible"] for row in live["items"]) > 0


def test_a_rebuilt_session_keeps_its_ineligible_items(client, monkeypatch):  # noqa: F811
    define(client, "live", {"selection": {"method": "dprule"}, "stop": STOP,
                            "exposure": {"method": "item-eligibility", "target": TARGET}})
    delivery_of(client)
    for _ in range(6):
        run_session(client, "live")
    started, _, given = run_session(client, "live", restart_after=2)
    session_id = started["session_id"]
    ineligible = session_steps(client.store.database, session_id)[0]["ineligible"]
    assert ineligible
    delivery = delivery_of(client)
    built = delivery.test_bank("live", client.store.current_version_ids(
        ["F1", "F2", "F3"]))
    answers = true_answers()

    def engine_items(session):
        items = []
        while (position := session.next_item()) is not None:
            items.append(built.items[position]["id"])
            session.answer(position, answers[items[-1]])
        return items

    seed = stored_seed(client, session_id)
    assert engine_items(McatSession(built.tables, seed, ineligible=ineligible)) == given
    assert not {built.items[j]["id"] for j in ineligible} & set(given)
    assert engine_items(McatSession(built.tables, seed)) != given     # the pool matters
