"""Load: concurrent learners taking the credential test over HTTP against `irtcat serve`.

For SQLite (a file in a temporary folder) always, and PostgreSQL when
``IRTCAT_TEST_POSTGRESQL_URL`` names a server (in a schema ``irtcat_load`` of that
database, made and dropped here, not ``public``): `irtcat demo --no-serve` prepares
the database, then for each ``workers x threads`` setting a fresh `irtcat serve`
(gunicorn's arbiter, waitress in each worker) on a free loopback port takes 100
simulated learners at
each on its own keep-alive connection, the learners arriving over the first
RAMP_UP seconds. A learner starts an ``ai-practitioner`` session with the
delivery key, answers each item with the session token (a random option) until
the session is finished, checks that the result lists every answer, and starts
the next session: 100 learners are in a test at every moment. The load
generator is one asyncio process with a minimal HTTP/1.1 client, on the same 2
cores as the server; its CPU share is shown.

Three loads per setting, each measured for MEASURE seconds after WARM_UP seconds:
- "closed": every learner answers again as soon as its answer comes back: the most
  answers per second the server gives; latency is then mostly queueing (Little's
  law: p50 is about learners / answers per second).
- "think time": every learner thinks before each answer, for an exponentially
  distributed time of mean LEARNERS / OFFERED seconds (0.28 s: 360 answers/s in
  all if answers took no time; each millisecond an answer takes lowers the rate):
  the latency of a server under that load, and whether it keeps up.
- "think time + 200 slow": the same, while SLOW connections (200) that never finish
  their request stay open, half dripping a header and half a declared body, a byte
  every DRIP seconds (about 1 s) each, each re-opened when the server closes it:
  slow clients must cost the learners nothing.

- "think time + 4 reports, 2 calibrations": the think-time load while an admin keeps
  REPORTS calibration reports (``GET /v1/calibrations/{id}/report``, the HTML page with
  its figures) and CALIBRATIONS calibrations from the stored log (``POST
  /v1/calibrations``) in the server's job queue, each asked again as soon as it is
  done: the long work runs in the `irtcat serve` job workers (``--job-workers``,
  IRTCAT_LOAD_JOB_WORKERS, default 1), never in the request workers, and must cost the
  learners little (the API issue: p99 <= 100 ms). A report request waits for its job
  as a client of the spec would (202 and polling of its status URL when it takes
  longer than the server's wait); the CPU of the job workers is in the load's label.

Figures: answers per second over the measured window, the round trip of each
``POST /v1/sessions/{id}/responses`` in it (p50, p99, max), session starts, errors
(any non-2xx, a broken connection or a result that misses an answer: must be 0),
and each worker's CPU. The target of the API issue (SQLite, 100 learners):
>= 300 answers/s with p99 <= 100 ms per answer, read off the think-time rows.

``IRTCAT_LOAD_SETTINGS="3x1,3x2"`` overrides the settings tried (workers x threads);
``IRTCAT_LOAD_LEARNERS`` the number of learners, ``IRTCAT_LOAD_SECONDS`` the
measured window, ``IRTCAT_LOAD_SLOW`` the number of slow connections,
``IRTCAT_LOAD_LONG_WORK=0`` leaves out the long-work load.

Length: over 500 lines because the learners, the slow clients and the long-work
client share one event loop, one HTTP client and one measured window: one scenario,
read together.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager

import numpy as np
import sqlalchemy
from sqlalchemy.engine import make_url

from .common import irtcat_command

LEARNERS = int(os.environ.get("IRTCAT_LOAD_LEARNERS", "100"))
TEST_ID = "ai-practitioner"
SETTINGS = [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (4, 2)]   # (workers, threads)
OFFERED = 360                 # answers/s in all at zero latency: the target plus 20%
RAMP_UP = 5.0                 # seconds over which the learners arrive
WARM_UP = 10.0                # seconds before the measured window
MEASURE = float(os.environ.get("IRTCAT_LOAD_SECONDS", "20"))
SLOW = int(os.environ.get("IRTCAT_LOAD_SLOW", "200"))
DRIP = 1.0                    # mean seconds between two bytes of a slow connection
SLOW_STARTS = (b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
               b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
               b"application/json\r\nContent-Length: 100000\r\n\r\n{")
REPORTS, CALIBRATIONS = 4, 2  # long admin work kept in the queue (the long-work load)
LONG_WORK = os.environ.get("IRTCAT_LOAD_LONG_WORK", "1") != "0"
JOB_WORKERS = int(os.environ.get("IRTCAT_LOAD_JOB_WORKERS", "1"))
CALIBRATED = ("AI-ML", "AI-DE")   # the demo's standards calibrated again from the log
TARGET_RATE, TARGET_P99 = 300, 0.100
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
    return demo_keys(url, folder)[0]


def demo_keys(url, folder):
    """Run `irtcat demo --no-serve` on `url` (from `folder`); returns the delivery and
    the admin key."""
    env = {**os.environ, "IRTCAT_DATABASE_URL": url}
    done = subprocess.run([*irtcat_command(), "demo", "--no-serve"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=PREPARE_TIMEOUT, check=True)
    keys = {line.split("key", 1)[0].strip(): line.split(":", 1)[1].strip()
            for line in done.stdout.splitlines() if " key (for " in line}
    if set(keys) != {"delivery", "admin"}:
        raise RuntimeError(f"irtcat demo printed no keys:\n{done.stdout}{done.stderr}")
    return keys["delivery"], keys["admin"]


class Server:
    """`irtcat serve` in its own process group; stopped (the whole group) on exit."""

    def __init__(self, url, folder, workers=None, threads=None, log_name="serve.log",
                 job_workers=None):
        self.url, self.folder = url, folder
        self.workers, self.threads, self.job_workers = workers, threads, job_workers
        self.log_path = os.path.join(folder, log_name)
        self.port = free_port()
        self.process = None

    def __enter__(self):
        argv = [*irtcat_command(), "serve", "--port", str(self.port)]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        if self.threads is not None:
            argv += ["--threads", str(self.threads)]
        if self.job_workers is not None:
            argv += ["--job-workers", str(self.job_workers)]
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

    def worker_cpu(self, jobs=False):
        """{pid: CPU seconds (user + system)} of the gunicorn workers, or with `jobs` of
        the job workers (Linux; else {})."""
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
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    job_worker = b"irtcat.api.worker" in handle.read().split(b"\0")
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.process.pid and job_worker == jobs:   # the arbiter's
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
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()      # also when the server reset it while starting
        time.sleep(0.1)
    raise RuntimeError(f"irtcat serve did not answer /v1/health within {timeout:.0f} s")


class Connection:
    """One keep-alive HTTP/1.1 connection: `call` returns (status, parsed JSON body)."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def call(self, method, path, key, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        request = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(data)}\r\n\r\n").encode() + data
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1",
                                                                         self.port)
            try:
                self.writer.write(request)
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                # the server closed an idle keep-alive connection before this request
                # reached it: nothing was processed, so one retry on a new one is safe
                self.close()
                if attempt == 2:
                    raise
        lines = head.decode("latin-1").split("\r\n")
        status, length, close = int(lines[0].split()[1]), 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.close()
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, None

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class Tally:
    """What the learners saw in the measured window (from `begin` to `end`)."""

    def __init__(self, begin, end):
        self.begin, self.end = begin, end
        self.latencies, self.starts, self.errors = [], [], []
        self.sessions_finished = 0

    def counts(self, moment):
        return self.begin <= moment < self.end


