"""Tests of engine.estimation: EAP, MAP, ML, WLE and EAP for summed scores.

Regression values come from R mirt 1.45.1 (tests/data/refs, see
tests/data/README.md); the other tests check properties that hold whatever
the reference: posterior calibration on simulated data, missing responses,
unbounded ML, and the Lord-Wingersky recursion.
"""

import csv
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit

# `models.test_information` would be collected by pytest if imported by name.
from irtcat.engine import models
from irtcat.engine.estimation import (
    THETA_BOUNDS,
    WLE_BOUNDS,
    eap_sum_table,
    estimate_eap,
    estimate_eap_sum,
    estimate_from_pairs,
    estimate_theta,
    log_likelihood,
    sum_score_likelihood,
)
from irtcat.engine.models import ItemParameters, category_log_probability
from irtcat.engine.quadrature import normal_grid

DATA = Path(__file__).resolve().parent.parent / "data"
REFS = DATA / "refs"
MIRT_METHODS = ("EAP", "MAP", "ML", "WLE")
ATOL = 2e-3                 # theta and se, absolute, against mirt
LOWER, UPPER = THETA_BOUNDS


# --- reading the mirt references ---------------------------------------------------

@functools.cache
def _ref(stem):
    with open(REFS / f"{stem}.json", encoding="utf-8") as handle:
        return json.load(handle)


def _ref_stems():
    return sorted(path.stem for path in REFS.glob("*__*.json") if "scores" in _ref(path.stem))


