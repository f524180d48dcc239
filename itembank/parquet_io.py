"""Response logs as Parquet datasets: one file, or a directory of files partitioned
by any key (``date=2026-12-01/part-0.parquet``, ``test=.../``), read lazily, one
record batch at a time, into the same `ResponseLog` a long CSV gives.

The columns are the long CSV's (spec/FORMATS.md): ``person_id``, ``item_id``,
``response``; ids of any type are read as text, a null response is no response, and
every other column (partition keys included) is ignored. Ids are coded as they
arrive, so memory grows with the number of responses (three small numbers each),
not with the files or the ids' text. A path is a local file or folder, or a URI of
any file system fsspec knows (``s3://bucket/log/``, ``gcs://``, ``memory://``, ...;
the protocol's own package, such as s3fs, installed), read through pyarrow's bridge
to fsspec.
"""

from __future__ import annotations

import pathlib

import numpy as np

from .errors import DataFormatError
from .io import LONG_HEADER, ResponseLog, _categories, _codes, repeated_answer, write_atomically

BATCH_ROWS = 1_000_000


def is_parquet(path):
    """True for a path to read as Parquet: a folder, a URI, or a name ending in .parquet."""
    text = str(path)
    return text.endswith((".parquet", ".parq")) or "://" in text or pathlib.Path(text).is_dir()


def read_parquet_log(path):
    """The `ResponseLog` of the Parquet file or dataset at `path`; DataFormatError for
    a path that holds no Parquet data, a missing column, an empty id or a response
    that is not a category."""
    persons, items = {}, {}
    parts = coded_batches(open_dataset(path), path, persons, items)
    if not parts or not sum(len(part[2]) for part in parts):
        raise DataFormatError(f"{path}: no responses")
    person_index, item_index, values, rows = (np.concatenate(columns)
                                              for columns in zip(*parts, strict=True))
    at = repeated_answer(person_index, item_index, len(items))
    if at is not None:
        raise DataFormatError(f"{path}: row {rows[at] + 1}: person "
                              f"{list(persons)[person_index[at]]!r} answered item "
                              f"{list(items)[item_index[at]]!r} twice")
    return ResponseLog(list(persons), list(items), person_index, item_index, values)


def coded_batches(dataset, path, persons, items):
    """Per record batch of `dataset`: (person codes, item codes, categories, row numbers
    from 0) of its answered rows, checked (`_batch_codes`); the lookups grow."""
    import pyarrow as pa

    parts, row = [], 0
    try:
        for batch in dataset.to_batches(columns=list(LONG_HEADER), batch_size=BATCH_ROWS):
            parts.append(_batch_codes(batch, path, row, persons, items))
            row += batch.num_rows
    except (OSError, pa.ArrowInvalid) as error:
        raise DataFormatError(f"{path}: unreadable Parquet data: "
                              f"{str(error).splitlines()[0]}") from None
    return parts


def open_dataset(path):
    """The `pyarrow.dataset.Dataset` of the Parquet file or dataset at `path`, with the
    long CSV's columns; DataFormatError for a path that holds no Parquet data or a
    missing column."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    try:
        source, filesystem = _located(path)
        dataset = ds.dataset(source, filesystem=filesystem, format="parquet",
                             partitioning="hive")
    except (OSError, ValueError, ImportError, pa.ArrowInvalid) as error:
        raise DataFormatError(f"{path}: not a Parquet file or dataset: "
                              f"{str(error).splitlines()[0]}") from None
    missing = [name for name in LONG_HEADER if name not in dataset.schema.names]
    if missing:
        raise DataFormatError(f"{path}: no column {missing[0]!r} (a response log has "
                              f"{', '.join(LONG_HEADER)})")
    return dataset


def _located(path):
    """``(path, filesystem)`` for `pyarrow.dataset.dataset`: a URI through fsspec, a
    local path as it is (filesystem None)."""
    text = str(path)
    if "://" not in text:
        return text, None
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    filesystem, located = fsspec.core.url_to_fs(text)
    return located, PyFileSystem(FSSpecHandler(filesystem))


def _batch_codes(batch, path, first_row, persons, items):
    """(person codes, item codes, categories, row numbers from 0) of a record batch's
    answered rows, checked; the lookups grow."""
    import pyarrow.compute as pc

    ids = {}
    for name in ("person_id", "item_id"):
        column = pc.cast(batch.column(name), "string")
        empty = pc.equal(pc.fill_null(column, ""), "").to_numpy(zero_copy_only=False)
        if empty.any():
            raise DataFormatError(f"{path}: row {first_row + int(np.flatnonzero(empty)[0]) + 1}: "
                                  f"empty {name}")
        ids[name] = column.to_numpy(zero_copy_only=False)
    response = batch.column("response")
    raw = response.to_numpy(zero_copy_only=False)
    if raw.dtype == object:                     # text answers: null is missing
        raw = np.where(pc.is_null(response).to_numpy(zero_copy_only=False), "", raw)
    values = _categories(raw, path, lambda at: f"row {first_row + at + 1}")
    answered = ~np.isnan(values)
    return (_codes(ids["person_id"][answered], persons),
            _codes(ids["item_id"][answered], items), values[answered],
            first_row + np.flatnonzero(answered))


def write_parquet_log(log, path):
    """Write the `ResponseLog` `log` to `path` as one Parquet file (``person_id``,
    ``item_id`` as text, ``response`` as int16), atomically; returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    persons = np.asarray(log.person_ids, dtype=object)[log.person_index]
    items = np.asarray(log.item_ids, dtype=object)[log.item_index]
    table = pa.table({"person_id": pa.array(persons, pa.string()),
                      "item_id": pa.array(items, pa.string()),
                      "response": pa.array(np.asarray(log.response).astype(np.int16))})
    write_atomically(path, lambda handle: pq.write_table(table, handle), binary=True)
    return table.num_rows
