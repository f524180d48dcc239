"""The structural check of a multidimensional `irtcat-bank/1` document.

A bank with a top-level ``dimensions`` object is multidimensional (the shared format
of the multidimensional models): its items' ``a`` is a list of one slope per factor
and ``d`` the intercept(s) in mirt's slope-intercept form. `parse_dimensions` checks
the ``dimensions`` object, `multidimensional_parameters` one item's parameters; each
raises `DataFormatError` with one line naming what is wrong:

- ``factors``: distinct non-empty names; ``structure`` one of `STRUCTURES`;
  ``rotation`` null, or for an exploratory structure one of `ROTATIONS`;
- ``mean`` (m,) finite; ``correlation`` (m, m) symmetric with a unit diagonal and
  positive definite (a Cholesky factor exists); ``se.correlation`` (m, m) of
  numbers >= 0 or null;
- an item: model one of `MULTIDIMENSIONAL_MODELS`; ``a`` m finite slopes; ``d`` a
  number (2pl/3pl/4pl) or a non-empty list (grm: strictly decreasing; gpcm); ``c``,
  ``u`` with 0 <= c < u <= 1 where the model estimates them; a ``standard``, when
  given, one of the factors; ``se`` an object whose ``a`` (when given) has m entries.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import DataFormatError

STRUCTURES = ("confirmatory", "bifactor", "exploratory")
ROTATIONS = ("oblimin", "varimax")
MULTIDIMENSIONAL_MODELS = ("2pl", "3pl", "4pl", "grm", "gpcm")
MULTIDIMENSIONAL_KEYS = ("a", "d", "c", "u")
"""An item's parameter keys in a multidimensional bank."""
SYMMETRY_TOLERANCE = 1e-8


def _finite(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise DataFormatError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value, length, what):
    if not isinstance(value, list) or len(value) != length:
        raise DataFormatError(f"{what} must be a list of {length} numbers, got {value!r}")
    return [_finite(entry, what) for entry in value]


def _square(value, size, what, allow_null=False):
    """A size x size list of lists of numbers (null allowed where `allow_null`)."""
    if not isinstance(value, list) or len(value) != size:
        raise DataFormatError(f"{what} must be a {size} x {size} matrix (a list of rows)")
    rows = []
    for row in value:
        if not isinstance(row, list) or len(row) != size:
            raise DataFormatError(f"{what} must be a {size} x {size} matrix (a list of rows)")
        rows.append([math.nan if entry is None and allow_null else _finite(entry, what)
                     for entry in row])
    return np.array(rows, dtype=float)


def parse_dimensions(document):
    """The ``dimensions`` object of a bank document, checked, or None (unidimensional).

    Returns the object as given (the store keeps it verbatim)."""
    dimensions = document.get("dimensions") if isinstance(document, dict) else None
    if dimensions is None:
        return None
    if not isinstance(dimensions, dict):
        raise DataFormatError("'dimensions' must be an object with factors, structure, "
                              "mean and correlation")
    factors = dimensions.get("factors")
    if (not isinstance(factors, list) or not factors
            or not all(isinstance(name, str) and name for name in factors)):
        raise DataFormatError("dimensions: factors must be a non-empty list of names")
    if len(set(factors)) != len(factors):
        raise DataFormatError("dimensions: a factor is named twice")
    size = len(factors)
    structure = dimensions.get("structure")
    if structure not in STRUCTURES:
        raise DataFormatError(f"dimensions: structure must be one of {', '.join(STRUCTURES)}, "
                              f"got {structure!r}")
    rotation = dimensions.get("rotation")
    if rotation is not None and (structure != "exploratory" or rotation not in ROTATIONS):
        raise DataFormatError(f"dimensions: rotation must be null, or for an exploratory "
                              f"structure one of {', '.join(ROTATIONS)}; got {rotation!r}")
    _numbers(dimensions.get("mean"), size, "dimensions: mean")
    correlation = _square(dimensions.get("correlation"), size, "dimensions: correlation")
    if np.max(np.abs(correlation - correlation.T)) > SYMMETRY_TOLERANCE:
        raise DataFormatError("dimensions: correlation must be symmetric")
    if np.max(np.abs(np.diag(correlation) - 1.0)) > SYMMETRY_TOLERANCE:
        raise DataFormatError("dimensions: correlation must have 1 on its diagonal")
    try:
        np.linalg.cholesky(correlation)
    except np.linalg.LinAlgError:
        raise DataFormatError("dimensions: correlation must be positive definite") from None
    standard_errors = dimensions.get("se")
    if standard_errors is not None:
        if not isinstance(standard_errors, dict):
            raise DataFormatError("dimensions: se must be an object")
        if "correlation" in standard_errors:
            errors = _square(standard_errors["correlation"], size,
                             "dimensions: se correlation", allow_null=True)
            if np.any(errors < 0):
                raise DataFormatError("dimensions: se correlation must be >= 0 or null")
    return dimensions


