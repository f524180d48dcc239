"""The v1 HTTP API (spec/API.md): an app factory, every route, one error envelope.

Each route is declared once with `_route`: its role, request schema and response
schema. That one declaration registers the Flask view, checks the caller's key,
validates the body, dumps the response through its schema (so only declared
fields leave the server) and feeds the OpenAPI document at /v1/openapi.json.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from dataclasses import dataclass
from functools import wraps

import numpy as np
from flask import Blueprint, Flask, Response, g, jsonify, request
from marshmallow import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from irtcat.calibration.runs import start_calibration
from irtcat.calibration.workflow import CalibrationInputError
from irtcat.itembank import DataFormatError, ResponseLog
from irtcat.itembank.database import Database, upgrade
from irtcat.itembank.delivery import (
    ConflictError,
    Delivery,
    InvalidAnswerError,
    TimeLimitError,
    TokenExpiredError,
)
from irtcat.itembank.etags import PreconditionFailed, bank_tag, expect, item_tag, standard_tag
from irtcat.itembank.monitoring import readiness
from irtcat.itembank.records import parse_standard
from irtcat.itembank.store import NotFoundError, Store

from . import long_work, observability, schemas
from .pages import pages
from .quotas import QuotaExceeded, Quotas

MAX_BODY = 8 * 2**20
MAX_RUN_ID = 2**31 - 1
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 412: "precondition_failed",
                413: "payload_too_large", 414: "uri_too_long", 415: "unsupported_media_type",
                422: "unprocessable", 429: "too_many_requests",
                431: "request_header_fields_too_large", 500: "internal_error",
                501: "not_implemented", 503: "service_unavailable"}
log = logging.getLogger("irtcat.api")


class ApiError(Exception):
    def __init__(self, status, message, code=None, details=None):
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or STATUS_CODES.get(status, "error")
        self.details = details or {}


@dataclass(frozen=True)
class Operation:
    rule: str
    method: str
    roles: tuple
    token: bool
    body: type | None
    answer: type | None
    status: int
    summary: str
    many: bool = False


OPERATIONS: list = []
v1 = Blueprint("v1", __name__, url_prefix="/v1")


def _route(rule, method, *, roles=(), token=False, body=None, answer=None, status=200,
           many=False, summary=""):
    """Register a view: auth, body validation, response dumping, OpenAPI entry."""
    operation = Operation(rule, method, tuple(roles), token, body, answer, status, summary,
                          many)
    OPERATIONS.append(operation)
    # Schemas keep no state between loads and dumps: one instance each serves every request.
    body_schema = body() if body is not None else None
    answer_schema = answer(many=many) if answer is not None else None

    def register(view):
        @wraps(view)
        def handle(**kwargs):
            if roles or token:
                _authorize(operation, kwargs)
            _check_text([*kwargs.values(), *request.args.values()], "the URL")
            if body is not None:
                payload = _json_body()
                if payload is None:
                    raise ApiError(400, "the body must be JSON (Content-Type: "
                                        "application/json)", "validation_error")
                try:
                    kwargs["data"] = body_schema.load(payload)
                except ValidationError as error:
                    raise ApiError(400, "the request body is not valid", "validation_error",
                                   {"fields": error.messages}) from None
            result = view(**kwargs)
            if isinstance(result, Response):
                return result
            if answer_schema is not None:
                result = answer_schema.dump(result)
            return jsonify(result), status
        v1.add_url_rule(rule, f"{method.lower()}_{view.__name__}", handle, methods=[method])
        return view
    return register


def _json_body():
    """The request's JSON (None when it is not JSON), its strings checked."""
    try:
        payload = request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "the JSON body is nested too deeply", "validation_error") from None
    _check_text([payload], "the body")
    return payload


def _check_text(values, where):
    """400 for a string no database can store: a NUL character or a lone surrogate."""
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(400, f"{where} holds text that is not valid UTF-8",
                               "validation_error") from None
            if "\x00" in value:
                raise ApiError(400, f"{where} holds a NUL character", "validation_error")


def _authorize(operation, kwargs):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        _auth_failure(operation, "no bearer credential")
        raise ApiError(401, "an Authorization: Bearer <key> header is required")
    try:
        who = g.delivery.authenticate(header[7:].strip())
    except TokenExpiredError as error:
        _auth_failure(operation, "expired token")
        raise ApiError(401, str(error), "token_expired") from None
    if who is None:
        _auth_failure(operation, "unknown or revoked credential")
        raise ApiError(401, "unknown or revoked key")
    kind, identity, role = who
    if kind == "token":
        if not operation.token or kwargs.get("session_id") != identity:
            raise ApiError(403, "this token opens one session's current item only")
    elif role not in operation.roles:
        raise ApiError(403, f"this route needs a {' or '.join(operation.roles)} key"
                       if operation.roles else "this route takes a session token")
    elif "session_id" in kwargs:
        _check_text([kwargs["session_id"]], "the URL")       # before it reaches a query
        if g.delivery.owner_key(kwargs["session_id"]) != identity:
            raise ApiError(403, "this session was started with another key")
    g.principal = who


