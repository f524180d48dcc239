"""Quotas over the SQL counters (SQLite, and PostgreSQL when a server is given): limits
hold to the hit, windows end, and two workers or two processes share one count."""

import logging
import multiprocessing
import os
import stat
import time

import pytest
from limits import parse
from limits.storage import MemoryStorage

from irtcat.api.quotas import DEFAULTS, QuotaExceeded, Quotas, parse_overrides
from irtcat.itembank.counters import TABLE, SQLCounters, counters_path, include_name
from irtcat.itembank.database import Database


def quotas_on(url, **notations):
    """Quotas over the counters of the database at `url`, with the limits `notations`."""
    database = Database(url)
    text = ";".join(f"{name}={notation}" for name, notation in notations.items())
    return Quotas.from_env(database, environ={"IRTCAT_QUOTAS": text})


@pytest.fixture
def quotas(database_url):
    made = quotas_on(database_url, answer="5/minute", public_start="3/2 seconds")
    yield made
    made.storage.dispose()


def test_hits_up_to_the_limit_pass_and_the_next_waits_for_the_window(quotas):
    limit = parse("5/minute")
    for _ in range(limit.amount):
        quotas.hit("answer", "session-1")
    with pytest.raises(QuotaExceeded) as refused:
        quotas.hit("answer", "session-1")
    assert refused.value.name == "answer"
    assert 1 <= refused.value.retry_after <= limit.get_expiry()
    quotas.hit("answer", "session-2")                  # another identity has its own count


def test_a_window_ends_and_counting_starts_again(quotas):
    limit = parse("3/2 seconds")
    for _ in range(limit.amount):
        quotas.hit("public_start", "203.0.113.7")
    with pytest.raises(QuotaExceeded) as refused:
        quotas.hit("public_start", "203.0.113.7")
    assert 1 <= refused.value.retry_after <= limit.get_expiry()
    time.sleep(refused.value.retry_after + 0.05)       # Retry-After is rounded up
    for _ in range(limit.amount):
        quotas.hit("public_start", "203.0.113.7")
    with pytest.raises(QuotaExceeded):
        quotas.hit("public_start", "203.0.113.7")


def test_exhausted_does_not_count(quotas):
    limit = parse("5/minute")
    for _ in range(3 * limit.amount):
        assert quotas.exhausted("answer", "session-1") == 0
    for _ in range(limit.amount):
        quotas.hit("answer", "session-1")
    assert 1 <= quotas.exhausted("answer", "session-1") <= limit.get_expiry()
    with pytest.raises(QuotaExceeded):
        quotas.hit("answer", "session-1")


def test_two_workers_on_one_database_share_the_count(database_url, quotas):
    limit = parse("5/minute")
    other = quotas_on(database_url, answer="5/minute")
    allowed = 0
    for turn in range(2 * limit.amount):
        try:
            (quotas, other)[turn % 2].hit("answer", "session-1")
            allowed += 1
        except QuotaExceeded:
            pass
    assert allowed == limit.amount
    other.storage.dispose()


def _hit_many(url, hits, start, allowed):
    quotas = quotas_on(url, answer="50/minute")
    start.wait(timeout=30)
    for _ in range(hits):
        try:
            quotas.hit("answer", "session-1")
            allowed.value += 1          # one process writes each value: no lock needed
        except QuotaExceeded:
            pass


def test_two_processes_never_pass_more_than_the_limit(database_url):
    limit = parse("50/minute")
    hits = 40                                           # each; 80 in all, 30 refused
    context = multiprocessing.get_context("fork")
    start = context.Event()
    counts = [context.Value("i", 0) for _ in range(2)]
    workers = [context.Process(target=_hit_many, args=(database_url, hits, start, count))
               for count in counts]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sum(count.value for count in counts) == limit.amount


# --- settings -------------------------------------------------------------------------

