"""Reading and writing response CSVs and `irtcat-bank/1` JSON documents.

Every reader validates what it reads and raises `DataFormatError` with one
line naming the file and the offending item, person or line. Writers write
to a temporary file beside the target and rename it, so a failure never
leaves a half-written file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from irtcat.engine import (
    DICHOTOMOUS_MODELS,
    MODELS,
    InvalidParameterError,
    check_item_parameters,
)
from irtcat.engine.models import parameters_from_entries

from .bank import ItemBank

BANK_FORMAT = "irtcat-bank/1"
LONG_HEADER = ["person_id", "item_id", "response"]


class DataFormatError(ValueError):
    """A file that cannot be read as what it claims to be; the message is one line."""


@dataclass(frozen=True, eq=False)
class ResponseData:
    """A response matrix with its labels.

    Attributes
    ----------
    person_ids : list of str, length n_persons
    item_ids : list of str, length n_items
    responses : ndarray of float, shape (n_persons, n_items); NaN where not administered
    """

    person_ids: list
    item_ids: list
    responses: np.ndarray


# --- responses ----------------------------------------------------------------------

def _read_header(path):
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: not a UTF-8 text file") from None
    except OSError as error:
        raise DataFormatError(f"{path}: cannot be read: {error.strerror}") from None
    if not header:
        raise DataFormatError(f"{path}: empty file, expected a CSV header")
    return [name.strip() for name in header]


def read_responses(path):
    """Read a wide or long response CSV (spec/FORMATS.md) into `ResponseData`."""
    header = _read_header(path)
    if header[0] != "person_id":
        raise DataFormatError(f"{path}: the first column must be person_id, got {header[0]!r}")
    if header == LONG_HEADER:
        return _read_long(path)
    return _read_wide(path, header)


def _read_table(path, dtype):
    try:
        with warnings.catch_warnings():
            # A first row longer than the header would otherwise become an index.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, dtype=dtype, skipinitialspace=True, keep_default_na=False,
                               na_values=[""], engine="c", index_col=False,
                               encoding="utf-8-sig")
    except pd.errors.ParserWarning:
        raise DataFormatError(f"{path}: malformed CSV: a row has more fields than the header") \
            from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as error:
        text = str(error).strip()
        message = text.splitlines()[-1] if text else type(error).__name__
        raise DataFormatError(f"{path}: malformed CSV: {message}") from None


def _categories(values, path, what):
    """Float array of categories; DataFormatError unless every value is a whole number >= 0."""
    numeric = pd.to_numeric(values, errors="coerce")
    numeric = np.asarray(numeric, dtype=float)
    raw = np.asarray(values, dtype=object)
    not_number = np.isnan(numeric) & ~pd.isna(raw)
    bad = not_number | (numeric < 0) | (numeric != np.floor(numeric))
    bad &= ~np.isnan(numeric) | not_number
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{path}: {what(at)}: response {raw[at]!r} is not a category "
                              "(a whole number from 0)")
    return numeric


def _read_wide(path, header):
    item_ids = header[1:]
    if not item_ids:
        raise DataFormatError(f"{path}: no item columns after person_id")
    duplicates = sorted({item for item in item_ids if item_ids.count(item) > 1})
    if duplicates:
        raise DataFormatError(f"{path}: duplicate item column {duplicates[0]!r}")
    table = _read_table(path, {"person_id": object})
    table.columns = header
    person_ids = table["person_id"].astype(str).tolist()
    _check_person_ids(path, table["person_id"])
    block = table.iloc[:, 1:]
    if all(pd.api.types.is_integer_dtype(dtype) for dtype in block.dtypes):
        values = block.to_numpy()                                  # complete, whole numbers
        responses = values.astype(float)
        bad = values < 0
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataFormatError(f"{path}: {item_ids[col]}, person {person_ids[row]}: response "
                                  f"{values[row, col]} is not a category (a whole number from 0)")
    elif all(pd.api.types.is_numeric_dtype(dtype) for dtype in block.dtypes):
        responses = block.to_numpy(dtype=float)
        observed = ~np.isnan(responses)
        bad = observed & ((responses < 0) | (responses != np.floor(responses)))
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataFormatError(f"{path}: {item_ids[col]}, person {person_ids[row]}: response "
                                  f"{responses[row, col]:g} is not a category (a whole number "
                                  "from 0)")
    else:
        responses = np.column_stack([
            _categories(block.iloc[:, j], path,
                        lambda at, j=j: f"{item_ids[j]}, person {person_ids[at]}")
            for j in range(block.shape[1])])
    return ResponseData(person_ids, item_ids, responses)


def _check_person_ids(path, column):
    if column.isna().any():
        raise DataFormatError(f"{path}: line {int(np.flatnonzero(column.isna())[0]) + 2}: "
                              "empty person_id")
    duplicated = column.duplicated()
    if duplicated.any():
        raise DataFormatError(f"{path}: duplicate person_id {column[duplicated].iloc[0]!r}")


@dataclass(frozen=True, eq=False)
class ResponseLog:
    """Responses as one entry per response, for data too sparse to hold as a matrix.

    Attributes
    ----------
    person_ids : list of str, length n_persons
    item_ids : list of str, length n_items
    person_index, item_index : ndarray of int, shape (n_responses,)
    response : ndarray of float, shape (n_responses,)
    """

    person_ids: list
    item_ids: list
    person_index: np.ndarray
    item_index: np.ndarray
    response: np.ndarray


def read_response_log(path):
    """Read a response CSV for calibration: a long CSV as a `ResponseLog` (never
    densified), a wide one as `ResponseData`."""
    header = _read_header(path)
    if header[0] != "person_id":
        raise DataFormatError(f"{path}: the first column must be person_id, got {header[0]!r}")
    if header == LONG_HEADER:
        return _read_long_log(path)
    return _read_wide(path, header)


LOG_CHUNK_ROWS = 2_000_000


def _read_long_log(path):
    """A long CSV read in chunks, ids coded incrementally: memory grows with the
    number of responses (three small integers each), not with the ids' text."""
    persons, items = {}, {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            reader = pd.read_csv(path, dtype={"person_id": object, "item_id": object},
                                 skipinitialspace=True, keep_default_na=False, na_values=[""],
                                 engine="c", index_col=False, chunksize=LOG_CHUNK_ROWS,
                                 encoding="utf-8-sig")
            with reader:
                chunks = list(_log_chunks(reader, path, persons, items))
    except pd.errors.ParserWarning:
        raise DataFormatError(f"{path}: malformed CSV: a row has more fields than the header") \
            from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as error:
        if isinstance(error, DataFormatError):
            raise
        text = str(error).strip()
        raise DataFormatError(f"{path}: malformed CSV: "
                              f"{text.splitlines()[-1] if text else type(error).__name__}") \
            from None
    if not chunks:
        raise DataFormatError(f"{path}: no responses after the header")
    person_index, item_index, values = (np.concatenate(parts)
                                        for parts in zip(*chunks, strict=True))
    pairs = pd.Series(person_index.astype(np.int64) * max(len(items), 1) + item_index)
    repeated = pairs.duplicated().to_numpy()
    if repeated.any():
        at = int(np.flatnonzero(repeated)[0])
        person_names, item_names = list(persons), list(items)
        raise DataFormatError(f"{path}: line {at + 2}: person "
                              f"{person_names[person_index[at]]!r} answered item "
                              f"{item_names[item_index[at]]!r} twice")
    return ResponseLog(list(persons), list(items), person_index, item_index, values)


def _log_chunks(reader, path, persons, items):
    """Per chunk: (person codes, item codes, categories), checked; the lookups grow."""
    for number, chunk in enumerate(reader):
        offset = number * LOG_CHUNK_ROWS
        for name in ("person_id", "item_id", "response"):
            empty = chunk[name].isna().to_numpy()
            if empty.any():
                line = offset + int(np.flatnonzero(empty)[0]) + 2
                raise DataFormatError(f"{path}: line {line}: empty {name}")
        values = _categories(chunk["response"].to_numpy(), path,
                             lambda at, o=offset: f"line {o + at + 2}")
        yield (_codes(chunk["person_id"].to_numpy(), persons),
               _codes(chunk["item_id"].to_numpy(), items), values)


def _codes(ids, lookup):
    """Integer codes of `ids` (ndarray of str) in order of first appearance; `lookup` grows."""
    inverse, uniques = pd.factorize(ids)
    codes = np.empty(len(uniques), dtype=np.int32)
    for position, name in enumerate(uniques):    # per distinct id, not per row
        codes[position] = lookup.setdefault(str(name), len(lookup))
    return codes[inverse]


def _read_long(path):
    """A long CSV as a matrix: the response log, densified."""
    log = _read_long_log(path)
    responses = np.full((len(log.person_ids), len(log.item_ids)), np.nan)
    responses[log.person_index, log.item_index] = log.response
    return ResponseData(log.person_ids, log.item_ids, responses)


def align_responses(data, bank):
    """Responses ordered as the bank's items that appear in the data.

    Returns
    -------
    responses : ndarray of shape (n_persons, n_used)
    params : ItemParameters of the n_used items
    item_ids : list of the n_used item ids
    DataFormatError names the first data item the bank does not hold, or the
    first response outside its item's categories.
    """
    try:
        positions = bank.index_of(data.item_ids)
    except KeyError as missing:
        raise DataFormatError(f"item {missing.args[0]!r} of the data is not in the bank") from None
    params = bank.params.subset(positions)
    n_categories = params.n_categories
    observed = ~np.isnan(data.responses)
    over = observed & (np.where(observed, data.responses, 0) >= n_categories)
    if over.any():
        row, col = np.argwhere(over)[0]
        raise DataFormatError(
            f"item {data.item_ids[col]!r}, person {data.person_ids[row]}: response "
            f"{data.responses[row, col]:g} is outside the item's categories 0.."
            f"{n_categories[col] - 1}")
    return data.responses, params, list(data.item_ids)


# --- banks --------------------------------------------------------------------------

def read_bank(path):
    """Read and validate an `irtcat-bank/1` document into an `ItemBank`."""
    document = read_json(path)
    try:
        return bank_from_document(document)
    except DataFormatError as error:
        raise DataFormatError(f"{path}: {error}") from None


def _number(value, name, item_id):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFormatError(f"item {item_id!r}: {name} must be a finite number, got {value!r}")
    return float(value)


def check_model(item):
    """The model of an item document (with an id), one of `MODELS`; DataFormatError."""
    model = item.get("model")
    if model not in MODELS:
        raise DataFormatError(f"item {item['id']!r}: unknown model {model!r}; expected one of "
                              f"{', '.join(MODELS)}")
    return model


def bank_items(document, bare_list=False):
    """The item documents of an `irtcat-bank/1` document (or, with `bare_list`, of a
    bare list of them): a non-empty list, else DataFormatError."""
    if bare_list and not isinstance(document, dict):
        items = document
    else:
        if not isinstance(document, dict):
            raise DataFormatError("a bank is a JSON object")
        if document.get("format") != BANK_FORMAT:
            raise DataFormatError(f"format must be {BANK_FORMAT!r}, got "
                                  f"{document.get('format')!r}")
        items = document.get("items")
    if not isinstance(items, list) or not items:
        raise DataFormatError("'items' must be a non-empty list")
    return items


def item_parameters(item):
    """The parameters of one item document, checked against its model's fields:
    ``{"model", "a", "b", "c", "u"}`` (a = 1, c = 0, u = 1 where the model fixes
    them; b a number or a list), as `parameters_from_entries` takes them;
    DataFormatError naming the item."""
    item_id = item["id"]
    model = check_model(item)
    if "b" not in item:
        raise DataFormatError(f"item {item_id!r}: missing parameter 'b' for model {model}")
    if model in ("rasch", "pcm"):
        a = _number(item.get("a", 1.0), "a", item_id)
        if a != 1.0:
            raise DataFormatError(f"item {item_id!r}: a {model} item has a = 1, got {a}")
    elif "a" not in item:
        raise DataFormatError(f"item {item_id!r}: missing parameter 'a' for model {model}")
    else:
        a = _number(item["a"], "a", item_id)
    if model in DICHOTOMOUS_MODELS:
        b = _number(item["b"], "b", item_id)
    else:
        if not isinstance(item["b"], list) or not item["b"]:
            raise DataFormatError(f"item {item_id!r}: b of a {model} item is a non-empty list")
        b = [_number(value, "b", item_id) for value in item["b"]]
    c, u = 0.0, 1.0
    if model in ("3pl", "4pl"):
        if "c" not in item:
            raise DataFormatError(f"item {item_id!r}: missing parameter 'c' for model {model}")
        c = _number(item["c"], "c", item_id)
    if model == "4pl":
        if "u" not in item:
            raise DataFormatError(f"item {item_id!r}: missing parameter 'u' for model {model}")
        u = _number(item["u"], "u", item_id)
    fixed = {"c": 0.0, "u": 1.0}
    for name, value in fixed.items():
        free = model == "4pl" or (name == "c" and model == "3pl")
        if not free and name in item and _number(item[name], name, item_id) != value:
            raise DataFormatError(f"item {item_id!r}: a {model} item fixes {name} = {value:g}, "
                                  f"got {item[name]}")
    return {"model": model, "a": a, "b": b, "c": c, "u": u}


def read_json(path):
    """A parsed JSON file; DataFormatError (one line) for any reason it cannot be read."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{path}: malformed JSON at line {error.lineno} column "
                              f"{error.colno}: {error.msg}") from None
    except OSError as error:
        raise DataFormatError(f"{path}: cannot be read: {error.strerror}") from None


def read_item_tags(path):
    """Each item's standard and model from a bank document whose items may lack
    parameters: ``{item_id: {"standard": str or None, "model": str or None}}``."""
    document = read_json(path)
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise DataFormatError(f"{path}: 'items' must be a list")
    tags = {}
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise DataFormatError(f"{path}: item at position {position}: needs a string 'id'")
        if item["id"] in tags:
            raise DataFormatError(f"{path}: duplicate item id {item['id']!r}")
        try:
            model = None if item.get("model") is None else check_model(item)
        except DataFormatError as error:
            raise DataFormatError(f"{path}: {error}") from None
        tags[item["id"]] = {"standard": item.get("standard"), "model": model}
    return tags


def parse_population(document):
    """``{"mean", "sd"}`` of a bank document, or None when it states none."""
    population = document.get("population") if isinstance(document, dict) else None
    if population is None:
        return None
    if not isinstance(population, dict):
        raise DataFormatError("'population' must be an object with mean and sd")
    mean = _number(population.get("mean", 0.0), "population mean", "-")
    sd = _number(population.get("sd", 1.0), "population sd", "-")
    if sd <= 0:
        raise DataFormatError(f"population sd must be > 0, got {sd}")
    return {"mean": mean, "sd": sd}


def check_item_ids(items):
    """Every item of the list is an object with a non-empty string id, no id twice;
    DataFormatError naming the first that is not."""
    seen = set()
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise DataFormatError(f"item at position {position}: needs a string 'id'")
        if item["id"] in seen:
            raise DataFormatError(f"duplicate item id {item['id']!r}")
        seen.add(item["id"])


def bank_from_document(document):
    """Validate a parsed `irtcat-bank/1` document and build an `ItemBank`."""
    items = bank_items(document)
    check_item_ids(items)
    entries = [item_parameters(item) for item in items]
    population = parse_population(document) or {"mean": 0.0, "sd": 1.0}
    params = parameters_from_entries(entries)
    try:
        check_item_parameters(params, [f"item {item['id']!r}" for item in items])
    except InvalidParameterError as error:
        raise DataFormatError(str(error)) from None
    extra = {key: value for key, value in document.items()
             if key not in ("format", "metric", "population", "items", "calibration")}
    return ItemBank(tuple(items), params, population,
                    document.get("calibration"), extra)


def bank_to_document(bank):
    """The `irtcat-bank/1` document of `bank` (item documents as held)."""
    document = {"format": BANK_FORMAT, "metric": "logistic",
                "population": dict(bank.population), "items": [dict(item) for item in bank.items]}
    if bank.calibration is not None:
        document["calibration"] = bank.calibration
    document.update(bank.extra)
    return document


# --- writing ------------------------------------------------------------------------

def write_atomically(path, write):
    """Call ``write(handle)`` on a temporary file beside `path`, then rename it into place."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise DataFormatError(f"{path}: is a directory, not a file to write")
    try:
        handle = tempfile.NamedTemporaryFile("w", dir=directory, delete=False, newline="",
                                             encoding="utf-8", suffix=".tmp")
    except OSError as error:
        raise DataFormatError(f"{path}: cannot be written: {error.strerror}") from None
    try:
        with handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)     # as an ordinary new file, not 0600
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise


