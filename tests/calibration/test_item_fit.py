"""Tests of calibration.item_fit and calibration.score_tables: S-X2 and Rasch infit / outfit.

Kinds of test (STYLE.md): identities of the expected table's construction,
a brute-force closed form of P(X_i = k | S = s) on a tiny bank, hand-computed
df and collapsing, and simulation truth (data drawn from known parameters,
S-X2 computed with those parameters). Every assertion names its source.

Simulated data are scored with the true parameters and ``n_parameters = 0``:
nothing was estimated, so no degree of freedom is lost and the p-values of
fitting items are uniform. Over 200 seeds (checked when writing these tests)
the 2PL p-values had a Kolmogorov-Smirnov p of 0.40 against U(0, 1) and a
rejection rate of 0.0085 at alpha = 0.01; the mixed GRM/GPCM/2PL bank 0.46
and 0.0092.
"""

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import erfc

from irtcat.calibration.item_fit import (
    FIT_RANGE,
    NEEDS_BOOKLETS,
    ItemFit,
    _item_sets,
    item_fit,
    rasch_infit_outfit,
    s_x2,
    s_x2_tables,
)
from irtcat.calibration.score_tables import (
    SX2Table,
    collapse_table,
    conditional_category_probability,
)
from irtcat.engine.estimation import sum_score_likelihood
from irtcat.engine.models import ItemParameters, category_probability
from irtcat.engine.quadrature import normal_grid

N_PERSONS = 2000
N_ITEMS = 20


# --- simulation helpers ----------------------------------------------------------------

def simulate(theta, params, rng):
    """Responses drawn from `params` at `theta`: shape (n_persons, n_items), float."""
    prob = category_probability(theta, params)                    # (n, n_items, K)
    below = np.cumsum(prob, axis=-1)[..., :-1]                    # P(X <= k), k < K - 1
    draw = rng.random(prob.shape[:2])[..., None]
    category = np.sum(draw > below, axis=-1)
    return np.minimum(category, params.n_categories - 1).astype(float)


def two_pl_bank(rng):
    return ItemParameters.create("2pl", rng.lognormal(0.0, 0.25, N_ITEMS),
                                 rng.normal(0.0, 1.0, N_ITEMS))


def polytomous_bank(rng):
    """8 GRM items (4 categories), 8 GPCM items (4 categories), 4 2PL items."""
    models = ["grm"] * 8 + ["gpcm"] * 8 + ["2pl"] * 4
    grm = [np.sort(rng.normal(0.0, 1.0, 3)) + [-0.5, 0.0, 0.5] for _ in range(8)]
    gpcm = [rng.normal(0.0, 1.0, 3) for _ in range(8)]
    return ItemParameters.create(models, rng.lognormal(0.0, 0.25, N_ITEMS),
                                 grm + gpcm + list(rng.normal(0.0, 1.0, 4)))


def p_values(fits):
    return np.array([fit.p_value for fit in fits])


@pytest.fixture(scope="module")
def two_pl_data():
    rng = np.random.default_rng(101)
    params = two_pl_bank(rng)
    theta = rng.normal(size=N_PERSONS)
    return params, theta, simulate(theta, params, rng), rng


@pytest.fixture(scope="module")
def polytomous_data():
    rng = np.random.default_rng(202)
    params = polytomous_bank(rng)
    theta = rng.normal(size=N_PERSONS)
    return params, theta, simulate(theta, params, rng), rng


# --- the expected table: identities and a closed form -------------------------------------

@pytest.mark.parametrize("data", ["two_pl_data", "polytomous_data"])
def test_expected_rows_sum_to_score_counts(data, request):
    params, _, responses, _ = request.getfixturevalue(data)
    total = responses.sum(axis=1).astype(int)
    for table in s_x2_tables(responses, params, collapse=False):
        n_at_score = np.array([np.sum(total == s) for s in table.score_range[:, 0]])
        # Identity of the construction: sum_k L_{-i}(s - k) P_ik = L(s), so sum_k E[s, k] = N_s.
        assert_allclose(table.expected.sum(axis=1), n_at_score, rtol=1e-10)
        # Definition of O: every person with summed score s is in row s once.
        assert_array_equal(table.observed.sum(axis=1), n_at_score)
        # Definition: impossible cells (s - k outside the other items' range) hold nothing.
        assert np.all(table.expected[~table.possible] == 0)
        assert np.all(table.observed[~table.possible] == 0)


