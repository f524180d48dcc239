"""Calibrating Bock's nominal model against mirt, and `irtcat calibrate --model nominal`
end to end (bank, `irtcat score`, `irtcat simulate`).

References: tests/data/refs2/Bock1997__nominal.json and Science__nominal.json,
``mirt(data, 1, itemtype = 'nominal', SE = TRUE)`` (mirt 1.45.1; SE.type Oakes).
Tolerances (the acceptance criteria): logLik within 0.01; a1, ak, d and the IRT
form (``coef(IRTpars = TRUE)``) within 0.02; EAP and its SE within 2e-3 (the
score tests' tolerance, tests/engine/test_estimation.py). Standard errors within
0.1 % relative: ours are central differences of the analytic marginal gradient
(calibration.standard_errors), mirt's Oakes estimate differences the same gradient
at the same estimate, so they differ by differencing error only (at most 3e-4
relative here, on Science's flatter likelihood).
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from irtcat.api.cli import main
from irtcat.calibration.linking import LinkingConstants, transform_parameters
from irtcat.calibration.mml_em import MMLCalibrator
from irtcat.calibration.responses import from_dense
from irtcat.calibration.results import item_documents
from irtcat.engine.models import ItemParameters, category_probability, nominal_irt_form
from irtcat.itembank import read_bank
from irtcat.itembank.io import read_responses

DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = ["Bock1997", "Science"]
LOGLIK_TOL = 0.01
PARAMETER_TOL = 0.02
SCORE_TOL = 2e-3
SE_RTOL = 1e-3


def reference(name):
    return json.loads((DATA / "refs2" / f"{name}__nominal.json").read_text())


@functools.cache
def fitted(name):
    """(item documents with SEs, covariance, calibrator) of the nominal fit."""
    data = read_responses(DATA / f"{name}.csv")
    responses = from_dense(data.responses)
    calibrator = MMLCalibrator("nominal").fit(responses)
    documents, cov = item_documents(calibrator, list(data.item_ids), responses,
                                    standard_errors=True)
    return documents, cov, calibrator


def mirt_name(name):
    return "a1" if name == "a" else name


@pytest.mark.parametrize("name", NAMES)
def test_loglik_and_em_cycles_are_mirts(name):
    ref = reference(name)                      # keys "logLik", "em_cycles"
    _, _, calibrator = fitted(name)
    assert abs(calibrator.log_likelihood_ - ref["logLik"]) <= LOGLIK_TOL
    # mirt's starting values and M-step path: the same EM cycles (34 and 71).
    assert calibrator.n_iter_ == ref["em_cycles"]
    assert calibrator.n_parameters_ == ref["n_parameters"]


@pytest.mark.parametrize("name", NAMES)
def test_slope_intercept_parameters_and_standard_errors_are_mirts(name):
    documents, _, _ = fitted(name)
    for document, item in zip(documents, reference(name)["items"], strict=True):  # "items"
        assert document["id"] == item["id"]
        for key, value in document["slope_intercept"].items():
            assert abs(value - item["par"][mirt_name(key)]) <= PARAMETER_TOL, (item["id"], key)
        for key, value in document["se_slope_intercept"].items():
            assert value == pytest.approx(item["se"][mirt_name(key)], rel=SE_RTOL), key
        # The fixed ones: ak0 = 0, ak_{K-1} = K - 1, no SE.
        n_categories = len(document["ak"])
        assert document["ak"][0] == 0.0 and document["ak"][-1] == n_categories - 1
        assert document["se"]["ak"][0] is None and document["se"]["ak"][-1] is None


@pytest.mark.parametrize("name", NAMES)
def test_irt_form_and_its_standard_errors_are_mirts(name):
    # "items_IRTpars": a_k = a1 ak_k and c_k = d_k centred, delta-method SEs. Ours: the
    # same map applied to our estimates, its Jacobian by central differences.
    documents, cov, calibrator = fitted(name)
    block, = calibrator.blocks_

    def irt_form(eta):
        irt = block.irt(eta)
        return np.hstack(nominal_irt_form(irt["a"], irt["ak"], irt["b"]))   # (n, 2K)

    center, step = block.eta, 1e-6
    n_items, n_params = center.shape
    jacobian = np.zeros((n_items, irt_form(center).shape[1], n_params))
    for column in range(n_params):
        up, down = center.copy(), center.copy()
        up[:, column] += step
        down[:, column] -= step
        jacobian[:, :, column] = (irt_form(up) - irt_form(down)) / (2 * step)
    values = irt_form(center)
    for row, item in enumerate(reference(name)["items_IRTpars"]):
        n_categories = values.shape[1] // 2
        names = [f"a{k}" for k in range(1, n_categories + 1)] + [
            f"c{k}" for k in range(1, n_categories + 1)]
        assert_allclose(values[row], [item["par"][key] for key in names], rtol=0,
                        atol=PARAMETER_TOL)
        index = row * n_params + np.arange(n_params)
        item_cov = cov[np.ix_(index, index)]
        se = np.sqrt(np.einsum("ip,pq,iq->i", jacobian[row], item_cov, jacobian[row]))
        assert_allclose(se, [item["se"][key] for key in names], rtol=SE_RTOL)


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name", NAMES)
def test_the_command_line_calibrates_scores_and_simulates_a_nominal_bank(name, capsys,
                                                                          tmp_path):
    ref = reference(name)
    bank_path, scores_path = tmp_path / "bank.json", tmp_path / "scores.csv"
    status, _, err = run(capsys, "calibrate", DATA / f"{name}.csv", "--model", "nominal",
                         "--out", bank_path, "--quiet")
    assert status == 0, err
    document = json.loads(bank_path.read_text())
    assert abs(document["calibration"]["loglik"] - ref["logLik"]) <= LOGLIK_TOL
    bank = read_bank(bank_path)
    assert set(bank.params.model) == {"nominal"}
    for item, mirt_item in zip(document["items"], ref["items"], strict=True):
        assert item["model"] == "nominal" and len(item["ak"]) == len(item["b"]) + 1
        assert abs(item["a"] - mirt_item["par"]["a1"]) <= PARAMETER_TOL

    # refs2 "scores": EAP and SE of persons 1-20 (121 points on [-6, 6], N(0, 1) prior)
    status, _, err = run(capsys, "score", DATA / f"{name}.csv", "--bank", bank_path,
                         "--out", scores_path)
    assert status == 0, err
    rows = [line.split(",") for line in scores_path.read_text().splitlines()[1:21]]
    assert [row[0] for row in rows] == ref["scores"]["person_id"]
    assert_allclose([float(row[1]) for row in rows], ref["scores"]["EAP"]["theta"], rtol=0,
                    atol=SCORE_TOL)
    assert_allclose([float(row[2]) for row in rows], ref["scores"]["EAP"]["se"], rtol=0,
                    atol=SCORE_TOL)

    config = tmp_path / "cat.json"
    config.write_text(json.dumps({"stop": {"max_items": 5, "se": 0.1}}))
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config", config,
                           "--examinees", 200, "--seed", 3)
    assert status == 0, err
    report = json.loads(out)
    assert report["examinees"] == 200
    # The SE target is out of reach: every simulee answers the whole bank.
    assert report["mean_length"] == len(document["items"])
    assert 0 < report["rmse"] < 1


def test_a_nominal_item_without_its_scores_is_bad_input(capsys, tmp_path):
    bank_path = tmp_path / "bank.json"
    bank_path.write_text(json.dumps({"format": "irtcat-bank/1", "items": [
        {"id": "Item.1", "model": "nominal", "a": 0.8, "b": [-0.9, 0.2, 0.7]}]}))
    status, _, err = run(capsys, "score", DATA / "Bock1997.csv", "--bank", bank_path)
    assert status == 2
    assert err.count("\n") == 1 and "ak" in err and "Traceback" not in err


def test_linking_moves_a_nominal_item_to_the_old_scale():
    # transform_parameters: theta_old = A theta_new + B leaves every probability as it was.
    new = ItemParameters.create(["nominal", "gpcm"], [0.8, 1.2], [[-0.9, 0.2, 0.7], [0.3, -0.4]],
                                ak=[[0.0, 1.6, 1.2, 3.0], None])
    constants = LinkingConstants(1.3, -0.4, "mean-sigma", 2)
    old = transform_parameters(new, constants)
    theta_new = np.linspace(-3, 3, 13)
    assert_allclose(category_probability(constants.A * theta_new + constants.B, old),
                    category_probability(theta_new, new), rtol=1e-12, atol=1e-15)