@functools.cache
def _csv(name):
    """person ids and the response matrix (NaN where empty) of tests/data/<name>."""
    with open(DATA / name, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    ids = [row[0] for row in rows[1:]]
    values = np.array([[float(x) if x != "" else np.nan for x in row[1:]] for row in rows[1:]])
    return ids, values


def _params(ref):
    """The fitted items in IRT form: `ItemParameters` and the N(mean, sd) prior."""
    items = ref["items"]
    c = [item.get("c", item.get("g")) or 0.0 for item in items]
    params = ItemParameters.create(ref["model"].removesuffix("_prior"),
                                   [item["a"] for item in items], [item["b"] for item in items],
                                   c=c)
    latent = ref["latent"]
    # rasch and pcm fits estimate the latent variance (var != 1)
    return params, latent["mean"], float(np.sqrt(latent["var"]))


def _score(responses, ref, method):
    params, mean, sd = _params(ref)
    return estimate_theta(responses, params, method.lower(), prior_mean=mean, prior_sd=sd)


def _compare_with_mirt(ours, expected, skip=()):
    """Mismatches between our `ThetaEstimate` and one mirt block ({'theta', 'se', ...}).

    Returns (messages, number of entries checked). ML's bounds are THETA_BOUNDS;
    WLE searches up to mirt's max_theta (WLE_BOUNDS), where mirt's nlm stops just inside.
    """
    lower, upper = WLE_BOUNDS if ours.method == "wle" else (LOWER, UPPER)
    beyond = upper - 1e-3 if ours.method == "wle" else upper
    n = len(expected["theta"])
    infinite = expected.get("infinite") or [0] * n
    problems, checked = [], 0
    for i, (theta, se) in enumerate(zip(expected["theta"], expected["se"], strict=True)):
        if i in skip:
            continue
        if theta is None and infinite[i] is None:
            # mirt returned NA (e.g. Attitude 1pl, whose fitted slope is about
            # 1e-4: mirt's ML/WLE search failed): there is nothing to compare.
            continue
        if theta is None or abs(theta) > beyond:
            # ML (or WLE) with no finite maximum: mirt reports +-Inf, or ends on
            # its own bound of +-20; ours must be flagged and sit on our bound.
            sign = infinite[i] if theta is None else np.sign(theta)
            if sign not in (-1, 1):
                problems.append(f"row {i}: mirt theta null with infinite={infinite[i]!r}")
                continue
            bound = upper if sign > 0 else lower
            if not (ours.bounded[i] and ours.theta[i] == bound):
                problems.append(f"row {i}: mirt {theta if theta is not None else sign * np.inf}, "
                                f"ours {ours.theta[i]!r} bounded={ours.bounded[i]}")
        elif not (abs(ours.theta[i] - theta) <= ATOL and se is not None
                  and abs(ours.se[i] - se) <= ATOL and not ours.bounded[i]):
            problems.append(f"row {i}: mirt theta {theta:.6f} se {se}, ours theta "
                            f"{ours.theta[i]:.6f} se {ours.se[i]:.6f} bounded={ours.bounded[i]}")
        checked += 1
    return problems, checked


REF_STEMS = _ref_stems()
SCORE_CASES = [pytest.param(stem, method, id=f"{stem}-{method}")
               for stem in REF_STEMS for method in MIRT_METHODS]
PATTERN_CASES = [pytest.param(stem, method, id=f"{stem}-{method}")
                 for stem in REF_STEMS if _ref(stem).get("patterns")
                 for method in MIRT_METHODS]

# WLE patterns where log L + 0.5 log I is bimodal and mirt's nlm (started at
# the EAP) ends on a different local maximum than our climb from the EAP.
# Not compared with the tolerance: test_wle_bimodal_patterns checks instead that
# both mirt's and our estimates are local maxima of the same objective.
# (ASVAB__3pl: slopes up to about 9 and c up to about 0.6 on 776 persons, a flat
# fit; mirt lands near +0.75 / +0.79, we near -0.14 / +0.13. For '1010' mirt's
# mode is the higher one, for '0011' ours is.)
WLE_BIMODAL = {("ASVAB__3pl", "0011"), ("ASVAB__3pl", "1010")}


def test_reference_files_present():
    assert len(REF_STEMS) == 33
    assert "Attitude__rasch" not in REF_STEMS          # mirt's fit failed: no scores
    for stem in REF_STEMS:
        assert (DATA / Path(_ref(stem)["data_file"]).name).is_file()


@pytest.mark.parametrize("stem,method", SCORE_CASES)
def test_scores_match_mirt(stem, method):
    ref = _ref(stem)
    ids, responses = _csv(Path(ref["data_file"]).name)
    expected = ref["scores"]
    n = len(expected["person_id"])
    assert ids[:n] == expected["person_id"]
    ours = _score(responses[:n], ref, method)
    problems, checked = _compare_with_mirt(ours, expected[method])
    assert not problems, f"{stem} {method}:\n" + "\n".join(problems)
    assert checked > 0


def _patterns(ref):
    return np.array([[float(x) for x in pattern] for pattern in ref["patterns"]["pattern"]])


@pytest.mark.parametrize("stem,method", PATTERN_CASES)
def test_patterns_match_mirt(stem, method):
    ref = _ref(stem)
    patterns = _patterns(ref)
    assert patterns.shape[1] == ref["n_items"]
    skip = {i for i, pattern in enumerate(ref["patterns"]["pattern"])
            if method == "WLE" and (stem, pattern) in WLE_BIMODAL}
    ours = _score(patterns, ref, method)
    problems, checked = _compare_with_mirt(ours, ref["patterns"][method], skip=skip)
    assert not problems, f"{stem} {method} patterns:\n" + "\n".join(problems)
    assert checked > 0


def _wle_objective(pattern, theta, params):
    """log L + 0.5 log I (I the expected test information) at each theta."""
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    return (log_likelihood(pattern[None, :], theta, params)[0]
            + 0.5 * np.log(models.test_information(theta, params)))


def _assert_local_maximum(pattern, theta, params, who):
    h, step = 1e-5, 0.01
    f = functools.partial(_wle_objective, pattern, params=params)
    slope = (f(theta + h) - f(theta - h))[0] / (2 * h)
    # mirt's nlm stops at a gradient of order 1e-5 (1.7e-5 here)
    assert abs(slope) < 1e-3, f"{who}: d objective / d theta = {slope} at {theta}"
    assert f(theta - step)[0] < f(theta)[0] and f(theta + step)[0] < f(theta)[0], \
        f"{who}: {theta} is not a local maximum"


@pytest.mark.parametrize("stem,pattern", sorted(WLE_BIMODAL))
def test_wle_bimodal_patterns(stem, pattern):
    ref = _ref(stem)
    params, mean, sd = _params(ref)
    index = ref["patterns"]["pattern"].index(pattern)
    responses = np.array([float(x) for x in pattern])
    mirt_theta = ref["patterns"]["WLE"]["theta"][index]
    ours = estimate_theta(responses[None, :], params, "wle", prior_mean=mean, prior_sd=sd)
    assert not ours.bounded[0]
    _assert_local_maximum(responses, mirt_theta, params, "mirt")
    _assert_local_maximum(responses, ours.theta[0], params, "ours")


# --- simulation truth ----------------------------------------------------------------

def test_eap_recovers_simulated_2pl_theta():
    rng = np.random.default_rng(20261125)
    n_persons, n_items = 20_000, 40
    a = rng.lognormal(0.0, 0.25, n_items)
    b = rng.normal(0.0, 1.0, n_items)
    theta = rng.normal(0.0, 1.0, n_persons)
    responses = (rng.random((n_persons, n_items))
                 < expit(a * (theta[:, None] - b))).astype(float)
    est = estimate_eap(responses, ItemParameters.create("2pl", a, b))
    assert np.corrcoef(est.theta, theta)[0, 1] > 0.9
    # With the true model and prior, the posterior mean's mean squared error is
    # the expected posterior variance, E[(theta - EAP)^2] = E[Var(theta | x)]
    # (law of total variance; the Bayes risk of the posterior mean).
    rmse = np.sqrt(np.mean((est.theta - theta) ** 2))
    assert abs(np.sqrt(np.mean(est.se**2)) / rmse - 1) < 0.10
    assert abs(np.mean(est.se) / rmse - 1) < 0.10


# --- missing data ---------------------------------------------------------------------

def _mixed_bank():
    return ItemParameters.create(
        ["2pl", "3pl", "grm", "gpcm", "2pl", "4pl", "grm", "pcm", "rasch"],
        [1.2, 1.6, 1.1, 0.9, 0.7, 2.0, 1.8, 1.0, 1.0],
        [-0.5, 0.4, [-1.0, 0.2, 1.3], [-0.8, 0.5], 1.1, -0.2, [-1.5, 0.9], [0.2, -0.3, 1.0], 0.6],
        c=[0, 0.2, 0, 0, 0, 0.1, 0, 0, 0], u=[1, 1, 1, 1, 1, 0.95, 1, 1, 1])


@pytest.mark.parametrize("method", ["eap", "map", "ml", "wle", "eapsum"])
def test_missing_responses_equal_removing_the_items(method):
    params = _mixed_bank()
    rng = np.random.default_rng(7)
    n_persons = 12
    responses = np.floor(rng.random((n_persons, params.n_items)) * params.n_categories)
    missing = rng.random(responses.shape) < 0.35
    missing[0] = False                                   # one complete row
    missing[1, :] = True
    missing[1, 4] = False                                # a single observed item
    responses[missing] = np.nan
    kwargs = dict(prior_mean=0.3, prior_sd=1.2)
    together = estimate_theta(responses, params, method, **kwargs)
    for person in range(n_persons):
        seen = ~missing[person]
        alone = estimate_theta(responses[person, seen][None, :], params.subset(seen), method,
                               **kwargs)
        assert_allclose(together.theta[person], alone.theta[0], rtol=0, atol=1e-8)
        assert_allclose(together.se[person], alone.se[0], rtol=0, atol=1e-8)
        assert together.bounded[person] == alone.bounded[0]


@pytest.mark.parametrize("method", [
    "eap", "map", "ml", "eapsum",
    "wle",
])
def test_person_with_no_responses(method):
    # Documented in engine.estimation: EAP and MAP return the prior's mean and
    # sd, ML and WLE NaN, and nothing warns.
    params = _mixed_bank()
    responses = np.full((2, params.n_items), np.nan)
    responses[1] = 0.0                                    # a scored row beside it
    est = estimate_theta(responses, params, method, prior_mean=0.3, prior_sd=1.2)
    if method in ("ml", "wle"):
        assert np.isnan(est.theta[0]) and np.isnan(est.se[0]) and not est.bounded[0]
    elif method == "eap":
        # the prior as the 121-node grid on [-6, 6] carries it (truncated at -6,
        # so its moments differ from 0.3 and 1.2 by about 1e-5)
        grid = normal_grid(121, (-6.0, 6.0), 0.3, 1.2)
        mean = grid.weights @ grid.nodes
        sd = np.sqrt(grid.weights @ (grid.nodes - mean) ** 2)
        assert_allclose([est.theta[0], est.se[0]], [mean, sd], rtol=1e-12)
    else:
        assert_allclose([est.theta[0], est.se[0]], [0.3, 1.2], rtol=1e-12)
    assert np.isfinite(est.theta[1])


# --- unbounded ML ---------------------------------------------------------------------

@pytest.mark.parametrize("stem", ["LSAT7__2pl", "LSAT7__3pl_prior", "Science__gpcm",
                                  "Science__grm"])
def test_extreme_patterns_ml_bounded_wle_finite(stem):
    ref = _ref(stem)
    params, mean, sd = _params(ref)
    responses = np.stack([np.zeros(params.n_items), params.n_categories - 1.0])  # all low, all high
    ml = estimate_theta(responses, params, "ml", prior_mean=mean, prior_sd=sd)
    assert np.all(np.isfinite(ml.theta)) and np.all(ml.bounded)
    assert_array_equal(ml.theta, [LOWER, UPPER])
    assert np.all(np.isfinite(ml.se))
    wle = estimate_theta(responses, params, "wle", prior_mean=mean, prior_sd=sd)
    assert np.all(np.isfinite(wle.theta)) and np.all(np.isfinite(wle.se))
    assert np.all((wle.theta > LOWER) & (wle.theta < UPPER)) and not np.any(wle.bounded)
    assert wle.theta[0] < 0 < wle.theta[1]


# --- EAP for summed scores -------------------------------------------------------------

def _all_patterns(n_categories):
    grids = np.meshgrid(*[np.arange(k) for k in n_categories], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1).astype(float)


@pytest.mark.parametrize("stem", ["LSAT7__2pl", "Science__gpcm"])
def test_sum_score_likelihood_sums_to_one_and_matches_enumeration(stem):
    params, _, _ = _params(_ref(stem))
    nodes = normal_grid().nodes
    table = sum_score_likelihood(params, nodes)
    max_score = int(np.sum(params.n_categories - 1))
    assert table.shape == (nodes.size, max_score + 1)
    assert_allclose(table.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # Lord & Wingersky (1984): P(S = s | theta) is the sum of the likelihoods of
    # every pattern with summed score s (32 patterns for LSAT7, 256 for Science).
    patterns = _all_patterns(params.n_categories)
    likelihood = np.exp(log_likelihood(patterns, nodes, params))       # (patterns, nodes)
    scores = patterns.sum(axis=1).astype(int)
    by_score = np.stack([likelihood[scores == s].sum(axis=0) for s in range(max_score + 1)], 1)
    assert_allclose(table, by_score, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("stem", ["LSAT7__2pl", "Science__gpcm"])
def test_eap_sum_with_one_item_is_the_eap_of_its_patterns(stem):
    params, mean, sd = _params(_ref(stem))
    for item in range(params.n_items):
        alone = params.subset([item])
        table = eap_sum_table(alone, prior_mean=mean, prior_sd=sd)
        k = int(alone.n_categories[0])
        assert_array_equal(table.score, np.arange(k))
        eap = estimate_eap(np.arange(k, dtype=float)[:, None], alone, prior_mean=mean,
                           prior_sd=sd)
        assert_allclose(table.theta, eap.theta, rtol=0, atol=1e-12)
        assert_allclose(table.se, eap.se, rtol=0, atol=1e-12)


def test_eap_sum_equal_summed_scores_get_equal_theta():
    ref = _ref("Science__gpcm")
    params, mean, sd = _params(ref)
    _, responses = _csv("Science.csv")
    assert not np.isnan(responses).any()
    est = estimate_eap_sum(responses, params, prior_mean=mean, prior_sd=sd)
    table = eap_sum_table(params, prior_mean=mean, prior_sd=sd)
    sums = responses.sum(axis=1).astype(int)
    assert len(np.unique(sums)) > 5
    for s in np.unique(sums):
        assert np.all(est.theta[sums == s] == table.theta[s])
        assert np.all(est.se[sums == s] == table.se[s])
    # a higher summed score never gets a lower EAP (every a > 0)
    assert np.all(np.diff(table.theta) > 0)
    assert not est.bounded.any()


def test_eap_sum_table_lsat7_is_monotone_and_inside_eap_range():
    # The summed-score EAP pools patterns, so each score's theta lies between
    # the smallest and largest pattern EAP with that score.
    params, mean, sd = _params(_ref("LSAT7__2pl"))
    table = eap_sum_table(params, prior_mean=mean, prior_sd=sd)
    patterns = _all_patterns(params.n_categories)
    eap = estimate_eap(patterns, params, prior_mean=mean, prior_sd=sd).theta
    scores = patterns.sum(axis=1).astype(int)
    assert np.all(np.diff(table.theta) > 0)
    for s in range(params.n_items + 1):
        assert eap[scores == s].min() - 1e-12 <= table.theta[s] <= eap[scores == s].max() + 1e-12


@pytest.mark.parametrize("method", ["map", "ml", "wle"])
def test_estimates_from_answer_triples_equal_the_matrix_ones(method):
    # engine.estimation.estimate_from_pairs: the same estimator on (person, item,
    # category) triples; the identity with the matrix path is exact up to round-off.
    rng = np.random.default_rng(8)
    models = ["2pl"] * 6 + ["3pl"] * 4 + ["grm"] * 3 + ["gpcm"] * 3
    b = list(rng.normal(0, 1, 10)) + [np.sort(rng.normal(0, 1, 3)) for _ in range(6)]
    params = ItemParameters.create(models, rng.lognormal(0, 0.25, 16), b,
                                   c=[0.0] * 6 + [0.2] * 4 + [0.0] * 6)
    theta = rng.normal(size=300)
    p = np.exp(category_log_probability(theta, params))
    responses = (rng.random((300, 16, 1)) > np.cumsum(p, axis=-1)).sum(-1).astype(float)
    responses[rng.random(responses.shape) < 0.5] = np.nan
    responses[0] = np.nan                                  # a person with no answers
    dense = estimate_theta(responses, params, method)
    person, item = np.nonzero(~np.isnan(responses))
    start = estimate_theta(responses, params, "eap").theta
    paired = estimate_from_pairs(300, person, item, responses[person, item].astype(int), params,
                                 method, start)
    assert_allclose(paired.theta, dense.theta, atol=1e-8, equal_nan=True)
    assert_allclose(paired.se, dense.se, atol=1e-6, equal_nan=True)
    assert np.array_equal(paired.bounded, dense.bounded)
    if method == "wle":
        return                                           # WLE takes no interval
    # Given intervals (as an adaptive test finds them on its grid) change nothing: the
    # true one around each estimate, or a wrong one (the grid search takes over).
    finite = np.where(np.isfinite(dense.theta), dense.theta, 0.0)
    shift = rng.uniform(-0.09, 0.09, 300)
    for lower, upper in ((finite - 0.1 + shift, finite + 0.1 + shift),   # holds it
                         (finite + 0.5, finite + 0.7),                    # misses it
                         (np.full(300, -9.0), np.full(300, -8.0))):
        given = estimate_from_pairs(300, person, item, responses[person, item].astype(int),
                                    params, method, start, bracket=(lower, upper))
        assert_allclose(given.theta, dense.theta, atol=1e-8, equal_nan=True)
        assert_allclose(given.se, dense.se, atol=1e-6, equal_nan=True)
        assert np.array_equal(given.bounded, dense.bounded)


def test_a_bracket_beyond_the_bounds_gives_the_bounded_estimate():
    # Expected: estimate_theta's answer for a pattern whose likelihood peaks beyond the
    # ML bounds (+-6): the bound, flagged bounded, even when the given interval (from
    # a wider grid) holds the peak.
    params = ItemParameters.create("2pl", [1.0, 1.0], [5.0, 8.0])
    pattern = np.array([[1.0, 0.0]])                    # the peak is near 6.5
    expected = estimate_theta(pattern, params, "ml")
    assert expected.bounded[0] and expected.theta[0] == 6.0
    given = estimate_from_pairs(1, [0, 0], [0, 1], [1, 0], params, "ml", np.array([6.5]),
                                bracket=(np.array([6.3]), np.array([6.7])))
    assert given.bounded[0] and given.theta[0] == expected.theta[0]
