"""The exposure figures show pretest items on their own: the simulation report's (the
JSON's "pretest" block, kept out of its exposure figures) and a test's live exposure
report. The figures' data are read off the bar charts as drawn (matplotlib's Axes.bar
recorded); the expected rates are the simulation truth (administered counts / persons)
or the figures given."""

import matplotlib.axes
import numpy as np
import pytest

from irtcat.api.program_report import exposure_report
from irtcat.api.report import (
    PRETEST_COLOR,
    exposure_series,
    simulation_details,
    simulation_report_html,
)
from irtcat.api.simulation_report import report
from irtcat.delivery.cat_config import design_from_config
from irtcat.engine.simulate import run_cat
from irtcat.itembank import bank_from_document


@pytest.fixture
def bars(monkeypatch):
    """Every Axes.bar call drawn while the test runs: (heights ndarray, label, color)."""
    drawn = []
    original = matplotlib.axes.Axes.bar

    def recording(self, x, height, *args, **kwargs):
        drawn.append((np.asarray(height, dtype=float), kwargs.get("label"),
                      kwargs.get("color")))
        return original(self, x, height, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", recording)
    return drawn


def _bank(n_items=45, n_pretest=5):
    rng = np.random.default_rng(4)
    items = [{"id": f"I{j:02d}", "model": "2pl", "a": round(float(rng.lognormal(0, .25)), 3),
              "b": round(float(rng.normal()), 3),
              **({"status": "pretest"} if j >= n_items - n_pretest else {})}
             for j in range(n_items)]
    return bank_from_document({"format": "irtcat-bank/1", "items": items})


def test_the_simulation_reports_figure_draws_pretest_items_apart(bars):
    bank = _bank()
    design = design_from_config({"pretest": {"count": 2},
                                 "stop": {"min_items": 8, "max_items": 8, "se": None}}, bank)
    theta = np.random.default_rng(9).normal(size=300)
    batches = run_cat(bank.params, design, np.random.default_rng(10), true_theta=theta)
    administered = np.concatenate([batch.administered for batch in batches])
    truth = administered.sum(axis=0) / theta.size                       # (45,)
    details = simulation_details(batches, design, bank.item_ids, true_theta=theta)
    assert details["pretest"] == [j >= 40 for j in range(45)]

    series = exposure_series(details)
    pretest_ids, pretest_rates = series["pretest"]
    assert sorted(pretest_ids) == bank.item_ids[40:]
    np.testing.assert_allclose(np.sort(pretest_rates), np.sort(truth[40:]))
    assert pretest_rates.sum() == pytest.approx(2.0)                # 2 pretest items a test
    operational_ids, operational_rates = series["operational"]
    assert len(operational_ids) == 40 and operational_rates.sum() == pytest.approx(8.0)

    page = simulation_report_html(report(batches, design, 0.0, true_theta=theta), details)
    drawn = {label: (heights, color) for heights, label, color in bars}
    np.testing.assert_allclose(drawn["pretest (unscored)"][0], pretest_rates)
    assert drawn["pretest (unscored)"][1] == PRETEST_COLOR
    np.testing.assert_allclose(drawn["operational"][0], operational_rates)
    assert 'class="pretest-exposure"' in page and "5 pretest items" in page


def test_a_simulation_without_pretest_draws_one_series(bars):
    details = {"item_ids": ["a", "b"], "exposure": [0.5, 0.7], "lengths": [1, 1]}
    series = exposure_series(details)
    assert series["operational"][0] == ["b", "a"] and series["pretest"][0] == []
    simulation_report_html({"examinees": 2, "exposure": {}}, details)
    assert [label for _, label, _ in bars if label] == ["operational"]   # hist draws bars too


def test_the_live_exposure_reports_figure_draws_pretest_items_apart(bars):
    items = [{"item_id": "op1", "pretest": False, "administered": 30, "ineligible": 0,
              "rate": 0.3},
             {"item_id": "op2", "pretest": False, "administered": 18, "ineligible": 2,
              "rate": 0.18},
             {"item_id": "pt1", "pretest": True, "administered": 5, "ineligible": 0,
              "rate": 0.05},
             {"item_id": "pt2", "pretest": True, "administered": 12, "ineligible": 0,
              "rate": 0.12}]
    figures = {"test_id": "t", "items": items, "sessions": 100, "max_rate": 0.3,
               "overlap_rate": 0.1, "mean_length": 0.48, "unused_share": 0.0, "days": []}
    page = exposure_report(figures, 0.2, "item-eligibility")
    drawn = {label: (heights, color) for heights, label, color in bars}
    np.testing.assert_allclose(drawn["operational"][0], [0.3, 0.18])
    np.testing.assert_allclose(drawn["pretest (unscored)"][0], [0.12, 0.05])
    assert drawn["pretest (unscored)"][1] == PRETEST_COLOR
    assert "then the 2 pretest items" in page


def test_the_gate_report_shows_a_polytomous_items_thresholds_and_smd():
    # The row's shape is `calibrate_and_gate`'s for a grm item (its values from
    # tests/delivery/test_online_gates_polytomous.py's biased item, rounded).
    from irtcat.api.program_report import gate_report

    row = {"item": "biased", "answers": 2444, "decision": "held",
           "reasons": ["DIF class C on group = F (SMD/SD -0.3859)"],
           "parameters": {"model": "grm", "a": 1.07, "b": [-0.77, 0.17, 1.3]},
           "gates": {"answers": {"passed": True, "value": 2444},
                     "precision": {"passed": True, "value": {"a": 0.05, "b": [0.05, 0.04,
                                                                              0.06]}},
                     "fit": {"passed": True, "value": {"x2": 20.6, "df": 26, "p": 0.76,
                                                       "p_adjusted": 0.76}},
                     "dif": {"passed": False, "reason": "DIF class C on group = F",
                             "value": [{"attribute": "group", "focal": "F",
                                        "method": "mantel", "smd": -0.4562,
                                        "smd_sd": -0.3859, "p": 0.0, "class": "C",
                                        "reason": None}]},
                     "plausibility": {"passed": True, "value": {
                         "a": 1.07, "b": [-0.77, 0.17, 1.3], "slope_range": [0.2, 4.0],
                         "theta_range": [-2.6, 2.5]}}}}
    page = gate_report({"id": 1, "status": "done", "items": [row]}, "AI-ML")
    assert "-0.7700, 0.1700, 1.3000" in page                     # the thresholds
    assert "SE(b) 0.0500, 0.0400, 0.0600" in page
    assert "group=F: class C (SMD/SD -0.3859)" in page
