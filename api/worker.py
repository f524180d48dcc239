"""`irtcat worker`: a process that runs the queued long admin work, one job at a time.

The request workers of `irtcat serve` only queue calibrations, simulations,
calibration reports and response exports (api/long_work.py); a worker process claims
the oldest queued job (itembank/jobs.py), runs it (delivery/jobs.py) and stores its
result. It runs at the lowest CPU priority (`NICENESS`), so the kernel gives the request
workers the cores first, and says it is alive every `HEARTBEAT_SECONDS` while it runs a
job. Between jobs it looks for jobs whose worker stopped (`Jobs.reap`: queued again
once, then failed with the reason).

The number of worker processes bounds how much long work runs at once: `irtcat serve
--job-workers N` starts N beside gunicorn (api/server.py), and more can run on other
hosts against the same PostgreSQL database.

SIGTERM (or SIGINT) stops it cleanly: between jobs it exits at once; during a job it
interrupts the work and gives the job back to the queue (not counted as an attempt),
unless the job has already finished, whose result stays.

On a Dask cluster (docs/cluster.md): with ``IRTCAT_DASK_SCHEDULER`` naming a scheduler
(``local``, ``local:N`` or an address), or with ``--dask [N]`` (a LocalCluster of N
processes, default 2, started with the worker), the E-steps of its calibrations and
online calibrations run on the cluster's workers (`delivery.jobs.ClusterClient`: one
client for the process, connected at start, connected again when it has lost its
scheduler). A calibration's progress goes to the log: its first cycle, then a cycle at
most every `PROGRESS_SECONDS`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from irtcat.itembank.jobs import STALE_AFTER, this_process

# The lowest priority: in the load benchmark's long-work load on a busy shared 2-core
# machine, the learners' p99 answer was 1025 ms at 10 and 423 ms at 19 (runs minutes
# apart, so noisy); on an idle host a job still gets every core the learners leave.
NICENESS = 19
POLL_SECONDS = 0.5            # an idle worker looks for queued jobs this often
HEARTBEAT_SECONDS = 5.0       # a busy one says it is alive this often (STALE_AFTER is 30)
PROGRESS_SECONDS = 5.0        # a calibration's cycles are logged at most this often
log = logging.getLogger("irtcat.worker")


class Stopping(BaseException):
    """Raised in a job's work when the worker is asked to stop (a BaseException, so that
    the work's own error handling does not record it as the job's failure)."""


class Worker:
    """Claims and runs the jobs of the database at `database_url`, one at a time.

    Parameters
    ----------
    database_url : str
    poll, heartbeat, stale_after : float
        seconds: between looks for queued jobs when idle; between heartbeats while a job
        runs; without a heartbeat before another worker's job is taken as stopped.
    scheduler : str, optional
        The Dask scheduler of the calibrations' E-steps (`calibration.cluster`'s names);
        default ``IRTCAT_DASK_SCHEDULER``; "" or unset: this process.
    """

    def __init__(self, database_url, *, poll=POLL_SECONDS, heartbeat=HEARTBEAT_SECONDS,
                 stale_after=STALE_AFTER, name=None, scheduler=None):
        from irtcat.calibration.cluster import scheduler_from_environment
        from irtcat.delivery.jobs import ClusterClient, JobRunner
        from irtcat.delivery.sessions import Delivery
        from irtcat.itembank.database import Database
        from irtcat.itembank.store import Store

        from .report import bank_report
        from .simulation_report import design_report, simulate_and_report

        store = Store(Database(database_url))
        self.cluster = ClusterClient(scheduler_from_environment() if scheduler is None
                                     else scheduler)
        self.runner = JobRunner(store, Delivery(store),
                                lambda document, title, dif=None: bank_report(
                                    document, title=title, dif=dif),
                                simulate_and_report, self.cluster, design_report)
        self.jobs = self.runner.jobs
        self.name = name or this_process()
        self.poll, self.heartbeat, self.stale_after = poll, heartbeat, stale_after
        self.stopping = threading.Event()
        self.interruptible = False        # True while a job's work may be interrupted
        self._next_reap = 0.0
        self._next_online_check = 0.0

    def run(self):
        """Claim and run jobs until `stop`."""
        log.info("worker %s: started", self.name)
        try:
            while not self.stopping.is_set():
                if not self.run_once():
                    self.stopping.wait(self.poll)
        except Stopping:          # stopped between a claim and its run: the job was given back
            pass
        log.info("worker %s: stopped", self.name)

    def stop(self):
        self.stopping.set()

    def close(self):
        """Close the worker's database connections and its Dask client."""
        self.runner.store.database.dispose()
        self.cluster.close()

    def run_once(self):
        """Reap stopped workers' jobs (every `heartbeat` seconds), then claim and run the
        oldest queued job; False when there was none."""
        if time.monotonic() >= self._next_reap:
            self._next_reap = time.monotonic() + self.heartbeat
            for job in self.jobs.reap(self.stale_after):
                log.warning("job %s (%s): its worker %s stopped; now %s", job["id"],
                            job["kind"], job["worker"], job["status"])
        job = self.jobs.claim(self.name)
        if job is None:
            self._queue_online_calibrations()
            return False
        self._run(job)
        return True

    def _run(self, job):
        from irtcat.delivery.jobs import failure_code

        from . import observability

        beating = threading.Event()
        beats = threading.Thread(target=self._beat, args=(job.id, beating), daemon=True,
                                 name=f"heartbeat-{job.id}")
        beats.start()
        started = time.monotonic()
        try:
            try:
                self.interruptible = True
                if self.stopping.is_set():
                    raise Stopping
                result, media_type = self.runner.run(job, _progress(job))
            finally:
                self.interruptible = False
        except Stopping:
            self.jobs.release(job.id, self.name)
            log.info("job %s (%s): given back to the queue, the worker is stopping",
                     job.id, job.kind)
            raise
        except Exception as error:                     # noqa: BLE001 - recorded on the job
            code = failure_code(error)
            if code is None:
                log.exception("job %s (%s) failed", job.id, job.kind)
            reason = str(error).splitlines()[0][:500] if code and str(error) else \
                f"internal error ({type(error).__name__})"
            self.jobs.fail(job.id, self.name, reason, code or "internal_error")
            observability.audit(f"{_audited(job)}_failed", job_id=job.id, kind=job.kind,
                                run_id=job.calibration_run_id, reason=reason[:200])
        else:
            self.jobs.complete(job.id, self.name, result, media_type)
            observability.audit(f"{_audited(job)}_finished", job_id=job.id, kind=job.kind,
                                run_id=job.calibration_run_id,
                                seconds=round(time.monotonic() - started, 3))
        finally:
            beating.set()
            beats.join()

    def _queue_online_calibrations(self):
        """While idle, every CHECK_SECONDS: queue the online calibrations that are due
        (`delivery.online_calibration.queue_ready`)."""
        from irtcat.delivery.jobs import enqueue_online_calibration
        from irtcat.delivery.online_calibration import CHECK_SECONDS, queue_ready

        if time.monotonic() < self._next_online_check:
            return
        self._next_online_check = time.monotonic() + CHECK_SECONDS
        try:
            queue_ready(self.runner.store, lambda code: enqueue_online_calibration(
                self.jobs, {"standard": code}, self.name, unless_waiting=True))
        except Exception:                              # noqa: BLE001 - checked again later
            log.exception("worker %s: the online calibration check failed", self.name)

    def _beat(self, job_id, done):
        while not done.wait(self.heartbeat):
            try:
                if not self.jobs.heartbeat(job_id, self.name):
                    log.warning("job %s: taken over by another worker", job_id)
                    return
            except Exception:                          # noqa: BLE001 - the next beat retries
                log.exception("job %s: heartbeat failed", job_id)


