"""Rotation of an exploratory multidimensional model's slopes, as R mirt's ``summary``.

An exploratory fit is identified only up to a rotation of its factors. mirt reports
it rotated (``summary(mod, rotate = "oblimin")`` by default): it converts the slopes
to standardized factor loadings, rotates those with GPArotation, and converts the
rotated loadings back to slopes (``coef(mod, rotate = ...)``). This module does the
same (mirt's ``Lambdas``, ``Rotate`` and ``rotateLambdas``):

- loadings: ``lambda = a / 1.702`` (factor variances 1), ``F = lambda / sqrt(1 +
  |lambda|^2)`` per item; the communality ``h2 = |F|^2`` per item;
- rotation by the gradient projection algorithm of Bernaards & Jennrich (2005,
  "Gradient projection algorithms and software for arbitrary rotation criteria in
  factor analysis", Educational and Psychological Measurement 65, 676-696),
  started at the identity, no random starts, no Kaiser normalization (GPArotation's
  defaults, which mirt keeps): ``varimax`` (orthogonal) or ``oblimin`` with gamma 0
  (quartimin, oblique);
- signs: each factor's sign is turned so that its largest loading in absolute value
  is positive (the first such item on a tie), and the correlations are turned with
  it (mirt's ``Rotate``). Factors are not reordered;
- slopes back: ``a = 1.702 F_rotated / sqrt(1 - h2)`` with the unrotated communality.

With ``T`` the rotation matrix, the rotated loadings are ``F @ inv(T').`` and the
factor correlation ``Phi = T' T`` (the identity for an orthogonal ``T``); the
slopes transform the same way, so ``a_rot Phi a_rot' = a a'``: the model (the
item response functions over the population) is unchanged.

mirt rescales the slopes of generalized partial credit and nominal items before
converting (``nominal_rescale_d``); this module converts every item by the formula
above, which is mirt's for dichotomous and graded items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOGISTIC_SCALE = 1.702
"""mirt's factor-analytic scaling of logistic slopes (``a / 1.702``)."""

METHODS = ("varimax", "oblimin")


class RotationError(ValueError):
    """The rotation cannot be done (one factor, unknown method)."""


@dataclass(frozen=True)
class Rotated:
    """A rotated exploratory solution.

    slopes : ndarray (n_items, n_factors)
        Rotated slopes (slope-intercept form; intercepts do not change).
    loadings : ndarray (n_items, n_factors)
        Rotated standardized loadings, mirt's ``summary(mod)$rotF``.
    correlation : ndarray (n_factors, n_factors)
        The rotated factors' correlation Phi (identity for varimax).
    rotation : ndarray (n_factors, n_factors)
        T, with rotated = unrotated @ inv(T') and Phi = T' T, signs included.
    communality : ndarray (n_items,)
        h2, unchanged by the rotation.
    method : str
    criterion : float
        The rotation criterion at the solution (of the loadings actually rotated).
    iterations : int
    converged : bool
        The projected gradient's Frobenius norm fell below the tolerance.
    """

    slopes: np.ndarray
    loadings: np.ndarray
    correlation: np.ndarray
    rotation: np.ndarray
    communality: np.ndarray
    method: str
    criterion: float
    iterations: int
    converged: bool


# --- slopes <-> standardized loadings ----------------------------------------------

def loadings_from_slopes(slopes):
    """mirt's standardized loadings of slopes under uncorrelated unit-variance factors.

    slopes : (n_items, n_factors) -> (n_items, n_factors)
    """
    scaled = np.asarray(slopes, dtype=float) / LOGISTIC_SCALE
    return scaled / np.sqrt(1.0 + np.sum(scaled**2, axis=1, keepdims=True))


def slopes_from_loadings(loadings, communality):
    """Inverse of `loadings_from_slopes` for rotated loadings: ``1.702 F / sqrt(1 - h2)``.

    loadings : (n_items, n_factors); communality : (n_items,) of the unrotated loadings.
    """
    scale = LOGISTIC_SCALE / np.sqrt(1.0 - np.asarray(communality, dtype=float))
    return np.asarray(loadings, dtype=float) * scale[:, None]


# --- criteria: value and gradient with respect to the loadings -------------------------

def criterion(method, loadings):
    """The rotation criterion f(L) and its gradient dF/dL, both to be minimized.

    varimax: ``f = -(1/4) sum_j sum_i (L_ij^2 - mean_i L_ij^2)^2``;
    oblimin (gamma 0, quartimin): ``f = (1/4) sum_i sum_{j != k} L_ij^2 L_ik^2``.

    loadings : (n_items, n_factors) -> (float, (n_items, n_factors))
    """
    squared = loadings**2
    if method == "varimax":
        centred = squared - squared.mean(axis=0)
        return -np.sum(centred**2) / 4.0, -loadings * centred
    if method == "oblimin":
        others = squared.sum(axis=1, keepdims=True) - squared   # sum over k != j
        return np.sum(squared * others) / 4.0, loadings * others
    raise RotationError(f"unknown rotation {method!r}: one of {', '.join(METHODS)}")


