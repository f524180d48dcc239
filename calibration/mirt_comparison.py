"""A multidimensional fit against the unidimensional fit of the same items.

mirt's ``anova(unidimensional, multidimensional)``: both models' logLik, AIC and
BIC, and the likelihood-ratio test X2 = 2 (logLik_multi - logLik_uni) on as many
degrees of freedom as the multidimensional model has extra parameters, p from
the chi-square upper tail. The unidimensional model is the same item model(s)
on one factor, fitted by `calibration.mml_em.MMLCalibrator` with mirt's defaults.

`multidimensional_m2`: mirt's ``M2(mod)`` family (M2, RMSEA, SRMSR, TLI, CFI) of
the multidimensional fit on complete data, evaluated on the calibration's own
product grid with the N(0, R) weights (`calibration.model_fit.m2_statistics`).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import chi2

from irtcat.engine import ConvergenceWarning
from irtcat.engine.multidimensional import MultidimensionalItems, log_probability

from .mml_em import MMLCalibrator
from .model_fit import m2_statistics
from .moment_jacobian import compensatory_mean_jacobian


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


def multidimensional_m2(calibrator, responses, items, dimensions):
    """The M2 row (dict, `M2Result.as_dict`) of a fitted confirmatory or exploratory
    MirtCalibrator, or None where mirt computes none: missing responses, or a bifactor
    model (whose full grid has 1 + S dimensions).

    responses : ndarray (n_persons, n_items), NaN where missing
    items, dimensions : the fit's bank items and ``dimensions`` (FORMAT of the bank),
        before any rotation
    """
    responses = np.asarray(responses, dtype=float)
    if calibrator.bifactor or np.isnan(responses).any():
        return None
    nodes = calibrator.nodes_                                                   # (Q, m)
    log_weights = calibrator.log_prior(calibrator.correlation_)                 # (Q,)
    model = MultidimensionalItems.from_entries(items, dimensions)
    log_p = log_probability(nodes, model)                                      # (Q, J, K)
    free_slopes = np.asarray(calibrator.loadings, dtype=bool)
    jacobian = compensatory_mean_jacobian(
        log_p, nodes, free_slopes, list(calibrator.models_),
        lower=np.asarray(calibrator.guessing_, dtype=float))
    return m2_statistics(responses, log_p, log_weights, int(calibrator.n_parameters_),
                         jacobian).as_dict()