def _progress(job):
    """The EM progress of `job` in the log: the first cycle, then at most one cycle
    every PROGRESS_SECONDS (``progress(cycle, loglik, largest change, seconds)``)."""
    logged = []

    def progress(cycle, loglik, change, seconds):
        if logged and seconds - logged[-1] < PROGRESS_SECONDS:
            return
        logged.append(seconds)
        log.info("job %s (%s): cycle %d, loglik %.4f, largest change %.2e, %.1f s", job.id,
                 job.kind, cycle, loglik, change, seconds)
    return progress


def _audited(job):
    """The audit event's stem: ``calibration`` for a calibration's job, else ``job``."""
    return "calibration" if job.kind == "calibration" else "job"


def _interrupt(worker):
    """The SIGTERM and SIGINT handler: stop after the job, or interrupt its work."""
    def handle(signum, _frame):
        worker.stop()
        if worker.interruptible:
            worker.interruptible = False
            raise Stopping
    return handle


@contextmanager
def background_worker(database_url, **options):
    """A `Worker` on a thread of this process while the block runs (`irtcat serve
    --debug`, which serves from one process, and tests); no niceness, no signals."""
    worker = Worker(database_url, **options)
    worker.thread = threading.Thread(target=worker.run, daemon=True, name="job-worker")
    worker.thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        worker.thread.join()
        worker.close()


