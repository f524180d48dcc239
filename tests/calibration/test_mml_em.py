"""MML-EM against R mirt's reference fits (tests/data/refs) and simulation truth.

Tolerances are the acceptance criteria of the calibration issue: logLik
within 0.01 (0.05 for the 3PL), slope-intercept parameters within 0.01
(0.03), standard errors within 5 % relative.

The default M-step ("mirt") takes mirt's EM path and lands where mirt does,
including where mirt stops short of the maximum (Science gpcm, 3PLs): same
cycle counts, parameters equal to 1e-5 or better on all but the flat plain
3PLs. On ASVAB's plain 3PL (shared/refs/README: a flat likelihood, a slope
near 9) the path is chaotic: starting values moved by 1e-13 end anywhere
between 119 and 314 cycles with the same logLik. There the test follows the
README: logLik within tolerance, and every item whose parameters differ from
mirt's is flagged. SLF's plain 3PL is mildly chaotic too: under the same
perturbations it ends in 81 to 151 cycles, 29 of 30 runs within 0.03 of
mirt (the unperturbed run: 0.026; the worst: 0.033, on item 5's slope, a
fiftieth of its SE). It is held to the tolerance here.

The Newton M-step solves each M-step exactly and reaches the maximum. Where
its parameters differ from mirt's by more than the tolerance, the test
requires proof that mirt stopped short: our likelihood function evaluated at
mirt's parameters reproduces mirt's logLik (the same function), and Newton's
estimate reaches a strictly higher value of it.
"""

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import irtcat.engine
from irtcat.calibration.mml_em import MMLCalibrator, Priors
from irtcat.calibration.responses import from_dense
from irtcat.calibration.results import item_documents
from irtcat.calibration.standard_errors import free_vector, marginal_gradient
from irtcat.engine import ConvergenceWarning, ItemParameters
from irtcat.engine.estimation import log_likelihood

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
REFS = sorted((DATA / "refs").glob("*__*.json"))
CHAOTIC = "ASVAB__3pl"


def load(path):
    reference = json.loads(path.read_text())
    name, model = path.stem.split("__")
    responses = pd.read_csv(DATA / f"{name}.csv").iloc[:, 1:].to_numpy(float)
    return reference, model, responses


def usable(path):
    reference = json.loads(path.read_text())
    # Attitude is unfolding data: shared/refs/README says to treat it as an
    # edge case for error handling, not as a parameter reference.
    return reference.get("usable_as_parameter_reference") and "Attitude" not in path.stem


PLAIN = [p for p in REFS if usable(p) and not p.stem.endswith("_prior")]
WITH_PRIOR = [p for p in REFS if usable(p) and p.stem.endswith("_prior")]
FITS = {}


def fitted(path, m_step="mirt"):
    if (path, m_step) not in FITS:
        reference, model, responses = load(path)
        data = from_dense(responses)
        priors = Priors(c=(5.0, 17.0)) if model.endswith("_prior") else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            calibrator = MMLCalibrator(model.replace("_prior", ""), priors=priors,
                                       m_step=m_step).fit(data)
        FITS[path, m_step] = (reference, model, data, calibrator)
    return FITS[path, m_step]


def mirt_vector(calibrator, reference, model):
    """mirt's estimates in the order of our free-parameter vector."""
    parts = []
    for block in calibrator.blocks_:
        for item in block.items:
            entry = reference["items"][item]
            values = [] if block.model in ("rasch", "pcm") else [entry["a"]]
            values += list(np.atleast_1d(entry["d"]))
            if block.model == "3pl":
                values.append(entry["logit_g"])
            parts.append(values)
    if model == "1pl":   # one shared slope, then the intercepts
        parts = [[reference["items"][0]["a"]], [entry["d"] for entry in reference["items"]]]
    vector = np.concatenate(parts)
    if calibrator.latent_.estimate_var:
        vector = np.append(vector, reference["latent"]["var"])
    return vector


def parameter_gaps(calibrator, reference, model):
    """|ours - mirt's| per free parameter, asymptotes compared as probabilities (as mirt's g)."""
    ours = free_vector(calibrator)
    theirs = mirt_vector(calibrator, reference, model)
    if model == "3pl":
        mask = np.concatenate([np.tile([False, False, True], len(b.items))
                               for b in calibrator.blocks_])
        ours[mask], theirs[mask] = expit(ours[mask]), expit(theirs[mask])
    return np.abs(ours - theirs)


