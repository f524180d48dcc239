"""Multidimensional item calibration by MML-EM (Bock-Aitkin), as R's mirt does it.

The model: every item has a slope per factor (fixed at 0 where the loading
pattern says so) and the compensatory predictor ``z = a . theta + d`` (items
in `calibration.mirt_items`); the population is N(0, R) with unit variances
and the correlations free where the covariance mask says (else 0).

mirt's defaults: a rectangular grid of 61/31/15/9/7 points per dimension for
1/2/3/4/5 factors, equally spaced on [-6, 6], weights the N(0, R) density
normalised over the grid; the free correlations start at 0.25 and the slopes
at 0.851 (mirt's start values: on a flat likelihood where the EM stops depends
on where it started); EM stops when no parameter (slopes, intercepts, the
guessing asymptote as a probability, correlations) moved more than `tol` in a
cycle, at most `max_iter` cycles. The latent M-step maximises
``sum_q N_q log phi(theta_q; 0, R)`` over the free correlations (mirt's
``Mstep.LL.group``: the density unnormalised), N_q the expected node mass.

The E-step never loops over the full grid per item. Items are grouped by
their loading set S (the factors with free slopes). A person's log-likelihood
at a grid node is the sum over loading sets of ``Y_S @ log P_S`` evaluated on
the sub-grid of S (persons x points^|S|), broadcast into the full grid; under
simple structure that is a sum of per-factor (persons, 15) terms. The
expected counts of the items of S need only the posterior's marginal on S.
The item M-step (Fisher scoring) then works on those sub-grids.

Length: the E-step, the two M-steps (mirt's BFGS path and Newton), Ramsay's
acceleration and the convergence rule are one algorithm, read together against
mirt's; the items, standard errors and the comparison live in their own modules.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

from irtcat.engine import ConvergenceWarning

from .bfgs import minimize as bfgs_minimize
from .bifactor import check_bifactor
from .bifactor import e_step as bifactor_e_step
from .exploratory import exploratory_start
from .mirt_items import MIRT_MODELS, ItemGroup
from .parameterization import start_values
from .partitions import DaskPartitions, LocalPartitions, reduce_statistics
from .responses import ResponseSet, from_dense

_UNDERFLOW = 1e-250   # a row's posterior total below this: redo the chunk exactly
GRID_CHUNK_ROWS = 32  # rows per chunk of the full grid's E-step: its (rows, Q) in cache
_INVALID = 1e100      # the M-step objective outside the parameter space (mirt's -1e100)
MIRT_QUADPTS = {1: 61, 2: 31, 3: 15, 4: 9, 5: 7}
"""mirt's quadrature points per dimension by number of factors (5 beyond)."""


def full_onehot(data):
    """The (rows, n_columns) one-hot matrix of a ResponseSet, category 0 included
    (dense for complete data, as stored otherwise)."""
    if not data.complete:
        return data.onehot
    onehot = np.zeros((data.n_rows, data.offsets[-1]))
    onehot[:, data.upper_columns] = data.upper
    zero = data.offsets[:-1]
    above = np.add.reduceat(onehot, zero, axis=1)
    onehot[:, zero] = 1.0 - above
    return onehot


