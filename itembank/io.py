"""Reading and writing response CSVs and `irtcat-bank/1` JSON documents.

Every reader validates what it reads and raises `DataFormatError` with one
line naming the file and the offending item, person or line. A response cell
that is empty or ``NA`` (R's `write.csv`) is missing; any other must be a
category, a whole number from 0 to `LARGEST_CATEGORY`. A wide CSV up to
`SMALL_CSV_BYTES` is parsed with the csv module, so scoring a class never loads
pandas; larger ones, and long CSVs (logs of millions of rows, read in chunks),
with pandas' C parser, imported when used. Both parsers hand their cells to the
same checks. Writers write
to a temporary file beside the target and rename it, so a failure never
leaves a half-written file.

Length: every file format the command line reads or writes (wide and long
response CSVs, both parsers, scores, bank JSON), sharing one set of cell checks and
the atomic writer.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, replace

import numpy as np

from irtcat.engine import (
    DICHOTOMOUS_MODELS,
    MODELS,
    InvalidParameterError,
    check_item_parameters,
)
from irtcat.engine.models import parameters_from_entries

from .bank import ItemBank
from .errors import DataFormatError

BANK_FORMAT = "irtcat-bank/1"
LONG_HEADER = ["person_id", "item_id", "response"]
MISSING_CELLS = ("", "NA")
"""Response cells read as not administered: empty, and R's write.csv default NA."""
SMALL_CSV_BYTES = 2 * 2**20
"""Wide CSVs up to this size skip pandas (0.3 to 0.7 s to import), larger ones use its
parser (several times faster per row than the csv module, and lighter in memory)."""
LARGEST_CATEGORY = 100
"""The largest response category read: a rating scale of 101 points. A larger value is
refused as a typo rather than sized into every per-category array of the run."""


@dataclass(frozen=True, eq=False)
class ResponseData:
    """A response matrix with its labels.

    Attributes
    ----------
    person_ids : list of str, length n_persons
    item_ids : list of str, length n_items
    responses : ndarray of float, shape (n_persons, n_items); NaN where not administered
    groups : list of str, length n_persons, or None
        Each person's group code (multiple-group calibration, DIF), when read with a group.
    """

    person_ids: list
    item_ids: list
    responses: np.ndarray
    groups: list | None = None


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


def read_responses(path, group=None, groups_path=None):
    """Read a wide or long response CSV (spec/FORMATS.md) into `ResponseData`.

    With `group`, each person's group code is read too (`ResponseData.groups`): from the
    wide file's column of that name (not an item), or, for a long file or when
    `groups_path` is given, from that per-person attribute CSV (`person_id,<group>,...`).
    A person without a code is a DataFormatError naming them.
    """
    header = _read_header(path)
    if header[0] != "person_id":
        raise DataFormatError(f"{path}: the first column must be person_id, got {header[0]!r}")
    if group is None:
        return _read_long(path) if header == LONG_HEADER else _read_wide(path, header)
    if header == LONG_HEADER or groups_path is not None:
        if groups_path is None:
            raise DataFormatError(f"{path}: a long response file has no {group!r} column; "
                                  "give the groups in a person attribute file")
        data = _read_long(path) if header == LONG_HEADER else _read_wide(path, header)
        codes = _person_attribute(groups_path, group)
        missing = [person for person in data.person_ids if person not in codes]
        if missing:
            raise DataFormatError(f"{groups_path}: no {group} for person {missing[0]!r}")
        return replace(data, groups=[codes[person] for person in data.person_ids])
    if group not in header[1:]:
        raise DataFormatError(f"{path}: no column {group!r}")
    return _read_wide(path, header, group)


def _person_attribute(path, name):
    """{person_id: value as str} of column `name` of a person attribute CSV (read by
    `_wide_rows`, as a wide response file's cells are)."""
    header = _read_header(path)
    if header[0] != "person_id" or name not in header[1:]:
        raise DataFormatError(f"{path}: expected a person_id column and a {name!r} column")
    person_ids, cells, lines = _wide_rows(path, len(header))
    codes = [_cell_text(cell) for cell in cells[:, header.index(name) - 1]]
    if "" in codes:
        raise DataFormatError(f"{path}: line {lines[codes.index('')]}: no {name}")
    return dict(zip(person_ids, codes, strict=True))


