"""Exact item selection: the criterion at the exact estimate, ties to the lowest position.

Expected values come from closed forms (the 2PL's information a^2 P Q, Birnbaum's 3PL
information, the KL divergence of two Bernoulli laws written out) or from the
construction of the bank (identical items tie exactly).
"""

from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from irtcat.engine._batch import BankTables, Batch, select_next
from irtcat.engine.design import CATDesign, Content, ContentRule, Exposure, Scoring, Selection
from irtcat.engine.kernel import dichotomous_information
from irtcat.engine.models import ItemParameters, information
from irtcat.engine.selection import BankInformation, kullback_leibler, top_ranked


def logistic(z):
    return 1.0 / (1.0 + np.exp(-z))


def first_choice(params, design, n=1, seed=0):
    """The first item select_next gives n fresh examinees (no answer yet): (n,)."""
    batch = Batch(BankTables(params, design), design, n, np.random.default_rng(seed))
    return select_next(batch)


# --- the information itself -------------------------------------------------------------

def test_dichotomous_information_is_the_closed_form():
    # Expected: closed forms. Logistic: L (1 - L). With asymptotes (Birnbaum, 1968, for the
    # 3PL; Barton & Lord's 4PL): ((u - c) L (1 - L))^2 / (P (1 - P)), P = c + (u - c) L.
    z = np.linspace(-8.0, 8.0, 41)
    ell = logistic(z)
    assert_allclose(dichotomous_information(z), ell * (1 - ell), rtol=1e-12)
    for c, u in ((0.2, None), (None, 0.9), (0.2, 0.9)):
        low, high = c or 0.0, 1.0 if u is None else u
        p = low + (high - low) * ell
        assert_allclose(dichotomous_information(z, c, u),
                        ((high - low) * ell * (1 - ell)) ** 2 / (p * (1 - p)), rtol=1e-10)


def test_dichotomous_information_is_finite_far_out():
    # Expected: the limit 0 of the closed forms as |z| grows (no NaN from 0 / 0).
    z = np.array([-800.0, -40.0, 40.0, 800.0])
    with np.errstate(all="raise", under="ignore"):
        for values in (dichotomous_information(z), dichotomous_information(z, 0.25),
                       dichotomous_information(z, None, 0.95),
                       dichotomous_information(z, 0.25, 0.95)):
            assert np.all(np.isfinite(values)) and np.all(values < 1e-15)


def test_bank_information_equals_the_models_information_on_a_mixed_bank():
    # Expected: engine.models.information (itself checked against the finite-difference
    # Fisher information in test_models.py) for every model family at arbitrary theta.
    params = ItemParameters.create(
        ["2pl", "3pl", "4pl", "rasch", "grm", "gpcm", "nominal", "1pl"],
        [1.3, 0.8, 1.6, 1.0, 1.1, 0.9, 0.7, 1.0],
        [0.2, -0.5, 1.0, 0.3, [-1.0, 0.4], [-0.3, 0.6, 1.2], [-0.8, 0.2], -1.4],
        c=[0, 0.2, 0.1, 0, 0, 0, 0, 0], u=[1, 1, 0.92, 1, 1, 1, 1, 1],
        ak=[None] * 6 + [[0.0, 1.3, 2.0]] + [None])
    theta = np.array([-3.7, -0.004, 0.0061, 1.234567, 5.0])
    assert_allclose(BankInformation(params)(theta), information(theta, params),
                    rtol=1e-12, atol=1e-300)
    only_guessing = ItemParameters.create("3pl", [1.3, 0.8], [0.2, -0.5], c=[0.2, 0.15])
    only_slipping = ItemParameters.create("4pl", [1.3, 0.8], [0.2, -0.5], u=[0.9, 0.95])
    for bank in (only_guessing, only_slipping):
        assert_allclose(BankInformation(bank)(theta), information(theta, bank), rtol=1e-12)


def test_bank_information_of_a_2pl_bank_at_the_difficulty():
    # Expected: closed form a^2 / 4 at theta = b (P = 1/2).
    params = ItemParameters.create("2pl", [0.7, 1.9], [0.123456, -2.5])
    values = BankInformation(params)(np.array([0.123456, -2.5]))
    assert values[0, 0] == pytest.approx(0.7**2 / 4, rel=1e-14)
    assert values[1, 1] == pytest.approx(1.9**2 / 4, rel=1e-14)


# --- MFI at the exact estimate ------------------------------------------------------

def test_mfi_chooses_by_information_at_the_exact_estimate():
    # Expected: closed form. Two 2PL items of equal a: the one whose b is nearer theta has
    # more information. At theta 0.006 item 0 (b = 0, 0.006 away) beats item 1 (b = 0.0125,
    # 0.0065 away), though at the 0.01 grid point nearest theta (0.01) item 1 is nearer.
    params = ItemParameters.create("2pl", [1.0, 1.0], [0.0, 0.0125])
    design = CATDesign(scoring=Scoring(start_theta=0.006))
    assert first_choice(params, design)[0] == 0
    design = CATDesign(scoring=Scoring(start_theta=0.0064))         # 0.0064 vs 0.0061 away
    assert first_choice(params, design)[0] == 1


