"""The whole `irtcat calibrate` command against R mirt as a whole process.

Times ``irtcat calibrate sim2pl_20000x100.csv --model 2pl --out B.json`` as a
user runs it (a new process: start-up, reading the CSV, the EM fit, the
default S-X2 item fit, writing the bank), median of `RUNS` runs, with
``--quiet`` so that no progress line is printed (progress appears only after
2 s). The figure to beat is R's: ``Rscript`` reading the same CSV and
fitting with mirt took about `R_WHOLE_PROCESS_SECONDS` on a machine of this
kind. R cannot be installed here (CRAN is unreachable), so that figure is
the recorded one, not a same-run measure, and so is mirt's fit time alone
(``elapsed_seconds`` of shared/refs' ``sim2pl_20000x100__2pl.json``).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .calibration import SHARED_REFS
from .common import irtcat_command, run_command

DATASET = "sim2pl_20000x100"
RUNS = 5
R_WHOLE_PROCESS_SECONDS = 17.0
"""``Rscript`` reading sim2pl_20000x100.csv and fitting mirt's 2PL, start to end (recorded)."""
TARGET_SPEED_UP = 10.0


def _command():
    """The installed ``irtcat`` script beside this Python, else ``python -m irtcat.api.cli``."""
    script = Path(sys.executable).with_name("irtcat")
    return [str(script)] if script.exists() else irtcat_command()


def _interpreter_start(runs):
    """Median seconds of ``python -c pass``: what any command pays before its imports."""
    return statistics.median(run_command([sys.executable, "-c", "pass"])[0] for _ in range(runs))


def calibrate_runs(data, runs=RUNS):
    """Run the whole command `runs` times.

    Returns
    -------
    wall : list of float, seconds per run
    cpu : list of float, CPU seconds (user + system, every thread) per run
    fit : list of float, the EM's own seconds per run (the bank's ``calibration.seconds``)
    peak : float, the largest peak resident memory of a run in MiB
    bank : dict, the last bank written
    """
    wall, cpu, fit, peak, bank = [], [], [], 0.0, None
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "B.json"
        argv = _command() + ["calibrate", str(data), "--model", "2pl", "--out", str(out),
                             "--quiet"]
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, run_peak = run_command(argv)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            bank = json.loads(out.read_text())
            wall.append(seconds)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            fit.append(bank["calibration"]["seconds"])
            peak = max(peak, run_peak)
    return wall, cpu, fit, peak, bank


def run():
    data = SHARED_REFS / f"{DATASET}.csv"
    reference = json.loads((SHARED_REFS / f"{DATASET}__2pl.json").read_text())
    try:
        wall, cpu, fit, peak, bank = calibrate_runs(data)
    except (OSError, subprocess.CalledProcessError) as error:
        return [(f"`irtcat calibrate` as a whole command ({DATASET})", ("measure", "time", "note"),
                 [("`irtcat calibrate`", "–", f"failed: {error}")])]
    seconds = statistics.median(wall)
    record = bank["calibration"]
    fitted = sum(1 for item in bank["items"] if "fit" in item)
    target = R_WHOLE_PROCESS_SECONDS / TARGET_SPEED_UP
    rows = [
        ("`python -c pass` (interpreter start), median of 5", f"{_interpreter_start(RUNS):.2f} s",
         "paid by every command"),
        (f"`irtcat calibrate {DATASET}.csv --model 2pl --out B.json --quiet`, median of {RUNS}",
         f"{seconds:.2f} s",
         f"runs {min(wall):.2f}-{max(wall):.2f} s; CPU {statistics.median(cpu):.2f} s "
         f"(median); peak RSS {peak:.0f} MiB; start-up, read, fit, S-X2 of {fitted} items, "
         "write"),
        ("of which the EM fit (the bank's calibration.seconds), median",
         f"{statistics.median(fit):.2f} s",
         f"{record['iterations']} cycles; logLik "
         f"{record['loglik'] - reference['logLik']:+.4f} from mirt's"),
        ("R mirt as a whole process (`Rscript`: read the CSV, fit; recorded)",
         f"{R_WHOLE_PROCESS_SECONDS:.1f} s",
         f"R / irtcat = {R_WHOLE_PROCESS_SECONDS / seconds:.1f}x; target "
         f"{TARGET_SPEED_UP:.0f}x (<= {target:.2f} s): "
         f"{'met' if seconds <= target else 'not met'}"),
        (f"R mirt {reference['mirt_version']} fit alone (recorded in shared/refs)",
         f"{reference['elapsed_seconds']:.2f} s",
         f"{reference['em_cycles']} cycles; mirt's fit / the whole irtcat command = "
         f"{reference['elapsed_seconds'] / seconds:.1f}x"),
    ]
    return [(f"`irtcat calibrate` as a whole command, 2PL 20,000 x 100 ({DATASET})",
             ("measure", "time", "note"), rows)]
