"""Reports of the running credential program, one self-contained HTML page each, from the
JSON the admin routes answer (presentation only: no numerics here).

- `exposure_report`: a test's live exposure (``GET /v1/tests/{id}/exposure``): the
  operational summary against the exposure target, the operational items' rates sorted
  with the target line, the pretest items apart, and the per-day series.
- `gate_report`: an online calibration run's gate table (``GET
  /v1/standards/{code}/online-calibration``): one row per pretest item, each gate's value
  and pass or fail, the decision and its reasons; held items first.
- `drift_report`: a drift job's document (``POST /v1/standards/{code}/drift``): one row
  per item, old and new a and b with their z, expected-score differences, flagged first.

Numbers are the documents' own, printed with 4 decimals like the bank report
(`api.report`), whose page, tables, styles and figure helpers these pages reuse.
"""

from __future__ import annotations

import numpy as np

from .report import (
    FLAG_COLOR,
    PRETEST_COLOR,
    _cell,
    _esc,
    _key_value_table,
    _new_figure,
    _number,
    _numbers,
    _Page,
    _style_axes,
    _table,
)

PASS, FAIL = "pass", "FAIL"
GATE_NAMES = ("answers", "precision", "fit", "dif", "plausibility")
FLAGGED_ROW = ' class="flagged"'
MAX_DAY_LABELS = 12       # day labels on the per-day figures' axes at most


def _numeric(value, decimals=4):
    return _cell(_numbers(value, decimals), numeric=True)


# --- live exposure -----------------------------------------------------------------------

def exposure_report(figures, target, method, title=None):
    """The HTML page of `figures` (the exposure JSON of a test) against `target`, the
    test's highest exposure rate aimed at under the exposure `method`."""
    test_id = figures["test_id"]
    items = figures["items"]
    operational = sorted((row for row in items if not row["pretest"]),
                         key=lambda row: (-row["rate"], row["item_id"]))
    pretest = sorted((row for row in items if row["pretest"]),
                     key=lambda row: (-row["rate"], row["item_id"]))
    page = _Page(title or f"Live exposure: test {test_id}",
                 f"{figures['sessions']} sessions started across every worker; "
                 f"{len(operational)} operational and {len(pretest)} pretest items given.")
    page.section("summary", "Summary")
    over = bool(figures["max_rate"] > target)
    page.add(_key_value_table([
        ("sessions", "Sessions started", _number(figures["sessions"]), True),
        ("method", "Exposure control", method, False),
        ("target", "Target (highest rate aimed at)", _number(target), True),
        ("max_rate", "Highest operational rate", _number(figures["max_rate"]), True),
        ("above_target", "Above the target", _number(over), False),
        ("overlap_rate", "Overlap rate", _number(figures["overlap_rate"]), True),
        ("mean_length", "Mean operational length", _number(figures["mean_length"], 3), True),
        ("unused_share", "Operational items never given", _number(figures["unused_share"]),
         True)], caption="Operational items"))
    page.note("Rates are the share of the sessions started that were given the item. The "
              "overlap rate is the expected share of items two sessions have in common "
              "(Chen, Ankenmann & Spray, 2003). Pretest items are kept out of every summary "
              "figure and listed on their own.")
    page.section("operational", "Operational item rates")
    if operational or pretest:
        _rates_figure(page, operational, pretest, target)
    page.add(_table(("Item", "Administered", "Ineligible", "Rate"),
                    [_exposure_cells(row) for row in operational], css="items",
                    row_attributes=[FLAGGED_ROW if row["rate"] > target else ""
                                    for row in operational],
                    caption="Operational items, highest rate first (above the target "
                            "marked)"))
    page.section("pretest", "Pretest items")
    page.add(_table(("Item", "Administered", "Ineligible", "Rate"),
                    [_exposure_cells(row) for row in pretest], css="items",
                    caption="Pretest items (unscored), highest rate first"))
    page.section("days", "Over time")
    days = figures["days"]
    if days:
        _days_figure(page, days, target)
    page.add(_table(("Day (UTC)", "Sessions", "Highest rate", "Overlap rate", "Mean length",
                     "Never given"),
                    [[_cell(day["day"]), _numeric(day["sessions"]),
                      _numeric(day["max_rate"]), _numeric(day["overlap_rate"]),
                      _numeric(day["mean_length"], 3), _numeric(day["unused_share"])]
                     for day in days], css="items",
                    row_attributes=[FLAGGED_ROW if day["max_rate"] > target else ""
                                    for day in days],
                    caption="Operational figures of the sessions started each UTC day"))
    return page.render()


def _exposure_cells(row):
    return [_cell(row["item_id"]), _numeric(row["administered"]), _numeric(row["ineligible"]),
            _numeric(row["rate"])]


