"""Multidimensional banks in the store: import, list, version and export unchanged.

Expected values come from the documents imported (round trips: every number back to
1e-12), from the shared format's rules (a slope per factor, decreasing graded
intercepts, a symmetric positive definite correlation, standards among the factors)
and from the store's rules (all or nothing: a refused import writes nothing; the
command line exits 2 with one line).
"""

import copy
import json

import numpy as np
import pytest

from irtcat.api.cli import main
from irtcat.delivery.sessions import Delivery
from irtcat.itembank import DataFormatError
from irtcat.itembank.dimensions import check_multidimensional_bank, parse_dimensions
from irtcat.itembank.errors import NotFoundError

FACTORS = ["F1", "F2", "F3"]
FRAMEWORK = {"format": "irtcat-framework/1", "standards": [
    {"code": code, "title": f"Standard {code}", "parent": None,
     "levels": [{"name": "proficient", "cut": 0.0}]} for code in FACTORS]}


def multidimensional_bank(seed=18):
    """A 3-factor bank in the shared format, numbers with all their digits."""
    rng = np.random.default_rng(seed)
    correlation = [[1.0, 0.5131234567891234, 0.5981234567891234],
                   [0.5131234567891234, 1.0, 0.7151234567891234],
                   [0.5981234567891234, 0.7151234567891234, 1.0]]
    items = []
    for position in range(9):
        factor = position % 3
        slopes = [0.0, 0.0, 0.0]
        slopes[factor] = float(rng.uniform(0.6, 2.0))
        items.append({"id": f"i{position:02d}", "standard": FACTORS[factor], "model": "2pl",
                      "a": slopes, "d": float(rng.normal()),
                      "se": {"a": [float(rng.uniform(0.03, 0.1)) if j == factor else None
                                   for j in range(3)], "d": float(rng.uniform(0.03, 0.1))}})
    items.append({"id": "c1", "standard": "F1", "model": "3pl",
                  "a": [float(rng.uniform(0.3, 1)), float(rng.uniform(0.3, 1)), 0.0],
                  "d": float(rng.normal()), "c": 0.1812345678901234})
    items.append({"id": "g1", "standard": "F2", "model": "grm", "a": [0.0, 1.3123456789, 0.0],
                  "d": [2.1123456789, 0.3123456789, -1.4123456789]})
    items.append({"id": "p1", "standard": "F3", "model": "gpcm", "a": [0.0, 0.0, 0.9123456789],
                  "d": [0.5123456789, 0.8123456789, -0.2123456789]})
    return {"format": "irtcat-bank/1", "metric": "logistic",
            "population": {"mean": 0.0, "sd": 1.0},
            "dimensions": {"factors": FACTORS, "structure": "confirmatory",
                           "mean": [0.0, 0.0, 0.0], "correlation": correlation,
                           "se": {"correlation": [[None, 0.021, 0.019], [0.021, None, 0.016],
                                                  [0.019, 0.016, None]]},
                           "rotation": None},
            "items": items,
            "calibration": {"model": "2pl", "factors": "F1 = i00,i03,i06; F2 = i01,i04,i07",
                            "loglik": -1234.5678901234, "n_parameters": 29,
                            "converged": True, "n_persons": 3000}}


def numbers(value):
    """Every number in a JSON value, in a fixed order (object keys sorted); None kept."""
    if isinstance(value, dict):
        return [n for key in sorted(value) for n in numbers(value[key])]
    if isinstance(value, list):
        return [n for entry in value for n in numbers(entry)]
    if isinstance(value, bool) or isinstance(value, str):
        return []
    return [value]


def assert_same_numbers(left, right):
    a, b = numbers(left), numbers(right)
    assert [x is None for x in a] == [x is None for x in b]
    assert np.array([x for x in a if x is not None]) == pytest.approx(
        np.array([x for x in b if x is not None]), abs=1e-12, rel=0)


