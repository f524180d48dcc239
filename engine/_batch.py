"""The vectorised state of n adaptive tests in progress (private to the engine).

One code path serves a single session and a simulation of thousands: a
`Batch` holds n examinees' tests, each as a log posterior on the EAP grid
that every answer updates in O(n_nodes), and `select_next` / `record` move
every unfinished test on by one item. A single session is a batch of one
(`engine.session`); it is rebuilt from its response log by replaying the
(item, response) pairs, and with the same seeded generator it makes the same
choices.

The roles of the design (scoring, selection, exposure control, content rules)
are looked up once, when the batch is made, in their modules' registries.
Nothing outside the engine reads a batch: sessions and simulations hand out
frozen results.
"""

from __future__ import annotations

import numpy as np

from . import ability, content, exposure, selection, stopping
from .models import category_log_probability
from .quadrature import normal_grid


class BankTables:
    """What selection reads for one bank and design, computed once.

    Attributes
    ----------
    nodes : (n_nodes,) the EAP grid; log_weights : its normalised log prior
    log_p : (n_items, K, n_nodes) log category probabilities at the nodes
    p_flat : (n_nodes, n_items * K) category probabilities, for posterior products
    enemy_matrix : (n_enemy_sets, n_items) 1 where an item belongs to an enemy set
    information : `selection.BankInformation`, every item's Fisher information at any
        theta, exact: (r,) -> (r, n_items)
    """

    def __init__(self, params, design):
        scoring = design.scoring
        self.params = params
        grid = normal_grid(scoring.n_nodes, scoring.theta_range, scoring.prior_mean,
                           scoring.prior_sd)
        self.nodes, self.log_weights = grid.nodes, grid.log_weights
        log_p = category_log_probability(self.nodes, params)              # (Q, J, K)
        self.n_categories = log_p.shape[2]
        self.log_p = np.ascontiguousarray(np.transpose(log_p, (1, 2, 0)))  # (J, K, Q)
        self.log_p_finite = np.where(np.isfinite(self.log_p), self.log_p, 0.0)
        self.p_flat = np.exp(log_p).reshape(self.nodes.size, -1)            # (Q, J*K)
        self.information = selection.BankInformation(params)
        self.b_center = np.array([np.nanmean(row) for row in params.b])
        self.n_items = params.n_items
        self.enemy_matrix = content.enemy_matrix(design.content.enemies, params.n_items)


