"""Fixed-item calibration (calibration.fixed_calib): the fixedcalib reference design of
refs2 (anchors' true parameters, the samples' true theta summaries), simulation truth
for the new items, and the estimators' defining equations."""

import json
import pathlib

import numpy as np
import pytest

from irtcat.calibration.fixed_calib import (
    METHODS,
    StackedResponses,
    dense_responses,
    fixed_calib,
    method_name,
    normal_weights,
    population_mml,
    posterior_node_mass,
)
from irtcat.calibration.workflow import CalibrationInputError
from irtcat.itembank.io import read_responses

REFS2 = pathlib.Path(__file__).resolve().parents[1] / "data" / "refs2"
TRUTH = json.loads((REFS2 / "fixedcalib_truth.json").read_text())
ANCHORS = {item["id"]: {"id": item["id"], "model": "2pl", "a": item["a"], "b": item["b"]}
           for item in TRUTH["anchor_items_known"]}


@pytest.fixture(scope="module")
def samples():
    return (read_responses(str(REFS2 / "fixedcalib_old_2000x60.csv")),
            read_responses(str(REFS2 / "fixedcalib_new_2000x80.csv")))


def test_plain_fixed_calibration_recovers_the_new_population(samples):
    # refs2 fixedcalib_truth.json: the new sample's true thetas have mean 0.2784 and sd
    # 1.1407 (drawn from N(0.3, 1.1^2)). The MML estimate with the anchors at their true
    # values must lie within 2 SE of a sample mean (1.1 / sqrt(2000)) and of a sample sd
    # (1.1 / sqrt(2 * 2000)) of them: measurement adds less than sampling here.
    _, new = samples
    result = fixed_calib(new, ANCHORS, method="fixed")
    summary = TRUTH["new_sample"]["theta_summary"]
    assert abs(result.mean - summary["mean"]) < 2 * 1.1 / np.sqrt(2000)
    assert abs(result.sd - summary["sd"]) < 2 * 1.1 / np.sqrt(4000)
    record = result.document["calibration"]["fixed_calibration"]
    assert record["method"] == "fixed" and record["nodes"] == 61
    assert result.document["population"] == {"mean": round(result.mean, 6),
                                             "sd": round(result.sd, 6)}
    assert sorted(result.new_items) == [f"N{j:02d}" for j in range(1, 21)]
    assert all(item["anchor"] for item in result.document["items"] if item["id"] in ANCHORS)


def test_plain_fixed_population_solves_the_latent_score_equations(samples):
    # At the joint MLE the population's scores vanish given the items: the estimated
    # (mean, sd) is the MML of N(mean, sd) with every item (anchors and new) fixed at
    # the estimates, found here by its own fixed-point iteration (population_mml).
    _, new = samples
    result = fixed_calib(new, ANCHORS, method="fixed")
    items = {item["id"]: item for item in result.document["items"]}
    mean, sd = population_mml(dense_responses(new), new.item_ids, items)
    assert mean == pytest.approx(result.mean, abs=1e-4)
    assert sd == pytest.approx(result.sd, abs=1e-4)


def test_population_mml_recovers_a_simulated_population():
    # Simulation truth: 40 items fixed at their generating values, 4000 persons from
    # N(-0.4, 0.8^2); the estimates lie within 3 SE of the sample's own mean and sd.
    rng = np.random.default_rng(5)
    a, b = np.exp(rng.normal(0, 0.25, 40)), rng.normal(0, 1, 40)
    theta = rng.normal(-0.4, 0.8, 4000)
    x = (rng.random((4000, 40)) < 1 / (1 + np.exp(-a * (theta[:, None] - b)))).astype(float)
    ids = [f"I{j}" for j in range(40)]
    items = {i: {"model": "2pl", "a": a[j], "b": b[j]} for j, i in enumerate(ids)}
    mean, sd = population_mml(x, ids, items)
    assert abs(mean - theta.mean()) < 3 * 0.8 / np.sqrt(4000)
    assert abs(sd - theta.std()) < 3 * 0.8 / np.sqrt(8000)


