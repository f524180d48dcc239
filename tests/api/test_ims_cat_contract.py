"""The 1EdTech CAT service as TAO's client drives it (oat-sa/lib-test-cat, src/ims/v1p3:
CatSection, CatSession, ResultFormatter; extension-tao-testqti's CatService).

The requests below are shaped exactly as that client builds them: createSection's three
base64 fields (an empty qtiMetadata/qtiUsagedata is `base64_encode(null)`), initSession's
`priorData: [{"key": "initialEstimatedAbility", "value": "0.0"}]`, submitResults'
`itemResult` with `datestamp` in PHP's ISO8601 (`+0000`), `sessionStatus: "FINAL"`,
`cardinality: 0`, `baseType: "FLOAT"` and `context.sourcedId: null`. The replies are
parsed as it parses them (`tao_session`, `tao_test_result`).

The same test through /v1 with the same seed is the reference: same items, same θ.
"""

import base64
import hashlib
import json

import jsonschema
import pytest

import irtcat.delivery.sessions as sessions_module
from irtcat.api.app import close_app, create_app
from irtcat.api.ims_cat_schemas import SCHEMAS
from irtcat.delivery.keys import create_key

PREFIX = "/ims/cat/v1p0"
SEED = 424242


def b64(text):
    return base64.b64encode((text or "").encode()).decode()


# --- requests as TAO's client sends them ------------------------------------------------

def tao_create_section(settings):
    """CatSection::requestSectionIdentifier (qtiMetadata and qtiUsagedata null)."""
    return json.dumps({"qtiMetadata": b64(None), "qtiUsagedata": b64(None),
                       "sectionConfiguration": b64(settings)})


def tao_init_session():
    """CatSection::initSession([], []): the prior data it always adds."""
    return json.dumps({"priorData": [{"key": "initialEstimatedAbility", "value": "0.0"}]})


def tao_submit(item_id, score, state):
    """CatSession::getTestMap: ResultFormatter::formatResultData of the last item's
    SCORE, with the session's context (SessionContext::jsonSerialize)."""
    return json.dumps({
        "assessmentResult": {
            "context": {"sourcedId": None, "sessionIdentifiers": []},
            "itemResult": [{
                "identifier": item_id, "datestamp": "2026-12-05T03:45:44+0000",
                "sessionStatus": "FINAL",
                "outcomeVariables": [{"identifier": "SCORE", "cardinality": 0,
                                      "value": [{"baseType": "FLOAT", "value": score}]}]}]},
        "sessionState": state})


# --- replies parsed as TAO's client parses them -----------------------------------------

def tao_session(data):
    """CatSession's constructor and getTestMap: the keys it reads (a missing one is an
    error here), the next items as the list it returns."""
    assert isinstance(data, dict) and data, "empty response from CAT engine"
    next_items = data["nextItems"]["itemIdentifiers"]
    data["nextItems"]["stageLength"]                          # noqa: B018 (read, required)
    assert isinstance(data["sessionState"], str)
    return (next_items if isinstance(next_items, list) else []), data.get("assessmentResult")


def tao_test_result(assessment_result):
    """CatSession::prepareResults and restoreVariables: {identifier: value} of the test
    result's variables (a one-value variable as its value), and its item results."""
    assert isinstance(assessment_result["testResult"], dict)        # is_array(testResult)
    variables = {}
    for _type, group in assessment_result["testResult"].items():
        if not group:
            continue
        for variable in group:
            values = [value["value"] for value in variable["value"]]
            variable["value"][-1]["baseType"]                 # noqa: B018 (restore reads it)
            variables[variable["identifier"]] = values[0] if len(values) == 1 else values
    return variables, assessment_result.get("itemResults", {})


# --- driving both ----------------------------------------------------------------------

@pytest.fixture
def cat_key(api):
    return create_key(api.store.database, "cat-client")


@pytest.fixture
def fixed_seed(monkeypatch):
    monkeypatch.setattr(sessions_module.secrets, "randbits", lambda bits: SEED)


def post(api, path, key, body):
    """POST `body` (text) as the client does; a 2xx reply is checked against the schema
    the service's OpenAPI document gives it."""
    reply = api.call("POST", PREFIX + path, key, data=body, content_type="application/json")
    if reply.status_code < 300:
        name = {"/sections": "SectionCreated"}.get(path) or (
            "ResultsReply" if path.endswith("/results") else "SessionCreated")
        jsonschema.validate(reply.json, SCHEMAS[name])
    return reply


