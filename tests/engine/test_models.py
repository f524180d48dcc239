"""Tests of engine.models: closed forms, identities, shapes and extreme theta.

The four kinds of numerical test of STYLE.md ("Tests and tooling"): closed
forms with their source, identities that hold for every model (and for a bank
mixing all of them), the shape rule, and extremes under
``np.errstate(all="raise")`` with warnings as errors.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit

# `models.test_information` would be collected by pytest if imported by name.
from irtcat.engine import models
from irtcat.engine.models import (
    MODELS,
    ItemParameters,
    answer_derivatives,
    category_log_probability,
    category_probability,
    category_terms,
    expected_score,
    information,
    information_terms,
    pair_terms,
    standard_error,
)

# --- item banks ---------------------------------------------------------------
# Realistic parameters: slopes up to 2.5, polytomous items with different
# numbers of categories within one bank (and disordered GPCM/PCM steps, which
# the partial credit model allows).

BANK_SPECS = {
    "rasch": dict(a=[1.0, 1.0, 1.0], b=[-1.2, 0.3, 1.5]),
    "1pl": dict(a=[1.3, 1.3, 1.3], b=[-0.8, 0.4, 2.0]),
    "2pl": dict(a=[0.6, 1.4, 2.5], b=[-1.5, 0.2, 1.1]),
    "3pl": dict(a=[0.8, 1.7, 2.5], b=[-0.5, 0.5, 1.5], c=[0.1, 0.2, 0.25]),
    "4pl": dict(a=[0.8, 1.7, 2.5], b=[-0.5, 0.5, 1.5], c=[0.05, 0.2, 0.1],
                u=[0.95, 0.9, 0.99]),
    # 4, 3 and 5 categories
    "grm": dict(a=[0.9, 1.6, 2.5], b=[[-1.5, 0.0, 1.2], [-0.7, 0.8], [-2.0, -1.0, 0.5, 1.8]]),
    # 4, 3 and 5 categories; the first and second items have disordered steps
    "gpcm": dict(a=[0.7, 1.5, 2.2], b=[[-1.0, 0.5, 0.2], [0.3, -0.4], [-1.5, -0.5, 0.5, 1.5]]),
    # 4 and 3 categories
    "pcm": dict(a=[1.0, 1.0], b=[[-1.0, 0.5, 0.2], [0.3, -0.4]]),
    # 4 and 3 categories; category scores out of order in the first item
    "nominal": dict(a=[0.8, 1.4], b=[[-0.9, 0.2, 0.7], [0.3, -0.4]],
                    ak=[[0.0, 1.6, 1.2, 3.0], [0.0, 0.7, 2.0]]),
}
assert set(BANK_SPECS) == set(MODELS)


def _bank(model):
    spec = BANK_SPECS[model]
    return ItemParameters.create(model, spec["a"], spec["b"], c=spec.get("c"), u=spec.get("u"),
                                 ak=spec.get("ak"))


def _mixed_bank():
    """Every item of every model's bank in one bank (2 to 5 categories)."""
    model, a, b, c, u, ak = [], [], [], [], [], []
    for name, spec in BANK_SPECS.items():
        n = len(spec["a"])
        ak += spec.get("ak", [None] * n)
        model += [name] * n
        a += spec["a"]
        b += spec["b"]
        c += spec.get("c", [0.0] * n)
        u += spec.get("u", [1.0] * n)
    return ItemParameters.create(model, a, b, c=c, u=u, ak=ak)


BANKS = {name: _bank(name) for name in MODELS}
BANKS["mixed"] = _mixed_bank()
BANK_NAMES = list(BANKS)

THETA = np.linspace(-4.0, 4.0, 17) + 0.123   # avoid landing exactly on a b


def _valid(params):
    """Mask of the categories each item has: shape (n_items, n_categories_max)."""
    return np.arange(params.max_categories)[None, :] < params.n_categories[:, None]


# --- closed forms -------------------------------------------------------------

