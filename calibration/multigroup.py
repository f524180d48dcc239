"""Multiple-group calibration (R mirt's ``multipleGroup``) and likelihood-ratio DIF
(mirt's ``DIF``).

Each group g has its own latent distribution N(mean_g, var_g) on the common
grid (61 nodes on [-6, 6]); the reference group's is N(0, 1) (with every item
rasch or pcm, each group's variance is estimated, the reference's too). An
item parameter is either equal across groups (one value) or free per group
(one value per group), by mirt's invariance options:

- ``slopes``: every slope equal across groups;
- ``intercepts``: every intercept (d, or d_1..d_K-1) equal; lower and upper
  asymptotes stay free, as in mirt;
- ``free_means`` / ``free_var``: estimate the mean / variance of every group
  but the reference;
- an item's name: all of that item's parameters equal (an anchor item).

The EM reuses `MMLCalibrator`'s pieces: its E-step runs per group, over the
group's persons with the group's node weights; the M-step solves (Newton,
which stands for mirt's nlminb where a latent variance is bounded) one
objective per item whose parameter vector holds each shared parameter once
and each free one per group: the groups' expected counts are stacked along
the node axis (`SharedBlock`), so an equal parameter sees every group's
counts and a free one its own group's. Each group's latent mean and variance
are then the moments of its posterior node mass (mirt's update). Ramsay's
acceleration acts on the item parameters every third cycle; convergence is
mirt's rule (no estimated parameter moved more than `tol`).

Standard errors are from the observed information: central differences of
the Fisher-identity gradient of the marginal log-likelihood, the quantity
mirt's default ``SE.type = 'Oakes'`` estimates (`calibration.standard_errors`
does the same for one group).

Likelihood-ratio DIF (`likelihood_ratio_dif`) compares, for each tested item
t, a model where t is equal across groups with one where t's chosen
parameters are free, every anchor item being equal in both and the focal
groups' means and variances free. ``scheme="drop"`` (mirt's) takes every
other item as an anchor by default; ``scheme="add"`` needs the anchors named
(the rest are free per group in both models): with anchors given the two
schemes make the same comparison. IC columns are IC(t free) - IC(t equal)
(negative favours DIF), X2 = 2 (logLik(t free) - logLik(t equal)).

Length: the multiple-group EM, its standard errors and the LR DIF built on
its fits are one method, read together against mirt's multipleGroup and DIF;
the bank document it makes lives in `multigroup_bank`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
from scipy.stats import chi2

from irtcat.engine import MODELS, ConvergenceWarning

from .mml_em import MMLCalibrator, _Latent, _m_step, _max_change, _objective, _update_latent
from .parameterization import Block, start_values
from .partitions import DaskPartitions
from .responses import from_dense

INVARIANCE = ("slopes", "intercepts", "free_means", "free_var")
"""mirt's invariance keywords (item names may be given beside them)."""
P_ADJUST = ("none", "holm", "bonferroni", "BH")
"""p-value adjustments of `likelihood_ratio_dif` (R's p.adjust names)."""
SCHEMES = ("drop", "add")
_PARAMETER_ALIASES = {"a": "a", "a1": "a", "d": "d", "c": "logit_c", "g": "logit_c",
                      "u": "logit_u", "logit_c": "logit_c", "logit_u": "logit_u"}