def learner_choice(api, item_id):
    """A simulated learner's response (an option id, or a category for a key-less item),
    chosen from a hash of the item id, and its score from the item's stored key."""
    model, content, key = api.app.extensions["irtcat"]["delivery"].catalog.item(item_id)
    options = [option["id"] for option in content["options"]]
    chosen = options[hashlib.sha256(item_id.encode()).digest()[0] % len(options)]
    if "correct" in key:
        return chosen, int(chosen == key["correct"])
    return chosen, int(key["scores"][chosen])


def start_section(api, key, test_id="credential"):
    reply = post(api, "/sections", key, tao_create_section(test_id))
    assert reply.status_code == 201, reply.json
    assert reply.json["sectionIdentifier"]                 # empty() would throw
    return reply.json["sectionIdentifier"]


def run_cat(api, key, restart_after=None, database_url=None):
    """A whole section through /ims/cat/v1p0: (items given, final test result); with
    `restart_after`, a fresh app on the same database takes over after that many."""
    section = start_section(api, key)
    reply = post(api, f"/sections/{section}/sessions", key, tao_init_session())
    assert reply.status_code == 201, reply.json
    session = reply.json["sessionIdentifier"]
    items, result = tao_session(reply.json)
    state, given, fresh = reply.json["sessionState"], [], None
    try:
        while items:
            item_id = items[0]                              # it reads [0] only
            given.append(item_id)
            if restart_after is not None and len(given) == restart_after + 1:
                fresh = create_app({"DATABASE_URL": database_url})
                api.client = fresh.test_client()
            reply = post(api, f"/sections/{section}/sessions/{session}/results", key,
                         tao_submit(item_id, float(learner_choice(api, item_id)[1]), state))
            assert reply.status_code == 200, reply.json
            items, result = tao_session(reply.json)
            state = reply.json["sessionState"]
    finally:
        if fresh is not None:
            api.client = api.app.test_client()
            close_app(fresh)
    return given, tao_test_result(result)[0]


def run_v1(api):
    """The same test through /v1: (items given, result)."""
    session = api.start("credential")
    given, item = [], session["item"]
    while item is not None:
        given.append(item["item_id"])
        reply = api.answer(session, item["item_id"], learner_choice(api, item["item_id"])[0])
        assert reply.status_code == 200, reply.json
        item = reply.json["item"]
    return given, api.call("GET", f"/v1/sessions/{session['session_id']}/result",
                           api.delivery).json


def test_a_section_gives_the_items_and_theta_of_the_same_test_through_v1(api, cat_key,
                                                                        fixed_seed):
    cat_items, outcomes = run_cat(api, cat_key)
    v1_items, v1_result = run_v1(api)
    assert cat_items == v1_items and len(cat_items) >= 5        # the test's min_items
    assert outcomes["THETA"] == v1_result["theta"]
    assert outcomes["SE"] == v1_result["se"]
    assert outcomes["PASSED"] == v1_result["decision"]["pass"]
    assert outcomes["STOP_REASON"] in ("max_items", "rules_met", "pool_exhausted")


def test_a_restart_between_two_submissions_changes_nothing(api, cat_key, fixed_seed,
                                                           database_url):
    straight = run_cat(api, cat_key)
    restarted = run_cat(api, cat_key, restart_after=2, database_url=database_url)
    assert restarted == straight


@pytest.mark.parametrize("score", [1.0, "1", 1, "1.0", True, 0, "0.0", "false"])
def test_every_form_of_score_the_client_may_send_is_read(api, cat_key, score):
    section = start_section(api, cat_key)
    reply = post(api, f"/sections/{section}/sessions", cat_key, tao_init_session())
    session, state = reply.json["sessionIdentifier"], reply.json["sessionState"]
    item_id = tao_session(reply.json)[0][0]
    reply = post(api, f"/sections/{section}/sessions/{session}/results", cat_key,
                 tao_submit(item_id, score, state))
    assert reply.status_code == 200, reply.json
    assert tao_session(reply.json)[0] != [item_id]
    expected = 1 if score in (1.0, "1", 1, "1.0", True) else 0
    recorded = sessions_module.session_snapshot(api.store.database, session)[1]
    assert [(a.item_id, a.score) for a in recorded] == [(item_id, expected)]


