"""A session's decision trace: readable by an admin only, one step per item given plus
the stop, and reproduced exactly by replaying the session from its stored answers.

Expected values: the session's own answers and items (simulation truth), and the
engine's replay (`engine.session.replay_traces`) of the stored log.
"""

import pytest
from conftest import demo_items

from irtcat.engine.session import replay_traces
from irtcat.itembank.exposure import session_steps


def finish_session(api, test_id, learner_id, options=0):
    session = api.start(test_id, learner_id)
    state = session
    while state["item"] is not None:
        item = state["item"]
        state = api.answer(session, item["item_id"],
                           item["options"][options % len(item["options"])]["id"]).json
        options += 1
    return session, state


def define(api, test_id, config):
    body = {"id": test_id, "standards": ["AI-ML", "AI-DE"], "config": config}
    assert api.call("POST", "/v1/tests", api.admin, json=body).status_code == 201


def test_an_admin_reads_each_step_of_a_finished_session(api):
    session, state = finish_session(api, "credential", "learner-t")
    result = api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                      api.delivery).json
    answered = [answer["item_id"] for answer in result["responses"]]
    trace = api.call("GET", f"/v1/sessions/{session['session_id']}/trace", api.admin)
    assert trace.status_code == 200, trace.json
    steps = trace.json["steps"]
    assert trace.json["status"] == state["status"] == "finished"
    assert [step["item"] for step in steps[:-1]] == answered
    assert [step["step"] for step in steps] == list(range(1, len(answered) + 2))
    assert steps[-1]["stop"] in ("max_items", "rules_met", "pool_exhausted")
    assert sum(1 for step in steps if step.get("pretest")) == 1     # the credential's pretest
    for step in steps[:-1]:
        if step.get("pretest"):
            assert "candidates" not in step
            continue
        values = [candidate["value"] for candidate in step["candidates"]]
        assert values == sorted(values, reverse=True) and len(values) == min(5, step["eligible"])
        # MFI without exposure control gives the best candidate
        assert step["item"] == step["candidates"][0]["item_id"]
    assert steps[0]["theta"] == pytest.approx(0.0) and steps[-1]["se"] < steps[0]["se"]


def test_the_trace_is_never_read_with_a_delivery_key_or_a_token(api):
    session = api.start("ml", "learner-n")
    path = f"/v1/sessions/{session['session_id']}/trace"
    assert api.call("GET", path, api.delivery).status_code == 403
    assert api.call("GET", path, session["token"]).status_code == 403
    assert api.call("GET", path).status_code == 401
    assert api.call("GET", "/v1/sessions/s_nosuchsession/trace", api.admin).status_code == 404


OPERATIONAL = [item["id"] for item in demo_items()["items"]
               if item["standard"] in ("AI-ML", "AI-DE") and item["status"] != "pretest"]


@pytest.mark.parametrize("exposure", [
    {"method": "sympson-hetter", "parameters": dict.fromkeys(OPERATIONAL, 0.3)},
    {"method": "randomesque", "k": 4},
])
def test_replaying_a_session_from_its_log_reproduces_its_trace(api, exposure):
    # Sympson-Hetter with every item at K = 0.3 so that steps pass over items, and a
    # randomesque test; pretest seeding too.
    config = {"exposure": exposure, "pretest": {"count": 2},
              "stop": {"min_items": 6, "max_items": 9, "se": 0.3}}
    define(api, f"replay-{exposure['method']}", config)
    delivery = api.app.extensions["irtcat"]["delivery"]
    rejected = 0
    for number in range(3):
        session, _ = finish_session(api, f"replay-{exposure['method']}", f"l-{number}",
                                    options=number)
        row, answers = delivery._snapshot(session["session_id"])
        built = delivery._session_bank(row, answers)
        stored = session_steps(api.store.database, row.id)
        replayed = replay_traces(built.tables, built.design, row.seed,
                                 [built.position[a.item_id] for a in answers],
                                 [a.score for a in answers], built.excluded,
                                 stored[0].get("ineligible", ()))
        assert replayed == stored
        rejected += sum(len(step.get("rejected", ())) for step in stored)
    assert (rejected > 0) == (exposure["method"] == "sympson-hetter")


@pytest.mark.parametrize("answered", [2, 6])
def test_a_session_the_platform_ends_gets_a_last_step_saying_so(api, answered):
    # A test of at least 3 and at most 12 items that no SE ends early: ended after 2
    # answers it has no estimate, after 6 its result's θ and SE.
    define(api, f"early-{answered}", {"stop": {"min_items": 3, "max_items": 12, "se": 0.01}})
    session = state = api.start(f"early-{answered}", f"learner-early-{answered}")
    for n in range(answered):
        item = state["item"]
        state = api.answer(session, item["item_id"], item["options"][n % 2]["id"]).json
    ended = api.call("POST", f"/v1/sessions/{session['session_id']}/finish", api.delivery)
    assert ended.status_code == 200 and ended.json["status"] == "finished"
    steps = api.call("GET", f"/v1/sessions/{session['session_id']}/trace", api.admin
                     ).json["steps"]
    result = api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                      api.delivery).json
    # one step per item given (the last one given unanswered), then the stop
    assert [step["step"] for step in steps] == list(range(1, answered + 3))
    assert steps[-1]["stop"] == "finished_early"
    assert (steps[-1]["theta"], steps[-1]["se"]) == (result["theta"], result["se"])
    assert (result["theta"] is None) == (answered < 3)
