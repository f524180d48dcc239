"""A Parquet log read by the workers of a Dask cluster (itembank.parquet_partitions).

The reference is the same log read by one process (`read_parquet_log`) and calibrated
there: the workers hold the persons in another order (by a hash of their id), so the
E-step's sums agree up to rounding, and the issue asks the estimates to agree within
1e-8. The log is seeded 2PL data cut into three files by date, each person's answers
spread over all three (they must meet in one partition).
"""

import os
import signal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import expit

from irtcat.calibration.mml_em import MMLCalibrator
from irtcat.calibration.workflow import calibrate_document
from irtcat.itembank.errors import DataFormatError
from irtcat.itembank.parquet_io import read_parquet_log
from irtcat.itembank.parquet_partitions import PartitionedLog

TOLERANCE = 1e-8


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    rng = np.random.default_rng(20261205)
    n_persons, n_items = 3000, 30
    theta = rng.normal(size=n_persons)
    a, b = rng.uniform(0.7, 2.0, n_items), rng.normal(size=n_items)
    answers = (rng.random((n_persons, n_items)) < expit(a * (theta[:, None] - b))).astype(int)
    person, item = np.nonzero(rng.random((n_persons, n_items)) < 0.5)
    day = rng.integers(0, 3, person.size)
    root = tmp_path_factory.mktemp("log")
    for k in range(3):
        rows = day == k
        folder = root / f"date=2026-12-0{k + 1}"
        folder.mkdir()
        pq.write_table(pa.table({
            "person_id": [f"p{i}" for i in person[rows]],
            "item_id": [f"i{j:02d}" for j in item[rows]],
            "response": answers[person[rows], item[rows]]}), folder / "part-0.parquet")
    return root


def assert_same_bank(one, other):
    assert [item["id"] for item in other["items"]] == [item["id"] for item in one["items"]]
    for mine, theirs in zip(one["items"], other["items"], strict=True):
        for key in ("a", "b"):
            assert theirs[key] == pytest.approx(mine[key], abs=TOLERANCE)


@pytest.mark.parametrize("m_step", ["mirt", "newton"])
def test_the_workers_calibration_equals_one_process(dask_client, log_dir, m_step):
    client = dask_client
    one, fitted_one = calibrate_document(read_parquet_log(log_dir), "2pl", m_step=m_step,
                                         fit=False)
    log = PartitionedLog.open(client, log_dir, partition_rows=700)
    assert log.item_ids == [item["id"] for item in one["items"]]   # first-appearance order
    other, fitted_other = calibrate_document(log, "2pl", m_step=m_step, fit=False,
                                             cluster=client)
    assert fitted_other.n_persons_ == 3000           # persons met across the three files
    assert abs(fitted_other.log_likelihood_ - fitted_one.log_likelihood_) <= TOLERANCE
    assert fitted_other.n_iter_ == fitted_one.n_iter_
    assert_same_bank(one, other)


def test_a_worker_killed_mid_calibration_is_made_good_from_the_files(own_dask_client, log_dir):
    client = own_dask_client
    log = PartitionedLog.open(client, log_dir, partition_rows=700)
    partitions = log.partitions(np.arange(len(log.item_ids)), np.full(len(log.item_ids), 2))
    reference = MMLCalibrator("2pl", m_step="newton").fit(partitions)
    killed = []

    def kill_one_worker(cycle, *_):
        if cycle == 3 and not killed:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    again = MMLCalibrator("2pl", m_step="newton", progress=kill_one_worker).fit(partitions)
    assert killed
    assert killed[0] not in client.run(os.getpid).values()      # that worker is gone
    assert again.log_likelihood_ == reference.log_likelihood_
    for mine, theirs in zip(reference.blocks_, again.blocks_, strict=True):
        np.testing.assert_array_equal(theirs.eta, mine.eta)


def test_a_person_who_answered_an_item_twice_across_files_is_refused(dask_client, tmp_path):
    client = dask_client
    for day, response in (("1", 1), ("2", 0)):
        folder = tmp_path / f"date={day}"
        folder.mkdir()
        pq.write_table(pa.table({"person_id": ["ann", "bob"], "item_id": ["q1", "q1"],
                                 "response": [response, 1]}), folder / "part.parquet")
    log = PartitionedLog.open(client, tmp_path)
    with pytest.raises(DataFormatError, match="person 'ann' answered item 'q1' twice"):
        log.partitions([0], [2])


def test_a_bad_response_is_reported_from_the_worker(dask_client, tmp_path):
    client = dask_client
    pq.write_table(pa.table({"person_id": ["ann"], "item_id": ["q1"], "response": ["x"]}),
                   tmp_path / "bad.parquet")
    with pytest.raises(DataFormatError, match="response 'x' is not a category"):
        PartitionedLog.open(client, tmp_path / "bad.parquet")


def test_a_folder_without_parquet_data_is_refused(dask_client, tmp_path):
    client = dask_client
    (tmp_path / "notes.txt").write_text("nothing")
    with pytest.raises(DataFormatError):
        PartitionedLog.open(client, tmp_path / "missing")
