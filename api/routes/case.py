"""The skill framework as a CASE 1.0 package (1EdTech Competencies and Academic Standards
Exchange; delivery/case.py, docs/case.md): ``GET /v1/case`` exports it,
``POST /v1/case`` imports one (not under /v1/standards, where the path would also name a
standard coded "case").

The body's schemas check the shape CASE gives the fields irtcat reads (identifiers,
statements, the document's descriptive fields, associations' ends) and keep every other
field as given; what a schema cannot state (a cycle, an association to a node the package
lacks, an item with two parents) is 422 from `delivery.case`. The package's URIs start
with IRTCAT_PUBLIC_URL, else the address the request reached.
"""

from __future__ import annotations

import os

from flask import g, request
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from irtcat.delivery.case import case_package, import_case_package

from ..schemas import ID, VISIBLE, Strict
from .base import operation

UUID = validate.Regexp(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$",
                       error="must be a UUID (8-4-4-4-12 hexadecimal digits)")
TEXT = validate.Length(min=1)


def _optional_text():
    return fields.String(allow_none=True)


class Subject(fields.Field):
    """A CFDocument's subject: a string or a list of strings (CASE allows both)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) or (isinstance(value, list)
                                      and all(isinstance(entry, str) for entry in value)):
            return value
        raise ValidationError("a string or a list of strings")


class CaseLink(Schema):
    """A LinkURI: ``{title, identifier, uri}`` of a node."""

    class Meta:
        unknown = INCLUDE

    title = fields.String()
    identifier = fields.String(required=True, validate=TEXT)
    uri = fields.String()


class CaseNode(Schema):
    """What a CFDocument and a CFItem share: a UUID, a URI, the time of the last change;
    fields not declared are taken as given."""

    class Meta:
        unknown = INCLUDE

    identifier = fields.String(required=True, validate=UUID)
    uri = fields.String()
    lastChangeDateTime = fields.String()


class CaseDocument(CaseNode):
    """The CFDocument: the framework's identifier, title, creator and descriptive fields."""

    title = fields.String(required=True, validate=[TEXT, VISIBLE])
    creator = fields.String(required=True, validate=[TEXT, VISIBLE])
    officialSourceURL = _optional_text()
    publisher = _optional_text()
    description = _optional_text()
    subject = Subject(allow_none=True, metadata={"oneOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
    language = _optional_text()
    version = _optional_text()
    adoptionStatus = _optional_text()
    statusStartDate = _optional_text()
    statusEndDate = _optional_text()
    notes = _optional_text()


class CaseItem(CaseNode):
    """A CFItem: one standard."""

    fullStatement = fields.String(required=True, validate=[TEXT, VISIBLE])
    abbreviatedStatement = _optional_text()
    humanCodingScheme = _optional_text()


class CaseAssociation(Schema):
    """A CFAssociation; ``isChildOf`` ones make the hierarchy, other types are not kept."""

    class Meta:
        unknown = INCLUDE

    identifier = fields.String()
    uri = fields.String()
    associationType = fields.String(required=True, validate=TEXT)
    originNodeURI = fields.Nested(CaseLink, required=True)
    destinationNodeURI = fields.Nested(CaseLink, required=True)
    lastChangeDateTime = fields.String()


class CasePackage(Strict):
    """A CFPackage: ``{CFDocument, CFItems, CFAssociations}``; its CFDefinitions and
    CFRubrics are taken and not kept."""

    CFDocument = fields.Nested(CaseDocument, required=True)
    CFItems = fields.List(fields.Nested(CaseItem), required=True,
                          validate=validate.Length(min=1))
    CFAssociations = fields.List(fields.Nested(CaseAssociation))
    CFDefinitions = fields.Dict()
    CFRubrics = fields.List(fields.Dict())


class CaseImportSummary(Strict):
    """The imported CFDocument's identifier and the standards' codes by outcome."""

    document = fields.String(required=True)
    created = fields.List(fields.String(validate=ID), required=True)
    updated = fields.List(fields.String(validate=ID), required=True)
    unchanged = fields.List(fields.String(validate=ID), required=True)


@operation("/case", "GET", roles=("admin",), answer=CasePackage,
           summary="the skill framework as a CASE 1.0 package (CFDocument, CFItems, "
                   "isChildOf CFAssociations)")
def get_case_package():
    base_url = os.environ.get("IRTCAT_PUBLIC_URL") or request.host_url
    return case_package(g.store, base_url)


@operation("/case", "POST", roles=("admin",), body=CasePackage,
           answer=CaseImportSummary, errors=(409,),
           summary="create or update standards from a CASE 1.0 package, keeping its "
                   "identifiers and hierarchy")
def post_case_package(data):
    return import_case_package(g.store, data)
