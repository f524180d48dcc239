"""Computer-adaptive testing: item selection, exposure control, content rules, stopping.

One code path serves a single session and a simulation of thousands: a
`CATBatch` holds n examinees' tests, each as a log posterior on the EAP grid
that every answer updates in O(n_nodes), and `step` moves every unfinished
test on by one item. A single session is a batch of one; it is rebuilt from
its response log by replaying the (item, response) pairs, and with the same
seeded generator it makes the same choices.

The engine knows nothing of skill standards: content rules arrive as named
boolean item masks (`CATDesign.groups`), built by the caller.

Selection (`selection`): "mfi" maximum Fisher information at the current
estimate; "kl" Kullback-Leibler information weighted by the posterior
(KLP); "mepv" minimum expected posterior variance; "astrat" a-stratified
(strata of increasing discrimination, b closest to theta); "random". Each
picks uniformly among its top `randomesque` items; `progressive` blends the
criterion with a random draw that fades over the test.

Exposure (`exposure`): "randomesque" (pick among the top k); "sympson-hetter"
(an item selected is administered with its probability K_j, tuned by
`tune_sympson_hetter`); "item-eligibility" (van der Linden & Veldkamp: item j is
eligible for an examinee with a probability updated from the exposure so far).

Content (`content_rule`): "kingsbury-zara" (the light rule: each examinee's
next item comes from the group furthest below its target share, groups at
their maximum are closed, and when the items left only just cover the unmet
minimums only those groups stay open); "shadow" (a shadow test solved by
scipy.optimize.milp at every step: every constraint holds at the end).

Stopping: at `max_items` always; from `min_items` on when the SE is below
`se`, when theta moved less than `delta_theta`, or when the classification
against `cut` is decided (SPRT or confidence interval); `combine` "any" or "all".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.stats import norm

from .estimation import estimate_from_pairs
from .models import category_log_probability, information
from .quadrature import normal_grid

SELECTION_METHODS = ("mfi", "kl", "mepv", "astrat", "random")
EXPOSURE_METHODS = ("none", "randomesque", "sympson-hetter", "item-eligibility")
SCORING_METHODS = ("eap", "map", "ml", "wle")
TABLE_NODES = 1201                  # theta grid of the MFI and a-stratified tables: step 0.01


@dataclass(frozen=True)
class Classification:
    """Pass/fail decision against `cut` by "sprt" or "ci"."""

    cut: float
    method: str = "sprt"
    delta: float = 0.3
    alpha: float = 0.05
    beta: float = 0.05


@dataclass(frozen=True)
class ContentRule:
    """At least `min` and at most `max` items from the items of `group`."""

    group: str
    min: int = 0
    max: int | None = None


@dataclass(frozen=True)
class CATDesign:
    """A test design in engine terms (item positions and masks, no ids or standards)."""

    start_theta: float = 0.0
    scoring: str = "eap"
    prior_mean: float = 0.0
    prior_sd: float = 1.0
    n_nodes: int = 121
    theta_range: tuple = (-6.0, 6.0)
    selection: str = "mfi"
    randomesque: int = 1
    progressive: bool = False
    strata: int = 4
    exposure: str = "none"
    exposure_target: float = 0.25
    exposure_k: int = 5
    sympson_hetter: np.ndarray | None = None       # (n_items,) administration probabilities
    groups: dict = field(default_factory=dict)      # name -> bool mask (n_items,)
    content: tuple = ()                              # ContentRule, ...
    content_rule: str = "kingsbury-zara"
    enemies: tuple = ()                              # int arrays: never two from one set
    min_items: int = 5
    max_items: int = 30
    se: float | None = 0.3
    delta_theta: float | None = None
    classification: Classification | None = None
    combine: str = "any"
    pretest_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    pretest_count: int = 0
    operational: np.ndarray | None = None            # bool (n_items,): items that may be scored


class BankTables:
    """What selection reads for one bank, computed once.

    Attributes
    ----------
    nodes : (n_nodes,) the EAP grid; log_weights : its normalised log prior
    log_p : (n_items, K, n_nodes) log category probabilities at the nodes
    p_flat : (n_nodes, n_items * K) category probabilities, for posterior products
    enemy_matrix : (n_enemy_sets, n_items) 1 where an item belongs to an enemy set
    table_theta : (TABLE_NODES,); info_table : (TABLE_NODES, n_items) Fisher information
    """

    def __init__(self, params, design):
        self.params = params
        grid = normal_grid(design.n_nodes, design.theta_range, design.prior_mean, design.prior_sd)
        self.nodes, self.log_weights = grid.nodes, grid.log_weights
        log_p = category_log_probability(self.nodes, params)              # (Q, J, K)
        self.n_categories = log_p.shape[2]
        self.log_p = np.ascontiguousarray(np.transpose(log_p, (1, 2, 0)))  # (J, K, Q)
        self.log_p_finite = np.where(np.isfinite(self.log_p), self.log_p, 0.0)
        self.p_flat = np.exp(log_p).reshape(self.nodes.size, -1)            # (Q, J*K)
        self.table_theta = np.linspace(*design.theta_range, TABLE_NODES)
        self.info_table = information(self.table_theta, params)            # (T, J)
        self.b_center = np.array([np.nanmean(row) for row in params.b])
        self.n_items = params.n_items
        # (n_sets, n_items): row e marks the items of enemy set e
        self.enemy_matrix = np.zeros((len(design.enemies), params.n_items))
        for row, enemy_set in enumerate(design.enemies):
            self.enemy_matrix[row, enemy_set] = 1.0

    def table_index(self, theta):
        step = self.table_theta[1] - self.table_theta[0]
        index = np.rint((theta - self.table_theta[0]) / step).astype(np.intp)
        return np.clip(index, 0, self.table_theta.size - 1)


class CATBatch:
    """n examinees' tests in progress.

    Attributes (arrays over examinees unless said)
    ----------
    log_post : (n, n_nodes) log posterior of the scored answers
    administered : (n, n_items) bool; seen : (n, n_items) bool, also items excluded
        for this examinee (seen in an earlier session, enemies of given items)
    items, responses : (n, max_items + pretest) in order of administration, -1 unused
    scored : same shape, bool: False for pretest items
    length : (n,) items given; scored_length : (n,) scored items given
    theta, se : current estimate; previous_theta : the one before the last answer
    done : (n,) bool; decision : (n,) int, 1 pass, -1 fail, 0 none
    """

    def __init__(self, tables, design, n, rng, excluded=None):
        self.tables, self.design, self.rng = tables, design, rng
        capacity = design.max_items + design.pretest_count
        self.log_post = np.broadcast_to(tables.log_weights, (n, tables.nodes.size)).copy()
        self.administered = np.zeros((n, tables.n_items), dtype=bool)
        self.seen = np.zeros((n, tables.n_items), dtype=bool) if excluded is None \
            else np.array(excluded, dtype=bool)
        self.items = np.full((n, capacity), -1, dtype=np.intp)
        self.responses = np.full((n, capacity), -1, dtype=np.intp)
        self.scored = np.zeros((n, capacity), dtype=bool)
        self.length = np.zeros(n, dtype=np.intp)
        self.scored_length = np.zeros(n, dtype=np.intp)
        self.theta = np.full(n, float(design.start_theta))
        self.previous_theta = self.theta.copy()
        self.se = np.full(n, float(design.prior_sd))
        self.done = np.zeros(n, dtype=bool)
        self.decision = np.zeros(n, dtype=np.intp)
        self.eligibility = None                       # item-eligibility draws, (n, n_items)
        # (rows, eligible) found by the last stop decision, for the selection that follows
        # it: dropped by any change of the batch
        self.pool = None
        self.pretest_positions = _pretest_positions(design, n, rng)
        self.group_counts = {name: np.zeros(n, dtype=np.intp) for name in design.groups}

    @property
    def n(self):
        return self.theta.size


def _pretest_positions(design, n, rng):
    """(n, pretest_count) 0-based positions for pretest items, never the first."""
    count = min(design.pretest_count, design.pretest_items.size)
    if count == 0:
        return np.zeros((n, 0), dtype=np.intp)
    span = design.min_items + count                     # positions 1 .. span - 1
    keys = rng.random((n, max(span - 1, count)))
    return np.sort(np.argsort(keys, axis=1)[:, :count] + 1, axis=1)


# --- scoring ------------------------------------------------------------------------

def _posterior_moments(log_post, nodes):
    """Mean and SD of each row of log posteriors (r, Q) on `nodes`: two (r,) arrays."""
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    mean = post @ nodes
    return mean, np.sqrt(np.maximum(post @ nodes**2 - mean**2, 0.0))


def _estimate(batch, rows):
    """Update theta and se of `rows` from their log posterior (EAP, MAP, ML or WLE)."""
    design, tables = batch.design, batch.tables
    log_post = batch.log_post[rows]
    mean, sd = _posterior_moments(log_post, tables.nodes)
    theta, se = mean, sd
    if design.scoring != "eap":
        theta, se = _modal_estimates(batch, rows, log_post, mean, sd)
    batch.previous_theta[rows] = batch.theta[rows]
    batch.theta[rows], batch.se[rows] = theta, se


def _modal_estimates(batch, rows, log_post, eap, eap_sd):
    """MAP, ML or WLE for `rows` from their scored answers so far.

    The answers go to the estimator as (person, item, category) triples, so the
    work grows with the answers, not with the bank. ML and WLE fall back to EAP
    until an examinee's answers are not all in one extreme category (for
    dichotomous items: a right and a wrong answer); ML does not estimate those.
    """
    design, tables = batch.design, batch.tables
    used = (batch.items[rows] >= 0) & batch.scored[rows]                # (r, slots)
    person, slot = np.nonzero(used)
    item = batch.items[rows][person, slot]
    answer = batch.responses[rows][person, slot]
    theta, se = eap.copy(), eap_sd.copy()
    estimated = np.ones(rows.size, dtype=bool)
    if design.scoring == "ml":
        top = tables.params.n_categories[item] - 1
        not_lowest = np.bincount(person, weights=answer > 0, minlength=rows.size) > 0
        not_highest = np.bincount(person, weights=answer < top, minlength=rows.size) > 0
        estimated = not_lowest & not_highest
        if not estimated.any():
            return theta, se
        keep = estimated[person]
        renumber = np.cumsum(estimated) - 1
        person, item, answer = renumber[person[keep]], item[keep], answer[keep]
    which = np.flatnonzero(estimated)
    bracket, start = None, eap[which]
    if design.scoring in ("ml", "map"):
        # The maximum of the likelihood (or posterior) kept on the grid brackets the
        # estimate between the nodes either side of it, and the vertex of the parabola
        # through the three starts Newton's method there (a maximum at an end of the
        # grid is no bracket: the estimator's own search takes those rows).
        objective = log_post[which] if design.scoring == "map" else \
            log_post[which] - tables.log_weights
        peak = np.clip(np.argmax(objective, axis=1), 1, tables.nodes.size - 2)
        left, middle, right = (objective[np.arange(which.size), peak + shift]
                               for shift in (-1, 0, 1))
        bend = left - 2.0 * middle + right
        with np.errstate(divide="ignore", invalid="ignore"):
            offset = np.where(bend < 0, 0.5 * (left - right) / bend, 0.0)
        step = tables.nodes[1] - tables.nodes[0]
        start = tables.nodes[peak] + np.clip(offset, -1.0, 1.0) * step
        bracket = (tables.nodes[peak - 1], tables.nodes[peak + 1])
    estimate = estimate_from_pairs(which.size, person, item, answer, tables.params,
                                   design.scoring, start, prior_mean=design.prior_mean,
                                   prior_sd=design.prior_sd, bracket=bracket)
    theta[which], se[which] = estimate.theta, estimate.se
    if design.scoring in ("ml", "wle"):
        fallback = estimate.bounded | ~np.isfinite(estimate.theta)
        theta[which] = np.where(fallback, eap[which], estimate.theta)
        se[which] = np.where(fallback, eap_sd[which], estimate.se)
    return theta, se


# --- selection ----------------------------------------------------------------------

def _criterion(batch, rows):
    """Larger-is-better selection criterion of every item for `rows`: (len(rows), n_items).

    With `progressive` (Revuelta & Ponsoda, 1998) the criterion, rescaled to
    [0, 1] per examinee, is blended with a uniform draw whose weight falls from
    1 at the first item to 0 at the last: early items spread over the bank,
    late ones are chosen for information.
    """
    criterion = _plain_criterion(batch, rows)
    if not batch.design.progressive:
        return criterion
    low = criterion.min(axis=1, keepdims=True)
    spread = np.maximum(criterion.max(axis=1, keepdims=True) - low, 1e-300)
    weight = (batch.scored_length[rows] / batch.design.max_items)[:, None]
    return (1 - weight) * batch.rng.random(criterion.shape) + weight * (criterion - low) / spread


def _plain_criterion(batch, rows):
    design, tables = batch.design, batch.tables
    method = design.selection
    if method == "random":
        return batch.rng.random((rows.size, tables.n_items))
    if method == "mfi":
        return tables.info_table[tables.table_index(batch.theta[rows])]
    if method == "astrat":
        return _astrat_criterion(batch, rows)
    log_post = batch.log_post[rows]
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)                               # (r, Q)
    n_items, k = tables.n_items, tables.n_categories
    if method == "kl":
        # KL(theta_hat || theta) averaged over the posterior:
        # sum_k P_k(hat) log P_k(hat) - sum_k P_k(hat) E_post[log P_k(theta)]
        step = tables.nodes[1] - tables.nodes[0]
        index = np.clip(np.rint((batch.theta[rows] - tables.nodes[0]) / step).astype(np.intp),
                        0, tables.nodes.size - 1)                         # nearest node
        log_hat = tables.log_p_finite[:, :, index].transpose(2, 0, 1)    # (r, J, K)
        p_hat = np.exp(tables.log_p[:, :, index]).transpose(2, 0, 1)
        expected_log = (post @ tables.log_p_finite.reshape(n_items * k, -1).T).reshape(
            rows.size, n_items, k)
        return np.sum(p_hat * (log_hat - expected_log), axis=2)
    # mepv: sum_k P(k | data) Var(theta | data, k), negated (smaller is better)
    nodes = tables.nodes
    m0 = (post @ tables.p_flat).reshape(rows.size, n_items, k)
    m1 = ((post * nodes) @ tables.p_flat).reshape(rows.size, n_items, k)
    m2 = ((post * nodes**2) @ tables.p_flat).reshape(rows.size, n_items, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(m0 > 0, m2 - m1**2 / m0, 0.0)                # m0 * Var_k
    return -np.sum(variance, axis=2)


def _astrat_criterion(batch, rows):
    design, tables = batch.design, batch.tables
    order = np.argsort(tables.params.a, kind="stable")
    stratum_of = np.empty(tables.n_items, dtype=np.intp)
    stratum_of[order] = np.arange(tables.n_items) * design.strata // tables.n_items
    stage = np.minimum(batch.scored_length[rows] * design.strata // design.max_items,
                       design.strata - 1)
    closeness = -np.abs(tables.b_center[None, :] - batch.theta[rows, None])
    in_stage = stratum_of[None, :] == stage[:, None]
    return np.where(in_stage, closeness, closeness - 1e6)   # other strata only as a last resort


def _eligible(batch, rows):
    """Items each of `rows` may receive next: (len(rows), n_items) bool."""
    design = batch.design
    eligible = ~(batch.administered[rows] | batch.seen[rows])
    if design.operational is not None:               # items awaiting calibration are never
        eligible &= design.operational               # selected as scored items
    eligible[:, design.pretest_items] = False
    if design.enemies:                  # a set with an item given is closed to the examinee
        members = batch.tables.enemy_matrix
        taken = (batch.administered[rows] @ members.T) > 0                   # (r, n_sets)
        eligible &= ~((taken @ members) > 0)
    if design.exposure == "item-eligibility" and batch.eligibility is not None:
        preferred = eligible & batch.eligibility[rows]
        # An examinee whose eligible items ran out falls back to the full pool.
        eligible = np.where(preferred.any(axis=1, keepdims=True), preferred, eligible)
    if design.content and design.content_rule == "kingsbury-zara":
        eligible = _content_mask(batch, rows, eligible)
    return eligible


def _content_mask(batch, rows, eligible):
    """Kingsbury-Zara with minimums and maximums (see the module docstring)."""
    design = batch.design
    left = design.max_items - batch.scored_length[rows]
    deficits, closed, shares = [], [], []
    for rule in design.content:
        count = batch.group_counts[rule.group][rows]
        deficits.append(np.maximum(rule.min - count, 0))
        closed.append(count >= rule.max if rule.max is not None else np.zeros(rows.size, bool))
        target = (rule.min + (rule.max if rule.max is not None else rule.min)) / 2.0
        shares.append(target / design.max_items - count / np.maximum(
            batch.scored_length[rows], 1))
    deficits, closed, shares = np.array(deficits), np.array(closed), np.array(shares)
    masks = np.array([design.groups[rule.group] for rule in design.content])   # (G, J)
    float_masks = masks.astype(float)
    eligible &= ~((closed.T.astype(float) @ float_masks) > 0)          # groups at their max
    urgent = deficits.sum(axis=0) >= left                                 # must fill minimums
    wanted = ((deficits > 0).T.astype(float) @ float_masks) > 0         # (r, J)
    eligible = _restrict(eligible, wanted, urgent)
    # Kingsbury-Zara: prefer the open group furthest below its target share.
    open_groups = ~closed & ((float_masks @ eligible.T.astype(float)) > 0)   # (G, r)
    score = np.where(open_groups, shares, -np.inf)
    has_group = np.isfinite(score.max(axis=0)) & ~urgent
    best = masks[np.argmax(score, axis=0)]                                # (r, J)
    return _restrict(eligible, best, has_group)


def _restrict(eligible, wanted, rows_to_restrict):
    """Narrow the selected rows of `eligible` to `wanted` where that leaves an item."""
    restricted = eligible & wanted
    apply = rows_to_restrict & restricted.any(axis=1)
    return np.where(apply[:, None], restricted, eligible)


def _shadow_tests(batch, rows, criterion, eligible):
    """Restrict each row to the free items of its shadow test (van der Linden, 2000).

    The shadow test is the full-length test that maximises the summed
    criterion subject to every content rule and enemy set and contains every
    item given so far; it is a small integer program per examinee, solved by
    scipy.optimize.milp (HiGHS). Returns the narrowed `eligible` mask.
    """
    design = batch.design
    n_items = batch.tables.n_items
    rules = [(design.groups[rule.group].astype(float), rule.min,
              rule.max if rule.max is not None else np.inf) for rule in design.content]
    enemy_rows = list(batch.tables.enemy_matrix)
    matrix = np.array([mask for mask, _, _ in rules] + enemy_rows + [np.ones(n_items)])
    lower = np.array([low for _, low, _ in rules] + [0.0] * len(enemy_rows)
                     + [design.max_items])
    upper = np.array([high for _, _, high in rules] + [1.0] * len(enemy_rows)
                     + [design.max_items])
    constraint = LinearConstraint(matrix, lower, upper)
    narrowed = eligible.copy()
    for r, person in enumerate(rows):            # one integer program per examinee
        given = batch.administered[person] & ~_pretest_mask(design, n_items)
        low = given.astype(float)
        high = (given | eligible[r]).astype(float)
        result = milp(-np.where(np.isfinite(criterion[r]), criterion[r], 0.0),
                      constraints=constraint, integrality=np.ones(n_items),
                      bounds=Bounds(low, high))
        if result.status != 0:                    # infeasible: keep the plain eligible set
            continue
        free = (result.x > 0.5) & ~given
        if free.any():
            narrowed[r] = free & eligible[r]
    return narrowed


def _choose(batch, rows, criterion, eligible):
    """Among eligible items, the best (or one of the best `k`, at random)."""
    design = batch.design
    k = design.exposure_k if design.exposure == "randomesque" else design.randomesque
    score = np.where(eligible, criterion, -np.inf)
    if design.exposure == "sympson-hetter" and design.sympson_hetter is not None:
        return _sympson_hetter_choice(batch, score, design.randomesque)
    if k <= 1:
        return np.argmax(score, axis=1)
    k = min(k, score.shape[1])
    top = np.argpartition(-score, k - 1, axis=1)[:, :k]                  # (r, k) best k
    top_score = np.take_along_axis(score, top, axis=1)
    usable = np.isfinite(top_score)
    pick = batch.rng.random(top.shape) * usable
    return top[np.arange(rows.size), np.argmax(pick, axis=1)]


def _sympson_hetter_choice(batch, score, k=1, depth=24):
    """Walk down each row's ranking; administer item j with probability K_j.

    With k > 1 the ranking is shuffled within windows of k (an item moves up
    by fewer than k places), so the first candidate is one of the best k: the
    randomesque and Sympson-Hetter methods combined.
    """
    probability = batch.design.sympson_hetter
    depth = min(depth, score.shape[1])
    top = np.argpartition(-score, depth - 1, axis=1)[:, :depth]
    rank = np.argsort(np.argsort(-np.take_along_axis(score, top, axis=1), axis=1), axis=1)
    order = np.argsort(rank + k * batch.rng.random(rank.shape), axis=1)
    ranked = np.take_along_axis(top, order, axis=1)                      # (r, depth)
    finite = np.isfinite(np.take_along_axis(score, ranked, axis=1))
    accept = (batch.rng.random(ranked.shape) < probability[ranked]) & finite
    last_finite = np.maximum(finite.sum(axis=1) - 1, 0)                 # ranked best first
    rows_dry = np.flatnonzero(~accept.any(axis=1))                      # never run dry
    accept[rows_dry, last_finite[rows_dry]] = True
    first = np.argmax(accept, axis=1)
    rows = np.arange(ranked.shape[0])
    chosen = ranked[rows, first]
    # Every item the walk reached was "selected"; those it passed over leave this
    # examinee's pool for the rest of the test (Sympson & Hetter, 1985).
    considered = (np.arange(depth)[None, :] <= first[:, None]) & finite
    batch.last_considered = np.where(considered, ranked, -1)
    passed_over = considered & (np.arange(depth)[None, :] < first[:, None])
    batch.pending_exclusions = np.where(passed_over, ranked, -1)
    return chosen


# --- stepping -----------------------------------------------------------------------

def select_next(batch, rows=None):
    """The next item for each of `rows` (default: every unfinished test): (len(rows),).

    Returns item positions; pretest items where the design puts them; -1 for a
    test that has no eligible item left, which is then marked done.
    """
    rows = np.flatnonzero(~batch.done) if rows is None else np.asarray(rows, dtype=np.intp)
    chosen = np.full(rows.size, -1, dtype=np.intp)
    batch.last_considered = np.full((0, 0), -1, dtype=np.intp)
    pretest = _pretest_now(batch, rows)
    if pretest.any():
        chosen[pretest] = _pick_pretest(batch, rows[pretest])
    regular = ~pretest
    pool, batch.pool = batch.pool, None
    if regular.any():
        sub = rows[regular]
        if pool is not None and np.array_equal(pool[0], rows):
            eligible = pool[1][regular]                  # the stop decision's, still valid
        else:
            eligible = _eligible(batch, sub)
        criterion = _criterion(batch, sub)
        if batch.design.content_rule == "shadow" and (batch.design.content or
                                                      batch.design.enemies):
            eligible = _shadow_tests(batch, sub, criterion, eligible)
        has_item = eligible.any(axis=1)
        batch.done[sub[~has_item]] = True        # nothing left this examinee may take
        picks = np.full(sub.size, -1, dtype=np.intp)
        if has_item.any():
            picks[has_item] = _choose(batch, sub[has_item], criterion[has_item],
                                      eligible[has_item])
        chosen[regular] = picks
        excluded = getattr(batch, "pending_exclusions", None)
        if excluded is not None:                  # Sympson-Hetter: rejected items leave the pool
            person, slot = np.nonzero(excluded >= 0)
            batch.seen[sub[person], excluded[person, slot]] = True
            batch.pending_exclusions = None
    return chosen


def _pretest_now(batch, rows):
    if batch.pretest_positions.shape[1] == 0:
        return np.zeros(rows.size, dtype=bool)
    return np.any(batch.pretest_positions[rows] == batch.length[rows, None], axis=1)


def _pick_pretest(batch, rows):
    pool = batch.design.pretest_items
    unseen = ~(batch.administered[rows][:, pool] | batch.seen[rows][:, pool])
    keys = batch.rng.random(unseen.shape) * unseen
    return np.where(unseen.any(axis=1), pool[np.argmax(keys, axis=1)], -1)


def record(batch, rows, items, responses, check_pool=True):
    """Record answers, update the posterior, estimate and stop decisions of `rows`.

    `check_pool` False skips asking whether any eligible item is left (the costly
    part of the stop decision): for replaying answers that are known to have been
    followed by another item."""
    rows = np.asarray(rows, dtype=np.intp)
    items = np.asarray(items, dtype=np.intp)
    responses = np.asarray(responses, dtype=np.intp)
    design, tables = batch.design, batch.tables
    batch.pool = None
    slot = batch.length[rows]
    scored = ~_pretest_mask(design, tables.n_items)[items]
    batch.items[rows, slot], batch.responses[rows, slot] = items, responses
    batch.scored[rows, slot] = scored
    batch.administered[rows, items] = True
    batch.length[rows] += 1
    update = rows[scored]
    batch.log_post[update] += tables.log_p[items[scored], responses[scored]]  # (r, Q)
    batch.scored_length[update] += 1
    for name, mask in design.groups.items():
        batch.group_counts[name][update] += mask[items[scored]]
    if update.size:
        _estimate(batch, update)
    _decide(batch, rows, check_pool)


def _decide(batch, rows, check_pool=True):
    design = batch.design
    length = batch.scored_length[rows]
    theta, se = batch.theta[rows], batch.se[rows]
    reasons = []
    if design.se is not None:
        reasons.append(se < design.se)
    if design.delta_theta is not None:
        reasons.append((np.abs(theta - batch.previous_theta[rows]) < design.delta_theta)
                       & (length >= 2))
    if design.classification is not None:
        decided, decision = _classify(batch, rows)
        batch.decision[rows] = np.where(decided, decision, batch.decision[rows])
        reasons.append(decided)
    if reasons:
        stack = np.array(reasons)
        met = stack.all(axis=0) if design.combine == "all" else stack.any(axis=0)
    else:
        met = np.zeros(rows.size, dtype=bool)
    pretest_left = np.sum(batch.pretest_positions[rows] >= batch.length[rows, None], axis=1) \
        if batch.pretest_positions.shape[1] else 0
    finished = (length >= design.max_items) | ((length >= design.min_items) & met)
    finished &= pretest_left == 0
    if check_pool:
        eligible = _eligible(batch, rows)
        finished |= ~eligible.any(axis=1)
        batch.pool = (rows, eligible)
    batch.done[rows] = finished
    if design.classification is not None:   # a test that ends undecided takes the side of theta
        cut = design.classification.cut
        undecided = finished & (batch.decision[rows] == 0)
        batch.decision[rows[undecided]] = np.where(theta[undecided] >= cut, 1, -1)


def _pretest_mask(design, n_items):
    """(n_items,) bool: the design's pretest items."""
    mask = np.zeros(n_items, dtype=bool)
    mask[design.pretest_items] = True
    return mask


