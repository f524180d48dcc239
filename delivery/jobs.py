"""Long admin work as queued jobs: the kinds, their payloads, and running one.

The request workers only enqueue (`enqueue_*`); a worker process (`irtcat worker`)
claims each job and `JobRunner.run` does the work with the functions the API used to
call itself, returning ``(result, media type)``:

- ``calibration`` ``{"run_id", "upload"}``: runs the recorded calibration run `run_id`
  (`execute_calibration`); `upload` is the uploaded response log as JSON columns (None:
  the stored log). The run keeps its own row and status (GET /v1/calibrations/{id});
  the job's result is ``{"id", "status", "version"}`` of the run.
- ``simulation`` ``{"test_id", "examinees", "seed"}``: the simulation report of
  FORMATS.md (JSON).
- ``calibration_report`` ``{"run_id", "dif_job"?}``: the calibration's HTML report, with
  a DIF section from the result of the done ``dif`` job `dif_job` when given.
- ``response_export`` ``{"standard"}``: the response log as long CSV.
- ``dif`` ``{"standard", "attribute", "focal", "method", "purify"}``: DIF on the
  standard's stored log, persons grouped by a learner attribute (`delivery.dif`; JSON).
- ``online_calibration`` ``{"standard", "settings"}``: the standard's ready pretest items
  calibrated and gated (`delivery.online_calibration`; JSON: the run and its gate table).
- ``drift`` ``{"standard", "items", "mode", "weights", "z", "expected_score",
  "min_answers"}``: the operational items re-estimated on the stored log, one row per
  item (`delivery.drift`; JSON).
- ``lti_score`` ``{"session_id"}``: an LTI-launched session's score posted to its line
  item (`delivery.lti`; JSON: what was posted and the platform's status).

The HTML page is made by the API's report module, which this layer may not import:
`JobRunner` takes it as `bank_report`.

On a Dask cluster: given `cluster` (a `ClusterClient`, whose scheduler a worker takes
from ``IRTCAT_DASK_SCHEDULER``), the E-steps of a calibration and of an online
calibration run on its workers, with the estimates of one process (`calibration.
partitions`); the other kinds, simulations included, run in the worker process. One
client serves all the jobs of a worker process; it connects again when it has lost its
scheduler. A scheduler that cannot be reached, or a cluster that loses partitions in
every run of a cycle, fails the job (code ``cluster_unavailable``, with the reason)
and never gives a result from part of the persons.
"""

from __future__ import annotations

import contextlib
import io
import json
import time

import numpy as np

from irtcat.calibration.cluster import ClusterError, connected
from irtcat.calibration.workflow import CalibrationInputError
from irtcat.delivery.calibration_runs import execute_calibration
from irtcat.delivery.dif import dif_document
from irtcat.delivery.drift import drift_document
from irtcat.delivery.errors import ConflictError
from irtcat.delivery.lti import JOB_KIND as LTI_SCORE
from irtcat.delivery.lti import Tool as LtiTool
from irtcat.delivery.online_calibration import JOB_KIND as ONLINE_CALIBRATION
from irtcat.delivery.online_calibration import run_online_calibration
from irtcat.delivery.studies import simulate_design
from irtcat.itembank.errors import DataFormatError, NotFoundError
from irtcat.itembank.io import ResponseLog
from irtcat.itembank.jobs import Jobs

CALIBRATION, SIMULATION = "calibration", "simulation"
CALIBRATION_REPORT, RESPONSE_EXPORT = "calibration_report", "response_export"
DIF, DRIFT = "dif", "drift"
KINDS = (CALIBRATION, SIMULATION, CALIBRATION_REPORT, RESPONSE_EXPORT, DIF, ONLINE_CALIBRATION,
         DRIFT, LTI_SCORE)
JSON, HTML, CSV = "application/json", "text/html", "text/csv"
# the errors of the domain a job fails with, and the code the API answers them with
FAILURE_CODES = ((NotFoundError, "not_found"), (ConflictError, "conflict"),
                 (DataFormatError, "validation_error"),
                 (CalibrationInputError, "validation_error"), (ValueError, "validation_error"),
                 (ClusterError, "cluster_unavailable"))


def failure_code(error):
    """The code of a job's failure: ``not_found``, ``conflict``, ``validation_error``,
    ``cluster_unavailable``, or None for an internal error (whose message is not
    shown)."""
    return next((code for kind, code in FAILURE_CODES if isinstance(error, kind)), None)


# --- enqueueing ---------------------------------------------------------------------

