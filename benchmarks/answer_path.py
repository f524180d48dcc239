"""The answer path's cost in process: CPU and SQLite WAL pages per answer.

The load benchmark's in-process twin below the HTTP layer: `irtcat demo --no-serve`
prepares a SQLite store, then SESSIONS learners take the demo credential one after
another through the delivery layer (`irtcat.delivery.sessions.Delivery`, what
``POST /v1/sessions/{id}/responses`` calls: the benchmarks import no API module),
answering at random. Measured over the answers only (`Delivery.answer`):

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
    from irtcat.delivery.sessions import Delivery
    from irtcat.itembank.database import Database
    from irtcat.itembank.store import Store

    with tempfile.TemporaryDirectory(prefix="irtcat-answer-path-") as folder:
        path = os.path.join(folder, "irtcat.db")
        url = f"sqlite:///{path}"
        demo_keys(url, folder)
        with sqlite3.connect(path) as connection:
            page_size = connection.execute("PRAGMA page_size").fetchone()[0]
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        database = Database(url)

        @event.listens_for(database.engine, "connect")
        def _no_checkpoints(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        delivery, rng = Delivery(Store(database)), random.Random(seed)
        answers, cpu, written = 0, 0.0, []
        try:
            for number in range(SESSIONS):
                session = delivery.start_session(TEST_ID, f"bench-{number}")
                item = session["item"]
                while item is not None and answers < (number + 1) * MAX_ANSWERS:
                    choice = rng.choice(item["options"])["id"]
                    frames = _wal_frames(path, page_size)
                    before_cpu = time.process_time()
                    if profile is not None:
                        profile.enable()
                    state = delivery.answer(session["session_id"], item["item_id"], choice,
                                            token=True)
                    if profile is not None:
                        profile.disable()
                    cpu += time.process_time() - before_cpu
                    written += _wal_pages(path, page_size, frames)
                    answers += 1
                    item = state["item"]
        finally:
            database.dispose()
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
    return [("Answer path in process (demo credential, delivery layer, SQLite)",
             ["sessions", "answers (run 1)", "CPU ms per answer (median)", "runs",
              "WAL pages per answer (median)", "pages by b-tree (run 1)"], rows)]
