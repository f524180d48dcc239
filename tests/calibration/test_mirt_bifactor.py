"""The bifactor model (calibration.bifactor): Gibbons and Hedeker's dimension
reduction against the full grid, and recovery on a seeded simulation."""

import numpy as np
import pytest

from irtcat.calibration.bifactor import bifactor_loadings
from irtcat.calibration.mirt_em import MirtCalibrator


def simulate(seed=20261205, n_persons=1500):
    """General factor on 16 items, two specific factors on items 0-7 and 8-15."""
    rng = np.random.default_rng(seed)
    loadings = bifactor_loadings([list(range(8)), list(range(8, 16))], 16)
    slopes = np.where(loadings, rng.uniform(0.6, 1.6, loadings.shape), 0.0)
    intercepts = rng.uniform(-1.2, 1.2, 16)
    theta = rng.standard_normal((n_persons, 3))
    prob = 1 / (1 + np.exp(-(theta @ slopes.T + intercepts)))
    responses = (rng.random(prob.shape) < prob).astype(float)
    responses[rng.random(prob.shape) < 0.1] = np.nan
    return responses, loadings, slopes, intercepts


@pytest.fixture(scope="module")
def fitted():
    responses, loadings, slopes, intercepts = simulate()
    calibrator = MirtCalibrator("2pl", loadings, bifactor=True, tol=1e-3).fit(responses)
    return responses, loadings, slopes, intercepts, calibrator


def test_dimension_reduction_is_the_full_grid(fitted):
    # Closed form: both are exact sums over the same 31-point grid per dimension (the
    # full grid's N(0, I) weights are the product of the 1-D ones), so the fitted
    # parameters' logLik by dimension reduction equals the 31^3-node orthogonal
    # 3-factor evaluation to rounding.
    responses, loadings, _, _, calibrator = fitted
    full = MirtCalibrator("2pl", loadings, n_points=31)
    value = full.log_likelihood_at(responses, calibrator.slopes_, calibrator.intercepts_,
                                   np.eye(3))
    assert calibrator.n_points == 31
    assert value == pytest.approx(calibrator.log_likelihood_, abs=1e-6)


def test_general_only_items_too():
    # Items 12-15 on the general factor alone: the set (0,) of the reduction.
    responses, _, slopes, intercepts = simulate(n_persons=300)
    loadings = bifactor_loadings([list(range(6)), list(range(6, 12))], 16)
    reduced = MirtCalibrator("2pl", loadings, bifactor=True)
    fixed = np.where(loadings, slopes + 0.1, 0.0)
    value = reduced.log_likelihood_at(responses, fixed, intercepts, np.eye(3))
    full = MirtCalibrator("2pl", loadings, n_points=31).log_likelihood_at(
        responses, fixed, intercepts, np.eye(3))
    assert value == pytest.approx(full, abs=1e-6)


def test_bifactor_recovery(fitted):
    # Simulation truth (seed 20261205, 1500 persons, 10 % missing; EM to TOL 1e-3, the
    # bifactor's EM creeping at 1e-4): slopes within 0.4,
    # RMSE 0.15 (specific slopes are the least determined), intercepts within 0.25.
    _, loadings, slopes, intercepts, calibrator = fitted
    assert calibrator.converged_
    error = (calibrator.slopes_ - slopes)[loadings]
    assert np.abs(error).max() < 0.4
    assert np.sqrt(np.mean(error**2)) < 0.15
    assert np.abs(np.array(calibrator.intercepts_) - intercepts).max() < 0.25


def test_a_bifactor_pattern_is_checked():
    with pytest.raises(ValueError, match="general factor"):
        MirtCalibrator("2pl", np.array([[False, True], [True, False]]), bifactor=True)
    with pytest.raises(ValueError, match="two specific"):
        MirtCalibrator("2pl", np.ones((2, 3), bool), bifactor=True)
    with pytest.raises(ValueError, match="two specific groups"):
        bifactor_loadings([[0, 1], [1, 2]], 3)