def test_conditional_probability_averages_to_marginal(polytomous_data):
    params = polytomous_data[0]
    grid = normal_grid(61, (-6.0, 6.0), 0.3, 1.2)
    score_probability, conditional, _ = conditional_category_probability(
        params, grid.nodes, grid.log_weights)
    marginal = np.einsum("q,qik->ik", grid.weights, category_probability(grid.nodes, params))
    # Law of total probability: sum_s P(S = s) P(X_i = k | S = s) = P(X_i = k).
    assert_allclose(score_probability.sum(), 1.0, rtol=1e-12)
    for item, table in enumerate(conditional):
        assert_allclose(score_probability @ table, marginal[item, : table.shape[1]], atol=1e-12)
    # The column totals O vs E over the kept rows agree only in expectation
    # (O is data), so that second identity is not asserted.


def test_conditional_probability_matches_enumeration():
    """Brute force: sum the joint probability of every response pattern."""
    params = ItemParameters.create(["2pl", "3pl", "gpcm", "grm"], [1.2, 0.8, 1.0, 1.5],
                                   [-0.3, 0.4, [-0.5, 0.7], [-1.0, 0.2, 1.1]],
                                   c=[0.0, 0.2, 0.0, 0.0])
    grid = normal_grid(61)
    prob = category_probability(grid.nodes, params)                      # (n_nodes, 4, K)
    n_categories = params.n_categories
    max_score = int(np.sum(n_categories - 1))
    joint = [np.zeros((max_score + 1, k)) for k in n_categories]
    for pattern in itertools.product(*(range(k) for k in n_categories)):
        weight = grid.weights @ np.prod([prob[:, i, x] for i, x in enumerate(pattern)], axis=0)
        for i, x in enumerate(pattern):
            joint[i][sum(pattern), x] += weight
    _, conditional, possible = conditional_category_probability(params, grid.nodes,
                                                                grid.log_weights)
    for i in range(params.n_items):
        # Enumeration: P(X_i = k | S = s) = P(S = s, X_i = k) / P(S = s).
        expected = joint[i] / joint[i].sum(axis=1, keepdims=True)
        assert_allclose(conditional[i], expected, rtol=1e-10, atol=1e-15)
        # Enumeration: a cell is possible exactly when some pattern reaches it.
        assert_array_equal(possible[i], joint[i] > 0)


def test_leave_one_out_matches_its_own_recursion():
    """Definition: L_{-i} is the Lord-Wingersky likelihood of the bank without item i."""
    rng = np.random.default_rng(7)
    models = ["2pl", "grm", "3pl", "gpcm", "2pl", "pcm"] * 3
    b = [rng.normal() if m in ("2pl", "3pl") else np.sort(rng.normal(size=2)) for m in models]
    params = ItemParameters.create(models, rng.lognormal(0.0, 0.25, len(models)), b,
                                   c=[0.2 if m == "3pl" else 0.0 for m in models])
    grid = normal_grid(61, (-6.0, 6.0), -0.4, 1.3)
    score_probability, conditional, _ = conditional_category_probability(
        params, grid.nodes, grid.log_weights)
    prob = category_probability(grid.nodes, params)                      # (n_nodes, n_items, K)
    assert_allclose(score_probability, grid.weights @ sum_score_likelihood(params, grid.nodes),
                    rtol=1e-12)
    for i in range(params.n_items):
        rest = sum_score_likelihood(params.subset(np.arange(params.n_items) != i), grid.nodes)
        k_item = conditional[i].shape[1]
        joint = np.zeros_like(conditional[i])
        for k in range(k_item):                # P(S = s, X_i = k) = sum_q w L_{-i}(s - k) P_ik
            joint[k: k + rest.shape[1], k] = (rest * prob[:, i, k: k + 1]).T @ grid.weights
        assert_allclose(conditional[i] * score_probability[:, None], joint, rtol=1e-12,
                        atol=1e-300)


