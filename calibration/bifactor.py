"""The bifactor E-step by Gibbons and Hedeker's dimension reduction.

Gibbons, R. D. & Hedeker, D. R. (1992). Full-information item bi-factor analysis.
Psychometrika, 57(3), 423-436.

In the bifactor model every item loads on the general factor g and on at most
one specific factor s_k, and the factors are independent N(0, 1). Given g the
specific factors are independent, so a person's likelihood

    L = sum_g w_g  G_0(g)  prod_k  I_k(g),    I_k(g) = sum_s w_s  L_k(g, s)

(G_0: the items on g alone; L_k: the items of group k) is a product of
two-dimensional integrals inside a one-dimensional one: K (P x P) problems
instead of one P^(K+1) grid. The posterior marginal on (g, s_k), all the items
of group k need for their expected counts, is

    w_g G_0(g) prod_{k' != k} I_k'(g)  w_s L_k(g, s) / L.

Weights: the standard normal density normalised over the P points per
dimension (its product over dimensions is the full grid's normalised N(0, I)).
"""

from __future__ import annotations

import numpy as np

from irtcat.engine.kernel import logsumexp


def bifactor_loadings(groups, n_items):
    """Loading pattern (n_items, 1 + K): the general factor first, then one column
    per group of item positions (a list of K lists). Items in no group load on the
    general factor only; an item in two groups is refused."""
    loadings = np.zeros((n_items, 1 + len(groups)), dtype=bool)
    loadings[:, 0] = True
    for k, items in enumerate(groups):
        if loadings[items, 1:].any():
            raise ValueError("an item is in two specific groups")
        loadings[items, 1 + k] = True
    return loadings


def check_bifactor(loadings):
    """ValueError unless every item loads on factor 0 and on at most one other."""
    if not loadings[:, 0].all():
        raise ValueError("bifactor: every item loads on the general factor (the first)")
    if (loadings[:, 1:].sum(axis=1) > 1).any():
        raise ValueError("bifactor: an item loads on two specific factors")


def e_step(terms, log_weights, weights, designs, chunk_rows=256):
    """Expected counts and the marginal log-likelihood by dimension reduction, over the
    rows given (a partition of the persons: the sums of partitions add up).

    terms : {loading set: (rows, P^|S|) log-likelihood of the set's items}, sets
        (0,) and (0, k) only, (0, k)'s in g-major order
    log_weights : (P,) normalised log weights of one dimension
    weights : (rows,) person weights
    designs : {loading set: (rows, columns) one-hot}
    Returns ``({set: expected counts (columns, P^|S|)}, marginal log-likelihood)``.
    """
    counts = {factors: np.zeros((designs[factors].shape[1], terms[factors].shape[1]))
              for factors in terms}
    points = log_weights.size
    specific = [s for s in terms if len(s) == 2]
    n_rows = weights.size
    loglik = 0.0
    for start in range(0, n_rows, chunk_rows):
        rows = slice(start, min(start + chunk_rows, n_rows))
        general = np.zeros((rows.stop - rows.start, points)) + log_weights
        if (0,) in terms:
            general += terms[(0,)][rows]
        inner = {}
        for factors in specific:
            table = terms[factors][rows].reshape(-1, points, points) + log_weights   # (n, g, s)
            inner[factors] = (table, logsumexp(table, axis=2))                       # I_k(g)
            general += inner[factors][1]
        total = logsumexp(general, axis=1)                                           # (n,)
        loglik += float(weights[rows] @ total)
        scale = weights[rows][:, None]
        outer = general - total[:, None]                                  # log posterior of g
        if (0,) in terms:
            counts[(0,)] += designs[(0,)][rows].T @ (np.exp(outer) * scale)
        for factors in specific:
            table, log_inner = inner[factors]
            joint = np.exp(table + (outer - log_inner)[:, :, None])      # (n, g, s)
            counts[factors] += designs[factors][rows].T @ (
                joint.reshape(joint.shape[0], -1) * scale)
    return counts, loglik
