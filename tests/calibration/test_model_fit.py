"""Tests of calibration.model_fit: M2 and its indices, and the anova rows, against R mirt.

References: tests/data/refs2/{LSAT7,LSAT6,deAyala}__modelfit.json (mirt 1.45.1:
``M2(mod)`` with its defaults and ``anova(mod_1pl, mod_2pl)``; see
tests/data/refs2/README.md (c)). Tolerances: 0.01 absolute on every value, df
equal. Closed forms (RMSEA, information criteria, the likelihood-ratio X2) and
simulation truth (M2 is chi-square with its df when the model is true) check the
pieces on their own.
"""

import json
import pathlib

import numpy as np
import pytest

from irtcat.calibration.mml_em import MMLCalibrator
from irtcat.calibration.model_fit import (
    ModelFitError,
    anova,
    information_criteria,
    m2,
    marginal_log_likelihood,
    model_fit_record,
    rmsea,
    rmsea_interval,
)
from irtcat.engine.models import ItemParameters, category_probability
from irtcat.itembank.io import read_responses

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
DATASETS = ("LSAT7", "LSAT6", "deAyala")
M2_KEYS = ("M2", "p", "RMSEA", "RMSEA_5", "RMSEA_95", "SRMSR", "TLI", "CFI")


def reference(dataset):
    return json.loads((DATA / "refs2" / f"{dataset}__modelfit.json").read_text())


@pytest.fixture(scope="module")
def fitted():
    """{(dataset, model): (calibrator, responses)} for the three data sets, 1pl and 2pl."""
    out = {}
    for dataset in DATASETS:
        responses = read_responses(DATA / f"{dataset}.csv").responses
        for model in ("1pl", "2pl"):
            out[dataset, model] = MMLCalibrator(model).fit(responses), responses
    return out


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model", ("1pl", "2pl"))
def test_m2_family_matches_mirt(fitted, dataset, model):
    calibrator, responses = fitted[dataset, model]
    # tests/data/refs2/<dataset>__modelfit.json models.<model>.logLik: the fit mirt's M2 saw
    expected = reference(dataset)["models"][model]
    assert calibrator.log_likelihood_ == pytest.approx(expected["logLik"], abs=1e-3)
    result = m2(calibrator, responses).as_dict()
    # tests/data/refs2/<dataset>__modelfit.json models.<model>.M2: M2, df, p, RMSEA
    # (+ RMSEA_5, RMSEA_95), SRMSR, TLI, CFI within 0.01, df equal
    assert result["df"] == expected["M2"]["df"]
    for key in M2_KEYS:
        assert result[key] == pytest.approx(expected["M2"][key], abs=0.01), key


@pytest.mark.parametrize("dataset", DATASETS)
def test_anova_rows_match_mirt(fitted, dataset):
    models = [(name, fitted[dataset, name][0].log_likelihood_, fitted[dataset, name][0]
               .n_parameters_, fitted[dataset, name][1].shape[0]) for name in ("1pl", "2pl")]
    rows = [row.as_dict() for row in anova(models)]
    # tests/data/refs2/<dataset>__modelfit.json anova.rows: every value within 0.01, df equal
    for row, expected in zip(rows, reference(dataset)["anova"]["rows"], strict=True):
        assert row["model"] == expected["model"]
        for key in ("AIC", "SABIC", "HQ", "BIC", "logLik", "X2", "p"):
            if expected[key] is None:
                assert row[key] is None
            else:
                assert row[key] == pytest.approx(expected[key], abs=0.01), key
        assert row["df"] == expected["df"]


def test_m2_p_is_one_minus_pchisq_so_tiny_is_zero(fitted):
    # tests/data/refs2/deAyala__modelfit.json models.1pl.M2.p is exactly 0 (README (c))
    calibrator, responses = fitted["deAyala", "1pl"]
    assert m2(calibrator, responses).p == 0.0


def test_rmsea_and_its_interval_closed_forms():
    # mirt's rmsea: sqrt((X2/df - 1) / (N - 1)), 0 below df
    assert rmsea(30.0, 10, 101) == pytest.approx(np.sqrt(2.0 / 100))
    assert rmsea(5.0, 10, 101) == 0.0
    assert np.isnan(rmsea(5.0, 0, 101))
    # the interval's bounds are where the noncentral chi-square cdf at X2 is 0.95 and 0.05
    from scipy.stats import ncx2
    low, high = rmsea_interval(40.0, 10, 500)
    assert ncx2.cdf(40.0, 10, low**2 * 500 * 10) == pytest.approx(0.95, abs=1e-8)
    assert ncx2.cdf(40.0, 10, high**2 * 500 * 10) == pytest.approx(0.05, abs=1e-8)
    # no root in [0, X2] for the lower bound when P(chi2_df < X2) < 0.95: 0, as mirt
    assert rmsea_interval(5.0, 10, 500)[0] == 0.0


