"""Every answer acknowledged with a 2xx survives a SIGKILL of the whole server (API.md,
'Rules a client can rely on').

A real `irtcat serve` (two gunicorn workers) on a database prepared by
`irtcat demo --no-serve` takes ~20 concurrent sessions part-way through the
credential test; while they are still answering, the arbiter and its workers are
killed at once with SIGKILL. A new `irtcat serve` on the same database must then
hold every answer that got a 2xx, in order, once; a request cut off by the kill may
or may not have been applied, and repeating it must be accepted (answering is
idempotent); then every session goes on from where it was.
"""

import http.client
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SESSIONS = 20
MAX_ANSWERS = 8              # per session, below the credential test's 12-item minimum
KILL_AFTER = 60              # accepted answers in all before the kill
TIMEOUT = 30


def irtcat(*args):
    return [sys.executable, "-m", "irtcat.api.cli", *args]


def environment(url):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "IRTCAT_DATABASE_URL": url, "PYTHONPATH": path}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(port, method, path, key, body=None):
    """(status, JSON body) of one request on a new connection; raises OSError and
    http.client errors when the server is gone."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        headers = {"Authorization": f"Bearer {key}"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body), "application/json"
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


class Server:
    """`irtcat serve` in a process group of its own, so one killpg reaches every worker."""

    def __init__(self, url, folder):
        self.port = free_port()
        self.log = open(folder / f"serve-{self.port}.log", "wb")       # closed in stop
        self.process = subprocess.Popen(
            irtcat("serve", "--port", str(self.port), "--workers", "2", "--threads", "4"),
            cwd=folder, env=environment(url), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_healthy(self):
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert self.process.poll() is None, self.output()
            try:
                if call(self.port, "GET", "/v1/health", "")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "irtcat serve did not come up\n" + self.output()
            time.sleep(0.1)

    def output(self):
        self.log.flush()
        return pathlib.Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=TIMEOUT)
        try:                                    # a worker outliving its arbiter, if any
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


class Learner(threading.Thread):
    """Answers one session (a random option each time) until it has MAX_ANSWERS accepted,
    or the server goes away; keeps what got a 2xx and the one request cut off, if any."""

    def __init__(self, port, session, number, total):
        super().__init__(daemon=True)
        self.port, self.session, self.total = port, session, total
        self.rng = random.Random(number)
        self.item = session["item"]
        self.accepted, self.cut_off, self.failure = [], None, None

    def run(self):
        path = f"/v1/sessions/{self.session['session_id']}/responses"
        while len(self.accepted) < MAX_ANSWERS:
            answer = {"item_id": self.item["item_id"],
                      "response": self.rng.choice(self.item["options"])["id"]}
            try:
                status, body = call(self.port, "POST", path, self.session["token"], answer)
            except (OSError, http.client.HTTPException):
                self.cut_off = answer                # sent, or not: unknown to the client
                return
            if status != 200:
                self.failure = (status, body)
                return
            self.accepted.append(answer)
            self.item = body["item"]
            with self.total["lock"]:
                self.total["count"] += 1


def pairs(result):
    return [{"item_id": r["item_id"], "response": r["response"]} for r in result["responses"]]


@pytest.mark.runs_long
def test_answers_acknowledged_survive_a_sigkill(database_url, tmp_path):
    started = time.monotonic()
    prepared = subprocess.run(irtcat("demo", "--no-serve"), cwd=tmp_path,
                              env=environment(database_url), capture_output=True, text=True,
                              timeout=240)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    key = next(line.split(":", 1)[1].strip() for line in prepared.stdout.splitlines()
               if "delivery key (for an LMS):" in line)
    servers = []
    try:
        first = Server(database_url, tmp_path)
        servers.append(first)
        first.wait_healthy()
        sessions = []
        for number in range(SESSIONS):
            status, body = call(first.port, "POST", "/v1/sessions", key,
                                {"test_id": "ai-practitioner", "learner_id": f"d-{number}"})
            assert status == 201, body
            sessions.append(body)
        total = {"count": 0, "lock": threading.Lock()}
        learners = [Learner(first.port, session, n, total) for n, session in enumerate(sessions)]
        for learner in learners:
            learner.start()
        deadline = time.monotonic() + TIMEOUT
        while total["count"] < KILL_AFTER and any(learner.is_alive() for learner in learners):
            assert time.monotonic() < deadline, "the sessions did not get going"
            time.sleep(0.01)
        first.stop(signal.SIGKILL)                    # arbiter and workers, mid-request
        for learner in learners:
            learner.join(timeout=TIMEOUT)
            assert not learner.is_alive()
            assert learner.failure is None, learner.failure
        assert sum(len(learner.accepted) for learner in learners) >= KILL_AFTER

        second = Server(database_url, tmp_path)
        servers.append(second)
        second.wait_healthy()
        cut_off = applied = 0
        for learner in learners:
            session_id, token = learner.session["session_id"], learner.session["token"]
            status, result = call(second.port, "GET", f"/v1/sessions/{session_id}/result", key)
            assert status == 200, result
            stored = pairs(result)
            # every acknowledged answer is there, in order, once; past them at most the
            # request the kill cut off, and only that one
            assert stored[:len(learner.accepted)] == learner.accepted, session_id
            extra = stored[len(learner.accepted):]
            assert extra in ([], [learner.cut_off]), (session_id, extra)
            status, state = call(second.port, "GET", f"/v1/sessions/{session_id}", token)
            assert status == 200, state
            assert state["status"] == "active"
            assert state["position"] == len(stored) + 1
            assert state["item"]["position"] == state["position"]
            if learner.cut_off is not None:            # the client repeats it: accepted once
                cut_off += 1
                applied += bool(extra)
                status, state = call(second.port, "POST", f"/v1/sessions/{session_id}/responses",
                                     token, learner.cut_off)
                assert status == 200, state
                learner.accepted.append(learner.cut_off)
                assert state["position"] == len(learner.accepted) + 1
            item = state["item"]                       # the test goes on
            answer = {"item_id": item["item_id"], "response": item["options"][0]["id"]}
            status, state = call(second.port, "POST", f"/v1/sessions/{session_id}/responses",
                                 token, answer)
            assert status == 200, state
            learner.accepted.append(answer)
            assert state["position"] == len(learner.accepted) + 1
            status, result = call(second.port, "GET", f"/v1/sessions/{session_id}/result", key)
            assert status == 200 and pairs(result) == learner.accepted, session_id
            assert len({r["item_id"] for r in result["responses"]}) == len(learner.accepted)
        print(f"{sum(len(x.accepted) for x in learners)} answers in {SESSIONS} sessions; "
              f"{cut_off} requests cut off by the kill, {applied} of them applied; "
              f"{time.monotonic() - started:.1f} s")
    finally:
        for server in servers:
            server.stop()
