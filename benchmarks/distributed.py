"""MML-EM from a Parquet dataset in one process and on a LocalCluster of 2 workers.

The log: a 2PL (a ~ lognormal(0, 0.25), b ~ N(0, 1), theta ~ N(0, 1), seed 19) of
1,000,000 persons, each answering 30 of 2,000 items at random (3 x 10^7 responses),
written as 30 Parquet files partitioned by the day of each person's test
(``day=NN/part-0.parquet``), ids as integers. `IRTCAT_DISTRIBUTED_SIZE=persons,items,
answers` sets another size. Each run is a child process (`distributed_child`), for its
memory: one reads the log and fits here; the other has 2 worker processes (one thread
each) read the files and run the E-steps, this process the M-steps.

The projection to N workers is arithmetic on what the cluster run measured, not a run:
a cycle costs ceil(P / N) partition E-steps (each measured on a worker), then the
log2(P) levels of the tree of sums (an addition measured here, and the sums sent at an
assumed 1 GB/s), then this process's share (the M-step and sending log P to N workers:
the one-process cycle time less its E-step). Reading scales with the responses per
worker. The cycles are the measured run's (a larger sample does not need more).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from irtcat.calibration.responses import PARTITION_ROWS

DEFAULT_SIZE = (1_000_000, 2_000, 30)
N_FILES = 30
BANDWIDTH = 1e9            # bytes per second between workers, assumed for the projection
PROJECTED_WORKERS = (8, 32, 128)
PROJECTED_RESPONSES = 3e9


def size():
    text = os.environ.get("IRTCAT_DISTRIBUTED_SIZE")
    return tuple(int(part) for part in text.split(",")) if text else DEFAULT_SIZE


def write_log(folder, n_persons, n_items, per_person, seed=19):
    """The seeded 2PL log as N_FILES Parquet files by day; returns the true (a, b)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    a, b = rng.lognormal(0.0, 0.25, n_items), rng.normal(0.0, 1.0, n_items)
    bounds = np.linspace(0, n_persons, N_FILES + 1).astype(np.int64)
    for day, (first, last) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        count = int(last - first)
        theta = rng.normal(size=count)
        items = np.argsort(rng.random((count, n_items)), axis=1)[:, :per_person] \
            if n_items <= 200 else _distinct_items(rng, count, n_items, per_person)
        person = np.repeat(np.arange(first, last), per_person)
        item = items.ravel()
        p = 1.0 / (1.0 + np.exp(-a[item] * (np.repeat(theta, per_person) - b[item])))
        table = pa.table({"person_id": person, "item_id": item.astype(np.int64),
                          "response": (rng.random(p.size) < p).astype(np.int8)})
        (folder / f"day={day:02d}").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"day={day:02d}" / "part-0.parquet")
    return a, b


def _distinct_items(rng, count, n_items, per_person):
    items = np.empty((count, per_person), dtype=np.int64)
    for start in range(0, count, 5_000):
        stop = min(count, start + 5_000)
        items[start:stop] = np.argpartition(rng.random((stop - start, n_items)), per_person,
                                            axis=1)[:, :per_person]
    return items


