"""The rules of spec/API.md a client relies on, through the HTTP layer: idempotent
answers, 409 and 422 that change nothing, sessions pinned to their bank version,
finishing early, the result and score shapes (levels of FORMATS.md), the response
log, simulations, calibrations, the admin resources and the error envelope."""

import csv
import io
import math
import threading
import time

import numpy as np
import pytest
from sqlalchemy import select

from irtcat.api.app import close_app, create_app
from irtcat.itembank.schema import Response

OPTIONS3 = [{"id": "A", "text": "Not at all"}, {"id": "B", "text": "Partly"},
            {"id": "C", "text": "Fully"}]
POLY_SCORES = {"A": 0, "B": 1, "C": 2}
AI_LEVELS = [("foundational", -0.5), ("proficient", 0.5), ("advanced", 1.5)]
ML_LEVELS = [("foundational", -0.75), ("proficient", 0.25), ("advanced", 1.25)]
SIMULATION_KEYS = {"examinees", "seed", "rmse", "bias", "mean_length", "exposure",
                   "overlap_rate", "conditional", "seconds"}


# --- helpers ----------------------------------------------------------------------------

def envelope(response, status, code=None):
    """The error body is exactly {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def state(api, session):
    response = api.call("GET", f"/v1/sessions/{session['session_id']}", api.delivery)
    assert response.status_code == 200
    return response.json


def result(api, session):
    response = api.call("GET", f"/v1/sessions/{session['session_id']}/result", api.delivery)
    assert response.status_code == 200, response.json
    return response.json


def answer_all(api, session, choose=lambda item: item["options"][0]["id"], limit=None):
    """Answer until the session finishes (or `limit` answers); returns [(item_id, response)]."""
    item, given = session["item"], []
    while item is not None and (limit is None or len(given) < limit):
        response = choose(item)
        reply = api.answer(session, item["item_id"], response)
        assert reply.status_code == 200, reply.json
        assert reply.json["status"] in ("active", "finished")
        given.append((item["item_id"], response))
        item = reply.json["item"]
    return given


def items_of(api, standard):
    response = api.call("GET", f"/v1/items?standard={standard}", api.admin)
    assert response.status_code == 200
    return {item["id"]: item for item in response.json}


def score_of(item, response):
    """The score of an option by the item's key (FORMATS.md "Item content")."""
    key = item["key"]
    return int(response == key["correct"]) if "correct" in key else key["scores"][response]


def eap(answers, parameters):
    """EAP theta under N(0, 1) on 121 nodes in [-6, 6], from FORMATS.md's 2PL and GRM."""
    nodes = np.linspace(-6.0, 6.0, 121)
    log_post = -0.5 * nodes**2
    for item_id, score in answers:
        item = parameters[item_id]
        if item["model"] == "2pl":
            p = 1 / (1 + np.exp(-item["a"] * (nodes - item["b"])))
            log_post += np.log(p if score else 1 - p)
        else:                                                            # grm
            star = [np.ones_like(nodes)] + [1 / (1 + np.exp(-item["a"] * (nodes - b)))
                                            for b in item["b"]] + [np.zeros_like(nodes)]
            log_post += np.log(star[score] - star[score + 1])
    weights = np.exp(log_post - log_post.max())
    return float(np.sum(weights * nodes) / np.sum(weights))


def level(theta, levels):
    reached = [name for name, cut in levels if theta >= cut]
    return reached[-1] if reached else None


def stored_scores(api, session):
    """[(item_id, score)] of a session as the store recorded them: the admin's view, since
    a result shows no item scores (they would tell the keys)."""
    with api.store.database.reading() as db:
        rows = db.execute(select(Response.item_id, Response.score)
                          .where(Response.session_id == session["session_id"])
                          .order_by(Response.id)).all()
    return [(row.item_id, row.score) for row in rows]


# `/v1/score` rounds θ and SE to 0.1 (delivery.scoring.SCORE_DECIMALS): a value within
# rounding of the closed form, plus the quadrature's own 2e-3.
ROUNDED = 0.05 + 2e-3


def add_standard(api, code, levels=(), parent=None):
    body = {"code": code, "title": f"{code} title", "description": "", "parent": parent,
            "levels": [{"name": name, "cut": cut} for name, cut in levels]}
    response = api.call("POST", "/v1/standards", api.admin, json=body)
    assert response.status_code == 201, response.json
    return response.json


def poly_item(item_id, standard, b=(-0.8, 0.6), **extra):
    return {"id": item_id, "standard": standard, "model": "grm", "a": 1.4, "b": list(b),
            "status": "operational",
            "content": {"stem": f"How well does {item_id} apply?", "options": OPTIONS3},
            "key": {"scores": POLY_SCORES}, **extra}


def add_test(api, test_id, standards, config):
    response = api.call("POST", "/v1/tests", api.admin,
                        json={"id": test_id, "standards": standards, "config": config})
    assert response.status_code == 201, response.json
    return response.json


def wait_for(api, run_id, timeout=60):
    """Poll a calibration until it is done or failed, then let its worker thread end (so
    the next test's database is not in use)."""
    deadline = time.monotonic() + timeout
    while True:
        response = api.call("GET", f"/v1/calibrations/{run_id}", api.admin)
        assert response.status_code == 200, response.json
        if response.json["status"] in ("done", "failed"):
            for thread in threading.enumerate():
                if thread.name == f"calibration-{run_id}":
                    thread.join(timeout)
            return response.json
        assert response.json["status"] in ("queued", "running")
        assert time.monotonic() < deadline, "the calibration did not finish"
        time.sleep(0.05)


