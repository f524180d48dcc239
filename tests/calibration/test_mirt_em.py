"""Multidimensional MML-EM (calibration.mirt_em) against R mirt and simulation truth.

References:
- tests/data/refs2/simmdim_3000x45__cfa3.json: mirt 1.45.1's confirmatory 3-factor
  2PL of tests/data/refs2/simmdim_3000x45.csv (a byte-for-byte copy of
  shared/refs2/simmdim_3000x45.csv), call
  mirt(data, mirt.model('F1 = 1-15\\nF2 = 16-30\\nF3 = 31-45\\nCOV = F1*F2*F3'), '2PL').
- tests/data/LSAT7.csv, Science.csv, SAT12_keyed_sparse30.csv (shared/data): a one-factor
  pattern must give the unidimensional calibrator's fit (the same model, the same
  grid of 61 nodes): to 1e-4 with both M-steps solved exactly (Newton).
- Simulation truth: 2 correlated factors, 2000 persons, seeded here.
"""

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

from irtcat.calibration.mirt_em import MirtCalibrator
from irtcat.calibration.mml_em import MMLCalibrator, Priors
from irtcat.calibration.responses import from_dense
from irtcat.engine import ConvergenceWarning

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
CFA3 = DATA / "refs2" / "simmdim_3000x45__cfa3.json"


def simple_structure(n_items, n_factors):
    loadings = np.zeros((n_items, n_factors), dtype=bool)
    per = n_items // n_factors
    for f in range(n_factors):
        loadings[f * per: (f + 1) * per, f] = True
    return loadings


@pytest.fixture(scope="module")
def cfa3():
    reference = json.loads(CFA3.read_text())
    responses = pd.read_csv(DATA / "refs2" / "simmdim_3000x45.csv",
                            index_col=0).to_numpy(float)
    calibrator = MirtCalibrator("2pl", simple_structure(45, 3), np.ones((3, 3), bool))
    calibrator.fit(responses)
    return reference, responses, calibrator


def reference_parameters(reference):
    slopes = np.array([[item["a1"], item["a2"], item["a3"]] for item in reference["items"]])
    intercepts = np.array([item["d"] for item in reference["items"]])
    return slopes, intercepts, np.array(reference["latent"]["correlation"])


def test_cfa3_loglik_slopes_and_correlations_match_mirt(cfa3):
    # simmdim_3000x45__cfa3.json: logLik -76558.563 (within 0.05), 29 EM cycles,
    # 93 parameters, AIC/BIC; every slope and correlation within 0.02.
    reference, _, calibrator = cfa3
    slopes, _, correlation = reference_parameters(reference)
    assert calibrator.converged_
    assert abs(calibrator.log_likelihood_ - reference["logLik"]) < 0.05
    assert calibrator.n_parameters_ == reference["n_parameters"] == 93
    assert abs(calibrator.aic_ - reference["AIC"]) < 0.1
    assert abs(calibrator.bic_ - reference["BIC"]) < 0.1
    assert np.abs(calibrator.slopes_ - slopes).max() < 0.02
    assert np.abs(calibrator.correlation_ - correlation).max() < 0.02
    assert abs(calibrator.n_iter_ - reference["em_cycles"]) <= 3


def test_cfa3_every_intercept_within_002_of_mirt(cfa3):
    # simmdim_3000x45__cfa3.json items[].d, i41's (d = 5.58, an item nearly everyone
    # answers right: a flat likelihood where mirt's EM stops short) included.
    reference, _, calibrator = cfa3
    _, intercepts, _ = reference_parameters(reference)
    assert np.abs(np.array(calibrator.intercepts_) - intercepts).max() < 0.02


def test_cfa3_follows_mirts_path(cfa3):
    # simmdim_3000x45__cfa3.json: mirt's EM (start values with the correlations at
    # 0.25, R's BFGS M-step and budget, Ramsay every third cycle, TOL 1e-4) stops short
    # of the maximum, so only its path lands on its point: the same 29 cycles, every
    # parameter and the logLik to 1e-6 (reached: 1e-11).
    reference, _, calibrator = cfa3
    slopes, intercepts, correlation = reference_parameters(reference)
    assert calibrator.n_iter_ == reference["em_cycles"] == 29
    assert abs(calibrator.log_likelihood_ - reference["logLik"]) < 1e-6
    assert np.abs(calibrator.slopes_ - slopes).max() < 1e-6
    assert np.abs(np.array(calibrator.intercepts_) - intercepts).max() < 1e-6
    assert np.abs(calibrator.correlation_ - correlation).max() < 1e-6


def test_free_correlations_start_where_mirts_do():
    # mirt's model.elements: a free correlation starts at 0.25, a fixed one at 0.
    free = np.zeros((3, 3), bool)
    free[0, 1] = True
    calibrator = MirtCalibrator("2pl", simple_structure(45, 3), free)
    expected = np.eye(3)
    expected[0, 1] = expected[1, 0] = 0.25
    assert np.array_equal(calibrator.start_correlation(), expected)


