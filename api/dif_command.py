"""`irtcat dif`: differential item functioning between two groups of persons.

Mantel-Haenszel (`calibration.dif`, as difR's difMH) matched on the total score for
complete data, or on the EAP theta for data with missing answers (sparse designs,
adaptive tests); effect sizes from each group's item curves (`calibration.dif_effect`);
or the likelihood-ratio test of `calibration.multigroup` (`--method lr`).

Output, one row per item: CSV by default, or with `--format json` a document
{"method", "matching", "reference", "focal", "purification", "items": [rows]}.
Libraries are imported when the command runs, so `irtcat --help` stays light.
"""

from __future__ import annotations

import sys

MH_COLUMNS = ("item", "tested", "reason", "n_reference", "n_focal", "mh_chi2", "p",
              "alpha_mh", "var_lambda", "delta_mh", "se_delta", "flagged", "ets_class_difR",
              "ets_class", "signed_difference", "unsigned_difference", "effect_reason")
LR_COLUMNS = ("item", "tested", "reason", "AIC", "SABIC", "HQ", "BIC", "X2", "df", "p",
              "p_adjusted")

HELP = """\
Mantel-Haenszel (--method mh, default) compares the focal group with the other persons
at equal values of a matching variable: the total score over the anchor items plus the
studied item when every person answered every item (as difR's difMH), else the EAP
theta over the same items, in strata of --stratum-width (--match forces either).
Purification (--purify) re-matches on the items not flagged until the flagged set
repeats (at most 10 steps); --anchor fixes the matching items instead. Columns:
item, tested, reason (why an item is not tested), n_reference, n_focal, mh_chi2
(continuity-corrected), p, alpha_mh (> 1: favours the reference group), var_lambda
(variance of log alpha_mh), delta_mh = -2.35 log(alpha_mh), se_delta, flagged
(chi2 > 3.841), ets_class_difR (difR's |delta| code), ets_class (ETS rule with
significance), signed_difference and unsigned_difference (expected item score,
reference minus focal curve, averaged over the focal theta distribution; from a
calibration of each group linked on the unflagged or anchor items), effect_reason.
--method lr: likelihood-ratio test per item (multiple-group calibration): item, tested,
reason, AIC, SABIC, HQ, BIC, X2, df, p, p_adjusted and <parameter>_<group> columns.
--format json writes {"method", "matching", "reference", "focal", "purification",
"items": [one object per row]}."""


def add_command(commands):
    """Register `irtcat dif` on the `irtcat` subparsers."""
    commands.add_parser("dif", help="differential item functioning between two groups "
                        "(Mantel-Haenszel or likelihood ratio)", define=_define_dif,
                        epilog=HELP)


def _define_dif(dif):
    import argparse

    from irtcat.api.arguments import HelpFormatter, model_name, positive_number, whole_number
    from irtcat.engine import MODELS

    class Formatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
        """Each option's default, and the epilog's line breaks kept."""

    dif.formatter_class = Formatter
    dif.add_argument("data", metavar="DATA.csv",
                     help="wide response CSV with a group column (or long CSV with --groups)")
    dif.add_argument("--group", required=True, metavar="COLUMN",
                     help="the column holding each person's group code")
    dif.add_argument("--groups", metavar="PERSONS.csv",
                     help="person attribute file (person_id,COLUMN,...) for a long DATA file")
    source = dif.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=model_name, choices=MODELS,
                        help="model of every item (calibrated on the pooled groups for theta "
                             "matching, on each group for effect sizes)")
    source.add_argument("--bank", metavar="BANK.json",
                        help="a calibrated bank: its parameters give the EAP theta matching")
    options = {
        "--method": dict(type=str.lower, choices=("mh", "lr"), default="mh",
                         help="mh: Mantel-Haenszel; lr: likelihood ratio (multiple groups)"),
        "--match": dict(choices=("auto", "score", "theta"), default="auto",
                        help="MH matching variable; auto: score for complete data, else theta"),
        "--purify": dict(action="store_true",
                         help="iterative purification of the matching variable (MH)"),
        "--anchor": dict(metavar="ITEM,...", help="items known free of DIF: the matching (MH) "
                                                  "or anchor (lr) items"),
        "--focal": dict(metavar="CODE", help="the focal group's code (default: the last code "
                        "in sorted order); every other person is in the reference group"),
        "--stratum-width": dict(type=positive_number(6.0), default=0.25,
                                help="width of the theta strata of theta matching"),
        "--min-answers": dict(type=whole_number(1), default=20, help="fewest answers per "
                              "group for theta-matched MH to test an item"),
        "--no-effect-size": dict(action="store_true",
                                 help="skip the group calibrations behind the effect sizes"),
        "--format": dict(choices=("csv", "json"), default="csv", help="output format"),
        "--out": dict(metavar="FILE", help="default: standard output"),
    }
    for flag, settings in options.items():
        dif.add_argument(flag, **settings)
    dif.set_defaults(run=run_dif)


