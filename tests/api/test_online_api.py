"""Online calibration over the API: GET and POST /v1/standards/{code}/online-calibration
on a standard seeded with a simulated program (`benchmarks.online.simulate_program`,
4,000 learners): the queued run's gate table, its listing, publishing its draft with
the existing route, and the requests refused."""

import numpy as np
import pytest
from sqlalchemy import insert, select

from benchmarks.online import simulate_program
from irtcat.itembank.schema import DeliverySession

CONTENT = {"stem": "Q", "options": [{"id": "A", "text": "a"}, {"id": "B", "text": "b"}]}


@pytest.fixture
def seeded(api):
    program = simulate_program(seed=11, n_learners=4000)
    api.store.import_framework({"format": "irtcat-framework/1",
                                 "standards": [{"code": "ONL", "title": "Online"}]})
    items = [{"id": item, "standard": "ONL", "model": "2pl", "a": entry["a"],
              "b": entry["b"], "status": "operational", "content": CONTENT,
              "key": {"correct": "A"}} for item, entry in program.anchors.items()]
    items += [{"id": item, "standard": "ONL", "model": "2pl", "status": "pretest",
               "content": CONTENT, "key": {"correct": "A"}} for item in program.pretest_ids]
    api.store.import_items({"format": "irtcat-bank/1", "items": items})
    assert api.call("POST", "/v1/tests", api.admin, json={
        "id": "onl", "standards": ["ONL"],
        "config": {"pretest": {"count": 5},
                   "online_calibration": {"min_answers": 300}}}).status_code == 201
    log = program.log
    with api.store.database.writing() as session:
        session.execute(insert(DeliverySession.__table__), [
            {"id": person, "test_id": "onl", "learner_id": person,
             "token_digest": f"{p:064d}", "status": "finished", "versions": {}, "seed": 1,
             "position": 1, "attributes": {"group": program.attributes["group"][p]}}
            for p, person in enumerate(log.person_ids)])
    api.store.add_responses([
        {"session_id": log.person_ids[p], "learner_id": log.person_ids[p],
         "item_id": log.item_ids[i], "raw_response": None, "score": int(score)}
        for p, i, score in zip(log.person_index.tolist(), log.item_index.tolist(),
                               log.response.tolist(), strict=True)])
    return api


def test_a_run_over_the_api_lists_its_gate_table_and_publishes(seeded):
    api = seeded
    answer = api.call("POST", "/v1/standards/ONL/online-calibration", api.admin,
                      json={"settings": {"dif_attributes": ["group"]}},
                      headers={"Prefer": "wait=60"})
    answer = api.job_done(answer)                     # 202: not done within the wait
    assert answer.status_code == 200, answer.json
    summary = answer.json
    assert summary["settings"]["min_answers"] == 300
    assert summary["settings"]["dif_attributes"] == ["group"]
    decisions = {row["item"]: row["decision"] for row in summary["items"]}
    assert len(decisions) == 40 and "promoted" in decisions.values()
    listed = api.call("GET", "/v1/standards/ONL/online-calibration", api.admin)
    assert listed.status_code == 200
    run = listed.json[0]
    assert run["id"] == summary["run"] and run["version"] == summary["version"]
    assert {row["item"]: row["decision"] for row in run["items"]} == decisions
    for row in run["items"]:
        if row["decision"] == "held":
            assert row["reasons"]
        if row["decision"] != "waiting":
            assert set(row["gates"]) == {"answers", "precision", "fit", "dif",
                                         "plausibility"}
    published = api.call("POST", f"/v1/calibrations/{summary['run']}/publish", api.admin)
    assert published.status_code == 200 and published.json["version"] == summary["version"]


def test_bad_requests_are_refused(api):
    assert api.call("GET", "/v1/standards/NOPE/online-calibration",
                    api.admin).status_code == 404
    assert api.call("POST", "/v1/standards/NOPE/online-calibration", api.admin,
                    json={}).status_code == 404
    assert api.call("POST", "/v1/standards/AI-ML/online-calibration", api.admin,
                    json={"settings": {"min_answers": 10}}).status_code == 400
    assert api.call("POST", "/v1/standards/AI-ML/online-calibration", api.admin,
                    json={"settings": {"unknown": 1}}).status_code == 400
    reversed_range = api.call("POST", "/v1/standards/AI-ML/online-calibration", api.admin,
                              json={"settings": {"slope_range": [2, 1]}})
    assert reversed_range.status_code == 422
    assert "slope_range" in reversed_range.json["error"]["message"]
    assert api.call("POST", "/v1/standards/AI-ML/online-calibration",
                    api.delivery, json={}).status_code == 403


