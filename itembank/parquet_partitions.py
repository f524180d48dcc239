"""A Parquet response log read by a Dask cluster's workers, partition by partition.

One process reads a log with `parquet_io.read_parquet_log`; on a cluster no process
holds the whole log. `PartitionedLog.open(client, path)` has the workers read it:

1. one task per file reads its three columns and codes them (`parquet_io`'s checks: a
   missing column, an empty id, a response that is not a category), and keeps them
   where it ran; a second task per file returns its summary only (its items, the count
   of each item's answers per category, its persons' count).
2. This process puts the items in the order they first appear (files in the dataset's
   order, rows in the file's), which `calibrate_document` screens as it screens any
   log (`category_counts`).
3. `partitions(positions, n_categories)` then makes the E-step's partitions: each file
   sends each answer to the partition of its person (a stable hash of the id, so all
   of a person's answers meet, whatever file they came from), and one task per
   partition builds its ResponseSet with the kept items' layout and checks that no
   person answered an item twice. The answers cross the network once, here; during
   the EM only statistics travel (`calibration.partitions`).

Every partition is a task's result, so a worker lost at any time is made good by Dask's
lineage: its partitions are read again from the files. The log's persons are in hash
order, not in the order one process reads them, so the sums, and the estimates, agree
with one process's up to rounding, not to the last bit (calibration.partitions).
"""

from __future__ import annotations

import operator

import numpy as np

from irtcat.calibration.partitions import DaskPartitions, PartitionSummary
from irtcat.calibration.responses import PARTITION_ROWS, column_offsets, from_coordinates

from .errors import DataFormatError
from .io import repeated_answer
from .parquet_io import _located, coded_batches, open_dataset


