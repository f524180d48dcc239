"""`irtcat calibrate` and `irtcat link`: results against mirt, the bank they write,
exclusions, anchors, standards, priors and the bad-input contract (exit 2, one line)."""

import csv
import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest

from irtcat.api.cli import main
from irtcat.itembank import read_bank

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
LSAT7 = DATA / "LSAT7.csv"
SCIENCE = DATA / "Science.csv"
LSAT7_ITEMS = ["Item.1", "Item.2", "Item.3", "Item.4", "Item.5"]

def ref(name):
    """A mirt reference of tests/data/refs (R mirt 1.45.1, see each file's 'call')."""
    return json.loads((DATA / "refs" / f"{name}.json").read_text())


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def calibrate(capsys, tmp_path, *argv, name="bank.json"):
    """Calibrate to a file with --quiet; return (status, document, stderr)."""
    out_path = tmp_path / name
    status, out, err = run(capsys, "calibrate", *argv, "--out", out_path, "--quiet")
    assert out == ""
    document = json.loads(out_path.read_text()) if status == 0 else None
    return status, document, err


def by_id(document):
    return {item["id"]: item for item in document["items"]}


def one_error_line(err):
    return err.count("\n") == 1 and err.startswith("irtcat: error: ") and "Traceback" not in err


def lsat7_table():
    return pd.read_csv(LSAT7, dtype={"person_id": str})


# --- 1. LSAT7 2PL ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lsat7_2pl(tmp_path_factory):
    """One `calibrate LSAT7 --model 2pl --se --quiet` run shared by several tests."""
    out_path = tmp_path_factory.mktemp("lsat7") / "bank.json"
    status = main(["calibrate", str(LSAT7), "--model", "2pl", "--se", "--out", str(out_path),
                   "--quiet"])
    return status, out_path


def test_lsat7_2pl_writes_a_valid_bank(capsys, tmp_path):
    status, out, err = run(capsys, "calibrate", LSAT7, "--model", "2pl",
                           "--out", tmp_path / "bank.json", "--quiet")
    assert status == 0 and out == "" and err == ""      # --quiet: nothing on stderr
    bank = read_bank(tmp_path / "bank.json")             # irtcat-bank/1 validation
    assert bank.item_ids == LSAT7_ITEMS
    assert all(item["model"] == "2pl" for item in bank.items)
    record = bank.calibration
    assert record["model"] == "2pl" and record["converged"] is True
    assert record["n_persons"] == 1000                   # rows of tests/data/LSAT7.csv
    assert isinstance(record["iterations"], int) and 1 <= record["iterations"] <= 500
    assert record["n_parameters"] == ref("LSAT7__2pl")["n_parameters"]   # 10, as mirt
    # mirt logLik -2658.805 (tests/data/refs/LSAT7__2pl.json "logLik")
    assert record["loglik"] == pytest.approx(ref("LSAT7__2pl")["logLik"], abs=0.01)
    for item in bank.items:
        fit = item["fit"]
        assert {"s_x2", "df", "p"} <= set(fit)
        assert fit["df"] > 0 and fit["s_x2"] >= 0 and 0 <= fit["p"] <= 1


def test_lsat7_2pl_aic_bic_follow_from_loglik(lsat7_2pl):
    status, path = lsat7_2pl
    assert status == 0
    record = read_bank(path).calibration
    ll, k, n = record["loglik"], record["n_parameters"], record["n_persons"]
    # closed form: AIC = -2 ll + 2k, BIC = -2 ll + k ln n (each written to 4 decimals)
    assert record["aic"] == pytest.approx(-2 * ll + 2 * k, abs=1e-3)
    assert record["bic"] == pytest.approx(-2 * ll + k * math.log(n), abs=1e-3)
    # and so within 0.02 of mirt's AIC/BIC (tests/data/refs/LSAT7__2pl.json)
    assert record["aic"] == pytest.approx(ref("LSAT7__2pl")["AIC"], abs=0.02)
    assert record["bic"] == pytest.approx(ref("LSAT7__2pl")["BIC"], abs=0.02)