def test_item_sets_are_numpy_unique_rows():
    """Definition: the distinct rows in np.unique's order, and each person's row index."""
    rng = np.random.default_rng(3)
    for n_items in (1, 7, 8, 9, 30):
        booklets = rng.random((5, n_items)) < 0.6
        observed = booklets[rng.integers(0, 5, 400)]
        observed = observed[observed.any(axis=1)]
        item_sets, which = _item_sets(observed)
        unique, inverse = np.unique(observed, axis=0, return_inverse=True)
        assert_array_equal(item_sets, unique)
        assert_array_equal(which, inverse.reshape(-1))
    complete_sets, complete_which = _item_sets(np.ones((4, 3), dtype=bool))
    assert_array_equal(complete_sets, [[True, True, True]])
    assert_array_equal(complete_which, [0, 0, 0, 0])


# --- df and collapsing, by hand ----------------------------------------------------------

def hand_bank(models):
    """Two dichotomous items and one 3-category item; every pattern answered 50 times."""
    dichotomous = "rasch" if models == "rasch" else "2pl"
    polytomous = "pcm" if models == "rasch" else "gpcm"
    params = ItemParameters.create([dichotomous, dichotomous, polytomous], [1.0, 1.0, 1.0],
                                   [0.0, 0.5, [-0.5, 0.5]])
    patterns = np.array(list(itertools.product(range(2), range(2), range(3))), dtype=float)
    return params, np.repeat(patterns, 50, axis=0)                      # (600, 3)


@pytest.mark.parametrize("models, n_parameters, variance_estimated",
                         [("rasch", [1, 1, 2], True), ("2pl", [2, 2, 3], False)])
def test_df_by_hand(models, n_parameters, variance_estimated):
    params, responses = hand_bank(models)
    tables = s_x2_tables(responses, params)
    # Hand count. Max score 1 + 1 + 2 = 4; rows s = 1, 2, 3 (0 and 4 dropped).
    # N_1 = 150 (3 patterns), N_2 = 200 (4), N_3 = 150 (3): no expected cell is
    # near 1, so nothing collapses.
    assert [t.n_groups for t in tables] == [3, 3, 3]
    # Dichotomous item: the other two sum to 0..3, so every cell is possible: 3 x 2 = 6.
    # 3-category item: the others sum to 0..2; s = 1 excludes k = 2, s = 3 excludes k = 0,
    # so 2 + 3 + 2 = 7 cells.
    assert [t.n_cells for t in tables] == [6, 6, 7]
    fits = s_x2(responses, params, n_parameters, variance_estimated=variance_estimated)
    # df = cells - groups - n_parameters (- 1 when the variance was estimated):
    # rasch/pcm: 6 - 3 - 1 - 1 = 1 and 7 - 3 - 2 - 1 = 1; 2pl/gpcm: 6 - 3 - 2 = 1, 7 - 3 - 3 = 1.
    assert [fit.df for fit in fits] == [1, 1, 1]
    for fit, table in zip(fits, tables, strict=True):
        # Definition: S-X2 = sum (O - E)^2 / E over the possible cells; p = chi2.sf(S-X2, df).
        assert fit.s_x2 == pytest.approx(table.statistic(), rel=1e-12)
        # Closed form of the chi2(1) survival function: erfc(sqrt(x / 2)).
        assert fit.p_value == pytest.approx(erfc(np.sqrt(fit.s_x2 / 2)), rel=1e-9)
        assert fit.infit is None and fit.outfit is None


def test_df_not_positive_gives_nan():
    params, responses = hand_bank("2pl")
    fits = s_x2(responses, params, [3, 3, 4], variance_estimated=True)
    # Hand count: 6 - 3 - 3 - 1 = -1 and 7 - 3 - 4 - 1 = -1: reported, not raised (as mirt).
    for fit in fits:
        assert np.isnan(fit.s_x2) and np.isnan(fit.p_value) and fit.df == 0
        assert not fit.flagged and "df <= 0" in fit.reason


