"""Live exposure control: 3,000 learners take the demo credential over HTTP against
`irtcat serve` with three workers, under item eligibility at an exposure target of 0.20.

For SQLite (a file in a temporary folder) always, and PostgreSQL when
``IRTCAT_TEST_POSTGRESQL_URL`` names a server (a schema of its own, as
`benchmarks.load`): `irtcat demo --no-serve` prepares the database, an admin defines
``ai-practitioner-live`` (the demo credential ``ai-practitioner`` with
``"exposure": {"method": "item-eligibility", "target": 0.2}``), then LEARNERS learners
(100) each take sessions one after another, a random option per item after an
exponential think time of mean LEARNERS / OFFERED seconds (about 300 answers/s in
all), until SESSIONS (3,000) sessions have started. Every worker draws each new
session's eligible items from the counts all workers keep in the store
(`irtcat.delivery.live_exposure`).

Figures: from ``GET /v1/tests/ai-practitioner-live/exposure`` the highest operational
exposure rate (acceptance: <= 0.22), the highest pretest rate (apart), overlap rate,
mean length and unused share of the operational bank; the answers per second in the
steady state and the round trip of each answer asked in it (p50, p99: acceptance <= 100
ms), errors (must be 0) and the workers' CPU per answer (all answers; session starts
included). The steady state runs from the first WARM_UP seconds to the start of the
last session: after it, the learners finish their last sessions one by one and start
none, so fewer and fewer of them answer (a wind-down of some seconds that an average
over the whole run would count as a slower server).

``IRTCAT_EXPOSURE_SESSIONS`` overrides the number of sessions.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import sys
import time

import numpy as np

from .load import Connection, Server, backends, demo_keys

SESSIONS = int(os.environ.get("IRTCAT_EXPOSURE_SESSIONS", "3000"))
LEARNERS = 100
OFFERED = 330                 # answers/s offered in all at zero latency
RAMP_UP, WARM_UP = 5.0, 10.0
WORKERS, THREADS = 3, 2
BASE_TEST, TEST_ID = "ai-practitioner", "ai-practitioner-live"
TARGET, CEILING, TARGET_P99 = 0.20, 0.22, 0.100


def _admin_call(port, admin, method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body),
                           headers={"Authorization": f"Bearer {admin}",
                                    "Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
    return json.loads(data)


def define_live_test(port, admin):
    """The demo credential under item eligibility at TARGET, as ``TEST_ID``."""
    base = _admin_call(port, admin, "GET", f"/v1/tests/{BASE_TEST}")
    config = {**base["config"], "exposure": {"method": "item-eligibility", "target": TARGET}}
    _admin_call(port, admin, "POST", "/v1/tests",
                {"id": TEST_ID, "title": "AI practitioner credential (live exposure)",
                 "standards": base["standards"], "config": config})


class Tally:
    def __init__(self):
        self.started = self.finished = self.answers = 0
        self.latencies, self.errors = [], []
        self.began = time.perf_counter()
        self.measured_from = self.began + WARM_UP
        self.measured_until = None          # the last session's start (the steady state's end)
        self.last_answer = self.began

    def steady(self, moment):
        """True for a moment in the steady state (see the module docstring)."""
        return moment >= self.measured_from and (self.measured_until is None
                                                 or moment < self.measured_until)


async def learner(number, port, key, tally):
    """Sessions one after another until SESSIONS have started."""
    rng = random.Random(number)
    connection = Connection(port)
    think = LEARNERS / OFFERED
    await asyncio.sleep(rng.uniform(0.0, RAMP_UP))
    try:
        while tally.started < SESSIONS:
            tally.started += 1
            if tally.started == SESSIONS:
                tally.measured_until = time.perf_counter()
            status, session = await connection.call(
                "POST", "/v1/sessions", key, {"test_id": TEST_ID, "learner_id": f"x-{number}"})
            if status != 201:
                tally.errors.append(f"POST /v1/sessions: {status} {session}")
                return
            path, item = f"/v1/sessions/{session['session_id']}/responses", session["item"]
            while item is not None:
                await asyncio.sleep(rng.expovariate(1.0 / think))
                began = time.perf_counter()
                status, state = await connection.call(
                    "POST", path, session["token"],
                    {"item_id": item["item_id"], "response": rng.choice(item["options"])["id"]})
                tally.last_answer = time.perf_counter()
                tally.answers += 1
                if tally.steady(began):
                    tally.latencies.append(tally.last_answer - began)
                if status != 200:
                    tally.errors.append(f"POST responses: {status} {state}")
                    return
                item = state["item"]
            tally.finished += 1
    except (OSError, asyncio.IncompleteReadError) as error:
        tally.errors.append(f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def _measure(name, url, folder):
    key, admin = demo_keys(url, folder)
    with Server(url, folder, WORKERS, THREADS) as server:
        define_live_test(server.port, admin)
        cpu_before = server.worker_cpu()
        tally = Tally()

        async def everyone():
            await asyncio.gather(*[learner(n, server.port, key, tally)
                                   for n in range(LEARNERS)])

        asyncio.run(everyone())
        cpu_after = server.worker_cpu()
        figures = _admin_call(server.port, admin, "GET", f"/v1/tests/{TEST_ID}/exposure")
        if tally.errors:
            print(f"{name}: {tally.errors[:3]}\n{server.log()[-800:]}", file=sys.stderr)
    latencies = np.array(tally.latencies)
    seconds = max((tally.measured_until or tally.last_answer) - tally.measured_from, 1e-9)
    cpu = sum(cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after)
    pretest = [row["rate"] for row in figures["items"] if row["pretest"]]
    met = figures["max_rate"] <= CEILING and not tally.errors and latencies.size \
        and np.percentile(latencies, 99) <= TARGET_P99
    return [name, f"{WORKERS} x {THREADS}", str(figures["sessions"]), str(tally.finished),
            f"{figures['max_rate']:.3f}", f"{max(pretest, default=0.0):.3f}",
            f"{figures['overlap_rate']:.3f}", f"{figures['mean_length']:.1f}",
            f"{figures['unused_share']:.3f}", f"{latencies.size / seconds:.0f}",
            f"{np.percentile(latencies, 50) * 1000:.0f} ms",
            f"{np.percentile(latencies, 99) * 1000:.0f} ms",
            f"{1000 * cpu / max(tally.answers, 1):.1f} ms", str(len(tally.errors)),
            "yes" if met else "no"]


HEADER = ["back end", "workers x threads", "sessions started", "sessions finished",
          f"highest operational exposure (target {TARGET}, <= {CEILING})",
          "highest pretest exposure", "overlap rate", "mean operational length",
          "unused operational share", "answers/s", "p50 answer", "p99 answer (<= 100 ms)",
          "server CPU per answer", "errors", "targets met"]


def run():
    rows = [_measure(name, url, folder) for name, url, folder in backends()]
    yield (f"Live exposure: {SESSIONS} sessions of the demo credential under item "
           f"eligibility (target {TARGET}), {LEARNERS} learners at a time over HTTP, "
           f"{WORKERS} workers; answers in the steady state (after the first "
           f"{WARM_UP:.0f} s, until the last session starts)", HEADER, rows)