async def learner(number, port, key, rate, tally):
    """Sessions one after another until the window ends (see the module docstring)."""
    rng = random.Random(number)
    connection = Connection(port)
    think = LEARNERS / rate if rate else 0.0
    await asyncio.sleep(rng.uniform(0.0, RAMP_UP))
    try:
        while time.perf_counter() < tally.end:
            began = time.perf_counter()
            status, session = await connection.call(
                "POST", "/v1/sessions", key,
                {"test_id": TEST_ID, "learner_id": f"load-{number}"})
            if tally.counts(began):
                tally.starts.append(time.perf_counter() - began)
            if status != 201:
                tally.errors.append(f"POST /v1/sessions: {status} {session}")
                return
            path = f"/v1/sessions/{session['session_id']}"
            item, answered = session["item"], 0
            while item is not None:
                if think:
                    await asyncio.sleep(rng.expovariate(1.0 / think))
                if time.perf_counter() >= tally.end:
                    return
                choice = rng.choice(item["options"])["id"]
                began = time.perf_counter()
                status, state = await connection.call(
                    "POST", f"{path}/responses", session["token"],
                    {"item_id": item["item_id"], "response": choice})
                if tally.counts(began):
                    tally.latencies.append(time.perf_counter() - began)
                if status != 200:
                    tally.errors.append(f"POST responses: {status} {state}")
                    return
                answered += 1
                item = state["item"]
            status, result = await connection.call("GET", f"{path}/result", key)
            if status != 200 or result["status"] != "finished" \
                    or len(result["responses"]) != answered:
                tally.errors.append(f"GET result: {status}, {answered} answers given, "
                                    f"result {str(result)[:200]}")
                return
            tally.sessions_finished += 1
    except (OSError, asyncio.IncompleteReadError) as error:
        tally.errors.append(f"{type(error).__name__}: {error}")
    finally:
        connection.close()


