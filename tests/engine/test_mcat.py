"""The multidimensional adaptive test (engine.mcat, engine.mcat_selection): closed forms,
the unidimensional engine as the one-factor case, and simulation truth."""

import numpy as np
import pytest

from irtcat.engine.design import CATDesign, Stopping
from irtcat.engine.mcat import McatDesign, McatSession, McatTables, simulate
from irtcat.engine.mcat_scoring import estimate_eap, grid_log_likelihood, latent_grid
from irtcat.engine.mcat_selection import determinant, information_criterion, inverse_diagonal
from irtcat.engine.models import ItemParameters
from irtcat.engine.multidimensional import MultidimensionalItems, information
from irtcat.engine.session import BankTables, Session

CORRELATION = np.array([[1, .5, .6], [.5, 1, .7], [.6, .7, 1]])


def simple_structure(n_per_factor, n_factors, seed, polytomous=False, log_slope=0.0):
    rng = np.random.default_rng(seed)
    entries = []
    for f in range(n_factors):
        for j in range(n_per_factor):
            a = [0.0] * n_factors
            a[f] = float(rng.lognormal(log_slope, 0.3))
            if polytomous and j % 3 == 2:
                entries.append({"id": f"F{f + 1}-{j}", "standard": f"F{f + 1}", "model": "gpcm",
                                "a": a, "d": rng.normal(0, 1, 2).tolist()})
            else:
                entries.append({"id": f"F{f + 1}-{j}", "standard": f"F{f + 1}", "model": "2pl",
                                "a": a, "d": float(rng.normal())})
    return MultidimensionalItems.from_entries(
        entries, {"factors": [f"F{f + 1}" for f in range(n_factors)]})


def test_closed_form_determinant_and_inverse_equal_linalg():
    rng = np.random.default_rng(1)
    for m in (1, 2, 3, 4):
        x = rng.normal(size=(50, m, m))
        matrices = x @ np.swapaxes(x, 1, 2) + 0.1 * np.eye(m)
        np.testing.assert_allclose(determinant(matrices), np.linalg.det(matrices), rtol=1e-10)
        np.testing.assert_allclose(inverse_diagonal(matrices),
                                   np.diagonal(np.linalg.inv(matrices), axis1=1, axis2=2),
                                   rtol=1e-9)
    singular = np.outer([1.0, 2.0, 0.5], [1.0, 2.0, 0.5])[None]
    np.testing.assert_allclose(inverse_diagonal(singular),
                               np.diagonal(np.linalg.pinv(singular), axis1=1, axis2=2)[None][0])


def test_d_rule_value_is_the_determinant_of_the_posterior_information():
    """The trace's candidate values equal det(prior precision + sum of the administered
    items' I + the candidate's I) computed directly at the session's estimate."""
    items = simple_structure(10, 3, seed=2)
    design = McatDesign(criterion="dprule", max_items=6)
    tables = McatTables(items, np.zeros(3), CORRELATION, design)
    session = McatSession(tables, seed=1)
    for answer in (1, 0, 1):
        session.answer(session.next_item(), answer)
    item = session.next_item()
    result = session.result()
    theta = np.array(result.theta)
    at_theta = information(theta[None], items)[0]                      # (n, 3, 3)
    held = np.linalg.inv(CORRELATION) + at_theta[list(result.items)].sum(axis=0)
    direct = np.linalg.det(held[None] + at_theta)
    direct[list(result.items)] = -np.inf
    assert item == int(np.argmax(direct))
    for position, value in session.last_step["candidates"]:
        assert value == pytest.approx(direct[position], rel=1e-5)
    # and the estimate is the EAP of the answers on the bank's grid
    pattern = np.full((1, items.n_items), np.nan)
    pattern[0, list(result.items)] = result.responses
    eap = estimate_eap(pattern, items, np.zeros(3), CORRELATION)
    np.testing.assert_allclose(theta, eap.theta[0], atol=1e-12)


def test_t_and_a_rules_are_the_trace_and_the_inverse_trace():
    rng = np.random.default_rng(3)
    held = np.eye(3)[None] * 2.0
    a = rng.normal(size=(7, 3))
    candidates = (rng.uniform(0.1, 0.3, 7)[:, None, None] * a[:, :, None] * a[:, None, :])[None]
    total = held[:, None] + candidates
    np.testing.assert_allclose(information_criterion("trule", held, candidates),
                               np.trace(total, axis1=2, axis2=3))
    np.testing.assert_allclose(information_criterion("arule", held, candidates),
                               -np.trace(np.linalg.inv(total), axis1=2, axis2=3))


