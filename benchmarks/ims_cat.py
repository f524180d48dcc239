"""The 1EdTech CAT service's submitResults on a 2,000-item 2PL bank, in process.

A SQLite file in a temporary folder holds a bank of BANK_SIZE 2PL items (a ~ lognormal(0,
0.25), b ~ N(0, 1), seeded) under one standard and a test stopping at SE 0.3 or
MAX_ITEMS items; a `cat-client` key drives SESSIONS sessions through Flask's test client
exactly as TAO's client does (createSection, createSession, then one submitResults per
item with its SCORE, drawn from the 2PL at a simulated θ ~ N(0, 1)). Figures: the time of
each submitResults request as the client sees it (p50, p95; acceptance p95 <= 50 ms) and
the same for ALTERNATED sessions whose submissions alternate between two apps on the same
database (two workers: each step served by the one that did not serve the last, which
rebuilds the session from the store).
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from irtcat.api.app import close_app, create_app
from irtcat.delivery.keys import create_key
from irtcat.itembank.database import Database, upgrade

BANK_SIZE, MAX_ITEMS, SESSIONS, ALTERNATED = 2000, 30, 40, 10
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


def _post(client, key, path, body):
    began = time.perf_counter()
    reply = client.post(PREFIX + path, data=json.dumps(body), content_type="application/json",
                        headers={"Authorization": f"Bearer {key}"})
    seconds = time.perf_counter() - began
    if reply.status_code >= 300:
        raise RuntimeError(f"{path}: {reply.status_code} {reply.json}")
    return reply.json, seconds


def _session(clients, key, section, rng, parameters):
    """One session to its end; the seconds of each submitResults."""
    """`clients`: the test clients the submissions go to in turn."""
    started, _ = _post(clients[0], key, f"/sections/{section}/sessions",
                       {"priorData": [{"key": "initialEstimatedAbility", "value": "0.0"}]})
    session, state = started["sessionIdentifier"], started["sessionState"]
    items, theta, times = started["nextItems"]["itemIdentifiers"], rng.normal(), []
    while items:
        a, b = parameters[items[0]]
        score = float(rng.random() < 1.0 / (1.0 + np.exp(-a * (theta - b))))
        client = clients[len(times) % len(clients)]
        reply, seconds = _post(client, key, f"/sections/{section}/sessions/{session}/results", {
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


def _measure(folder):
    url = f"sqlite:///{Path(folder) / 'bench.db'}"
    database = Database(url)
    upgrade(database)
    database.dispose()
    rng = np.random.default_rng(SEED)
    framework, document = bank(rng)
    parameters = {item["id"]: (item["a"], item["b"]) for item in document["items"]}
    app = create_app({"DATABASE_URL": url, "QUOTAS": "off"})
    other = create_app({"DATABASE_URL": url, "QUOTAS": "off"})
    try:
        store = app.extensions["irtcat"]["store"]
        store.import_framework(framework)
        store.import_items(document)
        admin, key = create_key(store.database, "admin"), create_key(store.database,
                                                                     "cat-client")
        client = app.test_client()
        reply = client.post("/v1/tests", json={
            "id": "bench", "title": "Benchmark", "standards": ["BENCH"],
            "config": {"stop": {"max_items": MAX_ITEMS, "se": 0.3}}},
            headers={"Authorization": f"Bearer {admin}"})
        if reply.status_code != 201:
            raise RuntimeError(f"POST /v1/tests: {reply.status_code} {reply.json}")
        section = _post(client, key, "/sections", {
            "qtiMetadata": "", "qtiUsagedata": "",
            "sectionConfiguration": base64.b64encode(b"bench").decode()})[0][
            "sectionIdentifier"]
        _session([client, other.test_client()], key, section, rng, parameters)  # warm up
        warm = [t for _ in range(SESSIONS)
                for t in _session([client], key, section, rng, parameters)]
        cold = [t for _ in range(ALTERNATED)
                for t in _session([client, other.test_client()], key, section, rng,
                                  parameters)]
    finally:
        close_app(other)
        close_app(app)
    return np.array(warm), np.array(cold)


def _row(name, seconds):
    p95 = np.percentile(seconds, 95)
    return [name, str(seconds.size), f"{np.percentile(seconds, 50) * 1000:.1f} ms",
            f"{p95 * 1000:.1f} ms", "yes" if p95 <= TARGET_P95 else "no"]


def run():
    with tempfile.TemporaryDirectory() as folder:
        warm, cold = _measure(folder)
    yield (f"1EdTech CAT submitResults, {BANK_SIZE}-item 2PL bank, in process (Flask's "
           f"test client, SQLite)", ["worker", "submissions", "p50", "p95 (<= 50 ms)",
                                     "target met"],
           [_row(f"the one that served the last step ({SESSIONS} sessions)", warm),
            _row(f"two, in turn: each step rebuilt from the store ({ALTERNATED} sessions)",
                 cold)])
