"""A session's result: θ, SE, per-standard θ, SE and level, and the decision.

Values are rounded to 4 decimals, and a value that is not finite is null. A
standard nothing was answered in gets no estimate of its own, and a session
without an estimate (`no_estimate`) has the same shape with every value null.
"""

from __future__ import annotations

import numpy as np

from irtcat.engine.cat import group_estimates


def session_result(batch, design, standards, catalog):
    """``{"theta", "se", "standards": [{"code", "title", "theta", "se", "level"}],
    "decision"}`` of the engine's one-examinee `batch` under `design`; `standards`: the
    test's codes; `catalog`: a `caches.Catalog` (titles and levels)."""
    per_group = group_estimates(batch, [f"standard:{code}" for code in standards])
    out = []
    for code in standards:
        theta, se = per_group[f"standard:{code}"]
        title, levels = catalog.standard(code)
        if batch.group_counts[f"standard:{code}"][0] == 0:     # nothing answered here
            out.append({"code": code, "title": title, "theta": None, "se": None,
                        "level": None})
            continue
        out.append({"code": code, "title": title, "theta": finite(float(theta[0])),
                    "se": finite(float(se[0])), "level": level_of(levels, float(theta[0]))})
    rule = design.classification
    decision = None
    if rule is not None:
        # undecided (a session finished early) takes the side of theta, as the engine does
        side = batch.decision[0] if batch.decision[0] != 0 else \
            (1 if batch.theta[0] >= rule.cut else -1)
        decision = {"cut": rule.cut, "pass": bool(side == 1), "method": rule.method}
    return {"theta": finite(float(batch.theta[0])), "se": finite(float(batch.se[0])),
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
