"""What every v1 route shares: the flask-smorest blueprint, one declaration per route
(`operation`), who may call it, the JSON body reader, pagination and If-Match.

`operation` declares a route once: its role, request schema (body or query), response
schema and summary. It stacks flask-smorest's decorators (`Blueprint.arguments`,
`Blueprint.paginate`, `Blueprint.response`, `Blueprint.alt_response`, `Blueprint.doc`)
under a guard that checks the caller's key before anything is read, and records the
route in `OPERATIONS`, the table the authorization tests walk.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlencode

import flask_smorest
from flask import g, request
from webargs.flaskparser import FlaskParser

from irtcat.delivery.errors import TokenExpiredError
from irtcat.itembank.etags import expect

from .. import observability, schemas

MAX_BODY = 8 * 2**20
# A page holds PAGE_SIZE entries unless `page_size` asks otherwise, at most MAX_PAGE_SIZE:
# the demo's lists (165 items, a few standards and tests) fit one default page whole.
PAGE_SIZE = 500
MAX_PAGE_SIZE = 2000
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 412: "precondition_failed",
                413: "payload_too_large", 414: "uri_too_long", 415: "unsupported_media_type",
                422: "unprocessable", 429: "too_many_requests",
                431: "request_header_fields_too_large", 500: "internal_error",
                501: "not_implemented", 503: "service_unavailable"}


class ApiError(Exception):
    def __init__(self, status, message, code=None, details=None):
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or STATUS_CODES.get(status, "error")
        self.details = details or {}


# --- reading requests ---------------------------------------------------------------------

def json_body():
    """The request's JSON (None when it is not JSON), its strings checked."""
    try:
        payload = request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "the JSON body is nested too deeply", "validation_error") from None
    check_text([payload], "the body", 422)
    return payload


def check_text(values, where, status=400):
    """Refuse a string no database can store: a NUL character or a lone surrogate,
    anywhere in `values` (keys of objects too). 400 in the URL, whose parameters the
    OpenAPI document says hold no NUL; the body's check passes 422, since a body may
    carry free-form objects (an item's extra fields, the CAT configuration) whose keys
    and values no schema of OpenAPI 3.0 constrains."""
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
                raise ApiError(status, f"{where} holds text that is not valid UTF-8",
                               "validation_error") from None
            if "\x00" in value:
                raise ApiError(status, f"{where} holds a NUL character", "validation_error")


class Parser(FlaskParser):
    """webargs' parser with this API's answers: a body that is not JSON and a request
    that does not validate are 400 `validation_error` in the error envelope (webargs
    would answer 422 with its own body)."""

    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req, schema):
        payload = json_body()
        if payload is None:
            raise ApiError(400, "the body must be JSON (Content-Type: application/json)",
                           "validation_error")
        return payload

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        messages = error.messages
        where = next(iter(messages)) if isinstance(messages, dict) and len(messages) == 1 \
            else None
        if where in ("json", "query"):
            messages = messages[where]
        what = "the request body" if where == "json" else "a query parameter"
        raise ApiError(400, f"{what} is not valid", "validation_error", {"fields": messages})


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint with this API's parser and pages: the metadata in
    `X-Pagination` (JSON) and RFC 8288 `Link` headers, the body the bare JSON array."""

    ARGUMENTS_PARSER = Parser()
    PAGINATION_ARGUMENTS_PARSER = ARGUMENTS_PARSER
    DEFAULT_PAGINATION_PARAMETERS = {"page": 1, "page_size": PAGE_SIZE,
                                     "max_page_size": MAX_PAGE_SIZE}

    def _set_pagination_metadata(self, page_params, result, headers):
        metadata = self._make_pagination_metadata(page_params.page, page_params.page_size,
                                                  page_params.item_count)
        headers = {**(headers or {}), self.PAGINATION_HEADER_NAME: json.dumps(metadata)}
        links = [f'<{_page_url(metadata[key], page_params.page_size)}>; rel="{relation}"'
                 for relation, key in (("first", "first_page"), ("prev", "previous_page"),
                                       ("next", "next_page"), ("last", "last_page"))
                 if key in metadata]
        if links:
            headers["Link"] = ", ".join(links)
        return result, headers

    def _document_pagination_metadata(self, spec, resp_doc):
        resp_doc.setdefault("headers", {}).update(PAGE_HEADERS)


PAGE_HEADERS = {
    "X-Pagination": {"description": "JSON: total, total_pages, first_page, last_page, page, "
                                    "previous_page, next_page (the pages that exist)",
                     "schema": {"type": "string"}},
    "Link": {"description": "RFC 8288 links to the first, prev, next and last pages",
             "schema": {"type": "string"}},
}


def _page_url(page, page_size):
    """This request's path and query with another page."""
    arguments = [(name, value) for name, value in request.args.items(multi=True)
                 if name not in ("page", "page_size")]
    return f"{request.path}?{urlencode([*arguments, ('page', page), ('page_size', page_size)])}"


