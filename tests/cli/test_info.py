"""`irtcat info`: test information against closed forms, the reliability lines against
R mirt 1.45.1, the theta grids and the bad-input contract (exit 2, one line).

Closed forms: 2PL item information a^2 P Q with P = 1 / (1 + exp(-a (theta - b))),
Q = 1 - P; 3PL a^2 (Q / P) ((P - c) / (1 - c))^2 (Birnbaum); SE = 1 / sqrt(sum).
Reliability: tests/data/refs2/LSAT7__modelfit.json, models.2pl.marginal_rxx and
models.2pl.empirical_rxx, for the demo bank (irtcat's fit of LSAT7's 2PL,
api/demo/LSAT7_bank.json), within 0.005 (the acceptance criterion).
"""

import csv
import json
import pathlib

import numpy as np
import pytest

from irtcat.api.cli import main

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
TOLERANCE = 0.005
THETA = [-2.5, -0.3, 0.0, 1.7]


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def table(text):
    """The CSV as (header, float matrix): every cell must be a number."""
    rows = list(csv.reader(text.splitlines()))
    return rows[0], np.array(rows[1:], dtype=float)


@pytest.fixture
def bank_path(write_json):
    return write_json({"format": "irtcat-bank/1", "metric": "logistic",
                       "population": {"mean": 0.0, "sd": 1.0},
                       "items": [{"id": "q1", "model": "2pl", "a": 1.3, "b": -0.4},
                                 {"id": "q,2", "model": "2pl", "a": 0.7, "b": 1.1},
                                 {"id": "q3", "model": "3pl", "a": 1.8, "b": 0.5, "c": 0.2}]})


def test_information_is_the_closed_form(capsys, bank_path):
    status, out, err = run(capsys, "info", bank_path, "--theta", ",".join(map(str, THETA)),
                           "--items", "--quiet")
    assert status == 0 and err == ""
    header, values = table(out)
    assert header == ["theta", "information", "se", "info_q1", "info_q,2", "info_q3"]
    theta = np.array(THETA)
    expected = []
    for a, b in ((1.3, -0.4), (0.7, 1.1)):
        p = 1 / (1 + np.exp(-a * (theta - b)))
        expected.append(a**2 * p * (1 - p))
    a, b, c = 1.8, 0.5, 0.2
    p = c + (1 - c) / (1 + np.exp(-a * (theta - b)))
    expected.append(a**2 * (1 - p) / p * ((p - c) / (1 - c)) ** 2)
    expected = np.array(expected).T                                  # (n_theta, n_items)
    np.testing.assert_allclose(values[:, 0], theta)
    np.testing.assert_allclose(values[:, 3:], expected, rtol=1e-7)   # 8 significant digits
    np.testing.assert_allclose(values[:, 1], expected.sum(axis=1), rtol=1e-7)
    np.testing.assert_allclose(values[:, 2], 1 / np.sqrt(expected.sum(axis=1)), rtol=1e-7)


def test_range_grid_and_default(capsys, bank_path):
    status, out, _ = run(capsys, "info", bank_path, "--theta", "-1:1:0.25", "--quiet")
    assert status == 0
    header, values = table(out)
    assert header == ["theta", "information", "se"]
    np.testing.assert_allclose(values[:, 0], np.linspace(-1, 1, 9), atol=1e-12)
    _, default = table(run(capsys, "info", bank_path, "--quiet")[1])
    np.testing.assert_allclose(default[:, 0], np.linspace(-4, 4, 81), atol=1e-12)


def test_reliability_on_stderr_like_mirt(capsys, tmp_path, lsat7_bank_path, lsat7_data_path):
    mirt = json.loads((DATA / "refs2" / "LSAT7__modelfit.json").read_text())["models"]["2pl"]
    out_path = tmp_path / "info.csv"
    status, out, err = run(capsys, "info", lsat7_bank_path, "--data", lsat7_data_path,
                           "--out", out_path)
    assert status == 0 and out == ""
    table(out_path.read_text())                                      # the file is plain CSV
    marginal, empirical = err.splitlines()
    # refs2/LSAT7__modelfit.json: models.2pl.marginal_rxx and models.2pl.empirical_rxx
    assert marginal.startswith("marginal reliability ")
    assert float(marginal.split()[2]) == pytest.approx(mirt["marginal_rxx"], abs=TOLERANCE)
    assert empirical.startswith("empirical reliability ")
    assert float(empirical.split()[2]) == pytest.approx(mirt["empirical_rxx"], abs=TOLERANCE)


@pytest.mark.parametrize("theta", ["a:b:c", "1:0:0.5", "0:1:0", "0,nan", "-60,0", "0:1e9:1e-3",
                                   "1,,2"])
def test_bad_theta_exits_2(capsys, bank_path, theta):
    status, out, err = run(capsys, "info", bank_path, "--theta", theta)
    assert status == 2 and out == ""
    assert err.startswith("irtcat: error: ") and err.count("\n") == 1


def test_missing_bank_exits_2(capsys, tmp_path):
    status, out, err = run(capsys, "info", tmp_path / "none.json")
    assert status == 2 and out == "" and err.count("\n") == 1
