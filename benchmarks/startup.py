"""Start-up of the command line: `irtcat --help` and a small `irtcat score`, end to end.

The median of RUNS runs of each, beside the interpreter's own start (`python -c pass`);
the target is under 0.3 s more than the interpreter for both. The commands run as a
user runs them: the `irtcat` console script of this environment.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
TARGET_SECONDS = 0.3
LSAT7 = Path(__file__).resolve().parents[1] / "tests" / "data" / "LSAT7.csv"


def _irtcat():
    script = Path(sys.executable).with_name("irtcat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "irtcat.api.cli"]


def median_seconds(argv, runs=RUNS):
    """Median wall time of `runs` runs of `argv` (output discarded; a failure raises)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run():
    irtcat = _irtcat()
    with tempfile.TemporaryDirectory() as folder:
        bank = os.path.join(folder, "lsat7_2pl.json")
        subprocess.run(irtcat + ["calibrate", str(LSAT7), "--model", "2pl", "--no-fit",
                                 "--quiet", "--out", bank], check=True)
        baseline = median_seconds([sys.executable, "-c", "pass"])
        commands = [("`python -c pass` (the interpreter alone)", None),
                    ("`irtcat --help`", irtcat + ["--help"]),
                    ("`irtcat score LSAT7.csv --bank LSAT7_2PL.json` (1,000 persons, EAP)",
                     irtcat + ["score", str(LSAT7), "--bank", bank])]
        rows = []
        for label, argv in commands:
            seconds = baseline if argv is None else median_seconds(argv)
            extra = seconds - baseline
            note = "" if argv is None else \
                f"+{extra:.3f} s ({'meets' if extra < TARGET_SECONDS else 'misses'} the " \
                f"{TARGET_SECONDS} s target)"
            rows.append((label, f"{seconds:.3f} s", note))
    return [(f"Command-line start-up, median of {RUNS} runs", ("command", "time",
                                                               "over the interpreter"), rows)]
