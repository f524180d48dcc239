"""Exploratory multidimensional models: mirt's identification and starting values.

mirt fits an exploratory model unrotated: every slope free but the upper triangle,
the factors orthogonal, then rotates the slopes (calibration/rotation.py does that
here). Its starting slopes come from the leading eigenvectors of the items'
correlation matrix.
"""

from __future__ import annotations

import numpy as np


def exploratory_loadings(n_items, n_factors):
    """mirt's unrotated exploratory pattern: every slope free but the upper triangle
    (item j's slopes on factors after the j-th, 0-based), which identifies the
    orthogonal solution up to sign. shape (n_items, n_factors)."""
    return np.tril(np.ones((n_items, n_factors), dtype=bool))


def exploratory_start(data, onehot, n_factors):
    """mirt's exploratory start: the leading eigenvectors L of the items' correlation
    matrix, slopes 1.702 L / sqrt(1 - rowsum L^2) (0.2 where that is below 0.001),
    the upper triangle 0. mirt correlates polychorically; here Pearson correlations of
    the item scores, missing cells at the item mean. onehot: the data's full one-hot
    matrix (rows, n_columns). shape (n_items, n_factors)."""
    onehot = onehot.toarray() if hasattr(onehot, "toarray") else np.asarray(onehot)
    scores = np.empty((onehot.shape[0], data.n_items))
    for j in range(data.n_items):
        block = onehot[:, data.offsets[j]: data.offsets[j + 1]]
        seen = block.sum(axis=1) > 0
        values = block @ np.arange(block.shape[1])
        values[~seen] = np.average(values[seen], weights=data.weights[seen])
        scores[:, j] = values
    covariance = np.cov(scores, rowvar=False, aweights=data.weights)
    spread = np.sqrt(np.maximum(np.diag(covariance), 1e-12))
    correlation = covariance / np.outer(spread, spread)
    eigenvalues, vectors = np.linalg.eigh(np.nan_to_num(correlation))
    leading = vectors[:, np.argsort(eigenvalues)[::-1][:n_factors]]
    leading *= np.where(leading.sum(axis=0) < 0, -1.0, 1.0)
    unique = 1.0 - (leading**2).sum(axis=1)
    unique[unique < 0.001] = 0.2
    slopes = leading / np.sqrt(unique)[:, None] * 1.702
    return np.where(exploratory_loadings(data.n_items, n_factors), slopes, 0.0)
