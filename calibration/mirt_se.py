"""Standard errors of a multidimensional fit (calibration.mirt_em), as mirt's Oakes.

Oakes (1999): the observed information is minus the derivative of the marginal
score, and the marginal score at a parameter vector is the complete-data score
averaged over that vector's own posterior (Fisher's identity). So the score is
one E-step plus the M-step's gradient (items: sum r dlog P; correlations: the
derivative of sum_q N_q log w_q with w the N(0, R) density normalised over the
grid), and the information is its Jacobian by central differences, as
`calibration.standard_errors` does for the unidimensional calibrator. The
parameters are the M-step's (slopes, intercepts, logit c, free correlations);
c's standard error is carried to the probability scale by the delta method.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def marginal_score(calibrator, design, vector):
    """Gradient of the marginal log-likelihood at `vector` (the M-step's raw
    parameters): shape (n_free,). The calibrator's parameters are restored.
    design : the E-step's data (`MirtCalibrator.designs`' second value)."""
    saved = calibrator._raw(calibrator.correlation_)
    correlation = calibrator._set_raw(vector, calibrator.correlation_)
    try:
        counts, node_mass, _ = calibrator._e_step(design, correlation)
        parts = []
        for group in calibrator.groups_:
            factors = tuple(group.factors)
            rows = calibrator.rows_in_set_[id(group)]
            group_counts = counts[factors][rows].reshape(group.items.size,
                                                         group.n_categories, -1)
            _, grad, _ = group.objective(group.params, group_counts,
                                         calibrator.sets_[factors][1])
            parts.append(grad.ravel())
        parts.append(_correlation_score(calibrator, correlation, node_mass))
        return np.concatenate(parts)
    finally:
        calibrator._set_raw(saved, calibrator.correlation_)


def _correlation_score(calibrator, correlation, node_mass):
    """d/d rho_ij of sum_q N_q log w_q(R), w normalised over the grid: (n_free_corr,)."""
    pairs = np.argwhere(calibrator.free_correlation)
    if pairs.size == 0:
        return np.zeros(0)
    nodes = calibrator.nodes_
    inverse = np.linalg.inv(correlation)
    weights = np.exp(calibrator.log_prior(correlation))
    scaled = nodes @ inverse                                              # (Q, m)
    # d log phi_q / d rho_ij = -R^-1_ij + (R^-1 theta)_i (R^-1 theta)_j, both entries
    scores = (-inverse[pairs[:, 0], pairs[:, 1]][None, :]
              + scaled[:, pairs[:, 0]] * scaled[:, pairs[:, 1]])          # (Q, n_corr)
    excess = node_mass - node_mass.sum() * weights
    return excess @ scores


def observed_information(calibrator, responses, step=1e-5, cluster=None):
    """Minus the symmetrised Jacobian of the marginal score: (n_free, n_free).
    cluster : distributed.Client, optional: the E-steps run there (as `fit`'s)."""
    _, design = calibrator.designs(responses, cluster)
    try:
        return _observed_information(calibrator, design, step)
    finally:
        if cluster is not None:
            design.close()


def _observed_information(calibrator, design, step):
    center = calibrator._raw(calibrator.correlation_)
    hessian = np.empty((center.size, center.size))
    for i in range(center.size):
        h = step * max(1.0, abs(center[i]))
        up, down = center.copy(), center.copy()
        up[i] += h
        down[i] -= h
        hessian[:, i] = (marginal_score(calibrator, design, up)
                         - marginal_score(calibrator, design, down)) / (2 * h)
    return -(hessian + hessian.T) / 2


def standard_errors(calibrator, responses, cluster=None):
    """Standard errors of a fitted MirtCalibrator (the E-steps on the Dask `cluster`
    when one is given).

    Returns a dict: ``slopes`` (n_items, m) with NaN where a slope is fixed,
    ``intercepts`` per item a float or a list, ``guessing`` (n_items,) NaN but
    for 3pl items, ``correlation`` (m, m) NaN where not estimated, and
    ``positive_definite`` (False: the information could not be inverted, all NaN).
    """
    info = observed_information(calibrator, responses, cluster=cluster)
    try:
        chol = np.linalg.cholesky(info)
        inverse = np.linalg.inv(chol)
        variances = np.einsum("ij,ij->j", inverse, inverse)
        positive = True
    except np.linalg.LinAlgError:
        variances = np.full(info.shape[0], np.nan)
        positive = False
    se = np.sqrt(variances)
    n_items, m = calibrator.slopes_.shape
    slopes = np.full((n_items, m), np.nan)
    intercepts = [None] * n_items
    guessing = np.full(n_items, np.nan)
    start = 0
    for group in calibrator.groups_:
        block = se[start: start + group.params.size].reshape(group.params.shape)
        start += group.params.size
        slopes[np.ix_(group.items, group.factors)] = block[:, : group.n_slopes]
        rest = block[:, group.n_slopes:]
        for row, item in enumerate(group.items):
            if group.model in ("2pl", "3pl"):
                intercepts[item] = float(rest[row, 0])
            else:
                intercepts[item] = rest[row].tolist()
            if group.model == "3pl":
                c = expit(group.params[row, -1])
                guessing[item] = float(rest[row, -1] * c * (1 - c))
    correlation = np.full((m, m), np.nan)
    rows, cols = np.nonzero(calibrator.free_correlation)
    correlation[rows, cols] = se[start:]
    correlation[cols, rows] = se[start:]
    return {"slopes": slopes, "intercepts": intercepts, "guessing": guessing,
            "correlation": correlation, "positive_definite": positive}
