"""The simulation report of spec/FORMATS.md, from the results of `engine.simulate.run_cat`.

Used by `irtcat simulate` and by the API's simulations. A test's content groups
are keyed by the CAT configuration reader: ``("standard", code)`` for a
standard, ``("tag", tag)`` for a tag. A test covering more than one standard
reports each standard's own estimate ("by_standard"), from that standard's
answers alone.

Every figure on exposure, overlap and length is of the scored (operational) items;
pretest items are reported on their own ("pretest"). "violations" counts the tests
that broke a rule of the design, and a design with controlled exposure says whether
its target was met ("exposure": "target", "target_met"). A design with θ bands
(``exposure.theta_bands``) has "bands" as the live exposure report has them: per band of
the θ each item was chosen at, its edges, the tests given an item in it and the highest
rate of a scored item there; under item eligibility, whose target is then each band's
(conditional item eligibility), "target_met" says whether every band met it.
"""

from __future__ import annotations

import time

import numpy as np

from irtcat.engine.exposure import band_counts
from irtcat.engine.simulate import run_cat, target_tolerance
from irtcat.engine.validation import CONTROLLED_EXPOSURE, scorable_items

GRID = (-2.0, -1.0, 0.0, 1.0, 2.0)


def standard_groups(design):
    """{code: (n_items,) bool mask} of the standards among the design's content groups."""
    return {key[1]: mask for key, mask in design.content.groups.items()
            if isinstance(key, tuple) and len(key) == 2 and key[0] == "standard"}


def timed_run(params, design, rng, **kwargs):
    """(results of `run_cat`, seconds), with each standard's estimate when there are several."""
    standards = standard_groups(design)
    started = time.perf_counter()
    results = run_cat(params, design, rng, groups=standards if len(standards) > 1 else None,
                      **kwargs)
    return results, time.perf_counter() - started


def simulate_and_report(params, design, rng, true_theta, seed):
    """Simulate `design` on `params` for examinees at `true_theta` and return the report
    (what a queued simulation job stores)."""
    results, seconds = timed_run(params, design, rng, true_theta=true_theta)
    return report(results, design, seconds, true_theta=true_theta, seed=seed)


def design_report(result, seconds, seed):
    """The report of a design simulated as a study (`delivery.studies.DesignResult`):
    what a queued simulation stores when it ran on a cluster."""
    return report(result.results, result.design, seconds, true_theta=result.true_theta,
                  seed=seed)


def _joined(results, name):
    return np.concatenate([getattr(part, name) for part in results])


def report(results, design, seconds, *, true_theta=None, seed=None, grid=GRID):
    """The simulation report of spec/FORMATS.md as a dict.

    results : list of CATResults from `timed_run` (or `run_cat`: "by_standard" holds
        the groups it was asked for, under their keys, when there are several)
    """
    theta = _joined(results, "theta")
    length = _joined(results, "scored_length")
    administered = _joined(results, "administered")
    n = theta.size
    scorable = scorable_items(design, administered.shape[1])
    counts = administered[:, scorable].sum(axis=0)          # scored items only
    rate = counts / n
    mean_length = float(length.mean())
    pairs = n * (n - 1)
    overlap = float(np.sum(counts * (counts - 1.0)) / pairs / mean_length) if pairs else 0.0
    out = {"examinees": int(n), "seed": seed, "mean_length": round(mean_length, 3),
           "exposure": {"max": round(float(rate.max()), 4), "mean": round(float(rate.mean()), 4),
                        "unused_share": round(float(np.mean(counts == 0)), 4)},
           "overlap_rate": round(overlap, 4)}
    if design.exposure.method in CONTROLLED_EXPOSURE:
        out["exposure"].update(_target(design.exposure.target, float(rate.max()), n,
                                       mean_length / max(int(scorable.sum()), 1)))
    if design.exposure.theta_bands:
        out["bands"] = _bands(results, design.exposure.theta_bands, scorable)
        if design.exposure.method == "item-eligibility":    # the target is each band's
            out["exposure"]["target_met"] = all(
                band["max_rate"] <= design.exposure.target
                + target_tolerance(design.exposure.target, band["sessions"])
                for band in out["bands"] if band["sessions"])
    out["violations"] = violations(results, design)
    if design.pretest.items.size:
        out["pretest"] = _pretest(administered[:, design.pretest.items], n)
    rule = design.stopping.classification
    if true_theta is not None:
        error = theta - true_theta
        out["rmse"] = round(float(np.sqrt(np.mean(error**2))), 4)
        out["bias"] = round(float(np.mean(error)), 4)
        which = _grid_bins(true_theta, grid)
        out["conditional"] = [
            {"theta": float(point), "n": int(np.sum(which == g)),
             "rmse": round(float(np.sqrt(np.mean(error[which == g] ** 2))), 4)
             if np.any(which == g) else None,
             "bias": round(float(np.mean(error[which == g])), 4) if np.any(which == g) else None}
            for g, point in enumerate(grid)]
        if rule is not None:
            decision = _joined(results, "decision")
            truth = np.where(true_theta >= rule.cut, 1, -1)
            outside = np.abs(true_theta - rule.cut) >= rule.delta
            out["classification"] = {
                "accuracy": round(float(np.mean(decision == truth)), 4),
                "accuracy_outside_indifference": round(
                    float(np.mean(decision[outside] == truth[outside])), 4)
                if outside.any() else None,
                "mean_length": round(mean_length, 3)}
    keys = list(results[0].groups) if results else []
    if len(keys) > 1:   # a multi-standard test: each standard's own estimate
        out["by_standard"] = {}
        for key in keys:
            group_theta = np.concatenate([part.groups[key][0] for part in results])
            group_se = np.concatenate([part.groups[key][1] for part in results])
            entry = {"mean_se": round(float(group_se.mean()), 4)}
            if true_theta is not None:
                entry["rmse"] = round(float(np.sqrt(np.mean((group_theta - true_theta) ** 2))),
                                      4)
            out["by_standard"][str(key)] = entry
    out["seconds"] = round(seconds, 3)
    return out