# --- the command ------------------------------------------------------------------------

def add_arguments(parser):
    from irtcat.calibration.cluster import LOCAL_WORKERS

    from .arguments import whole_number

    parser.add_argument("--database-url", default=None,
                        help="the store (default: IRTCAT_DATABASE_URL, else irtcat.db)")
    parser.add_argument("--dask", nargs="?", const=LOCAL_WORKERS, type=whole_number(1),
                        metavar="N", help="start a Dask LocalCluster of N processes (default "
                        f"{LOCAL_WORKERS}) and run the calibrations' E-steps there (without "
                        "it: on the scheduler IRTCAT_DASK_SCHEDULER names, if any)")
    parser.set_defaults(run=run_worker)


def run_worker(args):
    """Run a worker until SIGTERM or SIGINT; 0 once stopped."""
    from irtcat.itembank.database import Database, DatabaseError, current_revision, head_revision

    from .observability import configure_logging

    database = Database(args.database_url)
    try:
        revision = current_revision(database)
    except Exception as error:                         # noqa: BLE001 - unreachable store
        raise DatabaseError(f"cannot use the database: {str(error).splitlines()[0]}") \
            from None
    finally:
        database.dispose()
    if revision != head_revision():
        raise DatabaseError(f"the database is at schema {revision}, this release needs "
                            f"{head_revision()}: run irtcat db upgrade")
    configure_logging()
    os.nice(NICENESS)               # before a LocalCluster starts: its processes inherit it
    worker = Worker(database.url, scheduler=None if args.dask is None else f"local:{args.dask}")
    try:
        _connect(worker)
    except BaseException:
        worker.close()
        raise
    handler = _interrupt(worker)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        worker.run()
    except Stopping:
        pass
    finally:
        worker.close()
    return 0


def _connect(worker):
    """Connect the worker's Dask client now, if a scheduler is named: one that cannot be
    reached stops the worker at its start (ClusterError), not at its first job. Dask's
    own INFO lines (each client, each worker of a LocalCluster) stay out of the log; its
    warnings and errors, a worker lost among them, go in."""
    if worker.cluster.scheduler is None:
        return
    import distributed  # noqa: F401 - its import sets its loggers' levels: then ours

    logging.getLogger("distributed").setLevel(logging.WARNING)
    client = worker.cluster()
    workers = len(client.scheduler_info().get("workers", {}))
    log.info("worker %s: calibrations' E-steps on the Dask cluster at %s (%d worker%s)",
             worker.name, client.scheduler.address, workers, "s" * (workers != 1))


def main(argv=None):
    """``python -m irtcat.api.worker``: what `irtcat serve` starts."""
    parser = argparse.ArgumentParser(prog="irtcat worker")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_worker(args)
    except Exception as error:                         # noqa: BLE001 - one line, like irtcat
        print(f"irtcat worker: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
