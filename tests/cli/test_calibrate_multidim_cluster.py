"""`irtcat calibrate --factors | --group | --fixed-method` with IRTCAT_DASK_SCHEDULER
naming a Dask cluster (a LocalCluster of two worker processes) write the bank of the
same command run in one process: every number within 1e-8 (issue 19), all else equal.
The data are seeded simulations (and tests/data/verbal.csv for the groups)."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from irtcat.api.cli import main
from irtcat.calibration.partitions import DaskPartitions

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
TOLERANCE = 1e-8


@pytest.fixture(scope="module")
def address(dask_client):
    return dask_client.scheduler.address     # tests/conftest.py's LocalCluster


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """wide.csv: 300 persons, 8 2PL items on two factors (r = 0.4); anchors.json: the
    generating parameters of items 1-5, in the bank format."""
    folder = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(1905)
    theta = rng.multivariate_normal([0, 0], [[1, 0.4], [0.4, 1]], 300)
    a, b = rng.uniform(0.8, 1.8, 8), rng.normal(0, 1, 8)
    dimension = np.where(np.arange(8) < 4, 0, 1)
    responses = (rng.random((300, 8)) < 1 / (1 + np.exp(-a * (theta[:, dimension] - b))))
    frame = pd.DataFrame(responses.astype(int), columns=[f"i{j}" for j in range(1, 9)])
    frame.insert(0, "person_id", [f"p{n:03d}" for n in range(300)])
    frame.to_csv(folder / "wide.csv", index=False)
    items = [{"id": f"i{j + 1}", "model": "2pl", "a": float(a[j]), "b": float(b[j])}
             for j in range(5)]
    (folder / "anchors.json").write_text(json.dumps({
        "format": "irtcat-bank/1", "metric": "logistic",
        "population": {"mean": 0.0, "sd": 1.0}, "items": items}))
    return folder


def calibrate(capsys, monkeypatch, scheduler, out, *argv):
    """The bank `irtcat calibrate ARGV` writes with IRTCAT_DASK_SCHEDULER=`scheduler`
    (None: unset), having checked that its sums were taken on a cluster just then."""
    if scheduler is None:
        monkeypatch.delenv("IRTCAT_DASK_SCHEDULER", raising=False)
    else:
        monkeypatch.setenv("IRTCAT_DASK_SCHEDULER", scheduler)
    sums, reduce = [], DaskPartitions.reduce

    def counted(self, function, *shared):
        sums.append(function.__name__)
        return reduce(self, function, *shared)

    monkeypatch.setattr(DaskPartitions, "reduce", counted)
    status = main(["calibrate", *map(str, argv), "--out", str(out), "--quiet"])
    _, err = capsys.readouterr()
    assert status == 0, err
    assert bool(sums) == (scheduler is not None)
    return json.loads(out.read_text())


def assert_same(here, there, path="document"):
    """Every number within TOLERANCE, everything else equal (time taken aside)."""
    if isinstance(here, dict):
        assert sorted(here) == sorted(there), path
        for key in here:
            if key != "seconds":
                assert_same(here[key], there[key], f"{path}.{key}")
    elif isinstance(here, list):
        assert len(here) == len(there), path
        for index, (mine, theirs) in enumerate(zip(here, there, strict=True)):
            assert_same(mine, theirs, f"{path}[{index}]")
    elif isinstance(here, float):
        assert abs(there - here) <= TOLERANCE, path
    else:
        assert there == here, path


@pytest.mark.parametrize("options", [
    ("--factors", "F1 = i1-i4; F2 = i5-i8; COV = F1*F2", "--se"),
    ("--anchor", "{folder}/anchors.json", "--fixed-method", "mwu"),
], ids=["factors", "fixed-method"])
def test_the_cluster_writes_the_one_process_bank(address, folder, capsys, monkeypatch,
                                                 options):
    argv = [folder / "wide.csv", "--model", "2pl",
            *(option.format(folder=folder) for option in options)]
    here = calibrate(capsys, monkeypatch, None, folder / "here.json", *argv)
    there = calibrate(capsys, monkeypatch, address, folder / "there.json", *argv)
    assert_same(here, there)


def test_groups_on_the_cluster_write_the_one_process_bank(address, tmp_path, capsys,
                                                          monkeypatch):
    argv = [DATA / "verbal.csv", "--model", "2pl", "--group", "group", "--invariance",
            "slopes,intercepts,free_means", "--no-fit"]
    here = calibrate(capsys, monkeypatch, None, tmp_path / "here.json", *argv)
    there = calibrate(capsys, monkeypatch, address, tmp_path / "there.json", *argv)
    assert_same(here, there)


def test_a_scheduler_that_cannot_be_named_exits_2_with_one_line(folder, capsys,
                                                                 monkeypatch):
    monkeypatch.setenv("IRTCAT_DASK_SCHEDULER", "local:0")
    status = main(["calibrate", str(folder / "wide.csv"), "--model", "2pl", "--factors",
                   "F1 = i1-i4; F2 = i5-i8"])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and "local:0" in err and "Traceback" not in err
