"""`irtcat score`: results, formats and the bad-input contract (exit 2, one line)."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from irtcat.api.cli import main

MIRT_LSAT7_2PL_EAP_P0001 = (-1.86985385660227, 0.692733821230184)  # shared/refs LSAT7__2pl.json


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def rows(text):
    return list(csv.DictReader(text.splitlines()))


def test_scores_lsat7_like_mirt(capsys, lsat7_data_path, lsat7_bank_path):
    status, out, err = run(capsys, "score", str(lsat7_data_path), "--bank", str(lsat7_bank_path))
    assert status == 0 and err == ""
    table = rows(out)
    assert list(table[0]) == ["person_id", "theta", "se"]
    assert len(table) == 1000
    theta, se = float(table[0]["theta"]), float(table[0]["se"])
    assert theta == pytest.approx(MIRT_LSAT7_2PL_EAP_P0001[0], abs=2e-3)
    assert se == pytest.approx(MIRT_LSAT7_2PL_EAP_P0001[1], abs=2e-3)


def test_long_csv_scores_like_wide(capsys, tmp_path, lsat7_data_path, lsat7_bank_path):
    wide = list(csv.DictReader(lsat7_data_path.read_text().splitlines()))
    long_path = tmp_path / "long.csv"
    with long_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "item_id", "response"])
        for row in reversed(wide[:50]):
            for item, value in row.items():
                if item != "person_id" and item != "Item.3":  # a not-administered item
                    writer.writerow([row["person_id"], item, value])
    subset = tmp_path / "wide.csv"
    with subset.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "Item.1", "Item.2", "Item.3", "Item.4", "Item.5"])
        for row in wide[:50]:
            writer.writerow([row["person_id"], row["Item.1"], row["Item.2"], "",
                             row["Item.4"], row["Item.5"]])
    _, from_long, _ = run(capsys, "score", str(long_path), "--bank", str(lsat7_bank_path))
    _, from_wide, _ = run(capsys, "score", str(subset), "--bank", str(lsat7_bank_path))
    by_person = {r["person_id"]: r for r in rows(from_wide)}
    for row in rows(from_long):
        assert row["theta"] == by_person[row["person_id"]]["theta"]
        assert row["se"] == by_person[row["person_id"]]["se"]


@pytest.mark.parametrize("method", ["eap", "map", "ml", "wle", "eapsum"])
def test_every_method_writes_a_file(capsys, tmp_path, method, lsat7_data_path, lsat7_bank_path):
    out_path = tmp_path / "scores.csv"
    status, out, _ = run(capsys, "score", str(lsat7_data_path), "--bank", str(lsat7_bank_path),
                         "--method", method, "--out", str(out_path))
    assert status == 0 and out == ""
    table = rows(out_path.read_text())
    assert len(table) == 1000
    thetas = np.array([float(r["theta"]) for r in table])
    assert np.all(np.isfinite(thetas)) and np.all(np.abs(thetas) <= 6)
    if method == "ml":  # all-wrong and all-right patterns are flagged at the bounds
        flagged = [r for r in table if r["bounded"] == "true"]
        assert flagged and {abs(float(r["theta"])) for r in flagged} == {6.0}


def bank(items):
    return {"format": "irtcat-bank/1", "items": items}


BAD_BANKS = [
    (bank([{"id": "Q1", "model": "5pl", "a": 1, "b": 0}]), "unknown model '5pl'"),
    (bank([{"id": "Q1", "model": "2pl", "b": 0}]), "missing parameter 'a'"),
    (bank([{"id": "Q1", "model": "2pl", "a": 1}]), "missing parameter 'b'"),
    (bank([{"id": "Q1", "model": "2pl", "a": 0, "b": 0}]), "a must be finite and non-zero"),
    (bank([{"id": "Q1", "model": "3pl", "a": 1, "b": 0, "c": 1.0}]), "c must be in [0, 1)"),
    (bank([{"id": "Q1", "model": "3pl", "a": 1, "b": 0, "c": -0.1}]), "c must be in [0, 1)"),
    (bank([{"id": "Q1", "model": "3pl", "a": 1, "b": 0}]), "missing parameter 'c'"),
    (bank([{"id": "Q1", "model": "grm", "a": 1, "b": [0.5, -0.5]}]), "thresholds must increase"),
    (bank([{"id": "Q1", "model": "2pl", "a": 1, "b": 0},
           {"id": "Q1", "model": "2pl", "a": 1, "b": 1}]), "duplicate item id 'Q1'"),
    (bank([{"id": "Q1", "model": "2pl", "a": "x", "b": 0}]), "a must be a finite number"),
    ({"format": "other", "items": []}, "format must be 'irtcat-bank/1'"),
]


@pytest.mark.parametrize("document, message", BAD_BANKS)
def test_bad_bank_names_the_problem(capsys, write_json, lsat7_data_path, document, message):
    path = write_json(document)
    status, out, err = run(capsys, "score", str(lsat7_data_path), "--bank", str(path))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("irtcat: error: ")
    assert message in err
    if "Q1" in json.dumps(document):
        assert "Q1" in err


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_DATA = [
    ("person_id,Item.1,Item.9\np1,1,0\n", "item 'Item.9' of the data is not in the bank"),
    ("person_id,Item.1,Item.2\np1,2,0\n", "outside the item's categories 0..1"),
    ("person_id,Item.1,Item.2\np1,-1,0\n", "is not a category"),
    ("person_id,Item.1,Item.2\np1,0.5,0\n", "is not a category"),
    ("person_id,Item.1,Item.2\np1,x,0\n", "is not a category"),
    ("person_id,Item.1,Item.2\np1,1,0,1,1\n", "malformed CSV"),
    ("person_id,Item.1,Item.1\np1,1,0\n", "duplicate item column 'Item.1'"),
    ("person_id,Item.1\np1,1\np1,0\n", "duplicate person_id 'p1'"),
    ("", "empty file"),
    ("id,Item.1\np1,1\n", "the first column must be person_id"),
    ("person_id,item_id,response\np1,Item.1,1\np1,Item.1,0\n", "answered item 'Item.1' twice"),
    ("person_id,item_id,response\np1,Item.1,7\n", "outside the item's categories"),
]


@pytest.mark.parametrize("text, message", BAD_DATA)
def test_bad_data_names_the_problem(capsys, tmp_path, lsat7_bank_path, text, message):
    path = write(tmp_path, "data.csv", text)
    out_path = tmp_path / "scores.csv"
    status, out, err = run(capsys, "score", str(path), "--bank", str(lsat7_bank_path),
                           "--out", str(out_path))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err
    assert not out_path.exists() and list(tmp_path.glob("*.tmp")) == []


@pytest.mark.parametrize("argv, message", [
    (["score", "missing.csv", "--bank", "missing.json"], "no such file"),
    (["score"], "required"),
    (["score", "x.csv", "--bank", "b.json", "--method", "median"], "invalid choice"),
    (["score", "x.csv", "--bank", "b.json", "--quadpts", "two"], "invalid _node_count value"),
    ([], "required"),
])
def test_usage_errors_exit_2_with_one_line(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2 and err.count("\n") == 1 and message in err


def test_malformed_json_bank(capsys, tmp_path, lsat7_data_path):
    path = write(tmp_path, "bank.json", '{"format": "irtcat-bank/1", "items": [')
    status, _, err = run(capsys, "score", str(lsat7_data_path), "--bank", str(path))
    assert status == 2 and err.count("\n") == 1 and "malformed JSON at line 1" in err


def test_console_script_never_prints_a_traceback(tmp_path, lsat7_bank_path):
    path = write(tmp_path, "data.csv", "person_id,Item.1\np1,3\n")
    done = subprocess.run([sys.executable, "-m", "irtcat.api.cli", "score", str(path), "--bank",
                           str(lsat7_bank_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_person_ids_with_commas_and_quotes_survive(capsys, tmp_path, lsat7_bank_path):
    path = write(tmp_path, "data.csv", 'person_id,Item.1\n"Doe, ""J""",1\nplain,0\n')
    status, out, _ = run(capsys, "score", str(path), "--bank", str(lsat7_bank_path))
    assert status == 0
    assert [r["person_id"] for r in rows(out)] == ['Doe, "J"', "plain"]


