"""Live exposure counts and session traces in the store, shared by every worker and host.

Per test, UTC day and item (operational and pretest apart) the store counts the
sessions that were given the item and those that drew it ineligible (item
eligibility), and per test and day the sessions started: the rates' denominator.
Counts move by one atomic ``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``
on SQLite and PostgreSQL alike, inside the transaction that stores the session's
new item (`count_start`, `count_administered`: called by `irtcat.itembank.sessions`),
so a count never disagrees with the sessions stored, whatever the number of workers.
Rows of one statement are sorted by key, so concurrent transactions lock them in
one order (no deadlock on PostgreSQL).

A test with θ bands (``exposure.theta_bands``) also has, per band, the sessions given
an item at a θ in it, and per band and item those given the item there and those
that drew it ineligible there (`count_in_band`, in the same transactions); a test
without bands writes nothing more.

A session's step traces (`irtcat.engine.session.step_trace`) are written in the same
transactions on rows written anyway (migration 0015): each answer's ``responses`` row
carries the trace of the step it led to, the session's row (``steps``) the first step
and the last step of a session ended early; `session_steps` reads them back in order.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from .schema import (
    DeliverySession,
    ExposureBandCount,
    ExposureBandSessions,
    ExposureCount,
    ExposureSessions,
    Response,
)

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def utc_day(moment=None):
    """The UTC day of `moment` (default now) as YYYY-MM-DD: the counts' time key."""
    return (moment or datetime.now(timezone.utc)).astimezone(timezone.utc).date().isoformat()


_COUNT_KEYS = ("test_id", "day", "item_id", "pretest")
_STATEMENTS = {}         # (dialect, table) -> its add-or-insert statement, built once


