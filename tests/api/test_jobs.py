"""Long admin work as queued jobs (api/long_work.py, api/worker.py, api/server.py).

In process: the routes answer their result when the job finishes within the bounded
wait, 202 with ``Location: /v1/jobs/{id}`` when it does not, and 202 at once with
``Prefer: respond-async`` (RFC 7240). With real worker processes: a worker killed
(SIGKILL) mid-job has its job queued again once and done by another; a job whose worker
dies twice fails with the reason; no more jobs run at once than there are workers;
SIGTERM gives an unfinished job back; `irtcat serve --job-workers` starts, restarts and
stops its workers while learners are answered.

Expected values come from the queue's rules (itembank/jobs.py) and from the simulation
itself: a simulation with a given seed reports the same numbers however it is run.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from irtcat.api import long_work
from irtcat.api.worker import NICENESS, Worker
from irtcat.delivery.jobs import enqueue_response_export, enqueue_simulation
from irtcat.itembank.jobs import MAX_ATTEMPTS, Jobs

ASYNC = {"Prefer": "respond-async"}


def envelope(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(True))
    return response.get_json()["error"]


def wait_until(predicate, timeout=60, what="the condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.02)
    return value


def without_seconds(report):
    return {name: value for name, value in report.items() if name != "seconds"}


def run_one_job(database_url):
    """Claim and run the oldest queued job in this process; whether there was one."""
    worker = Worker(database_url)
    try:
        return worker.run_once()
    finally:
        worker.close()


@pytest.fixture
def idle(api):
    """The fixture's API with its worker thread stopped: jobs stay queued until a test
    runs them."""
    api.worker.stop()
    api.worker.thread.join()
    return api


# --- in process ------------------------------------------------------------------------

def test_a_worker_stopped_between_a_claim_and_its_run_gives_the_job_back(idle, database_url):
    """`stop` may land after a claim: the job goes back to the queue and the worker's loop
    ends without an exception (the thread used to die with an unhandled `Stopping`)."""
    jobs = Jobs(idle.store.database)
    job_id = enqueue_simulation(jobs, "ml", 5, 1)
    worker = Worker(database_url)
    claim = worker.jobs.claim

    def claim_then_stop(name):
        claimed = claim(name)
        worker.stop()
        return claimed

    worker.jobs.claim = claim_then_stop
    try:
        worker.run()                                  # returns, raises nothing
    finally:
        worker.close()
    assert jobs.status(job_id) == "queued"

def test_respond_async_answers_202_at_once_and_the_result_later(api):
    body = {"test_id": "credential", "examinees": 30, "seed": 11}
    accepted = api.call("POST", "/v1/simulations", api.admin, json=body, headers=ASYNC)
    assert accepted.status_code == 202
    job = accepted.json
    assert accepted.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert accepted.headers["Preference-Applied"] == "respond-async"
    assert job["kind"] == "simulation" and job["status"] in ("queued", "running")
    status = wait_until(lambda: (lambda r: r.json["status"] == "done" and r)(
        api.call("GET", accepted.headers["Location"], api.admin)), what="the job")
    assert status.headers["Location"] == f"/v1/jobs/{job['id']}/result"
    assert status.json["finished_at"] >= status.json["started_at"] >= status.json["created_at"]
    result = api.call("GET", f"/v1/jobs/{job['id']}/result", api.admin)
    assert result.status_code == 200 and result.mimetype == "application/json"
    waited = api.call("POST", "/v1/simulations", api.admin, json=body)     # within the wait
    assert waited.status_code == 200
    assert without_seconds(result.json) == without_seconds(waited.json)
    assert result.json["examinees"] == 30 and result.json["seed"] == 11


def test_a_job_not_done_within_the_wait_answers_202_with_its_status_url(idle, database_url,
                                                                        monkeypatch):
    monkeypatch.setattr(long_work, "WAIT_SECONDS", 0.2)
    started = time.monotonic()
    accepted = idle.call("GET", "/v1/responses", idle.admin)
    assert accepted.status_code == 202 and time.monotonic() - started < 5
    location = accepted.headers["Location"]
    assert "Preference-Applied" not in accepted.headers
    assert idle.call("GET", location, idle.admin).json["status"] == "queued"
    assert envelope(idle.call("GET", f"{location}/result", idle.admin), 409)["code"] == \
        "conflict"
    assert run_one_job(database_url) is True
    done = idle.call("GET", location, idle.admin)
    assert done.json["status"] == "done" and done.json["attempts"] == 1
    result = idle.call("GET", f"{location}/result", idle.admin)
    assert result.status_code == 200 and result.mimetype == "text/csv"
    assert result.get_data(True) == "person_id,item_id,response\n"     # nothing answered


def test_jobs_are_for_admin_keys_only(api):
    job_id = api.call("POST", "/v1/simulations", api.admin, headers=ASYNC,
                      json={"test_id": "ml", "examinees": 5}).json["id"]
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/result"):
        assert envelope(api.call("GET", path), 401)["code"] == "unauthorized"
        assert envelope(api.call("GET", path, api.delivery), 403)["code"] == "forbidden"
    envelope(api.call("GET", "/v1/jobs/424242", api.admin), 404)
    envelope(api.call("GET", f"/v1/jobs/{2**40}/result", api.admin), 404)
    accepted = api.call("POST", "/v1/simulations", api.delivery, headers=ASYNC,
                        json={"test_id": "ml", "examinees": 5})
    envelope(accepted, 403)


def test_a_failed_job_says_why(idle, database_url):
    job_id = enqueue_response_export(Jobs(idle.store.database), "NOPE")
    run_one_job(database_url)
    job = idle.call("GET", f"/v1/jobs/{job_id}", idle.admin).json
    assert job["status"] == "failed" and job["error"] == "no standard 'NOPE'"
    envelope(idle.call("GET", f"/v1/jobs/{job_id}/result", idle.admin), 409)


def test_a_calibration_answers_202_with_its_run_and_its_job_follows_it(api):
    rows = [{"person_id": f"p{n}", "item_id": "NOT-IN-AI-DE", "response": n % 2}
            for n in range(10)]
    started = api.call("POST", "/v1/calibrations", api.admin,
                       json={"standard": "AI-DE", "source": "upload", "data": rows})
    assert started.status_code == 202 and started.json["status"] == "queued"
    assert set(started.json) == {"id", "status"}
    assert started.headers["Location"] == f"/v1/calibrations/{started.json['id']}"
    run = wait_until(lambda: (lambda r: r["status"] in ("done", "failed") and r)(
        api.call("GET", started.headers["Location"], api.admin).json), what="the run")
    assert run["status"] == "failed" and "NOT-IN-AI-DE" in run["error"]


def test_a_full_queue_is_429_busy(idle, monkeypatch):
    monkeypatch.setattr(long_work, "MAX_QUEUED", 1)
    enqueue_simulation(Jobs(idle.store.database), "ml", 5, 1)
    refused = idle.call("POST", "/v1/simulations", idle.admin, json={"test_id": "ml"})
    assert envelope(refused, 429)["code"] == "busy"
    assert int(refused.headers["Retry-After"]) >= 1


# --- worker processes ------------------------------------------------------------------

class Workers:
    """`irtcat worker` processes on one database, killed at the end of the test."""

    def __init__(self, database_url, folder):
        self.url, self.folder, self.started = database_url, folder, []

    def start(self):
        log = open(self.folder / f"worker-{len(self.started)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen([sys.executable, "-m", "irtcat.api.worker",
                                    "--database-url", self.url], stderr=log)
        log.close()
        self.started.append(process)
        return process

    def name(self, process):
        return f"{socket.gethostname()}:{process.pid}"

    def running(self, process):
        """Whether `process` logged its start (after it set its SIGTERM handler)."""
        log = self.folder / f"worker-{self.started.index(process)}.log"
        return f"worker {self.name(process)}: started" in log.read_text()

    def stop_all(self):
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def workers(idle, database_url, tmp_path):
    processes = Workers(database_url, tmp_path)
    yield processes
    processes.stop_all()


def _running_on(jobs, job_id, worker, attempts):
    job = jobs.job(job_id)
    return job["status"] == "running" and job["worker"] == worker and \
        job["attempts"] == attempts


def test_a_job_whose_worker_is_killed_is_done_by_another(idle, workers):
    jobs = Jobs(idle.store.database)
    job_id = enqueue_simulation(jobs, "credential", 8000, 5)
    first = workers.start()
    wait_until(lambda: _running_on(jobs, job_id, workers.name(first), 1), what="a claim")
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, first.pid) == expected
    first.kill()
    first.wait()
    second = workers.start()
    wait_until(lambda: jobs.status(job_id) == "done", timeout=120, what="the job")
    job = jobs.job(job_id)
    assert job["attempts"] == 2 and job["worker"] == workers.name(second)
    report = json.loads(jobs.result(job_id)[1])
    assert report["examinees"] == 8000 and report["seed"] == 5


def test_a_job_whose_worker_dies_twice_fails_with_the_reason(idle, workers):
    jobs = Jobs(idle.store.database)
    job_id = enqueue_simulation(jobs, "credential", 20000, 5)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        process = workers.start()
        wait_until(lambda p=process, n=attempt: _running_on(jobs, job_id, workers.name(p), n),
                   what=f"claim {attempt}")
        process.kill()
        process.wait()
    workers.start()
    wait_until(lambda: jobs.status(job_id) == "failed", what="the failure")
    job = jobs.job(job_id)
    assert job["error"].startswith(f"the worker running it stopped: {workers.name(process)}")
    assert job["attempts"] == MAX_ATTEMPTS
    error = envelope(idle.call("GET", f"/v1/jobs/{job_id}/result", idle.admin), 409)
    assert "failed" in error["message"]


def test_no_more_jobs_run_at_once_than_there_are_workers(idle, workers):
    jobs = Jobs(idle.store.database)
    queued = [enqueue_simulation(jobs, "credential", 1500, seed) for seed in range(5)]
    pair = [workers.start(), workers.start()]
    most = 0
    while not all(jobs.status(job_id) == "done" for job_id in queued):
        most = max(most, sum(jobs.status(job_id) == "running" for job_id in queued))
        time.sleep(0.02)
    assert 1 <= most <= 2
    assert {jobs.job(job_id)["worker"] for job_id in queued} <= \
        {workers.name(process) for process in pair}
    # one worker may have run every job while the other was still starting: idle means
    # started, with its SIGTERM handler set (before it, SIGTERM's default ends it)
    wait_until(lambda: all(workers.running(process) for process in pair),
               what="both workers' start")
    for process in pair:                                 # idle: SIGTERM stops at once
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_sigterm_gives_an_unfinished_job_back_and_keeps_a_finished_one(idle, workers):
    jobs = Jobs(idle.store.database)
    finished = enqueue_simulation(jobs, "ml", 5, 1)
    unfinished = enqueue_simulation(jobs, "credential", 20000, 2)
    process = workers.start()
    wait_until(lambda: _running_on(jobs, unfinished, workers.name(process), 1),
               what="the second claim")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert jobs.status(finished) == "done"
    back = jobs.job(unfinished)
    assert back["status"] == "queued" and back["attempts"] == 0 and back["error"] is None, back


# --- irtcat serve ------------------------------------------------------------------------

def _job_workers(parent):
    """Pids of the live `irtcat worker` processes whose parent is `parent`."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as command:
                words = command.read().split(b"\0")
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == parent and b"irtcat.api.worker" in words:
            found.add(int(entry))
    return found


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http(method, url, key=None, body=None, headers=()):
    request = urllib.request.Request(url, method=method, headers=dict(headers),
                                     data=None if body is None else json.dumps(body).encode())
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, dict(response.headers), response.read()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the workers in /proc")
def test_serve_keeps_its_job_workers_and_learners_are_answered(idle, database_url, tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "w")                               # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "irtcat.api.cli", "serve", "--port", str(port),
         "--workers", "1", "--job-workers", "2"],
        env={**os.environ, "IRTCAT_DATABASE_URL": database_url}, stderr=log)
    log.close()
    try:
        pair = wait_until(lambda: len(found := _job_workers(server.pid)) == 2 and found,
                          what="two job workers")
        dead = min(pair)
        os.kill(dead, signal.SIGKILL)
        again = wait_until(lambda: len(found := _job_workers(server.pid)) == 2
                           and dead not in found and found, what="a new job worker")
        assert len(again & pair) == 1
        wait_until(lambda: _ready(base), what="the server")

        status, headers, _ = _http("POST", f"{base}/v1/simulations", idle.admin,
                                   {"test_id": "credential", "examinees": 20000}, ASYNC)
        assert status == 202 and headers["Location"].startswith("/v1/jobs/")
        wait_until(lambda: json.loads(_http("GET", base + headers["Location"],
                                            idle.admin)[2])["status"] == "running",
                   what="the long job")
        status, _, body = _http("POST", f"{base}/v1/sessions", idle.delivery,
                                {"test_id": "ml", "learner_id": "during-a-job"})
        session = json.loads(body)
        began = time.monotonic()
        status, _, _ = _http("POST", f"{base}/v1/sessions/{session['session_id']}/responses",
                             session["token"], {"item_id": session["item"]["item_id"],
                                                "response": "A"})
        assert status == 200 and time.monotonic() - began < 1.0

        status, headers, body = _http("POST", f"{base}/v1/simulations", idle.admin,
                                      {"test_id": "ml", "examinees": 20, "seed": 3})
        assert status == 200 and json.loads(body)["examinees"] == 20   # the other worker
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    assert _job_workers(server.pid) == set()
    assert all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in again)


def _ready(base):
    try:
        return _http("GET", f"{base}/v1/health")[0] == 200
    except OSError:
        return False


def _zombie(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_prefer_wait_shortens_the_bounded_wait(idle):
    started = time.monotonic()
    accepted = idle.call("POST", "/v1/simulations", idle.admin, json={"test_id": "ml"},
                         headers={"Prefer": "wait=0"})
    assert accepted.status_code == 202 and time.monotonic() - started < long_work.WAIT_SECONDS
    assert "Preference-Applied" not in accepted.headers
    assert accepted.json["status"] == "queued"


def test_job_workers_run_one_thread_of_numerical_work(monkeypatch):
    # api/server.py ONE_THREAD: a job takes one core at most, unless the operator says.
    from irtcat.api.server import JobWorkers

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert JobWorkers(1, "sqlite://").environment["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert JobWorkers(1, "sqlite://").environment["OPENBLAS_NUM_THREADS"] == "2"
