"""`irtcat calibrate DATA --model 2pl --factors SPEC`: the multidimensional bank
(format of the multidimensional bank: `a` a list, `dimensions` with the factor
names and correlation), wide and long input giving one fit, and the bad-usage
contract (exit 2, one line on stderr)."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from irtcat.api.cli import main
from irtcat.calibration.mirt_em import MirtCalibrator

SPEC = "A = 1-8; B = q09-q16; COV = A*B"


def simulated(path):
    """800 persons, 16 2PL items on two factors (r = 0.5), 20 % of cells missing."""
    rng = np.random.default_rng(20261205)
    theta = rng.standard_normal((800, 2)) @ np.linalg.cholesky([[1, 0.5], [0.5, 1]]).T
    slopes = rng.uniform(0.8, 1.8, 16)
    projection = np.where(np.arange(16) < 8, theta[:, :1], theta[:, 1:]) * slopes
    prob = 1 / (1 + np.exp(-(projection + rng.uniform(-1, 1, 16))))
    responses = (rng.random(prob.shape) < prob).astype(float)
    responses[rng.random(prob.shape) < 0.2] = np.nan
    frame = pd.DataFrame(responses, columns=[f"q{j:02d}" for j in range(1, 17)])
    frame.insert(0, "person_id", [f"p{n:04d}" for n in range(800)])
    frame.to_csv(path, index=False, float_format="%.0f")
    return path


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def wide_csv(tmp_path_factory):
    return simulated(tmp_path_factory.mktemp("mirt") / "wide.csv")


@pytest.fixture(scope="module")
def wide_bank(wide_csv):
    out = wide_csv.parent / "bank.json"
    assert main(["calibrate", str(wide_csv), "--model", "2pl", "--factors", SPEC,
                 "--out", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


def test_the_bank_follows_the_multidimensional_format(wide_bank):
    dimensions = wide_bank["dimensions"]
    assert dimensions["factors"] == ["A", "B"]
    assert dimensions["structure"] == "confirmatory"
    correlation = np.array(dimensions["correlation"])
    assert correlation.shape == (2, 2) and np.allclose(np.diag(correlation), 1.0)
    first, last = wide_bank["items"][0], wide_bank["items"][-1]
    assert first["id"] == "q01" and first["standard"] == "A" and first["a"][1] == 0.0
    assert last["standard"] == "B" and last["a"][0] == 0.0 and isinstance(last["d"], float)
    record = wide_bank["calibration"]
    assert record["factors"] == SPEC and record["n_parameters"] == 33
    assert record["n_persons"] == 800
    assert 0.35 < correlation[0, 1] < 0.65           # simulated r = 0.5


def test_the_bank_holds_the_calibrator_fit(wide_csv, wide_bank):
    # The command is the calibrator: the same fit, computed here directly.
    responses = pd.read_csv(wide_csv).iloc[:, 1:].to_numpy(float)
    loadings = np.zeros((16, 2), bool)
    loadings[:8, 0] = loadings[8:, 1] = True
    fit = MirtCalibrator("2pl", loadings, np.ones((2, 2), bool)).fit(responses)
    assert wide_bank["calibration"]["loglik"] == pytest.approx(fit.log_likelihood_, abs=1e-8)
    slopes = np.array([item["a"] for item in wide_bank["items"]])
    assert np.abs(slopes - fit.slopes_).max() < 1e-8


def test_long_input_gives_the_wide_fit(wide_csv, wide_bank, tmp_path, capsys):
    frame = pd.read_csv(wide_csv, dtype={"person_id": str})
    long = frame.melt(id_vars="person_id", var_name="item_id", value_name="response")
    long = long.dropna().astype({"response": int})
    path = tmp_path / "long.csv"
    long.to_csv(path, index=False)
    out = tmp_path / "bank.json"
    status, _, _ = run(capsys, "calibrate", path, "--model", "2pl", "--factors", SPEC,
                       "--out", out, "--quiet")
    assert status == 0
    bank = json.loads(out.read_text())
    assert bank["calibration"]["loglik"] == pytest.approx(
        wide_bank["calibration"]["loglik"], abs=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--model", "2pl", "--factors", "A = 1-8; B = 9-x"], "unknown item 'x'"),
    (["--model", "2pl", "--factors", "A = 1-8"], "is on no factor"),
    (["--model", "nominal", "--factors", SPEC], "--factors needs --model"),
    (["--model", "2pl", "--factors", SPEC, "--priors"], "--priors is not available"),
])
def test_bad_usage_is_one_line_and_exit_2(wide_csv, capsys, argv, message):
    status, out, err = run(capsys, "calibrate", wide_csv, *argv, "--quiet")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("irtcat: error: ") and message in err


def test_se_writes_the_standard_errors(wide_csv, tmp_path, capsys):
    out = tmp_path / "bank.json"
    status, _, _ = run(capsys, "calibrate", wide_csv, "--model", "2pl", "--factors", SPEC,
                       "--se", "--out", out, "--quiet")
    assert status == 0
    bank = json.loads(out.read_text())
    first = bank["items"][0]
    assert first["se"]["a"][1] is None and 0.03 < first["se"]["a"][0] < 0.5
    assert 0.03 < first["se"]["d"] < 0.5
    correlation_se = bank["dimensions"]["se"]["correlation"]
    assert correlation_se[0][0] is None and 0.01 < correlation_se[0][1] == correlation_se[1][0]
    assert correlation_se[0][1] < 0.1
    assert bank["calibration"]["standard_errors"] == "oakes"


def test_the_record_compares_with_the_unidimensional_fit(wide_csv, wide_bank):
    # mirt's anova(unidimensional, multidimensional): the unidimensional 2PL fitted
    # here (MMLCalibrator), X2 = 2 (logLik difference) on the 1 extra parameter (the
    # correlation), p its chi-square upper tail.
    from scipy.stats import chi2

    from irtcat.calibration.mml_em import MMLCalibrator

    comparison = wide_bank["calibration"]["comparison"]
    responses = pd.read_csv(wide_csv).iloc[:, 1:].to_numpy(float)
    single = MMLCalibrator("2pl").fit(responses)
    assert comparison["unidimensional"]["loglik"] == pytest.approx(single.log_likelihood_)
    assert comparison["unidimensional"]["n_parameters"] == 32
    assert comparison["df"] == 1
    x2 = 2 * (wide_bank["calibration"]["loglik"] - single.log_likelihood_)
    assert comparison["X2"] == pytest.approx(x2) and x2 > 0
    assert comparison["p"] == pytest.approx(chi2.sf(x2, 1))
    assert comparison["p"] < 1e-6                          # simulated r = 0.5, not 1


@pytest.mark.runs_long
def test_bifactor_bank(wide_csv, tmp_path, capsys):
    # --bifactor: G on every item, S1 on items 1-8, S2 on 9-12, items 13-16 on G alone.
    out = tmp_path / "bank.json"
    status, _, _ = run(capsys, "calibrate", wide_csv, "--model", "2pl", "--bifactor",
                       "S1 = 1-8; S2 = q09-q12", "--tol", "1e-3", "--out", out, "--quiet")
    assert status == 0
    bank = json.loads(out.read_text())
    assert bank["dimensions"]["factors"] == ["G", "S1", "S2"]
    assert bank["dimensions"]["structure"] == "bifactor"
    assert bank["dimensions"]["correlation"] == np.eye(3).tolist()
    items = bank["items"]
    assert items[0]["standard"] == "S1" and items[0]["a"][2] == 0.0 and items[0]["a"][1] != 0
    assert items[8]["standard"] == "S2" and "standard" not in items[15]
    assert items[15]["a"][1:] == [0.0, 0.0]
    assert bank["calibration"]["bifactor"] == "S1 = 1-8; S2 = q09-q12"
    assert bank["calibration"]["n_parameters"] == 16 * 2 + 12
    assert bank["calibration"]["quadpts"] == 31


@pytest.mark.parametrize("spec, message", [
    ("S1 = 1-8; S2 = 8-12", "two specific groups"),
    ("S1 = 1-8; S2 = 9-12; COV = S1*S2", "orthogonal"),
    ("G = 1-8", "G names the general factor"),
])
def test_bad_bifactor_specifications(wide_csv, capsys, spec, message):
    status, _, err = run(capsys, "calibrate", wide_csv, "--model", "2pl", "--bifactor", spec)
    assert status == 2 and message in err and err.count("\n") == 1


def test_exploratory_bank(wide_csv, tmp_path, capsys):
    # --factors 2: the unrotated exploratory fit, rotated when calibration.rotation is
    # there (oblimin by default), else kept unrotated with a warning.
    out = tmp_path / "bank.json"
    status, _, err = run(capsys, "calibrate", wide_csv, "--model", "2pl", "--factors", "2",
                         "--out", out, "--quiet")
    assert status == 0
    bank = json.loads(out.read_text())
    dimensions = bank["dimensions"]
    assert dimensions["factors"] == ["F1", "F2"] and dimensions["structure"] == "exploratory"
    assert dimensions["rotation"] in ("oblimin", None)
    assert (dimensions["rotation"] is None) == ("no rotation available" in err)
    assert bank["calibration"]["n_parameters"] == 16 * 3 - 1
    assert all("standard" not in item for item in bank["items"])
    slopes = np.array([item["a"] for item in bank["items"]])
    if dimensions["rotation"] is None:
        assert slopes[0, 1] == 0.0


def test_rotate_needs_an_exploratory_model(wide_csv, capsys):
    status, _, err = run(capsys, "calibrate", wide_csv, "--model", "2pl", "--factors", SPEC,
                         "--rotate", "varimax")
    assert status == 2 and "--rotate goes with --factors N" in err


def test_the_record_holds_mirts_m2_row(tmp_path, capsys):
    # Source: tests/data/refs2/LSAT7__modelfit.json, models.2pl.M2 (mirt 1.45.1 M2(mod)
    # of the 2PL). A one-factor --factors fit is that model, and its M2 is evaluated on
    # the calibration's own grid (61 points on [-6, 6], mirt's for one factor), as
    # mirt's M2 is: every statistic within 0.01, the same df.
    data = pathlib.Path(__file__).parents[1] / "data"
    out = tmp_path / "lsat7.json"
    code, _, _ = run(capsys, "calibrate", str(data / "LSAT7.csv"), "--model", "2pl",
                     "--factors", "F1 = 1-5", "--out", str(out))
    assert code == 0
    m2 = json.loads(out.read_text())["calibration"]["m2"]
    expected = json.loads((data / "refs2" / "LSAT7__modelfit.json").read_text())
    expected = expected["models"]["2pl"]["M2"]
    assert m2["df"] == expected["df"]
    for key in ("M2", "p", "RMSEA", "RMSEA_5", "RMSEA_95", "SRMSR", "TLI", "CFI"):
        assert m2[key] == pytest.approx(expected[key], abs=0.01), key


def test_no_m2_on_incomplete_data(wide_bank):
    # mirt's M2 refuses missing responses; the fixture's data miss 20 % of their cells.
    assert "m2" not in wide_bank["calibration"]
