"""Reports for psychometricians: one self-contained HTML page each.

- `bank_report`: an `irtcat-bank/1` document: its calibration record, every
  item's parameters, standard errors and fit, item characteristic and
  information curves, and the test information with its conditional SE.
- `simulation_report_html`: an `irtcat simulate` study: the numbers of the
  simulation report JSON and plots of accuracy, exposure, test length and
  classification (`simulation_details` gathers what the JSON lacks).

Presentation only. Numbers in the tables are the documents' own, printed
with 4 decimals (3 where the JSON rounds to 3), so that a table reads back
as the JSON rounded; curves come from `engine` (`category_probability`,
`information`, `test_information`, `expected_score`), never from formulas
written here. Figures are drawn with matplotlib's object API on an Agg
canvas (`matplotlib.figure.Figure`; pyplot and its global figure state are
never used) and embedded as base64 PNG: the page fetches nothing, runs no
script and opens offline.

Length: one self-contained HTML page per report, its stylesheet, its tables and
every figure of both reports; split, a reader would chase one page's layout across
modules. No numerics live here.
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from irtcat.engine import (
    DICHOTOMOUS_MODELS,
    category_probability,
    expected_score,
    information,
    test_information,
)
from irtcat.itembank import DataFormatError, bank_from_document
from irtcat.itembank.io import check_item_ids

from .simulation_report import report_details

THETA = np.linspace(-4.0, 4.0, 161)
"""The theta grid of every curve: [-4, 4] in steps of 0.05."""

ITEMS_PER_FIGURE = 20
"""Item panels per small-multiples figure (4 rows of 5)."""

PANEL_COLUMNS = 5

MAX_PANEL_ITEMS = 100
"""Items drawn as panels at most; a larger bank gets panels for its flagged
items first, then the others in bank order up to this many, and overlay
figures covering every item."""

TABLE_THETAS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
DPI = 96
SCATTER_POINTS = 5000
CATEGORY_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
                   "#a6761d", "#666666")
GROUP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
FLAG_COLOR = "#b2182b"
PRETEST_COLOR = "#e69f00"      # pretest (unscored) items in the exposure figures
NO_STANDARD = "(no standard)"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1a1a1a; background: #fff; margin: 0; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .6rem; border-bottom: 1px solid #ddd;
     padding-bottom: .2rem; }
p.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; }
caption { text-align: left; font-weight: 600; padding: .2rem 0; white-space: nowrap; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .2rem .55rem; text-align: left;
         vertical-align: top; }
thead th { background: #f3f4f6; border-bottom: 2px solid #ccc; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.fixed { color: #777; font-style: italic; }
tr.flagged td { background: #fdecea; }
table.items { width: 100%; }
table.summary th { font-weight: 600; background: none; min-width: 12rem; }
th.num { text-align: right; }
.columns { display: flex; flex-wrap: wrap; gap: 0 3rem; align-items: flex-start; }
figure { margin: 1rem 0 1.5rem; max-width: 100%; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #333; margin-top: .35rem; }
.note { font-size: .85rem; color: #555; }
footer { margin-top: 3rem; font-size: .75rem; color: #777; }
"""


# --- formatting ----------------------------------------------------------------------

def _esc(text):
    return html.escape(str(text), quote=True)


def _number(value, decimals=4):
    """A number as the tables print it: fixed decimals, integers as integers, '' for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{decimals}f}"


def _numbers(value, decimals=4):
    """One number, or a list of them joined by ', ' (thresholds, their SEs)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(_number(v, decimals) for v in value)
    return _number(value, decimals)


def _cell(text, numeric=False, css=None, title=None):
    classes = " ".join(filter(None, ["num" if numeric else None, css]))
    attributes = (f' class="{classes}"' if classes else "") + \
        (f' title="{_esc(title)}"' if title else "")
    return f"<td{attributes}>{_esc(text)}</td>"


def _key_value_table(rows, css="summary", caption=None):
    """rows: (key, label, text, numeric); the key goes to data-key for machine reading."""
    lines = [f'<table class="{css}">']
    if caption:
        lines.append(f"<caption>{_esc(caption)}</caption>")
    lines.append("<tbody>")
    for key, label, text, numeric in rows:
        lines.append(f'<tr data-key="{_esc(key)}"><th scope="row">{_esc(label)}</th>'
                     f"{_cell(text, numeric)}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


NUMERIC_CLASS = ' class="num"'


def _table(header, rows, css=None, caption=None, row_attributes=None):
    """header: column labels; rows: lists of ready `<td>` strings."""
    lines = [f'<table class="{css}">' if css else "<table>"]
    if caption:
        lines.append(f"<caption>{_esc(caption)}</caption>")
    numeric = [any(cells[k].startswith('<td class="num') for cells in rows)
               for k in range(len(header))]
    lines.append("<thead><tr>" + "".join(
        f'<th scope="col"{NUMERIC_CLASS if is_number else ""}>{_esc(h)}</th>'
        for h, is_number in zip(header, numeric, strict=True)) + "</tr></thead><tbody>")
    for position, cells in enumerate(rows):
        attributes = row_attributes[position] if row_attributes else ""
        lines.append(f"<tr{attributes}>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


class _Page:
    """An HTML page under construction; numbers its figures."""

    def __init__(self, title, lead):
        self.title, self.lead, self.parts, self.n_figures = title, lead, [], 0

    def add(self, text):
        self.parts.append(text)

    def section(self, anchor, heading):
        self.parts.append(f'<h2 id="{_esc(anchor)}">{_esc(heading)}</h2>')

    def note(self, text):
        self.parts.append(f'<p class="note">{_esc(text)}</p>')

    def figure(self, figure, caption, alt):
        """Embed `figure` as a PNG with its caption ('Figure N. ...') and alt text."""
        self.n_figures += 1
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
        width, height = (int(round(v * DPI)) for v in figure.get_size_inches())
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        self.parts.append(
            f'<figure id="figure-{self.n_figures}" style="width: {width}px">'
            f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}" width="{width}" '
            f'height="{height}">'
            f"<figcaption>Figure {self.n_figures}. {_esc(caption)}</figcaption></figure>")

    def render(self):
        return "\n".join([
            "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_esc(self.title)}</title>", f"<style>{STYLE}</style>", "</head>",
            "<body>", "<main>", f"<h1>{_esc(self.title)}</h1>",
            f'<p class="lead">{_esc(self.lead)}</p>', *self.parts,
            "<footer>Made by irtcat. Self-contained: figures are embedded PNG images; the page "
            "loads nothing from the network.</footer>", "</main>", "</body>", "</html>", ""])


def _new_figure(width, height):
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global state)."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _style_axes(axes, size=7):
    axes.tick_params(labelsize=size, length=2)
    axes.grid(True, linewidth=0.4, alpha=0.4)


