"""DIF on live data over the API (POST /v1/dif, delivery/dif.py) and the learner
attributes a session start stores for it.

The store is seeded with simulated adaptive sessions (SEED): a 20-item 2PL standard
whose published parameters are the simulation truth, each session's items chosen by
the engine's CAT (`engine.simulate.run_cat`, 12 items of 20, so the data are sparse)
from a complete answer sheet drawn with `engine.simulate.simulate_responses`. Items
DIF-03 and DIF-12 carry uniform DIF: for the focal group (attribute group = "F")
their difficulty is higher by SHIFT, so they favour the reference group (truth:
delta_MH < 0, alpha_MH > 1); the other 18 items have none. With 1500 persons per
group the DIF items must be classed B or C and at most one other item flagged.
"""

import json
import secrets

import numpy as np
import pytest
from sqlalchemy import insert

from irtcat.delivery.cat_config import design_from_config
from irtcat.delivery.keys import digest, new_token
from irtcat.engine.models import parameters_from_entries
from irtcat.engine.simulate import run_cat, simulate_responses
from irtcat.itembank.bank import ItemBank
from irtcat.itembank.schema import DeliverySession, utc_now

SEED = 20261205
N_ITEMS, PER_GROUP, WITHOUT_ATTRIBUTE = 20, 1500, 40
DIF_ITEMS = ("DIF-03", "DIF-12")
SHIFT = 0.8
ASYNC = {"Prefer": "respond-async"}


def _items(rng):
    items = []
    for j in range(1, N_ITEMS + 1):
        items.append({"id": f"DIF-{j:02d}", "standard": "DIF", "model": "2pl",
                      "status": "operational", "a": round(float(rng.uniform(0.9, 1.8)), 3),
                      "b": round(float(rng.uniform(-1.5, 1.5)), 3),
                      "content": {"stem": f"Question {j}",
                                  "options": [{"id": "A", "text": "yes"},
                                              {"id": "B", "text": "no"}]},
                      "key": {"correct": "A"}})
    return items


def _seed_sessions(api, rng, max_items=12, per_group=PER_GROUP):
    """Simulated finished CAT sessions of test "dif" (`max_items` of the 20 items) with
    their attributes and answers: `per_group` persons per group and WITHOUT_ATTRIBUTE."""
    items = _items(rng)
    api.store.import_framework({"format": "irtcat-framework/1",
                                 "standards": [{"code": "DIF", "title": "DIF study"}]})
    api.store.import_items({"format": "irtcat-bank/1", "items": items})
    assert api.call("POST", "/v1/tests", api.admin, json={
        "id": "dif", "standards": ["DIF"],
        "config": {"stop": {"max_items": max_items}}}).status_code == 201
    reference = parameters_from_entries(items)
    focal_items = [dict(item, b=item["b"] + SHIFT) if item["id"] in DIF_ITEMS else item
                   for item in items]
    focal = parameters_from_entries(focal_items)
    n = 2 * per_group + WITHOUT_ATTRIBUTE
    is_focal = np.arange(n) % 2 == 1
    theta = rng.normal(0.0, 1.0, n) - 0.3 * is_focal         # the focal group is lower
    sheet = np.where(is_focal[:, None], simulate_responses(theta, focal, rng),
                     simulate_responses(theta, reference, rng))
    design = design_from_config({"stop": {"max_items": max_items}},
                                ItemBank(tuple(items), reference))
    cat = run_cat(reference, design, rng, responses=sheet)[0]
    versions = api.store.current_version_ids(["DIF"])
    sessions, answers = [], []
    for person in range(n):
        session_id = f"s_sim{person:05d}"
        attributes = None if person >= 2 * per_group else \
            {"group": "F" if is_focal[person] else "R", "site": "north"}
        sessions.append({"id": session_id, "test_id": "dif", "learner_id": f"p{person}",
                         "token_digest": digest(new_token()), "status": "finished",
                         "versions": versions, "seed": secrets.randbits(62),
                         "position": int(cat.length[person]), "created_at": utc_now(),
                         "attributes": attributes})
        for position in range(int(cat.length[person])):
            item = items[int(cat.items[person, position])]["id"]
            answers.append({"session_id": session_id, "learner_id": f"p{person}",
                            "item_id": item, "raw_response": None,
                            "score": int(cat.responses[person, position])})
    with api.store.database.writing() as session:
        session.execute(insert(DeliverySession.__table__), sessions)
    api.store.add_responses(answers)
    return items


@pytest.fixture
def seeded(api):
    _seed_sessions(api, np.random.default_rng(SEED))
    return api


def _dif(api, headers=None, **body):
    request = {"standard": "DIF", "attribute": "group", "focal": "F", **body}
    return api.call("POST", "/v1/dif", api.admin, json=request, headers=headers or {})


