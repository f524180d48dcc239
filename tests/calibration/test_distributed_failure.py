"""A calibration on a Dask cluster that loses a worker, or its scheduler, mid-fit
(`calibration.partitions.DaskPartitions.reduce`).

The reference of every comparison is the same calibration in one process (the
ResponseSet's own E-step): the cluster adds the same partitions' sums in the same fixed
tree after a partition was sent again, so the estimates must agree within 1e-8."""

import dataclasses
import os
import signal

import numpy as np
import pytest

from irtcat.calibration.cluster import ClusterError
from irtcat.calibration.mml_em import MMLCalibrator
from irtcat.calibration.partitions import DaskPartitions, estep_statistics
from irtcat.calibration.responses import from_dense
from irtcat.engine.models import parameters_from_entries
from irtcat.engine.simulate import simulate_responses

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def responses():
    """2,000 persons x 10 2PL items, simulated (seeded): 413 response patterns, in
    partitions of 100."""
    rng = np.random.default_rng(20261205)
    items = [{"model": "2pl", "a": float(rng.uniform(0.7, 2.0)), "b": float(rng.normal())}
             for _ in range(10)]
    data = from_dense(simulate_responses(rng.normal(size=2000),
                                         parameters_from_entries(items), rng))
    return dataclasses.replace(data, partition_rows=100)


def _worker_holding_data(own_dask_client):
    """The process id of a worker holding at least one partition."""
    held = {address: keys for address, keys in own_dask_client.has_what().items() if keys}
    return own_dask_client.run(os.getpid, workers=[sorted(held)[0]]).popitem()[1]


def test_a_worker_killed_mid_calibration_leaves_the_estimates_as_in_one_process(own_dask_client,
                                                                               responses):
    alone = MMLCalibrator("2pl").fit(responses)
    partitions = DaskPartitions(own_dask_client, responses)
    killed = []

    def kill_at_cycle_3(cycle, loglik, change, seconds):
        if cycle == 3:
            killed.append(_worker_holding_data(own_dask_client))
            os.kill(killed[0], signal.SIGKILL)

    spread = MMLCalibrator("2pl", progress=kill_at_cycle_3).fit(partitions)
    assert killed and partitions.rebuilt > 0
    assert spread.n_iter_ == alone.n_iter_ > 3
    assert spread.log_likelihood_ == pytest.approx(alone.log_likelihood_, abs=1e-8)
    for ours, reference in zip(spread.blocks_, alone.blocks_, strict=True):
        np.testing.assert_allclose(ours.eta, reference.eta, rtol=0, atol=1e-8)
    own_dask_client.wait_for_workers(2, timeout=30)   # the nanny's new one, for what follows


def test_a_cycle_losing_partitions_in_every_run_raises_instead_of_summing_fewer(own_dask_client,
                                                                               responses):
    partitions = DaskPartitions(own_dask_client, responses)

    def dies(part, *shared):
        os._exit(3)          # the worker process ends, with the partitions it holds

    with pytest.raises(ClusterError, match="lost partitions in 4 runs of one cycle"):
        partitions.reduce(dies, np.zeros(1))
    assert partitions.rebuilt >= 1          # sent again at least once before giving up
    own_dask_client.wait_for_workers(2, timeout=30)


def test_a_client_that_lost_its_scheduler_raises_at_the_next_cycle(own_dask_client, responses):
    second = distributed.Client(own_dask_client.scheduler.address)
    partitions = DaskPartitions(second, responses)
    log_p = np.zeros((responses.upper_columns.size, 61))
    partitions.reduce(estep_statistics, log_p, np.zeros(61))
    second.close()
    with pytest.raises(ClusterError, match="lost its scheduler"):
        partitions.reduce(estep_statistics, log_p, np.zeros(61))