# --- answering --------------------------------------------------------------------------

def test_repeating_an_answer_returns_the_same_next_item_and_counts_once(api):
    session = api.start()
    first = session["item"]
    reply = api.answer(session, first["item_id"], "B")
    assert reply.status_code == 200
    assert reply.json["position"] == 2 and reply.json["item"]["position"] == 2
    for key in (session["token"], api.delivery):                    # a retry, by either
        again = api.answer(session, first["item_id"], "B", key=key)
        assert again.status_code == 200
        assert again.json == reply.json
    assert state(api, session) == reply.json
    answers = result(api, session)["responses"]
    assert [a["item_id"] for a in answers] == [first["item_id"]]
    assert answers[0]["response"] == "B"
    log = api.call("GET", "/v1/responses", api.admin).get_data(True)
    assert sum(row.startswith(f"{session['session_id']},") for row in log.splitlines()) == 1

    # the repeat of the answer that finished the session: 200, finished, counted once
    given = [(first["item_id"], "B")] + answer_all(
        api, {**session, "item": reply.json["item"]})
    last = api.answer(session, *given[-1])
    assert last.status_code == 200
    assert last.json["status"] == "finished" and last.json["item"] is None
    assert [(a["item_id"], a["response"]) for a in result(api, session)["responses"]] == given


def test_a_different_answer_to_an_answered_item_is_409_and_changes_nothing(api):
    session = api.start()
    first = session["item"]
    assert api.answer(session, first["item_id"], "A").status_code == 200
    before, answers = state(api, session), result(api, session)
    envelope(api.answer(session, first["item_id"], "C"), 409, "conflict")
    envelope(api.answer(session, first["item_id"], "C", key=api.delivery), 409, "conflict")
    assert state(api, session) == before
    assert result(api, session) == answers
    assert answers["responses"][0]["response"] == "A"


def test_an_answer_to_an_item_that_is_not_current_is_409_and_changes_nothing(api):
    session = api.start("ml")
    current = session["item"]["item_id"]
    other = next(i for i in items_of(api, "AI-ML") if i != current)
    for item_id in (other, "NO-SUCH-ITEM", "DE-001"):
        envelope(api.answer(session, item_id, "A"), 409, "conflict")
    assert state(api, session) == {k: session[k] for k in ("session_id", "status",
                                                           "position", "max_items", "item")}
    assert result(api, session)["responses"] == []
    # the next item of the session is not current before it is given
    reply = api.answer(session, current, "A").json
    envelope(api.answer(session, current if reply["item"] is None else other, "B"), 409)
    finished = api.call("POST", f"/v1/sessions/{session['session_id']}/finish", api.delivery)
    assert finished.status_code == 200
    envelope(api.answer(session, reply["item"]["item_id"], "A"), 409, "conflict")


def test_an_answer_not_among_the_options_is_422_and_changes_nothing(api):
    session = api.start()
    item = session["item"]
    assert [o["id"] for o in item["options"]] == ["A", "B", "C", "D"]
    for response in ("E", "a", "AB", " A", 0, 1, 3):
        envelope(api.answer(session, item["item_id"], response), 422)
    assert state(api, session)["position"] == 1
    assert result(api, session)["responses"] == []
    assert api.answer(session, item["item_id"], "D").status_code == 200
    assert state(api, session)["position"] == 2
    assert len(result(api, session)["responses"]) == 1


def test_a_polytomous_item_takes_its_options_and_scores_them_by_the_key(api):
    add_standard(api, "POLY", [("some", -0.3), ("most", 0.4)])
    items = [poly_item(f"POLY-{i}", "POLY", b=(-1.0 + i / 4, 0.5 + i / 4)) for i in range(3)]
    assert api.call("POST", "/v1/items", api.admin, json=items).status_code == 201
    add_test(api, "poly", ["POLY"], {"stop": {"min_items": 3, "max_items": 3}})
    session = api.start("poly")
    item = session["item"]
    assert item["options"] == OPTIONS3
    for response in ("D", "c", 2, 3):
        envelope(api.answer(session, item["item_id"], response), 422)
    envelope(api.answer(session, item["item_id"], ""), 422)           # not an option either
    assert state(api, session)["position"] == 1
    given = answer_all(api, session, choose=lambda item: "ABC"[int(item["item_id"][-1])])
    done = result(api, session)
    assert done["status"] == "finished"
    assert [(a["item_id"], a["response"], a["score"]) for a in done["responses"]] == [
        (item_id, response, None) for item_id, response in given]
    assert stored_scores(api, session) == [(item_id, POLY_SCORES[response])
                                           for item_id, response in given]
    params = {i["id"]: i for i in items}
    expected = eap([(i, POLY_SCORES[r]) for i, r in given], params)
    assert done["theta"] == pytest.approx(expected, abs=2e-3)
    assert done["standards"] == [{"code": "POLY", "title": "POLY title",
                                  "theta": done["theta"], "se": done["se"],
                                  "level": level(done["theta"], [("some", -0.3),
                                                                 ("most", 0.4)])}]


