"""`irtcat report` and `irtcat simulate --report`: self-contained HTML pages.

Expected values come from the JSON the same run wrote (the bank of `irtcat
calibrate`, the report of `irtcat simulate`): every number of a table must
read back as that JSON's value rounded to the table's decimals. The pages are
parsed with html.parser; figures are counted by their embedded PNG images and
recognised by their captions.
"""

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest

import irtcat.api.report
from irtcat.api.cli import main
from irtcat.api.report import bank_report
from irtcat.engine import ItemParameters
from irtcat.engine.simulate import simulate_responses

# A mixed bank: six 2PL items and two 4-category GRM items, in two standards.
TRUE_ITEMS = [
    *({"id": f"D{j}", "standard": "S1" if j < 3 else "S2", "model": "2pl", "a": a, "b": b}
      for j, (a, b) in enumerate([(1.2, -1.0), (0.8, -0.3), (1.5, 0.0), (1.0, 0.4),
                                  (1.8, 0.9), (0.9, 1.4)])),
    {"id": "G1", "standard": "S1", "model": "grm", "a": 1.3, "b": [-1.2, 0.0, 1.1]},
    {"id": "G2", "standard": "S2", "model": "grm", "a": 0.9, "b": [-0.8, 0.3, 1.6]},
]
N_PERSONS = 800


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err):
    return err.count("\n") == 1 and err.startswith("irtcat: error: ") and "Traceback" not in err


