"""The job queue in the store: long admin work waiting for, or run by, a worker process.

A job is a kind, a JSON payload and who asked. Its life:

- `enqueue` records it ``queued``;
- `claim` hands the oldest queued job to one worker (``running``, the claim counted in
  ``attempts``): on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers on
  several hosts never take the same job nor wait on each other; on SQLite inside the
  store's write transaction (``BEGIN IMMEDIATE`` under the writer lock), which makes the
  read and the update one step;
- the worker says it is alive with `heartbeat` while it runs the job, and ends it with
  `complete` (the result: bytes or text, and a media type) or `fail` (a reason, and a
  code the API answers with); `release` gives back a job it did not finish (the worker
  was asked to stop), which does not count as an attempt;
- `reap` finds running jobs whose worker stopped: no heartbeat for `stale_after`
  seconds, or a worker process of this host that has ended. Such a job is queued again
  once; when its second worker stops too it is failed with the reason.

Each end only applies to a job the calling worker still holds (``worker`` and status
``running``): a worker that was presumed dead and comes back cannot overwrite the work
of the one that took its job over.

A calibration's job points at its calibration run (``calibration_run_id``): when the job
is queued again the run reads ``queued`` again, and when it is failed by `reap` the run
is failed with the same reason, in the same transaction. Its ``runner`` is cleared at
`enqueue`: the process that recorded the run (a request worker) is not the one running it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta, timezone

from sqlalchemy import func, select

from .online import job_waiting
from .run_records import process_has_ended, this_process
from .schema import CalibrationRun, Job, utc_now
from .standards import lock_standards
from .store import NotFoundError

MAX_ATTEMPTS = 2              # a job whose worker stops is queued again once
STALE_AFTER = 30.0            # seconds without a heartbeat after which a worker is stopped
__all__ = ["MAX_ATTEMPTS", "STALE_AFTER", "ClaimedJob", "Jobs", "this_process"]


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker has claimed: what to run (`kind`, `payload`) and its `attempt`
    (1 the first time, 2 after a worker stopped while running it)."""

    id: int
    kind: str
    payload: dict
    attempt: int
    calibration_run_id: int | None


