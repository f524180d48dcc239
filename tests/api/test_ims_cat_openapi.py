"""Schemathesis over the 1EdTech CAT service's own OpenAPI document
(/ims/cat/v1p0/openapi.json), in process with a cat-client key: no server error, every
error in the envelope of spec/API.md, status codes, content types and replies as the
document declares them. Seeded and bounded: the same cases on every run."""

import json

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_ims_cat_contract import PREFIX, b64, post, tao_create_section, tao_init_session
from test_schemathesis import error_envelope, no_server_error

from irtcat.delivery.keys import create_key

SEED = 20261205
MAX_EXAMPLES = 15
CHECKS = [no_server_error, error_envelope, status_code_conformance,
          content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def _no_quotas(monkeypatch):
    monkeypatch.setenv("IRTCAT_QUOTAS", "off")


@pytest.fixture
def openapi(request, api):
    if not hasattr(request.node, "_nodeid"):          # as tests/api/test_schemathesis.py
        request.node._nodeid = request.node.nodeid
    key = create_key(api.store.database, "cat-client")
    section = post(api, "/sections", key, tao_create_section("ml")).json["sectionIdentifier"]
    session = post(api, f"/sections/{section}/sessions", key,
                   tao_init_session()).json["sessionIdentifier"]
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "dictionaries": {"sections": {"values": [section]},
                         "sessions": {"values": [session]},
                         "configurations": {"values": [b64("ml"), b64('{"testId": "ml"}')]}},
        "parameters": {"path.sectionIdentifier": {"dictionary": "sections",
                                                  "probability": 0.5},
                       "path.sessionIdentifier": {"dictionary": "sessions",
                                                  "probability": 0.5},
                       "body.sectionConfiguration": {"dictionary": "configurations",
                                                     "probability": 0.5}},
        "headers": {"Authorization": f"Bearer {key}"},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
    })
    return schemathesis.openapi.from_wsgi(f"{PREFIX}/openapi.json", api.app, config=config)


schema = schemathesis.pytest.from_fixture("openapi")


@schema.parametrize()
def test_ims_cat_api(case):
    case.call_and_validate(checks=CHECKS)


def test_the_document_names_every_route_of_the_blueprint(api):
    document = api.call("GET", f"{PREFIX}/openapi.json").json
    documented = {(method.upper(), PREFIX + path.replace("{sectionIdentifier}", "<section_id>")
                   .replace("{sessionIdentifier}", "<session_id>"))
                  for path, operations in document["paths"].items() for method in operations}
    registered = {(method, rule.rule) for rule in api.app.url_map.iter_rules()
                  if rule.rule.startswith(PREFIX + "/sections") for method in rule.methods
                  if method not in ("HEAD", "OPTIONS")}
    assert documented == registered
    assert json.dumps(document).count('"security"') == len(registered)
