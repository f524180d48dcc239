"""The OpenAPI 3 document of the v1 API, generated from the routes' declarations and
their marshmallow schemas (apispec)."""

from __future__ import annotations

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from . import schemas

DESCRIPTION = ("Adaptive tests for learning platforms. Authenticate with "
               "`Authorization: Bearer <key>`: an admin key, a delivery key, or the session "
               "token a session's start returns. Every error is "
               '`{"error": {"code", "message", "details"}}`.')


# Errors an operation may answer, besides `default` (500 and the like). Every one is the
# envelope of spec/API.md.
ERRORS = {400: "the request is not valid: the body, a parameter, or text no database "
               "stores (a NUL character, invalid UTF-8)",
          401: "no key, or an unknown, revoked or expired one",
          403: "a key of another role, or another session's token",
          404: "no such resource",
          405: "the path does not take this method",
          409: "a conflict with the resource's state (an answered item, a finished session, "
               "a run not done, a concurrent write)",
          412: "If-Match names a version the resource no longer has",
          413: "the body is larger than the server takes",
          422: "an answer that is not one of the item's options or categories",
          429: "too many requests (a quota, or the queue of long admin work is full): "
               "retry after Retry-After seconds",
          503: "not ready"}
ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorEnvelope"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                               "schema": {"type": "integer", "minimum": 0}}}
# Writes that take If-Match (optimistic concurrency: 412 when the tag no longer holds).
IF_MATCH_PATHS = {("PUT", "/standards/{code}"), ("POST", "/items"), ("PUT", "/items/{item_id}")}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "description": "write only if the resource still has one of these ETags (or *)",
            "schema": {"type": "string",
                       "pattern": r'^\s*(\*|(W/)?"[^",]*")(\s*,\s*(\*|(W/)?"[^",]*"))*\s*$'}}
# Long admin work, queued for the worker processes (api.long_work): 429 busy when the
# queue is full, like any other quota.
OFFLOADED = {("POST", "/calibrations"), ("GET", "/calibrations/{run_id}/report"),
             ("POST", "/simulations"), ("GET", "/responses")}
# No text the API takes may hold a NUL character (400 before any schema is applied).
NO_NUL = r"^[^\x00]*$"
# The parameters each model takes (itembank.io.item_parameters), when an item has them:
# the fixed ones may be given only at their value; b is one number or a list.
FIXED_A, FIXED_C, FIXED_U = {"enum": [1]}, {"enum": [0]}, {"enum": [1]}
ONE_B = {"type": "number"}
LIST_B = {"type": "array", "items": {"type": "number"}, "minItems": 1}
MODEL_PARAMETERS = [
    (["rasch"], {"a": FIXED_A, "b": ONE_B, "c": FIXED_C, "u": FIXED_U}),
    (["1pl", "2pl"], {"b": ONE_B, "c": FIXED_C, "u": FIXED_U}),
    (["3pl"], {"b": ONE_B, "u": FIXED_U}),
    (["4pl"], {"b": ONE_B}),
    (["pcm"], {"a": FIXED_A, "b": LIST_B, "c": FIXED_C, "u": FIXED_U}),
    (["grm", "gpcm"], {"b": LIST_B, "c": FIXED_C, "u": FIXED_U}),
]
# Where "data is given exactly when source is upload" (CalibrationRequest), as schemas.
CALIBRATION_SOURCES = [
    {"required": ["source", "data"], "properties": {"source": {"enum": ["upload"]}}},
    {"not": {"required": ["data"]}, "properties": {"source": {"enum": ["log"]}}},
]


def _errors(op, path, has_body):
    """The error statuses an operation may answer."""
    statuses = {400, 405, 429}
    if op.roles or op.token:
        statuses |= {401, 403}
    if "{" in path or has_body or path in ("/items", "/responses"):
        statuses.add(404)
    if op.method in ("POST", "PUT") or path.startswith("/sessions/") or path.endswith("/report"):
        statuses.add(409)
    if has_body:
        statuses.add(413)
    if path in ("/sessions/{session_id}/responses", "/score"):
        statuses.add(422)
    if (op.method, path) in IF_MATCH_PATHS:
        statuses.add(412)
    if path == "/ready":
        statuses.add(503)
    return statuses