@pytest.mark.parametrize("a,b", [(0.5, -1.0), (1.0, 0.0), (1.7, 0.8), (3.0, 2.5)])
def test_2pl_information_at_b_is_a_squared_over_4(a, b):
    # Birnbaum (1968), in Lord & Novick, Statistical Theories of Mental Test
    # Scores, ch. 17-20; Lord (1980), Applications of IRT, ch. 5: the 2PL item
    # information is a^2 P Q (D = 1), and P = Q = 1/2 at theta = b.
    params = ItemParameters.create("2pl", [a], [b])
    assert_allclose(information(b, params), [a**2 / 4], rtol=1e-14)
    assert_allclose(category_probability(b, params)[0], [0.5, 0.5], rtol=1e-14)


@pytest.mark.parametrize("c", [0.0, 0.15, 0.3])
def test_3pl_probability_at_b_is_midway_between_c_and_1(c):
    # Birnbaum (1968), in Lord & Novick, ch. 17: P = c + (1 - c) / (1 + exp(-a (theta - b)))
    # is (c + 1) / 2 at theta = b (b is the point of inflection).
    params = ItemParameters.create("3pl", [0.6, 1.8], [-0.7, 1.3], c=[c, c])
    assert_allclose(np.diagonal(expected_score(params.b[:, 0], params)), (c + 1) / 2, rtol=1e-14)


@pytest.mark.parametrize("c,u", [(0.0, 1.0), (0.1, 0.9), (0.25, 0.98)])
def test_4pl_probability_at_b_is_midway_between_c_and_u(c, u):
    # Barton & Lord (1981), ETS Research Report RR-81-20: the 4PL
    # P = c + (u - c) / (1 + exp(-a (theta - b))) is (c + u) / 2 at theta = b.
    params = ItemParameters.create("4pl", [0.6, 1.8], [-0.7, 1.3], c=[c, c], u=[u, u])
    p = category_probability(params.b[:, 0], params)                 # (theta, item, category)
    assert_allclose(np.diagonal(p[..., 1]), (c + u) / 2, rtol=1e-14)
    assert_allclose(np.diagonal(p[..., 0]), 1 - (c + u) / 2, rtol=1e-14)


def _two_category_equivalents(a, b):
    return {model: ItemParameters.create(model, a, [[bi] for bi in b])
            for model in ("2pl", "grm", "gpcm")}


def test_gpcm_with_two_categories_is_the_2pl():
    # Muraki (1992), Applied Psychological Measurement 16(2), 159-176: with
    # categories 0 and 1, P(X = 1) = exp(a (theta - b_1)) / (1 + exp(a (theta - b_1))).
    a, b = [0.5, 1.2, 2.5], [-1.0, 0.3, 1.4]
    banks = _two_category_equivalents(a, b)
    theta = np.linspace(-5, 5, 41)
    assert_allclose(category_probability(theta, banks["gpcm"]),
                    category_probability(theta, banks["2pl"]), rtol=1e-12, atol=1e-15)
    assert_allclose(information(theta, banks["gpcm"]), information(theta, banks["2pl"]),
                    rtol=1e-12, atol=1e-15)


def test_grm_with_two_categories_is_the_2pl():
    # Samejima (1969), Psychometrika Monograph 17: with K = 2, P(X = 1) = P*_1,
    # the 2PL curve with threshold b_1.
    a, b = [0.5, 1.2, 2.5], [-1.0, 0.3, 1.4]
    banks = _two_category_equivalents(a, b)
    theta = np.linspace(-5, 5, 41)
    assert_allclose(category_probability(theta, banks["grm"]),
                    category_probability(theta, banks["2pl"]), rtol=1e-12, atol=1e-15)
    assert_allclose(information(theta, banks["grm"]), information(theta, banks["2pl"]),
                    rtol=1e-12, atol=1e-15)


