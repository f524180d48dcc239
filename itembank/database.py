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

A new SQLite file is created readable by its owner only (0600), and so are the
``-wal``, ``-shm`` and ``-lock`` files beside it (SQLite gives its own files the
database file's mode). Statement parameters (answers, digests) are kept out of
error messages and logs.

The schema is brought up to date by Alembic (`upgrade`), never by
``create_all``, so a database made by an older release migrates in place.

`backup_sqlite` and `restore_sqlite` copy a SQLite database with SQLite's online
backup API: a consistent snapshot while the server writes; PostgreSQL has
pg_dump and pg_restore.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pathlib
import sqlite3
import tempfile
import threading
from contextlib import closing, contextmanager, nullcontext

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from .errors import DatabaseError

DEFAULT_URL = "sqlite:///irtcat.db"
MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_MS = 30_000
FILE_MODE = 0o600             # the database, its -wal, -shm and -lock files, backups
POSTGRESQL_BACKUP = ("on PostgreSQL use pg_dump --format=custom to back up and pg_restore "
                     "to restore (docs/operations.md)")


def database_url(url=None):
    """`url`, else ``IRTCAT_DATABASE_URL``, else the default SQLite file."""
    return url or os.environ.get("IRTCAT_DATABASE_URL") or DEFAULT_URL


def sqlite_file(url=None):
    """The path of the SQLite file `url` (default: `database_url()`) names, or None for
    another database, an in-memory one or a URL that does not parse."""
    try:
        parsed = make_url(database_url(url))
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return pathlib.Path(parsed.database).resolve()


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


def _create_private(file):
    """Create `file` empty with mode 0600 unless it exists (an empty file is an empty
    SQLite database); an existing file keeps its mode."""
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
    except OSError as error:
        raise DatabaseError(f"cannot create the SQLite database {file}: "
                            f"{error.strerror}") from None


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
                self._descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
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
        self.file = None              # the SQLite file; None in memory and on PostgreSQL
        self._writer_lock = None
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                file = pathlib.Path(parsed.database).resolve()
                if not file.parent.is_dir():
                    raise DatabaseError(f"no folder {file.parent} for the SQLite database")
                _create_private(file)
                self.file = file
                self._writer_lock = _WriterLock(f"{file}-lock")
            self.engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_MS / 1000},
                                        hide_parameters=True)
            _configure_sqlite(self.engine)
            writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            try:
                self.engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
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

    def ping(self):
        """Ask the database a trivial question; StorageFailure if it cannot answer."""
        with self.reading() as session:
            session.execute(text("SELECT 1"))

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
        with _rebuildable_tables(connection), connection.begin():
            command.upgrade(_alembic_config(connection), revision)
            _check_foreign_keys(connection)


@contextmanager
def _rebuildable_tables(connection):
    """On SQLite, foreign keys off while migrating: a migration in batch mode rebuilds a
    table (copy, drop, rename), and dropping a table others reference would fail or cascade
    with them on (alembic's advice for SQLite). The pragma is a no-op inside a transaction,
    so it is set on the driver's connection before the migration's transaction begins;
    `_check_foreign_keys` checks every reference afterwards, inside it."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection):
    if connection.dialect.name != "sqlite":
        return                        # PostgreSQL checks every reference as it goes
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, _, parent, _ = broken[0]
        raise RuntimeError(f"the migration left {len(broken)} rows of {table} without "
                           f"their {parent} row")


def current_revision(database):
    """The schema revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@functools.cache
def _scripts():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None))


def head_revision():
    """The revision this release's migrations end at."""
    return _scripts().get_current_head()


def known_revisions():
    """Every revision of this release's migrations (a set of ids)."""
    return {script.revision for script in _scripts().walk_revisions()}


def table_names(database):
    return set(inspect(database.engine).get_table_names())


# --- backups of a SQLite database ----------------------------------------------------

