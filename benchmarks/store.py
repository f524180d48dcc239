"""Store figures: importing a 10,000-item bank and loading it for delivery.

On SQLite (a file in a temporary folder) always, and on PostgreSQL when
``IRTCAT_TEST_POSTGRESQL_URL`` names a server (`.ci/postgresql.sh` starts one).
Targets (issue 5): import under 5 s, load under 50 ms warm.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import sqlalchemy

from irtcat.itembank.database import Database, upgrade
from irtcat.itembank.store import Store

N_ITEMS = 10_000


def _bank_document(rng):
    a = rng.lognormal(0.0, 0.3, N_ITEMS)
    b = rng.normal(0.0, 1.0, N_ITEMS)
    c = rng.uniform(0.1, 0.25, N_ITEMS)
    items = []
    for j in range(N_ITEMS):
        item = {"id": f"I{j:05d}", "standard": "BENCH", "model": "3pl",
                "a": round(float(a[j]), 4), "b": round(float(b[j]), 4),
                "c": round(float(c[j]), 4), "status": "operational",
                "content": {"stem": f"Question {j}: which option is right?",
                            "options": [{"id": x, "text": f"Option {x} of {j}"}
                                        for x in "ABCD"]},
                "key": {"correct": "ABCD"[j % 4]}, "tags": ["bench"]}
        items.append(item)
    return {"format": "irtcat-bank/1", "metric": "logistic", "items": items}


def _fresh(url):
    if url.startswith("postgresql"):
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
    database = Database(url)
    upgrade(database)
    store = Store(database)
    store.import_framework({"format": "irtcat-framework/1",
                            "standards": [{"code": "BENCH", "title": "Benchmark"}]})
    return store


def _measure(url, document):
    store = _fresh(url)
    started = time.perf_counter()
    summary = store.import_items(document)
    import_seconds = time.perf_counter() - started
    assert summary["created"] == N_ITEMS and summary["versions"]
    version_id = store.current_version_id("BENCH")
    loads = []
    for _ in range(5):            # a new Store each time: nothing cached, the database warm
        fresh = Store(store.database)
        started = time.perf_counter()
        loaded = fresh.delivery_bank(version_id=version_id)
        loads.append(time.perf_counter() - started)
    assert loaded.bank.params.n_items == N_ITEMS
    started = time.perf_counter()
    for _ in range(1000):
        store.delivery_bank("BENCH")                   # asks which version is current
    current = (time.perf_counter() - started) / 1000
    started = time.perf_counter()
    for _ in range(1000):
        store.delivery_bank(version_id=version_id)     # a session's pinned version
    pinned = (time.perf_counter() - started) / 1000
    started = time.perf_counter()
    again = store.import_items(document)
    reimport_seconds = time.perf_counter() - started
    assert again["unchanged"] == N_ITEMS and not again["versions"]
    store.database.dispose()
    return import_seconds, reimport_seconds, float(np.median(loads)), current, pinned


def run():
    document = _bank_document(np.random.default_rng(5))
    backends = []
    with tempfile.TemporaryDirectory() as folder:
        backends.append(("SQLite", f"sqlite:///{os.path.join(folder, 'bench.db')}"))
        if os.environ.get("IRTCAT_TEST_POSTGRESQL_URL"):
            backends.append(("PostgreSQL", os.environ["IRTCAT_TEST_POSTGRESQL_URL"]))
        rows = []
        for name, url in backends:
            first, again, load, current, pinned = _measure(url, document)
            rows.append([name, f"{first:.2f} s", f"{again:.2f} s", f"{load * 1000:.1f} ms",
                         f"{current * 1e6:.0f} µs", f"{pinned * 1e6:.1f} µs"])
    yield ("Store: a 10,000-item 3PL bank with content and keys",
           ["back end", "import (target < 5 s)", "same import again (no change)",
            "load for delivery, warm (target < 50 ms)",
            "cached, current version looked up", "cached, pinned version"], rows)
