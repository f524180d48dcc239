"""A simulator that refuses what it cannot do: infeasible designs are refused with their
reason, no test ends early for a rule, and the report counts what broke.

Where an expected value comes from is said next to it: a closed form (the exposure rates
of the scored items sum to the mean test length, so the highest is at least that length
over the number of scored items), the truth of a simulation (the design's own rules:
lengths, content counts), or the issue's measurements (Sympson-Hetter driving every K to 0
stopped 30-item tests at 17; content minimums 6 + 6 within 10 items).
"""

from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from irtcat.api.simulation_report import report, simulate_and_report, violations
from irtcat.delivery.cat_config import design_from_config
from irtcat.engine.design import CATDesign, ContentRule, Exposure, Stopping
from irtcat.engine.simulate import run_cat, simulate_responses, tune_sympson_hetter
from irtcat.engine.validation import (
    InfeasibleDesignError,
    check_design,
    lowest_exposure_bound,
)
from irtcat.itembank import DataFormatError, bank_from_document


def two_standard_bank(n_items=300, n_pretest=0, seed=21):
    """n_items 2PL items alternating between standards S1 and S2; the last `n_pretest`
    of them pretest items (status "pretest")."""
    rng = np.random.default_rng(seed)
    items = [{"id": f"I{j:03d}", "standard": "S1" if j % 2 else "S2", "model": "2pl",
              "a": round(float(rng.lognormal(0.0, 0.25)), 3),
              "b": round(float(rng.normal()), 3),
              **({"status": "pretest"} if j >= n_items - n_pretest else {})}
             for j in range(n_items)]
    return bank_from_document({"format": "irtcat-bank/1", "items": items})


FIXED_30 = {"min_items": 30, "max_items": 30, "se": None}


# --- refused before running --------------------------------------------------------------

@pytest.mark.parametrize("config, reason", [
    # The issue: content minimums of 6 + 6 with at most 10 items.
    ({"content": [{"standard": "S1", "min": 6}, {"standard": "S2", "min": 6}],
      "stop": {"min_items": 5, "max_items": 10}},
     "content minimums 6 (S1) + 6 (S2) = 12 are over stop.max_items 10"),
    # The issue: Sympson-Hetter at 0.01 with 30-item tests; 30 / 300 = 0.100.
    ({"exposure": {"method": "sympson-hetter", "target": 0.01}, "stop": FIXED_30},
     "exposure.target 0.01 is under 0.100 = 30 scored items per test over 300 operational"),
    # The issue: item eligibility at 0.01 (it gave 0.20).
    ({"exposure": {"method": "item-eligibility", "target": 0.01}, "stop": FIXED_30},
     "exposure.target 0.01 is under 0.100"),
    # Variable length: every test gives at least min_items = 15: 15 / 300 = 0.050.
    ({"exposure": {"method": "item-eligibility", "target": 0.04},
      "stop": {"min_items": 15, "max_items": 30, "se": 0.3}},
     "exposure.target 0.04 is under 0.050 = 15 scored items per test over 300"),
    # A content minimum of 100 over the 150 items of S1 puts S1's mean rate at 0.667.
    ({"exposure": {"method": "sympson-hetter", "target": 0.5},
      "content": [{"standard": "S1", "min": 100}], "stop": {"min_items": 5, "max_items": 120}},
     "exposure.target 0.5 is under 0.667 = content minimum 100 over the 150 operational "
     "items of S1"),
    ({"stop": {"min_items": 301, "max_items": 310}},
     "stop.min_items 301 is over the 300 operational items"),
    ({"content": [{"standard": "S1", "min": 151}], "stop": {"min_items": 5, "max_items": 200}},
     "content S1: min 151 is over its 150 operational items"),
    ({"content": [{"standard": "S1", "max": 3}, {"standard": "S2", "max": 4}],
      "stop": {"min_items": 10, "max_items": 20}},
     "content maximums leave at most 7 items, under stop.min_items 10"),
])
def test_infeasible_designs_are_refused_with_their_reason(config, reason):
    with pytest.raises(DataFormatError) as refused:
        design_from_config(config, two_standard_bank())
    message = str(refused.value)
    assert message.startswith("the design cannot be honoured: ") and "\n" not in message
    assert reason in message


def test_pretest_items_do_not_count_as_operational():
    # Expected: 40 items of which 15 pretest leave 25 operational: min_items 26 is refused,
    # 25 is not.
    bank = two_standard_bank(40, n_pretest=15)
    with pytest.raises(DataFormatError, match="min_items 26 is over the 25 operational"):
        design_from_config({"stop": {"min_items": 26, "max_items": 30}}, bank)
    design_from_config({"stop": {"min_items": 25, "max_items": 30}}, bank)


def test_enemy_sets_count_against_min_items():
    # Expected: 10 items in 3 disjoint enemy sets of 3 leave at most 10 - 3 * 2 = 4.
    design = CATDesign(stopping=Stopping(min_items=5, max_items=5, se=None),
                       content=replace(CATDesign().content, enemies=(
                           np.arange(0, 3), np.arange(3, 6), np.arange(6, 9))))
    with pytest.raises(InfeasibleDesignError, match="over the 4 operational items a test"):
        check_design(design, 10)
    check_design(replace(design, stopping=Stopping(min_items=4, max_items=5, se=None)), 10)


