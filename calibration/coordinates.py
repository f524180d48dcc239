"""The responses a calibration screens: one entry per response, and each item's answers.

`coordinates(data)` gives a `Coordinates` (person, item and response of every answer)
for a response matrix or log, or a `Counted` for a log coded on a cluster's workers
(`itembank.parquet_partitions.PartitionedLog`), which holds only each item's count of
answers per category. `select_items` keeps some items of either; `answer_statistics`
gives what `calibrate_document` screens items by (answers, highest category, the
categories seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Coordinates:
    """One entry per response (and the matrix too when the data came as one).

    person_index, item_index, response : ndarray of shape (n_responses,)
    dense : ndarray of shape (n_persons, n_items) with NaN, or None for a response log
    """

    person_ids: list
    item_ids: list
    person_index: np.ndarray
    item_index: np.ndarray
    response: np.ndarray
    dense: np.ndarray | None = None


@dataclass
class Counted:
    """A log coded on a cluster (`itembank.parquet_partitions.PartitionedLog`): its items,
    the answers per item and category, and the positions of the items kept so far."""

    log: object
    item_ids: list
    category_counts: object
    positions: np.ndarray
    person_ids: tuple = ()


def coordinates(data):
    if hasattr(data, "category_counts"):
        return Counted(data, list(data.item_ids), data.category_counts.tocsr(),
                        np.arange(len(data.item_ids)))
    if hasattr(data, "person_index"):
        return Coordinates(list(data.person_ids), list(data.item_ids), data.person_index,
                            data.item_index, data.response)
    observed = ~np.isnan(data.responses)
    person_index, item_index = np.nonzero(observed)
    return Coordinates(list(data.person_ids), list(data.item_ids), person_index, item_index,
                        data.responses[observed], data.responses)


def select_items(coords, keep):
    """Keep the responses to items whose position is in `keep` (bool per item)."""
    if keep.all():
        return coords
    if isinstance(coords, Counted):
        return Counted(coords.log, [i for i, k in zip(coords.item_ids, keep, strict=True) if k],
                        coords.category_counts[keep], coords.positions[keep])
    new_position = np.cumsum(keep) - 1
    mask = keep[coords.item_index]
    return Coordinates(coords.person_ids, [i for i, k in zip(coords.item_ids, keep,
                                                              strict=True) if k],
                        coords.person_index[mask], new_position[coords.item_index[mask]],
                        coords.response[mask],
                        None if coords.dense is None else coords.dense[:, keep])


def answer_statistics(coords):
    """(answers, highest category, the categories seen) of each item: two arrays of
    n_items and a list of n_items sorted int arrays."""
    if isinstance(coords, Counted):
        table = coords.category_counts.tocsr()
        table.sort_indices()
        seen = np.split(table.indices.astype(np.intp), table.indptr[1:-1])
        highest = np.array([row[-1] if row.size else -1 for row in seen], dtype=np.intp)
        return np.asarray(table.sum(axis=1)).ravel().astype(np.int64), highest, seen
    n_items = len(coords.item_ids)
    answered = np.bincount(coords.item_index, minlength=n_items)
    highest = np.full(n_items, -1)
    category = coords.response.astype(np.intp)
    np.maximum.at(highest, coords.item_index, category)
    return answered, highest, categories_seen(coords.item_index, category, n_items,
                                               int(highest.max(initial=0)) + 1)


def categories_seen(item_index, category, n_items, width):
    """The categories each item was answered in: a list of n_items sorted int arrays.

    Counted in an (n_items, width) table when that is no larger than the
    data, else found as the unique (item, category) pairs.
    """
    if n_items * width <= max(category.size, 1 << 16):
        counts = np.bincount(item_index * width + category, minlength=n_items * width)
        item, seen = np.nonzero(counts.reshape(n_items, width))
    else:
        pairs = np.unique(item_index.astype(np.int64) * width + category)
        item, seen = pairs // width, pairs % width
    return np.split(seen, np.searchsorted(item, np.arange(1, n_items)))
