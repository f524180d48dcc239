"""Rate-limit counters in SQL: a storage for the `limits` library shared by every worker.

`SQLCounters` keeps one row per counter (key, count, end of its window) and
serves `limits`' fixed-window strategy (`FixedWindowRateLimiter`). A hit is one
atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: it starts the
window, adds to it, or starts a new one when the old has ended, all inside the
statement, so concurrent hits from any number of processes never lose a count.

Counters are disposable (a crash may lose them; limits then start afresh), so
they are kept cheaply:

- on SQLite, in a file of their own beside the database (``<database>-counters``,
  mode 0600) in WAL mode with ``synchronous=OFF``, so a hit never waits for the
  disk nor for the store's writers. Processes take turns on SQLite's own lock
  (a hit holds it for some tens of microseconds); one that finds it taken tries
  again after 20 us, then after twice as long each time up to 1 ms, where
  SQLite's busy handler would sleep 1 ms at once (on 2 cores, three processes
  hitting flat out: p99 of a hit 3 to 4 ms instead of 6 to 8 ms);
- on PostgreSQL, in the UNLOGGED table ``irtcat_rate_counters`` of the same
  database (no write-ahead log; emptied by a crash), shared by every host.

Either table is made with ``CREATE ... IF NOT EXISTS`` at first use: it is a
cache outside the migrated schema. Every `PURGE_EVERY`-th hit of a process
deletes the rows whose window ended more than `PURGE_AFTER` seconds ago.
Windows are timed by the clock of the process that hits (hosts sharing a
PostgreSQL database are assumed to keep their clocks in step).

An SQLite database in memory has no file to share; `counter_storage` then
returns `limits`' own memory storage, as it would for one process.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import threading
import time

from limits.storage import MemoryStorage, Storage
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Result, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

TABLE = "irtcat_rate_counters"
PURGE_EVERY = 1000
PURGE_AFTER = 3600.0
SQLITE_BUSY_MS = 5_000                      # how long a hit waits for a locked file
RETRY_FIRST, RETRY_LONGEST = 20e-6, 1e-3    # its sleeps between tries, in seconds
SQLITE_MINIMUM = (3, 35, 0)                 # UPSERT with RETURNING
_PREFIX = "irtcat+"

_CREATE = {
    "sqlite": f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, "
              "count INTEGER NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID",
    "postgresql": f"CREATE UNLOGGED TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, "
                  "count BIGINT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
}
_POSTGRESQL_CREATE_LOCK = 0x69727463            # an advisory lock: one creator at a time
_HIT = text(f"""
    INSERT INTO {TABLE} AS counter (key, count, expires_at)
    VALUES (:key, :amount, :expires_at)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN counter.expires_at <= :now THEN excluded.count
                     ELSE counter.count + excluded.count END,
        expires_at = CASE WHEN counter.expires_at <= :now THEN excluded.expires_at
                          ELSE counter.expires_at END
    RETURNING count""")
_GET = text(f"SELECT count, expires_at FROM {TABLE} WHERE key = :key AND expires_at > :now")
_CLEAR = text(f"DELETE FROM {TABLE} WHERE key = :key")
_RESET = text(f"DELETE FROM {TABLE}")
_CHECK = text(f"SELECT 1 FROM {TABLE} LIMIT 1")
_PURGE = text(f"DELETE FROM {TABLE} WHERE expires_at < :before")


def counters_path(database_file):
    """The counters' SQLite file for the database file `database_file`: ``<file>-counters``."""
    return pathlib.Path(f"{pathlib.Path(database_file).resolve()}-counters")