def test_an_idle_worker_queues_the_due_online_calibration(seeded, database_url):
    from irtcat.api.worker import Worker
    from irtcat.itembank.schema import Job

    worker = Worker(database_url, poll=60)
    try:
        assert not worker.run_once()  # no job to claim: idle, so it checks
    finally:
        worker.close()
    with seeded.store.database.reading() as session:
        jobs = session.scalars(select(Job).where(Job.kind == "online_calibration")).all()
        assert [job.payload["standard"] for job in jobs] == ["ONL"]


def operational_items(rng, standard, prefix, n_items):
    """`n_items` operational 2PL items of `standard` drawn from `rng`."""
    return [{"id": f"{prefix}{j:02d}", "standard": standard, "model": "2pl",
             "a": round(float(rng.uniform(0.8, 1.8)), 3),
             "b": round(float(rng.uniform(-1.5, 1.5)), 3), "status": "operational",
             "content": CONTENT, "key": {"correct": "A"}} for j in range(n_items)]


def publish_and_drift(api, items, drifted, n_persons, person_prefix, rng):
    """Import `items` and a complete log of `n_persons` N(0, 1) learners answering them
    with item `drifted` harder by 1.0 (the simulation's truth)."""
    from irtcat.engine.models import parameters_from_entries
    from irtcat.engine.simulate import simulate_responses
    from irtcat.itembank.io import ResponseLog

    api.store.import_items({"format": "irtcat-bank/1", "items": items})
    live = [dict(item, b=item["b"] + 1.0) if item["id"] == drifted else item
            for item in items]
    answers = simulate_responses(rng.normal(0, 1, n_persons), parameters_from_entries(live),
                                 rng)
    person, item = np.nonzero(np.ones_like(answers, dtype=bool))
    api.store.import_response_log(ResponseLog(
        [f"{person_prefix}{i}" for i in range(n_persons)], [entry["id"] for entry in items],
        person.astype(np.int32), item.astype(np.int32), answers[person, item].astype(float)))


def test_drift_over_the_api(api):
    """A 10-item standard published with the truth; in the live answers of 1,500
    learners item E03 is harder by 1.0: the drift job flags it (and only it)."""
    rng = np.random.default_rng(20261205)
    items = operational_items(rng, "DRF", "E", 10)
    assert api.call("POST", "/v1/standards/DRF/drift", api.admin, json={}).status_code == 404
    api.store.import_framework({"format": "irtcat-framework/1",
                                 "standards": [{"code": "DRF", "title": "Drift"}]})
    assert api.call("POST", "/v1/standards/DRF/drift", api.admin, json={}).status_code == 409
    publish_and_drift(api, items, "E03", 1500, "p", rng)
    assert api.call("POST", "/v1/standards/DRF/drift", api.admin,
                    json={"mode": "sideways"}).status_code == 400
    answer = api.call("POST", "/v1/standards/DRF/drift", api.admin,
                      json={"items": ["E02", "E03", "E04"]}, headers={"Prefer": "wait=60"})
    answer = api.job_done(answer)                     # 202: not done within the wait
    assert answer.status_code == 200, answer.json
    assert answer.json["flagged"] == ["E03"]
    assert [row["item"] for row in answer.json["items"]] == ["E02", "E03", "E04"]


def test_a_run_that_promoted_nothing_has_no_version_to_publish(seeded):
    api = seeded
    answer = api.call("POST", "/v1/standards/ONL/online-calibration", api.admin,
                      json={"settings": {"min_answers": 10**6}},
                      headers={"Prefer": "wait=60"})
    assert answer.status_code == 200, answer.json
    assert answer.json["version"] is None
    assert {row["decision"] for row in answer.json["items"]} == {"waiting"}
    refused = api.call("POST", f"/v1/calibrations/{answer.json['run']}/publish", api.admin)
    assert refused.status_code == 409 and "no bank version" in refused.json["error"]["message"]
