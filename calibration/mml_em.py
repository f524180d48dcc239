"""Marginal maximum likelihood by EM (Bock-Aitkin), as R's mirt does it.

The E-step integrates each person's likelihood over a fixed grid (61 nodes
on [-6, 6], weights the N(mean, sd) density normalised), giving expected
counts per item, category and node. The M-step maximises the expected
complete-data log-likelihood (plus the log prior density when priors are
on), in one of two ways (below). Every third cycle Ramsay's acceleration
extrapolates the parameters (mirt's default). EM stops when no parameter
moved more than `tol` in a cycle (lower and upper asymptotes compared as
probabilities, as mirt does) and the log-likelihood has not fallen below its
best value (with priors on, the log-likelihood plus the log prior density:
EM then climbs the posterior, and the likelihood alone may fall); the
reported log-likelihood is that of a final E-step.

Two M-steps (``m_step``):

- ``"mirt"`` (the default) takes the path of R mirt's EM. Where mirt's
  M-step is an unbounded BFGS (every model but rasch and pcm, without priors
  or anchors), it is one BFGS over all free item parameters as R's optim
  runs it (`calibration.bfgs`), from mirt's starting values, with mirt's
  iteration budget (max(ceil(50 r), 15) where r = exp(-last cycle's gain in
  logLik), 0.4 at first) and objective (the expected complete-data
  log-likelihood summed in extended precision, as R's ``sum``); Ramsay's
  step then runs only while r > 0.01, as in mirt. Where mirt bounds a
  parameter (an estimated latent variance, a prior) its M-step is nlminb
  solved tightly, and Newton's method below stands for it. On a flat
  likelihood mirt's EM stops short of the maximum, and so does this path,
  at the same point: its estimates are mirt's.
- ``"newton"`` solves every item's M-step to full precision by Newton's
  method with the Fisher information, all items of a model at once. It
  needs fewer cycles (faster on large banks) and reaches the maximum where
  mirt's EM stops short.

Both admit a negative slope (a reverse-keyed item, which mirt estimates: its
slopes are unbounded) of every model with one, graded items included (their
intercepts stay decreasing, `Block.valid`); a lognormal prior on the slopes
keeps them positive.

Identification: `rasch` and `pcm` fix every slope at 1 and estimate the
population variance (mean 0); every other model fixes N(0, 1). With anchor
items (fixed parameters) the population mean and variance are estimated
instead, which puts the free items on the anchors' scale. `1pl` estimates
one slope shared by all its items on N(0, 1): the Rasch model
reparameterised, but integrated on a grid that spans +-6 population SDs.

Length: the EM loop, its two M-steps, Ramsay's acceleration and the convergence
rule are one algorithm, read together against mirt's; priors, parameterization,
responses and standard errors live in their own modules.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, logit, logsumexp

from irtcat.engine import DICHOTOMOUS_MODELS, MODELS, ConvergenceWarning

from .bfgs import minimize
from .parameterization import Block, start_values
from .partitions import estep_statistics, reduce_statistics
from .responses import ResponseSet, from_dense


@dataclass(frozen=True)
class Priors:
    """Prior densities for a Bayes-modal M-step; None switches one off.

    a : (meanlog, sdlog) of a lognormal on the slope
    b : (mean, sd) of a normal on the difficulty of dichotomous items
    c, u : (alpha, beta) of a beta on the lower and upper asymptotes
    """

    a: tuple | None = None
    b: tuple | None = None
    c: tuple | None = None
    u: tuple | None = None

    @classmethod
    def defaults(cls):
        """lognormal(0, 0.5) on a, N(0, 2) on b, Beta(5, 17) on c, Beta(17, 5) on u."""
        return cls(a=(0.0, 0.5), b=(0.0, 2.0), c=(5.0, 17.0), u=(17.0, 5.0))

    def as_dict(self):
        names = {"a": "lognormal", "b": "normal", "c": "beta", "u": "beta"}
        return {key: {"distribution": names[key], "parameters": list(value)}
                for key, value in vars(self).items() if value is not None}


PRIOR_MODELS = {"a": ("1pl", "2pl", "3pl", "4pl", "grm", "gpcm"),
                "b": ("rasch", "1pl", "2pl", "3pl", "4pl"), "c": ("3pl", "4pl"), "u": ("4pl",)}
"""The models each prior of `Priors` acts on (see `_prior_terms`)."""


@dataclass
class _Latent:
    mean: float = 0.0
    var: float = 1.0
    estimate_mean: bool = False
    estimate_var: bool = False


@dataclass
class EMHistory:
    """Per cycle: the marginal log-likelihood at the cycle's start, that plus the log
    prior density of the free item parameters (equal to it without priors), and the
    largest parameter change of the cycle."""

    log_likelihood: list = field(default_factory=list)
    max_change: list = field(default_factory=list)
    log_posterior: list = field(default_factory=list)


class MMLCalibrator:
    """Calibrate item parameters by MML-EM.

    Parameters
    ----------
    model : str or sequence of str
        One of engine.MODELS for every item, or one per item (a mixed bank).
    n_nodes, theta_range : quadrature grid (mirt: 61 nodes on [-6, 6]).
    max_iter, tol : at most `max_iter` EM cycles; converged when no
        parameter changes by more than `tol` in a cycle.
    priors : Priors or None
    accelerate : bool
        Ramsay acceleration every third cycle.
    m_step : {"mirt", "newton"}
        mirt's M-step path (BFGS with mirt's budget) or Newton to full precision.
    progress : callable(cycle, log_likelihood, max_change, seconds) or None
        Called after every cycle.
    latent_prior : object or None
        A given population density on the grid instead of N(mean, sd): its
        ``log_weights(nodes)`` weights the E-step and ``update(node_mass)`` sees
        each cycle's node mass (`calibration.fixed_calib`); mean and variance stay put.

    Attributes (after `fit`)
    ----------
    blocks_ : list of Block
    data_ : the ResponseSet (or DaskPartitions) fitted
    mean_, sd_ : population mean and standard deviation
    log_likelihood_, n_iter_, converged_, history_
    """

    def __init__(self, model="2pl", *, n_nodes=61, theta_range=(-6.0, 6.0), max_iter=500,
                 tol=1e-4, priors=None, accelerate=True, m_step="mirt", progress=None,
                 latent_prior=None):
        if m_step not in M_STEPS:
            raise ValueError(f"unknown M-step {m_step!r}; expected one of {', '.join(M_STEPS)}")
        self.model = model
        self.m_step = m_step
        self.n_nodes = n_nodes
        self.theta_range = theta_range
        self.max_iter = max_iter
        self.tol = tol
        self.priors = priors
        self.accelerate = accelerate
        self.progress = progress
        self.latent_prior = latent_prior

    # --- set-up ---------------------------------------------------------------------

    def _item_models(self, n_items):
        models = [self.model] * n_items if isinstance(self.model, str) else list(self.model)
        if len(models) != n_items:
            raise ValueError(f"{len(models)} models given for {n_items} items")
        unknown = sorted({m for m in models if m not in MODELS})
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; expected one of {', '.join(MODELS)}")
        self.reported_models_ = models
        return models

    def _blocks(self, data, models, fixed):
        proportions = data.item_counts()
        blocks = []
        free_items = [j for j in range(data.n_items) if j not in fixed]
        keys = sorted({(models[j], int(data.n_categories[j])) for j in free_items})
        for model, n_categories in keys:
            items = [j for j in free_items
                     if models[j] == model and data.n_categories[j] == n_categories]
            share = np.array([proportions[data.offsets[j]: data.offsets[j + 1]] for j in items])
            share = share / share.sum(axis=1, keepdims=True)
            blocks.append(Block(model, items, n_categories, start_values(model, share)))
        # Anchors keep their parameters; a 1pl anchor is a 2pl item with its slope.
        anchor_model = {j: "2pl" if fixed[j]["model"] == "1pl" else fixed[j]["model"]
                        for j in fixed}
        for model, n_categories in sorted({(anchor_model[j], int(data.n_categories[j]))
                                           for j in fixed}):
            items = sorted(j for j in fixed if anchor_model[j] == model
                           and data.n_categories[j] == n_categories)
            eta = np.array([eta_from_irt(model, fixed[j]) for j in items])
            block = Block(model, items, 2 if model in DICHOTOMOUS_MODELS else n_categories, eta)
            block.fixed = True
            blocks.append(block)
        for block in blocks:
            block.fixed = getattr(block, "fixed", False)
        return blocks

    # --- fitting --------------------------------------------------------------------

    def fit(self, data, fixed=None, n_categories=None):
        """Estimate the parameters.

        Parameters
        ----------
        data : ResponseSet or ndarray of shape (n_persons, n_items) with NaN for missing
        fixed : dict {item_index: {"model", "a", "b", "c", "u"}}, optional
            Anchor items whose parameters stay as given.
        n_categories : array_like of int, optional
            Categories per item when the data do not show them all.
        """
        if not isinstance(data, ResponseSet) and not hasattr(data, "reduce"):
            data = from_dense(data, n_categories)
        fixed = dict(fixed or {})
        models = self._item_models(data.n_items)
        self.nodes_ = np.linspace(*self.theta_range, self.n_nodes)
        self.blocks_ = blocks = self._blocks(data, models, fixed)
        all_rasch = all(m in ("rasch", "pcm") for m in models)
        latent = _Latent(estimate_mean=bool(fixed), estimate_var=bool(fixed) or all_rasch)
        if fixed and all_rasch:  # anchored Rasch items carry the scale: keep N(0, var) free
            latent.estimate_mean = True
        if self.latent_prior is not None:
            latent = _Latent()
        self.history_ = EMHistory()
        started = time.perf_counter()
        free = [b for b in blocks if not b.fixed]
        as_mirt = self.m_step == "mirt"
        # mirt's M-step is BFGS unless a parameter is bounded (then nlminb, ~ Newton).
        self.m_step_method_ = "bfgs" if as_mirt and not (
            latent.estimate_mean or latent.estimate_var or self.priors is not None) else "newton"
        trail = []                                      # pre-M-step vectors for acceleration
        converged = False
        cycle = 0
        rate = 0.4                                      # mirt's Mrate
        for cycle in range(1, self.max_iter + 1):
            counts, node_mass, loglik = self._e_step(data, blocks, latent)
            trace = self.history_.log_likelihood
            if trace and loglik > trace[-1]:
                rate = float(np.exp(trace[-1] - loglik))
            before = self._vector(free, latent)
            self.history_.log_posterior.append(loglik + self._log_prior(free))
            if self.m_step_method_ == "bfgs":
                self._m_step_bfgs(free, data, counts, max(int(np.ceil(rate * 50)), 15))
            else:
                self._m_step_newton(free, data, counts)
            _update_latent(latent, self.nodes_, node_mass)
            if self.latent_prior is not None:
                self.latent_prior.update(node_mass)
            after = self._vector(free, latent)
            change = _max_change(before, after, self._probability_columns(free))
            self.history_.log_likelihood.append(loglik)
            self.history_.max_change.append(change)
            if self.progress is not None:
                self.progress(cycle, loglik, change, time.perf_counter() - started)
            if change < self.tol:
                converged = True
                break
            trail.append(before)
            if (self.accelerate and cycle % 3 == 0 and len(trail) >= 2
                    and (rate > 0.01 or not as_mirt)):
                self._ramsay(free, trail[-2], trail[-1], after)
        # The monotonicity check: EM never lowers its objective (the likelihood, or with
        # priors the likelihood times the prior density), so a final value below the best
        # one seen means the run (or an acceleration step) went astray.
        with_prior = self.priors is not None
        trace = self.history_.log_posterior if with_prior else self.history_.log_likelihood
        if converged and trace and trace[-1] < max(trace) - 1e-6 * abs(max(trace)) - 1e-8:
            converged = False
            name = "log-likelihood + log prior" if with_prior else "log-likelihood"
            warnings.warn(f"EM {name} fell from {max(trace):.4f} to {trace[-1]:.4f}; "
                          "the estimates are not a maximum", ConvergenceWarning, stacklevel=2)
        self.converged_ = converged
        self.n_iter_ = cycle
        if not converged and cycle == self.max_iter:
            cycles = f"{self.max_iter} cycle{'' if self.max_iter == 1 else 's'}"
            warnings.warn(f"EM did not converge in {cycles} (largest change "
                          f"{self.history_.max_change[-1]:.2e} > tol {self.tol:g}); raise the "
                          "cycle limit (max_iter; --max-iter of irtcat calibrate) or check the "
                          "data", ConvergenceWarning, stacklevel=2)
        self.log_likelihood_ = self._e_step(data, blocks, latent)[2]
        self.mean_, self.sd_ = latent.mean, float(np.sqrt(latent.var))
        self.latent_ = latent
        self.data_ = data
        self.n_persons_ = data.n_persons
        self.seconds_ = time.perf_counter() - started
        return self

    def _log_prior(self, free):
        """Log prior density of the free item parameters (0 without priors)."""
        if self.priors is None:
            return 0.0
        return float(sum(_prior_terms(block, block.eta, self.priors)[0].sum() for block in free))

    def _log_weights(self, latent):
        if self.latent_prior is not None:
            return self.latent_prior.log_weights(self.nodes_)
        log_density = -0.5 * (self.nodes_ - latent.mean) ** 2 / latent.var
        return log_density - logsumexp(log_density)

    def _log_p_columns(self, blocks, n_columns, offsets):
        """log P of every (item, category) column at the nodes: (n_columns, n_nodes)."""
        log_p = np.zeros((n_columns, self.n_nodes))
        for block in blocks:
            values, _ = block.terms(block.eta, self.nodes_, derivatives=False)   # (n, K, Q)
            rows = offsets[block.items][:, None] + np.arange(block.n_categories)
            log_p[rows] = values
        return log_p

    def _e_step(self, data, blocks, latent):
        """Expected counts (n_columns, Q), node mass (Q,) and the marginal log-likelihood."""
        log_p = self._log_p_columns(blocks, data.offsets[-1], data.offsets)
        log_weights = self._log_weights(latent)
        if data.complete:   # category 0 implied: log P_k - log P_0 on the columns kept
            zero = data.offsets[:-1]
            upper = data.upper_columns
            item_of_upper = np.searchsorted(data.offsets, upper, side="right") - 1
            log_p_design = log_p[upper] - log_p[zero[item_of_upper]]
            log_weights = log_weights + log_p[zero].sum(axis=0)
        else:
            log_p_design = log_p
        design_counts, node_mass, loglik = reduce_statistics(
            data, estep_statistics, log_p_design, log_weights)
        if not data.complete:
            return design_counts, node_mass, loglik
        counts = np.zeros_like(log_p)
        counts[upper] = design_counts
        counts[zero] = node_mass - np.add.reduceat(counts, zero, axis=0)   # the rest answered 0
        return counts, node_mass, loglik

    @staticmethod
    def _block_counts(data, block, counts):
        rows = data.offsets[block.items][:, None] + np.arange(block.n_categories)
        return counts[rows]                                           # (n, K, Q)

    # --- parameter vectors ------------------------------------------------------------

    @staticmethod
    def _vector(free, latent):
        parts = [block.free_values() for block in free]
        parts.append([latent.mean, latent.var])
        return np.concatenate(parts)

    @staticmethod
    def _probability_columns(free):
        """Mask of the vector entries compared as probabilities (logit c and logit u)."""
        mask = []
        for block in free:
            names = block.parameter_names()
            row = np.array([name in ("logit_c", "logit_u") for name in names])
            mask.append(np.zeros(block.n_free, dtype=bool) if block.model == "1pl"
                        else np.tile(row, block.eta.shape[0]))
        mask.append([False, False])
        return np.concatenate(mask)

    def _set_vector(self, free, vector):
        start = 0
        for block in free:
            block.set_free_values(vector[start: start + block.n_free])
            start += block.n_free

    def _m_step_newton(self, free, data, counts):
        """Each block's M-step solved exactly (a 1pl block's shared slope jointly). On a
        cluster a large block's items are solved in parts there (`DaskPartitions.
        item_parts`): each item's Newton steps are its own, so the result is the same."""
        for block in free:
            block_counts = self._block_counts(data, block, counts)
            parts = getattr(data, "item_parts", lambda n: [slice(0, n)])(len(block.items))
            if block.model == "1pl" or len(parts) == 1:
                step = _m_step_common_slope if block.model == "1pl" else _m_step
                block.eta = step(block, block_counts, self.nodes_, self.priors)
                continue
            block.eta = np.concatenate(data.map_parts(
                _m_step, [(_view(block, rows), block_counts[rows]) for rows in parts],
                self.nodes_, self.priors))

    def _m_step_bfgs(self, free, data, counts, max_iter):
        """mirt's M-step: one BFGS over every free item parameter (no latent ones)."""
        parts = [(block, self._block_counts(data, block, counts)) for block in free]
        sizes = np.cumsum([0] + [block.n_free for block in free])

        def split(vector):
            return [block.eta_from_free(vector[lo:hi])
                    for block, lo, hi in zip(free, sizes[:-1], sizes[1:], strict=True)]

        def value(vector):
            total = np.longdouble(0.0)
            for (block, block_counts), eta in zip(parts, split(vector), strict=True):
                log_p, _ = block.terms(eta, self.nodes_, derivatives=False)
                cells = block_counts * log_p
                if not np.isfinite(cells).all():            # 0 x log 0 is 0
                    cells = np.where(block_counts > 0, cells, 0.0)
                total += np.sum(cells, dtype=np.longdouble)
            total = float(total)
            return -total if np.isfinite(total) else _INVALID   # mirt: -1e100 for a NaN logLik

        def gradient(vector):
            grads = []
            for (block, block_counts), eta in zip(parts, split(vector), strict=True):
                _, dlog = block.terms(eta, self.nodes_)
                grad = np.einsum("nkq,npkq->np", block_counts, dlog)
                grads.append(block.free_gradient(grad))
            return -np.concatenate(grads)

        start = np.concatenate([block.free_values() for block in free])
        with np.errstate(all="ignore"):   # trial points far outside the domain are expected
            if value(start) >= _INVALID:  # no descent from an invalid point: Newton instead
                self._m_step_newton(free, data, counts)
                return
            solution = minimize(value, gradient, start, max_iter)
        for block, eta in zip(free, split(solution), strict=True):
            block.eta = eta

    def _ramsay(self, free, older, old, current):
        """mirt's Ramsay step on the item parameters (the latent ones are left alone)."""
        step_prev = old - older
        step = current - old
        second = step - step_prev
        denominator = second @ second
        if denominator <= 0:
            return
        accel = max(1.0 - np.sqrt((step @ step) / denominator), -5.0)
        proposal = (1.0 - accel) * current + accel * old
        proposal[-2:] = current[-2:]
        saved = [block.eta for block in free]
        self._set_vector(free, proposal)
        positive = _positive_slopes(self.priors)
        if not all(np.all(block.valid(block.eta, positive)) for block in free):
            for block, eta in zip(free, saved, strict=True):
                block.eta = eta

    # --- results --------------------------------------------------------------------

    @property
    def n_parameters_(self):
        """Estimated parameters (items and population), as counted for AIC and BIC."""
        count = sum(block.n_free for block in self.blocks_ if not block.fixed)
        return count + int(self.latent_.estimate_mean) + int(self.latent_.estimate_var)

    @property
    def aic_(self):
        return -2.0 * self.log_likelihood_ + 2.0 * self.n_parameters_

    @property
    def bic_(self):
        return -2.0 * self.log_likelihood_ + self.n_parameters_ * np.log(self.n_persons_)


MIN_VARIANCE = 1e-4   # mirt's lower bound on an estimated latent variance
M_STEPS = ("mirt", "newton")
_INVALID = 1e100      # the M-step objective where parameters leave the model's domain


def _update_latent(latent, nodes, node_mass):
    total = node_mass.sum()
    if latent.estimate_mean:
        latent.mean = float(node_mass @ nodes / total)
    if latent.estimate_var:
        latent.var = max(float(node_mass @ (nodes - latent.mean) ** 2 / total), MIN_VARIANCE)


def _max_change(before, after, probability):
    before, after = before.copy(), after.copy()
    before[probability], after[probability] = expit(before[probability]), expit(after[probability])
    return float(np.max(np.abs(after - before), initial=0.0))


# --- M-step -------------------------------------------------------------------------

def _positive_slopes(priors):
    """Must slopes stay positive? Only under a (lognormal) prior on them; else a
    negative slope is a reverse-keyed item, as mirt's unbounded slopes allow."""
    return priors is not None and priors.a is not None


def _prior_terms(block, eta, priors):
    """Log prior density, its gradient (n, P) and a positive curvature (n, P, P)."""
    n, p = eta.shape
    value, grad, curvature = np.zeros(n), np.zeros((n, p)), np.zeros((n, p, p))
    if priors is None:
        return value, grad, curvature
    names = block.parameter_names()
    if priors.a is not None and "a" in names:
        mean, sd = priors.a
        a = eta[:, 0]
        log_a = np.log(np.maximum(a, 1e-300))
        value += -log_a - (log_a - mean) ** 2 / (2 * sd**2)
        grad[:, 0] += -1 / a - (log_a - mean) / (sd**2 * a)
        second = 1 / a**2 - (1 - (log_a - mean)) / (sd**2 * a**2)
        curvature[:, 0, 0] += np.maximum(-second, 0.0)
    for key, column in (("c", "logit_c"), ("u", "logit_u")):
        shape = getattr(priors, key)
        if shape is not None and column in names:
            alpha, beta = shape
            j = names.index(column)
            prob = expit(eta[:, j])
            value += (alpha - 1) * np.log(prob) + (beta - 1) * np.log1p(-prob)
            grad[:, j] += (alpha - 1) * (1 - prob) - (beta - 1) * prob
            curvature[:, j, j] += (alpha + beta - 2) * prob * (1 - prob)
    if priors.b is not None and block.model in ("1pl", "2pl", "3pl", "4pl", "rasch"):
        mean, sd = priors.b
        if block.model == "rasch":
            b, db = -eta[:, 0], np.column_stack([-np.ones(n)])
        else:
            a, d = eta[:, 0], eta[:, 1]
            b = -d / a
            db = np.zeros((n, p))
            db[:, 0], db[:, 1] = d / a**2, -1 / a
        value += -(b - mean) ** 2 / (2 * sd**2)
        grad += (-(b - mean) / sd**2)[:, None] * db
        curvature += db[:, :, None] * db[:, None, :] / sd**2
    return value, grad, curvature


def _objective(block, eta, counts, nodes, priors, derivatives=True):
    """Expected complete-data log-likelihood (+ log prior) per item, gradient, information."""
    log_p, dlog = block.terms(eta, nodes, derivatives)
    with np.errstate(invalid="ignore"):
        value = np.sum(np.where(counts > 0, counts * log_p, 0.0), axis=(1, 2))
    value = np.where(block.valid(eta, _positive_slopes(priors)) & np.isfinite(value), value,
                     -np.inf)
    prior_value, prior_grad, prior_curvature = _prior_terms(block, eta, priors)
    value = value + prior_value
    if not derivatives:
        return value, None, None
    grad = np.einsum("nkq,npkq->np", counts, dlog) + prior_grad
    total = counts.sum(axis=1)                                       # (n, Q)
    weight = total[:, None, :] * np.exp(log_p)                       # (n, K, Q)
    info = np.einsum("nkq,npkq,nrkq->npr", weight, dlog, dlog) + prior_curvature
    return value, grad, info


def _m_step(block, counts, nodes, priors, max_newton=25):
    """Newton (Fisher scoring) on every item of the block, with step halving."""
    eta = block.eta.copy()
    value, grad, info = _objective(block, eta, counts, nodes, priors)
    active = np.ones(eta.shape[0], dtype=bool)
    for _ in range(max_newton):
        ridge = 1e-10 * np.eye(eta.shape[1])
        step = np.linalg.solve(info[active] + ridge, grad[active][..., None])[..., 0]
        scale = np.minimum(1.0, 2.0 / np.maximum(np.abs(step).max(axis=1), 1e-300))[:, None]
        step = step * scale                                           # no jump beyond 2 per cycle
        index = np.flatnonzero(active)
        accepted = np.zeros(index.size, dtype=bool)
        trial = np.ones(index.size)
        for _ in range(30):
            pending = ~accepted
            if not pending.any():
                break
            candidate = eta[index[pending]] + trial[pending, None] * step[pending]
            candidate_value, _, _ = _objective(_view(block, index[pending]), candidate,
                                               counts[index[pending]], nodes, priors, False)
            better = candidate_value >= value[index[pending]] - 1e-12 * np.abs(
                value[index[pending]])
            where = np.flatnonzero(pending)
            eta[index[where[better]]] = candidate[better]
            accepted[where[better]] = True
            trial[where[~better]] *= 0.5
        small = np.max(np.abs(step * trial[:, None]), axis=1) < 1e-9
        active[index[small | ~accepted]] = False
        if not active.any():
            break
        value, grad, info = _objective(block, eta, counts, nodes, priors)
    return eta


def _m_step_common_slope(block, counts, nodes, priors, max_newton=25):
    """Newton for a 1pl block: one slope shared by all items, one intercept each.

    The information is an arrow matrix (the slope couples every item), solved
    by its Schur complement; a common step length keeps the total objective rising.
    """
    eta = block.eta.copy()
    value, grad, info = _objective(block, eta, counts, nodes, priors)
    total = value.sum()
    for _ in range(max_newton):
        i_ad, i_dd = info[:, 0, 1], info[:, 1, 1]
        g_a = grad[:, 0].sum()
        i_aa = info[:, 0, 0].sum()
        step_a = (g_a - np.sum(i_ad * grad[:, 1] / i_dd)) / (i_aa - np.sum(i_ad**2 / i_dd))
        step_d = (grad[:, 1] - i_ad * step_a) / i_dd
        step = np.column_stack([np.full(eta.shape[0], step_a), step_d])
        step *= min(1.0, 2.0 / max(np.abs(step).max(), 1e-300))
        for _ in range(30):
            candidate = eta + step
            candidate_total = _objective(block, candidate, counts, nodes, priors, False)[0].sum()
            if candidate_total >= total - 1e-12 * abs(total):
                break
            step *= 0.5
        else:
            break
        eta = candidate
        if np.abs(step).max() < 1e-9:
            break
        value, grad, info = _objective(block, eta, counts, nodes, priors)
        total = value.sum()
    return eta


def _view(block, rows):
    """A Block (of `block`'s own kind) over some of its items, for evaluating candidates."""
    view = copy.copy(block)
    view.items, view.eta = block.items[rows], block.eta[rows]
    return view


# --- IRT form <-> slope-intercept ------------------------------------------------------

def eta_from_irt(model, item):
    """Slope-intercept parameters of one item given in IRT form (a dict)."""
    a = 1.0 if model in ("rasch", "pcm") else float(item["a"])
    b = np.atleast_1d(np.asarray(item["b"], dtype=float))
    if model == "rasch":
        return np.array([-b[0]])
    if model in DICHOTOMOUS_MODELS:
        eta = [a, -a * b[0]]
        if model in ("3pl", "4pl"):
            eta.append(logit(float(item.get("c", 0.0))))
        if model == "4pl":
            eta.append(logit(float(item.get("u", 1.0))))
        return np.array(eta)
    if model == "grm":
        return np.concatenate([[a], -a * b])
    d = -a * np.cumsum(b)
    if model == "nominal":   # scores rescaled to ak_0 = 0, ak_K-1 = K - 1 (mirt's)
        ak = np.asarray(item["ak"], dtype=float)
        scale = (ak[-1] - ak[0]) / (ak.size - 1)
        return np.concatenate([[a * scale], (ak[1:-1] - ak[0]) / scale, d])
    return d if model == "pcm" else np.concatenate([[a], d])
