"""`irtcat score` and `irtcat simulate` on a multidimensional bank (the shared bank
format's `dimensions`): the 3-standard bank of shared/refs2 with its TRUE parameters
(simmdim_3000x45_truth.json) and the data simulated from them."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from irtcat.engine.mcat_scoring import estimate_map
from irtcat.engine.multidimensional import MultidimensionalItems
from tests.cli.command_line import rows, run

REFS = Path(__file__).resolve().parents[1] / "data" / "refs2"   # copies of shared/refs2
TRUTH = REFS / "simmdim_3000x45_truth.json"


def truth_bank():
    """The bank document of the simulation's true parameters."""
    truth = json.loads(TRUTH.read_text())
    latent = truth["latent"]
    return {"format": "irtcat-bank/1", "metric": "logistic",
            "population": {"mean": 0.0, "sd": 1.0},
            "dimensions": {"factors": ["F1", "F2", "F3"], "structure": "confirmatory",
                           "mean": latent["mean"], "correlation": latent["correlation"],
                           "rotation": None},
            "items": [{"id": item["id"], "standard": item["factor"], "model": "2pl",
                       "a": [item["a1"], item["a2"], item["a3"]], "d": item["d"]}
                      for item in truth["items"]]}


@pytest.fixture(scope="module")
def bank_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("mbank") / "bank.json"
    path.write_text(json.dumps(truth_bank()))
    return path


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    """The first 300 persons of the shared data."""
    lines = (REFS / "simmdim_3000x45.csv").read_text().splitlines()[:301]
    path = tmp_path_factory.mktemp("mdata") / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def true_theta(n):
    with open(REFS / "simmdim_3000x45_theta.csv") as handle:
        table = list(csv.DictReader(handle))[:n]
    return np.array([[float(row[f]) for f in ("F1", "F2", "F3")] for row in table])


@pytest.mark.parametrize("method", ["eap", "map"])
def test_scores_recover_the_simulation_truth(capsys, bank_path, data_path, method):
    status, out, err = run(capsys, "score", data_path, "--bank", bank_path, "--method", method,
                           "--weights", "1,1,1")
    assert status == 0 and err == ""
    table = rows(out)
    assert list(table[0]) == ["person_id", "theta_F1", "se_F1", "theta_F2", "se_F2",
                              "theta_F3", "se_F3", "composite", "composite_se"]
    theta = np.array([[float(r[f"theta_F{f}"]) for f in (1, 2, 3)] for r in table])
    se = np.array([[float(r[f"se_F{f}"]) for f in (1, 2, 3)] for r in table])
    truth = true_theta(300)
    # 15 items a factor at a ~ 1 and correlations .5-.7: posterior SDs near 0.45; the
    # standardized errors of 300 persons have variance near 1 (EAP: the posterior's).
    z = (theta - truth) / se
    assert np.all(np.abs(z.mean(axis=0)) < 0.25) and np.all(np.abs(z.std(axis=0) - 1) < 0.15)
    composite = np.array([float(r["composite"]) for r in table])
    np.testing.assert_allclose(composite, theta.sum(axis=1), atol=2e-5)
    assert np.all(np.array([float(r["composite_se"]) for r in table]) < se.sum(axis=1))


def test_map_scores_equal_the_engine(capsys, bank_path, data_path):
    status, out, _ = run(capsys, "score", data_path, "--bank", bank_path, "--method", "map")
    document = json.loads(bank_path.read_text())
    items = MultidimensionalItems.from_entries(document["items"], document["dimensions"])
    data = np.loadtxt(data_path, delimiter=",", skiprows=1, usecols=range(1, 46))
    engine = estimate_map(data, items, np.zeros(3), document["dimensions"]["correlation"])
    theta = np.array([[float(r[f"theta_F{f}"]) for f in (1, 2, 3)] for r in rows(out)])
    np.testing.assert_allclose(theta, engine.theta, atol=5e-7)


@pytest.mark.parametrize("argv, message", [
    (["--method", "wle"], "scored by eap or map"),
    (["--weights", "1,1"], "has 3 factors"),
    (["--weights", "1,x,1"], "expected numbers"),
])
def test_refusals(capsys, bank_path, data_path, argv, message):
    status, _, err = run(capsys, "score", data_path, "--bank", bank_path, *argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_malformed_item_is_refused_by_name(capsys, tmp_path, data_path):
    document = truth_bank()
    document["items"][3]["a"] = [1.0, 0.0]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    status, _, err = run(capsys, "score", data_path, "--bank", path)
    assert status == 2 and "'i04'" in err and "3 finite slopes" in err


# --- simulate -----------------------------------------------------------------------

def write_config(tmp_path, config):
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(config))
    return path