def _sorted_codes(codes):
    def key(code):
        try:
            return (0, float(code), code)
        except ValueError:
            return (1, 0.0, code)
    return sorted(set(codes), key=key)


def _roles(data, args):
    """(reference code or None for "every other", focal code, bool focal per person)."""
    import numpy as np

    from irtcat.api.arguments import UsageError

    codes = _sorted_codes(data.groups)
    if len(codes) < 2:
        raise UsageError(f"column {args.group!r} holds one group only ({codes[0]!r}): DIF "
                         "compares two groups" if codes else f"no persons in {args.data}")
    focal = codes[-1] if args.focal is None else args.focal
    if focal not in codes:
        raise UsageError(f"--focal {focal!r} is not a group of column {args.group!r} "
                         f"(codes: {', '.join(codes[:10])})")
    others = [code for code in codes if code != focal]
    is_focal = np.array([code == focal for code in data.groups])
    return others, focal, is_focal


def _anchor_list(text, item_ids):
    from irtcat.api.arguments import UsageError

    if text is None:
        return None
    anchors = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in anchors if item not in item_ids]
    if unknown:
        raise UsageError(f"--anchor item {unknown[0]!r} is not an item of the data")
    if not anchors:
        raise UsageError("--anchor names no item")
    if len(set(anchors)) == len(item_ids):
        raise UsageError("--anchor names every item: none would be left to test")
    return anchors


def run_dif(args):
    from irtcat.api.arguments import UsageError
    from irtcat.itembank import read_bank, read_responses

    data = read_responses(args.data, group=args.group, groups_path=args.groups)
    others, focal, is_focal = _roles(data, args)
    anchors = _anchor_list(args.anchor, data.item_ids)
    bank = read_bank(args.bank) if args.bank else None
    if args.method == "lr":
        if args.purify:
            raise UsageError("--purify applies to --method mh")
        rows, columns, extra = _likelihood_ratio(data, args, bank, others[0], anchors)
    else:
        if args.purify and anchors:
            raise UsageError("--purify and --anchor exclude each other: purification finds "
                             "the anchor items itself")
        rows, columns, extra = _mantel_haenszel(data, args, bank, is_focal, anchors)
    document = {"method": args.method, "reference": others[0] if len(others) == 1 else others,
                "focal": focal, **extra, "items": rows}
    _write(document, columns, args)
    return 0


def _models(args, bank):
    """--model, or each item's model in --bank."""
    return args.model or {item["id"]: item["model"] for item in bank.items}


