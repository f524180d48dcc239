"""Scoring on a multidimensional bank: EAP and MAP theta vectors with their covariance,
per-factor SEs and a weighted composite.

The prior is the bank's population N(mean, Sigma) (Sigma the factor correlation).

- EAP integrates the posterior on a full product grid in the prior's whitened
  coordinates: theta = mean + L z with L L^T = Sigma, z on an equally spaced grid per
  factor weighted by the standard normal density (mirt's rectangular quadrature, as
  `engine.quadrature.normal_grid`). Default points per factor: 121 on [-6, 6] for one
  factor (the unidimensional engine's grid), 41 on [-5, 5] for two (1,681 nodes), 25 on
  [-4.8, 4.8] for three (15,625 nodes). Above three factors a full grid is refused (a
  ValueError): use MAP, which works for any number of factors.
- MAP maximises log L + log prior by Newton's method (the observed information where it
  is positive definite, else the expected one: Fisher scoring) with step halving; the
  covariance is the inverse of the observed information plus the prior precision at the
  mode (the expected one where the observed is not positive definite).
- A composite ``w . theta`` has SE ``sqrt(w^T C w)``, C the theta covariance.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .kernel import logsumexp
from .multidimensional import predictor_terms

GRID_POINTS = {1: (121, 6.0), 2: (41, 5.0), 3: (25, 4.8)}   # points per factor, bound of z
MAX_GRID_FACTORS = 3
_GRID_CELLS = 2**21                                         # persons x nodes per chunk
LOG_FLOOR = -1e300                                          # log of a probability 0


@dataclass(frozen=True, eq=False)
class LatentGrid:
    """Quadrature over theta: nodes (Q, m), log_weights (Q,) summing (in exp) to 1."""

    nodes: np.ndarray
    log_weights: np.ndarray

    @functools.cached_property
    def moment_basis(self):
        """theta and its outer products at each node, (Q, m + m^2): one product with a
        posterior (N, Q) gives the first and second moments."""
        m = self.nodes.shape[1]
        outer = (self.nodes[:, :, None] * self.nodes[:, None, :]).reshape(-1, m * m)
        return np.ascontiguousarray(np.concatenate([self.nodes, outer], axis=1))


def latent_grid(mean, correlation, n_points=None, bound=None):
    """The product grid of the prior N(mean, correlation) in whitened coordinates."""
    mean = np.asarray(mean, dtype=float)
    m = mean.shape[0]
    if m > MAX_GRID_FACTORS and (n_points is None or bound is None):
        raise ValueError(f"EAP on a full grid is for up to {MAX_GRID_FACTORS} factors "
                         f"(this bank has {m}); score with MAP")
    default_points, default_bound = GRID_POINTS.get(m, (None, None))
    n_points = n_points or default_points
    bound = bound or default_bound
    axis = np.linspace(-bound, bound, n_points)
    z = np.stack(np.meshgrid(*([axis] * m), indexing="ij"), axis=-1).reshape(-1, m)
    log_density = -0.5 * np.sum(z**2, axis=1)
    log_weights = log_density - logsumexp(log_density)
    whitening = np.linalg.cholesky(np.asarray(correlation, dtype=float))
    return LatentGrid(mean + z @ whitening.T, log_weights)


@dataclass(frozen=True, eq=False)
class MultidimensionalEstimate:
    """theta (N, m) and its covariance (N, m, m) per person; `method` eap or map."""

    theta: np.ndarray
    covariance: np.ndarray
    method: str

    @property
    def se(self):
        """Per-factor standard errors: shape (N, m)."""
        return np.sqrt(np.diagonal(self.covariance, axis1=1, axis2=2))

    def composite(self, weights):
        """``w . theta`` and its SE ``sqrt(w^T C w)``: two arrays of shape (N,)."""
        return composite(self.theta, self.covariance, weights)


def composite(theta, covariance, weights):
    """A weighted composite of theta (..., m) and its SE from the covariance (..., m, m)."""
    weights = np.asarray(weights, dtype=float)
    variance = np.einsum("k,...kl,l->...", weights, covariance, weights)
    return theta @ weights, np.sqrt(np.maximum(variance, 0.0))


def _answers(responses):
    """(observed (N, n) bool, category (N, n) int) of a response matrix with NaN missing."""
    responses = np.asarray(responses, dtype=float)
    observed = ~np.isnan(responses)
    return observed, np.where(observed, responses, 0).astype(np.intp)


def grid_log_likelihood(responses, items, nodes):
    """log L of every person at every node: shape (N, Q) for responses (N, n), nodes (Q, m)."""
    observed, category = _answers(responses)
    log_p = np.maximum(predictor_terms(nodes, items, derivatives=False)[0], LOG_FLOOR)
    width = log_p.shape[-1]
    indicator = np.zeros(observed.shape + (width,))                     # (N, n, K)
    np.put_along_axis(indicator, category[..., None], observed[..., None].astype(float), -1)
    return indicator.reshape(observed.shape[0], -1) @ log_p.reshape(log_p.shape[0], -1).T


def posterior_moments(log_post, grid):
    """Mean (N, m) and covariance (N, m, m) of a log posterior (N, Q) on `grid`."""
    post = log_post - log_post.max(axis=1, keepdims=True)
    np.exp(post, out=post)
    moments = (post @ grid.moment_basis) / post.sum(axis=1)[:, None]      # (N, m + m^2)
    m = grid.nodes.shape[1]
    mean = moments[:, :m]
    second = moments[:, m:].reshape(-1, m, m)
    return mean, second - mean[:, :, None] * mean[:, None, :]


def estimate_eap(responses, items, mean, correlation, grid=None):
    """EAP theta and posterior covariance of every row of `responses` (N, n)."""
    responses = np.atleast_2d(np.asarray(responses, dtype=float))
    grid = grid or latent_grid(mean, correlation)
    n_persons, m = responses.shape[0], grid.nodes.shape[1]
    theta, covariance = np.empty((n_persons, m)), np.empty((n_persons, m, m))
    rows = max(1, _GRID_CELLS // grid.nodes.shape[0])
    for start in range(0, n_persons, rows):
        chunk = slice(start, start + rows)
        log_post = grid_log_likelihood(responses[chunk], items, grid.nodes) + grid.log_weights
        theta[chunk], covariance[chunk] = posterior_moments(log_post, grid)
    return MultidimensionalEstimate(theta, covariance, "eap")


def _map_terms(theta, items, observed, category, mean, precision):
    """log posterior (N,), its gradient (N, m), observed and expected information plus
    the prior precision (N, m, m) at theta (N, m)."""
    log_p, g1, g2 = predictor_terms(theta, items)                      # (N, n, K)
    at = category[..., None]

    def pick(values):                                                  # (N, n, K) -> (N, n)
        return np.where(observed, np.take_along_axis(values, at, -1)[..., 0], 0.0)

    slopes = items.slopes
    shift = theta - mean
    log_post = (pick(np.maximum(log_p, LOG_FLOOR)).sum(axis=1)
                - 0.5 * np.einsum("nk,kl,nl->n", shift, precision, shift))
    gradient = pick(g1) @ slopes - shift @ precision
    expected_scalar = np.where(observed, np.sum(np.exp(log_p) * g1**2, axis=-1), 0.0)
    observed_info = np.einsum("nj,jk,jl->nkl", -pick(g2), slopes, slopes) + precision
    expected_info = np.einsum("nj,jk,jl->nkl", expected_scalar, slopes, slopes) + precision
    return log_post, gradient, observed_info, expected_info


def _positive_definite(matrices):
    return np.linalg.eigvalsh(matrices)[..., 0] > 0


def estimate_map(responses, items, mean, correlation, *, max_iter=100, tol=1e-12):
    """MAP theta (Newton with step halving) and covariance of every row of `responses`."""
    responses = np.atleast_2d(np.asarray(responses, dtype=float))
    observed, category = _answers(responses)
    mean = np.asarray(mean, dtype=float)
    precision = np.linalg.inv(np.asarray(correlation, dtype=float))
    theta = np.broadcast_to(mean, (responses.shape[0], mean.shape[0])).copy()
    active = np.ones(responses.shape[0], dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        rows = np.flatnonzero(active)
        value, gradient, hessian, expected = _map_terms(theta[rows], items, observed[rows],
                                                        category[rows], mean, precision)
        curvature = np.where(_positive_definite(hessian)[:, None, None], hessian, expected)
        step = np.linalg.solve(curvature, gradient[..., None])[..., 0]
        scale = np.ones(rows.size)
        for _ in range(40):                                   # halve until not worse
            trial = theta[rows] + scale[:, None] * step
            worse = _map_terms(trial, items, observed[rows], category[rows], mean,
                               precision)[0] < value - 1e-12 * np.abs(value)
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        theta[rows] += scale[:, None] * step
        active[rows] = np.max(np.abs(scale[:, None] * step), axis=1) > tol
    _, _, hessian, expected = _map_terms(theta, items, observed, category, mean, precision)
    information = np.where(_positive_definite(hessian)[:, None, None], hessian, expected)
    return MultidimensionalEstimate(theta, np.linalg.inv(information), "map")


def estimate(responses, items, mean, correlation, method="eap"):
    """Score by `method`: "eap" (full grid, up to 3 factors) or "map"."""
    if method == "eap":
        return estimate_eap(responses, items, mean, correlation)
    if method == "map":
        return estimate_map(responses, items, mean, correlation)
    raise ValueError(f"unknown multidimensional scoring method {method!r}; expected eap or map")
