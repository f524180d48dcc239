"""The calibration benchmark's fits in another tree and in this one, alternately.

``python -m benchmarks.before_after BEFORE_TREE [ROUNDS]``: BEFORE_TREE is a checkout
with its own ``.venv`` (``git worktree add ../before REV && make -C ../before install``).
Each round runs, in a child process of each tree's Python, the fits of `python -m
benchmarks calibration` that take under 2 s (dense 2PL, 3PL with a prior on c, GRM;
mirt's and Newton's M-steps); the order of the trees alternates from round to round.
Prints a Markdown row per fit: the medians, their ratio and the ranges.
"""

import json
import pathlib
import statistics
import subprocess
import sys

CHILD = r'''
import json, warnings, sys
from benchmarks.calibration import _load, _ours
from irtcat.calibration.mml_em import Priors
from irtcat.engine import ConvergenceWarning
warnings.simplefilter("ignore", ConvergenceWarning)
out = {}
r2, _, _ = _load("sim2pl_20000x100", "2pl")
out["2pl dense mirt"] = _ours(r2, "2pl")[0]
out["2pl dense newton"] = _ours(r2, "2pl", m_step="newton")[0]
r3, _, _ = _load("sim3pl_20000x100_m30", "3pl")
out["3pl sparse prior"] = _ours(r3, "3pl", Priors(c=(5.0, 17.0)))[0]
rg, _, _ = _load("simgrm_5000x30_K5", "grm")
out["grm mirt"] = _ours(rg, "grm")[0]
out["grm newton"] = _ours(rg, "grm", m_step="newton")[0]
print(json.dumps(out))
'''


def main(before, rounds=5):
    trees = {"before": pathlib.Path(before).resolve(),
             "after": pathlib.Path(__file__).resolve().parents[1]}
    times = {tree: {} for tree in trees}
    for round_ in range(rounds):
        order = list(trees.items()) if round_ % 2 == 0 else list(trees.items())[::-1]
        for tree, path in order:
            done = subprocess.run([str(path / ".venv" / "bin" / "python"), "-c", CHILD],
                                  cwd=path, capture_output=True, text=True, check=True)
            for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
                times[tree].setdefault(key, []).append(value)
    print("| fit | before (median) | after (median) | after / before | ranges |")
    print("|---|---|---|---|---|")
    for key, before_times in times["before"].items():
        after_times = times["after"][key]
        b, a = statistics.median(before_times), statistics.median(after_times)
        print(f"| {key} | {b:.3f} s | {a:.3f} s | {a / b:.2f} | "
              f"{min(before_times):.3f}-{max(before_times):.3f} / "
              f"{min(after_times):.3f}-{max(after_times):.3f} |")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5)
