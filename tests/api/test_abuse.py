"""The delivery service under abuse: the findings of the outside probe, replayed.

Each test names the finding it repeats (the issue "A delivery service that holds under
abuse"). Slow connections and oversized requests against a served process are in
test_slow_clients.py, quotas in test_quotas.py; these run in process.
"""

import threading
import time

import numpy as np
import pytest
from conftest import Api
from limits import parse
from scipy.optimize import least_squares

from irtcat.api.app import close_app, create_app
from irtcat.api.quotas import DEFAULTS
from irtcat.delivery.scoring import MIN_SCORED_ITEMS

# The attacker's budget: a delivery key's day of /v1/score calls.
SCORE_CALLS_A_DAY = parse(DEFAULTS["score"]).amount
assert parse(DEFAULTS["score"]).get_expiry() == 86400
NODES = np.linspace(-6.0, 6.0, 121)


def envelope(response, status):
    """The JSON error envelope (spec/API.md) with `status`; returns its "error"."""
    assert response.status_code == status, (response.status_code, response.get_data(True))
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def _bank(api, standard="AI-ML"):
    """The items of `standard` as the admin sees them: the truth the attacker is after."""
    return api.call("GET", f"/v1/items?standard={standard}", api.admin).json


def _two_pl_items(api, count=MIN_SCORED_ITEMS):
    """The first `count` operational 2PL items of AI-ML, with their parameters."""
    return [item for item in _bank(api)
            if item["status"] == "operational" and item["model"] == "2pl"][:count]


def _probe(api, ids, patterns):
    """Score each pattern through the API; returns (theta, se) arrays as replied."""
    replies = []
    for pattern in patterns:
        reply = api.call("POST", "/v1/score", api.delivery, json={"responses": [
            {"item_id": item_id, "response": int(score)}
            for item_id, score in zip(ids, pattern, strict=True)]})
        assert reply.status_code == 200, reply.json
        replies.append((reply.json["theta"], reply.json["se"]))
    return np.array(replies, dtype=float)


def _differences_design(n_items, calls, rng):
    """Two-answer differences: pairs of patterns that differ in one item only, the item
    changing from pair to pair, over random answers to the others."""
    patterns = []
    for pair in range(calls // 2):
        base = rng.integers(0, 2, n_items)
        for score in (0, 1):
            pattern = base.copy()
            pattern[pair % n_items] = score
            patterns.append(pattern)
    return np.array(patterns)


def _posterior(patterns, a, b):
    """EAP and posterior SD of each pattern under N(0, 1) on NODES (FORMATS.md's 2PL)."""
    z = a[:, None] * (NODES[None, :] - b[:, None])
    log_like = patterns @ -np.logaddexp(0, -z) + (1 - patterns) @ -np.logaddexp(0, z)
    log_post = log_like - 0.5 * NODES**2
    weights = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    mean = weights @ NODES
    return mean, np.sqrt(np.maximum(weights @ NODES**2 - mean**2, 0.0))


def _fit(patterns, observed, use_se, rng):
    """The attacker's best fit of every item's a and b to the replies: least squares over
    the EAP (and the SE when `use_se`), slopes kept in [0.3, 3], best of 5 starts."""
    n = patterns.shape[1]
    theta = observed[:, 0]

    def residuals(x):
        mean, sd = _posterior(patterns, np.exp(x[:n]), x[n:])
        parts = [mean - theta] + ([sd - observed[:, 1]] if use_se else [])
        return np.concatenate(parts)

    bounds = ([np.log(0.3)] * n + [-4.0] * n, [np.log(3.0)] * n + [4.0] * n)
    best = None
    for _ in range(5):
        start = np.concatenate([np.log(1.2) + rng.normal(0, 0.2, n), rng.normal(0, 0.5, n)])
        fit = least_squares(residuals, start, bounds=bounds)
        if best is None or fit.cost < best.cost:
            best = fit
    return np.exp(best.x[:n]), best.x[n:]


def _recovered(estimate, truth):
    return int(np.sum(np.abs(estimate - truth) < 0.1))


def test_options_on_the_score_route_tell_no_key(api):
    """Finding 1: one item scored with each option in turn told its key (one of four θ
    differed). Options are refused now, every one alike."""
    items = _two_pl_items(api)
    others = [{"item_id": item["id"], "response": 1} for item in items[1:]]
    replies = []
    for option in "ABCD":
        reply = api.call("POST", "/v1/score", api.delivery, json={"responses": [
            {"item_id": items[0]["id"], "response": option}, *others]})
        replies.append((reply.status_code, reply.get_data()))
    assert len(set(replies)) == 1                         # nothing tells the key apart
    envelope(api.call("POST", "/v1/score", api.delivery, json={"responses": [
        {"item_id": items[0]["id"], "response": "A"}, *others]}), 400)


def test_a_result_tells_no_item_its_key(api):
    """Finding 1, by the session route: a result's answers carried their scores, so each
    session told its delivery key the key of every item answered."""
    for option in "ABCD":
        session = api.start("ml", f"oracle-{option}")
        assert api.answer(session, session["item"]["item_id"], option).status_code == 200
        finished = api.call("POST", f"/v1/sessions/{session['session_id']}/finish",
                            api.delivery)
        assert finished.status_code == 200
        result = api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                          api.delivery).json
        assert [answer["score"] for answer in result["responses"]] == [None]


