"""Malformed or hostile input never gets a 500 (spec/API.md "Errors"): wrong types in
every field of every body, unknown fields, bodies that are not JSON or not an object,
bodies over api.app.MAX_BODY, SQL-looking, very long, unicode, NUL and unknown ids
in paths and query strings. Every error carries the one envelope. And the OpenAPI
document the server publishes is valid OpenAPI 3."""

import json
import re
import secrets
from urllib.parse import quote

import pytest
from marshmallow import fields
from openapi_spec_validator import validate as validate_openapi

from irtcat.api import schemas
from irtcat.api.app import MAX_BODY, OPERATIONS

SQL = "' OR 1=1 --"
HOSTILE = [None, True, -1, 2**70, 1.5, "", "x" * 100_000, SQL, "é✓😀 ∑", [], [1, "a"], {},
           {"$ne": 1}]
ITEM = {"id": "H-1", "standard": "AI-ML", "model": "2pl", "a": 1.1, "b": 0.2,
        "status": "pretest", "tags": ["t"], "enemies": ["ML-001"],
        "content": {"stem": "Pick A", "options": [{"id": "A", "text": "a"},
                                                  {"id": "B", "text": "b"}]},
        "key": {"correct": "A"}}
BODIES_WITHOUT_SCHEMA = {("POST", "/items"), ("PUT", "/items/<item_id>")}


def envelope(response):
    assert response.status_code != 500, response.get_data(True)
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(True))
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return response.status_code


def ok_or_envelope(response):
    assert response.status_code != 500, response.get_data(True)
    if response.status_code >= 400:
        envelope(response)
    return response.status_code


def _label(operation):
    return f"{operation.method} {operation.rule}"


def _key(api, operation):
    return api.admin if "admin" in operation.roles else api.delivery


def _path(operation, session, overrides=None):
    values = {"code": "AI-ML", "item_id": "H-1", "test_id": "ml", "session_id": session,
              "run_id": "1", **(overrides or {})}
    return "/v1" + re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: values[m.group(1)],
                          operation.rule)


def _base_body(operation, session):
    """A valid body; the calibration's names an unknown standard, so no run starts."""
    return {
        ("POST", "/standards"): {"code": "H-STD", "title": "Hostile", "description": "d",
                                 "parent": "AI", "levels": [{"name": "x", "cut": 0.0}]},
        ("PUT", "/standards/<code>"): {"code": "AI-ML", "title": "ML", "description": "d",
                                       "parent": "AI", "levels": [{"name": "x", "cut": 0.0}]},
        ("POST", "/items"): dict(ITEM),
        ("PUT", "/items/<item_id>"): dict(ITEM),
        ("POST", "/tests"): {"id": "h-test", "title": "Hostile", "standards": ["AI-ML"],
                             "config": {"stop": {"max_items": 6}}},
        ("POST", "/sessions"): {"test_id": "ml", "learner_id": "hostile"},
        ("POST", "/public/sessions"): {"test_id": "open"},
        ("POST", "/sessions/<session_id>/responses"): {
            "item_id": session["item"]["item_id"], "response": "A"},
        ("POST", "/score"): {"responses": [{"item_id": "ML-001", "response": "A"}],
                             "method": "eap"},
        ("POST", "/calibrations"): {"standard": "H-NONE", "model": "2pl", "source": "upload",
                                    "anchored": False, "data": [
                                        {"person_id": "p", "item_id": "i", "response": 1}]},
        ("POST", "/simulations"): {"test_id": "ml", "examinees": 3, "seed": 2},
        ("POST", "/dif"): {"standard": "AI", "attribute": "group", "focal": "F"},
        ("POST", "/standards/<code>/online-calibration"): {"settings": {
            "min_answers": 500, "max_se_a": 0.3, "max_se_b": 0.3, "fit_alpha": 0.05,
            "dif_attributes": ["group"], "slope_range": [0.2, 4.0], "auto_publish": False}},
        ("POST", "/standards/<code>/drift"): {"items": ["ML-001"], "mode": "each",
                                              "weights": "takers", "z": 3.0,
                                              "expected_score": 0.05, "min_answers": 100},
        ("POST", "/case"): {
            "CFDocument": {"identifier": "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",
                           "title": "Hostile", "creator": "tests", "subject": ["AI"]},
            "CFItems": [{"identifier": "3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a7b",
                         "fullStatement": "Hostile", "humanCodingScheme": "H-CASE"}],
            "CFAssociations": [{
                "associationType": "isChildOf",
                "originNodeURI": {"title": "Hostile",
                                  "identifier": "3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a7b",
                                  "uri": "https://example.org/3e4f5a6b"},
                "destinationNodeURI": {"title": "Hostile",
                                       "identifier": "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",
                                       "uri": "https://example.org/2d3e4f5a"}}]},
        ("PUT", "/roles"): {"format": "irtcat-roles/1", "roles": [
            {"id": "h-role", "title": "Hostile", "description": "d",
             "required": {"AI-ML": "proficient"}}]},
        ("POST", "/sessions/<session_id>/consent"): {"contact": "hostile@example.org"},
        ("POST", "/lti/platforms"): {
            "issuer": "https://lms.example", "client_id": "h", "deployment_ids": ["1"],
            "auth_login_url": "https://lms.example/auth",
            "token_url": "https://lms.example/token", "jwks_url": "https://lms.example/jwks"},
    }.get((operation.method, operation.rule))


