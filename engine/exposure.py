"""Exposure control: which eligible items an examinee may be given, and the choice among them.

Every control has one signature: ``restrict(batch, rows, eligible) -> eligible``
narrows the (r, n_items) eligible mask, ``choose(batch, rows, score) -> (r,)``
picks one item per row from the criterion `score` (-inf where not eligible).
`CONTROLS` maps an exposure method's name to its class:

- "none": the best item (or one of the best `selection.randomesque`);
- "randomesque": one of the best `exposure.k` at random;
- "sympson-hetter": an item selected is administered with its probability K_j
  (tuned by `engine.simulate.tune_sympson_hetter`); the items passed over leave
  the examinee's pool, unless the test could then not be completed (its length or
  a content minimum): a rejection never ends a test early;
- "item-eligibility" (van der Linden & Veldkamp, 2007): item j is eligible for an
  examinee with a probability updated between batches from the exposure so far.
"""

from __future__ import annotations

import numpy as np

from . import content
from .selection import best_of, top_ranked
from .validation import scorable_items


class NoControl:
    """The best item, or one of the best `selection.randomesque` at random."""

    def __init__(self, design):
        self.k = design.selection.randomesque

    def restrict(self, batch, rows, eligible):
        return eligible

    def choose(self, batch, rows, score):
        return best_of(batch.rng, score, self.k)


class Randomesque(NoControl):
    """One of the best `exposure.k` eligible items, uniformly (Kingsbury & Zara, 1989)."""

    def __init__(self, design):
        self.k = design.exposure.k


class SympsonHetter(NoControl):
    """Walk down each row's ranking; administer item j with probability K_j.

    With `selection.randomesque` k > 1 the ranking is shuffled within windows of k
    (an item moves up by fewer than k places), so the first candidate is one of
    the best k: the randomesque and Sympson-Hetter methods combined. Without
    parameters K (untuned) it chooses as "none" does.
    """

    depth = 24

    def __init__(self, design):
        super().__init__(design)
        self.probability = design.exposure.sympson_hetter
        self.scorable = None               # (n_items,) bool, set on the first choice

    def choose(self, batch, rows, score):
        if self.probability is None:
            return super().choose(batch, rows, score)
        best = top_ranked(score, self.depth)               # (r, depth) best first, ties by position
        depth = best.shape[1]
        order = np.argsort(np.arange(depth) + self.k * batch.rng.random(best.shape), axis=1)
        ranked = np.take_along_axis(best, order, axis=1)                 # (r, depth)
        finite = np.isfinite(np.take_along_axis(score, ranked, axis=1))
        accept = (batch.rng.random(ranked.shape) < self.probability[ranked]) & finite
        dry = ~accept.any(axis=1)                 # nothing accepted: walk the window again
        rows_dry = np.flatnonzero(dry)
        accept[rows_dry, self._rewalk(batch, ranked[rows_dry], finite[rows_dry])] = True
        first = np.argmax(accept, axis=1)
        chosen = ranked[np.arange(ranked.shape[0]), first]
        # Every item the walk reached was "selected"; those it passed over leave this
        # examinee's pool for the rest of the test (Sympson & Hetter, 1985).
        considered = ((np.arange(depth)[None, :] <= first[:, None]) | dry[:, None]) & finite
        batch.last_considered = np.where(considered, ranked, -1)
        passed_over = considered & (np.arange(depth)[None, :] < first[:, None])
        dropped = np.zeros((rows.size, score.shape[1]), dtype=bool)
        person, slot = np.nonzero(passed_over)
        dropped[person, ranked[person, slot]] = True
        # ... unless that would leave too few to complete the test: then they stay.
        keep_pool = ~self._can_drop(batch, rows, chosen, dropped)
        dropped[keep_pool] = False
        batch.seen[rows] |= dropped
        batch.last_dropped = dropped
        return chosen

    def _rewalk(self, batch, ranked, finite):
        """The window position accepted by walking each row's window again and again until
        an item is accepted: drawn with probability K_i prod_{j<i} (1 - K_j), renormalised
        (the last finite item when every K is 0). ranked, finite : (r, depth); returns (r,).
        """
        k = np.where(finite, self.probability[ranked], 0.0)
        first_pass = k * np.cumprod(np.hstack([np.ones((k.shape[0], 1)), 1.0 - k[:, :-1]]),
                                    axis=1)
        total = first_pass.sum(axis=1)
        draw = batch.rng.random(k.shape[0]) * total
        drawn = np.minimum((np.cumsum(first_pass, axis=1) <= draw[:, None]).sum(axis=1),
                           k.shape[1] - 1)
        last_finite = np.maximum(finite.sum(axis=1) - 1, 0)
        return np.where(total > 0, drawn, last_finite)

    def _can_drop(self, batch, rows, chosen, dropped):
        """(r,) bool: whether each row's pool without `dropped` ((r, n_items) bool) and
        `chosen` (r,) still holds the items its test needs: `max_items` scored items
        in all (one per enemy set, none past a content maximum), and each content
        minimum's items in its group."""
        if self.scorable is None:
            self.scorable = scorable_items(batch.design, batch.tables.n_items)
        design = batch.design
        given = batch.administered[rows].copy()
        given[np.arange(rows.size), chosen] = True
        left = ~(given | batch.seen[rows] | dropped) & self.scorable
        left = content.close_enemy_sets(batch, rows, left, given)
        needed = design.stopping.max_items - batch.scored_length[rows] - 1
        room = content.most_items(batch, left)
        enough = np.ones(rows.size, dtype=bool)
        for rule in design.content.rules:
            group = design.content.groups[rule.group]
            count = batch.group_counts[rule.group][rows] + group[chosen]
            in_group = content.most_items(batch, left & group)
            enough &= in_group >= rule.min - count
            if rule.max is not None:          # a group's items past its maximum are no room
                room = room - np.maximum(in_group - (rule.max - count), 0)
        return enough & (room >= needed)


