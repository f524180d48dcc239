"""The program's HTML reports: a test's live exposure, an online run's review gates and a
drift job's result, each rendered from data made here (sessions taken through the API,
an online run on `test_online_api`'s simulated program, a drift job on simulated answers
with one item made harder) and read back: every number the page prints is the JSON's
(the exposure route's, the run listing's, the job's result), rounded as the page prints
it. Admin only: a delivery key and a session token get 403."""

import html
import re

import numpy as np
import test_online_api as online_api
from test_exposure_live import define, take

seeded = online_api.seeded            # the fixture: a standard ONL with 40 pretest items


def number(value, decimals=4):
    """A value as the reports print it (`api.report._number`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{decimals}f}"


def summary_value(page, key):
    found = re.search(rf'<tr data-key="{re.escape(key)}"><th scope="row">[^<]*</th>'
                      r"<td[^>]*>([^<]*)</td>", page)
    assert found, key
    return html.unescape(found.group(1))


def table_rows(page, caption):
    """[(row is marked flagged, [cell texts])] of the table whose caption starts so."""
    found = re.search(rf"<caption>{re.escape(caption)}[^<]*</caption>(.*?)</table>", page,
                      re.S)
    assert found, caption
    body = found.group(1).split("<tbody>", 1)[1]
    return [('class="flagged"' in attributes,
             [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells)])
            for attributes, cells in re.findall(r"<tr([^>]*)>(.*?)</tr>", body, re.S)]


def assert_admin_only(api, path):
    session = api.start("ml", "learner-report")
    for key in (api.delivery, session["token"]):
        refused = api.call("GET", path, key)
        assert refused.status_code == 403
        assert b"<td" not in refused.data


def finished(api, answer):
    """The result of a job queued with ``Prefer: respond-async``, once done, and its id."""
    assert answer.status_code == 202, answer.json
    job = answer.headers["Location"]
    result = api.job_done(answer, polls=1200)
    assert result.status_code == 200, result.json
    return result.json, int(job.rsplit("/", 1)[1])


def test_the_exposure_report_prints_the_live_figures(api):
    define(api, "exposed", {"method": "item-eligibility", "target": 0.3},
           stop={"min_items": 5, "max_items": 5, "se": None})
    for learner in range(6):
        given, state = take(api, api.start("exposed", f"learner-{learner}"))
        assert state["status"] == "finished"
    figures = api.call("GET", "/v1/tests/exposed/exposure", api.admin).json
    answer = api.call("GET", "/v1/tests/exposed/exposure/report", api.admin)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert figures["sessions"] == 6
    assert summary_value(page, "sessions") == "6"
    assert summary_value(page, "target") == number(0.3)
    for key in ("max_rate", "overlap_rate", "unused_share"):
        assert summary_value(page, key) == number(figures[key])
    assert summary_value(page, "mean_length") == number(figures["mean_length"], 3)
    assert summary_value(page, "above_target") == number(figures["max_rate"] > 0.3)
    operational = table_rows(page, "Operational items, highest rate")
    expected = sorted((row for row in figures["items"] if not row["pretest"]),
                      key=lambda row: (-row["rate"], row["item_id"]))
    assert [cells for _, cells in operational] == [
        [row["item_id"], str(row["administered"]), str(row["ineligible"]),
         number(row["rate"])] for row in expected]
    assert [flagged for flagged, _ in operational] == [row["rate"] > 0.3 for row in expected]
    pretest = {cells[0] for _, cells in table_rows(page, "Pretest items")}
    assert pretest == {row["item_id"] for row in figures["items"] if row["pretest"]}
    days = table_rows(page, "Operational figures of the sessions started each UTC day")
    assert [cells[:3] for _, cells in days] == [
        [day["day"], str(day["sessions"]), number(day["max_rate"])]
        for day in figures["days"]]
    assert page.count("data:image/png;base64,") == 2      # rates and the per-day series
    assert api.call("GET", "/v1/tests/nope/exposure/report", api.admin).status_code == 404
    assert_admin_only(api, "/v1/tests/exposed/exposure/report")


def test_the_gate_report_shows_each_gate_of_each_pretest_item(seeded):
    api = seeded
    queued = api.call("POST", "/v1/standards/ONL/online-calibration", api.admin,
                      json={"settings": {"dif_attributes": ["group"]}},
                      headers={"Prefer": "respond-async"})
    summary, _ = finished(api, queued)
    run = api.call("GET", "/v1/standards/ONL/online-calibration", api.admin).json[0]
    assert run["id"] == summary["run"]
    path = f"/v1/standards/ONL/online-calibration/{run['id']}/report"
    answer = api.call("GET", path, api.admin)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    decisions = [row["decision"] for row in run["items"]]
    for name in ("promoted", "held", "waiting"):
        assert summary_value(page, name) == str(decisions.count(name))
    assert summary_value(page, "version") == number(run["version"])
    assert summary_value(page, "settings.min_answers") == "300"       # the test's setting
    assert summary_value(page, "settings.dif_attributes") == "group"  # the request's
    rows = {cells[0]: (flagged, cells) for flagged, cells in table_rows(page, "One row per")}
    assert set(rows) == {row["item"] for row in run["items"]}
    for row in run["items"]:
        flagged, cells = rows[row["item"]]
        parameters = row["parameters"] or {}
        assert cells[1:5] == [row["decision"], str(row["answers"]),
                              number(parameters.get("a")), number(parameters.get("b"))]
        assert flagged == (row["decision"] == "held")
        for gate, cell in zip(("precision", "fit", "dif", "plausibility"), cells[5:9],
                              strict=True):
            if gate in row["gates"]:
                assert cell.startswith("pass" if row["gates"][gate]["passed"] else "FAIL")
            else:
                assert cell == ""
        precision = row["gates"].get("precision")
        if precision and precision["value"]:
            assert f"SE(a) {number(precision['value']['a'])}" in cells[5]
        assert cells[9] == "; ".join(row["reasons"])
    assert api.call("GET", "/v1/standards/ONL/online-calibration/987654/report",
                    api.admin).status_code == 404
    assert api.call("GET", f"/v1/standards/AI-ML/online-calibration/{run['id']}/report",
                    api.admin).status_code == 404
    assert_admin_only(api, path)


def test_the_drift_report_lists_flagged_items_first(api):
    """Six 2PL items published with the truth; 1,200 learners answer with item F04 harder
    by 1.0 (simulation truth), so the job flags it and the report puts it first."""
    rng = np.random.default_rng(5150)
    items = online_api.operational_items(rng, "DRR", "F", 6)
    api.store.import_framework({"format": "irtcat-framework/1",
                                 "standards": [{"code": "DRR", "title": "Drift report"}]})
    online_api.publish_and_drift(api, items, "F04", 1200, "q", rng)
    queued = api.call("POST", "/v1/standards/DRR/drift", api.admin, json={},
                      headers={"Prefer": "respond-async"})
    document, job_id = finished(api, queued)
    assert "F04" in document["flagged"]
    path = f"/v1/standards/DRR/drift/{job_id}/report"
    answer = api.call("GET", path, api.admin)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert summary_value(page, "flagged") == str(len(document["flagged"]))
    assert summary_value(page, "bank_version") == str(document["bank_version"])
    assert summary_value(page, "thresholds.z") == number(document["thresholds"]["z"])
    rows = table_rows(page, "One row per item studied")
    ordered = ([row for row in document["items"] if row["flagged"]]
               + [row for row in document["items"] if not row["flagged"]])
    assert [cells[0] for _, cells in rows] == [row["item"] for row in ordered]
    for (flagged, cells), row in zip(rows, ordered, strict=True):
        assert flagged == row["flagged"]
        assert cells[1:11] == [
            number(row["flagged"]), str(row["n_answers"]), number(row["old"]["a"]),
            number(row["new"]["a"]), number(row["se"]["a"]), number(row["z"]["a"]),
            number(row["old"]["b"]), number(row["new"]["b"]), number(row["se"]["b"]),
            number(row["z"]["b"])]
        assert cells[11:13] == [number(row["expected_score_signed"]),
                                number(row["expected_score_unsigned"])]
        assert cells[14] == "; ".join(row["reasons"])
    assert api.call("GET", f"/v1/standards/AI-ML/drift/{job_id}/report",
                    api.admin).status_code == 404
    assert api.call("GET", f"/v1/standards/DRR/drift/{job_id + 1}/report",
                    api.admin).status_code == 404
    assert_admin_only(api, path)