def test_lsat7_2pl_parameters_and_se_match_mirt(lsat7_2pl):
    status, path = lsat7_2pl
    assert status == 0
    items = by_id(json.loads(path.read_text()))
    for expected in ref("LSAT7__2pl")["items"]:   # mirt a, b, se_a, se_b (SE = TRUE, Oakes)
        item = items[expected["id"]]
        assert item["a"] == pytest.approx(expected["a"], abs=0.01)
        assert item["b"] == pytest.approx(expected["b"], abs=0.01)
        assert item["se"]["a"] == pytest.approx(expected["se_a"], rel=0.05)
        assert item["se"]["b"] == pytest.approx(expected["se_b"], rel=0.05)


# --- 2. summary line and standard output -------------------------------------------------

def test_summary_line_on_stderr_without_quiet(capsys, tmp_path):
    status, out, err = run(capsys, "calibrate", LSAT7, "--model", "2pl",
                           "--out", tmp_path / "bank.json")
    assert status == 0 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1                 # a fast run: the summary only, no progress lines
    assert "5 items" in lines[0] and "1000 persons" in lines[0] and "converged" in lines[0]


def test_without_out_the_document_goes_to_stdout(capsys):
    status, out, err = run(capsys, "calibrate", LSAT7, "--model", "2pl", "--quiet")
    assert status == 0 and err == ""
    document = json.loads(out)
    assert document["format"] == "irtcat-bank/1"
    assert [item["id"] for item in document["items"]] == LSAT7_ITEMS


# --- 3. polytomous -----------------------------------------------------------------------

@pytest.mark.parametrize("model", ["grm", "gpcm"])
def test_science_polytomous(capsys, tmp_path, model):
    status, document, err = calibrate(capsys, tmp_path, SCIENCE, "--model", model)
    assert status == 0 and err == ""
    bank = read_bank(tmp_path / "bank.json")
    mirt = ref(f"Science__{model}")   # tests/data/refs/Science__grm.json / Science__gpcm.json
    assert bank.item_ids == [item["id"] for item in mirt["items"]]
    assert document["calibration"]["n_persons"] == mirt["n_persons"]
    # mirt logLik: Science__grm.json -1608.870, Science__gpcm.json -1612.683
    assert document["calibration"]["loglik"] == pytest.approx(mirt["logLik"], abs=0.01)
    for item, expected in zip(document["items"], mirt["items"], strict=True):
        assert item["model"] == model and len(item["b"]) == 3
        if model == "grm":   # GRM thresholds increase
            assert item["b"][0] < item["b"][1] < item["b"][2]
        # mirt's own path (the default M-step): its slope-intercept estimates to 1e-4
        assert item["slope_intercept"]["a"] == pytest.approx(expected["a"], abs=1e-4)
        intercepts = [item["slope_intercept"][f"d{k}"] for k in (1, 2, 3)]
        assert intercepts == pytest.approx(expected["d"], abs=1e-4)
    assert document["calibration"]["iterations"] == mirt["em_cycles"]
    assert (document["calibration"]["m_step"], document["calibration"]["optimizer"]) == (
        "mirt", "bfgs")


def test_m_step_newton_reaches_the_maximum_mirt_stops_short_of(capsys, tmp_path):
    # Science GPCM: mirt's EM stops on a flat ridge (logLik -1612.68296, 50 cycles);
    # exact M-steps climb on to a higher logLik with a step parameter 0.08 away.
    mirt = ref("Science__gpcm")
    status, document, _ = calibrate(capsys, tmp_path, SCIENCE, "--model", "gpcm",
                                    "--m-step", "newton")
    assert status == 0
    record = document["calibration"]
    assert (record["m_step"], record["optimizer"]) == ("newton", "newton")
    assert record["loglik"] > mirt["logLik"] + 1e-3
    assert record["iterations"] < mirt["em_cycles"]


# --- 4. long-format input ----------------------------------------------------------------

