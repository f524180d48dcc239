"""`irtcat score` partition by partition: long CSV and Parquet logs, here and on a Dask
cluster, and its bad input.

Expected values: the scores CSV of the wide LSAT7 file scored at once (the command as
it was before partitions): the same persons, in the same order, with the same six
decimals, whatever the format, partition size or cluster.
"""

import csv
import json
import pathlib

import pytest
from command_line import run

from irtcat.itembank import read_response_log
from irtcat.itembank.parquet_io import write_parquet_log

LSAT7 = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo" / "LSAT7.csv"


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """(long CSV, Parquet file) of LSAT7's answers."""
    folder = tmp_path_factory.mktemp("logs")
    long_csv = folder / "long.csv"
    with open(LSAT7, newline="") as source, \
            long_csv.open("w", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(["person_id", "item_id", "response"])
        for row in csv.DictReader(source):
            person = row.pop("person_id")
            writer.writerows([person, item, value] for item, value in row.items())
    parquet = folder / "log.parquet"
    write_parquet_log(read_response_log(long_csv), parquet)
    return long_csv, parquet


@pytest.mark.parametrize("method", [("eap",), ("wle",), ("pv", "--draws", "2", "--seed", "3")])
def test_partitions_write_the_csv_of_a_run_at_once(capsys, monkeypatch, logs, dask_client,
                                                   lsat7_data_path, lsat7_bank_path, method):
    # Expected: the wide file scored at once (no partition option, no scheduler).
    scheduler = dask_client.scheduler.address      # the module's cluster, tests/conftest.py
    monkeypatch.delenv("IRTCAT_DASK_SCHEDULER", raising=False)
    common = ("--bank", lsat7_bank_path, "--method", *method)
    status, expected, err = run(capsys, "score", lsat7_data_path, *common)
    assert status == 0 and err == "" and expected.count("\n") == 1001
    long_csv, parquet = logs
    for data, more in ((long_csv, ()), (parquet, ("--partition-rows", "77")),
                       (long_csv, ("--partition-rows", "300", "--scheduler", scheduler)),
                       (lsat7_data_path, ("--partition-rows", "128", "--scheduler", scheduler))):
        status, out, err = run(capsys, "score", data, *common, *more)
        assert (status, err) == (0, "")
        assert out == expected, (data.name, more)


def test_a_folder_is_read_as_parquet(capsys, tmp_path, logs, lsat7_bank_path):
    # Expected: the Parquet file's scores, from the folder holding it (--format default).
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(logs[1].read_bytes())
    _, from_file, _ = run(capsys, "score", logs[1], "--bank", lsat7_bank_path)
    status, from_folder, err = run(capsys, "score", folder, "--bank", lsat7_bank_path)
    assert (status, err) == (0, "") and from_folder == from_file


def test_bad_input_exits_2_with_one_line(capsys, tmp_path, logs, lsat7_bank_path):
    # Expected: FORMATS.md: exit 2 and one line on stderr; the messages of a wide file for
    # an item the bank does not hold.
    other = tmp_path / "other.csv"
    other.write_text(logs[0].read_text().replace("Item.5", "Item.6"))
    bank = tmp_path / "mbank.json"
    bank.write_text(json.dumps({"format": "irtcat-bank/1", "dimensions": ["F1", "F2"],
                                "items": []}))
    cases = [((logs[0], "--bank", lsat7_bank_path, "--partition-rows", "0"), "--partition-rows"),
             ((tmp_path / "none.parquet", "--bank", lsat7_bank_path), "none.parquet"),
             ((other, "--bank", lsat7_bank_path), "item 'Item.6' of the data is not in the bank"),
             ((logs[0], "--bank", bank, "--scheduler", "local"), "unidimensional bank"),
             ((logs[0], "--bank", lsat7_bank_path, "--scheduler", "local:x"), "local:N")]
    for argv, message in cases:
        status, out, err = run(capsys, "score", *argv)
        assert status == 2 and out == "", argv
        assert err.count("\n") == 1 and err.startswith("irtcat: error:") and message in err
