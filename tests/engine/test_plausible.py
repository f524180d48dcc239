"""Plausible values (engine/plausible.py) against simulation truth and closed forms.

Sources of the expected values:
- simulation truth: persons drawn from N(mu, sd^2) answer a bank by its model; with
  that population as prior, each person's plausible value is a draw from the
  marginal of theta, which is N(mu, sd^2) itself, and different persons' draws
  are independent. So one PV column over n persons is an iid N(mu, sd^2) sample:
  its mean has standard error sd / sqrt(n), its variance (n - 1 divisor) has
  standard error sd^2 sqrt(2 / (n - 1)). The tolerances are 4 of those.
- the grid posterior: draws of one person follow the histogram of the posterior
  on the EAP grid, whose mean is `estimate_eap`'s theta and whose variance is
  se^2 + h^2 / 12 (a uniform spread over each cell of width h), checked within
  4 Monte Carlo standard errors of many draws.
"""

import numpy as np
import pytest
from scipy.special import expit

from irtcat.engine import ItemParameters, estimate_eap
from irtcat.engine.plausible import draw_plausible_values

MU, SD = 0.5, 1.2
N_PERSONS = 20_000


def ten_item_bank():
    """A short 2PL test (10 items): EAP visibly shrinks, so its variance is well below SD^2."""
    a = np.linspace(0.8, 1.8, 10)
    b = np.linspace(-1.5, 2.0, 10)
    return ItemParameters.create("2pl", a, b)


def simulate(params, theta, rng):
    """Responses (n_persons, n_items) of a 2PL bank at `theta`."""
    p = expit(params.a * (theta[:, None] - params.b[:, 0]))
    return (rng.random(p.shape) < p).astype(float)


def test_plausible_values_recover_the_population_where_eap_shrinks():
    rng = np.random.default_rng(20261204)
    params = ten_item_bank()
    theta = rng.normal(MU, SD, N_PERSONS)
    responses = simulate(params, theta, rng)
    values = draw_plausible_values(responses, params, 5, seed=11, prior_mean=MU, prior_sd=SD)
    assert values.draws.shape == (N_PERSONS, 5)
    mean_tolerance = 4 * SD / np.sqrt(N_PERSONS)
    variance_tolerance = 4 * SD**2 * np.sqrt(2 / (N_PERSONS - 1))
    for column in values.draws.T:
        assert column.mean() == pytest.approx(MU, abs=mean_tolerance)
        assert column.var(ddof=1) == pytest.approx(SD**2, abs=variance_tolerance)
    # What plausible values are for: the EAP of the same persons understates the variance
    # far beyond that tolerance (by the share of error variance, about a fifth here).
    eap_variance = values.estimate.theta.var(ddof=1)
    assert eap_variance < SD**2 - 5 * variance_tolerance


def test_each_persons_draws_follow_the_grid_posterior():
    params = ten_item_bank()
    responses = np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1],      # every answer right: skewed
                          [1, 1, 1, 0, 1, 0, 0, 0, 0, 0],
                          [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                          [np.nan] * 10], dtype=float)          # no answer: the prior
    n_draws = 1000
    values = draw_plausible_values(responses, params, n_draws, seed=5, prior_mean=MU,
                                   prior_sd=SD)
    eap = estimate_eap(responses, params, prior_mean=MU, prior_sd=SD)
    np.testing.assert_allclose(values.estimate.theta, eap.theta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values.estimate.se, eap.se, rtol=1e-12, atol=1e-12)
    cell = 12.0 / 120                                            # 121 nodes on [-6, 6]
    variance = eap.se**2 + cell**2 / 12
    draws = values.draws
    assert np.all(np.abs(draws.mean(axis=1) - eap.theta) < 4 * np.sqrt(variance / n_draws))
    # var of a sample of n: standard error sqrt((m4 - var^2 (n-3)/(n-1)) / n) < var
    # sqrt((kurtosis - 1) / n); the posteriors here have kurtosis below 4.
    assert np.all(np.abs(draws.var(axis=1, ddof=1) - variance)
                  < 4 * variance * np.sqrt(3.0 / n_draws))
    # The person with no answer draws from the prior N(MU, SD^2) on the grid (cut at
    # +-6, 4.6 SD above the mean: the moments move by about 1e-5).
    assert eap.theta[3] == pytest.approx(MU, abs=1e-4)
    assert eap.se[3] == pytest.approx(SD, abs=1e-4)


def test_draws_are_continuous_and_inside_the_grid():
    params = ten_item_bank()
    responses = np.ones((3, 10))
    draws = draw_plausible_values(responses, params, 500, seed=1).draws
    assert np.unique(draws).size == draws.size                    # not the grid's nodes
    assert draws.min() >= -6.05 and draws.max() <= 6.05          # within the outer cells


def test_same_seed_same_draws_and_persons_draw_in_order():
    rng = np.random.default_rng(7)
    params = ten_item_bank()
    responses = simulate(params, rng.normal(size=300), rng)
    first = draw_plausible_values(responses, params, 4, seed=123).draws
    again = draw_plausible_values(responses, params, 4, seed=123).draws
    other = draw_plausible_values(responses, params, 4, seed=124).draws
    np.testing.assert_array_equal(first, again)
    assert not np.any(first == other)
    # One uniform number per draw in person order: the first persons alone draw the same.
    head = draw_plausible_values(responses[:50], params, 4, seed=123).draws
    np.testing.assert_array_equal(head, first[:50])


def test_draws_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        draw_plausible_values(np.ones((2, 10)), ten_item_bank(), 0)
