"""Nothing a learner's browser or a delivery platform receives holds an answer key or an
item parameter (spec/API.md: a token "never sees parameters, answer keys, θ ... or other
sessions"; ITEM is `{"item_id", "stem", "options", "position"}` "and nothing more").

Whole sessions run through the HTTP layer, with pretest and polytomous (GRM) items,
wrong answers, retries, errors, early finishes, results and scoring; every body sent
back to a session token or a delivery key is collected and walked."""

import pytest

ANSWER_KEYS = {"key", "correct", "scores"}
PARAMETERS = {"a", "b", "c", "u", "d", "slope_intercept", "se_slope_intercept", "fit",
              "anchor"}
ITEM_VIEW = {"item_id", "stem", "options", "position"}


def walk(value, path=()):
    """Every (path, name, value) of the mappings in a JSON value, at any depth."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield path + (name,), name, inner
            yield from walk(inner, path + (name,))
    elif isinstance(value, list):
        for position, inner in enumerate(value):
            yield from walk(inner, path + (position,))


class Recorder:
    """Wraps `api.call` to keep every JSON body sent to a token or a delivery key."""

    def __init__(self, api):
        self.api, self.call = api, api.call
        self.bodies = []                      # (who, method, path, status, body)
        api.call = self.record

    def record(self, method, path, key=None, **kwargs):
        response = self.call(method, path, key, **kwargs)
        if key is not None and key != self.api.admin:
            who = "delivery" if key == self.api.delivery else "token"
            body = response.get_json(silent=True)
            assert body is not None, (method, path, response.status_code)
            self.bodies.append((who, method, path, response.status_code, body))
        return response


def _secret_values(api):
    """Every item's parameters and key (the admin's view), to check values as well."""
    items = api.call("GET", "/v1/items", api.admin).json
    return {item["id"]: item for item in items}


def test_no_key_parameter_or_token_theta_leaks(api):
    bank = _secret_values(api)
    pretest = {i for i, item in bank.items() if item["status"] == "pretest"}
    polytomous = {i for i, item in bank.items() if item["model"] == "grm"}
    assert api.call("POST", "/v1/tests", api.admin, json={
        "id": "mixed", "standards": ["AI-ML", "AI-DE"],
        "config": {"stop": {"min_items": 8, "max_items": 10, "se": 0.2},
                   "pretest": {"count": 2},
                   "content": [{"tag": "generalization", "min": 1}]}}).status_code == 201
    recorder = Recorder(api)
    patterns = [lambda item, n: item["options"][0]["id"],
                lambda item, n: item["options"][-1]["id"],
                lambda item, n: item["options"][n % len(item["options"])]["id"],
                lambda item, n: _right(bank, item)]
    delivered = set()
    for number, (test_id, pattern) in enumerate(
            [(t, p) for t in ("credential", "mixed", "ml") for p in patterns]):
        session = api.start(test_id, f"learner-{number}")
        item, n = session["item"], 0
        while item is not None:
            delivered.add(item["item_id"])
            if n == 1:                                             # errors, to the token
                api.answer(session, item["item_id"], "not-an-option")
                api.answer(session, "ML-001" if item["item_id"] != "ML-001" else "ML-002",
                           "A")
                api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                         session["token"])
            reply = api.answer(session, item["item_id"], pattern(item, n))
            assert reply.status_code == 200
            api.answer(session, item["item_id"], pattern(item, n))    # a retry
            api.call("GET", f"/v1/sessions/{session['session_id']}", session["token"])
            if n == 2 and number % 4 == 3:
                api.call("POST", f"/v1/sessions/{session['session_id']}/finish",
                         api.delivery)
            item, n = api.call("GET", f"/v1/sessions/{session['session_id']}",
                               session["token"]).json["item"], n + 1
        api.call("GET", f"/v1/sessions/{session['session_id']}", api.delivery)
        api.call("GET", f"/v1/sessions/{session['session_id']}/result", api.delivery)
    scorable = [f"ML-{n:03d}" for n in range(1, 12) if n != 12] + ["ML-056"]
    api.call("POST", "/v1/score", api.delivery, json={"responses": [
        {"item_id": item_id, "response": n % 2} for n, item_id in enumerate(scorable)]})
    api.call("POST", "/v1/score", api.delivery, json={"responses": [
        {"item_id": item_id, "response": 1} for item_id in ["ML-012", *scorable]]})  # pretest
    api.call("GET", "/v1/sessions/s_nope", api.delivery)
    api.call("GET", "/v1/items/ML-001", api.delivery)               # 403

    # the sessions did reach what could leak
    assert delivered & pretest and delivered & polytomous
    statuses = {status for *_, status, _ in recorder.bodies}
    assert {200, 201, 403, 404, 409, 422} <= statuses

    for who, method, path, status, body in recorder.bodies:
        where = f"{who} {method} {path} {status}"
        for at, name, value in walk(body):
            assert name not in ANSWER_KEYS, (where, at)
            assert name not in PARAMETERS, (where, at)
            if name == "se":                          # only the SE of a theta, a number
                assert isinstance(value, (int, float, type(None))), (where, at)
                assert who == "delivery", (where, at)
            if who == "token":
                assert name != "theta", (where, at)
            if name == "item" and value is not None:
                assert set(value) == ITEM_VIEW, (where, value)
                for option in value["options"]:
                    assert set(option) == {"id", "text"}, (where, option)
                assert value["item_id"] in bank
    # a session's start (to the delivery key) and every token reply: nothing beyond state
    for who, method, path, status, body in recorder.bodies:
        if status < 300 and (who == "token" or path == "/v1/sessions"):
            allowed = {"session_id", "status", "position", "max_items", "item"} | (
                {"token", "token_expires_at", "deadline"} if path == "/v1/sessions" else set())
            assert set(body) == allowed, (who, method, path, body)


def _right(bank, item):
    key = bank[item["item_id"]].get("key") or {"correct": item["options"][0]["id"]}
    return key["correct"] if "correct" in key else max(key["scores"], key=key["scores"].get)


@pytest.mark.parametrize("role", ["token", "delivery"])
def test_error_bodies_carry_no_trace_of_the_server(api, role):
    """No traceback, SQL or file path: an internal error is the bare envelope."""
    session = api.start()
    key = session["token"] if role == "token" else api.delivery
    replies = [api.answer(session, session["item"]["item_id"], "Z", key=key),
               api.answer(session, "' OR 1=1 --", "A", key=key),
               api.call("GET", "/v1/sessions/%27%20OR%201%3D1%20--", key),
               api.call("POST", f"/v1/sessions/{session['session_id']}/responses", key,
                        data="{not json", content_type="application/json")]
    for reply in replies:
        assert 400 <= reply.status_code < 500
        text = reply.get_data(True)
        for trace in ("Traceback", "SELECT", "INSERT", "sqlalchemy", "psycopg", "sqlite",
                      ".py", "/work/", "File \""):
            assert trace not in text, (reply.status_code, text)


def test_a_learner_page_session_shows_its_result_and_nothing_more(api):
    """A public test with feedback (the learner page's): started without a key, answered
    with the token; the finished state carries θ, SE, levels and the decision, never an
    item's score, key or parameters, nor the answers."""
    listed = api.call("GET", "/v1/public/tests").json
    assert [test["id"] for test in listed] == ["open"]            # not ml nor credential
    assert set(listed[0]) == {"id", "title", "standards", "max_items"}
    assert api.call("POST", "/v1/public/sessions",
                    json={"test_id": "ml"}).status_code == 404    # not public
    recorder = Recorder(api)
    started = api.call("POST", "/v1/public/sessions", json={"test_id": "open"})
    assert started.status_code == 201
    session = started.json
    state = session
    while state["status"] == "active":
        assert "result" not in state
        state = api.answer(session, state["item"]["item_id"],
                           state["item"]["options"][0]["id"]).json
    assert state["position"] <= state["max_items"] == 6
    reread = api.call("GET", f"/v1/sessions/{session['session_id']}", session["token"]).json
    assert reread["result"] == state["result"]
    assert set(state["result"]) == {"theta", "se", "standards", "decision", "roles"}
    [standard] = state["result"]["standards"]
    assert standard["code"] == "AI-ML" and isinstance(standard["theta"], float)
    keyless = [("/v1/public/tests", listed), ("/v1/public/sessions", session)]
    for path, body in keyless + [(path, body) for *_, path, _s, body in recorder.bodies]:
        for at, name, _ in walk(body):
            assert name not in ANSWER_KEYS | PARAMETERS | {"responses", "score"}, (path, at)
            assert name != "theta" or at[0] == "result", (path, at)
    # the session belongs to no key: a delivery key may not read it
    assert api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                    api.delivery).status_code == 403
    # the learner's view agrees with the full result
    full = api.app.extensions["irtcat"]["delivery"].result(session["session_id"])
    assert full["theta"] == state["result"]["theta"]
    assert full["standards"] == state["result"]["standards"]