def test_an_item_without_a_key_takes_its_categories_only(api):
    """Items without content are answered with a category 0..K-1 (FORMATS.md)."""
    add_standard(api, "RAW")
    bare = {"id": "RAW-1", "standard": "RAW", "model": "grm", "a": 1.2, "b": [-0.5, 0.7]}
    assert api.call("POST", "/v1/items", api.admin, json=bare).status_code == 201
    add_test(api, "raw", ["RAW"], {"stop": {"min_items": 1, "max_items": 1}})
    session = api.start("raw")
    assert session["item"] == {"item_id": "RAW-1", "stem": "", "options": [], "position": 1}
    for response in (3, 999, -1, "A", "1"):
        envelope(api.answer(session, "RAW-1", response), 422)
    assert state(api, session)["position"] == 1
    assert api.answer(session, "RAW-1", 2).json["status"] == "finished"
    assert result(api, session)["responses"] == [
        {"item_id": "RAW-1", "response": 2, "score": None}]
    assert stored_scores(api, session) == [("RAW-1", 2)]


# --- pinned bank versions ---------------------------------------------------------------

def test_a_session_keeps_the_bank_version_it_started_with(api):
    before = items_of(api, "AI-ML")
    old = api.start("ml")
    given = answer_all(api, old, limit=2)
    # a new version of AI-ML: every operational item 1.5 logits harder, and one new
    # item so informative at the start (theta 0) that a new session begins with it
    changed = []
    for item in before.values():
        if "a" in item:
            b = item["b"]
            item = {**item, "b": [v + 1.5 for v in b] if isinstance(b, list) else b + 1.5}
        changed.append(item)
    new_item = {"id": "ML-NEW", "standard": "AI-ML", "model": "2pl", "a": 4.0, "b": 0.0,
                "status": "operational",
                "content": {"stem": "Which is a loss?", "options": [
                    {"id": "A", "text": "Cross-entropy"}, {"id": "B", "text": "Accuracy"}]},
                "key": {"correct": "A"}}
    posted = api.call("POST", "/v1/items", api.admin, json=changed + [new_item])
    assert posted.status_code == 201, posted.json
    n_calibrated = sum("a" in item for item in before.values())
    assert posted.json == {"created": 1, "updated": n_calibrated,
                           "unchanged": len(before) - n_calibrated,
                           "versions": [{"standard": "AI-ML", "version": 2}]}
    after = items_of(api, "AI-ML")
    assert after["ML-001"]["b"] == pytest.approx(before["ML-001"]["b"] + 1.5)

    state_before = state(api, old)
    given += answer_all(api, {**old, "item": state_before["item"]})
    assert "ML-NEW" not in [item_id for item_id, _ in given]
    pinned = result(api, old)
    scores = [(item_id, score_of(before[item_id], response)) for item_id, response in given]
    assert stored_scores(api, old) == scores
    old_theta, new_theta = eap(scores, before), eap(scores, after)
    assert abs(old_theta - new_theta) > 0.5
    assert pinned["theta"] == pytest.approx(old_theta, abs=2e-3)

    # scoring without a session, and every new session, use the new version
    more = [(item_id, 1) for item_id, item in after.items() if item["status"] == "operational"
            and item_id not in dict(scores)][:10 - len(scores)]
    scored = api.call("POST", "/v1/score", api.delivery, json={"responses": [
        {"item_id": item_id, "response": score} for item_id, score in scores + more]})
    assert scored.status_code == 200, scored.json
    assert scored.json["theta"] == pytest.approx(eap(scores + more, after), abs=ROUNDED)
    assert abs(eap(scores + more, after) - eap(scores + more, before)) > 0.5
    assert api.start("ml")["item"]["item_id"] == "ML-NEW"


def test_a_promoted_pretest_item_does_not_break_a_session_that_answered_it(api, database_url):
    """A session that was given a pretest item keeps working, on a freshly started worker,
    after that item is calibrated and published as operational."""
    pretest = {i for i, item in items_of(api, "AI-ML").items() if item["status"] == "pretest"}
    add_test(api, "ml-pretest", ["AI-ML"], {"stop": {"min_items": 6, "max_items": 6},
                                            "pretest": {"count": 2}})
    session = api.start("ml-pretest")
    given = []
    while not any(item_id in pretest for item_id, _ in given):  # 2 of the 8 are pretest
        given += answer_all(api, {**session, "item": state(api, session)["item"]}, limit=1)
    assert len(given) < 8
    seen = [item_id for item_id, _ in given if item_id in pretest]
    promoted = [{**items_of(api, "AI-ML")[item_id], "a": 1.1, "b": 0.2,
                 "status": "operational"} for item_id in seen]
    assert api.call("POST", "/v1/items", api.admin, json=promoted).status_code == 201
    # another worker (or the server after a restart): no bank cached yet
    app = create_app({"DATABASE_URL": database_url})
    try:
        api.client = app.test_client()
        assert [a["item_id"] for a in result(api, session)["responses"]] == [
            item_id for item_id, _ in given]
        given += answer_all(api, {**session, "item": state(api, session)["item"]})
        assert len(given) == 8                                   # 6 scored, 2 pretest
    finally:
        close_app(app)


# --- finishing, results, scoring --------------------------------------------------------

