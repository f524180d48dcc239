"""Content rules: enemy sets, and minimum/maximum counts of items from named groups.

Every content method has one signature: ``restrict(batch, rows, eligible)``
narrows the (r, n_items) eligible mask before the criterion is computed, and
``narrow(batch, rows, criterion, eligible)`` after it. `METHODS` maps a
content method's name to its class:

- "kingsbury-zara" (the light rule): each examinee's next item comes from the
  group furthest below its target share, groups at their maximum are closed,
  and when the items left only just cover the unmet minimums only those groups
  stay open;
- "shadow": a shadow test solved by scipy.optimize.milp at every step: every
  constraint holds at the end.

Enemy sets hold for either method: once an item of a set is given, the rest of
the set is closed to the examinee (`close_enemy_sets`).
"""

from __future__ import annotations

import numpy as np


def enemy_matrix(enemies, n_items):
    """(n_sets, n_items): row e is 1 at the items of enemy set e."""
    matrix = np.zeros((len(enemies), n_items))
    for row, enemy_set in enumerate(enemies):
        matrix[row, enemy_set] = 1.0
    return matrix


def close_enemy_sets(batch, rows, eligible, given=None):
    """`eligible` without the sets of which an item was given to the row's examinee
    (`given`: (r, n_items) bool, default the items administered)."""
    if not batch.design.content.enemies:
        return eligible
    members = batch.tables.enemy_matrix
    given = batch.administered[rows] if given is None else given
    taken = (given @ members.T) > 0                                       # (r, n_sets)
    return eligible & ~((taken @ members) > 0)


def most_items(batch, available):
    """How many of the `available` items ((r, n_items) bool) one test can take: (r,).

    An enemy set gives one item at most; the count is exact for disjoint sets and an
    underestimate for overlapping ones."""
    count = available.sum(axis=1)
    if batch.design.content.enemies:
        per_set = available.astype(float) @ batch.tables.enemy_matrix.T   # (r, n_sets)
        count = count - np.maximum(per_set - 1, 0).sum(axis=1).astype(count.dtype)
    return count


def _restrict(eligible, wanted, rows_to_restrict):
    """Narrow the selected rows of `eligible` to `wanted` where that leaves an item."""
    restricted = eligible & wanted
    apply = rows_to_restrict & restricted.any(axis=1)
    return np.where(apply[:, None], restricted, eligible)


class KingsburyZara:
    """Kingsbury-Zara with minimums and maximums (see the module docstring)."""

    def __init__(self, design):
        self.rules = design.content.rules
        self.max_items = design.stopping.max_items
        if self.rules:
            self.masks = np.array([design.content.groups[rule.group] for rule in self.rules])

    def restrict(self, batch, rows, eligible):
        if not self.rules:
            return eligible
        scored_length = batch.scored_length[rows]
        left = self.max_items - scored_length
        deficits, closed, shares = [], [], []
        for rule in self.rules:
            count = batch.group_counts[rule.group][rows]
            deficits.append(np.maximum(rule.min - count, 0))
            closed.append(count >= rule.max if rule.max is not None
                          else np.zeros(rows.size, bool))
            target = (rule.min + (rule.max if rule.max is not None else rule.min)) / 2.0
            shares.append(target / self.max_items - count / np.maximum(scored_length, 1))
        deficits, closed, shares = np.array(deficits), np.array(closed), np.array(shares)
        masks = self.masks                                                  # (G, J)
        float_masks = masks.astype(float)
        eligible &= ~((closed.T.astype(float) @ float_masks) > 0)      # groups at their max
        urgent = deficits.sum(axis=0) >= left                             # must fill minimums
        wanted = ((deficits > 0).T.astype(float) @ float_masks) > 0     # (r, J)
        eligible = _restrict(eligible, wanted, urgent)
        # Kingsbury-Zara: prefer the open group furthest below its target share.
        open_groups = ~closed & ((float_masks @ eligible.T.astype(float)) > 0)   # (G, r)
        score = np.where(open_groups, shares, -np.inf)
        has_group = np.isfinite(score.max(axis=0)) & ~urgent
        best = masks[np.argmax(score, axis=0)]                            # (r, J)
        return _restrict(eligible, best, has_group)

    def narrow(self, batch, rows, criterion, eligible):
        return eligible


class ShadowTest:
    """Restrict each row to the free items of its shadow test (van der Linden, 2000).

    The shadow test is the full-length test that maximises the summed
    criterion subject to every content rule and enemy set and contains every
    item given so far; it is a small integer program per examinee, solved by
    scipy.optimize.milp (HiGHS).
    """

    def __init__(self, design):
        content = design.content
        self.active = bool(content.rules or content.enemies)
        self.max_items = design.stopping.max_items
        self.rules = [(content.groups[rule.group].astype(float), rule.min,
                       rule.max if rule.max is not None else np.inf) for rule in content.rules]

    def restrict(self, batch, rows, eligible):
        return eligible

    def narrow(self, batch, rows, criterion, eligible):
        """The narrowed `eligible` (r, n_items) given the `criterion` (r, n_items)."""
        if not self.active:
            return eligible
        from scipy.optimize import Bounds, LinearConstraint, milp  # only shadow tests need it

        n_items = batch.tables.n_items
        enemy_rows = list(batch.tables.enemy_matrix)
        matrix = np.array([mask for mask, _, _ in self.rules] + enemy_rows + [np.ones(n_items)])
        lower = np.array([low for _, low, _ in self.rules] + [0.0] * len(enemy_rows)
                         + [self.max_items])
        upper = np.array([high for _, _, high in self.rules] + [1.0] * len(enemy_rows)
                         + [self.max_items])
        constraint = LinearConstraint(matrix, lower, upper)
        narrowed = eligible.copy()
        for r, person in enumerate(rows):            # one integer program per examinee
            given = batch.administered[person] & ~batch.pretest_mask
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


METHODS = {"kingsbury-zara": KingsburyZara, "shadow": ShadowTest}
