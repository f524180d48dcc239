"""Long admin work away from the learners: calibrations, simulations, reports and
response exports run in a helper process of lower CPU priority, never in the
interpreter that answers learners.

Each worker process of `irtcat serve` has at most one helper (started on first use,
`spawn`ed so it shares no lock or connection with the worker, and `nice`d by
NICENESS so the kernel gives the delivery workers the cores first). A request that
waits for its result holds one of the worker's threads, so a worker takes at most
one such request at a time and answers any other at once with `Busy` (HTTP 429 with
Retry-After, code ``busy``): however many admin calls arrive, every worker keeps a thread for
learners. Calibrations do not wait: they queue in the helper, at most
QUEUED_CALIBRATIONS per worker (`Busy` beyond).

The functions the helper runs take the database URL and open the store themselves.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import concurrent.futures.process
import io
import logging
import multiprocessing
import os
import threading

import numpy as np

NICENESS = 10
QUEUED_CALIBRATIONS = 4
RETRY_AFTER_SECONDS = 5
log = logging.getLogger("irtcat.offload")

_pool = None
_pool_lock = threading.Lock()
_waiting = threading.BoundedSemaphore(1)
_calibrations = threading.BoundedSemaphore(QUEUED_CALIBRATIONS)
_stores = {}                       # in the helper: database URL -> (Store, Delivery)


class Busy(RuntimeError):
    """This worker's helper is taken (HTTP 429, code ``busy``); `retry_after` in seconds."""

    retry_after = RETRY_AFTER_SECONDS


def _helper(broken=None):
    """This worker's helper pool; a new one in place of `broken` (one whose process died,
    killed or out of memory), so that one lost helper does not fail every later call."""
    global _pool
    with _pool_lock:
        if broken is not None and _pool is broken:
            _pool = None
        if _pool is None:
            _pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority)
            atexit.register(_pool.shutdown, wait=True, cancel_futures=True)
        return _pool


def _lower_priority():
    """The helper's start: lower priority, and JSON log lines like its worker's."""
    os.nice(NICENESS)
    from .observability import configure_logging

    configure_logging()


def run(function, *args):
    """`function(*args)` in this worker's helper; waits for and returns its result.
    Busy when another request of this worker is already waiting for the helper."""
    if not _waiting.acquire(blocking=False):
        raise Busy("another long admin task is running on this worker; retry shortly")
    try:
        pool = _helper()
        try:
            return pool.submit(function, *args).result()
        except concurrent.futures.process.BrokenProcessPool:
            return _helper(broken=pool).submit(function, *args).result()
    finally:
        _waiting.release()


def reserve_calibration():
    """Take one of this worker's QUEUED_CALIBRATIONS places (Busy when none is free);
    `queue_calibration` then uses it, or `release_calibration` gives it back."""
    if not _calibrations.acquire(blocking=False):
        raise Busy(f"{QUEUED_CALIBRATIONS} calibrations are already queued on this worker; "
                   "retry when one has finished")


def release_calibration():
    _calibrations.release()


def queue_calibration(database_url, run_id, upload, request_id=None, on_lost=None):
    """Queue calibration run `run_id` in the helper on a reserved place, not waiting;
    its log lines name `request_id`, the request that started it. `on_lost(reason)` is
    called if the helper dies before the run ends (the run would read as running)."""
    pool = _helper()
    try:
        try:
            future = pool.submit(calibrate, database_url, run_id, upload, request_id)
        except concurrent.futures.process.BrokenProcessPool:
            pool = _helper(broken=pool)
            future = pool.submit(calibrate, database_url, run_id, upload, request_id)
    except Exception:
        release_calibration()
        raise
    future.add_done_callback(lambda done: _calibration_done(done, run_id, pool, on_lost))


def _calibration_done(future, run_id, pool, on_lost):
    release_calibration()
    error = future.exception()
    if error is None:
        return
    log.error("calibration %s: the helper process failed: %s", run_id, error)
    if isinstance(error, concurrent.futures.process.BrokenProcessPool):
        _helper(broken=pool)
    if on_lost is not None:
        on_lost(f"the helper process running it ended ({type(error).__name__})")


# --- what the helper runs -------------------------------------------------------------

def _store_of(database_url):
    if database_url not in _stores:
        from irtcat.delivery.sessions import Delivery
        from irtcat.itembank.database import Database
        from irtcat.itembank.store import Store

        store = Store(Database(database_url))
        _stores[database_url] = store, Delivery(store)
    return _stores[database_url]


def calibrate(database_url, run_id, upload, request_id=None):
    """Run calibration `run_id` (a failure is recorded on the run); audit lines for
    its end, naming `request_id`."""
    from irtcat.calibration.workflow import CalibrationInputError
    from irtcat.delivery.calibration_runs import execute_calibration

    from . import observability

    store, _ = _store_of(database_url)
    try:
        execute_calibration(store, run_id, upload)
    except (CalibrationInputError, ValueError) as error:
        observability.audit("calibration_failed", run_id=run_id, reason=str(error)[:200],
                            request_id=request_id)
        return
    except Exception:                                   # noqa: BLE001 - recorded, then logged
        log.exception("calibration %s failed", run_id, extra={"request_id": request_id})
        observability.audit("calibration_failed", run_id=run_id, reason="internal error",
                            request_id=request_id)
        store.fail_calibration_run(run_id, "internal error")
        return
    observability.audit("calibration_finished", run_id=run_id, request_id=request_id)


def simulate(database_url, test_id, examinees, seed):
    """The simulation report (FORMATS.md) of `test_id` on its current banks."""
    from .simulation_report import report, timed_run

    store, delivery = _store_of(database_url)
    test = delivery.test(test_id)
    built = delivery.test_bank(test_id, store.current_version_ids(test["standards"]))
    rng = np.random.default_rng(seed)
    true_theta = rng.normal(built.design.scoring.prior_mean, built.design.scoring.prior_sd,
                            examinees)
    batches, seconds = timed_run(built.bank.params, built.design, rng, true_theta=true_theta)
    return report(batches, built.design, seconds, true_theta=true_theta, seed=seed)


def bank_report(result, title):
    """The HTML report of a calibration's bank document."""
    from .report import bank_report as page

    return page(result, title=title)


def responses_csv(database_url, standard):
    """The response log as long CSV text."""
    store, _ = _store_of(database_url)
    stream = io.StringIO()
    store.write_responses(stream, standard)
    return stream.getvalue()