def test_collapse_by_hand():
    expected = np.array([[0.5, 0.2], [3.0, 1.0], [4.0, 4.0], [5.0, 5.0], [2.0, 0.4]])
    observed = np.array([[1, 0], [2, 2], [5, 3], [4, 6], [2, 0]], dtype=float)
    table = SX2Table(0, np.column_stack([np.arange(1, 6)] * 2), observed, expected,
                     np.ones((5, 2), dtype=bool))
    merged = collapse_table(table, mincell=1.0)
    # Hand: row 1 (E 0.5, 0.2) goes into row 2 -> (3.5, 1.2); row 5 (E 2.0, 0.4)
    # into row 4 -> (7.0, 5.4); rows 2-3 are then fine.
    assert_array_equal(merged.score_range, [[1, 2], [3, 3], [4, 5]])
    assert_allclose(merged.expected, [[3.5, 1.2], [4.0, 4.0], [7.0, 5.4]])
    assert_allclose(merged.observed, [[3, 2], [5, 3], [6, 6]])


def test_collapse_middle_row_of_rare_category():
    # Rule 4: a sparse middle row goes to the neighbour with the smaller expected total.
    expected = np.array([[5.0, 5.0, 2.0], [6.0, 6.0, 0.5], [2.0, 2.0, 3.0], [9.0, 9.0, 9.0]])
    possible = np.ones((4, 3), dtype=bool)
    possible[0, 2] = False                     # an impossible cell never triggers a merge
    expected[0, 2] = 0.0
    observed = np.round(expected)
    table = SX2Table(3, np.column_stack([np.arange(4)] * 2), observed, expected, possible)
    merged = collapse_table(table)
    # Hand: row 1 (E 6, 6, 0.5) has neighbours with totals 10 and 7, so joins row 2.
    assert_array_equal(merged.score_range, [[0, 0], [1, 2], [3, 3]])
    assert_allclose(merged.expected[1], [8.0, 8.0, 3.5])
    assert_array_equal(merged.possible[0], [True, True, False])
    assert merged.n_cells == 8


def merge_one_row_at_a_time(table, mincell):
    """collapse_table's documented rule, applied literally: one merge per step."""
    rows = [[table.score_range[r].copy(), table.observed[r].copy(), table.expected[r].copy(),
             table.possible[r].copy()] for r in range(table.n_groups)
            if table.observed[r].sum() > 0]

    def sparse(r):
        return bool(np.any(rows[r][3] & (rows[r][2] < mincell)))

    def merge(source, target):
        rows[target][0] = [min(rows[target][0][0], rows[source][0][0]),
                           max(rows[target][0][1], rows[source][0][1])]
        rows[target][1] = rows[target][1] + rows[source][1]
        rows[target][2] = rows[target][2] + rows[source][2]
        rows[target][3] = rows[target][3] | rows[source][3]
        del rows[source]

    while len(rows) > 1 and sparse(0):
        merge(0, 1)
    while len(rows) > 1 and sparse(len(rows) - 1):
        merge(len(rows) - 1, len(rows) - 2)
    while len(rows) > 1 and any(sparse(r) for r in range(len(rows))):
        row = next(r for r in range(len(rows)) if sparse(r))
        if row in (0, len(rows) - 1):
            merge(row, 1 if row == 0 else row - 1)
        else:
            below, above = rows[row - 1][2].sum(), rows[row + 1][2].sum()
            merge(row, row - 1 if below <= above else row + 1)
    return [np.array([row[column] for row in rows]) for column in range(4)]