def upload_columns(log):
    """A `ResponseLog` as JSON columns (a job's payload)."""
    return {"person_ids": list(log.person_ids), "item_ids": list(log.item_ids),
            "person_index": log.person_index.tolist(), "item_index": log.item_index.tolist(),
            "response": log.response.tolist()}


def upload_log(columns):
    """The `ResponseLog` of `upload_columns`."""
    return ResponseLog(columns["person_ids"], columns["item_ids"],
                       np.asarray(columns["person_index"], dtype=np.int32),
                       np.asarray(columns["item_index"], dtype=np.int32),
                       np.asarray(columns["response"], dtype=float))


def enqueue_calibration(jobs, run_id, upload=None, requester=""):
    """Queue the recorded calibration run `run_id` (`upload`: a `ResponseLog` or None)."""
    payload = {"run_id": run_id, "upload": None if upload is None else upload_columns(upload)}
    return jobs.enqueue(CALIBRATION, payload, requester, calibration_run_id=run_id)


def enqueue_simulation(jobs, test_id, examinees, seed, requester=""):
    return jobs.enqueue(SIMULATION, {"test_id": test_id, "examinees": examinees,
                                     "seed": seed}, requester)


def enqueue_calibration_report(jobs, run_id, dif_job=None, requester=""):
    payload = {"run_id": run_id, **({} if dif_job is None else {"dif_job": dif_job})}
    return jobs.enqueue(CALIBRATION_REPORT, payload, requester)


def enqueue_response_export(jobs, standard, requester=""):
    return jobs.enqueue(RESPONSE_EXPORT, {"standard": standard}, requester)


def enqueue_dif(jobs, request, requester=""):
    """Queue DIF: `request` holds ``{"standard", "attribute", "focal", "method",
    "purify"}``."""
    return jobs.enqueue(DIF, dict(request), requester)


def enqueue_online_calibration(jobs, request, requester="", unless_waiting=False):
    """Queue an online calibration: `request` holds ``{"standard", "settings"}``
    (`settings`: overrides of the standard's gate settings, or {}). `unless_waiting`:
    none (None returned) when one for the standard is queued or running already."""
    return jobs.enqueue(ONLINE_CALIBRATION, {"standard": request["standard"],
                                             "settings": dict(request.get("settings") or {})},
                        requester, once_per_standard=unless_waiting)


def enqueue_drift(jobs, request, requester=""):
    """Queue drift: `request` holds ``{"standard"}`` and `drift_document`'s options."""
    return jobs.enqueue(DRIFT, dict(request), requester)


# --- running ------------------------------------------------------------------------

class ClusterClient:
    """The Dask client of one worker process's jobs: calling it returns the client of
    `scheduler` (`calibration.cluster`'s names: ``local``, ``local:N``, an address),
    connected at the first call and kept for the next, connected again once it has lost
    its scheduler; None when no scheduler is named (the work runs in this process).
    ClusterError when the scheduler cannot be reached."""

    def __init__(self, scheduler=None):
        self.scheduler = scheduler or None
        self._client = None
        self._opened = contextlib.ExitStack()

    def __call__(self):
        if self.scheduler is None:
            return None
        if self._client is None or self._client.status != "running":
            self.close()
            self._client = self._opened.enter_context(connected(self.scheduler))
        return self._client

    def close(self):
        """Close the client (and stop the LocalCluster of ``local``), if open."""
        self._client = None
        self._opened.close()


