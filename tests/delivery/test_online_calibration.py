"""Online calibration over the store: settings from a test's configuration, the run and
its gate table, the draft version with each promoted item's provenance, auto_publish,
and the trigger's due items (`delivery.online_calibration`)."""

import json
import pathlib

import pytest
from sqlalchemy import insert

from benchmarks.online import simulate_program
from irtcat.delivery.errors import ConflictError
from irtcat.delivery.jobs import ONLINE_CALIBRATION, JobRunner, enqueue_online_calibration
from irtcat.delivery.online_calibration import (
    due_items,
    queue_ready,
    run_online_calibration,
    standard_settings,
)
from irtcat.delivery.online_gates import PROMOTED
from irtcat.delivery.sessions import Delivery
from irtcat.itembank.jobs import Jobs
from irtcat.itembank.online import online_runs
from irtcat.itembank.schema import DeliverySession

DEMO = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo"
CONTENT = {"stem": "Q", "options": [{"id": "A", "text": "a"}, {"id": "B", "text": "b"}]}
SETTINGS = {"min_answers": 300, "dif_attributes": ["group"]}


@pytest.fixture(scope="module")
def program():
    return simulate_program(seed=7, n_learners=4000)


def _load(store, program, settings=SETTINGS):
    store.import_framework(json.loads((DEMO / "framework.json").read_text()))
    items = [{"id": item, "standard": "AI-ML", "model": "2pl", "a": entry["a"],
              "b": entry["b"], "status": "operational", "content": CONTENT,
              "key": {"correct": "A"}} for item, entry in program.anchors.items()]
    items += [{"id": item, "standard": "AI-ML", "model": "2pl", "status": "pretest",
               "content": CONTENT, "key": {"correct": "A"}} for item in program.pretest_ids]
    store.import_items(items)
    Delivery(store).create_test("t", "T", ["AI-ML"], {"online_calibration": settings})
    log, groups = program.log, program.attributes["group"]
    with store.database.writing() as session:
        session.execute(insert(DeliverySession.__table__), [
            {"id": person, "test_id": "t", "learner_id": person, "token_digest": f"{p:064d}",
             "status": "finished", "versions": {}, "seed": 1, "position": 1,
             "attributes": {"group": groups[p]}}
            for p, person in enumerate(log.person_ids)])
    store.add_responses([
        {"session_id": log.person_ids[p], "learner_id": log.person_ids[p],
         "item_id": log.item_ids[i], "raw_response": None, "score": int(score),
         "pretest": log.item_ids[i].startswith("pt")}
        for p, i, score in zip(log.person_index.tolist(), log.item_index.tolist(),
                               log.response.tolist(), strict=True)])


def test_a_run_promotes_into_a_draft_with_provenance(store, program):
    _load(store, program)
    assert standard_settings(store, "AI-ML").min_answers == 300
    assert standard_settings(store, "AI-ML", {"min_answers": 400}).min_answers == 400
    due = due_items(store, "AI-ML")
    assert 0 < len(due) <= len(program.pretest_ids)
    waiting = run_online_calibration(store, "AI-ML", {"min_answers": 10**6})
    assert waiting["version"] is None
    assert {row["decision"] for row in waiting["items"]} == {"waiting"}
    assert due_items(store, "AI-ML") == due          # waiting then: due once ready
    summary = run_online_calibration(store, "AI-ML")
    rows = {row["item"]: row for row in summary["items"]}
    promoted = [item for item, row in rows.items() if row["decision"] == PROMOTED]
    assert promoted
    for item in promoted:          # (DIF power at 4,000 learners: the loop test's matter)
        assert all(gate["passed"] for gate in rows[item]["gates"].values())
    assert summary["version"] == 2 and not summary["published"]
    draft = store.versions("AI-ML")[-1]
    assert draft["version"] == 2 and not draft["published"] and draft["calibration_run"] == \
        summary["run"]
    assert store.published_entries("AI-ML").keys() == program.anchors.keys()
    run = store.calibration_run(summary["run"])
    assert run["source"] == "online" and run["status"] == "done"
    assert {item["id"] for item in run["result"]["items"]} == set(promoted)
    gate_table = run["result"]["calibration"]["online"]["items"]
    assert {row["item"] for row in gate_table} == set(program.pretest_ids)
    store.publish("AI-ML", 2)
    entry = store.published_entries("AI-ML")[promoted[0]]
    assert entry["status"] == "operational" and entry["online"]["run"] == summary["run"]
    assert entry["online"]["answers"] == rows[promoted[0]]["answers"]
    assert set(entry["online"]["gates"]) == {"answers", "precision", "fit", "dif",
                                             "plausibility"}
    # the promoted items are no longer pretest; the held ones are not due again until
    # their answers double
    assert not set(due_items(store, "AI-ML")) & set(promoted)
    assert due_items(store, "AI-ML") == []
    listed = online_runs(store.database, "AI-ML")
    assert [run["id"] for run in listed] == [summary["run"], waiting["run"]]
    assert [run["version"] for run in listed] == [2, None]


def test_auto_publish_and_the_queued_job(store, program):
    _load(store, program, {**SETTINGS, "auto_publish": True})
    jobs = Jobs(store.database)
    queued = queue_ready(store, lambda code: enqueue_online_calibration(
        jobs, {"standard": code}))
    assert queued == ["AI-ML"]
    assert queue_ready(store, lambda code: pytest.fail("queued twice")) == []
    job = jobs.claim("test-worker")
    assert job.kind == ONLINE_CALIBRATION
    runner = JobRunner(store, Delivery(store), None, None)
    result, media_type = runner.run(job)
    summary = json.loads(result)
    assert media_type == "application/json" and summary["published"]
    assert store.versions("AI-ML")[-1]["current"]
    assert any(row["decision"] == PROMOTED for row in summary["items"])


def test_two_workers_checking_at_once_queue_one_job(store, program):
    # The other worker queues between this one's check (none waiting) and its write.
    _load(store, program, SETTINGS)
    jobs = Jobs(store.database)

    def racing(code):
        assert enqueue_online_calibration(jobs, {"standard": code}, "other",
                                          unless_waiting=True) is not None
        return enqueue_online_calibration(jobs, {"standard": code}, "this",
                                          unless_waiting=True)

    assert queue_ready(store, racing) == []
    assert jobs.queued_count() == 1


def test_a_standard_without_published_operational_items_is_refused(store):
    store.import_framework(json.loads((DEMO / "framework.json").read_text()))
    store.import_items([{"id": "pt", "standard": "AI-ML", "model": "2pl", "status": "pretest",
                         "content": CONTENT, "key": {"correct": "A"}}])
    with pytest.raises(ConflictError, match="no published operational items"):
        run_online_calibration(store, "AI-ML")
