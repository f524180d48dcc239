"""A session's result: θ, SE, per-standard θ, SE and level, and the decision.

Values are rounded to 4 decimals, and a value that is not finite is null. A
standard nothing was answered in gets no estimate of its own, and a session
without an estimate (`no_estimate`) has the same shape with every value null.
"""

from __future__ import annotations

import numpy as np


def session_result(session, design, standards, catalog):
    """``{"theta", "se", "standards": [{"code", "title", "theta", "se", "level"}],
    "decision"}`` of the engine's `session` (an `engine.session.Session`) under `design`;
    `standards`: the test's codes; `catalog`: a `caches.Catalog` (titles and levels)."""
    groups = design.content.groups
    result = session.result({code: groups[("standard", code)] for code in standards})
    out = []
    for code in standards:
        estimate = result.groups[code]
        title, levels = catalog.standard(code)
        if estimate.answers == 0:                               # nothing answered here
            out.append({"code": code, "title": title, "theta": None, "se": None,
                        "level": None})
            continue
        out.append({"code": code, "title": title, "theta": finite(estimate.theta),
                    "se": finite(estimate.se), "level": level_of(levels, estimate.theta)})
    rule = design.stopping.classification
    decision = None
    if rule is not None and result.decision != 0:   # none without a scored answer
        decision = {"cut": rule.cut, "pass": result.decision == 1, "method": rule.method}
    return {"theta": finite(result.theta), "se": finite(result.se),
            "standards": out, "decision": decision}


def no_estimate(standards, catalog):
    """A result without an estimate: the shape of `session_result`, every value null."""
    return {"theta": None, "se": None, "decision": None, "standards": [
        {"code": code, "title": catalog.standard(code)[0], "theta": None, "se": None,
         "level": None} for code in standards]}


def finite(value):
    return round(value, 4) if np.isfinite(value) else None


def level_of(levels, theta):
    """The highest level whose cut θ reaches, or None below the first cut."""
    reached = [level["name"] for level in levels if theta >= level["cut"]]
    return reached[-1] if reached else None


__all__ = ["finite", "level_of", "no_estimate", "session_result"]
