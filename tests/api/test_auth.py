"""Who may call what (spec/API.md "Authentication and roles"), for every route the app
declares: the table is `api.app.OPERATIONS`, so a new route is covered as soon as it
exists. Missing, unknown or revoked key: 401; known key with the wrong role, a session
token outside its session's token routes, or a delivery key on a session another key
started: 403."""

import re
import secrets
import time

import pytest

from irtcat.api.app import OPERATIONS
from irtcat.delivery.keys import REVOCATION_CHECK_SECONDS, create_key, revoke_key
from irtcat.itembank.schema import KEY_ROLES

ROLES = KEY_ROLES      # every role: each route refuses the roles it does not name
# What an active session does not have yet, 409: a passed session's credential, and the
# consent to share it
NOT_YET = {("GET", "/sessions/<session_id>/credential"),
           ("POST", "/sessions/<session_id>/consent")}


def _label(operation):
    return f"{operation.method} {operation.rule}"


def _envelope(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(True))
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def _valid_body(operation, session, suffix):
    """A body the route accepts, so the right role gets past validation too."""
    bodies = {
        ("POST", "/standards"): {"code": f"AUTH-{suffix}", "title": "Auth check"},
        ("PUT", "/standards/<code>"): {"title": "Data engineering for AI"},
        ("POST", "/items"): {"id": f"AUTH-{suffix}", "standard": "AI-ML", "model": "2pl",
                             "status": "pretest"},
        ("PUT", "/items/<item_id>"): {"id": "ML-002", "standard": "AI-ML", "model": "2pl",
                                      "status": "operational", "tags": ["regularization"]},
        ("POST", "/tests"): {"id": f"auth-{suffix}", "standards": ["AI-ML"]},
        ("POST", "/sessions"): {"test_id": "ml", "learner_id": "auth-learner"},
        ("POST", "/public/sessions"): {"test_id": "open"},
        ("POST", "/sessions/<session_id>/responses"): {
            "item_id": session["item"]["item_id"],
            "response": session["item"]["options"][0]["id"]},
        ("POST", "/score"): {"responses": [{"item_id": f"ML-{n:03d}", "response": n % 2}
                                           for n in range(1, 11)]},
        # an unknown standard: the route answers 404 before starting a background run
        ("POST", "/calibrations"): {"standard": "NO-SUCH-STANDARD", "source": "log"},
        ("POST", "/simulations"): {"test_id": "ml", "examinees": 3, "seed": 4},
        # a standard without a published bank (the parent AI): 409 before queueing DIF
        ("POST", "/dif"): {"standard": "AI", "attribute": "group", "focal": "F"},
        # AI-DE has no answers: its pretest items wait (200), its drift is a conflict (409)
        ("POST", "/standards/<code>/online-calibration"): {"settings": {}},
        ("POST", "/standards/<code>/drift"): {"mode": "each"},
        ("POST", "/case"): {
            "CFDocument": {"identifier": "0b0e1f7a-5c1d-4c2e-9d3f-3a1b2c4d5e6f",
                           "title": "Auth check", "creator": "tests"},
            "CFItems": [{"identifier": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                         "fullStatement": "Auth check", "humanCodingScheme": "AUTH-CASE"}]},
        ("PUT", "/roles"): {"format": "irtcat-roles/1", "roles": [
            {"id": "ml-engineer", "title": "ML engineer", "required": {"AI-ML": "proficient"}}]},
        # the session is active: consent is refused (409) once past authorization
        ("POST", "/sessions/<session_id>/consent"): {"contact": "ada@example.org"},
        ("POST", "/lti/platforms"): {
            "issuer": f"https://lms-{suffix}.example", "client_id": "auth",
            "deployment_ids": ["1"], "auth_login_url": "https://lms.example/auth",
            "token_url": "https://lms.example/token", "jwks_url": "https://lms.example/jwks"},
    }
    if (operation.method, operation.rule) in bodies:
        return bodies[(operation.method, operation.rule)]
    assert operation.body is None, f"no valid body for {_label(operation)}: add one here"
    return None


def _path(operation, session_id):
    values = {"code": "AI-DE", "item_id": "ML-002", "test_id": "credential",
              "session_id": session_id, "run_id": "987654", "job_id": "987654",
              "platform_id": "987654"}
    names = re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", operation.rule)
    unknown = [name for name in names if name not in values]
    assert not unknown, f"no id for path parameter {unknown[0]!r}: add one here"
    return "/v1" + re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: values[m.group(1)],
                          operation.rule)


def test_the_table_covers_every_route(api):
    """Every rule of the app's v1 blueprint is declared in OPERATIONS (bar the OpenAPI
    document, which is public by design)."""
    declared = {(op.method, "/v1" + op.rule) for op in OPERATIONS}
    registered = {(method, rule.rule) for rule in api.app.url_map.iter_rules()
                  if rule.rule.startswith("/v1/") for method in rule.methods
                  if method not in ("HEAD", "OPTIONS")}
    assert registered - declared == {("GET", "/v1/openapi.json")}
    assert len(declared) == len(OPERATIONS)