def test_cfa3_mirt_stops_short_of_the_maximum(cfa3):
    # Our marginal likelihood at mirt's parameters reproduces mirt's logLik (the same
    # function, to 1e-6), the fit ends there too, and the exact M-step (Newton)
    # climbs higher: mirt's point is not the maximum.
    reference, responses, calibrator = cfa3
    slopes, intercepts, correlation = reference_parameters(reference)
    probe = MirtCalibrator("2pl", simple_structure(45, 3), np.ones((3, 3), bool))
    at_mirt = probe.log_likelihood_at(responses, slopes, intercepts, correlation)
    assert abs(at_mirt - reference["logLik"]) < 1e-6
    assert abs(calibrator.log_likelihood_ - at_mirt) < 1e-6
    newton = MirtCalibrator("2pl", simple_structure(45, 3), np.ones((3, 3), bool),
                            m_step="newton", tol=1e-6).fit(responses)
    assert newton.log_likelihood_ > at_mirt + 1e-3


def _unidimensional_pair(path, model, priors=None):
    responses = pd.read_csv(DATA / path).iloc[:, 1:].to_numpy(float)
    data = from_dense(responses)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        uni = MMLCalibrator(model, m_step="newton", tol=1e-8, priors=priors).fit(data)
        multi = MirtCalibrator(model, np.ones((data.n_items, 1), bool), m_step="newton",
                               tol=1e-8, c_prior=priors.c if priors else None).fit(data)
    return uni, multi


@pytest.mark.parametrize("path, model", [("LSAT7.csv", "2pl"), ("Science.csv", "grm"),
                                         ("Science.csv", "gpcm"),
                                         ("SAT12_keyed_sparse30.csv", "2pl")])
def test_one_factor_equals_the_unidimensional_calibrator(path, model):
    uni, multi = _unidimensional_pair(path, model)
    assert abs(uni.log_likelihood_ - multi.log_likelihood_) < 1e-4
    for block in uni.blocks_:
        assert np.abs(block.slopes() - multi.slopes_[block.items, 0]).max() < 1e-4
        intercepts = np.array([multi.intercepts_[j] for j in block.items])
        assert np.abs(block.intercepts() - intercepts).max() < 1e-4


def test_one_factor_3pl_with_a_c_prior_equals_the_unidimensional_calibrator():
    # LSAT7.csv, 3PL with the Beta(5, 17) prior on c (both Bayes-modal M-steps).
    uni, multi = _unidimensional_pair("LSAT7.csv", "3pl", Priors(c=(5.0, 17.0)))
    assert abs(uni.log_likelihood_ - multi.log_likelihood_) < 1e-4
    block = uni.blocks_[0]
    assert np.abs(block.irt()["c"] - multi.guessing_[block.items]).max() < 1e-4
    assert np.abs(block.slopes() - multi.slopes_[block.items, 0]).max() < 1e-4


