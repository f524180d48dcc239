"""Simulation studies (`delivery.studies`): the same study in one process and on a Dask
cluster of one or two workers, the documented seeding, the designs file.

Expected values: the study run in this process (the cluster must give it number for
number), an independent re-run of one unit from the seed keys the module documents,
closed forms of a fixed-length design (every test has L items; mean exposure L / J),
and the per-simulee rows (the summary's RMSE and bias are theirs).
"""

import dataclasses

import numpy as np
import pytest

from irtcat.api.study_command import design_summary, study_groups
from irtcat.calibration.cluster import local_cluster
from irtcat.delivery import studies
from irtcat.engine.simulate import run_cat
from irtcat.itembank import DataFormatError, bank_from_document

N_ITEMS = 40
EXAMINEES = 250
UNIT = 100            # 3 units a design (100, 100, 50)
SEED = 11


@pytest.fixture(scope="module")
def bank():
    """40 2PL items in two standards, seeded."""
    rng = np.random.default_rng(3)
    items = [{"id": f"Q{j:02d}", "standard": "S1" if j % 2 else "S2", "model": "2pl",
              "a": round(float(rng.lognormal(0.1, 0.25)), 3),
              "b": round(float(rng.normal()), 3)} for j in range(N_ITEMS)]
    return bank_from_document({"format": "irtcat-bank/1", "items": items})


DOCUMENT = {
    "base": {"stop": {"min_items": 5, "max_items": 12, "se": 0.4}},
    "designs": [
        {"name": "fixed-10", "config": {"stop": {"min_items": 10, "max_items": 10,
                                                 "se": None}}},
        {"name": "se-0.4"},
        {"name": "sympson-hetter", "config": {"exposure": {"method": "sympson-hetter",
                                                           "target": 0.8}}},
        {"name": "eligibility", "config": {"exposure": {"method": "item-eligibility",
                                                        "target": 0.5}}},
        {"name": "content-cut", "config": {
            "content": [{"standard": "S1", "min": 3}, {"standard": "S2", "min": 3}],
            "stop": {"classification": {"cut": 0.0}}}},
    ]}


@pytest.fixture(scope="module")
def designs(bank):
    return studies.read_designs(DOCUMENT, bank)


@pytest.fixture(scope="module")
def here(bank, designs):
    """The study run in this process."""
    return studies.run_study(bank, designs, EXAMINEES, SEED, unit=UNIT, groups=study_groups)


FIELDS = ("items", "responses", "scored", "length", "scored_length", "theta", "se",
          "decision")


def assert_same_study(first, second):
    assert [result.name for result in first] == [result.name for result in second]
    for one, other in zip(first, second, strict=True):
        assert np.array_equal(one.true_theta, other.true_theta)
        assert one.tuning == other.tuning
        for name in FIELDS:
            assert np.array_equal(one.joined(name), other.joined(name)), (one.name, name)
        assert design_summary(one) == design_summary(other)


def test_the_cluster_gives_the_study_of_one_process(bank, designs, here, dask_client):
    # Expected: the in-process run, array for array (the seeds are the units', never
    # the workers'), and so the same summary per design.
    there = studies.run_study(bank, designs, EXAMINEES, SEED, dask_client, unit=UNIT,
                              groups=study_groups)
    assert_same_study(here, there)


def test_one_worker_gives_the_study_of_two(bank, designs, dask_client):
    # Expected: the study on the module's two workers, run again on a cluster of one.
    distributed = pytest.importorskip("distributed")
    two = studies.run_study(bank, designs[:2], EXAMINEES, SEED, dask_client, unit=UNIT)
    with local_cluster(1) as cluster, \
            distributed.Client(cluster) as single:
        one = studies.run_study(bank, designs[:2], EXAMINEES, SEED, single, unit=UNIT)
    assert_same_study(two, one)


def test_one_design_is_a_study_of_it_alone(bank, designs, dask_client):
    # Expected: run_study of that design alone, on the cluster as here.
    [alone] = studies.run_study(bank, designs[2:3], EXAMINEES, SEED, unit=UNIT)
    there = studies.simulate_design(bank.params, designs[2].design, EXAMINEES, SEED, dask_client,
                                    unit=UNIT)
    assert_same_study([alone], [dataclasses.replace(there, name=alone.name)])