def test_two_answer_differences_recover_no_parameter_within_a_days_quota(api, database_url):
    """Finding 1: solving two EAP values gave each 2PL item's a and b to three decimals.

    The attacker spends a day's quota of /v1/score calls on pairs of score patterns that
    differ in one item, then fits all ten items' a and b to the replies. Against the
    replies as the route gives them (θ to 0.1, no SE) the fit must recover no more items
    within 0.1 than a guess that knows only the bank's typical values (a = 1.2, b = 0).
    The same attack against the posterior SD the route used to return (computed here)
    recovers the slopes: the test can fail."""
    if database_url.startswith("postgresql"):
        # /v1/score stores nothing: what the replies tell does not depend on the back end
        pytest.skip("scoring without a session reads the bank only: SQLite's run covers it")
    rng = np.random.default_rng(20261204)
    items = _two_pl_items(api)
    ids = [item["id"] for item in items]
    a = np.array([item["a"] for item in items])
    b = np.array([item["b"] for item in items])
    patterns = _differences_design(len(items), SCORE_CALLS_A_DAY, rng)

    replies = _probe(api, ids, patterns)
    assert np.all(np.isnan(replies[:, 1]))                             # no SE
    assert np.allclose(replies[:, 0], np.round(replies[:, 0], 1))      # θ to 0.1
    a_fit, b_fit = _fit(patterns, replies, use_se=False, rng=rng)
    guessed_a, guessed_b = _recovered(np.full(a.size, 1.2), a), _recovered(np.zeros(b.size), b)
    assert _recovered(a_fit, a) <= guessed_a, (np.round(a_fit - a, 3), guessed_a)
    assert _recovered(b_fit, b) <= guessed_b, (np.round(b_fit - b, 3), guessed_b)

    # The control: what the route used to reply (EAP and posterior SD, to 4 decimals).
    mean, sd = _posterior(patterns, a, b)
    old_replies = np.column_stack([np.round(mean, 4), np.round(sd, 4)])
    a_old, _ = _fit(patterns, old_replies, use_se=True, rng=rng)
    assert _recovered(a_old, a) == a.size > guessed_a


def _start_one_of(api, min_items=5, **test):
    """Start a session of a new AI-ML test with the fields `test` (seconds, pools)."""
    body = {"id": f"t-{min_items}-" + "-".join(test), "standards": ["AI-ML"],
            "config": {"stop": {"min_items": min_items, "max_items": 10}}, **test}
    assert api.call("POST", "/v1/tests", api.admin, json=body).status_code == 201
    return api.start(body["id"])