def _target(target, highest, n, lowest_possible):
    """The exposure block's keys on its target: met when the highest rate is within
    `target_tolerance` of it; `lowest_possible_max` = mean length / scored items, under
    which no item's rate can all be (the rates sum to the mean length)."""
    return {"target": target,
            "target_met": bool(highest <= target + target_tolerance(target, n)),
            "lowest_possible_max": round(lowest_possible, 4)}


def _bands(results, edges, scorable):
    """Per θ band (`edges`, increasing): "band", "low" and "high" (None: open), "sessions"
    (the tests given an item at a θ in it) and "max_rate" (the highest count of a scored
    item given there over those tests), as `irtcat.delivery.live_exposure` reports them."""
    visited, administered = band_counts(_joined(results, "bands"), _joined(results, "items"),
                                        len(edges) + 1, scorable.size)
    sessions = visited.sum(axis=0)
    highest = administered[:, scorable].max(axis=1, initial=0.0)
    bounds = [None, *edges, None]
    return [{"band": g, "low": bounds[g], "high": bounds[g + 1], "sessions": int(sessions[g]),
             "max_rate": round(float(highest[g] / sessions[g]), 4) if sessions[g] else 0.0}
            for g in range(len(edges) + 1)]


def violations(results, design):
    """Tests that broke a rule of the design (expected 0 each):

    content : a content minimum or maximum not kept
    length : scored length outside [min_items, max_items]
    ended_early : of those, the tests that ended under min_items (no eligible item
        was left: the pool was exhausted)
    """
    stopping = design.stopping
    length = _joined(results, "scored_length")
    broken = np.zeros(length.size, dtype=bool)
    for rule in design.content.rules:
        count = np.concatenate([part.group_counts[rule.group] for part in results])
        broken |= count < rule.min
        if rule.max is not None:
            broken |= count > rule.max
    early = length < stopping.min_items
    return {"content": int(broken.sum()),
            "length": int(np.sum(early | (length > stopping.max_items))),
            "ended_early": int(early.sum())}


def _pretest(administered, n):
    """The pretest block: pretest items' administrations, kept out of every other figure.

    administered : (n, n_pretest) bool
    """
    counts = administered.sum(axis=0)
    return {"items": int(counts.size), "administered": int(counts.sum()),
            "per_test": round(float(counts.sum()) / n, 3),
            "exposure_max": round(float(counts.max()) / n, 4),
            "exposure_mean": round(float(counts.mean()) / n, 4)}


def _grid_bins(true_theta, grid):
    """The grid point nearest each true theta (bins split at the midpoints): int (n,)."""
    edges = np.concatenate([[-np.inf], (np.array(grid[1:]) + np.array(grid[:-1])) / 2,
                            [np.inf]])
    return np.digitize(true_theta, edges) - 1


def report_details(results, design, *, true_theta=None, grid=GRID):
    """What the plots of a simulation report need beyond `report`.

    Returns
    -------
    dict with
        exposure : ndarray of shape (n_items,), each item's exposure rate
        lengths : int ndarray of shape (n,), scored test lengths (their mean is
            the report's mean_length)
        theta, se : ndarray of shape (n,), the final estimates
        true_theta : ndarray of shape (n,), when given
        classification_by_theta : list of {"theta", "n", "accuracy"} over the
            bins of the report's "conditional" (accuracy None in an empty
            bin), when `true_theta` is given and the design classifies
    """
    theta = _joined(results, "theta")
    out = {"exposure": _joined(results, "administered").sum(axis=0) / theta.size,
           "lengths": _joined(results, "scored_length"),
           "theta": theta, "se": _joined(results, "se")}
    rule = design.stopping.classification
    if true_theta is not None:
        out["true_theta"] = np.asarray(true_theta, dtype=float)
        if rule is not None:
            correct = _joined(results, "decision") == np.where(true_theta >= rule.cut, 1, -1)
            which = _grid_bins(true_theta, grid)
            out["classification_by_theta"] = [
                {"theta": float(point), "n": int(np.sum(which == g)),
                 "accuracy": round(float(np.mean(correct[which == g])), 4)
                 if np.any(which == g) else None}
                for g, point in enumerate(grid)]
    return out
