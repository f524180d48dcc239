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