class MirtCalibrator:
    """Calibrate a multidimensional item bank by MML-EM.

    Parameters
    ----------
    model : str or sequence of str, each one of mirt_items.MIRT_MODELS
    loadings : bool array_like of shape (n_items, m)
        True where an item's slope on a factor is free; False fixes it at 0.
    free_correlation : bool array_like of shape (m, m) or None
        True where a correlation is estimated (symmetric; diagonal ignored);
        None: all fixed at 0 (orthogonal factors).
    n_points : points per dimension (default mirt's for m factors)
    theta_range, max_iter, tol : grid range, EM cycles, convergence tolerance
    c_prior : (alpha, beta) of a Beta prior on the 3pl's c, or None
    bifactor : bool
        Factor 0 is general (every item), the others specific (at most one per
        item), all orthogonal: the E-step by dimension reduction (calibration.bifactor)
        on mirt's points of a 2-D problem (31).
    exploratory : bool
        Start the slopes as mirt's exploratory models do (the leading eigenvectors
        of the items' correlations); pair with exploratory.exploratory_loadings.
    progress : callable(cycle, log_likelihood, max_change, seconds) or None

    Attributes (after `fit`)
    ----------
    groups_ : list of ItemGroup
    slopes_ : (n_items, m); intercepts_ : list of float or list; guessing_ : (n_items,)
    correlation_ : (m, m)
    log_likelihood_, n_iter_, converged_, n_parameters_, n_persons_
    """

    def __init__(self, model, loadings, free_correlation=None, *, n_points=None,
                 theta_range=(-6.0, 6.0), max_iter=500, tol=1e-4, c_prior=None,
                 m_step="mirt", accelerate=True, bifactor=False, exploratory=False,
                 progress=None):
        if m_step not in ("mirt", "newton"):
            raise ValueError(f"unknown M-step {m_step!r}; expected mirt or newton")
        self.m_step = m_step
        self.accelerate = accelerate
        self.loadings = np.asarray(loadings, dtype=bool)
        if self.loadings.ndim != 2:
            raise ValueError("loadings must be a (n_items, n_factors) matrix")
        n_items, m = self.loadings.shape
        if not self.loadings.any(axis=1).all():
            raise ValueError("every item needs a free slope on at least one factor")
        self.model = model
        mask = np.zeros((m, m), dtype=bool) if free_correlation is None else np.asarray(
            free_correlation, dtype=bool)
        self.free_correlation = np.triu(mask | mask.T, 1)
        self.exploratory = bool(exploratory)
        self.bifactor = bool(bifactor)
        if self.bifactor:
            check_bifactor(self.loadings)
            if self.free_correlation.any():
                raise ValueError("bifactor: the factors are orthogonal")
        # mirt: the bifactor's points are those of its reduced (2-D) problem
        self.n_points = n_points or MIRT_QUADPTS.get(2 if self.bifactor else m, 5)
        self.nodes_ = None
        self.theta_range, self.max_iter, self.tol = theta_range, max_iter, tol
        self.c_prior, self.progress = c_prior, progress

    @property
    def n_factors(self):
        return self.loadings.shape[1]

    # --- set-up ---------------------------------------------------------------------

    def _models(self, n_items):
        models = [self.model] * n_items if isinstance(self.model, str) else list(self.model)
        if len(models) != n_items:
            raise ValueError(f"{len(models)} models given for {n_items} items")
        for model in models:
            if model not in MIRT_MODELS:
                raise ValueError(f"unknown multidimensional model {model!r}; expected one "
                                 f"of {', '.join(MIRT_MODELS)}")
        return models

    def _groups(self, data, models):
        shares = data.item_counts()
        keys = {}
        for j in range(data.n_items):
            factors = tuple(np.flatnonzero(self.loadings[j]))
            keys.setdefault((factors, models[j], int(data.n_categories[j])), []).append(j)
        groups, start = [], None
        for (factors, model, n_categories), items in sorted(keys.items()):
            share = np.array([shares[data.offsets[j]: data.offsets[j + 1]] for j in items])
            share = share / share.sum(axis=1, keepdims=True)
            eta = start_values(model, share)                    # [a, rest...]
            rest = eta[:, 1:].copy()
            # mirt: loadings .5 each, intercepts over max(sqrt(1 - sum loadings^2), .25)
            residual = max(np.sqrt(abs(1.0 - 0.25 * len(factors))), 0.25)
            intercepts = slice(0, rest.shape[1] - 1 if model == "3pl" else rest.shape[1])
            rest[:, intercepts] *= np.sqrt(0.75) / residual
            slopes = np.repeat(eta[:, :1], len(factors), axis=1)
            if self.exploratory:
                if start is None:
                    start = exploratory_start(data, full_onehot(data), self.n_factors)
                slopes = start[np.ix_(items, factors)]
            params = np.hstack([slopes, rest])
            groups.append(ItemGroup(model, items, n_categories, factors, params))
        return groups

    def start_correlation(self):
        """mirt's start of the latent correlations (model.elements: ``gcov <-
        ifelse(estgcov, .25, 0)``): 0.25 where free, else 0; the identity where
        that matrix is not positive definite (possible from 8 factors on). (m, m)."""
        free = self.free_correlation | self.free_correlation.T
        start = np.eye(self.n_factors) + 0.25 * free
        return start if _log_det_positive(start) is not None else np.eye(self.n_factors)

    def _grid(self, factors):
        """Sub-grid nodes over `factors` (ij order): shape (points^len, len)."""
        points = np.linspace(*self.theta_range, self.n_points)
        mesh = np.meshgrid(*([points] * len(factors)), indexing="ij")
        return np.stack([axis.ravel() for axis in mesh], axis=1)

    def log_prior(self, correlation):
        """log N(0, R) density at the full grid, normalised over it: (Q,)."""
        nodes = self.nodes_
        inverse = np.linalg.inv(correlation)
        quad = np.einsum("qi,ij,qj->q", nodes, inverse, nodes)
        log_density = -0.5 * quad
        return log_density - logsumexp(log_density)

    # --- E-step ---------------------------------------------------------------------

    def _set_log_p(self):
        """log P of every one-hot column of each loading set at its sub-grid, in the
        order of `sets_`: a tuple of (columns_S, Q_S) arrays."""
        values = []
        for factors, (columns, nodes) in self.sets_.items():
            value = np.zeros((columns.size, nodes.shape[0]))
            for group in self.groups_:
                if tuple(group.factors) == factors:
                    block, _ = group.terms(group.params, nodes, derivatives=False)
                    value[self.rows_in_set_[id(group)]] = block.reshape(-1, nodes.shape[0])
            values.append(value)
        return tuple(values)

    def _e_step(self, design, correlation):
        """Expected counts per loading set {S: (columns_S, Q_S)}, node mass (Q,) (None
        for the bifactor), logLik: the sums over `design` (`designs`' second value)."""
        values = self._set_log_p()
        if self.bifactor:
            log_weights = -0.5 * self._grid((0,))[:, 0] ** 2
            log_weights -= logsumexp(log_weights)
            *counts, loglik = reduce_statistics(design, bifactor_statistics, log_weights,
                                                *values)
            return dict(zip(self.sets_, counts, strict=True)), None, loglik
        *counts, node_mass, loglik = reduce_statistics(
            design, grid_statistics, self.log_prior(correlation).reshape(
                (self.n_points,) * self.n_factors), *values)
        return dict(zip(self.sets_, counts, strict=True)), node_mass, loglik

    # --- M-steps --------------------------------------------------------------------

    def _m_step_items(self, counts):
        for group in self.groups_:
            factors = tuple(group.factors)
            rows = self.rows_in_set_[id(group)]
            group_counts = counts[factors][rows].reshape(
                group.items.size, group.n_categories, -1)
            group.m_step(group_counts, self.sets_[factors][1], self.c_prior)

    def _m_step_latent(self, correlation, node_mass):
        """Maximise sum_q N_q log phi(theta_q; 0, R) over the free correlations."""
        upper = np.argwhere(self.free_correlation)
        if upper.size == 0:
            return correlation
        second_moment = np.einsum("q,qi,qj->ij", node_mass, self.nodes_, self.nodes_)
        second_moment /= node_mass.sum()

        def build(values):
            matrix = np.eye(self.n_factors)
            fixed = ~self.free_correlation & ~np.eye(self.n_factors, dtype=bool)
            matrix[fixed] = correlation[fixed]
            matrix[upper[:, 0], upper[:, 1]] = values
            matrix[upper[:, 1], upper[:, 0]] = values
            return matrix

        def negative(values):
            matrix = build(values)
            log_det = _log_det_positive(matrix)
            if log_det is None:
                return np.inf, np.zeros_like(values)
            inverse = np.linalg.inv(matrix)
            value = log_det + np.trace(inverse @ second_moment)
            grad_matrix = inverse - inverse @ second_moment @ inverse
            return value, 2.0 * grad_matrix[upper[:, 0], upper[:, 1]]

        start = correlation[upper[:, 0], upper[:, 1]]
        result = minimize(negative, start, jac=True, method="BFGS",
                          options={"gtol": 1e-10, "maxiter": 200})
        matrix = build(result.x)
        return matrix if np.isfinite(negative(result.x)[0]) else correlation

    def _m_step_bfgs(self, counts, correlation, node_mass, budget):
        """mirt's M-step: one BFGS (R's optim) over every free item parameter and the
        free correlations, objective sum r log P + sum_q N_q log phi(theta_q; 0, R)."""
        pairs = np.argwhere(self.free_correlation)
        parts = []
        for group in self.groups_:
            factors = tuple(group.factors)
            rows = self.rows_in_set_[id(group)]
            parts.append((group, counts[factors][rows].reshape(
                group.items.size, group.n_categories, -1), self.sets_[factors][1]))
        m = self.n_factors
        if pairs.size:
            total_mass = node_mass.sum()
            second_moment = np.einsum("q,qi,qj->ij", node_mass, self.nodes_, self.nodes_)

        def latent_terms(matrix):
            if not pairs.size:                          # mirt: no group term when none free
                return 0.0, np.zeros(0)
            log_det = _log_det_positive(matrix)         # mirt: -1e100 unless positive definite
            if log_det is None:
                return None, None
            inverse = np.linalg.inv(matrix)
            value = (-0.5 * total_mass * (m * np.log(2 * np.pi) + log_det)
                     - 0.5 * np.trace(inverse @ second_moment))
            grad = -(total_mass * inverse - inverse @ second_moment @ inverse)
            return value, grad[pairs[:, 0], pairs[:, 1]]

        def value(vector):
            matrix = self._set_raw(vector, correlation, apply=False)
            latent, _ = latent_terms(matrix)
            if latent is None:
                return _INVALID
            total = np.longdouble(latent)
            for (group, group_counts, nodes), params in zip(parts, self._split(vector),
                                                            strict=False):
                if not group.valid(params).all():
                    return _INVALID
                log_p, _ = group.terms(params, nodes, derivatives=False)
                cells = group_counts * log_p
                if not np.isfinite(cells).all():            # 0 x log 0 is 0
                    cells = np.where(group_counts > 0, cells, 0.0)
                total += np.sum(cells, dtype=np.longdouble)
            total = float(total)
            return -total if np.isfinite(total) else _INVALID

        def gradient(vector):
            grads = []
            for (group, group_counts, nodes), params in zip(parts, self._split(vector),
                                                            strict=False):
                _, dlog = group.terms(params, nodes)
                grads.append(np.einsum("nkq,npkq->np", group_counts, dlog).ravel())
            grads.append(latent_terms(self._set_raw(vector, correlation, apply=False))[1])
            return -np.concatenate(grads)

        start = self._raw(correlation)
        with np.errstate(all="ignore"):
            if value(start) >= _INVALID:     # no descent from an invalid point: Newton instead
                self._m_step_items(counts)
                return self._m_step_latent(correlation, node_mass)
            solution = bfgs_minimize(value, gradient, start, budget)
        return self._set_raw(solution, correlation)

    # --- parameter vectors ----------------------------------------------------------

    def _raw(self, correlation):
        """Free item parameters then free correlations, as the M-step moves them."""
        parts = [group.params.ravel() for group in self.groups_]
        parts.append(correlation[self.free_correlation])
        return np.concatenate(parts)

    def _split(self, vector):
        matrices, start = [], 0
        for group in self.groups_:
            matrices.append(vector[start: start + group.params.size].reshape(group.params.shape))
            start += group.params.size
        return matrices

    def _set_raw(self, vector, correlation, apply=True):
        """The correlation matrix a raw vector stands for; with `apply`, the items too."""
        matrix = correlation.copy()
        n_corr = int(self.free_correlation.sum())
        values = vector[vector.size - n_corr:]
        rows, cols = np.nonzero(self.free_correlation)
        matrix[rows, cols] = values
        matrix[cols, rows] = values
        if apply:
            for group, params in zip(self.groups_, self._split(vector), strict=False):
                group.params = params.copy()
        return matrix

    # --- the EM loop ----------------------------------------------------------------

    def _vector(self, correlation):
        parts = []
        for group in self.groups_:
            params = group.params.copy()
            if group.model == "3pl":
                params[:, -1] = expit(params[:, -1])        # c compared as a probability
            parts.append(params.ravel())
        parts.append(correlation[self.free_correlation])
        return np.concatenate(parts)

    def _prepare(self, responses, cluster=None, partition_rows=None):
        """Item groups, grids and per-loading-set designs for `responses`."""
        data = responses if isinstance(responses, ResponseSet) else from_dense(responses)
        if data.n_items != self.loadings.shape[0]:
            raise ValueError(f"the loading pattern has {self.loadings.shape[0]} items, "
                             f"the data {data.n_items}")
        self.models_ = self._models(data.n_items)
        self.groups_ = self._groups(data, self.models_)
        if not self.bifactor:
            self.nodes_ = self._grid(tuple(range(self.n_factors)))
        self._index_sets(data)
        return self.designs(data, cluster, partition_rows)

    def designs(self, responses, cluster=None, partition_rows=None):
        """(ResponseSet, the E-step's data) for the groups as they stand (a fitted
        calibrator's: used for standard errors). The E-step's data are the rows'
        partitions (`partition_rows` each, default the ResponseSet's) laid out by
        loading set (`LoadingSetDesign`): here (`LocalPartitions`), or with a Dask
        `cluster` (distributed.Client) on its workers (`DaskPartitions`; `close()`
        releases them). Their sums are the same numbers either way."""
        data = responses if isinstance(responses, ResponseSet) else from_dense(responses)
        if partition_rows is not None:
            data = dataclasses.replace(data, partition_rows=int(partition_rows))
        if cluster is None:
            return data, LocalPartitions(data, self._layout)
        return data, DaskPartitions(cluster, data, layout=self._layout)

    def _layout(self, data):
        """`data`'s rows as the E-step reads them: a LoadingSetDesign."""
        onehot = full_onehot(data)
        return LoadingSetDesign(tuple(self.sets_), tuple(
            onehot[:, columns] for columns, _ in self.sets_.values()), data.weights)

    def log_likelihood_at(self, responses, slopes, intercepts, correlation, guessing=None):
        """The marginal log-likelihood of given parameters (mirt's form).

        slopes (n_items, m); intercepts: per item a number or a list; correlation (m, m);
        guessing (n_items,) or None. The fitted state is replaced by these parameters.
        """
        _, design = self._prepare(responses)
        for group in self.groups_:
            for row, item in enumerate(group.items):
                rest = np.atleast_1d(np.asarray(intercepts[item], dtype=float))
                if group.model == "3pl":
                    rest = np.append(rest, np.log(guessing[item] / (1 - guessing[item])))
                group.params[row] = np.concatenate([slopes[item, group.factors], rest])
        return self._e_step(design, np.asarray(correlation, dtype=float))[2]

    def fit(self, responses, *, cluster=None, partition_rows=None):
        """Fit to a ResponseSet or a (n_persons, n_items) matrix with NaN for missing.

        cluster : distributed.Client, optional
            Run the E-steps on this Dask cluster, a partition of the persons on each
            worker (`calibration.partitions.DaskPartitions`, released after the fit):
            the estimates are those of one process within 1e-8.
        partition_rows : int, optional
            Persons (or response patterns) per partition, in this process as on a
            cluster (default the ResponseSet's, `responses.PARTITION_ROWS`).
        """
        data, design = self._prepare(responses, cluster, partition_rows)
        try:
            return self._fit(data, design)
        finally:
            if cluster is not None:
                design.close()

    def _fit(self, data, design):
        correlation = self.start_correlation()
        self.converged_ = False
        history = []
        as_mirt = self.m_step == "mirt" and self.c_prior is None
        rate = 0.4                                       # mirt's Mrate
        trail = [self._raw(correlation)] * 2             # pre-M-step vectors (Ramsay)
        started = time.perf_counter()
        for cycle in range(1, self.max_iter + 1):
            counts, node_mass, loglik = self._e_step(design, correlation)
            if history and loglik > history[-1][0]:
                rate = float(np.exp(history[-1][0] - loglik))
            before = self._vector(correlation)
            trail = [trail[1], self._raw(correlation)]
            if as_mirt:
                budget = max(int(np.ceil(50 * rate)), 15)
                correlation = self._m_step_bfgs(counts, correlation, node_mass, budget)
            else:
                self._m_step_items(counts)
                correlation = self._m_step_latent(correlation, node_mass)
            change = float(np.max(np.abs(self._vector(correlation) - before)))
            history.append((loglik, change))
            if self.progress is not None:
                self.progress(cycle, loglik, change, time.perf_counter() - started)
            if change < self.tol:
                self.converged_ = True
                break
            if self.accelerate and cycle % 3 == 0 and (rate > 0.01 or not as_mirt):
                self._ramsay(trail, correlation)
        if not self.converged_:
            warnings.warn(f"EM did not converge in {self.max_iter} cycles",
                          ConvergenceWarning, stacklevel=3)
        self.n_iter_ = cycle
        self.history_ = history
        self.correlation_ = correlation
        self.counts_, self.node_mass_, self.log_likelihood_ = self._e_step(design, correlation)
        self.n_persons_ = int(data.n_persons)
        self._collect(data.n_items)
        return self

    def _ramsay(self, trail, correlation):
        """mirt's Ramsay step on the item parameters (correlations left alone)."""
        older, old = trail
        current = self._raw(correlation)
        step, second = current - old, (current - old) - (old - older)
        denominator = second @ second
        if denominator <= 0:
            return
        accel = max(1.0 - np.sqrt((step @ step) / denominator), -5.0)
        proposal = (1.0 - accel) * current + accel * old
        saved = [group.params for group in self.groups_]
        self._set_raw(proposal, correlation)
        if not all(group.valid(group.params).all() for group in self.groups_):
            for group, params in zip(self.groups_, saved, strict=True):
                group.params = params

    def _index_sets(self, data):
        """Per loading set: its one-hot columns and sub-grid; per group, its rows there."""
        self.sets_, self.rows_in_set_ = {}, {}
        for factors in sorted({tuple(group.factors) for group in self.groups_}):
            columns, start = [], 0
            for group in self.groups_:
                if tuple(group.factors) != factors:
                    continue
                cols = (data.offsets[group.items][:, None]
                        + np.arange(group.n_categories)).ravel()
                self.rows_in_set_[id(group)] = np.arange(start, start + cols.size)
                start += cols.size
                columns.append(cols)
            self.sets_[factors] = (np.concatenate(columns), self._grid(factors))

    def _collect(self, n_items):
        m = self.n_factors
        self.slopes_ = np.zeros((n_items, m))
        self.intercepts_ = [None] * n_items
        self.guessing_ = np.zeros(n_items)
        n_free = int(self.free_correlation.sum())
        for group in self.groups_:
            slopes = group.params[:, : group.n_slopes]
            rest = group.params[:, group.n_slopes:]
            self.slopes_[np.ix_(group.items, group.factors)] = slopes
            n_free += group.params.size
            for row, item in enumerate(group.items):
                if group.model in ("2pl", "3pl"):
                    self.intercepts_[item] = float(rest[row, 0])
                else:
                    self.intercepts_[item] = rest[row].tolist()
                if group.model == "3pl":
                    self.guessing_[item] = float(expit(rest[row, -1]))
        self.n_parameters_ = n_free
        self.aic_ = -2 * self.log_likelihood_ + 2 * n_free
        self.bic_ = -2 * self.log_likelihood_ + n_free * np.log(self.n_persons_)