def multidimensional_parameters(item, factors):
    """The parameter keys of one item of a multidimensional bank, checked.

    Returns ``(parameters, n_categories)``: the item's ``a``, ``d``, ``c``, ``u`` as
    given, and its number of response categories."""
    item_id = item["id"]
    where = f"item {item_id!r}"
    model = item.get("model")
    if model not in MULTIDIMENSIONAL_MODELS:
        raise DataFormatError(f"{where}: model {model!r} is not one of a multidimensional "
                              f"bank's ({', '.join(MULTIDIMENSIONAL_MODELS)})")
    standard = item.get("standard")
    if standard is not None and standard not in factors:
        raise DataFormatError(f"{where}: standard {standard!r} is not one of the factors "
                              f"({', '.join(factors)})")
    if not isinstance(item.get("a"), list) or len(item["a"]) != len(factors):
        raise DataFormatError(f"{where}: a must be a list of {len(factors)} slopes, one per "
                              f"factor, got {item.get('a')!r}")
    _numbers(item["a"], len(factors), f"{where}: a")
    if "b" in item:
        raise DataFormatError(f"{where}: a multidimensional item has intercepts d, not b")
    if "d" not in item:
        raise DataFormatError(f"{where}: missing intercept 'd'")
    n_categories = _intercepts(item["d"], model, where)
    lower = _finite(item.get("c", 0.0), f"{where}: c")
    upper = _finite(item.get("u", 1.0), f"{where}: u")
    if (lower != 0.0 and model not in ("3pl", "4pl")) or (upper != 1.0 and model != "4pl"):
        raise DataFormatError(f"{where}: a {model} item has no c or u besides 0 and 1")
    if not 0.0 <= lower < upper <= 1.0:
        raise DataFormatError(f"{where}: needs 0 <= c < u <= 1, got c = {lower}, u = {upper}")
    standard_errors = item.get("se")
    if standard_errors is not None:
        if not isinstance(standard_errors, dict):
            raise DataFormatError(f"{where}: se must be an object")
        slopes = standard_errors.get("a")
        if slopes is not None and (not isinstance(slopes, list) or len(slopes) != len(factors)):
            raise DataFormatError(f"{where}: se.a must list {len(factors)} entries (null for a "
                                  "fixed slope)")
    parameters = {name: item[name] for name in MULTIDIMENSIONAL_KEYS if name in item}
    return parameters, n_categories


def _intercepts(value, model, where):
    """The number of categories that intercept(s) `value` define; DataFormatError."""
    if model in ("2pl", "3pl", "4pl"):
        _finite(value, f"{where}: d")
        return 2
    if not isinstance(value, list) or not value:
        raise DataFormatError(f"{where}: d of a {model} item is a non-empty list")
    intercepts = [_finite(entry, f"{where}: d") for entry in value]
    if model == "grm" and any(later >= earlier for earlier, later
                              in zip(intercepts, intercepts[1:], strict=False)):
        raise DataFormatError(f"{where}: d of a grm item must be decreasing, got {value}")
    return len(intercepts) + 1


def check_multidimensional_bank(document):
    """Check a whole multidimensional bank document (its ``dimensions`` and every
    item's parameters); returns the ``dimensions`` object. DataFormatError naming the
    first problem; a document without ``dimensions`` is refused too."""
    dimensions = parse_dimensions(document)
    if dimensions is None:
        raise DataFormatError("a multidimensional bank needs a 'dimensions' object")
    items = document.get("items")
    if not isinstance(items, list) or not items:
        raise DataFormatError("'items' must be a non-empty list")
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise DataFormatError(f"item at position {position}: needs a string 'id'")
        multidimensional_parameters(item, dimensions["factors"])
    return dimensions
