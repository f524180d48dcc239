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

Items the data do not determine. mirt inverts the full matrix and, when it is
not positive definite, gives no standard error at all. Here the full matrix
is inverted whenever it can be (the same SEs as mirt's); otherwise the items
whose parameters are not determined are found (first those whose own block
of the information is not positive definite, then, one at a time, the item
that weighs most in the direction of the smallest eigenvalue of what is
left) and set aside: the others get the inverse of the information of their
parameters alone, that is their covariance with the undetermined items'
parameters held at their estimates. (Without anchors or an estimated
population the complete-data information is block-diagonal per item, so an
undetermined item leaves the others' information nearly unchanged.)
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


def parameter_items(calibrator):
    """The item (data position) of each entry of `free_vector`: int array (n_free,),
    -1 for a slope shared by a 1pl block's items and for the population's entries."""
    owners = []
    for block in calibrator.blocks_:
        if block.fixed:
            continue
        items = np.asarray(block.items)
        if block.model == "1pl":
            owners.append(np.concatenate([[-1], items]))
        else:
            owners.append(np.repeat(items, block.n_params))
    latent = calibrator.latent_
    owners.append(np.full(int(latent.estimate_mean) + int(latent.estimate_var), -1))
    return np.concatenate(owners).astype(np.intp)


def _inverse(info):
    """Inverse of a positive definite matrix, or None when it is not one."""
    try:
        chol = np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        return None
    inverse = np.linalg.inv(chol)
    return inverse.T @ inverse


def _singular_blocks(info, owners, relative=1e-10):
    """Items whose own block of `info` is not positive definite (its smallest
    eigenvalue at most `relative` times its largest): a set of item positions."""
    singular = set()
    sizes = np.bincount(owners[owners >= 0])
    items = np.flatnonzero(sizes)
    for size in np.unique(sizes[items]):
        same = items[sizes[items] == size]
        index = np.array([np.flatnonzero(owners == item) for item in same])   # (n, size)
        blocks = info[index[:, :, None], index[:, None, :]]                   # (n, size, size)
        values = np.linalg.eigvalsh(blocks)
        bad = values[:, 0] <= relative * np.maximum(values[:, -1], 0.0)
        singular.update(same[bad].tolist())
    return singular


def covariance(calibrator, data):
    """Inverse observed information where the data determine the parameters.

    Returns
    -------
    cov : ndarray of shape (n_free, n_free), NaN in the rows and columns of the
        undetermined items' parameters; None when no such split exists (the
        population's or a shared slope's entries are what is undetermined)
    undetermined : sorted list of the undetermined items' data positions
    """
    info = observed_information(calibrator, data)
    whole = _inverse(info)
    if whole is not None:
        return whole, []
    owners = parameter_items(calibrator)
    undetermined = _singular_blocks(info, owners)
    while True:
        keep = ~np.isin(owners, sorted(undetermined))
        kept = info[np.ix_(keep, keep)]
        inverse = _inverse(kept)
        if inverse is not None:
            break
        scale = 1.0 / np.sqrt(np.maximum(np.abs(np.diag(kept)), 1e-300))
        _, vectors = np.linalg.eigh(kept * scale[:, None] * scale[None, :])
        weight = np.abs(vectors[:, 0]) * (owners[keep] >= 0)
        if not weight.any():
            return None, []
        undetermined.add(int(owners[keep][np.argmax(weight)]))
    cov = np.full(info.shape, np.nan)
    cov[np.ix_(keep, keep)] = inverse
    return cov, sorted(undetermined)
