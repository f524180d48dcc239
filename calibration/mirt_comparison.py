"""A multidimensional fit against the unidimensional fit of the same items.

mirt's ``anova(unidimensional, multidimensional)``: both models' logLik, AIC and
BIC, and the likelihood-ratio test X2 = 2 (logLik_multi - logLik_uni) on as many
degrees of freedom as the multidimensional model has extra parameters, p from
the chi-square upper tail. The unidimensional model is the same item model(s)
on one factor, fitted by `calibration.mml_em.MMLCalibrator` with mirt's defaults.
"""

from __future__ import annotations

import warnings

from scipy.stats import chi2

from irtcat.engine import ConvergenceWarning

from .mml_em import MMLCalibrator


def compare_with_unidimensional(calibrator, responses):
    """The comparison record (dict) of a fitted MirtCalibrator; responses as it was fitted on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        single = MMLCalibrator(calibrator.models_).fit(responses)
    statistic = 2.0 * (calibrator.log_likelihood_ - single.log_likelihood_)
    df = int(calibrator.n_parameters_ - single.n_parameters_)
    p_value = float(chi2.sf(statistic, df)) if df > 0 else None
    return {"unidimensional": {"loglik": float(single.log_likelihood_),
                               "aic": float(single.aic_), "bic": float(single.bic_),
                               "n_parameters": int(single.n_parameters_),
                               "converged": bool(single.converged_)},
            "multidimensional": {"loglik": float(calibrator.log_likelihood_),
                                 "aic": float(calibrator.aic_), "bic": float(calibrator.bic_),
                                 "n_parameters": int(calibrator.n_parameters_)},
            "X2": float(statistic), "df": df, "p": p_value}