def test_long_csv_calibrates_like_wide(capsys, tmp_path):
    long_path = tmp_path / "long.csv"
    with long_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "item_id", "response"])
        for row in csv.DictReader(LSAT7.read_text().splitlines()):
            for item in LSAT7_ITEMS:
                writer.writerow([row["person_id"], item, row[item]])
    _, wide, _ = calibrate(capsys, tmp_path, LSAT7, "--model", "2pl", name="wide.json")
    status, long, _ = calibrate(capsys, tmp_path, long_path, "--model", "2pl", name="long.json")
    assert status == 0
    # the same data in the other shape (FORMATS.md "Response data"): the same fit
    assert long["calibration"]["loglik"] == pytest.approx(wide["calibration"]["loglik"], abs=1e-6)
    assert long["calibration"]["n_persons"] == 1000
    for item_long, item_wide in zip(long["items"], wide["items"], strict=True):
        assert item_long["id"] == item_wide["id"]
        assert item_long["a"] == pytest.approx(item_wide["a"], abs=1e-6)
        assert item_long["b"] == pytest.approx(item_wide["b"], abs=1e-6)


# --- 5. exclusions and bad input ---------------------------------------------------------

def lsat7_with(tmp_path, **columns):
    """LSAT7 with extra wide columns (name -> value for every person, "" = not answered)."""
    table = lsat7_table()
    for name, value in columns.items():
        table[name] = value
    path = tmp_path / "data.csv"
    table.to_csv(path, index=False)
    return path


def assert_all_parameters_finite(document):
    for item in document["items"]:
        for key in ("a", "b", "c", "u"):
            if key in item:
                values = item[key] if isinstance(item[key], list) else [item[key]]
                assert all(v is not None and math.isfinite(v) for v in values), item


def test_unanswered_item_is_excluded_with_a_reason(capsys, tmp_path):
    path = lsat7_with(tmp_path, Blank="")
    status, document, err = calibrate(capsys, tmp_path, path, "--model", "2pl")
    assert status == 0 and err == ""
    read_bank(tmp_path / "bank.json")
    assert [item["id"] for item in document["items"]] == LSAT7_ITEMS
    excluded = document["calibration"]["excluded"]
    assert [entry["id"] for entry in excluded] == ["Blank"]
    assert "nobody answered" in excluded[0]["reason"]     # calibration/workflow.py
    assert_all_parameters_finite(document)


def test_constant_item_is_excluded_with_a_reason(capsys, tmp_path):
    path = lsat7_with(tmp_path, Const=1)
    status, document, err = calibrate(capsys, tmp_path, path, "--model", "2pl")
    assert status == 0 and err == ""
    read_bank(tmp_path / "bank.json")
    assert [item["id"] for item in document["items"]] == LSAT7_ITEMS
    excluded = document["calibration"]["excluded"]
    assert [entry["id"] for entry in excluded] == ["Const"]
    assert "every answer is category 1" in excluded[0]["reason"]   # calibration/workflow.py
    assert_all_parameters_finite(document)
    # the excluded item leaves the others' fit unchanged: mirt's LSAT7 2pl
    assert document["calibration"]["loglik"] == pytest.approx(ref("LSAT7__2pl")["logLik"],
                                                              abs=0.01)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_DATA = [
    # (data, model, message): the messages of calibration/workflow.py and itembank/io.py
    ("person_id,Q1,Q2\np1,1,0\np2,2,1\np3,0,1\n", "2pl", "item 'Q1': response 2 is beyond"),
    ("person_id,Q1,Q2\np1,1,0,1\n", "2pl", "malformed CSV"),
    ("person_id,Q1,Q2\np1,0,0\np2,1,3\np3,3,1\np4,0,1\n", "grm",
     "item 'Q1': category 2 is never observed"),
    ("person_id,Q1,Q2\np1,0,0\np2,1,3\np3,3,1\np4,0,1\n", "gpcm",
     "item 'Q1': category 2 is never observed"),
    ("person_id,Q1,Q2\np1,x,0\n", "2pl", "is not a category"),
    ("", "2pl", "empty file"),
]


@pytest.mark.parametrize("text, model, message", BAD_DATA)
def test_bad_data_names_the_problem(capsys, tmp_path, text, model, message):
    path = write(tmp_path, "data.csv", text)
    out_path = tmp_path / "bank.json"
    status, out, err = run(capsys, "calibrate", path, "--model", model, "--out", out_path)
    assert status == 2 and out == ""
    assert one_error_line(err) and message in err
    assert not out_path.exists() and list(tmp_path.glob("*.tmp")) == []