def _field_paths(schema, body, prefix=()):
    """Paths to every field of a schema in `body`, nested schemas and lists included."""
    for name, field in schema.fields.items():
        key = field.data_key or name
        yield prefix + (key,)
        inner = field.inner if isinstance(field, fields.List) else field
        value = body.get(key) if isinstance(body, dict) else None
        if isinstance(inner, fields.Nested) and value:
            element = value[0] if isinstance(field, fields.List) else value
            at = prefix + (key, 0) if isinstance(field, fields.List) else prefix + (key,)
            yield from _field_paths(inner.schema, element, at)


def _replace(body, path, value):
    body = json.loads(json.dumps(body))
    target = body
    for step in path[:-1]:
        target = target[step]
    if value is _DROP:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return body


_DROP = object()
WITH_BODY = [op for op in OPERATIONS
             if op.body is not None or (op.method, op.rule) in BODIES_WITHOUT_SCHEMA]


@pytest.fixture
def hostile(api):
    api.call("POST", "/v1/items", api.admin, json=ITEM)
    return api


@pytest.mark.parametrize("operation", WITH_BODY, ids=_label)
def test_wrong_types_in_every_field(hostile, operation):
    api = hostile
    session = api.start("ml", "hostile")
    path = _path(operation, session["session_id"])
    base = _base_body(operation, session)
    assert base is not None, f"no base body for {_label(operation)}: add one"
    schema = operation.body() if operation.body is not None else schemas.ItemDoc()
    paths = list(_field_paths(schema, base))
    assert paths
    for field_path in paths:
        for value in [*HOSTILE, _DROP]:
            body = _replace(base, field_path, value)
            status = ok_or_envelope(api.call(operation.method, path, _key(api, operation),
                                             json=body))
            if isinstance(value, (dict, list)) and field_path[-1] not in (
                    "config", "se", "fit", "slope_intercept", "se_slope_intercept", "key",
                    "b", "data", "responses", "levels", "tags", "enemies", "options",
                    "standards", "attributes", "settings", "dif_attributes",
                    "subject", "CFAssociations", "CFDefinitions", "CFRubrics", "required",
                    "roles"):
                assert status == 400, (field_path, value, status)
    # unknown fields: refused by the strict schemas, kept as given on items
    body = {**base, "unexpected": 1}
    status = ok_or_envelope(api.call(operation.method, path, _key(api, operation), json=body))
    assert status == 400 if operation.body is not None else status < 300