def _sqlite_file(database, action):
    """The SQLite file of `database`; DatabaseError for PostgreSQL or an in-memory one."""
    if database.dialect != "sqlite":
        raise DatabaseError(f"irtcat db {action} copies SQLite databases; {POSTGRESQL_BACKUP}")
    if database.file is None:
        raise DatabaseError(f"irtcat db {action} needs a SQLite file, not an in-memory database")
    return database.file


def _check_copy(connection, what):
    """DatabaseError unless `connection` holds a sound irtcat database at a revision of
    this release's migrations; returns that revision."""
    try:
        verdict = connection.execute("PRAGMA integrity_check").fetchall()
        if verdict != [("ok",)]:
            raise DatabaseError(f"{what} fails SQLite's integrity check: {verdict[0][0]}")
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as error:      # not a database, or no alembic_version
        raise DatabaseError(f"{what} is not an irtcat database ({error})") from None
    if row is None or row[0] not in known_revisions():
        raise DatabaseError(f"{what} is at schema {row[0] if row else 'none'}, which this "
                            f"release does not know")
    return row[0]


def backup_sqlite(database, path, force=False):
    """Copy the live SQLite `database` to the file `path` (mode 0600) with SQLite's
    online backup API: one consistent snapshot, taken while writers go on (WAL readers
    do not block them). The copy is written to a temporary file beside `path`, checked,
    and renamed into place, so no half-written backup is ever at `path`; an existing
    `path` is replaced only when `force`.

    Returns
    -------
    dict
        ``path``, ``revision`` (schema of the copy) and ``bytes`` (its size).
    """
    file = _sqlite_file(database, "backup")
    if current_revision(database) is None:
        raise DatabaseError(f"{file} is empty: nothing to back up")
    target = pathlib.Path(path).resolve()
    if target.exists() and not force:
        raise DatabaseError(f"{path} exists; give --force to replace it")
    if not target.parent.is_dir():
        raise DatabaseError(f"no folder {target.parent} for the backup")
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                                                 dir=target.parent)      # mode 0600
        os.close(descriptor)
        with closing(sqlite3.connect(temporary)) as copy:
            source = database.engine.raw_connection()
            try:
                source.driver_connection.backup(copy)    # all pages in one step: one snapshot
            finally:
                source.close()
            copy.execute("PRAGMA journal_mode=DELETE")    # one self-contained file
            revision = _check_copy(copy, "the copy")
        _fsync(temporary)
        os.replace(temporary, target)
        _fsync(target.parent)
    except BaseException as error:
        if temporary is not None:
            pathlib.Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise DatabaseError(f"cannot write {path}: {error.strerror}") from None
        if isinstance(error, sqlite3.Error):
            raise DatabaseError(f"cannot back up to {path}: {error}") from None
        raise
    return {"path": str(target), "revision": revision, "bytes": target.stat().st_size}


def restore_sqlite(database, path):
    """Replace the contents of the SQLite `database` by the backup at `path`, after
    checking that it is a sound irtcat database at a revision this release knows; the
    pages are copied with the backup API, under the writer lock, in one step. Stop the
    server first: its workers would keep serving what they had cached.

    Returns
    -------
    dict
        ``revision`` (the schema now in the database; `upgrade` brings an older one to
        the head) and ``bytes`` (the size of the backup).
    """
    _sqlite_file(database, "restore")
    source_path = pathlib.Path(path).resolve()
    if not source_path.is_file():
        raise DatabaseError(f"no backup file {path}")
    try:
        backup = sqlite3.connect(f"{source_path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise DatabaseError(f"cannot open {path}: {error}") from None
    with closing(backup):
        revision = _check_copy(backup, str(path))
        with database._exclusive():
            target = database.engine.raw_connection()
            try:
                backup.backup(target.driver_connection)
            except sqlite3.Error as error:
                raise DatabaseError(f"cannot restore into {database.file}: {error}") from None
            finally:
                target.close()
    database.engine.dispose()              # no pooled connection keeps the old schema
    return {"revision": revision, "bytes": source_path.stat().st_size}


def _fsync(path):
    """Flush a file or a folder to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