def test_a_utf8_bom_is_accepted(capsys, tmp_path, lsat7_bank_path):
    # Spreadsheet "CSV UTF-8" files start with a byte-order mark.
    path = tmp_path / "data.csv"
    path.write_bytes(b"\xef\xbb\xbfperson_id,Item.1\np1,1\n")
    status, out, _ = run(capsys, "score", str(path), "--bank", str(lsat7_bank_path))
    assert status == 0 and rows(out)[0]["person_id"] == "p1"


def test_written_files_get_ordinary_permissions(capsys, tmp_path, lsat7_data_path,
                                                lsat7_bank_path):
    import os
    out_path = tmp_path / "scores.csv"
    umask = os.umask(0o022)
    try:
        assert run(capsys, "score", str(lsat7_data_path), "--bank", str(lsat7_bank_path),
                   "--out", str(out_path))[0] == 0
    finally:
        os.umask(umask)
    assert out_path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("target", ["missing-folder/scores.csv", "."])
def test_an_unwritable_out_is_bad_input(capsys, tmp_path, monkeypatch, lsat7_data_path,
                                        lsat7_bank_path, target):
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, "score", str(lsat7_data_path), "--bank", str(lsat7_bank_path),
                         "--out", target)
    assert status == 2 and err.count("\n") == 1


def test_a_folder_as_bank_is_bad_input(capsys, tmp_path, lsat7_data_path):
    status, _, err = run(capsys, "score", str(lsat7_data_path), "--bank", str(tmp_path))
    assert status == 2 and "is a directory" in err


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_prior_is_bad_input(capsys, lsat7_data_path, lsat7_bank_path, value):
    status, _, _ = run(capsys, "score", str(lsat7_data_path), "--bank", str(lsat7_bank_path),
                       "--prior-sd" if value == "inf" else "--prior-mean", value)
    assert status == 2