def _rates_figure(page, operational, pretest, target):
    """Bars of the operational rates, then the pretest ones in their own colour.

    operational, pretest : the figures' rows (each with "rate"), highest rate first
    """
    rates = np.array([row["rate"] for row in operational])            # (n_operational,)
    pretest_rates = np.array([row["rate"] for row in pretest])        # (n_pretest,)
    figure = _new_figure(7.5, 3.0)
    axes = figure.add_subplot()
    axes.bar(np.arange(rates.size), rates, width=1.0, color="#4c72b0", label="operational")
    if pretest_rates.size:
        axes.bar(rates.size + np.arange(pretest_rates.size), pretest_rates, width=1.0,
                 color=PRETEST_COLOR, label="pretest (unscored)")
    axes.axhline(target, color=FLAG_COLOR, linewidth=1.2, label=f"target {target:g}")
    axes.set_xlabel("operational items, by rate"
                    + (", then pretest items" if pretest_rates.size else ""), fontsize=8)
    axes.set_ylabel("exposure rate", fontsize=8)
    axes.set_ylim(0, max(1.05 * rates.max(initial=0.0), 1.05 * pretest_rates.max(initial=0.0),
                         1.1 * target, 0.05))
    axes.legend(fontsize=7)
    _style_axes(axes)
    figure.tight_layout()
    page.figure(figure, "Exposure rate of each operational item given, highest first, "
                "against the target"
                + (f"; then the {pretest_rates.size} pretest items, in their own colour (not "
                   "held to the target)." if pretest_rates.size else "."),
                "bar chart of operational and pretest item exposure rates")


