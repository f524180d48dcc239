"""Seeded response simulation and vectorised CAT simulation studies.

`run_cat` gives every simulee a test at once: the loop runs over test
positions, never over examinees. Answers are drawn from the model at the
true theta, or read from a complete response matrix (post-hoc simulation,
so two engines can replay exactly the same tests).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .cat import BankTables, CATBatch, group_estimates, record, select_next
from .models import category_probability

PREDRAW_LIMIT = 20_000_000    # examinees x items drawn up front below this


def simulate_responses(theta, params, rng):
    """Draw responses at each theta: int array of shape (n, n_items).

    theta : ndarray of shape (n,); rng : numpy.random.Generator
    """
    p = category_probability(np.asarray(theta, dtype=float), params)       # (n, J, K)
    draws = rng.random(p.shape[:-1] + (1,))
    return np.sum(draws > np.cumsum(p, axis=-1)[..., :-1], axis=-1)


def _draw_answers(tables, theta, items, rng):
    """One answer per examinee to its own item, drawn at its true theta: (r,)."""
    unique, inverse = np.unique(items, return_inverse=True)
    p = category_probability(theta, tables.params.subset(unique))           # (r, U, K)
    p = p[np.arange(items.size), inverse.reshape(-1)]                       # (r, K)
    return np.sum(rng.random((items.size, 1)) > np.cumsum(p, axis=1)[:, :-1], axis=1)


def run_cat(params, design, rng, *, true_theta=None, responses=None, tables=None,
            batch_size=None, excluded=None):
    """Simulate one adaptive test per examinee.

    Parameters
    ----------
    params : ItemParameters of the bank
    design : CATDesign
    rng : numpy.random.Generator
    true_theta : ndarray of shape (n,), for drawn answers
    responses : int ndarray of shape (n, n_items), for replayed answers
    batch_size : examinees tested together; the item-eligibility method
        updates its probabilities between batches (default: all at once, or
        200 with item-eligibility)

    Returns
    -------
    list of CATBatch (one per batch, in examinee order)
    """
    tables = tables or BankTables(params, design)
    n = responses.shape[0] if responses is not None else true_theta.size
    if batch_size is None:
        batch_size = 200 if design.exposure == "item-eligibility" else n
    batches = []
    eligibility = np.ones(params.n_items)
    administered_so_far = np.zeros(params.n_items)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        batch = CATBatch(tables, design, stop - start, rng,
                         None if excluded is None else excluded[start:stop])
        if design.exposure == "item-eligibility":
            batch.eligibility = rng.random((stop - start, params.n_items)) < eligibility
        answer_sheet = responses[start:stop] if responses is not None else None
        if answer_sheet is None and (stop - start) * params.n_items <= PREDRAW_LIMIT:
            # Every answer this batch could give, drawn once: a test then reads its
            # answers as a replay of this matrix would.
            answer_sheet = simulate_responses(true_theta[start:stop], params, rng)
        while not batch.done.all():
            rows = np.flatnonzero(~batch.done)
            items = select_next(batch, rows)
            rows, items = rows[items >= 0], items[items >= 0]   # -1: that test has ended
            if answer_sheet is not None:
                answers = answer_sheet[rows, items]
            else:
                answers = _draw_answers(tables, true_theta[start + rows], items, rng)
            record(batch, rows, items, answers)
        batches.append(batch)
        if design.exposure == "item-eligibility":
            administered_so_far += batch.administered.sum(axis=0)
            rate = administered_so_far / stop
            # van der Linden & Veldkamp (2007): P(E) <- min(1, r_max P(E) / exposure rate)
            with np.errstate(divide="ignore", invalid="ignore"):
                eligibility = np.where(rate > 0, np.minimum(
                    1.0, design.exposure_target * eligibility / rate), 1.0)
    return batches


def tune_sympson_hetter(params, design, rng, *, n_examinees=3000, iterations=20, margin=0.01):
    """Sympson-Hetter exposure-control parameters by iterated simulation.

    Each round simulates `n_examinees` from the prior with the current
    parameters K, counts how often each item was selected, P(S) (reached by
    the walk down the ranking, whether administered or not), and sets
    K_j = min(1, aim / P(S_j)) with aim = target - margin (a fresh simulation
    then varies around the aim, not the target); it stops once the highest
    exposure is within half the margin of the aim. Returns (K of shape (n_items,), history of
    the highest exposure rate per round).
    """
    tables = BankTables(params, design)
    probability = np.ones(params.n_items)
    history = []
    target = design.exposure_target - margin
    for _ in range(iterations):
        trial = replace(design, exposure="sympson-hetter", sympson_hetter=probability)
        theta = rng.normal(design.prior_mean, design.prior_sd, n_examinees)
        answer_sheet = simulate_responses(theta, params, rng)
        selected = np.zeros(params.n_items)
        batch = CATBatch(tables, trial, n_examinees, rng)
        while not batch.done.all():
            rows = np.flatnonzero(~batch.done)
            items = select_next(batch, rows)
            considered = batch.last_considered
            np.add.at(selected, considered[considered >= 0], 1.0)
            rows, items = rows[items >= 0], items[items >= 0]
            record(batch, rows, items, answer_sheet[rows, items])
        exposure = batch.administered.sum(axis=0) / n_examinees
        history.append(float(exposure.max()))
        chosen = selected / n_examinees
        with np.errstate(divide="ignore", invalid="ignore"):
            probability = np.where(chosen > target, target / chosen, 1.0)
        if exposure.max() <= target + margin / 2:
            break
    return probability, history


def report(batches, design, seconds, *, true_theta=None, seed=None,
           grid=(-2.0, -1.0, 0.0, 1.0, 2.0)):
    """The simulation report of spec/FORMATS.md as a dict."""
    theta = np.concatenate([b.theta for b in batches])
    length = np.concatenate([b.scored_length for b in batches])
    administered = np.concatenate([b.administered for b in batches])
    n = theta.size
    counts = administered.sum(axis=0)
    rate = counts / n
    mean_length = float(length.mean())
    pairs = n * (n - 1)
    overlap = float(np.sum(counts * (counts - 1.0)) / pairs / mean_length) if pairs else 0.0
    out = {"examinees": int(n), "seed": seed, "mean_length": round(mean_length, 3),
           "exposure": {"max": round(float(rate.max()), 4), "mean": round(float(rate.mean()), 4),
                        "unused_share": round(float(np.mean(counts == 0)), 4)},
           "overlap_rate": round(overlap, 4)}
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
        if design.classification is not None:
            cut, delta = design.classification.cut, design.classification.delta
            decision = np.concatenate([b.decision for b in batches])
            truth = np.where(true_theta >= cut, 1, -1)
            outside = np.abs(true_theta - cut) >= delta
            out["classification"] = {
                "accuracy": round(float(np.mean(decision == truth)), 4),
                "accuracy_outside_indifference": round(
                    float(np.mean(decision[outside] == truth[outside])), 4)
                if outside.any() else None,
                "mean_length": round(mean_length, 3)}
    standards = [name for name in design.groups if name.startswith("standard:")]
    if len(standards) > 1:   # a multi-standard test: each standard's own estimate
        by_group = [group_estimates(batch, standards) for batch in batches]
        out["by_standard"] = {}
        for name in standards:
            group_theta = np.concatenate([part[name][0] for part in by_group])
            group_se = np.concatenate([part[name][1] for part in by_group])
            entry = {"mean_se": round(float(group_se.mean()), 4)}
            if true_theta is not None:
                entry["rmse"] = round(float(np.sqrt(np.mean((group_theta - true_theta) ** 2))),
                                      4)
            out["by_standard"][name.split(":", 1)[1]] = entry
    out["seconds"] = round(seconds, 3)
    return out


def _grid_bins(true_theta, grid):
    """The grid point nearest each true theta (bins split at the midpoints): int (n,)."""
    edges = np.concatenate([[-np.inf], (np.array(grid[1:]) + np.array(grid[:-1])) / 2,
                            [np.inf]])
    return np.digitize(true_theta, edges) - 1


def report_details(batches, design, *, true_theta=None, grid=(-2.0, -1.0, 0.0, 1.0, 2.0)):
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
    theta = np.concatenate([b.theta for b in batches])
    administered = np.concatenate([b.administered for b in batches])
    out = {"exposure": administered.sum(axis=0) / theta.size,
           "lengths": np.concatenate([b.scored_length for b in batches]),
           "theta": theta, "se": np.concatenate([b.se for b in batches])}
    if true_theta is not None:
        out["true_theta"] = np.asarray(true_theta, dtype=float)
        if design.classification is not None:
            decision = np.concatenate([b.decision for b in batches])
            correct = decision == np.where(true_theta >= design.classification.cut, 1, -1)
            which = _grid_bins(true_theta, grid)
            out["classification_by_theta"] = [
                {"theta": float(point), "n": int(np.sum(which == g)),
                 "accuracy": round(float(np.mean(correct[which == g])), 4)
                 if np.any(which == g) else None}
                for g, point in enumerate(grid)]
    return out


def timed_run(params, design, rng, **kwargs):
    started = time.perf_counter()
    batches = run_cat(params, design, rng, **kwargs)
    return batches, time.perf_counter() - started
