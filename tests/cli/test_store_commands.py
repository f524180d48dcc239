"""`irtcat db|standards|bank|responses` against the store of IRTCAT_DATABASE_URL.

Run on SQLite and, when a server is given, PostgreSQL (the `database_url`
fixture). Expected values: the documents imported (round trips), the demo
framework's contents, and the bad-input contract (exit 2, one line, nothing
written).
"""

import csv
import json
import pathlib

import pytest

from irtcat.itembank.database import Database, current_revision, head_revision
from irtcat.itembank.store import Store

DEMO = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo"


@pytest.fixture
def store(database_url):
    """The store the commands write to, opened beside them."""
    database = Database(database_url)
    yield Store(database)
    database.dispose()


def test_db_upgrade_brings_an_empty_database_to_head(irtcat, store):
    status, _, err = irtcat("db", "upgrade")
    assert status == 0 and err.strip().endswith(head_revision())
    assert current_revision(store.database) == head_revision()
    status, _, err = irtcat("db", "upgrade")
    assert status == 0 and "up to date" in err


def test_the_demo_framework_and_items_import_and_export(irtcat, tmp_path):
    framework = json.loads((DEMO / "framework.json").read_text())
    items = json.loads((DEMO / "items.json").read_text())
    assert irtcat("standards", "import", DEMO / "framework.json")[0] == 0
    status, out, _ = irtcat("standards", "list")
    assert status == 0
    listed = {s["code"]: s for s in json.loads(out)["standards"]}
    assert set(listed) == {s["code"] for s in framework["standards"]}
    status, _, err = irtcat("bank", "import", DEMO / "items.json")
    assert status == 0
    assert err.startswith(f"{len(items['items'])} items created, 0 updated, 0 unchanged")
    status, _, err = irtcat("bank", "import", DEMO / "items.json")
    assert err.startswith(f"0 items created, 0 updated, {len(items['items'])} unchanged")
    out_path = tmp_path / "export.json"
    assert irtcat("bank", "export", "--out", out_path)[0] == 0
    exported = json.loads(out_path.read_text())
    # The items were imported without parameters or population: the store adds the
    # default scale and keeps everything else as given.
    assert exported["items"] == items["items"]
    assert exported["population"] == {"mean": 0.0, "sd": 1.0}