def _at(nodes, values, x):
    """Linear interpolation of every row of `values` (r, Q) at the point x: (r,)."""
    i = int(np.clip(np.searchsorted(nodes, x) - 1, 0, nodes.size - 2))
    w = (x - nodes[i]) / (nodes[i + 1] - nodes[i])
    return (1 - w) * values[:, i] + w * values[:, i + 1]


def _classify(batch, rows):
    """(decided (r,) bool, decision (r,) in {1, -1})."""
    return _classify_states(batch.design.classification, batch.tables, batch.log_post[rows],
                            batch.theta[rows], batch.se[rows])


def _classify_states(rule, tables, log_post, theta, se):
    """The classification of r states: log posteriors (r, Q) and their theta, se (r,)."""
    if rule.method == "ci":
        z = norm.ppf(1 - rule.alpha / 2)
        above, below = theta - z * se > rule.cut, theta + z * se < rule.cut
        return above | below, np.where(above, 1, -1)
    # SPRT on the likelihood of the scored answers at cut +- delta.
    log_prior = tables.log_weights
    log_lik = log_post - log_prior                                      # (r, Q)
    ratio = _at(tables.nodes, log_lik, rule.cut + rule.delta) - _at(tables.nodes, log_lik,
                                                                   rule.cut - rule.delta)
    accept = np.log((1 - rule.beta) / rule.alpha)
    reject = np.log(rule.beta / (1 - rule.alpha))
    return (ratio >= accept) | (ratio <= reject), np.where(ratio >= accept, 1, -1)