def test_rasch_is_the_2pl_with_a_1():
    # Rasch (1960), Probabilistic Models for Some Intelligence and Attainment
    # Tests: P(X = 1) = exp(theta - b) / (1 + exp(theta - b)).
    b = [-1.5, 0.0, 0.7, 2.2]
    theta = np.linspace(-5, 5, 41)
    rasch = ItemParameters.create("rasch", np.ones(4), b)
    twopl = ItemParameters.create("2pl", np.ones(4), b)
    assert_allclose(expected_score(theta, rasch), expit(theta[:, None] - np.asarray(b)),
                    rtol=1e-13)
    assert_allclose(category_probability(theta, rasch), category_probability(theta, twopl),
                    rtol=1e-14)
    assert_allclose(information(theta, rasch), information(theta, twopl), rtol=1e-14)


def test_pcm_is_the_gpcm_with_a_1_and_the_rasch_model_with_two_categories():
    # Masters (1982), Psychometrika 47, 149-174: the partial credit model is
    # P(X = k) ∝ exp(sum_{v <= k} (theta - b_v)), i.e. the GPCM with a = 1, and
    # with two categories it is the Rasch model.
    steps = [[-1.0, 0.5, 0.2], [0.3, -0.4], [-1.5, -0.5, 0.5, 1.5]]
    theta = np.linspace(-5, 5, 41)
    pcm = ItemParameters.create("pcm", np.ones(3), steps)
    gpcm = ItemParameters.create("gpcm", np.ones(3), steps)
    assert_allclose(category_probability(theta, pcm), category_probability(theta, gpcm),
                    rtol=1e-14)
    assert_allclose(information(theta, pcm), information(theta, gpcm), rtol=1e-14)
    pcm2 = ItemParameters.create("pcm", np.ones(2), [[-0.6], [1.1]])
    rasch = ItemParameters.create("rasch", np.ones(2), [-0.6, 1.1])
    assert_allclose(category_probability(theta, pcm2), category_probability(theta, rasch),
                    rtol=1e-12, atol=1e-15)


def test_gpcm_information_is_a_squared_times_the_score_variance():
    # Muraki (1993), Applied Psychological Measurement 17(4), 351-363: GPCM item
    # information is a^2 Var(X | theta).
    params = BANKS["gpcm"]
    p = category_probability(THETA, params)
    k = np.arange(p.shape[-1])
    mean = np.sum(p * k, axis=-1)
    variance = np.sum(p * k**2, axis=-1) - mean**2
    assert_allclose(information(THETA, params), params.a**2 * variance, rtol=1e-10)


# --- identities, for every model and the mixed bank -----------------------------

@pytest.mark.parametrize("name", BANK_NAMES)
def test_category_probabilities_sum_to_one(name):
    params = BANKS[name]
    theta = np.linspace(-8, 8, 33)
    p = category_probability(theta, params)
    assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-13)
    assert np.all(p[..., ~_valid(params)] == 0)
    assert np.all((p >= 0) & (p <= 1))


def _first_derivative(f, x, h):
    """Five-point central difference: error O(h^4) + O(eps |f| / h)."""
    return (f(x - 2 * h) - 8 * f(x - h) + 8 * f(x + h) - f(x + 2 * h)) / (12 * h)


def _second_derivative(f, x, h):
    """Five-point central difference: error O(h^4) + O(eps |f| / h^2)."""
    return (-f(x - 2 * h) + 16 * f(x - h) - 30 * f(x) + 16 * f(x + h) - f(x + 2 * h)) / (12 * h**2)


@pytest.mark.parametrize("name", BANK_NAMES)
def test_information_equals_finite_difference_fisher_information(name):
    # I(theta) = sum_k (dP_k / dtheta)^2 / P_k, with central differences of P_k.
    params = BANKS[name]
    dp = _first_derivative(lambda t: category_probability(t, params), THETA, 1e-3)
    p = category_probability(THETA, params)
    terms = np.divide(dp**2, p, out=np.zeros_like(p), where=p > 0)
    assert_allclose(information(THETA, params), terms.sum(axis=-1), rtol=1e-6)