def test_owu_holds_the_old_samples_posterior_and_mwu_updates_it(samples):
    old, new = samples
    nodes = np.linspace(-6, 6, 121)
    old_mass = posterior_node_mass(dense_responses(old), old.item_ids, ANCHORS, nodes,
                                   normal_weights(nodes, 0.0, 1.0)).sum(axis=0)
    owu = fixed_calib(new, ANCHORS, method="owu", old=old)
    np.testing.assert_allclose(owu.weights, old_mass / old_mass.sum(), rtol=1e-12)
    mwu = fixed_calib(new, ANCHORS, method="mwu", old=old)
    assert mwu.calibrator.converged_ and mwu.calibrator.n_iter_ > 1
    # The empirical histogram's fixed point: the prior is the stacked persons' mean
    # posterior under the final items (up to EM's stopping rule, tol 1e-4 on the items).
    old_x = np.full((2000, 80), np.nan)
    old_x[:, :60] = dense_responses(old)      # the old sample answered the anchors A01-A60
    stacked = StackedResponses(list(old.person_ids) + list(new.person_ids),
                               list(new.item_ids), np.vstack([old_x, dense_responses(new)]))
    items = {item["id"]: item for item in mwu.document["items"]}
    mean_posterior = posterior_node_mass(stacked.responses, stacked.item_ids, items,
                                         mwu.nodes, mwu.weights).mean(axis=0)
    assert np.abs(mean_posterior - mwu.weights).max() < 0.01 * mwu.weights.max()
    assert np.abs(mwu.weights - owu.weights).max() > 10 * np.abs(
        mean_posterior - mwu.weights).max()


def test_one_em_cycle_is_one_cycle(samples):
    old, new = samples
    result = fixed_calib(new, ANCHORS, method="mwu-oem", old=old)
    assert result.calibrator.n_iter_ == 1
    assert result.document["calibration"]["fixed_calibration"]["method"] == "mwu-oem"


def _simulated_design(seed):
    """The refs2 fixedcalib recipe with known new items: 60 anchors, 20 new items;
    old 2000 persons N(0, 1) on every anchor; new 2000 persons N(0.3, 1.1^2), each
    answering 30 random anchors and 5 random new items."""
    rng = np.random.default_rng(seed)
    a, b = np.exp(rng.normal(0, 0.25, 80)), rng.normal(0, 1, 80)

    def answers(theta):
        return (rng.random((theta.size, 80)) <
                1 / (1 + np.exp(-a * (theta[:, None] - b)))).astype(float)

    ids = [f"A{j:02d}" for j in range(1, 61)] + [f"N{j:02d}" for j in range(1, 21)]
    old_x = answers(rng.normal(0, 1, 2000))[:, :60]
    new_x = answers(rng.normal(0.3, 1.1, 2000))
    for row in new_x:
        keep = np.concatenate([rng.choice(60, 30, replace=False),
                               60 + rng.choice(20, 5, replace=False)])
        hidden = np.ones(80, dtype=bool)
        hidden[keep] = False
        row[hidden] = np.nan
    old = StackedResponses([f"o{i}" for i in range(2000)], ids[:60], old_x)
    new = StackedResponses([f"n{i}" for i in range(2000)], ids, new_x)
    anchors = {i: {"id": i, "model": "2pl", "a": a[j], "b": b[j]} for j, i in enumerate(ids[:60])}
    truth = {i: (a[60 + j], b[60 + j]) for j, i in enumerate(ids[60:])}
    return old, new, anchors, truth


@pytest.fixture(scope="module")
def simulated():
    return _simulated_design(2024)


@pytest.mark.parametrize("method", ["fixed", "mwu-mem"])
def test_new_items_recovered_against_simulation_truth(simulated, method):
    # Simulation truth: each new item's a and b within 3 of its own SEs of the generating
    # value for at least 19 of 20 items, and no bias in b (the mean error over 20 items
    # within 2.5 SE of that mean).
    old, new, anchors, truth = simulated
    result = fixed_calib(new, anchors, method=method, old=old, standard_errors=True)
    parameters = result.parameters()
    z_a, z_b, error_b, se_b = [], [], [], []
    for item, (a, b) in truth.items():
        fitted = parameters[item]
        z_a.append((fitted["a"] - a) / fitted["se"]["a"])
        z_b.append((fitted["b"] - b) / fitted["se"]["b"])
        error_b.append(fitted["b"] - b)
        se_b.append(fitted["se"]["b"])
    assert np.sum(np.abs(z_a) > 3) + np.sum(np.abs(z_b) > 3) <= 1
    assert abs(np.mean(error_b)) < 2.5 * np.sqrt(np.sum(np.square(se_b))) / len(se_b)