def _read_table(path, dtype):
    import pandas as pd

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
    """Float array of the categories in `values` (array of str, any shape), NaN where a
    cell is missing (`MISSING_CELLS`); DataFormatError naming ``what(index)`` of the
    first other cell that is not a whole number from 0 to LARGEST_CATEGORY."""
    raw = np.asarray(values)
    if raw.dtype.kind in "iuf":                  # numbers already (NaN: missing)
        numeric = raw.astype(float)
        missing = np.isnan(numeric)
    else:
        raw = raw.astype(object)
        missing = np.isin(raw, MISSING_CELLS)
        try:
            numeric = np.where(missing, "nan", raw).astype(float)
        except (ValueError, TypeError):                   # some cell is not a number
            numeric = np.array([_number_or_nan(cell) for cell in raw.flat]).reshape(raw.shape)
    bad = ~missing & ~((numeric >= 0) & (numeric <= LARGEST_CATEGORY)
                       & (numeric == np.floor(numeric)))
    if bad.any():
        at = np.unravel_index(int(np.flatnonzero(bad)[0]), raw.shape)
        at = at[0] if raw.ndim == 1 else at
        cell = raw[at] if isinstance(raw[at], str) else f"{float(raw[at]):g}"
        raise DataFormatError(f"{path}: {what(at)}: response {cell!r} is not a category "
                              f"(a whole number from 0 to {LARGEST_CATEGORY})")
    return numeric


def _number_or_nan(cell):
    try:
        return float(cell)
    except (ValueError, TypeError):
        return np.nan


def _read_wide(path, header, group=None):
    item_ids = [name for name in header[1:] if name != group]
    if not item_ids:
        raise DataFormatError(f"{path}: no item columns after person_id")
    duplicates = sorted({item for item in item_ids if item_ids.count(item) > 1})
    if duplicates:
        raise DataFormatError(f"{path}: duplicate item column {duplicates[0]!r}")
    read = _wide_digits(path, len(header))
    read_digits = read is not None                      # categories 0 to 9 already
    if read is None:
        read = (_wide_rows(path, len(header)) if os.path.getsize(path) <= SMALL_CSV_BYTES
                else _wide_table(path, header))
    person_ids, cells, lines = read
    for position, person in enumerate(person_ids):
        if not person:
            raise DataFormatError(f"{path}: line {lines[position]}: empty person_id")
    if len(set(person_ids)) < len(person_ids):
        seen = set()
        twice = next(person for person in person_ids if person in seen or seen.add(person))
        raise DataFormatError(f"{path}: duplicate person_id {twice!r}")
    codes = None
    if group is not None:
        column = header.index(group) - 1
        codes = [_cell_text(cell) for cell in cells[:, column]]
        if "" in codes:
            person = person_ids[codes.index("")]
            raise DataFormatError(f"{path}: no {group} for person {person!r}")
        cells = np.delete(cells, column, axis=1)
    responses = cells if read_digits else _categories(
        cells, path, lambda at: f"{item_ids[at[1]]}, person {person_ids[at[0]]}")
    return ResponseData(person_ids, item_ids, responses, codes)


def _cell_text(cell):
    """A cell as text: "" when missing; a whole number without its ".0" (pandas' 1.0)."""
    if isinstance(cell, str):
        text = cell.strip()
        return "" if text in MISSING_CELLS else text
    if cell != cell:                                               # NaN
        return ""
    return f"{cell:g}"