def test_the_bound_is_the_mean_length_over_the_bank():
    # Expected: closed form: a fixed length L over J scored items gives L / J; a target at
    # exactly that bound is accepted (every item at the bound is a possible run).
    design = CATDesign(stopping=Stopping(min_items=20, max_items=20, se=None),
                       exposure=Exposure(method="sympson-hetter", target=0.1))
    assert lowest_exposure_bound(design, 200)[0] == pytest.approx(0.1)
    check_design(design, 200)
    with pytest.raises(InfeasibleDesignError):
        check_design(design, 199)


def test_uncontrolled_exposure_ignores_the_target():
    # Expected: "none" and "randomesque" aim at no target, so none is refused.
    for method in ("none", "randomesque"):
        check_design(CATDesign(exposure=Exposure(method=method, target=0.0)), 50)


# --- no test ends early --------------------------------------------------------------------

def fixed_design(bank, **exposure):
    return design_from_config({"exposure": exposure, "stop": FIXED_30}, bank)


def test_sympson_hetter_at_k_zero_completes_every_test():
    # The issue: with every K at 0 the walk passed over (and dropped) ~23 items a step
    # and tests stopped at 17 of 30. Expected: the design's fixed length, every test.
    bank = two_standard_bank()
    design = fixed_design(bank, method="sympson-hetter", target=0.2)
    design = replace(design, exposure=replace(design.exposure,
                                              sympson_hetter=np.zeros(bank.params.n_items)))
    theta = np.random.default_rng(1).normal(size=300)
    batches = run_cat(bank.params, design, np.random.default_rng(2), true_theta=theta)
    assert_array_equal(np.concatenate([b.scored_length for b in batches]), 30)
    assert report(batches, design, 0.0)["violations"] == {"content": 0, "length": 0,
                                                          "ended_early": 0}


def test_sympson_hetter_tuned_tight_never_ends_a_test_early():
    # The issue: at target 0.05, 87.7% of 30-item tests ended early. On 600 items the
    # bound is 30 / 600 = 0.05 exactly. Expected: every test 30 items long; the tuning's
    # last round and the report say whether the target was met.
    bank = two_standard_bank(600)
    design = fixed_design(bank, method="sympson-hetter", target=0.05)
    parameters, history = tune_sympson_hetter(bank.params, design, np.random.default_rng(3),
                                              n_examinees=600, iterations=6)
    assert parameters.min() > 0
    tuned = replace(design, exposure=replace(design.exposure, sympson_hetter=parameters))
    theta = np.random.default_rng(4).normal(size=600)
    batches = run_cat(bank.params, tuned, np.random.default_rng(5), true_theta=theta)
    result = report(batches, tuned, 0.0)
    assert_array_equal(np.concatenate([b.scored_length for b in batches]), 30)
    assert result["violations"]["ended_early"] == 0
    exposure = result["exposure"]
    assert exposure["target"] == 0.05 and exposure["lowest_possible_max"] == 0.05
    assert exposure["target_met"] == (exposure["max"] <= 0.05 + 0.02)   # 3 SD < 0.02 here


@pytest.mark.parametrize("exposure", [{}, {"method": "item-eligibility", "target": 0.3},
                                      {"method": "randomesque", "k": 5}])
def test_a_test_goes_on_until_its_content_minimums_are_met(exposure):
    # Before, a test whose SE was met stopped at min_items with minimums unmet. Expected:
    # the design's rules: each standard at least 6, at most 12, length within [5, 20].
    bank = two_standard_bank(120)
    config = {"content": [{"standard": "S1", "min": 6, "max": 12},
                          {"standard": "S2", "min": 6, "max": 12}],
              "stop": {"min_items": 5, "max_items": 20, "se": 0.5}, "exposure": exposure}
    design = design_from_config(config, bank)
    theta = np.random.default_rng(6).normal(size=400)
    batches = run_cat(bank.params, design, np.random.default_rng(7), true_theta=theta)
    for key in design.content.groups:
        counts = np.concatenate([b.group_counts[key] for b in batches])
        assert counts.min() >= 6 and counts.max() <= 12
    length = np.concatenate([b.scored_length for b in batches])
    assert length.min() >= 12 and length.max() <= 20
    assert report(batches, design, 0.0)["violations"] == {"content": 0, "length": 0,
                                                          "ended_early": 0}


def test_violations_counts_what_broke():
    # Expected: the rules of the design read on results we built: one test too short
    # (also ended early), one over a content maximum, one fine.
    design = CATDesign(stopping=Stopping(min_items=3, max_items=5, se=None),
                       content=replace(CATDesign().content,
                                       rules=(ContentRule("g", min=1, max=2),),
                                       groups={"g": np.ones(10, bool)}))
    bank = two_standard_bank(10)
    batch = run_cat(bank.params, design, np.random.default_rng(8),
                    true_theta=np.zeros(3))[0]
    broken = replace(batch, scored_length=np.array([2, 4, 4]),
                     group_counts={"g": np.array([1, 3, 2])})
    assert violations([broken], design) == {"content": 1, "length": 1, "ended_early": 1}