@pytest.mark.parametrize("operation", WITH_BODY, ids=_label)
def test_bodies_that_are_not_a_json_object(hostile, operation):
    api = hostile
    session = api.start("ml", "hostile")
    path = _path(operation, session["session_id"])
    key = _key(api, operation)
    raw = [("not json", "application/json"), ("{", "application/json"),
           ('{"a": 1,}', "application/json"), ("", "application/json"),
           (json.dumps(_base_body(operation, session)), "text/plain"),
           ("a=1&b=2", "application/x-www-form-urlencoded"),
           ("[" * 50_000 + "]" * 50_000, "application/json"),          # nested too deeply
           ('{"x": NaN}', "application/json"), ("\xff\xfe", "application/json")]
    for data, content_type in raw:
        assert envelope(api.call(operation.method, path, key, data=data,
                                 content_type=content_type)) == 400, (data[:40], content_type)
    # JSON that is well formed but holds text no database stores: 422 (a body may carry
    # free-form fields whose text the OpenAPI document cannot constrain)
    unstorable = [('{"learner_id": "\\ud800", "test_id": "ml"}', "application/json"),
                  ('{"id": "a\\u0000b", "code": "a\\u0000b", "test_id": "a\\u0000b",'
                   ' "learner_id": "x", "standard": "AI-ML", "standards": ["a\\u0000b"],'
                   ' "model": "2pl", "item_id": "a\\u0000b", "response": "A",'
                   ' "responses": [{"item_id": "a\\u0000b", "response": "A"}]}',
                   "application/json")]
    for data, content_type in unstorable:
        assert envelope(api.call(operation.method, path, key, data=data,
                                 content_type=content_type)) == 422, (data[:40], content_type)
    for value in (None, [], [1, 2], "a string", 5, True):
        envelope(api.call(operation.method, path, key, json=value))
    # over the limit: 413, the body unread
    huge = b'{"x": "' + b"y" * MAX_BODY + b'"}'
    assert envelope(api.call(operation.method, path, key, data=huge,
                             content_type="application/json")) == 413
    # just under it, but no field takes that much: 400
    big = json.dumps({**_base_body(operation, session), "id": "z" * (MAX_BODY - 1000)})
    assert envelope(api.call(operation.method, path, key, data=big,
                             content_type="application/json")) == 400


BAD_IDS = [SQL, "x" * 10_000, "é✓😀", "a%00b", "%ff%fe", "..%2F..%2Fetc%2Fpasswd",
           "1 UNION SELECT * FROM api_keys", "' ; DROP TABLE items; --", "%20", "-1",
           "99999999999999999999999999", "2147483648", "1e3", "0x10"]


@pytest.mark.parametrize("operation", [op for op in OPERATIONS if "<" in op.rule],
                         ids=_label)
def test_hostile_and_unknown_ids_in_paths(hostile, operation):
    api = hostile
    session = api.start("ml", "hostile")
    base = _base_body(operation, session)
    names = re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", operation.rule)
    for bad in BAD_IDS:
        encoded = bad if "%" in bad else quote(bad, safe="")
        path = _path(operation, session["session_id"], {name: encoded for name in names})
        response = api.call(operation.method, path, _key(api, operation), json=base)
        status = ok_or_envelope(response)
        # nothing is found by a hostile id (a PUT of a standard may create it: it is data)
        if operation.rule != "/standards/<code>" or operation.method == "GET":
            assert status in (400, 404), (bad, status)
    # the session routes with a session token and an id that is not its session's
    if "<session_id>" in operation.rule and operation.token:
        for bad in (SQL, "x" * 10_000):
            path = _path(operation, quote(bad, safe=""))
            assert envelope(api.call(operation.method, path, session["token"],
                                     json=base)) == 403


@pytest.mark.parametrize("query", [SQL, "x" * 10_000, "é✓😀", "%00", "%ff", "",
                                   "AI-ML&standard=AI-DE", "AI-ML'--", "*", "%"])
def test_hostile_query_parameters(hostile, query):
    api = hostile
    for path in ("/v1/items", "/v1/responses"):
        encoded = query if "%" in query or "&" in query else quote(query, safe="")
        status = ok_or_envelope(api.call("GET", f"{path}?standard={encoded}", api.admin))
        if query not in ("AI-ML&standard=AI-DE",):
            assert status in (400, 404), (path, query, status)
    listed = api.call("GET", "/v1/items?standard=AI-ML&standard=AI-DE", api.admin)
    assert {i["standard"] for i in listed.json} == {"AI-ML"}           # the first one
    assert api.call("GET", "/v1/items?nonsense=1", api.admin).status_code == 200


