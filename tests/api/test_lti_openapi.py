"""The LTI tool's own OpenAPI document (/lti/openapi.json): a valid OpenAPI 3.0.3
document (openapi-spec-validator) naming every route of the tool's blueprint with each
method it answers, and the JWKS reply shaped as it says."""

import jsonschema
from openapi_spec_validator import validate as validate_openapi


def test_the_document_is_valid_and_names_every_route(api):
    reply = api.call("GET", "/lti/openapi.json")
    assert reply.status_code == 200
    document = reply.json
    validate_openapi(document)
    documented = {(method.upper(), "/lti" + path) for path, operations in
                  document["paths"].items() for method in operations}
    served = {(method, rule.rule) for rule in api.app.url_map.iter_rules()
              if rule.rule.startswith("/lti/") for method in rule.methods
              if method not in ("HEAD", "OPTIONS")}
    assert documented == served


def test_the_jwks_reply_is_shaped_as_documented(api):
    document = api.call("GET", "/lti/openapi.json").json
    schema = document["components"]["schemas"]["Jwks"]
    keys = api.call("GET", "/lti/jwks").json
    jsonschema.validate(keys, schema)
    assert keys["keys"] and all(key["kty"] == "RSA" for key in keys["keys"])


def test_a_refused_login_is_the_documented_envelope(api):
    document = api.call("GET", "/lti/openapi.json").json
    refused = api.call("GET", "/lti/login?iss=https://nobody.example&login_hint=x"
                              "&target_link_uri=https://tool.example/lti/launch")
    assert refused.status_code == 400
    jsonschema.validate(refused.json, document["components"]["schemas"]["ErrorEnvelope"])
