"""A simulation study of 20 designs x 5,000 simulees (issue 19: studies on Dask).

One process against a LocalCluster of two worker processes (one thread each), on a
bank of 150 2PL items in three standards. The designs vary selection, exposure control
(two tuned by Sympson-Hetter, two under item eligibility), content, stopping and
classification. The check: the cluster's study is the one process's, array for array
(every simulee's abilities, items, estimates and decisions), so every summary figure
is too. The cluster's start-up is timed apart.

The cluster runs twice: with distributed's default worker environment, whose
MALLOC_TRIM_THRESHOLD_ (65536) turns off glibc's adaptive mmap threshold, so every large
numpy temporary of the simulation is mapped and zeroed anew (three to five times slower
per task, measured), and without that variable (the thread caps kept). distributed also
leaves the variable in this process's environment once a cluster has started, where
the next cluster's workers would inherit it: it is taken out for the second run.
"""

from __future__ import annotations

import os

import numpy as np

from irtcat.delivery.studies import UNIT, read_designs, run_study
from irtcat.itembank import bank_from_document

from .common import timed

N_ITEMS, EXAMINEES, WORKERS, SEED = 150, 5000, 2, 2026
FIELDS = ("items", "scored_length", "theta", "se", "decision")


def bank():
    rng = np.random.default_rng(SEED)
    items = [{"id": f"Q{j:03d}", "standard": f"S{j % 3 + 1}", "model": "2pl",
              "a": round(float(rng.lognormal(0.1, 0.3)), 3), "b": round(float(rng.normal()), 3)}
             for j in range(N_ITEMS)]
    return bank_from_document({"format": "irtcat-bank/1", "items": items})


def designs_document():
    """20 designs: five stopping rules x four ways of choosing items."""
    stops = {"fixed-20": {"min_items": 20, "max_items": 20, "se": None},
             "fixed-30": {"min_items": 30, "max_items": 30, "se": None},
             "se-0.3": {"min_items": 10, "max_items": 40, "se": 0.3},
             "se-0.4": {"min_items": 5, "max_items": 30, "se": 0.4},
             "cut-0.5": {"min_items": 10, "max_items": 40, "se": None,
                         "classification": {"cut": 0.5, "method": "sprt"}}}
    choices = {"mfi": {},
               "randomesque-5": {"selection": {"method": "mfi", "randomesque": 5}},
               "content": {"content": [{"standard": f"S{k}", "min": 5} for k in (1, 2, 3)]},
               "kl": {"selection": {"method": "kl"}}}
    exposure = {("se-0.3", "mfi"): {"method": "sympson-hetter", "target": 0.3},
                ("fixed-30", "mfi"): {"method": "sympson-hetter", "target": 0.35},
                ("se-0.4", "content"): {"method": "item-eligibility", "target": 0.3},
                ("fixed-20", "randomesque-5"): {"method": "item-eligibility", "target": 0.3}}
    designs = []
    for stop_name, stop in stops.items():
        for choice_name, choice in choices.items():
            config = {**choice, "stop": stop}
            if (stop_name, choice_name) in exposure:
                config["exposure"] = exposure[stop_name, choice_name]
            designs.append({"name": f"{stop_name}/{choice_name}", "config": config})
    return {"designs": designs}


def same(first, second):
    return all(np.array_equal(one.true_theta, other.true_theta)
               and all(np.array_equal(one.joined(name), other.joined(name)) for name in FIELDS)
               for one, other in zip(first, second, strict=True))


def _on_cluster(item_bank, designs, examinees, environment=None):
    """(seconds of the study on a LocalCluster of WORKERS, the study, start-up seconds);
    `environment`: the workers' pre-spawn environment instead of distributed's."""
    import dask
    from distributed import Client, LocalCluster

    settings = {} if environment is None else {
        "distributed.nanny.pre-spawn-environ": environment}
    inherited = os.environ.copy()
    if environment is not None:     # a cluster started before left its variables here
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set(settings):
            started, cluster = timed(LocalCluster, n_workers=WORKERS, threads_per_worker=1,
                                     processes=True, dashboard_address=":0")
    finally:
        os.environ.clear()
        os.environ.update(inherited)
    with cluster, Client(cluster) as client:
        seconds, study = timed(run_study, item_bank, designs, examinees, SEED, client)
    return seconds, study, started


def run(examinees=EXAMINEES, n_designs=None):
    import dask
    import distributed  # noqa: F401  (loads distributed's configuration into dask's)

    item_bank = bank()
    designs = read_designs(designs_document(), item_bank)[:n_designs]
    here_seconds, here = timed(run_study, item_bank, designs, examinees, SEED)
    size = f"{len(designs)} designs x {examinees:,} simulees, units of {UNIT}"
    rows = [("one process", f"{here_seconds:.1f} s", size)]
    default = dask.config.get("distributed.nanny.pre-spawn-environ")
    untrimmed = {key: value for key, value in default.items()
                 if key != "MALLOC_TRIM_THRESHOLD_"}
    for label, environment in (("distributed's worker environment", None),
                               ("workers without MALLOC_TRIM_THRESHOLD_", untrimmed)):
        seconds, there, started = _on_cluster(item_bank, designs, examinees, environment)
        rows.append((f"LocalCluster of {WORKERS} processes, {label}", f"{seconds:.1f} s",
                     f"speed-up {here_seconds / seconds:.2f}; the same study: "
                     f"{'yes' if same(here, there) else 'NO'}; start-up {started:.1f} s "
                     "(not counted)"))
    return [(f"Simulation study, {size} ({N_ITEMS} items)", ("run", "time", "note"), rows)]