@dataclasses.dataclass(frozen=True, eq=False)
class LoadingSetDesign:
    """Rows of a multidimensional calibration as its E-step reads them.

    sets : tuple of loading sets (tuples of factor indices), the calibrator's order
    designs : tuple, per set, of the (rows, columns_S) one-hot columns of its items
        (category 0 included; dense, or CSR for sparse data)
    weights : ndarray of shape (rows,), the persons each row stands for
    """

    sets: tuple
    designs: tuple
    weights: np.ndarray


def _set_terms(part, values):
    """{loading set: (rows, Q_S) log-likelihood of its items at its sub-grid}."""
    return {factors: np.asarray(design @ value)
            for factors, design, value in zip(part.sets, part.designs, values, strict=True)}


def grid_statistics(part, log_prior, *values):
    """The E-step sums of one partition on the full product grid.

    part : LoadingSetDesign
    log_prior : (P, ..., P) log N(0, R) weights of the grid (one axis per factor)
    values : per loading set of `part`, log P of its columns at its sub-grid (columns_S, Q_S)

    Returns ``(*expected counts per set (columns_S, Q_S), node mass (P^m,), logLik)``,
    weighted by the rows' weights. Rows go in chunks of GRID_CHUNK_ROWS, small enough
    for the (rows, Q) posterior to stay in cache.
    """
    terms = _set_terms(part, values)
    weights = part.weights
    grid_shape = log_prior.shape
    log_prior = log_prior.reshape(-1)
    counts = {factors: np.zeros_like(value) for factors, value in zip(part.sets, values,
                                                                       strict=True)}
    designs = dict(zip(part.sets, part.designs, strict=True))
    node_mass = np.zeros(log_prior.size)
    loglik = 0.0
    top_prior = log_prior.max()
    n_rows = weights.size
    joint_buffer = np.empty((min(GRID_CHUNK_ROWS, n_rows), log_prior.size))
    for start in range(0, n_rows, GRID_CHUNK_ROWS):
        rows = slice(start, min(start + GRID_CHUNK_ROWS, n_rows))
        n = rows.stop - rows.start
        joint = joint_buffer[:n]
        joint_view = joint.reshape((n, *grid_shape))
        # Shift each row by an upper bound of its log joint (the sum of the maxima),
        # folded into the first term: no pass for the maximum. Where the bound is
        # so loose that the posterior underflows, the chunk is redone exactly.
        peak = top_prior + sum(term[rows].max(axis=1) for term in terms.values())
        _fill(joint_view, log_prior, terms, rows, peak)
        np.exp(joint, out=joint)
        marginals = {factors: _marginal(joint_view, factors) for factors in terms}
        total = next(iter(marginals.values())).sum(axis=1)
        if total.min() < _UNDERFLOW:
            _fill(joint_view, log_prior, terms, rows, np.zeros(n))
            peak = joint.max(axis=1)
            joint -= peak[:, None]
            np.exp(joint, out=joint)
            marginals = {factors: _marginal(joint_view, factors) for factors in terms}
            total = next(iter(marginals.values())).sum(axis=1)
        scale = weights[rows] / total                               # (n,)
        node_mass += scale @ joint
        loglik += float(weights[rows] @ (peak + np.log(total)))
        for factors, marginal in marginals.items():
            design = designs[factors][rows]
            counts[factors] += design.T @ (marginal * scale[:, None])
    return (*counts.values(), node_mass, loglik)