def test_an_expired_token_is_refused_with_a_clear_code(api):
    """Finding 5: tokens never expired."""
    session = _start_one_of(api, token_ttl=1)
    path = f"/v1/sessions/{session['session_id']}"
    assert api.call("GET", path, session["token"]).status_code == 200
    time.sleep(1.1)
    assert envelope(api.call("GET", path, session["token"]), 401)["code"] == "token_expired"
    refused = api.answer(session, session["item"]["item_id"], "A")
    assert envelope(refused, 401)["code"] == "token_expired"
    assert api.call("GET", path, api.delivery).json["position"] == 1    # nothing changed


def test_a_finished_sessions_token_only_reads_it_for_a_while(api):
    """Finding 5: after finish, the token still read the session for good."""
    session = _start_one_of(api, finished_token_ttl=1)
    path = f"/v1/sessions/{session['session_id']}"
    assert api.call("POST", f"{path}/finish", api.delivery).status_code == 200
    assert api.call("GET", path, session["token"]).json["status"] == "finished"
    envelope(api.answer(session, session["item"]["item_id"], "A"), 409)   # reads only
    time.sleep(1.1)
    assert envelope(api.call("GET", path, session["token"]), 401)["code"] == "token_expired"
    # nor by repeating an answer, which replies with the session's state
    assert envelope(api.answer(session, session["item"]["item_id"], "A"), 401)["code"] \
        == "token_expired"
    assert api.call("GET", f"{path}/result", api.delivery).status_code == 200


def test_the_time_limit_finishes_the_session_on_what_was_answered(api):
    """Deliverable 4: an answer after the time limit is refused and the session finished,
    scored on the answers given (mirtCAT's max_time)."""
    session = _start_one_of(api, min_items=1, time_limit=1)
    assert session["deadline"] is not None
    first = api.answer(session, session["item"]["item_id"], "A")
    assert first.status_code == 200 and first.json["status"] == "active"
    time.sleep(1.1)
    late = api.answer(session, first.json["item"]["item_id"], "A")
    assert envelope(late, 409)["code"] == "time_limit"
    result = api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                      api.delivery).json
    assert result["status"] == "finished"
    assert [answer["item_id"] for answer in result["responses"]] == \
        [session["item"]["item_id"]]
    assert result["theta"] is not None          # one answer reaches this test's minimum
    # below the minimum, an end by the time limit gives no estimate, as a finish does
    short = _start_one_of(api, time_limit=1)
    assert api.answer(short, short["item"]["item_id"], "A").status_code == 200
    time.sleep(1.1)
    ended = api.call("GET", f"/v1/sessions/{short['session_id']}/result", api.delivery).json
    assert ended["status"] == "finished" and ended["theta"] is None


def test_public_tests_show_practice_items_only(api):
    """Finding 3: 40 anonymous sessions of the public credential showed 56 of its 153
    operational items. A public test draws only items tagged practice; the others never
    draw them."""
    practice = {item["id"] for code in ("AI-ML", "AI-DE", "AI-RAI")
                for item in _bank(api, code) if "practice" in item.get("tags", [])}
    seen_public, seen_credential = set(), set()
    for number in range(15):
        started = api.call("POST", "/v1/public/sessions", json={"test_id": "open"})
        assert started.status_code == 201
        session, item = started.json, started.json["item"]
        while item is not None:
            seen_public.add(item["item_id"])
            item = api.answer(session, item["item_id"], item["options"][0]["id"]).json["item"]
        keyed = api.start("credential", f"learner-{number}")
        seen_credential.add(keyed["item"]["item_id"])
    assert seen_public and seen_public <= practice
    assert not seen_credential & practice


