"""Drift on the live log as a queued job (`delivery.drift`, over
`calibration.drift.detect_drift`): a 30-item 2PL standard published with the
simulation truth, 2,000 learners answering every item, item D05 harder by DRIFT_SHIFT
in the live answers than in the bank. The truth: D05 drifted (b up), the others did
not."""

import json
import pathlib

import numpy as np
import pytest

from irtcat.delivery.drift import drift_document
from irtcat.delivery.errors import ConflictError
from irtcat.delivery.jobs import DRIFT, JobRunner, enqueue_drift
from irtcat.delivery.sessions import Delivery
from irtcat.engine.models import parameters_from_entries
from irtcat.engine.simulate import simulate_responses
from irtcat.itembank.errors import NotFoundError
from irtcat.itembank.io import ResponseLog
from irtcat.itembank.jobs import Jobs

DEMO = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo"
CONTENT = {"stem": "Q", "options": [{"id": "A", "text": "a"}, {"id": "B", "text": "b"}]}
DRIFT_SHIFT = 1.0
STUDIED = ["D04", "D05", "D06", "D07"]


def _seed(store, seed=20261205, n=2000):
    rng = np.random.default_rng(seed)
    items = [{"id": f"D{j:02d}", "standard": "DRF", "model": "2pl",
              "a": round(float(rng.uniform(0.8, 1.8)), 3),
              "b": round(float(rng.uniform(-1.5, 1.5)), 3), "status": "operational",
              "content": CONTENT, "key": {"correct": "A"}} for j in range(30)]
    store.import_framework({"format": "irtcat-framework/1",
                            "standards": [{"code": "DRF", "title": "Drift"}]})
    store.import_items({"format": "irtcat-bank/1", "items": items})
    live = [dict(item, b=item["b"] + DRIFT_SHIFT) if item["id"] == "D05" else item
            for item in items]
    answers = simulate_responses(rng.normal(0, 1, n), parameters_from_entries(live), rng)
    person, item = np.nonzero(np.ones_like(answers, dtype=bool))
    store.import_response_log(ResponseLog([f"p{i}" for i in range(n)],
                                          [entry["id"] for entry in items],
                                          person.astype(np.int32), item.astype(np.int32),
                                          answers[person, item].astype(float)))


def test_the_drifted_item_is_flagged_and_the_others_not(store):
    _seed(store)
    document = drift_document(store, "DRF", items=STUDIED)
    rows = {row["item"]: row for row in document["items"]}
    assert list(rows) == STUDIED and document["bank_version"] == 1
    assert document["flagged"] == ["D05"]
    assert rows["D05"]["z"]["b"] > 3 and rows["D05"]["expected_score_signed"] < 0
    assert rows["D05"]["new"]["b"] - rows["D05"]["old"]["b"] == pytest.approx(DRIFT_SHIFT,
                                                                              abs=0.25)
    json.dumps(document, allow_nan=False)


def test_the_queued_job_and_the_refusals(store):
    _seed(store)
    jobs = Jobs(store.database)
    enqueue_drift(jobs, {"standard": "DRF", "items": ["D05", "D06"], "mode": "each"})
    job = jobs.claim("test-worker")
    assert job.kind == DRIFT
    result, media_type = JobRunner(store, Delivery(store), None, None).run(job)
    assert media_type == "application/json"
    assert json.loads(result)["flagged"] == ["D05"]
    with pytest.raises(NotFoundError):
        drift_document(store, "NOPE")
    with pytest.raises(ValueError, match="not an operational item"):
        drift_document(store, "DRF", items=["X"])
    store.import_framework(json.loads((DEMO / "framework.json").read_text()))
    with pytest.raises(ConflictError):
        drift_document(store, "AI-ML")
