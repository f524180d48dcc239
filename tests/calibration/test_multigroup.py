"""Multiple-group calibration and likelihood-ratio DIF against R mirt 1.45.1
(tests/data/refs2/verbal__dif.json), simulation truth (tests/data/refs2/
simdif_2x2000x40*), and identities that hold exactly."""

import json
import pathlib

import numpy as np
import pytest

from irtcat.calibration.mml_em import MMLCalibrator
from irtcat.calibration.multigroup import (
    MultipleGroupCalibrator,
    adjust_p_values,
    likelihood_ratio_dif,
)
from irtcat.calibration.responses import from_dense
from irtcat.itembank.io import read_responses

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
VERBAL = DATA / "verbal.csv"
SIMDIF = DATA / "refs2" / "simdif_2x2000x40.csv"
FULL_INVARIANCE = ("slopes", "intercepts", "free_means", "free_var")


def refs2(name):
    return json.loads((DATA / "refs2" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def verbal():
    return read_responses(VERBAL, group="group")


@pytest.fixture(scope="module")
def verbal_fit(verbal):
    calibrator = MultipleGroupCalibrator("2pl", invariance=FULL_INVARIANCE)
    calibrator.fit(verbal.responses, verbal.groups, reference="0", item_ids=verbal.item_ids)
    return calibrator


# --- mirt's multipleGroup on verbal ----------------------------------------------------

def test_multiple_group_fit_matches_mirt(verbal_fit):
    # refs2/verbal__dif.json, key mirt_multipleGroup.fit: logLik -4014.401, 50 parameters
    reference = refs2("verbal__dif")["mirt_multipleGroup"]
    fit = reference["fit"]
    assert verbal_fit.converged_
    assert verbal_fit.log_likelihood_ == pytest.approx(fit["logLik"], abs=0.01)
    assert verbal_fit.n_parameters_ == fit["n_parameters"]
    criteria = verbal_fit.information_criteria()
    for key in ("AIC", "BIC", "SABIC", "HQ"):        # -2 logLik + penalty: 2 x logLik's 0.01
        assert criteria[key] == pytest.approx(fit[key], abs=0.02), key


def test_multiple_group_parameters_match_mirt(verbal_fit):
    # refs2/verbal__dif.json, key mirt_multipleGroup.groups[].items (a1, d) and
    # groups[1].latent (focal mean 0.245, variance 0.795): within 0.01
    reference = refs2("verbal__dif")["mirt_multipleGroup"]
    assert verbal_fit.groups_ == ["0", "1"]
    for g, group in enumerate(reference["groups"]):
        ours = verbal_fit.group_parameters(g)
        for item in group["items"]:
            assert ours[item["id"]]["a"] == pytest.approx(item["par"]["a1"], abs=0.01)
            assert ours[item["id"]]["d"] == pytest.approx(item["par"]["d"], abs=0.01)
        latent = verbal_fit.latents_[g]
        assert latent.mean == pytest.approx(group["latent"]["par"]["MEAN_1"], abs=0.01)
        assert latent.var == pytest.approx(group["latent"]["par"]["COV_11"], abs=0.01)


def test_standard_errors_match_mirt_oakes(verbal_fit):
    # refs2/verbal__dif.json, mirt_multipleGroup (SE.type 'Oakes'): item a1/d SEs and the
    # focal MEAN_1/COV_11 SEs within 0.002 (our observed information by differences)
    reference = refs2("verbal__dif")["mirt_multipleGroup"]
    cov = verbal_fit.covariance()
    assert cov is not None
    latent_se = verbal_fit.latent_standard_errors(cov)
    assert latent_se[0] == {"mean": None, "var": None}
    focal = reference["groups"][1]["latent"]["se"]
    assert latent_se[1]["mean"] == pytest.approx(focal["MEAN_1"], abs=0.002)
    assert latent_se[1]["var"] == pytest.approx(focal["COV_11"], abs=0.002)
    block = verbal_fit.blocks_[0]
    for row, item in enumerate(block.items):
        index = verbal_fit.item_covariance_index(0, row, 0)
        se = np.sqrt(np.diag(cov)[index])
        expected = reference["groups"][0]["items"][item]["se"]
        assert se == pytest.approx([expected["a1"], expected["d"]], abs=0.002)


# --- mirt's DIF (drop scheme) on verbal -------------------------------------------------

def test_likelihood_ratio_dif_matches_mirt(verbal):
    # refs2/verbal__dif.json, key mirt_DIF.table: X2 within 0.05, same df, the same items
    # with p < .05 (S2WantShout, S2DoCurse, S2DoScold, S3DoCurse); IC differences within
    # 0.05 too, and the freed item's coefficients in each group within 0.01
    table = refs2("verbal__dif")["mirt_DIF"]["table"]
    rows = likelihood_ratio_dif(verbal, "2pl", reference="0")
    assert [row["item"] for row in rows] == [entry["item"] for entry in table]
    for row, entry in zip(rows, table, strict=True):
        assert row["X2"] == pytest.approx(entry["X2"], abs=0.05), row["item"]
        assert row["df"] == entry["df"]
        for key in ("AIC", "SABIC", "HQ", "BIC"):
            assert row[key] == pytest.approx(entry[key], abs=0.05), (row["item"], key)
        assert row["p_adjusted"] == row["p"]                   # mirt 1.45: p.adjust 'none'
        for coefficients in entry["coefficients"]:
            ours = row["groups"][coefficients["group"]]
            assert ours["a"] == pytest.approx(coefficients["a1"], abs=0.01)
            assert ours["d"] == pytest.approx(coefficients["d"], abs=0.01)
    flagged = [row["item"] for row in rows if row["p"] < 0.05]
    assert flagged == [entry["item"] for entry in table if entry["p"] < 0.05]
    assert flagged == ["S2WantShout", "S2DoCurse", "S2DoScold", "S3DoCurse"]


def test_dif_on_simulated_data_finds_the_planted_items():
    # refs2/simdif_2x2000x40_truth.json: i01-i04 uniform DIF (b + 0.6 in the focal group),
    # i05-i06 non-uniform (a x 0.5); i07-i40 none. Anchors: i07-i40, each tested item
    # taken out of the anchors while it is tested; p < .05 unadjusted.
    truth = json.loads((DATA / "refs2" / "simdif_2x2000x40_truth.json").read_text())
    data = read_responses(SIMDIF, group="group")
    anchors = [f"i{j:02d}" for j in range(7, 41)]
    rows = likelihood_ratio_dif(data, "2pl", reference="0", anchors=anchors, scheme="add")
    flagged = {row["item"] for row in rows if row["p"] < 0.05}
    dif_items = {item["id"] for item in truth["items"] if item["reference"] != item["focal"]}
    assert dif_items == {f"i{j:02d}" for j in range(1, 7)}
    assert dif_items <= flagged
    assert len(flagged - dif_items) <= 2
    assert all(row["df"] == 2 for row in rows)


def test_dif_arguments_are_checked(verbal):
    with pytest.raises(ValueError, match="anchors"):
        likelihood_ratio_dif(verbal, "2pl", reference="0", scheme="add")
    with pytest.raises(ValueError, match="no item"):
        likelihood_ratio_dif(verbal, "2pl", reference="0", items=["nope"])
    with pytest.raises(ValueError, match="parameter"):
        likelihood_ratio_dif(verbal, "2pl", reference="0", parameters=("b",))


# --- identities --------------------------------------------------------------------------

def test_free_groups_are_separate_calibrations(verbal):
    """Every parameter free and every group N(0, 1): the likelihood factorises, so the
    maximum is the sum of each group's own single-group maximum."""
    codes = np.asarray(verbal.groups)
    separate = sum(MMLCalibrator("2pl", m_step="newton", tol=1e-7)
                   .fit(from_dense(verbal.responses[codes == code])).log_likelihood_
                   for code in ("0", "1"))
    joint = MultipleGroupCalibrator("2pl", tol=1e-7).fit(verbal.responses, verbal.groups,
                                                         reference="0")
    assert joint.n_parameters_ == 2 * 2 * 24
    assert joint.log_likelihood_ == pytest.approx(separate, abs=1e-4)


def test_equal_groups_are_one_calibration(verbal):
    """Every parameter equal and every group N(0, 1): the pooled single-group model."""
    pooled = MMLCalibrator("2pl", m_step="newton", tol=1e-7).fit(
        from_dense(verbal.responses)).log_likelihood_
    joint = MultipleGroupCalibrator("2pl", invariance=("slopes", "intercepts"), tol=1e-7).fit(
        verbal.responses, verbal.groups, reference="0")
    assert joint.n_parameters_ == 2 * 24
    assert joint.log_likelihood_ == pytest.approx(pooled, abs=1e-4)


def test_partial_invariance_reaches_a_stationary_point(verbal):
    """Equal intercepts, free slopes, free focal mean: at convergence the marginal
    log-likelihood's gradient (Fisher's identity) vanishes."""
    calibrator = MultipleGroupCalibrator("2pl", invariance=("intercepts", "free_means"),
                                         tol=1e-8)
    calibrator.fit(verbal.responses, verbal.groups, reference="0")
    assert calibrator.n_parameters_ == 24 * 3 + 1
    assert calibrator.free_items() == list(calibrator.item_ids_)
    gradient = calibrator.marginal_gradient(calibrator._vector())
    assert np.max(np.abs(gradient)) < 1e-3


def test_unidentified_options_are_refused(verbal):
    with pytest.raises(ValueError, match="free_means"):
        MultipleGroupCalibrator("2pl", invariance=("free_means",)).fit(
            verbal.responses, verbal.groups)
    with pytest.raises(ValueError, match="neither"):
        MultipleGroupCalibrator("2pl", invariance=("slope",)).fit(
            verbal.responses, verbal.groups)
    with pytest.raises(ValueError, match="reference"):
        MultipleGroupCalibrator("2pl").fit(verbal.responses, verbal.groups, reference="9")


def test_p_value_adjustments_follow_their_definitions():
    """R's p.adjust, by hand for p = (.04, .001, .03, .2), m = 4:
    Holm sorted (.001, .03, .04, .2) x (4, 3, 2, 1) = (.004, .09, .08, .2), running max
    (.004, .09, .09, .2); BH sorted x 4 / (1, 2, 3, 4) = (.004, .06, .0533, .2), running min
    from the top (.004, .0533, .0533, .2); Bonferroni x 4 capped at 1."""
    p = [0.04, 0.001, 0.03, 0.2]
    assert adjust_p_values(p, "none") == p
    assert adjust_p_values(p, "holm") == pytest.approx([0.09, 0.004, 0.09, 0.2])
    assert adjust_p_values(p, "BH") == pytest.approx([0.16 / 3, 0.004, 0.16 / 3, 0.2])
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.16, 0.004, 0.12, 0.8])
    assert np.isnan(adjust_p_values([np.nan, 0.5], "holm")[0])