def test_the_command_line_offers_every_key_role():
    from irtcat.api import serve  # written out there: the command line starts fast

    assert serve.KEY_ROLES == KEY_ROLES


@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
def test_who_may_call(api, operation):
    session = api.start("ml", "learner-auth")
    other = api.start("ml", "learner-other")
    path = _path(operation, session["session_id"])
    body = _valid_body(operation, session, secrets.token_hex(3))

    def call(key=None, headers=None):
        return api.call(operation.method, path, key, json=body, headers=headers or {})

    if not operation.roles and not operation.token:   # public: health, the learner page's
        for key in (None, "irtk_unknown", api.admin, api.delivery, session["token"]):
            assert call(key).status_code == operation.status
        return

    # no key, malformed Authorization headers, unknown keys and tokens: 401
    _envelope(call(), 401)
    for header in ("", "Bearer", "Bearer ", "Basic " + api.admin, api.admin,
                   "bearer" + api.admin):
        _envelope(call(headers={"Authorization": header}), 401)
    for unknown in ("irtk_" + secrets.token_urlsafe(32), "irts_" + secrets.token_urlsafe(24),
                    "nonsense", api.admin[:-1], api.admin + "x", "' OR 1=1 --"):
        _envelope(call(unknown), 401)

    # a revoked key, of each role, is 401 even on a route that role could call
    for role in ROLES:
        revoked = create_key(api.store.database, role)
        assert revoke_key(api.store.database, revoked) == 1
        _envelope(call(revoked), 401)

    # a known key of the wrong role: 403
    for role in ROLES:
        if role not in operation.roles:
            _envelope(call(create_key(api.store.database, role)), 403)

    # session tokens
    if operation.token:
        _envelope(call(other["token"]), 403)                      # another session's token
        assert call(session["token"]).status_code == (
            409 if (operation.method, operation.rule) in NOT_YET else operation.status)
    elif "<session_id>" in operation.rule:
        _envelope(call(session["token"]), 403)                    # its own, wrong route
        _envelope(call(other["token"]), 403)
    else:
        _envelope(call(session["token"]), 403)

    # a session belongs to the delivery key that started it: another delivery key is 403
    if "<session_id>" in operation.rule:
        _envelope(call(create_key(api.store.database, "delivery")), 403)

    # the right role gets past authorization (a fresh key: not the fixture's only; for a
    # session's routes, the key that started it)
    for role in operation.roles:
        owner = api.delivery if "<session_id>" in operation.rule and role == "delivery" \
            else None
        status = call(owner or create_key(api.store.database, role)).status_code
        assert status not in (401, 403), status
        if operation.rule not in ("/calibrations/<int:run_id>",
                                  "/calibrations/<int:run_id>/publish",
                                  "/calibrations/<int:run_id>/report", "/calibrations",
                                  "/jobs/<int:job_id>", "/jobs/<int:job_id>/result",
                                  "/standards/<code>/online-calibration/<int:run_id>/report",
                                  "/standards/<code>/drift/<int:job_id>/report",
                                  "/lti/platforms/<int:platform_id>"):
            assert status < 300 or (operation.method, status) == ("POST", 409) or \
                ((operation.method, operation.rule) in NOT_YET and status == 409), status


def test_a_token_never_opens_another_sessions_routes(api):
    """A token is bound to its session: with a session id of another session in the path,
    even the token routes are 403, and the other session is unchanged."""
    mine, theirs = api.start("ml", "a"), api.start("ml", "b")
    path = f"/v1/sessions/{theirs['session_id']}"
    _envelope(api.call("GET", path, mine["token"]), 403)
    _envelope(api.answer(theirs, theirs["item"]["item_id"],
                         theirs["item"]["options"][0]["id"], key=mine["token"]), 403)
    state = api.call("GET", path, api.delivery).json
    assert state["position"] == 1 and state["item"] == theirs["item"]


def test_a_key_revoked_mid_session_ends_its_sessions_tokens_too(api):
    """Issue finding 5: a session's token outlived the key that started it."""
    key = create_key(api.store.database, "delivery")
    response = api.call("POST", "/v1/sessions", key,
                        json={"test_id": "ml", "learner_id": "revoked-later"})
    assert response.status_code == 201
    session = response.json
    assert api.call("GET", f"/v1/sessions/{session['session_id']}",
                    session["token"]).status_code == 200
    assert revoke_key(api.store.database, key) == 1
    _envelope(api.call("GET", f"/v1/sessions/{session['session_id']}", key), 401)
    time.sleep(REVOCATION_CHECK_SECONDS + 0.1)      # the worker re-checks the key this often
    refused = api.answer(session, session["item"]["item_id"],
                         session["item"]["options"][0]["id"])
    assert _envelope(refused, 401)["code"] == "token_expired"
    _envelope(api.call("GET", f"/v1/sessions/{session['session_id']}", session["token"]), 401)