def test_overrides_replace_only_the_quotas_they_name():
    limits = parse_overrides(" public_start=20/minute; score = 10 per day ;")
    assert limits["public_start"] == parse("20/minute")
    assert limits["score"] == parse("10/day")
    assert {name: limits[name] for name in DEFAULTS if name not in ("public_start", "score")} \
        == {name: parse(DEFAULTS[name]) for name in DEFAULTS
            if name not in ("public_start", "score")}


@pytest.mark.parametrize("setting, named", [
    ("answer=60 per fortnight", "'answer'"),
    ("answer=0/minute", "'answer'"),
    ("answer=", "'answer'"),
    ("answers=60/minute", "'answers'"),
    ("score=10/day;60/minute", "'60/minute'"),
])
def test_a_bad_override_is_one_line_naming_it(setting, named):
    with pytest.raises(ValueError) as error:
        parse_overrides(setting)
    assert named in str(error.value)
    assert "\n" not in str(error.value)


def test_off_turns_every_quota_off(tmp_path):
    quotas = Quotas.from_env(Database(f"sqlite:///{tmp_path / 'irtcat.db'}"),
                             environ={"IRTCAT_QUOTAS": "off"})
    assert not quotas.enabled
    for _ in range(parse(DEFAULTS["auth_failure"]).amount + 1):
        quotas.hit("auth_failure", "203.0.113.7")
    assert quotas.exhausted("auth_failure", "203.0.113.7") == 0
    assert not counters_path(tmp_path / "irtcat.db").exists()


def test_a_storage_uri_is_used_and_a_bad_one_refused(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'irtcat.db'}")
    quotas = Quotas.from_env(database, environ={"IRTCAT_RATE_LIMIT_STORAGE": "memory://"})
    assert isinstance(quotas.storage, MemoryStorage)
    with pytest.raises(ValueError, match="IRTCAT_RATE_LIMIT_STORAGE"):
        Quotas.from_env(database, environ={"IRTCAT_RATE_LIMIT_STORAGE": "nowhere://x"})


def test_an_sqlite_database_in_memory_counts_in_memory():
    assert isinstance(Quotas.from_env(Database("sqlite://"), environ={}).storage, MemoryStorage)


def test_a_failing_store_lets_requests_through_and_says_so(caplog):
    class Broken(MemoryStorage):
        def incr(self, key, expiry, amount=1):
            raise ValueError("the store is down")

        def get(self, key):
            raise ValueError("the store is down")

    quotas = Quotas(Broken(wrap_exceptions=True), parse_overrides("answer=1/minute"))
    with caplog.at_level(logging.WARNING, logger="irtcat.api.quotas"):
        for _ in range(3):
            quotas.hit("answer", "session-1")
        assert quotas.exhausted("answer", "session-1") == 0
    assert [record.getMessage() for record in caplog.records] == \
        ["rate-limit counters unavailable, requests let through: the store is down"]


# --- the counters ---------------------------------------------------------------------

def test_sqlite_counters_are_a_private_file_beside_the_database(tmp_path):
    quotas = quotas_on(f"sqlite:///{tmp_path / 'irtcat.db'}")
    quotas.hit("answer", "session-1")
    path = counters_path(tmp_path / "irtcat.db")
    assert path == tmp_path / "irtcat.db-counters"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    quotas.storage.dispose()


def test_expired_counters_are_purged(database_url):
    counters = SQLCounters(database=Database(database_url))
    counters.incr("old", 1)
    counters.incr("current", 60)
    assert counters.purge(before=time.time() + 2) == 1
    assert (counters.get("old"), counters.get("current")) == (0, 1)
    assert counters.check()
    assert counters.reset() == 1
    counters.dispose()


def test_the_counters_table_is_left_out_of_the_schema_comparison(database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from irtcat.itembank.schema import Base

    counters = SQLCounters(database=database)
    counters.incr("answer", 60)
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        assert compare_metadata(context, Base.metadata) == []
        if database.dialect == "postgresql":          # there in the store's database
            assert connection.exec_driver_sql(
                f"SELECT relpersistence FROM pg_class WHERE relname = '{TABLE}'"
            ).scalar() == "u"                          # UNLOGGED
    counters.dispose()