def test_finishing_early_scores_the_session(api):
    """Once the test's minimum length (5, CREDENTIAL_CONFIG) is answered; before it, the
    session finishes without an estimate (docs/API.md: one answer and a finish would
    tell that item's key)."""
    short = api.start()
    answer_all(api, short, limit=2)
    api.call("POST", f"/v1/sessions/{short['session_id']}/finish", api.delivery)
    unscored = result(api, short)
    assert unscored["status"] == "finished" and len(unscored["responses"]) == 2
    assert (unscored["theta"], unscored["se"], unscored["decision"]) == (None, None, None)
    assert [s["theta"] for s in unscored["standards"]] == [None, None, None]

    session = api.start()
    given = answer_all(api, session, limit=5)
    finished = api.call("POST", f"/v1/sessions/{session['session_id']}/finish", api.delivery)
    assert finished.status_code == 200
    assert finished.json == {"session_id": session["session_id"], "status": "finished",
                             "position": 5, "max_items": 12, "item": None}
    assert state(api, session) == finished.json
    again = api.call("POST", f"/v1/sessions/{session['session_id']}/finish", api.delivery)
    assert again.status_code == 200 and again.json == finished.json
    done = result(api, session)
    assert done["status"] == "finished"
    assert [(a["item_id"], a["response"]) for a in done["responses"]] == given
    # a test with a cut: an undecided early finish takes the side of theta
    assert done["decision"] == {"cut": 0.5, "pass": done["theta"] >= 0.5, "method": "sprt"}
    envelope(api.answer(session, *given[0][:1], "C"), 409)


def test_an_early_finish_above_the_cut_passes(api):
    """All answers right on a 0.5-cut test: theta well above the cut means a pass even when
    the SPRT has not decided yet."""
    keys = {}
    for code in ("AI-ML", "AI-DE", "AI-RAI"):
        keys.update(items_of(api, code))

    def right(item):
        key = keys[item["item_id"]]["key"]
        return key["correct"] if "correct" in key else max(key["scores"],
                                                           key=key["scores"].get)
    session = api.start()
    answer_all(api, session, choose=right, limit=5)
    assert api.call("POST", f"/v1/sessions/{session['session_id']}/finish",
                    api.delivery).status_code == 200
    done = result(api, session)
    assert done["theta"] > 0.5
    assert done["decision"] == {"cut": 0.5, "pass": True, "method": "sprt"}


def test_the_result_has_theta_se_levels_and_decision(api):
    credential, ml = api.start(), api.start("ml")
    for session in (credential, ml):
        answer_all(api, session, choose=lambda item: item["options"][1]["id"])
    for session, standards in ((credential, ["AI-ML", "AI-DE", "AI-RAI"]), (ml, ["AI-ML"])):
        done = result(api, session)
        assert set(done) == {"session_id", "status", "theta", "se", "standards", "decision",
                             "roles", "responses"}
        assert done["session_id"] == session["session_id"] and done["status"] == "finished"
        assert math.isfinite(done["theta"]) and 0 < done["se"] < 1
        assert [s["code"] for s in done["standards"]] == standards
        for entry in done["standards"]:
            assert set(entry) == {"code", "title", "theta", "se", "level"}
            # AI-DE has no levels of its own: it uses its parent AI's (FORMATS.md)
            levels = {"AI-ML": ML_LEVELS, "AI-DE": AI_LEVELS,
                      "AI-RAI": [("foundational", -0.5), ("proficient", 0.6),
                                 ("advanced", 1.6)]}[entry["code"]]
            assert entry["level"] == level(entry["theta"], levels)
            assert 0 < entry["se"] <= 1.0001
        for entry in done["responses"]:
            assert set(entry) == {"item_id", "response", "score"}
            assert entry["score"] is None                  # it would tell the item's key
        assert [item_id for item_id, _ in stored_scores(api, session)] == \
            [entry["item_id"] for entry in done["responses"]]
    assert result(api, ml)["decision"] is None
    decision = result(api, credential)["decision"]
    assert set(decision) == {"cut", "pass", "method"}
    assert decision["cut"] == 0.5 and decision["method"] == "sprt"
    assert isinstance(decision["pass"], bool)
    # an active session's result is the estimate so far
    active = api.start("ml")
    assert result(api, active)["status"] == "active"
    assert result(api, active)["responses"] == []


def test_levels_follow_the_cuts(api):
    """A standard's own levels, its parent's when it has none, null below the first cut."""
    add_standard(api, "LV", [("low", -0.2), ("high", 0.9)])
    add_standard(api, "LV-CHILD", parent="LV")
    items = [poly_item(f"LV-{i}", "LV-CHILD", b=(-1.5 + i / 4, -0.5 + i / 4))
             for i in range(10)]
    assert api.call("POST", "/v1/items", api.admin, json=items).status_code == 201
    seen = set()
    for scores in ([0] * 10, [1] * 10, [2] * 10, [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]):
        body = {"responses": [{"item_id": f"LV-{i}", "response": r}
                              for i, r in enumerate(scores)]}
        scored = api.call("POST", "/v1/score", api.delivery, json=body)
        assert scored.status_code == 200
        assert set(scored.json) == {"theta", "se", "standards"}
        theta = scored.json["theta"]
        assert theta == pytest.approx(eap([(f"LV-{i}", r) for i, r in enumerate(scores)],
                                          {i["id"]: i for i in items}), abs=ROUNDED)
        expected = level(theta, [("low", -0.2), ("high", 0.9)])
        assert scored.json["standards"] == [{"code": "LV-CHILD", "theta": theta,
                                             "se": scored.json["se"], "level": expected}]
        seen.add(expected)
    assert seen == {None, "low", "high"}


