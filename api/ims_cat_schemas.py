"""The OpenAPI 3 document of the 1EdTech CAT service under /ims/cat/v1p0 (docs/ims-cat.md),
served at /ims/cat/v1p0/openapi.json.

Written out rather than generated: the service takes the documents of the 1EdTech
standard as TAO's client sends them (its departures from the schema included: cardinality
as 0, upper-case baseType, sessionStatus FINAL, `context.sourcedId` null), so the request
schemas name the fields irtcat reads and let the standard's others through.
"""

from __future__ import annotations

import copy

BASE64 = {"type": "string", "description": "base64 (may be empty)"}
VALUE = {"type": "object", "required": ["value"],
         "properties": {"baseType": {"type": "string"},
                        "value": {"description": "the value (a number, text, true/false)"}}}
OUTCOME_VARIABLE = {
    "type": "object", "required": ["identifier", "value"],
    "properties": {
        "identifier": {"type": "string", "description": "SCORE is read"},
        "cardinality": {"description": "single, or 0 as TAO's client sends it",
                        "oneOf": [{"type": "string"}, {"type": "integer"}]},
        "baseType": {"type": "string"},
        "value": {"type": "array", "items": VALUE}}}
ITEM_RESULT = {
    "type": "object", "required": ["identifier", "outcomeVariables"],
    "properties": {"identifier": {"type": "string", "description": "the item's id"},
                   "datestamp": {"type": "string"},
                   "sessionStatus": {"type": "string"},
                   "outcomeVariables": {"type": "array", "items": OUTCOME_VARIABLE}}}
OUTCOME_REPLY = {
    "type": "object", "required": ["identifier", "cardinality", "baseType", "value"],
    "additionalProperties": False,
    "properties": {
        "identifier": {"type": "string", "enum": ["THETA", "SE", "PASSED", "STOP_REASON"]},
        "cardinality": {"type": "string", "enum": ["single"]},
        "baseType": {"type": "string", "enum": ["float", "boolean", "identifier"]},
        "value": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "required": ["baseType", "value"],
            "additionalProperties": False,
            "properties": {"baseType": {"type": "string"},
                           "value": {"oneOf": [{"type": "number"}, {"type": "boolean"},
                                               {"type": "string"}]}}}}}}
NEXT_ITEMS = {"type": "object", "required": ["itemIdentifiers", "stageLength"],
              "additionalProperties": False,
              "properties": {"itemIdentifiers": {"type": "array", "maxItems": 1,
                                                 "items": {"type": "string"}},
                             "stageLength": {"type": "integer", "minimum": 0, "maximum": 1}}}
ASSESSMENT_REPLY = {
    "type": "object", "required": ["testResult"], "additionalProperties": False,
    "description": "only once the session has finished",
    "properties": {"testResult": {
        "type": "object", "required": ["outcomeVariables"], "additionalProperties": False,
        "properties": {"outcomeVariables": {"type": "array", "items": OUTCOME_REPLY}}}}}