def bifactor_statistics(part, log_weights, *values):
    """The E-step sums of one partition by the bifactor's dimension reduction
    (`calibration.bifactor.e_step`): ``(*expected counts per set, logLik)``.

    part : LoadingSetDesign; log_weights : (P,) normalised log weights of one dimension;
    values : as `grid_statistics`'.
    """
    counts, loglik = bifactor_e_step(_set_terms(part, values), log_weights, part.weights,
                                     dict(zip(part.sets, part.designs, strict=True)))
    return (*(counts[factors] for factors in part.sets), loglik)


def _fill(joint_view, log_prior, terms, rows, shift):
    """joint_view (n, P, ..., P) = log prior + every loading set's term - shift (n,)."""
    n, points, m = joint_view.shape[0], joint_view.shape[1], joint_view.ndim - 1
    for index, (factors, term) in enumerate(terms.items()):
        shape = [n] + [points if f in factors else 1 for f in range(m)]
        values = term[rows]
        if index == 0:
            np.add(log_prior.reshape(joint_view.shape[1:])[None],
                   (values - shift[:, None]).reshape(shape), out=joint_view)
        else:
            joint_view += values.reshape(shape)


def _marginal(joint_view, factors):
    """Sum of a (n, P, ..., P) array over the axes of the factors not in `factors`:
    shape (n, P^len(factors)). A single factor's is two matrix products with a vector
    of ones (over the axes after it, then those before it): BLAS, not strided sums."""
    n, points, m = joint_view.shape[0], joint_view.shape[1], joint_view.ndim - 1
    if len(factors) == 1:
        f = factors[0]
        trailing = points ** (m - f - 1)
        after = joint_view.reshape(n * points ** (f + 1), trailing)
        if trailing > 1:
            after = after @ np.ones(trailing)
        before = after.reshape(n, points ** f, points)
        return np.ones(points ** f) @ before if f else before.reshape(n, points)
    others = tuple(1 + f for f in range(m) if f not in factors)
    marginal = joint_view.sum(axis=others) if others else joint_view
    return marginal.reshape(n, -1)


def _log_det_positive(matrix, smallest=1e-8):
    """log det of a positive definite matrix, None unless its Cholesky factor's
    diagonal stays above `smallest` (a correlation of 1 is not a density)."""
    try:
        diagonal = np.diag(np.linalg.cholesky(matrix))
    except np.linalg.LinAlgError:
        return None
    if diagonal.min() <= smallest:
        return None
    return 2.0 * float(np.log(diagonal).sum())
