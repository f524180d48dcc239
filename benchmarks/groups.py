"""Multiple-group calibration and likelihood-ratio DIF against R mirt (recorded).

Data: verbal (316 persons, 24 items, two groups) from tests/data. mirt's
times are those recorded in tests/data/refs2/verbal__dif.json (mirt 1.45.1,
R 4.2.2, one thread, median of 3, multipleGroup with SE = FALSE). Ours: the
median of `REPEAT` runs of the same calls (the fit without standard errors),
in elapsed seconds and in this process's CPU seconds (on a shared machine the
elapsed time counts other work too; run with OPENBLAS_NUM_THREADS=1 to compare
with mirt's one thread).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from irtcat.calibration.multigroup import MultipleGroupCalibrator, likelihood_ratio_dif
from irtcat.itembank.io import read_responses

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
REPEAT = 5
INVARIANCE = ("slopes", "intercepts", "free_means", "free_var")


def _median_seconds(function):
    """(median elapsed seconds, median CPU seconds) of `REPEAT` calls."""
    elapsed, cpu = [], []
    for _ in range(REPEAT):
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        elapsed.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(elapsed), statistics.median(cpu)


def run():
    reference = json.loads((DATA / "refs2" / "verbal__dif.json").read_text())
    data = read_responses(DATA / "verbal.csv", group="group")

    def fit():
        return MultipleGroupCalibrator("2pl", invariance=INVARIANCE).fit(
            data.responses, data.groups, reference="0", item_ids=data.item_ids)

    def dif():
        return likelihood_ratio_dif(data, "2pl", reference="0")

    rows = []
    for name, function, mirt_seconds in (
            ("multipleGroup (slopes, intercepts, free_means, free_var)", fit,
             reference["mirt_multipleGroup"]["elapsed_seconds"]),
            ("DIF, drop scheme, a and d of 24 items", dif,
             reference["mirt_DIF"]["timing"]["elapsed_seconds"])):
        elapsed, cpu = _median_seconds(function)
        rows.append([name, f"{elapsed:.3f}", f"{cpu:.3f}", f"{mirt_seconds:.3f}",
                     f"{mirt_seconds / elapsed:.1f}x"])
    return [("Multiple groups and DIF, verbal 316 x 24, two groups",
             ["call", "irtcat s (median of 5)", "irtcat CPU s", "mirt s (recorded)",
              "speed-up (elapsed)"], rows)]