v1 = Blueprint("v1", __name__, url_prefix="/v1", description="the v1 API (spec/API.md)")


# --- declaring a route ----------------------------------------------------------------------

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

# Errors an operation may answer, besides `default` (500 and the like): each the envelope.
ERRORS = {400: "the request does not match this document: the body, a parameter, or "
               "URL text no database stores (a NUL character, invalid UTF-8)",
          401: "no key, or an unknown, revoked or expired one",
          403: "a key of another role, or another session's token",
          404: "no such resource",
          405: "the path does not take this method",
          409: "a conflict with the stored state (an answered item, a finished session, "
               "a run not done, a concurrent write, a standard, parent or item the store "
               "does not hold, a body id other than the URL's)",
          412: "If-Match names a version the resource no longer has",
          413: "the body is larger than the server takes",
          422: "a request this document allows, refused by a rule a schema cannot state "
               "(cuts in order, a key among the item's options, the CAT configuration's "
               "rules, body text no database stores), or an answer that is not one of "
               "the item's options or categories",
          429: "too many requests (a quota, or the queue of long admin work is full): "
               "retry after Retry-After seconds",
          503: "not ready, or the database is not at this release's schema"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                               "schema": {"type": "integer", "minimum": 0}}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "description": "write only if the resource still has one of these ETags (or *): "
                           "RFC 9110's quoted tags, an unquoted one read as if quoted; a "
                           "tag the resource no longer has is 412",
            "schema": {"type": "string"}}
# What a path parameter is: an id of text, or a run's number (the database's integers).
MAX_RUN_ID = 2**31 - 1
PATH_PARAMETER = {"int": {"type": "integer", "minimum": 0, "maximum": MAX_RUN_ID},
                  None: {"type": "string", "minLength": 1}}


def operation(rule, method, *, roles=(), token=False, body=None, query=None, answer=None,
              status=200, many=False, paginated=False, summary="", produces=None,
              if_match=False, errors=(), queued=False):
    """Declare the view it decorates as the route `method rule`.

    body, query: schema classes the JSON body and the query string load with (the view
        takes them as `data` and `query`); answer: the schema a result is dumped with
        (`many`: a list; `paginated`: a list served in pages); produces: (content type,
        description) of a body the view returns as a Response itself; errors: statuses
        it answers besides those of authentication, validation and quotas; queued: long
        work that answers 202 with the job's status and Location when it is not done
        within the bounded wait (api.long_work).
    """
    # `body` of the table: a strict schema (items are kept as given, other keys too)
    declared = Operation(rule, method, tuple(roles), token,
                         None if body in (schemas.ItemsImport, schemas.ItemReplace)
                         else body, answer, status, summary, many or paginated)
    OPERATIONS.append(declared)

    def register(view):
        handler = view
        # Instances, not classes: webargs would build a schema from a class per request.
        if body is not None:
            handler = v1.arguments(body(), arg_name="data")(handler)
        if query is not None:
            handler = v1.arguments(query(), location="query", arg_name="query")(handler)
        if paginated:
            handler = v1.paginate(flask_smorest.Page)(handler)
        if produces is not None:
            content_type, description = produces
            handler = v1.response(status, {"type": "string"}, content_type=content_type,
                                  description=description)(handler)
        else:
            dumped = None if answer is None else answer(many=many or paginated)
            handler = v1.response(status, dumped)(handler)
        # The alternative responses and the summary only document: flask-smorest's
        # decorators for them each wrap the view in one more call per request, so they
        # decorate a stand-in and the view the route runs takes its documentation.
        handler._apidoc = _documentation(
            declared, view.__name__, handler._apidoc, body is not None,
            {*errors, *([412] if if_match else [])}, if_match, queued)
        parameters = [{"in": "path", "name": name, "required": True,
                       "schema": PATH_PARAMETER[kind or None]}
                      for kind, name in _path_parameters(rule)]
        v1.route(rule, methods=[method], endpoint=f"{method.lower()}_{view.__name__}",
                 parameters=parameters or None)(_guarded(declared, handler))
        return view
    return register


