"""Drift of a standard's operational items, watched on the live log (a queued job).

`drift_document` reads the standard's stored answers and its published version, and
re-estimates the operational items with the others fixed
(`calibration.drift.detect_drift`: the change of a and b against its standard error,
and the expected-score difference over the theta distribution of the takers; its
docstring names the literature). Pretest items and answers to other standards are
left out. The result is one row per studied operational item, flagged or not with its
reasons, plus the items not studied with why (too few answers).
"""

from __future__ import annotations

import math

import numpy as np

from irtcat.calibration.drift import DriftThresholds, detect_drift
from irtcat.itembank.errors import NotFoundError

from .errors import ConflictError

MODES = ("each", "together")
WEIGHTS = ("takers", "normal")


def drift_document(store, standard, items=None, mode="each", weights="takers", z=3.0,
                   expected_score=0.05, min_answers=100):
    """Drift of `standard`'s operational items on its stored log.

    items : ids to study (None: every operational item with `min_answers` answers)
    mode, weights : `calibration.drift.detect_drift`'s
    z, expected_score, min_answers : the flagging thresholds (`DriftThresholds`)

    Returns ``{"standard", "bank_version", "mode", "weights", "thresholds",
    "population": {"mean", "sd"}, "flagged": [ids], "items": [rows], "skipped":
    [{"id", "reason"}]}``; each row holds ``item, model, n_answers, old, new, se, z,
    expected_score_signed, expected_score_unsigned, flagged, reasons, converged``.
    NotFoundError for an unknown standard, ConflictError without a published version
    or answers, ValueError for a bad option.
    """
    if mode not in MODES or weights not in WEIGHTS:
        raise ValueError(f"mode must be one of {', '.join(MODES)} and weights one of "
                         f"{', '.join(WEIGHTS)}")
    log = store.response_log(standard)            # NotFoundError for an unknown standard
    try:
        bank = store.delivery_bank(standard)
    except NotFoundError:
        raise ConflictError(f"standard {standard!r} has no published bank version") from None
    operational = {item: {"id": item, **entry}
                   for item, entry in store.published_entries(standard).items()
                   if entry["status"] == "operational"}
    if len(log.response) == 0 or not set(log.item_ids) & set(operational):
        raise ConflictError(f"standard {standard!r} has no answers to its operational items")
    unknown = [item for item in items or () if item not in operational]
    if unknown:
        raise ValueError(f"item {unknown[0]!r} is not an operational item of {standard!r}")
    thresholds = DriftThresholds(z=z, expected_score=expected_score, min_answers=min_answers)
    report = detect_drift(log, operational, studied=items, mode=mode, weights=weights,
                          thresholds=thresholds)
    return _json({"standard": standard, "bank_version": bank.number, **report.as_dict()})


def _json(value):
    """`value` with numpy scalars as Python's and non-finite numbers as None."""
    if isinstance(value, dict):
        return {key: _json(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(inner) for inner in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
