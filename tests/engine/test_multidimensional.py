"""The multidimensional item model: closed forms and the unidimensional engine."""

import numpy as np
import pytest

from irtcat.engine import models
from irtcat.engine.multidimensional import (
    MultidimensionalItems,
    information,
    latent_population,
    log_probability,
    predictor_information,
)

DIMENSIONS = {"factors": ["F1", "F2", "F3"], "structure": "confirmatory",
              "mean": [0.0, 0.0, 0.0],
              "correlation": [[1, .5, .6], [.5, 1, .7], [.6, .7, 1]]}
ENTRIES = [
    {"id": "i01", "standard": "F1", "model": "2pl", "a": [1.03, 0.0, 0.0], "d": -1.093},
    {"id": "i02", "model": "3pl", "a": [0.6, 0.4, 0.0], "d": 0.2, "c": 0.18},
    {"id": "i03", "model": "4pl", "a": [0.0, 0.9, 0.5], "d": -0.4, "c": 0.1, "u": 0.95},
    {"id": "g1", "model": "grm", "a": [0.0, 1.3, 0.0], "d": [2.1, 0.3, -1.4]},
    {"id": "p1", "model": "gpcm", "a": [0.0, 0.0, 0.9], "d": [0.5, 0.8, -0.2]},
    {"id": "p2", "model": "gpcm", "a": [0.7, 0.0, 0.4], "d": [0.1]},
]
THETA = np.array([[0.0, 0.0, 0.0], [1.2, -0.7, 0.3], [-2.5, 1.9, 3.1]])


@pytest.fixture(scope="module")
def items():
    return MultidimensionalItems.from_entries(ENTRIES, DIMENSIONS)


def test_reads_and_writes_the_format(items):
    assert items.factors == ("F1", "F2", "F3")
    assert items.slopes.shape == (6, 3) and items.intercepts.shape == (6, 3)
    assert list(items.n_categories) == [2, 2, 2, 4, 4, 2]
    assert items.to_entries() == ENTRIES


def test_probabilities_sum_to_one_and_match_the_closed_forms(items):
    p = np.exp(log_probability(THETA, items))
    assert p.shape == (3, 6, 4)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-14)
    t = THETA @ items.slopes.T
    expit = lambda z: 1 / (1 + np.exp(-z))     # noqa: E731
    np.testing.assert_allclose(p[:, 1, 1], 0.18 + 0.82 * expit(t[:, 1] + 0.2), rtol=1e-13)
    np.testing.assert_allclose(p[:, 2, 1], 0.1 + 0.85 * expit(t[:, 2] - 0.4), rtol=1e-13)
    star = expit(t[:, 3, None] + np.array([2.1, 0.3, -1.4]))          # grm P(X >= k)
    np.testing.assert_allclose(p[:, 3, 1], star[:, 0] - star[:, 1], rtol=1e-12)
    s = np.arange(4) * t[:, 4, None] + np.array([0.0, 0.5, 0.8, -0.2])   # gpcm
    np.testing.assert_allclose(p[:, 4], np.exp(s) / np.exp(s).sum(1, keepdims=True), rtol=1e-12)


def test_2pl_information_is_p_q_a_a_transpose(items):
    info = information(THETA, items)
    assert info.shape == (3, 6, 3, 3)
    a = items.slopes[0]
    p = 1 / (1 + np.exp(-(THETA @ a - 1.093)))
    np.testing.assert_allclose(info[:, 0], (p * (1 - p))[:, None, None] * np.outer(a, a),
                               rtol=1e-13)


def test_information_in_the_predictor_equals_the_expected_squared_score(items):
    """sum_k P_k (d log P_k/dt)^2 by finite differences of log P in t."""
    step = 1e-6
    scalar = predictor_information(THETA, items)
    for j in range(items.n_items):
        a = items.slopes[j]
        direction = a / (a @ a)                # moves t_j by 1 per unit
        log_p = log_probability(THETA, items)[:, j, : items.n_categories[j]]
        up = log_probability(THETA + step * direction, items)[:, j, : items.n_categories[j]]
        down = log_probability(THETA - step * direction, items)[:, j, : items.n_categories[j]]
        slope = (up - down) / (2 * step)
        np.testing.assert_allclose(scalar[:, j], np.sum(np.exp(log_p) * slope**2, -1), rtol=1e-6)


def test_one_factor_bank_equals_the_unidimensional_engine():
    """slope-intercept d = -a b (2pl, 3pl, grm), d_k = -a (b_1 + ... + b_k) (gpcm)."""
    uni = models.ItemParameters.create(["2pl", "3pl", "grm", "gpcm"], [1.2, 0.8, 1.5, 0.7],
                                       [0.3, -0.5, [-1.0, 0.2, 1.4], [-0.6, 0.4]],
                                       c=[0, 0.2, 0, 0])
    entries = [{"id": "a", "model": "2pl", "a": [1.2], "d": -1.2 * 0.3},
               {"id": "b", "model": "3pl", "a": [0.8], "d": 0.8 * 0.5, "c": 0.2},
               {"id": "c", "model": "grm", "a": [1.5], "d": [1.5, -0.3, -2.1]},
               {"id": "e", "model": "gpcm", "a": [0.7], "d": [0.7 * 0.6, 0.7 * 0.2]}]
    multi = MultidimensionalItems.from_entries(entries, {"factors": ["F"]})
    theta = np.linspace(-4, 4, 17)
    np.testing.assert_allclose(np.exp(log_probability(theta[:, None], multi)),
                               models.category_probability(theta, uni), rtol=0, atol=1e-12)
    np.testing.assert_allclose(information(theta[:, None], multi)[:, :, 0, 0],
                               models.information(theta, uni), rtol=0, atol=1e-12)


@pytest.mark.parametrize("change, message", [
    ({"model": "nominal"}, "'model' must be one of"),
    ({"a": [1.0, 0.0]}, "list of 3 finite slopes"),
    ({"a": [0, 0, 0]}, "no non-zero slope"),
    ({"d": [0.1]}, "'d' must be a finite number"),
    ({"c": 0.2}, "'c' is a 3pl/4pl parameter"),
    ({"model": "grm", "d": [0.1, 0.5]}, "must decrease"),
    ({"model": "3pl", "c": 1.2}, "0 <= c < u <= 1"),
])
def test_malformed_items_are_refused_by_name(change, message):
    entry = {**ENTRIES[0], **change}
    with pytest.raises(ValueError, match=message) as caught:
        MultidimensionalItems.from_entries([entry], DIMENSIONS)
    assert "'i01'" in str(caught.value)


def test_population_is_checked():
    mean, correlation = latent_population(DIMENSIONS)
    assert mean.shape == (3,) and correlation[1, 2] == 0.7
    with pytest.raises(ValueError, match="positive definite"):
        latent_population({**DIMENSIONS, "correlation": [[1, .99, -.99], [.99, 1, .99],
                                                         [-.99, .99, 1]]})
