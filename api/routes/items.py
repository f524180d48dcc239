"""Items: import (one, a list, or an irtcat-bank/1 document), list, read and replace, the
writes under If-Match."""

from __future__ import annotations

from flask import g

from irtcat.itembank.errors import NotFoundError
from irtcat.itembank.etags import bank_tag, item_tag

from .. import schemas
from .base import ApiError, if_match, operation, precondition, send_tag


@operation("/items", "POST", roles=("admin",), body=schemas.ItemsImport,
           answer=schemas.ImportSummary, status=201, if_match=True, errors=(409,),
           summary="add or update items: one, a list, or an irtcat-bank/1 document")
def post_items(data):
    items = data.get("items") if isinstance(data, dict) else data
    codes = {item.get("standard") for item in items if isinstance(item, dict)} \
        if isinstance(items, list) else set()
    code = next(iter(codes)) if len(codes) == 1 else None     # the one standard imported
    code = code if isinstance(code, str) else None
    if code is None and if_match() is not None:
        raise ApiError(422, "If-Match on an import needs the items of one standard "
                            "(the ETag of GET /v1/items?standard=CODE)", "validation_error")
    summary = g.store.import_items(
        data, precondition=None if code is None else precondition(bank_tag, code))
    if code is not None:
        send_tag(bank_tag, code)
    return summary


@operation("/items", "GET", roles=("admin",), query=schemas.StandardQuery,
           answer=schemas.ItemDoc, paginated=True, errors=(404,),
           summary="items with content, keys and published parameters (?standard=CODE)")
def list_items(query):
    standard = query.get("standard")
    try:
        if standard is not None:
            send_tag(bank_tag, standard)
        return g.store.items(standard)
    except NotFoundError:
        if standard is not None:
            g.store.standard(standard)                # 404 for an unknown standard
        return []


@operation("/items/<item_id>", "GET", roles=("admin",), answer=schemas.ItemDoc,
           summary="one item")
def get_item(item_id):
    send_tag(item_tag, item_id)
    return _item(item_id)


@operation("/items/<item_id>", "PUT", roles=("admin",), body=schemas.ItemReplace,
           answer=schemas.ItemDoc, if_match=True, errors=(409,), summary="replace one item")
def put_item(item_id, data):
    _item(item_id)
    if data.get("id", item_id) != item_id:
        raise ApiError(409, "the body's id differs from the URL's", "conflict")
    g.store.import_items([{**data, "id": item_id}],
                         precondition=precondition(item_tag, item_id))
    send_tag(item_tag, item_id)
    return _item(item_id)


def _item(item_id):
    found = g.store.item(item_id)
    if found is None:
        raise NotFoundError(f"no item {item_id!r}")
    return found
