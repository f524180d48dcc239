"""Online calibration of a standard's pretest items, run by the worker processes
(`delivery.online_calibration`): its runs with their gate tables, and running one now;
drift of its operational items on the live log (`delivery.drift`), queued too.
An admin publishes a run's draft version with ``POST /v1/calibrations/{run}/publish``.
A done run's gate table and a done drift job's result read as HTML reports too
(`api.program_report`)."""

from __future__ import annotations

import json

from flask import Response, g

from irtcat.delivery.errors import ConflictError
from irtcat.delivery.jobs import DRIFT
from irtcat.delivery.online_calibration import pretest_items, standard_settings
from irtcat.itembank.errors import DataFormatError, NotFoundError
from irtcat.itembank.jobs import Jobs
from irtcat.itembank.online import ONLINE, online_runs

from .. import long_work, observability, online_schemas
from ..program_report import drift_report, gate_report
from .base import MAX_RUN_ID, operation


@operation("/standards/<code>/online-calibration", "GET", roles=("admin",),
           answer=online_schemas.OnlineRun, many=True,
           summary="the standard's online calibrations, newest first (at most 20), each "
                   "with its gate table: one row per pretest item")
def list_online_calibrations(code):
    return [{**run, "standard": code, "source": "online",
             "items": ((run["result"] or {}).get("calibration") or {})
             .get("online", {}).get("items", [])} for run in online_runs(g.store.database, code)]


@operation("/standards/<code>/online-calibration", "POST", roles=("admin",),
           body=online_schemas.OnlineCalibrationRequest, errors=(404, 409), queued=True,
           summary="calibrate and gate the standard's pretest items that have enough answers, "
                   "now: JSON {run, status, version, published, settings, items}")
def post_online_calibration(code, data):
    _check_published(code)
    if not pretest_items(g.store, code):
        raise ConflictError(f"standard {code!r} has no pretest items")
    try:
        standard_settings(g.store, code, data["settings"])
    except ValueError as error:
        raise DataFormatError(str(error)) from None
    observability.audit("online_calibration_requested", standard=code)
    return long_work.online_calibration({"standard": code, "settings": data["settings"]})


@operation("/standards/<code>/drift", "POST", roles=("admin",),
           body=online_schemas.DriftRequest, errors=(404, 409), queued=True,
           summary="drift of the standard's operational items re-estimated on its stored "
                   "answers with the others fixed: JSON, one row per item")
def post_drift(code, data):
    _check_published(code)
    observability.audit("drift_requested", standard=code, mode=data["mode"])
    return long_work.drift({"standard": code, **data})


def _check_published(code):
    """Before queueing: 404 for an unknown standard, 409 without a published version
    (both jobs compare with its parameters)."""
    g.store.standard(code)
    try:
        g.store.current_version_id(code)
    except NotFoundError as error:
        raise ConflictError(str(error)) from None


@operation("/standards/<code>/online-calibration/<int:run_id>/report", "GET",
           roles=("admin",), errors=(404, 409),
           produces=("text/html", "one self-contained HTML page"),
           summary="an online calibration's review gates as a report: one row per pretest "
                   "item with each gate's value and pass or fail, the decision and reasons")
def online_calibration_report(code, run_id):
    run = g.store.calibration_run(run_id) if run_id <= MAX_RUN_ID else None
    if run is None or run["standard"] != code or run["source"] != ONLINE:
        raise NotFoundError(f"no online calibration {run_id} of standard {code!r}")
    if run["status"] != "done":
        raise ConflictError(f"online calibration {run_id} is {run['status']}, not done")
    items = ((run["result"] or {}).get("calibration") or {}).get("online", {}).get("items", [])
    page = gate_report({**run, "settings": run["options"], "items": items}, code)
    return Response(page, mimetype="text/html")


@operation("/standards/<code>/drift/<int:job_id>/report", "GET", roles=("admin",),
           errors=(404, 409), produces=("text/html", "one self-contained HTML page"),
           summary="a done drift job's result as a report: one row per item (old and new "
                   "a and b, z, expected-score differences, reasons), flagged first")
def drift_report_page(code, job_id):
    jobs = Jobs(g.store.database)
    if job_id > long_work.MAX_JOB_ID or jobs.job(job_id)["kind"] != DRIFT:
        raise NotFoundError(f"no drift job {job_id}")
    status, data, _ = jobs.result(job_id)
    if status != "done":
        raise ConflictError(f"drift job {job_id} is {status}, not done")
    document = json.loads(data)
    if document["standard"] != code:
        raise NotFoundError(f"no drift job {job_id} of standard {code!r}")
    return Response(drift_report(document, job_id), mimetype="text/html")