def test_score_without_a_session(api):
    """Item scores (not options) of at least 10 operational items; a standard with fewer
    has no estimate of its own; θ and SE rounded to 0.1 (docs/API.md, /v1/score)."""
    ml = items_of(api, "AI-ML")
    operational = [i for i in ml if ml[i]["status"] == "operational" and ml[i]["model"] == "2pl"]
    scores = [(item_id, n % 2) for n, item_id in enumerate(operational[:10])] + [("ML-056", 2)]
    body = {"responses": [{"item_id": i, "response": r} for i, r in scores]
            + [{"item_id": "DE-001", "response": 1}]}
    scored = api.call("POST", "/v1/score", api.delivery, json=body)
    assert scored.status_code == 200, scored.json
    standards = {s["code"]: s for s in scored.json["standards"]}
    assert list(standards) == ["AI-ML", "AI-DE"]
    assert standards["AI-ML"]["theta"] == pytest.approx(eap(scores, ml), abs=ROUNDED)
    assert round(standards["AI-ML"]["theta"], 1) == standards["AI-ML"]["theta"]
    assert standards["AI-ML"]["level"] == level(standards["AI-ML"]["theta"], ML_LEVELS)
    assert standards["AI-DE"] == {"code": "AI-DE", "theta": None, "se": None, "level": None}
    for method in ("map", "ml", "wle"):
        other = api.call("POST", "/v1/score", api.delivery, json={**body, "method": method})
        assert other.status_code == 200 and set(other.json) == {"theta", "se", "standards"}

    def refused(replace_first, status):
        first = dict(zip(("item_id", "response"), replace_first, strict=True))
        return envelope(api.call("POST", "/v1/score", api.delivery,
                                 json={"responses": [first] + body["responses"][1:]}), status)

    # a pretest item is scored like any other (with the placeholder it is delivered
    # under): a refusal would tell a delivery key which items its sessions got are pretest
    with_pretest = api.call("POST", "/v1/score", api.delivery, json={
        "responses": [{"item_id": "ML-012", "response": 1}] + body["responses"][1:]})
    assert with_pretest.status_code == 200
    refused(("NO-SUCH", 1), 422)
    refused((operational[0], 2), 422)                     # not a score of a 2PL item
    refused((operational[0], "A"), 400)                   # an option: never taken here
    refused((operational[1], 1), 422)                     # the same item twice
    envelope(api.call("POST", "/v1/score", api.delivery,
                      json={"responses": body["responses"][:9]}), 400)    # fewer than 10
    envelope(api.call("POST", "/v1/score", api.delivery, json={**body, "method": "bogus"}),
             400, "validation_error")
    envelope(api.call("POST", "/v1/score", api.delivery, json={"responses": []}), 400)


# --- the response log, simulations ------------------------------------------------------

def test_the_response_log_is_long_csv(api):
    sessions = [api.start(), api.start("ml")]
    given = {s["session_id"]: answer_all(api, s, limit=3) for s in sessions}
    items = {}
    for code in ("AI-ML", "AI-DE", "AI-RAI"):
        items.update(items_of(api, code))
    response = api.call("GET", "/v1/responses", api.admin)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(True))))
    assert rows[0] == ["person_id", "item_id", "response"]
    expected = [[sid, item_id, str(score_of(items[item_id], r))]
                for sid, answers in given.items() for item_id, r in answers]
    assert sorted(rows[1:]) == sorted(expected)
    only_ml = api.call("GET", "/v1/responses?standard=AI-ML", api.admin)
    ml_rows = list(csv.reader(io.StringIO(only_ml.get_data(True))))[1:]
    assert sorted(ml_rows) == sorted(r for r in expected if r[1].startswith("ML-"))
    envelope(api.call("GET", "/v1/responses?standard=NOPE", api.admin), 404)


def test_a_simulation_reports_as_formats_says(api):
    response = api.call("POST", "/v1/simulations", api.admin,
                        json={"test_id": "credential", "examinees": 40, "seed": 7})
    assert response.status_code == 200
    report = response.json
    assert SIMULATION_KEYS | {"classification"} <= set(report)
    assert report["examinees"] == 40 and report["seed"] == 7
    assert set(report["exposure"]) >= {"max", "mean", "unused_share"}
    assert {"accuracy", "mean_length"} <= set(report["classification"])
    assert 5 <= report["mean_length"] <= 12
    assert 0 < report["rmse"] < 1.5
    assert sum(row["n"] for row in report["conditional"]) == 40
    for row in report["conditional"]:
        assert {"theta", "n", "rmse", "bias"} <= set(row)
    same = api.call("POST", "/v1/simulations", api.admin,
                    json={"test_id": "credential", "examinees": 40, "seed": 7}).json
    assert {k: v for k, v in same.items() if k != "seconds"} == \
        {k: v for k, v in report.items() if k != "seconds"}
    no_cut = api.call("POST", "/v1/simulations", api.admin, json={"test_id": "ml",
                                                                    "examinees": 5}).json
    assert SIMULATION_KEYS <= set(no_cut) and "classification" not in no_cut
    assert no_cut["seed"] == 1 and no_cut["examinees"] == 5
    envelope(api.call("POST", "/v1/simulations", api.admin, json={"test_id": "nope"}), 404)
    envelope(api.call("POST", "/v1/simulations", api.admin,
                      json={"test_id": "ml", "examinees": 0}), 400, "validation_error")


