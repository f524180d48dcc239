"""Long admin work over HTTP: queued as jobs, answered when done or with a status URL.

Calibrations, simulations, calibration reports, response exports and DIF run in the worker
processes (`irtcat worker`, api/worker.py), never in a request worker. A route queues
the job, then:

- ``POST /v1/calibrations`` answers 202 ``{"id", "status"}`` at once (the calibration
  run; ``Location`` is its status, GET /v1/calibrations/{id});
- the others wait a bounded time (`WAIT_SECONDS`) for the job, sleeping between
  looks at its status (no CPU), and answer its result as before when it finishes in
  time, else 202 with the job's status and ``Location: /v1/jobs/{id}``. A client that
  sends ``Prefer: respond-async`` (RFC 7240) gets the 202 at once (``Prefer: wait=N``
  shortens the wait to N seconds), and so does a
  request arriving while another request of the same process already waits: a waiting
  request holds a thread, and a request worker keeps its others for the learners.

``GET /v1/jobs/{id}`` is a job's status; ``GET /v1/jobs/{id}/result`` its stored result
with its media type once done (409 before, and for a failed job). At most
`MAX_QUEUED` jobs wait in the queue: beyond, `Busy` (429 ``busy``, Retry-After).
"""

from __future__ import annotations

import re
import threading
import time

from flask import Response, g, jsonify, request

from irtcat.delivery import jobs as kinds
from irtcat.delivery.errors import ConflictError
from irtcat.itembank.errors import DataFormatError, NotFoundError
from irtcat.itembank.jobs import Jobs

WAIT_SECONDS = 8.0
"""The bounded wait: under the 10 s that HTTP clients and proxies commonly allow a request."""
MAX_QUEUED = 50
RETRY_AFTER_SECONDS = 5
MAX_JOB_ID = 2**31 - 1
_waiting = threading.BoundedSemaphore(1)       # requests of this process waiting on a job


class Busy(RuntimeError):
    """The queue is full (HTTP 429, code ``busy``); `retry_after` in seconds."""

    retry_after = RETRY_AFTER_SECONDS


def _raise_failure(job):
    """The error a request that waited for `job` answers with: the domain's error for
    the job's failure code (404, 409, 422), else an internal error (500)."""
    errors = {"not_found": NotFoundError, "conflict": ConflictError,
              "validation_error": DataFormatError}
    if job["error_code"] in errors:
        raise errors[job["error_code"]](job["error"])
    raise RuntimeError(f"job {job['id']} failed: {job['error']}")


def _jobs():
    return Jobs(g.store.database)


def _requester():
    principal = g.get("principal")
    return f"{principal[0]}:{principal[1]}" if principal else ""


def check_room(jobs=None):
    """Busy when MAX_QUEUED jobs already wait."""
    if (jobs or _jobs()).queued_count() >= MAX_QUEUED:
        raise Busy(f"{MAX_QUEUED} jobs are already queued; retry when some have finished")


# --- the routes' bodies -----------------------------------------------------------------

def calibration(run_id, upload):
    """Queue the recorded calibration run `run_id` (after `check_room`): 202 ``{"id",
    "status"}``."""
    jobs = _jobs()
    try:
        kinds.enqueue_calibration(jobs, run_id, upload, _requester())
    except Exception:
        g.store.fail_calibration_run(run_id, "it could not be queued")
        raise
    answer = jsonify({"id": run_id, "status": "queued"})
    answer.status_code = 202
    answer.headers["Location"] = f"/v1/calibrations/{run_id}"
    return answer


def simulation(test_id, examinees, seed):
    return _queue_and_wait(kinds.enqueue_simulation, test_id, examinees, seed)


def calibration_report(run_id, dif_job=None):
    return _queue_and_wait(kinds.enqueue_calibration_report, run_id, dif_job)


def response_export(standard):
    return _queue_and_wait(kinds.enqueue_response_export, standard)


def dif(request):
    return _queue_and_wait(kinds.enqueue_dif, request)


def online_calibration(request):
    return _queue_and_wait(kinds.enqueue_online_calibration, request)


def drift(request):
    return _queue_and_wait(kinds.enqueue_drift, request)


def check_dif_job(job_id):
    """409 before queueing a report unless `job_id` is a done DIF job (404: no job)."""
    job = _job(job_id)
    if job["kind"] != kinds.DIF or job["status"] != "done":
        raise ConflictError(f"job {job_id} is not a done DIF job ({job['kind']}, "
                            f"{job['status']})")


def job_status(job_id):
    """The job's status (``Location`` of its result once done)."""
    job = _job(job_id)
    answer = jsonify(_public(job))
    if job["status"] == "done":
        answer.headers["Location"] = f"/v1/jobs/{job_id}/result"
    return answer


def job_result(job_id):
    """The job's stored result with its media type; 409 unless it is done."""
    _job(job_id)
    status, data, media_type = _jobs().result(job_id)
    if status != "done":
        raise ConflictError(f"job {job_id} is {status}, not done")
    return Response(data, mimetype=media_type)


# --- queueing and waiting ---------------------------------------------------------------

def _queue_and_wait(enqueue, *arguments):
    jobs = _jobs()
    check_room(jobs)
    job_id = enqueue(jobs, *arguments, requester=_requester())
    preferences = _preferences()
    if "respond-async" in preferences or not _waiting.acquire(blocking=False):
        return _accepted(jobs, job_id)
    try:
        status = _wait(jobs, job_id, min(WAIT_SECONDS, preferences.get("wait", WAIT_SECONDS)))
    finally:
        _waiting.release()
    if status == "done":
        return job_result(job_id)
    if status == "failed":
        _raise_failure(jobs.job(job_id))
    return _accepted(jobs, job_id)


def _wait(jobs, job_id, seconds):
    """The job's status once it is done or failed, or after `seconds`; looks at it
    every 20 ms at first, then less often (at most every 250 ms)."""
    deadline = time.monotonic() + seconds
    pause = 0.02
    while True:
        status = jobs.status(job_id)
        left = deadline - time.monotonic()
        if status in ("done", "failed") or left <= 0:
            return status
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, 0.25)


def _preferences():
    """The request's Prefer header (RFC 7240) as ``{name: value}``: ``respond-async``
    (answer 202 at once) and ``wait`` (seconds, shortening the bounded wait) count."""
    found = {}
    for token in ",".join(request.headers.getlist("Prefer")).split(","):
        name, _, value = re.split(r";", token, maxsplit=1)[0].partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if name == "respond-async":
            found[name] = True
        elif name == "wait" and value.isdigit():
            found[name] = int(value)
    return found


def _accepted(jobs, job_id):
    """202 with the job's status and ``Location`` of it."""
    answer = jsonify(_public(jobs.job(job_id)))
    answer.status_code = 202
    answer.headers["Location"] = f"/v1/jobs/{job_id}"
    if "respond-async" in _preferences():
        answer.headers["Preference-Applied"] = "respond-async"
    return answer


def _job(job_id):
    if job_id > MAX_JOB_ID:                            # beyond the database's integers
        raise NotFoundError(f"no job {job_id}")
    return _jobs().job(job_id)


def _public(job):
    """What a job's status says over HTTP (not who asked, nor the error's inner code)."""
    shown = ("id", "kind", "status", "attempts", "calibration_run", "media_type", "error",
             "created_at", "started_at", "finished_at")
    return {name: job[name] for name in shown}
