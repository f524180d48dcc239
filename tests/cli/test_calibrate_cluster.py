"""`irtcat calibrate --scheduler`: the E-steps on a Dask cluster (a LocalCluster of two
processes shared by the module), and the refusals (exit 2, one line).

The reference of every comparison is the same command in this process: the cluster adds
the same partitions' sums in a fixed tree, so every number of the bank document (the
parameters, their standard errors, the fit, logLik) agrees within 1e-8; only the
seconds differ."""

import json
import pathlib

import pytest
from command_line import run

from irtcat.api import cluster_option

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
LSAT7 = DATA / "LSAT7.csv"
SCIENCE = DATA / "Science.csv"


@pytest.fixture(scope="module")
def address(dask_client):
    return dask_client.scheduler.address


@pytest.fixture(autouse=True)
def no_scheduler_in_the_environment(monkeypatch):
    monkeypatch.delenv("IRTCAT_DASK_SCHEDULER", raising=False)


def calibrate(capsys, tmp_path, *argv):
    """(exit status, bank document or None, stderr) of `irtcat calibrate ARGV --out`."""
    out = tmp_path / "bank.json"
    out.unlink(missing_ok=True)
    status, stdout, err = run(capsys, "calibrate", *argv, "--out", out)
    assert stdout == ""
    return status, json.loads(out.read_text()) if status == 0 else None, err


def one_error_line(err):
    return err.count("\n") == 1 and err.startswith("irtcat: error: ") and "Traceback" not in err


@pytest.mark.parametrize("data, options", [(LSAT7, ("--model", "2pl", "--se")),
                                           (SCIENCE, ("--model", "graded"))])
def test_the_cluster_gives_the_document_of_one_process(capsys, tmp_path, address, data,
                                                       options, assert_same_result):
    options = (*options, "--quiet", "--partition-rows", "10")    # a few partitions each
    status, alone, _ = calibrate(capsys, tmp_path, data, *options)
    assert status == 0
    status, spread, _ = calibrate(capsys, tmp_path, data, *options, "--scheduler", address)
    assert status == 0
    assert_same_result(spread, alone, 1e-8)


def test_the_environment_names_the_scheduler_and_the_summary_is_as_in_one_process(
        capsys, tmp_path, address, monkeypatch, assert_same_result):
    status, alone, summary_alone = calibrate(capsys, tmp_path, LSAT7, "--model", "2pl")
    monkeypatch.setenv("IRTCAT_DASK_SCHEDULER", address)
    status, spread, summary = calibrate(capsys, tmp_path, LSAT7, "--model", "2pl")
    assert status == 0
    assert_same_result(spread, alone, 1e-8)
    # the last line: "5 items, 1000 persons: loglik ..., converged in N cycles, S s; ..."
    assert summary.splitlines()[-1].split(" s; ")[0].rsplit(", ", 1)[0] == \
        summary_alone.splitlines()[-1].split(" s; ")[0].rsplit(", ", 1)[0]


def test_scheduler_local_starts_a_cluster_for_the_run(capsys, tmp_path, assert_same_result):
    status, alone, _ = calibrate(capsys, tmp_path, LSAT7, "--model", "2pl", "--quiet")
    status, spread, err = calibrate(capsys, tmp_path, LSAT7, "--model", "2pl", "--quiet",
                                    "--scheduler", "local")
    assert status == 0, err
    assert_same_result(spread, alone, 1e-8)


def test_a_parquet_log_is_read_by_the_workers(capsys, tmp_path, address):
    # LSAT7's answers in two files by day; each person's five answers cut across both.
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    wide = pd.read_csv(LSAT7)
    long = wide.melt(id_vars=wide.columns[0], var_name="item_id", value_name="response")
    long.columns = ["person_id", "item_id", "response"]
    day = np.arange(len(long)) % 2
    for k in (0, 1):
        (tmp_path / "log" / f"day={k}").mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(long[day == k], preserve_index=False),
                       tmp_path / "log" / f"day={k}" / "part.parquet")
    status, alone, _ = calibrate(capsys, tmp_path, tmp_path / "log", "--model", "2pl",
                                 "--quiet")
    assert status == 0
    status, spread, err = calibrate(capsys, tmp_path, tmp_path / "log", "--model", "2pl",
                                    "--quiet", "--scheduler", address, "--partition-rows",
                                    "300")
    assert status == 0, err
    assert spread["calibration"]["n_persons"] == alone["calibration"]["n_persons"] == 1000
    assert spread["calibration"]["loglik"] == pytest.approx(alone["calibration"]["loglik"],
                                                            abs=1e-4)   # rounded to 4 places
    for mine, theirs in zip(alone["items"], spread["items"], strict=True):
        assert theirs["id"] == mine["id"]
        for key in ("a", "b"):
            assert theirs[key] == pytest.approx(mine[key], abs=1e-8)
    # The workers hold the answers: what needs them all in one place is not computed.
    assert "empirical" not in spread["calibration"]["reliability"]
    assert spread["calibration"]["fit"] == ("item fit not computed: the data stay on the "
                                            "cluster's workers")


@pytest.mark.parametrize("options, message", [
    (("--scheduler", "nonsense"), "scheduler 'nonsense': missing port number"),
    (("--scheduler", "local:0"), "expected local:N with N >= 1"),
    (("--scheduler", "tcp://127.0.0.1:1"), "no Dask scheduler answers at tcp://127.0.0.1:1"),
])
def test_a_scheduler_that_cannot_serve_exits_2_with_one_line(capsys, tmp_path, monkeypatch,
                                                            options, message):
    monkeypatch.setattr(cluster_option, "CONNECT_SECONDS", 0.5)   # nothing listens on port 1
    status, document, err = calibrate(capsys, tmp_path, LSAT7, "--model", "2pl", *options)
    assert status == 2 and document is None
    assert message in err and one_error_line(err)
