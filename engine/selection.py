"""Item selection: a larger-is-better criterion of every item for each examinee.

Every criterion has one signature, ``criterion(batch, rows) -> (len(rows), n_items)``,
and `CRITERIA` maps a selection method's name to it:

- "mfi": maximum Fisher information at the current estimate, computed exactly there
  (`BankInformation`);
- "kl": Kullback-Leibler information weighted by the posterior (KLP), with the
  category probabilities at the exact current estimate;
- "mepv": minimum expected posterior variance (negated);
- "astrat": a-stratified (strata of increasing discrimination, b closest to theta);
- "random": a uniform draw.

`criterion` applies the progressive method on top; `best_of` picks among the
top k of the eligible items (randomesque).

Criteria are exact at the estimate (no table on a theta grid), and every
deterministic choice among equal values goes to the lowest item position
(`np.argmax`), so that two engines given the same bank, answers and estimator
choose the same items: catR's nextItem, for one, ranks the exact information
at the estimate (Magis & Raiche, 2012, "Random generation of response patterns
under computerized adaptive testing with the R package catR", Journal of
Statistical Software 48(8)); it draws among exact ties, which the lowest
position makes reproducible.
"""

from __future__ import annotations

import numpy as np

from .kernel import DICHOTOMOUS_MODELS, dichotomous_information
from .models import category_log_probability, information


class BankInformation:
    """Fisher information of every item of a bank at any theta, exactly.

    The dichotomous items (1PL to 4PL) in closed form,
    ``a^2 (dP/dz)^2 / (P (1 - P))`` (`engine.kernel.dichotomous_information`), the
    others by `engine.models.information`. Calling it with theta of shape (r,) gives
    (r, n_items).
    """

    def __init__(self, params):
        closed = np.array([model in DICHOTOMOUS_MODELS for model in params.model], dtype=bool)
        self.n_items = params.n_items
        self.closed, self.other = np.flatnonzero(closed), np.flatnonzero(~closed)
        self.a = params.a[self.closed]
        self.a_squared = self.a * self.a
        self.b = params.b[self.closed, 0]
        c, u = params.c[self.closed], params.u[self.closed]
        self.c = c if np.any(c != 0.0) else None              # None: no lower asymptote
        self.u = u if np.any(u != 1.0) else None              # None: no upper asymptote
        self.other_params = params.subset(self.other) if self.other.size else None

    def __call__(self, theta):
        theta = np.asarray(theta, dtype=float)
        z = self.a * (theta[:, None] - self.b)                             # (r, n_closed)
        closed = self.a_squared * dichotomous_information(z, self.c, self.u)
        if self.other_params is None:
            return closed
        values = np.empty((theta.size, self.n_items))
        values[:, self.closed] = closed
        values[:, self.other] = information(theta, self.other_params)
        return values


def _posterior(batch, rows):
    """The normalised posteriors of `rows` on the grid: (r, Q)."""
    log_post = batch.log_post[rows]
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    return post


def random_criterion(batch, rows):
    return batch.rng.random((rows.size, batch.tables.n_items))


def fisher_information(batch, rows):
    """Fisher information of every item at each row's current estimate: (r, n_items)."""
    return batch.tables.information(batch.theta[rows])


def kullback_leibler(batch, rows):
    """KL(theta_hat || theta) averaged over the posterior (Chang & Ying, 1996):
    sum_k P_k(hat) log P_k(hat) - sum_k P_k(hat) E_post[log P_k(theta)], with
    P_k(hat) at the exact estimate and the expectation over the posterior on the grid."""
    tables = batch.tables
    post = _posterior(batch, rows)                                        # (r, Q)
    n_items, k = tables.n_items, tables.n_categories
    log_hat = category_log_probability(batch.theta[rows], tables.params)   # (r, J, K)
    p_hat = np.exp(log_hat)                                   # 0 beyond an item's categories
    log_hat = np.where(np.isfinite(log_hat), log_hat, 0.0)
    expected_log = (post @ tables.log_p_finite.reshape(n_items * k, -1).T).reshape(
        rows.size, n_items, k)
    return np.sum(p_hat * (log_hat - expected_log), axis=2)