# --- calibrations -----------------------------------------------------------------------

def _calibration_data(rng, n_persons=400):
    a = np.array([0.8, 1.0, 1.2, 1.5, 0.9, 1.1])
    b = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 0.2])
    theta = rng.normal(size=n_persons)
    p = 1 / (1 + np.exp(-a * (theta[:, None] - b)))
    return (rng.random(p.shape) < p).astype(int)


def test_calibrations_from_an_upload_and_from_the_log_are_published(api, rng):
    from irtcat.itembank import ResponseLog

    add_standard(api, "CAL", parent="AI")
    items = [{"id": f"CAL-{i}", "standard": "CAL", "model": "2pl", "status": "operational",
              "content": {"stem": f"Question {i}", "options": [
                  {"id": "A", "text": "yes"}, {"id": "B", "text": "no"}]},
              "key": {"correct": "A"}} for i in range(6)]
    posted = api.call("POST", "/v1/items", api.admin, json=items)
    assert posted.json == {"created": 6, "updated": 0, "unchanged": 0, "versions": []}
    add_test(api, "cal", ["CAL"], {"stop": {"min_items": 3, "max_items": 3}})
    envelope(api.call("POST", "/v1/sessions", api.delivery,
                      json={"test_id": "cal", "learner_id": "x"}), 404)   # nothing published

    x = _calibration_data(rng)
    rows = [{"person_id": f"p{n}", "item_id": f"CAL-{i}", "response": int(x[n, i])}
            for n in range(x.shape[0]) for i in range(6)]
    started = api.call("POST", "/v1/calibrations", api.admin,
                       json={"standard": "CAL", "model": "2pl", "source": "upload",
                             "data": rows})
    assert started.status_code == 202
    assert set(started.json) == {"id", "status"} and started.json["status"] == "queued"
    run = wait_for(api, started.json["id"])
    assert run["status"] == "done", run
    assert run["standard"] == "CAL" and run["n_responses"] == x.size
    document = run["result"]
    assert document["format"] == "irtcat-bank/1"
    assert {item["id"] for item in document["items"]} == {i["id"] for i in items}
    for item in document["items"]:
        assert {"a", "b", "fit"} <= set(item)
    assert "a" not in items_of(api, "CAL")["CAL-0"]                  # a draft until published
    # the psychometrician's report of the run: the same page `irtcat report` makes
    page = api.call("GET", f"/v1/calibrations/{run['id']}/report", api.admin)
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(True)
    for item in document["items"]:
        assert f'data-item="{item["id"]}"' in text
        assert f"{item['a']:.4f}" in text
    assert text.count("<img ") >= 3 and "http://" not in text and "https://" not in text
    published = api.call("POST", f"/v1/calibrations/{run['id']}/publish", api.admin)
    assert published.status_code == 200
    assert published.json["standard"] == "CAL" and published.json["current"] is True
    assert published.json["version"] == run["version"]
    calibrated = {item["id"]: item for item in document["items"]}
    for item_id, item in items_of(api, "CAL").items():
        assert item["a"] == pytest.approx(calibrated[item_id]["a"])
        assert item["b"] == pytest.approx(calibrated[item_id]["b"])
    assert api.start("cal")["item"]["item_id"].startswith("CAL-")   # live for new sessions

    # from the stored response log
    x = _calibration_data(rng)
    api.store.import_response_log(ResponseLog(
        [f"hist{n}" for n in range(x.shape[0])], [f"CAL-{i}" for i in range(6)],
        np.repeat(np.arange(x.shape[0]), 6).astype(np.int32),
        np.tile(np.arange(6), x.shape[0]).astype(np.int32), x.ravel().astype(float)))
    started = api.call("POST", "/v1/calibrations", api.admin,
                       json={"standard": "CAL", "source": "log", "m_step": "newton"})
    assert started.status_code == 202
    run = wait_for(api, started.json["id"])
    assert run["status"] == "done" and run["source"] == "log", run
    assert run["result"]["calibration"]["m_step"] == "newton"
    assert run["n_responses"] == x.size
    assert run["version"] == published.json["version"] + 1
    republished = api.call("POST", f"/v1/calibrations/{run['id']}/publish", api.admin).json
    assert republished["version"] == run["version"] and republished["current"] is True
    calibrated = {item["id"]: item for item in run["result"]["items"]}
    assert items_of(api, "CAL")["CAL-3"]["a"] == pytest.approx(calibrated["CAL-3"]["a"])


