"""Classification of a multidimensional test's composite (engine.mcat_classification):
the SPRT's points and log likelihood ratio against hand-computed closed forms, a session's
stop and decision against Wald's bounds on that ratio, and a seeded simulation (truth
known) of the SPRT against the confidence interval."""

import numpy as np
import pytest

from irtcat.engine.mcat import McatDesign, McatSession, McatTables, simulate
from irtcat.engine.mcat_classification import (
    answers_log_likelihood,
    hyperplane_points,
    sprt_log_ratio,
)
from irtcat.engine.multidimensional import MultidimensionalItems

R2 = np.array([[1.0, 0.6], [0.6, 1.0]])
WEIGHTS = np.array([0.5, 0.5])
CUT = 0.3


def small_bank():
    """Six items on two factors: four 2PL (two loading on both), two graded (3 categories)."""
    entries = [
        {"id": "a", "standard": "F1", "model": "2pl", "a": [1.6, 0.0], "d": 0.2},
        {"id": "b", "standard": "F2", "model": "2pl", "a": [0.0, 1.4], "d": -0.4},
        {"id": "c", "standard": "F1", "model": "2pl", "a": [1.2, 0.7], "d": -0.1},
        {"id": "d", "standard": "F2", "model": "2pl", "a": [0.5, 1.8], "d": 0.3},
        {"id": "e", "standard": "F1", "model": "grm", "a": [1.3, 0.0], "d": [0.9, -0.8]},
        {"id": "f", "standard": "F2", "model": "grm", "a": [0.4, 1.1], "d": [0.5, -1.2]},
    ]
    return MultidimensionalItems.from_entries(entries, {"factors": ["F1", "F2"]}), entries


def hand_log_p(entry, theta, answer):
    """log P(answer | theta) by the model's closed form: 2PL 1/(1+exp(-(a.theta+d))); graded
    P(X >= k) = 1/(1+exp(-(a.theta+d_k))), P(X = k) = P(X >= k) - P(X >= k+1)."""
    t = float(np.dot(entry["a"], theta))
    if entry["model"] == "2pl":
        p = 1 / (1 + np.exp(-(t + entry["d"])))
        return np.log(p if answer == 1 else 1 - p)
    above = [1.0] + [1 / (1 + np.exp(-(t + d))) for d in entry["d"]] + [0.0]
    return np.log(above[answer] - above[answer + 1])


def hand_log_ratio(entries, theta_hat, given, delta):
    """log L(theta_+) - log L(theta_-) of the answers `given` [(item, answer)], with
    theta_+- = theta_hat + (cut +- delta - w.theta_hat) w / (w.w) (van Groen et al. 2016)."""
    ratio = 0.0
    for sign in (1, -1):
        point = theta_hat + (CUT + sign * delta - WEIGHTS @ theta_hat) * WEIGHTS / (
            WEIGHTS @ WEIGHTS)
        ratio += sign * sum(hand_log_p(entries[j], point, x) for j, x in given)
    return ratio


def test_the_points_lie_on_the_hyperplanes_along_the_weights():
    theta = np.array([[0.4, -1.0], [2.0, 0.5], [-0.3, -0.3]])
    weights = np.array([0.7, 0.2])
    for level in (-0.5, 1.1):
        points = hyperplane_points(theta, weights, level)
        np.testing.assert_allclose(points @ weights, level, atol=1e-12)
        moved = points - theta                    # parallel to w: its cross product is 0
        np.testing.assert_allclose(moved[:, 0] * weights[1] - moved[:, 1] * weights[0], 0,
                                   atol=1e-12)
    # one factor, weight 1: the unidimensional SPRT's points cut +- delta
    np.testing.assert_allclose(hyperplane_points(np.array([[1.7]]), np.ones(1), CUT + 0.3),
                               [[CUT + 0.3]])


