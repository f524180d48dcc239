"""Shared fixtures: paths to the bundled data, a seeded generator, store databases."""

import contextlib
import copy
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
import sqlalchemy

from irtcat.calibration.cluster import local_cluster

DATA = pathlib.Path(__file__).resolve().parent / "data"
DEMO = pathlib.Path(__file__).resolve().parents[1] / "api" / "demo"


def pytest_collection_modifyitems(items):
    """The tests marked `runs_long` first, the others after them, each in collection order.

    pytest-xdist hands each worker a share of the run and the idle one takes half of
    another's queue, test by test: a test of half a minute that starts last leaves a core
    idle meanwhile; started first, it runs while the other worker takes the short ones.
    Marked tests of a module that share a cached result stay next to each other, so one
    worker computes it once."""
    items.sort(key=lambda item: item.get_closest_marker("runs_long") is None)


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


@pytest.fixture
def lsat7_bank_path():
    return DEMO / "LSAT7_bank.json"


@pytest.fixture
def lsat7_data_path():
    return DEMO / "LSAT7.csv"


@pytest.fixture
def write_json(tmp_path):
    def write(document, name="bank.json"):
        path = tmp_path / name
        path.write_text(json.dumps(document))
        return path
    return write


# --- the store, on SQLite always and on PostgreSQL when a server is given -----------

POSTGRESQL_URL = os.environ.get("IRTCAT_TEST_POSTGRESQL_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRESQL_URL, reason="IRTCAT_TEST_POSTGRESQL_URL is not set"))]


# Each test process (each pytest-xdist worker) empties and uses a schema of its own in the
# one test database, named after its process id so that runs side by side (two checkouts)
# never empty each other's; it is dropped when the process's session ends.
POSTGRESQL_SCHEMA = f"test_{os.getpid()}"
_schemas_made = set()


def _empty_postgresql(url, schema=POSTGRESQL_SCHEMA):
    """Drop everything in this run's schema of the test database; returns the URL whose
    connections use that schema."""
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    _schemas_made.add(schema)
    return (sqlalchemy.engine.make_url(url).update_query_dict(
        {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False))


@pytest.fixture(scope="session", autouse=True)
def _drop_postgresql_schema():
    """At the end of the session, drop the schemas this process made (a schema a lingering
    connection still locks after 10 s stays: the next run of this process id empties it)."""
    yield
    if not _schemas_made:
        return
    engine = sqlalchemy.create_engine(POSTGRESQL_URL)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            for schema in _schemas_made:
                connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    except sqlalchemy.exc.OperationalError:
        pass
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """The URL of an empty database, one per back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'irtcat.db'}"
    return _empty_postgresql(POSTGRESQL_URL)


class MigratedStores:
    """Brings empty store databases to the head revision, alembic's work done once per
    back end and process (the suite builds some 900 migrated stores; alembic takes about
    0.5 s for each).

    The first database of each back end is migrated by alembic (`upgrade`). The others get
    its result: on SQLite a copy of a file migrated by alembic while empty; on PostgreSQL
    the driver statements alembic sent for that first one, replayed in one transaction in
    the same (emptied) schema of this process, so the same statements make the same schema.
    Tests of the migrations themselves start from `database_url` and run alembic."""

    def __init__(self, folder):
        self.sqlite_template = folder / "migrated.db"
        self.postgresql_script = None        # [(statement, parameters, executemany)]
        self.postgresql_revision = None

    def migrate(self, url):
        if url.startswith("sqlite"):
            self._copy_sqlite(pathlib.Path(sqlalchemy.engine.make_url(url).database))
        else:
            self._migrate_postgresql(url)

    def _copy_sqlite(self, file):
        from irtcat.itembank.database import Database, upgrade

        if not self.sqlite_template.exists():
            template = Database(f"sqlite:///{self.sqlite_template}")
            upgrade(template)
            template.dispose()                  # the last close folds the WAL in the file
        assert not file.exists(), f"{file} exists: not an empty database"
        shutil.copy(self.sqlite_template, file)  # with its mode (0600, as the store makes)

    def _migrate_postgresql(self, url):
        from irtcat.itembank.database import Database, current_revision, upgrade

        if self.postgresql_script is None:
            database, script = Database(url), []

            def record(_connection, _cursor, statement, parameters, _context, many):
                script.append((statement, copy.deepcopy(parameters), many))
            sqlalchemy.event.listen(database.engine, "before_cursor_execute", record)
            try:
                upgrade(database)
            finally:
                sqlalchemy.event.remove(database.engine, "before_cursor_execute", record)
            self.postgresql_revision = current_revision(database)
            database.dispose()
            self.postgresql_script = script
            return
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.begin() as connection:
                cursor = connection.connection.dbapi_connection.cursor()
                for statement, parameters, many in self.postgresql_script:
                    (cursor.executemany if many else cursor.execute)(statement, parameters)
                revision = connection.exec_driver_sql(
                    "SELECT version_num FROM alembic_version").scalar_one()
        finally:
            engine.dispose()
        assert revision == self.postgresql_revision, (revision, self.postgresql_revision)


@pytest.fixture(scope="session")
def migrated_stores(tmp_path_factory):
    return MigratedStores(tmp_path_factory.mktemp("migrated-stores"))


@pytest.fixture
def migrated_database_url(database_url, migrated_stores):
    """`database_url`, its database brought to the head revision (see MigratedStores)."""
    migrated_stores.migrate(database_url)
    return database_url


@pytest.fixture
def database(migrated_database_url):
    """A migrated, empty store database."""
    from irtcat.itembank.database import Database

    db = Database(migrated_database_url)
    yield db
    db.dispose()


@pytest.fixture
def store(database):
    from irtcat.itembank.store import Store

    return Store(database)


# --- a Dask cluster ---------------------------------------------------------------------

@contextlib.contextmanager
def cluster_client(n_workers=2):
    """A client of a new LocalCluster of `n_workers` processes (one thread each), with
    this process's BLAS on one thread meanwhile, as Dask's workers run (else its matrix
    products round differently in the last bits: calibration.partitions)."""
    distributed = pytest.importorskip("distributed")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), local_cluster(n_workers) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def own_dask_client():
    """A cluster of the module's own, for tests that kill its workers."""
    with cluster_client() as client:
        yield client


@pytest.fixture(scope="session")
def dask_client():
    """A client of a LocalCluster of 2 worker processes (one thread each), shared by the
    tests of a test process (it starts in about a second, and stops in one; tests that
    kill workers take `own_dask_client`); its scheduler serves HTTP on any free port, so
    that two test processes' clusters do not meet on 8787."""
    with cluster_client() as client:
        yield client


@pytest.fixture
def assert_same_result():
    """``assert_same_result(ours, reference, tolerance)``: two JSON results alike, every
    number within `tolerance` and everything else equal, their "seconds" aside (how long
    a run took is all that may differ between a calibration in one process and on a
    cluster)."""
    def check(ours, reference, tolerance, where="result"):
        if isinstance(reference, dict):
            assert ours.keys() == reference.keys(), where
            for key in reference.keys() - {"seconds"}:
                check(ours[key], reference[key], tolerance, f"{where}.{key}")
        elif isinstance(reference, list):
            assert len(ours) == len(reference), where
            for k, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
                check(mine, theirs, tolerance, f"{where}[{k}]")
        elif isinstance(reference, float):
            assert ours == pytest.approx(reference, rel=0, abs=tolerance, nan_ok=True), where
        else:
            assert ours == reference, where
    return check