class Batch:
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
    group_counts : {content group key: (n,) scored items of that group given}
    """

    def __init__(self, tables, design, n, rng, excluded=None):
        self.tables, self.design, self.rng = tables, design, rng
        pretest = design.pretest
        self.estimator = ability.ESTIMATORS[design.scoring.method]
        self.criterion = selection.CRITERIA[design.selection.method]
        self.exposure = exposure.CONTROLS[design.exposure.method](design)
        self.content = content.METHODS[design.content.method](design)
        capacity = design.stopping.max_items + pretest.count
        self.log_post = np.broadcast_to(tables.log_weights, (n, tables.nodes.size)).copy()
        self.administered = np.zeros((n, tables.n_items), dtype=bool)
        self.seen = np.zeros((n, tables.n_items), dtype=bool) if excluded is None \
            else np.array(excluded, dtype=bool)
        self.items = np.full((n, capacity), -1, dtype=np.intp)
        self.responses = np.full((n, capacity), -1, dtype=np.intp)
        self.scored = np.zeros((n, capacity), dtype=bool)
        self.length = np.zeros(n, dtype=np.intp)
        self.scored_length = np.zeros(n, dtype=np.intp)
        self.theta = np.full(n, float(design.scoring.start_theta))
        self.previous_theta = self.theta.copy()
        self.se = np.full(n, float(design.scoring.prior_sd))
        self.done = np.zeros(n, dtype=bool)
        self.decision = np.zeros(n, dtype=np.intp)
        self.eligibility = None                       # item-eligibility draws, (n, n_items)
        self.last_considered = np.full((0, 0), -1, dtype=np.intp)  # Sympson-Hetter's walk
        self.last_dropped = None      # (r, n_items) bool: the items that walk took out
        self.last_score = None        # the last selection's criterion, -inf: not eligible
        # (rows, eligible) found by the last stop decision, for the selection that follows
        # it: dropped by any change of the batch
        self.pool = None
        self.pretest_mask = np.zeros(tables.n_items, dtype=bool)
        self.pretest_mask[pretest.items] = True
        self.pretest_positions = _pretest_positions(design, n, rng)
        self.group_counts = {key: np.zeros(n, dtype=np.intp) for key in design.content.groups}

    @property
    def n(self):
        return self.theta.size


def _pretest_positions(design, n, rng):
    """(n, count) 0-based positions for pretest items, never the first."""
    count = min(design.pretest.count, design.pretest.items.size)
    if count == 0:
        return np.zeros((n, 0), dtype=np.intp)
    span = design.stopping.min_items + count            # positions 1 .. span - 1
    keys = rng.random((n, max(span - 1, count)))
    return np.sort(np.argsort(keys, axis=1)[:, :count] + 1, axis=1)


def eligible_items(batch, rows):
    """Items each of `rows` may receive next as a scored item: (len(rows), n_items) bool."""
    design = batch.design
    eligible = ~(batch.administered[rows] | batch.seen[rows])
    if design.pretest.operational is not None:        # items awaiting calibration are never
        eligible &= design.pretest.operational        # selected as scored items
    eligible[:, design.pretest.items] = False
    eligible = content.close_enemy_sets(batch, rows, eligible)
    # Content first: an exposure restriction that leaves no item falls back to what
    # content allows, so it never breaks a content minimum.
    eligible = batch.content.restrict(batch, rows, eligible)
    return batch.exposure.restrict(batch, rows, eligible)


def select_next(batch, rows=None):
    """The next item for each of `rows` (default: every unfinished test): (len(rows),).

    Returns item positions; pretest items where the design puts them; -1 for a
    test that has no eligible item left, which is then marked done.
    """
    rows = np.flatnonzero(~batch.done) if rows is None else np.asarray(rows, dtype=np.intp)
    chosen = np.full(rows.size, -1, dtype=np.intp)
    batch.last_considered = np.full((0, 0), -1, dtype=np.intp)
    batch.last_dropped = None
    batch.last_score = None
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
            eligible = eligible_items(batch, sub)
        criterion = selection.criterion(batch, sub)
        eligible = batch.content.narrow(batch, sub, criterion, eligible)
        has_item = eligible.any(axis=1)
        batch.done[sub[~has_item]] = True        # nothing left this examinee may take
        picks = np.full(sub.size, -1, dtype=np.intp)
        if has_item.any():
            score = np.where(eligible[has_item], criterion[has_item], -np.inf)
            batch.last_score = score
            picks[has_item] = batch.exposure.choose(batch, sub[has_item], score)
        chosen[regular] = picks
    return chosen


def _pretest_now(batch, rows):
    if batch.pretest_positions.shape[1] == 0:
        return np.zeros(rows.size, dtype=bool)
    return np.any(batch.pretest_positions[rows] == batch.length[rows, None], axis=1)


def _pick_pretest(batch, rows):
    pool = batch.design.pretest.items
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
    tables = batch.tables
    batch.pool = None
    slot = batch.length[rows]
    scored = ~batch.pretest_mask[items]
    batch.items[rows, slot], batch.responses[rows, slot] = items, responses
    batch.scored[rows, slot] = scored
    batch.administered[rows, items] = True
    batch.length[rows] += 1
    update = rows[scored]
    batch.log_post[update] += tables.log_p[items[scored], responses[scored]]  # (r, Q)
    batch.scored_length[update] += 1
    for key, mask in batch.design.content.groups.items():
        batch.group_counts[key][update] += mask[items[scored]]
    if update.size:
        ability.update_estimates(batch, update)
    _decide(batch, rows, check_pool)


def _decide(batch, rows, check_pool=True):
    """Mark the tests of `rows` that end now, with their classification."""
    rule = batch.design.stopping
    length = batch.scored_length[rows]
    met = stopping.rules_met(batch, rows)
    pretest_left = np.sum(batch.pretest_positions[rows] >= batch.length[rows, None], axis=1) \
        if batch.pretest_positions.shape[1] else 0
    finished = (length >= rule.max_items) | ((length >= rule.min_items) & met)
    finished &= pretest_left == 0
    if check_pool:
        eligible = eligible_items(batch, rows)
        finished |= ~eligible.any(axis=1)
        batch.pool = (rows, eligible)
    batch.done[rows] = finished
    if rule.classification is not None:
        ended = rows[finished]
        batch.decision[ended] = stopping.final_decision(
            rule.classification, batch.decision[ended], batch.theta[ended], length[finished])


class _StepStream:
    """The random stream of one session step: numpy's generator seeded (seed, step), made
    on the step's first draw (most steps draw nothing: MFI without randomesque)."""

    def __init__(self, seed, step):
        self.key = [int(seed), int(step)]
        self.generator = None

    def random(self, size=None):
        if self.generator is None:
            self.generator = np.random.default_rng(self.key)
        return self.generator.random(size)