def test_a_failed_calibration_cannot_be_published(api):
    rows = [{"person_id": f"p{n}", "item_id": "NOT-IN-AI-DE", "response": n % 2}
            for n in range(10)]
    started = api.call("POST", "/v1/calibrations", api.admin,
                       json={"standard": "AI-DE", "source": "upload", "data": rows})
    assert started.status_code == 202
    run = wait_for(api, started.json["id"])
    assert run["status"] == "failed" and run["error"]
    envelope(api.call("POST", f"/v1/calibrations/{run['id']}/publish", api.admin), 409,
             "conflict")
    envelope(api.call("GET", f"/v1/calibrations/{run['id']}/report", api.admin), 409,
             "conflict")
    for path in ("/v1/calibrations/424242", "/v1/calibrations/424242/publish"):
        envelope(api.call("GET" if path.endswith("2") else "POST", path, api.admin), 404)
    for body in ({"standard": "AI-DE", "source": "upload"},
                 {"standard": "AI-DE", "source": "log", "data": rows},
                 {"standard": "AI-DE", "source": "web"},
                 {"standard": "AI-DE", "model": "9pl"},
                 {"standard": "AI-DE", "m_step": "nlminb"}):
        envelope(api.call("POST", "/v1/calibrations", api.admin, json=body), 400,
                 "validation_error")
    envelope(api.call("POST", "/v1/calibrations", api.admin,
                      json={"standard": "NOPE", "source": "log"}), 404)


# --- standards, items, tests ------------------------------------------------------------

def test_standards_are_created_read_and_replaced(api):
    listed = api.call("GET", "/v1/standards", api.admin).json
    assert [s["code"] for s in listed] == ["AI", "AI-DE", "AI-ML", "AI-RAI"]
    assert listed[2]["levels"] == [{"name": n, "cut": c} for n, c in ML_LEVELS]
    created = add_standard(api, "NEW", [("pass", 0.0)], parent="AI")
    assert created == {"code": "NEW", "title": "NEW title", "description": "",
                       "parent": "AI", "levels": [{"name": "pass", "cut": 0.0}]}
    assert api.call("GET", "/v1/standards/NEW", api.admin).json == created
    replaced = api.call("PUT", "/v1/standards/NEW", api.admin,
                        json={"title": "Renamed", "levels": [{"name": "x", "cut": 1}]})
    assert replaced.status_code == 200
    assert replaced.json == {"code": "NEW", "title": "Renamed", "description": "",
                             "parent": None, "levels": [{"name": "x", "cut": 1.0}]}
    assert api.call("GET", "/v1/standards/NEW", api.admin).json == replaced.json
    envelope(api.call("GET", "/v1/standards/NOPE", api.admin), 404, "not_found")
    # A well-formed body that contradicts the store, or the URL, is a conflict (409, as
    # RFC 9110 suggests for a PUT inconsistent with its target); a malformed one is 400.
    envelope(api.call("PUT", "/v1/standards/NEW", api.admin, json={"code": "OTHER"}), 409,
             "conflict")
    for body in ({"code": "BAD", "parent": "NOPE"}, {"code": "BAD", "parent": "BAD"}):
        envelope(api.call("POST", "/v1/standards", api.admin, json=body), 409, "conflict")
    envelope(api.call("PUT", "/v1/standards/NEW", api.admin, json={"parent": "NEW"}), 409,
             "conflict")
    # cuts out of order: a rule the document cannot state (422); no code: one it states
    envelope(api.call("POST", "/v1/standards", api.admin, json={
        "code": "BAD", "levels": [{"name": "a", "cut": 1}, {"name": "b", "cut": 0}]}),
        422, "validation_error")
    envelope(api.call("POST", "/v1/standards", api.admin, json={"title": "no code"}), 400,
             "validation_error")
    assert api.call("GET", "/v1/standards/BAD", api.admin).status_code == 404