# --- the bank report -----------------------------------------------------------------

def bank_report(document: dict, title: str | None = None, dif: dict | None = None) -> str:
    """An HTML page describing an `irtcat-bank/1` document.

    Sections: a summary (models, number of items, standards, population and
    the calibration record when there is one: logLik, AIC, BIC, convergence,
    cycles ...); a table of every item's IRT-form parameters as the document
    gives them, their standard errors (``"se"``), fit (S-X2, df, p, infit and
    outfit where present) and a fit flag, with the reasons listed below it;
    the test information and conditional SE over theta in [-4, 4], overall
    and per standard, as a figure and a table; item characteristic curves
    (category response curves for polytomous items) and item information
    curves as small multiples of `ITEMS_PER_FIGURE` items per figure.

    Size and time are bounded: at most `MAX_PANEL_ITEMS` items get panels
    (two figures per 20 items, about 0.5 s and 150 kB each), so any bank
    renders in about 10 s and a few MB at most. A larger bank gets panels for
    its flagged items first, then the others in bank order, and two overlay
    figures (one axes each) holding every item's expected-score and
    information curve; the item table always lists every item.

    `dif`: DIF results (`irtcat dif --format json`, POST /v1/dif) to show in a DIF
    section after the item table (`api.report_dif`).

    Raises `itembank.DataFormatError` (one line) if `document` is not a valid
    bank document, or `dif` not a DIF document.
    """
    bank, waiting = _calibrated_bank(document)
    items = list(bank.items)
    params = bank.params
    n_items = len(items)
    models = [item["model"] for item in items]
    model_counts = {model: models.count(model) for model in dict.fromkeys(models)}
    standards = [item.get("standard") for item in items]
    has_standards = any(code is not None for code in standards)
    calibration = document.get("calibration")
    title = title or "Item bank report"
    lead = (f"{n_items} calibrated items ("
            f"{', '.join(f'{m} {k}' for m, k in model_counts.items())}) of an irtcat-bank/1 "
            "document" + (f", and {len(waiting)} awaiting calibration" if waiting else "")
            + (", with its calibration record." if calibration else "."))
    page = _Page(title, lead)

    page.section("summary", "Summary")
    page.add('<div class="columns">')
    page.add(_key_value_table(_bank_summary_rows(document, bank, model_counts, standards,
                                                 waiting), caption="Bank"))
    if isinstance(calibration, dict):
        page.add(_key_value_table(_calibration_rows(calibration), caption="Calibration"))
    page.add("</div>")

    page.section("test-information", "Test information and conditional standard error")
    groups = _standard_groups(standards) if has_standards else {}
    _test_information_section(page, params, groups)

    page.section("items", "Items")
    page.add(_item_table(document["items"], has_standards
                         or any(item.get("standard") for item in waiting)))
    page.add(_fit_notes(items))
    if dif is not None:
        from .report_dif import dif_section

        dif_section(page, dif, [item.get("id") for item in document["items"]])

    page.section("item-curves", "Item characteristic and information curves")
    flagged = np.array([bool(item.get("fit", {}).get("flagged")) for item in items])
    shown = _panel_items(flagged)
    if shown.size < n_items:
        page.note(f"The bank has {n_items} items: panels are drawn for {shown.size} of them "
                  f"(the {int(flagged.sum())} flagged first, then in bank order); Figures "
                  f"{page.n_figures + 1} and {page.n_figures + 2} overlay every item's curves.")
        _overlay_figures(page, params, standards, has_standards)
    ids = [item["id"] for item in items]
    probability = category_probability(THETA, params)           # (T, n_items, K)
    item_information = information(THETA, params)                # (T, n_items)
    chunks = [shown[start:start + ITEMS_PER_FIGURE]
              for start in range(0, shown.size, ITEMS_PER_FIGURE)]
    for chunk in chunks:
        first, last = chunk[0], chunk[-1]
        span = (f"items {first + 1}-{last + 1} of {n_items} ({ids[first]} to {ids[last]})"
                if shown.size == n_items else
                f"{chunk.size} of the {n_items} items ({', '.join(ids[j] for j in chunk)})")
        figure = _icc_panels(chunk, ids, models, params, probability, flagged)
        page.figure(figure,
                    f"Item characteristic curves, {span}: P(correct) for dichotomous items, "
                    "one curve per response category for polytomous items; flagged items "
                    "titled in red.",
                    f"Small multiples: response probability against theta from -4 to 4 for "
                    f"{', '.join(ids[j] for j in chunk)}.")
        figure = _information_panels(chunk, ids, models, item_information, flagged)
        page.figure(figure,
                    f"Item information curves, {span}; panels of a figure share their "
                    "vertical scale.",
                    f"Small multiples: item information against theta from -4 to 4 for "
                    f"{', '.join(ids[j] for j in chunk)}.")
    return page.render()


