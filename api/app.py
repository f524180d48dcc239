"""The v1 HTTP API (spec/API.md): the app factory and one error envelope.

The routes live in `api.routes`, one module per resource, declared on a flask-smorest
blueprint; flask-smorest generates the OpenAPI document served at /v1/openapi.json
(`api.openapi` adds what marshmallow cannot say). Every error, from a route, webargs,
Werkzeug or the domain's layers, leaves as `{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import logging
import os

import flask_smorest
from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from irtcat.calibration.workflow import CalibrationInputError
from irtcat.delivery.errors import (
    ConflictError,
    InvalidAnswerError,
    TimeLimitError,
    TokenExpiredError,
)
from irtcat.delivery.lti import Tool as LtiTool
from irtcat.delivery.sessions import Delivery
from irtcat.itembank.database import Database, current_revision, head_revision
from irtcat.itembank.errors import (
    DataFormatError,
    NotFoundError,
    PreconditionFailed,
    ReferenceConflict,
    StorageFailure,
    WriteConflict,
)
from irtcat.itembank.store import Store

from . import long_work, observability, schemas
from .lti_pages import lti_pages
from .pages import pages
from .quotas import QuotaExceeded, Quotas
from .routes import MAX_BODY, OPERATIONS, STATUS_CODES, ApiError, v1
from .routes.ims_cat import ims_cat

__all__ = ["MAX_BODY", "OPERATIONS", "STATUS_CODES", "ApiError", "close_app", "create_app"]
log = logging.getLogger("irtcat.api")

# Routes that answer on a database at another schema: they say what is wrong with it.
ANSWERS_BEFORE_MIGRATION = {"/v1/health", "/v1/ready", "/v1/openapi.json"}


def _envelope(status, code, message, details=None):
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return jsonify(body), status


# The layers' one-line errors and the status and code each answers with (their message is
# the envelope's). A request the OpenAPI document refuses is 400 (the schemas, before any
# view runs); one it accepts but a rule it cannot state refuses (cuts that must ascend, a
# key naming an option, a token lifetime at least the time limit) is 422: the layers'
# DataFormatError. A reference to what the store lacks or contradicts is 409. A subclass
# is listed before its base (TimeLimitError before ConflictError, ReferenceConflict before
# DataFormatError).
ERRORS_OF_THE_DOMAIN = {
    PreconditionFailed: (412, "precondition_failed"),
    TokenExpiredError: (401, "token_expired"),
    TimeLimitError: (409, "time_limit"),
    NotFoundError: (404, "not_found"),
    ConflictError: (409, "conflict"),
    ReferenceConflict: (409, "conflict"),
    InvalidAnswerError: (422, "invalid_response"),
    DataFormatError: (422, "validation_error"),
    CalibrationInputError: (422, "validation_error"),
}


def _domain_error(status, code):
    def handle(error):
        return _envelope(status, code, str(error))
    return handle


class Api(flask_smorest.Api):
    """flask-smorest's Api, its documented errors the envelope of spec/API.md."""

    ERROR_SCHEMA = schemas.ErrorEnvelope


def settings_from_environment(environ=None):
    """The settings `create_app` reads from the environment when not given: the
    database (IRTCAT_DATABASE_URL) and the quotas (IRTCAT_QUOTAS,
    IRTCAT_RATE_LIMIT_STORAGE, docs/API.md)."""
    environ = os.environ if environ is None else environ
    return {"DATABASE_URL": environ.get("IRTCAT_DATABASE_URL") or None,
            "QUOTAS": environ.get("IRTCAT_QUOTAS", ""),
            "RATE_LIMIT_STORAGE": environ.get("IRTCAT_RATE_LIMIT_STORAGE", "")}


def close_app(app):
    """Release what `create_app` opened: the store's and the quotas' connections."""
    app.extensions["irtcat"]["store"].database.dispose()
    app.extensions["irtcat"]["quotas"].close()


