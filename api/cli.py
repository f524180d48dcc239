"""The `irtcat` command line.

Exit status: 0 on success; 2 with one line on stderr for bad input or usage;
1 for an internal failure (one line, the traceback only with IRTCAT_DEBUG=1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
import warnings

import numpy as np

from irtcat.api.demo import add_command as add_demo_command
from irtcat.api.report import bank_report, simulation_details, simulation_report_html
from irtcat.api.serve import add_commands as add_server_commands
from irtcat.api.store_commands import STORE_ERRORS
from irtcat.api.store_commands import add_commands as add_store_commands
from irtcat.api.worker import add_command as add_worker_command
from irtcat.calibration.linking import METHODS as LINK_METHODS
from irtcat.calibration.linking import link_banks
from irtcat.calibration.mml_em import M_STEPS, Priors
from irtcat.calibration.workflow import CalibrationInputError, calibrate_document
from irtcat.engine import (
    METHODS,
    MODELS,
    ConvergenceWarning,
    InvalidParameterError,
    InvalidResponsesError,
)
from irtcat.engine import estimate_theta as _estimate_theta
from irtcat.engine.simulate import report as simulation_report
from irtcat.engine.simulate import timed_run, tune_sympson_hetter
from irtcat.itembank import (
    DataFormatError,
    align_responses,
    read_bank,
    read_item_tags,
    read_json,
    read_response_log,
    read_responses,
    read_table_columns,
    write_bank,
    write_json,
    write_persons,
    write_scores,
)
from irtcat.itembank.cat_config import design_from_config
from irtcat.itembank.io import write_atomically


class UsageError(Exception):
    """Bad command-line usage or input: exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _build_parser():
    parser = _Parser(prog="irtcat", description="Adaptive assessment engine.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    score = commands.add_parser("score", help="score persons from their responses")
    score.add_argument("data", metavar="DATA.csv", help="wide or long response CSV")
    score.add_argument("--bank", required=True, metavar="BANK.json", help="irtcat-bank/1 document")
    score.add_argument("--method", choices=METHODS, default="eap")
    score.add_argument("--out", metavar="SCORES.csv", help="default: standard output")
    score.add_argument("--prior-mean", type=_finite_float,
                       help="default: the bank's population mean")
    score.add_argument("--prior-sd", type=_positive_float, help="default: the bank's population sd")
    score.add_argument("--quadpts", type=_node_count, default=121,
                       help="EAP quadrature nodes on [-6, 6] (default 121, as mirt)")
    score.set_defaults(run=run_score)

    calibrate = commands.add_parser("calibrate", help="estimate item parameters by MML-EM")
    calibrate.add_argument("data", metavar="DATA.csv", help="wide or long response CSV")
    calibrate.add_argument("--model", choices=MODELS,
                           help="model of every item (default: each item's model in --bank)")
    calibrate.add_argument("--out", metavar="BANK.json", help="default: standard output")
    calibrate.add_argument("--bank", metavar="BANK.json",
                           help="a bank tagging items by standard (and model); parameters optional")
    calibrate.add_argument("--standard", metavar="CODE",
                           help="calibrate this standard's items only")
    calibrate.add_argument("--by-standard", metavar="BANK.json",
                           help="calibrate each standard tagged in BANK.json; --out names a folder")
    calibrate.add_argument("--anchor", metavar="BANK.json",
                           help="keep these items' parameters: new items join the anchor's scale")
    calibrate.add_argument("--se", action="store_true", help="standard errors of the parameters")
    calibrate.add_argument("--priors", action="store_true",
                           help="Bayes-modal M-step with the default priors (see --prior-*)")
    for name, text in (("a", "MEANLOG,SDLOG lognormal prior on a (default 0,0.5)"),
                       ("b", "MEAN,SD normal prior on b (default 0,2)"),
                       ("c", "ALPHA,BETA beta prior on c (default 5,17)"),
                       ("u", "ALPHA,BETA beta prior on u (default 17,5)")):
        calibrate.add_argument(f"--prior-{name}", type=_shape_pair if name in "cu" else _pair,
                               metavar="X,Y", help=text)
    calibrate.add_argument("--quadpts", type=_node_count, default=61)
    calibrate.add_argument("--max-iter", type=_positive_int, default=500)
    calibrate.add_argument("--tol", type=_positive_float, default=1e-4)
    calibrate.add_argument("--m-step", choices=M_STEPS, default="mirt",
                           help="mirt: R mirt's EM path and estimates (default); newton: each "
                                "M-step solved exactly, to the maximum where mirt stops short")
    calibrate.add_argument("--no-fit", action="store_true", help="skip the item fit statistics")
    calibrate.add_argument("--quiet", action="store_true", help="no progress on stderr")
    calibrate.set_defaults(run=run_calibrate)

    link = commands.add_parser("link", help="put a bank on another bank's scale")
    link.add_argument("new", metavar="NEW.json", help="the bank to transform")
    link.add_argument("--to", required=True, metavar="OLD.json", help="the bank whose scale to use")
    link.add_argument("--method", choices=LINK_METHODS, default="stocking-lord")
    link.add_argument("--out", metavar="BANK.json", help="default: standard output")
    link.set_defaults(run=run_link)

    simulate = commands.add_parser("simulate", help="simulate adaptive tests on a bank")
    simulate.add_argument("--bank", required=True, metavar="BANK.json")
    simulate.add_argument("--config", required=True, metavar="CAT.json",
                          help="the CAT configuration (spec/FORMATS.md)")
    simulate.add_argument("--examinees", type=_positive_int, default=1000)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--out", metavar="REPORT.json", help="default: standard output")
    simulate.add_argument("--theta", metavar="THETAS.csv",
                          help="true abilities person_id,theta (default: drawn from the prior)")
    simulate.add_argument("--responses", metavar="MATRIX.csv",
                          help="replay these answers (wide CSV, every item of the bank)")
    simulate.add_argument("--persons", metavar="PERSONS.csv",
                          help="write person_id,true_theta,theta,se,length,items")
    simulate.add_argument("--save-design", metavar="CAT.json",
                          help="write the configuration with tuned Sympson-Hetter parameters")
    simulate.add_argument("--report", metavar="REPORT.html",
                          help="also write an HTML report with plots (self-contained)")
    simulate.set_defaults(run=run_simulate)

    report = commands.add_parser("report", help="an HTML report of a bank: parameters, fit, "
                                 "curves, test information")
    report.add_argument("bank", metavar="BANK.json", help="irtcat-bank/1 document")
    report.add_argument("--out", metavar="REPORT.html", help="default: standard output")
    report.add_argument("--title", help="the page's title (default: from the file name)")
    report.set_defaults(run=run_report)

    add_store_commands(commands)
    add_server_commands(commands)
    add_worker_command(commands)
    add_demo_command(commands)
    return parser


def _positive_float(text):
    value = float(text)
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _pair(text):
    try:
        first, second = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers X,Y, got {text!r}") from None
    if not (np.isfinite(first) and np.isfinite(second)) or second <= 0:
        raise argparse.ArgumentTypeError(f"expected finite X and a positive Y, got {text!r}")
    return first, second


def _shape_pair(text):
    """ALPHA,BETA of a beta prior: both positive."""
    first, second = _pair(text)
    if first <= 0:
        raise argparse.ArgumentTypeError(f"alpha and beta must be positive, got {text!r}")
    return first, second


def _finite_float(text):
    value = float(text)
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _node_count(text):
    value = int(text)
    if value < 5:
        raise argparse.ArgumentTypeError(f"needs at least 5 nodes, got {text}")
    return value


def _score(data_path, bank_path, method, prior_mean=None, prior_sd=None, quadpts=121):
    bank = read_bank(bank_path)
    data = read_responses(data_path)
    responses, params, _ = align_responses(data, bank)
    estimate = _estimate_theta(
        responses, params, method,
        prior_mean=bank.population["mean"] if prior_mean is None else prior_mean,
        prior_sd=bank.population["sd"] if prior_sd is None else prior_sd, n_nodes=quadpts)
    return data, bank, estimate


def run_score(args):
    data, _, estimate = _score(args.data, args.bank, args.method, args.prior_mean, args.prior_sd,
                               args.quadpts)
    write_scores(data.person_ids, estimate, path=args.out, stream=sys.stdout)
    return 0


def _priors(args):
    chosen = {key: getattr(args, f"prior_{key}") for key in "abcu"}
    if args.priors:
        defaults = vars(Priors.defaults())
        chosen = {key: value or defaults[key] for key, value in chosen.items()}
    if not any(chosen.values()):
        return None
    return Priors(**chosen)


class _Progress:
    """EM progress on stderr, once a run has taken more than a couple of seconds."""

    def __init__(self, quiet, label=""):
        self.quiet, self.label, self.shown = quiet, label, False

    def __call__(self, cycle, loglik, change, seconds):
        if self.quiet or seconds < 2.0:
            return
        self.shown = True
        print(f"{self.label}cycle {cycle:4d}  loglik {loglik:.4f}  largest change {change:.2e}"
              f"  {seconds:.1f} s", file=sys.stderr)


def _calibrate_one(args, data, models, anchors, standards, standard=None):
    label = f"[{standard}] " if standard and args.by_standard else ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        document, calibrator = calibrate_document(
            data, models, anchors=anchors, standards=standards, standard=standard,
            priors=_priors(args), standard_errors=args.se, n_nodes=args.quadpts,
            max_iter=args.max_iter, tol=args.tol, m_step=args.m_step, fit=not args.no_fit,
            progress=_Progress(args.quiet, label))
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            print(f"irtcat: warning: {label}{warning.message}", file=sys.stderr)
    if not args.quiet:
        record = document["calibration"]
        flagged = sum(1 for item in document["items"] if item.get("fit", {}).get("flagged"))
        excluded = len(record.get("excluded", []))
        print(f"{label}{len(document['items'])} items, {record['n_persons']} persons: loglik "
              f"{record['loglik']:.4f}, {'converged' if record['converged'] else 'NOT converged'}"
              f" in {record['iterations']} cycles, {record['seconds']:.2f} s; "
              f"{flagged} flagged by fit, {excluded} excluded", file=sys.stderr)
    return document


def run_calibrate(args):
    data = read_response_log(args.data)
    tags = read_item_tags(args.bank or args.by_standard) if (args.bank or args.by_standard) \
        else {}
    anchors = {}
    if args.anchor:
        anchor_bank = read_bank(args.anchor)
        anchors = {item["id"]: item for item in anchor_bank.items}
        tags = {**{i: {"standard": d.get("standard"), "model": d["model"]}
                   for i, d in anchors.items()}, **tags}
    if args.model is not None:
        models = args.model
    elif tags:
        models = {item: tag["model"] for item, tag in tags.items() if tag["model"]}
    else:
        raise UsageError("--model is required unless --bank gives each item's model")
    standards = {item: tag["standard"] for item, tag in tags.items() if tag["standard"]}
    if args.by_standard:
        if not args.out:
            raise UsageError("--by-standard writes one bank per standard: give --out FOLDER")
        codes = sorted({standards[item] for item in data.item_ids if item in standards})
        if not codes:
            raise UsageError("no item of the data is tagged with a standard in --by-standard")
        documents = {code: _calibrate_one(args, data, models, anchors, standards, code)
                     for code in codes}
        os.makedirs(args.out, exist_ok=True)
        for code, document in documents.items():
            write_json(document, os.path.join(args.out, f"{code}.json"))
        return 0
    document = _calibrate_one(args, data, models, anchors, standards, args.standard)
    write_json(document, args.out, sys.stdout)
    return 0


def run_link(args):
    new_bank, old_bank = read_bank(args.new), read_bank(args.to)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            constants, linked = link_banks(new_bank, old_bank, args.method,
                                           to=os.path.basename(args.to))
        except ValueError as error:
            raise UsageError(str(error)) from None
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            print(f"irtcat: warning: {warning.message}", file=sys.stderr)
    summary = (f"A = {constants.A:.6f}  B = {constants.B:.6f}  ({constants.method}, "
               f"{constants.n_common} common items)")
    print(summary, file=sys.stdout if args.out else sys.stderr)
    write_bank(linked, args.out, sys.stdout)
    return 0


def _true_thetas(path):
    table = read_table_columns(path, ["person_id", "theta"])
    return list(table["person_id"]), table["theta"].to_numpy(float)


def run_simulate(args):
    bank = read_bank(args.bank)
    config = read_json(args.config)
    try:
        design = design_from_config(config, bank)
    except DataFormatError as error:
        raise UsageError(f"{args.config}: {error}") from None
    rng = np.random.default_rng(args.seed)
    true_theta, replay, person_ids = None, None, None
    if args.responses:
        data = read_responses(args.responses)
        missing = sorted(set(bank.item_ids) - set(data.item_ids))
        if missing:
            raise UsageError(f"{args.responses}: no column for bank item {missing[0]!r}: a "
                             "replay needs every item's answer")
        responses, _, _ = align_responses(data, bank)
        column = {item: j for j, item in enumerate(data.item_ids)}
        order = [column[item] for item in bank.item_ids]
        replay = responses[:, order]
        if np.isnan(replay).any():
            row, col = np.argwhere(np.isnan(replay))[0]
            raise UsageError(f"{args.responses}: person {data.person_ids[row]} has no answer to "
                             f"{bank.item_ids[col]!r}")
        replay = replay.astype(np.intp)
        person_ids = data.person_ids
    if args.theta:
        theta_ids, true_theta = _true_thetas(args.theta)
        if len(set(theta_ids)) != len(theta_ids):
            raise UsageError(f"{args.theta}: a person_id appears twice")
        if replay is not None:
            lookup = dict(zip(theta_ids, true_theta, strict=True))
            unmatched = [person for person in person_ids if person not in lookup]
            if unmatched or len(theta_ids) != len(person_ids):
                raise UsageError("--theta and --responses must hold the same persons"
                                 + (f": no theta for {unmatched[0]!r}" if unmatched else ""))
            true_theta = np.array([lookup[person] for person in person_ids])
        person_ids = person_ids or theta_ids
    if true_theta is None and replay is None:
        true_theta = rng.normal(design.prior_mean, design.prior_sd, args.examinees)
    if (replay.shape[0] if replay is not None else true_theta.size) == 0:
        raise UsageError("no examinees to simulate: the --theta or --responses file has no rows")
    if person_ids is None:
        person_ids = [f"sim{i + 1}" for i in range(true_theta.size)]
    tuning = None
    if design.exposure == "sympson-hetter" and design.sympson_hetter is None:
        started = time.perf_counter()
        parameters, history = tune_sympson_hetter(bank.params, design, rng)
        design = dataclasses.replace(design, sympson_hetter=parameters)
        tuning = {"rounds": len(history), "max_exposure_by_round": history,
                  "seconds": round(time.perf_counter() - started, 3)}
        if args.save_design:
            saved = json.loads(json.dumps(config))
            saved.setdefault("exposure", {})["parameters"] = {
                item: round(float(k), 6) for item, k in zip(bank.item_ids, parameters,
                                                            strict=True) if k < 1}
            write_json(saved, args.save_design)
    batches, seconds = timed_run(bank.params, design, rng, true_theta=true_theta,
                                 responses=replay)
    result = simulation_report(batches, design, seconds, true_theta=true_theta, seed=args.seed)
    if tuning:
        result["sympson_hetter_tuning"] = tuning
    if args.persons:
        write_persons(args.persons, person_ids, true_theta, batches, bank.item_ids)
    if args.report:
        details = simulation_details(batches, design, bank.item_ids, true_theta=true_theta)
        title = (f"CAT simulation: {os.path.basename(args.bank)} with "
                 f"{os.path.basename(args.config)}")
        _write_text(simulation_report_html(result, details, title=title), args.report)
    write_json(result, args.out, sys.stdout)
    return 0


def _write_text(text, path=None, stream=None):
    """`text` (a string, or a function making it) to `path` (atomically) or to `stream`.

    A function is called once the file is open: an unwritable path fails first."""
    if path is None:
        stream.write(text() if callable(text) else text)
    else:
        write_atomically(path, lambda handle: handle.write(text() if callable(text) else text))


def run_report(args):
    document = read_json(args.bank)
    title = args.title or f"Item bank report: {os.path.basename(args.bank)}"

    def page():
        try:
            return bank_report(document, title=title)
        except DataFormatError as error:
            raise DataFormatError(f"{args.bank}: {error}") from None

    _write_text(page, args.out, sys.stdout)
    return 0


def main(argv=None):
    """Entry point of the `irtcat` console script; returns the exit status."""
    try:
        args = _build_parser().parse_args(argv)
        return args.run(args)
    except (UsageError, DataFormatError, InvalidParameterError, InvalidResponsesError,
            CalibrationInputError, *STORE_ERRORS) as error:
        print(f"irtcat: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # an internal failure: one line unless debugging
        if os.environ.get("IRTCAT_DEBUG"):
            traceback.print_exc()
        print(f"irtcat: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
