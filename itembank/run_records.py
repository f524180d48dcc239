"""Calibration runs in the store: their rows, from queued to done or failed.

A run is recorded with the process that will execute it (``host:pid``); reading a
queued or running run whose process on this host has ended records it as failed.
Completing a run stores its result and its draft bank version in one transaction.
The workflow that runs a calibration is `irtcat.delivery.calibration_runs`.
"""

from __future__ import annotations

import os
import socket

from sqlalchemy import select

from .errors import NotFoundError
from .schema import BankVersion, CalibrationRun, Standard, utc_now
from .standards import lock_standards
from .versions import add_version


class CalibrationRunRepository:
    """Calibration runs of one database (`self.database`)."""

    def create_calibration_run(self, code, model, source, options):
        """Record a queued calibration of standard `code`, to be run by this process;
        returns its id."""
        with self.database.writing() as session:
            if session.get(Standard, code) is None:
                raise NotFoundError(f"no standard {code!r}")
            run = CalibrationRun(standard_code=code, model=model or "items", source=source,
                                 options=options, status="queued", runner=this_process())
            session.add(run)
            session.flush()
            return run.id

    def start_calibration_run(self, run_id, n_responses):
        with self.database.writing() as session:
            run = _run(session, run_id)
            run.status, run.n_responses = "running", n_responses

    def fail_calibration_run(self, run_id, message):
        with self.database.writing() as session:
            run = _run(session, run_id)
            run.status, run.error, run.finished_at = "failed", message, utc_now()

    def complete_calibration_run(self, run_id, document, entries):
        """Store a run's result and its draft bank version in one transaction; returns the
        version number. `entries`: ``{item_id: parameters with model and status}``."""
        with self.database.writing() as session:
            run = _run(session, run_id)
            lock_standards(session, [run.standard_code])
            version = add_version(session, run.standard_code, entries,
                                        document.get("population"),
                                        document.get("calibration"), run_id)
            run.status, run.result, run.finished_at = "done", document, utc_now()
            return version.number

    def calibration_run(self, run_id):
        """A run as ``{"id", "standard", "model", "source", "options", "status", "error",
        "n_responses", "version", "result", "created_at", "finished_at"}``.

        A queued or running run whose process (on this host) has ended is recorded as
        failed first: a server restarted mid-calibration does not leave it running."""
        with self.database.reading() as session:
            run = _run(session, run_id)
            ended = run.status in ("queued", "running") and process_has_ended(run.runner)
        if ended:
            with self.database.writing() as session:
                run = _run(session, run_id)
                if run.status in ("queued", "running"):
                    run.status, run.finished_at = "failed", utc_now()
                    run.error = (f"the process running it ({run.runner}) ended before it "
                                 "finished; start the calibration again")
        with self.database.reading() as session:
            run = _run(session, run_id)
            number = session.scalar(select(BankVersion.number)
                                    .where(BankVersion.calibration_run_id == run.id))
            return {"id": run.id, "standard": run.standard_code, "model": run.model,
                    "source": run.source, "options": run.options, "status": run.status,
                    "error": run.error, "n_responses": run.n_responses, "version": number,
                    "result": run.result, "created_at": run.created_at.isoformat(),
                    "finished_at": run.finished_at.isoformat() if run.finished_at else None}


def _run(session, run_id):
    run = session.get(CalibrationRun, run_id)
    if run is None:
        raise NotFoundError(f"no calibration run {run_id}")
    return run


def this_process():
    return f"{socket.gethostname()}:{os.getpid()}"


def process_has_ended(runner):
    """Whether the process `runner` ("host:pid") is known to have ended: only a process of
    this host can be checked, and one of another user counts as running."""
    host, _, pid = (runner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


__all__ = ["CalibrationRunRepository"]
