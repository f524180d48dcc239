"""Connecting to the store: one URL, SQLite by default, PostgreSQL the same way.

The URL comes from ``IRTCAT_DATABASE_URL``; without it the store is the SQLite
file ``irtcat.db`` in the working directory. SQLite runs in WAL mode (readers
never block the writer) with foreign keys on and a busy timeout; a transaction
that will write starts with ``BEGIN IMMEDIATE`` so that two writers queue on
the lock instead of failing midway. PostgreSQL needs nothing special.

Writers of one SQLite file also queue on an exclusive `flock` of the file
``<database>-lock`` beside it (and on a thread lock within a process): a
waiting writer wakes the moment the last one commits, where SQLite's own busy
handler would poll with sleeps of up to 100 ms. SQLite's busy timeout stays as
the guard against writers that do not take the lock.

The schema is brought up to date by Alembic (`upgrade`), never by
``create_all``, so a database made by an older release migrates in place.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import threading
from contextlib import contextmanager, nullcontext

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///irtcat.db"
MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_MS = 30_000


class DatabaseError(RuntimeError):
    """The store cannot be reached or is not at the expected schema; one-line message."""


def database_url(url=None):
    """`url`, else ``IRTCAT_DATABASE_URL``, else the default SQLite file."""
    return url or os.environ.get("IRTCAT_DATABASE_URL") or DEFAULT_URL


def _configure_sqlite(engine):
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None       # transactions are begun below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")    # a commit survives a crash
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class _WriterLock:
    """Exclusive access for the writers of one SQLite file: threads of a process queue on
    a lock, processes on an `flock` of `path` (opened once per process, after a fork
    too). Never the database file itself: closing any descriptor of it would drop
    SQLite's own POSIX locks."""

    def __init__(self, path):
        self.path = path
        self._threads = threading.Lock()
        self._holder = threading.local()
        self._descriptor, self._pid = None, None

    @contextmanager
    def held(self):
        if getattr(self._holder, "inside", False):   # would wait on itself for ever
            raise RuntimeError("a write transaction opened inside another on one thread")
        with self._threads:
            if self._pid != os.getpid():
                self._descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                self._pid = os.getpid()
            fcntl.flock(self._descriptor, fcntl.LOCK_EX)
            self._holder.inside = True
            try:
                yield
            finally:
                self._holder.inside = False
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)


class Database:
    """An engine and two session factories: `reading()` and `writing()`.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL, e.g. ``sqlite:///path/irtcat.db`` or
        ``postgresql+psycopg://user:password@host/name``.
    """

    def __init__(self, url=None):
        self.url = database_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise DatabaseError(f"IRTCAT_DATABASE_URL is not a database URL: {self.url!r}") \
                from None
        self.dialect = parsed.get_backend_name()
        self._writer_lock = None
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                file = pathlib.Path(parsed.database).resolve()
                if not file.parent.is_dir():
                    raise DatabaseError(f"no folder {file.parent} for the SQLite database")
                self._writer_lock = _WriterLock(f"{file}-lock")
            self.engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_MS / 1000})
            _configure_sqlite(self.engine)
            writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            try:
                self.engine = create_engine(parsed, pool_pre_ping=True)
            except Exception as error:        # noqa: BLE001 - a missing driver, a bad option
                raise DatabaseError(f"cannot use {parsed.render_as_string()}: {error}") from None
            writer = self.engine
        self._writer = writer
        # One snapshot for all statements of a read (SQLite's WAL reads already are).
        self._snapshot_reader = self.engine if self.dialect == "sqlite" else \
            self.engine.execution_options(isolation_level="REPEATABLE READ")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def reading(self) -> Session:
        with self._read() as session, session.begin():
            yield session

    def _exclusive(self):
        return self._writer_lock.held() if self._writer_lock is not None else nullcontext()

    @contextmanager
    def writing(self) -> Session:
        """A session whose transaction commits on success and rolls back on any error."""
        with self._exclusive(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def read_connection(self):
        """A Core connection in a read transaction: for the hot paths, without the ORM."""
        with self._snapshot_reader.begin() as connection:
            yield connection

    @contextmanager
    def write_connection(self):
        """A Core connection in a write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self._exclusive(), self._writer.begin() as connection:
            yield connection

    def dispose(self):
        self.engine.dispose()


def _alembic_config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(database, revision="head"):
    """Migrate the schema of `database` to `revision` (every migration in one transaction
    on SQLite and PostgreSQL, which both have transactional DDL)."""
    from alembic import command

    with database.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            command.upgrade(_alembic_config(connection), revision)


def current_revision(database):
    """The schema revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision():
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)
    return ScriptDirectory.from_config(config).get_current_head()


def table_names(database):
    return set(inspect(database.engine).get_table_names())