PARAMETER_KEYS = ("a", "b", "c", "u")


def _calibrated_bank(document):
    """(ItemBank of the items with parameters, item documents awaiting calibration).

    An item with none of a, b, c, u awaits calibration (FORMATS.md allows it);
    it is listed in the table but has no curves. DataFormatError otherwise.
    """
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list):
        bank_from_document(document)             # raises the reader's own message
    check_item_ids(items)
    waiting = [item for item in items if not any(key in item for key in PARAMETER_KEYS)]
    if waiting and len(waiting) == len(items):
        raise DataFormatError("no item of the bank has parameters: nothing to report")
    calibrated = [item for item in items if any(key in item for key in PARAMETER_KEYS)]
    return bank_from_document({**document, "items": calibrated}), waiting


def _bank_summary_rows(document, bank, model_counts, standards, waiting):
    rows = [("format", "Format", document.get("format"), False),
            ("metric", "Metric", document.get("metric", "logistic"), False),
            ("n_items", "Calibrated items", _number(len(bank.items)), True)]
    if waiting:
        rows.append(("n_waiting", "Items awaiting calibration", _number(len(waiting)), True))
    rows.append(("models", "Models", ", ".join(f"{m} ({k})" for m, k in model_counts.items()),
                 False))
    if any(code is not None for code in standards):
        counts = {}
        for code in standards:
            counts[code or NO_STANDARD] = counts.get(code or NO_STANDARD, 0) + 1
        rows.append(("standards", "Standards",
                     ", ".join(f"{code} ({k})" for code, k in counts.items()), False))
    population = document.get("population") or {}
    rows.append(("population.mean", "Population mean",
                 _number(population.get("mean", bank.population["mean"])), True))
    rows.append(("population.sd", "Population SD",
                 _number(population.get("sd", bank.population["sd"])), True))
    fits = [item["fit"] for item in bank.items if isinstance(item.get("fit"), dict)]
    if fits:
        rows.append(("flagged", "Items flagged by fit",
                     f"{sum(bool(f.get('flagged')) for f in fits)} of {len(fits)}", False))
    return rows


CALIBRATION_FIELDS = (
    ("model", "Model", None), ("method", "Method", None), ("loglik", "Log-likelihood", 4),
    ("aic", "AIC", 4), ("bic", "BIC", 4), ("n_parameters", "Parameters", 0),
    ("n_persons", "Persons", 0), ("converged", "Converged", None),
    ("iterations", "EM cycles", 0), ("quadpts", "Quadrature points", 0),
    ("tol", "Tolerance", None), ("m_step", "M-step", None), ("optimizer", "Optimizer", None),
    ("seconds", "Seconds", 3))


def _calibration_rows(calibration):
    rows = []
    for key, label, decimals in CALIBRATION_FIELDS:
        if key not in calibration:
            continue
        value = calibration[key]
        if decimals is None:
            text = _number(value) if isinstance(value, bool) else \
                (f"{value:g}" if isinstance(value, float) else str(value))
            rows.append((key, label, text, isinstance(value, float)))
        else:
            rows.append((key, label, _number(value, decimals), True))
    if calibration.get("priors"):
        priors = calibration["priors"]
        text = "; ".join(f"{name}: {value}" for name, value in priors.items()) \
            if isinstance(priors, dict) else str(priors)
        rows.append(("priors", "Priors", text, False))
    for entry in calibration.get("excluded") or []:
        rows.append(("excluded", "Excluded", f"{entry.get('id')}: {entry.get('reason')}", False))
    if calibration.get("anchors"):
        rows.append(("anchors", "Anchor items", ", ".join(map(str, calibration["anchors"])),
                     False))
    for key in ("standard", "standard_errors", "fit"):
        if calibration.get(key):
            rows.append((key, key.replace("_", " ").capitalize(), str(calibration[key]), False))
    return rows