def test_owner_may_open_all_items_to_a_public_test_explicitly(api):
    body = {"id": "open-all", "standards": ["AI-ML"], "config": {"stop": {"max_items": 6}},
            "public": True, "public_pool": "all"}
    created = api.call("POST", "/v1/tests", api.admin, json=body)
    assert created.status_code == 201 and created.json["public_pool"] == "all"
    envelope(api.call("POST", "/v1/tests", api.admin,
                      json={**body, "id": "bad", "public_pool": "everything"}), 400)


@pytest.mark.parametrize("path", ["/v1/health", "/v1/public/tests", "/v1/nope"])
def test_api_responses_are_never_stored_and_never_sniffed(api, path):
    """Finding 7: no Cache-Control: no-store on responses that carry tokens, no nosniff."""
    response = api.call("GET", path)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    started = api.call("POST", "/v1/public/sessions", json={"test_id": "open"})
    assert started.headers["Cache-Control"] == "no-store"


def test_405_says_which_methods_the_route_takes(api):
    """Finding 8: 405 had no Allow."""
    response = api.call("DELETE", "/v1/standards", api.admin)
    envelope(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_racing_imports_with_the_same_etag_let_one_win_and_refuse_the_other(api):
    """Finding 9: two racing bank imports both returned 201 and the last won. With the
    ETag of what each read in If-Match, one import lands and the other is 412."""
    listed = api.call("GET", "/v1/items?standard=AI-ML", api.admin)
    tag = listed.headers["ETag"]
    base = next(item for item in listed.json if item["id"] == "ML-001")
    bodies = [[{**base, "content": {**base["content"], "stem": f"Edited by writer {n}"}}]
              for n in range(2)]
    statuses = [None, None]
    barrier = threading.Barrier(2)

    def write(n):
        barrier.wait()
        statuses[n] = api.call("POST", "/v1/items", api.admin, json=bodies[n],
                               headers={"If-Match": tag}).status_code

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 412]
    winner = statuses.index(201)
    stem = api.call("GET", "/v1/items/ML-001", api.admin).json["content"]["stem"]
    assert stem == f"Edited by writer {winner}"
    assert api.call("GET", "/v1/items?standard=AI-ML", api.admin).headers["ETag"] != tag


def test_a_stale_etag_is_412_and_changes_nothing(api):
    read = api.call("GET", "/v1/standards/AI-ML", api.admin)
    old_tag, standard = read.headers["ETag"], read.json
    first = api.call("PUT", "/v1/standards/AI-ML", api.admin,
                     json={**standard, "title": "First edit"}, headers={"If-Match": old_tag})
    assert first.status_code == 200 and first.headers["ETag"] != old_tag
    stale = api.call("PUT", "/v1/standards/AI-ML", api.admin,
                     json={**standard, "title": "Second edit"}, headers={"If-Match": old_tag})
    assert envelope(stale, 412)["code"] == "precondition_failed"
    assert api.call("GET", "/v1/standards/AI-ML", api.admin).json["title"] == "First edit"
    item = api.call("GET", "/v1/items/ML-002", api.admin)
    changed = {**item.json, "tags": ["edited"]}
    assert api.call("PUT", "/v1/items/ML-002", api.admin, json=changed,
                    headers={"If-Match": item.headers["ETag"]}).status_code == 200
    envelope(api.call("PUT", "/v1/items/ML-002", api.admin, json=item.json,
                      headers={"If-Match": item.headers["ETag"]}), 412)
    # an unquoted tag is read as if quoted (and names no version here); so is a list of none
    for header in ("not-quoted", item.headers["ETag"].strip('"'), " , "):
        envelope(api.call("PUT", "/v1/items/ML-002", api.admin, json=item.json,
                          headers={"If-Match": header}), 412)
    assert api.call("GET", "/v1/items/ML-002", api.admin).json["tags"] == ["edited"]


@pytest.fixture
def limited(api, database_url):
    """The fixture's store served by an app with small quotas (the QUOTAS setting, in
    IRTCAT_QUOTAS's notation)."""
    app = create_app({"DATABASE_URL": database_url,
                      "QUOTAS": "public_start=5/hour;auth_failure=8/10 minutes;"
                                "answer=3/minute;score=2/day"})
    yield Api(app)
    close_app(app)


