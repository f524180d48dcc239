"""Seeded response simulation and vectorised CAT simulation studies (the numerics; the
report of spec/FORMATS.md is made from the results by `irtcat.api.simulation_report`).

`run_cat` gives every simulee a test at once: the loop runs over test
positions, never over examinees. Answers are drawn from the model at the
true theta, or read from a complete response matrix (post-hoc simulation,
so two engines can replay exactly the same tests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import ability, exposure
from ._batch import BankTables, Batch, record, select_next
from .models import category_probability
from .validation import lowest_exposure_bound, scorable_items

PREDRAW_LIMIT = 20_000_000    # examinees x items drawn up front below this


@dataclass(frozen=True)
class CATResults:
    """n examinees' finished tests (read-only arrays over examinees unless said).

    items, responses : (n, capacity) in order of administration, -1 unused
    scored : (n, capacity) bool, False for pretest items
    length : (n,) items given; scored_length : (n,) scored items given
    administered : (n, n_items) bool
    theta, se : (n,) final estimates; previous_theta : (n,) the one before the last answer
    decision : (n,) 1 pass, -1 fail, 0 none (a design without classification)
    group_counts : {content group key: (n,) scored items of the group given}
    groups : {key: (theta (n,), se (n,), answers (n,))} for the groups the caller asked
        for, from each group's scored answers alone
    bands : (n, capacity) int, the θ band (`exposure.theta_bands`) at which each item of
        `items` was chosen, -1 unused; None for a design without θ bands
    """

    items: np.ndarray
    responses: np.ndarray
    scored: np.ndarray
    length: np.ndarray
    scored_length: np.ndarray
    administered: np.ndarray
    theta: np.ndarray
    se: np.ndarray
    previous_theta: np.ndarray
    decision: np.ndarray
    group_counts: dict
    groups: dict
    bands: np.ndarray | None = None

    @property
    def n(self):
        return self.theta.size


def _read_only(array):
    array.flags.writeable = False
    return array


def _results(batch, groups, bands=None):
    """The frozen results of a finished batch, with estimates for `groups` (and the θ band
    of each choice, (n, capacity), when the design has bands)."""
    arrays = {name: _read_only(getattr(batch, name)) for name in (
        "items", "responses", "scored", "length", "scored_length", "administered", "theta",
        "se", "previous_theta", "decision")}
    estimates = ability.group_estimates(batch, groups or {})
    return CATResults(**arrays,
                      group_counts={k: _read_only(v) for k, v in batch.group_counts.items()},
                      groups={key: tuple(_read_only(part) for part in value)
                              for key, value in estimates.items()},
                      bands=None if bands is None else _read_only(bands))


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


def run_cat(params, design, rng, *, true_theta=None, responses=None, batch_size=None,
            excluded=None, groups=None):
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
    excluded : bool ndarray of shape (n, n_items), items never given to an examinee
    groups : mapping of any key to a (n_items,) bool mask: each examinee's estimate
        from the scored answers to each group's items alone, under the same keys

    Returns
    -------
    list of CATResults (one per batch, in examinee order)
    """
    tables = BankTables(params, design)
    n = responses.shape[0] if responses is not None else true_theta.size
    eligibility_control = design.exposure.method == "item-eligibility"
    if batch_size is None:
        batch_size = 200 if eligibility_control else n
    edges = design.exposure.theta_bands
    by_band = exposure.BandEligibility(edges, params.n_items, design.exposure.target,
                                       design.pretest.items) \
        if eligibility_control and len(edges) else None
    results = []
    eligibility = np.ones(params.n_items)
    administered_so_far = np.zeros(params.n_items)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        batch = Batch(tables, design, stop - start, rng,
                      None if excluded is None else excluded[start:stop])
        draw = rng.random((stop - start, params.n_items)) if eligibility_control else None
        if eligibility_control:
            batch.eligibility = draw < eligibility if by_band is None \
                else np.ones(draw.shape, dtype=bool)
        answer_sheet = responses[start:stop] if responses is not None else None
        if answer_sheet is None and (stop - start) * params.n_items <= PREDRAW_LIMIT:
            # Every answer this batch could give, drawn once: a test then reads its
            # answers as a replay of this matrix would.
            answer_sheet = simulate_responses(true_theta[start:stop], params, rng)
        bands = _run_batch(batch, tables, answer_sheet,
                           None if true_theta is None else true_theta[start:stop], rng,
                           edges, by_band, draw)
        if by_band is not None:
            by_band.add_batch(draw, bands, batch.items)
        elif eligibility_control:
            administered_so_far += batch.administered.sum(axis=0)
            eligibility = exposure.next_eligibility(eligibility, administered_so_far, stop,
                                                    design.exposure.target)
        results.append(_results(batch, groups, bands))
    return results


