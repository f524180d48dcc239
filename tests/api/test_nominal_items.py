"""Nominal items delivered through the HTTP layer: imported, given in a session, scored.

The demo store of tests/api/conftest.py with its graded items re-imported as nominal
items (category scores ak, engine.models): the session and /v1/score must use them
under that model, with the probabilities of their scores, not fail or fall back.
"""

import numpy as np
from conftest import demo_items

from irtcat.engine.estimation import estimate_eap
from irtcat.engine.models import parameters_from_entries


def nominal_items():
    """The demo items, every graded one made nominal (3 categories, ak = [0, 0.4, 2])."""
    document = demo_items()
    for item in document["items"]:
        if item["model"] == "grm" and "b" in item:
            item.update(model="nominal", ak=[0.0, 0.4, 2.0])
    return document


def test_a_session_and_a_score_use_nominal_items(api):
    document = nominal_items()
    api.store.import_items(document)
    nominal = [item for item in document["items"] if item["model"] == "nominal"]
    assert len(nominal) == 9

    session = api.start()
    item, answered = session["item"], 0
    while item is not None:
        response = api.answer(session, item["item_id"], item["options"][-1]["id"])
        assert response.status_code == 200, response.json
        item, answered = response.json["item"], answered + 1
    result = api.call("GET", f"/v1/sessions/{session['session_id']}/result", api.delivery)
    assert result.status_code == 200, result.json
    assert result.json["status"] == "finished" and len(result.json["responses"]) == answered

    # The nine nominal items in their top category and one 2PL item right: EAP (121
    # nodes, N(0, 1)) under the items' own parameters, rounded to 0.1 as /v1/score gives it.
    two_pl = next(item for item in document["items"] if item["model"] == "2pl" and "b" in item)
    chosen = [*nominal, two_pl]
    reply = api.call("POST", "/v1/score", api.delivery, json={"responses": [
        {"item_id": item["id"], "response": 2 if item["model"] == "nominal" else 1}
        for item in chosen]})
    assert reply.status_code == 200, reply.json
    params = parameters_from_entries([{key: item[key] for key in ("model", "a", "ak", "b")
                                       if key in item} for item in chosen])
    expected = estimate_eap(np.array([[2.0] * 9 + [1.0]]), params).theta[0]
    assert reply.json["theta"] == round(expected, 1)
