"""`irtcat score --method pv`: plausible values on the command line.

The draws' numerics are tested in tests/engine/test_plausible.py; here the CSV
shape, the seed, the EAP columns beside the draws and the bad-input contract.
"""

import csv

import numpy as np
import pytest

from irtcat.api.cli import main

MIRT_LSAT7_2PL_EAP_P0001 = (-1.86985385660227, 0.692733821230184)  # shared/refs LSAT7__2pl.json


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_pv_writes_eap_and_draws(capsys, lsat7_data_path, lsat7_bank_path):
    status, out, err = run(capsys, "score", lsat7_data_path, "--bank", lsat7_bank_path,
                           "--method", "PV", "--draws", 3, "--seed", 42)
    assert status == 0 and err == ""
    table = list(csv.DictReader(out.splitlines()))
    assert list(table[0]) == ["person_id", "theta", "se", "pv1", "pv2", "pv3"]
    assert len(table) == 1000
    assert float(table[0]["theta"]) == pytest.approx(MIRT_LSAT7_2PL_EAP_P0001[0], abs=2e-3)
    assert float(table[0]["se"]) == pytest.approx(MIRT_LSAT7_2PL_EAP_P0001[1], abs=2e-3)
    draws = np.array([[float(row[f"pv{k}"]) for k in (1, 2, 3)] for row in table])
    assert np.unique(draws).size == draws.size
    # 3000 draws from posteriors whose means average the EAP mean: within 4 standard
    # errors of the draws' mean (the spread of all draws, sd about 1, over sqrt(3000)).
    eap = np.array([float(row["theta"]) for row in table])
    assert abs(draws.mean() - eap.mean()) < 4 * draws.std() / np.sqrt(draws.size)


def test_same_seed_same_file_and_default_draws(capsys, tmp_path, lsat7_data_path,
                                               lsat7_bank_path):
    paths = [tmp_path / f"{name}.csv" for name in ("first", "again", "other")]
    for path, seed in zip(paths, (9, 9, 10), strict=True):
        assert run(capsys, "score", lsat7_data_path, "--bank", lsat7_bank_path, "--method",
                   "pv", "--seed", seed, "--out", path)[0] == 0
    first, again, other = (path.read_text() for path in paths)
    assert first == again and first != other
    assert first.splitlines()[0] == "person_id,theta,se,pv1,pv2,pv3,pv4,pv5"


@pytest.mark.parametrize("argv", [("--draws", "3"), ("--seed", "1"),
                                  ("--method", "pv", "--draws", "0"),
                                  ("--method", "pv", "--seed", "-1")])
def test_bad_draws_or_seed_exit_2(capsys, lsat7_data_path, lsat7_bank_path, argv):
    status, out, err = run(capsys, "score", lsat7_data_path, "--bank", lsat7_bank_path, *argv)
    assert status == 2 and out == ""
    assert err.startswith("irtcat: error: ") and err.count("\n") == 1