def _run_batch(batch, tables, answer_sheet, true_theta, rng, edges, by_band, draw):
    """Give every test of `batch` to its end: answers read from `answer_sheet` ((r,
    n_items), or drawn at `true_theta` (r,) when None). With θ band `edges`, returns the
    band of each choice ((r, capacity), -1 unused; None without bands); with `by_band`
    (a `BandEligibility`), each examinee takes the items its start `draw` (r, n_items)
    makes eligible in the band of its current θ."""
    bands = np.full(batch.items.shape, -1, dtype=np.intp) if len(edges) else None
    current = np.full(batch.n, -1, dtype=np.intp)     # the band each row's eligibility is of
    while not batch.done.all():
        rows = np.flatnonzero(~batch.done)
        if bands is not None:
            band = exposure.theta_bands(edges, batch.theta[rows])
            moved = band != current[rows]
            if by_band is not None and moved.any():
                batch.eligibility[rows[moved]] = by_band.eligible(draw[rows[moved]],
                                                                  band[moved])
                batch.pool = None         # the stop decision's pool used the other band's
            current[rows] = band
        items = select_next(batch, rows)
        given = items >= 0                                  # -1: that test has ended
        rows, items = rows[given], items[given]
        if bands is not None:
            bands[rows, batch.length[rows]] = band[given]
        if answer_sheet is not None:
            answers = answer_sheet[rows, items]
        else:
            answers = _draw_answers(tables, true_theta[rows], items, rng)
        record(batch, rows, items, answers)
    return bands


class TuningHistory(list):
    """The highest exposure rate of a scored item per tuning round (a list of float), and
    `unreachable`: why the tuning stopped before its target, when it was shown
    unreachable (None otherwise)."""

    unreachable: str | None = None


def tune_sympson_hetter(params, design, rng, *, n_examinees=3000, iterations=20, margin=0.01,
                        patience=4):
    """Sympson-Hetter exposure-control parameters by iterated simulation.

    Each round simulates `n_examinees` from the prior with the current
    parameters K, counts how often each item was selected, P(S) (reached by
    the walk down the ranking, whether administered or not), and sets
    K_j = min(1, aim / P(S_j)) with aim = target - margin (a fresh simulation
    then varies around the aim, not the target); it stops once the highest
    exposure is within half the margin of the aim. Returns (K of shape (n_items,), history
    of the highest exposure rate of a scored item per round, a `TuningHistory`): the target
    was reached when the last is at most the target (`tuning_reached`). A rejection never
    makes a test end early (`exposure.SympsonHetter`), so any K lets every test be
    completed.

    It stops early, with the reason in ``history.unreachable``, once the target is shown
    unreachable:

    - before any round, when the target is under the lowest highest rate any run can
      have (`validation.lowest_exposure_bound`: mean length over the scored items, or a
      content minimum over its group): K stays 1 and the history is empty;
    - when the highest exposure has not fallen more than half the margin below its
      lowest so far for `patience` rounds in a row while that lowest is further over the
      target than `target_tolerance` (a run hovering within it, which the simulation
      report counts as met, tunes all its rounds as before): the update has
      no floor (an over-exposed item's K is aim / P(S) however small), so K keeps
      shrinking while the tests, which never end early, still give the same items. On
      30-item tests over 600 items with a target of 0.05 to 0.08 the highest settles near
      0.10 from the twelfth round on.
    """
    tables = BankTables(params, design)
    scorable = scorable_items(design, params.n_items)
    probability = np.ones(params.n_items)
    history = TuningHistory()
    bound, why = lowest_exposure_bound(design, params.n_items)
    if design.exposure.target < bound:
        history.unreachable = (f"the target {design.exposure.target:g} is under "
                               f"{bound:.3f} = {why}")
        return probability, history
    target = design.exposure.target - margin
    scoring = design.scoring
    lowest, stalled = np.inf, 0
    for _ in range(iterations):
        trial = replace(design, exposure=replace(design.exposure, method="sympson-hetter",
                                                 sympson_hetter=probability))
        theta = rng.normal(scoring.prior_mean, scoring.prior_sd, n_examinees)
        answer_sheet = simulate_responses(theta, params, rng)
        selected = np.zeros(params.n_items)
        batch = Batch(tables, trial, n_examinees, rng)
        while not batch.done.all():
            rows = np.flatnonzero(~batch.done)
            items = select_next(batch, rows)
            considered = batch.last_considered
            np.add.at(selected, considered[considered >= 0], 1.0)
            rows, items = rows[items >= 0], items[items >= 0]
            record(batch, rows, items, answer_sheet[rows, items])
        exposure_rate = batch.administered[:, scorable].sum(axis=0) / n_examinees
        history.append(float(exposure_rate.max()))
        chosen = selected / n_examinees
        with np.errstate(divide="ignore", invalid="ignore"):
            probability = np.where(chosen > target, target / chosen, 1.0)
        if exposure_rate.max() <= target + margin / 2:
            break
        fallen = history[-1] <= lowest - margin / 2
        lowest = min(lowest, history[-1])
        far = lowest > design.exposure.target + target_tolerance(design.exposure.target,
                                                                 n_examinees)
        stalled = stalled + 1 if far and not fallen else 0
        if stalled >= patience:
            history.unreachable = (
                f"the highest exposure has stayed at {lowest:.3f} or above (no fall over "
                f"{margin / 2:g}) for {patience} rounds: the target "
                f"{design.exposure.target:g} is out of reach")
            break
    return probability, history


def target_tolerance(target, n):
    """How far above its exposure target a run's highest rate may lie and still meet it
    (the simulation report's `target_met`, `tune_sympson_hetter`'s stall rule):
    max(0.02, 3 binomial SDs of a rate at the target over `n` examinees). 0.02 is the
    reading of a 0.20 target as met at 0.22; the SD term covers the noise of a rate
    estimated from few examinees."""
    return max(0.02, 3.0 * np.sqrt(target * (1.0 - target) / max(n, 1)))


def tuning_reached(design, history):
    """Whether a `tune_sympson_hetter` run reached the design's target: its last round's
    highest exposure is at most the target."""
    return bool(history) and history[-1] <= design.exposure.target
