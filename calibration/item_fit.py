"""Item fit: Orlando and Thissen's S-X2 and the Rasch infit / outfit mean squares.

S-X2 (Orlando & Thissen, 2000; Kang & Chen, 2007 for polytomous items)
compares, for each item, the observed and the model-implied counts of each
response category among the persons with the same summed score:

- the observed table ``O[s, k]`` counts the persons whose summed score over
  all items (the item included) is ``s`` and who answered category ``k``;
  the rows for ``s = 0`` and ``s = max`` are dropped (the item's answer is
  fixed there);
- the expected table is ``E[s, k] = N_s P(X_i = k | S = s)`` with::

      P(X_i = k | S = s) = sum_q L_{-i}(s - k | theta_q) P_ik(theta_q) w_q
                           / sum_q L(s | theta_q) w_q

  ``L`` the Lord-Wingersky summed-score likelihood over all items, ``L_{-i}``
  over all items but ``i``, and ``w_q`` normalised N(mean, sd) weights on
  `n_nodes` equally spaced nodes over [-6, 6] (mirt's ``EAPsum``). By
  construction each row of ``E`` sums to ``N_s``;
- sparse rows are merged (see `collapse_table`), then
  ``S-X2 = sum (O - E)^2 / E`` over the cells a response can fall in, with
  ``df = cells - score groups - estimated item parameters`` (one fewer when
  the population variance was estimated, as for ``rasch`` and ``pcm``).

Differences from mirt's ``itemfit``, all deliberate:

- collapsing (`collapse_table`) merges whole score rows only: first from the
  low end upwards, then from the high end downwards, then any remaining
  sparse row into its neighbour with the smaller *expected* count. mirt
  (``collapseCells``) first merges sparse categories within a row of a
  polytomous item, drops very rare categories, folds rows holding a single
  person into the next row and merges a sparse middle row into the neighbour
  with the smaller *observed* count. Tables whose sparse rows sit at the two
  ends (the usual dichotomous case) collapse the same way; polytomous items
  and small samples can get a different df and statistic;
- ``df <= 0`` reports ``df = 0`` and a NaN statistic and p-value (mirt
  reports the same), with a `reason` saying why;
- mirt refuses missing responses; here persons are grouped by the set of
  items they answered (booklets), see `s_x2`;
- infit / outfit: mirt scores persons by EAP unless told otherwise and keeps
  every person; `item_fit` uses WLE and `rasch_infit_outfit` leaves out
  extreme patterns (all answers in the lowest or all in the highest category).

Infit and outfit (Wright & Masters, 1982) are the information-weighted and
the unweighted mean squares of the standardised residuals at each person's
theta (`rasch_infit_outfit`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import chdtrc

from irtcat.engine.estimation import add_item_to_score_likelihood, estimate_theta
from irtcat.engine.models import category_log_probability, category_probability
from irtcat.engine.quadrature import normal_grid
from irtcat.engine.validation import check_responses

MAX_ITEM_SETS = 50
"""More distinct sets of answered items than this: S-X2 is not computed."""

MIN_PERSONS_PER_SCORE = 5
"""A set of answered items needs at least this many persons per possible summed score."""

FIT_RANGE = (0.7, 1.3)
"""Infit and outfit mean squares outside this range are flagged."""

NEEDS_BOOKLETS = "S-X2 needs complete data or a few booklets"


@dataclass(frozen=True)
class ItemFit:
    """Fit of one item.

    Attributes
    ----------
    item_index : int
        Position of the item in the response matrix and the parameter arrays.
    s_x2 : float
        Orlando-Thissen S-X2 (NaN when it cannot be computed, see `reason`).
    df : int
        Its degrees of freedom (0 when not positive).
    p_value : float
        ``chdtrc(df, s_x2)`` (scipy.stats' ``chi2.sf``); NaN with the statistic.
    infit, outfit : float or None
        Rasch mean squares; None when not computed (not a Rasch-family fit).
    flagged : bool
        True when S-X2's p-value is below alpha or a mean square is outside
        `FIT_RANGE`.
    reason : str or None
        Why the item is flagged, or why a statistic is missing; ``"; "``
        joins several reasons.
    """

    item_index: int
    s_x2: float
    df: int
    p_value: float
    infit: float | None
    outfit: float | None
    flagged: bool
    reason: str | None


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


def _group_tables(categories, params, grid, item_index):
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


# --- S-X2 ---------------------------------------------------------------------------

def s_x2_tables(responses, params, *, population_mean=0.0, population_sd=1.0, n_nodes=61,
                collapse=True, mincell=1.0):
    """The observed and expected S-X2 tables of every item, for complete data.

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items)
        Categories 0..K-1, no NaN.
    params : ItemParameters
    population_mean, population_sd : float
        The calibration's population N(mean, sd).
    n_nodes : int
        Quadrature nodes on [-6, 6] (mirt: 61).
    collapse : bool
        Apply `collapse_table` (True) or return the raw rows ``s = 1 .. max - 1``.
    mincell : float

    Returns
    -------
    list of SX2Table, one per item.
    """
    responses = check_responses(responses, params)
    if np.isnan(responses).any():
        raise ValueError("s_x2_tables needs complete responses; s_x2 handles booklets")
    grid = normal_grid(n_nodes, (-6.0, 6.0), population_mean, population_sd)
    tables = _group_tables(responses.astype(np.intp), params, grid, np.arange(params.n_items))
    return [collapse_table(t, mincell) for t in tables] if collapse else tables


def s_x2(responses, params, n_parameters, *, population_mean=0.0, population_sd=1.0,
         variance_estimated=False, n_nodes=61, alpha=0.01, mincell=1.0):
    """Orlando-Thissen S-X2 of every item.

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items)
        Categories 0..K-1 (dichotomous, polytomous or mixed), NaN where not
        administered.
    params : ItemParameters
    n_parameters : array_like of int, shape (n_items,)
        Number of estimated parameters of each item (0 for parameters known
        in advance).
    population_mean, population_sd : float
        Population N(mean, sd) of the calibration: the quadrature weights.
    variance_estimated : bool
        The calibration estimated the population variance (``rasch``,
        ``pcm``): one more degree of freedom is lost per item, as in mirt.
    n_nodes : int
        Equally spaced nodes on [-6, 6] (mirt: 61).
    alpha : float
        Items with ``p < alpha`` are flagged.
    mincell : float
        Minimum expected cell count, see `collapse_table`.

    Returns
    -------
    list of ItemFit, one per item, with ``infit = outfit = None``.

    Notes
    -----
    Missing responses. Persons are grouped by the set of items they answered
    (``np.unique`` of the observed mask; persons who answered nothing are
    ignored). Each group's tables are built from its own items, with summed
    scores and Lord-Wingersky likelihoods over those items only, and
    collapsed on their own. An item's statistic is the sum of its groups'
    ``sum (O - E)^2 / E`` and its df is
    ``sum over groups (cells - score groups) - n_parameters (- 1)``: the
    groups are independent samples, and the estimated parameters are
    subtracted once. With complete data this is the usual S-X2.

    This is only done when it can be trusted: with more than `MAX_ITEM_SETS`
    distinct item sets (e.g. CAT or random omissions), or any set answered by
    fewer than ``MIN_PERSONS_PER_SCORE * (its max summed score + 1)``
    persons, every item gets NaN with reason `NEEDS_BOOKLETS` (remove the
    incomplete rows, or use a fit statistic built on theta estimates).
    """
    responses = check_responses(responses, params)
    n_parameters = np.broadcast_to(np.asarray(n_parameters, dtype=int), (params.n_items,))
    observed = ~np.isnan(responses)
    answered = observed.any(axis=1)
    item_sets, which = _item_sets(observed[answered])
    categories = np.where(observed, responses, 0).astype(np.intp)[answered]
    group_size = np.bincount(which, minlength=item_sets.shape[0])
    max_scores = item_sets @ (params.n_categories - 1)                  # (n_sets,)
    if (item_sets.shape[0] > MAX_ITEM_SETS
            or np.any(group_size < MIN_PERSONS_PER_SCORE * (max_scores + 1))):
        return [ItemFit(i, np.nan, 0, np.nan, None, None, False, NEEDS_BOOKLETS)
                for i in range(params.n_items)]

    grid = normal_grid(n_nodes, (-6.0, 6.0), population_mean, population_sd)
    statistic = np.zeros(params.n_items)
    free_cells = np.zeros(params.n_items, dtype=int)      # sum over groups of cells - rows
    seen = np.zeros(params.n_items, dtype=bool)
    for set_index, item_set in enumerate(item_sets):      # a few booklets, not persons
        items = np.flatnonzero(item_set)
        rows = which == set_index
        if items.size < params.n_items or not rows.all():
            group = _group_tables(categories[np.ix_(rows, items)], params.subset(items), grid,
                                  items)
        else:                                             # complete data: one set, all of it
            group = _group_tables(categories, params, grid, items)
        for table in group:
            table = collapse_table(table, mincell)
            if table.n_groups == 0:
                continue
            statistic[table.item_index] += table.statistic()
            free_cells[table.item_index] += table.n_cells - table.n_groups
            seen[table.item_index] = True
    df = free_cells - n_parameters - int(bool(variance_estimated))
    return [_s_x2_record(i, statistic[i], df[i], seen[i], alpha) for i in range(params.n_items)]


def _item_sets(observed):
    """The distinct rows of `observed` in lexicographic order, and each row's set.

    The same as ``np.unique(observed, axis=0, return_inverse=True)``, found on
    the rows packed into bytes (eight items a byte, the first item in the
    highest bit, so bytewise order is the rows' order) instead of by
    comparing rows of booleans.

    Parameters
    ----------
    observed : ndarray of bool, shape (n_persons, n_items)

    Returns
    -------
    item_sets : ndarray of bool, shape (n_sets, n_items)
    which : ndarray of int, shape (n_persons,)
    """
    n_items = observed.shape[1]
    if observed.shape[0] and observed.all():                           # complete data
        return np.ones((1, n_items), dtype=bool), np.zeros(observed.shape[0], dtype=np.intp)
    packed = np.ascontiguousarray(np.packbits(observed, axis=1))       # (n_persons, n_bytes)
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
    _, first, which = np.unique(keys, return_index=True, return_inverse=True)
    return observed[first], which.reshape(-1)


def _s_x2_record(item_index, statistic, df, seen, alpha):
    if not seen:
        return ItemFit(item_index, np.nan, 0, np.nan, None, None, False,
                       "S-X2 not computable: no summed-score group between 0 and the maximum")
    if df <= 0:
        return ItemFit(item_index, np.nan, 0, np.nan, None, None, False,
                       "S-X2 not computable: df <= 0 after collapsing")
    p_value = float(chdtrc(df, statistic))   # chi2.sf without importing scipy.stats
    flagged = p_value < alpha
    return ItemFit(item_index, float(statistic), int(df), p_value, None, None, flagged,
                   f"S-X2 p < {alpha:g}" if flagged else None)


# --- infit / outfit -----------------------------------------------------------------

def rasch_infit_outfit(responses, params, theta):
    """Infit and outfit mean squares of every item at given person thetas.

    With ``E`` the expected score and ``W`` its variance at the person's
    theta (from `engine.models.category_probability`, so polytomous items
    too), over the persons who answered the item::

        outfit = mean of (x - E)^2 / W
        infit  = sum (x - E)^2 / sum W

    Both are near 1 when the model fits; below 1 the responses are more
    predictable than the model says (overfit, a too-steep item), above 1
    less (underfit, noise).

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items)
        Categories, NaN where missing.
    params : ItemParameters
    theta : array_like of shape (n_persons,)
        The thetas the residuals are taken at; `item_fit` passes WLE
        estimates. Persons with a non-finite theta are left out (pass NaN to
        leave a person out).

    Returns
    -------
    infit, outfit : ndarray of shape (n_items,)
        NaN for an item no included person answered.

    Notes
    -----
    Persons whose answers are all in the lowest or all in the highest
    category of their items (extreme patterns) are left out: their ML
    estimate is infinite and any finite theta for them is a convention, so
    their residuals say nothing about the items (Winsteps does the same).
    """
    responses = check_responses(responses, params)
    theta = np.asarray(theta, dtype=float).reshape(-1)
    observed = ~np.isnan(responses)
    x = np.where(observed, responses, 0.0)
    top = params.n_categories - 1                                       # (n_items,)
    all_min = np.all(~observed | (x == 0), axis=1)
    all_max = np.all(~observed | (x == top), axis=1)
    person_used = observed.any(axis=1) & ~all_min & ~all_max & np.isfinite(theta)
    used = observed & person_used[:, None]                              # (n_persons, n_items)

    prob = category_probability(np.where(person_used, theta, 0.0), params)  # (n, n_items, K)
    k = np.arange(prob.shape[-1], dtype=float)
    expected = prob @ k                                                 # (n, n_items)
    variance = np.sum(prob * (k - expected[..., None]) ** 2, axis=-1)   # (n, n_items)
    squared = np.where(used, (x - expected) ** 2, 0.0)
    z_squared = np.divide(squared, variance, out=np.zeros_like(squared), where=used)
    n_used = used.sum(axis=0)
    total_variance = np.sum(np.where(used, variance, 0.0), axis=0)
    has_data = n_used > 0
    outfit = np.divide(z_squared.sum(axis=0), n_used, out=np.full(params.n_items, np.nan),
                       where=has_data)
    infit = np.divide(squared.sum(axis=0), total_variance, out=np.full(params.n_items, np.nan),
                      where=has_data)
    return infit, outfit


# --- everything ---------------------------------------------------------------------

def item_fit(responses, params, n_parameters, *, population_mean=0.0, population_sd=1.0,
             variance_estimated=False, rasch=False, alpha=0.01, n_nodes=61):
    """S-X2 of every item and, for a Rasch-family calibration, infit and outfit.

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items)
    params : ItemParameters
    n_parameters : array_like of int, shape (n_items,)
    population_mean, population_sd : float
    variance_estimated : bool
        See `s_x2`.
    rasch : bool
        Also compute infit and outfit (`rasch_infit_outfit`) at WLE thetas
        (``engine.estimate_theta(..., "wle")``; WLEs at a bound of the
        scoring range are left out with the extreme patterns) and flag mean
        squares outside `FIT_RANGE`.
    alpha : float
    n_nodes : int

    Returns
    -------
    list of ItemFit, one per item.
    """
    fits = s_x2(responses, params, n_parameters, population_mean=population_mean,  # checks
                population_sd=population_sd, variance_estimated=variance_estimated,
                n_nodes=n_nodes, alpha=alpha)
    if not rasch:
        return fits
    estimate = estimate_theta(responses, params, "wle", prior_mean=population_mean,
                              prior_sd=population_sd)
    theta = np.where(estimate.bounded, np.nan, estimate.theta)
    infit, outfit = rasch_infit_outfit(responses, params, theta)
    lower, upper = FIT_RANGE
    out = []
    for fit, item_infit, item_outfit in zip(fits, infit, outfit, strict=True):
        reasons = [fit.reason] if fit.reason else []
        mean_square_flag = False
        for name, value in (("infit", item_infit), ("outfit", item_outfit)):
            if value < lower or value > upper:
                mean_square_flag = True
                reasons.append(f"{name} {value:.2f} outside [{lower:g}, {upper:g}]")
        out.append(ItemFit(fit.item_index, fit.s_x2, fit.df, fit.p_value, float(item_infit),
                           float(item_outfit), fit.flagged or mean_square_flag,
                           "; ".join(reasons) or None))
    return out