def test_the_log_ratio_is_the_hand_computed_one():
    items, entries = small_bank()
    theta = np.array([[0.2, 0.9], [-1.1, 0.4]])
    order = np.array([[0, 4, 2, 5, -1, -1], [3, 1, 5, 0, 4, 2]])
    answers = np.array([[1, 2, 0, 1, -1, -1], [0, 0, 2, 1, 0, 1]])
    for row in range(2):
        given = [(j, x) for j, x in zip(order[row], answers[row], strict=True) if j >= 0]
        log_lik = answers_log_likelihood(theta[row:row + 1], items, order[row:row + 1],
                                         answers[row:row + 1])
        assert log_lik[0] == pytest.approx(sum(hand_log_p(entries[j], theta[row], x)
                                               for j, x in given), abs=1e-10)
        ratio = sprt_log_ratio(items, theta[row:row + 1], order[row:row + 1],
                               answers[row:row + 1], WEIGHTS, CUT, 0.25)
        assert ratio[0] == pytest.approx(hand_log_ratio(entries, theta[row], given, 0.25),
                                         abs=1e-10)
    both = sprt_log_ratio(items, theta, order, answers, WEIGHTS, CUT, 0.25)   # vectorized
    assert both.shape == (2,)


@pytest.mark.parametrize("answers", [(1, 2, 1, 1, 2, 1), (0, 0, 0, 0, 0, 0), (1, 0, 1, 0, 1, 1)])
def test_a_session_stops_exactly_when_the_hand_computed_ratio_crosses_walds_bounds(answers):
    items, entries = small_bank()
    alpha, beta, delta = 0.1, 0.2, 0.4
    accept, reject = np.log((1 - beta) / alpha), np.log(beta / (1 - alpha))
    design = McatDesign(criterion="dprule", min_items=1, max_items=6,
                        composite_weights=tuple(WEIGHTS), cut=CUT, classification="sprt",
                        delta=delta, alpha=alpha, beta=beta)
    session = McatSession(McatTables(items, np.zeros(2), R2, design), seed=3)
    given = []
    while (item := session.next_item()) is not None:
        if given:     # the test went on: the ratio after the answers so far is inside
            state = session.result()
            ratio = hand_log_ratio(entries, np.array(state.theta), given, delta)
            assert reject < ratio < accept
        answer = answers[item] if items.n_categories[item] == 3 else min(answers[item], 1)
        session.answer(item, answer)
        given.append((item, answer))
    state = session.result()
    ratio = hand_log_ratio(entries, np.array(state.theta), given, delta)
    if len(given) < 6:                            # stopped before the bank ran out: decided
        assert ratio >= accept or ratio <= reject
        assert state.decision == (1 if ratio >= accept else -1)
        assert session.last_step["stop"] == "rules_met"
    else:                                         # undecided: the side of the estimate
        assert state.decision == (1 if state.composite >= CUT else -1)


def test_a_malformed_sprt_is_refused():
    with pytest.raises(ValueError, match="delta must be > 0"):
        McatDesign(composite_weights=(0.5, 0.5), cut=0.0, classification="sprt", delta=0.0)
    with pytest.raises(ValueError, match="alpha \\+ beta < 1"):
        McatDesign(composite_weights=(0.5, 0.5), cut=0.0, classification="sprt", alpha=0.6,
                   beta=0.5)
    with pytest.raises(ValueError, match="classification method"):
        McatDesign(composite_weights=(0.5, 0.5), cut=0.0, classification="glr")


def simulation_bank(n_per_factor=30, seed=3):
    """A seeded 2-factor 2PL bank: one factor per standard, every fourth item also loading
    on the other factor."""
    rng = np.random.default_rng(seed)
    entries = []
    for f in range(2):
        for j in range(n_per_factor):
            slopes = [0.0, 0.0]
            slopes[f] = float(rng.lognormal(0.2, 0.25))
            if j % 4 == 0:
                slopes[1 - f] = float(rng.uniform(0.2, 0.6))
            entries.append({"id": f"F{f + 1}-{j}", "standard": f"F{f + 1}", "model": "2pl",
                            "a": slopes, "d": float(rng.normal(0, 1.2))})
    return MultidimensionalItems.from_entries(entries, {"factors": ["F1", "F2"]})


