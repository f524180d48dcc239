"""S-X2's observed and expected tables by summed score (see `calibration.item_fit`).

For every item ``i``, the rows are summed scores ``s`` over all items and
the columns the item's categories ``k``:

- ``O[s, k]``: persons with summed score ``s`` who answered ``k``;
- ``E[s, k] = N_s P(X_i = k | S = s)``, with ``P(X_i = k | S = s)`` from
  `conditional_category_probability`: the item's own category probability
  times the Lord-Wingersky summed-score likelihood of the other items,
  averaged over a quadrature grid, over that of all items.

`collapse_table` then merges sparse rows. Everything here is computed for
all items at once or item by item in O(n_items) numpy operations: one
forward and one backward Lord-Wingersky recursion give every leave-one-item-
out likelihood, one count gives every observed table, and the merges from
either end of a table are read off cumulative sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irtcat.engine.estimation import add_item_to_score_likelihood
from irtcat.engine.models import category_log_probability


@dataclass(frozen=True, eq=False)
class SX2Table:
    """Observed and expected counts of one item by summed-score group.

    Attributes
    ----------
    item_index : int
    score_range : ndarray of int, shape (n_rows, 2)
        Lowest and highest summed score of each row (equal before collapsing).
    observed, expected : ndarray of shape (n_rows, n_categories)
        ``O`` and ``E`` of the module docstring.
    possible : ndarray of bool, shape (n_rows, n_categories)
        Cells a response can fall in: category ``k`` is possible at score
        ``s`` when the other items can sum to ``s - k``. Impossible cells have
        ``O = E = 0`` and do not count as cells.
    """

    item_index: int
    score_range: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    possible: np.ndarray

    @property
    def n_cells(self):
        return int(self.possible.sum())

    @property
    def n_groups(self):
        return int(self.observed.shape[0])

    def statistic(self):
        """``sum (O - E)^2 / E`` over the possible cells."""
        o, e = self.observed[self.possible], self.expected[self.possible]
        return float(np.sum((o - e) ** 2 / e))


# --- the expected table -------------------------------------------------------------

def conditional_category_probability(params, nodes, log_weights):
    """``P(X_i = k | S = s)`` for every item and every summed score over all items.

    The leave-one-item-out likelihoods ``L_{-i}`` come from a forward and a
    backward Lord-Wingersky recursion: ``L_{-i} = F_i * B_i`` (a convolution
    in the score at each node), with ``F_i`` the summed-score likelihood of
    the items before ``i`` and ``B_i`` of those after it. Only products and
    sums of probabilities occur (nothing is subtracted or divided out), so
    the tables keep full relative precision in their tails. The
    convolution and the weighted sum over nodes are done together: with
    ``X_k[q, u] = w_q P_ik(theta_q) F_i[q, u]``, the matrix ``X_k^T B_i``
    holds ``sum_q`` of every product ``F_i[q, u] B_i[q, v]``, and
    ``P(S = s, X_i = k)`` is the sum of its anti-diagonal ``u + v = s - k``.
    The backward tables ``B_i`` are all held at once: about
    ``n_nodes * max_score * n_items / 2`` floats (2.4 MB for 100 dichotomous
    items on 61 nodes).

    Parameters
    ----------
    params : ItemParameters
        The ``n_items`` items whose summed score ``S`` is conditioned on.
    nodes, log_weights : ndarray of shape (n_nodes,)
        Quadrature grid; ``exp(log_weights)`` sums to 1.

    Returns
    -------
    score_probability : ndarray of shape (max_score + 1,)
        Marginal ``P(S = s)``.
    conditional : list of ndarray, one per item, shape (max_score + 1, n_categories_i)
        ``P(X_i = k | S = s)``; each row with ``P(S = s) > 0`` sums to 1.
    possible : list of ndarray of bool, same shapes
        ``0 <= s - k <= max score of the other items``.
    """
    weights = np.exp(log_weights)                                       # (n_nodes,)
    nodes = np.asarray(nodes, dtype=float)
    prob = np.exp(category_log_probability(nodes, params))              # (n_nodes, n_items, K)
    n_categories = params.n_categories
    item_prob = [prob[:, i, : n_categories[i]] for i in range(params.n_items)]
    after = [np.ones((nodes.size, 1))]                                  # B_i, last item first
    for i in range(params.n_items - 1, 0, -1):
        after.append(add_item_to_score_likelihood(after[-1], item_prob[i]))
    after.reverse()                                                     # after[i] = B_i
    before = np.ones((nodes.size, 1))                                   # F_0
    joints = []
    for i in range(params.n_items):
        joints.append(_joint_with_score(before, after[i], item_prob[i], weights))
        before = add_item_to_score_likelihood(before, item_prob[i])      # F_{i+1}
    score_probability = weights @ before                                # before = L: (n_scores,)
    n_scores = score_probability.size
    score = np.arange(n_scores)[:, None]
    conditional, possible = [], []
    for i, joint in enumerate(joints):
        k_item = int(n_categories[i])
        n_rest = n_scores - k_item + 1
        possible.append((score >= np.arange(k_item)) & (score - np.arange(k_item) < n_rest))
        with np.errstate(divide="ignore", invalid="ignore"):
            conditional.append(np.where(score_probability[:, None] > 0,
                                        joint / score_probability[:, None], 0.0))
    return score_probability, conditional, possible


def _joint_with_score(before, after, item_prob, weights):
    """``P(S = s, X_i = k)`` from ``F_i``, ``B_i`` and the item's category probabilities.

    Parameters
    ----------
    before, after : ndarray of shape (n_nodes, n_before), (n_nodes, n_after)
        ``F_i`` and ``B_i`` of `conditional_category_probability`.
    item_prob : ndarray of shape (n_nodes, n_categories)
    weights : ndarray of shape (n_nodes,)

    Returns
    -------
    ndarray of shape (n_before + n_after + n_categories - 2, n_categories)
    """
    n_before, n_after = before.shape[1], after.shape[1]
    k_item = item_prob.shape[1]
    n_rest = n_before + n_after - 1
    scaled = (weights[:, None] * item_prob)[:, :, None] * before[:, None, :]   # (Q, K, n_before)
    products = scaled.reshape(len(weights), -1).T @ after               # (K * n_before, n_after)
    # Entry (k, u, v) adds to score s = k + u + v of column k.
    k, u, v = np.ogrid[:k_item, :n_before, :n_after]
    target = (k + u + v) * k_item + k                                   # row-major (s, k)
    n_scores = n_rest + k_item - 1
    joint = np.bincount(target.reshape(-1), weights=products.reshape(-1),
                        minlength=n_scores * k_item)
    return joint.reshape(n_scores, k_item)


def group_tables(categories, params, grid, item_index):
    """Uncollapsed S-X2 tables of every item for persons who answered all of `params`.

    Parameters
    ----------
    categories : ndarray of int, shape (n_persons, n_items)
        Complete responses to the items of `params`.
    params : ItemParameters
    grid : engine.quadrature.Grid
    item_index : ndarray of int, shape (n_items,)
        Positions of these items in the caller's bank (recorded in the tables).

    Returns
    -------
    list of SX2Table, one per item, rows ``s = 1 .. max_score - 1``.
    """
    total = categories.sum(axis=1)                                      # (n_persons,)
    _, conditional, possible = conditional_category_probability(params, grid.nodes,
                                                               grid.log_weights)
    max_score = conditional[0].shape[0] - 1
    n_at_score = np.bincount(total, minlength=max_score + 1).astype(float)   # (max_score + 1,)
    inner = slice(1, max_score)                                          # drop s = 0 and max
    scores = np.arange(1, max_score)
    # O of every item in one count: item j's table is block j of (max_score + 1) x K_j cells.
    k_items = params.n_categories                                       # (n_items,)
    block_start = np.concatenate([[0], np.cumsum((max_score + 1) * k_items)])
    cell = block_start[:-1] + total[:, None] * k_items + categories     # (n_persons, n_items)
    counts = np.bincount(cell.reshape(-1), minlength=block_start[-1]).astype(float)
    tables = []
    for j in range(params.n_items):
        k_item = conditional[j].shape[1]
        observed = counts[block_start[j]: block_start[j + 1]].reshape(max_score + 1, k_item)
        expected = n_at_score[:, None] * conditional[j]
        tables.append(SX2Table(int(item_index[j]), np.column_stack([scores, scores]),
                               observed[inner], expected[inner], possible[j][inner]))
    return tables


# --- collapsing ---------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Rows:
    """The rows of an S-X2 table while they are merged (`collapse_table`)."""

    score_range: np.ndarray          # (n, 2)
    observed: np.ndarray             # (n, K)
    expected: np.ndarray             # (n, K)
    possible: np.ndarray             # (n, K) bool

    @property
    def n(self):
        return self.observed.shape[0]

    def sparse(self, mincell):
        """Rows with a possible cell whose expected count is below `mincell`: (n,) bool."""
        return np.any(self.possible & (self.expected < mincell), axis=1)

    def reverse(self):
        return _Rows(self.score_range[::-1], self.observed[::-1], self.expected[::-1],
                     self.possible[::-1])

    def merge_leading(self, mincell):
        """Merge the first row into the second while it is sparse and more than one is left.

        The first row after ``m`` merges is the running sum of rows ``0..m``,
        so every step is read off cumulative sums at once.
        """
        if self.n <= 1:
            return self
        observed, expected = np.cumsum(self.observed, axis=0), np.cumsum(self.expected, axis=0)
        possible = np.logical_or.accumulate(self.possible, axis=0)
        dense = ~_Rows(self.score_range, observed, expected, possible).sparse(mincell)
        last = int(np.argmax(dense)) if dense[:-1].any() else self.n - 1   # rows 0..last merge
        if last == 0:
            return self
        low, high = self.score_range[: last + 1, 0].min(), self.score_range[: last + 1, 1].max()
        return _Rows(np.vstack([[low, high], self.score_range[last + 1:]]),
                     np.vstack([observed[last], self.observed[last + 1:]]),
                     np.vstack([expected[last], self.expected[last + 1:]]),
                     np.vstack([possible[last], self.possible[last + 1:]]))

    def merge(self, source, target):
        """Add row `source` to row `target` and drop it."""
        observed, expected = self.observed.copy(), self.expected.copy()
        possible, score_range = self.possible.copy(), self.score_range.copy()
        observed[target] += observed[source]
        expected[target] += expected[source]
        possible[target] |= possible[source]
        score_range[target] = (min(score_range[target, 0], score_range[source, 0]),
                               max(score_range[target, 1], score_range[source, 1]))
        return _Rows(*(np.delete(x, source, axis=0)
                       for x in (score_range, observed, expected, possible)))


def collapse_table(table, mincell=1.0):
    """Merge adjacent summed-score rows until every possible expected cell is >= `mincell`.

    The rule, applied in this order:

    1. rows with no persons are dropped (they add nothing to O or E);
    2. from the low end: while the first row has a possible cell with
       ``E < mincell``, it is merged into the second;
    3. from the high end: likewise the last row into the one before it;
    4. while some row still has such a cell (a rare middle category of a
       polytomous item), the lowest such row is merged into its neighbour
       with the smaller expected row total (the lower one on a tie).

    Merging adds O and E and takes the union of the possible cells. It
    stops early when one row is left, which may then still hold a sparse cell.

    Parameters
    ----------
    table : SX2Table
    mincell : float

    Returns
    -------
    SX2Table with ``n_rows <= table.n_rows``.
    """
    keep = table.observed.sum(axis=1) > 0
    rows = _Rows(table.score_range[keep], table.observed[keep], table.expected[keep],
                 table.possible[keep])
    rows = rows.merge_leading(mincell)                               # step 2
    rows = rows.reverse().merge_leading(mincell).reverse()           # step 3
    while rows.n > 1:                                                # step 4
        sparse = np.flatnonzero(rows.sparse(mincell))
        if sparse.size == 0:
            break
        row, last = int(sparse[0]), rows.n - 1
        if row == 0:
            target = 1
        elif row == last:
            target = last - 1
        else:
            below, above = rows.expected[row - 1].sum(), rows.expected[row + 1].sum()
            target = row - 1 if below <= above else row + 1
        rows = rows.merge(row, target)
    score_range, observed, expected, possible = (rows.score_range, rows.observed,
                                                 rows.expected, rows.possible)
    return SX2Table(table.item_index, score_range, observed, expected, possible)