def test_a_repeated_submission_is_applied_once_and_the_section_can_be_read_and_ended(
        api, cat_key):
    section = start_section(api, cat_key)
    read = api.call("GET", f"{PREFIX}/sections/{section}", cat_key)
    assert read.status_code == 200
    assert base64.b64decode(read.json["sectionConfiguration"]).decode() == "credential"
    assert read.json["status"] == "open"
    reply = post(api, f"/sections/{section}/sessions", cat_key, tao_init_session())
    session, state = reply.json["sessionIdentifier"], reply.json["sessionState"]
    item_id = tao_session(reply.json)[0][0]
    first = post(api, f"/sections/{section}/sessions/{session}/results", cat_key,
                 tao_submit(item_id, 1.0, state))
    again = post(api, f"/sections/{section}/sessions/{session}/results", cat_key,
                 tao_submit(item_id, 1.0, state))
    assert again.status_code == 200 and again.json["nextItems"] == first.json["nextItems"]
    assert api.call("DELETE", f"{PREFIX}/sections/{section}", cat_key).status_code == 204
    assert api.call("GET", f"{PREFIX}/sections/{section}", cat_key).json["status"] == "ended"
    refused = post(api, f"/sections/{section}/sessions", cat_key, tao_init_session())
    assert refused.status_code == 409
    ended = api.call("DELETE", f"{PREFIX}/sections/{section}/sessions/{session}", cat_key)
    assert ended.status_code == 204
    row, answers = sessions_module.session_snapshot(api.store.database, session)
    assert row.status == "finished" and len(answers) == 1


def test_a_test_configuration_object_names_the_test(api, cat_key):
    reply = post(api, "/sections", cat_key, tao_create_section('{"testId": "ml"}'))
    assert reply.status_code == 201
    unknown = post(api, "/sections", cat_key, tao_create_section("no-such-test"))
    assert unknown.status_code == 404


# --- refusals ---------------------------------------------------------------------------

def started(api, key):
    section = start_section(api, key)
    reply = post(api, f"/sections/{section}/sessions", key, tao_init_session())
    return section, reply.json["sessionIdentifier"], reply.json["sessionState"], \
        reply.json["nextItems"]["itemIdentifiers"][0]


def test_a_tampered_or_foreign_session_state_is_refused(api, cat_key):
    section, session, state, item_id = started(api, cat_key)
    other_section, other_session, other_state, _ = started(api, cat_key)
    version, payload, mac = state.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (f"{version}.{payload}.{flipped}", f"{version}.{payload}.{other_state[-43:]}",
                other_state, "", "v1.e30.e30", f"{version}.{payload}.é{mac[1:]}"):
        reply = post(api, f"/sections/{section}/sessions/{session}/results", cat_key,
                     tao_submit(item_id, 1.0, bad))
        assert reply.status_code == 403, bad
        assert set(reply.json["error"]) == {"code", "message", "details"}
    reply = post(api, f"/sections/{other_section}/sessions/{session}/results", cat_key,
                 tao_submit(item_id, 1.0, state))
    assert reply.status_code == 403
    assert sessions_module.session_snapshot(api.store.database, session)[1] == []


def test_another_clients_sections_and_sessions_are_refused(api, cat_key):
    section, session, state, item_id = started(api, cat_key)
    other = create_key(api.store.database, "cat-client")
    assert api.call("GET", f"{PREFIX}/sections/{section}", other).status_code == 403
    assert api.call("DELETE", f"{PREFIX}/sections/{section}", other).status_code == 403
    assert post(api, f"/sections/{section}/sessions", other,
                tao_init_session()).status_code == 403
    assert post(api, f"/sections/{section}/sessions/{session}/results", other,
                tao_submit(item_id, 1.0, state)).status_code == 403
    assert api.call("DELETE", f"{PREFIX}/sections/{section}/sessions/{session}",
                    other).status_code == 403


@pytest.mark.parametrize("role", ["admin", "delivery", "employer", None, "token"])
def test_only_a_cat_client_key_is_taken(api, cat_key, role):
    section, session, state, item_id = started(api, cat_key)
    if role == "token":
        key = api.start("ml")["token"]
    else:
        key = None if role is None else create_key(api.store.database, role)
    status = 401 if key is None else 403
    calls = [("POST", "/sections", tao_create_section("ml")),
             ("GET", f"/sections/{section}", None), ("DELETE", f"/sections/{section}", None),
             ("POST", f"/sections/{section}/sessions", tao_init_session()),
             ("POST", f"/sections/{section}/sessions/{session}/results",
              tao_submit(item_id, 1.0, state)),
             ("DELETE", f"/sections/{section}/sessions/{session}", None)]
    for method, path, body in calls:
        reply = api.call(method, PREFIX + path, key, data=body,
                         content_type="application/json")
        assert reply.status_code == status, (method, path, reply.json)
        assert set(reply.json["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize("body", [
    "not json", "[]", json.dumps({"sectionConfiguration": "%%%"}),
    json.dumps({"sectionConfiguration": b64("")})])