def stopped_short(calibrator, data, reference, model):
    """True when mirt's point is a lower value of the same likelihood than ours."""
    value_at_mirt = marginal_gradient(calibrator, data, mirt_vector(calibrator, reference,
                                                                    model))[0]
    assert value_at_mirt == pytest.approx(reference["logLik"], abs=1e-3)  # the same function
    return calibrator.log_likelihood_ - reference["logLik"] > 1e-4


def loglik_tolerance(model):
    return 0.05 if model.startswith("3pl") else 0.01


def parameter_tolerance(model):
    return 0.03 if model == "3pl" else 0.01


@pytest.mark.parametrize("m_step", ["mirt", "newton"])
@pytest.mark.parametrize("path", PLAIN, ids=lambda p: p.stem)
def test_loglik_matches_mirt(path, m_step):
    reference, model, _, calibrator = fitted(path, m_step)
    difference = calibrator.log_likelihood_ - reference["logLik"]
    if path.stem == CHAOTIC and m_step == "newton":
        # Exact M-steps keep climbing the flat ridge (the slope runs off) and report
        # non-convergence instead of stopping where mirt's EM did.
        assert difference > 0 and not calibrator.converged_
        return
    assert abs(difference) <= loglik_tolerance(model)


@pytest.mark.parametrize("path", [p for p in PLAIN if p.stem != CHAOTIC], ids=lambda p: p.stem)
def test_parameters_match_mirt(path):
    reference, model, _, calibrator = fitted(path)
    assert parameter_gaps(calibrator, reference, model).max() <= parameter_tolerance(model)


@pytest.mark.parametrize("path", [p for p in PLAIN if p.stem in ("Science__grm", "LSAT7__3pl",
                                                                  "deAyala__2pl")],
                         ids=lambda p: p.stem)
def test_mirt_m_step_takes_mirts_path(path):
    # The same EM cycles as mirt and the same point to rounding, not merely within tolerance.
    reference, model, _, calibrator = fitted(path)
    assert calibrator.n_iter_ == reference["em_cycles"]
    assert parameter_gaps(calibrator, reference, model).max() < 1e-5


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: p.stem)
def test_newton_parameters_match_mirt_or_mirt_stopped_short(path):
    reference, model, data, calibrator = fitted(path, "newton")
    if parameter_gaps(calibrator, reference, model).max() > parameter_tolerance(model):
        # Only acceptable when mirt's point is provably not the maximum.
        assert stopped_short(calibrator, data, reference, model)


@pytest.mark.parametrize("path", [p for p in PLAIN if "3pl" not in p.stem], ids=lambda p: p.stem)
def test_standard_errors_match_mirt(path):
    reference, model, data, calibrator = fitted(path)
    ids = [item["id"] for item in reference["items"]]
    documents, cov = item_documents(calibrator, ids, data, standard_errors=True)
    ours, theirs = [], []
    for document, entry in zip(documents, reference["items"], strict=True):
        se = document["se_slope_intercept"]
        if "a" in se:
            ours.append(se["a"])
            theirs.append(entry["se_a"])
        ours += [value for name, value in se.items() if name.startswith("d")]
        theirs += list(np.atleast_1d(entry["se_d"]))
    if calibrator.latent_.estimate_var:   # the population variance
        ours.append(np.sqrt(cov[-1, -1]))
        theirs.append(reference["latent"]["se_var"])
    ratio = np.array(ours) / np.array(theirs)
    assert np.all(np.abs(ratio - 1) <= 0.05), ratio


@pytest.mark.parametrize("path", WITH_PRIOR, ids=lambda p: p.stem)
def test_beta_prior_fit_is_at_least_as_good_as_mirts(path):
    # shared/refs/README: mirt's expbeta prior takes its gradient in g instead of
    # logit(g), so a correct Bayes-modal fit reaches a higher penalized likelihood.
    reference, model, data, calibrator = fitted(path)
    ours = marginal_gradient(calibrator, data)[0]
    theirs = marginal_gradient(calibrator, data, mirt_vector(calibrator, reference, model))[0]
    assert ours >= theirs - 1e-6


