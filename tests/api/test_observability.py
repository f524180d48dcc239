"""Request ids, JSON logs, the audit trail, the metrics and readiness (api/observability.py,
itembank/monitoring.py), on SQLite and, when a server is given, PostgreSQL.

Expected values come from the requests made here: the sessions started and finished,
the items answered (the exposure rates are counted by hand from them), the rows
inserted; and from the Prometheus text format (prometheus_client's parser).
"""

import collections
import json
import logging
import os
import subprocess
import sys

import pytest
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from irtcat.api import observability
from irtcat.api.app import close_app, create_app
from irtcat.api.observability import audit, configure_logging, exposition, install
from irtcat.itembank.database import Database, head_revision
from irtcat.itembank.monitoring import readiness
from irtcat.itembank.schema import CalibrationRun

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def json_logs(capsys):
    """configure_logging for one test (the root logger restored afterwards); returns a
    function giving the JSON lines written to stderr since the last call."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("INFO")
    capsys.readouterr()

    def lines():
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()
                if line.startswith("{")]
    yield lines
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def observed(api):
    """An app on the `api` fixture's database with `install` called before its first
    request (a second call, if create_app made one, does nothing), as the `Api` helper
    with keys of its own."""
    app = install(create_app({"DATABASE_URL": api.store.database.url}))
    yield type(api)(app)
    close_app(app)


def samples(text, name):
    """{labels as a sorted tuple of pairs: value} of the samples called `name`."""
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_install_twice_registers_its_hooks_once(observed):
    app = install(observed.app)
    hooks = app.before_request_funcs[None]
    assert hooks.count(observability._begin) == 1 and hooks[0] is observability._begin
    assert app.after_request_funcs[None].count(observability._finish) == 1


def test_request_id_is_echoed_when_valid_and_made_otherwise(observed):
    given = observed.call("GET", "/v1/health", headers={"X-Request-Id": "lms-42.retry_1"})
    assert given.headers["X-Request-Id"] == "lms-42.retry_1"
    made = observed.call("GET", "/v1/health")
    other = observed.call("GET", "/v1/health")
    assert len(made.headers["X-Request-Id"]) == 16 and int(made.headers["X-Request-Id"], 16) >= 0
    assert made.headers["X-Request-Id"] != other.headers["X-Request-Id"]
    for bad in ("has space", "x" * 65, "semi;colon", ""):
        replaced = observed.call("GET", "/v1/health", headers={"X-Request-Id": bad})
        assert replaced.headers["X-Request-Id"] != bad
        assert len(replaced.headers["X-Request-Id"]) == 16


def test_a_failed_request_logs_one_json_line_without_path_or_credentials(observed, json_logs):
    missing = observed.call("GET", "/v1/nope/irts_not-a-real-token", observed.admin,
                       headers={"X-Request-Id": "req-404"})
    assert missing.status_code == 404
    bogus = "irts_" + "q" * 32
    refused = observed.call("POST", "/v1/sessions/s_0123456789abcdef0123/responses", bogus,
                       json={"item_id": "x", "response": "B"})
    assert refused.status_code == 401
    lines = [line for line in json_logs() if line["logger"] == "irtcat.http"]
    assert [line["status"] for line in lines] == [404, 401]
    first, second = lines
    assert first["request_id"] == "req-404" and first["route"] == "unmatched"
    assert first["method"] == "GET" and first["level"] == "INFO"
    assert first["message"] == "request failed" and first["event"] == "request_failed"
    assert first["client"] == "127.0.0.1" and first["duration_ms"] >= 0
    assert set(first) >= {"time", "level", "logger", "message", "request_id"}
    assert second["route"] == "/v1/sessions/<session_id>/responses"
    assert second["request_id"] == refused.headers["X-Request-Id"]
    text = json.dumps(lines)
    for secret in (observed.admin, bogus, "irts_not-a-real-token", "s_0123456789abcdef0123",
                   "Bearer"):
        assert secret not in text


def test_a_successful_request_logs_nothing(observed, json_logs):
    assert observed.call("GET", "/v1/health").status_code == 200
    assert [line for line in json_logs() if line["logger"] == "irtcat.http"] == []


def test_audit_scrubs_fields_named_like_secrets_and_key_shaped_values(api, json_logs):
    with api.app.test_request_context():
        observability.g.request_id = "req-audit"
        audit("auth_failure", key="irtk_leaked", token="irts_leaked", raw_response="B",
              answer="C", Authorization="Bearer x", apiKey="k", role="admin",
              reason="Bearer irtk_alsoleaked was revoked", name="lms", args=[1])
    audit("calibration_started", run_id=7, standard="AI-ML")
    failure, started = json_logs()
    assert failure["message"] == failure["event"] == "auth_failure"
    assert failure["level"] == "WARNING" and failure["logger"] == "irtcat.audit"
    assert failure["request_id"] == "req-audit"
    for name in ("key", "token", "raw_response", "answer", "Authorization", "apiKey"):
        assert failure[name] == "[scrubbed]"
    assert failure["reason"] == "[scrubbed] was revoked"
    assert failure["role"] == "admin" and failure["field_name"] == "lms"
    assert failure["field_args"] == [1]
    assert "leaked" not in json.dumps(failure)
    assert started == {**started, "event": "calibration_started", "level": "INFO",
                       "run_id": 7, "standard": "AI-ML"}
    assert "request_id" not in started


def test_configure_logging_twice_keeps_one_handler(json_logs):
    root = logging.getLogger()
    configure_logging("warning")
    handlers = [h for h in root.handlers if isinstance(h, observability.StderrHandler)]
    assert len(handlers) == 1 and root.level == logging.WARNING
    logging.getLogger("irtcat.test").info("below the level")
    logging.getLogger("irtcat.test").warning("kept", extra={"items": 3})
    assert [(line["message"], line["items"]) for line in json_logs()] == [("kept", 3)]


def test_answers_and_request_durations_are_counted(observed):
    database = observed.store.database
    before = exposition(database)[0]
    observability.count_answer()
    observability.count_answer()
    observed.call("GET", "/v1/health")
    after, content_type = exposition(database)
    assert content_type == "text/plain; version=1.0.0; charset=utf-8"   # prometheus_client 0.26
    answers = "irtcat_answers_total"
    assert samples(after, answers)[()] - samples(before, answers).get((), 0.0) == 2.0
    labels = (("method", "GET"), ("route", "/v1/health"), ("status", "2xx"))
    count = "irtcat_http_request_duration_seconds_count"
    assert samples(after, count)[labels] - samples(before, count).get(labels, 0.0) == 1.0
    buckets = samples(after, "irtcat_http_request_duration_seconds_bucket")
    assert sorted((dict(key)["le"] for key in buckets if key[1:] == labels), key=float) == [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
        "2.5", "5.0", "10.0", "+Inf"]


def test_the_collector_counts_sessions_jobs_and_exposure_in_the_database(observed):
    given = collections.defaultdict(list)           # test id -> item ids answered
    sessions = {"ml": [observed.start("ml", f"learner-{n}") for n in range(3)],
                "credential": [observed.start("credential", "learner-9")]}
    for test_id, started in sessions.items():
        for answers, session in zip((2, 1, 0), started, strict=False):
            item = session["item"]
            for _ in range(answers):
                reply = observed.answer(session, item["item_id"], item["options"][0]["id"])
                assert reply.status_code == 200, reply.json
                given[test_id].append(item["item_id"])
                item = reply.json["item"]
    finished = observed.call("POST", f"/v1/sessions/{sessions['ml'][2]['session_id']}/finish",
                        observed.delivery)
    assert finished.status_code == 200
    with observed.store.database.writing() as session:
        session.add_all([CalibrationRun(standard_code="AI-ML", model="2pl", source="log",
                                        status=status)
                         for status in ("queued", "queued", "running", "done", "failed")])

    text = exposition(observed.store.database)[0]
    assert samples(text, "irtcat_database_up") == {(): 1.0}
    assert samples(text, "irtcat_sessions_active") == {(): 3.0}
    assert samples(text, "irtcat_jobs") == {(("status", "queued"),): 2.0,
                                            (("status", "running"),): 1.0}
    # By hand: the most answered item of each test over the test's sessions.
    expected = {"ml": max(collections.Counter(given["ml"]).values()) / 3,
                "credential": max(collections.Counter(given["credential"]).values()) / 1,
                "open": 0.0}
    assert expected["ml"] in (1 / 3, 2 / 3) and expected["credential"] == 1.0
    assert samples(text, "irtcat_exposure_max") == {
        (("test_id", test_id),): rate for test_id, rate in expected.items()}


def test_the_collector_reports_an_unreadable_database():
    broken = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        text = exposition(broken)[0]
        assert samples(text, "irtcat_database_up") == {(): 0.0}
        assert samples(text, "irtcat_sessions_active") == {}
        assert readiness(broken) == (False, {"database": "unreachable"})
    finally:
        broken.dispose()


def test_metrics_view_is_a_text_response(observed):
    with observed.app.app_context():
        response = observability.metrics_view(observed.store.database)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert b"irtcat_sessions_active 0.0" in response.data


def test_readiness_wants_a_reachable_database_at_the_head_schema(database, database_url):
    assert readiness(database) == (True, {"database": "ok", "schema": head_revision(),
                                          "expected_schema": head_revision()})


def test_readiness_refuses_an_unmigrated_database(database_url):
    empty = Database(database_url)
    try:
        assert readiness(empty) == (False, {"database": "ok", "schema": None,
                                            "expected_schema": head_revision()})
    finally:
        empty.dispose()


COUNT_IN_A_WORKER = """
from irtcat.api import observability
observability.count_answer()
observability.count_answer()
observability._metrics().duration.labels("POST", "/v1/sessions", "2xx").observe(0.004)
"""


def test_metrics_add_up_over_worker_processes(tmp_path, monkeypatch, database):
    # Two processes count 2 answers and time 1 request each: the scrape shows 4 and 2,
    # whichever process serves it.
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"left by an earlier run")
    observability._metrics()             # this process's own stay in memory
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)    # restored afterwards
    assert observability.prepare_multiprocess_dir() == str(folder)
    assert list(folder.iterdir()) == []
    for _ in range(2):
        worker = subprocess.run([sys.executable, "-c", COUNT_IN_A_WORKER], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert worker.returncode == 0, worker.stderr
    pids = sorted(path.name for path in folder.iterdir())
    assert len(pids) == 4            # a counter and a histogram file per process
    text = exposition(database)[0]
    assert samples(text, "irtcat_answers_total") == {(): 4.0}
    labels = (("method", "POST"), ("route", "/v1/sessions"), ("status", "2xx"))
    assert samples(text, "irtcat_http_request_duration_seconds_count") == {labels: 2.0}
    assert samples(text, "irtcat_http_request_duration_seconds_bucket")[
        (("le", "0.005"), *labels)] == 2.0
    assert samples(text, "irtcat_sessions_active") == {(): 0.0}
    pid = int(pids[0].rsplit("_", 1)[1].split(".")[0])
    observability.worker_exit(pid)                 # its counts stay in the sums
    assert samples(exposition(database)[0], "irtcat_answers_total") == {(): 4.0}


def test_prepare_makes_a_private_folder_when_none_is_set(monkeypatch):
    observability._metrics()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "unset afterwards")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    path = observability.prepare_multiprocess_dir()
    try:
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == path
        assert os.stat(path).st_mode & 0o777 == 0o700
    finally:
        os.rmdir(path)
