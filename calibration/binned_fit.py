"""Item fit on theta estimates and posteriors: mirt's X2 (Yen's Q1), G2, Zh and
infit / outfit with their z, PV-Q1, and a Q1 for missing responses.

mirt's ``itemfit`` statistics at given thetas (`binned_fit`, `zh`,
`infit_outfit_z`; `calibration.item_fit.mirt_itemfit` puts them together at
EAP thetas as mirt does), Chalmers & Ng's plausible-value Q1 (`pv_q1`), and
`rest_posterior_q1`, the Q1 that `calibration.item_fit.item_fit` reports where
responses are missing and S-X2 cannot be computed (its docstring says why this
one). S-X2 and the Rasch mean squares live in `calibration.item_fit`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import chdtrc, logsumexp

from irtcat.engine.estimation import estimate_eap, log_likelihood
from irtcat.engine.models import category_log_probability, category_probability
from irtcat.engine.quadrature import normal_grid
from irtcat.engine.validation import check_responses

N_BINS = 10
"""Yen's Q1: persons binned by the rank of their theta into 10 bins (mirt's group.bins)."""

MIN_WEIGHT = np.sqrt(1e-5)
"""mirt's personfit floors a response variance W with W^2 < 1e-5 at this value."""

Q_CAP = 1.4142
"""mirt caps the Wilson-Hilferty q of the infit and outfit z at this value."""


def eap_by_pattern(responses, params, *, population_mean=0.0, population_sd=1.0,
                   n_nodes=121):
    """`engine.estimation.estimate_eap`'s theta and se, computed once per distinct
    response pattern (short tests repeat patterns).

    Returns
    -------
    theta, se : ndarray of shape (n_persons,)
    """
    coded = np.where(np.isnan(responses), -1.0, responses)
    patterns, which = np.unique(coded, axis=0, return_inverse=True)
    estimate = estimate_eap(np.where(patterns < 0, np.nan, patterns), params,
                            prior_mean=population_mean, prior_sd=population_sd,
                            n_nodes=n_nodes)
    which = which.reshape(-1)
    return estimate.theta[which], estimate.se[which]


