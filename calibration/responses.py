"""Response data as the E-step needs it: one-hot by item and category.

A `ResponseSet` holds each observed response once, as a 1 in column
``item_offset[item] + category`` of a persons x (sum of categories) matrix,
so the E-step is two matrix products whatever the models:

    log-likelihood (rows, nodes)      = Y @ log_p.T       log_p: (columns, nodes)
    expected counts (columns, nodes)  = Y.T @ posterior

When every person answered every item (complete dense data), category 0 of
each item is implied by the others, and only the columns of categories 1 and
above are kept (``upper``): half the work for dichotomous items.

Dense data with few items are collapsed to unique response patterns with
counts; sparse data (a response log where each person answered a few of many
items) are held as a scipy.sparse CSR matrix, so memory grows with the number
of responses, not persons x items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

COLLAPSE_MAX_ITEMS = 30
CHUNK_ROWS = 65536
PARTITION_ROWS = 4 * CHUNK_ROWS   # rows per partition of the E-step's sums (calibration.partitions)


@dataclass(frozen=True, eq=False)
class ResponseSet:
    """Responses one-hot encoded by (item, category).

    Attributes
    ----------
    onehot : ndarray or scipy.sparse.csr_matrix of shape (n_rows, n_columns), or None
        None for complete data, which `upper` holds instead.
    weights : ndarray of shape (n_rows,)
        How many persons each row stands for (1 unless patterns were collapsed).
    n_categories : ndarray of int, shape (n_items,)
        Categories per item as observed (highest response + 1, at least 2).
    offsets : ndarray of int, shape (n_items + 1,)
        Column of category 0 of each item; the last entry is n_columns.
    n_persons : int
    row_of_person : ndarray of int, shape (n_persons,) or None
        The row standing for each person when patterns were collapsed.
    upper : ndarray of shape (n_rows, n_columns - n_items) or None
        Complete data only: the one-hot columns of categories 1 and above
        (`upper_columns` in the full layout); category 0 is where none is 1.
    partition_rows : int
        Rows per partition: the E-step sums each partition's rows, then adds the
        partitions' sums in a fixed tree, in one process as on a cluster
        (`calibration.partitions`), so both give the same numbers.
    """

    onehot: object
    weights: np.ndarray
    n_categories: np.ndarray
    offsets: np.ndarray
    n_persons: int
    row_of_person: np.ndarray | None = None
    upper: np.ndarray | None = None
    partition_rows: int = PARTITION_ROWS

    @property
    def complete(self):
        return self.upper is not None

    @property
    def upper_columns(self):
        """Full-layout columns of categories 1 and above: shape (n_columns - n_items,)."""
        return np.setdiff1d(np.arange(self.offsets[-1]), self.offsets[:-1])

    @property
    def n_items(self):
        return self.n_categories.size

    @property
    def n_rows(self):
        return self.weights.size

    @property
    def sparse(self):
        return sp.issparse(self.onehot)

    def item_counts(self):
        """Observed count per (item, category) column, weighted: shape (n_columns,)."""
        if self.complete:
            counts = np.zeros(self.offsets[-1])
            counts[self.upper_columns] = self.upper.T @ self.weights
            above = np.add.reduceat(counts, self.offsets[:-1])          # categories >= 1
            counts[self.offsets[:-1]] = self.weights.sum() - above
            return counts
        return np.asarray(self.onehot.T @ self.weights).reshape(-1)

    def chunks(self, start=0, stop=None):
        """Row slices of rows start..stop small enough to hold (rows, nodes) arrays
        comfortably."""
        stop = self.n_rows if stop is None else stop
        for first in range(start, stop, CHUNK_ROWS):
            yield slice(first, min(first + CHUNK_ROWS, stop))


def column_offsets(n_categories):
    """Column of category 0 of each item, then the number of columns: (n_items + 1,)."""
    return np.concatenate([[0], np.cumsum(n_categories)]).astype(np.intp)


def from_dense(responses, n_categories=None, collapse=True):
    """Build a ResponseSet from a (n_persons, n_items) float matrix with NaN for missing.

    n_categories : array_like of int, optional
        Categories per item; default: the highest observed response + 1 (at least 2).
    """
    responses = np.asarray(responses, dtype=float)
    observed = ~np.isnan(responses)
    codes = np.where(observed, responses, -1).astype(np.int32)
    if n_categories is None:
        n_categories = np.maximum(codes.max(axis=0, initial=0) + 1, 2)
    n_categories = np.asarray(n_categories, dtype=np.intp)
    n_persons = responses.shape[0]
    weights = np.ones(n_persons)
    row_of_person = None
    if collapse and responses.shape[1] <= COLLAPSE_MAX_ITEMS and n_persons > 1:
        unique, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
        if unique.shape[0] <= n_persons // 2:
            codes, weights, row_of_person = unique, counts.astype(float), inverse.reshape(-1)
    offsets = column_offsets(n_categories)
    if np.all(codes >= 0):   # complete: keep categories 1 and above, item j's from offsets[j] - j
        if n_categories.max() == 2:                      # dichotomous: the 1s themselves
            upper = (codes == 1).astype(float)
            return ResponseSet(None, weights, n_categories, offsets, n_persons, row_of_person,
                               upper)
        upper = np.zeros((codes.shape[0], offsets[-1] - n_categories.size))
        for k in range(1, int(n_categories.max())):
            items = np.flatnonzero(n_categories > k)
            upper[:, offsets[items] - items + k - 1] = codes[:, items] == k
        return ResponseSet(None, weights, n_categories, offsets, n_persons, row_of_person, upper)
    # Column offsets[j] + k is 1 where item j's response is k: one comparison per category.
    onehot = np.zeros((codes.shape[0], offsets[-1]))
    for k in range(int(n_categories.max())):
        items = np.flatnonzero(n_categories > k)
        onehot[:, offsets[items] + k] = codes[:, items] == k
    return ResponseSet(onehot, weights, n_categories, offsets, n_persons, row_of_person)


def from_coordinates(n_persons, n_items, person_index, item_index, category, n_categories=None):
    """Build a sparse ResponseSet from one entry per response (a response log).

    person_index, item_index, category : array_like of int, shape (n_responses,)
    """
    person_index = np.asarray(person_index, dtype=np.intp)
    item_index = np.asarray(item_index, dtype=np.intp)
    category = np.asarray(category, dtype=np.intp)
    if n_categories is None:
        highest = np.zeros(n_items, dtype=np.intp)
        np.maximum.at(highest, item_index, category)
        n_categories = np.maximum(highest + 1, 2)
    n_categories = np.asarray(n_categories, dtype=np.intp)
    offsets = column_offsets(n_categories)
    onehot = sp.csr_matrix((np.ones(person_index.size), (person_index,
                                                         offsets[item_index] + category)),
                           shape=(n_persons, offsets[-1]))
    onehot.sum_duplicates()
    return ResponseSet(onehot, np.ones(n_persons), n_categories, offsets, n_persons)