SCHEMAS = {
    "SectionCreate": {
        "type": "object", "required": ["sectionConfiguration"],
        "properties": {"sectionConfiguration": {
            "type": "string", "description": "base64 of an irtcat test id, or of a JSON "
                                             "object whose testId names one"},
            "qtiMetadata": BASE64, "qtiUsagedata": BASE64}},
    "SectionCreated": {"type": "object", "required": ["sectionIdentifier"],
                       "additionalProperties": False,
                       "properties": {"sectionIdentifier": {"type": "string"}}},
    "Section": {"type": "object", "additionalProperties": False,
                "required": ["sectionIdentifier", "sectionConfiguration", "qtiMetadata",
                             "qtiUsagedata", "status"],
                "properties": {"sectionIdentifier": {"type": "string"},
                               "sectionConfiguration": BASE64, "qtiMetadata": BASE64,
                               "qtiUsagedata": BASE64,
                               "status": {"type": "string", "enum": ["open", "ended"]}}},
    "SessionCreate": {
        "type": "object",
        "properties": {"priorData": {
            "type": "array", "description": "initialEstimatedAbility is recorded; "
                                            "learnerIdentifier or sourcedId names the learner",
            "items": {"type": "object", "required": ["key"],
                      "properties": {"key": {"type": "string"}, "value": {}}}}}},
    "SessionCreated": {
        "type": "object", "additionalProperties": False,
        "required": ["sessionIdentifier", "nextItems", "sessionState"],
        "properties": {"sessionIdentifier": {"type": "string"}, "nextItems": NEXT_ITEMS,
                       "sessionState": {"type": "string"},
                       "assessmentResult": ASSESSMENT_REPLY}},
    "Results": {
        "type": "object", "required": ["assessmentResult", "sessionState"],
        "properties": {
            "sessionState": {"type": "string", "description": "the last reply's"},
            "assessmentResult": {
                "type": "object", "required": ["itemResult"],
                "properties": {"context": {"type": "object"},
                               "itemResult": {"type": "array", "minItems": 1,
                                              "items": ITEM_RESULT}}}}},
    "ResultsReply": {
        "type": "object", "additionalProperties": False,
        "required": ["nextItems", "sessionState"],
        "properties": {"nextItems": NEXT_ITEMS, "sessionState": {"type": "string"},
                       "assessmentResult": ASSESSMENT_REPLY}},
    "ErrorEnvelope": {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {
            "type": "object", "required": ["code", "message", "details"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "details": {"type": "object"}}}}},
}
ERRORS = {"400": "the body is not a JSON object", "401": "no key, or an unknown one",
          "403": "a key of another role, a section or session of another key, a "
                 "sessionState this server did not issue for this session",
          "404": "no such section, session or test", "409": "an ended section, an answered "
          "item, an item that is not the current one, a finished session",
          "422": "a body this service cannot read (no SCORE, a score no response gives)"}
ROUTES = [  # (path, method, summary, request schema, status, reply schema)
    ("/sections", "post", "create a section: an irtcat test", "SectionCreate", "201",
     "SectionCreated"),
    ("/sections/{sectionIdentifier}", "get", "a section as created", None, "200",
     "Section"),
    ("/sections/{sectionIdentifier}", "delete", "end a section: no new session", None,
     "204", None),
    ("/sections/{sectionIdentifier}/sessions", "post", "start a session: its first item",
     "SessionCreate", "201", "SessionCreated"),
    ("/sections/{sectionIdentifier}/sessions/{sessionIdentifier}/results", "post",
     "submit item results (SCORE): the next item, or none and the test result",
     "Results", "200", "ResultsReply"),
    ("/sections/{sectionIdentifier}/sessions/{sessionIdentifier}", "delete",
     "end a session now, scored on the answers given", None, "204", None),
]


def _operation(path, summary, body, status, reply):
    entry = {"summary": summary, "security": [{"bearer": []}],
             "description": "Who may call: cat-client.",
             "parameters": [{"in": "path", "name": name, "required": True,
                             "schema": {"type": "string", "minLength": 1}}
                            for name in ("sectionIdentifier", "sessionIdentifier")
                            if "{" + name + "}" in path],
             "responses": {status: {"description": "done"}}}
    if not entry["parameters"]:
        del entry["parameters"]
    if body is not None:
        entry["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if reply is not None:
        entry["responses"][status]["content"] = {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{reply}"}}}
    for code, description in ERRORS.items():
        entry["responses"][code] = {"description": description, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}
    return entry


def document():
    """The OpenAPI 3.0.3 document of the service, its paths relative to /ims/cat/v1p0."""
    paths = {}
    for path, method, summary, body, status, reply in ROUTES:
        paths.setdefault(path, {})[method] = _operation(path, summary, body, status, reply)
    return {"openapi": "3.0.3",
            "info": {"title": "irtcat: the 1EdTech CAT service", "version": "1.0",
                     "description": "The engine side of the 1EdTech Computer Adaptive "
                                    "Testing service v1.0 (docs/ims-cat.md). Authenticate "
                                    "with `Authorization: Bearer <cat-client key>`."},
            "servers": [{"url": "/ims/cat/v1p0"}], "paths": paths,
            "components": {"schemas": copy.deepcopy(SCHEMAS), "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"}}}}


__all__ = ["document"]