def _limited_429(response):
    error = envelope(response, 429)
    assert error["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 86400
    return error


def test_anonymous_start_floods_are_cut_off(limited):
    """Finding 3: 600 of 600 anonymous starts from one client in 28 s."""
    statuses = [limited.call("POST", "/v1/public/sessions", json={"test_id": "open"})
                for _ in range(8)]
    assert [r.status_code for r in statuses] == [201] * 5 + [429] * 3
    assert _limited_429(statuses[-1])["details"] == {"quota": "public_start"}


def test_credential_guessing_is_throttled_and_logged(limited, caplog):
    """Finding 4: 4,606 bad keys and tokens at 160 a second, all 401, nothing logged. Past
    the quota the address's failures are 429; its valid keys still pass (a key cannot be
    guessed, and one client must not lock out its classmates behind a shared address)."""
    caplog.set_level("INFO")
    statuses = [limited.call("GET", "/v1/tests", f"irtk_guess{n}").status_code
                for n in range(10)]
    assert statuses == [401] * 8 + [429] * 2
    _limited_429(limited.call("GET", "/v1/tests", "irtk_guess-again"))
    assert limited.call("GET", "/v1/tests", limited.admin).status_code == 200
    failures = [r for r in caplog.records if getattr(r, "event", "") == "auth_failure"
                or "auth_failure" in r.getMessage()]
    assert len(failures) >= 8
    assert not any("irtk_guess" in r.getMessage() for r in caplog.records)


def test_an_ipv6_client_counts_as_its_64(limited):
    """A host holds a whole IPv6 /64: counting each address let one client start without
    limit by changing the last bits."""
    statuses = [limited.call("POST", "/v1/public/sessions", json={"test_id": "open"},
                             environ_base={"REMOTE_ADDR": f"2001:db8::{n:x}"}).status_code
                for n in range(1, 8)]
    assert statuses == [201] * 5 + [429] * 2
    other = limited.call("POST", "/v1/public/sessions", json={"test_id": "open"},
                         environ_base={"REMOTE_ADDR": "2001:db8:0:1::1"})
    assert other.status_code == 201                       # another /64


def test_answers_and_score_calls_have_quotas(limited):
    session = limited.start("ml", "fast-answers")
    item, statuses = session["item"], []
    for _ in range(4):
        reply = limited.answer(session, item["item_id"], item["options"][0]["id"])
        statuses.append(reply.status_code)
        if reply.status_code == 200:
            item = reply.json["item"]
    assert statuses == [200, 200, 200, 429]
    body = {"responses": [{"item_id": f"ML-{n:03d}", "response": n % 2}
                          for n in range(1, 11)]}
    scored = [limited.call("POST", "/v1/score", limited.delivery, json=body).status_code
              for _ in range(3)]
    assert scored == [200, 200, 429]


def test_an_active_sessions_result_has_no_estimate_to_compare(api):
    """Pretest status is not disclosed: an estimate read after each answer stays put after
    a pretest item (never scored), and moves with each right or wrong answer."""
    session, item = api.start("credential", "watching-theta"), None
    item = session["item"]
    for answered in range(1, 6):                    # to the test's minimum length, 5
        reply = api.answer(session, item["item_id"], item["options"][0]["id"])
        assert reply.status_code == 200
        item = reply.json["item"]
        if answered == 5:
            break                                   # the test may stop itself here
        result = api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                          api.delivery).json
        assert result["status"] == "active"
        assert (result["theta"], result["se"], result["decision"]) == (None, None, None)
        assert all(s["theta"] is None and s["level"] is None for s in result["standards"])
    finished = api.call("POST", f"/v1/sessions/{session['session_id']}/finish", api.delivery)
    assert finished.status_code == 200
    assert api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                    api.delivery).json["theta"] is not None