def create_app(config=None):
    """The Flask app, made from `config`, a mapping of settings (Flask's application
    factory): DATABASE_URL (default IRTCAT_DATABASE_URL, else irtcat.db), QUOTAS and
    RATE_LIMIT_STORAGE (the notations of IRTCAT_QUOTAS and IRTCAT_RATE_LIMIT_STORAGE,
    which are their defaults), and any of Flask's own.

    The database is not migrated here (`irtcat db upgrade`, `irtcat serve` and
    `irtcat demo` do it): on a database at another schema than this release's, every
    route but health, readiness and the OpenAPI document answers 503 `not_ready`.
    """
    app = Flask("irtcat", static_folder=None)
    app.config.from_mapping(settings_from_environment(), MAX_CONTENT_LENGTH=MAX_BODY,
                            API_TITLE="irtcat", API_VERSION="1", OPENAPI_VERSION="3.0.3",
                            OPENAPI_URL_PREFIX=None)
    app.config.from_mapping(config or {})
    app.json.sort_keys = False
    database = Database(app.config["DATABASE_URL"])
    store = Store(database)
    delivery = Delivery(store)
    quotas = Quotas.from_env(database, {
        "IRTCAT_QUOTAS": app.config["QUOTAS"] or "",
        "IRTCAT_RATE_LIMIT_STORAGE": app.config["RATE_LIMIT_STORAGE"] or ""})
    api = Api(app)
    lti = LtiTool(store, delivery)
    delivery.finish_hooks.append(lti.score_when_finished)
    app.extensions["irtcat"] = {"store": store, "delivery": delivery, "quotas": quotas,
                                "api": api, "at_schema": False, "lti": lti}

    @app.before_request
    def _bind():
        g.store, g.delivery, g.quotas = store, delivery, quotas

    api.register_blueprint(v1)
    app.add_url_rule("/v1/openapi.json", "openapi", _openapi, methods=["GET"])
    app.register_blueprint(pages)
    app.register_blueprint(ims_cat)                    # 1EdTech CAT, its own OpenAPI
    app.register_blueprint(lti_pages)
    observability.install(app)
    _install_error_handlers(app)

    @app.before_request
    def _at_schema():
        if request.url_rule is not None and request.blueprint in (v1.name, ims_cat.name) \
                and request.path not in ANSWERS_BEFORE_MIGRATION:
            _require_schema(app)

    @app.after_request
    def _headers(response):
        # Nothing the API answers may be kept by a browser or proxy: it carries tokens,
        # items and results.
        if request.path.startswith(("/v1/", "/ims/")):
            response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.pop("Server", None)
        if response.status_code < 300 and g.get("etag"):
            response.headers["ETag"] = g.etag
        return response

    return app


def _require_schema(app):
    """503 `not_ready` unless the database is at this release's schema (checked until it
    is once: a release's schema does not go back)."""
    state = app.extensions["irtcat"]
    if state["at_schema"]:
        return
    try:
        revision = current_revision(state["store"].database)
    except StorageFailure:
        raise ApiError(503, "the database is not reachable", "not_ready") from None
    expected = head_revision()
    if revision != expected:
        raise ApiError(503, f"the database's schema is {revision or 'empty'}, this release "
                            f"needs {expected}: run `irtcat db upgrade`", "not_ready",
                       {"schema": revision, "expected_schema": expected})
    state["at_schema"] = True


def _openapi():
    from .openapi import document

    state = current_app.extensions["irtcat"]
    if "openapi" not in state:
        state["openapi"] = document(state["api"].spec)
    return jsonify(state["openapi"])


def _install_error_handlers(app):
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

    @app.errorhandler(WriteConflict)
    def _integrity(error):
        # Two writers raced on something unique (an id, a version number): the loser's
        # transaction rolled back whole.
        return _envelope(409, "conflict", "another request changed this at the same time; "
                                          "nothing was written, try again")

    @app.errorhandler(Exception)
    def _internal(error):
        log.exception("internal error")
        return _envelope(500, "internal_error", "internal error; the request changed nothing")