class Page(HTMLParser):
    """Tables, figures and every URL-bearing attribute of an HTML page."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.figures, self.links, self.scripts = [], [], [], 0
        self._table = self._row = self._cell = self._caption = self._figure = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if name in attrs:
                self.links.append(attrs[name])
        if tag == "script":
            self.scripts += 1
        elif tag == "table":
            self._table = {"class": attrs.get("class"), "caption": "", "header": [], "rows": []}
        elif tag == "caption":
            self._caption = []
        elif tag == "tr":
            self._row = {"attrs": attrs, "cells": []}
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "figure":
            self._figure = {"images": [], "caption": ""}
        elif tag == "img" and self._figure is not None:
            self._figure["images"].append(attrs)
        elif tag == "figcaption":
            self._caption = []

    def handle_data(self, data):
        for buffer in (self._cell, self._caption):
            if buffer is not None:
                buffer.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row["cells"].append("".join(self._cell).strip())
            self._row.setdefault("kinds", []).append(tag)
            self._cell = None
        elif tag == "tr":
            if self._row["kinds"] and all(kind == "th" for kind in self._row["kinds"]) \
                    and not self._table["header"] and not self._table["rows"] \
                    and "data-key" not in self._row["attrs"]:
                self._table["header"] = self._row["cells"]
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "caption":
            self._table["caption"] = "".join(self._caption).strip()
            self._caption = None
        elif tag == "table":
            self.tables.append(self._table)
            self._table = None
        elif tag == "figcaption":
            self._figure["caption"] = "".join(self._caption).strip()
            self._caption = None
        elif tag == "figure":
            self.figures.append(self._figure)
            self._figure = None

    def table(self, css):
        (found,) = [table for table in self.tables if table["class"] == css]
        return found

    def key_values(self):
        """{data-key: value text} of the key/value summary tables."""
        return {row["attrs"]["data-key"]: row["cells"][1] for table in self.tables
                for row in table["rows"] if "data-key" in row["attrs"]}


def check_self_contained(page):
    """Every figure one embedded PNG with alt text and a caption; nothing fetched."""
    assert page.scripts == 0
    assert all(link.startswith("data:image/png;base64,") or link.startswith("#")
               for link in page.links)
    for figure in page.figures:
        (image,) = figure["images"]
        png = base64.b64decode(image["src"].split(",", 1)[1], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert image["alt"].strip() and figure["caption"].startswith("Figure ")


def as_float(text):
    return float(text)


def numbers(text):
    return [float(part) for part in text.split(", ")] if text else []


def expected(value, decimals=4):
    """The JSON value as a table prints it: rounded to `decimals`."""
    if isinstance(value, list):
        return [round(v, decimals) for v in value]
    return round(value, decimals)


# --- a calibrated mixed bank --------------------------------------------------------

@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """(bank path, bank document, report HTML) of `calibrate --se` on simulated data."""
    folder = tmp_path_factory.mktemp("report")
    params = ItemParameters.create([item["model"] for item in TRUE_ITEMS],
                                   [item["a"] for item in TRUE_ITEMS],
                                   [item["b"] for item in TRUE_ITEMS])
    rng = np.random.default_rng(11)
    responses = simulate_responses(rng.normal(size=N_PERSONS), params, rng)
    data = folder / "data.csv"
    ids = [item["id"] for item in TRUE_ITEMS]
    data.write_text("person_id," + ",".join(ids) + "\n" + "".join(
        f"p{i}," + ",".join(map(str, row)) + "\n" for i, row in enumerate(responses)))
    tags = folder / "tags.json"
    tags.write_text(json.dumps({"format": "irtcat-bank/1", "items": [
        {"id": item["id"], "standard": item["standard"], "model": item["model"]}
        for item in TRUE_ITEMS]}))
    bank = folder / "bank.json"
    assert main(["calibrate", str(data), "--bank", str(tags), "--se", "--quiet",
                 "--out", str(bank)]) == 0
    html = folder / "bank.html"
    assert main(["report", str(bank), "--out", str(html), "--title", "Mixed <bank>"]) == 0
    return bank, json.loads(bank.read_text()), html.read_text()


def test_calibrated_bank_has_what_the_report_needs(calibrated):
    # Expected: the fixture is what the test means to check: SEs and fit on every item.
    _, document, _ = calibrated
    assert {item["model"] for item in document["items"]} == {"2pl", "grm"}
    assert all("se" in item and "s_x2" in item["fit"] for item in document["items"])


def test_bank_report_has_every_plot(calibrated):
    # Expected: 8 items fit in one figure of each kind: test information, ICCs, IICs.
    _, _, html = calibrated
    page = Page(html)
    check_self_contained(page)
    captions = [figure["caption"] for figure in page.figures]
    assert len(captions) == 3 == html.count("<img ")
    assert "Test information and conditional standard error" in captions[0]
    assert "each of its 2 standards" in captions[0]
    assert captions[1].startswith("Figure 2. Item characteristic curves, items 1-8 of 8")
    assert captions[2].startswith("Figure 3. Item information curves, items 1-8 of 8")
    assert "<title>Mixed &lt;bank&gt;</title>" in html                    # escaped


def test_item_table_equals_the_bank_json(calibrated):
    # Expected: bank.json's values, item by item, rounded to 4 decimals.
    _, document, html = calibrated
    table = Page(html).table("items")
    assert table["header"] == ["#", "Item", "Standard", "Model", "a", "b", "SE(a)", "SE(b)",
                               "S-X2", "df", "p", "Flag"]
    rows = {row["attrs"]["data-item"]: dict(zip(table["header"], row["cells"], strict=True))
            for row in table["rows"]}
    assert list(rows) == [item["id"] for item in document["items"]]
    for item in document["items"]:
        row, fit = rows[item["id"]], item["fit"]
        assert row["Item"] == item["id"] and row["Model"] == item["model"]
        assert row["Standard"] == item["standard"]
        assert as_float(row["a"]) == expected(item["a"])
        assert numbers(row["b"]) == expected(item["b"] if isinstance(item["b"], list)
                                             else [item["b"]])
        assert as_float(row["SE(a)"]) == expected(item["se"]["a"])
        se_b = item["se"]["b"]
        assert numbers(row["SE(b)"]) == expected(se_b if isinstance(se_b, list) else [se_b])
        assert int(row["df"]) == fit["df"]
        for key, column in (("s_x2", "S-X2"), ("p", "p")):
            assert (row[column] == "") if fit[key] is None else \
                as_float(row[column]) == fit[key]
        assert row["Flag"] == ("yes" if fit["flagged"] else "no")


def test_summary_equals_the_calibration_record(calibrated):
    # Expected: the "calibration" record of bank.json, and the bank's counts.
    _, document, html = calibrated
    values = Page(html).key_values()
    record = document["calibration"]
    for key in ("loglik", "aic", "bic"):
        assert as_float(values[key]) == record[key]
    assert int(values["iterations"]) == record["iterations"]
    assert int(values["n_persons"]) == N_PERSONS == record["n_persons"]
    assert values["converged"] == ("yes" if record["converged"] else "no")
    assert int(values["n_items"]) == len(TRUE_ITEMS)
    assert values["models"] == "2pl (6), grm (2)"
    assert as_float(values["population.sd"]) == expected(document["population"]["sd"])


def test_report_goes_to_standard_output_without_out(capsys, calibrated):
    # Expected: FORMATS.md: without --out the result goes to standard output.
    bank, _, html = calibrated
    status, out, err = run(capsys, "report", bank, "--title", "Mixed <bank>")
    assert status == 0 and err == ""
    assert out == html


def test_items_awaiting_calibration_and_large_banks(monkeypatch):
    # Expected: an item without parameters (FORMATS.md allows it) is listed, not drawn;
    # over MAX_PANEL_ITEMS, the flagged item gets a panel first and overlays show all.
    monkeypatch.setattr(irtcat.api.report, "MAX_PANEL_ITEMS", 2)
    items = [{"id": f"Q{j}", "model": "2pl", "a": 1.0, "b": j / 2 - 1,
              "fit": {"s_x2": 1.0, "df": 2, "p": 0.6, "flagged": j == 3,
                      **({"reason": "misfit <b>"} if j == 3 else {})}} for j in range(5)]
    items.append({"id": "NEW", "model": "2pl", "status": "pretest"})
    html = bank_report({"format": "irtcat-bank/1", "items": items})
    page = Page(html)
    check_self_contained(page)
    rows = {row["attrs"]["data-item"]: row["cells"] for row in page.table("items")["rows"]}
    assert "not calibrated" in rows["NEW"] and len(rows) == 6
    captions = [figure["caption"] for figure in page.figures]
    assert len(captions) == 1 + 2 + 2                   # test information, overlays, panels
    assert "of all 5 items" in captions[1] and "of all 5 items" in captions[2]
    assert "2 of the 5 items (Q0, Q3)" in captions[3]
    assert "misfit &lt;b&gt;" in html


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "malformed JSON"),
    (json.dumps({"format": "other", "items": []}), "format must be 'irtcat-bank/1'"),
    (json.dumps({"format": "irtcat-bank/1", "items": [{"id": "X", "model": "2pl", "a": 1}]}),
     "missing parameter 'b'"),
    (json.dumps([1, 2]), "a bank is a JSON object"),
])
def test_bad_bank_exits_2_with_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "bank.json"
    if content is not None:
        path.write_text(content)
    status, out, err = run(capsys, "report", path, "--out", tmp_path / "r.html")
    assert status == 2 and out == "" and one_error_line(err)
    assert message in err and str(path) in err
    assert [p.name for p in tmp_path.iterdir()] == (["bank.json"] if content else [])


@pytest.mark.parametrize("where", ["missing/r.html", "."])
def test_unwritable_out_exits_2_with_one_line(capsys, tmp_path, calibrated, where):
    bank, _, _ = calibrated
    status, out, err = run(capsys, "report", bank, "--out", tmp_path / where)
    assert status == 2 and out == "" and one_error_line(err)
    assert list(tmp_path.glob("*.tmp")) == []


# --- a simulation -------------------------------------------------------------------

@pytest.fixture(scope="module")
def simulated(calibrated, tmp_path_factory):
    """(report JSON, report HTML) of `simulate --report` with a classification."""
    bank, _, _ = calibrated
    folder = tmp_path_factory.mktemp("simulation")
    config = folder / "cat.json"
    config.write_text(json.dumps({"stop": {"min_items": 3, "max_items": 8, "se": 0.45,
                                           "classification": {"cut": 0.5}}}))
    out, html = folder / "r.json", folder / "r.html"
    assert main(["simulate", "--bank", str(bank), "--config", str(config), "--examinees",
                 "300", "--seed", "4", "--out", str(out), "--report", str(html)]) == 0
    return json.loads(out.read_text()), html.read_text()


SUMMARY = {"examinees": 0, "seed": 0, "rmse": 4, "bias": 4, "mean_length": 3,
           "exposure.max": 4, "exposure.mean": 4, "exposure.unused_share": 4,
           "overlap_rate": 4, "classification.accuracy": 4,
           "classification.accuracy_outside_indifference": 4,
           "classification.mean_length": 3, "seconds": 3}


def test_simulation_summary_equals_the_json(simulated):
    # Expected: r.json's numbers, key by key (FORMATS.md "Simulation report JSON").
    report, html = simulated
    values = Page(html).key_values()
    assert set(values) == set(SUMMARY)
    for key, decimals in SUMMARY.items():
        value = report
        for part in key.split("."):
            value = value[part]
        text = values[key]
        assert float(text) == value and len(text.partition(".")[2]) == decimals


def test_simulation_tables_equal_the_json(simulated):
    # Expected: the conditional rows of r.json; the per-bin classification counts add
    # up to the examinees and their weighted accuracy to the overall accuracy.
    report, html = simulated
    page = Page(html)
    rows = [row["cells"] for row in page.table("conditional")["rows"]]
    assert [[float(cell) for cell in row] for row in rows] == [
        [entry["theta"], entry["n"], entry["rmse"], entry["bias"]]
        for entry in report["conditional"]]
    bins = [[float(cell) for cell in row["cells"]]
            for row in page.table("classification")["rows"]]
    assert sum(n for _, n, _ in bins) == report["examinees"]
    weighted = sum(n * accuracy for _, n, accuracy in bins) / report["examinees"]
    assert weighted == pytest.approx(report["classification"]["accuracy"], abs=1e-3)
    top = page.table("top-exposure")["rows"][0]["cells"]
    assert float(top[1]) == report["exposure"]["max"]


def test_simulation_report_has_its_plots(simulated):
    report, html = simulated
    page = Page(html)
    check_self_contained(page)
    captions = [figure["caption"] for figure in page.figures]
    assert len(captions) == 5 == html.count("<img ")
    for number, start in enumerate(["Conditional RMSE (left) and bias (right)",
                                    "Final θ estimate against true θ",
                                    "Test length distribution of the 300 examinees",
                                    f"Exposure rates of the {len(TRUE_ITEMS)} items",
                                    "Classification accuracy by true θ"], start=1):
        assert captions[number - 1].startswith(f"Figure {number}. {start}")


def test_simulation_without_classification(calibrated, tmp_path):
    # Expected: no classification block in the JSON, so a note instead of that plot.
    bank, _, _ = calibrated
    config = tmp_path / "cat.json"
    config.write_text(json.dumps({"stop": {"min_items": 4, "max_items": 4, "se": None}}))
    html = tmp_path / "r.html"
    assert main(["simulate", "--bank", str(bank), "--config", str(config), "--examinees",
                 "50", "--out", str(tmp_path / "r.json"), "--report", str(html)]) == 0
    page = Page(html.read_text())
    assert len(page.figures) == 4
    assert "does not classify" in html.read_text()
    assert "from 4 to 4 items" in page.figures[2]["caption"]           # fixed length


def test_unwritable_simulation_report_exits_2(capsys, calibrated, tmp_path):
    bank, _, _ = calibrated
    config = tmp_path / "cat.json"
    config.write_text("{}")
    status, out, err = run(capsys, "simulate", "--bank", bank, "--config", config,
                           "--examinees", 20, "--out", tmp_path / "r.json", "--report",
                           tmp_path / "missing" / "r.html")
    assert status == 2 and out == "" and one_error_line(err)
    assert not (tmp_path / "r.json").exists()             # nothing half-done