def test_a_unit_is_its_documented_seeds(bank, designs, here):
    # Expected: design 1, block 1 (simulees 100..199) re-run by hand from the keys of the
    # module docstring: abilities from (seed, 0, k), tests from (seed, 1, d, k).
    design = designs[1].design
    z = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(0, 1))) \
        .standard_normal(UNIT)
    true_theta = design.scoring.prior_mean + design.scoring.prior_sd * z
    [batch] = run_cat(bank.params, design,
                      np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(1, 1, 1))),
                      true_theta=true_theta)
    result = here[1]
    assert np.array_equal(result.true_theta[UNIT:2 * UNIT], true_theta)
    assert np.array_equal(result.joined("theta")[UNIT:2 * UNIT], batch.theta)
    assert np.array_equal(result.joined("items")[UNIT:2 * UNIT], batch.items)


def test_designs_meet_the_same_simulees(here):
    # Expected: every design here has the N(0, 1) prior, so the same abilities.
    for result in here[1:]:
        assert np.array_equal(result.true_theta, here[0].true_theta)
    assert here[0].true_theta.size == EXAMINEES


def test_item_eligibility_is_one_unit(designs):
    # Expected: 3 blocks of 100, 100, 50 simulees; the item-eligibility design (index
    # 3) one unit holding the three.
    work = studies.units(designs, EXAMINEES, UNIT)
    assert work.count((3, (0, 1, 2))) == 1
    assert [blocks for index, blocks in work if index == 0] == [(0,), (1,), (2,)]
    assert len(work) == 4 * 3 + 1


def test_summary_is_the_figures_of_the_rows(here):
    # Expected: RMSE, bias, mean SE and lengths computed here from the per-simulee rows;
    # closed forms of the fixed-length design: every test 10 items, mean exposure 10/40.
    for result in here:
        entry = design_summary(result)
        error = result.joined("theta") - result.true_theta
        assert entry["rmse"] == round(float(np.sqrt(np.mean(error**2))), 4)
        assert entry["bias"] == round(float(np.mean(error)), 4)
        assert entry["mean_se"] == round(float(np.mean(result.joined("se"))), 4)
        assert entry["examinees"] == EXAMINEES
        length = result.joined("scored_length")
        assert (entry["min_length"], entry["max_length"]) == (length.min(), length.max())
    fixed = design_summary(here[0])
    assert fixed["mean_length"] == fixed["min_length"] == fixed["max_length"] == 10
    assert fixed["exposure"]["mean"] == pytest.approx(10 / N_ITEMS, abs=1e-4)
    cut = here[4]
    truth = np.where(cut.true_theta >= 0.0, 1, -1)
    assert design_summary(cut)["classification"]["accuracy"] == round(
        float(np.mean(cut.joined("decision") == truth)), 4)


def test_a_design_is_tuned_once(here):
    # Expected: the Sympson-Hetter design carries its tuning (K of every item, some < 1
    # at a target of 0.8 that plain MFI overshoots) and the others none.
    tuned = here[2]
    assert tuned.tuning is not None and tuned.tuning["rounds"] >= 1
    assert tuned.design.exposure.sympson_hetter.shape == (N_ITEMS,)
    assert [result.tuning is None for result in here] == [True, True, False, True, True]


def test_a_design_is_its_config_over_the_base(designs):
    # Expected: DOCUMENT: the base's stop rule, with the design's keys over it.
    assert designs[1].config == {"stop": {"min_items": 5, "max_items": 12, "se": 0.4}}
    assert designs[0].config["stop"] == {"min_items": 10, "max_items": 10, "se": None}
    assert designs[4].config["stop"]["max_items"] == 12
    assert designs[4].config["stop"]["classification"] == {"cut": 0.0}


@pytest.mark.parametrize("document, message", [
    ([], "expected an object"),
    ({"designs": []}, "non-empty list"),
    ({"designs": [{"name": "a"}], "extra": 1}, "unknown key 'extra'"),
    ({"designs": [{"name": "a"}, {"name": "a"}]}, "designs[1]: the name 'a' is used twice"),
    ({"designs": [{"config": {}}]}, "designs[0] needs a name"),
    ({"designs": [{"name": "a", "config": []}]}, "'config' must be an object"),
    ({"designs": [{"name": "a", "config": {"stop": {"max_items": 0}}}]}, "designs[0] ('a'):"),
    ({"base": {"selection": {"method": "best"}}, "designs": [{"name": "a"}]},
     "designs[0] ('a'): selection.method"),
])
def test_bad_designs_are_refused_naming_the_design(bank, document, message):
    # Expected: one DataFormatError line naming the design at fault.
    with pytest.raises(DataFormatError) as caught:
        studies.read_designs(document, bank)
    assert message in str(caught.value)
