"""Validating what goes into the store: framework documents and item documents.

`parse_framework` checks an `irtcat-framework/1` document; `parse_items` checks
the items of an `irtcat-bank/1` document as `irtcat bank import` and
``POST /v1/items`` receive them: content, answer key, status, tags, enemies, and
parameters when present (items awaiting calibration have none). Each raises
`DataFormatError` with one line naming the offending standard or item, and
nothing is written before everything has passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from irtcat.engine import (
    DICHOTOMOUS_MODELS,
    InvalidParameterError,
    check_item_parameters,
)
from irtcat.engine.models import category_count, parameters_from_entries

from .dimensions import MULTIDIMENSIONAL_KEYS, multidimensional_parameters
from .errors import DataFormatError, ReferenceConflict
from .io import bank_items, check_model, item_parameters
from .schema import ITEM_STATUSES

FRAMEWORK_FORMAT = "irtcat-framework/1"
MAX_ID = 64
PARAMETER_KEYS = ("a", "ak", "b", "c", "u")
# Kept with the parameters in a bank version: they describe one calibration.
STATISTIC_KEYS = ("se", "slope_intercept", "se_slope_intercept", "fit", "anchor")
IDENTITY_KEYS = ("id", "standard", "model", "status", "content", "key", "tags", "enemies")


@dataclass(frozen=True)
class ItemRecord:
    """One item as the store keeps it.

    `parameters` is None for an item awaiting calibration, else the parameter and
    statistic keys of its document (``{"a": ..., "b": ..., "se": ...}``).
    """

    id: str
    standard: str
    model: str
    status: str
    content: dict | None
    key: dict | None
    tags: list
    enemies: list
    extra: dict
    parameters: dict | None

    def document(self, parameters=None, status=None):
        """The item's `irtcat-bank/1` entry; `parameters` and `status` from a bank version."""
        parameters = self.parameters if parameters is None else parameters
        out = {"id": self.id, "standard": self.standard, "model": self.model}
        out.update(parameters or {})
        out["status"] = status or self.status
        for name in ("content", "key"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for name in ("tags", "enemies"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        out.update(self.extra)
        return out


def _text(value, what, limit=None):
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(f"{what} must be a non-empty string")
    if limit is not None and len(value) > limit:
        raise DataFormatError(f"{what} is longer than {limit} characters")
    return value


def _string_list(value, what):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DataFormatError(f"{what} must be a list of non-empty strings")
    return list(value)


# --- framework --------------------------------------------------------------------

def parse_levels(levels, where):
    """``[{"name", "cut"}]`` with ascending finite cuts, or DataFormatError."""
    if levels is None:
        return []
    if not isinstance(levels, list):
        raise DataFormatError(f"{where}: levels must be a list of {{name, cut}}")
    parsed = []
    for position, level in enumerate(levels):
        if not isinstance(level, dict) or set(level) - {"name", "cut"}:
            raise DataFormatError(f"{where}: level {position} must be {{name, cut}}")
        name = _text(level.get("name"), f"{where}: level {position} name", 100)
        cut = level.get("cut")
        if isinstance(cut, bool) or not isinstance(cut, (int, float)) or not math.isfinite(cut):
            raise DataFormatError(f"{where}: level {name!r} needs a finite cut")
        if parsed and cut <= parsed[-1]["cut"]:
            raise DataFormatError(f"{where}: level cuts must ascend ({name!r} at {cut} follows "
                                  f"{parsed[-1]['name']!r} at {parsed[-1]['cut']})")
        parsed.append({"name": name, "cut": float(cut)})
    return parsed


def parse_standard(entry, where="standard"):
    """One standard: ``{"code", "title", "description", "parent", "levels"}``."""
    if not isinstance(entry, dict):
        raise DataFormatError(f"{where} must be an object")
    code = _text(entry.get("code"), f"{where}: code", MAX_ID)
    where = f"standard {code!r}"
    title = _text(entry.get("title", code), f"{where}: title", 200)
    description = entry.get("description") or ""
    if not isinstance(description, str):
        raise DataFormatError(f"{where}: description must be a string")
    parent = entry.get("parent")
    if parent is not None:
        parent = _text(parent, f"{where}: parent", MAX_ID)
        if parent == code:
            raise ReferenceConflict(f"{where} cannot be its own parent")
    return {"code": code, "title": title, "description": description, "parent": parent,
            "levels": parse_levels(entry.get("levels"), where)}


def parse_framework(document):
    """The standards of an `irtcat-framework/1` document, parents before children."""
    if not isinstance(document, dict) or document.get("format") != FRAMEWORK_FORMAT:
        raise DataFormatError(f"a framework is a JSON object with format {FRAMEWORK_FORMAT!r}")
    entries = document.get("standards")
    if not isinstance(entries, list) or not entries:
        raise DataFormatError("'standards' must be a non-empty list")
    standards = {}
    for position, entry in enumerate(entries):
        parsed = parse_standard(entry, f"standard at position {position}")
        if parsed["code"] in standards:
            raise DataFormatError(f"duplicate standard code {parsed['code']!r}")
        standards[parsed["code"]] = parsed
    return standards


# --- items ------------------------------------------------------------------------

def _content(value, where):
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"stem", "options"}:
        raise DataFormatError(f"{where}: content is {{stem, options}}")
    stem = _text(value.get("stem"), f"{where}: content stem", 10_000)
    options = value.get("options")
    if not isinstance(options, list) or len(options) < 2:
        raise DataFormatError(f"{where}: content needs a list of at least two options")
    seen = set()
    for position, option in enumerate(options):
        if not isinstance(option, dict) or set(option) != {"id", "text"}:
            raise DataFormatError(f"{where}: option {position} must be {{id, text}}")
        option_id = _text(option["id"], f"{where}: option {position} id", MAX_ID)
        _text(option["text"], f"{where}: option {option_id!r} text", 2_000)
        if option_id in seen:
            raise DataFormatError(f"{where}: duplicate option id {option_id!r}")
        seen.add(option_id)
    return {"stem": stem, "options": [dict(option) for option in options]}


def _key(value, model, content, n_categories, where):
    """Validate an answer key against the options; returns the key."""
    if value is None:
        return None
    if content is None:
        raise DataFormatError(f"{where}: a key needs content with options")
    option_ids = [option["id"] for option in content["options"]]
    if model in DICHOTOMOUS_MODELS:
        if not isinstance(value, dict) or set(value) != {"correct"}:
            raise DataFormatError(f"{where}: the key of a {model} item is {{\"correct\": ID}}")
        if value["correct"] not in option_ids:
            raise DataFormatError(f"{where}: key {value['correct']!r} is not among the "
                                  f"options {', '.join(option_ids)}")
        return {"correct": value["correct"]}
    if not isinstance(value, dict) or set(value) != {"scores"} \
            or not isinstance(value["scores"], dict):
        raise DataFormatError(f"{where}: the key of a {model} item is {{\"scores\": "
                              "{ID: category}}")
    scores = value["scores"]
    unknown = [option for option in scores if option not in option_ids]
    if unknown:
        raise DataFormatError(f"{where}: key option {unknown[0]!r} is not among the options "
                              f"{', '.join(option_ids)}")
    missing = [option for option in option_ids if option not in scores]
    if missing:
        raise DataFormatError(f"{where}: option {missing[0]!r} has no score in the key")
    categories = sorted(set(scores.values())) if all(
        isinstance(s, int) and not isinstance(s, bool) for s in scores.values()) else None
    if categories is None or categories[0] != 0 or categories != list(range(len(categories))):
        raise DataFormatError(f"{where}: key scores must be the integers 0, 1, ... each used")
    if n_categories is not None and len(categories) != n_categories:
        raise DataFormatError(f"{where}: the key scores {len(categories)} categories but the "
                              f"parameters have {n_categories}")
    return {"scores": dict(scores)}


def parse_item(item, position, factors=None):
    """One item document as an `ItemRecord`; DataFormatError naming the item.

    `factors`: the factor names of a multidimensional bank (its items' parameters are
    slope lists and intercepts ``d``, `dimensions.multidimensional_parameters`)."""
    if not isinstance(item, dict):
        raise DataFormatError(f"item at position {position} must be an object")
    item_id = _text(item.get("id"), f"item at position {position}: id", MAX_ID)
    where = f"item {item_id!r}"
    standard = _text(item.get("standard"), f"{where}: standard", MAX_ID)
    model = check_model(item)
    status = item.get("status", "operational")
    if status not in ITEM_STATUSES:
        raise DataFormatError(f"{where}: status must be one of {', '.join(ITEM_STATUSES)}, "
                              f"got {status!r}")
    parameters, n_categories = None, None
    parameter_keys = PARAMETER_KEYS if factors is None else MULTIDIMENSIONAL_KEYS
    if factors is not None and any(name in item for name in (*parameter_keys, "b", "ak")):
        parameters, n_categories = multidimensional_parameters(item, factors)
        parameters.update({name: item[name] for name in STATISTIC_KEYS if name in item})
    elif any(name in item for name in PARAMETER_KEYS):
        entry = item_parameters(item)
        try:
            check_item_parameters(parameters_from_entries([entry]), [where])
        except InvalidParameterError as error:
            raise DataFormatError(str(error)) from None
        parameters = {name: item[name] for name in (*PARAMETER_KEYS, *STATISTIC_KEYS)
                      if name in item}
        n_categories = category_count(model, b=entry["b"])
    if parameters is None and any(name in item for name in STATISTIC_KEYS):
        raise DataFormatError(f"{where}: standard errors or fit without parameters")
    for name in ("se", "slope_intercept", "se_slope_intercept", "fit"):
        if name in item and not isinstance(item[name], dict):
            raise DataFormatError(f"{where}: {name} must be an object")
    content = _content(item.get("content"), where)
    key = _key(item.get("key"), model, content, n_categories, where)
    enemies = _string_list(item.get("enemies"), f"{where}: enemies")
    if item_id in enemies:
        raise DataFormatError(f"{where} cannot be its own enemy")
    extra = {name: value for name, value in item.items()
             if name not in IDENTITY_KEYS + parameter_keys + PARAMETER_KEYS + STATISTIC_KEYS}
    return ItemRecord(item_id, standard, model, status, content, key,
                      _string_list(item.get("tags"), f"{where}: tags"), enemies, extra,
                      parameters)


def parse_items(document, dimensions=None):
    """The items of a bank document (or a bare list of item documents), by id;
    `dimensions` the checked ``dimensions`` of a multidimensional bank."""
    items = bank_items(document, bare_list=True)
    factors = None if dimensions is None else dimensions["factors"]
    records = {}
    for position, item in enumerate(items):
        record = parse_item(item, position, factors)
        if record.id in records:
            raise DataFormatError(f"duplicate item id {record.id!r}")
        records[record.id] = record
    return records