def test_nothing_to_calibrate(capsys, tmp_path):
    # every item excluded (all answers category 1): calibration/workflow.py
    table = lsat7_table()
    table[LSAT7_ITEMS] = 1
    path = tmp_path / "data.csv"
    table.to_csv(path, index=False)
    out_path = tmp_path / "bank.json"
    status, out, err = run(capsys, "calibrate", path, "--model", "2pl", "--out", out_path)
    assert status == 2 and out == ""
    assert one_error_line(err) and "no item can be calibrated" in err
    assert "Item.1: every answer is category 1" in err
    assert not out_path.exists()


def test_anchor_that_nobody_answered_is_not_an_anchor(capsys, tmp_path, write_json):
    table = lsat7_table()
    table["Item.1"] = None
    path = tmp_path / "data.csv"
    table.to_csv(path, index=False)
    anchor = write_json({"format": "irtcat-bank/1", "items": [
        {"id": "Item.1", "model": "2pl", "a": 1.0, "b": 0.0}]}, "anchor.json")
    out_path = tmp_path / "bank.json"
    status, _, err = run(capsys, "calibrate", path, "--model", "2pl", "--anchor", anchor,
                         "--out", out_path, "--quiet")
    # expected as for an anchor bank absent from the data (calibration/workflow.py)
    assert status == 2 and one_error_line(err) and "anchor" in err
    assert not out_path.exists()


def test_anchor_absent_from_the_data(capsys, tmp_path, write_json):
    # an anchor bank whose only items are not in LSAT7: calibration/workflow.py
    anchor = write_json({"format": "irtcat-bank/1", "items": [
        {"id": "Other.1", "model": "2pl", "a": 1.0, "b": 0.0},
        {"id": "Other.2", "model": "2pl", "a": 1.2, "b": 0.5}]}, "anchor.json")
    out_path = tmp_path / "bank.json"
    status, out, err = run(capsys, "calibrate", LSAT7, "--model", "2pl", "--anchor", anchor,
                           "--out", out_path)
    assert status == 2 and out == ""
    assert one_error_line(err) and "no anchor item appears in the data" in err
    assert not out_path.exists()


@pytest.mark.parametrize("argv, message", [
    (["missing.csv", "--model", "2pl"], "no such file"),
    ([LSAT7, "--model", "5pl"], "invalid choice"),
    ([LSAT7, "--model", "2pl", "--tol", "0"], "--tol: must be > 0"),
    ([LSAT7, "--model", "2pl", "--max-iter", "0"], "--max-iter: must be >= 1"),
    ([LSAT7], "--model is required"),
    ([LSAT7, "--model", "2pl", "--prior-c", "5"], "expected two numbers"),
    ([LSAT7, "--model", "2pl", "--standard", "S-A"], "--standard needs a bank"),
    ([LSAT7, "--model", "2pl", "--quadpts", "3"], "needs at least 5 nodes"),
    ([LSAT7, "--model", "2pl", "--m-step", "em"], "invalid choice"),
])
def test_usage_errors_exit_2_with_one_line(capsys, tmp_path, argv, message):
    out_path = tmp_path / "bank.json"
    status, out, err = run(capsys, "calibrate", *argv, "--out", out_path)
    assert status == 2 and out == ""
    assert one_error_line(err) and message in err
    assert not out_path.exists()


# --- 6. non-convergence ------------------------------------------------------------------

def test_max_iter_1_warns_and_records_not_converged(capsys, tmp_path):
    out_path = tmp_path / "bank.json"
    status, out, err = run(capsys, "calibrate", LSAT7, "--model", "2pl", "--max-iter", "1",
                           "--out", out_path, "--quiet")
    assert status == 0 and out == ""
    warnings = [line for line in err.splitlines() if line.startswith("irtcat: warning:")]
    assert len(warnings) == 1 and "converge" in warnings[0]
    document = json.loads(out_path.read_text())
    assert document["calibration"]["converged"] is False
    assert document["calibration"]["iterations"] == 1
    read_bank(out_path)


# --- 7. anchors --------------------------------------------------------------------------

