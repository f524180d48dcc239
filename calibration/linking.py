"""Scale linking: put newly calibrated item parameters on the scale of old ones.

This module works on `ItemParameters`; moving a whole bank document (its items'
standard errors, population and linking record) is `irtcat.itembank.linking`.

Two calibrations of the same items differ by a linear change of the theta
scale, because each fixes its own population at N(0, 1). The constants
``A`` and ``B`` of `LinkingConstants` map the NEW scale onto the OLD one::

    theta_old = A * theta_new + B
    a_old = a_new / A
    b_old = A * b_new + B        (every GRM threshold and GPCM / PCM step too)
    c_old = c_new,  u_old = u_new

Under this map the transformed item gives, at every old-scale theta, exactly
the category probabilities the new item gives at ``(theta - B) / A``.

The constants are estimated from the items the two banks share ("common" or
"anchor" items), by one of four methods (Kolen & Brennan, *Test Equating,
Scaling, and Linking*, 3rd ed., ch. 6):

- `mean_mean`: ``A = mean(a_new) / mean(a_old)``;
- `mean_sigma`: ``A = sd(b_old) / sd(b_new)``;
  both with ``B = mean(b_old) - A mean(b_new)`` over every difficulty value
  (each threshold / step of a polytomous item counts once);
- `haebara`: the item characteristic curve criterion, summed over items and
  categories, ``sum_q w_q sum_j sum_k (P_jk(theta_q | old) - P_jk(theta_q | new*))^2``;
- `stocking_lord`: the test characteristic curve criterion,
  ``sum_q w_q (sum_j E_j(theta_q | old) - sum_j E_j(theta_q | new*))^2``;

where ``new*`` is the new items transformed to the old scale by (A, B) and
``theta_q`` are points on the OLD scale with weights ``w_q`` (by default 61
equally spaced points on [-4, 4] weighted by the N(0, 1) density). Both
characteristic-curve criteria are the standard one-directional (new to old)
forms; the symmetric variants, which also compare on the new scale, are not
implemented. For a dichotomous item the Haebara sum over both categories is
twice the usual sum over the ICC alone, which leaves the minimiser unchanged.

Both criteria are minimised with BFGS, with analytic gradients, from the
mean-sigma solution, over ``(log A, B)`` so that A stays positive. They are
divided by ``n_items`` (Haebara) and ``n_items**2`` (Stocking-Lord, i.e. the
test characteristic curves are averaged over items instead of summed), which
leaves the minimiser unchanged and makes the gradient tolerance independent
of the number of common items.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from irtcat.engine import (
    ConvergenceWarning,
    ItemParameters,
    category_terms,
    expected_score,
    normal_grid,
)

METHODS = ("mean-mean", "mean-sigma", "haebara", "stocking-lord")
FIXED_SLOPE_MODELS = ("rasch", "pcm")   # a = 1 by definition: only a shift (A = 1) keeps them valid
DEFAULT_GRID = {"n_nodes": 61, "half_width": 4.0}


@dataclass(frozen=True)
class LinkingConstants:
    """The linear map from the NEW theta scale to the OLD one.

    ``theta_old = A * theta_new + B``; item parameters follow as
    ``a_old = a_new / A`` and ``b_old = A * b_new + B``.

    Attributes
    ----------
    A : float
        Slope, > 0.
    B : float
        Intercept.
    method : str
        How the constants were obtained: one of `METHODS`, or any label.
    n_common : int
        Number of common items they were estimated from (0 if given by hand).
    """

    A: float
    B: float
    method: str
    n_common: int

    def __post_init__(self):
        if not (np.isfinite(self.A) and self.A > 0):
            raise ValueError(f"linking slope A must be a finite number > 0, got {self.A}")
        if not np.isfinite(self.B):
            raise ValueError(f"linking intercept B must be finite, got {self.B}")

    def inverse(self):
        """The map from the OLD scale back to the NEW one: ``(1 / A, -B / A)``."""
        return LinkingConstants(1.0 / self.A, -self.B / self.A, self.method, self.n_common)


# --- parameters -------------------------------------------------------------------

def transform_parameters(params, constants):
    """Item parameters moved from the new scale to the old one.

    Parameters
    ----------
    params : ItemParameters of n_items items on the NEW scale
    constants : LinkingConstants

    Returns
    -------
    ItemParameters of the same n_items items on the OLD scale: ``a / A``,
    ``A * b + B`` (every threshold, NaN padding kept), c and u unchanged.
    """
    return _transform(params, constants.A, constants.B)


def _transform(params, scale, shift):
    # A nominal item's step v moves by shift (ak_v - ak_{v-1}): by shift when ak_k = k.
    score_steps = 1.0 if params.ak is None else np.nan_to_num(np.diff(params.ak, axis=1), nan=1.0)
    return ItemParameters(params.model, params.a / scale, scale * params.b + shift * score_steps,
                          params.c, params.u, params.ak)


def _check_common(new, old, names=None):
    """ValueError unless `new` and `old` hold the same kind of items in the same order.

    names : the items' ids, for the messages (default: their positions).
    """
    if new.n_items != old.n_items:
        raise ValueError(f"new and old parameters must hold the same common items, got "
                         f"{new.n_items} and {old.n_items} items")
    if new.n_items == 0:
        raise ValueError("linking needs at least one common item")
    names = list(range(new.n_items)) if names is None else [repr(name) for name in names]
    for i, (model_new, model_old) in enumerate(zip(new.model, old.model, strict=True)):
        if model_new != model_old:
            raise ValueError(f"common item {names[i]} is {model_new} in the new bank and "
                             f"{model_old} in the old bank")
    mismatch = np.flatnonzero(new.n_categories != old.n_categories)
    if mismatch.size:
        i = mismatch[0]
        raise ValueError(f"common item {names[i]} has {new.n_categories[i]} categories in the "
                         f"new bank and {old.n_categories[i]} in the old bank")


def _difficulties(params):
    """Every difficulty value (thresholds and steps included), row by row: shape (n_values,)."""
    return params.b[~np.isnan(params.b)]


# --- moment methods -----------------------------------------------------------------

def mean_mean(new, old):
    """Mean-mean linking: ``A = mean(a_new) / mean(a_old)``, ``B = mean(b_old) - A mean(b_new)``.

    Parameters
    ----------
    new, old : ItemParameters
        The same n_common items, in the same order, on the new and old scales.

    Returns
    -------
    LinkingConstants
    """
    _check_common(new, old)
    scale = float(np.mean(new.a) / np.mean(old.a))
    shift = float(np.mean(_difficulties(old)) - scale * np.mean(_difficulties(new)))
    return LinkingConstants(scale, shift, "mean-mean", new.n_items)


def mean_sigma(new, old):
    """Mean-sigma linking: ``A = sd(b_old) / sd(b_new)``, ``B = mean(b_old) - A mean(b_new)``.

    Means and standard deviations are over every difficulty value (each
    threshold / step of a polytomous item counts once).

    Parameters
    ----------
    new, old : ItemParameters
        The same n_common items, in the same order, on the new and old scales.

    Returns
    -------
    LinkingConstants
    """
    _check_common(new, old)
    b_new, b_old = _difficulties(new), _difficulties(old)      # (n_values,) each
    sd_new, sd_old = np.std(b_new), np.std(b_old)
    if sd_new == 0 or sd_old == 0:
        raise ValueError("mean-sigma linking needs common items whose difficulties differ")
    scale = float(sd_old / sd_new)
    shift = float(np.mean(b_old) - scale * np.mean(b_new))
    return LinkingConstants(scale, shift, "mean-sigma", new.n_items)


# --- characteristic-curve methods ---------------------------------------------------

def _grid(theta, weights):
    """Theta points on the old scale, shape (n_theta,), and weights summing to 1."""
    if theta is None:
        if weights is not None:
            raise ValueError("weights need theta points")
        grid = normal_grid(DEFAULT_GRID["n_nodes"],
                           (-DEFAULT_GRID["half_width"], DEFAULT_GRID["half_width"]))
        return grid.nodes, grid.weights
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 1 or theta.size == 0 or not np.all(np.isfinite(theta)):
        raise ValueError("theta must be a non-empty 1-D array of finite numbers")
    if weights is None:
        weights = np.ones_like(theta)
    weights = np.asarray(weights, dtype=float)
    if weights.shape != theta.shape or not np.all(np.isfinite(weights)) \
            or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError(f"weights must be {theta.shape[0]} finite numbers >= 0 with a "
                         f"positive sum")
    return theta, weights / weights.sum()


def _moved_terms(x, new, theta):
    """Category probabilities of the moved new items and their theta slopes.

    Returns
    -------
    p, slope : ndarray of shape (n_theta, n_items, n_categories_max)
        P*_jk(theta) and dP*_jk / dtheta; both 0 beyond an item's categories.
    """
    log_p, g1, _ = category_terms(theta, _transform(new, np.exp(x[0]), x[1]))
    p = np.exp(log_p)
    return p, p * g1


def _haebara_objective(x, new, p_old, theta, weights):
    """Haebara criterion, divided by n_items, and its gradient in ``x = (log A, B)``.

    Since P*(theta) = P_new((theta - B) / A), ``dP*/dB = -dP*/dtheta`` and
    ``dP*/dlog A = -(theta - B) dP*/dtheta``.
    """
    p, slope = _moved_terms(x, new, theta)                      # (n_theta, n_items, n_cat)
    residual = p - p_old
    weighted = weights[:, None, None] * residual / new.n_items  # (n_theta, n_items, n_cat)
    value = np.sum(weighted * residual)
    pull = np.sum(weighted * slope, axis=(1, 2))                # (n_theta,)
    gradient = -2.0 * np.array([np.sum(pull * (theta - x[1])), np.sum(pull)])
    return value, gradient


def _stocking_lord_objective(x, new, mean_old, theta, weights):
    """Stocking-Lord criterion, divided by n_items**2, and its gradient in ``x = (log A, B)``.

    The test characteristic curves are taken as means over the items rather
    than sums, which divides the criterion by ``n_items**2``.
    """
    p, slope = _moved_terms(x, new, theta)                      # (n_theta, n_items, n_cat)
    scores = np.arange(p.shape[-1], dtype=float)
    mean_score = np.mean(p @ scores, axis=1)                    # (n_theta,) TCC / n_items
    mean_slope = np.mean(slope @ scores, axis=1)                # (n_theta,) its theta derivative
    residual = mean_score - mean_old
    weighted = weights * residual                               # (n_theta,)
    value = np.sum(weighted * residual)
    pull = weighted * mean_slope
    gradient = -2.0 * np.array([np.sum(pull * (theta - x[1])), np.sum(pull)])
    return value, gradient


def _start(new, old):
    """Mean-sigma constants, or a pure shift when the difficulties do not vary."""
    try:
        return mean_sigma(new, old)
    except ValueError:
        shift = float(np.mean(_difficulties(old)) - np.mean(_difficulties(new)))
        return LinkingConstants(1.0, shift, "mean-sigma", new.n_items)


def _minimise(objective, target, new, old, theta, weights, start, method, tol, max_iter):
    """Minimise `objective` over ``(log A, B)`` from `start` (default: mean-sigma)."""
    if start is None:
        start = _start(new, old)
    result = minimize(objective, np.array([np.log(start.A), start.B]),
                      args=(new, target, theta, weights), jac=True, method="BFGS",
                      options={"gtol": tol, "maxiter": max_iter})
    if not result.success:
        warnings.warn(f"{method} linking did not converge: {result.message}",
                      ConvergenceWarning, stacklevel=3)
    return LinkingConstants(float(np.exp(result.x[0])), float(result.x[1]), method, new.n_items)


def haebara(new, old, *, theta=None, weights=None, start=None, tol=1e-8, max_iter=200):
    """Haebara linking: match item category curves on the old scale.

    Minimises ``sum_q w_q sum_j sum_k (P_jk(theta_q | old) - P_jk(theta_q | new*))^2``,
    new* being the new items moved to the old scale by (A, B). One-directional
    (new to old) criterion.

    Parameters
    ----------
    new, old : ItemParameters
        The same n_common items, in the same order, on the new and old scales.
    theta : array_like of shape (n_theta,), optional
        Points on the OLD scale; default 61 equally spaced on [-4, 4].
    weights : array_like of shape (n_theta,), optional
        Weight of each point, normalised to sum to 1; default the N(0, 1)
        density with the default points, equal weights with given points.
    start : LinkingConstants, optional
        Where the minimiser starts; default the `mean_sigma` constants.
    tol : float
        BFGS gradient tolerance (``gtol``) on the criterion divided by
        ``n_items``.
    max_iter : int
        BFGS iteration limit; a `ConvergenceWarning` if reached.

    Returns
    -------
    LinkingConstants
    """
    _check_common(new, old)
    theta, weights = _grid(theta, weights)
    p_old = np.exp(category_terms(theta, old, derivatives=False)[0])  # (n_theta, n_items, n_cat)
    return _minimise(_haebara_objective, p_old, new, old, theta, weights, start, "haebara",
                     tol, max_iter)


def stocking_lord(new, old, *, theta=None, weights=None, start=None, tol=1e-8, max_iter=200):
    """Stocking-Lord linking: match test characteristic curves on the old scale.

    Minimises ``sum_q w_q (sum_j E_j(theta_q | old) - sum_j E_j(theta_q | new*))^2``
    with E_j the expected item score, new* being the new items moved to the
    old scale by (A, B). One-directional (new to old) criterion.

    Parameters
    ----------
    new, old : ItemParameters
        The same n_common items, in the same order, on the new and old scales.
    theta : array_like of shape (n_theta,), optional
        Points on the OLD scale; default 61 equally spaced on [-4, 4].
    weights : array_like of shape (n_theta,), optional
        Weight of each point, normalised to sum to 1; default the N(0, 1)
        density with the default points, equal weights with given points.
    start : LinkingConstants, optional
        Where the minimiser starts; default the `mean_sigma` constants.
    tol : float
        BFGS gradient tolerance (``gtol``) on the criterion divided by
        ``n_items**2``.
    max_iter : int
        BFGS iteration limit; a `ConvergenceWarning` if reached.

    Returns
    -------
    LinkingConstants
    """
    _check_common(new, old)
    theta, weights = _grid(theta, weights)
    mean_old = expected_score(theta, old).mean(axis=-1)           # (n_theta,) TCC / n_items
    return _minimise(_stocking_lord_objective, mean_old, new, old, theta, weights, start,
                     "stocking-lord", tol, max_iter)


_LINKERS = {"mean-mean": mean_mean, "mean-sigma": mean_sigma, "haebara": haebara,
            "stocking-lord": stocking_lord}


def link_parameters(new, old, method, *, names=None, population=None, theta=None,
                    weights=None):
    """The constants of `method` that move `new` onto the scale of `old`.

    Parameters
    ----------
    new, old : ItemParameters of the same n_common items, in the same order
    method : {"mean-mean", "mean-sigma", "haebara", "stocking-lord"}
    names : list of n_common item ids, optional, for the messages
    population : {"mean", "sd"}, optional
        The old scale's population: haebara and stocking-lord then use 61 points on
        ``mean +- 4 sd`` weighted by its normal density, unless `theta` or `weights`
        are given (default: N(0, 1), i.e. 61 points on [-4, 4]).
    theta, weights : array_like of shape (n_theta,), optional

    Returns
    -------
    LinkingConstants

    Raises
    ------
    ValueError
        One line: an unknown method, or a common item whose model or number of
        categories differs between `new` and `old`.
    """
    if method not in _LINKERS:
        raise ValueError(f"unknown linking method {method!r}; expected one of "
                         f"{', '.join(METHODS)}")
    _check_common(new, old, names)
    options = {}
    if method in ("haebara", "stocking-lord"):
        if theta is None and weights is None and population is not None:
            mean, sd = population["mean"], population["sd"]
            half = DEFAULT_GRID["half_width"] * sd
            grid = normal_grid(DEFAULT_GRID["n_nodes"], (mean - half, mean + half), mean, sd)
            theta, weights = grid.nodes, grid.weights
        options = {"theta": theta, "weights": weights}
    return _LINKERS[method](new, old, **options)


__all__ = ["FIXED_SLOPE_MODELS", "METHODS", "LinkingConstants", "haebara", "link_parameters",
           "mean_mean", "mean_sigma", "stocking_lord", "transform_parameters"]