def projected_gradient(method, unrotated, rotation):
    """The gradient of f(unrotated @ inv(T')) in T, projected on the constraint's
    tangent space (orthogonal T, or T with unit-length columns); zero at a stationary
    rotation. unrotated : (n_items, m); rotation : (m, m) -> (m, m)."""
    gradient, _ = _gradient_in_rotation(method, unrotated, rotation)
    return _project(method, rotation, gradient)


def _rotated(unrotated, rotation):
    return unrotated @ np.linalg.inv(rotation.T)


def _gradient_in_rotation(method, unrotated, rotation):
    """(dF/dT (m, m), f). Orthogonal: L = A T, G = A' Gq. Oblique: L = A inv(T'),
    G = -(L' Gq inv(T))' (Bernaards & Jennrich 2005, sections 2-3)."""
    loadings = _rotated(unrotated, rotation)
    value, gradient_loadings = criterion(method, loadings)
    if method == "varimax":
        return unrotated.T @ gradient_loadings, value
    return -(loadings.T @ gradient_loadings @ np.linalg.inv(rotation)).T, value


def _project(method, rotation, gradient):
    if method == "varimax":
        product = rotation.T @ gradient
        return gradient - rotation @ ((product + product.T) / 2.0)
    return gradient - rotation * np.sum(rotation * gradient, axis=0)


def _retract(method, candidate):
    """Back onto the constraint: the nearest orthogonal matrix (polar factor), or the
    columns scaled to unit length."""
    if method == "varimax":
        left, _, right = np.linalg.svd(candidate)
        return left @ right
    return candidate / np.sqrt(np.sum(candidate**2, axis=0))


def _norm(matrix):
    return float(np.sqrt(np.sum(matrix**2)))


def gradient_projection(unrotated, method, *, tolerance=1e-10, max_iterations=1000):
    """Minimize the criterion over T from T = I by gradient projection with step
    halving (Bernaards & Jennrich 2005): step doubled each iteration, halved (at most
    11 times) until f decreases by at least ``0.5 s^2 alpha`` (s the projected
    gradient's norm), or, once that decrease is below f's rounding, until s
    decreases: near the solution the gradient is still exact where f no longer is.

    unrotated : (n_items, m). Returns (T (m, m), f, iterations, converged).
    """
    rotation = np.eye(unrotated.shape[1])
    gradient, value = _gradient_in_rotation(method, unrotated, rotation)
    step = 1.0
    for iteration in range(max_iterations + 1):
        projected = _project(method, rotation, gradient)
        size = _norm(projected)
        if size < tolerance:
            return rotation, value, iteration, True
        step *= 2.0
        for _ in range(11):
            candidate = _retract(method, rotation - step * projected)
            candidate_gradient, candidate_value = _gradient_in_rotation(
                method, unrotated, candidate)
            required = 0.5 * size**2 * step
            rounding = 64 * np.finfo(float).eps * max(abs(value), 1.0)
            if candidate_value < value - required or (
                    required <= rounding and _norm(_project(method, candidate, candidate_gradient))
                    < size):
                break
            step /= 2.0
        rotation, value, gradient = candidate, candidate_value, candidate_gradient
    return rotation, value, max_iterations, False


# --- the rotation mirt reports -------------------------------------------------------

def rotate(slopes, method="oblimin", *, normalize=False, tolerance=1e-10,
           max_iterations=1000):
    """Rotate an exploratory model's slopes as mirt's ``summary``/``coef(rotate=)``.

    Parameters
    ----------
    slopes : array_like (n_items, n_factors), n_factors >= 2
        Unrotated slopes of a model with uncorrelated unit-variance factors.
    method : "oblimin" (gamma 0, mirt's default) or "varimax"
    normalize : bool
        Kaiser normalization (rows to unit length before rotating); GPArotation's
        default, which mirt keeps, is False.
    tolerance : float
        On the projected gradient's Frobenius norm (GPArotation: 1e-5).

    Returns
    -------
    Rotated
    """
    if method not in METHODS:
        raise RotationError(f"unknown rotation {method!r}: one of {', '.join(METHODS)}")
    slopes = np.asarray(slopes, dtype=float)
    if slopes.ndim != 2 or slopes.shape[1] < 2:
        raise RotationError("rotation needs slopes of shape (n_items, n_factors >= 2)")
    loadings = loadings_from_slopes(slopes)
    communality = np.sum(loadings**2, axis=1)
    weight = np.sqrt(communality)[:, None] if normalize else np.ones((slopes.shape[0], 1))
    weight = np.where(weight > 0, weight, 1.0)
    rotation, value, iterations, converged = gradient_projection(
        loadings / weight, method, tolerance=tolerance, max_iterations=max_iterations)
    rotated = _rotated(loadings, rotation)
    largest = np.argmax(np.abs(rotated), axis=0)                  # first on a tie
    signs = np.sign(rotated[largest, np.arange(rotated.shape[1])])
    signs[signs == 0] = 1.0
    rotation = rotation * signs
    rotated = rotated * signs
    correlation = rotation.T @ rotation
    return Rotated(slopes=slopes_from_loadings(rotated, communality), loadings=rotated,
                   correlation=correlation, rotation=rotation, communality=communality,
                   method=method, criterion=float(value), iterations=iterations,
                   converged=converged)