MIRT_LSAT7 = {item["id"]: item for item in ref("LSAT7__2pl")["items"]}  # LSAT7__2pl.json
ANCHORS = {item_id: MIRT_LSAT7[item_id] for item_id in ("Item.1", "Item.2", "Item.3")}


@pytest.fixture(scope="module")
def anchored(tmp_path_factory):
    """LSAT7 2pl calibrated with mirt's Item.1-3 (full precision) as anchors."""
    folder = tmp_path_factory.mktemp("anchored")
    anchor = folder / "anchor.json"
    anchor.write_text(json.dumps({"format": "irtcat-bank/1", "items": [
        {"id": item_id, "model": "2pl", "a": item["a"], "b": item["b"]}
        for item_id, item in ANCHORS.items()]}))
    out_path = folder / "bank.json"
    status = main(["calibrate", str(LSAT7), "--model", "2pl", "--anchor", str(anchor),
                   "--out", str(out_path), "--quiet"])
    return status, out_path


def test_anchor_items_keep_their_parameters_exactly(anchored):
    status, path = anchored
    assert status == 0
    items = by_id(json.loads(path.read_text()))
    for item_id, expected in ANCHORS.items():
        assert items[item_id]["a"] == expected["a"] and items[item_id]["b"] == expected["b"]


def test_anchor_items_keep_their_parameters(anchored):
    status, path = anchored
    assert status == 0
    read_bank(path)
    document = json.loads(path.read_text())
    items = by_id(document)
    mirt, anchors = MIRT_LSAT7, ANCHORS
    assert list(items) == LSAT7_ITEMS
    for item_id, expected in anchors.items():   # kept (to the 10 digits written)
        assert items[item_id]["anchor"] is True
        assert items[item_id]["a"] == pytest.approx(expected["a"], rel=1e-9, abs=0)
        assert items[item_id]["b"] == pytest.approx(expected["b"], rel=1e-9, abs=0)
        assert "se" not in items[item_id] and "slope_intercept" not in items[item_id]
    # the anchors come from mirt's N(0, 1) fit of the same data: the estimated
    # population lands near N(0, 1) and the free items near mirt's values
    assert document["population"]["mean"] == pytest.approx(0.0, abs=0.15)
    assert document["population"]["sd"] == pytest.approx(1.0, abs=0.15)
    assert document["population"] != {"mean": 0.0, "sd": 1.0}   # estimated, not fixed
    assert sorted(document["calibration"]["anchors"]) == sorted(anchors)
    for item_id in ("Item.4", "Item.5"):
        assert not items[item_id].get("anchor")
        assert items[item_id]["a"] == pytest.approx(mirt[item_id]["a"], abs=0.15)
        assert items[item_id]["b"] == pytest.approx(mirt[item_id]["b"], abs=0.15)


# --- 8. standards ------------------------------------------------------------------------

@pytest.fixture
def tags_path(write_json):
    """Item.1-3 tagged S-A, Item.4-5 S-B; no parameters (FORMATS.md: absent while awaiting
    calibration)."""
    return write_json({"format": "irtcat-bank/1", "items": [
        {"id": item_id, "standard": "S-A" if n <= 3 else "S-B", "model": "2pl"}
        for n, item_id in enumerate(LSAT7_ITEMS, start=1)]}, "tags.json")


def test_standard_calibrates_only_its_items(capsys, tmp_path, tags_path):
    status, document, err = calibrate(capsys, tmp_path, LSAT7, "--bank", tags_path,
                                      "--standard", "S-A")
    assert status == 0 and err == ""
    read_bank(tmp_path / "bank.json")
    assert [item["id"] for item in document["items"]] == ["Item.1", "Item.2", "Item.3"]
    assert all(item["standard"] == "S-A" and item["model"] == "2pl"
               for item in document["items"])
    assert document["calibration"]["standard"] == "S-A"


def test_by_standard_writes_one_bank_per_standard(capsys, tmp_path, tags_path):
    folder = tmp_path / "banks"
    status, out, err = run(capsys, "calibrate", LSAT7, "--by-standard", tags_path,
                           "--out", folder, "--quiet")
    assert status == 0 and out == "" and err == ""
    assert sorted(path.name for path in folder.iterdir()) == ["S-A.json", "S-B.json"]
    for code, expected in (("S-A", ["Item.1", "Item.2", "Item.3"]),
                           ("S-B", ["Item.4", "Item.5"])):
        bank = read_bank(folder / f"{code}.json")
        assert bank.item_ids == expected
        assert set(bank.standard_codes) == {code}


