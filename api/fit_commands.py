"""`irtcat compare`: nested models fitted to the same responses, as mirt's ``anova``.

``irtcat compare DATA --model 1pl --model 2pl`` calibrates each model on DATA
(as `irtcat calibrate` does, without item fit) and prints mirt's
``anova(mod_1pl, mod_2pl)`` rows: AIC, SABIC, HQ, BIC, logLik and, from the
second model on, the likelihood-ratio X2 against the model before it with its
df and p. ``--bank A.json --bank B.json`` compares banks already calibrated on
DATA instead: their log-likelihood on DATA at their population and their
``calibration.n_parameters``. ``--m2`` adds each calibrated model's M2 row
(mirt's ``M2(mod)``). ``--json`` writes ``{"anova": [rows], "m2": {model: row}}``
with mirt's names.

The engine and the calibration load only when the command runs.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

ANOVA_COLUMNS = ("AIC", "SABIC", "HQ", "BIC", "logLik", "X2", "df", "p")
M2_COLUMNS = ("M2", "df", "p", "RMSEA", "RMSEA_5", "RMSEA_95", "SRMSR", "TLI", "CFI")


def add_commands(commands):
    """Register `irtcat compare` on the `irtcat` subparsers."""
    commands.add_parser("compare", help="compare nested models fitted to the same data "
                                        "(mirt's anova)", define=_define_compare)


def _define_compare(compare):
    from irtcat.api.arguments import model_name
    from irtcat.engine import MODELS

    compare.add_argument("data", metavar="DATA.csv", help="wide or long response CSV")
    compare.add_argument("--model", action="append", type=model_name, choices=MODELS,
                         help="a model to calibrate on DATA; give two or more, the one with "
                              "fewer parameters first (mirt's names too: Rasch, 2PL, ...)")
    compare.add_argument("--bank", action="append", metavar="BANK.json",
                         help="a bank calibrated on DATA, instead of --model; give two or more")
    compare.add_argument("--m2", action="store_true",
                         help="also each calibrated model's M2, RMSEA, SRMSR, TLI and CFI")
    compare.add_argument("--json", action="store_true", help="write JSON instead of a table")
    compare.add_argument("--out", metavar="FILE", help="default: standard output")
    compare.set_defaults(run=run_compare)


def run_compare(args):
    from irtcat.api.arguments import UsageError

    if bool(args.model) == bool(args.bank):
        raise UsageError("give two or more --model, or two or more --bank (not both)")
    if len(args.model or args.bank) < 2:
        raise UsageError("compare needs two or more models: repeat --model or --bank")
    if args.m2 and args.bank:
        raise UsageError("--m2 needs --model (the models calibrated here)")
    fitted, m2_rows = (_calibrated(args.data, args.model, args.m2) if args.model
                       else (_banks(args.data, args.bank), {}))
    from irtcat.calibration.model_fit import anova

    rows = [{key: None if isinstance(value, float) and value != value else value
             for key, value in row.as_dict().items()} for row in anova(fitted)]
    if args.json:
        text = json.dumps({"anova": rows, "m2": m2_rows}, indent=2, allow_nan=False) + "\n"
    else:
        text = _table(rows, m2_rows)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _calibrated(data_path, models, with_m2):
    """(name, logLik, n_parameters, N) per model, and each one's M2 row when asked (the
    bank record's ``calibration.model_fit``, under mirt's names)."""
    from irtcat.calibration.workflow import calibrate_document
    from irtcat.engine import ConvergenceWarning
    from irtcat.itembank import read_response_log

    data = read_response_log(data_path)
    fitted, m2_rows = [], {}
    for model in models:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            document, calibrator = calibrate_document(data, model, fit=with_m2)
        for warning in caught:
            if issubclass(warning.category, ConvergenceWarning):
                print(f"irtcat: warning: {model}: {warning.message}", file=sys.stderr)
        fitted.append((model, calibrator.log_likelihood_, calibrator.n_parameters_,
                       calibrator.n_persons_))
        if with_m2:
            record = document["calibration"].get("model_fit", {})
            m2_rows[model] = ({"reason": record["reason"]} if "reason" in record else
                              {name: record.get(name.lower()) for name in M2_COLUMNS})
    return fitted, m2_rows


def _banks(data_path, paths):
    """(name, logLik on DATA, n_parameters, N) of each bank (name: the file's stem)."""
    from irtcat.api.arguments import UsageError
    from irtcat.calibration.model_fit import marginal_log_likelihood
    from irtcat.itembank import align_responses, read_bank, read_responses

    data = read_responses(data_path)
    fitted = []
    for path in paths:
        bank = read_bank(path)
        n_parameters = (bank.calibration or {}).get("n_parameters")
        if not isinstance(n_parameters, int):
            raise UsageError(f"{path}: no calibration.n_parameters: compare banks written by "
                             "irtcat calibrate")
        responses, params, _ = align_responses(data, bank)
        log_likelihood = marginal_log_likelihood(
            responses, params, population_mean=bank.population["mean"],
            population_sd=bank.population["sd"])
        name = os.path.splitext(os.path.basename(path))[0]
        fitted.append((name, log_likelihood, n_parameters, responses.shape[0]))
    return fitted


def _table(rows, m2_rows):
    """mirt's printed anova (and M2) tables: a row per model, blanks for missing values."""
    lines = [_format_rows(ANOVA_COLUMNS, [(row["model"], row) for row in rows])]
    if m2_rows:
        lines.append("")
        reasons = [f"{name}: {row['reason']}" for name, row in m2_rows.items() if "reason" in row]
        lines.append(_format_rows(M2_COLUMNS, [(name, row) for name, row in m2_rows.items()
                                               if "reason" not in row]))
        lines += [f"M2 not computed for {reason}" for reason in reasons]
    return "\n".join(lines) + "\n"


def _format_rows(columns, named_rows):
    width = max([len(name) for name, _ in named_rows] + [5])
    header = " " * width + "".join(f"{column:>12}" for column in columns)
    out = [header]
    for name, row in named_rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if value is None or (isinstance(value, float) and value != value):
                cells.append(" " * 12)
            elif column == "df":
                cells.append(f"{int(value):>12d}")
            elif column in ("p", "TLI", "CFI") or column.startswith(("RMSEA", "SRMSR")):
                cells.append(f"{value:>12.4g}" if 0 < abs(value) < 1e-3 else f"{value:>12.4f}")
            else:
                cells.append(f"{value:>12.3f}")
        out.append((f"{name:<{width}}" + "".join(cells)).rstrip())
    return "\n".join(out)
