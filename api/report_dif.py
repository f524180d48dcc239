"""The bank report's DIF section: the results of `irtcat dif --format json` or of
POST /v1/dif (the same document), shown beside the bank they were run against.

Mantel-Haenszel results: a summary (groups, matching, purification, persons) and one
row per item with delta_MH, its SE, the chi-square's p, the ETS class (A negligible,
B moderate, C large), whether it is flagged, the expected-score differences between
the groups' curves and the reason an item was not tested; items of class B or C are
marked and listed first. Likelihood-ratio results: X2, df, p (and adjusted) per item.
"""

from __future__ import annotations

from irtcat.itembank.errors import DataFormatError

from .report import _cell, _esc, _key_value_table, _number, _table

MH_HEADER = ("Item", "In bank", "ETS class", "Flagged", "delta MH", "SE delta", "p",
             "alpha MH", "n reference", "n focal", "Signed diff.", "Unsigned diff.", "Note")
LR_HEADER = ("Item", "In bank", "X2", "df", "p", "p adjusted", "AIC diff.", "Note")


def check_dif_document(document):
    """DataFormatError (one line) unless `document` is a DIF document: an object with
    method "mh" or "lr" and a list of item rows, each with an "item"."""
    if not isinstance(document, dict) or document.get("method") not in ("mh", "lr"):
        raise DataFormatError('a DIF document is the JSON of `irtcat dif --format json`: '
                              'an object with "method" mh or lr')
    rows = document.get("items")
    if not isinstance(rows, list) or not all(isinstance(row, dict) and "item" in row
                                             for row in rows):
        raise DataFormatError('a DIF document has "items": a list of objects with "item"')
    return document


def dif_section(page, document, bank_item_ids):
    """Add the DIF section of `document` (checked by `check_dif_document`) to `page`;
    `bank_item_ids` are the report's items, to mark rows of items outside the bank."""
    check_dif_document(document)
    page.section("dif", "Differential item functioning")
    rows = document["items"]
    in_bank = set(bank_item_ids)
    page.add(_key_value_table(_summary_rows(document, rows, in_bank), caption="DIF"))
    if document["method"] == "mh":
        large = [row for row in rows if row.get("ets_class") in ("B", "C")]
        ordered = large + [row for row in rows if row not in large]
        cells = [_mh_cells(row, row["item"] in in_bank) for row in ordered]
        marks = [' class="flagged"' if row in large else "" for row in ordered]
        page.add(_table(MH_HEADER, cells, css="items", row_attributes=marks,
                        caption="Mantel-Haenszel DIF by item (classes B and C first)"))
        page.note("delta MH = -2.35 log(alpha MH): negative when the item favours the "
                  "reference group. ETS classes: A negligible (|delta| < 1 or not "
                  "significant), B moderate, C large (|delta| >= 1.5, significantly above "
                  "1). The differences are expected item scores, reference minus focal "
                  "curve, averaged over the focal group's theta distribution.")
    else:
        cells = [_lr_cells(row, row["item"] in in_bank) for row in rows]
        page.add(_table(LR_HEADER, cells, css="items",
                        caption="Likelihood-ratio DIF by item (multiple-group calibration)"))


def _summary_rows(document, rows, in_bank):
    reference = document.get("reference")
    if isinstance(reference, list):
        reference = ", ".join(str(code) for code in reference)
    purification = document.get("purification")
    summary = [("method", "Method", {"mh": "Mantel-Haenszel", "lr": "likelihood ratio"}[
                   document["method"]], False),
               ("focal", "Focal group", document.get("focal", ""), False),
               ("reference", "Reference group", reference or "", False),
               ("matching", "Matching", document.get("matching") or "", False)]
    if isinstance(purification, dict):
        summary.append(("purification", "Purification",
                        f"{purification.get('steps')} steps, "
                        + ("converged" if purification.get("converged") else
                           "NOT converged"), False))
    persons = document.get("persons")
    if isinstance(persons, dict):
        summary += [(f"persons.{name}", f"Persons: {name.replace('_', ' ')}",
                     _number(persons.get(name)), True)
                    for name in ("reference", "focal", "without_attribute") if name in persons]
    tested = sum(1 for row in rows if row.get("tested"))
    summary += [("items", "Items tested", f"{tested} of {len(rows)}", True),
                ("flagged", "Items flagged",
                 _number(sum(1 for row in rows if row.get("flagged"))), True),
                ("outside", "Items not in this bank",
                 _number(sum(1 for row in rows if row["item"] not in in_bank)), True)]
    for key in ("standard", "attribute", "bank_version"):
        if key in document:
            summary.append((key, key.replace("_", " ").capitalize(),
                            _number(document[key]) if key == "bank_version"
                            else document[key], key == "bank_version"))
    return summary


def _note(row):
    return "; ".join(text for text in (row.get("reason"), row.get("effect_reason")) if text)


def _mh_cells(row, in_bank):
    numbers = [_cell(_number(row.get(key), decimals), numeric=True) for key, decimals in (
        ("delta_mh", 3), ("se_delta", 3), ("p", 4), ("alpha_mh", 3), ("n_reference", 0),
        ("n_focal", 0), ("signed_difference", 3), ("unsigned_difference", 3))]
    return [f"<td>{_esc(row['item'])}</td>", _cell(_number(in_bank)),
            _cell(row.get("ets_class") or ""), _cell(_number(row.get("flagged"))),
            *numbers, _cell(_note(row))]


def _lr_cells(row, in_bank):
    numbers = [_cell(_number(row.get(key), decimals), numeric=True) for key, decimals in (
        ("X2", 3), ("df", 0), ("p", 4), ("p_adjusted", 4), ("AIC", 3))]
    return [f"<td>{_esc(row['item'])}</td>", _cell(_number(in_bank)), *numbers,
            _cell(row.get("reason") or "")]
