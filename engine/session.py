"""One examinee's adaptive test, answer by answer: what a delivery worker keeps.

A `Session` is started (or rebuilt from its response log, with the same seed:
it then makes the same choices), gives its next item, takes the answer, and
hands out its state as a frozen `SessionResult`. The bank's `BankTables`
are computed once per bank and design and shared by its sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ability, stopping
from ._batch import BankTables, next_batch_item, rebuild_batch, record

__all__ = ["BankTables", "GroupEstimate", "Session", "SessionResult"]


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
    """

    def __init__(self, tables, design, seed, excluded=None, *, items=(), responses=()):
        self.seed = seed
        self._batch = rebuild_batch(tables, design, seed, list(items), list(responses),
                                    excluded)

    @classmethod
    def replay(cls, tables, design, seed, items, responses, excluded=None):
        """The session after the answers of its log: item positions and answers, in order."""
        return cls(tables, design, seed, excluded, items=items, responses=responses)

    def next_item(self):
        """The position of the next item, or None when the test is over."""
        return next_batch_item(self._batch, self.seed)

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
