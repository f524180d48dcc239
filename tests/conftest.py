"""Shared fixtures: paths to the bundled data, a seeded generator, store databases."""

import json
import os
import pathlib

import numpy as np
import pytest
import sqlalchemy

DATA = pathlib.Path(__file__).resolve().parent / "data"
DEMO = pathlib.Path(__file__).resolve().parents[1] / "api" / "demo"


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


# Under pytest-xdist each worker empties and uses a schema of its own (named after the
# worker, gw0, gw1, ...) in the one test database; a plain run uses ``public``.
POSTGRESQL_SCHEMA = os.environ.get("PYTEST_XDIST_WORKER", "public")


def _empty_postgresql(url, schema=POSTGRESQL_SCHEMA):
    """Drop everything in this run's schema of the test database; returns the URL whose
    connections use that schema."""
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    if schema == "public":
        return url
    return (sqlalchemy.engine.make_url(url).update_query_dict(
        {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False))


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """The URL of an empty database, one per back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'irtcat.db'}"
    return _empty_postgresql(POSTGRESQL_URL)


@pytest.fixture
def database(database_url):
    """A migrated, empty store database."""
    from irtcat.itembank.database import Database, upgrade

    db = Database(database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def store(database):
    from irtcat.itembank.store import Store

    return Store(database)
