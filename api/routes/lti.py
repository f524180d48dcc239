"""LTI 1.3 platforms registered with this tool (admin): list, register, remove."""

from __future__ import annotations

from flask import g
from marshmallow import fields, validate

from irtcat.delivery.lti import check_platform
from irtcat.itembank import lti as rows
from irtcat.itembank.errors import NotFoundError

from ..schemas import WHITE_SPACE, Strict, visible_text
from .base import MAX_RUN_ID, operation

# no white space (the class spelled out: `\s` differs between Python and OpenAPI's ECMA)
URL = [validate.Length(min=8, max=1000),
       validate.Regexp(rf"^https?://[^\x00{WHITE_SPACE}]+$", error="an http(s) URL")]


class LtiPlatformBody(Strict):
    issuer = fields.String(required=True, validate=visible_text(255),
                           metadata={"description": "the platform's issuer (iss)"})
    client_id = fields.String(required=True, validate=visible_text(255),
                              metadata={"description": "the client id it gave this tool"})
    deployment_ids = fields.List(fields.String(validate=visible_text(255)), required=True,
                                 validate=validate.Length(min=1, max=100),
                                 metadata={"description": "deployments it may launch from"})
    auth_login_url = fields.String(required=True, validate=URL,
                                   metadata={"description": "its OIDC authorization URL"})
    token_url = fields.String(required=True, validate=URL,
                              metadata={"description": "its OAuth 2 token URL"})
    jwks_url = fields.String(required=True, validate=URL,
                             metadata={"description": "its public keys (JWKS)"})


class LtiPlatformDoc(LtiPlatformBody):
    id = fields.Integer(required=True)


@operation("/lti/platforms", "GET", roles=("admin",), answer=LtiPlatformDoc, many=True,
           summary="the LTI 1.3 platforms registered with this tool")
def list_platforms():
    return rows.platforms(g.store.database)


@operation("/lti/platforms", "POST", roles=("admin",), body=LtiPlatformBody,
           answer=LtiPlatformDoc, status=201, errors=(409,),
           summary="register an LTI 1.3 platform (https URLs; http only for localhost)")
def post_platform(data):
    return rows.add_platform(g.store.database, check_platform(data))


@operation("/lti/platforms/<int:platform_id>", "DELETE", roles=("admin",), status=204,
           errors=(404,), summary="remove a platform, its logins and launches")
def delete_platform(platform_id):
    if platform_id > MAX_RUN_ID:                      # beyond the database's integers
        raise NotFoundError(f"no LTI platform {platform_id}")
    rows.remove_platform(g.store.database, platform_id)
    return None
