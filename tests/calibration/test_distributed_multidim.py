"""Multidimensional, multiple-group and fixed-item calibration on a Dask cluster.

The reference is the same calibration in one process: with the E-steps' sums taken
partition by partition on a LocalCluster of two worker processes (three partitions,
so one worker holds two and the tree adds unequal halves; the same partitions in one
process), every parameter and the logLik equal the one-process run's within 1e-8
(issue 19). The data are simulated here (seeded); what is compared is the one-process
result, not the truth.
"""

import dataclasses
import warnings

import numpy as np
import pytest

from irtcat.calibration.bifactor import bifactor_loadings
from irtcat.calibration.fixed_calib import StackedResponses, fixed_calib
from irtcat.calibration.mirt_em import MirtCalibrator
from irtcat.calibration.mirt_se import standard_errors
from irtcat.calibration.multigroup import MultipleGroupCalibrator
from irtcat.calibration.partitions import DaskPartitions
from irtcat.calibration.responses import from_dense
from irtcat.engine import ConvergenceWarning

PARTITIONS = 3
TOLERANCE = 1e-8       # issue 19: cluster and one process agree within 1e-8


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client      # tests/conftest.py: a LocalCluster of 2 worker processes


def partitioned(responses):
    """`responses` as a ResponseSet of PARTITIONS partitions."""
    data = from_dense(responses)
    return dataclasses.replace(data, partition_rows=-(-data.n_rows // PARTITIONS))


@pytest.fixture
def sums(monkeypatch):
    """The names of the functions summed over the cluster's partitions, call by call:
    the proof that a run went there (and that the one-process run did not)."""
    calls = []
    reduce = DaskPartitions.reduce

    def counted(self, function, *shared):
        calls.append(function.__name__)
        return reduce(self, function, *shared)

    monkeypatch.setattr(DaskPartitions, "reduce", counted)
    return calls


def _two_factor(n_persons, n_items, seed, missing=0.0):
    """2PL responses of two factors correlated 0.5; item 0 loads on both."""
    rng = np.random.default_rng(seed)
    theta = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], n_persons)
    loadings = np.zeros((n_items, 2), dtype=bool)
    loadings[: n_items // 2, 0] = loadings[n_items // 2:, 1] = True
    loadings[0] = True
    slopes = np.where(loadings, rng.uniform(0.8, 1.8, (n_items, 2)), 0.0)
    z = theta @ slopes.T + rng.normal(0, 0.8, n_items)
    responses = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(float)
    responses[rng.random(responses.shape) < missing] = np.nan
    return responses, loadings


def _same_fit(local, remote):
    assert remote.n_iter_ == local.n_iter_
    assert remote.log_likelihood_ == pytest.approx(local.log_likelihood_, abs=TOLERANCE)
    assert np.abs(remote.slopes_ - local.slopes_).max() < TOLERANCE
    assert np.abs(np.array(remote.intercepts_, dtype=object).astype(float)
                  - np.array(local.intercepts_, dtype=object).astype(float)).max() < TOLERANCE
    assert np.abs(remote.correlation_ - local.correlation_).max() < TOLERANCE
    assert np.abs(remote.guessing_ - local.guessing_).max() < TOLERANCE


def test_two_factor_fit_and_standard_errors_on_the_cluster_equal_one_process(client, sums):
    responses, loadings = _two_factor(400, 8, seed=19, missing=0.1)
    data = partitioned(responses)
    local = MirtCalibrator("2pl", loadings, np.ones((2, 2), bool)).fit(data)
    assert sums == []
    remote = MirtCalibrator("2pl", loadings, np.ones((2, 2), bool)).fit(data, cluster=client)
    assert local.converged_
    assert sums == ["grid_statistics"] * (remote.n_iter_ + 1)     # every cycle, and the last
    _same_fit(local, remote)
    # The standard errors' E-steps (central differences of the marginal score) too.
    here, there = standard_errors(local, data), standard_errors(remote, data, cluster=client)
    free = loadings
    assert np.abs(there["slopes"][free] - here["slopes"][free]).max() < TOLERANCE
    assert abs(there["correlation"][0, 1] - here["correlation"][0, 1]) < TOLERANCE


def test_bifactor_fit_on_the_cluster_equals_one_process(client, sums):
    responses, _ = _two_factor(300, 9, seed=5)
    data = partitioned(responses)
    loadings = bifactor_loadings([[1, 2, 3, 4], [5, 6, 7, 8]], 9)
    fits = []
    for cluster in (None, client):
        calibrator = MirtCalibrator("2pl", loadings, bifactor=True, n_points=15, max_iter=25)
        with warnings.catch_warnings():   # 25 cycles: the same cycles on both sides suffice
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(calibrator.fit(data, cluster=cluster))
    assert sums == ["bifactor_statistics"] * (25 + 1)
    _same_fit(*fits)


def test_multiple_groups_on_the_cluster_equal_one_process(client, sums):
    rng = np.random.default_rng(7)
    groups = np.repeat(["ref", "focal"], 300)
    theta = np.where(groups == "ref", 0.0, 0.5) + rng.normal(0, 1, 600)
    a, b = rng.uniform(0.8, 1.8, 6), rng.normal(0, 1, 6)
    responses = (rng.random((600, 6)) < 1 / (1 + np.exp(-a * (theta[:, None] - b)))) * 1.0
    invariance = ("slopes", "intercepts", "free_means")
    rows = 20                             # each group's 300 persons: 40 to 64 patterns
    local = MultipleGroupCalibrator("2pl", invariance=invariance).fit(
        responses, groups, reference="ref", partition_rows=rows)
    remote = MultipleGroupCalibrator("2pl", invariance=invariance).fit(
        responses, groups, reference="ref", cluster=client, partition_rows=rows)
    try:
        assert sums == ["estep_statistics"] * 2 * (remote.n_iter_ + 1)   # per group
        assert local.converged_ and remote.n_iter_ == local.n_iter_
        assert remote.log_likelihood_ == pytest.approx(local.log_likelihood_, abs=TOLERANCE)
        assert np.abs(remote._vector() - local._vector()).max() < TOLERANCE
        # The observed information's E-steps (the standard errors) run there too.
        assert np.abs(remote.covariance() - local.covariance()).max() < TOLERANCE
    finally:
        remote.close()


@pytest.mark.parametrize("method", ["fixed", "mwu-mem"])
def test_fixed_item_calibration_on_the_cluster_equals_one_process(client, sums, method):
    rng = np.random.default_rng(11)
    a, b = rng.uniform(0.8, 1.8, 12), rng.normal(0, 1, 12)
    theta = rng.normal(0.3, 1.1, 500)
    responses = (rng.random((500, 12)) < 1 / (1 + np.exp(-a * (theta[:, None] - b)))) * 1.0
    ids = [f"I{j:02d}" for j in range(12)]
    anchors = {ids[j]: {"id": ids[j], "model": "2pl", "a": float(a[j]), "b": float(b[j])}
               for j in range(8)}
    data = StackedResponses([f"p{i}" for i in range(500)], ids, responses)
    local = fixed_calib(data, anchors, method=method, partition_rows=170)
    assert sums == []
    remote = fixed_calib(data, anchors, method=method, cluster=client, partition_rows=170)
    assert len(sums) >= remote.calibrator.n_iter_ + 1
    assert remote.calibrator.n_iter_ == local.calibrator.n_iter_
    assert remote.calibrator.log_likelihood_ == pytest.approx(
        local.calibrator.log_likelihood_, abs=TOLERANCE)
    for here, there in zip(local.calibrator.blocks_, remote.calibrator.blocks_, strict=True):
        assert np.abs(there.eta - here.eta).max() < TOLERANCE
    assert abs(remote.mean - local.mean) < TOLERANCE and abs(remote.sd - local.sd) < TOLERANCE
    assert np.abs(remote.weights - local.weights).max() < TOLERANCE