@pytest.mark.parametrize("argv, message", [
    (["bank", "export", "--standard", "NOPE"], "no standard 'NOPE'"),
    (["bank", "export", "--version", "2"], "a version number needs a standard"),
    (["bank", "export", "--standard", "AI-ML", "--version", "0"], "a version number is"),
    (["bank", "export", "--standard", "AI-ML", "--version", "1", "--published"],
     "a version number or the published versions, not both"),
    (["bank", "publish", "--standard", "AI-ML"], "standard 'AI-ML' has no bank version"),
    (["bank", "versions", "--standard", "NOPE"], "no standard 'NOPE'"),
    (["responses", "export", "--standard", "NOPE"], "no standard 'NOPE'"),
    (["bank", "calibrate", "--standard", "AI-ML"], "has no responses to calibrate"),
    (["standards", "import", DEMO / "items.json"], "irtcat-framework/1"),
])
def test_bad_requests_exit_2_with_one_line(irtcat, argv, message):
    irtcat("standards", "import", DEMO / "framework.json")
    irtcat("bank", "import", DEMO / "items.json")
    status, out, err = irtcat(*argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_an_import_with_one_bad_item_exits_2_and_writes_nothing(irtcat, tmp_path, store):
    irtcat("standards", "import", DEMO / "framework.json")
    document = json.loads((DEMO / "items.json").read_text())
    document["items"][7]["key"] = {"correct": "Z"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    status, _, err = irtcat("bank", "import", bad)
    assert status == 2
    assert f"item {document['items'][7]['id']!r}: key 'Z' is not among the options" in err
    assert store.standards() and not [s for s in store.standards()
                                      if store.item_records(s["code"])]


def test_a_failed_export_leaves_no_file(irtcat, tmp_path):
    irtcat("standards", "import", DEMO / "framework.json")
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    status, _, _ = irtcat("responses", "export", "--standard", "NOPE",
                          "--out", out_folder / "log.csv")
    assert status == 2 and list(out_folder.iterdir()) == []


def test_calibrate_from_the_log_then_publish_and_roll_back(irtcat, store, rng, tmp_path):
    from irtcat.engine import ItemParameters
    from irtcat.engine.simulate import simulate_responses

    irtcat("standards", "import", DEMO / "framework.json")
    irtcat("bank", "import", DEMO / "items.json")
    items = [r.id for r in store.item_records("AI-RAI") if r.model == "2pl"]
    params = ItemParameters.create("2pl", rng.lognormal(0, 0.25, len(items)),
                                   rng.normal(0, 1, len(items)))
    answers = simulate_responses(rng.standard_normal(800), params, rng)
    store.add_responses([{"session_id": f"s{i}", "learner_id": f"l{i}", "item_id": item,
                          "raw_response": "?", "score": int(answers[i, j])}
                         for i in range(800) for j, item in enumerate(items)])
    log_path = tmp_path / "log.csv"
    assert irtcat("responses", "export", "--standard", "AI-RAI", "--out", log_path)[0] == 0
    with log_path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["person_id", "item_id", "response"] and len(rows) == 800 * len(items) + 1

    for expected_version in (1, 2):
        status, _, err = irtcat("bank", "calibrate", "--standard", "AI-RAI", "--model", "2pl",
                                "--no-se")
        assert status == 0 and f"draft version {expected_version} from" in err
        assert irtcat("bank", "publish", "--standard", "AI-RAI")[0] == 0
    status, out, _ = irtcat("bank", "versions", "--standard", "AI-RAI")
    lines = out.splitlines()
    assert len(lines) == 3 and "*" in lines[2] and "*" not in lines[1]
    assert irtcat("bank", "publish", "--standard", "AI-RAI", "--version", "1")[0] == 0
    assert store.delivery_bank("AI-RAI").number == 1
    status, out, _ = irtcat("bank", "export", "--standard", "AI-RAI", "--version", "2")
    assert status == 0 and len(json.loads(out)["items"]) == len(items)
    # --published: the published version's items only (the calibrated 2PL ones, version 1
    # after the rollback), where a plain export has every item of the standard.
    status, out, _ = irtcat("bank", "export", "--standard", "AI-RAI", "--published")
    published = json.loads(out)["items"]
    assert status == 0 and [item["id"] for item in published] == items
    assert all("a" in item and "b" in item for item in published)
    status, out, _ = irtcat("bank", "export", "--standard", "AI-RAI")
    assert len(json.loads(out)["items"]) == len(store.item_records("AI-RAI")) > len(items)
    # The file written by `responses export` calibrates through `irtcat calibrate` too.
    status, out, _ = irtcat("calibrate", log_path, "--model", "2pl", "--quiet", "--no-fit")
    assert status == 0 and len(json.loads(out)["items"]) == len(items)
    # ... and so does its Parquet export, to the same bank: the same log in the same order
    parquet_path = tmp_path / "log.parquet"
    assert irtcat("responses", "export", "--standard", "AI-RAI", "--format", "parquet",
                  "--out", parquet_path)[0] == 0
    status, from_parquet, _ = irtcat("calibrate", parquet_path, "--model", "2pl", "--quiet",
                                     "--no-fit")
    assert status == 0 and json.loads(from_parquet)["items"] == json.loads(out)["items"]
    status, out, err = irtcat("responses", "export", "--format", "parquet")
    assert status == 2 and out == "" and "--out" in err and len(err.strip().splitlines()) == 1


def test_responses_import_appends_a_csv_all_or_nothing(irtcat, store, tmp_path):
    irtcat("standards", "import", DEMO / "framework.json")
    irtcat("bank", "import", DEMO / "items.json")
    good = tmp_path / "good.csv"
    good.write_text("person_id,DE-001,DE-052\np1,1,2\np2,0,\n")      # DE-052: scored 0..2
    status, _, err = irtcat("responses", "import", good)
    assert status == 0 and err.startswith("3 responses of 2 persons")
    assert store.response_log("AI-DE").person_ids == ["import:p1", "import:p2"]
    for text, message in [("person_id,DE-001\np3,2\n", "item 'DE-001': response 2 is beyond"),
                          ("person_id,XX\np3,1\n", "item 'XX' is not in the store"),
                          ("person_id,DE-001\np1,1\n", "session 'import:p1' is already")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        status, _, err = irtcat("responses", "import", bad)
        assert status == 2 and message in err
    assert len(store.response_log().response) == 3