class ItemEligibility(NoControl):
    """Only the items drawn eligible for the examinee (`batch.eligibility`, (n, n_items)),
    unless none of those is left: then the full pool."""

    def restrict(self, batch, rows, eligible):
        if batch.eligibility is None:
            return eligible
        preferred = eligible & batch.eligibility[rows]
        return np.where(preferred.any(axis=1, keepdims=True), preferred, eligible)


CONTROLS = {
    "none": NoControl,
    "randomesque": Randomesque,
    "sympson-hetter": SympsonHetter,
    "item-eligibility": ItemEligibility,
}


def next_eligibility(probability, administered_so_far, examinees_so_far, target):
    """Item-eligibility probabilities for the next batch: (n_items,).

    van der Linden & Veldkamp (2007): P(E) <- min(1, r_max P(E) / exposure rate),
    with `administered_so_far` (n_items,) counts over `examinees_so_far` examinees.
    """
    rate = administered_so_far / examinees_so_far
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rate > 0, np.minimum(1.0, target * probability / rate), 1.0)


def live_eligibility(administered, eligible, sessions, target):
    """Item-eligibility probabilities from counts kept live: (n_items,).

    van der Linden & Veldkamp (2007): P(E_i) = min(1, r_max * eps_i / alpha_i), with
    alpha_i the examinees given item i and eps_i those for whom it was eligible, both
    (n_items,) counts over `sessions` examinees so far; 1 for an item not given yet.
    Unlike `next_eligibility` it needs no earlier probability, so any worker computes it
    from the shared counts alone. Its counts are cumulative, so the early sessions (all
    items eligible) weigh on it long after; an item whose rate alpha_i / sessions has
    reached r_max is therefore made ineligible until it falls below (the restricted
    method of Revuelta & Ponsoda, 1998), which keeps the rate itself at the target.
    """
    administered = np.asarray(administered, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = target * np.asarray(eligible, dtype=float) / administered
    probability = np.where(administered > 0, np.minimum(1.0, ratio), 1.0)
    return np.where(administered >= target * sessions, 0.0, probability) if sessions \
        else probability


def theta_bands(edges, theta):
    """The band of each θ among the increasing `edges` ((n_edges,)): int (n,) for theta
    (n,), 0 below the first edge, n_edges from the last one on (an edge opens the band
    above it): the one rule of the simulator and of a live session."""
    return np.searchsorted(np.asarray(edges, dtype=float), theta, side="right")


def band_counts(bands, items, n_bands, n_items):
    """Per θ band, who visited it and what was given there.

    bands, items : (n, capacity) int, the band of the θ at which each item was chosen and
        that item, -1 in unused slots
    Returns (visited (n, n_bands) bool: an examinee was given an item in the band;
    administered (n_bands, n_items) float: the examinees given each item in the band).
    """
    given = bands >= 0
    visited = np.zeros((bands.shape[0], n_bands), dtype=bool)
    visited[np.nonzero(given)[0], bands[given]] = True
    administered = np.bincount(bands[given] * n_items + items[given],
                               minlength=n_bands * n_items).reshape(n_bands, n_items)
    return visited, administered.astype(float)


class BandEligibility:
    """Conditional item eligibility by θ band over a simulation, with live delivery's counts
    and probabilities (`irtcat.delivery.live_exposure`): per band g, the sessions given an
    item at a θ in g, and per item those given it there and those that drew it ineligible
    there on entering g; P(E_ig) = `live_eligibility` of band g's counts (van der Linden
    & Veldkamp, 2007, restricted as Revuelta & Ponsoda, 1998), 1 for pretest items.

    Each examinee draws one uniform number per item at the start ((r, n_items)); at each
    step it may take the items whose number is below their probability in the band of its
    current θ (`engine.session.Session` does the same for one live session).
    """

    def __init__(self, edges, n_items, target, pretest_items):
        self.edges = np.asarray(edges, dtype=float)
        self.target, self.pretest_items = target, pretest_items
        n_bands = self.edges.size + 1
        self.sessions = np.zeros(n_bands)
        self.administered = np.zeros((n_bands, n_items))
        self.ineligible = np.zeros((n_bands, n_items))
        self.probability = self._probabilities()

    def _probabilities(self):
        """(n_bands, n_items) eligibility probabilities from the counts so far."""
        probability = np.array([
            live_eligibility(self.administered[g], self.sessions[g] - self.ineligible[g],
                             self.sessions[g], self.target)
            for g in range(self.sessions.size)])
        probability[:, self.pretest_items] = 1.0
        return probability

    def eligible(self, draw, bands):
        """(r, n_items) bool: which items each examinee may take in its band `bands` (r,),
        from its start draw `draw` (r, n_items)."""
        return draw < self.probability[bands]

    def add_batch(self, draw, bands, items):
        """Count a finished batch (its start draw (r, n_items) and its tests' `bands` and
        `items`, (r, capacity)) and update the probabilities for the next one."""
        visited, administered = band_counts(bands, items, self.sessions.size,
                                            self.administered.shape[1])
        self.sessions += visited.sum(axis=0)
        self.administered += administered
        for g in np.flatnonzero(visited.any(axis=0)):
            self.ineligible[g] += np.sum(draw[visited[:, g]] >= self.probability[g], axis=0)
        self.probability = self._probabilities()