def _auth_failure(operation, reason):
    """Log a failed authentication and count it against the client's address: past the
    quota, failures are answered 429 instead of 401. A valid credential from the same
    address still passes: keys and tokens are too long to guess, and one client behind a
    school's shared address must not lock its classmates out."""
    observability.audit("auth_failure", reason=reason, route=operation.rule,
                        method=operation.method, client=request.remote_addr)
    g.quotas.hit("auth_failure", client_identity())


def client_identity():
    """The client's address as quotas count it: an IPv6 address by its /64 (one host
    holds a whole /64 and would otherwise count afresh from each address)."""
    address = request.remote_addr or ""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


# --- routes ---------------------------------------------------------------------------

@_route("/ready", "GET", summary="readiness: the database answers and is at this release's "
                                 "schema (503 otherwise)")
def ready():
    ok, details = readiness(g.store.database)
    if not ok:
        raise ApiError(503, "the service is not ready", "not_ready", details)
    return {"status": "ready", **details}


@_route("/metrics", "GET", roles=("admin",),
        summary="Prometheus metrics (text exposition format): request latency by route, "
                "answers, active sessions, calibration jobs, exposure maximum per test")
def metrics():
    return observability.metrics_view(g.store.database)


@_route("/health", "GET", answer=schemas.Health, summary="liveness and the database")
def health():
    try:
        with g.store.database.reading() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        raise ApiError(500, "the database is not reachable", "database_unavailable") from None
    return {"status": "ok", "database": "reachable"}


@_route("/standards", "GET", roles=("admin",), answer=schemas.StandardDoc, many=True,
        summary="the skill standards")
def list_standards():
    return g.store.standards()


@_route("/standards", "POST", roles=("admin",), body=schemas.StandardDoc,
        answer=schemas.StandardDoc, status=201, summary="create or replace a standard")
def post_standard(data):
    entry = parse_standard(data)
    g.store.put_standard(entry)
    return g.store.standard(entry["code"])


@_route("/standards/<code>", "GET", roles=("admin",), answer=schemas.StandardDoc,
        summary="one standard, with its ETag")
def get_standard(code):
    _send_tag(standard_tag, code)                   # the tag first: see _send_tag
    return g.store.standard(code)


@_route("/standards/<code>", "PUT", roles=("admin",), body=schemas.StandardUpdate,
        answer=schemas.StandardDoc,
        summary="replace a standard; with If-Match, only if it is still that version (412)")
def put_standard(code, data):
    if data.get("code", code) != code:
        raise ApiError(400, "the body's code differs from the URL's", "validation_error")
    entry = parse_standard({**data, "code": code})
    g.store.put_standard(entry, precondition=_precondition(standard_tag, code))
    _send_tag(standard_tag, code)
    return g.store.standard(code)


def _if_match():
    """The entity tags of the request's If-Match header (weak ones compared as strong),
    or None without one."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]
    if not tags or any(tag != "*" and not (len(tag) > 1 and tag[0] == tag[-1] == '"')
                       for tag in tags):
        raise ApiError(400, "If-Match must hold quoted entity tags or *", "validation_error")
    return tags


def _precondition(tag_of, key):
    """The store's precondition for a write under If-Match (None without one)."""
    given = _if_match()
    return None if given is None else expect(tag_of, key, given)


def _send_tag(tag_of, key):
    """Give the response the resource's ETag (sent by `_headers`). Read before the body
    that goes with it: a change landing between the two then pairs the new body with the
    old tag, whose write is refused (412), never an old body with the new tag, whose
    write would undo the change unseen."""
    with g.store.database.reading() as session:
        g.etag = tag_of(session, key)


@_route("/items", "POST", roles=("admin",), answer=schemas.ImportSummary, status=201,
        summary="add or update items: one, a list, or an irtcat-bank/1 document")
