"""The item bank store, on SQLite and (when a server is given) PostgreSQL.

Every test runs once per back end through the `store` fixture (tests/conftest.py).
Expected values come from the documents the tests import (round trips), from
the issue's rules (all-or-nothing imports, immutable versions), and from
simulation truth (the recalibration loop recovers the generating parameters).
"""

import copy
import io
import socket
import subprocess
import sys

import numpy as np
import pytest
import sqlalchemy
from sqlalchemy.exc import IntegrityError

from irtcat.delivery.calibration_runs import calibrate_standard
from irtcat.engine import ItemParameters
from irtcat.engine.simulate import simulate_responses
from irtcat.itembank import DataFormatError
from irtcat.itembank.counters import include_name
from irtcat.itembank.database import current_revision, head_revision, upgrade
from irtcat.itembank.errors import NotFoundError
from irtcat.itembank.schema import CalibrationRun

FRAMEWORK = {
    "format": "irtcat-framework/1",
    "standards": [
        {"code": "AI-ML-01", "title": "Supervised learning", "parent": "AI-ML", "levels": []},
        {"code": "AI-ML", "title": "Machine learning", "description": "Models from data.",
         "parent": None, "levels": [{"name": "foundational", "cut": -0.5},
                                    {"name": "proficient", "cut": 0.5},
                                    {"name": "advanced", "cut": 1.5}]},
        {"code": "AI-DE", "title": "Data engineering", "parent": None,
         "levels": [{"name": "proficient", "cut": 0.0}]},
    ],
}


def _content(n_options=4):
    letters = "ABCDE"[:n_options]
    return {"stem": "Which one?", "options": [{"id": x, "text": f"option {x}"} for x in letters]}


BANK = {
    "format": "irtcat-bank/1",
    "metric": "logistic",
    "population": {"mean": 0.0, "sd": 1.0},
    "items": [
        {"id": "Q1", "standard": "AI-ML-01", "model": "2pl", "a": 1.12, "b": -0.41,
         "se": {"a": 0.08, "b": 0.05}, "status": "operational", "content": _content(),
         "key": {"correct": "B"}, "tags": ["overfitting"], "enemies": ["Q2"]},
        {"id": "Q2", "standard": "AI-ML-01", "model": "3pl", "a": 1.4, "b": 0.2, "c": 0.18,
         "status": "operational", "content": _content(), "key": {"correct": "D"},
         "enemies": ["Q1"], "difficulty": "hard"},
        {"id": "S1", "standard": "AI-DE", "model": "grm", "a": 1.3, "b": [-1.2, 0.1, 1.4],
         "status": "operational", "content": _content(4),
         "key": {"scores": {"A": 0, "B": 1, "C": 2, "D": 3}}},
        {"id": "P1", "standard": "AI-DE", "model": "2pl", "status": "pretest",
         "content": _content(), "key": {"correct": "A"}},
    ],
    "calibration": {"model": "mixed", "loglik": -2658.8, "converged": True, "n_persons": 1000},
}


@pytest.fixture
def framework(store):
    store.import_framework(FRAMEWORK)
    return store


def _count(store, table):
    with store.database.reading() as session:
        return session.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar()


# --- schema ---------------------------------------------------------------------------

