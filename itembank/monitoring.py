"""What an operator watches, read from the store: counts for the metrics, and readiness.

Each count is one grouped query, read at scrape time, so every worker process and
every host reports the same figures. `readiness` says whether the database answers
and is at this release's schema.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from .database import current_revision, head_revision
from .errors import DatabaseError
from .schema import CalibrationRun, DeliverySession, Response, Test

JOB_STATUSES = ("queued", "running")
log = logging.getLogger("irtcat.monitoring")


def active_sessions(session):
    """The number of sessions whose status is 'active' (an int)."""
    query = select(func.count()).select_from(DeliverySession) \
        .where(DeliverySession.status == "active")
    return session.execute(query).scalar_one()


def jobs(session):
    """{status: number of calibration runs} for the queued and running ones (0 when none)."""
    query = select(CalibrationRun.status, func.count()) \
        .where(CalibrationRun.status.in_(JOB_STATUSES)).group_by(CalibrationRun.status)
    counts = dict.fromkeys(JOB_STATUSES, 0)
    counts.update({status: n for status, n in session.execute(query)})
    return counts


def exposure_max(session):
    """{test id: the highest exposure rate of any item in that test}: the number of
    sessions of the test that answered the item over the number of sessions of the
    test. Every test is listed; one without sessions or answers has 0.0."""
    given = select(DeliverySession.test_id, func.count().label("n")) \
        .join(Response, Response.session_id == DeliverySession.id) \
        .group_by(DeliverySession.test_id, Response.item_id).subquery()
    most = select(given.c.test_id, func.max(given.c.n).label("n")) \
        .group_by(given.c.test_id).subquery()
    sittings = select(DeliverySession.test_id, func.count().label("n")) \
        .group_by(DeliverySession.test_id).subquery()
    query = select(Test.id, sittings.c.n, most.c.n) \
        .outerjoin(sittings, sittings.c.test_id == Test.id) \
        .outerjoin(most, most.c.test_id == Test.id)
    return {test_id: (given_most or 0) / n_sessions if n_sessions else 0.0
            for test_id, n_sessions, given_most in session.execute(query)}


def delivery_counts(database):
    """The three counts of one snapshot of `database`: a dict with ``sessions_active``
    (int), ``jobs`` (`jobs`) and ``exposure_max`` (`exposure_max`). DatabaseError (one
    line) when the database cannot be read."""
    try:
        with database.reading() as session:
            return {"sessions_active": active_sessions(session), "jobs": jobs(session),
                    "exposure_max": exposure_max(session)}
    except SQLAlchemyError as error:
        raise DatabaseError(f"cannot read the counts: {type(error).__name__}") from None


def readiness(database):
    """Whether `database` can serve this release: it answers ``SELECT 1`` and its schema
    is the migrations' head.

    Returns
    -------
    (ok, details) : (bool, dict)
        `details` holds ``database`` ("ok" or "unreachable"), and when reachable
        ``schema`` (the revision, None for an empty database) and ``expected_schema``.
        No error text: the reason for an unreachable database is logged instead.
    """
    try:
        with database.reading() as session:
            session.execute(text("SELECT 1"))
        revision = current_revision(database)
    except SQLAlchemyError as error:
        log.warning("readiness: the database is unreachable: %s", type(error).__name__)
        return False, {"database": "unreachable"}
    expected = head_revision()
    return revision == expected, {"database": "ok", "schema": revision,
                                  "expected_schema": expected}