def _item_table(items, has_standards):
    models = [item.get("model") for item in items]
    has_c = any(model in ("3pl", "4pl") for model in models)
    has_u = "4pl" in models
    has_se = any(isinstance(item.get("se"), dict) for item in items)
    fits = [item.get("fit") if isinstance(item.get("fit"), dict) else {} for item in items]
    has_sx2 = any("s_x2" in fit for fit in fits)
    has_infit = any("infit" in fit for fit in fits)
    has_status = any("status" in item for item in items)
    parameters = ["a", "b"] + (["c"] if has_c else []) + (["u"] if has_u else [])
    header = ["#", "Item"] + (["Standard"] if has_standards else []) + ["Model"] \
        + (["Status"] if has_status else []) + parameters
    if has_se:
        header += [f"SE({name})" for name in parameters]
    if has_sx2:
        header += ["S-X2", "df", "p"]
    if has_infit:
        header += ["Infit", "Outfit"]
    header.append("Flag")
    rows, attributes = [], []
    for position, (item, fit) in enumerate(zip(items, fits, strict=True)):
        cells = [_cell(position + 1, True), _cell(item["id"])]
        if has_standards:
            cells.append(_cell(item.get("standard") or ""))
        cells.append(_cell(item.get("model") or ""))
        waiting = not any(key in item for key in PARAMETER_KEYS)
        if has_status:
            cells.append(_cell(item.get("status", "")))
        for name in parameters:
            if waiting and name == "a":
                cells.append(_cell("not calibrated", css="fixed"))
            elif name == "a" and item["model"] in ("rasch", "pcm") and "a" not in item:
                cells.append(_cell("1", True, "fixed", "fixed by the model"))
            else:
                cells.append(_cell(_numbers(item.get(name)), True))
        if has_se:
            se = item.get("se") if isinstance(item.get("se"), dict) else {}
            cells += [_cell(_numbers(se.get(name)), True) for name in parameters]
        if has_sx2:
            cells += [_cell(_number(fit.get("s_x2")), True), _cell(_number(fit.get("df")), True),
                      _cell(_number(fit.get("p")), True)]
        if has_infit:
            cells += [_cell(_number(fit.get("infit")), True),
                      _cell(_number(fit.get("outfit")), True)]
        flagged = fit.get("flagged")
        cells.append(_cell("" if flagged is None else ("yes" if flagged else "no"),
                           title=fit.get("reason")))
        rows.append(cells)
        attributes.append(f' data-item="{_esc(item["id"])}"'
                          + (' class="flagged"' if flagged else ""))
    return _table(header, rows, "items", row_attributes=attributes)


def _fit_notes(items):
    notes = [(item["id"], bool(item["fit"].get("flagged")), item["fit"]["reason"])
             for item in items if isinstance(item.get("fit"), dict) and item["fit"].get("reason")]
    if not notes:
        return ('<p class="note">Parameters in IRT form as the document holds them (logistic '
                "metric, D = 1); standard errors under SE(.), when calibrated with --se.</p>")
    lines = ['<p class="note">Parameters in IRT form as the document holds them (logistic '
             "metric, D = 1). Fit notes:</p>", '<ul class="note">']
    for item_id, flagged, reason in notes:
        lines.append(f"<li><strong>{_esc(item_id)}</strong>{' (flagged)' if flagged else ''}: "
                     f"{_esc(reason)}</li>")
    lines.append("</ul>")
    return "\n".join(lines)


def _standard_groups(standards):
    """{label: item positions} per standard, in order of first appearance."""
    groups = {}
    for position, code in enumerate(standards):
        groups.setdefault(code or NO_STANDARD, []).append(position)
    return {label: np.array(positions) for label, positions in groups.items()}


def _test_information_section(page, params, groups):
    curves = {"All items": test_information(THETA, params)}
    if len(groups) > 1:
        for label, positions in groups.items():
            curves[label] = test_information(THETA, params.subset(positions))
    figure = _new_figure(10, 3.6)
    info_axes, se_axes = figure.subplots(1, 2)
    for number, (label, curve) in enumerate(curves.items()):
        overall = number == 0
        color = "black" if overall else GROUP_COLORS[(number - 1) % len(GROUP_COLORS)]
        width = 2.0 if overall else 1.2
        info_axes.plot(THETA, curve, color=color, linewidth=width, label=label)
        se_axes.plot(THETA, 1.0 / np.sqrt(curve), color=color, linewidth=width, label=label)
    se_top = min(3.0, 1.05 * max(float(np.max(1.0 / np.sqrt(c))) for c in curves.values()))
    se_axes.set_ylim(0.0, se_top)
    info_axes.set_ylim(bottom=0.0)
    for axes, label in ((info_axes, "test information"), (se_axes, "conditional SE of θ")):
        _style_axes(axes, 8)
        axes.set_xlabel("θ", fontsize=9)
        axes.set_ylabel(label, fontsize=9)
        axes.set_xlim(THETA[0], THETA[-1])
    info_axes.legend(fontsize=7, frameon=False)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.96, wspace=0.22)
    who = "the whole bank" + (f" and each of its {len(curves) - 1} standards"
                              if len(curves) > 1 else
                              f" (standard {next(iter(groups))})" if groups else "")
    page.figure(figure,
                f"Test information and conditional standard error over θ in [-4, 4] for {who} "
                "(SE = 1 / sqrt(information); its axis is cut at 3).",
                f"Two line plots against theta from -4 to 4: test information (left) and "
                f"conditional standard error (right) for {who}.")
    at = np.array(TABLE_THETAS)
    header = ["θ"] + [f"{label}: information" for label in curves] + \
        [f"{label}: SE" for label in curves]
    points = {label: test_information(at, params if label == "All items"
                                      else params.subset(groups[label])) for label in curves}
    rows = [[_cell(_number(theta, 1), True)]
            + [_cell(_number(points[label][k]), True) for label in curves]
            + [_cell(_number(1.0 / np.sqrt(points[label][k])), True) for label in curves]
            for k, theta in enumerate(at)]
    page.add(_table(header, rows, "information",
                    caption="Test information and conditional SE at selected θ"))