def _simulate(model, seed=20261205, n_persons=2000, n_items=20, n_categories=4):
    rng = np.random.default_rng(seed)
    correlation = np.array([[1.0, 0.6], [0.6, 1.0]])
    theta = rng.standard_normal((n_persons, 2)) @ np.linalg.cholesky(correlation).T
    loadings = simple_structure(n_items, 2)
    loadings[[0, n_items // 2], :] = True                 # two items load on both factors
    slopes = np.where(loadings, rng.uniform(0.8, 1.8, (n_items, 2)), 0.0)
    projection = theta @ slopes.T                                       # (persons, items)
    if model == "2pl":
        intercepts = rng.uniform(-1.5, 1.5, n_items)
        prob = 1 / (1 + np.exp(-(projection + intercepts)))
        responses = (rng.random(prob.shape) < prob).astype(float)
    else:                                                               # graded
        steps = np.linspace(1.5, -1.5, n_categories - 1)                # every category seen
        intercepts = rng.uniform(-0.7, 0.7, (n_items, 1)) + steps
        at_least = 1 / (1 + np.exp(-(projection[:, :, None] + intercepts[None])))
        responses = (rng.random(projection.shape)[:, :, None] < at_least).sum(axis=2)
        responses = responses.astype(float)
    return responses, loadings, slopes, intercepts, correlation


@pytest.mark.parametrize("model", ["2pl", "grm"])
def test_two_factor_recovery(model):
    # Simulation truth (seed 20261205): 2000 persons, 20 items, r = 0.6, two items
    # loading on both factors. Tolerances: slopes within 0.35, intercepts within 0.3
    # (about 3 SEs at n = 2000), the correlation within 0.06, RMSE of the slopes 0.12.
    responses, loadings, slopes, intercepts, correlation = _simulate(model)
    calibrator = MirtCalibrator(model, loadings, np.ones((2, 2), bool)).fit(responses)
    assert calibrator.converged_
    assert np.abs(calibrator.slopes_ - slopes).max() < 0.35
    assert np.sqrt(np.mean((calibrator.slopes_ - slopes)[loadings] ** 2)) < 0.12
    assert np.abs(np.array(calibrator.intercepts_, dtype=float) - intercepts).max() < 0.3
    assert abs(calibrator.correlation_[0, 1] - correlation[0, 1]) < 0.06


def test_sparse_data_give_the_dense_fit():
    # The same responses as a dense matrix with NaN and as a response log: one fit.
    from irtcat.calibration.responses import from_coordinates

    responses, loadings, *_ = _simulate("2pl", n_persons=600)
    rng = np.random.default_rng(7)
    responses[rng.random(responses.shape) < 0.3] = np.nan
    person, item = np.nonzero(~np.isnan(responses))
    log = from_coordinates(responses.shape[0], responses.shape[1], person, item,
                           responses[person, item].astype(int))
    dense = MirtCalibrator("2pl", loadings, np.ones((2, 2), bool)).fit(responses)
    sparse = MirtCalibrator("2pl", loadings, np.ones((2, 2), bool)).fit(log)
    assert abs(dense.log_likelihood_ - sparse.log_likelihood_) < 1e-8
    assert np.abs(dense.slopes_ - sparse.slopes_).max() < 1e-8


def test_orthogonal_factors_keep_a_zero_correlation():
    responses, loadings, *_ = _simulate("2pl", n_persons=500)
    calibrator = MirtCalibrator("2pl", loadings).fit(responses)
    assert calibrator.correlation_[0, 1] == 0.0
    assert calibrator.n_parameters_ == 2 * 20 + 2


def test_an_item_on_no_factor_is_refused():
    with pytest.raises(ValueError, match="at least one factor"):
        MirtCalibrator("2pl", np.array([[True, False], [False, False]]))


@pytest.mark.parametrize("rho", [0.3, 0.999])
def test_the_e_step_is_the_grid_sum(rho):
    # Closed form: the marginal log-likelihood is, per person, log sum over the grid of
    # w_q prod_j P_j(theta_q) with w the N(0, R) density normalised over the grid;
    # computed here directly. At r = 0.999 the persons right on every (very hard) F1
    # item and wrong on every (very easy) F2 item have their joint log-likelihood
    # more than 600 below the sum of its per-factor maxima: the exact path.
    rng = np.random.default_rng(3)
    slopes = np.zeros((16, 2))
    slopes[:8, 0], slopes[8:, 1] = 8.0, 8.0
    slopes[7, 1] = 0.7                                  # one item on both factors
    loadings = slopes != 0
    intercepts = np.repeat([-40.0, 40.0], 8) + rng.uniform(-1, 1, 16)
    responses = rng.integers(0, 2, (40, 16)).astype(float)
    responses[:5] = np.repeat([1.0, 0.0], 8)
    responses[5, 0] = np.nan
    correlation = np.array([[1.0, rho], [rho, 1.0]])
    calibrator = MirtCalibrator("2pl", loadings, np.ones((2, 2), bool))
    value = calibrator.log_likelihood_at(responses, slopes, intercepts, correlation)
    nodes = calibrator.nodes_                                           # (Q, 2)
    log_density = -0.5 * np.einsum("qi,ij,qj->q", nodes, np.linalg.inv(correlation), nodes)
    log_weights = log_density - np.logaddexp.reduce(log_density)
    z = nodes @ slopes.T + intercepts                                   # (Q, items)
    log_p1, log_p0 = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    observed = ~np.isnan(responses)
    answers = np.nan_to_num(responses)
    per_person = (answers * observed) @ log_p1.T + ((1 - answers) * observed) @ log_p0.T
    expected = np.logaddexp.reduce(per_person + log_weights, axis=1).sum()
    assert value == pytest.approx(expected, abs=1e-8)


def test_exploratory_two_factors_rotation_free_quantities():
    # Rotation-free checks of the unrotated exploratory 2-factor fit (upper triangle
    # fixed, orthogonal, mirt's identification): it nests the true pattern's correlated
    # confirmatory model (a rotation of it), so its logLik is at least that fit's (up to
    # the grid, 0.01); its communalities diag(a a^T) recover the truth's diag(a R a^T)
    # within 0.35 relative, the confirmatory fit's own error on these data being 0.34.
    from irtcat.calibration.exploratory import exploratory_loadings

    responses, loadings, slopes, _, correlation = _simulate("2pl", n_persons=2000)
    efa = MirtCalibrator("2pl", exploratory_loadings(20, 2), exploratory=True)
    efa.fit(responses)
    cfa = MirtCalibrator("2pl", loadings, np.ones((2, 2), bool)).fit(responses)
    assert efa.converged_ and efa.n_parameters_ == 20 * 3 - 1
    assert efa.slopes_[0, 1] == 0.0 and efa.correlation_[0, 1] == 0.0
    assert efa.log_likelihood_ >= cfa.log_likelihood_ - 0.01
    truth = np.einsum("ij,jk,ik->i", slopes, correlation, slopes)
    communality = np.einsum("ij,ij->i", efa.slopes_, efa.slopes_)
    assert np.abs(communality / truth - 1).max() < 0.35