def _nullable_refs(node):
    """apispec writes a nullable nested schema as `anyOf: [{type: object, nullable}, $ref]`,
    which lets any object through; say "this schema, or null" instead."""
    if isinstance(node, dict):
        any_of = node.get("anyOf")
        if (isinstance(any_of, list) and len(any_of) == 2
                and any_of[0] == {"type": "object", "nullable": True} and "$ref" in any_of[1]):
            del node["anyOf"]
            node.update({"allOf": [any_of[1]], "nullable": True})
        for value in node.values():
            _nullable_refs(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_refs(value)


def _no_nul(node):
    """Say of every string the document describes that it holds no NUL character."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "enum" not in node and "format" not in node:
            node.setdefault("pattern", NO_NUL)          # schemas.VISIBLE excludes NUL too
        for value in node.values():
            _no_nul(value)
    elif isinstance(node, list):
        for value in node:
            _no_nul(value)


def _path(rule):
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def document(operations):
    spec = APISpec(title="irtcat", version="1", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()], info={"description": DESCRIPTION},
                   servers=[{"url": "/v1"}])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("ErrorEnvelope", schema=schemas.ErrorEnvelope)
    paths = {}
    for op in operations:
        path = _path(op.rule)
        entry = {"summary": op.summary, "responses": {}}
        parameters = [{"name": name, "in": "path", "required": True,
                       "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
                       if kind == "int" else {"type": "string", "minLength": 1}}
                      for kind, name in re.findall(r"<(?:([a-z]+):)?([a-z_]+)>", op.rule)]
        if path == "/items" and op.method == "GET" or path == "/responses":
            parameters.append({"name": "standard", "in": "query", "required": False,
                               "schema": {"type": "string", "minLength": 1}})
        if (op.method, path) in IF_MATCH_PATHS:
            parameters.append(IF_MATCH)
        if parameters:
            entry["parameters"] = parameters
        roles = list(op.roles) + (["session token"] if op.token else [])
        if roles:
            entry["security"] = [{"bearer": []}]
            entry["description"] = "Who may call: " + ", ".join(roles) + "."
        body = op.body
        if path.startswith("/items") and op.method in ("POST", "PUT"):
            body = schemas.ItemDoc if op.method == "PUT" else {"oneOf": [
                schemas.ItemDoc, {"type": "array", "items": schemas.ItemDoc, "minItems": 1},
                {"type": "object", "required": ["format", "items"],
                 "description": "an irtcat-bank/1 document",
                 "properties": {"format": {"type": "string", "enum": ["irtcat-bank/1"]},
                                "items": {"type": "array", "items": schemas.ItemDoc,
                                          "minItems": 1}}}]}
        if body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": body}}}
        if op.answer is not None:
            body = {"type": "array", "items": op.answer} if op.many else op.answer
            entry["responses"][str(op.status)] = {
                "description": "success", "content": {"application/json": {"schema": body}}}
        elif path == "/responses":
            entry["responses"]["200"] = {"description": "long CSV",
                                         "content": {"text/csv": {"schema": {"type": "string"}}}}
        elif path == "/metrics":
            entry["responses"]["200"] = {"description": "Prometheus text exposition format",
                                         "content": {"text/plain": {"schema": {"type": "string"}}}}
        elif path.endswith("/report"):
            entry["responses"]["200"] = {"description": "one self-contained HTML page",
                                         "content": {"text/html": {"schema": {"type": "string"}}}}
        elif path == "/simulations":
            entry["responses"]["200"] = {"description": "the simulation report of FORMATS.md",
                                         "content": {"application/json": {"schema": {
                                             "type": "object"}}}}
        else:
            entry["responses"][str(op.status)] = {"description": "success"}
        for status in sorted(_errors(op, path, body is not None)):
            entry["responses"][str(status)] = {
                "description": ERRORS[status],
                "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            if status == 429:
                entry["responses"][str(status)]["headers"] = RETRY_AFTER
        entry["responses"]["default"] = {
            "description": "an error", "content": {"application/json": {
                "schema": ERROR_SCHEMA}}}
        paths.setdefault(path, {})[op.method.lower()] = entry
    for path, operations_ in paths.items():
        spec.path(path=path, operations=operations_)
    document_ = spec.to_dict()
    _nullable_refs(document_)
    components = document_["components"]["schemas"]
    _no_nul(components)
    for operations_ in document_["paths"].values():
        for entry in operations_.values():
            for parameter in entry.get("parameters", []):
                if parameter["in"] != "header":
                    _no_nul(parameter)
    assert {model for models, _ in MODEL_PARAMETERS for model in models} == set(
        components["ItemDoc"]["properties"]["model"]["enum"])
    components["ItemDoc"]["oneOf"] = [
        {"properties": {"model": {"enum": models}, **parameters}}
        for models, parameters in MODEL_PARAMETERS]
    document_["components"]["schemas"]["CalibrationRequest"]["oneOf"] = CALIBRATION_SOURCES
    return document_