@pytest.mark.parametrize("criterion", ["drule", "dprule", "trule", "arule"])
def test_one_factor_picks_the_items_of_the_unidimensional_mfi(criterion):
    """With one factor every information rule is increasing in the candidate's
    information, so it picks what the unidimensional engine's MFI with EAP on the same
    121-node grid picks, step by step, and ends at the same EAP."""
    rng = np.random.default_rng(5)
    a, b = rng.lognormal(0, 0.3, 30), rng.normal(size=30)
    uni = ItemParameters.create("2pl", a, b)
    multi = MultidimensionalItems.from_entries(
        [{"id": f"i{j}", "model": "2pl", "a": [a[j]], "d": -a[j] * b[j]} for j in range(30)],
        {"factors": ["F"]})
    design = McatDesign(criterion=criterion, max_items=12, min_items=12)
    session = McatSession(McatTables(multi, [0.0], [[1.0]], design), seed=1)
    uni_design = CATDesign(stopping=Stopping(min_items=12, max_items=12, se=None))
    reference = Session(BankTables(uni, uni_design), uni_design, seed=1)
    answers = rng.random(12) < 0.5
    for step in range(12):
        mine, theirs = session.next_item(), reference.next_item()
        assert mine == theirs, f"step {step + 1}"
        session.answer(mine, int(answers[step]))
        reference.answer(theirs, int(answers[step]))
    else:
        assert session.result().theta[0] == pytest.approx(reference.result().theta, abs=1e-10)


def test_the_test_stops_when_every_factor_is_precise_enough():
    items = simple_structure(15, 3, seed=7, log_slope=0.4)
    design = McatDesign(criterion="dprule", max_items=45, se=(0.5, 0.5, 0.5))
    tables = McatTables(items, np.zeros(3), CORRELATION, design)
    truth = np.random.default_rng(8).multivariate_normal(np.zeros(3), CORRELATION, 100)
    run = simulate(tables, truth, seed=3)
    stopped_by_rule = run.reason == 3
    assert stopped_by_rule.mean() > 0.8
    assert np.all(run.length[~stopped_by_rule] == 45)      # the others took every item
    assert np.all(run.se[stopped_by_rule] <= 0.5)
    # A test one item shorter had not reached the target: the rule stopped at the first
    # length it held. Rescoring each test without its last answer shows it.
    for person in np.flatnonzero(stopped_by_rule)[:20]:
        count = run.length[person]
        pattern = np.full((1, items.n_items), np.nan)
        pattern[0, run.items[person, :count - 1]] = run.answers[person, :count - 1]
        shorter = estimate_eap(pattern, items, np.zeros(3), CORRELATION)
        assert np.any(shorter.se > 0.5)
    # Simulation truth: standardized errors with mean near 0 and SD near 1.
    z = (run.theta - truth) / run.se
    assert np.all(np.abs(z.mean(axis=0)) < 0.25) and np.all(np.abs(z.std(axis=0) - 1) < 0.2)


def test_composite_classification_and_content_rules():
    items = simple_structure(15, 3, seed=9, polytomous=True)
    content = (("F1", 3, 5), ("F2", 3, 5), ("F3", 0, 2))
    design = McatDesign(criterion="dprule", max_items=12, min_items=6,
                        composite_weights=(1 / 3, 1 / 3, 1 / 3), cut=0.3, content=content)
    tables = McatTables(items, np.zeros(3), CORRELATION, design)
    truth = np.random.default_rng(10).multivariate_normal(np.zeros(3), CORRELATION, 150)
    run = simulate(tables, truth, seed=4)
    standards = np.array(items.standards)
    for person in range(150):
        given = standards[run.items[person, :run.length[person]]]
        counts = [np.sum(given == f) for f in ("F1", "F2", "F3")]
        assert 3 <= counts[0] <= 5 and 3 <= counts[1] <= 5 and counts[2] <= 2
    decided = run.reason == 3
    value = run.theta @ np.full(3, 1 / 3)
    spread = np.sqrt(np.einsum("k,nkl,l->n", np.full(3, 1 / 3), run.covariance, np.full(3, 1 / 3)))
    assert np.all(np.abs(value[decided] - 0.3) >= 1.959963984540054 * spread[decided])
    truth_side = np.where(truth.mean(axis=1) >= 0.3, 1, -1)
    assert np.mean(run.decision[decided] == truth_side[decided]) > 0.9


