"""Item fit per group in a multiple-group bank (``fit_by_group``), against the closed
property of a multiple-group fit with every parameter free per group.

With no invariance every group has its own item parameters and its own N(0, 1): the
likelihood factorises (tests/calibration/test_multigroup.py checks the log-likelihood),
so each group's estimates are a single-group calibration of that group's persons, and
its item fit must be the single-group bank's ``fit`` of that group's data: S-X2 on
complete data (tests/data/refs2/simdif_2x2000x40.csv, 2000 persons per group), X2 given
the other answers when each person answered only some items (the same file with 10 of
40 answers per person removed at random).
"""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from irtcat.api.cli import main
from irtcat.calibration.item_fit import item_fit
from irtcat.calibration.multigroup_bank import multigroup_document
from irtcat.calibration.workflow import calibrate_document
from irtcat.engine.models import parameters_from_entries
from irtcat.itembank import read_response_log
from irtcat.itembank.io import read_responses

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
SIMDIF = DATA / "refs2" / "simdif_2x2000x40.csv"
VERBAL = DATA / "verbal.csv"
TOL = 1e-7     # both fits run to this; the records round to 4 decimals: compared to 1e-4


def _group_files(frame, tmp_path):
    """The whole file (with its group column) and one wide file per group code."""
    whole = tmp_path / "all.csv"
    frame.to_csv(whole, index=False)
    per_group = {}
    for code, rows in frame.groupby("group"):
        path = tmp_path / f"group_{code}.csv"
        rows.drop(columns="group").to_csv(path, index=False)
        per_group[str(code)] = path
    return whole, per_group


def _compare(tmp_path, frame, keys):
    whole, per_group = _group_files(frame, tmp_path)
    document, _ = multigroup_document(read_responses(whole, group="group"), "2pl", tol=TOL)
    compared = 0
    for code, path in per_group.items():
        single, _ = calibrate_document(read_response_log(path), "2pl", m_step="newton",
                                       tol=TOL)
        assert [item["id"] for item in single["items"]] == [
            item["id"] for item in document["items"]]
        for grouped, alone in zip(document["items"], single["items"], strict=True):
            fit, expected = grouped["fit_by_group"][code], alone["fit"]
            for key in keys:
                if expected.get(key) is None:
                    assert fit.get(key) is None, (code, grouped["id"], key)
                    continue
                compared += 1
                assert fit[key] == pytest.approx(expected[key], abs=1e-4), (
                    code, grouped["id"], key)
            assert fit["flagged"] == expected["flagged"]
    return compared


def test_per_group_s_x2_is_the_single_group_fit_of_each_group(tmp_path):
    frame = pd.read_csv(SIMDIF, dtype={"group": str})
    compared = _compare(tmp_path, frame, ("s_x2", "df", "p"))
    assert compared == 2 * 40 * 3            # every item of both groups has S-X2


def test_per_group_fit_on_sparse_answers_is_the_single_group_fit_of_each_group(tmp_path):
    frame = pd.read_csv(SIMDIF, dtype={"group": str})
    items = [column for column in frame.columns if column not in ("person_id", "group")]
    rng = np.random.default_rng(30)
    answers = frame[items].to_numpy(dtype=float)
    for row in answers:                                # keep 30 of 40 answers per person
        row[rng.choice(len(items), 10, replace=False)] = np.nan
    frame[items] = answers
    frame[items] = frame[items].astype("Int64")
    compared = _compare(tmp_path, frame, ("x2", "x2_df", "x2_p"))
    assert compared == 2 * 40 * 3            # every item of both groups has X2


def test_calibrate_group_writes_fit_per_group_unless_no_fit(tmp_path, capsys):
    out = tmp_path / "bank.json"
    status = main(["calibrate", str(VERBAL), "--group", "group", "--model", "2pl", "--quiet",
                   "--invariance", "slopes,intercepts,free_means,free_var", "--out", str(out)])
    assert status == 0
    items = json.loads(out.read_text())["items"]
    for item in items:
        assert set(item["fit_by_group"]) == {"0", "1"}
        assert item["fit_by_group"]["0"]["df"] > 0            # 243 persons: S-X2 computed
        # 73 persons are fewer than 5 per summed score 0..24: no S-X2, with the reason
        assert item["fit_by_group"]["1"]["s_x2"] is None
        assert item["fit_by_group"]["1"]["reason"].startswith("S-X2 needs more persons")
    status = main(["calibrate", str(VERBAL), "--group", "group", "--model", "2pl", "--quiet",
                   "--no-fit", "--out", str(out)])
    assert status == 0
    assert all("fit_by_group" not in item for item in json.loads(out.read_text())["items"])


def test_a_focal_groups_fit_is_taken_at_its_own_latent_distribution():
    # Full invariance on verbal with group "1" as the reference: group "0" (243
    # persons, enough for S-X2 on 24 items) is focal with its mean and variance
    # estimated. Its fit is item_fit's on its persons at the bank's (equal) item
    # parameters and at its own N(mean, var), one df fewer for the
    # estimated variance; at N(0, 1) the statistics differ.
    data = read_responses(VERBAL, group="group")
    document, calibrator = multigroup_document(data, "2pl", reference="1",
                                      invariance=("slopes", "intercepts", "free_means",
                                                  "free_var"))
    assert calibrator.groups_ == ["1", "0"]
    focal = calibrator.latents_[1]
    assert focal.estimate_var and abs(focal.mean) > 0.1   # refs2/verbal__dif.json: they differ
    rows = np.asarray(data.groups) == "0"
    params = parameters_from_entries(document["items"])
    n_parameters = np.full(params.n_items, 2)
    expected = item_fit(data.responses[rows], params, n_parameters,
                        population_mean=focal.mean, population_sd=np.sqrt(focal.var),
                        variance_estimated=True)
    at_standard_normal = item_fit(data.responses[rows], params, n_parameters)
    moved = 0
    for item, fit, standard in zip(document["items"], expected, at_standard_normal,
                                   strict=True):
        record = item["fit_by_group"]["0"]
        assert record["df"] == fit.df and fit.df > 0
        assert record["s_x2"] == pytest.approx(fit.s_x2, abs=1e-4)   # rounded to 4 decimals
        moved += abs(standard.s_x2 - fit.s_x2) > 0.01
    assert moved > 12
