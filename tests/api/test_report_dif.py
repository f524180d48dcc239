"""`irtcat report BANK --dif DIF.json`: the bank report's DIF section (api/report_dif.py).

Expected values come from the DIF document the same run wrote (`irtcat dif --format
json` on tests/data/verbal.csv, whose Mantel-Haenszel numbers tests/cli/test_dif.py
checks against difR in refs2/verbal__dif.json): every row of the section must read back
as that document's values rounded to the table's decimals, classes B and C first.
"""

import json
import pathlib
from html.parser import HTMLParser

from irtcat.api.cli import main
from irtcat.calibration.workflow import calibrate_document
from irtcat.itembank import read_responses

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
VERBAL = DATA / "verbal.csv"


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


class DifRows(HTMLParser):
    """The tables of the section under the heading id="dif": each a list of rows (cell
    texts, the row's class)."""

    def __init__(self):
        super().__init__()
        self.in_section = self.in_body = False
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        if tag == "h2":
            self.in_section = attributes.get("id") == "dif"
        elif self.in_section and tag == "table":
            self.tables.append([])
        elif self.in_section and tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.tables[-1].append(([], attributes.get("class")))
        elif self.in_body and tag == "td":
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_body = False
        elif tag == "td" and self.cell is not None:
            self.tables[-1][-1][0].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def _bank(tmp_path):
    document, _ = calibrate_document(read_responses(VERBAL, group="group"), "2pl", fit=False)
    path = tmp_path / "bank.json"
    path.write_text(json.dumps(document))
    return path


def test_the_report_shows_the_dif_table_as_written(capsys, tmp_path):
    dif_path = tmp_path / "dif.json"
    status, _, _ = run(capsys, "dif", VERBAL, "--group", "group", "--model", "2pl",
                       "--purify", "--format", "json", "--no-effect-size", "--out", dif_path)
    assert status == 0
    dif = json.loads(dif_path.read_text())
    report_path = tmp_path / "report.html"
    status, out, err = run(capsys, "report", _bank(tmp_path), "--dif", dif_path,
                           "--out", report_path)
    assert status == 0, err
    page = report_path.read_text()
    parser = DifRows()
    parser.feed(page)
    summary, table = parser.tables
    assert len(table) == len(dif["items"]) == 24
    expected = {row["item"]: row for row in dif["items"]}
    large = [row["item"] for row in dif["items"] if row["ets_class"] in ("B", "C")]
    assert large, "verbal.csv has items of class B or C (refs2/verbal__dif.json)"
    assert [cells[0] for cells, _ in table[:len(large)]] == large
    for cells, css in table:
        row = expected[cells[0]]
        assert cells[1] == "yes"                                   # every item is in the bank
        assert cells[2] == row["ets_class"]
        assert cells[3] == ("yes" if row["flagged"] else "no")
        assert cells[4] == f"{row['delta_mh']:.3f}" and cells[5] == f"{row['se_delta']:.3f}"
        assert cells[6] == f"{row['p']:.4f}"
        assert cells[8] == str(row["n_reference"]) and cells[9] == str(row["n_focal"])
        assert (css == "flagged") == (row["ets_class"] in ("B", "C"))
    assert dict(zip(("method", "focal", "reference", "matching", "purification"),
                    (cells[0] for cells, _ in summary), strict=False)) == {
        "method": "Mantel-Haenszel", "focal": "1", "reference": "0", "matching": "score",
        "purification": "6 steps, converged"}


def test_a_bad_dif_document_exits_2_with_one_line(capsys, tmp_path):
    dif_path = tmp_path / "dif.json"
    dif_path.write_text(json.dumps({"method": "mh", "items": [{"no_item": 1}]}))
    status, out, err = run(capsys, "report", _bank(tmp_path), "--dif", dif_path)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and str(dif_path) in err