def session_rng(seed, step):
    """The generator for step `step` of a session seeded `seed` (its `random` draws).

    Each step draws from its own stream, so a session rebuilt from its log
    makes the same random choices without replaying earlier draws.
    """
    return _StepStream(seed, step)


def rebuild_batch(tables, design, seed, items, responses, excluded=None):
    """A one-examinee Batch holding a session's answers, replayed from its log.

    items, responses : sequences of item positions and answers, in order.
    excluded : (n_items,) bool, items never selected for this examinee, or None.
    """
    # Stream 0 places the pretest items; stream k > 0 makes the choice of item k.
    batch = Batch(tables, design, 1, session_rng(seed, 0),
                  None if excluded is None else np.asarray(excluded)[None, :])
    if len(items) != len(responses):
        raise ValueError("items and responses differ in length")
    last = len(items) - 1
    if design.scoring.method == "eap" and last > 0:
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
    scored = ~batch.pretest_mask[items]
    batch.items[0, :m], batch.responses[0, :m], batch.scored[0, :m] = items, responses, scored
    batch.administered[0, items] = True
    batch.length[0] = m
    counted = items[scored]
    batch.scored_length[0] = counted.size
    for key, mask in design.content.groups.items():
        batch.group_counts[key][0] += int(mask[counted].sum())
    if counted.size == 0:
        return
    steps = np.cumsum(np.vstack([batch.log_post[:1], tables.log_p[counted, responses[scored]]]),
                      axis=0)                                  # (1 + scored, Q), row 0 prior
    mean, sd = ability.posterior_moments(steps[1:], tables.nodes)
    batch.log_post[0] = steps[-1]
    batch.previous_theta[0] = mean[-2] if counted.size > 1 else batch.theta[0]
    batch.theta[0], batch.se[0] = mean[-1], sd[-1]
    rule = design.stopping.classification
    if rule is not None:
        decided, decision = stopping.classify(rule, tables, steps[1:], mean, sd)
        if decided.any():
            batch.decision[0] = decision[np.flatnonzero(decided)[-1]]


def next_batch_item(batch, seed):
    """The next item of a one-examinee batch, or None when the test is over."""
    if batch.done[0]:
        return None
    batch.rng = session_rng(seed, int(batch.length[0]) + 1)
    item = int(select_next(batch, np.array([0]))[0])
    return None if item < 0 else item