def _result(api, response):
    """The DIF document of a 200, or of the job a 202 names once it is done."""
    if response.status_code == 202:
        location = response.headers["Location"]
        for _ in range(3000):
            status = api.call("GET", location, api.admin).json["status"]
            if status in ("done", "failed"):
                break
            api.worker.thread.join(0.05)
        assert status == "done", api.call("GET", location, api.admin).json
        response = api.call("GET", f"{location}/result", api.admin)
    assert response.status_code == 200, response.get_data(True)
    return response.json


def test_dif_over_the_api_finds_the_simulated_dif_items(seeded):
    """Theta-matched MH on the simulated adaptive sessions (module docstring, SEED)."""
    document = _result(seeded, _dif(seeded, purify=True))
    assert document["method"] == "mh" and document["matching"] == "theta"
    assert document["standard"] == "DIF" and document["focal"] == "F"
    assert document["reference"] == ["R"]
    assert document["persons"] == {"reference": PER_GROUP, "focal": PER_GROUP,
                                   "without_attribute": WITHOUT_ATTRIBUTE}
    rows = {row["item"]: row for row in document["items"]}
    assert len(rows) == N_ITEMS
    for item in DIF_ITEMS:                      # truth: harder for the focal group
        assert rows[item]["tested"], rows[item]
        assert rows[item]["ets_class"] in ("B", "C"), rows[item]
        assert rows[item]["delta_mh"] < 0 and rows[item]["alpha_mh"] > 1
        assert rows[item]["signed_difference"] > 0, rows[item]
    false_flags = [item for item, row in rows.items()
                   if item not in DIF_ITEMS and (row["flagged"] or row["ets_class"] != "A")]
    assert len(false_flags) <= 1, false_flags
    row = rows[DIF_ITEMS[0]]
    for column in ("alpha_mh", "mh_chi2", "p", "delta_mh", "se_delta", "ets_class",
                   "tested", "reason", "n_reference", "n_focal", "signed_difference",
                   "unsigned_difference", "effect_reason"):
        assert column in row
    assert 0 < row["n_focal"] <= PER_GROUP and 0 < row["n_reference"] <= PER_GROUP


def test_dif_is_a_queued_job_202_then_the_result(seeded):
    queued = _dif(seeded, headers=ASYNC)
    assert queued.status_code == 202
    assert queued.headers["Location"].startswith("/v1/jobs/")
    assert queued.json["kind"] == "dif"
    document = _result(seeded, queued)
    assert {row["item"] for row in document["items"]} == {f"DIF-{j:02d}"
                                                          for j in range(1, N_ITEMS + 1)}


def test_lr_on_adaptive_data_is_refused_as_too_sparse(seeded):
    response = _dif(seeded, method="lr")
    error = _envelope(response, 422)
    assert "dense" in error["message"] and "mh" in error["message"]


def test_lr_on_a_fixed_form_finds_the_simulated_dif_items(api):
    """Likelihood-ratio DIF (mirt's DIF() drop scheme) on dense data: every session of a
    20-item fixed form, 600 persons per group (SEED). With every other item as anchors
    (DIF items too) an item's test is not exact; at the Bonferroni level .05 / 20 the
    two DIF items are flagged and at most one other."""
    _seed_sessions(api, np.random.default_rng(SEED), max_items=N_ITEMS, per_group=600)
    document = _result(api, _dif(api, method="lr"))
    assert (document["method"], document["matching"]) == ("lr", None)
    assert document["persons"] == {"reference": 600, "focal": 600,
                                   "without_attribute": WITHOUT_ATTRIBUTE}
    level = 0.05 / N_ITEMS
    rows = {row["item"]: row for row in document["items"]}
    assert all(row["tested"] and row["df"] == 2 for row in rows.values())
    assert all(rows[item]["p"] < level for item in DIF_ITEMS)
    assert len([item for item, row in rows.items()
                if item not in DIF_ITEMS and row["p"] < level]) <= 1
    assert "d_focal" in rows[DIF_ITEMS[0]] and "d_reference" in rows[DIF_ITEMS[0]]


def _envelope(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(True))
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def test_bad_dif_requests_answer_in_the_envelope(seeded):
    assert _envelope(_dif(seeded, standard="NOPE"), 404)["code"] == "not_found"
    error = _envelope(_dif(seeded, attribute="gender"), 422)
    assert error["code"] == "validation_error" and "gender" in error["message"]
    error = _envelope(_dif(seeded, focal="X"), 422)
    assert "'X'" in error["message"]
    error = _envelope(_dif(seeded, attribute="site", focal="north"), 422)
    assert "no reference group" in error["message"]
    assert _envelope(_dif(seeded, method="irt"), 400)["code"] == "validation_error"
    assert _envelope(_dif(seeded, attribute="Group"), 400)["code"] == "validation_error"
    assert _envelope(seeded.call("POST", "/v1/dif", seeded.delivery, json={
        "standard": "DIF", "attribute": "group", "focal": "F"}), 403)


