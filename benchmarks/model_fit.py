"""Model fit and item fit speed against R mirt (recorded): M2 with its indices and
the null model (mirt's ``M2(mod)``), and the itemfit table (mirt's ``itemfit``).

Data and mirt's times: tests/data and tests/data/refs2 (R 4.2.2, mirt 1.45.1,
one thread, a 2-core VM; the median of 3 runs of the call on a fitted model).
Ours: the median of 7 runs of the same computation on a model fitted here; the
fit itself is not timed, as it is not in mirt's figure.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from irtcat.calibration.item_fit import mirt_itemfit
from irtcat.calibration.mml_em import MMLCalibrator
from irtcat.calibration.model_fit import m2
from irtcat.engine.models import ItemParameters
from irtcat.itembank.io import read_responses

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
HEADER = ("computation", "irtcat (s)", "mirt (s)", "mirt / irtcat")
RUNS = 7


def _median_seconds(function):
    seconds = []
    for _ in range(RUNS):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _row(label, ours, theirs):
    return (label, f"{ours:.4f}", f"{theirs:.3f}", f"{theirs / ours:.0f}x")


def m2_rows():
    rows = []
    for dataset in ("deAyala", "LSAT7"):
        reference = json.loads((DATA / "refs2" / f"{dataset}__modelfit.json").read_text())
        responses = read_responses(DATA / f"{dataset}.csv").responses
        for model in ("2pl", "1pl"):
            calibrator = MMLCalibrator(model).fit(responses)
            ours = _median_seconds(lambda c=calibrator, y=responses: m2(c, y))
            theirs = reference["models"][model]["M2"]["elapsed_seconds"]
            rows.append(_row(f"M2, {dataset} {model} ({responses.shape[0]:,} x "
                             f"{responses.shape[1]})", ours, theirs))
    return rows


def itemfit_rows():
    reference = json.loads((DATA / "refs2" / "LSAT7__itemfit.json").read_text())
    responses = read_responses(DATA / "LSAT7.csv").responses
    block = MMLCalibrator("2pl").fit(responses).blocks_[0]
    irt = block.irt()
    params = ItemParameters(("2pl",) * 5, irt["a"], irt["b"][:, None], np.zeros(5), np.ones(5))
    ours = _median_seconds(lambda: mirt_itemfit(responses, params, np.full(5, 2)))
    return [_row("itemfit S_X2, X2, G2, Zh, infit: LSAT7 2pl", ours,
                 reference["itemfit"]["elapsed_seconds"])]


def run():
    return [("Model fit and item fit against mirt (recorded)", HEADER,
             m2_rows() + itemfit_rows())]