def test_randomesque_and_sympson_hetter_spread_the_first_item():
    items = simple_structure(10, 3, seed=11)
    truth = np.zeros((400, 3))
    first = {}
    for exposure, extra in (("none", {}), ("randomesque", {"randomesque": 4}),
                            ("sympson-hetter", {"exposure_probability": (0.3,) * 30})):
        design = McatDesign(criterion="dprule", max_items=1, exposure=exposure, **extra)
        run = simulate(McatTables(items, np.zeros(3), CORRELATION, design), truth, seed=2)
        first[exposure] = np.bincount(run.items[:, 0], minlength=30) / 400
    assert first["none"].max() == 1.0
    assert 0.15 < first["randomesque"].max() < 0.4 and np.sum(first["randomesque"] > 0) == 4
    assert first["sympson-hetter"].max() < 0.45


def test_grid_nodes_of_three_factors():
    assert latent_grid(np.zeros(3), CORRELATION).nodes.shape == (15625, 3)


def test_map_scoring_and_item_eligibility():
    """MAP-scored tests hold estimate_map's theta of their answers; an item of
    eligibility probability 0 is never given (the pool drawn at the start)."""
    from irtcat.engine.mcat_scoring import estimate_map

    items = simple_structure(10, 3, seed=12)
    probability = np.where(np.arange(30) % 2 == 0, 0.0, 1.0)
    design = McatDesign(criterion="trule", scoring="map", max_items=8, min_items=8,
                        exposure="item-eligibility", exposure_probability=tuple(probability))
    truth = np.random.default_rng(13).multivariate_normal(np.zeros(3), CORRELATION, 30)
    run = simulate(McatTables(items, np.zeros(3), CORRELATION, design), truth, seed=5)
    assert np.all(run.items % 2 == 1) and np.all(run.length == 8)
    pattern = np.full((30, 30), np.nan)
    np.put_along_axis(pattern, run.items, run.answers.astype(float), axis=1)
    np.testing.assert_allclose(run.theta, estimate_map(pattern, items, np.zeros(3),
                                                       CORRELATION).theta, atol=1e-10)


def test_a_session_refuses_an_answer_it_cannot_take():
    items = simple_structure(4, 3, seed=14)
    session = McatSession(McatTables(items, np.zeros(3), CORRELATION, McatDesign(max_items=2)))
    item = session.next_item()
    session.answer(item, 1)
    with pytest.raises(ValueError, match="not one this test can take"):
        session.answer(item, 0)
    with pytest.raises(ValueError, match="outside"):
        session.answer((item + 1) % 12, 3)
    session.answer(session.next_item(), 0)
    assert session.next_item() is None and session.last_step["stop"] == "max_items"
    assert session.result().done and len(session.result().items) == 2


def test_focus_gives_no_item_of_a_standard_already_precise():
    """With focus and simple structure, once a factor's SE is at its target no item of it
    is chosen (re-scored step by step); a test whose unfinished factors have no item left
    ends there (pool_exhausted) with a factor above its target."""
    items = simple_structure(15, 3, seed=7, log_slope=0.4)
    design = McatDesign(criterion="dprule", max_items=45, se=(0.5, 0.5, 0.5), focus=True)
    truth = np.random.default_rng(15).multivariate_normal(np.zeros(3), CORRELATION, 6)
    run = simulate(McatTables(items, np.zeros(3), CORRELATION, design), truth, seed=6)
    factor_of = np.argmax(items.slopes != 0, axis=1)
    for person in range(6):
        pattern = np.full((1, 45), np.nan)
        for step in range(run.length[person]):
            se = estimate_eap(pattern, items, np.zeros(3), CORRELATION).se[0]
            item = run.items[person, step]
            assert se[factor_of[item]] > 0.5
            pattern[0, item] = run.answers[person, step]
        if run.reason[person] == 2:
            unfinished = run.se[person] > 0.5
            assert unfinished.any() and np.all(~np.isnan(pattern[0, unfinished[factor_of]]))