class SharedBlock(Block):
    """Items of one model whose parameters are partly equal across groups.

    ``eta`` (n, m) holds each item's distinct parameters; group g's
    slope-intercept parameters are ``eta[:, columns[g]]`` with ``columns`` of
    shape (n_groups, P). `terms` returns every group's log P and derivatives
    side by side on the node axis: log_p (n, K, G * Q), dlog_p (n, m, K, G * Q),
    so an M-step over counts stacked the same way sums the groups.
    """

    def __init__(self, model, items, n_categories, eta, columns, eta_names):
        super().__init__(model, items, n_categories, eta)
        self.columns = np.asarray(columns, dtype=np.intp)
        self.eta_names = list(eta_names)

    @property
    def shared(self):
        """Is every parameter equal across groups?"""
        return self.eta.shape[1] == len(self.eta_names)

    def group_block(self, group, eta=None):
        """Group `group`'s items as a plain Block."""
        eta = self.eta if eta is None else eta
        return Block(self.model, self.items, self.n_categories, eta[:, self.columns[group]])

    def terms(self, eta, nodes, derivatives=True):
        parts = [super(SharedBlock, self).terms(eta[:, columns], nodes, derivatives)
                 for columns in self.columns]
        log_p = np.concatenate([part[0] for part in parts], axis=-1)
        if not derivatives:
            return log_p, None
        n, n_nodes = eta.shape[0], nodes.size
        dlog = np.zeros((n, eta.shape[1], self.n_categories, log_p.shape[-1]))
        for group, (columns, (_, group_dlog)) in enumerate(zip(self.columns, parts,
                                                               strict=True)):
            dlog[:, columns, :, group * n_nodes:(group + 1) * n_nodes] = group_dlog
        return log_p, dlog

    def valid(self, eta, positive_slope=True):
        return np.logical_and.reduce([super(SharedBlock, self).valid(eta[:, columns],
                                                                     positive_slope)
                                      for columns in self.columns])

    def parameter_names(self):
        """Names of eta's columns: ``a`` when equal across groups, ``a@g`` when group g's."""
        names = [None] * self.eta.shape[1]
        for group, columns in enumerate(self.columns):
            for position, column in enumerate(columns):
                shared = np.all(self.columns[:, position] == column)
                names[column] = self.eta_names[position] + ("" if shared else f"@{group}")
        return names