@pytest.mark.parametrize("name", BANK_NAMES)
def test_category_terms_derivatives_equal_finite_differences_of_log_p(name):
    params = BANKS[name]
    valid = np.broadcast_to(_valid(params), (THETA.size,) + _valid(params).shape)
    log_p, g1, g2 = category_terms(THETA, params)

    def log_p_at(theta):
        return category_log_probability(theta, params)[valid]

    assert_allclose(g1[valid], _first_derivative(log_p_at, THETA, 1e-3), rtol=1e-6, atol=1e-9)
    assert_allclose(g2[valid], _second_derivative(log_p_at, THETA, 1e-2), rtol=1e-6, atol=1e-8)
    # categories an item lacks: log P = -inf, derivatives 0
    assert np.all(log_p[~valid] == -np.inf)
    assert np.all(g1[~valid] == 0) and np.all(g2[~valid] == 0)
    assert_array_equal(log_p[valid], log_p_at(THETA))


@pytest.mark.parametrize("name", BANK_NAMES)
def test_information_terms_agree_with_information_and_category_terms(name):
    # information_terms: I = sum_k P_k g1_k^2 and Warm's J = sum_k P_k g1_k (g2_k + g1_k^2).
    params = BANKS[name]
    info, warm = information_terms(THETA, params)
    assert_allclose(info, information(THETA, params), rtol=1e-14)
    log_p, g1, g2 = category_terms(THETA, params)
    assert_allclose(warm, np.sum(np.exp(log_p) * g1 * (g2 + g1**2), axis=-1), rtol=1e-14)


@pytest.mark.parametrize("name", BANK_NAMES)
def test_test_information_is_the_sum_of_item_information(name):
    params = BANKS[name]
    theta = np.linspace(-5, 5, 21)
    item_info = information(theta, params)
    assert_allclose(models.test_information(theta, params), item_info.sum(axis=-1), rtol=1e-14)
    assert_allclose(standard_error(theta, params), 1 / np.sqrt(item_info.sum(axis=-1)),
                    rtol=1e-14)


def test_mixed_bank_gives_each_item_its_values_alone():
    params = BANKS["mixed"]
    assert params.n_items == sum(len(spec["a"]) for spec in BANK_SPECS.values())
    assert set(params.n_categories) == {2, 3, 4, 5}
    theta = np.linspace(-6, 6, 25)
    log_p_all, g1_all, g2_all = category_terms(theta, params)
    info_all = information(theta, params)
    for item in range(params.n_items):
        alone = params.subset([item])
        assert alone.model == (params.model[item],)
        k = int(alone.n_categories[0])
        log_p, g1, g2 = category_terms(theta, alone)
        assert_allclose(log_p_all[:, item, :k], log_p[:, 0, :k], rtol=1e-14)
        assert_allclose(g1_all[:, item, :k], g1[:, 0, :k], rtol=1e-14)
        assert_allclose(g2_all[:, item, :k], g2[:, 0, :k], rtol=1e-14)
        assert np.all(log_p_all[:, item, k:] == -np.inf)
        assert_allclose(info_all[:, item], information(theta, alone)[:, 0], rtol=1e-14)


def test_mixed_bank_equals_its_single_model_banks():
    # Item order in the mixed bank is BANK_SPECS order, so each model's block
    # of columns must reproduce that model's own bank.
    params = BANKS["mixed"]
    start = 0
    for name in MODELS:
        n = BANKS[name].n_items
        block = params.subset(np.arange(start, start + n))
        assert_allclose(category_probability(THETA, block),
                        category_probability(THETA, BANKS[name]), rtol=1e-14)
        assert_allclose(information(THETA, params)[:, start:start + n],
                        information(THETA, BANKS[name]), rtol=1e-14)
        start += n