def test_migrations_reach_head_and_match_the_tables(database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from irtcat.itembank.schema import Base

    assert current_revision(database) == head_revision()
    upgrade(database)                                  # a second upgrade is a no-op
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(database):
    if database.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# --- framework --------------------------------------------------------------------------

def test_framework_import_is_idempotent_and_children_inherit_levels(store):
    first = store.import_framework(FRAMEWORK)
    assert sorted(first["created"]) == ["AI-DE", "AI-ML", "AI-ML-01"]
    again = store.import_framework(FRAMEWORK)
    assert again == {"created": [], "updated": [], "unchanged": ["AI-DE", "AI-ML", "AI-ML-01"]}
    assert store.levels_of("AI-ML-01") == FRAMEWORK["standards"][1]["levels"]
    assert store.standard("AI-ML-01")["parent"] == "AI-ML"


@pytest.mark.parametrize("change, message", [
    (lambda doc: doc["standards"][0].update(parent="AI-XX"), "unknown parent 'AI-XX'"),
    (lambda doc: doc["standards"][1].update(parent="AI-ML-01"), "cycle"),
    (lambda doc: doc["standards"][2]["levels"].append({"name": "low", "cut": -1.0}),
     "cuts must ascend"),
])
def test_a_bad_framework_imports_nothing(store, change, message):
    document = copy.deepcopy(FRAMEWORK)
    change(document)
    with pytest.raises(DataFormatError, match=message):
        store.import_framework(document)
    assert store.standards() == []


# --- items ----------------------------------------------------------------------------

def test_import_then_export_gives_the_same_document(framework):
    summary = framework.import_items(BANK)
    assert summary["created"] == 4
    assert summary["versions"] == [{"standard": "AI-DE", "version": 1},
                                   {"standard": "AI-ML-01", "version": 1}]
    assert framework.export_bank() == BANK
    one = framework.export_bank("AI-DE")
    assert [item["id"] for item in one["items"]] == ["S1", "P1"]
    assert "a" not in one["items"][1]                  # P1 awaits calibration


def test_a_second_import_of_the_same_document_changes_nothing(framework):
    framework.import_items(BANK)
    again = framework.import_items(copy.deepcopy(BANK))
    assert again == {"created": 0, "updated": 0, "unchanged": 4, "versions": []}
    assert _count(framework, "bank_versions") == 2


@pytest.mark.parametrize("change, message", [
    (lambda items: items[2].update(standard="AI-XX"), "item 'S1': unknown standard 'AI-XX'"),
    (lambda items: items[1].update(a=0.0), "item 'Q2'"),
    (lambda items: items[1].update(c=1.5), "item 'Q2'"),
    (lambda items: items[0].update(key={"correct": "E"}),
     "item 'Q1': key 'E' is not among the options"),
    (lambda items: items[2]["key"]["scores"].update(D=5), "item 'S1'"),
    (lambda items: items[0].update(enemies=["Q9"]), "item 'Q1': unknown enemy 'Q9'"),
    (lambda items: items[3].update(status="live"), "item 'P1': status must be one of"),
])
def test_an_import_with_one_bad_item_imports_nothing_and_names_it(framework, change, message):
    document = copy.deepcopy(BANK)
    change(document["items"])
    with pytest.raises(DataFormatError, match=message):
        framework.import_items(document)
    assert _count(framework, "items") == 0
    assert _count(framework, "bank_versions") == 0


def test_changing_an_item_publishes_a_new_version_and_keeps_the_old(framework):
    framework.import_items(BANK)
    before = framework.export_bank("AI-ML-01", version=1)
    document = copy.deepcopy(BANK)
    document["items"][0]["b"] = -0.2
    document["items"][1]["status"] = "retired"
    summary = framework.import_items(document)
    assert summary["updated"] == 2 and summary["versions"] == [
        {"standard": "AI-ML-01", "version": 2}]
    assert framework.export_bank("AI-ML-01", version=1) == before
    current = framework.export_bank("AI-ML-01")
    assert current["items"][0]["b"] == -0.2 and current["items"][1]["status"] == "retired"
    assert [v["current"] for v in framework.versions("AI-ML-01")] == [False, True]


def test_an_item_cannot_change_model_without_parameters(framework):
    framework.import_items(BANK)
    document = {"format": "irtcat-bank/1", "items": [
        {key: value for key, value in BANK["items"][0].items() if key not in ("a", "b", "se")}
        | {"model": "3pl"}]}
    with pytest.raises(DataFormatError, match="item 'Q1': its model changes"):
        framework.import_items(document)


def test_export_of_an_unknown_standard_or_version_is_not_found(framework):
    framework.import_items(BANK)
    with pytest.raises(NotFoundError, match="no standard 'AI-XX'"):
        framework.export_bank("AI-XX")
    with pytest.raises(NotFoundError, match="has no version 7"):
        framework.export_bank("AI-DE", version=7)


# --- delivery -------------------------------------------------------------------------

def test_the_published_bank_loads_into_the_engine_arrays_once(framework):
    framework.import_items(BANK)
    loaded = framework.delivery_bank("AI-ML-01")
    assert loaded.bank.item_ids == ["Q1", "Q2"]
    np.testing.assert_array_equal(loaded.bank.params.a, [1.12, 1.4])
    np.testing.assert_array_equal(loaded.bank.params.c, [0.0, 0.18])
    assert framework.delivery_bank("AI-ML-01") is loaded           # cached
    grm = framework.delivery_bank("AI-DE").bank.params
    np.testing.assert_array_equal(grm.b[0], [-1.2, 0.1, 1.4])


# --- response log and the recalibration loop ---------------------------------------

TRUE_A = np.linspace(0.7, 2.0, 15)
TRUE_B = np.linspace(-1.8, 1.8, 15)


def _simulated_log(rng, n_sessions, items, a, b, prefix="s"):
    theta = rng.standard_normal(n_sessions)
    answers = simulate_responses(theta, ItemParameters.create(["2pl"] * len(items), a, b), rng)
    return [{"session_id": f"{prefix}{i}", "learner_id": f"learner{i}", "item_id": item,
             "raw_response": "A" if answers[i, j] else "B", "score": int(answers[i, j])}
            for i in range(n_sessions) for j, item in enumerate(items)]


@pytest.fixture
def calibrated_standard(framework, rng):
    """AI-ML-01 with 15 items awaiting calibration and 2,500 simulated sessions."""
    items = [f"M{j:02d}" for j in range(15)]
    framework.import_items({"format": "irtcat-bank/1", "items": [
        {"id": item, "standard": "AI-ML-01", "model": "2pl", "status": "operational",
         "content": _content(), "key": {"correct": "A"}} for item in items]})
    framework.add_responses(_simulated_log(rng, 2500, items, TRUE_A, TRUE_B))
    return framework, items


def test_a_repeated_answer_in_one_session_is_refused_and_nothing_is_added(calibrated_standard):
    store, items = calibrated_standard
    before = _count(store, "responses")
    rows = [{"session_id": "new", "learner_id": "x", "item_id": items[0], "raw_response": "A",
             "score": 1},
            {"session_id": "s0", "learner_id": "learner0", "item_id": items[0],
             "raw_response": "A", "score": 1}]
    with pytest.raises(IntegrityError):
        store.add_responses(rows)
    assert _count(store, "responses") == before


def test_responses_export_is_a_long_csv_for_calibration(calibrated_standard):
    store, items = calibrated_standard
    stream = io.StringIO()
    assert store.write_responses(stream, "AI-ML-01") == 2500 * 15
    lines = stream.getvalue().splitlines()
    assert lines[0] == "person_id,item_id,response"
    assert lines[1].split(",")[:2] == ["s0", items[0]]
    assert {line.rsplit(",", 1)[1] for line in lines[1:]} == {"0", "1"}


def test_calibrate_publish_export_and_roll_back(calibrated_standard):
    store, items = calibrated_standard
    run = calibrate_standard(store, "AI-ML-01", "2pl")
    assert run["status"] == "done" and run["version"] == 1
    assert store.versions("AI-ML-01")[0]["published"] is False
    with pytest.raises(NotFoundError):                  # a draft is not delivered
        store.delivery_bank("AI-ML-01")
    draft = store.export_bank("AI-ML-01", version=1)
    a = np.array([item["a"] for item in draft["items"]])
    b = np.array([item["b"] for item in draft["items"]])
    # Simulation truth: 2,500 persons give SEs near 0.05 for a and b.
    assert np.sqrt(np.mean((a - TRUE_A) ** 2)) < 0.12
    assert np.sqrt(np.mean((b - TRUE_B) ** 2)) < 0.12
    assert all("fit" in item and "se" in item for item in draft["items"])
    assert draft["calibration"]["n_persons"] == 2500

    store.publish("AI-ML-01", 1)
    version_1 = store.export_bank("AI-ML-01", version=1)
    assert store.export_bank("AI-ML-01")["items"][0]["a"] == version_1["items"][0]["a"]
    pinned = store.delivery_bank("AI-ML-01")

    second = calibrate_standard(store, "AI-ML-01", "rasch")
    store.publish("AI-ML-01")
    assert store.delivery_bank("AI-ML-01").number == second["version"] == 2
    current = store.export_bank("AI-ML-01")             # shows the version's model
    assert {item["model"] for item in current["items"]} == {"rasch"}
    assert store.import_items(current)["versions"] == []    # and imports back unchanged
    assert store.export_bank("AI-ML-01", version=1) == version_1    # never changes
    assert store.delivery_bank(version_id=pinned.version_id) is pinned

    store.publish("AI-ML-01", 1)                        # roll back
    assert store.delivery_bank("AI-ML-01").number == 1
    assert [v["current"] for v in store.versions("AI-ML-01")] == [True, False]


def test_pretest_items_calibrate_onto_the_published_scale(calibrated_standard, rng):
    store, items = calibrated_standard
    calibrate_standard(store, "AI-ML-01", "2pl")
    store.publish("AI-ML-01")
    published = store.published_entries("AI-ML-01")
    store.import_items({"format": "irtcat-bank/1", "items": [
        {"id": "NEW", "standard": "AI-ML-01", "model": "2pl", "status": "pretest",
         "content": _content(), "key": {"correct": "A"}}]})
    # New sessions answer the operational items and the pretest item (a = 1.3, b = 0.4).
    log = _simulated_log(rng, 3000, items + ["NEW"], np.append(TRUE_A, 1.3),
                         np.append(TRUE_B, 0.4), prefix="t")
    for row in log:
        row["pretest"] = row["item_id"] == "NEW"
    store.add_responses(log)
    run = calibrate_standard(store, "AI-ML-01", anchored=True)
    draft = {item["id"]: item for item in store.export_bank("AI-ML-01",
                                                            version=run["version"])["items"]}
    for item in items:                                  # anchors unchanged
        assert draft[item]["a"] == published[item]["a"]
        assert draft[item]["b"] == published[item]["b"]
    assert draft["NEW"]["status"] == "pretest"
    assert abs(draft["NEW"]["b"] - 0.4) < 0.15 and abs(draft["NEW"]["a"] - 1.3) < 0.25


def test_a_failed_calibration_is_recorded(framework):
    framework.import_items(BANK)
    with pytest.raises(ValueError, match="no responses"):
        calibrate_standard(framework, "AI-DE")
    with framework.database.reading() as session:
        status, error = session.execute(sqlalchemy.text(
            "SELECT status, error FROM calibration_runs")).one()
    assert status == "failed" and "no responses" in error


def test_a_write_inside_another_on_one_thread_fails_at_once(database):
    # Expected: RuntimeError (SQLite's writers queue on one lock, which a nested write
    # on the same thread would wait on for ever); PostgreSQL takes no such lock.
    if database.dialect != "sqlite":
        pytest.skip("the writers' lock is SQLite's")
    with database.write_connection():
        with pytest.raises(RuntimeError, match="inside another"):
            with database.writing():
                pass
    with database.writing():                  # released: the next write goes through
        pass


def test_a_run_whose_process_ended_is_reported_failed(store):
    # Expected: "failed" with the ended process named, once the process recorded as its
    # runner (this host, a pid that has exited) is gone; a run of a live process
    # (this one) stays queued.
    store.import_framework(FRAMEWORK)
    code = FRAMEWORK["standards"][0]["code"]
    alive = store.create_calibration_run(code, "2pl", "log", {})
    orphan = store.create_calibration_run(code, "2pl", "log", {})
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    runner = f"{socket.gethostname()}:{ended}"
    with store.database.writing() as session:
        session.execute(sqlalchemy.update(CalibrationRun).where(CalibrationRun.id == orphan)
                        .values(runner=runner, status="running"))
    assert store.calibration_run(alive)["status"] == "queued"
    run = store.calibration_run(orphan)
    assert run["status"] == "failed" and runner in run["error"]
    assert run["finished_at"] is not None
    assert store.calibration_run(orphan) == run                      # recorded once