class MultipleGroupCalibrator:
    """Multiple-group MML-EM, as mirt's multipleGroup.

    Parameters
    ----------
    model : str or sequence of str (one per item); not "1pl"
    invariance : iterable of str
        mirt's keywords (`INVARIANCE`) and item names (those items equal across groups).
    progress : callable(cycle, log_likelihood, max_change, seconds) or None
    **settings : n_nodes, theta_range, max_iter, tol, accelerate, as `MMLCalibrator`'s.

    Attributes (after `fit`)
    ----------
    groups_ : list of str, the reference group first
    latents_ : list of each group's latent (mean, var, estimate_mean, estimate_var)
    blocks_ : list of SharedBlock
    log_likelihood_, n_iter_, converged_, n_persons_, group_sizes_, seconds_
    """

    def __init__(self, model="2pl", *, invariance=(), progress=None, **settings):
        self.model = model
        self.invariance = tuple(invariance)
        self.progress = progress
        # The per-group E-step and the M-step pieces, holding the EM settings
        # (n_nodes, theta_range, max_iter, tol, accelerate) as MMLCalibrator does.
        self._engine = _GroupEStep(model, m_step="newton", **settings)
        self._engine.m_step_method_ = "newton"

    # --- set-up ---------------------------------------------------------------------

    def _split(self, responses, groups, reference):
        codes = np.asarray(groups, dtype=str)
        if codes.shape[0] != responses.shape[0]:
            raise ValueError(f"{codes.shape[0]} group codes for {responses.shape[0]} persons")
        found = sorted(set(codes.tolist()))
        if reference is None:
            reference = found[0]
        if reference not in found:
            raise ValueError(f"reference group {reference!r} is not among the groups "
                             f"({', '.join(found)})")
        if len(found) < 2:
            raise ValueError("multiple-group calibration needs at least two groups")
        self.groups_ = [reference] + [code for code in found if code != reference]
        rows = [np.flatnonzero(codes == code) for code in self.groups_]
        self.group_sizes_ = [int(r.size) for r in rows]
        return rows

    def _sharing(self, item_ids, eta_names, equal):
        """Per item, a bool per slope-intercept column: equal across groups?"""
        unknown = [key for key in self.invariance if key not in INVARIANCE
                   and key not in item_ids]
        if unknown:
            raise ValueError(f"invariance {unknown[0]!r} is neither one of "
                             f"{', '.join(INVARIANCE)} nor an item")
        shared = []
        for position, item in enumerate(item_ids):
            names = eta_names[position]
            whole = item in self.invariance
            chosen = (equal or {}).get(position, ())
            row = [whole or chosen is None or name in chosen
                   or ("slopes" in self.invariance and name == "a")
                   or ("intercepts" in self.invariance and name.startswith("d"))
                   for name in names]
            shared.append(tuple(row))
        return shared

    def _blocks(self, models, n_categories, shared, starts, eta_names):
        n_groups = len(self.groups_)
        by_key = {}
        for item, model in enumerate(models):
            by_key.setdefault((model, int(n_categories[item]), shared[item]), []).append(item)
        blocks = []
        for (model, categories, pattern), items in sorted(by_key.items()):
            columns = np.zeros((n_groups, len(pattern)), dtype=np.intp)
            width = 0
            for position, equal in enumerate(pattern):
                columns[:, position] = width if equal else width + np.arange(n_groups)
                width += 1 if equal else n_groups
            eta = np.zeros((len(items), width))
            for group in range(n_groups - 1, -1, -1):          # the reference's value wins
                eta[:, columns[group]] = np.array([starts[group][item] for item in items])
            blocks.append(SharedBlock(model, items, categories, eta, columns,
                                      eta_names[items[0]]))
        return blocks

    # --- fitting --------------------------------------------------------------------

    def fit(self, responses, groups, *, reference=None, item_ids=None, equal=None, start=None,
            cluster=None, partition_rows=None):
        """Estimate every group's item parameters and latent distribution.

        Parameters
        ----------
        responses : ndarray of shape (n_persons, n_items), NaN where not answered
        groups : sequence of str, length n_persons
        reference : str, optional (default: the first code in sorted order)
        item_ids : list of str, optional (needed for item names in `invariance`)
        equal : dict {item position: collection of parameter names or None}, optional
            More parameters equal across groups (None: all the item's).
        start : MultipleGroupCalibrator, optional
            A fit of the same data and groups whose estimates start this one.
        cluster : distributed.Client, optional
            Run the E-steps on this Dask cluster, each group's persons in partitions on
            its workers (one `DaskPartitions` per group, kept for `covariance` until
            `close`); the estimates are those of one process within 1e-8.
        partition_rows : int, optional
            Persons (or response patterns) per partition of a group, in this process as
            on a cluster (default `responses.PARTITION_ROWS`).
        """
        responses = np.asarray(responses, dtype=float)
        n_items = responses.shape[1]
        item_ids = list(item_ids) if item_ids is not None else [f"i{j}" for j in range(n_items)]
        models = [self.model] * n_items if isinstance(self.model, str) else list(self.model)
        if len(models) != n_items:
            raise ValueError(f"{len(models)} models given for {n_items} items")
        bad = sorted({m for m in models if m not in MODELS or m == "1pl"})
        if bad:
            raise ValueError(f"model {bad[0]!r} cannot be calibrated in multiple groups")
        rows = self._split(responses, groups, reference)
        self.n_persons_ = responses.shape[0]
        self.item_ids_ = item_ids
        n_categories = np.maximum(np.nanmax(np.where(np.isnan(responses), 0, responses),
                                            axis=0).astype(np.intp) + 1, 2)
        self.group_data_ = [from_dense(responses[r], n_categories) for r in rows]
        if partition_rows is not None:
            self.group_data_ = [dataclasses.replace(data, partition_rows=int(partition_rows))
                                for data in self.group_data_]
        if cluster is not None:
            self.group_data_ = [DaskPartitions(cluster, data) for data in self.group_data_]
        whole = from_dense(responses, n_categories)
        proportions = whole.item_counts()
        defaults = [start_values(models[j], _share(proportions, whole.offsets, j))[0]
                    for j in range(n_items)]
        eta_names = [Block(models[j], [j], n_categories[j], defaults[j][None]).parameter_names()
                     for j in range(n_items)]
        shared = self._sharing(item_ids, eta_names, equal)
        starts = ([start.group_eta(g) for g in range(len(self.groups_))] if start is not None
                  else [defaults] * len(self.groups_))
        self.blocks_ = self._blocks(models, n_categories, shared, starts, eta_names)
        self.reported_models_ = models
        all_rasch = all(m in ("rasch", "pcm") for m in models)
        self.latents_ = [_Latent(estimate_mean=g > 0 and "free_means" in self.invariance,
                                 estimate_var=all_rasch or (g > 0 and "free_var"
                                                            in self.invariance))
                         for g in range(len(self.groups_))]
        if start is not None:
            for latent, given in zip(self.latents_, start.latents_, strict=True):
                latent.mean = given.mean if latent.estimate_mean else 0.0
                latent.var = given.var if latent.estimate_var else 1.0
        self._check_identified(shared, eta_names)
        self._engine.nodes_ = np.linspace(*self._engine.theta_range, self._engine.n_nodes)
        self._run()
        return self

    def _check_identified(self, shared, eta_names):
        """A free focal mean needs an equal intercept, a free variance an equal slope."""
        links = {name for row, names in zip(shared, eta_names, strict=True)
                 for equal, name in zip(row, names, strict=True) if equal}
        if "free_means" in self.invariance and not any(n.startswith("d") for n in links):
            raise ValueError("free_means needs some intercept equal across groups "
                             "(intercepts, or anchor items)")
        if ("free_var" in self.invariance and "a" not in links
                and not all(m in ("rasch", "pcm") for m in self.reported_models_)):
            raise ValueError("free_var needs some slope equal across groups "
                             "(slopes, or anchor items)")

    def _e_step(self):
        """Per group: expected counts (n_columns, Q), node mass (Q,) and logLik."""
        return [self._engine._e_step(data, [block.group_block(g) for block in self.blocks_],
                                     latent)
                for g, (data, latent) in enumerate(zip(self.group_data_, self.latents_,
                                                       strict=True))]

    def _stacked_counts(self, block, per_group):
        """The block's counts of every group side by side: (n, K, G * Q)."""
        return np.concatenate([self._engine._block_counts(data, block, counts)
                               for data, (counts, _, _) in zip(self.group_data_, per_group,
                                                               strict=True)], axis=-1)

    def _m_step(self, block, per_group):
        """The block's new eta: on the groups' summed counts when every parameter is
        equal across groups (the same objective, half the work), else on stacked ones."""
        nodes = self._engine.nodes_
        if block.shared:
            summed = sum(self._engine._block_counts(data, block, counts)
                         for data, (counts, _, _) in zip(self.group_data_, per_group,
                                                         strict=True))
            return _m_step(block.group_block(0), summed, nodes, None)
        return _m_step(block, self._stacked_counts(block, per_group), nodes, None)

    def _item_vector(self):
        return np.concatenate([block.eta.ravel() for block in self.blocks_])

    def _vector(self):
        latent = [value for lat in self.latents_ for value, free in
                  ((lat.mean, lat.estimate_mean), (lat.var, lat.estimate_var)) if free]
        return np.concatenate([self._item_vector(), latent])

    def _probability_mask(self):
        mask = [np.tile([name.split("@")[0] in ("logit_c", "logit_u")
                         for name in block.parameter_names()], block.eta.shape[0])
                for block in self.blocks_]
        return np.concatenate([*mask, np.zeros(_n_latent(self.latents_), dtype=bool)])

    def _run(self):
        nodes = self._engine.nodes_
        started = time.perf_counter()
        probability = self._probability_mask()
        trace, trail = [], []
        converged = False
        cycle = 0
        for cycle in range(1, self._engine.max_iter + 1):
            per_group = self._e_step()
            before = self._vector()
            for block in self.blocks_:
                block.eta = self._m_step(block, per_group)
            for latent, (_, node_mass, _) in zip(self.latents_, per_group, strict=True):
                _update_latent(latent, nodes, node_mass)
            change = _max_change(before, self._vector(), probability)
            trace.append(sum(loglik for _, _, loglik in per_group))
            if self.progress is not None:
                self.progress(cycle, trace[-1], change, time.perf_counter() - started)
            if change < self._engine.tol:
                converged = True
                break
            trail.append(np.append(before[: probability.size - _n_latent(self.latents_)],
                                   [0.0, 0.0]))
            if self._engine.accelerate and cycle % 3 == 0 and len(trail) >= 2:
                current = np.append(self._item_vector(), [0.0, 0.0])
                self._engine._ramsay(self.blocks_, trail[-2], trail[-1], current)
        self.converged_ = converged
        self.n_iter_ = cycle
        self.trace_ = trace
        if not converged:
            warnings.warn(f"multiple-group EM did not converge in {self._engine.max_iter} "
                          "cycles; raise the cycle limit (--max-iter) or check the data",
                          ConvergenceWarning, stacklevel=3)
        per_group = self._e_step()
        self.group_log_likelihoods_ = [loglik for _, _, loglik in per_group]
        self.log_likelihood_ = float(sum(self.group_log_likelihoods_))
        self.seconds_ = time.perf_counter() - started

    def close(self):
        """Release the groups' partitions on the cluster (a fit with `cluster`)."""
        for data in self.group_data_:
            if isinstance(data, DaskPartitions):
                data.close()

    # --- results --------------------------------------------------------------------

    @property
    def n_parameters_(self):
        return int(self._vector().size)

    def information_criteria(self):
        """mirt's AIC, BIC, SABIC and HQ (n = all persons): dict."""
        k, n, deviance = self.n_parameters_, self.n_persons_, -2.0 * self.log_likelihood_
        return {"AIC": deviance + 2 * k, "BIC": deviance + k * np.log(n),
                "SABIC": deviance + k * np.log((n + 2) / 24), "HQ": deviance
                + 2 * k * np.log(np.log(n))}

    def group_eta(self, group):
        """Group `group`'s slope-intercept parameters: a list of (P,) arrays, one per item."""
        out = [None] * len(self.reported_models_)
        for block in self.blocks_:
            for row, item in enumerate(block.items):
                out[item] = block.eta[row, block.columns[group]].copy()
        return out

    def group_parameters(self, group):
        """{item id: {slope-intercept name: value}} of one group (by position)."""
        out = {}
        for block in self.blocks_:
            for row, item in enumerate(block.items):
                out[self.item_ids_[item]] = {
                    name: float(value) for name, value in
                    zip(block.eta_names, block.eta[row, block.columns[group]], strict=True)}
        return out

    def free_items(self):
        """Ids of the items with some parameter free across groups."""
        return [self.item_ids_[item] for block in self.blocks_ for item in block.items
                if not block.shared]

    # --- standard errors ------------------------------------------------------------

    def _set_vector(self, vector):
        start = 0
        for block in self.blocks_:
            block.eta = vector[start: start + block.eta.size].reshape(block.eta.shape)
            start += block.eta.size
        for latent in self.latents_:
            if latent.estimate_mean:
                latent.mean, start = float(vector[start]), start + 1
            if latent.estimate_var:
                latent.var, start = float(vector[start]), start + 1

    def marginal_gradient(self, vector):
        """Gradient of the marginal log-likelihood at `vector` (`_vector`'s layout)."""
        saved = self._vector()
        self._set_vector(vector)
        try:
            per_group = self._e_step()
            nodes = self._engine.nodes_
            parts = [_objective(block, block.eta, self._stacked_counts(block, per_group),
                                nodes, None)[1].ravel() for block in self.blocks_]
            for latent, (_, node_mass, _) in zip(self.latents_, per_group, strict=True):
                parts.append(_latent_scores(latent, nodes, node_mass,
                                            np.exp(self._engine._log_weights(latent))))
            return np.concatenate(parts)
        finally:
            self._set_vector(saved)

    def covariance(self, step=1e-5):
        """Inverse observed information (n_parameters, n_parameters), or None when it is
        not positive definite. Central differences of `marginal_gradient` (Oakes)."""
        center = self._vector()
        steps = step * np.maximum(1.0, np.abs(center))
        columns = []
        for i, h in enumerate(steps):
            shift = np.zeros_like(center)
            shift[i] = h
            columns.append((self.marginal_gradient(center + shift)
                            - self.marginal_gradient(center - shift)) / (2 * h))
        jacobian = np.column_stack(columns)
        information = -(jacobian + jacobian.T) / 2
        try:
            lower_inverse = np.linalg.inv(np.linalg.cholesky(information))
        except np.linalg.LinAlgError:
            return None
        return lower_inverse.T @ lower_inverse

    def latent_standard_errors(self, cov):
        """Per group {"mean": se or None, "var": se or None} from `covariance`'s matrix."""
        position = self._item_vector().size
        out = []
        for latent in self.latents_:
            entry = {"mean": None, "var": None}
            for key, free in (("mean", latent.estimate_mean), ("var", latent.estimate_var)):
                if free:
                    entry[key] = None if cov is None else float(np.sqrt(cov[position,
                                                                             position]))
                    position += 1
            out.append(entry)
        return out

    def item_covariance_index(self, block_number, row, group):
        """Positions in `_vector` of group `group`'s eta of one block row: (P,)."""
        start = sum(block.eta.size for block in self.blocks_[:block_number])
        block = self.blocks_[block_number]
        return start + row * block.eta.shape[1] + block.columns[group]


