"""Item selection criteria of a multidimensional adaptive test, mirtCAT's names.

Every criterion is computed exactly at each examinee's current estimate theta-hat,
over all candidates at once, from the information matrices ``I_j = a_j a_j^T i_j``
(n, m, m) of every item there and the information already held, ``B``:

- ``drule``  (mirtCAT 'Drule'):  det(B + I_j), B = sum of the administered items' I at theta-hat;
- ``dprule`` ('DPrule'): the same with the prior precision Sigma^-1 added to B (the
  determinant of the posterior information);
- ``trule`` / ``tprule`` ('Trule', 'TPrule'): sum_k w_k (B + I_j)_kk;
- ``arule`` / ``aprule`` ('Arule', 'APrule'): -sum_k w_k ((B + I_j)^-1)_kk (the A-rule
  minimises that trace; the pseudo-inverse where B + I_j is singular, as mirtCAT);
- ``kl``: the posterior-weighted Kullback-Leibler information (Chang & Ying 1996, its
  multidimensional form of Mulder & van der Linden 2010)
  ``sum_q post(theta_q) sum_k P_jk(theta-hat) log(P_jk(theta-hat) / P_jk(theta_q))`` over
  the grid nodes holding the posterior's mass.

Larger is better for every criterion; the best item is the lowest position among
equals. det and inverse diagonal of 1x1, 2x2 and 3x3 matrices are closed forms
(cofactors) over all candidates; larger ones go to numpy.linalg.

Reference: mirtCAT's R/selection_criteria.R and src/CAT_functions.cpp (Chalmers 2016),
read for the criteria's definitions; written here from those definitions.
"""

from __future__ import annotations

import numpy as np

from .multidimensional import log_probability

CRITERIA = ("drule", "dprule", "trule", "tprule", "arule", "aprule", "kl")
WITH_PRIOR = ("dprule", "tprule", "aprule")
KL_MASS = 1e-9          # grid nodes below this posterior probability are left out of KL


def canonical_criterion(name):
    """A criterion's name from mirtCAT's spelling or ours ("DPrule", "dprule")."""
    canonical = str(name).lower()
    if canonical not in CRITERIA:
        raise ValueError(f"unknown multidimensional selection criterion {name!r}; expected "
                         f"one of {', '.join(CRITERIA)}")
    return canonical


def determinant(matrices):
    """det of (..., m, m) matrices; closed form for m <= 3."""
    m = matrices.shape[-1]
    if m == 1:
        return matrices[..., 0, 0].copy()
    if m == 2:
        return matrices[..., 0, 0] * matrices[..., 1, 1] - matrices[..., 0, 1] * matrices[..., 1, 0]
    if m == 3:
        cofactor = _cofactor_row(matrices)
        return np.einsum("...k,...k->...", matrices[..., 0, :], cofactor)
    return np.linalg.det(matrices)


def _cofactor_row(x):
    """The cofactors of the first row of (..., 3, 3) matrices: (..., 3)."""
    return np.stack([x[..., 1, 1] * x[..., 2, 2] - x[..., 1, 2] * x[..., 2, 1],
                     x[..., 1, 2] * x[..., 2, 0] - x[..., 1, 0] * x[..., 2, 2],
                     x[..., 1, 0] * x[..., 2, 1] - x[..., 1, 1] * x[..., 2, 0]], axis=-1)


def inverse_diagonal(matrices):
    """The diagonal of the (pseudo-)inverse of symmetric (..., m, m) matrices: (..., m).

    Closed form (cofactor / det) for m <= 3 where det is clearly non-zero; the
    pseudo-inverse of the others.
    """
    m = matrices.shape[-1]
    det = determinant(matrices)
    if m == 1:
        minors = np.ones(matrices.shape[:-2] + (1,))
    elif m == 2:
        minors = np.stack([matrices[..., 1, 1], matrices[..., 0, 0]], axis=-1)
    elif m == 3:
        x = matrices
        minors = np.stack([x[..., 1, 1] * x[..., 2, 2] - x[..., 1, 2] * x[..., 2, 1],
                           x[..., 0, 0] * x[..., 2, 2] - x[..., 0, 2] * x[..., 2, 0],
                           x[..., 0, 0] * x[..., 1, 1] - x[..., 0, 1] * x[..., 1, 0]], axis=-1)
    else:
        minors = None
    scale = np.abs(matrices).max(axis=(-2, -1)) ** m
    regular = np.abs(det) > 1e-10 * np.maximum(scale, 1e-300)
    out = np.empty(matrices.shape[:-1])
    if minors is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[regular] = minors[regular] / det[regular][:, None]
    else:
        out[regular] = np.diagonal(np.linalg.inv(matrices[regular]), axis1=-2, axis2=-1)
    if (~regular).any():
        out[~regular] = np.diagonal(np.linalg.pinv(matrices[~regular], hermitian=True),
                                    axis1=-2, axis2=-1)
    return out


def information_criterion(name, held, candidate_information, weights=None):
    """The D-, T- or A-rule over candidates.

    Parameters
    ----------
    name : one of CRITERIA but "kl"
    held : ndarray of shape (r, m, m)
        Information already held at theta-hat (with the prior precision for the
        P-variants: the caller adds it).
    candidate_information : ndarray of shape (r, n, m, m)
    weights : ndarray of shape (m,), optional (T- and A-rules; default 1 each)

    Returns
    -------
    ndarray of shape (r, n), larger is better.
    """
    total = held[:, None] + candidate_information                      # (r, n, m, m)
    m = total.shape[-1]
    weights = np.ones(m) if weights is None else np.asarray(weights, dtype=float)
    if name in ("drule", "dprule"):
        return determinant(total)
    if name in ("trule", "tprule"):
        return np.diagonal(total, axis1=-2, axis2=-1) @ weights
    if name in ("arule", "aprule"):
        return -(inverse_diagonal(total) @ weights)
    raise ValueError(f"{name!r} is not an information criterion")


def posterior_kl(items, theta_hat, log_post, nodes, candidates):
    """Posterior-weighted KL information of the candidate items for each examinee.

    Parameters
    ----------
    theta_hat : ndarray of shape (r, m)
    log_post : ndarray of shape (r, Q), normalised log posterior on `nodes` (Q, m)
    candidates : ndarray of bool, shape (r, n): the items to evaluate (others -inf)

    Returns
    -------
    ndarray of shape (r, n)
    """
    out = np.full(candidates.shape, -np.inf)
    for row in range(theta_hat.shape[0]):
        index = np.flatnonzero(candidates[row])
        if index.size == 0:
            continue
        weights = np.exp(log_post[row])
        keep = weights > KL_MASS
        subset = items.subset(index)
        at_estimate = log_probability(theta_hat[row][None], subset)[0]          # (c, K)
        at_nodes = log_probability(nodes[keep], subset)                         # (q, c, K)
        probability = np.exp(at_estimate)
        with np.errstate(invalid="ignore"):
            divergence = np.where(probability > 0,
                                  probability * (at_estimate - at_nodes), 0.0).sum(-1)
        out[row, index] = weights[keep] @ divergence / weights[keep].sum()
    return out