def test_flat_3pl_items_that_differ_from_mirt_are_flagged():
    # shared/refs/README: ASVAB's plain 3PL sits on a flat likelihood (a slope near 9):
    # "a fit that matches mirt's logLik but not its parameters there is not wrong;
    # flag the item instead".
    from irtcat.calibration.workflow import calibrate_document
    from irtcat.itembank import read_response_log

    reference = json.loads((DATA / "refs" / f"{CHAOTIC}.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        document, calibrator = calibrate_document(read_response_log(DATA / "ASVAB.csv"), "3pl",
                                                  standard_errors=True)
    assert abs(calibrator.log_likelihood_ - reference["logLik"]) <= 0.05
    steep = [item for item in document["items"] if item["a"] > 8]
    assert steep and all("runs off" in item["fit"]["reason"] for item in steep)
    for item, entry in zip(document["items"], reference["items"], strict=True):
        ours = np.array([item["a"], -item["a"] * item["b"], item["c"]])
        if np.abs(ours - [entry["a"], entry["d"], entry["g"]]).max() > 0.03:
            assert item["fit"]["flagged"] and "weakly determined" in item["fit"]["reason"]


def test_degenerate_unfolding_data_are_flagged():
    # Attitude (shared/refs/README): monotone models fit it poorly; mirt's 1pl
    # reaches a slope of about 0. Ours too, and every item is flagged for it.
    from irtcat.calibration.workflow import calibrate_document
    from irtcat.itembank import read_response_log

    document, calibrator = calibrate_document(read_response_log(DATA / "Attitude.csv"), "1pl")
    assert all(item["a"] < 0.05 for item in document["items"])
    assert all(item["fit"]["flagged"] and "near 0" in item["fit"]["reason"]
               for item in document["items"])


# --- simulation truth -------------------------------------------------------------------

def simulate(rng, params, theta):
    p = np.exp(irtcat.engine.category_log_probability(theta, params))   # (n, J, K)
    draws = rng.random(theta.shape + (params.n_items, 1))
    return (draws > np.cumsum(p, axis=-1)).sum(axis=-1).astype(float)


def test_recovers_a_simulated_2pl(rng):
    # Acceptance: seeded 2PL, 5,000 persons x 50 items: RMSE of a and of b <= 0.08.
    a, b = rng.lognormal(0.0, 0.25, 50), rng.normal(0.0, 1.0, 50)
    truth = ItemParameters.create("2pl", a, b)
    responses = simulate(rng, truth, rng.normal(size=5000))
    calibrator = MMLCalibrator("2pl").fit(responses)
    irt = calibrator.blocks_[0].irt()
    assert np.sqrt(np.mean((irt["a"] - a) ** 2)) <= 0.08
    assert np.sqrt(np.mean((irt["b"] - b) ** 2)) <= 0.08


def test_anchored_items_put_new_items_on_the_anchor_scale(rng):
    # Acceptance: fixed-parameter calibration, population shifted by 0.5: RMSE of b <= 0.1.
    a, b = rng.lognormal(0.0, 0.25, 40), rng.normal(0.0, 1.0, 40)
    truth = ItemParameters.create("2pl", a, b)
    responses = simulate(rng, truth, rng.normal(0.5, 1.0, 4000))
    anchors = {j: {"model": "2pl", "a": a[j], "b": b[j]} for j in range(20)}
    calibrator = MMLCalibrator("2pl").fit(responses, fixed=anchors)
    new = next(block for block in calibrator.blocks_ if not block.fixed)
    assert list(new.items) == list(range(20, 40))
    assert np.sqrt(np.mean((new.irt()["b"] - b[20:]) ** 2)) <= 0.1
    assert calibrator.mean_ == pytest.approx(0.5, abs=0.1)
    assert calibrator.sd_ == pytest.approx(1.0, abs=0.1)


def test_sparse_and_dense_give_the_same_fit(rng):
    from irtcat.calibration.responses import from_coordinates

    truth = ItemParameters.create("2pl", rng.lognormal(0, 0.25, 30), rng.normal(0, 1, 30))
    responses = simulate(rng, truth, rng.normal(size=2000))
    responses[rng.random(responses.shape) < 0.6] = np.nan        # each person answers ~40 %
    person, item = np.nonzero(~np.isnan(responses))
    sparse = from_coordinates(2000, 30, person, item, responses[person, item].astype(int))
    dense = MMLCalibrator("2pl").fit(from_dense(responses, collapse=False))
    from_log = MMLCalibrator("2pl").fit(sparse)
    assert sparse.sparse and not dense.blocks_[0].fixed
    assert from_log.log_likelihood_ == pytest.approx(dense.log_likelihood_, abs=1e-8)
    np.testing.assert_allclose(from_log.blocks_[0].eta, dense.blocks_[0].eta, atol=1e-10)


def test_complete_data_fit_equals_the_full_one_hot_fit(rng):
    # Complete dense data keep only categories >= 1 (category 0 implied); the same
    # responses as a sparse log keep every category. Both must give the same fit.
    from irtcat.calibration.responses import from_coordinates

    models = ["2pl"] * 6 + ["grm"] * 4
    b = list(rng.normal(0, 1, 6)) + [np.sort(rng.normal(0, 1, 3)) for _ in range(4)]
    truth = ItemParameters.create(models, rng.lognormal(0, 0.25, 10), b)
    responses = simulate(rng, truth, rng.normal(size=1500))
    dense = from_dense(responses, collapse=False)
    person, item = np.nonzero(np.ones(responses.shape, dtype=bool))
    sparse = from_coordinates(1500, 10, person, item, responses[person, item].astype(int))
    assert dense.complete and not sparse.complete
    np.testing.assert_allclose(dense.item_counts(), sparse.item_counts())
    fits = [MMLCalibrator(models).fit(data) for data in (dense, sparse)]
    assert fits[0].log_likelihood_ == pytest.approx(fits[1].log_likelihood_, abs=1e-7)
    for one, other in zip(fits[0].blocks_, fits[1].blocks_, strict=True):
        np.testing.assert_allclose(one.eta, other.eta, atol=1e-6)


def test_mixed_bank_recovers_each_model(rng):
    models = ["2pl"] * 10 + ["grm"] * 6 + ["gpcm"] * 6
    b = list(rng.normal(0, 1, 10)) + [np.sort(rng.normal(0, 1, 3)) for _ in range(12)]
    truth = ItemParameters.create(models, rng.lognormal(0, 0.25, 22), b)
    responses = simulate(rng, truth, rng.normal(size=3000))
    calibrator = MMLCalibrator(models).fit(responses)
    for block in calibrator.blocks_:
        irt = block.irt()
        assert np.sqrt(np.mean((irt["a"] - truth.a[block.items]) ** 2)) <= 0.1, block.model


def test_pattern_log_likelihood_agrees_with_the_engine(rng):
    # The EM's marginal logLik equals the engine's likelihood integrated on the same grid.
    truth = ItemParameters.create("2pl", rng.lognormal(0, 0.25, 8), rng.normal(0, 1, 8))
    responses = simulate(rng, truth, rng.normal(size=500))
    calibrator = MMLCalibrator("2pl").fit(responses)
    irt = calibrator.blocks_[0].irt()
    params = ItemParameters.create("2pl", irt["a"], irt["b"])
    nodes = np.linspace(-6, 6, 61)
    log_w = -0.5 * nodes**2
    log_w -= np.log(np.exp(log_w).sum())
    expected = np.sum(np.log(np.exp(log_likelihood(responses, nodes, params) + log_w).sum(1)))
    assert calibrator.log_likelihood_ == pytest.approx(expected, abs=1e-6)


def test_max_iter_one_warns_and_reports_not_converged(rng):
    truth = ItemParameters.create("2pl", rng.lognormal(0, 0.25, 10), rng.normal(0, 1, 10))
    responses = simulate(rng, truth, rng.normal(size=500))
    with pytest.warns(ConvergenceWarning):
        calibrator = MMLCalibrator("2pl", max_iter=1).fit(responses)
    assert not calibrator.converged_ and calibrator.n_iter_ == 1


@pytest.mark.parametrize("path", [p for p in PLAIN if p.stem.endswith("__3pl")],
                         ids=lambda p: p.stem)
def test_3pl_standard_errors_match_mirt_where_the_fits_agree(path):
    # Standard errors describe the curvature at a point: compared only where both
    # programs reached the same maximum (parameters within 0.03), and for items whose
    # lower asymptote is inside (0, 1); at c -> 0 the logit-scale SE is unbounded.
    reference, model, data, calibrator = fitted(path)
    if parameter_gaps(calibrator, reference, model).max() > 0.03:
        pytest.skip("a flat likelihood, flagged (test_flat_3pl_items_that_differ_from_mirt...)")
    ids = [item["id"] for item in reference["items"]]
    documents, _ = item_documents(calibrator, ids, data, standard_errors=True)
    compared = 0
    for document, entry in zip(documents, reference["items"], strict=True):
        if document["c"] < 0.01:
            continue
        se = document["se_slope_intercept"]
        for name, theirs_se in (("a", entry["se_a"]), ("d", entry["se_d"]),
                                ("logit_c", entry["se_logit_g"])):
            assert se[name] == pytest.approx(theirs_se, rel=0.05), (document["id"], name)
        compared += 1
    assert compared >= 1