@pytest.fixture(scope="module")
def sprt_and_ci():
    """800 simulees from N(0, R2) (seed 4) on the 60-item bank, composite (F1 + F2)/2 against
    cut 0.3, up to 30 items: (truth's composite, CI run, SPRT run with delta 0.3)."""
    items = simulation_bank()
    truth = np.random.default_rng(4).multivariate_normal(np.zeros(2), R2, 800)
    runs = {}
    for method in ("ci", "sprt"):
        design = McatDesign(min_items=1, max_items=30, composite_weights=tuple(WEIGHTS),
                            cut=CUT, classification=method, delta=0.3)
        runs[method] = simulate(McatTables(items, np.zeros(2), R2, design), truth, seed=5)
    return items, truth @ WEIGHTS, runs["ci"], runs["sprt"]


def test_sprt_classifies_as_accurately_as_the_interval_in_fewer_items(sprt_and_ci):
    # Measured (seed 4/5): accuracy CI 0.925, SPRT 0.922; mean length CI 15.05, SPRT 13.38.
    # By distance of the true composite from the cut (mean length CI / SPRT):
    # 0.3-0.5: 21.1 / 17.1, 0.5-0.75: 16.0 / 12.8, 0.75-1: 10.2 / 9.1, 1-1.5: 5.1 / 5.5,
    # beyond 1.5: 3.7 / 4.5 (the interval includes the prior, the SPRT the answers only,
    # so far from the cut the interval ends a little sooner).
    _, composite, ci, sprt = sprt_and_ci
    truth_side = np.where(composite >= CUT, 1, -1)
    accuracy = {name: np.mean(run.decision == truth_side) for name, run in
                (("ci", ci), ("sprt", sprt))}
    assert abs(accuracy["sprt"] - accuracy["ci"]) < 0.02 and accuracy["sprt"] > 0.9
    # Wald: outside the indifference region the error rate is at most about alpha = beta
    outside = np.abs(composite - CUT) >= 0.3
    assert np.mean(sprt.decision[outside] != truth_side[outside]) < 0.05
    assert sprt.length.mean() < ci.length.mean() - 1
    between = outside & (np.abs(composite - CUT) < 1.0)
    assert sprt.length[between].mean() < ci.length[between].mean() - 1


def test_a_simulated_sprt_stop_is_beyond_walds_bounds(sprt_and_ci):
    items, _, _, sprt = sprt_and_ci
    accept, reject = np.log(0.95 / 0.05), np.log(0.05 / 0.95)
    ratio = sprt_log_ratio(items, sprt.theta, sprt.items, sprt.answers, WEIGHTS, CUT, 0.3)
    decided = sprt.reason == 3                                          # rules_met
    assert decided.mean() > 0.7
    assert np.all((ratio[decided] >= accept) | (ratio[decided] <= reject))
    np.testing.assert_array_equal(sprt.decision[decided], np.where(ratio[decided] >= accept,
                                                                    1, -1))
    # the others ran to max_items (a ratio may cross a bound at the last answer: the
    # reason is then max_items, the decision still the SPRT's); inside: the estimate's side
    assert np.all(sprt.length[~decided] == 30)
    inside = ~decided & (ratio > reject) & (ratio < accept)
    np.testing.assert_array_equal(sprt.decision[inside],
                                  np.where(sprt.theta[inside] @ WEIGHTS >= CUT, 1, -1))
    crossed = ~decided & ~inside
    np.testing.assert_array_equal(sprt.decision[crossed], np.where(ratio[crossed] >= accept,
                                                                    1, -1))