def test_simulate_reports_per_factor_and_composite_figures(capsys, tmp_path, bank_path):
    config = {"scoring": {"method": "eap"}, "selection": {"method": "DPrule"},
              "stop": {"min_items": 6, "max_items": 24, "se": {"F1": 0.6, "F2": 0.6, "F3": 0.6},
                       "composite": {"weights": [1 / 3, 1 / 3, 1 / 3], "se": 0.3},
                       "classification": {"cut": 0.5, "method": "ci", "alpha": 0.05}},
              "content": [{"standard": "F1", "min": 2, "max": 10}]}
    persons = tmp_path / "persons.csv"
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config",
                           write_config(tmp_path, config), "--examinees", 120, "--seed", 3,
                           "--persons", persons)
    assert status == 0 and err == ""
    report = json.loads(out)
    assert report["examinees"] == 120 and report["seed"] == 3
    assert set(report["factors"]) == {"F1", "F2", "F3"}
    assert 6 <= report["mean_length"] <= 24
    assert set(report["composite"]) == {"weights", "rmse", "bias", "mean_se"}
    assert 0.8 <= report["classification"]["accuracy"] <= 1.0
    table = rows(persons.read_text())
    assert list(table[0])[:7] == ["person_id", "true_F1", "true_F2", "true_F3", "theta_F1",
                                  "se_F1", "theta_F2"]
    lengths = np.array([int(r["length"]) for r in table])
    assert lengths.mean() == pytest.approx(report["mean_length"], abs=1e-3)
    for r in table:
        given = r["items"].split(";")
        assert len(given) == int(r["length"]) and len(set(given)) == len(given)
        assert sum(item <= "i15" for item in given) >= 2             # F1's minimum
        assert r["decision"] in ("pass", "fail")
    # simulation truth: the report's RMSE is that of the persons file's columns
    truth = np.array([[float(r[f"true_F{f}"]) for f in (1, 2, 3)] for r in table])
    theta = np.array([[float(r[f"theta_F{f}"]) for f in (1, 2, 3)] for r in table])
    assert report["rmse"] == pytest.approx(np.sqrt(np.mean((theta - truth) ** 2)), abs=1e-4)


def test_simulate_reads_true_thetas_per_factor(capsys, tmp_path, bank_path):
    thetas = tmp_path / "theta.csv"
    thetas.write_text("person_id,F1,F2,F3\na,-1,0,1\nb,0.5,0.5,0.5\n")
    config = {"selection": {"method": "trule"}, "stop": {"min_items": 5, "max_items": 5}}
    persons = tmp_path / "persons.csv"
    status, out, _ = run(capsys, "simulate", "--bank", bank_path, "--config",
                         write_config(tmp_path, config), "--theta", thetas, "--persons", persons)
    assert status == 0
    assert json.loads(out)["examinees"] == 2
    table = rows(persons.read_text())
    assert [r["person_id"] for r in table] == ["a", "b"]
    assert [r["true_F3"] for r in table] == ["1.000000", "0.500000"]
    assert all(r["length"] == "5" for r in table)


@pytest.mark.parametrize("config, message", [
    ({"selection": {"method": "mfi"}}, "selects by one of"),
    ({"stop": {"se": {"F1": 0.3}}}, "one value per factor"),
    ({"stop": {"classification": {"cut": 0.5, "method": "sprt", "delta": 0}}},
     "delta must be > 0"),
    ({"exposure": {"method": "sympson-hetter"}}, "needs 'parameters'"),
    ({"exposure": {"method": "item-eligibility", "target": 0.2}}, "runs on live sessions"),
    ({"exposure": {"method": "item-eligibility", "target": 1.5}},
     "exposure.target must be a number in [0, 1]"),
    ({"scoring": {"method": "wle"}}, "scoring method must be eap or map"),
    ({"content": [{"standard": "F9", "min": 1}]}, "no item of the bank has standard 'F9'"),
    ({"content": [{"standard": "F1", "min": 20}, {"standard": "F2", "min": 20}]},
     "minimums add up to more than"),
])
def test_simulate_refusals(capsys, tmp_path, bank_path, config, message):
    status, _, err = run(capsys, "simulate", "--bank", bank_path, "--config",
                         write_config(tmp_path, config), "--examinees", 5)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
