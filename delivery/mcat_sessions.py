"""Sessions of a multidimensional test (`mcat_banks.McatTestBank`): the engine's
`McatSession`, rebuilt from the stored answers, and the session's result.

A multidimensional session's every random draw (randomesque, Sympson-Hetter, the
item-eligibility draw at the start) comes from its seeded generator in the order of
its steps, so replaying the stored answers with the stored seed, choosing each next
item as the live session did, reproduces its state, its exposure decisions and its
choices exactly (`rebuild`): another worker, or the same one after a restart,
continues it as the one that started it would have. Under live item eligibility
(a target, no fixed parameters) the start draws from the live probabilities of that
moment, which a rebuild cannot know: the items drawn ineligible are stored (the first
step's trace) and given back to the rebuild.

The result (`mcat_result`) keeps the /v1 shape of a session's result and adds:
``thetas`` ({standard: {"theta", "se"}}, every factor of the bank) and ``composite``
({"theta", "se", "weights": {standard: weight}}); ``theta`` and ``se`` are the
composite's (the design's composite weights, else equal weights 1/m), ``standards``
lists each of the test's standards with its factor's θ, SE and level, and
``decision`` classifies the composite when the test has a cut (its ``method``, ``ci``
or ``sprt``).
"""

from __future__ import annotations

import numpy as np

from irtcat.engine.mcat import McatSession

from .results import finite, level_of


def start(built, seed, eligibility=None):
    """A new engine session of `built` (an `McatTestBank`) with `seed`; `eligibility`
    (n_items,): the live item-eligibility probabilities (None: no live control)."""
    return McatSession.start(built.tables, seed, eligibility)


def rebuild(built, seed, positions, scores, ineligible=()):
    """The engine session after the answers `scores` to the items at `positions` (in
    order), its current item chosen again: each item is chosen as the live session chose
    it (ValueError if the replay chooses another: the stored session is not this test's).
    `ineligible`: the positions the session drew ineligible at its start (live item
    eligibility)."""
    session = McatSession(built.tables, seed, ineligible=ineligible)
    for position, score in zip(positions, scores, strict=True):
        chosen = session.next_item()
        if chosen != position:
            raise ValueError(f"the replay chose item position {chosen}, the session was "
                             f"given {position}")
        session.answer(position, score)
    session.next_item()
    return session


def composite_weights(built):
    """The composite's weights (m,): the design's, else equal (1/m each)."""
    weights = built.design.composite_weights
    m = len(built.factors)
    return np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=float)


def mcat_result(session, built, standards, catalog):
    """The result of an engine `McatSession` of `built` (see the module), values rounded
    to 4 decimals."""
    state = session.result()
    theta, covariance = np.asarray(state.theta), np.asarray(state.covariance)
    weights = composite_weights(built)
    value = float(weights @ theta)
    spread = float(np.sqrt(max(weights @ covariance @ weights, 0.0)))
    thetas = {name: {"theta": finite(theta[f]), "se": finite(state.se[f])}
              for f, name in enumerate(built.factors)}
    out = []
    for code in standards:
        title, levels = catalog.standard(code)
        f = built.factors.index(code)
        out.append({"code": code, "title": title, "theta": finite(theta[f]),
                    "se": finite(state.se[f]), "level": level_of(levels, theta[f])})
    decision = None
    if built.design.cut is not None and state.decision != 0:
        decision = {"cut": built.design.cut, "pass": state.decision == 1,
                    "method": built.design.classification}
    return {"theta": finite(value), "se": finite(spread), "standards": out,
            "decision": decision, "thetas": thetas,
            "composite": {"theta": finite(value), "se": finite(spread),
                          "weights": {name: round(float(w), 6)
                                      for name, w in zip(built.factors, weights, strict=True)}}}


__all__ = ["composite_weights", "mcat_result", "rebuild", "start"]
