"""An LTI 1.3 tool with Assignment and Grade Services (1EdTech LTI Core 1.3, Security
Framework 1.0, AGS 2.0): the OIDC login, the launch, the tool's keys and the score.

- `Tool.login(params, launch_url)`: the platform's third-party login initiation (``iss``,
  ``login_hint``, ``target_link_uri``, optional ``client_id``, ``lti_message_hint``,
  ``lti_deployment_id``); records a new `state` and `nonce` and returns the URL of the
  platform's OIDC authorization endpoint to redirect the browser to.
- `Tool.launch(id_token, state)`: the platform's form post. The id token is checked as
  the Security Framework asks: RS256 signature against the platform's JWKS (fetched, and
  fetched again for an unknown ``kid``), ``iss``, ``aud`` (the client id; ``azp`` with
  several audiences), ``exp`` and ``iat``, the nonce (the login's, once only), the state
  (issued here less than LOGIN_SECONDS ago), the deployment id (registered), the message
  type (``LtiResourceLinkRequest``) and version (``1.3.0``). The resource link names the
  irtcat test: the custom parameter ``test_id``, else ``test`` in the target link URI's
  query. Then a session is started for the platform's user, as the learner id
  `learner_id(iss, sub)` (an HMAC under a server secret: not guessable from ``sub``).
  Any failed check raises `LaunchRejected` with its reason.
- `Tool.jwks()`: the tool's public key (RSA 2048, made once and kept in the store as
  ``lti-tool``), with the RFC 7638 thumbprint as ``kid``.
- Grade passback: `Tool.score_when_finished` is a finish hook of `Delivery` that only
  queues a ``lti_score`` job for a launched session. `Tool.post_score` (the job) gets an
  access token (client-credentials grant with a JWT assertion signed by the tool's key,
  scope AGS score) and posts ``{lineitem}/scores``: ``scoreGiven`` is the number of
  proficiency levels reached, summed over the test's standards (a standard's first level
  counts 1, its second 2, ...), ``scoreMaximum`` the sum of their level counts. A session
  ended without an estimate is posted ``gradingProgress: Failed`` without a score.
  Network failures and 5xx answers are retried twice (1 s, then 2 s apart).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from datetime import timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from irtcat.itembank import lti as rows
from irtcat.itembank.errors import DataFormatError, NotFoundError
from irtcat.itembank.jobs import Jobs
from irtcat.itembank.schema import utc_now
from irtcat.itembank.sessions import session_snapshot
from irtcat.itembank.signing_keys import signing_key

from .errors import LaunchRejected, PassbackFailed
from .keys import aware

JOB_KIND = "lti_score"
LOGIN_SECONDS = 600                 # a login's state and nonce serve a launch this long
CLOCK_LEEWAY = 60                   # seconds of clock difference allowed on exp and iat
JWKS_REFETCH_SECONDS = 10           # an unknown kid refetches the JWKS at most this often
HTTP_SECONDS = 10
RETRY_DELAYS = (1.0, 2.0)
LEARNER_PREFIX = "lti_"
CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOOL_KEY, LEARNER_SECRET = "lti-tool", "lti-learner"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")     # http allowed for these


def check_platform(data):
    """A platform registration as stored: the PLATFORM_FIELDS of `data`, the URLs https
    (http only on this machine), at least one deployment id; DataFormatError if not."""
    platform = {}
    for name in ("issuer", "client_id"):
        value = data.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= 255:
            raise DataFormatError(f"{name}: a string of 1 to 255 characters")
        platform[name] = value
    deployments = data.get("deployment_ids")
    if not isinstance(deployments, list) or not deployments or not all(
            isinstance(d, str) and 0 < len(d) <= 255 for d in deployments):
        raise DataFormatError("deployment_ids: a list of at least one deployment id")
    platform["deployment_ids"] = list(dict.fromkeys(deployments))
    for name in ("auth_login_url", "token_url", "jwks_url"):
        value = data.get(name)
        if not isinstance(value, str) or len(value) > 1000 or not _web_url(value):
            raise DataFormatError(f"{name}: an https URL (http only for localhost)")
        platform[name] = value
    return platform


def _web_url(text):
    """Whether `text` is an https URL with a host, or an http one of this machine."""
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:                    # a bracketed host that is no IPv6 address, ...
        return False
    return bool(parts.netloc) and (parts.scheme == "https"
                                   or (parts.scheme == "http" and host in LOCAL_HOSTS))


def scores_url(lineitem):
    """The AGS score endpoint of a line item URL: ``/scores`` added to its path."""
    parts = urlsplit(lineitem)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def level_score(result, levels_of):
    """``(scoreGiven, scoreMaximum)`` of a session `result` (`delivery.results`), or None
    without an estimate; `levels_of(code)` lists a standard's levels."""
    if result.get("theta") is None:
        return None
    given = maximum = 0
    for standard in result["standards"]:
        names = [level["name"] for level in levels_of(standard["code"])]
        maximum += len(names)
        if standard["level"] in names:
            given += names.index(standard["level"]) + 1
    return given, maximum


