"""Standard errors of the item parameters from the observed information.

The gradient of the marginal log-likelihood is, by Fisher's identity, the
expected complete-data gradient under the posterior of the same parameters:

    g(eta) = sum_items sum_nodes sum_categories r_jkq(eta) d log P_jk(theta_q) / d eta

where r comes from an E-step at eta. The observed information is minus its
Jacobian, taken here by central differences of that analytic gradient; this
is the quantity mirt's default (Oakes' identity) estimates. Priors, when on,
add their log density to the objective and so their curvature to the
information. Standard errors are the square roots of the diagonal of the
inverse, in slope-intercept form; IRT-form errors follow by the delta
method.
"""

from __future__ import annotations

import numpy as np

from .mml_em import _objective


def free_vector(calibrator):
    """The estimated parameters in one vector: every free block's eta, then the
    population mean and variance where they are estimated."""
    parts = [block.free_values() for block in calibrator.blocks_ if not block.fixed]
    latent = calibrator.latent_
    if latent.estimate_mean:
        parts.append([latent.mean])
    if latent.estimate_var:
        parts.append([latent.var])
    return np.concatenate(parts)


def _set_free_vector(calibrator, vector):
    start = 0
    for block in calibrator.blocks_:
        if block.fixed:
            continue
        block.set_free_values(vector[start: start + block.n_free])
        start += block.n_free
    latent = calibrator.latent_
    if latent.estimate_mean:
        latent.mean = float(vector[start])
        start += 1
    if latent.estimate_var:
        latent.var = float(vector[start])


def marginal_gradient(calibrator, data, vector=None):
    """Marginal log-likelihood (plus log priors) and its gradient at `vector`.

    Returns
    -------
    value : float
    gradient : ndarray of shape (n_free,)
    """
    saved = free_vector(calibrator)
    if vector is not None:
        _set_free_vector(calibrator, vector)
    try:
        latent = calibrator.latent_
        counts, node_mass, loglik = calibrator._e_step(data, calibrator.blocks_, latent)
        parts, value = [], loglik
        for block in calibrator.blocks_:
            if block.fixed:
                continue
            block_counts = calibrator._block_counts(data, block, counts)
            prior_free = _objective(block, block.eta, np.zeros_like(block_counts),
                                    calibrator.nodes_, calibrator.priors, False)[0]
            value += float(np.sum(prior_free))
            _, grad, _ = _objective(block, block.eta, block_counts, calibrator.nodes_,
                                    calibrator.priors)
            parts.append(block.free_gradient(grad))
        nodes, var = calibrator.nodes_, latent.var
        weights = np.exp(calibrator._log_weights(latent))
        centred = nodes - latent.mean
        if latent.estimate_mean:
            score = centred / var
            parts.append([node_mass @ (score - weights @ score)])
        if latent.estimate_var:
            score = centred**2 / (2 * var**2)
            parts.append([node_mass @ (score - weights @ score)])
        return value, np.concatenate(parts)
    finally:
        _set_free_vector(calibrator, saved)


def observed_information(calibrator, data, step=1e-5):
    """Minus the Jacobian of `marginal_gradient` at the estimate: (n_free, n_free)."""
    center = free_vector(calibrator)
    size = center.size
    hessian = np.empty((size, size))
    for i in range(size):
        h = step * max(1.0, abs(center[i]))
        up, down = center.copy(), center.copy()
        up[i] += h
        down[i] -= h
        hessian[:, i] = (marginal_gradient(calibrator, data, up)[1]
                         - marginal_gradient(calibrator, data, down)[1]) / (2 * h)
    return -(hessian + hessian.T) / 2


def covariance(calibrator, data):
    """Inverse observed information, or None when it is not positive definite."""
    info = observed_information(calibrator, data)
    try:
        chol = np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        return None
    inverse = np.linalg.inv(chol)
    return inverse.T @ inverse