def _days_figure(page, days, target):
    figure = _new_figure(7.5, 3.0)
    rate_axes = figure.add_subplot(1, 2, 1)
    positions = np.arange(len(days))
    rate_axes.plot(positions, [day["max_rate"] for day in days], marker="o", markersize=3)
    rate_axes.axhline(target, color=FLAG_COLOR, linewidth=1.0)
    rate_axes.set_title("highest operational rate", fontsize=8)
    count_axes = figure.add_subplot(1, 2, 2)
    count_axes.bar(positions, [day["sessions"] for day in days], color="#55a868")
    count_axes.set_title("sessions started", fontsize=8)
    step = max(1, len(days) // MAX_DAY_LABELS)
    for axes in (rate_axes, count_axes):
        axes.set_xticks(positions[::step], [day["day"] for day in days][::step], rotation=45,
                        ha="right")
        _style_axes(axes, size=6)
    figure.tight_layout()
    page.figure(figure, "Per UTC day: the highest operational exposure rate (target line) "
                "and the sessions started.", "line and bar charts of exposure per day")


# --- online calibration's gates -------------------------------------------------------------

def gate_report(run, standard, title=None):
    """The HTML page of the online run `run` (an entry of ``GET
    /v1/standards/{code}/online-calibration``) of `standard`."""
    rows = run["items"]
    decisions = [row["decision"] for row in rows]
    page = _Page(title or f"Online calibration {run['id']}: {standard}",
                 f"Review gates of {len(rows)} pretest items: "
                 + ", ".join(f"{decisions.count(name)} {name}"
                             for name in ("promoted", "held", "waiting")) + ".")
    page.section("summary", "Summary")
    settings = run.get("settings") or {}
    page.add('<div class="columns">')
    page.add(_key_value_table([
        ("run", "Run", _number(run["id"]), True),
        ("status", "Status", run["status"], False),
        ("version", "Draft version", _number(run.get("version")), True),
        ("n_responses", "Answers read", _number(run.get("n_responses")), True),
        *[(name, f"Items {name}", _number(decisions.count(name)), True)
          for name in ("promoted", "held", "waiting")],
        ("finished_at", "Finished", run.get("finished_at") or "", False)], caption="Run"))
    page.add(_key_value_table([(f"settings.{key}", key.replace("_", " "),
                                _setting_text(value), False)
                               for key, value in settings.items()], caption="Settings"))
    page.add("</div>")
    page.section("gates", "Review gates by item")
    order = {"held": 0, "promoted": 1, "waiting": 2}
    ordered = sorted(rows, key=lambda row: order.get(row["decision"], 3))
    page.add(_table(("Item", "Decision", "Answers", "a", "b", *GATE_NAMES[1:], "Reasons"),
                    [_gate_cells(row) for row in ordered], css="items",
                    row_attributes=[FLAGGED_ROW if row["decision"] == "held" else ""
                                    for row in ordered],
                    caption="One row per pretest item (held first): each gate's value and "
                            "pass or FAIL"))
    page.note("answers: at least min_answers; precision: SE(a) and SE(b) at most max_se_a "
              "and max_se_b; fit: Yen's Q1 from the rest posterior, p adjusted by "
              "Benjamini-Hochberg, not below fit_alpha; dif: Mantel-Haenszel (dichotomous) or "
              "Mantel's ordinal test and SMD/SD (polytomous) matched on theta, class C or "
              "untestable fails; plausibility: slope in slope_range, b (every threshold) "
              "within the theta range of those who answered.")
    return page.render()


def _setting_text(value):
    """A gate setting in one line: numbers as the tables print them, names joined."""
    if isinstance(value, list) and not all(isinstance(v, (int, float)) for v in value):
        return ", ".join(map(str, value))
    return _numbers(value)


def _gate_cells(row):
    gates = row.get("gates") or {}
    parameters = row.get("parameters") or {}
    return [_cell(row["item"]), _cell(row["decision"]), _numeric(row["answers"]),
            _numeric(parameters.get("a")), _numeric(parameters.get("b")),
            *[_gate_cell(name, gates.get(name)) for name in GATE_NAMES[1:]],
            _cell("; ".join(row.get("reasons") or []))]


def _gate_cell(name, gate):
    if gate is None:
        return _cell("")
    verdict = PASS if gate["passed"] else FAIL
    return _cell(f"{verdict}: {_gate_value(name, gate.get('value'))}",
                 title=gate.get("reason"))


def _gate_value(name, value):
    """A gate's value in one line."""
    if value is None:
        return "n/a"
    if name == "precision":
        return f"SE(a) {_number(value.get('a'))}, SE(b) {_numbers(value.get('b'))}"
    if name == "fit":
        return (f"Q1 {_number(value.get('x2'))} on {_number(value.get('df'))} df, "
                f"p adj. {_number(value.get('p_adjusted'))}")
    if name == "dif":
        return "; ".join(f"{test['attribute']}={test['focal']}: class "
                         f"{test.get('class') or 'untested'}" + _dif_size(test)
                         for test in value) or "none tested"
    if name == "plausibility":
        low, high = value["theta_range"]
        return f"theta range [{_number(low)}, {_number(high)}]"
    return _numbers(value)


def _dif_size(test):
    """A DIF test's effect size in brackets: delta (dichotomous) or SMD/SD (polytomous)."""
    for key, label in (("delta", "delta"), ("smd_sd", "SMD/SD")):
        if test.get(key) is not None:
            return f" ({label} {_number(test[key])})"
    return ""


# --- drift -------------------------------------------------------------------------------------

DRIFT_HEADER = ("Item", "Flagged", "Answers", "a old", "a new", "SE a", "z(a)", "b old",
                "b new", "SE b", "z(b)", "Signed exp. score diff.", "Unsigned exp. score diff.",
                "Converged", "Reasons")


def drift_report(document, job_id, title=None):
    """The HTML page of the drift document of job `job_id` (flagged items first)."""
    rows = document["items"]
    flagged = [row for row in rows if row["flagged"]]
    ordered = flagged + [row for row in rows if not row["flagged"]]
    standard = document["standard"]
    page = _Page(title or f"Drift of {standard}'s operational items (job {job_id})",
                 f"{len(rows)} operational items re-estimated on the live log with the "
                 f"others fixed, against bank version {document['bank_version']}: "
                 f"{len(flagged)} flagged.")
    page.section("summary", "Summary")
    thresholds = document.get("thresholds") or {}
    population = document.get("population") or {}
    page.add(_key_value_table([
        ("standard", "Standard", standard, False),
        ("bank_version", "Bank version", _number(document["bank_version"]), True),
        ("mode", "Mode", document.get("mode", ""), False),
        ("weights", "Expected scores weighted by", document.get("weights", ""), False),
        *[(f"thresholds.{key}", f"Threshold: {key.replace('_', ' ')}", _number(value), True)
          for key, value in thresholds.items()],
        ("population.mean", "Takers' theta mean", _number(population.get("mean")), True),
        ("population.sd", "Takers' theta sd", _number(population.get("sd")), True),
        ("items", "Items studied", _number(len(rows)), True),
        ("flagged", "Items flagged", _number(len(flagged)), True),
        ("skipped", "Items not studied", _number(len(document.get("skipped") or [])), True)],
        caption="Drift"))
    page.section("items", "Items")
    page.add(_table(DRIFT_HEADER, [_drift_cells(row) for row in ordered], css="items",
                    row_attributes=[FLAGGED_ROW if row["flagged"] else "" for row in ordered],
                    caption="One row per item studied (flagged first)"))
    page.note("z: the change (new minus old) over the root of both squared standard errors. "
              "Expected-score differences: new minus old item curve, averaged over the "
              "theta distribution of the takers (or the standard normal).")
    skipped = document.get("skipped") or []
    if skipped:
        page.add(_table(("Item", "Why not studied"),
                        [[_cell(entry["id"]), _cell(entry["reason"])] for entry in skipped],
                        caption="Items not studied"))
    return page.render()


def _drift_cells(row):
    old, new, z = row.get("old") or {}, row.get("new") or {}, row.get("z") or {}
    se = row.get("se") or {}
    return [f"<td>{_esc(row['item'])}</td>", _cell(_number(bool(row["flagged"]))),
            _numeric(row.get("n_answers")), _numeric(old.get("a")), _numeric(new.get("a")),
            _numeric(se.get("a")), _numeric(z.get("a")), _numeric(old.get("b")),
            _numeric(new.get("b")), _numeric(se.get("b")), _numeric(z.get("b")),
            _numeric(row.get("expected_score_signed")),
            _numeric(row.get("expected_score_unsigned")),
            _cell(_number(row.get("converged"))), _cell("; ".join(row.get("reasons") or []))]