def test_information_criteria_and_lr_test_closed_forms():
    criteria = information_criteria(-100.0, 4, 50)
    assert criteria["AIC"] == pytest.approx(208.0)
    assert criteria["BIC"] == pytest.approx(200 + 4 * np.log(50))
    assert criteria["SABIC"] == pytest.approx(200 + 4 * np.log(52 / 24))
    assert criteria["HQ"] == pytest.approx(200 + 8 * np.log(np.log(50)))
    rows = anova([("small", -100.0, 4, 50), ("large", -97.0, 6, 50)])
    assert rows[0].X2 is None and rows[0].df is None
    assert rows[1].X2 == pytest.approx(6.0) and rows[1].df == 2
    assert rows[1].p == pytest.approx(np.exp(-3.0))          # chi2(2) survival = exp(-x/2)


def test_marginal_log_likelihood_is_the_calibrations(fitted):
    # identity: the log-likelihood MML-EM reports is this integral at its estimates
    calibrator, responses = fitted["LSAT7", "2pl"]
    block = calibrator.blocks_[0]
    irt = block.irt()
    params = ItemParameters(("2pl",) * 5, irt["a"], irt["b"][:, None], np.zeros(5), np.ones(5))
    assert marginal_log_likelihood(responses, params) == pytest.approx(
        calibrator.log_likelihood_, abs=1e-8)


def test_m2_is_chi_square_when_the_model_holds():
    # simulation truth: 2PL data from known parameters, refitted; M2 ~ chi2(df), mean df
    rng = np.random.default_rng(20261204)
    a = np.array([0.8, 1.0, 1.2, 1.5, 0.9, 1.1, 1.3])
    d = np.array([-1.0, -0.5, 0.0, 0.4, 0.8, 1.2, -0.2])
    statistics, dfs = [], set()
    for _ in range(40):
        theta = rng.standard_normal(800)
        responses = (rng.random((800, 7)) < 1 / (1 + np.exp(-(np.outer(theta, a) + d))))
        calibrator = MMLCalibrator("2pl").fit(responses.astype(float))
        result = m2(calibrator, responses.astype(float))
        statistics.append(result.M2)
        dfs.add(result.df)
    assert dfs == {28 - 14}                               # 7 + 21 moments - 14 parameters
    # the mean of 40 chi2(14) draws: sd sqrt(28 / 40) = 0.84, so +-3 sd is +-2.5
    assert np.mean(statistics) == pytest.approx(14.0, abs=2.5)


def test_too_few_degrees_of_freedom_is_refused():
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(500)
    responses = (rng.random((500, 3)) < 1 / (1 + np.exp(-1.5 * theta[:, None]))).astype(float)
    calibrator = MMLCalibrator("2pl").fit(responses)
    with pytest.raises(ModelFitError, match="too few degrees of freedom"):
        m2(calibrator, responses)                         # 6 moments, 6 parameters
    assert "reason" in model_fit_record(calibrator, responses)


@pytest.mark.parametrize("model", ("grm", "gpcm"))
def test_m2_star_is_chi_square_for_polytomous_items(model):
    # simulation truth: 3-category items from known parameters, refitted; M2* (the item
    # scores' first and second moments) ~ chi2(df), so its mean over replications is df
    rng = np.random.default_rng(20261205)
    n_items = 10
    params = ItemParameters((model,) * n_items, rng.uniform(0.8, 2.0, n_items),
                            rng.normal(0.0, 0.5, (n_items, 1)) + [-0.8, 0.8],
                            np.zeros(n_items), np.ones(n_items))
    statistics, dfs = [], set()
    for _ in range(15):
        prob = category_probability(rng.standard_normal(500), params)      # (n, J, 3)
        draw = rng.random((500, n_items, 1))
        responses = (draw > np.cumsum(prob, axis=2)).sum(axis=2).astype(float)
        result = m2(MMLCalibrator(model, m_step="newton").fit(responses), responses)
        statistics.append(result.M2)
        dfs.add(result.df)
    assert dfs == {10 + 45 - 30}                           # moments - 3 parameters an item
    # the mean of 15 chi2(25) draws: sd sqrt(50 / 15) = 1.83, so +-3 sd is +-5.5
    assert np.mean(statistics) == pytest.approx(25.0, abs=5.5)


def test_a_log_where_two_items_never_meet_gets_a_reason_not_a_failure(rng):
    # An adaptive-test log: items 0 and 1 are never given to the same person, so their
    # pair's observed moment does not exist and M2 is undefined; the calibration that
    # asks for it still succeeds, with the reason in calibration.model_fit.
    from irtcat.calibration.workflow import calibrate_document
    from irtcat.engine.simulate import simulate_responses
    from irtcat.itembank.io import ResponseData

    params = ItemParameters.create("2pl", rng.lognormal(0, 0.3, 8), rng.normal(0, 1, 8))
    responses = simulate_responses(rng.standard_normal(1500), params, rng).astype(float)
    responses[:750, 0] = np.nan
    responses[750:, 1] = np.nan
    data = ResponseData([f"p{i}" for i in range(1500)], [f"i{j}" for j in range(8)], responses)
    document, _ = calibrate_document(data, "2pl")
    reason = document["calibration"]["model_fit"]["reason"]
    assert reason.startswith("M2 needs every pair of items answered by some person: "
                             "1 of 28 pairs are not")
