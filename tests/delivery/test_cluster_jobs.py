"""Jobs on a Dask cluster: with IRTCAT_DASK_SCHEDULER set, a worker's calibration and
online-calibration jobs run their E-steps on the cluster (a LocalCluster of two
processes shared by the module), with their progress logged per cycle; a scheduler that
cannot be named fails the job with its reason (`delivery.jobs`, `api.worker`).

The reference of every comparison is the same job run by a worker without the variable,
in its own process: the cluster adds the same E-step sums, so the parameters, their
standard errors and logLik agree within 1e-8."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from irtcat.api import worker as worker_module
from irtcat.api.worker import Worker
from irtcat.delivery.calibration_runs import start_calibration
from irtcat.delivery.jobs import (
    ClusterClient,
    enqueue_calibration,
    enqueue_online_calibration,
    enqueue_simulation,
)
from irtcat.delivery.sessions import Delivery
from irtcat.engine.models import parameters_from_entries
from irtcat.engine.simulate import simulate_responses
from irtcat.itembank.io import ResponseLog
from irtcat.itembank.jobs import Jobs

distributed = pytest.importorskip("distributed")

CONTENT = {"stem": "Q", "options": [{"id": "A", "text": "a"}, {"id": "B", "text": "b"}]}
N_OPERATIONAL, N_PRETEST, N_PERSONS = 12, 3, 1500
TOLERANCE = 1e-8


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: where a job's E-steps run does not depend on the store (tests/api's
    job tests run on both back ends)."""
    return f"sqlite:///{tmp_path / 'irtcat.db'}"


@pytest.fixture
def seeded(store):
    """Standard CLU: 12 operational 2PL items published with their simulation truth, 3
    pretest items, and 1,500 simulated persons answering all 15."""
    rng = np.random.default_rng(20261205)
    truth = [{"id": f"C{j:02d}", "model": "2pl", "a": round(float(rng.uniform(0.8, 1.8)), 3),
              "b": round(float(rng.uniform(-1.5, 1.5)), 3)}
             for j in range(N_OPERATIONAL + N_PRETEST)]
    store.import_framework({"format": "irtcat-framework/1",
                            "standards": [{"code": "CLU", "title": "Cluster"}]})
    store.import_items({"format": "irtcat-bank/1", "items": [
        {**item, "standard": "CLU", "status": "operational", "content": CONTENT,
         "key": {"correct": "A"}} if j < N_OPERATIONAL else
        {"id": item["id"], "standard": "CLU", "model": "2pl", "status": "pretest",
         "content": CONTENT, "key": {"correct": "A"}} for j, item in enumerate(truth)]})
    Delivery(store).create_test("t", "T", ["CLU"], {"online_calibration": {"min_answers": 500}})
    answers = simulate_responses(rng.normal(0, 1, N_PERSONS), parameters_from_entries(truth),
                                 rng)
    person, item = np.nonzero(np.ones_like(answers, dtype=bool))
    store.import_response_log(ResponseLog([f"p{i}" for i in range(N_PERSONS)],
                                          [entry["id"] for entry in truth],
                                          person.astype(np.int32), item.astype(np.int32),
                                          answers[person, item].astype(float)))
    return store


def run_one(database_url, monkeypatch, scheduler=None):
    """Claim and run the oldest queued job in a worker made with IRTCAT_DASK_SCHEDULER
    set to `scheduler` (None: unset)."""
    if scheduler is None:
        monkeypatch.delenv("IRTCAT_DASK_SCHEDULER", raising=False)
    else:
        monkeypatch.setenv("IRTCAT_DASK_SCHEDULER", scheduler)
    worker = Worker(database_url)
    try:
        assert worker.run_once()
    finally:
        worker.close()


def on_the_cluster(dask_client, run):
    """(what `run()` returns, the keys of the E-step tasks the cluster ran meanwhile)."""
    with distributed.get_task_stream(dask_client) as stream:
        result = run()
    return result, [task["key"] for task in stream.data
                    if str(task["key"]).startswith("estep_statistics")]


def logged_cycles(caplog, job_id):
    """[(cycle, loglik)] of the worker's progress lines for `job_id`."""
    pattern = re.compile(rf"job {job_id} \(\w+\): cycle (\d+), loglik (\S+),")
    return [(int(match[1]), float(match[2])) for record in caplog.records
            if (match := pattern.match(record.getMessage()))]


def test_a_calibration_job_runs_its_e_steps_on_the_scheduler_of_the_environment(
        seeded, migrated_database_url, dask_client, monkeypatch, caplog, assert_same_result):
    jobs = Jobs(seeded.database)
    monkeypatch.setattr(worker_module, "PROGRESS_SECONDS", 0.0)      # log every cycle
    caplog.set_level(logging.INFO, logger="irtcat.worker")
    runs, job_ids, tasks = [], [], []
    for scheduler in (None, dask_client.scheduler.address):
        runs.append(start_calibration(seeded, "CLU", standard_errors=True))
        job_ids.append(enqueue_calibration(jobs, runs[-1]))
        tasks.append(on_the_cluster(dask_client, lambda scheduler=scheduler: run_one(
            migrated_database_url, monkeypatch, scheduler))[1])
    assert tasks[0] == [] and tasks[1]                  # here, then on the cluster
    assert [jobs.status(job_id) for job_id in job_ids] == ["done", "done"]
    alone, spread = (seeded.calibration_run(run)["result"] for run in runs)
    assert_same_result(spread, alone, TOLERANCE)      # parameters, SEs, fit, logLik
    # the progress, cycle by cycle, in the worker's log: the same cycles and logLik
    cycles = [logged_cycles(caplog, job_id) for job_id in job_ids]
    iterations = alone["calibration"]["iterations"]
    assert [cycle for cycle, _ in cycles[0]] == list(range(1, iterations + 1))
    assert [cycle for cycle, _ in cycles[1]] == list(range(1, iterations + 1))
    np.testing.assert_allclose([loglik for _, loglik in cycles[1]],     # logged to 4
                               [loglik for _, loglik in cycles[0]], rtol=0, atol=1e-4)  # places