def write_json(document, path=None, stream=None):
    """Write a JSON document to `path` (atomically) or to `stream`."""
    text = json.dumps(document, indent=2) + "\n"
    if path is None:
        stream.write(text)
    else:
        write_atomically(path, lambda handle: handle.write(text))


def write_bank(bank, path=None, stream=None):
    """Write `bank` as JSON to `path` (atomically) or to `stream`."""
    write_json(bank_to_document(bank), path, stream)


def write_scores(person_ids, estimate, path=None, stream=None):
    """Write ``person_id,theta,se`` (and ``bounded`` for ML and WLE) as CSV.

    Numbers have six decimals; a missing estimate is an empty cell.
    """
    columns = [estimate.theta.tolist(), estimate.se.tolist()]
    header = ["person_id", "theta", "se"]
    if estimate.method in ("ml", "wle"):
        header.append("bounded")
        columns.append(np.where(estimate.bounded, "true", "false").tolist())
    lines = [",".join(fields) + "\n" for fields in
             zip(_csv_fields(person_ids), *map(_format_numbers, columns[:2]), *columns[2:],
                 strict=True)]

    def write(handle):
        handle.write(",".join(header) + "\n")
        handle.writelines(lines)

    if path is None:
        write(stream)
    else:
        write_atomically(path, write)


