"""Item parameter drift (calibration.drift): simulated drift with known truth."""

import numpy as np
import pytest

from irtcat.calibration.drift import DriftThresholds, detect_drift
from irtcat.calibration.fixed_calib import StackedResponses
from irtcat.calibration.workflow import CalibrationInputError, calibrate_document

N_ITEMS = 30
SHIFTED_B = ["Q00", "Q01", "Q02"]      # b + 0.5 in the new log
SHRUNK_A = ["Q03", "Q04"]              # a x 0.6 in the new log


def _log(seed, n_persons=2500, mean=0.3, drift=True):
    """A bank of 30 2PL items and a newer complete log of n_persons from N(mean, 1):
    the population moved (impact, not drift) and, with `drift`, 5 items drifted."""
    rng = np.random.default_rng(seed)
    a, b = np.exp(rng.normal(0, 0.25, N_ITEMS)), rng.normal(0, 1, N_ITEMS)
    ids = [f"Q{j:02d}" for j in range(N_ITEMS)]
    bank = {item: {"id": item, "model": "2pl", "a": float(a[j]), "b": float(b[j])}
            for j, item in enumerate(ids)}
    a_new, b_new = a.copy(), b.copy()
    if drift:
        b_new[:3] += 0.5
        a_new[3:5] *= 0.6
    theta = rng.normal(mean, 1.0, n_persons)
    x = (rng.random((n_persons, N_ITEMS)) <
         1 / (1 + np.exp(-a_new * (theta[:, None] - b_new)))).astype(float)
    return StackedResponses([f"p{i}" for i in range(n_persons)], ids, x), bank


@pytest.fixture(scope="module")
def drifted():
    return _log(11)


def test_drifted_items_are_flagged_and_stable_ones_not(drifted):
    # Simulation truth: the 5 drifted items are flagged; of the 25 stable ones at most 1
    # (|z| > 3 on a or b flags a stable item with probability about 0.005; the
    # expected-score criterion adds a little): the log's mean moved by 0.3, which the
    # population absorbs and no item's parameters. (Seed 11. Over seeds 3, 5 and 8 all
    # 15 drifted items but one are flagged too: at seed 8 a flat item, a = 0.72 at
    # b = -2.24, has an SE of 0.17 in b, and its shift of 0.5 reads z = 2.2.)
    data, bank = drifted
    report = detect_drift(data, bank)
    flagged = set(report.flagged())
    assert set(SHIFTED_B + SHRUNK_A) <= flagged
    assert len(flagged - set(SHIFTED_B + SHRUNK_A)) <= 1
    rows = {row.item: row for row in report.rows}
    for item in SHIFTED_B:        # b rose by 0.5: a positive z in b, a lower expected score
        assert rows[item].z["b"] > 3 and rows[item].expected_score_signed < -0.03
        assert rows[item].new["b"] - rows[item].old["b"] == pytest.approx(0.5, abs=0.2)
    for item in SHRUNK_A:
        assert rows[item].z["a"] < -3
        assert rows[item].new["a"] / rows[item].old["a"] == pytest.approx(0.6, abs=0.12)
    assert report.population[0] == pytest.approx(0.3, abs=0.1)


def test_together_mode_with_the_unstudied_items_holding_the_scale(drifted):
    data, bank = drifted
    studied = [f"Q{j:02d}" for j in range(15)]
    report = detect_drift(data, bank, studied=studied, mode="together", weights="normal")
    assert [row.item for row in report.rows] == studied
    flagged = set(report.flagged())
    assert set(SHIFTED_B + SHRUNK_A) <= flagged
    assert len(flagged - set(SHIFTED_B + SHRUNK_A)) <= 1


def test_each_mode_agrees_with_a_full_calibration_of_one_item(drifted):
    # "each" holds the population at the others' estimate; a full MML fit of the item
    # with every other item fixed estimates the population alongside. With 29 items
    # holding the scale the two differ by far less than the item's SE (0.05 to 0.1).
    data, bank = drifted
    report = detect_drift(data, bank, studied=["Q00", "Q10"], purify=False)
    for row in report.rows:
        anchors = {item: value for item, value in bank.items() if item != row.item}
        document, _ = calibrate_document(data, {row.item: "2pl"}, anchors=anchors, fit=False)
        full = next(item for item in document["items"] if item["id"] == row.item)
        assert row.new["a"] == pytest.approx(full["a"], abs=0.01)
        assert row.new["b"] == pytest.approx(full["b"], abs=0.01)
        assert row.converged


def test_no_drift_flags_at_most_one_stable_item():
    # The same design without drift (seed 3): every item stable.
    data, bank = _log(3, drift=False)
    report = detect_drift(data, bank, thresholds=DriftThresholds(z=3.0, expected_score=0.05))
    assert len(report.flagged()) <= 1
    assert max(row.expected_score_unsigned for row in report.rows) < 0.05


def test_items_outside_the_bank_and_thin_items_are_left_out(drifted):
    data, bank = drifted
    responses = np.column_stack([data.responses, data.responses[:, 0]])
    responses[50:, -1] = np.nan                          # a pretest item with 50 answers
    widened = StackedResponses(data.person_ids, [*data.item_ids, "P1"], responses)
    thin = dict(bank, P1={"id": "P1", "model": "2pl", "a": 1.0, "b": 0.0})
    report = detect_drift(widened, thin, studied=["Q05", "P1"])
    assert [row.item for row in report.rows] == ["Q05"]
    assert report.skipped == [{"id": "P1", "reason": "50 answers (fewer than 100)"}]
    report = detect_drift(widened, bank, studied=["Q05", "P1"])
    assert report.skipped[0]["id"] == "P1"


def test_together_needs_an_item_held_fixed(drifted):
    data, bank = drifted
    with pytest.raises(CalibrationInputError, match="at least one item held"):
        detect_drift(data, bank, mode="together")


def test_report_as_json(drifted):
    import json

    data, bank = drifted
    report = detect_drift(data, bank, studied=["Q00", "Q10"], purify=False)
    record = json.loads(json.dumps(report.as_dict()))
    assert record["flagged"] == report.flagged() == ["Q00"]
    assert [row["item"] for row in record["items"]] == ["Q00", "Q10"]
    assert record["thresholds"] == {"z": 3.0, "expected_score": 0.05, "min_answers": 100}
    assert record["items"][0]["z"]["b"] == pytest.approx(report.rows[0].z["b"])
