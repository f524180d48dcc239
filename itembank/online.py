"""What online calibration reads and writes in the store besides a calibration run's
usual rows (`itembank.run_records`).

An online calibration is a calibration run whose ``source`` is ``online``: its options
are the gate settings, its result the bank document of the promoted items with the gate
table in ``calibration.online``, and its draft version (when an item was promoted) the
published version plus the promoted items. Counting a standard's pretest answers is one
aggregate over the responses' (item_id, id) index, cheap enough for a periodic check.
"""

from __future__ import annotations

from sqlalchemy import func, select

from .errors import NotFoundError
from .schema import BankVersion, CalibrationRun, Job, Response, Standard, utc_now

ONLINE = "online"


def answer_counts(database, item_ids):
    """``{item_id: number of answers}`` of `item_ids` (0 for an item never answered)."""
    item_ids = list(item_ids)
    counts = dict.fromkeys(item_ids, 0)
    if not item_ids:
        return counts
    with database.read_connection() as connection:
        counts.update(connection.execute(
            select(Response.item_id, func.count()).where(Response.item_id.in_(item_ids))
            .group_by(Response.item_id)).all())
    return counts


def complete_without_version(database, run_id, document):
    """A run that promoted nothing: done with its result, no draft version."""
    with database.writing() as session:
        run = session.get(CalibrationRun, run_id)
        if run is None:
            raise NotFoundError(f"no calibration run {run_id}")
        run.status, run.result, run.finished_at = "done", document, utc_now()


def online_runs(database, standard, limit=20):
    """The newest `limit` online runs of `standard`, newest first: ``{"id", "status",
    "error", "n_responses", "settings", "version", "created_at", "finished_at",
    "result"}`` (`result`: the run's document, None until done). NotFoundError for an
    unknown standard."""
    with database.reading() as session:
        if session.get(Standard, standard) is None:
            raise NotFoundError(f"no standard {standard!r}")
        rows = session.execute(
            select(CalibrationRun, BankVersion.number)
            .outerjoin(BankVersion, BankVersion.calibration_run_id == CalibrationRun.id)
            .where(CalibrationRun.standard_code == standard, CalibrationRun.source == ONLINE)
            .order_by(CalibrationRun.id.desc()).limit(limit)).all()
        return [{"id": run.id, "status": run.status, "error": run.error,
                 "n_responses": run.n_responses, "settings": run.options, "version": number,
                 "created_at": run.created_at.isoformat(),
                 "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                 "result": run.result} for run, number in rows]


def waiting_job(database, kind, standard):
    """Whether a job of `kind` for `standard` is queued or running."""
    with database.reading() as session:
        return job_waiting(session, kind, standard)


def job_waiting(session, kind, standard):
    """`waiting_job` inside the transaction of `session` (the enqueue that checks and
    writes in one, `itembank.jobs.Jobs.enqueue`)."""
    payloads = session.scalars(select(Job.payload).where(
        Job.kind == kind, Job.status.in_(("queued", "running")))).all()
    return any(payload.get("standard") == standard for payload in payloads)


__all__ = ["ONLINE", "answer_counts", "complete_without_version", "online_runs",
           "job_waiting", "waiting_job"]
