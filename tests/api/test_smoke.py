"""A whole session through the HTTP layer (tests/api/conftest.py's demo store)."""


def test_a_session_runs_to_a_result(api):
    session = api.start()
    item, answered = session["item"], 0
    while item is not None:
        response = api.answer(session, item["item_id"], item["options"][0]["id"])
        assert response.status_code == 200, response.json
        item, answered = response.json["item"], answered + 1
    result = api.call("GET", f"/v1/sessions/{session['session_id']}/result", api.delivery)
    assert result.status_code == 200
    assert result.json["status"] == "finished" and len(result.json["responses"]) == answered
    assert {s["code"] for s in result.json["standards"]} == {"AI-ML", "AI-DE", "AI-RAI"}
    assert result.json["decision"]["cut"] == 0.5
