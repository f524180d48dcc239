"""Tests of model_fit.m2_statistics (M2 at arbitrary nodes) and moment_jacobian.

Sources: tests/data/refs2/LSAT7__modelfit.json (mirt 1.45.1 ``M2(mod)`` of the 2PL,
tolerance 0.01 as in test_model_fit.py); identities: on mirt's 61-node grid the
node form is `m2` itself (same moments, Delta of the same column space); a second
factor whose slopes are all fixed at 0 leaves every marginal probability, hence
every moment and M2, unchanged (closed form); the analytic derivatives equal
central finite differences of the conditional means.
"""

import json
import pathlib

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from irtcat.calibration.mml_em import MMLCalibrator
from irtcat.calibration.model_fit import m2, m2_statistics
from irtcat.calibration.moment_jacobian import compensatory_mean_jacobian
from irtcat.engine.models import ItemParameters, category_probability
from irtcat.engine.quadrature import normal_grid
from irtcat.itembank.io import read_responses

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
M2_KEYS = ("M2", "p", "RMSEA", "RMSEA_5", "RMSEA_95", "SRMSR", "TLI", "CFI")


def node_form(calibrator, nodes):
    """log P (Q, J, K) of a fitted unidimensional calibrator at 1-D nodes (Q,)."""
    n_items = sum(len(block.items) for block in calibrator.blocks_)
    width = max(block.n_categories for block in calibrator.blocks_)
    log_probability = np.full((nodes.size, n_items, width), -np.inf)
    for block in calibrator.blocks_:
        log_p, _ = block.terms(block.eta, nodes, derivatives=False)     # (n, K, Q)
        log_probability[:, block.items, :block.n_categories] = log_p.transpose(2, 0, 1)
    return log_probability


def as_dict(result):
    return result.as_dict()


@pytest.fixture(scope="module")
def lsat7():
    responses = read_responses(DATA / "LSAT7.csv").responses
    return MMLCalibrator("2pl").fit(responses), responses


def test_one_factor_on_mirts_grid_is_the_unidimensional_m2(lsat7):
    calibrator, responses = lsat7
    grid = normal_grid(61, (-6.0, 6.0))
    log_probability = node_form(calibrator, grid.nodes)
    jacobian = compensatory_mean_jacobian(log_probability, grid.nodes[:, None],
                                          np.ones((5, 1), bool), ["2pl"] * 5)
    result = as_dict(m2_statistics(responses, log_probability, grid.log_weights,
                                   calibrator.n_parameters_, jacobian))
    # tests/data/refs2/LSAT7__modelfit.json models.2pl.M2, within 0.01, df equal
    expected = json.loads((DATA / "refs2" / "LSAT7__modelfit.json").read_text())
    expected = expected["models"]["2pl"]["M2"]
    assert result["df"] == expected["df"]
    for key in M2_KEYS:
        assert result[key] == pytest.approx(expected[key], abs=0.01), key
    # identity: the calibrator's own M2 (same moments, same span of Delta)
    direct = as_dict(m2(calibrator, responses))
    for key in M2_KEYS:
        assert result[key] == pytest.approx(direct[key], rel=1e-8, abs=1e-10), key


def test_a_second_factor_with_zero_slopes_gives_the_one_factor_m2(lsat7):
    calibrator, responses = lsat7
    axis = normal_grid(61, (-6.0, 6.0)).nodes
    one = normal_grid(61, (-6.0, 6.0))
    log_one = node_form(calibrator, one.nodes)
    jacobian_one = compensatory_mean_jacobian(log_one, one.nodes[:, None],
                                              np.ones((5, 1), bool), ["2pl"] * 5)
    reference = as_dict(m2_statistics(responses, log_one, one.log_weights,
                                      calibrator.n_parameters_, jacobian_one))
    # the 61 x 61 product grid, weights of N(0, [[1, .3], [.3, 1]]); item probabilities
    # depend on theta_1 only (the second factor's slopes are fixed at 0)
    first, second = (g.ravel() for g in np.meshgrid(axis, axis, indexing="ij"))
    nodes = np.column_stack([first, second])
    log_weights = multivariate_normal(np.zeros(2), [[1.0, 0.3], [0.3, 1.0]]).logpdf(nodes)
    log_probability = np.repeat(log_one, axis.size, axis=0)            # row-major: theta_1
    pattern = np.column_stack([np.ones(5, bool), np.zeros(5, bool)])
    jacobian = compensatory_mean_jacobian(log_probability, nodes, pattern, ["2pl"] * 5)
    result = as_dict(m2_statistics(responses, log_probability, log_weights,
                                   calibrator.n_parameters_ + 1, jacobian))
    # closed form: the same marginal moments (the theta_2 sum of the bivariate normal
    # weights is the theta_1 normal weight up to the grid's ~1e-9 truncation), so the
    # same M2; df one less for the estimated correlation
    assert result["df"] == reference["df"] - 1
    assert result["M2"] == pytest.approx(reference["M2"], rel=1e-6)
    assert result["SRMSR"] == pytest.approx(reference["SRMSR"], rel=1e-6)