def test_kl_values_are_the_posterior_weighted_divergence():
    """KL of each candidate = sum_q post_q sum_k P_k(theta-hat) log(P_k(theta-hat)/P_k(theta_q)),
    computed here directly on the session's grid after three answers."""
    from irtcat.engine.multidimensional import log_probability

    items = simple_structure(6, 3, seed=16)
    tables = McatTables(items, np.zeros(3), CORRELATION, McatDesign(criterion="kl", max_items=5))
    session = McatSession(tables, seed=1)
    pattern = np.full((1, 18), np.nan)
    for answer in (1, 1, 0):
        item = session.next_item()
        session.answer(item, answer)
        pattern[0, item] = answer
    session.next_item()
    theta = np.array(session.result().theta)
    grid = tables.grid
    log_post = grid_log_likelihood(pattern, items, grid.nodes)[0] + grid.log_weights
    post = np.exp(log_post - log_post.max())
    post /= post.sum()
    p_hat = np.exp(log_probability(theta[None], items)[0])                       # (n, K)
    log_nodes = log_probability(grid.nodes, items)                                # (Q, n, K)
    direct = post @ np.sum(p_hat * (np.log(p_hat) - log_nodes), axis=-1)          # (n,)
    for position, value in session.last_step["candidates"]:
        assert value == pytest.approx(direct[position], rel=1e-5)
    assert session.last_step["item"] == int(np.argmax(np.where(np.isnan(pattern[0]), direct,
                                                               -np.inf)))


def _answered(session, answers):
    """Run `session` to its end answering item j with answers[j]: (items, first trace)."""
    given, first = [], None
    while (item := session.next_item()) is not None:
        first = first or session.last_step
        given.append(item)
        session.answer(item, int(answers[item]))
    return given, first


def test_live_item_eligibility_draws_from_its_own_stream_and_a_rebuild_restores_it():
    """Live item eligibility (a target, probabilities given at the start): each item is
    drawn ineligible with probability 1 - p_j (simulation truth over 600 seeds, within
    4 binomial SDs); with every p_j = 1 the session is the uncontrolled one draw for draw
    (its own stream leaves the selection's generator alone); a session built with the
    drawn `ineligible` positions (a rebuild) gives the same items and first trace, and
    never an ineligible one."""
    items = simple_structure(8, 3, seed=21)
    answers = np.random.default_rng(22).integers(0, 2, 24)
    live = McatDesign(criterion="dprule", min_items=6, max_items=6,
                      exposure="item-eligibility", exposure_target=0.3)
    assert live.live_eligibility
    tables = McatTables(items, np.zeros(3), CORRELATION, live)
    free = McatTables(items, np.zeros(3), CORRELATION,
                      McatDesign(criterion="dprule", min_items=6, max_items=6,
                                 exposure="randomesque", randomesque=3))
    randomesque_live = McatTables(items, np.zeros(3), CORRELATION, McatDesign(
        criterion="dprule", min_items=6, max_items=6, exposure="item-eligibility",
        exposure_target=0.3, randomesque=3))
    for seed in (3, 4):
        assert _answered(McatSession.start(randomesque_live, seed, np.ones(24)), answers)[0] \
            == _answered(McatSession(free, seed), answers)[0]
    probability = np.linspace(0.1, 1.0, 24)
    drawn = np.zeros(24)
    seeds = 600
    for seed in range(seeds):
        drawn[list(McatSession.start(tables, seed, probability).ineligible)] += 1
    spread = np.sqrt(seeds * probability * (1 - probability))
    assert np.all(np.abs(drawn - seeds * (1 - probability)) <= 4 * spread + 1e-9)
    session = McatSession.start(tables, 7, np.full(24, 0.5))
    assert session.ineligible
    given, first = _answered(session, answers)
    assert first["ineligible"] == list(session.ineligible)
    assert not set(given) & set(session.ineligible)
    rebuilt = McatSession(tables, 7, ineligible=session.ineligible)
    assert _answered(rebuilt, answers) == (given, first)
    assert _answered(McatSession(tables, 7), answers)[0] != given      # pool not restored


def test_live_item_eligibility_needs_a_target_in_range():
    with pytest.raises(ValueError, match="a probability per item or a target"):
        McatDesign(exposure="item-eligibility")
    with pytest.raises(ValueError, match=r"target must be in \[0, 1\]"):
        McatDesign(exposure="item-eligibility", exposure_target=1.5)
    items = simple_structure(4, 3, seed=14)
    tables = McatTables(items, np.zeros(3), CORRELATION, McatDesign(
        exposure="item-eligibility", exposure_target=0.2, max_items=2))
    with pytest.raises(ValueError, match="runs on live sessions"):
        simulate(tables, np.zeros((2, 3)))
