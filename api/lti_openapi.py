"""The OpenAPI 3.0.3 document of the LTI 1.3 tool's browser and platform routes
(`api.lti_pages`), served at ``/lti/openapi.json``: they live outside /v1 (the
platform and the learner's browser call them, not an integrator's key), so the v1
document, whose paths are relative to /v1, does not hold them. The admin routes that
register platforms (`/v1/lti/platforms`) are in the v1 document."""

from __future__ import annotations

LOGIN_FIELDS = {
    "iss": ("the platform's issuer, as registered", True),
    "login_hint": ("the platform's opaque user hint, sent back to it", True),
    "target_link_uri": ("this tool's launch URL (/lti/launch), with ?test=ID optional",
                        True),
    "client_id": ("the tool's client id at the platform: needed when the issuer has "
                  "several", False),
    "lti_message_hint": ("the platform's opaque message hint, sent back to it", False),
    "lti_deployment_id": ("the deployment, one of the platform's registered ids", False),
}
LAUNCH_FIELDS = {
    "id_token": ("the platform's RS256-signed LtiResourceLinkRequest", True),
    "state": ("the state this tool's login sent to the platform", True),
}
REJECTED = {"description": "refused; the reason is the message, and a log line "
                           "lti_launch_failed records it", "content": {"application/json": {
                               "schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}


def _form(fields):
    return {"type": "object", "additionalProperties": True,
            "required": [name for name, (_, required) in fields.items() if required],
            "properties": {name: {"type": "string", "description": text}
                           for name, (text, _) in fields.items()}}


def _login(method):
    entry = {"summary": "OIDC login initiation: to the platform's authorization endpoint "
                        "with a new state and nonce",
             "responses": {"302": {"description": "to the platform's auth_login_url",
                                   "headers": {"Location": {"schema": {"type": "string"}}}},
                           "400": REJECTED}}
    if method == "get":
        entry["parameters"] = [{"in": "query", "name": name, "required": required,
                                "description": text, "schema": {"type": "string"}}
                               for name, (text, required) in LOGIN_FIELDS.items()]
    else:
        entry["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": _form(LOGIN_FIELDS)}}}
    return entry


def document():
    """The document, its paths relative to /lti."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "irtcat: the LTI 1.3 tool", "version": "1.3",
                 "description": "The routes an LTI 1.3 platform and the learner's browser "
                                "call (docs/lti.md); no key: the platform's signed "
                                "id_token is the credential."},
        "servers": [{"url": "/lti"}],
        "paths": {
            "/login": {"get": _login("get"), "post": _login("post")},
            "/launch": {"post": {
                "summary": "a resource link launch: checked (signature against the "
                           "platform's JWKS, iss, aud, azp, exp, nonce once, state, "
                           "deployment, message type, version), then a session of the "
                           "linked test for the platform user",
                "requestBody": {"required": True, "content": {
                    "application/x-www-form-urlencoded": {"schema": _form(LAUNCH_FIELDS)}}},
                "responses": {
                    "303": {"description": "to the learner page, the session in the URL "
                                           "fragment", "headers": {
                                               "Location": {"schema": {"type": "string"}}}},
                    "400": REJECTED}}},
            "/jwks": {"get": {
                "summary": "the tool's public keys (RFC 7517): the platform checks the "
                           "tool's client assertions with them",
                "responses": {"200": {"description": "a JWK set", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Jwks"}}}}}}},
            "/openapi.json": {"get": {
                "summary": "this document",
                "responses": {"200": {"description": "OpenAPI 3.0.3", "content": {
                    "application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": {
            "Jwks": {"type": "object", "required": ["keys"], "properties": {"keys": {
                "type": "array", "items": {
                    "type": "object", "required": ["kty", "kid", "n", "e"],
                    "properties": {name: {"type": "string"} for name in
                                   ("kty", "kid", "n", "e", "alg", "use")}}}}},
            "ErrorEnvelope": {
                "type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message", "details"],
                    "properties": {"code": {"type": "string", "enum": ["lti_rejected"]},
                                   "message": {"type": "string"},
                                   "details": {"type": "object"}}}}},
        }},
    }


__all__ = ["document"]