@pytest.mark.parametrize("model", ("grm", "gpcm"))
def test_polytomous_node_form_equals_the_unidimensional_m2_star(model):
    rng = np.random.default_rng(18)
    n_items = 6
    params = ItemParameters((model,) * n_items, rng.uniform(0.8, 2.0, n_items),
                            rng.normal(0.0, 0.5, (n_items, 1)) + [-0.8, 0.8],
                            np.zeros(n_items), np.ones(n_items))
    prob = category_probability(rng.standard_normal(1000), params)       # (n, J, 3)
    responses = (rng.random((1000, n_items, 1)) > np.cumsum(prob, axis=2)).sum(axis=2)
    responses = responses.astype(float)
    calibrator = MMLCalibrator(model, m_step="newton").fit(responses)
    grid = normal_grid(61, (-6.0, 6.0))
    log_probability = node_form(calibrator, grid.nodes)
    jacobian = compensatory_mean_jacobian(log_probability, grid.nodes[:, None],
                                          np.ones((n_items, 1), bool), [model] * n_items)
    assert jacobian.shape == (n_items, 3 * n_items, 61)
    result = as_dict(m2_statistics(responses, log_probability, grid.log_weights,
                                   calibrator.n_parameters_, jacobian))
    direct = as_dict(m2(calibrator, responses))
    for key in M2_KEYS:
        assert result[key] == pytest.approx(direct[key], rel=1e-7, abs=1e-10), key


def mean_score(model, slopes, intercepts, nodes, lower=0.0, upper=1.0):
    """E[x | nodes] (Q,) of one slope-intercept item, FORMAT.md's definitions."""
    s = nodes @ slopes
    if model in ("2pl", "3pl", "4pl"):
        return lower + (upper - lower) / (1 + np.exp(-(s + intercepts[0])))
    if model == "grm":
        return np.sum(1 / (1 + np.exp(-(s[:, None] + intercepts))), axis=1)
    logits = np.column_stack([np.zeros_like(s)] + [k * s + intercepts[k - 1]
                                                    for k in range(1, len(intercepts) + 1)])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p @ np.arange(p.shape[1])


def log_categories(model, slopes, intercepts, nodes, lower=0.0, upper=1.0):
    """log P (Q, K) of one item from its mean curve's definition."""
    if model in ("2pl", "3pl", "4pl"):
        p1 = mean_score(model, slopes, intercepts, nodes, lower, upper)
        return np.log(np.column_stack([1 - p1, p1]))
    if model == "grm":
        at_least = 1 / (1 + np.exp(-(nodes @ slopes)[:, None] - intercepts))
        bounds = np.column_stack([np.ones(len(nodes)), at_least, np.zeros(len(nodes))])
        return np.log(bounds[:, :-1] - bounds[:, 1:])
    s = nodes @ slopes
    logits = np.column_stack([np.zeros_like(s)] + [k * s + intercepts[k - 1]
                                                    for k in range(1, len(intercepts) + 1)])
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("model,intercepts,lower,upper", [
    ("2pl", [0.3], 0.0, 1.0), ("3pl", [-0.2], 0.2, 1.0), ("4pl", [0.1], 0.15, 0.9),
    ("grm", [1.2, -0.4, -1.5], 0.0, 1.0), ("gpcm", [0.5, 0.8, -0.2], 0.0, 1.0)])
def test_derivatives_equal_finite_differences(model, intercepts, lower, upper):
    nodes = np.random.default_rng(1).normal(size=(7, 2))
    slopes = np.array([0.9, 0.6])
    intercepts = np.array(intercepts)
    log_p = log_categories(model, slopes, intercepts, nodes, lower, upper)[:, None, :]
    columns = compensatory_mean_jacobian(log_p, nodes, np.ones((1, 2), bool), [model],
                                         lower=np.array([lower]), upper=np.array([upper]))[0]
    step = 1e-6

    def difference(change):
        values = [slopes.copy(), intercepts.copy(), np.array([lower, upper])]
        up = [v.copy() for v in values]
        down = [v.copy() for v in values]
        change(up, step)
        change(down, -step)
        return (mean_score(model, up[0], up[1], nodes, *up[2])
                - mean_score(model, down[0], down[1], nodes, *down[2])) / (2 * step)

    expected = [difference(lambda v, h, j=j: v[0].__setitem__(j, v[0][j] + h)) for j in (0, 1)]
    expected += [difference(lambda v, h, k=k: v[1].__setitem__(k, v[1][k] + h))
                 for k in range(intercepts.size)]
    if model in ("3pl", "4pl"):
        expected.append(difference(lambda v, h: v[2].__setitem__(0, v[2][0] + h)))
    if model == "4pl":
        expected.append(difference(lambda v, h: v[2].__setitem__(1, v[2][1] + h)))
    # central differences of the closed-form means, error O(step^2)
    assert columns == pytest.approx(np.array(expected), abs=1e-8)
