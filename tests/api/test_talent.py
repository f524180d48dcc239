"""The career framework and the talent network through the API: job roles, roles met in
a result, a learner's consent, and what an employer's search shows.

The acceptance: an employer never sees a learner without consent (several learners,
some consenting, some revoked, some never asked: the search finds exactly the consenting
ones), nor θ, SE, responses, items, session ids, tokens or learner ids (every search
reply is scanned for every such value of every learner)."""

import json
import math
import pathlib

from irtcat.delivery.keys import create_key

DEMO = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo"
CAREERS = json.loads((DEMO / "careers.json").read_text())
FRAMEWORK = {s["code"]: s for s in json.loads((DEMO / "framework.json").read_text())
             ["standards"]}
KEYS = {item["id"]: item.get("key")
        for item in json.loads((DEMO / "items.json").read_text())["items"]}


def levels_of(code):
    standard = FRAMEWORK[code]
    return standard["levels"] or levels_of(standard["parent"])


def rank(code, level):
    """A level's rank among the standard's (by cut), -1 for none."""
    cuts = sorted(levels_of(code), key=lambda entry: entry["cut"])
    return next((i for i, entry in enumerate(cuts) if entry["name"] == level), -1)


def right(item):
    key = KEYS[item["item_id"]]
    if "correct" in key:
        return key["correct"]
    return max(key["scores"], key=key["scores"].get)


def wrong(item):
    return next(o["id"] for o in item["options"] if KEYS[item["item_id"]].get("correct")
                != o["id"] and KEYS[item["item_id"]].get("scores", {}).get(o["id"], 0) == 0)


def take(api, learner_id, choose, test_id="credential"):
    """A finished session of `learner_id`: ``(started, result)``."""
    session = api.start(test_id, learner_id)
    item = session["item"]
    while item is not None:
        reply = api.answer(session, item["item_id"], choose(item))
        assert reply.status_code == 200, reply.json
        item = reply.json["item"]
    result = api.call("GET", f"/v1/sessions/{session['session_id']}/result", api.delivery)
    assert result.status_code == 200
    return session, result.json


def consent(api, session, contact, key=None):
    return api.call("POST", f"/v1/sessions/{session['session_id']}/consent",
                    key or session["token"], json={"contact": contact})


def put_roles(api, document=CAREERS):
    return api.call("PUT", "/v1/roles", api.admin, json=document)


def test_roles_are_replaced_read_and_checked(api):
    first = put_roles(api)
    assert first.status_code == 200, first.json
    assert sorted(first.json["created"]) == sorted(r["id"] for r in CAREERS["roles"])
    assert put_roles(api).json["unchanged"] == sorted(r["id"] for r in CAREERS["roles"])
    employer = create_key(api.store.database, "employer")
    listed = api.call("GET", "/v1/roles", employer)
    assert listed.status_code == 200
    assert {r["id"]: r["required"] for r in listed.json} == \
        {r["id"]: r["required"] for r in CAREERS["roles"]}
    fewer = {**CAREERS, "roles": CAREERS["roles"][:1]}
    assert put_roles(api, fewer).json["removed"] == sorted(r["id"] for r in
                                                           CAREERS["roles"][1:])
    bad_level = {**CAREERS, "roles": [{"id": "x", "title": "X",
                                       "required": {"AI-ML": "guru"}}]}
    assert put_roles(api, bad_level).status_code == 422
    unknown = {**CAREERS, "roles": [{"id": "x", "title": "X",
                                     "required": {"AI-XX": "advanced"}}]}
    assert put_roles(api, unknown).status_code == 409
    assert [r["id"] for r in api.call("GET", "/v1/roles", api.admin).json] == ["ml-engineer"]


def test_a_result_lists_the_roles_met_and_the_gaps(api):
    assert put_roles(api).status_code == 200
    _, done = take(api, "roles-learner", lambda item: item["options"][1]["id"])
    reached = {s["code"]: (s["theta"], s["level"]) for s in done["standards"]}
    assert [fit["id"] for fit in done["roles"]] == sorted(r["id"] for r in CAREERS["roles"])
    roles = {role["id"]: role for role in CAREERS["roles"]}
    for fit in done["roles"]:
        role, expected = roles[fit["id"]], {}
        for code, required in role["required"].items():
            theta, level = reached[code]
            cut = next(e["cut"] for e in levels_of(code) if e["name"] == required)
            # closed form: the cuts above the standard's θ up to the required one (all
            # up to it when nothing was answered in the standard)
            short = sum((theta is None or theta < e["cut"]) and e["cut"] <= cut
                        for e in levels_of(code))
            assert short == max(0, rank(code, required) - rank(code, level))
            if short:
                expected[code] = short
        assert {gap["code"]: gap["short"] for gap in fit["gaps"]} == expected
        assert fit["met"] == (not expected)


def test_consent_needs_a_finished_session_that_passed(api):
    active = api.start("credential", "not-yet")
    assert consent(api, active, "x@example.org").status_code == 409
    failed, result = take(api, "failing", wrong)
    assert result["decision"]["pass"] is False
    assert consent(api, failed, "x@example.org").status_code == 409
    practice, result = take(api, "practice", right, test_id="ml")
    assert result["decision"] is None                   # no cut: no credential
    assert consent(api, practice, "x@example.org").status_code == 409
    passed, result = take(api, "passing", right)
    assert result["decision"]["pass"] is True
    assert consent(api, passed, "   ").status_code == 400
    given = consent(api, passed, "passing@example.org")
    assert given.status_code == 201 and given.json["contact"] == "passing@example.org"
    other_key = create_key(api.store.database, "delivery")
    assert consent(api, passed, "y@example.org", key=other_key).status_code == 403