@pytest.fixture
def framework_store(store):
    store.import_framework(FRAMEWORK)
    return store


def test_import_then_export_gives_the_bank_back(framework_store):
    bank = multidimensional_bank()
    summary = framework_store.import_items(copy.deepcopy(bank))
    assert summary["created"] == 12
    assert [v["standard"] for v in summary["versions"]] == FACTORS
    exported = framework_store.export_bank()
    assert exported["dimensions"] == bank["dimensions"]
    assert exported["calibration"] == bank["calibration"]
    assert exported["population"] == bank["population"]
    by_id = {item["id"]: item for item in exported["items"]}
    assert set(by_id) == {item["id"] for item in bank["items"]}
    for item in bank["items"]:
        back = by_id[item["id"]]
        assert back["model"] == item["model"] and back["standard"] == item["standard"]
        assert {key for key in back if key != "status"} == set(item)
        assert_same_numbers(back, item)
    # one standard: its items, the same dimensions
    single = framework_store.export_bank("F2")
    assert single["dimensions"] == bank["dimensions"]
    assert {item["id"] for item in single["items"]} == {"i01", "i04", "i07", "g1"}


def test_listing_versions_and_reimport(framework_store):
    bank = multidimensional_bank()
    framework_store.import_items(copy.deepcopy(bank))
    listed = {item["id"]: item for item in framework_store.items("F3")}
    assert listed["p1"]["a"] == bank["items"][-1]["a"]
    assert listed["p1"]["d"] == bank["items"][-1]["d"]
    again = framework_store.import_items(copy.deepcopy(bank))
    assert again["versions"] == [] and again["unchanged"] == 12
    # a new correlation is a new version of every standard; the old one stays exportable
    changed = copy.deepcopy(bank)
    changed["dimensions"]["correlation"][0][1] = changed["dimensions"]["correlation"][1][0] = 0.4
    summary = framework_store.import_items(changed)
    assert summary["versions"] == [{"standard": code, "version": 2} for code in FACTORS]
    assert [row["version"] for row in framework_store.versions("F1")] == [1, 2]
    assert framework_store.export_bank("F1", 1)["dimensions"] == bank["dimensions"]
    assert framework_store.export_bank("F1")["dimensions"] == changed["dimensions"]


def test_a_unidimensional_import_cannot_mix_into_a_multidimensional_version(framework_store):
    framework_store.import_items(multidimensional_bank())
    single = {"format": "irtcat-bank/1", "items": [
        {"id": "u1", "standard": "F1", "model": "2pl", "a": 1.0, "b": 0.0}]}
    with pytest.raises(DataFormatError, match="does not fit its new unidimensional"):
        framework_store.import_items(single)
    assert all(item["id"] != "u1" for item in framework_store.items("F1"))


def malformed(change):
    bank = multidimensional_bank()
    change(bank)
    return bank