def test_kl_uses_the_probabilities_at_the_exact_estimate():
    # Expected: closed form. Before any answer the posterior is the prior on the grid w_q;
    # for a 2PL item KL = sum_x P_x(hat) (log P_x(hat) - sum_q w_q log P_x(node_q)) with P
    # at theta_hat = 0.37 itself (not at a node).
    params = ItemParameters.create("2pl", [1.2, 0.6, 2.0], [0.1, -1.0, 0.8])
    design = CATDesign(scoring=Scoring(start_theta=0.37, n_nodes=21, theta_range=(-4, 4)),
                       selection=Selection(method="kl"))
    tables = BankTables(params, design)
    batch = Batch(tables, design, 1, np.random.default_rng(0))
    nodes = np.linspace(-4, 4, 21)
    weights = np.exp(-0.5 * nodes**2)
    weights /= weights.sum()
    p_hat = logistic(params.a * (0.37 - params.b[:, 0]))                 # (3,)
    p_nodes = logistic(params.a[None, :] * (nodes[:, None] - params.b[None, :, 0]))
    expected = (p_hat * (np.log(p_hat) - weights @ np.log(p_nodes))
                + (1 - p_hat) * (np.log(1 - p_hat) - weights @ np.log(1 - p_nodes)))
    assert_allclose(kullback_leibler(batch, np.array([0]))[0], expected, rtol=1e-10)


# --- ties to the lowest position --------------------------------------------------------

def tied_bank(n_items=40):
    """n identical 2PL items (exact ties everywhere) and one weaker item at the end."""
    return ItemParameters.create("2pl", [1.5] * n_items + [0.5], [0.0] * (n_items + 1))


@pytest.mark.parametrize("method", ["mfi", "kl", "mepv"])
def test_equal_criteria_go_to_the_lowest_position(method):
    # Expected: construction; the items 0..39 are identical, so every criterion ties.
    design = CATDesign(selection=Selection(method=method))
    assert_array_equal(first_choice(tied_bank(), design, n=3), [0, 0, 0])


def test_ties_with_content_rules_go_to_the_lowest_position_of_the_group():
    # Expected: construction; the group "odd" must be filled first (minimum 5 of 5 items
    # left to give), and its lowest position is 1.
    params = tied_bank()
    odd = np.arange(params.n_items) % 2 == 1
    design = CATDesign(content=Content(rules=(ContentRule("odd", 5, 5),),
                                       groups={"odd": odd}),
                       stopping=replace(CATDesign().stopping, min_items=5, max_items=5))
    assert first_choice(params, design)[0] == 1


def test_ties_under_sympson_hetter_go_to_the_lowest_position():
    # Expected: construction. 40 tied items: with every K_j = 1 the first ranked, item 0, is
    # given; with K_0 = 0 the walk passes it over and gives the next tied position, 1.
    params = tied_bank()
    always = np.ones(params.n_items)
    design = CATDesign(exposure=Exposure(method="sympson-hetter", sympson_hetter=always))
    assert_array_equal(first_choice(params, design, n=4), [0, 0, 0, 0])
    never_first = always.copy()
    never_first[0] = 0.0
    design = CATDesign(exposure=Exposure(method="sympson-hetter", sympson_hetter=never_first))
    assert_array_equal(first_choice(params, design, n=4), [1, 1, 1, 1])


@pytest.mark.parametrize(("n_tied", "n_better"), [(60, 10), (300, 3)])
def test_sympson_hetter_walks_a_tie_at_its_depth_in_order_of_position(n_tied, n_better):
    # Expected: construction. n_tied identical items, then n_better more informative ones
    # (a = 2 against 1.5, same b) that are never administered (K = 0): the walk passes
    # them and the tie straddles its depth of 24; the first tied position, 0, is given.
    a = [1.5] * n_tied + [2.0] * n_better
    params = ItemParameters.create("2pl", a, [0.0] * len(a))
    probability = np.where(np.arange(len(a)) < n_tied, 1.0, 0.0)
    design = CATDesign(exposure=Exposure(method="sympson-hetter", sympson_hetter=probability))
    assert_array_equal(first_choice(params, design, n=4), [0, 0, 0, 0])


def test_ties_under_item_eligibility_go_to_the_lowest_eligible_position():
    # Expected: construction; with items 0 to 2 drawn ineligible, item 3 is the first tied one.
    params = tied_bank()
    design = CATDesign(exposure=Exposure(method="item-eligibility"))
    batch = Batch(BankTables(params, design), design, 1, np.random.default_rng(0))
    batch.eligibility = np.ones((1, params.n_items), dtype=bool)
    batch.eligibility[0, :3] = False
    assert select_next(batch)[0] == 3


def test_top_ranked_keeps_the_lowest_positions_of_a_tie_at_the_cut():
    # Expected: construction: values 5, then a tie of 3 at positions 1, 2, 4, 6.
    score = np.array([[5.0, 3.0, 3.0, 1.0, 3.0, -np.inf, 3.0, np.nan]])
    assert_array_equal(top_ranked(score, 3), [[0, 1, 2]])
    assert_array_equal(top_ranked(score, 5), [[0, 1, 2, 4, 6]])
    assert_array_equal(top_ranked(score, 8)[0, -3:], [3, 5, 7])     # 1, then -inf, NaN


def test_a_rows_best_come_best_first_and_ties_by_position():
    # closed form: the order of a full sort by (-value, position), finite values only
    from irtcat.engine.selection import top_of_row
    rng = np.random.default_rng(1)
    for _ in range(2000):
        n = int(rng.integers(1, 40))
        row = rng.integers(0, 5, n).astype(float)           # many ties
        row[rng.random(n) < 0.3] = -np.inf
        depth = int(rng.integers(1, 8))
        finite = np.flatnonzero(np.isfinite(row))
        expected = finite[np.lexsort((finite, -row[finite]))][:depth]
        assert top_of_row(row, depth).tolist() == expected.tolist()
