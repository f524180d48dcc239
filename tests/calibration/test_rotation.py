"""Tests of calibration.rotation: varimax and oblimin (quartimin) by gradient projection.

Sources of the expected values:
- Harman's 8 physical variables (Harman 1976, Modern Factor Analysis, 3rd ed.), two
  factors: GPArotation's own tests (tests/Harman.R, values "with eps=1e-8") publish
  the quartimax loadings Q and rotation matrix Th of Harman8, so Harman8 = Q Th'
  (Th orthogonal), and the quartimin loadings and factor correlation 0.4727476.
- Two-factor varimax has a closed form (Kaiser 1958; Harman 1976, sec. 14.4): the
  angle phi with tan(4 phi) = (D - 2AB/p) / (C - (A^2 - B^2)/p).
- GPArotation's tests/rotations.R publishes ``Varimax(L, eps=1e-8)`` of a two-factor
  solution; varimax is invariant to an orthogonal rotation of its input.
- The model-preserving identities (L Phi L' = F F') and stationarity (projected
  gradient 0) are closed forms.
"""

import numpy as np
import pytest

from irtcat.calibration.rotation import (
    LOGISTIC_SCALE,
    RotationError,
    criterion,
    gradient_projection,
    loadings_from_slopes,
    projected_gradient,
    rotate,
    slopes_from_loadings,
)

# GPArotation tests/Harman.R: quartimax(Harman8) loadings and Th, eps = 1e-8
HARMAN_QUARTIMAX = np.array([
    [0.898754567491920398, 0.194823580226859222],
    [0.933943406208487592, 0.129748657024604030],
    [0.902131483644799892, 0.103864268239045668],
    [0.876508251941102934, 0.171284220753554678],
    [0.315572019798302239, 0.876476069451083251],
    [0.251123191235179066, 0.773488941629975613],
    [0.198007116064591759, 0.714678376605717203],
    [0.307857241091366252, 0.659334451631046314]])
HARMAN_QUARTIMAX_TH = np.array([[0.790828307905322436, -0.612038060430562525],
                                [0.612038060430562525, 0.790828307905322214]])
HARMAN8 = HARMAN_QUARTIMAX @ HARMAN_QUARTIMAX_TH.T
# GPArotation tests/Harman.R: quartimin(Harman8), eps = 1e-8
HARMAN_QUARTIMIN = np.array([
    [0.8918217697289939627, 0.0560146456758183961],
    [0.9536799985772628219, -0.0232460005406671701],
    [0.9291498623396581280, -0.0465027396531852502],
    [0.8766828510822184395, 0.0336582451338717017],
    [0.0136988312985193428, 0.9250013826349388069],
    [-0.0172668087945964319, 0.8212535444941218010],
    [-0.0524468998178311899, 0.7649536381341245361],
    [0.0858880630098148856, 0.6831160953442911854]])
HARMAN_QUARTIMIN_PHI = 0.472747617396915065
# GPArotation tests/rotations.R: Varimax(L, eps = 1e-8) of factanal(ability.cov, 2)
ABILITY_VARIMAX = np.array([
    [0.515866523962843160, 0.527879475961036904],
    [0.175054634278874244, 0.616460231981747930],
    [0.232057748479543163, 0.853211588623112749],
    [0.122822468397975171, 0.464213243286899446],
    [0.961376376417989453, 0.152689863976982837],
    [0.791292800869773050, 0.200653429940987366]])


def slopes_of(loadings):
    """Slopes whose mirt loadings are `loadings` (inverse of F = l / sqrt(1 + |l|^2))."""
    return LOGISTIC_SCALE * loadings / np.sqrt(1.0 - np.sum(loadings**2, axis=1))[:, None]


def turning(angle):
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def test_slopes_and_loadings_convert_both_ways():
    slopes = np.array([[1.2, 0.3], [0.0, 0.8], [2.0, -1.0]])
    loadings = loadings_from_slopes(slopes)
    # closed form for item 1: l = a / 1.702, F = l / sqrt(1 + |l|^2)
    scaled = slopes[0] / 1.702
    assert loadings[0] == pytest.approx(scaled / np.sqrt(1 + scaled @ scaled), abs=1e-15)
    communality = np.sum(loadings**2, axis=1)
    assert slopes_from_loadings(loadings, communality) == pytest.approx(slopes, abs=1e-12)