# --- per-group estimates and single sessions -------------------------------------------

def group_estimates(batch, names=None):
    """EAP theta and SE per content group from that group's scored answers alone.

    Returns {name: (theta (n,), se (n,))}; a test with no item of a group gets
    the prior's mean and SD for it. Used for per-standard results of a
    multi-standard test.
    """
    tables, design = batch.tables, batch.design
    names = list(design.groups) if names is None else names
    out = {}
    for name in names:
        mask = design.groups[name]
        log_post = np.broadcast_to(tables.log_weights, batch.log_post.shape).copy()
        for slot in range(batch.items.shape[1]):
            item = batch.items[:, slot]
            use = (item >= 0) & batch.scored[:, slot]
            use[use] = mask[item[use]]
            rows = np.flatnonzero(use)
            log_post[rows] += tables.log_p[item[rows], batch.responses[rows, slot]]
        out[name] = _posterior_moments(log_post, tables.nodes)
    return out


def session_rng(seed, step):
    """The generator for step `step` of a session seeded `seed`.

    Each step draws from its own stream, so a session rebuilt from its log
    makes the same random choices without replaying earlier draws.
    """
    return np.random.default_rng([int(seed), int(step)])


def rebuild_session(tables, design, seed, items, responses, excluded=None):
    """A one-examinee CATBatch holding a session's answers, replayed from its log.

    items, responses : sequences of item positions and answers, in order.
    """
    # Stream 0 places the pretest items; stream k > 0 makes the choice of item k.
    batch = CATBatch(tables, design, 1, session_rng(seed, 0),
                     None if excluded is None else np.asarray(excluded)[None, :])
    if len(items) != len(responses):
        raise ValueError("items and responses differ in length")
    last = len(items) - 1
    if design.scoring == "eap" and last > 0:
        _replay(batch, items[:last], responses[:last])
    else:
        for item, response in zip(items[:last], responses[:last], strict=True):
            record(batch, np.array([0]), np.array([item]), np.array([response]),
                   check_pool=False)
    if last >= 0:
        record(batch, np.array([0]), np.array([items[last]]), np.array([responses[last]]))
    return batch


