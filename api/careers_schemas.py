"""Schemas of the career framework (``/v1/roles``), a learner's consent
(``/v1/sessions/{id}/consent``) and the talent network (``/v1/talent``)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from irtcat.delivery.careers import MAX_CONTACT, MIN_LEVELS, ROLE_ID, ROLES_FORMAT

from .schemas import NAME, Strict, visible_text

LEVEL_NAME = visible_text(64)


class RoleGap(Strict):
    code = fields.String(required=True)
    required = fields.String(required=True)
    level = fields.String(required=True, allow_none=True)
    short = fields.Integer(required=True, metadata={"description": "levels short"})


class RoleFit(Strict):
    """A job role of the career framework: met by the levels reached, or its gaps."""

    id = fields.String(required=True)
    title = fields.String(required=True)
    met = fields.Boolean(required=True)
    gaps = fields.List(fields.Nested(RoleGap), required=True)


class JobRole(Strict):
    id = fields.String(required=True, validate=validate.Regexp(f"^{ROLE_ID.pattern}$"))
    title = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=validate.Length(max=10_000))
    required = fields.Dict(
        keys=fields.String(), values=fields.String(validate=LEVEL_NAME), required=True,
        validate=validate.Length(min=1), metadata={
            "minProperties": 1,
            "description": "the level required of each standard: {code: level name}, a "
                           "standard the store holds (409 otherwise) and a level it has "
                           "(422 otherwise)"})


class CareerFramework(Strict):
    """The whole career framework: PUT replaces the stored roles by these."""

    format = fields.String(required=True, validate=validate.Equal(ROLES_FORMAT))
    roles = fields.List(fields.Nested(JobRole), required=True,
                        validate=validate.Length(max=200))


class RolesSummary(Strict):
    created = fields.List(fields.String(), required=True)
    updated = fields.List(fields.String(), required=True)
    unchanged = fields.List(fields.String(), required=True)
    removed = fields.List(fields.String(), required=True)


class ConsentRequest(Strict):
    contact = fields.String(required=True, validate=visible_text(MAX_CONTACT), metadata={
        "description": "how employers may reach the learner (an e-mail address, a "
                       "profile URL): the learner's choice, shown to employers as given"})


class Consent(Strict):
    contact = fields.String(required=True)
    given_at = fields.DateTime(required=True)


class Revoked(Strict):
    revoked = fields.Integer(required=True, metadata={
        "description": "consents that were in force (0: there was none)"})


class TalentQuery(Schema):
    """?role=ID or ?min_levels=CODE:LEVEL,CODE:LEVEL (not both; neither: every consenting
    learner with a credential)."""

    role = fields.String(validate=validate.Regexp(f"^{ROLE_ID.pattern}$"),
                         metadata={"description": "a job role's id: its required levels"})
    min_levels = fields.String(validate=[validate.Length(max=2000),
                                         validate.Regexp(f"^{MIN_LEVELS.pattern}$")],
                               metadata={"description": "CODE:LEVEL pairs separated by "
                                                        "commas"})

    @validates_schema
    def _one_of(self, data, **kwargs):
        if "role" in data and "min_levels" in data:
            raise ValidationError("give role or min_levels, not both")


class Credential(Strict):
    """The learner's latest passed session: which test, and the day it finished."""

    test_id, passed = fields.String(required=True), fields.Boolean(required=True)
    finished_on = fields.Date(required=True, metadata={"description": "a day, no time"})


class SharedLevel(Strict):
    """A standard's level reached (null: below the first cut, or not measured)."""

    code, title = fields.String(required=True), fields.String(allow_none=True)
    level = fields.String(required=True, allow_none=True)


class TalentCandidate(Strict):
    """A consenting learner as an employer sees them: no θ, SE, responses, items,
    session or learner ids."""

    candidate_id = fields.String(required=True, metadata={
        "description": "opaque: the learner's consent, gone once revoked"})
    contact = fields.String(required=True)
    credential = fields.Nested(Credential, required=True)
    levels = fields.List(fields.Nested(SharedLevel), required=True)