def _adding(dialect, table, keys, amounts):
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET a = a + excluded.a`` for each of
    `amounts` on `table`, for `dialect`: built and compiled once per process."""
    statement = _STATEMENTS.get((dialect, table))
    if statement is None:
        inserting = _INSERTS[dialect](table.__table__)
        statement = inserting.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: getattr(table, name) + getattr(inserting.excluded, name)
                  for name in amounts})
        _STATEMENTS[(dialect, table)] = statement
    return statement


def _add(connection, table, keys, rows, amounts):
    """Add `amounts` (column names) of each of `rows` (dicts) to `table`, inserting rows
    that are not there; rows sorted by `keys`, so that concurrent transactions lock them
    in one order."""
    if not rows:
        return
    rows = sorted(rows, key=lambda row: tuple(row[key] for key in keys))
    statement = _adding(connection.dialect.name, table, keys, amounts)
    connection.execute(statement, rows if len(rows) > 1 else rows[0])


def count_start(connection, test_id, first_item, ineligible=(), moment=None):
    """Count a session started on `test_id` and its first item ``(item_id, pretest)``;
    `ineligible`: ids of the operational items it drew ineligible."""
    day = utc_day(moment)
    _add(connection, ExposureSessions, ("test_id", "day"),
         [{"test_id": test_id, "day": day, "started": 1}], ("started",))
    rows = {(item_id, False): [0, 1] for item_id in ineligible}
    rows.setdefault(tuple(first_item), [0, 0])[0] += 1
    _add(connection, ExposureCount, _COUNT_KEYS,
         [{"test_id": test_id, "day": day, "item_id": item_id, "pretest": pretest,
           "administered": administered, "ineligible": drawn}
          for (item_id, pretest), (administered, drawn) in rows.items()],
         ("administered", "ineligible"))


def count_administered(connection, test_id, item_id, pretest, moment=None):
    """Count one session given the item `item_id` of `test_id`."""
    _add(connection, ExposureCount, _COUNT_KEYS,
         [{"test_id": test_id, "day": utc_day(moment), "item_id": item_id,
           "pretest": bool(pretest), "administered": 1, "ineligible": 0}],
         ("administered", "ineligible"))


_BAND_KEYS = ("test_id", "band", "item_id", "pretest")


def count_in_band(connection, test_id, band, given, entered=None):
    """Count the item `given` ``(item_id, pretest)`` given at a θ in band `band` of
    `test_id`; `entered`: None when the session had been given an item in this band
    before, else the ids of the operational items it drew ineligible there (its first
    item in the band: the band counts one session more)."""
    rows = {tuple(given): [1, 0]}
    if entered is not None:
        _add(connection, ExposureBandSessions, ("test_id", "band"),
             [{"test_id": test_id, "band": band, "sessions": 1}], ("sessions",))
        for item_id in entered:
            rows.setdefault((item_id, False), [0, 0])[1] += 1
    _add(connection, ExposureBandCount, _BAND_KEYS,
         [{"test_id": test_id, "band": band, "item_id": item_id, "pretest": bool(pretest),
           "administered": administered, "ineligible": drawn}
          for (item_id, pretest), (administered, drawn) in rows.items()],
         ("administered", "ineligible"))


def band_counts(database, test_id):
    """``(sessions, rows)`` of `test_id` per θ band: {band: sessions given an item in it}
    and a list of ``(band, item_id, pretest, administered, ineligible)``, by band and item."""
    return _counts_by(database, test_id, "band", ExposureBandSessions.sessions,
                      ExposureBandCount)


def _counts_by(database, test_id, key, totals, counts):
    """``({key: total}, rows)``: the column `totals` of `test_id`'s rows by their `key`
    column (its table's), and ``(key, item_id, pretest, administered, ineligible)`` rows of
    the table `counts`, by key and item."""
    with database.read_connection() as connection:
        sessions = dict(connection.execute(
            select(getattr(totals.class_, key), totals)
            .where(totals.class_.test_id == test_id)).all())
        rows = connection.execute(
            select(getattr(counts, key), counts.item_id, counts.pretest, counts.administered,
                   counts.ineligible)
            .where(counts.test_id == test_id)
            .order_by(getattr(counts, key), counts.item_id)).all()
    return ({name: int(n) for name, n in sessions.items()},
            [(row[0], row.item_id, bool(row.pretest), int(row.administered),
              int(row.ineligible)) for row in rows])


def session_steps(database, session_id):
    """A session's step traces in order: a list of dicts (empty for a session stored
    before traces were kept)."""
    with database.read_connection() as connection:
        kept = connection.execute(select(DeliverySession.steps).where(
            DeliverySession.id == session_id)).scalar_one_or_none()
        carried = connection.execute(
            select(Response.trace).where(Response.session_id == session_id)
            .order_by(Response.id)).scalars().all()
    traces = [trace for trace in (*(kept or ()), *carried) if trace]
    return sorted(traces, key=lambda trace: trace["step"])


def live_counts(database, test_id):
    """``(sessions, administered, ineligible)`` of `test_id` over all days: the sessions
    started, and {item_id: count} of its operational items given and drawn ineligible."""
    with database.read_connection() as connection:
        sessions = connection.execute(
            select(func.coalesce(func.sum(ExposureSessions.started), 0))
            .where(ExposureSessions.test_id == test_id)).scalar_one()
        rows = connection.execute(
            select(ExposureCount.item_id, func.sum(ExposureCount.administered),
                   func.sum(ExposureCount.ineligible))
            .where(ExposureCount.test_id == test_id, ExposureCount.pretest.is_(False))
            .group_by(ExposureCount.item_id)).all()
    return (int(sessions), {row[0]: int(row[1]) for row in rows},
            {row[0]: int(row[2]) for row in rows})


def daily_counts(database, test_id):
    """``(sessions, counts)`` of `test_id` per day: {day: sessions started} and a list
    of ``(day, item_id, pretest, administered, ineligible)`` rows, by day and item."""
    return _counts_by(database, test_id, "day", ExposureSessions.started, ExposureCount)


__all__ = ["band_counts", "count_administered", "count_in_band", "count_start",
           "daily_counts", "live_counts", "session_steps", "utc_day"]
