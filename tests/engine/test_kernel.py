"""The one response-model kernel (engine/kernel.py) seen through both parameterizations.

The engine's IRT form (`ItemParameters`, ``z = a (theta - b)``) and calibration's
slope-intercept form (`calibration.parameterization.Block`, ``z = a theta + d``)
must give the same log category probabilities on every model, finite and summing
to 1 in probability, from theta = -300 to 300. At moderate theta both must match
the models' textbook closed forms, computed here directly in probability space:

- dichotomous (Birnbaum; Barton & Lord for u): P(X = 1) = c + (u - c) / (1 + exp(-a (theta - b)))
- graded (Samejima 1969): P*_k = 1 / (1 + exp(-a (theta - b_k))), P_k = P*_k - P*_{k+1},
  P*_0 = 1, P*_K = 0; with a < 0 (a reverse-keyed item, as mirt estimates one) the
  thresholds b_k = -d_k / a of intercepts d decreasing decrease too (case "grm_reversed")
- generalized partial credit (Muraki 1992; pcm: a = 1):
  P_k = exp(sum_{v<=k} a (theta - b_v)) / sum_h exp(sum_{v<=h} a (theta - b_v)), empty sum 0
- nominal (Bock 1972, mirt's form): P_k = exp(a ak_k theta + d_k) / sum_h exp(a ak_h theta + d_h)
  with d_k = -a (b_1 + ... + b_k)
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logit, logsumexp

from irtcat.calibration.parameterization import Block
from irtcat.engine import (
    MODELS,
    ItemParameters,
    category_log_probability,
    category_terms,
    information,
)
from irtcat.engine.kernel import DICHOTOMOUS_MODELS

EXTREME_THETA = np.array([-300.0, -30.0, 0.0, 30.0, 300.0])
MODERATE_THETA = np.linspace(-3.0, 3.0, 13)

# Per model: a, b (one per item; thresholds or steps for polytomous items), c, u.
ITEMS = {
    "rasch": dict(a=[1.0, 1.0, 1.0], b=[-1.5, 0.0, 2.0]),
    "1pl": dict(a=[1.3, 1.3, 1.3], b=[-1.0, 0.4, 2.5]),
    "2pl": dict(a=[0.4, 1.0, 2.7], b=[-2.0, 0.3, 1.1]),
    "3pl": dict(a=[0.8, 1.5, 2.2], b=[-0.5, 0.0, 1.4], c=[0.05, 0.2, 0.3]),
    "4pl": dict(a=[0.9, 1.7, 2.4], b=[-1.0, 0.2, 0.9], c=[0.1, 0.2, 0.25],
                u=[0.95, 0.9, 0.99]),
    "grm": dict(a=[0.7, 1.4, 2.5], b=[[-2.0, -0.5, 0.4, 1.8], [-1.0, -0.9, 0.0, 2.2],
                                      [-0.3, 0.1, 0.6, 0.7]]),
    "grm_reversed": dict(a=[-0.7, -1.4, -2.5], b=[[1.8, 0.4, -0.5, -2.0], [2.2, 0.0, -0.9, -1.0],
                                                  [0.7, 0.6, 0.1, -0.3]]),
    "gpcm": dict(a=[0.6, 1.2, 2.1], b=[[-1.0, 0.5, 1.2, -0.4], [0.8, -0.6, 0.1, 1.5],
                                       [-2.0, -1.0, 0.0, 3.0]]),
    "pcm": dict(a=[1.0, 1.0, 1.0], b=[[-1.0, 0.5, 1.2, -0.4], [0.8, -0.6, 0.1, 1.5],
                                      [-2.0, -1.0, 0.0, 3.0]]),
    # scores with ak_0 = 0, ak_4 = 4 (mirt's identification); out of order in the second
    "nominal": dict(a=[0.6, 1.2, 2.1], b=[[-1.0, 0.5, 1.2, -0.4], [0.8, -0.6, 0.1, 1.5],
                                          [-2.0, -1.0, 0.0, 3.0]],
                    ak=[[0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 2.5, 1.5, 3.2, 4.0],
                        [0.0, 0.3, 0.9, 3.9, 4.0]]),
}
CASES = (*MODELS, "grm_reversed")


def model_of(case):
    return "grm" if case == "grm_reversed" else case


def engine_params(model):
    spec = ITEMS[model]
    model = model_of(model)
    return ItemParameters.create(model, spec["a"], spec["b"], c=spec.get("c"), u=spec.get("u"),
                                 ak=spec.get("ak"))


def block(model):
    """The same items in slope-intercept form (mirt's): d = -a b; GRM d_k = -a b_k;
    GPCM d_k = -a (b_1 + ... + b_k); logit c and logit u."""
    spec = ITEMS[model]
    model = model_of(model)
    a = np.asarray(spec["a"])
    b = np.asarray(spec["b"], dtype=float)
    if model in DICHOTOMOUS_MODELS:
        columns = [-b] if model == "rasch" else [a, -a * b]
        if model in ("3pl", "4pl"):
            columns.append(logit(np.asarray(spec["c"])))
        if model == "4pl":
            columns.append(logit(np.asarray(spec["u"])))
        eta, n_categories = np.column_stack(columns), 2
    elif model == "grm":
        eta, n_categories = np.column_stack([a, -a[:, None] * b]), b.shape[1] + 1
    else:
        d = -a[:, None] * np.cumsum(b, axis=1)
        eta = d if model == "pcm" else np.column_stack([a, d])
        if model == "nominal":    # [a, ak_1 .. ak_K-2, d_1 .. d_K-1]
            eta = np.column_stack([a, np.asarray(spec["ak"])[:, 1:-1], d])
        n_categories = b.shape[1] + 1
    return Block(model, np.arange(a.size), n_categories, eta)


def closed_form_probability(model, theta):
    """P(X = k | theta) of the module docstring: shape (n_theta, n_items, K)."""
    spec = ITEMS[model]
    model = model_of(model)
    a = np.asarray(spec["a"])
    b = np.asarray(spec["b"], dtype=float)
    t = theta[:, None]
    if model in DICHOTOMOUS_MODELS:
        c = np.asarray(spec.get("c", np.zeros(a.size)))
        u = np.asarray(spec.get("u", np.ones(a.size)))
        p1 = c + (u - c) / (1.0 + np.exp(-a * (t - b)))
        return np.stack([1.0 - p1, p1], axis=-1)
    if model == "grm":
        star = 1.0 / (1.0 + np.exp(-a[:, None] * (t[:, :, None] - b)))     # (T, n, K-1)
        ones, zeros = np.ones(star.shape[:2] + (1,)), np.zeros(star.shape[:2] + (1,))
        star = np.concatenate([ones, star, zeros], axis=-1)
        return star[..., :-1] - star[..., 1:]
    if model == "nominal":
        d = -a[:, None] * np.cumsum(b, axis=1)
        d = np.concatenate([np.zeros((a.size, 1)), d], axis=1)                 # (n, K)
        numerators = np.exp(a[:, None] * np.asarray(spec["ak"]) * t[:, :, None] + d)
        return numerators / numerators.sum(axis=-1, keepdims=True)
    steps = a[:, None] * (t[:, :, None] - b)                                 # (T, n, K-1)
    numerators = np.exp(np.concatenate([np.zeros(steps.shape[:2] + (1,)),
                                        np.cumsum(steps, axis=-1)], axis=-1))
    return numerators / numerators.sum(axis=-1, keepdims=True)


def test_the_test_items_are_in_slope_intercept_form_as_calibration_reads_them():
    for model in CASES:
        irt = block(model).irt()
        assert_allclose(irt["a"], ITEMS[model]["a"], rtol=1e-14)
        assert_allclose(irt["b"], ITEMS[model]["b"], rtol=1e-13, atol=1e-14)
        if model in ("3pl", "4pl"):
            assert_allclose(irt["c"], ITEMS[model]["c"], rtol=1e-14)


@pytest.mark.parametrize("model", CASES)
def test_both_parameterizations_agree_and_stay_finite_at_extreme_theta(model):
    with np.errstate(all="raise", under="ignore"):
        engine_log_p = category_log_probability(EXTREME_THETA, engine_params(model))  # (T, n, K)
        the_block = block(model)
        block_log_p, dlog = the_block.terms(the_block.eta, EXTREME_THETA)             # (n, K, T)
    block_log_p = np.moveaxis(block_log_p, -1, 0)
    assert np.all(np.isfinite(engine_log_p)) and np.all(np.isfinite(block_log_p))
    assert np.all(np.isfinite(dlog))
    # A predictor of |a theta| <= 810 is rounded to ~1e-13 in either form (d = -a b
    # is rounded once more); the log probabilities agree to that.
    assert_allclose(block_log_p, engine_log_p, rtol=1e-12, atol=1e-10)
    for log_p in (engine_log_p, block_log_p):
        assert_allclose(logsumexp(log_p, axis=-1), 0.0, atol=1e-13)
        assert_allclose(np.exp(log_p).sum(axis=-1), 1.0, atol=1e-13)
    _, g1, g2 = category_terms(EXTREME_THETA, engine_params(model))
    assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))


@pytest.mark.parametrize("model", CASES)
def test_both_parameterizations_match_the_closed_form_at_moderate_theta(model):
    expected = closed_form_probability(model, MODERATE_THETA)
    engine_p = np.exp(category_log_probability(MODERATE_THETA, engine_params(model)))
    the_block = block(model)
    block_p = np.moveaxis(np.exp(the_block.terms(the_block.eta, MODERATE_THETA, False)[0]),
                          -1, 0)
    assert_allclose(engine_p, expected, rtol=1e-12, atol=1e-15)
    assert_allclose(block_p, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("model", CASES)
def test_calibration_derivatives_are_the_kernels_by_the_chain_rule(model):
    """d log P / d eta of the block equals central differences of its log P."""
    the_block = block(model)
    eta = the_block.eta
    _, dlog = the_block.terms(eta, MODERATE_THETA)                  # (n, P, K, T)
    step = 1e-6
    for column in range(eta.shape[1]):
        shift = np.zeros_like(eta)
        shift[:, column] = step
        upper = the_block.terms(eta + shift, MODERATE_THETA, False)[0]
        lower = the_block.terms(eta - shift, MODERATE_THETA, False)[0]
        assert_allclose(dlog[:, column], (upper - lower) / (2 * step), rtol=1e-6, atol=1e-7)


def test_a_reverse_keyed_graded_item_is_its_mirror_image_with_categories_reversed():
    """Closed form: with b'_k = b_(K-k), P*'_k = expit(-a (theta - b_(K-k))) = 1 - P*_(K-k),
    so P'_k = P_(K-1-k); the information (a^2-weighted) is the same. The reverse-keyed
    item here has fewer categories than the bank's widest (its missing thresholds padded)."""
    theta = np.concatenate([EXTREME_THETA, MODERATE_THETA])
    b_short = [0.8, -0.4]                                  # a < 0: decreasing
    reversed_bank = ItemParameters.create(["grm", "grm", "2pl"], [1.2, -0.9, -0.6],
                                          [[-1.5, -0.2, 0.3, 1.1], b_short, [0.4]])
    mirror = ItemParameters.create(["grm", "grm", "2pl"], [1.2, 0.9, 0.6],
                                   [[-1.5, -0.2, 0.3, 1.1], b_short[::-1], [0.4]])
    with np.errstate(all="raise", under="ignore"):
        log_p = category_log_probability(theta, reversed_bank)          # (T, 3, 5)
        log_mirror = category_log_probability(theta, mirror)
        _, g1, g2 = category_terms(theta, reversed_bank)
    assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))
    assert_allclose(log_p[:, 0], log_mirror[:, 0], rtol=1e-15)
    assert_allclose(log_p[:, 1, :3], log_mirror[:, 1, 2::-1], rtol=1e-12, atol=1e-12)
    assert_allclose(log_p[:, 2, :2], log_mirror[:, 2, 1::-1], rtol=1e-12, atol=1e-12)
    assert np.all(log_p[:, 1:, 3:] == -np.inf)
    assert_allclose(np.exp(log_p).sum(axis=-1), 1.0, atol=1e-13)
    assert_allclose(information(theta, reversed_bank), information(theta, mirror),
                    rtol=1e-10, atol=1e-300)
