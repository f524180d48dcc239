"""Item fit: Orlando and Thissen's S-X2 and the Rasch infit / outfit mean squares.

S-X2 (Orlando & Thissen, 2000; Kang & Chen, 2007 for polytomous items)
compares, for each item, the observed and the model-implied counts of each
response category among the persons with the same summed score:

- the observed table ``O[s, k]`` counts the persons whose summed score over
  all items (the item included) is ``s`` and who answered category ``k``;
  the rows for ``s = 0`` and ``s = max`` are dropped (the item's answer is
  fixed there);
- the expected table is ``E[s, k] = N_s P(X_i = k | S = s)`` with::

      P(X_i = k | S = s) = sum_q L_{-i}(s - k | theta_q) P_ik(theta_q) w_q
                           / sum_q L(s | theta_q) w_q

  ``L`` the Lord-Wingersky summed-score likelihood over all items, ``L_{-i}``
  over all items but ``i``, and ``w_q`` normalised N(mean, sd) weights on
  `n_nodes` equally spaced nodes over [-6, 6] (mirt's ``EAPsum``). By
  construction each row of ``E`` sums to ``N_s``;
- sparse rows are merged (`calibration.score_tables.collapse_table`), then
  ``S-X2 = sum (O - E)^2 / E`` over the cells a response can fall in, with
  ``df = cells - score groups - estimated item parameters`` (one fewer when
  the population variance was estimated, as for ``rasch`` and ``pcm``).

Differences from mirt's ``itemfit``, all deliberate:

- collapsing (`score_tables.collapse_table`) merges whole score rows only:
  first from the low end upwards, then from the high end downwards, then any
  remaining sparse row into its neighbour with the smaller *expected* count. mirt
  (``collapseCells``) first merges sparse categories within a row of a
  polytomous item, drops very rare categories, folds rows holding a single
  person into the next row and merges a sparse middle row into the neighbour
  with the smaller *observed* count. Tables whose sparse rows sit at the two
  ends (the usual dichotomous case) collapse the same way; polytomous items
  and small samples can get a different df and statistic;
- ``df <= 0`` reports ``df = 0`` and a NaN statistic and p-value (mirt
  reports the same), with a `reason` saying why;
- mirt refuses missing responses; here persons are grouped by the set of
  items they answered (booklets), see `s_x2`;
- infit / outfit: mirt scores persons by EAP unless told otherwise and keeps
  every person; `item_fit` uses WLE and `rasch_infit_outfit` leaves out
  extreme patterns (all answers in the lowest or all in the highest category).

Infit and outfit (Wright & Masters, 1982) are the information-weighted and
the unweighted mean squares of the standardised residuals at each person's
theta (`rasch_infit_outfit`).

Missing responses beyond a few booklets: `item_fit` reports
`calibration.binned_fit.rest_posterior_q1`'s X2 for every item with enough
answers. `mirt_itemfit` reproduces mirt's ``itemfit`` table (S-X2, X2, G2,
Zh, infit / outfit and their z at EAP thetas) for comparison with R.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import chdtrc

from irtcat.engine.estimation import estimate_theta
from irtcat.engine.quadrature import normal_grid
from irtcat.engine.validation import check_responses

from .binned_fit import (
    MIN_REST_ANSWERS,
    binned_fit,
    chi_square_sf,
    eap_by_pattern,
    infit_outfit_z,
    residual_moments,
    rest_posterior_q1,
    rmsea_fit,
    zh,
)
from .score_tables import collapse_table, group_tables

MAX_ITEM_SETS = 50
"""More distinct sets of answered items than this: S-X2 is not computed."""

MIN_PERSONS_PER_SCORE = 5
"""A set of answered items needs at least this many persons per possible summed score."""

FIT_RANGE = (0.7, 1.3)
"""Infit and outfit mean squares outside this range are flagged."""

NEEDS_BOOKLETS = "S-X2 needs complete data or a few booklets"


@dataclass(frozen=True)
class ItemFit:
    """Fit of one item.

    Attributes
    ----------
    item_index : int
        Position of the item in the response matrix and the parameter arrays.
    s_x2 : float
        Orlando-Thissen S-X2 (NaN when it cannot be computed, see `reason`).
    df : int
        Its degrees of freedom (0 when not positive).
    p_value : float
        ``chdtrc(df, s_x2)`` (scipy.stats' ``chi2.sf``); NaN with the statistic.
    infit, outfit : float or None
        Rasch mean squares; None when not computed (not a Rasch-family fit).
    flagged : bool
        True when S-X2's p-value is below alpha or a mean square is outside
        `FIT_RANGE`.
    reason : str or None
        Why the item is flagged, or why a statistic is missing; ``"; "``
        joins several reasons.
    x2, x2_df, x2_p : float, int, float or None
        `rest_posterior_q1`'s X2, where S-X2 could not be computed (missing
        responses); None otherwise.
    """

    item_index: int
    s_x2: float
    df: int
    p_value: float
    infit: float | None
    outfit: float | None
    flagged: bool
    reason: str | None
    x2: float | None = None
    x2_df: int | None = None
    x2_p: float | None = None


# --- S-X2 ---------------------------------------------------------------------------

def s_x2_tables(responses, params, *, population_mean=0.0, population_sd=1.0, n_nodes=61,
                collapse=True, mincell=1.0):
    """The observed and expected S-X2 tables of every item, for complete data.

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items)
        Categories 0..K-1, no NaN.
    params : ItemParameters
    population_mean, population_sd : float
        The calibration's population N(mean, sd).
    n_nodes : int
        Quadrature nodes on [-6, 6] (mirt: 61).
    collapse : bool
        Apply `collapse_table` (True) or return the raw rows ``s = 1 .. max - 1``.
    mincell : float

    Returns
    -------
    list of SX2Table, one per item.
    """
    responses = check_responses(responses, params)
    if np.isnan(responses).any():
        raise ValueError("s_x2_tables needs complete responses; s_x2 handles booklets")
    grid = normal_grid(n_nodes, (-6.0, 6.0), population_mean, population_sd)
    tables = group_tables(responses.astype(np.intp), params, grid, np.arange(params.n_items))
    return [collapse_table(t, mincell) for t in tables] if collapse else tables


def s_x2(responses, params, n_parameters, *, population_mean=0.0, population_sd=1.0,
         variance_estimated=False, n_nodes=61, alpha=0.01, mincell=1.0):
    """Orlando-Thissen S-X2 of every item.

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items)
        Categories 0..K-1 (dichotomous, polytomous or mixed), NaN where not
        administered.
    params : ItemParameters
    n_parameters : array_like of int, shape (n_items,)
        Number of estimated parameters of each item (0 for parameters known
        in advance).
    population_mean, population_sd : float
        Population N(mean, sd) of the calibration: the quadrature weights.
    variance_estimated : bool
        The calibration estimated the population variance (``rasch``,
        ``pcm``): one more degree of freedom is lost per item, as in mirt.
    n_nodes : int
        Equally spaced nodes on [-6, 6] (mirt: 61).
    alpha : float
        Items with ``p < alpha`` are flagged.
    mincell : float
        Minimum expected cell count, see `collapse_table`.

    Returns
    -------
    list of ItemFit, one per item, with ``infit = outfit = None``.

    Notes
    -----
    Missing responses. Persons are grouped by the set of items they answered
    (``np.unique`` of the observed mask; persons who answered nothing are
    ignored). Each group's tables are built from its own items, with summed
    scores and Lord-Wingersky likelihoods over those items only, and
    collapsed on their own. An item's statistic is the sum of its groups'
    ``sum (O - E)^2 / E`` and its df is
    ``sum over groups (cells - score groups) - n_parameters (- 1)``: the
    groups are independent samples, and the estimated parameters are
    subtracted once. With complete data this is the usual S-X2.

    This is only done when it can be trusted: with more than `MAX_ITEM_SETS`
    distinct item sets (e.g. CAT or random omissions), or any set answered by
    fewer than ``MIN_PERSONS_PER_SCORE * (its max summed score + 1)``
    persons, every item gets NaN with reason `NEEDS_BOOKLETS` (remove the
    incomplete rows, or use a fit statistic built on theta estimates), or,
    for too few persons, a reason saying how many it needs.
    """
    responses = check_responses(responses, params)
    n_parameters = np.broadcast_to(np.asarray(n_parameters, dtype=int), (params.n_items,))
    observed = ~np.isnan(responses)
    answered = observed.any(axis=1)
    item_sets, which = _item_sets(observed[answered])
    categories = np.where(observed, responses, 0).astype(np.intp)[answered]
    group_size = np.bincount(which, minlength=item_sets.shape[0])
    max_scores = item_sets @ (params.n_categories - 1)                  # (n_sets,)
    needed = MIN_PERSONS_PER_SCORE * (max_scores + 1)
    if item_sets.shape[0] > MAX_ITEM_SETS or np.any(group_size < needed):
        short = int(np.argmax(group_size < needed))
        reason = (NEEDS_BOOKLETS if item_sets.shape[0] > MAX_ITEM_SETS else
                  f"S-X2 needs more persons: {MIN_PERSONS_PER_SCORE} per possible summed "
                  f"score, {needed[short]} for {int(item_sets[short].sum())} items (scores "
                  f"0..{max_scores[short]}), but {group_size[short]} answered "
                  f"{'them' if item_sets.shape[0] == 1 else 'that set of items'}")
        return [ItemFit(i, np.nan, 0, np.nan, None, None, False, reason)
                for i in range(params.n_items)]

    grid = normal_grid(n_nodes, (-6.0, 6.0), population_mean, population_sd)
    statistic = np.zeros(params.n_items)
    free_cells = np.zeros(params.n_items, dtype=int)      # sum over groups of cells - rows
    seen = np.zeros(params.n_items, dtype=bool)
    for set_index, item_set in enumerate(item_sets):      # a few booklets, not persons
        items = np.flatnonzero(item_set)
        rows = which == set_index
        if items.size < params.n_items or not rows.all():
            group = group_tables(categories[np.ix_(rows, items)], params.subset(items), grid,
                                  items)
        else:                                             # complete data: one set, all of it
            group = group_tables(categories, params, grid, items)
        for table in group:
            table = collapse_table(table, mincell)
            if table.n_groups == 0:
                continue
            statistic[table.item_index] += table.statistic()
            free_cells[table.item_index] += table.n_cells - table.n_groups
            seen[table.item_index] = True
    df = free_cells - n_parameters - int(bool(variance_estimated))
    return [_s_x2_record(i, statistic[i], df[i], seen[i], alpha) for i in range(params.n_items)]


def _item_sets(observed):
    """The distinct rows of `observed` in lexicographic order, and each row's set.

    The same as ``np.unique(observed, axis=0, return_inverse=True)``, found on
    the rows packed into bytes (eight items a byte, the first item in the
    highest bit, so bytewise order is the rows' order) instead of by
    comparing rows of booleans.

    Parameters
    ----------
    observed : ndarray of bool, shape (n_persons, n_items)

    Returns
    -------
    item_sets : ndarray of bool, shape (n_sets, n_items)
    which : ndarray of int, shape (n_persons,)
    """
    n_items = observed.shape[1]
    if observed.shape[0] and observed.all():                           # complete data
        return np.ones((1, n_items), dtype=bool), np.zeros(observed.shape[0], dtype=np.intp)
    packed = np.ascontiguousarray(np.packbits(observed, axis=1))       # (n_persons, n_bytes)
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
    _, first, which = np.unique(keys, return_index=True, return_inverse=True)
    return observed[first], which.reshape(-1)


def _s_x2_record(item_index, statistic, df, seen, alpha):
    if not seen:
        return ItemFit(item_index, np.nan, 0, np.nan, None, None, False,
                       "S-X2 not computable: no summed-score group between 0 and the maximum")
    if df <= 0:
        return ItemFit(item_index, np.nan, 0, np.nan, None, None, False,
                       "S-X2 not computable: df <= 0 after collapsing")
    p_value = float(chdtrc(df, statistic))   # chi2.sf without importing scipy.stats
    flagged = p_value < alpha
    return ItemFit(item_index, float(statistic), int(df), p_value, None, None, flagged,
                   f"S-X2 p < {alpha:g}" if flagged else None)


# --- infit / outfit -----------------------------------------------------------------

def rasch_infit_outfit(responses, params, theta):
    """Infit and outfit mean squares of every item at given person thetas.

    With ``E`` the expected score and ``W`` its variance at the person's
    theta (from `engine.models.category_probability`, so polytomous items
    too), over the persons who answered the item::

        outfit = mean of (x - E)^2 / W
        infit  = sum (x - E)^2 / sum W

    Both are near 1 when the model fits; below 1 the responses are more
    predictable than the model says (overfit, a too-steep item), above 1
    less (underfit, noise).

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items)
        Categories, NaN where missing.
    params : ItemParameters
    theta : array_like of shape (n_persons,)
        The thetas the residuals are taken at; `item_fit` passes WLE
        estimates. Persons with a non-finite theta are left out (pass NaN to
        leave a person out).

    Returns
    -------
    infit, outfit : ndarray of shape (n_items,)
        NaN for an item no included person answered.

    Notes
    -----
    Persons whose answers are all in the lowest or all in the highest
    category of their items (extreme patterns) are left out: their ML
    estimate is infinite and any finite theta for them is a convention, so
    their residuals say nothing about the items (Winsteps does the same).
    """
    responses = check_responses(responses, params)
    theta = np.asarray(theta, dtype=float).reshape(-1)
    observed = ~np.isnan(responses)
    x = np.where(observed, responses, 0.0)
    top = params.n_categories - 1                                       # (n_items,)
    all_min = np.all(~observed | (x == 0), axis=1)
    all_max = np.all(~observed | (x == top), axis=1)
    person_used = observed.any(axis=1) & ~all_min & ~all_max & np.isfinite(theta)
    used = observed & person_used[:, None]                              # (n_persons, n_items)

    _, expected, variance, _ = residual_moments(np.where(person_used, theta, 0.0), params)
    squared = np.where(used, (x - expected) ** 2, 0.0)
    z_squared = np.divide(squared, variance, out=np.zeros_like(squared), where=used)
    n_used = used.sum(axis=0)
    total_variance = np.sum(np.where(used, variance, 0.0), axis=0)
    has_data = n_used > 0
    outfit = np.divide(z_squared.sum(axis=0), n_used, out=np.full(params.n_items, np.nan),
                       where=has_data)
    infit = np.divide(squared.sum(axis=0), total_variance, out=np.full(params.n_items, np.nan),
                      where=has_data)
    return infit, outfit


# --- everything ---------------------------------------------------------------------

def item_fit(responses, params, n_parameters, *, population_mean=0.0, population_sd=1.0,
             variance_estimated=False, rasch=False, alpha=0.01, n_nodes=61):
    """S-X2 of every item and, for a Rasch-family calibration, infit and outfit.

    Where S-X2 needs booklets the data do not have (scattered missing
    responses, an adaptive-test log), every item answered at least
    `MIN_REST_ANSWERS` times gets `rest_posterior_q1`'s X2 instead (in
    ``x2``, ``x2_df``, ``x2_p``; flagged when ``x2_p < alpha``).

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items)
    params : ItemParameters
    n_parameters : array_like of int, shape (n_items,)
    population_mean, population_sd : float
    variance_estimated : bool
        See `s_x2`.
    rasch : bool
        Also compute infit and outfit (`rasch_infit_outfit`) at WLE thetas
        (``engine.estimate_theta(..., "wle")``; WLEs at a bound of the
        scoring range are left out with the extreme patterns) and flag mean
        squares outside `FIT_RANGE`.
    alpha : float
    n_nodes : int

    Returns
    -------
    list of ItemFit, one per item.
    """
    fits = s_x2(responses, params, n_parameters, population_mean=population_mean,  # checks
                population_sd=population_sd, variance_estimated=variance_estimated,
                n_nodes=n_nodes, alpha=alpha)
    if fits and fits[0].reason == NEEDS_BOOKLETS:
        fits = _rest_fits(responses, params, n_parameters, population_mean, population_sd,
                          n_nodes, alpha)
    if not rasch:
        return fits
    estimate = estimate_theta(responses, params, "wle", prior_mean=population_mean,
                              prior_sd=population_sd)
    theta = np.where(estimate.bounded, np.nan, estimate.theta)
    infit, outfit = rasch_infit_outfit(responses, params, theta)
    lower, upper = FIT_RANGE
    out = []
    for fit, item_infit, item_outfit in zip(fits, infit, outfit, strict=True):
        reasons = [fit.reason] if fit.reason else []
        mean_square_flag = False
        for name, value in (("infit", item_infit), ("outfit", item_outfit)):
            if value < lower or value > upper:
                mean_square_flag = True
                reasons.append(f"{name} {value:.2f} outside [{lower:g}, {upper:g}]")
        out.append(replace(fit, infit=float(item_infit), outfit=float(item_outfit),
                           flagged=fit.flagged or mean_square_flag,
                           reason="; ".join(reasons) or None))
    return out


def _rest_fits(responses, params, n_parameters, population_mean, population_sd, n_nodes,
               alpha):
    """ItemFit records from `rest_posterior_q1`, where S-X2 needs booklets."""
    rest = rest_posterior_q1(responses, params, n_parameters, population_mean=population_mean,
                             population_sd=population_sd, n_nodes=n_nodes)
    fits = []
    for item in range(params.n_items):
        statistic, df, p_value = rest["x2"][item], int(rest["df_x2"][item]), rest["p_x2"][item]
        if np.isnan(statistic) or df <= 0:
            reason = (f"{NEEDS_BOOKLETS}; X2 not computable: {rest['n_answers'][item]} answers "
                      f"(needs {MIN_REST_ANSWERS}) or df <= 0")
            fits.append(ItemFit(item, np.nan, 0, np.nan, None, None, False, reason))
            continue
        flagged = bool(p_value < alpha)
        reason = f"{NEEDS_BOOKLETS}; fit by X2 given the other answers" + (
            f"; X2 p < {alpha:g}" if flagged else "")
        fits.append(ItemFit(item, np.nan, 0, np.nan, None, None, flagged, reason,
                            float(statistic), df, float(p_value)))
    return fits


# --- mirt's itemfit -----------------------------------------------------------------

def mirt_itemfit(responses, params, n_parameters, *, population_mean=0.0, population_sd=1.0,
                 variance_estimated=False, n_nodes=121):
    """mirt's ``itemfit(mod, c('S_X2', 'X2', 'G2', 'Zh', 'infit'))`` at EAP thetas.

    The thetas are EAP estimates on `n_nodes` nodes over [-6, 6] (mirt's
    ``fscores`` default: 121). S-X2 is `s_x2` (needs complete data or
    booklets, NaN otherwise); the others take the answered responses only.

    Returns
    -------
    dict of ndarray of shape (n_items,), keyed by mirt's column names: Zh,
    outfit, z.outfit, infit, z.infit, X2, df.X2, RMSEA.X2, p.X2, G2, df.G2,
    RMSEA.G2, p.G2, S_X2, df.S_X2, RMSEA.S_X2, p.S_X2.
    """
    responses = check_responses(responses, params)
    n_persons = responses.shape[0]
    theta, _ = eap_by_pattern(responses, params, population_mean=population_mean,
                              population_sd=population_sd, n_nodes=n_nodes)
    columns = {"Zh": zh(responses, params, theta)[0]}
    for name, values in infit_outfit_z(responses, params, theta).items():
        columns[name.replace("_", ".")] = values
    x2, df_x2, g2, df_g2 = binned_fit(responses, params, theta, n_parameters)
    sx2 = s_x2(responses, params, n_parameters, population_mean=population_mean,
               population_sd=population_sd, variance_estimated=variance_estimated)
    df_sx2 = np.array([fit.df for fit in sx2])
    for name, statistic, df in (("X2", x2, df_x2), ("G2", g2, df_g2),
                                ("S_X2", np.array([fit.s_x2 for fit in sx2]), df_sx2)):
        columns[name], columns[f"df.{name}"] = statistic, df
        columns[f"RMSEA.{name}"] = rmsea_fit(statistic, df, n_persons)
        columns[f"p.{name}"] = chi_square_sf(statistic, df)
    return columns