def test_a_section_without_a_readable_configuration_is_refused(api, cat_key, body):
    reply = post(api, "/sections", cat_key, body)
    assert reply.status_code in (400, 422)
    assert set(reply.json["error"]) == {"code", "message", "details"}


def test_results_without_a_score_are_refused(api, cat_key):
    section, session, state, item_id = started(api, cat_key)
    body = json.loads(tao_submit(item_id, 1.0, state))
    body["assessmentResult"]["itemResult"][0]["outcomeVariables"][0]["identifier"] = "RAW"
    reply = post(api, f"/sections/{section}/sessions/{session}/results", cat_key,
                 json.dumps(body))
    assert reply.status_code == 422
    half = post(api, f"/sections/{section}/sessions/{session}/results", cat_key,
                tao_submit(item_id, 0.5, state))
    assert half.status_code == 422


def test_the_service_has_its_own_openapi_document(api):
    document = api.call("GET", f"{PREFIX}/openapi.json").json
    assert document["servers"] == [{"url": PREFIX}]
    assert set(document["paths"]) == {
        "/sections", "/sections/{sectionIdentifier}",
        "/sections/{sectionIdentifier}/sessions",
        "/sections/{sectionIdentifier}/sessions/{sessionIdentifier}/results",
        "/sections/{sectionIdentifier}/sessions/{sessionIdentifier}"}


def _first_items(api, key, section, abilities):
    """The first item of a session of `section` per prior ability (None: no priorData)."""
    first = []
    for ability in abilities:
        body = "{}" if ability is None else json.dumps(
            {"priorData": [{"key": "initialEstimatedAbility", "value": ability}]})
        reply = post(api, f"/sections/{section}/sessions", key, body)
        assert reply.status_code == 201, reply.json
        first.append(tao_session(reply.json)[0][0])
    return first


def test_the_initial_ability_is_where_the_first_item_is_chosen(api, cat_key):
    # "ml" (tests/api/conftest.py) has no pretest, randomesque or exposure control: MFI's
    # first choice is the most informative item at the start θ. Through the service with
    # initialEstimatedAbility x, the first item is that of the same test through /v1 with
    # start.theta x; without prior data, the test's own start (0, as TAO's "0.0").
    for theta in (-2.0, 2.0):
        body = {"id": f"ml-start-{theta:+.0f}", "standards": ["AI-ML"],
                "config": {"stop": {"max_items": 8, "se": 0.35}, "start": {"theta": theta}}}
        assert api.call("POST", "/v1/tests", api.admin, json=body).status_code == 201
    expected = [api.start(f"ml-start-{theta:+.0f}", "v1")["item"]["item_id"]
                for theta in (-2.0, 2.0)] + [api.start("ml", "v1")["item"]["item_id"]] * 2
    section = start_section(api, cat_key, "ml")
    assert _first_items(api, cat_key, section, ["-2.0", 2.0, "0.0", None]) == expected
    assert expected[0] != expected[1]                  # the start θ moved the choice
    # the step trace records the θ of that choice
    session = post(api, f"/sections/{section}/sessions", cat_key, json.dumps(
        {"priorData": [{"key": "initialEstimatedAbility", "value": "1.5"}]})).json
    trace = api.call("GET", f"/v1/sessions/{session['sessionIdentifier']}/trace", api.admin)
    assert trace.json["steps"][0]["theta"] == 1.5


@pytest.mark.parametrize("value", ["high", "NaN", "1e9"])
def test_an_initial_ability_that_is_not_a_theta_is_refused(api, cat_key, value):
    section = start_section(api, cat_key, "ml")
    reply = post(api, f"/sections/{section}/sessions", cat_key, json.dumps(
        {"priorData": [{"key": "initialEstimatedAbility", "value": value}]}))
    assert reply.status_code in (400, 422) and set(reply.json) == {"error"}