def _format_numbers(values):
    return [f"{value:.6f}" if value == value else "" for value in values]


def _csv_fields(texts):
    """The texts as CSV fields, quoted only where they hold a comma, quote or newline."""
    texts = [str(text) for text in texts]
    joined = "".join(texts)
    if not any(mark in joined for mark in ',"\n\r'):
        return texts
    return ['"' + text.replace('"', '""') + '"' if any(mark in text for mark in ',"\n\r')
            else text for text in texts]


def read_table_columns(path, columns):
    """A CSV with (at least) `columns`, as a pandas DataFrame; DataFormatError otherwise."""
    header = _read_header(path)
    missing = [name for name in columns if name not in header]
    if missing:
        raise DataFormatError(f"{path}: no column {missing[0]!r} (expected {','.join(columns)})")
    table = _read_table(path, {"person_id": object})
    for name in columns[1:]:
        values = pd.to_numeric(table[name], errors="coerce")
        if values.isna().any():
            line = int(np.flatnonzero(values.isna().to_numpy())[0]) + 2
            raise DataFormatError(f"{path}: line {line}: {name} is not a number")
        table[name] = values
    return table


def write_persons(path, person_ids, true_theta, batches, item_ids):
    """Simulation results per examinee: person_id,true_theta,theta,se,length,items."""
    theta = np.concatenate([b.theta for b in batches])
    se = np.concatenate([b.se for b in batches])
    length = np.concatenate([b.length for b in batches])
    given = np.concatenate([b.items for b in batches])
    truth = [""] * theta.size if true_theta is None else [f"{t:.6f}" for t in true_theta]
    lines = []
    for i, person in enumerate(_csv_fields(person_ids)):
        items = ";".join(item_ids[j] for j in given[i, : length[i]])
        lines.append(f"{person},{truth[i]},{theta[i]:.6f},{se[i]:.6f},{length[i]},"
                     f"{_csv_fields([items])[0]}\n")

    def write(handle):
        handle.write("person_id,true_theta,theta,se,length,items\n")
        handle.writelines(lines)

    write_atomically(path, write)