def _mantel_haenszel(data, args, bank, is_focal, anchors):
    import numpy as np

    from irtcat.api.arguments import UsageError
    from irtcat.calibration.dif import eap_matching, mh_dif_score, mh_dif_theta

    complete = not np.isnan(data.responses).any()
    matching = args.match if args.match != "auto" else "score" if complete else "theta"
    if matching == "score":
        if not complete:
            raise UsageError("--match score needs every person to answer every item; use "
                             "--match theta for data with missing answers")
        analysis = mh_dif_score(data.responses, is_focal, data.item_ids, anchors=anchors,
                                purify=args.purify)
    else:
        params, mean, sd = _matching_parameters(data, args, bank)
        estimate = eap_matching(data.responses, params, prior_mean=mean, prior_sd=sd)
        analysis = mh_dif_theta(data.responses, is_focal, data.item_ids, estimate,
                                anchors=anchors, purify=args.purify, width=args.stratum_width,
                                min_answers=args.min_answers)
    rows = [dict(vars(result)) for result in analysis.items]
    if not args.no_effect_size:
        _add_effects(rows, data, is_focal, _models(args, bank),
                     anchors or [r["item"] for r in rows if not r["flagged"]])
    extra = {"matching": matching,
             "purification": {"steps": len(analysis.steps) - 1,
                              "flagged_by_step": analysis.steps,
                              "converged": analysis.converged} if analysis.purified else None}
    if analysis.purified:
        print(f"purification: {len(analysis.steps) - 1} steps, "
              f"{'converged' if analysis.converged else 'NOT converged'}; "
              f"{len(analysis.flagged)} items flagged", file=sys.stderr)
    return rows, MH_COLUMNS, extra


def _matching_parameters(data, args, bank):
    """(ItemParameters of the data's items, {prior_mean, prior_sd}) for EAP matching."""
    from irtcat.calibration.workflow import calibrate_document
    from irtcat.engine.models import parameters_from_entries
    from irtcat.itembank import align_responses

    if bank is not None:
        _, params, _ = align_responses(data, bank)
        return params, bank.population["mean"], bank.population["sd"]
    document, _ = calibrate_document(data, args.model, fit=False)
    excluded = document["calibration"].get("excluded")
    if excluded:
        from irtcat.calibration.workflow import CalibrationInputError

        raise CalibrationInputError(f"item {excluded[0]['id']!r} cannot be calibrated for "
                                    f"theta matching: {excluded[0]['reason']}")
    population = document["population"]
    return parameters_from_entries(document["items"]), population["mean"], population["sd"]


def _add_effects(rows, data, is_focal, models, anchors):
    from irtcat.calibration.dif_effect import effect_columns

    columns, failure = effect_columns(data, is_focal, models, anchors)
    if failure:
        print(f"irtcat: warning: {failure}", file=sys.stderr)
    for row in rows:
        row.update(columns[row["item"]])


def _likelihood_ratio(data, args, bank, reference, anchors):
    from irtcat.api.arguments import UsageError
    from irtcat.calibration.dif import likelihood_ratio_rows
    from irtcat.calibration.multigroup import likelihood_ratio_dif

    model = args.model
    if model is None:
        kinds = set(bank.params.model)
        if len(kinds) != 1:
            raise UsageError("--method lr needs one model for every item: give --model")
        model = kinds.pop()
    results = likelihood_ratio_dif(data, model, reference=reference, anchors=anchors)
    parameter_columns = sorted({f"{name}_{code}" for result in results
                                for code, values in result.get("groups", {}).items()
                                for name in values})
    rows = likelihood_ratio_rows(results, data.item_ids, anchors)
    return rows, LR_COLUMNS + tuple(parameter_columns), {"matching": None,
                                                          "purification": None}


def _cell(value):
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _json_value(value):
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write(document, columns, args):
    import csv
    import io

    from irtcat.itembank.io import write_atomically, write_json

    if args.format == "json":
        document["items"] = [{key: _json_value(row.get(key)) for key in columns}
                             for row in document["items"]]
        write_json(document, args.out, sys.stdout)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in document["items"]:
        writer.writerow([_cell(row.get(key)) for key in columns])
    if args.out is None:
        sys.stdout.write(buffer.getvalue())
    else:
        write_atomically(args.out, lambda handle: handle.write(buffer.getvalue()))
