"""Skill standards: list, create, read and replace (If-Match)."""

from __future__ import annotations

from flask import g

from irtcat.itembank.etags import standard_tag
from irtcat.itembank.records import parse_standard

from .. import schemas
from .base import ApiError, operation, precondition, send_tag


@operation("/standards", "GET", roles=("admin",), answer=schemas.StandardDoc,
           paginated=True, summary="the skill standards")
def list_standards():
    return g.store.standards()


@operation("/standards", "POST", roles=("admin",), body=schemas.StandardDoc,
           answer=schemas.StandardDoc, status=201, errors=(409,),
           summary="create or replace a standard")
def post_standard(data):
    entry = parse_standard(data)
    g.store.put_standard(entry)
    return g.store.standard(entry["code"])


@operation("/standards/<code>", "GET", roles=("admin",), answer=schemas.StandardDoc,
           summary="one standard, with its ETag")
def get_standard(code):
    send_tag(standard_tag, code)                    # the tag first: see send_tag
    return g.store.standard(code)


@operation("/standards/<code>", "PUT", roles=("admin",), body=schemas.StandardUpdate,
           answer=schemas.StandardDoc, if_match=True, errors=(409,),
           summary="replace a standard; with If-Match, only if it is still that version (412)")
def put_standard(code, data):
    if data.get("code", code) != code:
        raise ApiError(409, "the body's code differs from the URL's", "conflict")
    entry = parse_standard({**data, "code": code})
    g.store.put_standard(entry, precondition=precondition(standard_tag, code))
    send_tag(standard_tag, code)
    return g.store.standard(code)