MALFORMED = {
    "slope list of the wrong length": (
        lambda bank: bank["items"][0].update(a=[1.0, 0.0]),
        "item 'i00': 'a' must be a list of 3 finite slopes"),
    "grm d not decreasing": (
        lambda bank: bank["items"][10].update(d=[0.3, 2.1, -1.4]),
        "item 'g1': a grm item's intercepts 'd' must decrease"),
    "correlation not symmetric": (
        lambda bank: bank["dimensions"]["correlation"][0].__setitem__(1, 0.2),
        "'dimensions.correlation' must be symmetric"),
    "correlation not positive definite": (
        lambda bank: bank["dimensions"].update(correlation=[[1.0, 0.9, -0.9], [0.9, 1.0, 0.9],
                                                            [-0.9, 0.9, 1.0]]),
        "'dimensions.correlation' must be positive definite"),
    "unknown factor in standard": (
        lambda bank: bank["items"][3].update(standard="F9"),
        "item 'i03': standard 'F9' is not one of the factors"),
    "b instead of d": (
        lambda bank: bank["items"][3].update(b=0.5),
        "item 'i03': a multidimensional item has intercepts d, not b"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_bank_is_refused_and_nothing_written(framework_store, case):
    change, message = MALFORMED[case]
    bank = malformed(change)
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(")):
        check_multidimensional_bank(bank)
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(")):
        framework_store.import_items(bank)
    with pytest.raises(NotFoundError):
        framework_store.export_bank()
    assert framework_store.versions("F1") == []


def test_the_dimensions_check_on_its_own():
    bank = multidimensional_bank()
    assert check_multidimensional_bank(bank) == bank["dimensions"]
    assert parse_dimensions({"format": "irtcat-bank/1", "items": []}) is None
    rotated = copy.deepcopy(bank["dimensions"])
    rotated["rotation"] = "varimax"
    with pytest.raises(DataFormatError, match="rotation must be null, or for an exploratory"):
        parse_dimensions({"dimensions": rotated})
    rotated["structure"] = "exploratory"
    assert parse_dimensions({"dimensions": rotated})["rotation"] == "varimax"


def test_command_line_exits_2_on_a_malformed_bank(database_url, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("IRTCAT_DATABASE_URL", database_url)
    framework = tmp_path / "framework.json"
    framework.write_text(json.dumps(FRAMEWORK))
    assert main(["db", "upgrade"]) == 0
    assert main(["standards", "import", str(framework)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(malformed(MALFORMED["grm d not decreasing"][0])))
    capsys.readouterr()
    assert main(["bank", "import", str(bad)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "a grm item's intercepts 'd' must decrease" in error
    good = tmp_path / "good.json"
    good.write_text(json.dumps(multidimensional_bank()))
    assert main(["bank", "import", str(good)]) == 0
    capsys.readouterr()
    assert main(["bank", "export"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["dimensions"] == multidimensional_bank()["dimensions"]


def test_a_test_over_a_multidimensional_bank_is_a_multidimensional_test(framework_store):
    # the delivery of such tests: tests/api/test_mcat_delivery.py
    from irtcat.delivery.mcat_banks import McatTestBank

    bank = multidimensional_bank()
    bank["items"][3]["status"] = "pretest"             # i03, F1
    bank["items"][6]["status"] = "retired"             # i06, F1
    framework_store.import_items(bank)
    delivery = Delivery(framework_store)
    delivery.create_test("t", "T", ["F1"], {})
    built = delivery.test_bank("t", framework_store.current_version_ids(["F1"]))
    assert isinstance(built, McatTestBank) and built.factors == tuple(FACTORS)
    # only operational items are delivered: of F1's i00, i03, i06 and c1
    assert [item["id"] for item in built.items] == ["i00", "c1"]
    with pytest.raises(DataFormatError, match="selection.method 'mfi'"):
        delivery.create_test("u", "U", ["F1"], {"selection": {"method": "mfi"}})


def test_the_http_item_listing_shows_slope_lists(database_url):
    # the bank as imported (docs/bank-record.md): GET /v1/items shows each item's slopes
    from irtcat.api.app import close_app, create_app
    from irtcat.delivery.keys import create_key
    from irtcat.itembank.database import Database, upgrade

    database = Database(database_url)
    upgrade(database)
    database.dispose()
    app = create_app({"DATABASE_URL": database_url})
    try:
        store = app.extensions["irtcat"]["store"]
        store.import_framework(FRAMEWORK)
        bank = multidimensional_bank()
        store.import_items(copy.deepcopy(bank))
        headers = {"Authorization": f"Bearer {create_key(store.database, 'admin')}"}
        answer = app.test_client().get("/v1/items/g1", headers=headers)
        assert answer.status_code == 200
        assert answer.json["a"] == bank["items"][10]["a"]
        assert answer.json["d"] == bank["items"][10]["d"]
    finally:
        close_app(app)
