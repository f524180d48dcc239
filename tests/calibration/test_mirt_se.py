"""Standard errors of the multidimensional fit (calibration.mirt_se) against mirt's
Oakes standard errors in tests/data/refs2/simmdim_3000x45__cfa3.json (items[].se_a*,
se_d; latent.se COV_21, COV_31, COV_32), and the score they differentiate against
finite differences of the marginal log-likelihood."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from irtcat.calibration.mirt_em import MirtCalibrator
from irtcat.calibration.mirt_se import marginal_score, standard_errors

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


@pytest.mark.runs_long
def test_standard_errors_match_mirt():
    # The fit lands on mirt's estimates (test_mirt_em.py), and every SE is within 0.1 %
    # of mirt's (the largest relative gap measured is 2.8e-5).
    reference = json.loads((DATA / "refs2" / "simmdim_3000x45__cfa3.json").read_text())
    responses = pd.read_csv(DATA / "refs2" / "simmdim_3000x45.csv",
                            index_col=0).to_numpy(float)
    loadings = np.zeros((45, 3), bool)
    for factor in range(3):
        loadings[15 * factor: 15 * (factor + 1), factor] = True
    calibrator = MirtCalibrator("2pl", loadings, np.ones((3, 3), bool)).fit(responses)
    errors = standard_errors(calibrator, responses)
    assert errors["positive_definite"]
    theirs = np.array([[item[f"se_a{k}"] if item[f"se_a{k}"] is not None else np.nan
                        for k in (1, 2, 3)] for item in reference["items"]])
    assert np.array_equal(np.isnan(theirs), np.isnan(errors["slopes"]))
    ratio = errors["slopes"][~np.isnan(theirs)] / theirs[~np.isnan(theirs)]
    assert np.abs(ratio - 1).max() < 1e-3
    se_d = np.array([item["se_d"] for item in reference["items"]])
    assert np.abs(np.array(errors["intercepts"]) / se_d - 1).max() < 1e-3
    latent = reference["latent"]["se"]
    for (i, j), key in (((1, 0), "COV_21"), ((2, 0), "COV_31"), ((2, 1), "COV_32")):
        assert errors["correlation"][i, j] == pytest.approx(latent[key], rel=1e-3)
    assert np.isnan(np.diag(errors["correlation"])).all()


@pytest.mark.parametrize("model", ["2pl", "3pl", "gpcm"])
def test_the_marginal_score_is_the_log_likelihood_gradient(model):
    # Fisher's identity, checked against central differences of the marginal
    # log-likelihood (log_likelihood_at) at a point away from the maximum.
    rng = np.random.default_rng(11)
    theta = rng.standard_normal((300, 2)) @ np.linalg.cholesky([[1, 0.4], [0.4, 1]]).T
    slopes = np.zeros((8, 2))
    slopes[:4, 0], slopes[4:, 1], slopes[3, 1] = 1.2, 1.0, 0.5
    levels = 3 if model == "gpcm" else 2
    z = theta @ slopes.T
    responses = np.minimum((rng.random(z.shape) < 1 / (1 + np.exp(-z))) * 1
                           + (rng.random(z.shape) < 0.3), levels - 1).astype(float)
    calibrator = MirtCalibrator(model, slopes != 0, np.ones((2, 2), bool), max_iter=3)
    with pytest.warns(Warning):
        calibrator.fit(responses)
    _, design = calibrator.designs(responses)
    center = calibrator._raw(calibrator.correlation_)
    score = marginal_score(calibrator, design, center)

    def loglik(vector):
        correlation = calibrator._set_raw(vector, calibrator.correlation_)
        value = calibrator._e_step(design, correlation)[2]
        calibrator._set_raw(center, calibrator.correlation_)
        return value

    for i in range(center.size):
        step = np.zeros_like(center)
        step[i] = 1e-5
        numeric = (loglik(center + step) - loglik(center - step)) / 2e-5
        assert score[i] == pytest.approx(numeric, rel=1e-4, abs=1e-4)
