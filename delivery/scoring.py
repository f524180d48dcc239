"""Scoring without a session (`POST /v1/score`): θ from item scores under the published
banks.

Nothing here tells an answer key or item parameters, nor anything from which a
caller could work them out: scoring takes item scores (never options), at least
MIN_SCORED_ITEMS operational items, and rounds θ to SCORE_DECIMALS (`score`).
Items that cannot be scored (unknown ids) are refused with one and the same
message; pretest and retired items are scored under their placeholder.
"""

from __future__ import annotations

import numpy as np

from irtcat.engine import estimate_theta
from irtcat.engine.models import parameters_from_entries
from irtcat.itembank.errors import DataFormatError, NotFoundError

from .errors import InvalidAnswerError
from .results import level_of
from .test_banks import placeholder

MIN_SCORED_ITEMS = 10           # `score` takes at least this many items (and per standard)
SCORE_DECIMALS = 1              # `score` rounds θ and SE to this (a tenth of a typical SE)


def score(store, catalog, answers, method="eap"):
    """θ and SE of a set of scored items under the published banks, overall and per
    standard: ``{"theta", "se", "standards": [{"code", "theta", "se", "level"}]}``.

    `answers`: ``[{"item_id", "response"}]`` where `response` is the item's score (0
    or 1, or a category of a polytomous item), never an option: the answer key takes
    no part, so no sequence of calls can tell it. At least MIN_SCORED_ITEMS
    items; a standard with fewer gets no estimate of its own; θ is
    rounded to SCORE_DECIMALS and the level follows the rounded θ; `se` is null: an
    SE per answer pattern, the posterior SD or the asymptotic SE at the rounded θ
    alike, told a prober every item's slope within 0.04 from 100 calls (a least-squares
    fit over score patterns; tests/api/test_abuse.py), where θ alone tells neither
    slope nor difficulty better than a guess. An item without published parameters
    (pretest, retired) is scored with the placeholder a session delivers it under
    (`test_banks.placeholder`), never refused: a refusal told a delivery key which of
    the items its sessions were given are pretest. An unknown id is 422.

    `store`: the `Store`; `catalog`: a `caches.Catalog` (standards' levels)."""
    if not isinstance(answers, list) or len(answers) < MIN_SCORED_ITEMS:
        raise InvalidAnswerError(f"responses must hold at least {MIN_SCORED_ITEMS} "
                                 "scored items")
    item_ids = [a["item_id"] for a in answers]
    if len(set(item_ids)) != len(item_ids):
        raise DataFormatError("an item appears twice in responses")
    for answer in answers:
        value = answer["response"]
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidAnswerError("response must be the item's score (an integer "
                                     "category such as 0 or 1), not an option")
    rows = store.item_summaries(item_ids)
    published = {}                         # code -> (columns, {item_id: position})
    for code in dict.fromkeys(row.standard_code for row in rows.values()):
        try:
            columns = store.version_columns(store.current_version_id(code))
        except NotFoundError:
            continue
        published[code] = columns, {item: at for at, item in enumerate(columns["id"])}
    entries, scores, codes = [], [], []
    for item_id in item_ids:
        if item_id not in rows:
            raise InvalidAnswerError(f"item {item_id!r} cannot be scored here")
        code = rows[item_id].standard_code
        columns, positions = published.get(code, ({}, {}))
        at = positions.get(item_id) if rows[item_id].status == "operational" else None
        if at is None:                      # pretest or retired: scored like any item
            entries.append(placeholder(rows[item_id].model, rows[item_id].key))
        else:
            entries.append({name: columns[name][at] for name in ("model", "a", "ak", "b", "c", "u")
                            if name in columns})
        codes.append(code)
    params = parameters_from_entries(entries)
    for answer, n in zip(answers, params.n_categories, strict=True):
        if not 0 <= answer["response"] < n:
            raise InvalidAnswerError(f"item {answer['item_id']!r} takes a score 0 to "
                                     f"{int(n) - 1}")
        scores.append(answer["response"])
    responses = np.array([scores], dtype=float)

    def coarse_theta(columns):
        return _coarse(float(estimate_theta(responses[:, columns],
                                            params.subset(columns), method).theta[0]))

    standards = []
    for code in dict.fromkeys(codes):
        columns = np.flatnonzero([c == code for c in codes])
        theta = coarse_theta(columns) if columns.size >= MIN_SCORED_ITEMS else None
        standards.append({"code": code, "theta": theta, "se": None,
                          "level": None if theta is None
                          else level_of(catalog.standard(code)[1], theta)})
    return {"theta": coarse_theta(np.arange(len(codes))), "se": None, "standards": standards}


def _coarse(value):
    return round(value, SCORE_DECIMALS) if np.isfinite(value) else None


__all__ = ["MIN_SCORED_ITEMS", "SCORE_DECIMALS", "score"]