def _panel_items(flagged):
    """Positions of the items drawn as panels: all, or flagged first up to the cap."""
    n_items = flagged.size
    if n_items <= MAX_PANEL_ITEMS:
        return np.arange(n_items)
    order = np.concatenate([np.flatnonzero(flagged), np.flatnonzero(~flagged)])
    return np.sort(order[:MAX_PANEL_ITEMS])


def _panel_grid(n_panels):
    rows = math.ceil(n_panels / PANEL_COLUMNS)
    figure = _new_figure(10, 0.55 + 1.75 * rows)
    axes = figure.subplots(rows, PANEL_COLUMNS, sharex=True, sharey=True, squeeze=False).ravel()
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.35 / (0.55 + 1.75 * rows) + 0.03,
                           top=1 - 0.45 / (0.55 + 1.75 * rows), wspace=0.08, hspace=0.28)
    return figure, axes[:n_panels]


def _panel_title(axes, item_id, model, flagged):
    name = item_id if len(item_id) <= 16 else item_id[:15] + "…"
    # A text, not set_title: titles make every draw measure the axes' tight bbox (slow).
    axes.text(0.5, 1.02, f"{name} · {model}" + (" (flagged)" if flagged else ""), fontsize=7,
              color=FLAG_COLOR if flagged else "black", ha="center", va="bottom",
              transform=axes.transAxes)


def _finish_panels(figure, axes, ylabel):
    axes[0].set_xticks([-4, -2, 0, 2, 4])
    for position, panel in enumerate(axes):
        _style_axes(panel, 6)
        panel.set_xlim(THETA[0], THETA[-1])
        panel.label_outer()
        if position + PANEL_COLUMNS >= len(axes):   # nothing drawn below: show the theta ticks
            panel.xaxis.set_tick_params(labelbottom=True)
    figure.supxlabel("θ", fontsize=8, y=0.005)
    figure.supylabel(ylabel, fontsize=8, x=0.005)


def _category_color(k, n_categories):
    if n_categories <= len(CATEGORY_COLORS):
        return CATEGORY_COLORS[k]
    return CATEGORY_COLORS[k % len(CATEGORY_COLORS)]


def _icc_panels(chunk, ids, models, params, probability, flagged):
    figure, axes = _panel_grid(chunk.size)
    n_categories = params.n_categories
    widest, dichotomous = 0, False
    for panel, j in zip(axes, chunk, strict=True):
        if models[j] in DICHOTOMOUS_MODELS:
            dichotomous = True
            panel.plot(THETA, probability[:, j, 1], color="black", linewidth=1.1)
        else:
            widest = max(widest, int(n_categories[j]))
            for k in range(int(n_categories[j])):
                panel.plot(THETA, probability[:, j, k], linewidth=1.0,
                           color=_category_color(k, n_categories[j]))
        _panel_title(panel, ids[j], models[j], flagged[j])
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_yticks([0.0, 0.5, 1.0])           # few ticks: each costs several artists
    _finish_panels(figure, axes, "probability")
    handles, labels = [], []
    if dichotomous:
        handles.append(Line2D([], [], color="black", linewidth=1.1))
        labels.append("P(correct)")
    if widest:
        handles += [Line2D([], [], color=_category_color(k, widest)) for k in range(widest)]
        labels += [f"category {k}" for k in range(widest)]
    figure.legend(handles, labels, loc="upper center", ncol=min(len(labels), 9), fontsize=7,
                  frameon=False, bbox_to_anchor=(0.5, 1.0))
    return figure


def _information_panels(chunk, ids, models, item_information, flagged):
    figure, axes = _panel_grid(chunk.size)
    for panel, j in zip(axes, chunk, strict=True):
        panel.plot(THETA, item_information[:, j], color="#1f4e79", linewidth=1.1)
        panel.fill_between(THETA, item_information[:, j], color="#1f4e79", alpha=0.12,
                           linewidth=0)
        _panel_title(panel, ids[j], models[j], flagged[j])
    axes[0].set_ylim(bottom=0.0)
    axes[0].yaxis.set_major_locator(MaxNLocator(4))
    _finish_panels(figure, axes, "information")
    return figure


def _overlay_figures(page, params, standards, has_standards):
    """Every item's curves on one axes each (for banks over MAX_PANEL_ITEMS)."""
    labels = [code or NO_STANDARD for code in standards] if has_standards else \
        ["All items"] * len(standards)
    palette = {label: GROUP_COLORS[k % len(GROUP_COLORS)]
               for k, label in enumerate(dict.fromkeys(labels))}
    score = expected_score(THETA, params) / (params.n_categories - 1)   # (T, n_items)
    item_information = information(THETA, params)
    for values, what, ylabel in ((score, "Expected score curves (as a share of the item's "
                                  "maximum score)", "expected score / maximum"),
                                 (item_information, "Item information curves", "information")):
        figure = _new_figure(10, 3.8)
        axes = figure.subplots()
        for label, color in palette.items():
            columns = [j for j, own in enumerate(labels) if own == label]
            axes.plot(THETA, values[:, columns], color=color, linewidth=0.6, alpha=0.45)
        axes.legend([Line2D([], [], color=color) for color in palette.values()], list(palette),
                    fontsize=7, frameon=False, loc="upper left")
        _style_axes(axes, 8)
        axes.set_xlim(THETA[0], THETA[-1])
        axes.set_xlabel("θ", fontsize=9)
        axes.set_ylabel(ylabel, fontsize=9)
        figure.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.97)
        page.figure(figure, f"{what} of all {params.n_items} items, coloured by standard.",
                    f"{what} of all {params.n_items} items overlaid on one plot against theta "
                    "from -4 to 4.")