def test_an_online_calibration_job_runs_on_the_cluster_with_the_gates_of_one_process(
        seeded, migrated_database_url, dask_client, monkeypatch, assert_same_result):
    jobs = Jobs(seeded.database)
    summaries, tasks = [], []
    for scheduler in (None, dask_client.scheduler.address):
        job_id = enqueue_online_calibration(jobs, {"standard": "CLU"})
        tasks.append(on_the_cluster(dask_client, lambda scheduler=scheduler: run_one(
            migrated_database_url, monkeypatch, scheduler))[1])
        status, result, _ = jobs.result(job_id)
        assert status == "done"
        summaries.append(json.loads(result))
    assert tasks[0] == [] and tasks[1]
    alone, spread = summaries
    assert [row["item"] for row in spread["items"]] == ["C12", "C13", "C14"]
    assert {row["decision"] for row in spread["items"]} == {"promoted"}
    assert_same_result(spread["items"], alone["items"], TOLERANCE)  # parameters, gates


def test_a_simulation_job_on_the_cluster_reports_the_study_of_its_design(
        seeded, migrated_database_url, dask_client, monkeypatch, assert_same_result):
    # The reference: the same design simulated as a study in this process (no client).
    from irtcat.api.simulation_report import design_report
    from irtcat.delivery.studies import simulate_design

    jobs = Jobs(seeded.database)
    job_id = enqueue_simulation(jobs, "t", 1200, 7)
    with distributed.get_task_stream(dask_client) as stream:
        run_one(migrated_database_url, monkeypatch, dask_client.scheduler.address)
    assert any(str(task["key"]).startswith("run_unit") for task in stream.data)
    status, result, _ = jobs.result(job_id)
    assert status == "done"
    spread = json.loads(result)
    delivery = Delivery(seeded)
    built = delivery.test_bank("t", seeded.current_version_ids(["CLU"]))
    alone = design_report(simulate_design(built.bank.params, built.design, 1200, 7), 0.0, 7)
    assert spread["examinees"] == 1200
    assert_same_result(spread, json.loads(json.dumps(alone)), 0.0)   # the same numbers


def test_a_scheduler_that_cannot_be_named_fails_the_job_and_its_run_with_the_reason(
        seeded, migrated_database_url, monkeypatch):
    jobs = Jobs(seeded.database)
    run = start_calibration(seeded, "CLU")
    job_id = enqueue_calibration(jobs, run)
    run_one(migrated_database_url, monkeypatch, "nonsense")
    job = jobs.job(job_id)
    assert job["status"] == "failed" and job["error_code"] == "cluster_unavailable"
    assert job["error"].startswith("scheduler 'nonsense': missing port number")
    assert seeded.calibration_run(run)["status"] == "failed"
    assert seeded.calibration_run(run)["error"] == job["error"]


def test_the_client_connects_once_and_again_once_it_has_lost_its_scheduler(dask_client):
    connection = ClusterClient(dask_client.scheduler.address)
    try:
        first = connection()
        assert first.status == "running" and connection() is first
        first.close()                                   # as when its scheduler went away
        second = connection()
        assert second is not first and second.status == "running"
    finally:
        connection.close()
    assert ClusterClient(None)() is None and ClusterClient("")() is None


def worker_process(database_url, *options, scheduler=None):
    """`python -m irtcat.api.worker` (what `irtcat worker` and `irtcat serve` run)."""
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    environment.pop("IRTCAT_DASK_SCHEDULER", None)
    if scheduler is not None:
        environment["IRTCAT_DASK_SCHEDULER"] = scheduler
    return subprocess.Popen([sys.executable, "-m", "irtcat.api.worker", "--database-url",
                             database_url, *options], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=environment)


@pytest.mark.runs_long           # a worker process, its LocalCluster and a calibration: ~10 s
def test_irtcat_worker_dask_runs_its_jobs_on_a_local_cluster_of_its_own(
        seeded, migrated_database_url):
    jobs = Jobs(seeded.database)
    job_id = enqueue_calibration(jobs, start_calibration(seeded, "CLU"))
    process = worker_process(migrated_database_url, "--dask", "1")
    try:
        deadline = time.monotonic() + 120
        while jobs.status(job_id) not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert jobs.status(job_id) == "done" and process.returncode == 0, err
    assert "E-steps on the Dask cluster at tcp://" in err and "(1 worker)" in err
    assert f"job {job_id} (calibration): cycle 1, loglik" in err


def test_irtcat_worker_with_a_scheduler_that_cannot_be_named_exits_2_with_one_line(
        migrated_database_url):
    process = worker_process(migrated_database_url, scheduler="nonsense")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err == "irtcat worker: error: scheduler 'nonsense': missing port number in " \
        "address 'nonsense'\n"
