"""Calibrations, their reports and publication; simulations; the response log export.
The long work among them runs in the worker's helper process (`api.offload`)."""

from __future__ import annotations

import numpy as np
from flask import Response, g

from irtcat.delivery.calibration_runs import start_calibration
from irtcat.delivery.errors import ConflictError
from irtcat.itembank import ResponseLog
from irtcat.itembank.errors import NotFoundError

from .. import observability, offload, schemas
from .base import MAX_RUN_ID, ApiError, operation

# Long admin work, run by the worker's helper process: 409 when not ready, 429 busy when
# the helper is taken, like any other quota.


@operation("/calibrations", "POST", roles=("admin",), body=schemas.CalibrationRequest,
           answer=schemas.Calibration, status=202, errors=(409,),
           summary="calibrate a standard from its response log or uploaded responses")
def post_calibration(data):
    upload = None
    if data["source"] == "upload":
        upload = _upload_log(data["data"])
    offload.reserve_calibration()
    try:
        run_id = start_calibration(g.store, data["standard"], data["model"],
                                   source=data["source"], anchored=data["anchored"],
                                   m_step=data["m_step"])
    except BaseException:
        offload.release_calibration()
        raise
    observability.audit("calibration_started", run_id=run_id, standard=data["standard"],
                        source=data["source"])
    store = g.store
    try:
        offload.queue_calibration(
            store.database.url, run_id, upload, observability.current_request_id(),
            on_lost=lambda reason: store.fail_calibration_run(run_id, reason))
    except Exception:
        store.fail_calibration_run(run_id, "it could not be queued")
        raise
    return {"id": run_id, "status": "queued"}


def _upload_log(rows):
    persons, items = {}, {}
    person_index = [persons.setdefault(r["person_id"], len(persons)) for r in rows]
    item_index = [items.setdefault(r["item_id"], len(items)) for r in rows]
    pairs = set(zip(person_index, item_index, strict=True))
    if len(pairs) != len(rows):
        raise ApiError(400, "a person answers an item twice in data", "validation_error")
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


@operation("/calibrations/<int:run_id>/report", "GET", roles=("admin",), errors=(409,),
           produces=("text/html", "one self-contained HTML page"),
           summary="the calibration's report: one self-contained HTML page (item table with "
                   "parameters, SEs and fit flags; item, information and SE curves)")
def calibration_report(run_id):

    run = _calibration_run(run_id)
    if run["status"] != "done":
        raise ConflictError(f"calibration {run_id} is {run['status']}, not done")
    page = offload.run(offload.bank_report, run["result"],
                       f"Calibration {run_id}: {run['standard']}, version {run['version']}")
    return Response(page, mimetype="text/html")


@operation("/calibrations/<int:run_id>/publish", "POST", roles=("admin",),
           answer=schemas.Publication, errors=(409,),
           summary="publish the calibration's bank version for new sessions")
def publish_calibration(run_id):
    run = _calibration_run(run_id)
    if run["status"] != "done":
        raise ConflictError(f"calibration {run_id} is {run['status']}, not done")
    return g.store.publish(run["standard"], run["version"])


@operation("/simulations", "POST", roles=("admin",), body=schemas.SimulationRequest,
           errors=(409,),
           summary="simulate the test on its bank: the simulation report of FORMATS.md")
def post_simulation(data):
    test = g.delivery.test(data["test_id"])
    # built here too so that a test with no bank is 404 or 400 before the helper is taken
    g.delivery.test_bank(data["test_id"], g.store.current_version_ids(test["standards"]))
    return offload.run(offload.simulate, g.store.database.url, data["test_id"],
                       data["examinees"], data["seed"])


@operation("/responses", "GET", roles=("admin",), query=schemas.StandardQuery,
           produces=("text/csv", "long CSV"), errors=(404,),
           summary="the response log as long CSV (person_id,item_id,response)")
def responses(query):
    standard = query.get("standard")
    if standard is not None:
        g.store.standard(standard)                    # 404 for an unknown standard
    text = offload.run(offload.responses_csv, g.store.database.url, standard)
    return Response(text, mimetype="text/csv")
