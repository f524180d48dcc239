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
                       "schema": {"type": "integer" if kind == "int" else "string"}}
                      for kind, name in re.findall(r"<(?:([a-z]+):)?([a-z_]+)>", op.rule)]
        if path == "/items" and op.method == "GET" or path == "/responses":
            parameters.append({"name": "standard", "in": "query", "required": False,
                               "schema": {"type": "string"}})
        if parameters:
            entry["parameters"] = parameters
        roles = list(op.roles) + (["session token"] if op.token else [])
        if roles:
            entry["security"] = [{"bearer": []}]
            entry["description"] = "Who may call: " + ", ".join(roles) + "."
        body = op.body
        if path.startswith("/items") and op.method in ("POST", "PUT"):
            body = schemas.ItemDoc if op.method == "PUT" else {"oneOf": [
                schemas.ItemDoc, {"type": "array", "items": schemas.ItemDoc},
                {"type": "object", "required": ["format", "items"],
                 "description": "an irtcat-bank/1 document",
                 "properties": {"format": {"type": "string", "enum": ["irtcat-bank/1"]},
                                "items": {"type": "array", "items": schemas.ItemDoc}}}]}
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
        else:
            entry["responses"][str(op.status)] = {"description": "success"}
        entry["responses"]["default"] = {
            "description": "an error", "content": {"application/json": {
                "schema": "ErrorEnvelope"}}}
        paths.setdefault(path, {})[op.method.lower()] = entry
    for path, operations_ in paths.items():
        spec.path(path=path, operations=operations_)
    return spec.to_dict()
