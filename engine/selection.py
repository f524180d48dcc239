"""Item selection: a larger-is-better criterion of every item for each examinee.

Every criterion has one signature, ``criterion(batch, rows) -> (len(rows), n_items)``,
and `CRITERIA` maps a selection method's name to it:

- "mfi": maximum Fisher information at the current estimate (read from a table
  on a 0.01 theta grid);
- "kl": Kullback-Leibler information weighted by the posterior (KLP);
- "mepv": minimum expected posterior variance (negated);
- "astrat": a-stratified (strata of increasing discrimination, b closest to theta);
- "random": a uniform draw.

`criterion` applies the progressive method on top; `best_of` picks among the
top k of the eligible items (randomesque).
"""

from __future__ import annotations

import numpy as np


def _posterior(batch, rows):
    """The normalised posteriors of `rows` on the grid: (r, Q)."""
    log_post = batch.log_post[rows]
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    return post


def random_criterion(batch, rows):
    return batch.rng.random((rows.size, batch.tables.n_items))


def fisher_information(batch, rows):
    tables = batch.tables
    return tables.info_table[tables.table_index(batch.theta[rows])]


def kullback_leibler(batch, rows):
    """KL(theta_hat || theta) averaged over the posterior:
    sum_k P_k(hat) log P_k(hat) - sum_k P_k(hat) E_post[log P_k(theta)]."""
    tables = batch.tables
    post = _posterior(batch, rows)                                        # (r, Q)
    n_items, k = tables.n_items, tables.n_categories
    step = tables.nodes[1] - tables.nodes[0]
    index = np.clip(np.rint((batch.theta[rows] - tables.nodes[0]) / step).astype(np.intp),
                    0, tables.nodes.size - 1)                             # nearest node
    log_hat = tables.log_p_finite[:, :, index].transpose(2, 0, 1)        # (r, J, K)
    p_hat = np.exp(tables.log_p[:, :, index]).transpose(2, 0, 1)
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


def best_of(rng, score, k):
    """Per row of `score` (r, n_items; -inf where not eligible) the best item, or with
    k > 1 one of the best k drawn uniformly: (r,) item positions."""
    if k <= 1:
        return np.argmax(score, axis=1)
    k = min(k, score.shape[1])
    top = np.argpartition(-score, k - 1, axis=1)[:, :k]                  # (r, k) best k
    top_score = np.take_along_axis(score, top, axis=1)
    usable = np.isfinite(top_score)
    pick = rng.random(top.shape) * usable
    return top[np.arange(score.shape[0]), np.argmax(pick, axis=1)]