class PartitionedLog:
    """A Parquet response log coded on a cluster's workers (see the module's docstring).

    Attributes
    ----------
    path : str
    item_ids : list of str, in order of first appearance
    person_ids : None (the persons stay on the workers)
    category_counts : scipy.sparse.csr_matrix of shape (n_items, n_categories seen)
        How many answers each item had in each category.
    n_responses : int
    """

    person_ids = None

    def __init__(self, client, path, files, coded, summaries, partition_rows):
        import scipy.sparse as sp

        self.client = client
        self.path = str(path)
        self._files, self._coded = files, coded
        self.partition_rows = partition_rows
        items, rows, columns, values = {}, [], [], []
        self._item_positions = []                        # per file: its items' positions
        self.estimated_persons = 0
        for file_items, (local, category, count), persons in summaries:
            positions = np.array([items.setdefault(item, len(items)) for item in file_items],
                                 dtype=np.intp)
            self._item_positions.append(positions)
            rows.append(positions[local])
            columns.append(category)
            values.append(count)
            self.estimated_persons += persons            # persons in two files count twice
        if not items:
            raise DataFormatError(f"{path}: no responses")
        self.item_ids = list(items)
        rows, columns, values = (np.concatenate(part) for part in (rows, columns, values))
        self.category_counts = sp.csr_matrix(
            (values, (rows, columns)), shape=(len(items), int(columns.max()) + 1))
        self.n_responses = int(values.sum())

    @classmethod
    def open(cls, client, path, partition_rows=PARTITION_ROWS):
        """Read the log at `path` (a Parquet file or dataset, local or a URI every
        worker can open) on the cluster of `client`; DataFormatError as `read_parquet_log`."""
        files = _files(path)
        coded = _read_files(client, path, files)
        summaries = client.gather([client.submit(_summary, part, pure=False)
                                   for part in coded])
        return cls(client, path, files, coded, summaries, partition_rows)

    def partitions(self, positions, n_categories):
        """DaskPartitions of the answers to the items at `positions` (of `item_ids`), in
        that order, with `n_categories` each."""
        client = self.client
        n_categories = np.asarray(n_categories, dtype=np.intp)
        column = np.full(len(self.item_ids), -1, dtype=np.int64)
        column[np.asarray(positions, dtype=np.intp)] = np.arange(len(positions))
        kept_ids = [self.item_ids[position] for position in positions]
        # Partitions of at most partition_rows persons, as many on each worker.
        workers = max(len(client.scheduler_info().get("workers", {})), 1)
        n_buckets = max(1, -(-self.estimated_persons // max(int(self.partition_rows), 1)))
        n_buckets = -(-n_buckets // workers) * workers
        coded = self._coded or _read_files(client, self.path, self._files)   # read again
        split = [client.submit(_split, part, column[file_positions], n_buckets, pure=False)
                 for part, file_positions in zip(coded, self._item_positions, strict=True)]
        parts = []
        for bucket in range(n_buckets):
            pieces = [client.submit(operator.getitem, pieces, bucket, pure=False)
                      for pieces in split]
            parts.append(client.submit(_partition, pieces, n_categories, kept_ids,
                                       self.path, pure=False))
        shapes = client.gather([client.submit(_shape, part, pure=False) for part in parts])
        self._coded = []               # the partitions hold the data now; the files stay
        n_persons = sum(persons for persons, _ in shapes)
        kept = self.category_counts[np.asarray(positions, dtype=np.intp)].tocoo()
        offsets = column_offsets(n_categories)
        inside = kept.col < n_categories[kept.row]
        counts = np.zeros(offsets[-1])
        np.add.at(counts, offsets[kept.row[inside]] + kept.col[inside], kept.data[inside])
        summary = PartitionSummary(n_categories, n_persons, counts, n_persons)
        return DaskPartitions.from_futures(client, parts, summary)


def _read_files(client, path, files):
    return [client.submit(_read_file, str(path), name, pure=False) for name in files]


def _files(path):
    """The Parquet files of the dataset at `path`, in the dataset's order."""
    dataset = open_dataset(path)
    if not dataset.files:
        raise DataFormatError(f"{path}: no responses")
    return list(dataset.files)


def _read_file(path, name):
    """One file's answers, coded: {"persons": ids (object), "person": codes, "items": ids,
    "item": codes, "category": int16}; runs on a worker."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    _, filesystem = _located(path)
    persons, items = {}, {}
    try:
        dataset = ds.dataset(name, filesystem=filesystem, format="parquet")
    except (OSError, pa.ArrowInvalid) as error:
        raise DataFormatError(f"{name}: unreadable Parquet data: "
                              f"{str(error).splitlines()[0]}") from None
    parts = coded_batches(dataset, name, persons, items)
    if parts:
        person, item, values, _ = (np.concatenate(columns) for columns in zip(*parts,
                                                                                strict=True))
    else:
        person = item = values = np.zeros(0)
    return {"persons": np.array(list(persons), dtype=object), "person": person.astype(np.int32),
            "items": list(items), "item": item.astype(np.int32),
            "category": values.astype(np.int16)}


def _summary(coded):
    """(item ids, (item code, category, count) of each pair seen, persons) of a file."""
    width = int(coded["category"].max(initial=0)) + 1
    pairs, count = np.unique(coded["item"].astype(np.int64) * width + coded["category"],
                             return_counts=True)
    return (coded["items"], (pairs // width, pairs % width, count), len(coded["persons"]))


def _bucket_of(person_ids, n_buckets):
    """The partition of each person: a hash of the id's text, the same in every process."""
    import pandas as pd

    return (pd.util.hash_array(person_ids.astype(object)) % np.uint64(n_buckets)).astype(
        np.intp)


def _split(coded, column, n_buckets):
    """A file's answers to kept items (`column` >= 0 by item code) cut by the bucket of
    their person: a list of n_buckets (person ids, person code, column, category)."""
    keep = column[coded["item"]] >= 0
    person, item = coded["person"][keep], column[coded["item"][keep]]
    category = coded["category"][keep]
    bucket = _bucket_of(coded["persons"], n_buckets)[person]
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(n_buckets + 1))
    pieces = []
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[first:last]
        used, codes = np.unique(person[rows], return_inverse=True)
        pieces.append((coded["persons"][used], codes.astype(np.int32), item[rows],
                       category[rows]))
    return pieces


def _partition(pieces, n_categories, item_ids, path):
    """The ResponseSet of one bucket's persons from every file's piece of it."""
    import pandas as pd

    ids = np.concatenate([piece[0] for piece in pieces]) if pieces else np.zeros(0, object)
    person_code, persons = pd.factorize(ids)
    starts = np.cumsum([0] + [len(piece[0]) for piece in pieces])
    person = np.concatenate([person_code[start + piece[1]]
                             for start, piece in zip(starts, pieces, strict=False)])
    item = np.concatenate([piece[2] for piece in pieces]).astype(np.intp)
    category = np.concatenate([piece[3] for piece in pieces]).astype(np.intp)
    at = repeated_answer(person, item, len(n_categories))
    if at is not None:
        raise DataFormatError(f"{path}: person {persons[person[at]]!r} answered item "
                              f"{item_ids[item[at]]!r} twice")
    return from_coordinates(len(persons), len(n_categories), person, item, category,
                            n_categories)


def _shape(data):
    return data.n_persons, data.n_rows
