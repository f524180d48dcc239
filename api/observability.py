"""The operator's view of the delivery service: JSON logs, an audit trail, Prometheus metrics.

- `configure_logging` makes every log record one JSON object on a line of stderr:
  ``time``, ``level``, ``logger``, ``message``, ``request_id`` while a request is
  handled, and the fields given as ``extra``. Fields named like a secret (key,
  token, secret, password, authorization, cookie, credential, response, answer) are
  scrubbed, and so is anything shaped like an irtcat key or session token.
- `install(app)` gives each request an id (a valid incoming ``X-Request-Id`` or a
  new one), echoes it, times the request into a histogram, and logs one line per
  4xx or 5xx response with its route rule (never the raw path, which names a
  session), status, duration and client address.
- `audit(event, **fields)` logs one security event (``auth_failure``, ...).
- Metrics: ``irtcat_http_request_duration_seconds`` and ``irtcat_answers_total``
  are kept per process, in prometheus_client's multiprocess mode under gunicorn
  (`prepare_multiprocess_dir` before the workers fork, `worker_exit` when one
  exits); ``irtcat_sessions_active``, ``irtcat_jobs`` and ``irtcat_exposure_max``
  are read from the database at scrape time (`DatabaseCollector`), so they agree
  across workers and hosts. `metrics_view(database)` is the scrape.

prometheus_client picks its value store (in memory, or files of the multiprocess
directory) when it is first imported, so this module imports it only when a metric
is first used: after `prepare_multiprocess_dir` has set the directory.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

from flask import Response, g, has_request_context, request

from irtcat.itembank.errors import DatabaseError
from irtcat.itembank.monitoring import delivery_counts

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SECRET_WORDS = {"key", "keys", "token", "tokens", "secret", "secrets", "password",
                "authorization", "cookie", "credential", "credentials", "response",
                "responses", "answer", "answers"}
SECRET_VALUE = re.compile(r"\b(?:irt[ks]_[A-Za-z0-9_-]+|(?:Bearer|Basic)\s+\S+)")
SCRUBBED = "[scrubbed]"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The attributes every LogRecord has: anything else on a record came as `extra`.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
log = logging.getLogger("irtcat.http")
audit_log = logging.getLogger("irtcat.audit")


# --- logs ---------------------------------------------------------------------------

def is_secret_name(name):
    """Whether a field called `name` may hold a secret or a learner's answer: one of its
    words (split on ``_``, ``-`` and case) is in SECRET_WORDS."""
    words = re.split(r"[_\-\s]+|(?<=[a-z])(?=[A-Z])", str(name))
    return any(word.lower() in SECRET_WORDS for word in words)


def scrub(value):
    """`value` with key- and token-shaped text replaced (strings inside lists and dicts
    too, and dict entries named like a secret)."""
    if isinstance(value, str):
        return SECRET_VALUE.sub(SCRUBBED, value)
    if isinstance(value, dict):
        return {k: SCRUBBED if is_secret_name(k) else scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the fields)."""

    def format(self, record):
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        request_id = current_request_id()
        if request_id is not None:
            line["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and name not in line:
                line[name] = SCRUBBED if is_secret_name(name) else value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(scrub(line), default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (a redirect, a capture)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure_logging(level=None):
    """Send the records of every logger, as JSON lines, to stderr at `level` (default:
    ``IRTCAT_LOG_LEVEL`` or INFO). Calling it again changes only the level. Returns the
    handler."""
    level = (level or os.environ.get("IRTCAT_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, StderrHandler)), None)
    if handler is None:
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    return handler


def audit(event, **fields):
    """Log one security event (``auth_failure``, ``rate_limited``, ``score_request``,
    ``calibration_started``, ...) at WARNING for failures and INFO otherwise. Fields
    named like a secret are logged as "[scrubbed]", never with their value; a field
    named like a LogRecord attribute (``name``, ``args``, ...) is logged as
    ``field_<name>``."""
    safe = {name: SCRUBBED if is_secret_name(name) else scrub(value)
            for name, value in fields.items()}
    safe = {f"field_{name}" if name in _RECORD_FIELDS else name: value
            for name, value in safe.items()}
    failure = event.endswith(("failure", "failed", "limited"))
    audit_log.log(logging.WARNING if failure else logging.INFO, event,
                  extra={"event": event, **safe})


def current_request_id():
    """The id of the request being handled, or None outside a request."""
    return g.get("request_id") if has_request_context() else None


# --- requests -----------------------------------------------------------------------

def install(app):
    """Request ids, timing, the duration histogram and a log line per 4xx/5xx response on
    `app`; a second call does nothing. Returns `app`."""
    if app.extensions.get("irtcat_observability"):
        return app
    app.extensions["irtcat_observability"] = True
    _metrics()
    # First of the before_request hooks: anything they log carries the request id.
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_finish)
    return app


def _begin():
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
    g.request_started = time.perf_counter()


def _finish(response):
    started = g.get("request_started")
    if started is None:            # a hook before ours failed: time from now on
        _begin()
        started = g.request_started
    seconds = time.perf_counter() - started
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    status_class = f"{response.status_code // 100}xx"
    _metrics().duration.labels(request.method, route, status_class).observe(seconds)
    response.headers["X-Request-Id"] = g.request_id
    if response.status_code >= 400:
        fields = {"event": "request_failed", "method": request.method, "route": route,
                  "status": response.status_code, "duration_ms": round(seconds * 1000, 2),
                  "client": request.remote_addr}
        log.log(logging.ERROR if response.status_code >= 500 else logging.INFO,
                "request failed", extra=fields)
    return response


# --- metrics ------------------------------------------------------------------------

class _Metrics:
    """The per-process metrics, made once per process on first use."""

    def __init__(self):
        from prometheus_client import Counter, Histogram

        self.duration = Histogram(
            "irtcat_http_request_duration_seconds", "Time to answer an HTTP request.",
            ("method", "route", "status"), buckets=BUCKETS)
        self.answers = Counter("irtcat_answers", "Answers accepted (rate() of it: answers "
                                                 "per second).")


_made = None
_making = threading.Lock()


def _metrics():
    global _made
    if _made is None:
        with _making:
            if _made is None:
                _made = _Metrics()
    return _made


def count_answer():
    """Count one accepted answer in ``irtcat_answers_total``."""
    _metrics().answers.inc()


class DatabaseCollector:
    """``irtcat_sessions_active``, ``irtcat_jobs{status}`` and
    ``irtcat_exposure_max{test_id}``, counted in `database` at each scrape;
    ``irtcat_database_up`` is 0 (and the others absent) when it cannot be read."""

    def __init__(self, database):
        self.database = database

    def describe(self):
        return []                 # no query when registered; the scrape collects

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        try:
            counts = delivery_counts(self.database)
        except DatabaseError as error:
            log.warning("metrics: %s", error)
            yield GaugeMetricFamily("irtcat_database_up", "Whether the scrape could read "
                                                          "the database.", value=0)
            return
        yield GaugeMetricFamily("irtcat_database_up", "Whether the scrape could read the "
                                                      "database.", value=1)
        yield GaugeMetricFamily("irtcat_sessions_active", "Sessions started and not finished.",
                                value=counts["sessions_active"])
        jobs = GaugeMetricFamily("irtcat_jobs", "Calibration runs by status.",
                                 labels=["status"])
        for status, n in counts["jobs"].items():
            jobs.add_metric([status], n)
        yield jobs
        exposure = GaugeMetricFamily(
            "irtcat_exposure_max", "Highest exposure rate of any item of the test (sessions "
                                   "that answered it / sessions of the test).",
            labels=["test_id"])
        for test_id, rate in sorted(counts["exposure_max"].items()):
            exposure.add_metric([test_id], rate)
        yield exposure


class _Together:
    """Several collectors read as one registry."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def exposition(database):
    """The metrics in Prometheus' text format: (bytes, content type). Under several
    processes, the sum over every worker's files in the multiprocess directory;
    otherwise this process's default registry (with process and platform metrics)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    _metrics()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(_Together(registry, DatabaseCollector(database))), \
        CONTENT_TYPE_LATEST


def metrics_view(database):
    """The scrape as a Flask response (``GET /v1/metrics``)."""
    body, content_type = exposition(database)
    return Response(body, content_type=content_type)


# --- several worker processes (gunicorn) ---------------------------------------------

def prepare_multiprocess_dir():
    """Set up prometheus_client's multiprocess directory before the workers fork: the
    one ``PROMETHEUS_MULTIPROC_DIR`` names, emptied of the files of an earlier run, or
    else a new private temporary one (removed when this process exits), which this sets
    in the environment the workers inherit. Returns its path."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, mode=0o700, exist_ok=True)
        for name in os.listdir(path):
            if re.fullmatch(r"(counter|gauge_\w+|histogram|summary)_\d+\.db", name):
                os.unlink(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="irtcat-metrics-")
        os.environ[MULTIPROC_ENV] = path
        owner = os.getpid()
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, True))
    values = sys.modules.get("prometheus_client.values")
    if values is not None:                 # imported already: switch it to the files
        values.ValueClass = values.get_value_class()
    return path


def worker_exit(pid):
    """Drop the live gauges of the exited worker `pid` (gunicorn's child_exit hook);
    its counters and histograms stay in the sums."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
