"""The job queue in the store (itembank/jobs.py), on each back end through the `database`
fixture (tests/conftest.py).

Expected values come from the queue's rules (the module docstring): one claim per job,
oldest first; a job whose worker stopped is queued again once, then failed with the
reason; a worker that no longer holds a job cannot end it; a calibration's run follows
its job.
"""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from irtcat.itembank.database import Database
from irtcat.itembank.jobs import MAX_ATTEMPTS, STALE_AFTER, Jobs, this_process
from irtcat.itembank.schema import utc_now
from irtcat.itembank.store import NotFoundError, Store

ONE = "host-a:1"
OTHER = "host-b:2"


@pytest.fixture
def jobs(database):
    return Jobs(database)


def _later(seconds=STALE_AFTER + 1):
    """A moment after every heartbeat given so far has gone stale."""
    return utc_now() + timedelta(seconds=seconds)


def test_a_job_is_queued_claimed_heartbeating_and_done_with_its_result(jobs):
    job_id = jobs.enqueue("simulation", {"test_id": "t", "examinees": 5}, "key:1")
    queued = jobs.job(job_id)
    assert queued["status"] == "queued" and queued["kind"] == "simulation"
    assert queued["attempts"] == 0 and queued["requester"] == "key:1"
    assert queued["started_at"] is None and queued["created_at"].endswith("+00:00")
    assert jobs.result(job_id) == ("queued", None, None)

    claimed = jobs.claim(ONE)
    assert (claimed.id, claimed.kind, claimed.attempt) == (job_id, "simulation", 1)
    assert claimed.payload == {"test_id": "t", "examinees": 5}
    assert jobs.claim(OTHER) is None                       # one claim per job
    assert jobs.status(job_id) == "running"
    assert jobs.heartbeat(job_id, ONE) is True
    assert jobs.heartbeat(job_id, OTHER) is False          # not OTHER's job

    assert jobs.complete(job_id, ONE, "é,1\n", "text/csv") is True
    assert jobs.result(job_id) == ("done", "é,1\n".encode(), "text/csv")
    done = jobs.job(job_id)
    assert done["status"] == "done" and done["finished_at"] >= done["started_at"]
    assert jobs.complete(job_id, ONE, b"again", "text/plain") is False   # ended once
    assert jobs.result(job_id)[1] == "é,1\n".encode()
    with pytest.raises(NotFoundError):
        jobs.job(job_id + 1)


def test_the_oldest_job_is_claimed_first_and_a_failure_keeps_its_reason(jobs):
    first = jobs.enqueue("response_export", {"standard": None})
    second = jobs.enqueue("response_export", {"standard": "A"})
    assert jobs.queued_count() == 2
    assert jobs.claim(ONE).id == first
    assert jobs.claim(OTHER).id == second
    assert jobs.fail(second, OTHER, "no standard 'A'", "not_found") is True
    failed = jobs.job(second)
    assert (failed["status"], failed["error"], failed["error_code"]) == \
        ("failed", "no standard 'A'", "not_found")
    assert jobs.queued_count() == 0


def test_a_payload_that_is_not_json_is_refused_before_it_is_queued(jobs):
    with pytest.raises(TypeError):
        jobs.enqueue("simulation", {"seed": object()})
    assert jobs.queued_count() == 0


def test_a_stopped_workers_job_is_queued_again_once_then_failed_with_the_reason(jobs):
    job_id = jobs.enqueue("simulation", {"test_id": "t"})
    jobs.claim(ONE)
    assert jobs.reap() == []                               # its heartbeat is fresh
    assert jobs.reap(now=_later()) == [{"id": job_id, "kind": "simulation", "worker": ONE,
                                        "status": "queued"}]
    assert jobs.job(job_id)["status"] == "queued"
    again = jobs.claim(OTHER)
    assert (again.id, again.attempt) == (job_id, 2)
    assert jobs.complete(job_id, ONE, "late", "text/plain") is False   # ONE lost it
    assert jobs.reap(now=_later())[0]["status"] == "failed"
    failed = jobs.job(job_id)
    assert failed["status"] == "failed" and failed["attempts"] == MAX_ATTEMPTS
    assert failed["error"].startswith(f"the worker running it stopped: {OTHER}")
    assert failed["error_code"] == "worker_stopped"
    assert jobs.claim(ONE) is None


def test_a_worker_process_of_this_host_that_ended_has_stopped_at_once(jobs):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = f"{this_process().rpartition(':')[0]}:{ended.stdout.strip()}"
    job_id = jobs.enqueue("simulation", {})
    jobs.claim(dead)
    alive = jobs.enqueue("simulation", {})
    jobs.claim(this_process())                             # this process: alive
    assert [job["id"] for job in jobs.reap()] == [job_id]  # no wait for the heartbeat
    assert jobs.status(alive) == "running"


def test_a_released_job_is_queued_again_without_counting_an_attempt(jobs):
    job_id = jobs.enqueue("simulation", {})
    jobs.claim(ONE)
    assert jobs.release(job_id, ONE) is True
    assert jobs.job(job_id)["attempts"] == 0
    assert jobs.claim(OTHER).attempt == 1
    jobs.complete(job_id, OTHER, "{}", "application/json")
    assert jobs.release(job_id, OTHER) is False            # finished: stays done
    assert jobs.status(job_id) == "done"


def test_a_calibration_run_follows_its_job(database, jobs):
    store = Store(database)
    store.import_framework({"format": "irtcat-framework/1",
                            "standards": [{"code": "S", "title": "S"}]})
    run_id = store.create_calibration_run("S", "2pl", "log", {})
    job_id = jobs.enqueue("calibration", {"run_id": run_id}, calibration_run_id=run_id)
    assert jobs.job(job_id)["calibration_run"] == run_id
    jobs.claim(ONE)
    store.start_calibration_run(run_id, 10)
    jobs.reap(now=_later())
    assert store.calibration_run(run_id)["status"] == "queued"
    jobs.claim(OTHER)
    store.start_calibration_run(run_id, 10)
    jobs.reap(now=_later())
    run = store.calibration_run(run_id)
    assert run["status"] == "failed"
    assert run["error"] == jobs.job(job_id)["error"]
    assert run["error"].startswith("the worker running it stopped: ")


def test_concurrent_claims_take_each_job_exactly_once(database_url, jobs):
    """Four workers, each with its own connection pool, claim 40 jobs at once."""
    queued = {jobs.enqueue("simulation", {"n": n}) for n in range(40)}
    claims, errors = {}, []

    def work(name):
        database = Database(database_url)
        try:
            mine = Jobs(database)
            while (job := mine.claim(name)) is not None:
                claims.setdefault(name, []).append(job.id)
        except Exception as error:                       # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            database.dispose()

    threads = [threading.Thread(target=work, args=(f"host:{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    taken = [job_id for ids in claims.values() for job_id in ids]
    assert sorted(taken) == sorted(queued)                 # all, none twice
