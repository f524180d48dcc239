"""Graded items with a negative slope (reverse-keyed), as mirt estimates and scores them.

mirt's graded model is ``P*(X >= k) = expit(a theta + d_k)`` with d decreasing and no
sign constraint on a; its IRT form ``b_k = -d_k / a`` then decreases when a < 0. A bank
keeps such an item (flagged at calibration), reads it back, scores with it and
selects it by its information, which is a^2-weighted like any other item's. Both
M-steps estimate it, and so does the multiple-group EM.
"""

import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from irtcat.api.cli import _score
from irtcat.calibration.multigroup_bank import multigroup_document
from irtcat.calibration.workflow import calibrate_document
from irtcat.engine import ItemParameters, information
from irtcat.engine.estimation import estimate_theta
from irtcat.engine.simulate import simulate_responses
from irtcat.itembank import read_bank, read_response_log, read_responses

# Simulation truth: 8 graded items with 4 categories; item g0 is reverse-keyed.
TRUE_A = np.array([-1.3, 1.0, 1.4, 0.8, 1.7, 1.1, 0.9, 1.5])
TRUE_B = [[1.0, 0.0, -1.2], [-1.5, 0.0, 1.0], [-1.0, -0.2, 0.9], [-0.6, 0.4, 1.6],
          [-1.2, -0.4, 0.5], [-2.0, -0.5, 1.2], [-0.8, 0.6, 1.8], [-1.4, 0.2, 0.7]]
N_PERSONS = 3000


def _simulated_file(tmp_path):
    truth = ItemParameters.create("grm", TRUE_A, TRUE_B)
    rng = np.random.default_rng(20261205)
    answers = simulate_responses(rng.normal(size=N_PERSONS), truth, rng)
    path = tmp_path / "reverse_keyed.csv"
    frame = pd.DataFrame(answers, columns=[f"g{j}" for j in range(TRUE_A.size)])
    frame.rename_axis("person_id").to_csv(path)
    return path


@pytest.mark.parametrize("m_step", ["mirt", "newton"])
def test_a_reverse_keyed_graded_item_is_recovered_and_kept(tmp_path, m_step):
    document, _ = calibrate_document(read_response_log(_simulated_file(tmp_path)), "grm",
                                     standard_errors=True, fit=False, m_step=m_step)
    record = document["calibration"]
    assert "excluded" not in record
    assert [item["id"] for item in document["items"]] == [f"g{j}" for j in range(8)]
    assert record["n_parameters"] == 8 * 4          # a and 3 intercepts per item, none dropped
    reversed_item = document["items"][0]
    # simulation truth within 3.5 standard errors, the thresholds in the order a < 0 gives
    assert abs(reversed_item["a"] - TRUE_A[0]) < 3.5 * reversed_item["se"]["a"]
    for k, (estimate, truth) in enumerate(zip(reversed_item["b"], TRUE_B[0], strict=True)):
        assert abs(estimate - truth) < 3.5 * reversed_item["se"]["b"][k], k
    assert np.all(np.diff(reversed_item["b"]) < 0)
    intercepts = [reversed_item["slope_intercept"][f"d{k}"] for k in (1, 2, 3)]
    assert np.all(np.diff(intercepts) < 0)          # mirt's d decreasing whatever a's sign
    assert_allclose(reversed_item["b"], -np.array(intercepts) / reversed_item["a"], rtol=1e-4)
    assert reversed_item["fit"]["flagged"] and "negative" in reversed_item["fit"]["reason"]
    assert all(item["a"] > 0 for item in document["items"][1:])
    path = tmp_path / "bank.json"                   # the bank reads back (validated)
    path.write_text(json.dumps(document))
    bank = read_bank(path)
    assert bank.params.a[0] < 0


def test_a_reverse_keyed_graded_item_is_recovered_in_groups(tmp_path):
    # Two groups of the simulated persons, every item equal across groups and the
    # focal group's N(mean, var) free: the multiple-group EM (Newton M-steps) takes
    # g0's slope negative, within 3.5 SEs of the simulation truth.
    path = _simulated_file(tmp_path)
    frame = pd.read_csv(path)
    frame.insert(1, "group", np.where(np.arange(len(frame)) % 2, "f", "r"))
    grouped = tmp_path / "grouped.csv"
    frame.to_csv(grouped, index=False)
    data = read_responses(grouped, group="group")
    document, _ = multigroup_document(data, "grm", reference="r", standard_errors=True,
                                      invariance=("slopes", "intercepts", "free_means",
                                                  "free_var"), fit=False)
    item = document["items"][0]
    assert abs(item["a"] - TRUE_A[0]) < 3.5 * item["se"]["a"]
    assert np.all(np.diff(item["b"]) < 0)
    assert all(other["a"] > 0 for other in document["items"][1:])


def _mirror(params, items):
    """Closed form: an item with (-a, b reversed) and its categories reversed is the
    same item, since expit(-a (theta - b_(K-k))) = 1 - P*_(K-k) gives P'_k = P_(K-1-k).
    The graded bank `params` with `items` (positions) mirrored."""
    a = params.a.copy()
    b = [row[~np.isnan(row)] for row in params.b]
    for j in items:
        a[j], b[j] = -a[j], b[j][::-1]
    return ItemParameters.create(params.model, a, b)


@pytest.mark.parametrize("method", ["eap", "map", "ml", "wle"])
def test_scoring_with_a_negative_slope_graded_bank_is_scoring_its_mirror(tmp_path, method):
    # The bank as a file through `irtcat score`'s path (read, validated, aligned),
    # against the mirror image bank (every slope positive) scored on the reversed
    # answers of the mirrored items: the likelihoods are identical, so is every
    # estimate and SE.
    bank = ItemParameters.create("grm", [-1.3, 1.0, -0.8], [[1.0, 0.0, -1.2], [-1.5, 0.0, 1.0],
                                                             [0.9, -0.7, -0.8]])
    items = [{"id": f"g{j}", "model": "grm", "a": float(bank.a[j]),
              "b": bank.b[j].tolist()} for j in range(3)]
    bank_path = tmp_path / "bank.json"
    bank_path.write_text(json.dumps({"format": "irtcat-bank/1", "items": items,
                                     "population": {"mean": 0.0, "sd": 1.0}}))
    rng = np.random.default_rng(7)
    answers = simulate_responses(rng.normal(size=40), bank, rng)
    data_path = tmp_path / "answers.csv"
    frame = pd.DataFrame(answers, columns=["g0", "g1", "g2"]).rename_axis("person_id")
    frame.to_csv(data_path)
    _, _, estimate = _score(data_path, bank_path, method)
    flipped = answers.astype(float)
    flipped[:, [0, 2]] = 3 - flipped[:, [0, 2]]
    expected = estimate_theta(flipped, _mirror(bank, [0, 2]), method)
    assert np.array_equal(estimate.bounded, expected.bounded)
    assert_allclose(estimate.theta, expected.theta, atol=1e-6)
    assert_allclose(estimate.se, expected.se, atol=1e-6)


def test_cat_information_of_a_reverse_keyed_graded_item_is_its_mirrors():
    theta = np.linspace(-4, 4, 17)
    item = ItemParameters.create("grm", [-1.3], [[1.0, 0.0, -1.2]])
    info = information(theta, item)[:, 0]
    assert_allclose(info, information(theta, _mirror(item, [0]))[:, 0], rtol=1e-12)
    assert np.all(info > 0)