class _GroupEStep(MMLCalibrator):
    """MMLCalibrator's E-step and M-step pieces, its node weights normalised without
    scipy's logsumexp (whose checks cost more than the sum over 61 nodes)."""

    def _log_weights(self, latent):
        log_density = -0.5 * (self.nodes_ - latent.mean) ** 2 / latent.var
        peak = log_density.max()
        return log_density - (peak + np.log(np.exp(log_density - peak).sum()))


def _n_latent(latents):
    return sum(int(lat.estimate_mean) + int(lat.estimate_var) for lat in latents)


def _latent_scores(latent, nodes, node_mass, weights):
    """d logLik / d (mean, var) of the estimated ones, from the posterior node mass."""
    deviation = nodes - latent.mean
    scores = []
    if latent.estimate_mean:
        scores.append(deviation / latent.var)
    if latent.estimate_var:
        scores.append(deviation**2 / (2 * latent.var**2))
    return [float(node_mass @ (score - weights @ score)) for score in scores]


def _share(proportions, offsets, item):
    """Item `item`'s observed category proportions: (1, K)."""
    counts = proportions[offsets[item]: offsets[item + 1]]
    return (counts / counts.sum())[None]


# --- likelihood-ratio DIF -------------------------------------------------------------

def likelihood_ratio_dif(data, model: str, *, reference: str, items: list[str] | None = None,
                         anchors: list[str] | None = None, scheme: str = "drop",
                         parameters: tuple[str, ...] = ("a", "d"), p_adjust: str = "none",
                         n_nodes: int = 61, max_iter: int = 500,
                         tol: float = 1e-4) -> list[dict]:
    """Likelihood-ratio DIF test of each item, as mirt's ``DIF()``.

    Parameters
    ----------
    data : ResponseData with ``.groups`` (one code per person)
    model : str, every item's model
    reference : str, the reference group's code (N(0, 1)); the others' means and
        variances are estimated (mirt's free_means, free_var)
    items : item ids to test (default: every item)
    anchors : item ids equal across groups in both models (default with
        ``scheme="drop"``: every item but the tested one; ``"add"`` needs them)
    scheme : "drop" or "add" (see the module docstring)
    parameters : the tested item's parameters freed across groups: slope-intercept
        names ``a`` (or mirt's ``a1``), ``d`` (every intercept), ``c``/``g``, ``u``
    p_adjust : "none" (mirt 1.45's default), "holm", "bonferroni" or "BH"

    Returns
    -------
    list of dict, one per tested item: item, AIC, SABIC, HQ, BIC (IC with the item's
    parameters free minus IC with them equal), X2, df, p, p_adjusted, converged, and
    groups {code: {parameter: value}} (slope-intercept, from the model with them free).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    if p_adjust not in P_ADJUST:
        raise ValueError(f"unknown p_adjust {p_adjust!r}; expected one of {', '.join(P_ADJUST)}")
    if data.groups is None:
        raise ValueError("the data have no group codes: read them with a group column")
    item_ids = list(data.item_ids)
    tested = list(item_ids if items is None else items)
    if anchors is None and scheme == "add":
        raise ValueError("scheme 'add' needs anchors: the items equal across groups")
    anchor_set = set(item_ids if anchors is None else anchors)
    unknown = [item for item in [*tested, *anchor_set] if item not in item_ids]
    if unknown:
        raise ValueError(f"no item {unknown[0]!r} in the data")
    unknown = [name for name in parameters if name not in _PARAMETER_ALIASES]
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; expected a, d, c or u")
    freed = {_PARAMETER_ALIASES[name] for name in parameters}
    fits = {}

    def fit(constraints, start=None):
        """The fit where `constraints` ({position: names equal or None = all}) hold."""
        constraints = {position: names for position, names in constraints.items()
                       if names is None or len(names)}
        key = tuple(sorted((position, None if names is None else tuple(sorted(names)))
                           for position, names in constraints.items()))
        if key not in fits:
            calibrator = MultipleGroupCalibrator(model, invariance=("free_means", "free_var"),
                                                 n_nodes=n_nodes, max_iter=max_iter, tol=tol)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fits[key] = calibrator.fit(data.responses, data.groups, reference=reference,
                                           item_ids=item_ids, equal=constraints, start=start)
        return fits[key]

    baseline = {item_ids.index(item): None for item in anchor_set}
    first = fit(baseline)
    rows = []
    for item in tested:
        position = item_ids.index(item)
        others = {p: names for p, names in baseline.items() if p != position}
        equal = fit({**others, position: None}, start=first)
        kept = [name for name in _eta_names(first, position)
                if name not in freed and not (name.startswith("d") and "d" in freed)]
        free = fit({**others, position: kept}, start=equal)
        rows.append(_dif_row(item, position, equal, free))
    adjusted = adjust_p_values([row["p"] for row in rows], p_adjust)
    for row, value in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = value
    return rows


def _eta_names(calibrator, position):
    for block in calibrator.blocks_:
        if position in block.items:
            return block.eta_names
    raise KeyError(position)


def _dif_row(item, position, equal, free):
    """One item's table row: ICs of `free` minus those of `equal`, the LR test."""
    ic_free, ic_equal = free.information_criteria(), equal.information_criteria()
    statistic = 2.0 * (free.log_likelihood_ - equal.log_likelihood_)
    df = free.n_parameters_ - equal.n_parameters_
    row = {"item": item}
    row.update({key: float(ic_free[key] - ic_equal[key]) for key in ("AIC", "SABIC", "HQ",
                                                                      "BIC")})
    row.update({"X2": float(statistic), "df": int(df),
                "p": float(chi2.sf(statistic, df)) if df > 0 else float("nan"),
                "converged": bool(free.converged_ and equal.converged_),
                "groups": {code: free.group_parameters(g)[item]
                           for g, code in enumerate(free.groups_)}})
    return row


def adjust_p_values(p_values, method="none"):
    """R's p.adjust for `method` in `P_ADJUST`: list of float (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    out = p.copy()
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if method == "none" or m == 0:
        return out.tolist()
    values = p[present]
    if method == "bonferroni":
        out[present] = np.minimum(values * m, 1.0)
        return out.tolist()
    if method == "holm":                   # step-down: cumulative max of (m - i) p_(i)
        order = np.argsort(values, kind="stable")
        scaled = np.maximum.accumulate((m - np.arange(m)) * values[order])
    else:                                  # BH, step-up: cumulative min from the largest
        order = np.argsort(values, kind="stable")[::-1]
        scaled = np.minimum.accumulate(m / np.arange(m, 0, -1) * values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(scaled, 1.0)
    out[present] = adjusted
    return out.tolist()