def _wide_digits(path, width):
    """What `_wide_rows` returns, for the common dense file whose every cell is one digit
    (complete data, categories 0 to 9): the cells are bytes read straight into an array,
    with neither the csv module's per-cell work nor pandas' import (about 0.3 s). None
    when the file is not of that form (a missing cell, a quote, a space, a longer number,
    a blank line inside): the general readers take it then."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    lines = text.removeprefix(b"\xef\xbb\xbf").split(b"\n")[1:]
    while lines and not lines[-1].strip():
        lines.pop()
    row_bytes = 2 * (width - 1) - 1
    if not lines or b'"' in text or b" " in text:
        return None
    heads, tails = [], []
    for line in lines:
        head, comma, tail = line.removesuffix(b"\r").partition(b",")
        if not comma or len(tail) != row_bytes:
            return None
        heads.append(head)
        tails.append(tail)
    grid = np.frombuffer(b"".join(tails), dtype=np.uint8).reshape(len(lines), row_bytes)
    digits = grid[:, ::2]
    if (grid[:, 1::2] != ord(",")).any() or ((digits < ord("0")) | (digits > ord("9"))).any():
        return None
    try:
        person_ids = [head.decode("utf-8").strip() for head in heads]
    except UnicodeDecodeError:
        return None
    return person_ids, (digits - ord("0")).astype(float), list(range(2, len(lines) + 2))


def _wide_rows(path, width):
    """The rows of a wide CSV after its header: (person ids, list of str; cells, ndarray
    of str objects of shape (n_persons, width - 1), short rows padded with empty cells;
    each row's line number in the file). Blank lines are skipped."""
    person_ids, rows, lines = [], [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            next(reader, None)
            for row in reader:
                if not row:
                    continue
                if len(row) > width:
                    raise DataFormatError(f"{path}: malformed CSV: line {reader.line_num} has "
                                          f"{len(row)} fields, the header {width}")
                person_ids.append(row[0].strip())
                rows.append(row[1:] + [""] * (width - len(row)))
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as error:
        raise DataFormatError(f"{path}: malformed CSV: {error}") from None
    return person_ids, np.array(rows, dtype=object).reshape(len(rows), width - 1), lines


def _wide_table(path, header):
    """What `_wide_rows` returns, parsed by pandas: cells are numbers (NaN where empty)
    unless some cell is text (NA, say), then str objects ("" where empty)."""
    table = _read_table(path, {"person_id": object})
    people = table.iloc[:, 0]
    person_ids = ["" if person != person else str(person).strip() for person in people]
    block = table.iloc[:, 1:]
    if any(dtype.kind == "O" for dtype in block.dtypes):      # text, such as NA
        block = block.astype(object).where(block.notna(), "")
    return person_ids, block.to_numpy(), list(range(2, len(person_ids) + 2))


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


def read_response_log(path, file_format=None):
    """Read responses for calibration: a long CSV, or a Parquet file or dataset
    (`itembank.parquet_io`), as a `ResponseLog` (never densified), a wide CSV as
    `ResponseData`. `file_format`: "csv" or "parquet"; None: Parquet for a folder, a
    URI or a name ending in .parquet, else CSV."""
    from .parquet_io import is_parquet, read_parquet_log

    if file_format == "parquet" or (file_format is None and is_parquet(path)):
        return read_parquet_log(path)
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
    import pandas as pd

    persons, items = {}, {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            reader = pd.read_csv(path, dtype={"person_id": object, "item_id": object},
                                 skipinitialspace=True, keep_default_na=False,
                                 na_values={"person_id": [""], "item_id": [""],
                                            "response": list(MISSING_CELLS)},
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
    person_index, item_index, values, lines = (np.concatenate(parts)
                                               for parts in zip(*chunks, strict=True))
    at = repeated_answer(person_index, item_index, len(items))
    if at is not None:
        person_names, item_names = list(persons), list(items)
        raise DataFormatError(f"{path}: line {lines[at]}: person "
                              f"{person_names[person_index[at]]!r} answered item "
                              f"{item_names[item_index[at]]!r} twice")
    return ResponseLog(list(persons), list(items), person_index, item_index, values)


def repeated_answer(person_index, item_index, n_items):
    """The position of the first (person, item) pair seen before, or None."""
    import pandas as pd

    pairs = pd.Series(person_index.astype(np.int64) * max(n_items, 1) + item_index)
    repeated = pairs.duplicated().to_numpy()
    return int(np.flatnonzero(repeated)[0]) if repeated.any() else None


def _log_chunks(reader, path, persons, items):
    """Per chunk: (person codes, item codes, categories, line numbers) of the rows with
    an answer (a missing response is no response), checked; the lookups grow."""
    for number, chunk in enumerate(reader):
        offset = number * LOG_CHUNK_ROWS
        for name in ("person_id", "item_id"):
            empty = chunk[name].isna().to_numpy()
            if empty.any():
                line = offset + int(np.flatnonzero(empty)[0]) + 2
                raise DataFormatError(f"{path}: line {line}: empty {name}")
        response = chunk["response"]
        if response.dtype == object:              # text among the answers: NaN is missing
            response = response.fillna("")
        values = _categories(response.to_numpy(), path,
                             lambda at, o=offset: f"line {o + at + 2}")
        answered = ~np.isnan(values)
        yield (_codes(chunk["person_id"].to_numpy()[answered], persons),
               _codes(chunk["item_id"].to_numpy()[answered], items), values[answered],
               offset + 2 + np.flatnonzero(answered))


def _codes(ids, lookup):
    """Integer codes of `ids` (ndarray of str) in order of first appearance; `lookup` grows."""
    import pandas as pd

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
    if model == "nominal":      # category scores, one per category (engine.models)
        ak = item.get("ak")
        if not isinstance(ak, list) or len(ak) != len(b) + 1:
            raise DataFormatError(f"item {item_id!r}: ak of a nominal item is a list of "
                                  f"{len(b) + 1} category scores")
        return {"model": model, "a": a, "ak": [_number(v, "ak", item_id) for v in ak], "b": b,
                "c": c, "u": u}
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

def write_atomically(path, write, binary=False):
    """Call ``write(handle)`` on a temporary file beside `path` (UTF-8 text, or bytes with
    `binary`), then rename it into place.

    A `path` that exists and is not a regular file (``/dev/null``, a FIFO, a terminal)
    is written in place: renaming over it would replace the device with a file."""
    text = {} if binary else {"newline": "", "encoding": "utf-8"}
    mode = "wb" if binary else "w"
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise DataFormatError(f"{path}: is a directory, not a file to write")
    if os.path.exists(path) and not os.path.isfile(path):
        try:
            with open(path, mode, **text) as handle:
                write(handle)
        except OSError as error:
            raise DataFormatError(f"{path}: cannot be written: {error.strerror}") from None
        return
    try:
        handle = tempfile.NamedTemporaryFile(mode, dir=directory, delete=False, suffix=".tmp",
                                             **text)
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


def write_scores(person_ids, estimate, path=None, stream=None, extra=None):
    """Write ``person_id,theta,se`` (and ``bounded`` for ML and WLE) as CSV.

    extra : dict {column name: numbers of shape (n_persons,)}, optional
        More numeric columns, after those (plausible values: pv1, pv2, ...).
    Numbers have six decimals; a missing estimate is an empty cell.
    """
    columns = [estimate.theta.tolist(), estimate.se.tolist()]
    header = ["person_id", "theta", "se"]
    if estimate.method in ("ml", "wle"):
        header.append("bounded")
        columns.append(np.where(estimate.bounded, "true", "false").tolist())
    header += list(extra or {})
    more = [_format_numbers(np.asarray(values).tolist()) for values in (extra or {}).values()]
    lines = [",".join(fields) + "\n" for fields in
             zip(_csv_fields(person_ids), *map(_format_numbers, columns[:2]), *columns[2:],
                 *more, strict=True)]

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
    import pandas as pd

    table = _read_table(path, {"person_id": object})
    for name in columns[1:]:
        values = pd.to_numeric(table[name], errors="coerce")
        if values.isna().any():
            line = int(np.flatnonzero(values.isna().to_numpy())[0]) + 2
            raise DataFormatError(f"{path}: line {line}: {name} is not a number")
        table[name] = values
    return table


def write_persons(path, person_ids, true_theta, batches, item_ids, classified=False):
    """Simulation results per examinee: person_id,true_theta,theta,se,length,items, then
    decision (pass, fail, or empty: none, or no classification unless `classified`) and
    responses (the answers to `items`, in the same order); length counts scored items."""
    theta = np.concatenate([b.theta for b in batches])
    se = np.concatenate([b.se for b in batches])
    length = np.concatenate([b.length for b in batches])
    scored_length = np.concatenate([b.scored_length for b in batches])
    given = np.concatenate([b.items for b in batches])
    answers = np.concatenate([b.responses for b in batches])
    decision = np.concatenate([b.decision for b in batches])
    truth = [""] * theta.size if true_theta is None else [f"{t:.6f}" for t in true_theta]
    outcome = {1: "pass", -1: "fail", 0: ""} if classified else {1: "", -1: "", 0: ""}
    lines = []
    for i, person in enumerate(_csv_fields(person_ids)):
        items = ";".join(item_ids[j] for j in given[i, : length[i]])
        responses = ";".join(str(r) for r in answers[i, : length[i]])
        lines.append(f"{person},{truth[i]},{theta[i]:.6f},{se[i]:.6f},{scored_length[i]},"
                     f"{_csv_fields([items])[0]},{outcome[int(decision[i])]},{responses}\n")

    def write(handle):
        handle.write("person_id,true_theta,theta,se,length,items,decision,responses\n")
        handle.writelines(lines)

    write_atomically(path, write)


def write_simulated_log(path, person_ids, batches, item_ids):
    """Every answer of simulated tests as a long response log (person_id,item_id,response,
    what `read_response_log` reads), in the order given, pretest answers included."""
    given = np.concatenate([b.items for b in batches])
    answers = np.concatenate([b.responses for b in batches])
    item_fields = _csv_fields(item_ids)

    def write(handle):
        handle.write(",".join(LONG_HEADER) + "\n")
        for person, items, responses in zip(_csv_fields(person_ids), given, answers,
                                            strict=True):
            handle.writelines(f"{person},{item_fields[j]},{r}\n"
                              for j, r in zip(items[items >= 0], responses[items >= 0],
                                              strict=True))

    write_atomically(path, write)
