"""Calibrations, their reports and publication; simulations; the response log export;
queued jobs. The long work among them is queued for the worker processes
(`api.long_work`, `irtcat worker`): never run on a request worker."""

from __future__ import annotations

import numpy as np
from flask import g

from irtcat.delivery.calibration_runs import start_calibration
from irtcat.delivery.errors import ConflictError
from irtcat.itembank import ResponseLog
from irtcat.itembank.errors import NotFoundError

from .. import long_work, observability, schemas
from .base import MAX_RUN_ID, ApiError, operation

# Long admin work, queued for the worker processes: 409 when not ready, 429 busy when the
# queue is full, like any other quota; 202 with Location when not done within the wait.


@operation("/calibrations", "POST", roles=("admin",), body=schemas.CalibrationRequest,
           answer=schemas.Calibration, status=202, errors=(409,),
           summary="calibrate a standard from its response log or uploaded responses")
def post_calibration(data):
    upload = None
    if data["source"] == "upload":
        upload = _upload_log(data["data"])
    long_work.check_room()
    run_id = start_calibration(g.store, data["standard"], data["model"],
                               source=data["source"], anchored=data["anchored"],
                               m_step=data["m_step"])
    observability.audit("calibration_started", run_id=run_id, standard=data["standard"],
                        source=data["source"])
    return long_work.calibration(run_id, upload)


def _upload_log(rows):
    persons, items = {}, {}
    person_index = [persons.setdefault(r["person_id"], len(persons)) for r in rows]
    item_index = [items.setdefault(r["item_id"], len(items)) for r in rows]
    pairs = set(zip(person_index, item_index, strict=True))
    if len(pairs) != len(rows):
        raise ApiError(422, "a person answers an item twice in data", "validation_error")
    return ResponseLog(list(persons), list(items), np.array(person_index, dtype=np.int32),
                       np.array(item_index, dtype=np.int32),
                       np.array([r["response"] for r in rows], dtype=float))


@operation("/calibrations/<int:run_id>", "GET", roles=("admin",), answer=schemas.Calibration,
           summary="a calibration's status and result (an irtcat-bank/1 document with fit)")
def get_calibration(run_id):
    return _calibration_run(run_id)


def _calibration_run(run_id):
    if run_id > MAX_RUN_ID:                           # beyond the database's integers
        raise NotFoundError(f"no calibration run {run_id}")
    return g.store.calibration_run(run_id)


@operation("/calibrations/<int:run_id>/report", "GET", roles=("admin",), errors=(404, 409),
           queued=True, query=schemas.ReportQuery,
           produces=("text/html", "one self-contained HTML page"),
           summary="the calibration's report: one self-contained HTML page (item table with "
                   "parameters, SEs and fit flags; item, information and SE curves)")
def calibration_report(query, run_id):
    run = _calibration_run(run_id)
    if run["status"] != "done":
        raise ConflictError(f"calibration {run_id} is {run['status']}, not done")
    dif_job = query.get("dif_job")
    if dif_job is not None:
        long_work.check_dif_job(dif_job)
    return long_work.calibration_report(run_id, dif_job)


@operation("/calibrations/<int:run_id>/publish", "POST", roles=("admin",),
           answer=schemas.Publication, errors=(409,),
           summary="publish the calibration's bank version for new sessions")
def publish_calibration(run_id):
    run = _calibration_run(run_id)
    if run["status"] != "done":
        raise ConflictError(f"calibration {run_id} is {run['status']}, not done")
    if run["version"] is None:                         # an online run that promoted nothing
        raise ConflictError(f"calibration {run_id} made no bank version")
    return g.store.publish(run["standard"], run["version"])


@operation("/simulations", "POST", roles=("admin",), body=schemas.SimulationRequest,
           errors=(409,), queued=True,
           summary="simulate the test on its bank: the simulation report of FORMATS.md")
def post_simulation(data):
    test = g.delivery.test(data["test_id"])
    # built here too so that a test with no bank is 404 or 400 before it is queued
    built = g.delivery.test_bank(data["test_id"], g.store.current_version_ids(test["standards"]))
    if not hasattr(built, "bank"):          # a multidimensional test: `irtcat simulate`
        raise ConflictError("a multidimensional test is simulated with irtcat simulate "
                            "--bank on its exported bank, not queued here")
    return long_work.simulation(data["test_id"], data["examinees"], data["seed"])


@operation("/responses", "GET", roles=("admin",), query=schemas.StandardQuery,
           queued=True,
           produces=("text/csv", "long CSV"), errors=(404,),
           summary="the response log as long CSV (person_id,item_id,response)")
def responses(query):
    standard = query.get("standard")
    if standard is not None:
        g.store.standard(standard)                    # 404 for an unknown standard
    return long_work.response_export(standard)


@operation("/jobs/<int:job_id>", "GET", roles=("admin",), errors=(404,),
           summary="a queued job's status: kind, status (queued, running, done, failed), "
                   "timestamps, error")
def get_job(job_id):
    return long_work.job_status(job_id)


@operation("/jobs/<int:job_id>/result", "GET", roles=("admin",), errors=(404, 409),
           produces=("application/json", "the job's result, with its media type: JSON, "
                                         "HTML or CSV (api.openapi.JOB_RESULT_CONTENT)"),
           summary="a done job's result, with its media type (409 before)")
def get_job_result(job_id):
    return long_work.job_result(job_id)