def expected_posterior_variance(batch, rows):
    """sum_k P(k | data) Var(theta | data, k), negated (smaller is better)."""
    tables = batch.tables
    post = _posterior(batch, rows)
    n_items, k, nodes = tables.n_items, tables.n_categories, tables.nodes
    m0 = (post @ tables.p_flat).reshape(rows.size, n_items, k)
    m1 = ((post * nodes) @ tables.p_flat).reshape(rows.size, n_items, k)
    m2 = ((post * nodes**2) @ tables.p_flat).reshape(rows.size, n_items, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(m0 > 0, m2 - m1**2 / m0, 0.0)                # m0 * Var_k
    return -np.sum(variance, axis=2)


def a_stratified(batch, rows):
    """b closest to theta within the stratum of the test's stage (Chang & Ying, 1999)."""
    selection, tables = batch.design.selection, batch.tables
    strata, max_items = selection.strata, batch.design.stopping.max_items
    order = np.argsort(np.abs(tables.params.a), kind="stable")   # a < 0: reverse-keyed
    stratum_of = np.empty(tables.n_items, dtype=np.intp)
    stratum_of[order] = np.arange(tables.n_items) * strata // tables.n_items
    stage = np.minimum(batch.scored_length[rows] * strata // max_items, strata - 1)
    closeness = -np.abs(tables.b_center[None, :] - batch.theta[rows, None])
    in_stage = stratum_of[None, :] == stage[:, None]
    return np.where(in_stage, closeness, closeness - 1e6)   # other strata only as a last resort


CRITERIA = {
    "mfi": fisher_information,
    "kl": kullback_leibler,
    "mepv": expected_posterior_variance,
    "astrat": a_stratified,
    "random": random_criterion,
}


def criterion(batch, rows):
    """The batch's selection criterion for `rows`: (len(rows), n_items).

    With `progressive` (Revuelta & Ponsoda, 1998) the criterion, rescaled to
    [0, 1] per examinee, is blended with a uniform draw whose weight falls from
    1 at the first item to 0 at the last: early items spread over the bank,
    late ones are chosen for information.
    """
    values = batch.criterion(batch, rows)
    if not batch.design.selection.progressive:
        return values
    low = values.min(axis=1, keepdims=True)
    spread = np.maximum(values.max(axis=1, keepdims=True) - low, 1e-300)
    weight = (batch.scored_length[rows] / batch.design.stopping.max_items)[:, None]
    return (1 - weight) * batch.rng.random(values.shape) + weight * (values - low) / spread


def top_ranked(score, depth):
    """The `depth` best items of each row of `score` (r, n_items), best first, equal scores
    in order of position (a tie at the cut keeps the lowest positions): (r, depth) positions.

    NaN ranks as -inf. Costs a partition and a few passes over `score`, not a full sort.
    """
    score = np.where(np.isnan(score), -np.inf, score)
    depth = min(depth, score.shape[1])
    cut = -np.partition(-score, depth - 1, axis=1)[:, depth - 1:depth]     # (r, 1)
    above, tied = score > cut, score == cut
    room = depth - above.sum(axis=1, keepdims=True)
    keep = above | (tied & (np.cumsum(tied, axis=1) <= room))             # depth per row
    top = np.nonzero(keep)[1].reshape(score.shape[0], depth)              # by position
    order = np.argsort(-np.take_along_axis(score, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def top_of_row(row, depth):
    """`top_ranked` of one row (n_items,): the positions of its `depth` best finite
    values, best first, equal values in order of position. A partition and three
    passes over the row, no cumulative sum: what a session's trace of each step costs."""
    finite = np.isfinite(row)
    depth = min(depth, int(finite.sum()))
    if depth == 0:
        return np.empty(0, dtype=np.intp)
    values = np.where(finite, row, -np.inf)
    cut = -np.partition(-values, depth - 1)[depth - 1]
    above = np.flatnonzero(values > cut)
    tied = np.flatnonzero(values == cut)[: depth - above.size]
    best = np.concatenate([above, tied])
    return best[np.lexsort((best, -values[best]))]


def best_of(rng, score, k):
    """Per row of `score` (r, n_items; -inf where not eligible) the best item (the lowest
    position among equals), or with k > 1 one of the best k (`top_ranked`) drawn
    uniformly: (r,) item positions."""
    if k <= 1:
        return np.argmax(score, axis=1)
    top = top_ranked(score, k)                                            # (r, k) best k
    usable = np.isfinite(np.take_along_axis(score, top, axis=1))
    pick = rng.random(top.shape) * usable
    return top[np.arange(score.shape[0]), np.argmax(pick, axis=1)]