@pytest.mark.parametrize("seed", range(6))
def test_collapse_equals_the_rule_one_merge_at_a_time(seed):
    rng = np.random.default_rng(seed)
    n_rows, k_item = 25, int(rng.integers(2, 5))
    expected = rng.gamma(0.6, 3.0, (n_rows, k_item))
    possible = rng.random((n_rows, k_item)) < 0.9
    expected[~possible] = 0.0
    observed = np.where(possible, rng.poisson(expected), 0).astype(float)
    observed[rng.integers(0, n_rows, 2)] = 0.0                         # empty rows are dropped
    table = SX2Table(0, np.column_stack([np.arange(n_rows)] * 2), observed, expected, possible)
    merged = collapse_table(table)
    score_range, merged_observed, merged_expected, merged_possible = merge_one_row_at_a_time(
        table, 1.0)
    # The rule of collapse_table's docstring: same rows, same sums (added in the same order).
    assert_array_equal(merged.score_range, score_range)
    assert_array_equal(merged.observed, merged_observed)
    assert_array_equal(merged.expected, merged_expected)
    assert_array_equal(merged.possible, merged_possible)


def test_collapsed_tables_meet_mincell(polytomous_data):
    params, _, responses, _ = polytomous_data
    for table in s_x2_tables(responses, params):
        # Rule of collapse_table: every possible cell >= 1 unless one row is left.
        assert table.n_groups == 1 or np.all(table.expected[table.possible] >= 1.0)
        # Merging adds rows, so the identity sum E = sum O of the raw table survives.
        assert table.observed.sum() == pytest.approx(table.expected.sum(), rel=1e-10)


# --- simulation truth ----------------------------------------------------------------------

def test_two_pl_true_parameters_fit(two_pl_data):
    params, _, responses, _ = two_pl_data
    fits = s_x2(responses, params, np.zeros(N_ITEMS, dtype=int))
    p = p_values(fits)
    assert all(isinstance(fit, ItemFit) and fit.df > 0 for fit in fits)
    # Simulation truth: p ~ U(0, 1), so flags ~ Binomial(20, 0.01): P(>= 3) = 0.001.
    assert sum(fit.flagged for fit in fits) < 3
    assert [fit.reason for fit in fits if fit.flagged] == ["S-X2 p < 0.01"] * sum(p < 0.01)
    # Simulation truth: mean of 20 uniforms has sd 0.065 (0.067 over 200 seeds).
    assert 0.3 < p.mean() < 0.7


def test_two_pl_misfitting_item_is_flagged(two_pl_data):
    params, theta, responses, rng = two_pl_data
    responses = responses.copy()
    true_curve = ItemParameters.create("2pl", [2.5], [params.b[5, 0] + 1.5])
    responses[:, 5] = simulate(theta, true_curve, rng)[:, 0]
    fits = s_x2(responses, params, np.full(N_ITEMS, 2))
    # Simulation truth: item 5 follows a = 2.5, b + 1.5, not the bank's curve.
    assert fits[5].p_value < 1e-6
    assert fits[5].flagged and fits[5].reason == "S-X2 p < 0.01"


def test_polytomous_true_parameters_fit(polytomous_data):
    params, _, responses, _ = polytomous_data
    fits = s_x2(responses, params, np.zeros(N_ITEMS, dtype=int))
    p = p_values(fits)
    # Simulation truth, as for the 2PL: Binomial(20, 0.01) flags, mean of 20 uniforms.
    assert sum(fit.flagged for fit in fits) < 3
    assert 0.3 < p.mean() < 0.7


@pytest.mark.parametrize("item", [2, 10])   # a GRM and a GPCM item
def test_polytomous_misfitting_item_is_flagged(polytomous_data, item):
    params, theta, responses, rng = polytomous_data
    responses = responses.copy()
    steps = params.b[item][~np.isnan(params.b[item])]
    true_curve = ItemParameters.create(params.model[item], [2.5], [steps + 1.5])
    responses[:, item] = simulate(theta, true_curve, rng)[:, 0]
    fits = s_x2(responses, params, np.zeros(N_ITEMS, dtype=int))
    # Simulation truth: the item follows a = 2.5 and steps + 1.5, not the bank's curve.
    assert fits[item].p_value < 1e-6 and fits[item].flagged


# --- missing data: booklets ----------------------------------------------------------------

