"""LTI 1.3 with Assignment and Grade Services against an in-process mock platform: its own
RSA key and JWKS, an OAuth 2 token endpoint and a line item, served over HTTP on this
machine (the tool's worker reaches them as it would an LMS).

The round trip: login initiation -> the platform's id token posted to the launch -> the
learner answers on the session the launch started -> the finished session's score
arrives at ``{lineitem}/scores`` with the body and headers of AGS 2.0 and a token the
platform gave for the tool's signed assertion. Each rejected launch is refused (400) and
its reason logged (audit event ``lti_launch_failed``).
"""

import json
import pathlib
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from irtcat.delivery.lti import LEARNER_PREFIX

FRAMEWORK = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo" / "framework.json"
CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LAUNCH_URL = "http://localhost/lti/launch"
CLIENT_ID, DEPLOYMENT = "irtcat-tool", "deployment-1"


class MockPlatform:
    """An LMS: an RSA key (kid ``platform-1``), its JWKS, a token endpoint that checks the
    tool's assertion against the tool's JWKS, and one line item recording the scores
    posted to it. `failures` answers that many score posts 503 first; `pages` maps a
    path to an HTML page it serves (the platform's side of a browser's launch)."""

    def __init__(self, tool_jwks):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "platform-1"
        self.tool_keys = jwt.PyJWKSet.from_dict(tool_jwks)
        self.token_requests, self.scores, self.failures, self.pages = [], [], 0, {}
        self.access_token = "at-" + secrets.token_hex(8)
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path in platform.pages:
                    data = platform.pages[self.path].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    return self.wfile.write(data)
                if self.path == "/jwks":
                    public = jwt.algorithms.RSAAlgorithm.to_jwk(platform.key.public_key(),
                                                                as_dict=True)
                    return self._send(200, {"keys": [{**public, "kid": platform.kid,
                                                      "alg": "RS256", "use": "sig"}]})
                return self._send(404, {})

            def do_POST(self):
                text = self.rfile.read(int(self.headers["Content-Length"])).decode()
                if self.path == "/token":
                    form = {k: v[0] for k, v in parse_qs(text).items()}
                    platform.token_requests.append(form)
                    return self._send(200, {"access_token": platform.access_token,
                                            "token_type": "Bearer", "expires_in": 3600,
                                            "scope": SCORE_SCOPE})
                if self.path == "/lineitems/7/lineitem/scores":
                    if platform.failures:
                        platform.failures -= 1
                        return self._send(503, {})
                    platform.scores.append((dict(self.headers), json.loads(text)))
                    return self._send(200, {})
                return self._send(404, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def registration(self):
        return {"issuer": "https://lms.example.edu", "client_id": CLIENT_ID,
                "deployment_ids": [DEPLOYMENT], "auth_login_url": f"{self.base}/auth",
                "token_url": f"{self.base}/token", "jwks_url": f"{self.base}/jwks"}

    def id_token(self, nonce, key=None, **changes):
        """A resource link launch's id token for test "credential", signed with the
        platform's key (or `key`, under the platform's kid); `changes` replace claims."""
        now = int(time.time())
        claims = {
            "iss": "https://lms.example.edu", "aud": CLIENT_ID, "sub": "lms-user-42",
            "iat": now, "exp": now + 300, "nonce": nonce, "name": "Ada Learner",
            CLAIM + "message_type": "LtiResourceLinkRequest", CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": DEPLOYMENT, CLAIM + "target_link_uri": LAUNCH_URL,
            CLAIM + "resource_link": {"id": "link-1", "title": "AI credential"},
            CLAIM + "custom": {"test_id": "credential"},
            "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": {
                "scope": [SCORE_SCOPE],
                "lineitems": f"{self.base}/lineitems",
                "lineitem": f"{self.base}/lineitems/7/lineitem"},
        }
        claims.update(changes)
        return jwt.encode(claims, key or self.key, algorithm="RS256",
                          headers={"kid": self.kid})

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def platform(api):
    mock = MockPlatform(api.client.get("/lti/jwks").json)
    registered = api.call("POST", "/v1/lti/platforms", api.admin, json=mock.registration())
    assert registered.status_code == 201, registered.json
    yield mock
    mock.close()


def login(api):
    """An OIDC login initiation; the state and nonce of the platform's redirect."""
    answer = api.client.post("/lti/login", data={
        "iss": "https://lms.example.edu", "login_hint": "lms-user-42",
        "target_link_uri": LAUNCH_URL, "client_id": CLIENT_ID,
        "lti_message_hint": "link-1", "lti_deployment_id": DEPLOYMENT})
    assert answer.status_code == 302, answer.get_data(True)
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    return query


def launch(api, id_token, state):
    return api.client.post("/lti/launch", data={"id_token": id_token, "state": state})


def rejected(api, caplog, answer, reason):
    """The launch was refused (400, the envelope) and its reason logged."""
    assert answer.status_code == 400, answer.get_data(True)
    assert answer.json["error"]["code"] == "lti_rejected"
    assert reason in answer.json["error"]["message"]
    logged = [record for record in caplog.records
              if record.getMessage() == "lti_launch_failed"]
    assert logged and reason in logged[-1].reason, [r.getMessage() for r in caplog.records]


def expected_score(result):
    """(scoreGiven, scoreMaximum) from the demo framework's levels: per standard its
    level's rank (1 for the first), out of its number of levels (a standard without
    levels uses its parent's)."""
    standards = {s["code"]: s for s in json.loads(FRAMEWORK.read_text())["standards"]}

    def levels(code):
        return [level["name"] for level in standards[code].get("levels") or
                standards[standards[code]["parent"]]["levels"]]
    given = sum(levels(s["code"]).index(s["level"]) + 1 for s in result["standards"]
                if s["level"] is not None)
    return given, sum(len(levels(s["code"])) for s in result["standards"])


def test_the_login_redirects_to_the_platform_with_state_and_nonce(api, platform):
    query = login(api)
    assert query["scope"] == "openid" and query["response_type"] == "id_token"
    assert query["response_mode"] == "form_post" and query["prompt"] == "none"
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == LAUNCH_URL
    assert query["login_hint"] == "lms-user-42" and query["lti_message_hint"] == "link-1"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert query["state"] != login(api)["state"]


def test_launch_test_and_score_round_trip(api, platform):
    query = login(api)
    answer = launch(api, platform.id_token(query["nonce"]), query["state"])
    assert answer.status_code == 303, answer.get_data(True)
    location = urlsplit(answer.headers["Location"])
    assert location.path == "/" and answer.headers["Cache-Control"] == "no-store"
    given = {k: v[0] for k, v in parse_qs(location.fragment).items()}
    assert given["lti_test"] == "credential"
    session_id, token = given["lti_session"], given["lti_token"]

    # the learner answers on the learner page's routes, with the session's token
    state = api.call("GET", f"/v1/sessions/{session_id}", token).json
    while state["status"] == "active":
        item = state["item"]
        choice = item["options"][len(item["options"]) // 2]["id"]
        state = api.call("POST", f"/v1/sessions/{session_id}/responses", token,
                         json={"item_id": item["item_id"], "response": choice}).json
    for _ in range(600):                          # the worker posts the score
        if platform.scores:
            break
        time.sleep(0.05)
    assert len(platform.scores) == 1

    # the token request: client credentials with the tool's RS256 assertion
    form = platform.token_requests[0]
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == \
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["scope"] == SCORE_SCOPE
    kid = jwt.get_unverified_header(form["client_assertion"])["kid"]
    assertion = jwt.decode(form["client_assertion"], platform.tool_keys[kid].key,
                           algorithms=["RS256"], audience=f"{platform.base}/token")
    assert assertion["iss"] == assertion["sub"] == CLIENT_ID and assertion["jti"]

    # the score: AGS 2.0's media type, the platform's token, the user and the levels
    headers, body = platform.scores[0]
    assert headers["Content-Type"] == "application/vnd.ims.lis.v1.score+json"
    assert headers["Authorization"] == f"Bearer {platform.access_token}"
    result = api.app.extensions["irtcat"]["delivery"].result(session_id)
    assert result["theta"] is not None
    assert (body["scoreGiven"], body["scoreMaximum"]) == expected_score(result)
    assert body["scoreMaximum"] == 9                      # three standards, three levels
    assert body["userId"] == "lms-user-42"
    assert body["activityProgress"] == "Completed"
    assert body["gradingProgress"] == "FullyGraded"
    assert body["timestamp"].endswith("Z") and "T" in body["timestamp"]


def test_the_learner_id_is_not_the_platforms_user_id(api, platform):
    query = login(api)
    given = parse_qs(urlsplit(launch(api, platform.id_token(query["nonce"]),
                                     query["state"]).headers["Location"]).fragment)
    row = api.app.extensions["irtcat"]["delivery"]._snapshot(given["lti_session"][0])[0]
    assert row.learner_id.startswith(LEARNER_PREFIX) and "lms-user-42" not in row.learner_id
    tool = api.app.extensions["irtcat"]["lti"]
    assert row.learner_id == tool.learner_id("https://lms.example.edu", "lms-user-42")
    assert row.learner_id != tool.learner_id("https://other.example", "lms-user-42")


def test_a_failed_score_post_is_retried(api, platform):
    platform.failures = 1                         # the line item answers 503 once
    query = login(api)
    given = parse_qs(urlsplit(launch(api, platform.id_token(query["nonce"]),
                                     query["state"]).headers["Location"]).fragment)
    session_id = given["lti_session"][0]
    session = {"session_id": session_id, "token": given["lti_token"][0]}
    for _ in range(5):                            # the test's minimum length
        item = api.call("GET", f"/v1/sessions/{session_id}", session["token"]).json["item"]
        api.answer(session, item["item_id"], item["options"][0]["id"])
    api.app.extensions["irtcat"]["delivery"].finish(session_id)
    for _ in range(600):
        if platform.scores:
            break
        time.sleep(0.05)
    assert platform.failures == 0 and len(platform.scores) == 1


def test_a_session_no_launch_started_queues_no_score(api, platform):
    jobs = api.app.extensions["irtcat"]["lti"].jobs
    before = jobs.queued_count()
    session = api.start("ml", "lti-not")
    api.app.extensions["irtcat"]["delivery"].finish(session["session_id"])
    assert jobs.queued_count() == before and not platform.token_requests


def test_bad_signature_is_rejected(api, platform, caplog):
    query = login(api)
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rejected(api, caplog, launch(api, platform.id_token(query["nonce"], key=impostor),
                                 query["state"]), "bad signature")


def test_wrong_audience_is_rejected(api, platform, caplog):
    query = login(api)
    rejected(api, caplog, launch(api, platform.id_token(query["nonce"], aud="another-tool"),
                                 query["state"]), "wrong audience")


def test_replayed_nonce_is_rejected(api, platform, caplog):
    query = login(api)
    id_token = platform.id_token(query["nonce"])
    assert launch(api, id_token, query["state"]).status_code == 303
    rejected(api, caplog, launch(api, id_token, query["state"]), "nonce already used")
    fresh = login(api)                  # the used token with another login's state
    rejected(api, caplog, launch(api, id_token, fresh["state"]), "nonce already used")


def test_expired_token_is_rejected(api, platform, caplog):
    query = login(api)
    now = int(time.time())
    rejected(api, caplog, launch(api, platform.id_token(query["nonce"], iat=now - 7200,
                                                        exp=now - 3600), query["state"]),
             "expired")


def test_unknown_deployment_is_rejected(api, platform, caplog):
    query = login(api)
    rejected(api, caplog, launch(api, platform.id_token(
        query["nonce"], **{CLAIM + "deployment_id": "deployment-9"}), query["state"]),
        "unknown deployment")


def test_wrong_state_is_rejected(api, platform, caplog):
    query = login(api)
    rejected(api, caplog, launch(api, platform.id_token(query["nonce"]),
                                 secrets.token_urlsafe(32)), "unknown state")


def test_another_logins_nonce_is_rejected(api, platform, caplog):
    first, second = login(api), login(api)
    rejected(api, caplog, launch(api, platform.id_token(first["nonce"]), second["state"]),
             "not the one of this state")


def test_a_login_from_an_unknown_issuer_is_rejected(api, platform, caplog):
    answer = api.client.post("/lti/login", data={
        "iss": "https://unknown.example", "login_hint": "x", "target_link_uri": LAUNCH_URL})
    rejected(api, caplog, answer, "unknown issuer")
    answer = api.client.post("/lti/login", data={
        "iss": "https://lms.example.edu", "login_hint": "x",
        "target_link_uri": "https://elsewhere.example/launch"})
    rejected(api, caplog, answer, "not this tool's launch URL")


def test_platforms_are_listed_and_removed(api, platform):
    listed = api.call("GET", "/v1/lti/platforms", api.admin).json
    assert [p["issuer"] for p in listed] == ["https://lms.example.edu"]
    again = api.call("POST", "/v1/lti/platforms", api.admin, json=platform.registration())
    assert again.status_code == 409
    assert api.call("DELETE", f"/v1/lti/platforms/{listed[0]['id']}",
                    api.admin).status_code == 204
    assert api.call("GET", "/v1/lti/platforms", api.admin).json == []
    assert api.call("DELETE", f"/v1/lti/platforms/{listed[0]['id']}",
                    api.admin).status_code == 404