async def slow_client(number, port, end, opened):
    """A connection that never finishes its request (a header, or a body, by the parity
    of `number`), one more byte every DRIP seconds or so until `end`, opened again
    whenever the server closes it; counts its connections in opened[0]."""
    rng = random.Random(-1 - number)
    await asyncio.sleep(rng.uniform(0.0, RAMP_UP))
    while time.perf_counter() < end:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            opened[0] += 1
            writer.write(SLOW_STARTS[number % 2])
            while time.perf_counter() < end:
                try:                    # the server closing (or answering) ends the wait
                    await asyncio.wait_for(reader.read(1), DRIP * rng.uniform(0.5, 1.5))
                    break
                except asyncio.TimeoutError:
                    writer.write(b"a")
                    await writer.drain()
        except OSError:
            await asyncio.sleep(0.1)
        finally:
            if writer is not None:
                writer.close()


async def _until_done(connection, path, admin, end):
    """Poll the status at `path` (a job or a calibration run) until it is done or
    failed, or `end`; returns the last status and the body that said it."""
    while True:
        status, body = await connection.call("GET", path, admin)
        if status != 200 or body["status"] in ("done", "failed") \
                or time.perf_counter() >= end:
            return (body["status"] if status == 200 else f"HTTP {status}"), body
        await asyncio.sleep(0.5)


async def long_work(slot, port, admin, end, done):
    """Keep one piece of long admin work in the server's queue until `end`: a
    calibration report for slots below REPORTS, else a calibration from the stored log,
    asked again as soon as it ends. Counts what ended in done[kind] and what had not
    when the run ended in done["unfinished"]; lists errors in done["errors"]."""
    connection = Connection(port)
    kind = "reports" if slot < REPORTS else "calibrations"
    try:
        while time.perf_counter() < end:
            if kind == "reports":
                status, body = await connection.call(
                    "GET", f"/v1/calibrations/{1 + slot % 3}/report", admin)
                if status == 202:
                    status, body = await _until_done(connection, f"/v1/jobs/{body['id']}",
                                                     admin, end)
            else:
                status, body = await connection.call(
                    "POST", "/v1/calibrations", admin,
                    {"standard": CALIBRATED[slot % 2], "source": "log"})
                if status == 202:
                    status, body = await _until_done(
                        connection, f"/v1/calibrations/{body['id']}", admin, end)
            if status in (200, "done"):
                done[kind] = done.get(kind, 0) + 1
            elif status in ("queued", "running"):          # the run ended first
                done["unfinished"] = done.get("unfinished", 0) + 1
            else:                                          # 429 busy included
                reason = body.get("error") if isinstance(body, dict) else body
                done.setdefault("errors", []).append(f"{kind}: {status} {str(reason)[:200]}")
                await asyncio.sleep(1.0)
    except (OSError, asyncio.IncompleteReadError) as error:
        done.setdefault("errors", []).append(f"{kind}: {type(error).__name__}: {error}")
    finally:
        connection.close()