def _replay(batch, items, responses):
    """Record a one-examinee batch's answers in one pass, leaving the state that `record`
    leaves after them one at a time (with check_pool False; EAP scoring): the posterior
    by a running sum in the same order, the estimates of every prefix at once, and the
    classification decided last along the way."""
    design, tables = batch.design, batch.tables
    items, responses = np.asarray(items, dtype=np.intp), np.asarray(responses, dtype=np.intp)
    m = items.size
    scored = ~_pretest_mask(design, tables.n_items)[items]
    batch.items[0, :m], batch.responses[0, :m], batch.scored[0, :m] = items, responses, scored
    batch.administered[0, items] = True
    batch.length[0] = m
    counted = items[scored]
    batch.scored_length[0] = counted.size
    for name, mask in design.groups.items():
        batch.group_counts[name][0] += int(mask[counted].sum())
    if counted.size == 0:
        return
    steps = np.cumsum(np.vstack([batch.log_post[:1], tables.log_p[counted, responses[scored]]]),
                      axis=0)                                  # (1 + scored, Q), row 0 prior
    mean, sd = _posterior_moments(steps[1:], tables.nodes)
    batch.log_post[0] = steps[-1]
    batch.previous_theta[0] = mean[-2] if counted.size > 1 else batch.theta[0]
    batch.theta[0], batch.se[0] = mean[-1], sd[-1]
    if design.classification is not None:
        decided, decision = _classify_states(design.classification, tables, steps[1:], mean,
                                             sd)
        if decided.any():
            batch.decision[0] = decision[np.flatnonzero(decided)[-1]]


def next_session_item(batch, seed):
    """The next item of a one-examinee batch, or None when the test is over."""
    if batch.done[0]:
        return None
    batch.rng = session_rng(seed, int(batch.length[0]) + 1)
    item = int(select_next(batch, np.array([0]))[0])
    return None if item < 0 else item