def rank_bins(n_persons, n_bins=N_BINS):
    """Bin of each rank position, 0-based, shape (n_persons,), as mirt's itemfit cuts it.

    Every bin gets ``n // n_bins`` persons; the remainder ``r`` goes
    ``r // 2`` to the first bin and the rest to the last.
    """
    counts = np.full(n_bins, n_persons // n_bins)
    extra = n_persons % n_bins
    counts[0] += extra // 2
    counts[-1] += extra - extra // 2
    return np.repeat(np.arange(n_bins), counts)


def binned_fit(responses, params, theta, n_parameters, n_bins=N_BINS):
    """Yen's Q1 (mirt's X2) and McKinley-Mills G2 of every item at given thetas.

    For each item, the persons who answered it are sorted by theta (stable:
    ties keep their row order) and cut by rank into `n_bins` bins
    (`rank_bins`); a bin of fewer than 2 persons is skipped. Per bin ``k``:
    ``O`` the category counts, ``E = N_k P(mean theta of the bin)`` (the ICC at
    the bin's mean theta), no collapsing::

        X2 = sum (O - E)^2 / E           df = sum_k (K - 1) - n_parameters
        G2 = 2 sum_{O > 0} O log(O / E)  df = sum_k (categories with O > 0 - 1) - n_parameters

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items), NaN where missing
    params : ItemParameters
    theta : array_like of shape (n_persons,)
    n_parameters : array_like of int, shape (n_items,)
    n_bins : int

    Returns
    -------
    x2, df_x2, g2, df_g2 : ndarray of shape (n_items,)
        A statistic of exactly 0 is NaN, as mirt reports it.
    """
    responses = check_responses(responses, params)
    theta = np.asarray(theta, dtype=float).reshape(-1)
    n_parameters = np.broadcast_to(np.asarray(n_parameters, dtype=int), (params.n_items,))
    x2, g2 = np.zeros(params.n_items), np.zeros(params.n_items)
    df_x2 = np.zeros(params.n_items, dtype=int)
    df_g2 = np.zeros(params.n_items, dtype=int)
    for item in range(params.n_items):
        answered = np.flatnonzero(~np.isnan(responses[:, item]))
        order = answered[np.argsort(theta[answered], kind="stable")]
        bins = rank_bins(order.size, n_bins)
        sizes = np.bincount(bins, minlength=n_bins)
        used = sizes > 1
        n_cat = int(params.n_categories[item])
        observed = np.zeros((n_bins, n_cat))
        np.add.at(observed, (bins, responses[order, item].astype(np.intp)), 1.0)
        mean_theta = np.bincount(bins, weights=theta[order], minlength=n_bins)[used] / sizes[used]
        prob = category_probability(mean_theta, params.subset([item]))[:, 0, :n_cat]
        x2[item], df_x2[item], g2[item], df_g2[item] = _pearson_and_likelihood_ratio(
            observed[used], sizes[used, None] * prob, n_parameters[item])
    x2[x2 == 0], g2[g2 == 0] = np.nan, np.nan
    return x2, df_x2, g2, df_g2


def _pearson_and_likelihood_ratio(counts, expected, n_parameters):
    """X2, its df, G2 and its df of one item's observed and expected (bins, K) tables.

    X2 sums over every cell (df: bins x (K - 1) - parameters); G2 over the cells
    with a count (df: per bin, such cells - 1, summed, - parameters).
    """
    positive = counts > 0
    x2 = np.sum(np.divide((counts - expected) ** 2, expected, out=np.zeros_like(counts),
                          where=expected > 0))
    ratio = np.divide(counts, expected, out=np.ones_like(counts), where=positive)
    g2 = 2.0 * np.sum(counts * np.log(ratio))
    df_x2 = counts.shape[0] * (counts.shape[1] - 1) - n_parameters
    return x2, df_x2, g2, np.sum(positive.sum(axis=1) - 1) - n_parameters


def zh(responses, params, theta):
    """Drasgow, Levine & Williams' standardised log-likelihood lz of items and persons.

    With ``L = log P_k(theta)`` of each answer::

        lz = (sum log P(x) - sum E[L]) / sqrt(sum Var[L]),
        E[L] = sum_k P_k L_k,  Var[L] = sum_k P_k L_k^2 - E[L]^2

    (mirt's ``sum_{c != c'} P_c P_c' L_c (L_c - L_c')``, the same number),
    summed over the persons who answered an item (mirt's itemfit ``Zh``) or
    over the items a person answered (mirt's personfit ``Zh``, where an answer
    whose probability is below machine epsilon adds 0 to the log-likelihood, as
    there).

    Returns
    -------
    item_zh : ndarray of shape (n_items,)
    person_zh : ndarray of shape (n_persons,)
    """
    responses = check_responses(responses, params)
    observed = ~np.isnan(responses)
    prob = category_probability(np.asarray(theta, dtype=float).reshape(-1), params)
    with np.errstate(divide="ignore"):
        log_p = np.where(prob > 0, np.log(prob), 0.0)                  # (n, J, K)
    mean = np.sum(prob * log_p, axis=-1)
    variance = np.where(observed, np.sum(prob * log_p**2, axis=-1) - mean**2, 0.0)
    mean = np.where(observed, mean, 0.0)
    x = np.where(observed, responses, 0).astype(np.intp)[..., None]
    answer_log = np.where(observed, np.take_along_axis(log_p, x, axis=-1)[..., 0], 0.0)
    answer_prob = np.take_along_axis(prob, x, axis=-1)[..., 0]
    person_log = np.where(answer_prob < np.finfo(float).eps, 0.0, answer_log)
    item_zh = (answer_log.sum(axis=0) - mean.sum(axis=0)) / np.sqrt(variance.sum(axis=0))
    person_zh = (person_log.sum(axis=1) - mean.sum(axis=1)) / np.sqrt(variance.sum(axis=1))
    return item_zh, person_zh


def infit_outfit_z(responses, params, theta):
    """mirt's item infit and outfit with their Wilson-Hilferty z, at given thetas.

    Over the persons who answered the item, with residual ``x - E``, variance
    ``W`` (floored at `MIN_WEIGHT` as mirt's personfit does) and fourth central
    moment ``C``::

        outfit = mean (x - E)^2 / W    q_out^2 = sum C / W^2 / n^2 - 1 / n
        infit = sum (x - E)^2 / sum W  q_in^2 = sum (C - W^2) / (sum W)^2
        z = (MS^(1/3) - 1) 3 / q + q / 3,   q capped at `Q_CAP`

    Unlike `rasch_infit_outfit` every answering person is kept, whatever the model.

    Returns
    -------
    dict of ndarray of shape (n_items,): outfit, z_outfit, infit, z_infit
    """
    responses = check_responses(responses, params)
    observed = ~np.isnan(responses)
    _, expected, variance, fourth = residual_moments(np.asarray(theta, dtype=float).reshape(-1),
                                                      params)
    weight = np.where(observed, np.where(variance**2 < 1e-5, MIN_WEIGHT, variance), 0.0)
    fourth = np.where(observed, fourth, 0.0)
    squared = np.where(observed, (np.where(observed, responses, 0.0) - expected) ** 2, 0.0)
    n = observed.sum(axis=0)
    safe_weight = np.where(observed, weight, 1.0)
    outfit = np.sum(squared / safe_weight, axis=0) / n
    q_outfit = np.sqrt(np.sum(fourth / safe_weight**2, axis=0) / n**2 - 1.0 / n)
    infit = squared.sum(axis=0) / weight.sum(axis=0)
    q_infit = np.sqrt(np.sum(fourth - weight**2, axis=0) / weight.sum(axis=0) ** 2)
    return {"outfit": outfit, "z_outfit": _wilson_hilferty(outfit, q_outfit),
            "infit": infit, "z_infit": _wilson_hilferty(infit, q_infit)}


def _wilson_hilferty(mean_square, q):
    q = np.minimum(q, Q_CAP)
    return (np.cbrt(mean_square) - 1.0) * 3.0 / q + q / 3.0


def rmsea_fit(statistic, df, n_persons):
    """mirt's item-fit RMSEA: sqrt(max(X2/df - 1, 0) / (N - 1)), NaN where df <= 0."""
    statistic, df = np.asarray(statistic, dtype=float), np.asarray(df, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.sqrt(np.maximum(statistic / df - 1.0, 0.0) / (n_persons - 1))
    return np.where(df > 0, value, np.nan)


def chi_square_sf(statistic, df):
    """``pchisq(lower.tail = FALSE)``; NaN where df <= 0 or the statistic is NaN."""
    df = np.asarray(df, dtype=float)
    return np.where(df > 0, chdtrc(np.maximum(df, 1.0), statistic), np.nan)


def residual_moments(theta, params):
    """Category probabilities and the item score's moments at each person's theta.

    Returns
    -------
    prob : ndarray of shape (n_persons, n_items, K)
    expected, variance, fourth : ndarray of shape (n_persons, n_items)
        E[x], its variance and the fourth central moment.
    """
    prob = category_probability(theta, params)                          # (n, n_items, K)
    k = np.arange(prob.shape[-1], dtype=float)
    expected = prob @ k
    deviation = (k - expected[..., None]) ** 2
    return (prob, expected, np.sum(prob * deviation, axis=-1),
            np.sum(prob * deviation**2, axis=-1))


# --- missing responses ----------------------------------------------------------------

def pv_q1(responses, params, n_parameters, *, population_mean=0.0, population_sd=1.0,
          draws=30, seed=0, n_nodes=121):
    """Chalmers & Ng's PV-Q1 of every item: Yen's Q1 on plausible values.

    Each of `draws` sets of plausible values is ``EAP + SE z`` with z standard
    normal (mirt's ``fscores(plausible.draws, plausible.type = 'normal')``);
    `binned_fit`'s X2 and df are averaged over the draws and
    ``p = pchisq(mean X2, mean df, lower.tail = FALSE)``.

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items), NaN where missing
    params : ItemParameters
    n_parameters : array_like of int, shape (n_items,)
    population_mean, population_sd : float
    draws : int
    seed : int
        Of the normal draws (the same seed, the same statistic).
    n_nodes : int
        EAP quadrature nodes on [-6, 6].

    Returns
    -------
    statistic, df, p_value : ndarray of shape (n_items,)
    """
    responses = check_responses(responses, params)
    theta, se = eap_by_pattern(responses, params, population_mean=population_mean,
                               population_sd=population_sd, n_nodes=n_nodes)
    rng = np.random.default_rng(seed)
    statistic = np.zeros(params.n_items)
    df = np.zeros(params.n_items)
    for _ in range(draws):
        plausible = theta + se * rng.standard_normal(theta.size)
        x2, df_x2, _, _ = binned_fit(responses, params, plausible, n_parameters)
        statistic += x2
        df += df_x2
    statistic, df = statistic / draws, df / draws
    return statistic, df, chi_square_sf(statistic, df)


MIN_REST_ANSWERS = 100
"""An item needs this many answers (10 a bin) for `rest_posterior_q1`."""


def rest_posterior_q1(responses, params, n_parameters, *, population_mean=0.0,
                      population_sd=1.0, n_nodes=61, n_bins=N_BINS,
                      min_answers=MIN_REST_ANSWERS):
    """Yen's Q1-style X2 and G2 of every item on the persons who answered it, each
    person placed and predicted by the posterior given their OTHER answers.

    For item j and a person who answered it, the posterior of theta given the
    person's answers to the other items (N(mean, sd) prior on `n_nodes` nodes
    over [-6, 6]) gives the rest EAP and ``pi_k``, the probability of answering
    j in category k. The persons are sorted by rest EAP and cut by rank into
    `n_bins` bins (`rank_bins`); per bin ``O`` counts the answers and
    ``E = sum pi`` (not the ICC at the bin's mean theta)::

        X2 = sum (O - E)^2 / E               df = sum_k (K - 1) - n_parameters
        G2 = 2 sum_{O > 0} O log(O / E)      df = sum_k (categories with O > 0 - 1) - n_parameters

    Why this one for missing data (an adaptive-test log): S-X2 needs persons
    grouped by the items they took. mirt's X2 (`binned_fit` at EAP thetas)
    predicts from the ICC at estimates shrunk toward the mean, and its EAP
    includes the very answer being tested; on data simulated from a 2PL fitted
    to tests/data/SAT12_keyed_sparse30.csv (same missing cells, refitted) it
    rejected 12 to 16% of the (fitting) items at alpha = .05. PV-Q1 (`pv_q1`)
    averages over plausible values, which narrows its spread: 1% there. Stone's
    X2* needs a parametric bootstrap (refits) for its p-value. Given the other
    answers, the answers to item j are independent with probabilities ``pi``,
    and the bins depend on the other answers only, so each bin's ``O - E`` is a
    sum of independent centred terms and X2 is close to chi-square: 4.5 to 6% at
    alpha = .05 (about 1% at .01) in the same simulation
    (tests/calibration/test_item_fit_mirt.py). Its G2 is not (11% at .05), so
    `calibration.item_fit.item_fit` flags by X2. It is S-X2's idea (condition on
    the other answers) with the rest EAP in place of the rest score, which any
    pattern of missing answers has.

    Parameters
    ----------
    responses, params, n_parameters, population_mean, population_sd
        As `pv_q1`.
    n_nodes, n_bins : int
        Nodes of the posterior on [-6, 6]; bins of persons.
    min_answers : int
        Items answered fewer times get NaN statistics and df 0.

    Returns
    -------
    dict of ndarray of shape (n_items,): x2, df_x2, p_x2, g2, df_g2, p_g2, n_answers

    Notes
    -----
    Memory: one (n_persons, n_nodes) array of log-likelihoods and one per item
    for the persons who answered it.
    """
    responses = check_responses(responses, params)
    n_parameters = np.broadcast_to(np.asarray(n_parameters, dtype=int), (params.n_items,))
    grid = normal_grid(n_nodes, (-6.0, 6.0), population_mean, population_sd)
    log_p = category_log_probability(grid.nodes, params)                   # (Q, J, K)
    total = log_likelihood(responses, grid.nodes, params) + grid.log_weights  # (n, Q)
    observed = ~np.isnan(responses)
    out = {key: np.full(params.n_items, np.nan) for key in ("x2", "p_x2", "g2", "p_g2")}
    out["df_x2"] = np.zeros(params.n_items, dtype=int)
    out["df_g2"] = np.zeros(params.n_items, dtype=int)
    out["n_answers"] = observed.sum(axis=0)
    for item in np.flatnonzero(out["n_answers"] >= min_answers):
        answered = np.flatnonzero(observed[:, item])
        category = responses[answered, item].astype(np.intp)
        n_cat = int(params.n_categories[item])
        rest = total[answered] - log_p[:, item, category].T                # (n_j, Q)
        posterior = np.exp(rest - logsumexp(rest, axis=1, keepdims=True))
        order = np.argsort(posterior @ grid.nodes, kind="stable")
        bins = rank_bins(answered.size, n_bins)
        counts = np.zeros((n_bins, n_cat))
        np.add.at(counts, (bins, category[order]), 1.0)
        expected = np.zeros((n_bins, n_cat))
        np.add.at(expected, bins, (posterior @ np.exp(log_p[:, item, :n_cat]))[order])
        used = np.bincount(bins, minlength=n_bins) > 1
        (out["x2"][item], out["df_x2"][item], out["g2"][item],
         out["df_g2"][item]) = _pearson_and_likelihood_ratio(counts[used], expected[used],
                                                             n_parameters[item])
    out["p_x2"] = chi_square_sf(out["x2"], out["df_x2"])
    out["p_g2"] = chi_square_sf(out["g2"], out["df_g2"])
    return out