# --- the simulation report -----------------------------------------------------------

def simulation_details(batches, design, item_ids, *, true_theta=None):
    """What `simulation_report_html` needs beyond the JSON report, as plain lists.

    Parameters
    ----------
    batches : list of CATResults from `engine.simulate.run_cat` / `timed_run`
    design : CATDesign of the run
    item_ids : list of str, the bank's item ids in bank order
    true_theta : ndarray of shape (n,), optional

    Returns
    -------
    dict: item_ids, exposure (rate per item), pretest (per item, True for a pretest
    item), lengths (scored length per examinee), theta, se and true_theta (per
    examinee), exposure_method, exposure_target, min_items, max_items, and
    classification_by_theta (with a classification and true thetas).
    """
    numbers = report_details(batches, design, true_theta=true_theta)
    pretest = np.zeros(len(item_ids), dtype=bool)
    pretest[design.pretest.items] = True
    details = {"item_ids": list(item_ids),
               "exposure": [float(v) for v in numbers["exposure"]],
               "pretest": pretest.tolist(),
               "lengths": [int(v) for v in numbers["lengths"]],
               "theta": [float(v) for v in numbers["theta"]],
               "se": [float(v) for v in numbers["se"]],
               "exposure_method": design.exposure.method,
               "exposure_target": design.exposure.target,
               "min_items": design.stopping.min_items, "max_items": design.stopping.max_items}
    if "true_theta" in numbers:
        details["true_theta"] = [float(v) for v in numbers["true_theta"]]
    if "classification_by_theta" in numbers:
        details["classification_by_theta"] = numbers["classification_by_theta"]
        details["cut"] = design.stopping.classification.cut
    return details


SUMMARY_FIELDS = (
    ("examinees", "Examinees", 0), ("seed", "Seed", 0), ("rmse", "RMSE of θ̂", 4),
    ("bias", "Bias of θ̂ (mean θ̂ − θ)", 4), ("mean_length", "Mean test length", 3),
    ("exposure.max", "Highest exposure rate", 4), ("exposure.mean", "Mean exposure rate", 4),
    ("exposure.unused_share", "Share of items never used", 4),
    ("overlap_rate", "Test overlap rate", 4),
    ("classification.accuracy", "Classification accuracy", 4),
    ("classification.accuracy_outside_indifference",
     "Classification accuracy outside the indifference region", 4),
    ("classification.mean_length", "Mean length (classification)", 3),
    ("seconds", "Seconds", 3))


def _lookup(report, dotted):
    value = report
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None, False
        value = value[part]
    return value, True


def simulation_report_html(report: dict, details: dict, title: str | None = None) -> str:
    """An HTML page for an `irtcat simulate` study.

    Parameters
    ----------
    report : dict
        The simulation report JSON (spec/FORMATS.md, "Simulation report JSON").
    details : dict
        What the report lacks, as `simulation_details` returns it: ``item_ids``
        and ``exposure`` (one rate per item), optionally ``pretest`` (per item,
        drawn apart), ``lengths`` (one per examinee);
        optionally ``theta`` and ``true_theta`` (a scatter plot),
        ``classification_by_theta`` (accuracy per theta bin),
        ``exposure_method`` and ``exposure_target`` (the target line).
    title : str, optional

    Sections: the summary numbers as the JSON has them (a table whose rows
    carry the JSON key in ``data-key``); conditional RMSE and bias against
    theta; the exposure distribution (sorted rates and a histogram, with the
    most exposed items); the test length distribution; classification
    accuracy per theta bin (or the overall number); estimated against true
    theta (at most `SCATTER_POINTS` points, evenly spaced in examinee order).
    Every plot is one figure of fixed size, whatever the number of
    examinees or items.
    """
    title = title or "CAT simulation report"
    n = report.get("examinees")
    page = _Page(title, f"Adaptive tests simulated for {n} examinees (seed {report.get('seed')}).")

    page.section("summary", "Summary")
    rows = []
    for key, label, decimals in SUMMARY_FIELDS:
        value, present = _lookup(report, key)
        if present:
            rows.append((key, label, _number(value, decimals), value is not None))
    page.add('<div class="columns">')
    page.add(_key_value_table(rows, caption="Report"))
    conditional = report.get("conditional")
    if conditional:
        page.add(_table(["θ", "n", "RMSE", "bias"],
                        [[_cell(_number(row["theta"], 1), True), _cell(_number(row["n"]), True),
                          _cell(_number(row["rmse"]), True), _cell(_number(row["bias"]), True)]
                         for row in conditional], "conditional",
                        caption="Conditional RMSE and bias by true θ"))
    if report.get("by_standard"):
        page.add(_table(["Standard", "mean SE", "RMSE"],
                        [[_cell(code), _cell(_number(entry.get("mean_se")), True),
                          _cell(_number(entry.get("rmse")), True)]
                         for code, entry in report["by_standard"].items()], "by-standard",
                        caption="Each standard's own estimate"))
    page.add("</div>")

    page.section("accuracy", "Accuracy by true θ")
    if conditional:
        _conditional_figure(page, conditional)
    else:
        page.note("No true abilities (a replay without --theta): accuracy is not reported.")

    page.section("length", "Estimates and test length")
    page.add('<div class="columns">')
    if "theta" in details and "true_theta" in details:
        _scatter_figure(page, np.asarray(details["true_theta"], float),
                        np.asarray(details["theta"], float))
    _length_figure(page, np.asarray(details["lengths"], dtype=float), report.get("mean_length"))
    page.add("</div>")

    page.section("exposure", "Item exposure")
    _exposure_section(page, report, details)

    page.section("classification", "Classification")
    _classification_section(page, report, details)

    tuning = report.get("sympson_hetter_tuning")
    if tuning:
        page.section("tuning", "Sympson-Hetter tuning")
        page.note(f"{tuning.get('rounds')} rounds in {_number(tuning.get('seconds'), 3)} s; "
                  "highest exposure by round: "
                  + ", ".join(_number(v) for v in tuning.get("max_exposure_by_round", [])))
    return page.render()