def test_quartimin_of_harman8_equals_published_values():
    rotation, _, _, converged = gradient_projection(HARMAN8, "oblimin")
    assert converged
    rotated = HARMAN8 @ np.linalg.inv(rotation.T)
    # GPArotation tests/Harman.R values, computed to its eps = 1e-8 (good to ~3e-9)
    assert rotated == pytest.approx(HARMAN_QUARTIMIN, abs=1e-8)
    correlation = rotation.T @ rotation
    assert correlation[0, 1] == pytest.approx(HARMAN_QUARTIMIN_PHI, abs=1e-8)


def test_varimax_of_harman8_equals_kaiser_closed_form():
    rotation, _, _, converged = gradient_projection(HARMAN8, "varimax")
    assert converged
    x, y = HARMAN8[:, 0], HARMAN8[:, 1]
    u, v = x**2 - y**2, 2 * x * y
    p = x.size
    numerator = 2 * np.sum(u * v) - 2 * u.sum() * v.sum() / p
    denominator = np.sum(u**2 - v**2) - (u.sum() ** 2 - v.sum() ** 2) / p
    angle = np.arctan2(numerator, denominator) / 4.0
    expected = HARMAN8 @ turning(angle)
    rotated = HARMAN8 @ rotation
    # the same solution up to the order and signs of the factors
    matched = [min((np.max(np.abs(s * rotated[:, k] - expected[:, j])), k, s)
                   for k in range(2) for s in (1, -1)) for j in range(2)]
    assert max(error for error, _, _ in matched) < 1e-10


@pytest.mark.parametrize("angle", (0.0, 0.4, -1.1))
def test_varimax_equals_published_values_from_any_orthogonal_start(angle):
    start = ABILITY_VARIMAX @ turning(angle)
    rotation, _, _, converged = gradient_projection(start, "varimax")
    assert converged
    rotated = start @ rotation
    # GPArotation tests/rotations.R test 10 values, computed to its eps = 1e-8
    for j in range(2):
        column = ABILITY_VARIMAX[:, j]
        assert min(np.max(np.abs(s * rotated[:, k] - column))
                   for k in range(2) for s in (1, -1)) < 1e-8


@pytest.mark.parametrize("method", ("varimax", "oblimin"))
def test_rotation_preserves_the_model_and_is_stationary(method):
    rng = np.random.default_rng(18)
    slopes = rng.uniform(0.2, 1.8, (12, 3)) * (rng.random((12, 3)) < 0.7)
    slopes[:, 0] += 0.5
    result = rotate(slopes, method)
    assert result.converged
    original = loadings_from_slopes(slopes)
    # closed form: L Phi L' = F F' (the implied correlations among items are unchanged)
    implied = result.loadings @ result.correlation @ result.loadings.T
    assert implied == pytest.approx(original @ original.T, abs=1e-10)
    # the same for slopes: a_rot Phi a_rot' = a a', so a'theta has the same distribution
    slope_form = result.slopes @ result.correlation @ result.slopes.T
    assert slope_form == pytest.approx(slopes @ slopes.T, abs=1e-10)
    assert np.diag(result.correlation) == pytest.approx(np.ones(3), abs=1e-12)
    # stationarity: the projected gradient vanishes at the solution
    assert np.max(np.abs(projected_gradient(method, original, result.rotation))) < 1e-10
    # the criterion is no larger than at the start (T = I)
    assert result.criterion <= criterion(method, original)[0] + 1e-12
    if method == "varimax":
        assert result.correlation == pytest.approx(np.eye(3), abs=1e-12)


@pytest.mark.parametrize("method", ("varimax", "oblimin"))
def test_signs_make_each_factors_largest_loading_positive(method):
    rng = np.random.default_rng(7)
    slopes = -rng.uniform(0.3, 1.5, (10, 2))
    result = rotate(slopes, method)
    largest = result.loadings[np.argmax(np.abs(result.loadings), axis=0), [0, 1]]
    assert np.all(largest > 0)
    flipped = rotate(-slopes, method)
    assert flipped.loadings == pytest.approx(result.loadings, abs=1e-9)


def test_kaiser_normalization_rotates_the_normalized_rows():
    slopes = slopes_of(HARMAN8 * 0.9)
    plain = rotate(slopes, "varimax")
    normalized = rotate(slopes, "varimax", normalize=True)
    rows = loadings_from_slopes(slopes)
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    rotation, _, _, _ = gradient_projection(rows, "varimax")
    assert np.abs(normalized.rotation) == pytest.approx(np.abs(rotation), abs=1e-8)
    assert not np.allclose(np.abs(plain.rotation), np.abs(normalized.rotation), atol=1e-4)


def test_refuses_one_factor_and_unknown_method():
    with pytest.raises(RotationError):
        rotate(np.ones((5, 1)))
    with pytest.raises(RotationError):
        rotate(np.ones((5, 2)), "promax")
