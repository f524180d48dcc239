"""Helpers shared by the benchmarks: the machine line, timing, peak memory."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import date

import numpy as np
import scipy


def machine():
    """One line naming the machine, for RESULTS.md."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = f"numpy {np.__version__}, scipy {scipy.__version__}"
    return (f"{date.today().isoformat()}, {os.cpu_count()} cores {cpu}, {memory:.0f} GiB, "
            f"Python {platform.python_version()}, {versions}")


def timed(function, *args, repeat=1, **kwargs):
    """(best seconds, result of the last call)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - started)
    return best, result


def run_command(argv):
    """Run a command; (seconds, peak resident memory of that command in MiB)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)                 # this child's own rusage
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, argv)
    return seconds, usage.ru_maxrss / 1024


def irtcat_command():
    return [sys.executable, "-m", "irtcat.api.cli"]