def _aware(moment):
    """`moment` as an aware UTC datetime (SQLite gives naive ones back), or None."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _has_stopped(worker, heartbeat_at, cutoff):
    """Whether the worker of a running job stopped: its last heartbeat is before
    `cutoff`, or it is a process of this host that has ended."""
    return _aware(heartbeat_at) < cutoff or process_has_ended(worker)


def _iso(moment):
    moment = _aware(moment)
    return None if moment is None else moment.isoformat()


class Jobs:
    """The ``jobs`` table of a `Database` (the module docstring)."""

    def __init__(self, database):
        self.database = database

    # --- the API's side --------------------------------------------------------------

    def enqueue(self, kind, payload, requester="", calibration_run_id=None,
                once_per_standard=False):
        """Record a queued job; returns its id. `payload` must be JSON-serialisable.

        `once_per_standard`: queue nothing and return None when a job of `kind` for the
        payload's ``standard`` is queued or running. The check and the write are one
        transaction holding the standard's row lock (`lock_standards`; SQLite's writers
        are serialised anyway), so two workers checking at once queue one job."""
        json.dumps(payload)                                # fail here, not in a worker
        with self.database.writing() as session:
            if once_per_standard:
                lock_standards(session, [payload["standard"]])
                if job_waiting(session, kind, payload["standard"]):
                    return None
            job = Job(kind=kind, payload=payload, requester=requester or "", status="queued",
                      attempts=0, calibration_run_id=calibration_run_id)
            session.add(job)
            if calibration_run_id is not None:
                session.get(CalibrationRun, calibration_run_id).runner = None
            session.flush()
            return job.id

    def queued_count(self):
        with self.database.reading() as session:
            return session.scalar(select(func.count()).select_from(Job)
                                  .where(Job.status == "queued"))

    def status(self, job_id):
        """The job's status alone (one indexed read: what a waiting request polls)."""
        with self.database.reading() as session:
            status = session.scalar(select(Job.status).where(Job.id == job_id))
        if status is None:
            raise NotFoundError(f"no job {job_id}")
        return status

    def job(self, job_id):
        """``{"id", "kind", "status", "attempts", "requester", "worker", "calibration_run",
        "media_type", "error", "error_code", "created_at", "started_at", "finished_at"}``
        (timestamps in ISO 8601, UTC)."""
        with self.database.reading() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            return {"id": job.id, "kind": job.kind, "status": job.status,
                    "attempts": job.attempts, "requester": job.requester, "worker": job.worker,
                    "calibration_run": job.calibration_run_id, "media_type": job.media_type,
                    "error": job.error, "error_code": job.error_code,
                    "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
                    "finished_at": _iso(job.finished_at)}

    def result(self, job_id):
        """``(status, result bytes or None, media type or None)``: the result only once
        the job is done."""
        with self.database.reading() as session:
            row = session.execute(select(Job.status, Job.result, Job.media_type)
                                  .where(Job.id == job_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no job {job_id}")
        return tuple(row)

    # --- the workers' side -----------------------------------------------------------

    def claim(self, worker):
        """The oldest queued job, now ``running`` for `worker` ("host:pid"), or None."""
        with self.database.reading() as session:           # idle workers only read
            if session.scalar(select(Job.id).where(Job.status == "queued").limit(1)) is None:
                return None
        with self.database.writing() as session:
            job = session.scalars(select(Job).where(Job.status == "queued")
                                  .order_by(Job.id).limit(1)
                                  .with_for_update(skip_locked=True)).first()
            if job is None:
                return None
            now = utc_now()
            job.status, job.worker, job.attempts = "running", worker, job.attempts + 1
            job.started_at, job.heartbeat_at = now, now
            return ClaimedJob(job.id, job.kind, dict(job.payload), job.attempts,
                              job.calibration_run_id)

    def heartbeat(self, job_id, worker):
        """Say `worker` still runs `job_id`; False when it no longer holds it."""
        return self._change_held(job_id, worker, heartbeat_at=utc_now())

    def complete(self, job_id, worker, result, media_type):
        """Store the result (`bytes`, or `str` stored as UTF-8) and mark the job done;
        False (nothing written) when `worker` no longer holds it."""
        data = result.encode("utf-8") if isinstance(result, str) else bytes(result)
        return self._change_held(job_id, worker, status="done", result=data,
                                 media_type=media_type, finished_at=utc_now())

    def fail(self, job_id, worker, reason, code="internal_error"):
        """Mark the job failed with `reason` (one line) and `code`; False when `worker`
        no longer holds it."""
        return self._change_held(job_id, worker, status="failed", error=reason,
                                 error_code=code, finished_at=utc_now())

    def _change_held(self, job_id, worker, **values):
        """Set `values` on the job if `worker` holds it; whether it did."""
        with self.database.writing() as session:
            job = self._held(session, job_id, worker)
            for name, value in values.items() if job is not None else ():
                setattr(job, name, value)
            return job is not None

    def release(self, job_id, worker):
        """Queue again a job `worker` holds but did not finish (it is stopping); the claim
        does not count as an attempt. False when it no longer holds it (it finished)."""
        with self.database.writing() as session:
            job = self._held(session, job_id, worker)
            if job is None:
                return False
            self._queue_again(session, job)
            job.attempts -= 1
            return True

    def reap(self, stale_after=STALE_AFTER, now=None):
        """Queue again, or fail, the running jobs whose worker stopped (the module
        docstring). Returns ``[{"id", "kind", "worker", "status"}]`` of those changed."""
        now = now or utc_now()
        cutoff = now - timedelta(seconds=stale_after)
        with self.database.reading() as session:
            running = session.execute(select(Job.id, Job.worker, Job.heartbeat_at)
                                      .where(Job.status == "running")).all()
        stopped = [job_id for job_id, worker, beat in running
                   if _has_stopped(worker, beat, cutoff)]
        changed = []
        for job_id in stopped:
            with self.database.writing() as session:
                job = session.get(Job, job_id, with_for_update=True)
                if job.status != "running" or not _has_stopped(job.worker, job.heartbeat_at,
                                                               cutoff):
                    continue                               # it moved on meanwhile
                worker = job.worker
                if job.attempts >= MAX_ATTEMPTS:
                    self._fail_stopped(session, job, now)
                else:
                    self._queue_again(session, job)
                changed.append({"id": job.id, "kind": job.kind, "worker": worker,
                                "status": job.status})
        return changed

    # --- inside a transaction --------------------------------------------------------

    @staticmethod
    def _held(session, job_id, worker):
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status != "running" or job.worker != worker:
            return None
        return job

    @staticmethod
    def _queue_again(session, job):
        job.status, job.worker, job.heartbeat_at, job.started_at = "queued", None, None, None
        if job.calibration_run_id is not None:
            run = session.get(CalibrationRun, job.calibration_run_id)
            if run.status in ("queued", "running"):
                run.status = "queued"

    @staticmethod
    def _fail_stopped(session, job, now):
        beat = _aware(job.heartbeat_at)
        reason = (f"the worker running it stopped: {job.worker} (last heartbeat "
                  f"{beat.strftime('%Y-%m-%dT%H:%M:%SZ')}), on each of {job.attempts} "
                  f"attempts")
        job.status, job.error, job.error_code, job.finished_at = \
            "failed", reason, "worker_stopped", now
        if job.calibration_run_id is not None:
            run = session.get(CalibrationRun, job.calibration_run_id)
            if run.status in ("queued", "running"):
                run.status, run.error, run.finished_at = "failed", reason, now

