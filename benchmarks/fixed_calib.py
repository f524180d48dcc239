"""Fixed-item calibration on the refs2 fixedcalib design, and drift detection.

Times `calibration.fixed_calib.fixed_calib` in process, best of `REPEAT`, on the
fixedcalib design (tests/data/refs2: 60 anchors at their true values, old
sample 2000 x 60, new sample 2000 x 80 with 35 answers each) for every
method, with its EM cycles and the new population it reports. Then
`calibration.drift.detect_drift` on a simulated log (200 2PL items, 20,000
persons answering 30 random items each, 10 items drifted), one item at a time
and all studied items together, with how many drifted items it flags.
mirt's fixedCalib is not timed here (R is not installed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from irtcat.calibration.drift import detect_drift
from irtcat.calibration.fixed_calib import METHODS, StackedResponses, fixed_calib
from irtcat.itembank.io import read_responses

from .common import timed

REFS2 = Path(__file__).resolve().parents[1] / "tests" / "data" / "refs2"
REPEAT = 3


def _design():
    truth = json.loads((REFS2 / "fixedcalib_truth.json").read_text())
    anchors = {item["id"]: {"id": item["id"], "model": "2pl", "a": item["a"], "b": item["b"]}
               for item in truth["anchor_items_known"]}
    return (read_responses(str(REFS2 / "fixedcalib_old_2000x60.csv")),
            read_responses(str(REFS2 / "fixedcalib_new_2000x80.csv")), anchors)


def _drift_log(seed=7, n_items=200, n_persons=20_000, per_person=30):
    rng = np.random.default_rng(seed)
    a, b = np.exp(rng.normal(0, 0.25, n_items)), rng.normal(0, 1, n_items)
    ids = [f"Q{j:03d}" for j in range(n_items)]
    bank = {item: {"id": item, "model": "2pl", "a": float(a[j]), "b": float(b[j])}
            for j, item in enumerate(ids)}
    b[:5] += 0.5
    a[5:10] *= 0.6
    theta = rng.normal(0.2, 1.0, n_persons)
    x = (rng.random((n_persons, n_items)) <
         1 / (1 + np.exp(-a * (theta[:, None] - b)))).astype(float)
    shown = rng.random((n_persons, n_items)).argsort(axis=1) < per_person
    x[~shown] = np.nan
    return StackedResponses([f"p{i}" for i in range(n_persons)], ids, x), bank, ids[:10]


def run():
    old, new, anchors = _design()
    rows = []
    for method in METHODS:
        seconds, result = timed(fixed_calib, new, anchors, method=method, old=old,
                                repeat=REPEAT)
        rows.append((method, f"{seconds:.2f} s", str(result.calibrator.n_iter_),
                     f"{result.mean:.4f}", f"{result.sd:.4f}"))
    tables = [("Fixed-item calibration, refs2 fixedcalib (2000 + 2000 persons, 60 anchors, "
               "20 new items)", ("method", "time", "EM cycles", "new mean", "new sd"), rows)]
    data, bank, drifted = _drift_log()
    rows = []
    for mode, studied in (("each", None), ("together", list(bank)[:100])):
        seconds, report = timed(detect_drift, data, bank, mode=mode, studied=studied)
        flagged = set(report.flagged())
        rows.append((mode, str(len(report.rows)), f"{seconds:.1f} s",
                     f"{len(flagged & set(drifted))} of 10", str(len(flagged - set(drifted)))))
    tables.append(("Drift, 200 items x 20,000 persons, 30 answers each, 10 items drifted",
                   ("mode", "items studied", "time", "drifted flagged", "stable flagged"),
                   rows))
    return tables
