"""`irtcat calibrate DATA --group COLUMN`: the multiple-group bank against R mirt
(tests/data/refs2/verbal__dif.json, key mirt_multipleGroup), long data with a
groups file, invariant items, and the bad-usage contract (exit 2, one line)."""

import csv
import json
import pathlib

import pytest

from irtcat.api.cli import main
from irtcat.itembank import read_bank

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
VERBAL = DATA / "verbal.csv"
FULL = "slopes,intercepts,free_means,free_var"


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def calibrate(capsys, tmp_path, *argv):
    out_path = tmp_path / "bank.json"
    status, out, err = run(capsys, "calibrate", *argv, "--out", out_path, "--quiet")
    assert out == ""
    return status, json.loads(out_path.read_text()) if status == 0 else None, err


def one_error_line(err):
    return err.count("\n") == 1 and err.startswith("irtcat: error: ") and "Traceback" not in err


@pytest.fixture(scope="module")
def verbal_bank(tmp_path_factory):
    out_path = tmp_path_factory.mktemp("groups") / "bank.json"
    status = main(["calibrate", str(VERBAL), "--model", "2pl", "--group", "group",
                   "--reference", "0", "--invariance", FULL, "--se", "--out", str(out_path),
                   "--quiet"])
    assert status == 0
    return out_path, json.loads(out_path.read_text())


def test_group_bank_matches_mirt(verbal_bank):
    # refs2/verbal__dif.json, mirt_multipleGroup: logLik -4014.401 (0.01), 50 parameters,
    # focal mean 0.245 and variance 0.795 (0.01), their SEs (0.002), items' a1, d (0.01)
    reference = json.loads((DATA / "refs2" / "verbal__dif.json").read_text())
    mirt = reference["mirt_multipleGroup"]
    _, document = verbal_bank
    record = document["calibration"]
    assert record["loglik"] == pytest.approx(mirt["fit"]["logLik"], abs=0.01)
    assert record["n_parameters"] == mirt["fit"]["n_parameters"]
    assert record["sabic"] == pytest.approx(mirt["fit"]["SABIC"], abs=0.02)
    assert record["hq"] == pytest.approx(mirt["fit"]["HQ"], abs=0.02)
    assert record["reference_group"] == "0"
    assert record["invariance"] == FULL.split(",")
    reference_group, focal = record["groups"]
    assert (reference_group["code"], reference_group["reference"]) == ("0", True)
    assert (reference_group["mean"], reference_group["var"]) == (0.0, 1.0)
    assert reference_group["se"] == {"mean": None, "var": None}
    assert (focal["n_persons"], reference_group["n_persons"]) == (73, 243)
    latent = mirt["groups"][1]["latent"]
    assert focal["mean"] == pytest.approx(latent["par"]["MEAN_1"], abs=0.01)
    assert focal["var"] == pytest.approx(latent["par"]["COV_11"], abs=0.01)
    assert focal["se"]["mean"] == pytest.approx(latent["se"]["MEAN_1"], abs=0.002)
    assert focal["se"]["var"] == pytest.approx(latent["se"]["COV_11"], abs=0.002)
    items = {item["id"]: item for item in document["items"]}
    for expected in mirt["groups"][0]["items"]:
        item = items[expected["id"]]
        assert item["slope_intercept"]["a"] == pytest.approx(expected["par"]["a1"], abs=0.01)
        assert item["slope_intercept"]["d"] == pytest.approx(expected["par"]["d"], abs=0.01)
        assert item["b"] == pytest.approx(-expected["par"]["d"] / expected["par"]["a1"],
                                          abs=0.01)
        assert item["equal_across_groups"] == ["a", "d"] and "groups" not in item


def test_group_bank_is_a_plain_bank(verbal_bank):
    """An irtcat-bank/1 reader reads it: the reference group's parameters, N(0, 1)."""
    path, document = verbal_bank
    bank = read_bank(path)
    assert len(bank.items) == 24
    assert document["population"] == {"mean": 0.0, "sd": 1.0}