def test_a_standard_without_a_published_version_is_a_conflict(api):
    api.store.import_framework({"format": "irtcat-framework/1",
                                 "standards": [{"code": "EMPTY", "title": "No items"}]})
    error = _envelope(api.call("POST", "/v1/dif", api.admin, json={
        "standard": "EMPTY", "attribute": "group", "focal": "F"}), 409)
    assert error["code"] == "conflict"


# --- learner attributes at a session's start ------------------------------------------

def _start(api, **extra):
    return api.call("POST", "/v1/sessions", api.delivery,
                    json={"test_id": "credential", "learner_id": "l-1", **extra})


def test_a_session_stores_its_attributes_and_never_shows_them(api):
    attributes = {"group": "F", "first_language": "not-english-7f3a"}
    started = _start(api, attributes=attributes)
    assert started.status_code == 201
    session = started.json
    row = api.store.database
    from irtcat.itembank.sessions import session_snapshot

    stored, _ = session_snapshot(row, session["session_id"])
    assert stored.attributes == attributes
    bodies = [started.get_data(True)]
    item = session["item"]
    while item is not None:
        reply = api.answer(session, item["item_id"], item["options"][0]["id"])
        bodies.append(reply.get_data(True))
        item = reply.json["item"]
    for path in (f"/v1/sessions/{session['session_id']}",
                 f"/v1/sessions/{session['session_id']}/result"):
        bodies.append(api.call("GET", path, api.delivery).get_data(True))
        bodies.append(api.call("GET", path, session["token"]).get_data(True))
    for body in bodies:
        assert "not-english-7f3a" not in body and "first_language" not in body
        assert "attributes" not in json.loads(body)


def test_attribute_rules(api):
    assert _start(api, attributes={}).status_code == 201
    too_many = {f"k{n}": "v" for n in range(9)}
    assert _envelope(_start(api, attributes=too_many), 400)["code"] == "validation_error"
    assert _envelope(_start(api, attributes={"group": "x" * 65}), 400)
    assert _envelope(_start(api, attributes={"group": 3}), 400)
    error = _envelope(_start(api, attributes={"Group": "F"}), 422)    # a key: no schema
    assert error["code"] == "validation_error" and "Group" in error["message"]
    assert _envelope(_start(api, attributes={"g" * 33: "F"}), 422)


# --- the calibration report's DIF section ---------------------------------------------

def test_the_calibration_report_shows_a_dif_job(seeded):
    queued = _dif(seeded, headers=ASYNC, purify=True)
    dif_job = queued.json["id"]
    document = _result(seeded, queued)
    started = seeded.call("POST", "/v1/calibrations", seeded.admin,
                          json={"standard": "DIF", "model": "2pl"})
    assert started.status_code == 202, started.json
    run_id = started.json["id"]
    for _ in range(3000):
        run = seeded.call("GET", f"/v1/calibrations/{run_id}", seeded.admin).json
        if run["status"] in ("done", "failed"):
            break
        seeded.worker.thread.join(0.05)
    assert run["status"] == "done", run
    path = f"/v1/calibrations/{run_id}/report"
    page = _result_page(seeded, seeded.call("GET", f"{path}?dif_job={dif_job}", seeded.admin))
    assert '<h2 id="dif">' in page
    large = [row["item"] for row in document["items"] if row["ets_class"] in ("B", "C")]
    assert set(DIF_ITEMS) <= set(large)
    for item in large:                      # marked rows, first in the table
        assert f'<tr class="flagged"><td>{item}</td>' in page
    assert '<h2 id="dif">' not in _result_page(seeded, seeded.call("GET", path, seeded.admin))
    assert _envelope(seeded.call("GET", f"{path}?dif_job=999999", seeded.admin),
                     404)["code"] == "not_found"
    other = _dif(seeded, headers=ASYNC, focal="nobody").json["id"]      # a failed DIF job
    _result_page(seeded, seeded.call("GET", f"/v1/jobs/{other}", seeded.admin), done=False)
    assert _envelope(seeded.call("GET", f"{path}?dif_job={other}", seeded.admin),
                     409)["code"] == "conflict"


def _result_page(api, response, done=True):
    """The body of a 200, or of the job a 202 or a job status names once it ends."""
    if response.status_code == 200 and "status" not in (response.get_json(silent=True) or {}):
        return response.get_data(True)
    location = response.headers.get("Location") or f"/v1/jobs/{response.json['id']}"
    location = location.removesuffix("/result")
    for _ in range(3000):
        status = api.call("GET", location, api.admin).json["status"]
        if status in ("done", "failed"):
            break
        api.worker.thread.join(0.05)
    assert status == ("done" if done else "failed")
    return api.call("GET", f"{location}/result", api.admin).get_data(True) if done else None