def child(mode, log_dir, out):
    done = subprocess.run([sys.executable, "-m", "benchmarks.distributed_child", mode,
                           str(log_dir), str(out)], capture_output=True, text=True,
                          check=False, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"distributed_child {mode} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def largest_gap(one, other):
    theirs = {item["id"]: item for item in other["items"]}
    return max(abs(item[key] - theirs[item["id"]][key])
               for item in one["items"] for key in ("a", "b"))


def projection(dist, n_workers, responses, per_person):
    """Projected seconds of a calibration of `responses` on `n_workers` workers."""
    persons = responses / per_person
    partitions = math.ceil(persons / PARTITION_ROWS)
    partition = full_partition_seconds(dist)
    levels = math.ceil(math.log2(max(partitions, 2)))
    cycle = (math.ceil(partitions / n_workers) * partition
             + levels * (dist["add_seconds"] + dist["sums_bytes"] / BANDWIDTH)
             + client_share(dist) + n_workers * dist["shared_bytes"] / BANDWIDTH)
    scale = responses / (dist["persons"] * per_person) * 2 / n_workers   # measured on 2
    load = (dist["open_seconds"] + dist["spent"]["partitions"]) * scale
    return load + dist["cycles"] * cycle


def full_partition_seconds(dist):
    """A partition's E-step on a worker, scaled to PARTITION_ROWS persons."""
    measured = dist["persons"] / dist["partitions"]
    return float(np.median(dist["partition_seconds"])) * PARTITION_ROWS / measured


def client_share(dist):
    """Seconds per cycle of the cluster run outside its E-steps: the M-step and the
    bookkeeping in this process."""
    spent = dist["spent"]
    return (dist["fit_seconds"] - spent["partitions"] - spent["e_step"]) / spent["e_steps"]


def run():
    n_persons, n_items, per_person = size()
    title = (f"2PL from a Parquet dataset, {n_persons:,} persons x {n_items:,} items, "
             f"{per_person} answers each, one process and a LocalCluster of 2 workers")
    with tempfile.TemporaryDirectory() as folder:
        log_dir = Path(folder) / "log"
        started = time.perf_counter()
        write_log(log_dir, n_persons, n_items, per_person)
        written = time.perf_counter() - started
        one = child("one", log_dir, Path(folder) / "one.json")
        dist = child("cluster", log_dir, Path(folder) / "cluster.json")
        gap = largest_gap(json.loads((Path(folder) / "one.json").read_text()),
                          json.loads((Path(folder) / "cluster.json").read_text()))
    m_step = os.environ.get("IRTCAT_DISTRIBUTED_M_STEP", "mirt")
    e_one = one["spent"]["e_step"] / one["spent"]["e_steps"]
    rest_one = (one["fit_seconds"] - one["spent"]["e_step"]) / one["spent"]["e_steps"]
    e_dist = dist["spent"]["e_step"] / dist["spent"]["e_steps"]
    rows = [
        ("one process", f"{one['read_seconds']:.1f} s", f"{one['fit_seconds']:.1f} s",
         str(one["cycles"]), f"{e_one:.2f} s + {rest_one:.2f} s",
         f"{one['peak_mib']:.0f} MiB (the process)", "-",
         f"logLik {one['loglik']:.4f}"),
        ("LocalCluster, 2 workers", f"{dist['open_seconds']:.1f} s + "
         f"{dist['spent']['partitions']:.1f} s to partition",
         f"{dist['fit_seconds']:.1f} s", str(dist["cycles"]),
         f"{e_dist:.2f} s + {client_share(dist):.2f} s",
         " / ".join(f"{mib:.0f}" for mib in dist["worker_peak_mib"])
         + f" MiB per worker; {dist['client_peak_mib']:.0f} MiB here",
         f"{dist['bytes_per_cycle'] / 2**20:.1f} MiB sent "
         f"({dist['worker_transfer_bytes_per_cycle'] / 2**20:.1f} MiB worker to worker)",
         f"logLik {dist['loglik']:.4f}; largest gap in a or b {gap:.1e}; "
         f"{dist['partitions']} partitions"),
    ]
    header = ("run", "read", "fit", "cycles", "per cycle: E-step + the rest", "peak memory",
              "bytes per cycle", "note")
    tables = [(title + f", M-step {m_step} (log written in {written:.0f} s)", header, rows)]
    partition = full_partition_seconds(dist)
    projected = []
    for responses in (n_persons * per_person, PROJECTED_RESPONSES):
        for workers in PROJECTED_WORKERS:
            projected.append((f"{responses:.1e}", str(workers),
                              f"{projection(dist, workers, responses, per_person):.0f} s"))
    tables.append((f"Projected calibration time on N workers, M-step {m_step} (from the run "
                   f"above: {partition:.2f} s per partition of {PARTITION_ROWS:,} persons, "
                   f"{dist['add_seconds'] * 1e3:.1f} ms per addition of two sums, "
                   f"{client_share(dist):.2f} s per cycle in this process, "
                   f"{dist['cycles']} cycles)", ("responses", "workers", "time"), projected))
    return tables