def run_learners(port, key, rate=None, probe=dict, slow=0, admin=None):
    """LEARNERS learners for WARM_UP + MEASURE seconds, closed loop or thinking for
    LEARNERS / `rate` seconds on average before each answer, while `slow` slow
    connections hang on and, with an `admin` key, REPORTS + CALIBRATIONS pieces of long
    work stay queued; the figures of the measured window."""
    opened, done = [0], {}

    async def everyone():
        return await asyncio.gather(*[learner(number, port, key, rate, tally)
                                      for number in range(LEARNERS)],
                                    *[slow_client(number, port, tally.end, opened)
                                      for number in range(slow)],
                                    *[long_work(slot, port, admin, tally.end, done)
                                      for slot in range(REPORTS + CALIBRATIONS if admin
                                                        else 0)])

    now = time.perf_counter()
    tally = Tally(now + WARM_UP, now + WARM_UP + MEASURE)
    cpu_before, server_before = None, None

    async def sample_at_window_start():
        nonlocal cpu_before, server_before
        await asyncio.sleep(max(tally.begin - time.perf_counter(), 0.0))
        cpu_before, server_before = time.process_time(), probe()

    async def main():
        await asyncio.gather(everyone(), sample_at_window_start())

    asyncio.run(main())
    client_cpu = time.process_time() - cpu_before
    after = probe()
    workers_cpu = sorted((after[pid] - server_before.get(pid, 0.0) for pid in after),
                         reverse=True)
    latencies = np.array(tally.latencies)

    def percentile(q):
        return float(np.percentile(latencies, q)) if latencies.size else float("nan")

    return {"answers": int(latencies.size), "wall": MEASURE, "rate": latencies.size / MEASURE,
            "p50": percentile(50), "p99": percentile(99), "max": percentile(100),
            "start_p50": float(np.median(tally.starts)) if tally.starts else float("nan"),
            "finished": tally.sessions_finished, "errors": tally.errors,
            "client_cpu": client_cpu / MEASURE, "workers_cpu": workers_cpu,
            "slow_opened": opened[0], "long_work_done": done}


def _row(name, workers, threads, load, figures, thinking):
    met = figures["p99"] <= TARGET_P99 and figures["rate"] >= TARGET_RATE \
        and not figures["errors"]
    return [name, f"{workers} x {threads}", load, f"{figures['rate']:.0f}",
            f"{figures['p50'] * 1000:.0f} ms", f"{figures['p99'] * 1000:.0f} ms",
            f"{figures['max'] * 1000:.0f} ms", f"{figures['start_p50'] * 1000:.0f} ms",
            str(figures["finished"]), str(len(figures["errors"])),
            _split(figures["workers_cpu"], figures["wall"]),
            _per_answer(figures["workers_cpu"], figures["answers"]),
            f"{figures['client_cpu']:.0%}", ("yes" if met else "no") if thinking else ""]


def _long_work_label(done, cpu_before, cpu_after):
    """" (12 reports, 4 calibrations done, 6 unfinished at the end, 0 errors; 1 job worker
    93% CPU)": what ended during the whole run, and the job workers' CPU share over it
    (warm-up included)."""
    seconds = sum(cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after)
    return (f" ({done.get('reports', 0)} reports, {done.get('calibrations', 0)} "
            f"calibrations done, {done.get('unfinished', 0)} unfinished at the end, "
            f"{len(done.get('errors', []))} errors; {JOB_WORKERS} job "
            f"worker{'s' if JOB_WORKERS != 1 else ''} {100 * seconds / (WARM_UP + MEASURE):.0f}% "
            "CPU)")


