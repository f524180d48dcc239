"""One examinee's adaptive test, answer by answer: what a delivery worker keeps.

A `Session` is started (or rebuilt from its response log, with the same seed:
it then makes the same choices), gives its next item, takes the answer, and
hands out its state as a frozen `SessionResult`. The bank's `BankTables`
are computed once per bank and design and shared by its sessions.

Each choice leaves a step trace (`Session.last_step`, a small JSON-ready dict,
`step_trace`): what an auditor needs to see why the item was chosen. The
exposure decisions in it are what a rebuild needs besides the answers: the
items Sympson-Hetter passed over (`rejected`, out of the examinee's pool for the
rest of the test) and, under item eligibility, the items drawn ineligible at the
start (`ineligible`, drawn from the live probabilities of that moment, which a
later rebuild cannot know). Given them (`removed`, `ineligible`) a rebuilt
session makes the same choices as the one it continues; `replay_traces` replays
a session answer by answer and gives its traces again.

A design with θ bands (`Exposure.theta_bands`) has each trace say the band of the
θ the choice was made at (`band`); under item eligibility it then draws one
uniform number per item at the start and an item is eligible in band g when its
number is below its probability for that band (conditional item eligibility, van
der Linden & Veldkamp, 2007): the items ineligible in each band
(`ineligible_bands`) are in the first trace, and at each step the draw of the
band of the current θ applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ability, stopping
from ._batch import BankTables, next_batch_item, rebuild_batch, record
from .exposure import theta_bands
from .selection import top_of_row

__all__ = ["BankTables", "GroupEstimate", "Session", "SessionResult", "replay_traces",
           "step_trace", "theta_band"]

TRACE_CANDIDATES = 5            # the best candidates a step trace lists
ELIGIBILITY_STREAM = 2**32 - 1  # the random stream of the eligibility draw: a step never reached


@dataclass(frozen=True)
class GroupEstimate:
    """EAP theta and SE of one item group from that group's scored answers alone
    (the prior's mean and SD when `answers` is 0)."""

    theta: float
    se: float
    answers: int


@dataclass(frozen=True)
class SessionResult:
    """A session's state.

    items, responses : tuples of item positions and answers in order of administration
    theta, se : the estimate from the scored answers; scored_length : their number
    done : the design ended the test
    decision : 1 pass, -1 fail, 0 none. For a test the design ended, its classification;
        for one ended early, the side of theta against the cut. A session without a
        scored answer has no decision.
    groups : {key: GroupEstimate} under the keys the caller gave
    """

    items: tuple
    responses: tuple
    theta: float
    se: float
    scored_length: int
    done: bool
    decision: int
    groups: dict


class Session:
    """One examinee's test on a bank (`BankTables`) under a `CATDesign`, seeded `seed`.

    excluded : (n_items,) bool, items never selected for this examinee (None: none)
    removed : item positions the exposure control took out of the pool at earlier steps
        (Sympson-Hetter's passed-over items, the traces' `rejected`)
    ineligible : item positions drawn ineligible at the start (item eligibility)
    ineligible_bands : per θ band, the item positions drawn ineligible in it (item
        eligibility with θ bands; None: one draw for every θ)
    """

    def __init__(self, tables, design, seed, excluded=None, *, items=(), responses=(),
                 removed=(), ineligible=(), ineligible_bands=None):
        self.seed = seed
        if len(removed):
            excluded = np.zeros(tables.n_items, dtype=bool) if excluded is None \
                else np.array(excluded, dtype=bool)
            excluded[np.asarray(removed, dtype=np.intp)] = True
        self._batch = rebuild_batch(tables, design, seed, list(items), list(responses),
                                    excluded)
        self.ineligible = tuple(sorted(int(j) for j in ineligible))
        if design.exposure.method == "item-eligibility":
            drawn = np.ones((1, tables.n_items), dtype=bool)
            drawn[0, list(self.ineligible)] = False
            self._batch.eligibility = drawn
            self._batch.pool = None          # the stop decision's pool ignored the draw
        self.edges = np.asarray(design.exposure.theta_bands, dtype=float)
        self.band = None                     # the band of the last choice's θ
        self.ineligible_bands, self._drawn_by_band = None, None
        if design.exposure.method == "item-eligibility" and ineligible_bands is not None:
            self.ineligible_bands = tuple(tuple(sorted(int(j) for j in band))
                                          for band in ineligible_bands)
            self._drawn_by_band = np.ones((len(self.ineligible_bands), tables.n_items),
                                          dtype=bool)
            for band, positions in enumerate(self.ineligible_bands):
                self._drawn_by_band[band, list(positions)] = False
        self.last_step = None

    @classmethod
    def start(cls, tables, design, seed, excluded=None, eligibility=None):
        """A new session; under item eligibility, each item is eligible for it with its
        probability in `eligibility` ((n_items,), None: every item; with θ bands
        (n_bands, n_items), one row per band), drawn from the session's own stream (van
        der Linden & Veldkamp, 2007)."""
        ineligible, by_band = (), None
        if design.exposure.method == "item-eligibility" and eligibility is not None:
            draw = eligibility_draw(seed, tables.n_items)
            eligibility = np.asarray(eligibility, dtype=float)
            if eligibility.ndim == 2:
                by_band = [np.flatnonzero(draw >= row) for row in eligibility]
            else:
                ineligible = np.flatnonzero(draw >= eligibility)
        return cls(tables, design, seed, excluded, ineligible=ineligible,
                   ineligible_bands=by_band)

    @classmethod
    def replay(cls, tables, design, seed, items, responses, excluded=None):
        """The session after the answers of its log: item positions and answers, in order."""
        return cls(tables, design, seed, excluded, items=items, responses=responses)

    def next_item(self):
        """The position of the next item, or None when the test is over; its step trace
        is then `last_step`."""
        batch = self._batch
        step, ended = int(batch.length[0]) + 1, bool(batch.done[0])
        theta, se = float(batch.theta[0]), float(batch.se[0])
        if self.edges.size:
            self.band = theta_band(self.edges, theta)
            if self._drawn_by_band is not None:
                batch.eligibility = self._drawn_by_band[self.band:self.band + 1]
                batch.pool = None            # the stop decision's pool used another draw
        item = next_batch_item(batch, self.seed)
        self.last_step = step_trace(batch, step, theta, se, item, ended, self.ineligible)
        if self.edges.size:
            self.last_step = {**self.last_step, "band": self.band}
            if step == 1 and self.ineligible_bands is not None:
                self.last_step["ineligible_bands"] = [list(b) for b in self.ineligible_bands]
        return item

    def answer(self, item, response):
        """Record the answer `response` (a category) to the item at position `item`."""
        record(self._batch, np.array([0]), np.array([item]), np.array([response]))

    def result(self, groups=None):
        """The session's state as a `SessionResult`, with an estimate for each of `groups`
        (a mapping of any key to a (n_items,) bool mask) under the same keys."""
        batch = self._batch
        length, scored_length = int(batch.length[0]), int(batch.scored_length[0])
        rule = batch.design.stopping.classification
        decision = 0 if rule is None else int(stopping.final_decision(
            rule, batch.decision[:1], batch.theta[:1], batch.scored_length[:1])[0])
        estimates = ability.group_estimates(batch, groups or {})
        return SessionResult(
            items=tuple(int(v) for v in batch.items[0, :length]),
            responses=tuple(int(v) for v in batch.responses[0, :length]),
            theta=float(batch.theta[0]), se=float(batch.se[0]), scored_length=scored_length,
            done=bool(batch.done[0]), decision=decision,
            groups={key: GroupEstimate(float(theta[0]), float(se[0]), int(answers[0]))
                    for key, (theta, se, answers) in estimates.items()})


def eligibility_draw(seed, n_items):
    """A session's uniform number per item for item eligibility, (n_items,): from the
    seed's own stream `ELIGIBILITY_STREAM`, so that the session's other draws are those of
    a session without the control."""
    return np.random.default_rng([int(seed), ELIGIBILITY_STREAM]).random(n_items)


def theta_band(edges, theta):
    """The band of one `theta` among the increasing θ `edges` (`exposure.theta_bands`)."""
    return int(theta_bands(edges, theta))


def _rounded(value):
    """A trace's number: 6 significant digits, so that a rebuilt estimate (summed in
    another order) gives the same trace."""
    return float(f"{value:.6g}")


def step_trace(batch, step, theta, se, item, ended, ineligible=()):
    """The trace of step `step` of a one-examinee batch: a dict of JSON values.

    ``step`` (1-based position of the item chosen), ``theta`` and ``se`` (the estimate
    the choice was made at); then either ``stop`` (why the test ended: "max_items",
    "pool_exhausted" or "rules_met") or ``item`` (the position chosen) with ``pretest``
    (a pretest slot: chosen at random, no criterion) or ``eligible`` (items with a
    finite criterion) and ``candidates`` (the best TRACE_CANDIDATES as [position,
    criterion value], best first, ties by position); ``rejected``: items Sympson-Hetter
    passed over at this step and took out of the pool (those it had to keep, for the
    test to be completed, are not); ``ineligible`` (step 1): items drawn ineligible.
    `ended`: the test was over before this step (else a missing item means no item
    was left).
    """
    trace = {"step": step, "theta": _rounded(theta), "se": _rounded(se)}
    if step == 1 and len(ineligible):
        trace["ineligible"] = [int(j) for j in ineligible]
    if item is None:
        trace["stop"] = _stop_reason(batch, ended)
        return trace
    trace["item"] = item
    score = batch.last_score
    if score is None:
        trace["pretest"] = True
        return trace
    row = score[0]
    best = top_of_row(row, TRACE_CANDIDATES)
    trace["eligible"] = int(np.isfinite(row).sum())
    trace["candidates"] = [[int(j), _rounded(row[j])] for j in best]
    dropped = batch.last_dropped
    rejected = [] if dropped is None else [int(j) for j in np.flatnonzero(dropped[0])]
    if rejected:
        trace["rejected"] = rejected
    return trace


def _stop_reason(batch, ended):
    if batch.scored_length[0] >= batch.design.stopping.max_items:
        return "max_items"
    if not ended or (batch.pool is not None and not batch.pool[1].any()):
        return "pool_exhausted"
    return "rules_met"


def replay_traces(tables, design, seed, items, responses, excluded=None, ineligible=(),
                  ineligible_bands=None):
    """The step traces of a session replayed answer by answer from its log (item
    positions and answers in order, the items drawn ineligible at its start, per θ band
    with bands): a list of len(items) + 1 traces, the last that of the choice (or stop)
    after the last answer. ValueError if the replay chooses an item other than the log's."""
    session = Session(tables, design, seed, excluded, ineligible=ineligible,
                      ineligible_bands=ineligible_bands)
    traces = []
    for item, response in zip(items, responses, strict=True):
        chosen = session.next_item()
        traces.append(session.last_step)
        if chosen != item:
            raise ValueError(f"step {len(traces)}: the replay chose {chosen}, the log {item}")
        session.answer(item, response)
    session.next_item()
    traces.append(session.last_step)
    return traces
