"""`irtcat compare` (mirt's anova) and the model fit `irtcat calibrate` records.

References: tests/data/refs2/{LSAT7,LSAT6}__modelfit.json (mirt 1.45.1,
``anova(mod_1pl, mod_2pl)`` and ``M2(mod)``; README (c)), within 0.01, df equal.
"""

import json
import pathlib

import numpy as np
import pytest

from irtcat.api.cli import main

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
LSAT7 = DATA / "LSAT7.csv"
M2_KEYS = ("M2", "p", "RMSEA", "RMSEA_5", "RMSEA_95", "SRMSR", "TLI", "CFI")


def reference(dataset):
    return json.loads((DATA / "refs2" / f"{dataset}__modelfit.json").read_text())


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err):
    return err.count("\n") == 1 and err.startswith("irtcat: error: ")


@pytest.mark.parametrize("dataset", ("LSAT7", "LSAT6"))
def test_compare_prints_mirts_anova_and_m2(capsys, dataset):
    status, out, err = run(capsys, "compare", DATA / f"{dataset}.csv", "--model", "1pl",
                           "--model", "2PL", "--m2", "--json")
    assert status == 0 and err == ""
    result = json.loads(out)
    expected = reference(dataset)
    # tests/data/refs2/<dataset>__modelfit.json anova.rows: within 0.01, df equal
    for row, ref_row in zip(result["anova"], expected["anova"]["rows"], strict=True):
        assert row["model"] == ref_row["model"]
        for key in ("AIC", "SABIC", "HQ", "BIC", "logLik", "X2", "p"):
            if ref_row[key] is None:
                assert row[key] is None
            else:
                assert row[key] == pytest.approx(ref_row[key], abs=0.01), key
        assert row["df"] == ref_row["df"]
    # tests/data/refs2/<dataset>__modelfit.json models.<model>.M2: within 0.01, df equal
    for model in ("1pl", "2pl"):
        ref_m2 = expected["models"][model]["M2"]
        assert result["m2"][model]["df"] == ref_m2["df"]
        for key in M2_KEYS:
            assert result["m2"][model][key] == pytest.approx(ref_m2[key], abs=0.01), key


def test_compare_table(capsys):
    status, out, err = run(capsys, "compare", LSAT7, "--model", "1pl", "--model", "2pl")
    assert status == 0 and err == ""
    header, first, second = out.splitlines()
    assert header.split() == ["AIC", "SABIC", "HQ", "BIC", "logLik", "X2", "df", "p"]
    # tests/data/refs2/LSAT7__modelfit.json anova.rows: AIC 5341.802 and 5337.610, X2 12.192
    assert first.split()[:2] == ["1pl", "5341.802"] and len(first.split()) == 6
    assert second.split()[:2] == ["2pl", "5337.610"] and second.split()[6] == "12.192"


def test_compare_banks_fitted_to_the_data(capsys, tmp_path):
    for model in ("1pl", "2pl"):
        assert run(capsys, "calibrate", LSAT7, "--model", model, "--out",
                   tmp_path / f"{model}.json", "--quiet")[0] == 0
    status, out, _ = run(capsys, "compare", LSAT7, "--bank", tmp_path / "1pl.json", "--bank",
                         tmp_path / "2pl.json", "--json")
    assert status == 0
    banks = json.loads(out)["anova"]
    # the banks' log-likelihood on the data they were fitted to is the calibration's:
    # tests/data/refs2/LSAT7__modelfit.json anova.rows logLik, within 1e-3
    for row, ref_row in zip(banks, reference("LSAT7")["anova"]["rows"], strict=True):
        assert row["logLik"] == pytest.approx(ref_row["logLik"], abs=1e-3)
    assert [row["model"] for row in banks] == ["1pl", "2pl"]      # the files' stems
    assert banks[1]["df"] == 4


@pytest.mark.parametrize("argv", [
    ("--model", "2pl"),                                         # one model
    ("--model", "2pl", "--bank", "x.json"),                     # both kinds
    ("--bank", "a.json", "--bank", "b.json", "--m2"),           # M2 needs calibrated models
])
def test_compare_bad_usage_exits_2(capsys, argv):
    status, out, err = run(capsys, "compare", LSAT7, *argv)
    assert status == 2 and out == "" and one_error_line(err)


def test_calibrate_records_the_m2_family(capsys, tmp_path):
    path = tmp_path / "bank.json"
    assert run(capsys, "calibrate", LSAT7, "--model", "2pl", "--out", path, "--quiet")[0] == 0
    record = json.loads(path.read_text())["calibration"]["model_fit"]
    # tests/data/refs2/LSAT7__modelfit.json models.2pl.M2, within 0.01 (6 decimals written)
    expected = reference("LSAT7")["models"]["2pl"]["M2"]
    assert record["df"] == expected["df"]
    for key in M2_KEYS:
        assert record[key.lower()] == pytest.approx(expected[key], abs=0.01), key


def test_calibrate_on_a_sparse_log_reports_fit_for_every_item(capsys, tmp_path):
    path = tmp_path / "bank.json"
    status, _, _ = run(capsys, "calibrate", DATA / "SAT12_keyed_sparse30.csv", "--model", "2pl",
                       "--out", path, "--quiet")
    assert status == 0
    items = json.loads(path.read_text())["items"]
    assert len(items) == 32                          # every item of the file, none excluded
    for item in items:
        fit = item["fit"]
        # S-X2 needs booklets; X2 given the other answers (10 bins - 2 parameters)
        assert fit["s_x2"] is None and fit["x2_df"] == 8
        assert np.isfinite(fit["x2"]) and 0 <= fit["x2_p"] <= 1
        if fit["x2_p"] < 0.01:                      # flagged (a weak slope may flag too)
            assert fit["flagged"] and "X2 p < 0.01" in fit["reason"]