# --- pretest items reported on their own ------------------------------------------------------

def test_pretest_items_stay_out_of_the_operational_figures():
    # Expected: simulation truth read off the administered items: exposure and overlap
    # from the 60 operational items only; the pretest block counts 3 per test.
    bank = two_standard_bank(65, n_pretest=5)
    design = design_from_config({"pretest": {"count": 3},
                                 "stop": {"min_items": 10, "max_items": 10, "se": None}}, bank)
    theta = np.random.default_rng(9).normal(size=500)
    batches = run_cat(bank.params, design, np.random.default_rng(10), true_theta=theta)
    result = report(batches, design, 0.0, true_theta=theta)
    administered = np.concatenate([b.administered for b in batches])
    counts = administered[:, :60].sum(axis=0)
    assert result["mean_length"] == 10.0
    assert result["exposure"]["max"] == round(counts.max() / 500, 4)
    assert result["exposure"]["mean"] == round(10 / 60, 4)             # L / J operational
    overlap = np.sum(counts * (counts - 1.0)) / (500 * 499) / 10
    assert result["overlap_rate"] == round(overlap, 4)
    assert result["pretest"]["items"] == 5
    assert result["pretest"]["administered"] == 1500 and result["pretest"]["per_test"] == 3.0
    pretest_counts = administered[:, 60:].sum(axis=0)
    assert result["pretest"]["exposure_max"] == round(pretest_counts.max() / 500, 4)


def test_tuning_counts_scored_items_only():
    # Expected: the tuning's first round is plain MFI, whose first item goes to everyone
    # (1.0); pretest items (1 per test of 5 candidates, 0.2 each) never enter its history.
    bank = two_standard_bank(65, n_pretest=5)
    design = design_from_config({"pretest": {"count": 1},
                                 "exposure": {"method": "sympson-hetter", "target": 0.5},
                                 "stop": {"min_items": 10, "max_items": 10, "se": None}}, bank)
    _, history = tune_sympson_hetter(bank.params, design, np.random.default_rng(11),
                                     n_examinees=300, iterations=2)
    assert history[0] == 1.0


def test_simulate_and_report_carries_the_new_keys():
    # Expected: the queued simulation's report (the API's) has the same new keys.
    bank = two_standard_bank(60)
    design = design_from_config({"exposure": {"method": "item-eligibility", "target": 0.4},
                                 "stop": {"min_items": 10, "max_items": 10, "se": None}}, bank)
    rng = np.random.default_rng(12)
    result = simulate_and_report(bank.params, design, rng, rng.normal(size=200), 12)
    assert result["violations"] == {"content": 0, "length": 0, "ended_early": 0}
    assert {"target", "target_met", "lowest_possible_max"} <= set(result["exposure"])
    assert "pretest" not in result


def test_replayed_answers_keep_the_rules():
    # Expected: a replay (answers fixed up front) with pretest slots and content rules
    # still gives each test its scored length in [8, 15] and the minimums.
    bank = two_standard_bank(84, n_pretest=4)
    design = design_from_config({"pretest": {"count": 2},
                                 "content": [{"standard": "S1", "min": 4},
                                             {"standard": "S2", "min": 4}],
                                 "stop": {"min_items": 8, "max_items": 15, "se": 0.45}}, bank)
    matrix = simulate_responses(np.linspace(-2, 2, 200), bank.params,
                                np.random.default_rng(13))
    batches = run_cat(bank.params, design, np.random.default_rng(14), responses=matrix)
    assert report(batches, design, 0.0)["violations"] == {"content": 0, "length": 0,
                                                          "ended_early": 0}


def test_content_minimums_lengthen_the_shortest_test():
    # Expected: closed form: minimums 8 (S1) + 8 (S2) make every test at least 16 long,
    # over min_items 5: 16 / 300 = 0.053 is the bound, so 0.05 is refused.
    config = {"exposure": {"method": "item-eligibility", "target": 0.05},
              "content": [{"standard": "S1", "min": 8}, {"standard": "S2", "min": 8}],
              "stop": {"min_items": 5, "max_items": 30, "se": 0.3}}
    with pytest.raises(DataFormatError, match="under 0.053 = 16 scored items per test"):
        design_from_config(config, two_standard_bank())
    design_from_config({**config, "exposure": {"method": "item-eligibility",
                                               "target": 0.054}}, two_standard_bank())


def test_the_default_min_items_fits_a_small_bank():
    # Expected: FORMATS.md's default min_items 5 is lowered to a 3-item bank's 3 (nothing
    # was asked for); min_items 5 asked for is refused.
    bank = two_standard_bank(3)
    assert design_from_config({}, bank).stopping.min_items == 3
    with pytest.raises(DataFormatError, match="min_items 5 is over the 3 operational"):
        design_from_config({"stop": {"min_items": 5}}, bank)
