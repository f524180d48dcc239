"""Derivatives of the conditional item means of multidimensional models, for M2.

`model_fit.m2_statistics` needs Delta's ingredient ``d E[x_i | theta] / d (item
parameter)`` at every quadrature node. For the compensatory models of a
multidimensional bank (slope-intercept form, mirt's ``a1..am, d``), with
``s = a . theta`` and the category probabilities at the node:

- ``2pl``/``3pl``/``4pl``: P = c + (u - c) P*, P* = 1 / (1 + exp(-(s + d))):
  dE/ds = dE/dd = (u - c) P* (1 - P*); dE/dc = 1 - P* (3pl, 4pl); dE/du = P* (4pl);
- ``grm``: E = sum_k P*_k with P*_k = P(X >= k) = 1 / (1 + exp(-(s + d_k))):
  dE/dd_k = P*_k (1 - P*_k), dE/ds = sum_k P*_k (1 - P*_k);
- ``gpcm``: P_k proportional to exp(k s + d_k): dE/dd_k = P_k (k - E),
  dE/ds = Var(x | theta);

and ``dE/da_j = theta_j dE/ds`` for each free slope. M2 depends only on the column
space of Delta, so mirt's own parameterizations (logit g and u) give the same M2.
Everything is read from the category probabilities: P* of a dichotomous item is
``(P_1 - c) / (u - c)``, a graded item's P*_k the sum of its categories >= k.
"""

from __future__ import annotations

import numpy as np

DICHOTOMOUS = ("2pl", "3pl", "4pl")
"""Models whose lower (3pl, 4pl) and upper (4pl) asymptotes are estimated."""


def compensatory_mean_jacobian(log_probability, nodes, free_slopes, models, *, lower=None,
                               upper=None):
    """d E[x_i | node] / d (free parameter) for every item and node.

    Parameters
    ----------
    log_probability : ndarray (n_nodes, n_items, n_max_categories)
        log P(x_i = k | node), -inf past an item's last category.
    nodes : ndarray (n_nodes, n_factors)
    free_slopes : ndarray of bool (n_items, n_factors)
        The estimated slopes (False where the loading pattern fixes one at 0).
    models : sequence of str (n_items,)
        ``2pl``, ``3pl``, ``4pl``, ``grm`` or ``gpcm``.
    lower, upper : ndarray (n_items,), optional
        c and u of the dichotomous items (default 0 and 1).

    Returns
    -------
    ndarray (n_items, n_columns, n_nodes)
        Columns item by item: its free slopes, its intercept(s), then c, u where
        estimated; zero on the other items' columns.
    """
    probability = np.exp(np.asarray(log_probability, dtype=float))    # (Q, J, K)
    nodes = np.asarray(nodes, dtype=float)
    free_slopes = np.asarray(free_slopes, dtype=bool)
    n_items = probability.shape[1]
    lower = np.zeros(n_items) if lower is None else np.asarray(lower, dtype=float)
    upper = np.ones(n_items) if upper is None else np.asarray(upper, dtype=float)
    n_categories = np.isfinite(log_probability).any(axis=0).sum(axis=1)
    blocks = [_item_columns(probability[:, item, :n_categories[item]], nodes[:, free_slopes[item]],
                            models[item], lower[item], upper[item])
              for item in range(n_items)]
    sizes = [block.shape[0] for block in blocks]
    jacobian = np.zeros((n_items, sum(sizes), nodes.shape[0]))
    for item, (block, start) in enumerate(zip(blocks, np.cumsum([0] + sizes[:-1]),
                                              strict=True)):
        jacobian[item, start:start + block.shape[0]] = block
    return jacobian


def _item_columns(probability, free_nodes, model, lower, upper):
    """One item's columns (n_columns, Q). probability (Q, K); free_nodes (Q, n_free)."""
    score = np.arange(probability.shape[1], dtype=float)
    if model in DICHOTOMOUS:
        curve = (probability[:, 1] - lower) / (upper - lower)          # P*
        slope = (upper - lower) * curve * (1.0 - curve)
        intercepts = [slope]
        if model in ("3pl", "4pl"):
            intercepts.append(1.0 - curve)
        if model == "4pl":
            intercepts.append(curve)
    elif model == "grm":
        at_least = np.cumsum(probability[:, ::-1], axis=1)[:, ::-1][:, 1:]   # (Q, K-1)
        per_threshold = at_least * (1.0 - at_least)
        slope = per_threshold.sum(axis=1)
        intercepts = list(per_threshold.T)
    elif model == "gpcm":
        mean = probability @ score
        slope = probability @ score**2 - mean**2
        intercepts = list((probability * (score - mean[:, None]))[:, 1:].T)
    else:
        raise ValueError(f"no M2 derivatives for model {model!r}")
    return np.vstack([free_nodes.T * slope, *intercepts])