def post_items():
    payload = _json_body()
    if isinstance(payload, dict) and "format" not in payload:
        payload = [payload]
    if payload is None:
        raise ApiError(400, "the body must be JSON", "validation_error")
    items = payload.get("items") if isinstance(payload, dict) else payload
    _check_items(items if isinstance(items, list) else [])
    codes = {item.get("standard") for item in items if isinstance(item, dict)} \
        if isinstance(items, list) else set()
    code = next(iter(codes)) if len(codes) == 1 else None     # the one standard imported
    code = code if isinstance(code, str) else None
    if code is None and _if_match() is not None:
        raise ApiError(400, "If-Match on an import needs the items of one standard "
                            "(the ETag of GET /v1/items?standard=CODE)", "validation_error")
    summary = g.store.import_items(
        payload, precondition=None if code is None else _precondition(bank_tag, code))
    if code is not None:
        _send_tag(bank_tag, code)
    return summary


@_route("/items", "GET", roles=("admin",), answer=schemas.ItemDoc, many=True,
        summary="items with content, keys and published parameters (?standard=CODE)")
def list_items():
    standard = request.args.get("standard")
    try:
        if standard is not None:
            _send_tag(bank_tag, standard)
        return g.store.items(standard)
    except NotFoundError:
        if standard is not None:
            g.store.standard(standard)                # 404 for an unknown standard
        return []


@_route("/items/<item_id>", "GET", roles=("admin",), answer=schemas.ItemDoc,
        summary="one item")
def get_item(item_id):
    _send_tag(item_tag, item_id)
    return _item(item_id)


@_route("/items/<item_id>", "PUT", roles=("admin",), answer=schemas.ItemDoc,
        summary="replace one item")
def put_item(item_id):
    payload = _json_body()
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object (an item)", "validation_error")
    if payload.get("id", item_id) != item_id:
        raise ApiError(400, "the body's id differs from the URL's", "validation_error")
    _item(item_id)
    _check_items([{**payload, "id": item_id}])
    g.store.import_items([{**payload, "id": item_id}],
                         precondition=_precondition(item_tag, item_id))
    _send_tag(item_tag, item_id)
    return _item(item_id)


def _check_items(items):
    """The fields an item document declares (`schemas.ItemDoc`) have their types; the
    store checks the rest (parameters against the model, the key against the options)."""
    errors = {}
    for position, item in enumerate(items):
        if isinstance(item, dict):
            try:
                schemas.ItemDoc().load(item)
            except ValidationError as error:
                errors[position] = error.messages
    if errors:
        raise ApiError(400, "an item is not valid", "validation_error", {"items": errors})


def _item(item_id):
    found = g.store.item(item_id)
    if found is None:
        raise NotFoundError(f"no item {item_id!r}")
    return found


@_route("/tests", "POST", roles=("admin",), body=schemas.TestDoc, answer=schemas.TestDoc,
        status=201, summary="define a test: standards and CAT configuration")
def post_test(data):
    return g.delivery.create_test(data.get("id"), data.get("title"), data["standards"],
                                  data["config"], data["public"], data["feedback"],
                                  time_limit=data["time_limit"], token_ttl=data["token_ttl"],
                                  finished_token_ttl=data["finished_token_ttl"],
                                  public_pool=data["public_pool"])


@_route("/tests", "GET", roles=("admin",), answer=schemas.TestDoc, many=True,
        summary="the tests")
def list_tests():
    return g.delivery.tests()


@_route("/tests/<test_id>", "GET", roles=("admin",), answer=schemas.TestDoc,
        summary="one test")
def get_test(test_id):
    return g.delivery.test(test_id)


@_route("/sessions", "POST", roles=("delivery",), body=schemas.SessionStart,
        answer=schemas.SessionStarted, status=201, summary="start a learner's session")
def start_session(data):
    g.quotas.hit("keyed_start", g.principal[1])
    return g.delivery.start_session(data["test_id"], data["learner_id"], g.principal[1])


@_route("/public/tests", "GET", answer=schemas.PublicTest, many=True,
        summary="the tests the learner page offers (no key)")
def public_tests():
    return g.delivery.public_tests()


@_route("/public/sessions", "POST", body=schemas.PublicSessionStart,
        answer=schemas.SessionStarted, status=201,
        summary="start a session of a public test from the learner page (no key); the "
                "token then reads and answers it")
def start_public_session(data):
    g.quotas.hit("public_start", client_identity())
    learner_id = "web-" + secrets.token_hex(8)
    return g.delivery.start_session(data["test_id"], learner_id, public=True)


@_route("/sessions/<session_id>", "GET", roles=("delivery",), token=True,
        answer=schemas.SessionState, summary="the session's status and current item")
def get_session(session_id):
    return g.delivery.state(session_id, token=g.principal[0] == "token")


