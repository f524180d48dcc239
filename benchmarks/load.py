"""Load: concurrent learners taking the credential test over HTTP against `irtcat serve`.

For SQLite (a file in a temporary folder) always, and PostgreSQL when
``IRTCAT_TEST_POSTGRESQL_URL`` names a server (in a schema ``irtcat_load`` of that
database, made and dropped here, not ``public``): `irtcat demo --no-serve` prepares
the database, then for each ``--workers/--threads`` setting a fresh `irtcat serve`
(gunicorn, gthread workers) on a free loopback port takes 100 simulated learners
at once, each on its own keep-alive connection. A learner starts an
``ai-practitioner`` session with the delivery key, waits until every learner has
started, then answers each item with its session token (a random option) until
the session is finished, and reads the result (which must list every answer).

Measured over the answering phase only: the round trip of each
``POST /v1/sessions/{id}/responses`` (p50, p99, max), answers per second (all
answers / wall time from the start signal to the last learner's last answer),
and errors (any non-2xx or a broken connection; must be 0). The load generator
runs on the same machine as the server, so its CPU share is shown too.
Targets (the API issue, SQLite): p99 <= 100 ms per answer and >= 300 answers/s.

"Closed loop": every learner answers again as soon as its answer comes back, which
finds the most answers per second; its latency is mostly queueing (Little's law:
p50 is about learners / answers per second). Then, on the fastest setting, one
closed-loop run with a new connection per request (gunicorn does not spread
keep-alive connections evenly over workers) and runs paced to offer a fixed rate
in all (each learner answers once per learners / rate seconds, from a random
phase): their latency is that of a server under that load. A paced run's
answers/s falls below the rate offered as learners finish their tests (12 to 30
items), so read its latencies, not its rate.

``IRTCAT_LOAD_SETTINGS="3x4,2x8"`` overrides the settings tried (workers x threads);
``IRTCAT_LOAD_LEARNERS`` the number of learners.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager

import numpy as np
import sqlalchemy
from sqlalchemy.engine import make_url

from .common import irtcat_command

LEARNERS = int(os.environ.get("IRTCAT_LOAD_LEARNERS", "100"))
TEST_ID = "ai-practitioner"
SETTINGS = [(1, 1), (2, 1), (3, 1), (2, 4), (3, 4), (5, 4)]   # (workers, threads); 5 x 4: default
PACED_RATES = (300, 100, 50)     # answers/s offered in all, for the paced runs
TIME_CAP = 120.0              # seconds for one setting's answering phase; learners stop after
START_TIMEOUT = 30.0
PREPARE_TIMEOUT = 300.0
SCHEMA = "irtcat_load"        # on PostgreSQL: a schema of its own (see postgresql_schema)


def _settings():
    spec = os.environ.get("IRTCAT_LOAD_SETTINGS")
    if not spec:
        return SETTINGS
    return [tuple(int(n) for n in part.split("x")) for part in spec.split(",") if part]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def postgresql_schema(url, schema=SCHEMA):
    """The URL of an empty schema of our own in the database of `url`, dropped afterwards:
    a test run emptying ``public`` of the same database meanwhile does not break the
    benchmark, nor the benchmark the tests."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield (make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
               .render_as_string(hide_password=False))
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        engine.dispose()


def prepare_demo(url, folder):
    """Run `irtcat demo --no-serve` on `url` (from `folder`); returns the delivery key."""
    env = {**os.environ, "IRTCAT_DATABASE_URL": url}
    done = subprocess.run([*irtcat_command(), "demo", "--no-serve"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=PREPARE_TIMEOUT, check=True)
    for line in done.stdout.splitlines():
        if "delivery key (for an LMS):" in line:
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"irtcat demo printed no delivery key:\n{done.stdout}{done.stderr}")