def test_booklets_sum_their_statistics(two_pl_data):
    params, theta, _, rng = two_pl_data
    responses = simulate(theta, params, rng)
    first, second = np.arange(0, 15), np.arange(5, 20)
    responses[:1000, 15:] = np.nan                       # booklet A: items 0-14
    responses[1000:, :5] = np.nan                        # booklet B: items 5-19
    combined = s_x2(responses, params, np.zeros(N_ITEMS, dtype=int))
    part_a = s_x2(responses[:1000][:, first], params.subset(first), np.zeros(15, dtype=int))
    part_b = s_x2(responses[1000:][:, second], params.subset(second), np.zeros(15, dtype=int))
    by_item = {i: [] for i in range(N_ITEMS)}
    for items, part in ((first, part_a), (second, part_b)):
        for item, fit in zip(items, part, strict=True):
            by_item[item].append(fit)
    for item, fits in by_item.items():
        # Documented rule: S-X2 and df (before parameters) add over item sets.
        assert combined[item].s_x2 == pytest.approx(sum(f.s_x2 for f in fits), rel=1e-10)
        assert combined[item].df == sum(f.df for f in fits)
    # Documented rule: estimated parameters (and the variance) are subtracted once.
    with_parameters = s_x2(responses, params, np.full(N_ITEMS, 2), variance_estimated=True)
    assert [f.df for f in with_parameters] == [f.df - 3 for f in combined]


def test_scattered_missing_responses_are_refused(two_pl_data):
    params, _, responses, rng = two_pl_data
    scattered = np.where(rng.random(responses.shape) < 0.05, np.nan, responses)
    # Documented rule: more than 50 distinct item sets -> NaN, not an error.
    for fit in s_x2(scattered, params, np.full(N_ITEMS, 2)):
        assert np.isnan(fit.s_x2) and np.isnan(fit.p_value)
        assert not fit.flagged and fit.reason == NEEDS_BOOKLETS
    few = responses.copy()
    few[:3, 0] = np.nan
    # Documented rule: a set answered by fewer than 5 x (max score + 1) persons -> NaN.
    assert all(fit.reason.startswith("S-X2 needs more persons: 5 per possible summed score")
               for fit in s_x2(few, params, np.full(N_ITEMS, 2)))


# --- Rasch infit / outfit --------------------------------------------------------------

RASCH_B = np.linspace(-1.5, 1.5, 15)


@pytest.fixture(scope="module")
def rasch_data():
    rng = np.random.default_rng(303)
    params = ItemParameters.create("rasch", np.ones(15), RASCH_B)
    theta = rng.normal(size=1000)
    return params, theta, simulate(theta, params, rng), rng


def outfit_sd(b, n_persons):
    """Sampling sd of a Rasch item's outfit at the true theta, theta ~ N(0, 1).

    z^2 is Q/P with probability P and P/Q with probability Q, so E z^2 = 1 and
    Var z^2 = Q^2/P + P^2/Q - 1 = 1/(PQ) - 4, with E[1/(PQ)] = 2 + 2 e^{1/2} cosh(b).
    """
    return np.sqrt((2.0 + 2.0 * np.exp(0.5) * np.cosh(b) - 4.0) / n_persons)


def test_infit_outfit_near_one_at_true_theta(rasch_data):
    params, theta, responses, _ = rasch_data
    infit, outfit = rasch_infit_outfit(responses, params, theta)
    # Simulation truth: E (x - E)^2 = W at the true theta, so both mean squares -> 1.
    # Infit's sd here is <= 0.048 (100 seeds), so the stated 0.85..1.15 is > 3 sd
    # (in 3000 simulated samples 0.4 % had some item outside it).
    assert np.all((infit > 0.85) & (infit < 1.15))
    # Outfit: the stated 0.85..1.15 is too tight at the ends of the bank. By outfit_sd,
    # sd = 0.036 at b = 0 but 0.076 at |b| = 1.5, where 0.15 is 2 sd: over 100 seeds 21 % of
    # the samples had some item outside. Outfit is also skewed to the right (one correct
    # answer at theta - b = -3.8 adds e^3.8 / 1000 = 0.045), so the bound used is -4 sd /
    # +5 sd of each item: in 3000 simulated samples some item fell below -4 sd in none,
    # above +4 sd in 0.7 % and above +5 sd in 0.07 %.
    sd = outfit_sd(RASCH_B, 1000)
    assert np.all((outfit > 1.0 - 4.0 * sd) & (outfit < 1.0 + 5.0 * sd))


