"""Calibration defects met by a mirt user, each checked against what the
algorithm guarantees: EM with priors climbs the posterior, SEs where an item is
determined, boundary estimates flagged, and messages that say what happened."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from irtcat.calibration.mml_em import MMLCalibrator, Priors
from irtcat.calibration.workflow import calibrate_document
from irtcat.engine import ConvergenceWarning
from irtcat.itembank import read_response_log, read_responses

DATA = Path(__file__).resolve().parent.parent / "data"


# --- EM with priors: the posterior rises, the likelihood need not -------------------

@pytest.mark.parametrize("path, model, priors", [
    ("SLF.csv", "3pl", Priors(c=(5.0, 17.0))),                 # irtcat calibrate --prior-c 5,17
    ("SAT12_keyed_sparse30.csv", "3pl", Priors.defaults()),    # --priors on a sparse log
])
def test_em_with_priors_converges_on_the_posterior(path, model, priors):
    # EM's guarantee (Dempster, Laird & Rubin 1977) with a prior is that
    # logLik + log prior never falls between cycles; the likelihood alone may.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        document, calibrator = calibrate_document(read_response_log(DATA / path), model,
                                                  priors=priors, fit=False)
    assert document["calibration"]["converged"] is True
    history = calibrator.history_
    assert len(history.log_posterior) == len(history.log_likelihood) == calibrator.n_iter_
    posterior = np.array(history.log_posterior)
    assert posterior[-1] >= posterior.max() - 1e-6 * abs(posterior.max())


def test_without_priors_the_posterior_trace_is_the_likelihood():
    calibrator = MMLCalibrator("2pl").fit(read_responses(DATA / "LSAT7.csv").responses)
    assert calibrator.history_.log_posterior == calibrator.history_.log_likelihood


# --- standard errors per item; weakly determined items ---------------------------

def _sparse_log(path):
    """A long response log: 1500 persons, 60 2PL items (simulated, seed fixed).

    Item i00 is answered by persons p0000-p0003 only (right, wrong, right, wrong),
    who answer nothing else: its likelihood depends on (a, d) only through the
    marginal P(right) = 1/2, a ridge, so the data do not determine it; i01-i05
    have 30 answers each, the others 400.
    """
    rng = np.random.default_rng(20261204)
    n_persons, n_items = 1500, 60
    theta = rng.normal(size=n_persons)
    a, b = rng.uniform(0.8, 2.0, n_items), rng.normal(size=n_items)
    lines = ["person_id,item_id,response"]
    lines += [f"p{p:04d},i00,{r}" for p, r in zip(range(4), [1, 0, 1, 0], strict=True)]
    for item in range(1, n_items):
        persons = rng.choice(np.arange(4, n_persons), 30 if item < 6 else 400, replace=False)
        right = rng.random(persons.size) < 1 / (1 + np.exp(-a[item] * (theta[persons] - b[item])))
        lines += [f"p{p:04d},i{item:02d},{int(r)}" for p, r in zip(persons, right, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_undetermined_item_gets_null_errors_and_the_others_keep_theirs(tmp_path):
    from irtcat.calibration.standard_errors import covariance

    log = read_response_log(_sparse_log(tmp_path / "sparse.csv"))
    document, calibrator = calibrate_document(log, "2pl", standard_errors=True, fit=False)
    items = {item["id"]: item for item in document["items"]}
    assert items["i00"]["se"] == {"a": None, "b": None}
    assert items["i00"]["se_slope_intercept"] == {"a": None, "d": None}
    assert items["i00"]["fit"]["flagged"]
    assert "not determined by the data" in items["i00"]["fit"]["reason"]
    assert "i00" in document["calibration"]["standard_errors"]
    assert all(item["se"]["a"] > 0 for key, item in items.items() if key != "i00")
    # No person answered i00 and another item, so the observed information is
    # block-diagonal between i00 and the rest: the others' covariance must be the
    # inverse of their own information, i.e. that of the same data without i00
    # (and its four persons) at the same parameter values.
    rest = [line for line in (tmp_path / "sparse.csv").read_text().splitlines()
            if ",i00," not in line]
    (tmp_path / "rest.csv").write_text("\n".join(rest) + "\n")
    _, without = calibrate_document(read_response_log(tmp_path / "rest.csv"), "2pl", fit=False)
    with_i00 = {i: block for block in calibrator.blocks_ for i in block.items}
    for block in without.blocks_:
        block.eta = np.array([with_i00[i + 1].eta[list(with_i00[i + 1].items).index(i + 1)]
                              for i in block.items])
    expected, undetermined = covariance(without, _response_set_of(without, tmp_path / "rest.csv"))
    assert undetermined == []
    ours = np.array([[items[f"i{j:02d}"]["se_slope_intercept"][name] for name in ("a", "d")]
                     for j in range(1, 60)]).ravel()
    np.testing.assert_allclose(ours, np.sqrt(np.diag(expected)), rtol=1e-6)


def _response_set_of(calibrator, path):
    """The ResponseSet `calibrate_document` fits for the long log at `path` (no exclusions)."""
    from irtcat.calibration.coordinates import coordinates as _coordinates
    from irtcat.calibration.workflow import _response_set

    coords = _coordinates(read_response_log(path))
    return _response_set(coords, np.full(len(coords.item_ids), 2))


def test_items_with_fewer_than_fifty_answers_are_flagged(tmp_path):
    log = read_response_log(_sparse_log(tmp_path / "sparse.csv"))
    document, _ = calibrate_document(log, "2pl", fit=False)
    for item in document["items"][1:]:
        few = item["id"] in {"i01", "i02", "i03", "i04", "i05"}
        reason = item.get("fit", {}).get("reason") or ""
        assert ("30 answers (fewer than 50)" in reason) == few, (item["id"], reason)
        if few:
            assert item["fit"]["flagged"]


# --- boundary estimates ---------------------------------------------------------

def _lsat7_rows(tmp_path, rows):
    """LSAT7 persons at the 0-based data rows `rows` (a slice), as a wide file."""
    lines = (DATA / "LSAT7.csv").read_text().splitlines()
    path = tmp_path / "few.csv"
    path.write_text("\n".join([lines[0], *lines[1:][rows]]) + "\n")
    return path


def test_a_population_sd_on_its_floor_is_flagged(tmp_path, capsys):
    from irtcat.api.cli import main

    # LSAT7 persons 31-40, Rasch: the estimated variance falls to mirt's floor 1e-4.
    path = _lsat7_rows(tmp_path, slice(30, 40))
    document, calibrator = calibrate_document(read_response_log(path), "rasch")
    assert calibrator.sd_ == pytest.approx(0.01)
    boundary = document["calibration"]["boundary"]
    assert len(boundary) == 1 and boundary[0].startswith("population sd 0.01 is at its lower")
    status = main(["calibrate", str(path), "--model", "rasch", "--out",
                   str(tmp_path / "bank.json")])
    err = capsys.readouterr().err
    assert status == 0 and "irtcat: warning: population sd 0.01 is at its lower bound" in err


def test_a_free_population_sd_away_from_the_floor_is_not_flagged():
    document, calibrator = calibrate_document(read_response_log(DATA / "LSAT7.csv"), "rasch")
    assert calibrator.sd_ > 0.5 and "boundary" not in document["calibration"]


# --- messages -------------------------------------------------------------------

def test_s_x2_on_ten_complete_persons_says_it_needs_more_persons(tmp_path):
    # 10 complete persons (every 100th of LSAT7), 5 items: S-X2 needs 5 x (5 + 1) = 30.
    path = _lsat7_rows(tmp_path, slice(0, None, 100))
    document, _ = calibrate_document(read_response_log(path), "rasch")
    for item in document["items"]:
        reason = item["fit"]["reason"]
        assert "booklets" not in reason
        assert reason.startswith("S-X2 needs more persons: 5 per possible summed score, 30 for "
                                 "5 items (scores 0..5), but 10 answered them")


def test_an_unused_top_category_is_reported(tmp_path, capsys):
    from irtcat.api.cli import main

    lines = (DATA / "Science.csv").read_text().splitlines()
    column = lines[0].split(",").index("Work")
    rows = [line.split(",") for line in lines[1:]]
    for row in rows:                                   # nobody answers Work in category 3
        row[column] = str(min(int(row[column]), 2))
    path = tmp_path / "science.csv"
    path.write_text("\n".join([lines[0], *(",".join(row) for row in rows)]) + "\n")
    document, _ = calibrate_document(read_response_log(path), "grm", fit=False)
    record = document["calibration"]
    assert record["categories_dropped"] == [{"id": "Work", "categories": 3, "unused": [3]}]
    work = next(item for item in document["items"] if item["id"] == "Work")
    assert len(work["b"]) == 2
    status = main(["calibrate", str(path), "--model", "grm", "--out", str(tmp_path / "b.json")])
    err = capsys.readouterr().err
    assert status == 0
    assert "irtcat: warning: item 'Work': nobody chose category 3" in err


@pytest.mark.parametrize("option, value", [("--prior-c", "5,17"), ("--prior-u", "17,5")])
def test_a_prior_that_acts_on_no_item_is_a_usage_error(tmp_path, capsys, option, value):
    from irtcat.api.cli import main

    status = main(["calibrate", str(DATA / "LSAT7.csv"), "--model", "2pl", option, value,
                   "--out", str(tmp_path / "bank.json")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"irtcat: error: {option} does not apply to the 2pl model")
    assert not (tmp_path / "bank.json").exists()


# --- reverse-keyed items stay in the bank ----------------------------------------

def test_attitude_2pl_keeps_its_reverse_keyed_items_and_counts_true():
    # tests/data/refs/Attitude__2pl.json: mirt estimates 4 of the 8 slopes negative
    # and counts 16 parameters (key "n_parameters").
    with warnings.catch_warnings():   # mirt's EM path runs out of cycles on these 54 persons
        warnings.simplefilter("ignore", ConvergenceWarning)
        document, _ = calibrate_document(read_response_log(DATA / "Attitude.csv"), "2pl",
                                         fit=False)
    assert len(document["items"]) == 8 and "excluded" not in document["calibration"]
    assert document["calibration"]["n_parameters"] == 16
    negative = [item["id"] for item in document["items"] if item["a"] < 0]
    assert len(negative) == 4
    for item in document["items"]:
        if item["id"] in negative:
            assert item["fit"]["flagged"] and "reverse-keyed" in item["fit"]["reason"]