def test_hostile_authorization_headers(api):
    for header in ("Bearer " + "x" * 20_000, "Bearer " + SQL, "Bearer irtk_" + "é" * 10,
                   "Bearer irts_%00", "Bearer\tirtk_x", "Bearer  " + api.admin + "x"):
        envelope(api.call("GET", "/v1/standards", headers={"Authorization": header}))


def test_hostile_strings_are_stored_as_text(api):
    """What looks like SQL or is unicode is data, stored and returned as given."""
    for code, title in ((SQL, "Robert'); DROP TABLE standards;--"), ("é✓😀", "∑ ünïcødé")):
        created = api.call("POST", "/v1/standards", api.admin, json={"code": code,
                                                                      "title": title})
        assert created.status_code == 201
        fetched = api.call("GET", f"/v1/standards/{quote(code, safe='')}", api.admin)
        assert fetched.status_code == 200 and fetched.json["title"] == title
    codes = [s["code"] for s in api.call("GET", "/v1/standards", api.admin).json]
    assert SQL in codes and "é✓😀" in codes and "AI-ML" in codes
    session = api.call("POST", "/v1/sessions", api.delivery,
                       json={"test_id": "ml", "learner_id": SQL + " é✓😀"})
    assert session.status_code == 201
    assert api.call("GET", "/v1/tests", api.admin).status_code == 200


def test_big_numbers_in_configurations_are_bounded(api):
    """A test whose configuration asks for more items than exist delivers its bank, and
    never allocates by the number asked for; one that needs more than exist (min_items)
    is refused."""
    for config in ({"pretest": {"count": 10**9}},
                   {"stop": {"max_items": 10**6}}):
        test_id = "big-" + secrets.token_hex(3)
        created = api.call("POST", "/v1/tests", api.admin,
                           json={"id": test_id, "standards": ["AI-RAI"], "config": config})
        assert created.status_code == 201
        session = api.start(test_id)
        assert session["item"]["item_id"].startswith("RAI-")
        report = api.call("POST", "/v1/simulations", api.admin,
                          json={"test_id": test_id, "examinees": 2})
        assert report.status_code == 200
        assert report.json["mean_length"] <= 53
    for config in ({"stop": {"max_items": 10**12, "min_items": 10**12}},
                   {"scoring": {"quadrature": {"range": [-1e308, 1e308]}}},
                   {"stop": {"max_items": "many"}}, {"stop": {"max_items": 1e400}},
                   {"stop": []}, {"content": {}}):
        envelope(api.call("POST", "/v1/tests", api.admin,
                          json={"standards": ["AI-RAI"], "config": config}))


# --- the OpenAPI document ---------------------------------------------------------------

def test_the_openapi_document_is_valid_and_covers_every_route(api):
    response = api.call("GET", "/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.json
    validate_openapi(document)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for operation in OPERATIONS:
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", operation.rule)
        entry = paths[path][operation.method.lower()]
        declared = {p["name"] for p in entry.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([a-z_]+)}", path))
        assert ("security" in entry) == bool(operation.roles or operation.token)
        assert "default" in entry["responses"]
        assert str(operation.status) in entry["responses"]
        if operation.body is not None:
            ref = entry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            name = ref.rsplit("/", 1)[1]
            properties = document["components"]["schemas"][name]["properties"]
            assert set(properties) == {f.data_key or n
                                       for n, f in operation.body().fields.items()}
            # the strict schemas refuse unknown fields, and the document says so
            assert document["components"]["schemas"][name]["additionalProperties"] is False
        if operation.rule.startswith("/items") and operation.method in ("POST", "PUT"):
            assert "requestBody" in entry                      # items keep other keys
            assert document["components"]["schemas"]["ItemDoc"]["additionalProperties"]
    assert document["components"]["schemas"]["ErrorEnvelope"]["required"] == ["error"]
    assert set(document["components"]["schemas"]["ItemView"]["properties"]) == {
        "item_id", "stem", "options", "position"}
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http",
                                                                   "scheme": "bearer"}
