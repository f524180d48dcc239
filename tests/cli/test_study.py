"""`irtcat study`: the summary here and on a Dask cluster, its CSV, bad input (exit 2,
one line).

Expected values: the study run in this process (a cluster must give the same summary),
the JSON summary itself (the CSV is its table), the inputs we wrote (names, examinees,
seed, unit), and the one-line contract of spec/FORMATS.md.
"""

import csv
import json

import numpy as np
import pytest
from command_line import run

N_ITEMS = 30
DESIGNS = {"base": {"stop": {"min_items": 5, "max_items": 10, "se": 0.45}},
           "designs": [{"name": "mfi"},
                       {"name": "fixed-8", "config": {"stop": {"min_items": 8,
                                                                "max_items": 8}}},
                       {"name": "cut", "config": {"stop": {"classification": {"cut": 0.5}}}}]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(bank path, designs path): 30 2PL items, seeded; DESIGNS."""
    folder = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(4)
    items = [{"id": f"I{j:02d}", "model": "2pl", "a": round(float(rng.lognormal(0, 0.25)), 3),
              "b": round(float(rng.normal()), 3)} for j in range(N_ITEMS)]
    bank = folder / "bank.json"
    bank.write_text(json.dumps({"format": "irtcat-bank/1", "items": items}))
    designs = folder / "designs.json"
    designs.write_text(json.dumps(DESIGNS))
    return bank, designs


def study(capsys, files, *more):
    bank, designs = files
    return run(capsys, "study", "--bank", bank, "--designs", designs, "--examinees", 240,
               "--unit", 100, "--seed", 5, *more)


def test_the_cluster_gives_the_summary_of_one_process(capsys, files, dask_client,
                                                      monkeypatch):
    # Expected: the in-process summary, design for design; the run's own figures say
    # where it ran (0 workers here, the cluster's 2 there), through --scheduler or
    # $IRTCAT_DASK_SCHEDULER.
    monkeypatch.delenv("IRTCAT_DASK_SCHEDULER", raising=False)
    scheduler = dask_client.scheduler.address      # the module's cluster, tests/conftest.py
    status, out, err = study(capsys, files)
    assert status == 0 and err == ""
    here = json.loads(out)
    status, out, _ = study(capsys, files, "--scheduler", scheduler)
    assert status == 0
    there = json.loads(out)
    monkeypatch.setenv("IRTCAT_DASK_SCHEDULER", scheduler)
    status, out, _ = study(capsys, files)
    assert status == 0
    from_environment = json.loads(out)
    assert (here["workers"], there["workers"], from_environment["workers"]) == (0, 2, 2)
    for summary in (there, from_environment):
        assert summary["designs"] == here["designs"]
    assert {key: here[key] for key in ("examinees", "seed", "unit")} == \
        {"examinees": 240, "seed": 5, "unit": 100}
    assert [entry["name"] for entry in here["designs"]] == ["mfi", "fixed-8", "cut"]
    fixed = here["designs"][1]
    assert fixed["min_length"] == fixed["max_length"] == 8            # a fixed length
    assert fixed["exposure"]["mean"] == pytest.approx(8 / N_ITEMS, abs=1e-4)   # L / J


def test_the_csv_is_the_summary_table(capsys, tmp_path, files):
    # Expected: one row per design of the JSON summary's figures.
    table = tmp_path / "summary.csv"
    status, out, _ = study(capsys, files, "--csv", table)
    assert status == 0
    summary = json.loads(out)
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [row["name"] for row in rows] == ["mfi", "fixed-8", "cut"]
    for row, entry in zip(rows, summary["designs"], strict=True):
        assert float(row["rmse"]) == entry["rmse"] and float(row["bias"]) == entry["bias"]
        assert float(row["mean_se"]) == entry["mean_se"]
        assert float(row["exposure_max"]) == entry["exposure"]["max"]
        assert int(row["violations"]) == sum(entry["violations"][key]
                                             for key in ("content", "length"))
    assert rows[0]["classification_accuracy"] == ""
    assert float(rows[2]["classification_accuracy"]) == \
        summary["designs"][2]["classification"]["accuracy"]


@pytest.mark.parametrize("designs, more, message", [
    ("not json", (), "designs.json"),
    ({"designs": [{"name": "a"}, {"name": "a"}]}, (), "the name 'a' is used twice"),
    ({"designs": [{"name": "a", "config": {"stop": {"min_items": 50}}}]}, (),
     "designs[0] ('a')"),
    ({"designs": [{"name": "a"}]}, ("--examinees", "0"), "--examinees"),
    ({"designs": [{"name": "a"}]}, ("--unit", "0"), "--unit"),
    ({"designs": [{"name": "a"}]}, ("--scheduler", "local:0"), "local:N with N >= 1"),
])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, files, designs, more, message):
    # Expected: FORMATS.md: exit status 2, one line on stderr naming the fault, no output.
    path = tmp_path / "designs.json"
    path.write_text(designs if isinstance(designs, str) else json.dumps(designs))
    status, out, err = run(capsys, "study", "--bank", files[0], "--designs", path,
                           "--examinees", 10, *more)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("irtcat: error:")
    assert message in err


def test_a_multidimensional_bank_is_refused(capsys, tmp_path, files):
    # Expected: exit 2, one line: a study runs on a unidimensional bank.
    bank = tmp_path / "mbank.json"
    bank.write_text(json.dumps({"format": "irtcat-bank/1", "dimensions": ["F1", "F2"],
                                "items": []}))
    status, out, err = run(capsys, "study", "--bank", bank, "--designs", files[1])
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "unidimensional" in err