@_route("/sessions/<session_id>/responses", "POST", roles=("delivery",), token=True,
        body=schemas.Answer, answer=schemas.SessionState,
        summary="answer the current item; returns the next one")
def answer(session_id, data):
    g.quotas.hit("answer", session_id)
    owner = g.principal[1] if g.principal[0] == "key" else g.delivery.owner_key(session_id)
    if owner is not None:
        g.quotas.hit("answer_key", owner)
    state = g.delivery.answer(session_id, data["item_id"], data["response"],
                              token=g.principal[0] == "token")
    observability.count_answer()
    return state


@_route("/sessions/<session_id>/finish", "POST", roles=("delivery",),
        answer=schemas.SessionState, summary="end the session early and score it")
def finish(session_id):
    return g.delivery.finish(session_id)


@_route("/sessions/<session_id>/result", "GET", roles=("delivery",), answer=schemas.Result,
        summary="theta, SE, per-standard levels, decision and the scored answers")
def result(session_id):
    return g.delivery.result(session_id)


@_route("/score", "POST", roles=("delivery",), body=schemas.ScoreRequest,
        answer=schemas.Score,
        summary="score items without a session: item scores (not options) of at least "
                "10 items; θ rounded to 0.1, no SE (docs/API.md)")
def score(data):
    g.quotas.hit("score", g.principal[1])
    observability.audit("score_request", principal_id=g.principal[1],
                        items=len(data["responses"]), method=data["method"])
    return g.delivery.score(data["responses"], data["method"])


@_route("/calibrations", "POST", roles=("admin",), body=schemas.CalibrationRequest,
        answer=schemas.Calibration, status=202,
        summary="calibrate a standard from its response log or uploaded responses")
def post_calibration(data):
    upload = None
    if data["source"] == "upload":
        upload = _upload_log(data["data"])
    long_work.check_room()
    run_id = start_calibration(g.store, data["standard"], data["model"],
                               source=data["source"], anchored=data["anchored"],
                               m_step=data["m_step"])
    observability.audit("calibration_started", run_id=run_id, standard=data["standard"],
                        source=data["source"])
    return long_work.calibration(run_id, upload)


def _upload_log(rows):
    persons, items = {}, {}
    person_index = [persons.setdefault(r["person_id"], len(persons)) for r in rows]
    item_index = [items.setdefault(r["item_id"], len(items)) for r in rows]
    pairs = set(zip(person_index, item_index, strict=True))
    if len(pairs) != len(rows):
        raise ApiError(400, "a person answers an item twice in data", "validation_error")
    return ResponseLog(list(persons), list(items), np.array(person_index, dtype=np.int32),
                       np.array(item_index, dtype=np.int32),
                       np.array([r["response"] for r in rows], dtype=float))


@_route("/calibrations/<int:run_id>", "GET", roles=("admin",), answer=schemas.Calibration,
        summary="a calibration's status and result (an irtcat-bank/1 document with fit)")
def get_calibration(run_id):
    return _calibration_run(run_id)


def _calibration_run(run_id):
    if run_id > MAX_RUN_ID:                           # beyond the database's integers
        raise NotFoundError(f"no calibration run {run_id}")
    return g.store.calibration_run(run_id)


@_route("/calibrations/<int:run_id>/report", "GET", roles=("admin",),
        summary="the calibration's report: one self-contained HTML page (item table with "
                "parameters, SEs and fit flags; item, information and SE curves)")
def calibration_report(run_id):
    run = _calibration_run(run_id)
    if run["status"] != "done":
        raise ConflictError(f"calibration {run_id} is {run['status']}, not done")
    return long_work.calibration_report(run_id)


@_route("/calibrations/<int:run_id>/publish", "POST", roles=("admin",),
        answer=schemas.Publication,
        summary="publish the calibration's bank version for new sessions")
def publish_calibration(run_id):
    run = _calibration_run(run_id)
    if run["status"] != "done":
        raise ConflictError(f"calibration {run_id} is {run['status']}, not done")
    return g.store.publish(run["standard"], run["version"])


@_route("/simulations", "POST", roles=("admin",), body=schemas.SimulationRequest,
        summary="simulate the test on its bank: the simulation report of FORMATS.md")
def post_simulation(data):
    test = g.delivery.test(data["test_id"])
    # built here too so that a test with no bank is 404 or 400 before it is queued
    g.delivery.test_bank(data["test_id"], g.store.current_version_ids(test["standards"]))
    return long_work.simulation(data["test_id"], data["examinees"], data["seed"])


@_route("/responses", "GET", roles=("admin",),
        summary="the response log as long CSV (person_id,item_id,response)")