def _conditional_figure(page, conditional):
    theta = np.array([row["theta"] for row in conditional], dtype=float)
    figure = _new_figure(10, 3.2)
    rmse_axes, bias_axes = figure.subplots(1, 2, sharex=True)
    for axes, key, label, color in ((rmse_axes, "rmse", "RMSE", "#1f4e79"),
                                    (bias_axes, "bias", "bias", "#b35806")):
        values = np.array([np.nan if row[key] is None else row[key] for row in conditional],
                          dtype=float)
        axes.plot(theta, values, marker="o", color=color, linewidth=1.5)
        axes.set_ylabel(label, fontsize=9)
        axes.set_xlabel("true θ (bin centre)", fontsize=9)
        _style_axes(axes, 8)
    rmse_axes.set_ylim(bottom=0.0)
    bias_axes.axhline(0.0, color="gray", linewidth=0.8)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.95, wspace=0.22)
    page.figure(figure, "Conditional RMSE (left) and bias (right) of the final θ estimate, "
                "examinees binned at the nearest θ of the report's grid.",
                "Two line plots against true theta: RMSE of the final estimate (left) and "
                "its bias (right).")


def _scatter_figure(page, true_theta, theta):
    step = max(1, math.ceil(true_theta.size / SCATTER_POINTS))
    chosen = np.arange(0, true_theta.size, step)
    figure = _new_figure(5.0, 3.8)
    axes = figure.subplots()
    axes.scatter(true_theta[chosen], theta[chosen], s=5, alpha=0.35, color="#1f4e79",
                 linewidths=0)
    lower = float(min(true_theta.min(), theta.min(), -3.0))
    upper = float(max(true_theta.max(), theta.max(), 3.0))
    axes.plot([lower, upper], [lower, upper], color="gray", linewidth=0.8)
    axes.set_xlabel("true θ", fontsize=9)
    axes.set_ylabel("estimated θ", fontsize=9)
    _style_axes(axes, 8)
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.97)
    shown = (f"{chosen.size} of {true_theta.size} examinees (every {step}th)" if step > 1
             else f"all {true_theta.size} examinees")
    page.figure(figure, f"Final θ estimate against true θ, {shown}; the line is θ̂ = θ.",
                "Scatter plot of estimated theta against true theta with the identity line.")


def exposure_series(details):
    """The exposure figure's data: {"operational": (ids, rates), "pretest": (ids, rates)},
    each highest rate first (ties in bank order); rates ndarray (n_kind,). Pretest items
    (``details["pretest"]``, none when absent) are kept apart, as the report's JSON keeps
    them out of its exposure figures."""
    rates = np.asarray(details["exposure"], dtype=float)
    ids = list(details.get("item_ids") or [f"item {j + 1}" for j in range(rates.size)])
    pretest = np.asarray(details.get("pretest") or [False] * rates.size, dtype=bool)
    series = {}
    for name, members in (("operational", np.flatnonzero(~pretest)),
                          ("pretest", np.flatnonzero(pretest))):
        order = members[np.argsort(-rates[members], kind="stable")]
        series[name] = ([ids[j] for j in order], rates[order])
    return series


