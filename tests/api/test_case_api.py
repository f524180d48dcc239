"""GET and POST /v1/case (api/routes/case.py) and the two commands
`irtcat standards import-case` / `export-case`. The CASE package fixture is OpenSALT's
sample framework (tests/data/case_opensalt_sample.json; its source is in
tests/data/README.md); the demo framework's identifiers are the UUIDs derived from the
codes (uuid5 in `itembank.standards.CASE_NAMESPACE`, computed here with the uuid module)."""

import copy
import json
import uuid
from pathlib import Path

import pytest

from irtcat.api.cli import main
from irtcat.itembank.database import Database, upgrade
from irtcat.itembank.standards import CASE_NAMESPACE
from irtcat.itembank.store import Store

DATA = Path(__file__).resolve().parents[1] / "data"
DEMO = Path(__file__).resolve().parents[2] / "api" / "demo" / "framework.json"
SAMPLE = json.loads((DATA / "case_opensalt_sample.json").read_text(encoding="utf-8"))


def _hierarchy(package):
    return {(association["originNodeURI"]["identifier"],
             association["destinationNodeURI"]["identifier"])
            for association in package["CFAssociations"]
            if association["associationType"] == "isChildOf"}


def test_the_demo_framework_exports_with_identifiers_derived_from_its_codes(api):
    package = api.call("GET", "/v1/case", api.admin)
    assert package.status_code == 200
    package = package.json
    identifiers = {item["humanCodingScheme"]: item["identifier"]
                   for item in package["CFItems"]}
    assert identifiers == {code: str(uuid.uuid5(CASE_NAMESPACE, code))
                           for code in ("AI", "AI-ML", "AI-DE", "AI-RAI")}
    document = package["CFDocument"]["identifier"]
    assert _hierarchy(package) == {(identifiers["AI"], document)} | {
        (identifiers[code], identifiers["AI"]) for code in ("AI-ML", "AI-DE", "AI-RAI")}
    item = package["CFItems"][0]
    assert item["uri"] == f"http://localhost/ims/case/v1p0/CFItems/{item['identifier']}"


def test_the_public_url_starts_the_uris(api, monkeypatch):
    monkeypatch.setenv("IRTCAT_PUBLIC_URL", "https://skills.example.org/")
    document = api.call("GET", "/v1/case", api.admin).json["CFDocument"]
    assert document["uri"] == ("https://skills.example.org/ims/case/v1p0/CFDocuments/"
                               + document["identifier"])


def test_a_package_posted_comes_back_with_its_identifiers_and_hierarchy(api):
    answer = api.call("POST", "/v1/case", api.admin, json=SAMPLE)
    assert answer.status_code == 200, answer.json
    assert answer.json["document"] == SAMPLE["CFDocument"]["identifier"]
    assert sorted(answer.json["created"]) == sorted(item["humanCodingScheme"]
                                                    for item in SAMPLE["CFItems"])
    package = api.call("GET", "/v1/case", api.admin).json
    kept = ("identifier", "title", "creator", "adoptionStatus")
    assert {name: package["CFDocument"][name] for name in kept} == \
        {name: SAMPLE["CFDocument"][name] for name in kept}
    exported = {item["identifier"] for item in package["CFItems"]}
    assert {item["identifier"] for item in SAMPLE["CFItems"]} <= exported
    assert _hierarchy(SAMPLE) <= _hierarchy(package)
    standard = api.call("GET", "/v1/standards/CCSS.Math.Content.7.RP.A.2a", api.admin).json
    assert standard["parent"] == "CCSS.Math.Content.7.RP.A.2"
    again = api.call("POST", "/v1/case", api.admin, json=SAMPLE).json
    assert again["created"] == [] and again["updated"] == []


def _with_cycle(package):
    """The cluster 6.RP.A (a child of the document) made a child of its own child 6.RP.A.1."""
    associations = package["CFAssociations"]
    child, cluster = associations[2], associations[15]
    assert child["destinationNodeURI"]["identifier"] == cluster["originNodeURI"]["identifier"]
    cluster["destinationNodeURI"] = copy.deepcopy(child["originNodeURI"])


@pytest.mark.parametrize("change, status", [
    (lambda p: p.pop("CFDocument"), 400),
    (lambda p: p["CFItems"][0].update(identifier="not-a-uuid"), 400),
    (lambda p: p["CFItems"][1].pop("fullStatement"), 400),
    (_with_cycle, 422),
    (lambda p: p["CFAssociations"][20]["destinationNodeURI"].update(
        identifier="99999999-9999-4999-8999-999999999999"), 422),
], ids=["no CFDocument", "identifier", "no fullStatement", "cycle", "unknown parent"])
def test_a_bad_package_is_refused_and_nothing_written(api, change, status):
    before = api.call("GET", "/v1/case", api.admin).json
    package = copy.deepcopy(SAMPLE)
    change(package)
    answer = api.call("POST", "/v1/case", api.admin, json=package)
    assert answer.status_code == status, answer.json
    assert api.call("GET", "/v1/case", api.admin).json == before


def test_the_demo_identifiers_are_the_same_on_two_fresh_databases(tmp_path):
    demo = json.loads(DEMO.read_text(encoding="utf-8"))
    identifiers = []
    for name in ("one.db", "two.db"):
        database = Database(f"sqlite:///{tmp_path / name}")
        upgrade(database)
        try:
            store = Store(database)
            store.import_framework(demo)
            identifiers.append(store.case_identifiers())
        finally:
            database.dispose()
    assert identifiers[0] == identifiers[1] == {
        standard["code"]: str(uuid.uuid5(CASE_NAMESPACE, standard["code"]))
        for standard in demo["standards"]}


def test_the_commands_import_and_export(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IRTCAT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("IRTCAT_PUBLIC_URL", raising=False)
    assert main(["standards", "import-case", str(DATA / "case_opensalt_sample.json")]) == 0
    assert "16 created" in capsys.readouterr().err
    out = tmp_path / "package.json"
    assert main(["standards", "export-case", "--out", str(out),
                 "--base-url", "https://skills.example.org"]) == 0
    package = json.loads(out.read_text(encoding="utf-8"))
    assert _hierarchy(package) == _hierarchy(SAMPLE)
    assert package["CFItems"][0]["uri"].startswith(
        "https://skills.example.org/ims/case/v1p0/CFItems/")
    broken = copy.deepcopy(SAMPLE)
    broken["CFItems"][0].pop("identifier")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken), encoding="utf-8")
    assert main(["standards", "import-case", str(bad)]) == 2
    assert "identifier" in capsys.readouterr().err
