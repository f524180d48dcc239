"""Delivery sessions' rows and the answers they record.

A session's row holds its position, current item, pinned bank versions and
seed; its answers are rows of ``responses``. An answer is applied with a
compare-and-set on the session's position inside one short transaction, with
the (session, item) unique constraint behind it (`advance_session`): of
concurrent duplicates one moves the session and the others find it moved.
The hot paths use Core statements on a connection, without the ORM.

The same transactions store each step's decision trace (on the answer's row, the
first step on the session's) and count the item given (`irtcat.itembank.exposure`):
a session's trace and the live exposure counts never disagree with the sessions
stored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import NotFoundError
from .exposure import count_administered, count_in_band, count_start
from .io import ResponseLog
from .schema import DeliverySession, Item, Response, Standard

# An answer's two statements, built once: the compare-and-set that moves a session on
# (its SET clause from the parameters given) and the response row.
_MOVE = (update(DeliverySession.__table__)
         .where(DeliverySession.id == bindparam("moving"),
                DeliverySession.position == bindparam("from_position"),
                DeliverySession.status == "active"))
_RECORD = insert(Response.__table__)


def add_session(database, first_step=None, first_item=None, ineligible=(), band=None,
                **values):
    """Store a new session (`values`: the columns of ``sessions``) with the trace of its
    first step (`first_step`) and, given `first_item` ``(item_id, pretest)``, count it
    started with that item and the operational item ids it drew `ineligible`; `band`
    ``(band, ineligible ids there)``: count the first item in that θ band too."""
    if first_step is not None:
        values["steps"] = [first_step]
    with database.writing() as session:
        session.add(DeliverySession(**values))
        session.flush()
        if first_item is not None:
            count_start(session.connection(), values["test_id"], first_item, ineligible,
                        values.get("created_at"))
            if band is not None:
                count_in_band(session.connection(), values["test_id"], band[0], first_item,
                              band[1])


def session_snapshot(database, session_id):
    """``(row, answers)``: the session's row (its columns as attributes) and its answers
    ``(item_id, raw_response, score)`` in the order given; NotFoundError if none."""
    with database.read_connection() as connection:
        row = connection.execute(select(DeliverySession.__table__).where(
            DeliverySession.id == session_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no session {session_id!r}")
        answers = connection.execute(
            select(Response.item_id, Response.raw_response, Response.score)
            .where(Response.session_id == session_id).order_by(Response.id)).all()
    return row, answers


def session_of_token(database, token_digest):
    """The row ``(id, key_id, token_expires_at, created_at)`` of the session whose token
    has `token_digest`, or None."""
    with database.read_connection() as connection:
        return connection.execute(select(DeliverySession.id, DeliverySession.key_id,
                                         DeliverySession.token_expires_at,
                                         DeliverySession.created_at)
                                  .where(DeliverySession.token_digest == token_digest)
                                  ).one_or_none()


def session_key_id(database, session_id):
    """The id of the key that started the session (None: the learner page);
    NotFoundError if there is no such session."""
    with database.read_connection() as connection:
        found = connection.execute(select(DeliverySession.key_id).where(
            DeliverySession.id == session_id)).one_or_none()
    if found is None:
        raise NotFoundError(f"no session {session_id!r}")
    return found.key_id


def advance_session(database, session_id, from_position, values, answer=None, given=None,
                    band=None):
    """Set `values` on an active session still at `from_position` and, given `answer`
    (a ``responses`` row without its session id, with the ``trace`` of the step it led
    to), record it, in one transaction; in it too, count the item `given`, ``(test_id,
    item_id, pretest)``, as administered, and, given `band` ``(band, entered)``, in that
    θ band (`count_in_band`). A step no answer carries goes in `values` (``steps``: the
    session's, with it appended).

    Returns False, recording nothing, if the session has moved (or finished) or the
    answer's (session, item) is already recorded: another request moved it first."""
    try:
        with database.write_connection() as connection:
            moved = connection.execute(_MOVE, {**values, "moving": session_id,
                                               "from_position": from_position}).rowcount
            if moved != 1:
                return False
            if answer is not None:
                connection.execute(_RECORD, {"session_id": session_id, **answer})
            if given is not None:
                count_administered(connection, *given)
                if band is not None:
                    count_in_band(connection, given[0], band[0], given[1:], band[1])
    except IntegrityError:
        return False
    return True


def attributed_response_log(database, standard, attribute):
    """The scored answers to `standard`'s items with each person's value of the learner
    attribute `attribute` (one person per session, as `response_log`).

    Returns ``(log, values)``: a `ResponseLog` and a list (n_persons,) of the attribute's
    value of each person, None for a session started without it (and for answers
    imported without a session). NotFoundError for an unknown standard.
    """
    with database.read_connection() as connection:
        if connection.execute(select(Standard.code).where(
                Standard.code == standard)).one_or_none() is None:
            raise NotFoundError(f"no standard {standard!r}")
        rows = connection.execute(
            select(Response.session_id, Response.item_id, Response.score,
                   DeliverySession.attributes)
            .join(Item, Item.id == Response.item_id)
            .outerjoin(DeliverySession, DeliverySession.id == Response.session_id)
            .where(Item.standard_code == standard).order_by(Response.id)).all()
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "score", "attributes"])
    person_index, persons = pd.factorize(frame["session_id"])
    item_index, items = pd.factorize(frame["item_id"])
    first = np.unique(person_index, return_index=True)[1]
    values = [attributes.get(attribute) if isinstance(attributes, dict) else None
              for attributes in frame["attributes"].to_numpy()[first]]
    log = ResponseLog([str(p) for p in persons], [str(i) for i in items],
                      person_index.astype(np.int32), item_index.astype(np.int32),
                      frame["score"].to_numpy(dtype=float))
    return log, values


__all__ = ["add_session", "advance_session", "attributed_response_log", "session_key_id",
           "session_of_token", "session_snapshot"]