def test_infit_outfit_near_one_at_wle(rasch_data):
    params, _, responses, _ = rasch_data
    # True parameters: nothing estimated, so no df is taken off S-X2.
    fits = item_fit(responses, params, np.zeros(15, dtype=int), rasch=True)
    infit = np.array([fit.infit for fit in fits])
    outfit = np.array([fit.outfit for fit in fits])
    # At the WLE, fitted to the same 15 answers, each person uses up about one of 15
    # degrees of freedom, so the mean squares shrink towards 1 - 1/15 = 0.93: over 100
    # seeds infit averaged 0.95-0.98 by item (sd <= 0.041) and outfit 0.92-0.96 (sd as in
    # outfit_sd, up to 0.076). The stated 0.85 is then 2.5 sd below the end items' infit
    # (2 % of seeds had an item below it) and ~1 sd below their outfit (52 %). Asserted
    # instead: infit within 0.85..1.15 on average and within 4 sd (0.95 - 4 x 0.041 = 0.79)
    # item by item; outfit within 0.85..1.15 on average; no item outside the flagging
    # range 0.7..1.3 (3 sd or more below the end items' 0.93).
    assert 0.85 < infit.mean() < 1.15 and 0.85 < outfit.mean() < 1.15
    assert np.all((infit > 0.79) & (infit < 1.15))
    lower, upper = FIT_RANGE
    assert np.all((outfit > lower) & (outfit < upper) & (infit > lower) & (infit < upper))
    # Simulation truth for S-X2: flags ~ Binomial(15, 0.01), P(>= 3) = 0.0004.
    assert sum(fit.flagged for fit in fits) < 3


def test_infit_outfit_detect_slope_misfit(rasch_data):
    params, theta, _, rng = rasch_data
    slopes = np.ones(15)
    slopes[4], slopes[10] = 3.0, 0.3
    responses = simulate(theta, ItemParameters.create("2pl", slopes, RASCH_B), rng)
    fits = item_fit(responses, params, np.ones(15, dtype=int), variance_estimated=True,
                    rasch=True)
    # Simulation truth: a = 3 is steeper than the Rasch curve (overfit, infit < 1),
    # a = 0.3 flatter (underfit, outfit > 1).
    assert fits[4].infit < 0.85
    assert fits[10].outfit > 1.15
    assert fits[4].flagged and fits[10].flagged


def test_extreme_patterns_and_missing_theta_are_left_out():
    params = ItemParameters.create("rasch", np.ones(3), [-0.5, 0.0, 0.5])
    responses = np.array([[0, 0, 0], [1, 1, 1], [1, 0, np.nan], [0, 1, 1], [1, 0, 1]])
    theta = np.array([-3.0, 3.0, 0.2, 0.5, np.nan])
    infit, outfit = rasch_infit_outfit(responses, params, theta)
    # Hand: only rows 2 and 3 count (rows 0-1 extreme, row 4 has no theta);
    # item 2 is answered by row 3 alone.
    p = category_probability(np.array([0.2, 0.5]), params)[..., 1]       # (2, 3)
    x = np.array([[1, 0, np.nan], [0, 1, 1]])
    z2 = (x - p) ** 2 / (p * (1 - p))
    assert_allclose(outfit, np.nanmean(z2, axis=0), rtol=1e-12)
    w = np.where(np.isnan(x), 0.0, p * (1 - p))
    assert_allclose(infit, np.nansum((x - p) ** 2, axis=0) / w.sum(axis=0), rtol=1e-12)


def test_item_fit_without_rasch_has_no_mean_squares(two_pl_data):
    params, _, responses, _ = two_pl_data
    for fit in item_fit(responses, params, np.full(N_ITEMS, 2)):
        assert fit.infit is None and fit.outfit is None