# --- shape rule -------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (7,), (3, 4)], ids=["scalar", "vector", "matrix"])
@pytest.mark.parametrize("name", ["2pl", "grm", "mixed"])
def test_output_shape_is_theta_shape_plus_items(name, shape):
    params = BANKS[name]
    theta = np.linspace(-2, 2, int(np.prod(shape))).reshape(shape)
    n, k = params.n_items, params.max_categories
    assert category_probability(theta, params).shape == shape + (n, k)
    assert category_log_probability(theta, params).shape == shape + (n, k)
    assert expected_score(theta, params).shape == shape + (n,)
    assert information(theta, params).shape == shape + (n,)
    assert models.test_information(theta, params).shape == shape
    assert standard_error(theta, params).shape == shape
    # the values do not depend on the shape theta came in
    flat = theta.reshape(-1)
    assert_allclose(information(theta, params).reshape(-1, n), information(flat, params),
                    rtol=1e-15)


def test_scalar_theta_accepts_python_float():
    params = BANKS["mixed"]
    assert information(0.3, params).shape == (params.n_items,)
    assert np.ndim(models.test_information(0.3, params)) == 0


# --- extremes ---------------------------------------------------------------------

def _check_extreme(params, theta):
    theta = np.asarray(theta, dtype=float)
    log_p = category_log_probability(theta, params)
    p = category_probability(theta, params)
    info = information(theta, params)
    log_p_terms, g1, g2 = category_terms(np.atleast_1d(theta), params)
    valid = np.broadcast_to(_valid(params), log_p.shape)
    assert np.all(np.isfinite(log_p[valid]))
    assert np.all(log_p[~valid] == -np.inf)
    assert np.all((p >= 0) & (p <= 1))
    assert_allclose(p.sum(axis=-1), 1.0, atol=1e-13)
    assert np.all(np.isfinite(info)) and np.all(info >= 0)
    assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))
    assert np.all(np.isfinite(models.test_information(theta, params)))


@pytest.mark.parametrize("theta", [50.0, -50.0])
@pytest.mark.parametrize("name", BANK_NAMES)
def test_extreme_theta_50_under_errstate_raise(name, theta):
    params = BANKS[name]
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_extreme(params, theta)
        _check_extreme(params, np.array([theta, -theta, 0.0]))


@pytest.mark.parametrize("theta", [300.0, -300.0])
@pytest.mark.parametrize("name", BANK_NAMES)
def test_extreme_theta_300_finite(name, theta):
    # At |theta| = 300 with a = 2.5, a |theta - b| > 745 and the probability
    # of the far category is below the smallest double: exp(log P) underflows
    # to 0, which is the correctly rounded value; the engine ignores that
    # underflow itself, so every floating-point event the caller asks to
    # raise still raises and none occurs.
    params = BANKS[name]
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_extreme(params, theta)
        _check_extreme(params, np.array([theta, -theta, 0.0]))




@pytest.mark.parametrize("c", [0.0, 0.2])
def test_answer_derivatives_equal_the_kernels_terms(c):
    # Expected: central differences of log P(X = x | theta) (category_log_probability),
    # and g1, g2 of pair_terms; a plain 2PL bank (c = 0) takes the closed form
    # a (x - P), -a^2 P (1 - P), a 3PL bank the kernel.
    rng = np.random.default_rng(41)
    params = ItemParameters.create("2pl" if c == 0 else "3pl", rng.lognormal(0, 0.3, 25),
                                   rng.normal(0, 1, 25), c=np.full(25, c))
    theta = rng.normal(0, 2, 400)
    item = rng.integers(0, 25, 400)
    category = rng.integers(0, 2, 400)
    d1, d2 = answer_derivatives(theta, params, item, category)
    at = (np.arange(400), item, category)
    step = 1e-4
    log_p = [category_log_probability(theta + shift, params)[at]
             for shift in (-step, 0.0, step)]
    np.testing.assert_allclose(d1, (log_p[2] - log_p[0]) / (2 * step), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d2, (log_p[2] - 2 * log_p[1] + log_p[0]) / step**2,
                               rtol=1e-4, atol=1e-5)
    _, g1, g2 = pair_terms(theta, params, item)
    at = (np.arange(400), category)
    np.testing.assert_allclose(d1, g1[at], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d2, g2[at], rtol=1e-12, atol=1e-14)