def responses():
    standard = request.args.get("standard")
    if standard is not None:
        g.store.standard(standard)                    # 404 for an unknown standard
    return long_work.response_export(standard)


@_route("/jobs/<int:job_id>", "GET", roles=("admin",),
        summary="a queued job's status: kind, status (queued, running, done, failed), "
                "timestamps, error")
def get_job(job_id):
    return long_work.job_status(job_id)


@_route("/jobs/<int:job_id>/result", "GET", roles=("admin",),
        summary="a done job's result, with its media type (409 before)")
def get_job_result(job_id):
    return long_work.job_result(job_id)


@v1.route("/openapi.json", methods=["GET"])
def openapi():
    from .openapi import document

    return jsonify(document(OPERATIONS))


# --- the app ------------------------------------------------------------------------

def _envelope(status, code, message, details=None):
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return jsonify(body), status


# The layers' one-line errors and the status and code each answers with (their message is
# the envelope's). A subclass is listed before its base (TimeLimitError, ConflictError).
ERRORS_OF_THE_DOMAIN = {
    PreconditionFailed: (412, "precondition_failed"),
    TokenExpiredError: (401, "token_expired"),
    TimeLimitError: (409, "time_limit"),
    NotFoundError: (404, "not_found"),
    ConflictError: (409, "conflict"),
    InvalidAnswerError: (422, "invalid_response"),
    DataFormatError: (400, "validation_error"),
    CalibrationInputError: (400, "validation_error"),
}


def _domain_error(status, code):
    def handle(error):
        return _envelope(status, code, str(error))
    return handle


def close_app(app):
    """Release what `create_app` opened: the store's and the quotas' connections."""
    app.extensions["irtcat"]["store"].database.dispose()
    app.extensions["irtcat"]["quotas"].close()


def create_app(database_url=None, *, migrate=True):
    """The Flask app on `database_url` (default: IRTCAT_DATABASE_URL or irtcat.db)."""
    app = Flask("irtcat", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False
    database = Database(database_url)
    if migrate:
        upgrade(database)
    store = Store(database)
    delivery = Delivery(store)
    quotas = Quotas.from_env(database)
    app.extensions["irtcat"] = {"store": store, "delivery": delivery, "quotas": quotas}

    @app.before_request
    def _bind():
        g.store, g.delivery, g.quotas = store, delivery, quotas

    app.register_blueprint(v1)
    app.register_blueprint(pages)
    observability.install(app)

    @app.errorhandler(ApiError)
    def _api_error(error):
        return _envelope(error.status, error.code, error.message, error.details)

    @app.errorhandler(HTTPException)
    def _http_error(error):
        message = {404: "no such route", 405: "method not allowed on this route",
                   413: f"the body is larger than {MAX_BODY // 2**20} MiB"}.get(
            error.code, error.description or error.name)
        body, status = _envelope(error.code, STATUS_CODES.get(error.code, "error"), message)
        for name, value in error.get_headers():
            if name == "Allow":                       # 405 says what the route takes
                body.headers[name] = value
        return body, status

    @app.after_request
    def _headers(response):
        # Nothing the API answers may be kept by a browser or proxy: it carries tokens,
        # items and results.
        if request.path.startswith("/v1/"):
            response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.pop("Server", None)
        if response.status_code < 300 and g.get("etag"):
            response.headers["ETag"] = g.etag
        return response

    @app.errorhandler(QuotaExceeded)
    def _quota(error):
        observability.audit("rate_limited", quota=error.name,
                            route=request.url_rule.rule if request.url_rule else "",
                            client=request.remote_addr)
        body, status = _envelope(429, "rate_limited",
                                 f"too many requests ({error.name}); retry after "
                                 f"{error.retry_after} s", {"quota": error.name})
        body.headers["Retry-After"] = str(error.retry_after)
        return body, status

    @app.errorhandler(long_work.Busy)
    def _busy(error):
        body, status = _envelope(429, "busy", str(error))
        body.headers["Retry-After"] = str(error.retry_after)
        return body, status

    for error_class, (status, code) in ERRORS_OF_THE_DOMAIN.items():
        app.register_error_handler(error_class, _domain_error(status, code))

    @app.errorhandler(IntegrityError)
    def _integrity(error):
        # Two writers raced on something unique (an id, a version number): the loser's
        # transaction rolled back whole.
        return _envelope(409, "conflict", "another request changed this at the same time; "
                                          "nothing was written, try again")

    @app.errorhandler(Exception)
    def _internal(error):
        log.exception("internal error")
        return _envelope(500, "internal_error", "internal error; the request changed nothing")

    return app
