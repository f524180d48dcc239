"""The answer path's cost in process: CPU and SQLite WAL pages per answer.

The load benchmark's in-process twin: `irtcat demo --no-serve` prepares a SQLite
store, then SESSIONS learners take the demo credential one after another through
Flask's test client (no HTTP, no other process), answering at random. Measured
over the answers only (``POST /v1/sessions/{id}/responses``):

- CPU per answer: this process's CPU time (`time.process_time`) over the answers;
  the median of RUNS runs, each on a fresh store.
- WAL pages per answer: frames appended to the ``-wal`` file by the answers'
  transactions, with automatic checkpoints off so that the file only grows, and
  which b-tree (table or index) each frame's page belongs to (SQLite's ``dbstat``).
  Independent of the machine's load: the primary figure on a shared machine (the
  sessions' own seeds are random, so the items given, and the figure, vary a little
  between runs).

``IRTCAT_ANSWER_PATH_PROFILE=1`` prints a cProfile of one run (30 sessions) to
stderr. To compare two versions of the code, run this module under each one's
interpreter from this folder (``python -m benchmarks answer_path``) and interleave
the runs.
"""

from __future__ import annotations

import collections
import cProfile
import os
import pstats
import random
import sqlite3
import statistics
import struct
import sys
import tempfile
import time

from sqlalchemy import event

from .load import TEST_ID, demo_keys

SESSIONS = int(os.environ.get("IRTCAT_ANSWER_PATH_SESSIONS", "30"))
MAX_ANSWERS = 30
RUNS = int(os.environ.get("IRTCAT_ANSWER_PATH_RUNS", "3"))


WAL_HEADER, FRAME_HEADER = 32, 24


def _wal_frames(path, page_size):
    """The number of frames in the ``-wal`` file."""
    try:
        size = os.path.getsize(f"{path}-wal")
    except FileNotFoundError:
        return 0
    return max(size - WAL_HEADER, 0) // (FRAME_HEADER + page_size)


def _wal_pages(path, page_size, start=0):
    """The page numbers of the ``-wal`` file's frames from frame `start` on: a list."""
    try:
        with open(f"{path}-wal", "rb") as wal:
            wal.seek(WAL_HEADER + start * (FRAME_HEADER + page_size))
            data = wal.read()
    except FileNotFoundError:
        return []
    step = FRAME_HEADER + page_size
    return [struct.unpack_from(">I", data, offset)[0]
            for offset in range(0, len(data) - FRAME_HEADER + 1, step)]


def _btree_names(path):
    """{page number: name of the table or index whose b-tree holds it} ({} without
    SQLite's dbstat)."""
    with sqlite3.connect(path) as connection:
        try:
            return dict(connection.execute("SELECT pageno, name FROM dbstat").fetchall())
        except sqlite3.OperationalError:
            return {}


def measure(seed=2026, profile=None):
    """``(answers, cpu seconds, wal pages)`` of SESSIONS sessions on a fresh demo store;
    wal pages: a Counter {b-tree name: pages written}."""
    from irtcat.api.app import close_app, create_app

    with tempfile.TemporaryDirectory(prefix="irtcat-answer-path-") as folder:
        path = os.path.join(folder, "irtcat.db")
        url = f"sqlite:///{path}"
        key, _ = demo_keys(url, folder)
        with sqlite3.connect(path) as connection:
            page_size = connection.execute("PRAGMA page_size").fetchone()[0]
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        app = create_app({"DATABASE_URL": url})
        engine = app.extensions["irtcat"]["store"].database.engine
        engine.dispose()

        @event.listens_for(engine, "connect")
        def _no_checkpoints(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        client, rng = app.test_client(), random.Random(seed)
        answers, cpu, written = 0, 0.0, []
        try:
            for number in range(SESSIONS):
                started = client.post("/v1/sessions", headers={"Authorization": f"Bearer {key}"},
                                      json={"test_id": TEST_ID, "learner_id": f"bench-{number}"})
                assert started.status_code == 201, started.json
                session = started.json
                headers = {"Authorization": f"Bearer {session['token']}"}
                path_of = f"/v1/sessions/{session['session_id']}/responses"
                item = session["item"]
                while item is not None and answers < (number + 1) * MAX_ANSWERS:
                    body = {"item_id": item["item_id"],
                            "response": rng.choice(item["options"])["id"]}
                    frames = _wal_frames(path, page_size)
                    before_cpu = time.process_time()
                    if profile is not None:
                        profile.enable()
                    state = client.post(path_of, headers=headers, json=body)
                    if profile is not None:
                        profile.disable()
                    cpu += time.process_time() - before_cpu
                    written += _wal_pages(path, page_size, frames)
                    assert state.status_code == 200, state.json
                    answers += 1
                    item = state.json["item"]
        finally:
            close_app(app)
        names = _btree_names(path)
    return answers, cpu, collections.Counter(names.get(page, "other") for page in written)


def run():
    if os.environ.get("IRTCAT_ANSWER_PATH_PROFILE") == "1":
        profile = cProfile.Profile(time.process_time)      # CPU, not waits on the disk
        measure(profile=profile)
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    results = [measure() for _ in range(RUNS)]
    cpu = statistics.median(1000 * seconds / answers for answers, seconds, _ in results)
    pages = statistics.median(sum(by.values()) / answers for answers, _, by in results)
    answers, _, by_tree = results[0]
    where = ", ".join(f"{name} {count / answers:.2f}" for name, count in by_tree.most_common())
    rows = [[f"{SESSIONS} x up to {MAX_ANSWERS}", str(answers), f"{cpu:.2f}",
             " / ".join(f"{1000 * s / n:.2f}" for n, s, _ in results), f"{pages:.2f}", where]]
    return [("Answer path in process (demo credential, Flask test client, SQLite)",
             ["sessions", "answers (run 1)", "CPU ms per answer (median)", "runs",
              "WAL pages per answer (median)", "pages by b-tree (run 1)"], rows)]