class Tool:
    """The LTI tool on a store; `delivery` starts the launched sessions and reads their
    results; `http`: a requests session (the platform's JWKS, token and score calls)."""

    def __init__(self, store, delivery, http=None):
        self.store, self.database, self.delivery = store, store.database, delivery
        self.http = http or requests.Session()
        self.jobs = Jobs(self.database)
        self._lock = threading.Lock()
        self._key = self._learner_secret = None
        self._platform_keys = {}               # jwks url -> (fetched at, {kid: PyJWK})

    # --- the tool's keys ------------------------------------------------------------

    def private_key(self):
        """The tool's RSA private key (made once, kept in the store)."""
        if self._key is None:
            pem = signing_key(self.database, TOOL_KEY, "RS256", _new_rsa_pem)
            self._key = serialization.load_pem_private_key(pem.encode(), password=None)
        return self._key

    def public_jwk(self):
        """The tool's public key as a JWK with ``kid`` (its RFC 7638 thumbprint),
        ``alg`` RS256 and ``use`` sig."""
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key().public_key(),
                                                 as_dict=True)
        canonical = json.dumps({name: jwk[name] for name in ("e", "kty", "n")},
                               separators=(",", ":"), sort_keys=True)
        thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
        return {**jwk, "kid": thumbprint.rstrip(b"=").decode(), "alg": "RS256", "use": "sig"}

    def jwks(self):
        return {"keys": [self.public_jwk()]}

    def learner_id(self, issuer, subject):
        """The learner id of the platform user `subject` of `issuer`: ``lti_`` and 40 hex
        digits of an HMAC-SHA256 under a server secret."""
        if self._learner_secret is None:
            self._learner_secret = signing_key(self.database, LEARNER_SECRET, "HS256",
                                               lambda: secrets.token_urlsafe(32))
        mac = hmac.new(self._learner_secret.encode(), f"{issuer}\n{subject}".encode(),
                       hashlib.sha256)
        return LEARNER_PREFIX + mac.hexdigest()[:40]

    # --- login and launch -----------------------------------------------------------

    def login(self, params, launch_url):
        """The platform's authorization URL for a login initiation `params` (a mapping
        of the request's form or query); `launch_url` is this tool's launch route, which
        the target link URI must point at. LaunchRejected with the reason if not valid."""
        issuer, hint = params.get("iss"), params.get("login_hint")
        target = params.get("target_link_uri")
        if not issuer or not hint or not target:
            raise LaunchRejected("login: iss, login_hint and target_link_uri are required")
        candidates = rows.platforms_of_issuer(self.database, issuer)
        if params.get("client_id"):
            candidates = [p for p in candidates if p["client_id"] == params["client_id"]]
        if len(candidates) != 1:
            raise LaunchRejected("login: unknown issuer or client id" if not candidates else
                                 "login: the issuer has several client ids: send client_id")
        platform = candidates[0]
        try:
            wanted, given = urlsplit(launch_url), urlsplit(target)
        except ValueError:
            raise LaunchRejected("login: target_link_uri is not a URL") from None
        if (given.scheme, given.netloc, given.path) != (wanted.scheme, wanted.netloc,
                                                        wanted.path):
            raise LaunchRejected("login: target_link_uri is not this tool's launch URL")
        deployment = params.get("lti_deployment_id")
        if deployment and deployment not in platform["deployment_ids"]:
            raise LaunchRejected("login: unknown deployment id")
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        rows.forget_logins(self.database, utc_now() - timedelta(seconds=LOGIN_SECONDS))
        rows.add_login(self.database, platform["id"], state, nonce)
        query = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post",
                 "prompt": "none", "client_id": platform["client_id"],
                 "redirect_uri": urlunsplit(wanted._replace(query="", fragment="")),
                 "login_hint": hint, "state": state, "nonce": nonce}
        if params.get("lti_message_hint"):
            query["lti_message_hint"] = params["lti_message_hint"]
        separator = "&" if urlsplit(platform["auth_login_url"]).query else "?"
        return platform["auth_login_url"] + separator + urlencode(query)

    def launch(self, id_token, state):
        """Validate a launch and start its session: ``{"session_id", "token", "test_id",
        "title", "max_items"}``. LaunchRejected with the reason if any check fails."""
        login = rows.login_of_state(self.database, state) if state else None
        if login is None:
            raise LaunchRejected("unknown state")
        if utc_now() - aware(login["issued_at"]) > timedelta(seconds=LOGIN_SECONDS):
            raise LaunchRejected("the login has expired")
        platform = rows.platform(self.database, login["platform_id"])
        claims = self._verified_claims(id_token or "", platform)
        if rows.nonce_used(self.database, claims["nonce"]):
            raise LaunchRejected("nonce already used (replay)")
        if claims["nonce"] != login["nonce"] or login["used"]:
            raise LaunchRejected("the nonce is not the one of this state")
        deployment = claims.get(CLAIM + "deployment_id")
        if deployment not in platform["deployment_ids"]:
            raise LaunchRejected("unknown deployment id")
        if claims.get(CLAIM + "message_type") != "LtiResourceLinkRequest":
            raise LaunchRejected("message type is not LtiResourceLinkRequest")
        if claims.get(CLAIM + "version") != "1.3.0":
            raise LaunchRejected("LTI version is not 1.3.0")
        if not isinstance(claims.get(CLAIM + "resource_link"), dict) \
                or not claims[CLAIM + "resource_link"].get("id"):
            raise LaunchRejected("no resource link id")
        test_id = _test_of(claims)
        if not rows.use_login(self.database, state, claims["nonce"]):
            raise LaunchRejected("nonce already used (replay)")
        try:
            test = self.delivery.test(test_id)
        except NotFoundError:
            raise LaunchRejected(f"the resource link names no test {test_id[:64]!r}") from None
        started = self.delivery.start_session(
            test_id, learner_id=self.learner_id(claims["iss"], claims["sub"]))
        endpoint = claims.get(AGS_ENDPOINT) if isinstance(claims.get(AGS_ENDPOINT),
                                                          dict) else {}
        lineitem = endpoint.get("lineitem") if SCORE_SCOPE in endpoint.get("scope", ()) \
            else None
        rows.add_launch(self.database, started["session_id"], platform["id"],
                        str(claims["sub"])[:255], deployment, lineitem)
        return {"session_id": started["session_id"], "token": started["token"],
                "test_id": test_id, "title": test["title"] or test_id,
                "max_items": started["max_items"]}

    def _verified_claims(self, id_token, platform):
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError:
            raise LaunchRejected("the id_token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise LaunchRejected("the id_token is not signed RS256")
        key = self._platform_key(platform["jwks_url"], header.get("kid"))
        try:
            claims = jwt.decode(id_token, key, algorithms=["RS256"],
                                audience=platform["client_id"], issuer=platform["issuer"],
                                leeway=CLOCK_LEEWAY,
                                options={"require": ["exp", "iat", "iss", "aud", "sub",
                                                     "nonce"]})
        except jwt.InvalidSignatureError:
            raise LaunchRejected("bad signature") from None
        except jwt.ExpiredSignatureError:
            raise LaunchRejected("the id_token has expired") from None
        except jwt.InvalidAudienceError:
            raise LaunchRejected("wrong audience: not this tool's client id") from None
        except jwt.InvalidIssuerError:
            raise LaunchRejected("wrong issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise LaunchRejected(f"the id_token has no {error.claim} claim") from None
        except jwt.InvalidTokenError as error:
            raise LaunchRejected(f"invalid id_token: {str(error)[:100]}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if (len(audiences) > 1 or "azp" in claims) \
                and claims.get("azp") != platform["client_id"]:
            raise LaunchRejected("azp is not this tool's client id")
        return claims

    def _platform_key(self, jwks_url, kid):
        """The platform's public key `kid` (the only one when the token names none),
        from its JWKS, fetched again when `kid` is unknown."""
        for refetch in (False, True):
            with self._lock:
                fetched_at, keys = self._platform_keys.get(jwks_url, (None, {}))
            if refetch or fetched_at is None:
                if fetched_at is not None and time.monotonic() - fetched_at \
                        < JWKS_REFETCH_SECONDS:
                    break
                keys = self._fetch_jwks(jwks_url)
            if kid is None and len(keys) == 1:
                return next(iter(keys.values())).key
            if kid in keys:
                return keys[kid].key
        raise LaunchRejected("the id_token's key is not in the platform's JWKS")

    def _fetch_jwks(self, jwks_url):
        try:
            answer = self.http.get(jwks_url, timeout=HTTP_SECONDS)
            answer.raise_for_status()
            found = jwt.PyJWKSet.from_dict(answer.json())
        except (requests.RequestException, ValueError, jwt.PyJWKSetError) as error:
            raise LaunchRejected(f"cannot read the platform's JWKS: "
                                 f"{type(error).__name__}") from None
        keys = {key.key_id: key for key in found.keys}
        with self._lock:
            self._platform_keys[jwks_url] = (time.monotonic(), keys)
        return keys

    # --- grade passback -------------------------------------------------------------

    def score_when_finished(self, session_id, learner_id):
        """`Delivery`'s finish hook: queue the score of a session an LTI launch started
        (a learner id of LEARNER_PREFIX; a launch without a line item posts nothing)."""
        if learner_id.startswith(LEARNER_PREFIX):
            self.jobs.enqueue(JOB_KIND, {"session_id": session_id}, "lti")

    def score_body(self, session_id, user_id):
        """The AGS score of a finished session for the platform user `user_id`."""
        row, _ = session_snapshot(self.database, session_id)
        result = self.delivery.result(session_id)
        body = {"userId": user_id, "activityProgress": "Completed",
                "timestamp": _timestamp(row.finished_at or utc_now())}
        scored = level_score(result, lambda code: self.delivery.catalog.standard(code)[1])
        if scored is None:
            return {**body, "gradingProgress": "Failed",
                    "comment": "the session ended before an estimate"}
        levels = ", ".join(f"{s['code']}: {s['level'] or 'below the first level'}"
                           for s in result["standards"])
        return {**body, "scoreGiven": scored[0], "scoreMaximum": scored[1],
                "gradingProgress": "FullyGraded", "comment": f"levels reached: {levels}"}

    def post_score(self, session_id):
        """Post a launched session's score to its line item (the ``lti_score`` job):
        ``{"session_id", "posted", "status"?, "score"?}``; NotFoundError for a session
        no launch started, PassbackFailed when the platform refuses."""
        launched = rows.launch(self.database, session_id)
        if launched is None:
            raise NotFoundError(f"session {session_id} was not started by an LTI launch")
        if launched["lineitem"] is None:
            return {"session_id": session_id, "posted": False}
        platform = rows.platform(self.database, launched["platform_id"])
        body = self.score_body(session_id, launched["subject"])
        token = self._access_token(platform)
        answer = self._send("post", scores_url(launched["lineitem"]), data=json.dumps(body),
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": SCORE_MEDIA_TYPE})
        return {"session_id": session_id, "posted": True, "status": answer.status_code,
                "score": body}

    def _access_token(self, platform):
        now = int(time.time())
        assertion = jwt.encode(
            {"iss": platform["client_id"], "sub": platform["client_id"],
             "aud": platform["token_url"], "iat": now, "exp": now + 300,
             "jti": secrets.token_urlsafe(16)},
            self.private_key(), algorithm="RS256", headers={"kid": self.public_jwk()["kid"]})
        answer = self._send("post", platform["token_url"], data={
            "grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion, "scope": SCORE_SCOPE})
        try:
            return answer.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            raise PassbackFailed("the platform's token endpoint gave no access_token") \
                from None

    def _send(self, method, url, **arguments):
        """The platform's 2xx answer to a request, retried after a network failure or a
        5xx; PassbackFailed for a 4xx or when the retries are spent."""
        failure = ""
        for delay in (*RETRY_DELAYS, None):
            try:
                answer = self.http.request(method, url, timeout=HTTP_SECONDS, **arguments)
            except requests.RequestException as error:
                failure = f"{url}: {type(error).__name__}"
            else:
                if answer.status_code < 300:
                    return answer
                failure = f"{url} answered {answer.status_code}"
                if answer.status_code < 500 and answer.status_code != 429:
                    break
            if delay is not None:
                time.sleep(delay)
        raise PassbackFailed(f"grade passback failed: {failure}")


def _test_of(claims):
    """The irtcat test a launch names: the custom parameter ``test_id``, else ``test``
    in the target link URI's query; LaunchRejected without one."""
    custom = claims.get(CLAIM + "custom")
    if isinstance(custom, dict) and isinstance(custom.get("test_id"), str) \
            and custom["test_id"]:
        return custom["test_id"]
    target = claims.get(CLAIM + "target_link_uri")
    named = parse_qs(urlsplit(target).query).get("test") if isinstance(target, str) else None
    if named:
        return named[0]
    raise LaunchRejected("the resource link names no test (custom test_id)")


def _new_rsa_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _timestamp(moment):
    """ISO 8601 with milliseconds and Z, as AGS examples give it."""
    return aware(moment).astimezone(timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


__all__ = ["JOB_KIND", "LaunchRejected", "PassbackFailed", "Tool", "check_platform",
           "level_score", "scores_url"]