def _documentation(declared, operation_id, apidoc, has_body, errors, if_match, queued):
    """flask-smorest's documentation `apidoc` of a view, with the operation's error
    responses, summary, security and If-Match added."""

    def stand_in():
        pass
    stand_in._apidoc = apidoc
    for code in sorted(_errors(declared, has_body, errors)):
        stand_in = v1.alt_response(code, schema=schemas.ErrorEnvelope,
                                   description=ERRORS[code],
                                   headers=RETRY_AFTER if code == 429 else None)(stand_in)
    if queued:
        stand_in = v1.alt_response(
            202, description="queued: not done within the wait, or `Prefer: "
                             "respond-async`; `Location` names the job (GET /v1/jobs/{id})",
            headers={"Location": {"description": "the job's status URL",
                                  "schema": {"type": "string"}}})(stand_in)
    who = list(declared.roles) + (["session token"] if declared.token else [])
    doc = {"summary": declared.summary, "operationId": operation_id}
    if who:
        doc.update(security=[{"bearer": []}], description="Who may call: "
                   + ", ".join(who) + ".")
    if if_match:
        doc["parameters"] = [IF_MATCH]
    return v1.doc(**doc)(stand_in)._apidoc


def _path_parameters(rule):
    return re.findall(r"<(?:([a-z]+):)?([a-z_]+)>", rule)


def _errors(declared, has_body, extra):
    """The error statuses an operation may answer."""
    statuses = {400, 405, 429, *extra}
    if declared.roles or declared.token:
        statuses |= {401, 403}
    if "<" in declared.rule or has_body:
        statuses.add(404)
    if has_body:
        statuses |= {413, 422}
    return statuses


def _guarded(declared, handler):
    """The view behind the caller's authorization and the URL's text checks."""

    @wraps(handler)
    def guarded(**kwargs):
        if declared.roles or declared.token:
            authorize(declared, kwargs)
        check_text([*kwargs.values(), *request.args.values()], "the URL")
        return handler(**kwargs)
    return guarded


# --- who may call -------------------------------------------------------------------------

def authorize(declared, kwargs):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        _auth_failure(declared, "no bearer credential")
        raise ApiError(401, "an Authorization: Bearer <key> header is required")
    try:
        who = g.delivery.authenticate(header[7:].strip())
    except TokenExpiredError as error:
        _auth_failure(declared, "expired token")
        raise ApiError(401, str(error), "token_expired") from None
    if who is None:
        _auth_failure(declared, "unknown or revoked credential")
        raise ApiError(401, "unknown or revoked key")
    kind, identity, role = who
    if kind == "token":
        if not declared.token or kwargs.get("session_id") != identity:
            raise ApiError(403, "this token opens one session's current item only")
    elif role not in declared.roles:
        raise ApiError(403, f"this route needs {'an' if declared.roles[0][0] in 'aeiou' else 'a'}"
                       f" {' or '.join(declared.roles)} key"
                       if declared.roles else "this route takes a session token")
    elif "session_id" in kwargs:
        check_text([kwargs["session_id"]], "the URL")        # before it reaches a query
        # a delivery key reads only the sessions it started; an admin reads any (trace)
        if role != "admin" and g.delivery.owner_key(kwargs["session_id"]) != identity:
            raise ApiError(403, "this session was started with another key")
    g.principal = who


def _auth_failure(declared, reason):
    """Log a failed authentication and count it against the client's address: past the
    quota, failures are answered 429 instead of 401. A valid credential from the same
    address still passes: keys and tokens are too long to guess, and one client behind a
    school's shared address must not lock its classmates out."""
    observability.audit("auth_failure", reason=reason, route=declared.rule,
                        method=declared.method, client=request.remote_addr)
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


# --- If-Match and ETags -------------------------------------------------------------------

def if_match():
    """The entity tags of the request's If-Match header (weak ones compared as strong; an
    unquoted one read as if quoted, as lenient HTTP servers do), or None without one. A
    header naming no tag at all (only commas) holds for no version: the write is 412."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = []
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/")
        if tag and tag != "*" and not (len(tag) > 1 and tag[0] == tag[-1] == '"'):
            tag = f'"{tag.strip(chr(34))}"'
        if tag:
            tags.append(tag)
    return tags or ['""']


def precondition(tag_of, key):
    """The store's precondition for a write under If-Match (None without one)."""
    given = if_match()
    return None if given is None else expect(tag_of, key, given)


def send_tag(tag_of, key):
    """Give the response the resource's ETag (sent by the app's after-request hook). Read
    before the body that goes with it: a change landing between the two then pairs the
    new body with the old tag, whose write is refused (412), never an old body with the
    new tag, whose write would undo the change unseen."""
    with g.store.database.reading() as session:
        g.etag = tag_of(session, key)
