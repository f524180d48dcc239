"""A test definition the bank cannot honour is refused with 422 and its reason (the same
check as `irtcat simulate`'s, engine.validation.check_design); a simulation's report has
the violations, and the exposure target keys when exposure is controlled."""

import pytest


@pytest.mark.parametrize("config, reason", [
    # Expected: the infeasible designs: content minimums 6 + 6 within 10 items;
    # an exposure target of 0.01 under 10 items a test over the bank's items.
    ({"content": [{"standard": "AI-ML", "min": 6}, {"standard": "AI-DE", "min": 6}],
      "stop": {"min_items": 5, "max_items": 10}}, "are over stop.max_items 10"),
    ({"exposure": {"method": "item-eligibility", "target": 0.01},
      "stop": {"min_items": 10, "max_items": 10, "se": None}}, "exposure.target 0.01 is under"),
])
def test_an_infeasible_test_is_refused_with_its_reason(api, config, reason):
    created = api.call("POST", "/v1/tests", api.admin,
                       json={"standards": ["AI-ML", "AI-DE"], "config": config})
    assert created.status_code == 422, created.get_data(True)
    message = created.json["error"]["message"]
    assert "cannot be honoured" in message and reason in message and "\n" not in message


def test_a_simulation_reports_violations_and_the_target(api):
    # Expected: a feasible design (target 0.5 over 10-item tests on the demo's AI-ML items)
    # breaks no rule; the report says the target and whether it was met.
    config = {"exposure": {"method": "item-eligibility", "target": 0.5},
              "content": [{"standard": "AI-ML", "min": 3}],
              "stop": {"min_items": 10, "max_items": 10, "se": None}}
    created = api.call("POST", "/v1/tests", api.admin,
                       json={"id": "eligible", "standards": ["AI-ML", "AI-DE"],
                             "config": config})
    assert created.status_code == 201, created.get_data(True)
    report = api.call("POST", "/v1/simulations", api.admin,
                      json={"test_id": "eligible", "examinees": 200})
    assert report.status_code == 200, report.get_data(True)
    assert report.json["violations"] == {"content": 0, "length": 0, "ended_early": 0}
    assert report.json["exposure"]["target"] == 0.5
    assert isinstance(report.json["exposure"]["target_met"], bool)
