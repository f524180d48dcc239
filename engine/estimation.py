"""Ability estimation: EAP, MAP, ML, WLE and EAP for summed scores.

Every estimator takes a response matrix of shape (n_persons, n_items), float,
categories 0..K-1 and NaN where an item was not administered, and returns a
`ThetaEstimate` with arrays of shape (n_persons,). Work is vectorised over
persons (in chunks, to bound memory) and over quadrature nodes.

MAP, ML and WLE are roots of an estimating function h(theta):

- MAP: d log L / d theta - (theta - mean) / sd^2 (the mode of the posterior);
- ML: d log L / d theta;
- WLE (Warm, 1989): d log L / d theta + I' / (2 I), the maximum of
  L(theta) sqrt(I(theta)) with I the expected test information. For the
  Rasch, 2PL and (G)PCM this is Warm's d log L + J / (2 I); for the 3PL and
  GRM it is the weighted likelihood as mirt defines it.

Each objective (log posterior, log L, log L + log I / 2) is evaluated on a
grid and climbed from the EAP estimate to its nearest grid maximum, where the
root of h is bracketed and refined by the Illinois variant of regula falsi
to 1e-10. Starting from EAP and climbing is what mirt does (nlm from the
EAP); where a 3PL likelihood has several modes the estimate is the one
uphill of the EAP, not necessarily the global maximum.

Standard errors, as mirt computes them: MAP 1 / sqrt(-d2 log posterior),
ML 1 / sqrt(-d2 log L) (observed information; for the 2PL and GPCM equal to
the test information), WLE 1 / sqrt(-d2 (log L + log I / 2)). Where that
curvature is not positive (possible for the 3PL away from the mode), the
expected information takes its place.

Unbounded ML. A pattern whose likelihood has no finite maximum (every
answer in the lowest or in the highest category, or a 3PL pattern whose
likelihood keeps rising as theta runs off) is reported at the nearer end of
`theta_bounds` (default [-6, 6], the scoring grid) with ``bounded = True``
and the standard error of that bound. Such a value is a bound, not an
estimate. WLE is finite for those patterns (an all-correct 2PL pattern on
32 items sits near 6.5) and searches, as mirt does, up to its `max_theta`
of +-20 (`WLE_BOUNDS`): the grid search runs on [-6, 6] first and carries on
outwards only for the patterns whose climb ends at its edge. A WLE root
beyond the bounds is flagged the same way.

A person with no observed response has no ML or WLE (theta and se NaN);
EAP and MAP return the prior's mean and standard deviation.

Length: five estimators (EAP, MAP, ML, WLE, EAP of the summed score) share the
likelihood on the grid, the chunking over persons and the root finder; each is a
short function over those shared pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernel import logsumexp
from .models import answer_derivatives, category_log_probability, category_terms, pair_terms
from .quadrature import normal_grid

METHODS = ("eap", "map", "ml", "wle", "eapsum")
THETA_BOUNDS = (-6.0, 6.0)
WLE_BOUNDS = (-20.0, 20.0)      # mirt's max_theta: fscores' ML and WLE searches stop there
CHUNK_ROWS = 16384
_TOL = 1e-10


@dataclass(frozen=True, eq=False)
class ThetaEstimate:
    """Ability estimates of n_persons persons.

    Attributes
    ----------
    theta, se : ndarray of shape (n_persons,)
    method : str
    bounded : ndarray of bool, shape (n_persons,)
        True where theta is an end of the bounds, not a finite optimum.
    """

    theta: np.ndarray
    se: np.ndarray
    method: str
    bounded: np.ndarray


@dataclass(frozen=True, eq=False)
class SumScoreTable:
    """EAP for summed scores: theta and se for each possible summed score.

    Attributes
    ----------
    score : ndarray of int, shape (n_scores,)
    theta, se : ndarray of shape (n_scores,)
    """

    score: np.ndarray
    theta: np.ndarray
    se: np.ndarray


# --- response preparation -----------------------------------------------------

class _Responses:
    """A chunk of a response matrix in the forms the estimators use."""

    def __init__(self, responses):
        self.observed = ~np.isnan(responses)                      # (n, n_items)
        self.category = np.where(self.observed, responses, 0).astype(np.intp)
        self.complete = bool(self.observed.all())
        self.n_categories = int(self.category.max(initial=0)) + 1

    def grid_sum(self, per_category):
        """Sum over observed items of ``per_category[g, item, x_item]``.

        per_category : ndarray of shape (n_nodes, n_items, K), finite.
        Returns ndarray of shape (n, n_nodes).
        """
        base = per_category[..., 0]                               # (n_nodes, n_items)
        if self.complete:
            out = np.broadcast_to(base.sum(axis=1), (self.observed.shape[0], base.shape[0])).copy()
        else:
            out = self.observed.astype(float) @ base.T
        for k in range(1, min(self.n_categories, per_category.shape[-1])):
            out += (self.category == k).astype(float) @ (per_category[..., k] - base).T
        return out

    def person_sum(self, per_category):
        """Sum over observed items of ``per_category[i, item, x_i,item]``: shape (n,)."""
        taken = np.take_along_axis(per_category, self.category[..., None], axis=-1)[..., 0]
        return np.sum(np.where(self.observed, taken, 0.0), axis=1)

    def item_sum(self, per_item):
        """Sum over observed items of ``per_item[i, item]``: shape (n,)."""
        return np.sum(np.where(self.observed, per_item, 0.0), axis=1)

    def has_data(self):
        return self.observed.any(axis=1)

    def subset(self, index):
        sub = object.__new__(_Responses)
        sub.observed, sub.category = self.observed[index], self.category[index]
        sub.complete, sub.n_categories = self.complete, self.n_categories
        return sub

    def person_terms(self, theta, params):
        """log L, its derivatives, test information I and dI/dtheta at each person's theta.

        Returns a dict of ndarrays of shape (n,).
        """
        log_p, g1, g2 = category_terms(theta, params)                # (n, n_items, K)
        info, dinfo = _information_and_slope(log_p, g1, g2)           # (n, n_items)
        return {"loglik": self.person_sum(_finite(log_p)), "d1": self.person_sum(g1),
                "d2": self.person_sum(g2), "info": self.item_sum(info),
                "dinfo": self.item_sum(dinfo)}

    def grid_terms(self, nodes, params):
        """The same sums at every grid node: each of shape (n, n_nodes)."""
        log_p, g1, g2 = category_terms(nodes, params)                 # (n_nodes, n_items, K)
        info, dinfo = _information_and_slope(log_p, g1, g2)           # (n_nodes, n_items)
        observed = self.observed.astype(float)
        return {"loglik": self.grid_sum(_finite(log_p)), "d1": self.grid_sum(g1),
                "info": observed @ info.T, "dinfo": observed @ dinfo.T}


class _Pairs:
    """Responses as (person, item, category) triples: work grows with the answers only.

    person, item, category : int ndarrays of shape (m,); n : number of persons.
    """

    def __init__(self, n, person, item, category):
        self.n, self.person, self.item, self.category = n, person, item, category

    def has_data(self):
        return np.bincount(self.person, minlength=self.n) > 0

    def subset(self, index):
        renumber = np.full(self.n, -1, dtype=np.intp)
        renumber[index] = np.arange(index.size)
        keep = renumber[self.person] >= 0
        return _Pairs(index.size, renumber[self.person[keep]], self.item[keep],
                      self.category[keep])

    def _per_person(self, values):
        return np.bincount(self.person, weights=values, minlength=self.n)

    def person_terms(self, theta, params, information=True):
        """Per person sums at `theta` (n,); without `information`, d1 and d2 only."""
        if not information:
            d1, d2 = answer_derivatives(theta[self.person], params, self.item, self.category)
            return {"d1": self._per_person(d1), "d2": self._per_person(d2)}
        log_p, g1, g2 = pair_terms(theta[self.person], params, self.item)   # (m, K)
        info, dinfo = _information_and_slope(log_p, g1, g2)                  # (m,)
        at = (np.arange(self.person.size), self.category)
        return {"loglik": self._per_person(_finite(log_p)[at]), "d1": self._per_person(g1[at]),
                "d2": self._per_person(g2[at]), "info": self._per_person(info),
                "dinfo": self._per_person(dinfo)}

    def grid_terms(self, nodes, params):
        used, item = np.unique(self.item, return_inverse=True)       # only the items answered
        log_p, g1, g2 = category_terms(nodes, params.subset(used))   # (n_nodes, n_used, K)
        info, dinfo = _information_and_slope(log_p, g1, g2)           # (n_nodes, n_used)
        n_nodes, n_used, k = log_p.shape
        from scipy.sparse import csr_matrix  # when used: loading it costs scoring's start-up

        ones = np.ones(self.person.size)
        # persons x (item, category) and persons x item indicators of the answers
        answered = csr_matrix((ones, (self.person, item * k + self.category)),
                              shape=(self.n, n_used * k))
        asked = csr_matrix((ones, (self.person, item)), shape=(self.n, n_used))
        return {"loglik": answered @ _finite(log_p).reshape(n_nodes, -1).T,
                "d1": answered @ g1.reshape(n_nodes, -1).T,
                "info": asked @ info.T, "dinfo": asked @ dinfo.T}


def _chunks(n_persons, rows=CHUNK_ROWS):
    for start in range(0, n_persons, rows):
        yield slice(start, min(start + rows, n_persons))


def _finite(log_p):
    """Replace the -inf of categories an item lacks by 0 (they are never indexed)."""
    return np.where(np.isfinite(log_p), log_p, 0.0)


def log_likelihood(responses, theta, params):
    """Log-likelihood of each response row at each theta.

    Parameters
    ----------
    responses : ndarray of shape (n_persons, n_items), NaN where missing
    theta : ndarray of shape (n_theta,)
    params : ItemParameters

    Returns
    -------
    ndarray of shape (n_persons, n_theta)
    """
    log_p = _finite(category_log_probability(np.asarray(theta, dtype=float), params))
    return _Responses(np.asarray(responses, dtype=float)).grid_sum(log_p)


# --- EAP ------------------------------------------------------------------------

def estimate_eap(responses, params, *, prior_mean=0.0, prior_sd=1.0, n_nodes=121,
                 theta_range=(-6.0, 6.0)):
    """Expected a posteriori theta and posterior standard deviation.

    The posterior is evaluated on `n_nodes` equally spaced nodes over
    `theta_range` with N(prior_mean, prior_sd) weights (mirt: 121 on [-6, 6]).
    """
    responses = np.asarray(responses, dtype=float)
    grid = normal_grid(n_nodes, theta_range, prior_mean, prior_sd)
    log_p = _finite(category_log_probability(grid.nodes, params))   # (n_nodes, n_items, K)
    theta = np.empty(responses.shape[0])
    se = np.empty(responses.shape[0])
    for rows in _chunks(responses.shape[0]):
        log_post = _Responses(responses[rows]).grid_sum(log_p) + grid.log_weights
        log_post -= logsumexp(log_post, axis=1, keepdims=True)
        post = np.exp(log_post)                                       # (n, n_nodes)
        mean = post @ grid.nodes
        theta[rows] = mean
        se[rows] = np.sqrt(np.sum(post * (grid.nodes - mean[:, None]) ** 2, axis=1))
    return ThetaEstimate(theta, se, "eap", np.zeros(theta.shape, dtype=bool))


# --- root-finding estimators ------------------------------------------------------

def _climb(objective, start):
    """Grid index of the local maximum reached by walking uphill from `start`.

    objective : ndarray of shape (n, n_nodes); start : int ndarray of shape (n,).
    """
    n_nodes = objective.shape[1]
    rows = np.arange(start.size)
    index = start.copy()
    right = np.minimum(index + 1, n_nodes - 1)
    left = np.maximum(index - 1, 0)
    step = np.where(objective[rows, right] > objective[rows, index], 1,
                    np.where(objective[rows, left] > objective[rows, index], -1, 0))
    moving = np.flatnonzero(step != 0)
    while moving.size:
        index[moving] += step[moving]
        ahead = np.clip(index[moving] + step[moving], 0, n_nodes - 1)
        keeps = objective[moving, ahead] > objective[moving, index[moving]]
        moving = moving[keeps]
    return index


def _bracket_from_objective(objective, h_grid, nodes, start):
    """Bracket the root of h at the grid maximum reached by climbing from `start`.

    Returns lower, upper (n,) and `outside` (n,) in {-1, 0, 1}: -1 or 1 where
    the climb ends at an end of the grid with h pointing outwards.
    """
    n_nodes = nodes.size
    start_index = np.clip(np.rint((start - nodes[0]) / (nodes[1] - nodes[0])), 0, n_nodes - 1)
    best = _climb(objective, start_index.astype(np.intp))
    h_best = h_grid[np.arange(best.size), best]
    left = np.where(h_best > 0, best, np.maximum(best - 1, 0))
    right = np.where(h_best > 0, np.minimum(best + 1, n_nodes - 1), best)
    outside = np.zeros(best.size, dtype=int)
    outside[(best == n_nodes - 1) & (h_best > 0)] = 1
    outside[(best == 0) & (h_best < 0)] = -1
    return nodes[left], nodes[right], outside


def _illinois(h, lower, upper, max_iter=100):
    """Vectorised Illinois regula falsi for h decreasing through 0 on [lower, upper].

    h : callable mapping (index array, theta array) to h values of those rows.
    """
    lower, upper = lower.astype(float).copy(), upper.astype(float).copy()
    everyone = np.arange(lower.size)
    h_lower, h_upper = h(everyone, lower), h(everyone, upper)
    root = np.where(h_lower <= 0, lower, upper)
    active = np.flatnonzero((h_lower > 0) & (h_upper < 0))
    side = np.zeros(lower.size, dtype=int)
    for _ in range(max_iter):
        if active.size == 0:
            break
        lo, hi, f_lo, f_hi = lower[active], upper[active], h_lower[active], h_upper[active]
        guess = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        guess = np.clip(guess, lo, hi)
        f_guess = h(active, guess)
        to_lower = f_guess > 0
        lower[active] = np.where(to_lower, guess, lo)
        upper[active] = np.where(to_lower, hi, guess)
        h_lower[active] = np.where(to_lower, f_guess, f_lo)
        h_upper[active] = np.where(to_lower, f_hi, f_guess)
        # Illinois: halve the stale end's value when the same end moves twice.
        stale_upper = to_lower & (side[active] == 1)
        stale_lower = ~to_lower & (side[active] == -1)
        h_upper[active[stale_upper]] *= 0.5
        h_lower[active[stale_lower]] *= 0.5
        side[active] = np.where(to_lower, 1, -1)
        root[active] = guess
        done = (np.abs(f_guess) < 1e-12) | (upper[active] - lower[active] < _TOL)
        active = active[~done]
    return root


def _information_and_slope(log_p, g1, g2):
    """Item information sum_k P_k g1_k^2 and its derivative sum_k P_k g1_k (g1_k^2 + 2 g2_k)."""
    p = np.exp(log_p)
    return np.sum(p * g1**2, axis=-1), np.sum(p * g1 * (g1**2 + 2.0 * g2), axis=-1)


def _estimating_function(method, prior_mean, prior_sd):
    """h(theta) from the terms of `_person_terms` / `_grid_terms`."""
    if method == "map":
        return lambda t, theta: t["d1"] - (theta - prior_mean) / prior_sd**2
    if method == "ml":
        return lambda t, theta: t["d1"]
    return lambda t, theta: t["d1"] + t["dinfo"] / (2.0 * t["info"])


def _standard_error(method, chunk, theta, params, prior_sd, step=1e-5):
    """SE from the curvature of the method's objective at `theta`: shape (n,)."""
    terms = chunk.person_terms(theta, params)
    curvature = -terms["d2"]
    expected = terms["info"]
    if method == "map":
        curvature = curvature + 1.0 / prior_sd**2
        expected = expected + 1.0 / prior_sd**2
    elif method == "wle":
        # d2 (log I) / 2 = (I'' / I - (I' / I)^2) / 2, with I'' by a central difference of I'.
        slope_up = chunk.person_terms(theta + step, params)["dinfo"]
        slope_down = chunk.person_terms(theta - step, params)["dinfo"]
        with np.errstate(divide="ignore", invalid="ignore"):
            second = (slope_up - slope_down) / (2 * step) / expected
            curvature = curvature - 0.5 * (second - (terms["dinfo"] / expected) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(np.where(curvature > 0, curvature, expected))


def _estimate_by_root(responses, params, method, *, prior_mean=0.0, prior_sd=1.0,
                      theta_bounds=THETA_BOUNDS):
    responses = np.asarray(responses, dtype=float)
    start = estimate_eap(responses, params, prior_mean=prior_mean, prior_sd=prior_sd).theta
    n_persons = responses.shape[0]
    parts = [(rows, _Responses(responses[rows])) for rows in _chunks(n_persons)]
    return _solve(parts, n_persons, start, params, method, prior_mean, prior_sd, theta_bounds)


def _solve(parts, n_persons, start, params, method, prior_mean, prior_sd, theta_bounds,
           grid_step=0.05, bracket=None):
    """Estimates for every (rows, data) part; data is a _Responses or a _Pairs.

    `bracket`: optional (lower, upper) arrays (n_persons,) holding the estimates (ML or
    MAP): Newton steps from `start` inside them; rows where that fails (the step
    leaves the interval, the curvature is not negative, no convergence) are searched
    on the grid as without a bracket."""
    lower, upper = theta_bounds
    nodes = _grid(lower, upper, grid_step)
    # WLE's grid: the scoring range first, beyond it only for climbs that end at its edge.
    near = _grid(max(lower, THETA_BOUNDS[0]), min(upper, THETA_BOUNDS[1]), grid_step)
    h_of = _estimating_function(method, prior_mean, prior_sd)
    theta, se = np.full(n_persons, np.nan), np.full(n_persons, np.nan)
    bounded = np.zeros(n_persons, dtype=bool)

    def search(chunk, start, nodes=nodes):
        """Bracket on the grid from `start`, then Illinois: (theta, se, bounded)."""
        lower, upper = nodes[0], nodes[-1]
        grid = chunk.grid_terms(nodes, params)
        with np.errstate(divide="ignore", invalid="ignore"):
            h_grid = h_of(grid, nodes)
        objective = grid["loglik"]
        if method == "map":
            objective = objective - 0.5 * ((nodes - prior_mean) / prior_sd) ** 2
        elif method == "wle":
            with np.errstate(divide="ignore"):
                objective = objective + 0.5 * np.log(grid["info"])
        lo, hi, outside = _bracket_from_objective(objective, h_grid, nodes, start)
        # Persons with no response have no likelihood: MAP gives the prior's
        # mode, ML and WLE nothing (NaN).
        has_data = chunk.has_data()
        scored = np.flatnonzero(has_data | (method == "map"))
        solve = scored[outside[scored] == 0]

        def h(index, theta_at):
            return h_of(chunk.subset(solve[index]).person_terms(theta_at, params), theta_at)

        estimate = np.full(has_data.size, np.nan)
        estimate[outside == -1], estimate[outside == 1] = lower, upper
        estimate[solve] = _illinois(h, lo[solve], hi[solve])
        chunk_se = np.full(has_data.size, np.nan)
        chunk_se[scored] = _standard_error(method, chunk.subset(scored), estimate[scored],
                                           params, prior_sd)
        return estimate, chunk_se, (outside != 0) & has_data

    for rows, chunk in parts:
        if method == "wle":
            estimate, chunk_se, chunk_bounded = search(chunk, start[rows], near)
            far = np.flatnonzero(chunk_bounded)
            if far.size and near.size < nodes.size:
                estimate[far], chunk_se[far], chunk_bounded[far] = search(
                    chunk.subset(far), estimate[far], nodes)
            theta[rows], se[rows], bounded[rows] = estimate, chunk_se, chunk_bounded
            continue
        if bracket is None:
            theta[rows], se[rows], bounded[rows] = search(chunk, start[rows])
            continue
        lo, hi = (np.asarray(end, dtype=float)[rows] for end in bracket)
        lo, hi = np.maximum(lo, lower), np.minimum(hi, upper)    # never beyond the bounds
        estimate, chunk_se, converged = _newton_in_bracket(
            chunk, params, method, prior_sd, h_of, np.clip(start[rows], lo, hi), lo, hi)
        misses = np.flatnonzero(~converged)
        chunk_bounded = np.zeros(estimate.size, dtype=bool)
        if misses.size:
            estimate[misses], chunk_se[misses], chunk_bounded[misses] = search(
                chunk.subset(misses), start[rows][misses])
        theta[rows], se[rows], bounded[rows] = estimate, chunk_se, chunk_bounded
    return ThetaEstimate(theta, se, method, bounded)


def _grid(lower, upper, step):
    """Equally spaced nodes from `lower` to `upper`, about `step` apart: shape (n,)."""
    return np.linspace(lower, upper, int(round((upper - lower) / step)) + 1)


def _newton_in_bracket(chunk, params, method, prior_sd, h_of, theta, lower, upper,
                       max_iter=8, last_step=1e-6):
    """Newton's method on h for ML or MAP from `theta`, each step kept in [lower, upper].

    Returns theta, se and converged (n,); a row fails (converged False) where a step
    would leave its interval, the curvature is not negative or no step fell below
    `last_step`. Convergence is quadratic, so the error after a step of size e is
    of order e**2 (1e-12 after a step of 1e-6); the SE is `_standard_error`'s, from the
    terms before that last step."""
    theta = theta.astype(float).copy()
    se = np.full(theta.size, np.nan)
    converged = np.zeros(theta.size, dtype=bool)
    failed = np.zeros(theta.size, dtype=bool)
    for _ in range(max_iter):
        active = ~(converged | failed)
        if not active.any():
            break
        terms = chunk.person_terms(theta, params, information=False)
        curvature = terms["d2"] - (1.0 / prior_sd**2 if method == "map" else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -h_of(terms, theta) / curvature
            moved = theta + step
            se_now = 1.0 / np.sqrt(-curvature)
        bad = active & ~((curvature < 0) & np.isfinite(moved) & (moved >= lower)
                         & (moved <= upper))
        failed |= bad
        update = active & ~bad
        theta[update] = moved[update]
        se[update] = se_now[update]
        converged |= update & (np.abs(step) < last_step)
    return theta, se, converged


def estimate_from_pairs(n_persons, person, item, category, params, method, start, *,
                        prior_mean=0.0, prior_sd=1.0, theta_bounds=THETA_BOUNDS, bracket=None):
    """MAP, ML or WLE from answers given as (person, item, category) triples.

    The same estimates as `estimate_theta` on the equivalent matrix, with work
    proportional to the number of answers: what an adaptive test needs at every
    step, where each person has answered a few items of a large bank.

    Parameters
    ----------
    person, item, category : int array_like of shape (m,)
    start : ndarray of shape (n_persons,)
        Where the search starts (the EAP estimate, as in `estimate_theta`).
    bracket : (lower, upper), ndarrays of shape (n_persons,), optional
        Intervals that hold each person's estimate, e.g. around the maximum of a
        likelihood already kept on a grid (an adaptive test keeps one): the root
        is then searched there, skipping the grid search; persons whose interval
        does not hold it (the estimating function does not fall through zero in
        it) get the grid search.
    theta_bounds : (lower, upper) of ML and WLE, THETA_BOUNDS by default (an
        adaptive test keeps its estimates on the scoring grid; WLE_BOUNDS
        gives `estimate_theta`'s WLE, mirt's).
    """
    data = _Pairs(n_persons, np.asarray(person, dtype=np.intp), np.asarray(item, dtype=np.intp),
                  np.asarray(category, dtype=np.intp))
    if method not in ("map", "ml", "wle"):
        raise ValueError(f"estimate_from_pairs takes map, ml or wle, not {method!r}")
    theta_bounds = (-10.0, 10.0) if method == "map" else theta_bounds
    return _solve([(slice(0, n_persons), data)], n_persons, np.asarray(start, dtype=float),
                  params, method, prior_mean, prior_sd, theta_bounds, bracket=bracket)


def estimate_map(responses, params, *, prior_mean=0.0, prior_sd=1.0, theta_bounds=(-10.0, 10.0)):
    """Maximum a posteriori theta with a N(prior_mean, prior_sd) prior.

    SE is 1 / sqrt(-d2 log posterior) at the mode.
    """
    return _estimate_by_root(responses, params, "map", prior_mean=prior_mean, prior_sd=prior_sd,
                             theta_bounds=theta_bounds)


def estimate_ml(responses, params, *, theta_bounds=THETA_BOUNDS, prior_mean=0.0, prior_sd=1.0):
    """Maximum likelihood theta; SE is 1 / sqrt(observed information) at the estimate.

    Patterns with no finite maximum inside `theta_bounds` get the bound and
    ``bounded = True`` (see the module docstring). The prior only places
    the EAP start of the search.
    """
    return _estimate_by_root(responses, params, "ml", theta_bounds=theta_bounds,
                             prior_mean=prior_mean, prior_sd=prior_sd)


def estimate_wle(responses, params, *, theta_bounds=WLE_BOUNDS, prior_mean=0.0, prior_sd=1.0):
    """Weighted likelihood estimate: the maximum of L(theta) sqrt(I(theta)).

    Searched up to +-20 by default (mirt's `max_theta`; see the module
    docstring). The prior only places the EAP start of the search.
    """
    return _estimate_by_root(responses, params, "wle", theta_bounds=theta_bounds,
                             prior_mean=prior_mean, prior_sd=prior_sd)


# --- EAP for summed scores ---------------------------------------------------------

def add_item_to_score_likelihood(table, item_probability):
    """One step of the Lord-Wingersky recursion: add one item to a summed score.

    Parameters
    ----------
    table : ndarray of shape (n_nodes, n_scores)
        P(summed score of some items = s | theta) at each node.
    item_probability : ndarray of shape (n_nodes, n_categories)
        P(X = k | theta) of the item added.

    Returns
    -------
    ndarray of shape (n_nodes, n_scores + n_categories - 1)
    """
    n_nodes, n_scores = table.shape
    grown = np.zeros((n_nodes, n_scores + item_probability.shape[1] - 1))
    for k in range(item_probability.shape[1]):
        grown[:, k : k + n_scores] += table * item_probability[:, k : k + 1]
    return grown


def sum_score_likelihood(params, nodes):
    """Lord-Wingersky recursion: P(summed score = s | theta) at each node.

    Returns
    -------
    ndarray of shape (n_nodes, max_score + 1)
    """
    prob = np.exp(category_log_probability(np.asarray(nodes, dtype=float), params))
    n_categories = params.n_categories
    table = np.ones((prob.shape[0], 1))                                  # score 0 before any item
    for item in range(params.n_items):  # the recursion is sequential in the items
        table = add_item_to_score_likelihood(table, prob[:, item, : n_categories[item]])
    return table


def eap_sum_table(params, *, prior_mean=0.0, prior_sd=1.0, n_nodes=121, theta_range=(-6.0, 6.0)):
    """EAP theta and posterior SD for every summed score over all items of `params`."""
    grid = normal_grid(n_nodes, theta_range, prior_mean, prior_sd)
    joint = sum_score_likelihood(params, grid.nodes) * grid.weights[:, None]   # (n_nodes, n_scores)
    post = joint / joint.sum(axis=0, keepdims=True)
    mean = grid.nodes @ post
    sd = np.sqrt(np.sum(post * (grid.nodes[:, None] - mean) ** 2, axis=0))
    return SumScoreTable(np.arange(joint.shape[1]), mean, sd)


def estimate_eap_sum(responses, params, *, prior_mean=0.0, prior_sd=1.0, n_nodes=121,
                     theta_range=(-6.0, 6.0)):
    """EAP for summed scores: each person gets the table entry of their summed score.

    Persons who answered different sets of items are scored with the table of
    their own set (one table per distinct set of observed items).
    """
    responses = np.asarray(responses, dtype=float)
    observed = ~np.isnan(responses)
    sums = np.where(observed, responses, 0).sum(axis=1).astype(np.intp)
    theta, se = np.full(responses.shape[0], np.nan), np.full(responses.shape[0], np.nan)
    item_sets, which = np.unique(observed, axis=0, return_inverse=True)
    for set_index, item_set in enumerate(item_sets):
        persons = np.flatnonzero(which.reshape(-1) == set_index)
        if not item_set.any():
            theta[persons], se[persons] = prior_mean, prior_sd
            continue
        table = eap_sum_table(params.subset(item_set), prior_mean=prior_mean, prior_sd=prior_sd,
                              n_nodes=n_nodes, theta_range=theta_range)
        theta[persons], se[persons] = table.theta[sums[persons]], table.se[sums[persons]]
    return ThetaEstimate(theta, se, "eapsum", np.zeros(theta.shape, dtype=bool))


def estimate_theta(responses, params, method="eap", *, prior_mean=0.0, prior_sd=1.0,
                   n_nodes=121, theta_range=(-6.0, 6.0), theta_bounds=None):
    """Score every row of `responses` by `method` (one of `METHODS`).

    theta_bounds : (lower, upper) of ML and WLE; default THETA_BOUNDS for ML,
        WLE_BOUNDS for WLE (see the module docstring).
    """
    if method == "eap":
        return estimate_eap(responses, params, prior_mean=prior_mean, prior_sd=prior_sd,
                            n_nodes=n_nodes, theta_range=theta_range)
    if method == "eapsum":
        return estimate_eap_sum(responses, params, prior_mean=prior_mean, prior_sd=prior_sd,
                                n_nodes=n_nodes, theta_range=theta_range)
    if method == "map":
        return estimate_map(responses, params, prior_mean=prior_mean, prior_sd=prior_sd)
    if method == "ml":
        return estimate_ml(responses, params, theta_bounds=theta_bounds or THETA_BOUNDS,
                           prior_mean=prior_mean, prior_sd=prior_sd)
    if method == "wle":
        return estimate_wle(responses, params, theta_bounds=theta_bounds or WLE_BOUNDS,
                            prior_mean=prior_mean, prior_sd=prior_sd)
    raise ValueError(f"unknown scoring method {method!r}; expected one of {', '.join(METHODS)}")