def test_items_one_a_list_or_a_bank_document(api):
    add_standard(api, "IT")
    content = {"stem": "Pick A", "options": [{"id": "A", "text": "a"},
                                             {"id": "B", "text": "b"}]}
    one = {"id": "IT-1", "standard": "IT", "model": "2pl", "status": "pretest",
           "content": content, "key": {"correct": "A"}, "tags": ["t"], "note": "kept"}
    reply = api.call("POST", "/v1/items", api.admin, json=one)
    assert reply.status_code == 201
    assert reply.json == {"created": 1, "updated": 0, "unchanged": 0, "versions": []}
    assert api.call("GET", "/v1/items/IT-1", api.admin).json == one
    two = [{**one, "id": "IT-2", "a": 1.2, "b": 0.3, "status": "operational"},
           {**one, "id": "IT-3", "model": "3pl", "a": 0.9, "b": -0.2, "c": 0.2,
            "status": "operational", "enemies": ["IT-2"]}]
    reply = api.call("POST", "/v1/items", api.admin, json=two)
    assert reply.json == {"created": 2, "updated": 0, "unchanged": 0,
                          "versions": [{"standard": "IT", "version": 1}]}
    document = {"format": "irtcat-bank/1", "metric": "logistic",
                "population": {"mean": 0.0, "sd": 1.0},
                "items": [{**one, "id": "IT-4", "model": "grm", "a": 1.0, "b": [-1.0, 1.0],
                           "content": {"stem": "s", "options": OPTIONS3},
                           "key": {"scores": POLY_SCORES}, "status": "operational"},
                          {**two[0], "b": 0.5}]}
    reply = api.call("POST", "/v1/items", api.admin, json=document)
    assert reply.json == {"created": 1, "updated": 1, "unchanged": 0,
                          "versions": [{"standard": "IT", "version": 2}]}
    again = api.call("POST", "/v1/items", api.admin, json=document)
    assert again.json == {"created": 0, "updated": 0, "unchanged": 2, "versions": []}
    listed = api.call("GET", "/v1/items?standard=IT", api.admin).json
    assert [i["id"] for i in listed] == ["IT-1", "IT-2", "IT-3", "IT-4"]
    assert listed[1]["b"] == 0.5 and listed[2]["c"] == 0.2 and listed[2]["enemies"] == ["IT-2"]
    assert listed[3]["key"] == {"scores": POLY_SCORES} and "a" not in listed[0]
    assert len(api.call("GET", "/v1/items", api.admin).json) == 165 + 4

    put = api.call("PUT", "/v1/items/IT-1", api.admin, json={**one, "tags": ["u"],
                                                              "a": 0.7, "b": 1.1})
    assert put.status_code == 200
    assert put.json == {**one, "tags": ["u"], "a": 0.7, "b": 1.1}
    envelope(api.call("PUT", "/v1/items/IT-1", api.admin, json={**one, "id": "IT-9"}), 409,
             "conflict")
    envelope(api.call("PUT", "/v1/items/IT-9", api.admin, json={**one, "id": "IT-9"}), 404)
    envelope(api.call("GET", "/v1/items/IT-9", api.admin), 404, "not_found")
    envelope(api.call("GET", "/v1/items?standard=NOPE", api.admin), 404)
    for bad in ({**one, "model": "9pl"}, {**one, "id": "IT-5", "a": -1, "b": 0},
                {"format": "irtcat-bank/2", "items": [one]}, [],
                {**one, "se": "not an object"}):
        envelope(api.call("POST", "/v1/items", api.admin, json=bad), 400, "validation_error")
    # rules the document cannot state: a key among the item's options, an id once
    for bad in ({**one, "key": {"correct": "Z"}}, [one, one]):
        envelope(api.call("POST", "/v1/items", api.admin, json=bad), 422, "validation_error")
    for unknown in ({**one, "standard": "NOPE"}, {**one, "enemies": ["NOPE"]}):
        envelope(api.call("POST", "/v1/items", api.admin, json=unknown), 409, "conflict")
    assert api.call("GET", "/v1/items/IT-1", api.admin).json == put.json
    assert api.call("GET", "/v1/items/IT-5", api.admin).status_code == 404


def test_tests_are_created_and_read(api):
    listed = api.call("GET", "/v1/tests", api.admin).json
    assert [t["id"] for t in listed] == ["credential", "ml", "open"]
    assert [(t["public"], t["feedback"]) for t in listed] == [(False, False), (False, False),
                                                              (True, True)]
    made = api.call("POST", "/v1/tests", api.admin,
                    json={"title": "No id", "standards": ["AI-RAI"]})
    assert made.status_code == 201
    assert made.json["id"] and made.json["standards"] == ["AI-RAI"]
    assert made.json["config"] == {}
    assert api.call("GET", f"/v1/tests/{made.json['id']}", api.admin).json == made.json
    assert api.start(made.json["id"])["item"]["item_id"].startswith("RAI-")
    credential = api.call("GET", "/v1/tests/credential", api.admin).json
    assert credential["standards"] == ["AI-ML", "AI-DE", "AI-RAI"]
    assert credential["config"]["stop"]["classification"] == {"cut": 0.5}
    envelope(api.call("GET", "/v1/tests/nope", api.admin), 404, "not_found")
    envelope(api.call("POST", "/v1/tests", api.admin,
                      json={"id": "ml", "standards": ["AI-ML"]}), 409, "conflict")
    envelope(api.call("POST", "/v1/tests", api.admin, json={"standards": ["NOPE"]}), 404)
    for body in ({"standards": []}, {"standards": "AI-ML"}, {"id": "x"}):
        envelope(api.call("POST", "/v1/tests", api.admin, json=body), 400, "validation_error")
    # the CAT configuration is an object to the document; its rules are FORMATS.md's (422)
    for config in ({"stop": {"max_items": 0}}, {"selection": {"method": "best"}},
                   {"unknown": 1}):
        envelope(api.call("POST", "/v1/tests", api.admin,
                          json={"standards": ["AI-ML"], "config": config}),
                 422, "validation_error")
    assert len(api.call("GET", "/v1/tests", api.admin).json) == 4      # the 3 + "No id"
    envelope(api.call("POST", "/v1/sessions", api.delivery,
                      json={"test_id": "nope", "learner_id": "x"}), 404)


def test_health(api):
    response = api.call("GET", "/v1/health")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["database"] == "reachable"


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/sessions/s_nope"), ("POST", "/v1/sessions/s_nope/finish"),
    ("GET", "/v1/sessions/s_nope/result"), ("GET", "/v1/nothing"), ("GET", "/nothing"),
    ("DELETE", "/v1/standards/AI"), ("PATCH", "/v1/tests/ml"), ("GET", "/v1/score")])
def test_unknown_routes_ids_and_methods_have_the_envelope(api, method, path):
    response = api.call(method, path, api.delivery if "sessions" in path else api.admin)
    status = 405 if method in ("DELETE", "PATCH") or path == "/v1/score" else 404
    envelope(response, status, {404: "not_found", 405: "method_not_allowed"}[status])
    envelope(api.call("POST", "/v1/sessions/s_nope/responses", api.delivery,
                      json={"item_id": "ML-001", "response": "A"}), 404, "not_found")
