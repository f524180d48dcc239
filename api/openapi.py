"""The OpenAPI 3 document of the v1 API: the one flask-smorest generates from the routes'
declarations and their marshmallow schemas (`api.routes`), with what marshmallow cannot
say added, so that the document is exactly as strict as the validation."""

from __future__ import annotations

import copy

DESCRIPTION = ("Adaptive tests for learning platforms. Authenticate with "
               "`Authorization: Bearer <key>`: an admin key, a delivery key, or the session "
               "token a session's start returns. Every error is "
               '`{"error": {"code", "message", "details"}}`. Lists come in pages '
               "(`page`, `page_size`; metadata in the `X-Pagination` and `Link` headers).")
PREFIX = "/v1"
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
    # ak: one category score per category, one more than b's steps (engine.models)
    (["nominal"], {"b": LIST_B, "ak": {"type": "array", "items": {"type": "number"},
                                       "minItems": 2}, "c": FIXED_C, "u": FIXED_U}),
]
# Where "data is given exactly when source is upload" (CalibrationRequest), as schemas.
CALIBRATION_SOURCES = [
    {"required": ["source", "data"], "properties": {"source": {"enum": ["upload"]}}},
    {"not": {"required": ["data"]}, "properties": {"source": {"enum": ["log"]}}},
]
ITEM = {"$ref": "#/components/schemas/ItemDoc"}
# POST /items takes one item, a list of them or an irtcat-bank/1 document (ItemsImport).
ITEMS_IMPORT = {"oneOf": [
    ITEM, {"type": "array", "items": ITEM, "minItems": 1},
    {"type": "object", "required": ["format", "items"],
     "description": "an irtcat-bank/1 document",
     "properties": {"format": {"type": "string", "enum": ["irtcat-bank/1"]},
                    "items": {"type": "array", "items": ITEM, "minItems": 1}}}]}
# JSON bodies the views return without a schema: the shapes FORMATS.md and
# itembank.monitoring give them.
OBJECT_BODIES = {("/simulations", "post", "200"): "the simulation report of FORMATS.md",
                 ("/dif", "post", "200"): "the DIF table of docs/API.md",
                 ("/ready", "get", "200"): "ready, with the database's schema"}
# A done job's result has its kind's media type (delivery.jobs): a bank document or a
# simulation report, a bank report's page, or an exported response log.
JOB_RESULT = ("/jobs/{job_id}/result", "get", "200")
JOB_RESULT_CONTENT = {
    "application/json": {"schema": {"type": "object", "description": "calibrations, "
                                    "simulations, DIF: the bank document or the report"}},
    "text/html": {"schema": {"type": "string", "description": "reports: one HTML page"}},
    "text/csv": {"schema": {"type": "string", "description": "exports: long CSV"}}}


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


def document(spec):
    """The document of `spec` (flask-smorest's APISpec of the app), its paths relative to
    the server URL /v1."""
    document_ = copy.deepcopy(spec.to_dict())
    document_["info"]["description"] = DESCRIPTION
    document_["servers"] = [{"url": PREFIX}]
    document_["paths"] = {path.removeprefix(PREFIX): operations
                          for path, operations in document_["paths"].items()}
    components = document_.setdefault("components", {})
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    _nullable_refs(document_)
    schemas_ = components["schemas"]
    _no_nul(schemas_)
    for path, operations in document_["paths"].items():
        shared = operations.pop("parameters", [])              # each operation states them
        for method, entry in operations.items():
            entry["parameters"] = copy.deepcopy(shared) + entry.get("parameters", [])
            if not entry["parameters"]:
                del entry["parameters"]
            for parameter in entry.get("parameters", []):
                if parameter.get("in") not in (None, "header"):
                    _no_nul(parameter)
            for (path_, method_, status), description in OBJECT_BODIES.items():
                if (path, method) == (path_, method_):
                    entry["responses"][status]["content"] = {
                        "application/json": {"schema": {"type": "object",
                                                        "description": description}}}
            if (path, method) == JOB_RESULT[:2]:
                entry["responses"][JOB_RESULT[2]]["content"] = copy.deepcopy(JOB_RESULT_CONTENT)
    assert {model for models, _ in MODEL_PARAMETERS for model in models} == set(
        schemas_["ItemDoc"]["properties"]["model"]["enum"])
    for name in ("ItemDoc", "ItemReplace"):
        schemas_[name]["oneOf"] = [{"properties": {"model": {"enum": models}, **parameters}}
                                   for models, parameters in MODEL_PARAMETERS]
    schemas_["ItemsImport"] = ITEMS_IMPORT
    schemas_["CalibrationRequest"]["oneOf"] = CALIBRATION_SOURCES
    return document_