def _split(seconds, wall):
    """Each worker's CPU over the measured window, busiest first: "95+3+1%"."""
    if not seconds or wall <= 0:
        return "?"
    return "+".join(f"{100 * s / wall:.0f}" for s in seconds) + "%"


def _per_answer(seconds, answers):
    """All workers' CPU in the measured window per answer (session starts and result
    reads included)."""
    return f"{1000 * sum(seconds) / answers:.1f} ms" if seconds and answers else "?"


def _measure(name, url, folder):
    """For every setting: a closed-loop run, a run with think time, and one with think
    time while SLOW slow connections hang on."""
    key, admin = demo_keys(url, folder)
    rows, notes = [], []
    for workers, threads in _settings():
        think = f"think time {LEARNERS / OFFERED:.2f} s"
        loads = [("closed", None, 0, False), (think, OFFERED, 0, False)]
        if SLOW:
            loads.append((f"{think} + {SLOW} slow", OFFERED, SLOW, False))
        if LONG_WORK:
            loads.append((f"{think} + {REPORTS} reports, {CALIBRATIONS} calibrations",
                          OFFERED, 0, True))
        for load, rate, slow, with_long_work in loads:
            server = Server(url, folder, workers, threads, job_workers=JOB_WORKERS)
            try:
                with server:
                    jobs_before = server.worker_cpu(jobs=True)
                    figures = run_learners(server.port, key, rate, probe=server.worker_cpu,
                                           slow=slow, admin=admin if with_long_work else None)
                    if slow:
                        load += f" ({figures['slow_opened']} opened)"
                    if with_long_work:
                        load += _long_work_label(figures["long_work_done"], jobs_before,
                                                 server.worker_cpu(jobs=True))
                        if figures["long_work_done"].get("errors"):
                            notes.append(f"{name} {workers}x{threads} {load}: "
                                         f"{figures['long_work_done']['errors'][:3]}")
                    if figures["errors"]:
                        notes.append(f"{name} {workers}x{threads} {load}: "
                                     f"{figures['errors'][:3]}\n{server.log()[-800:]}")
            except RuntimeError as error:              # the server did not start, or died
                notes.append(f"{name} {workers}x{threads} {load}: {error}\n"
                             f"{server.log()[-800:]}")
                rows.append([name, f"{workers} x {threads}", load, f"failed: {error}",
                             *[""] * 9, "no"])
                continue
            rows.append(_row(name, workers, threads, load, figures, rate is not None))
    return rows, notes


HEADER = ["back end", "workers x threads", "load", "answers/s (target >= 300)",
          "p50 answer", "p99 answer (target <= 100 ms)", "max answer", "p50 session start",
          "sessions finished", "errors", "server CPU by worker (% of window)",
          "server CPU per answer", "load generator CPU", "targets met"]


def backends():
    """``(name, url, folder)`` of each back end to measure, each alive until the next is
    asked for: SQLite (a file in a temporary folder) and, when IRTCAT_TEST_POSTGRESQL_URL
    names a server, PostgreSQL (in a schema of its own, `postgresql_schema`)."""
    given = [("SQLite", None)]
    if os.environ.get("IRTCAT_TEST_POSTGRESQL_URL"):
        given.append(("PostgreSQL", os.environ["IRTCAT_TEST_POSTGRESQL_URL"]))
    for name, url in given:
        with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
            if url is None:
                url = f"sqlite:///{os.path.join(folder, 'irtcat.db')}"
            else:
                url = stack.enter_context(postgresql_schema(url))
            yield name, url, folder


def run():
    for name, url, folder in backends():
        rows, notes = _measure(name, url, folder)
        for note in notes:
            print(note, file=sys.stderr)
        yield (f"Load on {name}: {LEARNERS} learners in a test at every moment "
               f"({TEST_ID}, 12-30 answers each), HTTP on loopback, `irtcat serve`; "
               f"{MEASURE:.0f} s measured after {WARM_UP:.0f} s",
               HEADER, rows)
