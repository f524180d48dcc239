"""The 1EdTech CAT service's submitResults on a 2,000-item 2PL bank, over HTTP against
`irtcat serve` (WORKERS workers of one thread: the benchmarks do not import the API).

A SQLite file in a temporary folder holds a bank of BANK_SIZE 2PL items (a ~ lognormal(0,
0.25), b ~ N(0, 1), seeded) under one standard and a test stopping at SE 0.3 or
MAX_ITEMS items; a `cat-client` key drives sessions one after another exactly as TAO's
client does (createSection, createSession, then one submitResults per item with its
SCORE, drawn from the 2PL at a simulated θ ~ N(0, 1)). Figures: the round trip of each
submitResults as the client sees it (p50, p95; acceptance p95 <= 50 ms), for SESSIONS
sessions each on one keep-alive connection (mostly the worker that served its last
step) and for ALTERNATED sessions opening a new connection per request (any worker:
one that did not serve the last step rebuilds the session from the store).
"""

from __future__ import annotations

import base64
import http.client
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from irtcat.delivery.keys import create_key
from irtcat.delivery.sessions import Delivery
from irtcat.itembank.database import Database, upgrade
from irtcat.itembank.store import Store

from .load import Server

BANK_SIZE, MAX_ITEMS, SESSIONS, ALTERNATED, WORKERS = 2000, 30, 40, 10, 2
SEED = 20261205
TARGET_P95 = 0.050
PREFIX = "/ims/cat/v1p0"


def bank(rng):
    """The framework and the irtcat-bank/1 document of BANK_SIZE 2PL items."""
    framework = {"format": "irtcat-framework/1", "standards": [
        {"code": "BENCH", "title": "Benchmark standard", "description": "", "parent": None,
         "levels": [{"name": "pass", "cut": 0.0}]}]}
    items = [{"id": f"B-{i:04d}", "standard": "BENCH", "model": "2pl", "status": "operational",
              "a": round(float(rng.lognormal(0.0, 0.25)), 3),
              "b": round(float(rng.normal(0.0, 1.0)), 3),
              "content": {"stem": f"Item {i}", "options": [{"id": o, "text": o}
                                                          for o in "ABCD"]},
              "key": {"correct": "A"}} for i in range(BANK_SIZE)]
    return framework, {"format": "irtcat-bank/1", "items": items}


class Client:
    """HTTP calls to the server: one keep-alive connection, or (`fresh`) a new one each."""

    def __init__(self, port, key, fresh=False):
        self.port, self.key, self.fresh = port, key, fresh
        self.connection = None

    def post(self, path, body):
        """(parsed reply, seconds of the round trip)."""
        if self.connection is None or self.fresh:
            self.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        began = time.perf_counter()
        self.connection.request("POST", PREFIX + path, body=json.dumps(body), headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        seconds = time.perf_counter() - began
        if response.status >= 300:
            raise RuntimeError(f"{path}: {response.status} {data[:300]!r}")
        return json.loads(data), seconds

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _session(client, section, rng, parameters):
    """One session to its end; the seconds of each submitResults."""
    started, _ = client.post(f"/sections/{section}/sessions",
                             {"priorData": [{"key": "initialEstimatedAbility",
                                             "value": "0.0"}]})
    session, state = started["sessionIdentifier"], started["sessionState"]
    items, theta, times = started["nextItems"]["itemIdentifiers"], rng.normal(), []
    while items:
        a, b = parameters[items[0]]
        score = float(rng.random() < 1.0 / (1.0 + np.exp(-a * (theta - b))))
        reply, seconds = client.post(f"/sections/{section}/sessions/{session}/results", {
            "assessmentResult": {
                "context": {"sourcedId": None, "sessionIdentifiers": []},
                "itemResult": [{"identifier": items[0], "datestamp": "2026-12-05T04:00:00+0000",
                                "sessionStatus": "FINAL", "outcomeVariables": [
                                    {"identifier": "SCORE", "cardinality": 0,
                                     "value": [{"baseType": "FLOAT", "value": score}]}]}]},
            "sessionState": state})
        times.append(seconds)
        items, state = reply["nextItems"]["itemIdentifiers"], reply["sessionState"]
    return times


def prepare(url, rng):
    """The bank, the test ``bench`` and a cat-client key in the database at `url`; returns
    the key and {item id: (a, b)}."""
    database = Database(url)
    try:
        upgrade(database)
        store = Store(database)
        framework, document = bank(rng)
        store.import_framework(framework)
        store.import_items(document)
        Delivery(store).create_test("bench", "Benchmark", ["BENCH"],
                                    {"stop": {"max_items": MAX_ITEMS, "se": 0.3}})
        key = create_key(database, "cat-client")
    finally:
        database.dispose()
    return key, {item["id"]: (item["a"], item["b"]) for item in document["items"]}


def _measure(folder):
    url = f"sqlite:///{Path(folder) / 'bench.db'}"
    rng = np.random.default_rng(SEED)
    key, parameters = prepare(url, rng)
    with Server(url, folder, WORKERS, 1) as server:
        sticky, fresh = Client(server.port, key), Client(server.port, key, fresh=True)
        try:
            section = sticky.post("/sections", {
                "qtiMetadata": "", "qtiUsagedata": "",
                "sectionConfiguration": base64.b64encode(b"bench").decode()})[0][
                "sectionIdentifier"]
            for _ in range(2 * WORKERS):                       # every worker warmed up
                _session(fresh, section, rng, parameters)
            kept = [t for _ in range(SESSIONS) for t in _session(sticky, section, rng,
                                                                 parameters)]
            anywhere = [t for _ in range(ALTERNATED)
                        for t in _session(fresh, section, rng, parameters)]
        finally:
            sticky.close()
            fresh.close()
    return np.array(kept), np.array(anywhere)


def _row(name, seconds):
    p95 = np.percentile(seconds, 95)
    return [name, str(seconds.size), f"{np.percentile(seconds, 50) * 1000:.1f} ms",
            f"{p95 * 1000:.1f} ms", "yes" if p95 <= TARGET_P95 else "no"]


def run():
    with tempfile.TemporaryDirectory() as folder:
        kept, anywhere = _measure(folder)
    yield (f"1EdTech CAT submitResults, {BANK_SIZE}-item 2PL bank, over HTTP (irtcat "
           f"serve, {WORKERS} workers, SQLite)",
           ["connection", "submissions", "p50", "p95 (<= 50 ms)", "target met"],
           [_row(f"one keep-alive connection a session ({SESSIONS} sessions)", kept),
            _row(f"a new connection a request, any worker ({ALTERNATED} sessions)",
                 anywhere)])