class JobRunner:
    """Runs claimed jobs on one store: `run(job)` returns ``(result, media type)`` or
    raises (`failure_code` tells a domain error from an internal one).

    Parameters
    ----------
    store : Store
    delivery : Delivery
        the store's tests and their banks (simulations).
    bank_report : callable
        ``bank_report(document, title, dif=None) -> str``, the HTML report of a bank
        document (`dif`: DIF results for its DIF section).
    simulation_report : callable
        ``simulation_report(params, design, rng, true_theta, seed) -> dict``: runs the
        simulation and formats its report (FORMATS.md); formatting is the caller's.
    cluster : callable, optional
        ``cluster() -> distributed.Client or None`` (a `ClusterClient`): where the
        calibrations' E-steps run, and simulations, as a study of the test's design
        (`delivery.studies.simulate_design`: seeded per unit of simulees, so its report
        is the same on any number of workers, and is `irtcat study`'s); None or a call
        answering None: in this process.
    design_report : callable, optional
        ``design_report(result, seconds, seed) -> dict``: the report of a
        `studies.DesignResult` (needed with a cluster).
    """

    def __init__(self, store, delivery, bank_report, simulation_report, cluster=None,
                 design_report=None):
        self.store, self.delivery, self.bank_report = store, delivery, bank_report
        self.simulation_report = simulation_report
        self.design_report = design_report
        self.cluster = cluster or ClusterClient()
        self.jobs = Jobs(store.database)
        self._kinds = {CALIBRATION: self._calibration, SIMULATION: self._simulation,
                       CALIBRATION_REPORT: self._calibration_report,
                       RESPONSE_EXPORT: self._response_export, DIF: self._dif,
                       ONLINE_CALIBRATION: self._online_calibration, DRIFT: self._drift,
                       LTI_SCORE: self._lti_score}
        self.lti = LtiTool(store, delivery)

    def run(self, job, progress=None):
        """Run `job`; `progress(cycle, loglik, largest change, seconds)` is called after
        every EM cycle of a calibration or an online calibration."""
        if job.kind not in self._kinds:
            raise ValueError(f"unknown job kind {job.kind!r}")
        if job.kind in (CALIBRATION, ONLINE_CALIBRATION):
            return self._kinds[job.kind](**job.payload, progress=progress)
        return self._kinds[job.kind](**job.payload)

    def _calibration(self, run_id, upload=None, progress=None):
        """A failure of the run is recorded on it by `execute_calibration`, then raised
        (also a scheduler that cannot be reached). A run that already ended (its worker
        stopped after storing it) is not run again."""
        run = self.store.calibration_run(run_id)
        if run["status"] == "failed":
            raise CalibrationInputError(run["error"] or f"calibration {run_id} failed")
        if run["status"] != "done":
            data = None if upload is None else upload_log(upload)
            try:
                client = self.cluster()
            except ClusterError as error:
                self.store.fail_calibration_run(run_id, str(error))
                raise
            run = execute_calibration(self.store, run_id, data, progress, cluster=client)
        return json.dumps({"id": run["id"], "status": run["status"],
                           "version": run["version"]}), JSON

    def _simulation(self, test_id, examinees, seed):
        test = self.delivery.test(test_id)
        built = self.delivery.test_bank(test_id,
                                        self.store.current_version_ids(test["standards"]))
        client = self.cluster()
        if client is not None:      # a study of the test's design, spread over the cluster
            started = time.perf_counter()
            result = simulate_design(built.bank.params, built.design, examinees, seed, client)
            document = self.design_report(result, time.perf_counter() - started, seed)
            return json.dumps(document, separators=(",", ":")), JSON
        rng = np.random.default_rng(seed)
        scoring = built.design.scoring
        true_theta = rng.normal(scoring.prior_mean, scoring.prior_sd, examinees)
        document = self.simulation_report(built.bank.params, built.design, rng, true_theta,
                                          seed)
        return json.dumps(document, separators=(",", ":")), JSON

    def _calibration_report(self, run_id, dif_job=None):
        run = self.store.calibration_run(run_id)
        if run["status"] != "done":
            raise ConflictError(f"calibration {run_id} is {run['status']}, not done")
        title = f"Calibration {run_id}: {run['standard']}, version {run['version']}"
        if dif_job is None:
            return self.bank_report(run["result"], title), HTML
        return self.bank_report(run["result"], title, dif=self.dif_result(dif_job)), HTML

    def dif_result(self, job_id):
        """The DIF document of the done ``dif`` job `job_id`; NotFoundError when there is
        no such job, ConflictError when it is of another kind or not done."""
        if self.jobs.job(job_id)["kind"] != DIF:
            raise ConflictError(f"job {job_id} is not a DIF job")
        status, data, _ = self.jobs.result(job_id)
        if status != "done":
            raise ConflictError(f"DIF job {job_id} is {status}, not done")
        return json.loads(data)

    def _response_export(self, standard=None):
        stream = io.StringIO()
        self.store.write_responses(stream, standard)
        return stream.getvalue(), CSV

    def _dif(self, standard, attribute, focal, method="mh", purify=False):
        document = dif_document(self.store, standard, attribute, focal, method, purify)
        return json.dumps(document, separators=(",", ":")), JSON

    def _online_calibration(self, standard, settings=None, progress=None):
        summary = run_online_calibration(self.store, standard, settings, progress=progress,
                                         cluster=self.cluster())
        return json.dumps(summary, separators=(",", ":")), JSON

    def _drift(self, standard, **options):
        document = drift_document(self.store, standard, **options)
        return json.dumps(document, separators=(",", ":")), JSON

    def _lti_score(self, session_id):
        posted = self.lti.post_score(session_id)
        return json.dumps(posted, separators=(",", ":")), JSON