def _scan(body, secrets):
    """Every secret value found in the reply (its text, and its numbers)."""
    text = json.dumps(body)
    found = [value for value in secrets["text"] if value in text]
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            found += [key for key in value if key in FORBIDDEN_NAMES]
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found += [number for number in secrets["numbers"]
                      if math.isclose(value, number, abs_tol=5e-5)]
    return found


FORBIDDEN_NAMES = {"theta", "se", "responses", "response", "item_id", "items",
                   "session_id", "learner_id", "token", "score"}


def test_an_employer_sees_exactly_the_consenting_learners_and_nothing_else(api):
    assert put_roles(api).status_code == 200
    learners = {}
    for name in ("ada", "grace", "alan", "edsger", "barbara"):
        session, result = take(api, f"learner-{name}-7f3a", right)
        assert result["decision"]["pass"] is True
        learners[name] = (session, result)
    failed = take(api, "learner-failed-7f3a", wrong)
    assert consent(api, learners["ada"][0], "ada@example.org").status_code == 201
    assert consent(api, learners["grace"][0], "grace@example.org",
                   key=api.delivery).status_code == 201            # by the LMS's key
    assert consent(api, learners["alan"][0], "alan@example.org").status_code == 201
    assert consent(api, learners["barbara"][0], "old@example.org").status_code == 201
    assert consent(api, learners["barbara"][0], "barbara@example.org").status_code == 201
    revoked = api.call("DELETE", f"/v1/sessions/{learners['alan'][0]['session_id']}/consent",
                       learners["alan"][0]["token"])
    assert revoked.status_code == 200 and revoked.json == {"revoked": 1}
    assert consent(api, failed[0], "failed@example.org").status_code == 409
    # edsger never consents

    secrets = {"text": set(), "numbers": set()}
    for session, result in [*learners.values(), failed]:
        secrets["text"] |= {session["session_id"], session["token"],
                            *(a["item_id"] for a in result["responses"])}
        secrets["numbers"] |= {v for v in (result["theta"], result["se"]) if v is not None}
        for standard in result["standards"]:
            secrets["numbers"] |= {v for v in (standard["theta"], standard["se"])
                                   if v is not None}
    secrets["text"] |= {f"learner-{name}-7f3a" for name in [*learners, "failed"]}

    employer = create_key(api.store.database, "employer")
    queries = ["", "?role=ml-engineer", "?role=responsible-ai-lead",
               "?min_levels=AI-ML:foundational", "?min_levels=AI-RAI:advanced,AI-DE:advanced",
               "?min_levels=AI-ML:advanced", "?page_size=1", "?page=2&page_size=1"]
    consenting = {"ada", "grace", "barbara"}
    for query in queries:
        reply = api.call("GET", f"/v1/talent{query}", employer)
        assert reply.status_code == 200, (query, reply.json)
        assert _scan(reply.json, secrets) == [], query
        assert not any(value in str(dict(reply.headers)) for value in secrets["text"])
        if "page" in query:
            assert len(reply.json) == 1
            assert json.loads(reply.headers["X-Pagination"])["total"] == len(consenting)
            continue
        found = {entry["contact"].split("@")[0] for entry in reply.json}
        required = _required(query)
        expected = {name for name in consenting if all(
            rank(code, level) <= rank(code, _level(learners[name][1], code))
            for code, level in required.items())}
        assert found == expected, query
        for entry in reply.json:
            name = entry["contact"].split("@")[0]
            assert set(entry) == {"candidate_id", "contact", "credential", "levels"}
            assert entry["credential"] == {"test_id": "credential", "passed": True,
                                           "finished_on": entry["credential"]["finished_on"]}
            assert [(s["code"], s["level"]) for s in entry["levels"]] == \
                [(s["code"], s["level"]) for s in learners[name][1]["standards"]]
    everyone = {e["contact"] for e in api.call("GET", "/v1/talent", employer).json}
    assert everyone == {"ada@example.org", "grace@example.org", "barbara@example.org"}

    # revocation takes the learner out of every search at once
    assert api.call("DELETE", f"/v1/sessions/{learners['ada'][0]['session_id']}/consent",
                    api.delivery).json == {"revoked": 1}
    for query in queries[:3]:
        contacts = {e["contact"] for e in api.call("GET", f"/v1/talent{query}", employer).json}
        assert "ada@example.org" not in contacts


def _required(query):
    if query.startswith("?role="):
        return next(r["required"] for r in CAREERS["roles"] if r["id"] == query[6:])
    if query.startswith("?min_levels="):
        return dict(pair.split(":") for pair in query[12:].split(","))
    return {}


def _level(result, code):
    return next(s["level"] for s in result["standards"] if s["code"] == code)


def test_search_requests_that_cannot_be_answered(api):
    employer = create_key(api.store.database, "employer")
    assert put_roles(api).status_code == 200
    for query, status in (("?role=no-such-role", 404), ("?min_levels=AI-XX:advanced", 409),
                          ("?min_levels=AI-ML:guru", 422), ("?min_levels=AI-ML", 400),
                          ("?role=ml-engineer&min_levels=AI-ML:advanced", 400)):
        assert api.call("GET", f"/v1/talent{query}", employer).status_code == status, query
    assert api.call("GET", "/v1/talent", api.admin).status_code == 403
    assert api.call("GET", "/v1/talent", api.delivery).status_code == 403