class Server:
    """`irtcat serve` in its own process group; stopped (the whole group) on exit."""

    def __init__(self, url, folder, workers=None, threads=None, log_name="serve.log"):
        self.url, self.folder = url, folder
        self.workers, self.threads = workers, threads
        self.log_path = os.path.join(folder, log_name)
        self.port = free_port()
        self.process = None

    def __enter__(self):
        argv = [*irtcat_command(), "serve", "--port", str(self.port)]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        if self.threads is not None:
            argv += ["--threads", str(self.threads)]
        env = {**os.environ, "IRTCAT_DATABASE_URL": self.url}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=self.folder, env=env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            wait_healthy(self.port, self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()[-4000:]
        except OSError:
            return ""

    def worker_cpu(self):
        """{pid: CPU seconds (user + system)} of the gunicorn workers (Linux; else {})."""
        ticks = os.sysconf("SC_CLK_TCK")
        seconds = {}
        try:
            pids = [name for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            return seconds
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.process.pid:            # a child of the arbiter
                seconds[int(pid)] = (int(fields[11]) + int(fields[12])) / ticks
        return seconds

    def stop(self):
        """SIGTERM the group (gunicorn shuts down gracefully), SIGKILL if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:                        # workers left behind by a dead arbiter, if any
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def __exit__(self, *exc):
        self.stop()


def wait_healthy(port, process, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"irtcat serve exited with status {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"irtcat serve did not answer /v1/health within {timeout:.0f} s")


class Client:
    """One keep-alive connection; `call` returns (status, parsed JSON body)."""

    def __init__(self, port, timeout=60, keepalive=True):
        self.port, self.timeout, self.keepalive = port, timeout, keepalive
        self.connection = None

    def call(self, method, path, key, body=None):
        headers = {"Authorization": f"Bearer {key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                             timeout=self.timeout)
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle keep-alive connection before this request
                # reached it: nothing was processed, so one retry on a new connection is safe
                self.close()
                if attempt == 2:
                    raise
        if not self.keepalive or response.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return response.status, parsed

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Learner(threading.Thread):
    """Start a session, wait for the signal, answer until finished, read the result.

    With `interval` (seconds) the learner answers at most once per interval, from a
    random phase: `n_learners / interval` answers per second offered in all.
    """

    def __init__(self, number, port, key, plan):
        super().__init__(daemon=True)
        self.number, self.key, self.plan = number, key, plan
        self.client = Client(port, keepalive=plan["keepalive"])
        self.rng = random.Random(number)
        self.latencies, self.errors = [], []
        self.start_seconds = None
        self.answered, self.finished_at, self.finished = 0, None, False

    def run(self):
        try:
            self._run()
        except Exception as error:                     # noqa: BLE001 - counted as an error
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            if self.finished_at is None:
                self.finished_at = time.perf_counter()
            self.client.close()

    def _run(self):
        try:
            began = time.perf_counter()
            status, session = self.client.call("POST", "/v1/sessions", self.key,
                                               {"test_id": TEST_ID,
                                                "learner_id": f"load-{self.number}"})
            self.start_seconds = time.perf_counter() - began
        finally:
            self.plan["ready"].release()         # ready (or failed): the others need not wait
        if status != 201:
            self.errors.append(f"POST /v1/sessions: {status} {session}")
            return
        self.plan["go"].wait()
        interval = self.plan["interval"]
        due = self.plan["began"] + (self.rng.uniform(0, interval) if interval else 0.0)
        path = f"/v1/sessions/{session['session_id']}"
        token, item = session["token"], session["item"]
        while item is not None:
            now = time.perf_counter()
            if now > self.plan["deadline"]:
                self.errors.append("time cap reached")
                return
            if interval:
                if due > now:
                    time.sleep(due - now)
                due = max(due + interval, time.perf_counter())     # no catching up in bursts
            choice = self.rng.choice(item["options"])["id"]
            began = time.perf_counter()
            status, state = self.client.call("POST", f"{path}/responses", token,
                                             {"item_id": item["item_id"], "response": choice})
            self.latencies.append(time.perf_counter() - began)
            if status != 200:
                self.errors.append(f"POST responses: {status} {state}")
                return
            self.answered += 1
            item = state["item"]
        self.finished_at = time.perf_counter()
        status, result = self.client.call("GET", f"{path}/result", self.key)
        if status != 200:
            self.errors.append(f"GET result: {status} {result}")
        elif result["status"] != "finished" or len(result["responses"]) != self.answered:
            self.errors.append(f"result lists {len(result['responses'])} answers of "
                               f"{self.answered}, status {result['status']}")
        else:
            self.finished = True


def run_learners(port, key, n_learners=LEARNERS, rate=None, keepalive=True,
                 time_cap=TIME_CAP, probe=dict):
    """Every learner takes one test, all at once (as fast as answers come back, or paced to
    offer `rate` answers per second in all); the figures of the answering phase."""
    plan = {"ready": threading.Semaphore(0), "go": threading.Event(), "keepalive": keepalive,
            "interval": n_learners / rate if rate else None,
            "began": float("inf"), "deadline": float("inf")}
    learners = [Learner(i, port, key, plan) for i in range(n_learners)]
    for learner in learners:
        learner.start()
    for _ in learners:
        plan["ready"].acquire()
    server_cpu = probe()
    cpu = time.process_time()
    plan["began"] = began = time.perf_counter()
    plan["deadline"] = began + time_cap
    plan["go"].set()
    for learner in learners:
        learner.join(timeout=time_cap + 90)
    wall = max(learner.finished_at or time.perf_counter() for learner in learners) - began
    client_cpu = time.process_time() - cpu
    after = probe()                                  # the result reads are in it
    workers_cpu = sorted((after[pid] - server_cpu.get(pid, 0.0) for pid in after),
                         reverse=True)
    latencies = np.array([s for learner in learners for s in learner.latencies])
    errors = [e for learner in learners for e in learner.errors]
    errors += [f"learner {learner.number} still running" for learner in learners
               if learner.is_alive()]
    starts = np.array([learner.start_seconds for learner in learners
                       if learner.start_seconds is not None])

    def percentile(q):
        return float(np.percentile(latencies, q)) if latencies.size else float("nan")

    return {"answers": int(latencies.size), "wall": wall,
            "rate": latencies.size / wall if wall > 0 else 0.0,
            "p50": percentile(50), "p99": percentile(99), "max": percentile(100),
            "start_p50": float(np.median(starts)) if starts.size else float("nan"),
            "finished": sum(learner.finished for learner in learners),
            "errors": errors, "client_cpu": client_cpu / wall if wall > 0 else 0.0,
            "workers_cpu": workers_cpu}


def _row(name, workers, threads, load, figures):
    met = figures["p99"] <= 0.100 and figures["rate"] >= 300 and not figures["errors"]
    return [name, f"{workers} x {threads}", load, f"{figures['finished']}/{LEARNERS}",
            str(figures["answers"]), f"{figures['wall']:.1f} s", f"{figures['rate']:.0f}",
            f"{figures['p50'] * 1000:.0f} ms", f"{figures['p99'] * 1000:.0f} ms",
            f"{figures['max'] * 1000:.0f} ms", str(len(figures["errors"])),
            _split(figures["workers_cpu"], figures["wall"]),
            _per_answer(figures["workers_cpu"], figures["answers"]),
            f"{figures['client_cpu']:.0%}", "yes" if met else "no"]


def _split(seconds, wall):
    """Each worker's CPU over the answering phase, busiest first: "95+3+1%"."""
    if not seconds or wall <= 0:
        return "?"
    return "+".join(f"{100 * s / wall:.0f}" for s in seconds) + "%"


def _per_answer(seconds, answers):
    """All workers' CPU in the answering phase per answer (the reads of the results at the
    end are in it, the session starts before it are not)."""
    return f"{1000 * sum(seconds) / answers:.1f} ms" if seconds and answers else "?"


def _measure(name, url, folder):
    """Closed loop for every setting, then paced runs on the fastest setting."""
    key = prepare_demo(url, folder)
    rows, notes, best = [], [], None

    def one(workers, threads, load, **options):
        server = Server(url, folder, workers, threads)
        try:
            with server:
                figures = run_learners(server.port, key, probe=server.worker_cpu, **options)
                if figures["errors"]:
                    notes.append(f"{name} {workers}x{threads} {load}: "
                                 f"{figures['errors'][:3]}\n{server.log()[-800:]}")
        except RuntimeError as error:              # the server did not start, or died
            notes.append(f"{name} {workers}x{threads} {load}: {error}\n{server.log()[-800:]}")
            rows.append([name, f"{workers} x {threads}", load, f"failed: {error}",
                         *[""] * 10, "no"])
            return None
        rows.append(_row(name, workers, threads, load, figures))
        return figures

    for workers, threads in _settings():
        figures = one(workers, threads, "closed loop, keep-alive")
        if figures is not None and (best is None or figures["rate"] > best[0]):
            best = (figures["rate"], workers, threads)
    if best is None:
        return rows, notes
    _, workers, threads = best
    one(workers, threads, "closed loop, a connection per request", keepalive=False)
    for rate in PACED_RATES:
        one(workers, threads, f"paced at {rate}/s, keep-alive", rate=rate)
    return rows, notes


HEADER = ["back end", "workers x threads", "load", "finished", "answers",
          "answering wall time", "answers/s (target >= 300)", "p50 answer",
          "p99 answer (target <= 100 ms)", "max answer", "errors",
          "server CPU by worker (% of wall)", "server CPU per answer", "load generator CPU",
          "targets met"]


def run():
    backends = [("SQLite", None)]
    if os.environ.get("IRTCAT_TEST_POSTGRESQL_URL"):
        backends.append(("PostgreSQL", os.environ["IRTCAT_TEST_POSTGRESQL_URL"]))
    for name, url in backends:
        with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
            if url is None:
                url = f"sqlite:///{os.path.join(folder, 'irtcat.db')}"
            else:
                url = stack.enter_context(postgresql_schema(url))
            rows, notes = _measure(name, url, folder)
        for note in notes:
            print(note, file=sys.stderr)
        yield (f"Load on {name}: {LEARNERS} concurrent learners, one {TEST_ID} test each "
               "(12-30 answers), HTTP on loopback, `irtcat serve` (gunicorn gthread)",
               HEADER, rows)
