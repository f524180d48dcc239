"""Child process of the distributed calibration benchmark: prints one JSON line.

``python -m benchmarks.distributed_child one LOG_DIR BANK.json`` reads the Parquet log in
this process and calibrates it; ``... cluster LOG_DIR BANK.json`` does it on a
LocalCluster of 2 worker processes (one thread each), the workers reading the files.
Both write the bank and print their times, cycles, memory and, on the cluster, the
bytes a cycle moved and what one partition's E-step costs on a worker.
"""

import json
import os
import resource
import sys
import time

import numpy as np

M_STEP = os.environ.get("IRTCAT_DISTRIBUTED_M_STEP", "mirt")
SPENT = {"e_step": 0.0, "e_steps": 0, "partitions": 0.0}


def instrumented():
    """Time the E-steps (and a cluster's building of its partitions) as they run."""
    from irtcat.calibration.mml_em import MMLCalibrator
    from irtcat.itembank.parquet_partitions import PartitionedLog

    def timing(function, key, count=None):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                SPENT[key] += time.perf_counter() - started
                if count:
                    SPENT[count] += 1
        return timed

    MMLCalibrator._e_step = timing(MMLCalibrator._e_step, "e_step", "e_steps")
    PartitionedLog.partitions = timing(PartitionedLog.partitions, "partitions")


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_process(log_dir, out):
    from irtcat.calibration.partitions import RowSpan, estep_statistics, partition_bounds
    from irtcat.calibration.workflow import calibrate_document
    from irtcat.itembank.parquet_io import read_parquet_log

    started = time.perf_counter()
    log = read_parquet_log(log_dir)
    read = time.perf_counter() - started
    started = time.perf_counter()
    document, calibrator = calibrate_document(log, "2pl", fit=False, m_step=M_STEP)
    fit = time.perf_counter() - started
    spent = dict(SPENT)
    # One E-step's cost, partition by partition, at the estimates (the cost of a cycle's
    # data side; the rest of a cycle is the M-step and the bookkeeping here).
    data = calibrator.data_
    log_p = calibrator._log_p_columns(calibrator.blocks_, data.offsets[-1], data.offsets)
    weights = calibrator._log_weights(calibrator.latent_)
    started = time.perf_counter()
    for start, stop in partition_bounds(data):
        estep_statistics(RowSpan(data, start, stop), log_p, weights)
    e_step = time.perf_counter() - started
    pathlib_write(out, document)
    return {"read_seconds": read, "fit_seconds": fit, "cycles": calibrator.n_iter_,
            "spent": spent,
            "e_step_seconds": e_step, "partitions": len(partition_bounds(data)),
            "persons": int(data.n_persons), "loglik": calibrator.log_likelihood_,
            "peak_mib": peak_mib()}


def cluster(log_dir, out):
    from distributed import wait

    from irtcat.calibration.cluster import connected
    from irtcat.calibration.partitions import added, estep_statistics
    from irtcat.calibration.workflow import calibrate_document
    from irtcat.itembank.parquet_partitions import PartitionedLog

    with connected("local:2") as client:
        started = time.perf_counter()
        log = PartitionedLog.open(client, log_dir)
        opened = time.perf_counter() - started
        moved = {}

        def progress(cycle, *_):        # worker-to-worker bytes from cycle 1 on
            moved[cycle] = _worker_bytes(client)

        started = time.perf_counter()
        document, calibrator = calibrate_document(log, "2pl", fit=False, cluster=client,
                                                  progress=progress, m_step=M_STEP)
        fit = time.perf_counter() - started
        spent = dict(SPENT)
        last = max(moved)
        per_cycle = (moved[last] - moved[1]) / max(last - 1, 1)
        partitions = calibrator.data_
        log_p = calibrator._log_p_columns(calibrator.blocks_, partitions.offsets[-1],
                                          partitions.offsets)
        weights = calibrator._log_weights(calibrator.latent_)
        shared = client.scatter([log_p, weights], broadcast=True)
        timed = [client.submit(_timed, estep_statistics, part, *shared, pure=False)
                 for part in partitions._futures]
        wait(timed)
        seconds, results = zip(*client.gather(timed), strict=True)
        started = time.perf_counter()
        added(results[0], results[-1])
        add = time.perf_counter() - started
        workers = client.run(peak_mib)
        pathlib_write(out, document)
        return {"open_seconds": opened, "fit_seconds": fit, "cycles": calibrator.n_iter_,
                "spent": spent,
                "partitions": partitions.n_partitions, "persons": int(partitions.n_persons),
                "partition_seconds": list(seconds), "add_seconds": add,
                "bytes_per_cycle": partitions.bytes_per_cycle,
                "sums_bytes": sum(np.asarray(value).nbytes for value in results[0]),
                "shared_bytes": log_p.nbytes + weights.nbytes,
                "worker_transfer_bytes_per_cycle": per_cycle,
                "loglik": calibrator.log_likelihood_, "worker_peak_mib": list(workers.values()),
                "client_peak_mib": peak_mib()}


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def _worker_bytes(client):
    """Bytes the workers have sent one another so far."""
    return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
               .values())


def pathlib_write(path, document):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)


if __name__ == "__main__":
    mode, log_dir, out = sys.argv[1:4]
    instrumented()
    result = (one_process if mode == "one" else cluster)(log_dir, out)
    print(json.dumps(result))
