"""Schemathesis over every operation of /v1/openapi.json, in process, once with the admin
key and once with the delivery key: no server error, every error in the envelope of
spec/API.md, responses, status codes and content types as the document declares them,
and the document exactly as strict as the validation (a body it allows is not refused
for a field reason, a body it forbids is refused). Seeded and bounded: the same cases on
every run."""

import re

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from irtcat.api.app import OPERATIONS

SEED = 20261204
MAX_EXAMPLES = 20
MAX_EXAMPLES_POSTGRESQL = 6
"""The document and the validation do not depend on the back end: SQLite takes the full
run (the coverage phase's boundary cases, then MAX_EXAMPLES fuzzed), PostgreSQL a shorter
one for what does (its errors, its text rules: fuzzing alone), which keeps make test
under its 10 minutes."""


def no_server_error(ctx, response, case):
    """`not_a_server_error`, except the refusal the document declares: 503 from /ready."""
    if response.status_code == 503 and "503" in case.operation.definition.raw["responses"]:
        if response.json().get("error", {}).get("code") == "not_ready":
            return True
    return not_a_server_error(ctx, response, case)


def error_envelope(ctx, response, case):
    """Every response with a status of 400 or more is the JSON error envelope."""
    if response.status_code < 400:
        return True
    content_type = response.headers.get("content-type", [""])[0]
    if not content_type.startswith("application/json"):
        raise AssertionError(f"{response.status_code} with Content-Type {content_type!r}")
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if (set(body) != {"error"} or not isinstance(error, dict)
            or set(error) != {"code", "message", "details"}
            or not isinstance(error["code"], str) or not isinstance(error["message"], str)
            or not isinstance(error["details"], dict)):
        raise AssertionError(f"{response.status_code} with body {body!r}")
    return True


def allowed_body_accepted(ctx, response, case):
    """A request generated from the document (a positive case) is never refused with 400:
    400 is what the document refuses (docs/API.md, "Status codes"), so such a refusal is a
    constraint the document could have stated. Rules it cannot state (a level's cuts out of
    order, parameters that do not fit the model) answer 422, references to what the store
    lacks 409."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return True
    if response.status_code == 400:
        error = response.json().get("error", {})
        raise AssertionError(f"400 {error.get('message')}: {error.get('details')}")
    return True


CHECKS = [no_server_error, error_envelope, status_code_conformance,
          content_type_conformance, response_schema_conformance, negative_data_rejection,
          allowed_body_accepted]


@pytest.fixture(autouse=True)
def _no_quotas(monkeypatch):
    """Rate limits off: the fuzzer sends more requests a minute than a client may."""
    monkeypatch.setenv("IRTCAT_QUOTAS", "off")


@pytest.fixture(params=["admin", "delivery"])
def openapi(request, api, database_url):
    # schemathesis 4.32 renames the test node through `_nodeid`, which pytest 9 no longer
    # has (it keeps `_id`): give it the attribute it reads; the report keeps pytest's id.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    # Half the path parameters and ids in bodies name real resources, so that bodies
    # reach the rules behind the lookups (sessions started by the delivery key).
    sessions = [api.start(learner_id=f"fuzz-{n}")["session_id"] for n in range(3)]
    items = [item["id"] for item in api.call("GET", "/v1/items", api.admin).json]
    standards = [s["code"] for s in api.call("GET", "/v1/standards", api.admin).json]
    postgresql = database_url.startswith("postgresql")
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "phases": {"coverage": {"enabled": not postgresql}},
        "dictionaries": {"sessions": {"values": sessions}, "items": {"values": items},
                         "tests": {"values": ["credential", "ml", "open"]},
                         "standards": {"values": standards}},
        "parameters": {name: {"dictionary": dictionary, "probability": 0.5}
                       for name, dictionary in [
                           ("path.session_id", "sessions"), ("path.item_id", "items"),
                           ("path.test_id", "tests"), ("path.code", "standards"),
                           ("query.standard", "standards"), ("body.item_id", "items"),
                           ("body.test_id", "tests"), ("body.standard", "standards")]},
        "headers": {"Authorization": f"Bearer {getattr(api, request.param)}"},
        "generation": {"max-examples": MAX_EXAMPLES_POSTGRESQL if postgresql
                       else MAX_EXAMPLES,
                       "deterministic": True,
                       "database": "none"},
    })
    return schemathesis.openapi.from_wsgi("/v1/openapi.json", api.app, config=config)


schema = schemathesis.pytest.from_fixture("openapi")


@pytest.mark.runs_long
@schema.parametrize()
def test_api(case):
    case.call_and_validate(checks=CHECKS)


def test_the_fuzzed_operations_are_every_route(api):
    """`test_api` is parametrized by the document's operations: they are the app's
    declared routes, no more and no fewer (so every route is fuzzed)."""
    document = api.call("GET", "/v1/openapi.json").json
    documented = {(method.upper(), path) for path, operations in document["paths"].items()
                  for method in operations}
    declared = {(op.method, re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", op.rule))
                for op in OPERATIONS}
    assert documented == declared and len(declared) == len(OPERATIONS)
