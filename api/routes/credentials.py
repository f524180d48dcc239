"""A passed session's Open Badges 3.0 credential (docs/open-badges.md).

`GET /v1/sessions/{id}/credential`: the delivery key that started the session, or the
session's own token (within the finished session's read window), gets the signed
OpenBadgeCredential: JSON with a Data Integrity proof (eddsa-rdfc-2022) by default,
the compact VC-JWT (`application/vc+jwt`) with `?format=jwt`. The JSON is compact
UTF-8 without escapes, so that no byte can change without changing the credential.
409 while the session is active or when it did not pass. The issuer's name is
IRTCAT_ISSUER_NAME (default "irtcat").
"""

from __future__ import annotations

import json
import os

from flask import Response, g
from marshmallow import fields, validate

from irtcat.delivery.badges import JWT_MEDIA_TYPE, session_credential

from ..schemas import Strict
from .base import operation, v1

DEFAULT_ISSUER_NAME = "irtcat"


class CredentialQuery(Strict):
    format = fields.String(load_default="ldp", validate=validate.OneOf(("ldp", "jwt")),
                           metadata={"description": "ldp: JSON with a Data Integrity "
                                     "proof; jwt: the compact VC-JWT"})


def _types():
    return fields.List(fields.String(), required=True)


class Profile(Strict):
    id = fields.String(required=True)
    type = _types()
    name = fields.String(required=True)


class IdentityObject(Strict):
    type = fields.String(required=True)
    identityHash = fields.String(required=True)                       # noqa: N815
    identityType = fields.String(required=True)                       # noqa: N815
    hashed = fields.Boolean(required=True)
    salt = fields.String(required=True)


class Alignment(Strict):
    type = _types()
    targetType = fields.String(required=True)                         # noqa: N815
    targetName = fields.String(required=True)                         # noqa: N815
    targetCode = fields.String(required=True)                         # noqa: N815
    targetUrl = fields.String(required=True)                          # noqa: N815


class RubricCriterionLevel(Strict):
    id = fields.String(required=True)
    type = _types()
    name = fields.String(required=True)
    description = fields.String(required=True)


class ResultDescription(Strict):
    id = fields.String(required=True)
    type = _types()
    name = fields.String(required=True)
    resultType = fields.String(required=True)                         # noqa: N815
    allowedValue = fields.List(fields.String())                       # noqa: N815
    rubricCriterionLevel = fields.List(fields.Nested(RubricCriterionLevel))  # noqa: N815


class Criteria(Strict):
    narrative = fields.String(required=True)


class Achievement(Strict):
    id = fields.String(required=True)
    type = _types()
    name = fields.String(required=True)
    description = fields.String(required=True)
    criteria = fields.Nested(Criteria, required=True)
    alignment = fields.List(fields.Nested(Alignment), required=True)
    resultDescription = fields.List(fields.Nested(ResultDescription),  # noqa: N815
                                    required=True)


class AchievementResult(Strict):
    type = _types()
    resultDescription = fields.String(required=True)                  # noqa: N815
    achievedLevel = fields.String()                                   # noqa: N815
    value = fields.String(required=True)


class AchievementSubject(Strict):
    type = _types()
    identifier = fields.List(fields.Nested(IdentityObject), required=True)
    achievement = fields.Nested(Achievement, required=True)
    result = fields.List(fields.Nested(AchievementResult), required=True)


class DataIntegrityProof(Strict):
    type = fields.String(required=True)
    created = fields.String(required=True)
    verificationMethod = fields.String(required=True)                 # noqa: N815
    cryptosuite = fields.String(required=True)
    proofPurpose = fields.String(required=True)                       # noqa: N815
    proofValue = fields.String(required=True)                         # noqa: N815


class OpenBadgeCredential(Strict):
    context = fields.List(fields.String(), required=True, data_key="@context",
                          attribute="@context")
    id = fields.String(required=True)
    type = _types()
    name = fields.String(required=True)
    issuer = fields.Nested(Profile, required=True)
    validFrom = fields.String(required=True)                          # noqa: N815
    credentialSubject = fields.Nested(AchievementSubject, required=True)  # noqa: N815
    proof = fields.Nested(DataIntegrityProof, required=True)


JWT_RESPONSE = {"responses": {200: {"content": {JWT_MEDIA_TYPE: {
    "schema": {"type": "string", "description": "with ?format=jwt: the compact JWS"}}}}}}


@operation("/sessions/<session_id>/credential", "GET", roles=("delivery",), token=True,
           query=CredentialQuery, answer=OpenBadgeCredential, errors=(409,),
           summary="the passed session's Open Badges 3.0 credential, signed (Data "
                   "Integrity eddsa-rdfc-2022, or VC-JWT with ?format=jwt); 409 when "
                   "the session is not finished or did not pass")
@v1.doc(**JWT_RESPONSE)
def credential(session_id, query):
    if g.principal[0] == "token":
        g.delivery.state(session_id, token=True)    # a finished session's read window
    issuer_name = os.environ.get("IRTCAT_ISSUER_NAME", DEFAULT_ISSUER_NAME)
    signed = session_credential(g.delivery, session_id, issuer_name, query["format"])
    if query["format"] == "jwt":
        return Response(signed, mimetype=JWT_MEDIA_TYPE)
    # UTF-8 without \u escapes or white space between tokens: then every changed byte
    # changes the credential (an escape's hex digits could change case unnoticed)
    text = json.dumps(OpenBadgeCredential().dump(signed), ensure_ascii=False,
                      separators=(",", ":"))
    return Response(text, mimetype="application/json")