def test_nwu_carries_the_old_prior_bias_kim_2006(simulated):
    # Kim (2006): with no prior updating (NWU) the N(0, 1) prior of the old group pulls
    # a new group that sits higher (N(0.3, 1.1^2)) down, and the new items' b with it;
    # MWU does so less (its histogram still holds the old group), the plain
    # fixed-parameter calibration (which estimates the new group's mean) not at all.
    # (Over seeds 2024, 1 and 2 the NWU mean sits 0.05 below the plain one and its b
    # 0.03 to 0.05 lower.)
    old, new, anchors, truth = simulated
    bias, mean = {}, {}
    for method in ("nwu", "mwu", "fixed"):
        result = fixed_calib(new, anchors, method=method, old=old)
        parameters = result.parameters()
        bias[method] = np.mean([parameters[i]["b"] - truth[i][1] for i in truth])
        mean[method] = result.mean
    assert mean["nwu"] < mean["mwu"] < mean["fixed"]
    assert mean["nwu"] < mean["fixed"] - 0.03
    assert bias["nwu"] < bias["mwu"]
    assert bias["nwu"] < bias["fixed"] - 0.02


def test_method_names():
    assert method_name("MWU") == "mwu-mem"
    assert method_name("nwu_oem") == "nwu-oem"
    assert set(map(method_name, ["fixed", "nwu", "owu", "mwu"])) <= set(METHODS)
    with pytest.raises(ValueError, match="unknown fixed-item calibration method"):
        method_name("mem")


def test_old_items_must_be_anchors(samples):
    old, new = samples
    some = {item: ANCHORS[item] for item in list(ANCHORS)[:50]}
    with pytest.raises(CalibrationInputError, match="A51"):
        fixed_calib(new, some, method="mwu", old=old)


def test_command_line_records_method_and_population(tmp_path, samples, capsys):
    from irtcat.api.cli import main

    bank = tmp_path / "anchors.json"
    bank.write_text(json.dumps({"format": "irtcat-bank/1", "metric": "logistic",
                                "population": {"mean": 0.0, "sd": 1.0},
                                "items": list(ANCHORS.values())}))
    out = tmp_path / "new.json"
    status = main(["calibrate", str(REFS2 / "fixedcalib_new_2000x80.csv"), "--model", "2pl",
                   "--anchor", str(bank), "--fixed-method", "MWU", "--old-data",
                   str(REFS2 / "fixedcalib_old_2000x60.csv"), "--no-fit", "--quiet",
                   "--out", str(out)])
    assert status == 0
    document = json.loads(out.read_text())
    old, new = samples
    expected = fixed_calib(new, ANCHORS, method="mwu", old=old)
    assert document["calibration"]["fixed_calibration"]["method"] == "mwu-mem"
    assert document["calibration"]["fixed_calibration"]["old_persons"] == 2000
    assert document["population"] == expected.document["population"]
    n01 = next(item for item in document["items"] if item["id"] == "N01")
    assert n01["b"] == pytest.approx(expected.parameters()["N01"]["b"], abs=1e-9)
    assert main(["calibrate", str(REFS2 / "fixedcalib_new_2000x80.csv"), "--model", "2pl",
                 "--anchor", str(bank), "--fixed-method", "fixed", "--old-data",
                 str(REFS2 / "fixedcalib_old_2000x60.csv")]) == 2
    assert main(["calibrate", str(REFS2 / "fixedcalib_new_2000x80.csv"), "--model", "2pl",
                 "--fixed-method", "mwu"]) == 2
    assert "needs --anchor" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["fixed", "mwu"])
def test_a_response_log_gives_the_matrix_results(samples, method):
    from irtcat.itembank.io import ResponseLog

    _, new = samples
    person, item = np.nonzero(~np.isnan(new.responses))
    log = ResponseLog(list(new.person_ids), list(new.item_ids), person, item,
                      new.responses[person, item])
    from_log = fixed_calib(log, ANCHORS, method=method)
    from_matrix = fixed_calib(new, ANCHORS, method=method)
    assert from_log.mean == pytest.approx(from_matrix.mean, abs=1e-9)
    assert from_log.parameters()["N07"]["b"] == pytest.approx(
        from_matrix.parameters()["N07"]["b"], abs=1e-9)
