"""`irtcat calibrate` on a Parquet response log (itembank/parquet_io.py): the same log
as a long CSV gives the same bank, and bad data get exit 2 with one line.

References: tests/data/SAT12_keyed_sparse30.csv (SAT12 with 30 % of the cells
emptied) read as a long CSV is the comparison; tests/data/refs/LSAT7__2pl.json is mirt's
LSAT7 2PL (logLik -2658.805)."""

import json
import pathlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from irtcat.api.cli import main

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def long_frame(wide_csv):
    """The long log (person_id, item_id, response) of a wide CSV, empty cells dropped."""
    wide = pd.read_csv(wide_csv, dtype={"person_id": str})
    long = wide.melt(id_vars="person_id", var_name="item_id", value_name="response")
    return long.dropna(subset=["response"]).astype({"response": int}).reset_index(drop=True)


def write_partitioned(frame, folder, parts=3):
    """`frame` as a hive-partitioned dataset: ``day=k/part.parquet`` for k < parts, the
    rows dealt out in turn (so every partition holds persons of every kind)."""
    for day in range(parts):
        target = folder / f"day={day}"
        target.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame.iloc[day::parts], preserve_index=False),
                       target / "part.parquet")
    return folder


def bank(capsys, tmp_path, *argv, name):
    out = tmp_path / f"{name}.json"
    status, _, err = run(capsys, "calibrate", *argv, "--out", out, "--quiet")
    assert status == 0, err
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def sat12_long():
    return long_frame(DATA / "SAT12_keyed_sparse30.csv")


def test_a_partitioned_dataset_calibrates_as_its_long_csv(capsys, tmp_path, sat12_long):
    csv_path = tmp_path / "log.csv"
    sat12_long.to_csv(csv_path, index=False)
    folder = write_partitioned(sat12_long, tmp_path / "log")
    from_csv = bank(capsys, tmp_path, csv_path, "--model", "2pl", name="csv")
    from_parquet = bank(capsys, tmp_path, folder, "--model", "2pl", name="parquet")
    assert from_parquet["calibration"]["n_persons"] == from_csv["calibration"]["n_persons"]
    # the same responses in another order: sums over persons in another order only
    assert from_parquet["calibration"]["loglik"] == pytest.approx(
        from_csv["calibration"]["loglik"], abs=1e-6)
    by_id = {item["id"]: item for item in from_csv["items"]}
    assert sorted(by_id) == sorted(item["id"] for item in from_parquet["items"])
    for item in from_parquet["items"]:
        assert item["a"] == pytest.approx(by_id[item["id"]]["a"], abs=1e-6)
        assert item["b"] == pytest.approx(by_id[item["id"]]["b"], abs=1e-6)


def test_one_file_with_integer_ids_and_null_answers(capsys, tmp_path):
    # LSAT7 with numeric person ids and one null response per person added (a null is no
    # response): mirt's 2PL logLik -2658.805 (refs/LSAT7__2pl.json)
    frame = long_frame(DATA / "LSAT7.csv")
    frame["person_id"] = frame["person_id"].str.removeprefix("p").astype("int64")   # p0001 -> 1
    table = pa.Table.from_pandas(frame, preserve_index=False)
    persons = frame["person_id"].unique()
    nulls = pa.table({"person_id": pa.array(persons),
                      "item_id": pa.array(["Item.9"] * len(persons), table.schema.field(1).type),
                      "response": pa.array([None] * len(persons), pa.int64())})
    path = tmp_path / "lsat7.parquet"
    pq.write_table(pa.concat_tables([table, nulls]), path)
    document = bank(capsys, tmp_path, path, "--model", "2pl", name="lsat7")
    reference = json.loads((DATA / "refs" / "LSAT7__2pl.json").read_text())
    assert [item["id"] for item in document["items"]] == [f"Item.{k}" for k in range(1, 6)]
    assert document["calibration"]["loglik"] == pytest.approx(reference["logLik"], abs=0.01)


@pytest.mark.parametrize("columns, message", [
    ({"person_id": ["p1"], "item": ["i1"], "response": [1]}, "no column 'item_id'"),
    ({"person_id": ["p1", "p1"], "item_id": ["i1", "i2"], "response": [1, 7.5]},
     "row 2: response '7.5' is not a category"),
    ({"person_id": ["p1", None], "item_id": ["i1", "i1"], "response": [1, 0]},
     "row 2: empty person_id"),
    ({"person_id": ["p1", "p1"], "item_id": ["i1", "i1"], "response": [1, 0]},
     "answered item 'i1' twice"),
])
def test_bad_logs_exit_2_with_one_line(capsys, tmp_path, columns, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(columns), path)
    status, out, err = run(capsys, "calibrate", path, "--model", "2pl")
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_a_folder_without_parquet_data_exits_2(capsys, tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "notes.txt").write_text("not parquet")
    status, out, err = run(capsys, "calibrate", tmp_path / "log", "--model", "2pl")
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1, err


def test_a_dataset_behind_an_fsspec_uri(capsys, tmp_path, sat12_long):
    # fsspec's in-memory file system stands for a remote one (s3://, gcs://): the same
    # dataset read through the URI gives the bank the local folder gives
    import fsspec

    folder = write_partitioned(sat12_long, tmp_path / "log")
    memory = fsspec.filesystem("memory")
    for part in sorted(folder.rglob("*.parquet")):
        memory.pipe(f"/irtcat-log/{part.relative_to(folder).as_posix()}", part.read_bytes())
    try:
        local = bank(capsys, tmp_path, folder, "--model", "2pl", "--no-fit", name="local")
        remote = bank(capsys, tmp_path, "memory://irtcat-log", "--model", "2pl", "--no-fit",
                      name="remote")
    finally:
        memory.rm("/irtcat-log", recursive=True)
    assert remote["items"] == local["items"]