def test_by_standard_needs_out(capsys, tags_path):
    status, out, err = run(capsys, "calibrate", LSAT7, "--by-standard", tags_path)
    assert status == 2 and out == ""
    assert one_error_line(err) and "--out" in err


def test_unknown_standard(capsys, tmp_path, tags_path):
    out_path = tmp_path / "bank.json"
    status, out, err = run(capsys, "calibrate", LSAT7, "--bank", tags_path,
                           "--standard", "S-Z", "--out", out_path)
    assert status == 2 and out == ""
    assert one_error_line(err) and "S-Z" in err
    assert not out_path.exists()


# --- 9. priors ---------------------------------------------------------------------------

def test_priors_on_a_3pl_fit(capsys, tmp_path):
    status, document, _ = calibrate(capsys, tmp_path, LSAT7, "--model", "3pl", "--priors")
    assert status == 0
    read_bank(tmp_path / "bank.json")
    # Priors.defaults() (calibration/mml_em.py) and the --prior-* help of api/cli.py
    assert document["calibration"]["priors"] == {
        "a": {"distribution": "lognormal", "parameters": [0.0, 0.5]},
        "b": {"distribution": "normal", "parameters": [0.0, 2.0]},
        "c": {"distribution": "beta", "parameters": [5.0, 17.0]},
        "u": {"distribution": "beta", "parameters": [17.0, 5.0]}}
    assert all(0 < item["c"] < 1 for item in document["items"])


def test_prior_c_alone(capsys, tmp_path):
    status, document, _ = calibrate(capsys, tmp_path, LSAT7, "--model", "3pl",
                                    "--prior-c", "5,17")
    assert status == 0
    assert document["calibration"]["priors"] == {
        "c": {"distribution": "beta", "parameters": [5.0, 17.0]}}


def test_no_priors_by_default(lsat7_2pl):
    _, path = lsat7_2pl
    assert json.loads(path.read_text())["calibration"]["priors"] is None


# --- 10. linking -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """Two random halves of LSAT7 (seeded), each calibrated 2pl to its own bank."""
    folder = tmp_path_factory.mktemp("halves")
    table = lsat7_table()
    first = table.sample(frac=0.5, random_state=20261125)
    second = table.drop(first.index)
    paths = []
    for name, part in (("half1", first), ("half2", second)):
        data = folder / f"{name}.csv"
        part.to_csv(data, index=False)
        bank = folder / f"{name}.json"
        assert main(["calibrate", str(data), "--model", "2pl", "--out", str(bank),
                     "--quiet"]) == 0
        paths.append(bank)
    return paths


LINK_METHODS = ["mean-mean", "mean-sigma", "haebara", "stocking-lord"]


def constants(line):
    """A and B from 'A = 1.000000  B = 0.000000  (method, n common items)'."""
    words = line.split()
    assert words[0] == "A" and words[1] == "=" and words[3] == "B" and words[4] == "="
    return float(words[2]), float(words[5])


def test_link_half2_to_half1(capsys, tmp_path, halves):
    half1, half2 = halves
    out_path = tmp_path / "linked.json"
    status, out, err = run(capsys, "link", half2, "--to", half1, "--method", "stocking-lord",
                           "--out", out_path)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("A = ") and " B = " in lines[0]
    A, B = constants(lines[0])
    # two random halves of one N(0, 1) sample: the scales nearly agree
    assert A == pytest.approx(1.0, abs=0.3) and B == pytest.approx(0.0, abs=0.3)
    linked = read_bank(out_path)
    assert linked.item_ids == LSAT7_ITEMS
    new = read_bank(half2)
    # calibration/linking.py: a_old = a_new / A, b_old = A b_new + B
    np.testing.assert_allclose([item["a"] for item in linked.items],
                               [item["a"] / A for item in new.items], rtol=1e-5)
    np.testing.assert_allclose([item["b"] for item in linked.items],
                               [A * item["b"] + B for item in new.items], atol=1e-5)


