"""The store's checks of a multidimensional `irtcat-bank/1` document.

A bank with a top-level ``dimensions`` object is multidimensional (the shared format
of the multidimensional models): its items' ``a`` is a list of one slope per factor
and ``d`` the intercept(s) in mirt's slope-intercept form. The structure of the
``dimensions`` (factors, mean, correlation) and of each item's parameters is the
engine's one check (`engine.multidimensional.latent_population` and
`MultidimensionalItems.from_entries`), its ValueError raised here as a one-line
`DataFormatError`. What is the store's own:

- ``structure`` one of `STRUCTURES` (required); ``rotation`` null, or for an
  exploratory structure one of `ROTATIONS`; ``se.correlation`` (m, m) of numbers >= 0
  or null;
- an item: a ``standard``, when given, one of the factors; intercepts ``d`` (not
  ``b``); ``se`` an object whose ``a`` (when given) has m entries.

That a version is all unidimensional or all on the same factors is checked where
versions are made (`irtcat.itembank.items`).
"""

from __future__ import annotations

import math

import numpy as np

from irtcat.calibration.rotation import METHODS as ROTATIONS
from irtcat.engine.multidimensional import STRUCTURES, MultidimensionalItems, latent_population

from .errors import DataFormatError

MULTIDIMENSIONAL_KEYS = ("a", "d", "c", "u")
"""An item's parameter keys in a multidimensional bank."""


def _finite(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise DataFormatError(f"{what} must be a finite number, got {value!r}")
    return float(value)


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
    try:
        latent_population(dimensions)                # factors, structure, mean, correlation
    except (ValueError, TypeError) as error:
        raise DataFormatError(str(error)) from None
    factors = dimensions["factors"]
    structure = dimensions.get("structure")        # the engine defaults it; the store asks
    if structure is None:
        raise DataFormatError(f"dimensions: structure must be one of {', '.join(STRUCTURES)}, "
                              f"got {structure!r}")
    rotation = dimensions.get("rotation")
    if rotation is not None and (structure != "exploratory" or rotation not in ROTATIONS):
        raise DataFormatError(f"dimensions: rotation must be null, or for an exploratory "
                              f"structure one of {', '.join(ROTATIONS)}; got {rotation!r}")
    standard_errors = dimensions.get("se")
    if standard_errors is not None:
        if not isinstance(standard_errors, dict):
            raise DataFormatError("dimensions: se must be an object")
        if "correlation" in standard_errors:
            errors = _square(standard_errors["correlation"], len(factors),
                             "dimensions: se correlation", allow_null=True)
            if np.any(errors < 0):
                raise DataFormatError("dimensions: se correlation must be >= 0 or null")
    return dimensions


def multidimensional_parameters(item, factors):
    """The parameter keys of one item of a multidimensional bank, checked.

    Returns ``(parameters, n_categories)``: the item's ``a``, ``d``, ``c``, ``u`` as
    given, and its number of response categories."""
    where = f"item {item['id']!r}"
    standard = item.get("standard")
    if standard is not None and standard not in factors:
        raise DataFormatError(f"{where}: standard {standard!r} is not one of the factors "
                              f"({', '.join(factors)})")
    if "b" in item:
        raise DataFormatError(f"{where}: a multidimensional item has intercepts d, not b")
    if "d" not in item:
        raise DataFormatError(f"{where}: missing intercept 'd'")
    try:
        parsed = MultidimensionalItems.from_entries(
            [{name: item[name] for name in ("id", "model", *MULTIDIMENSIONAL_KEYS)
              if name in item}], {"factors": list(factors)})
    except ValueError as error:
        raise DataFormatError(str(error)) from None
    standard_errors = item.get("se")
    if standard_errors is not None:
        if not isinstance(standard_errors, dict):
            raise DataFormatError(f"{where}: se must be an object")
        slopes = standard_errors.get("a")
        if slopes is not None and (not isinstance(slopes, list) or len(slopes) != len(factors)):
            raise DataFormatError(f"{where}: se.a must list {len(factors)} entries (null for a "
                                  "fixed slope)")
    parameters = {name: item[name] for name in MULTIDIMENSIONAL_KEYS if name in item}
    return parameters, int(parsed.n_categories[0])


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
