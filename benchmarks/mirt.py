"""Multidimensional calibration speed against R mirt (recorded).

The confirmatory 3-factor 2PL of tests/data/refs2/simmdim_3000x45.csv (3,000
persons, 45 items, 15^3 = 3,375 quadrature nodes), mirt's call
``mirt(data, mirt.model('F1 = 1-15\\nF2 = 16-30\\nF3 = 31-45\\nCOV = F1*F2*F3'),
'2PL')``. mirt's time is the recorded one of the refs file (system.time, median
of 3 runs, SE = FALSE, one thread on a 2-core VM); ours the median of 3 fits
here (wall clock, and the process's CPU time, which a loaded machine inflates
less), with both M-steps (mirt's path, the default; Newton), each row with the
logLik it reached against mirt's -76558.563.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from irtcat.calibration.mirt_em import MirtCalibrator
from irtcat.calibration.responses import from_dense
from irtcat.itembank.io import read_responses

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
RUNS = 3


def _fit_seconds(responses, m_step):
    loadings = np.zeros((45, 3), dtype=bool)
    for factor in range(3):
        loadings[15 * factor: 15 * (factor + 1), factor] = True
    seconds, cpu, calibrator = [], [], None
    for _ in range(RUNS):
        started, started_cpu = time.perf_counter(), time.process_time()
        calibrator = MirtCalibrator("2pl", loadings, np.ones((3, 3), bool),
                                    m_step=m_step).fit(from_dense(responses))
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(seconds), statistics.median(cpu), calibrator


def run():
    reference = json.loads((DATA / "refs2" / "simmdim_3000x45__cfa3.json").read_text())
    responses = read_responses(DATA / "refs2" / "simmdim_3000x45.csv").responses
    theirs = reference["elapsed_seconds"]
    rows = []
    for m_step in ("mirt", "newton"):
        ours, cpu, calibrator = _fit_seconds(responses, m_step)
        rows.append((f"3-factor 2PL, simmdim 3000 x 45, M-step {m_step}", f"{ours:.2f}",
                     f"{cpu:.2f}",
                     f"{theirs:.1f}", f"{theirs / ours:.1f}x", str(calibrator.n_iter_),
                     f"{calibrator.log_likelihood_:.3f}"))
    header = ("fit", "irtcat (s)", "irtcat CPU (s, all threads)", "mirt (s, recorded)",
              "mirt / irtcat", "EM cycles", "logLik (mirt -76558.563)")
    yield "Confirmatory multidimensional calibration", header, rows
