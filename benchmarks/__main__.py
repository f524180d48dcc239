"""Run the benchmarks and print their figures as Markdown for RESULTS.md."""

from __future__ import annotations

import sys

from . import (
    answer_path,
    calibration,
    cat,
    commands,
    dif,
    dif_sparse,
    distributed,
    exposure_live,
    fixed_calib,
    groups,
    ims_cat,
    load,
    mcat,
    mirt,
    model_fit,
    online,
    scoring,
    startup,
    store,
    study,
)
from .common import machine

BENCHMARKS = {"scoring": scoring.run, "calibration": calibration.run, "cat": cat.run,
              "store": store.run, "load": load.run, "startup": startup.run,
              "commands": commands.run, "dif": dif.run, "groups": groups.run,
              "dif_sparse": dif_sparse.run, "distributed": distributed.run,
              "model_fit": model_fit.run, "fixed_calib": fixed_calib.run,
              "exposure_live": exposure_live.run, "online": online.run,
              "ims_cat": ims_cat.run, "mcat": mcat.run, "answer_path": answer_path.run,
              "mirt": mirt.run, "study": study.run}


def main(names):
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    print(f"Machine: {machine()}\n")
    for name in names or BENCHMARKS:
        for title, header, rows in BENCHMARKS[name]():
            print(f"### {title}\n")
            print("| " + " | ".join(header) + " |")
            print("|" + "---|" * len(header))
            for row in rows:
                print("| " + " | ".join(row) + " |")
            print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
