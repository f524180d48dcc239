"""Multidimensional EAP and MAP scoring against the unidimensional engine's closed forms."""

import numpy as np
import pytest

from irtcat.engine import estimate_theta, models
from irtcat.engine.mcat_scoring import (
    composite,
    estimate,
    estimate_eap,
    estimate_map,
    grid_log_likelihood,
    latent_grid,
)
from irtcat.engine.multidimensional import MultidimensionalItems

RNG = np.random.default_rng(20261205)


def _bank(n_per_factor, n_factors, rng):
    """A simple-structure 2PL/GRM bank and its per-factor unidimensional banks."""
    entries, uni = [], []
    for f in range(n_factors):
        rows = []
        for j in range(n_per_factor):
            a = float(rng.uniform(0.6, 2.0))
            slopes = [0.0] * n_factors
            slopes[f] = a
            if j % 4 == 3:
                b = np.sort(rng.normal(size=2))
                entries.append({"id": f"f{f}i{j}", "model": "grm", "a": slopes,
                                "d": (-a * b).tolist()})
                rows.append(("grm", a, b.tolist()))
            else:
                b = float(rng.normal())
                entries.append({"id": f"f{f}i{j}", "model": "2pl", "a": slopes, "d": -a * b})
                rows.append(("2pl", a, b))
        uni.append(models.ItemParameters.create([r[0] for r in rows], [r[1] for r in rows],
                                                [r[2] for r in rows]))
    factors = [f"F{f + 1}" for f in range(n_factors)]
    return MultidimensionalItems.from_entries(entries, {"factors": factors}), uni


def _responses(items, n_persons, rng, missing=0.2):
    from irtcat.engine.multidimensional import log_probability

    theta = rng.normal(size=(n_persons, items.n_factors))
    p = np.exp(log_probability(theta, items))                          # (N, n, K)
    draws = (rng.random((n_persons, items.n_items, 1)) > np.cumsum(p, -1)).sum(-1)
    out = draws.astype(float)
    out[rng.random(out.shape) < missing] = np.nan
    return out


def test_one_factor_eap_and_map_equal_the_unidimensional_engine():
    items, (uni,) = _bank(12, 1, RNG)
    responses = _responses(items, 40, RNG)
    for method in ("eap", "map"):
        multi = estimate(responses, items, [0.0], [[1.0]], method)
        single = estimate_theta(responses, uni, method)
        np.testing.assert_allclose(multi.theta[:, 0], single.theta, rtol=0, atol=1e-8)
        np.testing.assert_allclose(multi.se[:, 0], single.se, rtol=0, atol=1e-8)


def test_independent_factors_score_as_their_own_items():
    """Identity correlation and simple structure: the posterior factorises, so each
    factor's EAP is the unidimensional EAP of its items on the same 1-D grid."""
    items, uni = _bank(6, 2, RNG)
    responses = _responses(items, 25, RNG)
    grid = latent_grid([0.0, 0.0], np.eye(2), n_points=121, bound=6.0)
    multi = estimate_eap(responses, items, [0.0, 0.0], np.eye(2), grid)
    for f in range(2):
        own = responses[:, f * 6:(f + 1) * 6]
        single = estimate_theta(own, uni[f], "eap")
        np.testing.assert_allclose(multi.theta[:, f], single.theta, rtol=0, atol=1e-8)
        np.testing.assert_allclose(multi.se[:, f], single.se, rtol=0, atol=1e-8)
    np.testing.assert_allclose(multi.covariance[:, 0, 1], 0.0, atol=1e-8)


def test_map_is_a_stationary_point_and_eap_agrees_on_a_long_test():
    """With 3 correlated factors and 20 items each the posterior is near normal:
    MAP's gradient is 0 (checked by finite differences of the log posterior) and the
    EAP is within a small fraction of an SE of it."""
    items, _ = _bank(20, 3, RNG)
    correlation = np.array([[1, .5, .6], [.5, 1, .7], [.6, .7, 1]])
    responses = _responses(items, 20, RNG, missing=0.0)
    mode = estimate_map(responses, items, np.zeros(3), correlation)
    mean = estimate_eap(responses, items, np.zeros(3), correlation)
    precision = np.linalg.inv(correlation)
    step = 1e-5
    for person in range(3):
        points = mode.theta[person] + step * np.concatenate([np.eye(3), -np.eye(3)])
        log_post = (grid_log_likelihood(responses[person:person + 1], items, points)[0]
                    - 0.5 * np.einsum("qk,kl,ql->q", points, precision, points))
        np.testing.assert_allclose((log_post[:3] - log_post[3:]) / (2 * step), 0.0, atol=1e-5)
    assert np.all(np.abs(mean.theta - mode.theta) < 0.25 * mean.se)
    np.testing.assert_allclose(mode.se, mean.se, rtol=0.15)
    grid = latent_grid(np.zeros(3), correlation)
    assert grid.nodes.shape == (25**3, 3)


def test_composite_se_is_the_quadratic_form():
    covariance = np.array([[[0.2, 0.05], [0.05, 0.3]]])
    value, se = composite(np.array([[1.0, -2.0]]), covariance, [0.5, 0.5])
    assert value[0] == pytest.approx(-0.5)
    assert se[0] == pytest.approx(np.sqrt(0.25 * (0.2 + 0.3 + 2 * 0.05)))


def test_more_than_three_factors_refuse_the_grid():
    with pytest.raises(ValueError, match="MAP"):
        latent_grid(np.zeros(4), np.eye(4))