def test_long_data_with_a_groups_file(capsys, tmp_path, verbal_bank):
    """The same responses as a long file and the groups in a person attribute file give
    the same fit as the wide file's group column."""
    with open(VERBAL, newline="") as handle:
        rows = list(csv.DictReader(handle))
    items = [key for key in rows[0] if key not in ("person_id", "group")]
    long_path, persons_path = tmp_path / "long.csv", tmp_path / "persons.csv"
    with open(long_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "item_id", "response"])
        writer.writerows([row["person_id"], item, row[item]] for row in rows for item in items)
    with open(persons_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "sex"])
        writer.writerows([row["person_id"], row["group"]] for row in rows)
    status, document, err = calibrate(capsys, tmp_path, long_path, "--model", "2pl",
                                      "--group", "sex", "--groups-file", persons_path,
                                      "--reference", "0", "--invariance", FULL)
    assert status == 0, err
    expected = verbal_bank[1]["calibration"]
    assert document["calibration"]["loglik"] == pytest.approx(expected["loglik"], abs=1e-3)
    assert document["calibration"]["groups"][1]["mean"] == pytest.approx(
        expected["groups"][1]["mean"], abs=1e-4)


def test_invariant_items_are_equal_and_the_others_free(capsys, tmp_path):
    anchors = ["S1wantCurse", "S1WantScold", "S1WantShout", "S1DoCurse"]
    status, document, err = calibrate(capsys, tmp_path, VERBAL, "--model", "2pl", "--group",
                                      "group", "--invariance", "free_means,free_var",
                                      "--invariant-items", ",".join(anchors))
    assert status == 0, err
    record = document["calibration"]
    assert record["invariant_items"] == anchors
    assert record["n_parameters"] == 2 * 4 + 2 * 2 * 20 + 2
    for item in document["items"]:
        if item["id"] in anchors:
            assert item["equal_across_groups"] == ["a", "d"] and "groups" not in item
        else:
            assert item["equal_across_groups"] == []
            focal = item["groups"]["1"]
            assert set(focal) == {"a", "b", "slope_intercept"}
            assert focal["slope_intercept"]["a"] != item["slope_intercept"]["a"]


def test_an_item_free_in_a_group_that_never_got_it_right_is_refused(capsys, tmp_path):
    with open(VERBAL, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["group"] == "1":
            row["S1wantCurse"] = "0"
    path = tmp_path / "verbal.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    status, out, err = run(capsys, "calibrate", path, "--model", "2pl", "--group", "group",
                           "--quiet")
    assert status == 2 and one_error_line(err)
    assert "item 'S1wantCurse': group '1' answered it in 1 category" in err
    status, _, err = run(capsys, "calibrate", path, "--model", "2pl", "--group", "group",
                         "--invariant-items", "S1wantCurse", "--out", tmp_path / "b.json",
                         "--quiet")
    assert status == 0, err


@pytest.mark.parametrize("argv, message", [
    (["--reference", "0"], "--reference needs --group"),
    (["--invariance", "slopes"], "--invariance needs --group"),
    (["--group", "group", "--invariance", "slopes,means"], "unknown keyword 'means'"),
    (["--group", "group", "--invariance", "free_means"], "free_means needs"),
    (["--group", "group", "--reference", "2"], "reference group '2'"),
    (["--group", "sex"], "no column 'sex'"),
    (["--group", "group", "--anchor", "bank.json"], "does not combine with --anchor"),
    (["--group", "group", "--invariant-items", "Q9"], "no item 'Q9'"),
    # groups are fitted with Newton M-steps: asking for mirt's path is refused, not ignored
    (["--group", "group", "--m-step", "mirt"], "does not combine with --m-step mirt"),
])
def test_bad_group_usage_exits_2(capsys, argv, message):
    status, out, err = run(capsys, "calibrate", VERBAL, "--model", "2pl", "--quiet", *argv)
    assert status == 2 and out == ""
    assert one_error_line(err) and message in err, err