def _exposure_section(page, report, details):
    series = exposure_series(details)
    ids, rates = series["operational"]
    pretest_ids, pretest_rates = series["pretest"]
    target = details.get("exposure_target") \
        if details.get("exposure_method", "none") != "none" else None
    figure = _new_figure(8.0, 3.4)
    bar_axes, histogram_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    bar_axes.bar(np.arange(1, rates.size + 1), rates, width=1.0, color="#1f4e79",
                 linewidth=0, label="operational")
    if pretest_rates.size:      # after the operational bars, in their own colour
        bar_axes.bar(np.arange(rates.size + 1, rates.size + pretest_rates.size + 1),
                     pretest_rates, width=1.0, color=PRETEST_COLOR, linewidth=0,
                     label="pretest (unscored)")
    bar_axes.set_xlim(0.5, rates.size + pretest_rates.size + 0.5)
    bar_axes.set_xlabel("items, most exposed first"
                        + (" (operational, then pretest)" if pretest_rates.size else ""),
                        fontsize=9)
    bar_axes.set_ylabel("exposure rate", fontsize=9)
    highest = max(float(rates.max(initial=0.0)), float(pretest_rates.max(initial=0.0)), 1e-9)
    histogram_axes.hist(rates, bins=np.linspace(0.0, highest, 21), color="#1f4e79",
                        alpha=0.85)
    histogram_axes.set_xlabel("exposure rate (operational items)", fontsize=9)
    histogram_axes.set_ylabel("items", fontsize=9)
    if target is not None:
        bar_axes.axhline(target, color=FLAG_COLOR, linewidth=1.0, linestyle="--",
                         label=f"target {target:g}")
    if target is not None or pretest_rates.size:
        bar_axes.legend(fontsize=7, frameon=False)
    for axes in (bar_axes, histogram_axes):
        _style_axes(axes, 8)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.95, wspace=0.25)
    exposure = report.get("exposure", {})
    pretest_text = (f" The {pretest_rates.size} pretest items (unscored, kept out of every "
                    f"summary figure) are the last bars: highest "
                    f"{_number(float(pretest_rates.max()))}." if pretest_rates.size else "")
    page.add('<div class="columns">')
    page.figure(figure,
                f"Exposure rates of the {rates.size} "
                f"{'operational ' if pretest_rates.size else ''}items: sorted (left"
                f"{'' if target is None else '; the dashed line is the target'}) and their "
                f"distribution (right). Highest "
                f"{_number(exposure.get('max'))}, mean {_number(exposure.get('mean'))}, "
                f"never used {_number(exposure.get('unused_share'))} of the items."
                + pretest_text,
                "Bar chart of every item's exposure rate sorted from the most exposed, and a "
                "histogram of the exposure rates.")
    top = range(min(10, rates.size))
    page.add(_table(["Item", "Exposure rate"],
                    [[_cell(ids[j]), _cell(_number(rates[j]), True)] for j in top],
                    "top-exposure", caption="Most exposed operational items"))
    if pretest_rates.size:
        page.add(_table(["Item", "Exposure rate"],
                        [[_cell(item), _cell(_number(rate), True)]
                         for item, rate in zip(pretest_ids, pretest_rates, strict=True)],
                        "pretest-exposure", caption="Pretest items (unscored)"))
    page.add("</div>")


def _length_figure(page, lengths, mean_length):
    figure = _new_figure(5.0, 3.8)
    axes = figure.subplots()
    low, high = int(lengths.min()), int(lengths.max())
    axes.hist(lengths, bins=np.arange(low - 0.5, high + 1.5, 1.0), color="#1f4e79", alpha=0.85)
    axes.axvline(float(lengths.mean()), color=FLAG_COLOR, linewidth=1.0, linestyle="--",
                 label=f"mean {_number(mean_length, 3)}")
    axes.legend(fontsize=7, frameon=False)
    axes.set_xlabel("test length (scored items)", fontsize=9)
    axes.set_ylabel("examinees", fontsize=9)
    _style_axes(axes, 8)
    figure.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.97)
    page.figure(figure, f"Test length distribution of the {lengths.size} examinees (from "
                f"{low} to {high} items; mean {_number(mean_length, 3)}).",
                "Histogram of test lengths with the mean marked by a dashed line.")


def _classification_section(page, report, details):
    overall = report.get("classification")
    bins = details.get("classification_by_theta")
    if not overall:
        page.note("The configuration does not classify (no stop.classification).")
        return
    if not bins:
        page.note(f"Classification accuracy: {_number(overall.get('accuracy'))} (no true "
                  "abilities to break it down by θ).")
        return
    theta = np.array([row["theta"] for row in bins], dtype=float)
    accuracy = np.array([np.nan if row["accuracy"] is None else row["accuracy"]
                         for row in bins], dtype=float)
    figure = _new_figure(5.6, 3.6)
    axes = figure.subplots()
    axes.bar(theta, np.nan_to_num(accuracy), width=0.7, color="#1f4e79", alpha=0.85)
    for x, row in zip(theta, bins, strict=True):
        axes.text(x, 0.03, f"n = {row['n']}", ha="center", fontsize=7, color="white")
    axes.axhline(overall["accuracy"], color=FLAG_COLOR, linewidth=1.0, linestyle="--",
                 label=f"overall {_number(overall['accuracy'])}")
    if details.get("cut") is not None:
        axes.axvline(details["cut"], color="gray", linewidth=0.8, linestyle=":",
                     label=f"cut {details['cut']:g}")
    axes.set_ylim(0.0, 1.15)
    axes.set_xlabel("true θ (bin centre)", fontsize=9)
    axes.set_ylabel("accuracy", fontsize=9)
    axes.legend(fontsize=7, frameon=False, loc="upper center", ncol=2)
    _style_axes(axes, 8)
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.14, top=0.97)
    page.add('<div class="columns">')
    page.figure(figure, f"Classification accuracy by true θ (overall "
                f"{_number(overall['accuracy'])}); bars are the bins of the conditional table.",
                "Bar chart of the share of correct pass/fail decisions in each true-theta bin, "
                "with the overall accuracy as a dashed line.")
    page.add(_table(["θ", "n", "accuracy"],
                    [[_cell(_number(row["theta"], 1), True), _cell(_number(row["n"]), True),
                      _cell(_number(row["accuracy"]), True)] for row in bins],
                    "classification", caption="Classification accuracy by true θ"))
    page.add("</div>")