def _sqlite_engine(database_file):
    if sqlite3.sqlite_version_info < SQLITE_MINIMUM:
        raise RuntimeError(f"rate-limit counters need SQLite >= 3.35 (UPSERT ... RETURNING); "
                           f"this Python has SQLite {sqlite3.sqlite_version}")
    path = counters_path(database_file)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))   # SQLite gives -wal/-shm its mode
    engine = create_engine(f"sqlite:///{path}", isolation_level="AUTOCOMMIT",
                           connect_args={"timeout": SQLITE_BUSY_MS / 1000,
                                         "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")      # counters may be lost in a crash
        cursor.execute("PRAGMA busy_timeout=0")     # statements retry (SQLCounters._run)
        cursor.close()

    return engine


class SQLCounters(Storage):
    """Fixed-window counters in an SQL table, for `limits.FixedWindowRateLimiter`.

    Parameters
    ----------
    uri : str, optional
        ``irtcat+<SQLAlchemy URL>``, e.g. ``irtcat+sqlite:///srv/irtcat.db`` (counters in
        ``/srv/irtcat.db-counters``) or ``irtcat+postgresql+psycopg://user@host/name``;
        how `limits.storage.storage_from_string` makes one.
    database : itembank.database.Database, optional
        The store whose database (PostgreSQL) or folder (SQLite) keeps the counters;
        used instead of `uri`.
    """

    STORAGE_SCHEME = ["irtcat+sqlite", "irtcat+postgresql", "irtcat+postgresql+psycopg"]

    def __init__(self, uri=None, wrap_exceptions=False, *, database=None, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        if database is not None:
            url = database.engine.url
        elif uri and uri.startswith(_PREFIX):
            url = make_url(uri[len(_PREFIX):])
        else:
            raise ValueError(f"SQLCounters needs a database or an {_PREFIX}<URL>, not {uri!r}")
        self.dialect = url.get_backend_name()
        if self.dialect == "sqlite":
            if not url.database or url.database == ":memory:":
                raise ValueError("an SQLite database in memory has no file to keep counters "
                                 "beside; use memory:// (counter_storage does)")
            engine = _sqlite_engine(url.database)
        elif self.dialect == "postgresql":
            engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True,
                                   pool_size=2)
        else:
            raise ValueError(f"no rate-limit counters on {self.dialect}")
        self._engine = engine      # each statement its own transaction
        self._created = False
        self._lock = threading.Lock()
        self._hits = 0
        self._pid = os.getpid()

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def _ready(self):
        """Make the table on first use; a forked child opens connections of its own."""
        if self._pid != os.getpid():
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        if not self._created:
            with self._lock:
                if not self._created:
                    self._retrying(self._create_table)
                    self._created = True

    def _create_table(self):
        with self._engine.connect() as connection:
            if self.dialect == "postgresql":   # concurrent CREATE IF NOT EXISTS can collide
                connection = connection.execution_options(isolation_level="READ COMMITTED")
            with connection.begin():
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                       {"key": _POSTGRESQL_CREATE_LOCK})
                connection.exec_driver_sql(_CREATE[self.dialect])

    def _retrying(self, work):
        """`work()`; on SQLite, tried again while it finds the file locked: after 20 us,
        then twice as long each time up to 1 ms (SQLite's busy handler would sleep 1 ms
        at once, then 2, 5, 10 ms ...), failing after `SQLITE_BUSY_MS`."""
        delay, deadline = RETRY_FIRST, None
        while True:
            try:
                return work()
            except OperationalError as error:
                if self.dialect != "sqlite" or not _busy(error):
                    raise
                deadline = deadline or time.monotonic() + SQLITE_BUSY_MS / 1000
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, RETRY_LONGEST)

    def _run(self, statement, parameters, read):
        """`read` of the result of one statement, its own transaction."""
        self._ready()

        def work():
            with self._engine.connect() as connection:
                return read(connection.execute(statement, parameters))

        return self._retrying(work)

    def incr(self, key, expiry, amount=1):
        """Add `amount` to the counter `key`, starting a window of `expiry` seconds when
        it has none or its window has ended.

        Returns
        -------
        count : int
            The counter in its current window, this hit included.
        """
        now = time.time()
        count = self._run(_HIT, {"key": key, "amount": amount, "now": now,
                                 "expires_at": now + expiry}, Result.scalar_one)
        self._hits += 1                        # a race here only shifts the next purge
        if self._hits % PURGE_EVERY == 0:
            self.purge(now - PURGE_AFTER)
        return count

    def _current(self, key):
        return self._run(_GET, {"key": key, "now": time.time()}, Result.first)

    def get(self, key):
        """The counter `key` in its current window: 0 when it has none."""
        row = self._current(key)
        return row.count if row is not None else 0

    def get_expiry(self, key):
        """When the window of `key` ends, in seconds since the epoch (now if it has none)."""
        row = self._current(key)
        return row.expires_at if row is not None else time.time()

    def check(self):
        """True when the table can be read."""
        try:
            self._run(_CHECK, {}, Result.all)
        except SQLAlchemyError:
            return False
        return True

    def reset(self):
        """Delete every counter; returns how many there were."""
        return self._run(_RESET, {}, _rowcount)

    def clear(self, key):
        """Delete the counter `key`."""
        self._run(_CLEAR, {"key": key}, _rowcount)

    def purge(self, before=None):
        """Delete the counters whose window ended before `before` (default: `PURGE_AFTER`
        seconds ago); returns how many."""
        before = time.time() - PURGE_AFTER if before is None else before
        return self._run(_PURGE, {"before": before}, _rowcount)

    def dispose(self):
        """Close the counters' connections."""
        self._engine.dispose()


def _rowcount(result):
    return result.rowcount


def _busy(error):
    """Whether an SQLite error says the file is locked by another connection."""
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def counter_storage(database, **options):
    """The counters for `database` (an `itembank.database.Database`); `options` go to the
    storage (``wrap_exceptions=True``: its errors raise `limits.errors.StorageError`).

    Returns
    -------
    storage : SQLCounters or limits.storage.MemoryStorage
        SQL counters; `limits`' memory storage for an SQLite database in memory.
    """
    url = database.engine.url
    if url.get_backend_name() == "sqlite" and (not url.database or url.database == ":memory:"):
        return MemoryStorage(**options)
    return SQLCounters(database=database, **options)


def include_name(name, type_, parent_names):
    """Alembic's ``include_name`` hook: False for the counters table, a cache made at
    first use that the migrations do not know (for ``compare_metadata`` and
    autogenerate on PostgreSQL, where it shares the store's database)."""
    return not (type_ == "table" and name == TABLE)