@pytest.mark.parametrize("method", LINK_METHODS)
def test_link_to_itself_is_the_identity(capsys, tmp_path, halves, method):
    half1, _ = halves
    status, out, _ = run(capsys, "link", half1, "--to", half1, "--method", method,
                         "--out", tmp_path / "linked.json")
    assert status == 0
    A, B = constants(out.splitlines()[0])
    # the same items on the same scale: theta_old = 1 * theta_new + 0
    assert A == pytest.approx(1.0, abs=1e-6) and B == pytest.approx(0.0, abs=1e-6)


def test_link_without_out_writes_the_bank_to_stdout(capsys, halves):
    half1, half2 = halves
    status, out, err = run(capsys, "link", half2, "--to", half1)
    assert status == 0
    assert json.loads(out)["format"] == "irtcat-bank/1"
    assert err.startswith("A = ") and err.count("\n") == 1


def test_link_needs_two_common_items(capsys, tmp_path, halves, write_json):
    half1, _ = halves
    other = write_json({"format": "irtcat-bank/1", "items": [
        {"id": "Item.1", "model": "2pl", "a": 1.0, "b": 0.0},
        {"id": "Other", "model": "2pl", "a": 1.0, "b": 0.5}]}, "other.json")
    out_path = tmp_path / "linked.json"
    status, out, err = run(capsys, "link", other, "--to", half1, "--out", out_path)
    assert status == 2 and out == ""
    assert one_error_line(err) and "at least 2 common items" in err
    assert not out_path.exists()


def test_linked_bank_drops_the_old_scales_slope_intercept(capsys, tmp_path):
    # The slope-intercept form of a calibration describes its own scale; after
    # linking (a / A, A b + B) it would contradict d = -a b, so it is dropped.
    bank = tmp_path / "bank.json"
    assert main(["calibrate", str(LSAT7), "--model", "2pl", "--quiet", "--se",
                 "--out", str(bank)]) == 0
    out = tmp_path / "linked.json"
    assert main(["link", str(bank), "--to", str(bank), "--out", str(out)]) == 0
    for item in json.loads(out.read_text())["items"]:
        assert "slope_intercept" not in item and "se_slope_intercept" not in item
        assert "se" in item
    capsys.readouterr()


@pytest.mark.parametrize("option, value", [("--prior-a", "0,0"), ("--prior-a", "0,-1"),
                                           ("--prior-c", "0,17"), ("--prior-b", "nan,1")])
def test_invalid_prior_parameters_exit_2(capsys, option, value):
    status = main(["calibrate", str(LSAT7), "--model", "3pl", option, value])
    _, err = capsys.readouterr()
    assert status == 2 and err.count("\n") == 1 and err.startswith("irtcat: error:")


def test_a_reverse_keyed_item_is_kept_flagged_and_the_bank_stays_readable(capsys, tmp_path):
    # mirt's M-step lets a slope go negative; simulation truth: item i0 has a = -1.2.
    rng = np.random.default_rng(11)
    theta = rng.normal(size=2000)
    a = np.array([-1.2] + [1.0] * 9)
    b = rng.normal(size=10)
    x = (rng.random((2000, 10)) < 1 / (1 + np.exp(-a * (theta[:, None] - b)))).astype(int)
    data = tmp_path / "reversed.csv"
    pd.DataFrame(x, columns=[f"i{j}" for j in range(10)]).rename_axis("person_id").to_csv(data)
    status, document, err = calibrate(capsys, tmp_path, data, "--model", "2pl", "--se")
    assert status == 0 and err == ""
    assert "excluded" not in document["calibration"]
    reversed_item = document["items"][0]
    assert reversed_item["fit"]["flagged"]
    assert "negative" in reversed_item["fit"]["reason"]
    assert "reverse" in reversed_item["fit"]["reason"]
    bank = read_bank(tmp_path / "bank.json")
    assert bank.item_ids == [f"i{j}" for j in range(10)]
    # simulation truth a = -1.2 for i0, within 3 SEs of the estimate
    assert abs(bank.params.a[0] + 1.2) < 3 * reversed_item["se"]["a"]
    assert np.all(bank.params.a[1:] > 0)
