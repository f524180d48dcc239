"""Entity tags of the admin's resources, for writes that must not overwrite a change
they did not see (HTTP ``ETag`` and ``If-Match``).

A tag names a state of a resource: a standard's by when it last changed; an item's by
when it last changed and its standard's current bank version (parameters live in
versions); a standard's bank (its items, as `GET /v1/items?standard=` lists them) by
its current version, the last change among its items and their number. Each is
computed from one short query inside the caller's transaction, so a write can
compare the tag and change the resource atomically: the store takes the standard's
row lock first (`Store.put_standard`, `Store.import_items` with a `precondition`).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from .errors import PreconditionFailed
from .schema import Item, Publication, Standard


def _tag(*parts):
    text = "|".join("" if part is None else str(part) for part in parts)
    return '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20] + '"'


def _current_version(session, code):
    return session.scalar(select(Publication.version_id)
                          .where(Publication.standard_code == code)
                          .order_by(Publication.id.desc()).limit(1))


def standard_tag(session, code):
    """The tag of standard `code`, or None if there is none."""
    changed = session.scalar(select(Standard.updated_at).where(Standard.code == code))
    return None if changed is None else _tag("standard", code, changed.isoformat())


def item_tag(session, item_id):
    """The tag of item `item_id`, or None if there is none."""
    row = session.execute(select(Item.updated_at, Item.standard_code)
                          .where(Item.id == item_id)).one_or_none()
    if row is None:
        return None
    return _tag("item", item_id, row.updated_at.isoformat(),
                _current_version(session, row.standard_code))


def bank_tag(session, code):
    """The tag of the items of standard `code` with their published parameters."""
    changed, count = session.execute(select(func.max(Item.updated_at), func.count())
                                     .where(Item.standard_code == code)).one()
    return _tag("bank", code, _current_version(session, code), count,
                None if changed is None else changed.isoformat())


def expect(tag_of, key, given):
    """A precondition for `Store` writes: PreconditionFailed unless the resource's tag
    (``tag_of(session, key)``) is one of `given` (an If-Match header's tags, or
    ``["*"]`` for any existing resource)."""
    def check(session):
        current = tag_of(session, key)
        if current is None:
            raise PreconditionFailed(f"{key!r} does not exist")
        if "*" in given:
            return
        if current not in given:
            raise PreconditionFailed(f"{key!r} changed since that version was read "
                                     "(its ETag differs); read it again, then write")
    return check
