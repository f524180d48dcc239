"""CASE 1.0 import and export (delivery/case.py) on real CASE packages from OpenSALT
(github.com/opensalt/opensalt at d138f0a, MIT): tests/data/case_opensalt_sample.json is
its "core/docs/sample files/opensalt-framework-20c5134f-...json" (Common Core ratio
standards, with humanCodingScheme, statements over 200 characters and association types
besides isChildOf), tests/data/case_opensalt_smartlevel.json its
"core/tests/_data/SmartLevelFramework.json" (no humanCodingScheme, two levels of items).
The expected identifiers and hierarchy are read from those files themselves; the export
is checked against 1EdTech's CFPackage JSON schema (tests/data/case_cfpackage_schema.json,
OpenSALT's core/config/schema/case-v1p0-cfpackage-schema.json)."""

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from irtcat.delivery.case import DEFAULT_DOCUMENT, case_package, import_case_package
from irtcat.itembank.errors import DataFormatError
from irtcat.itembank.standards import case_identifier

DATA = Path(__file__).resolve().parents[1] / "data"
BASE = "https://irtcat.example.org"
FIXTURES = ["case_opensalt_sample.json", "case_opensalt_smartlevel.json"]


def _package(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _hierarchy(package):
    """{(child identifier, parent identifier)} of the isChildOf associations."""
    return {(association["originNodeURI"]["identifier"],
             association["destinationNodeURI"]["identifier"])
            for association in package.get("CFAssociations", [])
            if association["associationType"] == "isChildOf"}


def _without_times(package):
    """`package` with every lastChangeDateTime removed."""
    if isinstance(package, dict):
        return {key: _without_times(value) for key, value in package.items()
                if key != "lastChangeDateTime"}
    if isinstance(package, list):
        return [_without_times(value) for value in package]
    return package


@pytest.mark.parametrize("name", FIXTURES)
def test_import_then_export_gives_back_identifiers_and_hierarchy(store, name):
    package = _package(name)
    import_case_package(store, package)
    exported = case_package(store, BASE)
    assert exported["CFDocument"]["identifier"] == package["CFDocument"]["identifier"]
    assert exported["CFDocument"]["title"] == package["CFDocument"]["title"]
    assert exported["CFDocument"]["creator"] == package["CFDocument"]["creator"]
    assert ({item["identifier"] for item in exported["CFItems"]}
            == {item["identifier"] for item in package["CFItems"]})
    assert _hierarchy(exported) == _hierarchy(package)
    statements = {item["identifier"]: item["fullStatement"] for item in package["CFItems"]}
    assert {item["identifier"]: item["fullStatement"] for item in exported["CFItems"]} \
        == statements
    jsonschema.validate(exported, json.loads((DATA / "case_cfpackage_schema.json")
                                             .read_text(encoding="utf-8")))


def test_codes_come_from_human_coding_scheme_else_the_identifier(store):
    sample = _package(FIXTURES[0])
    import_case_package(store, sample)
    identifiers = store.case_identifiers()
    assert identifiers == {item["humanCodingScheme"]: item["identifier"]
                           for item in sample["CFItems"]}
    first = store.standard("CCSS.Math.Content.6.RP.A.1")
    assert first["parent"] == "CCSS.Math.Content.6.RP.A" and first["levels"] == []
    long_statement = next(item["fullStatement"] for item in sample["CFItems"]
                          if len(item["fullStatement"]) > 200)
    cut = next(standard for standard in store.standards()
               if standard["description"] == long_statement)
    assert len(cut["title"]) == 200 and long_statement.startswith(cut["title"][:-1])

    smart = _package(FIXTURES[1])
    import_case_package(store, smart)
    item = smart["CFItems"][2]                      # "Item 1.1", no humanCodingScheme
    assert store.standard(item["identifier"])["title"] == item["fullStatement"]


@pytest.mark.parametrize("name", FIXTURES)
def test_export_import_export_is_identical_bar_times(store, tmp_path, name):
    """The export imported into a fresh database exports the same package again."""
    from irtcat.itembank.database import Database, upgrade
    from irtcat.itembank.store import Store

    import_case_package(store, _package(name))
    first = case_package(store, BASE)
    fresh = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(fresh)
    try:
        again = Store(fresh)
        import_case_package(again, first)
        assert _without_times(case_package(again, BASE)) == _without_times(first)
    finally:
        fresh.dispose()


def test_existing_standards_keep_their_levels_and_codes(store):
    sample = _package(FIXTURES[0])
    item = sample["CFItems"][0]
    levels = [{"name": "proficient", "cut": 0.5}]
    store.import_framework({"format": "irtcat-framework/1", "standards": [
        {"code": "RATIOS", "title": "Ratios", "levels": levels}]})
    store.set_case_identifiers({"RATIOS": item["identifier"]})
    summary = import_case_package(store, sample)
    assert "RATIOS" in summary["updated"] and item["humanCodingScheme"] not in summary["created"]
    assert store.standard("RATIOS")["levels"] == levels
    assert store.standard("RATIOS")["title"] == item["fullStatement"]
    assert store.standard("CCSS.Math.Content.6.RP.A.1")["parent"] == "RATIOS"


def test_the_store_without_a_package_exports_its_default_document_and_derived_ids(store):
    store.import_framework({"format": "irtcat-framework/1", "standards": [
        {"code": "AI-ML", "title": "Machine learning", "description": "Models from data"},
        {"code": "AI-ML-01", "title": "Supervised learning", "parent": "AI-ML"}]})
    exported = case_package(store, BASE + "/")
    assert exported["CFDocument"]["identifier"] == DEFAULT_DOCUMENT["identifier"]
    assert exported["CFDocument"]["uri"] == \
        f"{BASE}/ims/case/v1p0/CFDocuments/{DEFAULT_DOCUMENT['identifier']}"
    ml, ml01 = (case_identifier(code) for code in ("AI-ML", "AI-ML-01"))
    assert _hierarchy(exported) == {(ml, DEFAULT_DOCUMENT["identifier"]), (ml01, ml)}
    items = {item["humanCodingScheme"]: item for item in exported["CFItems"]}
    assert items["AI-ML"]["fullStatement"] == "Models from data"
    assert items["AI-ML"]["abbreviatedStatement"] == "Machine learning"
    assert items["AI-ML-01"]["uri"] == f"{BASE}/ims/case/v1p0/CFItems/{ml01}"
    association_ids = [association["identifier"] for association in exported["CFAssociations"]]
    assert len(set(association_ids)) == 2
    assert association_ids == [a["identifier"] for a in case_package(store, BASE)
                               ["CFAssociations"]]


def _broken(change):
    package = copy.deepcopy(_package(FIXTURES[1]))
    change(package)
    return package


def _child_of(package, child, parent):
    association = copy.deepcopy(package["CFAssociations"][0])
    association["identifier"] = "a0000000-0000-0000-0000-0000000000ff"
    association["originNodeURI"]["identifier"] = child
    association["destinationNodeURI"]["identifier"] = parent
    package["CFAssociations"].append(association)


ITEM = "00000000-0000-0000-0000-0000000000{:02d}".format
BROKEN = {
    "no document identifier": (lambda p: p["CFDocument"].pop("identifier"), "identifier"),
    "an item without identifier": (lambda p: p["CFItems"][3].pop("identifier"), "identifier"),
    "an identifier that is no UUID": (
        lambda p: p["CFItems"][3].update(identifier="item-4"), "identifier"),
    "two items with one identifier": (
        lambda p: p["CFItems"][4].update(identifier=ITEM(1)), "two nodes"),
    "no fullStatement": (lambda p: p["CFItems"][0].pop("fullStatement"), "fullStatement"),
    "a cycle": (lambda p: (_child_of(p, ITEM(1), ITEM(3)),
                           p["CFAssociations"].pop(0)), "cycle"),
    "an unknown parent": (
        lambda p: _child_of(p, ITEM(2), "99999999-0000-0000-0000-000000000000"),
        "neither a CFItem"),
    "an unknown child": (
        lambda p: _child_of(p, "99999999-0000-0000-0000-000000000000", ITEM(2)),
        "not a CFItem"),
    "two parents": (lambda p: _child_of(p, ITEM(3), ITEM(2)), "two nodes"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_bad_packages_are_refused_with_nothing_written(store, case):
    change, words = BROKEN[case]
    with pytest.raises(DataFormatError, match=words):
        import_case_package(store, _broken(change))
    assert store.standards() == []
    assert store.case_framework() == (None, [])
