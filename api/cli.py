"""The `irtcat` command line.

Exit status: 0 on success; 2 with one line on stderr for bad input or usage;
1 for an internal failure (one line, the traceback only with IRTCAT_DEBUG=1).

Start-up is part of every command's time: this module imports nothing of the
engine, and a command's arguments are defined (`Parser(define=...)` of
api/arguments.py) and its libraries imported only when that command runs, so
`irtcat --help` imports no numpy and `irtcat score` no pandas, SQLAlchemy, Flask
or matplotlib (benchmarks/startup.py). Values no run could use are refused while parsing
(exit 2), before any work.

The analysis commands (score, calibrate, link, report) live here with their argument
definitions and checks; simulate, the store's, the server's and the demo's commands
live in their own modules.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings

from irtcat.api.arguments import (
    Parser,
    UsageError,
    model_name,
    number_in,
    pair,
    positive_number,
    shape_pair,
    whole_number,
)
from irtcat.api.careers_command import add_command as add_roles_command
from irtcat.api.credential_command import add_command as add_credential_command
from irtcat.api.demo import add_command as add_demo_command
from irtcat.api.dif_command import add_command as add_dif_command
from irtcat.api.fit_commands import add_commands as add_fit_commands
from irtcat.api.info_command import add_command as add_info_command
from irtcat.api.lti_commands import add_command as add_lti_command
from irtcat.api.serve import add_commands as add_server_commands
from irtcat.api.simulate_command import add_command as add_simulate_command
from irtcat.api.store_commands import add_commands as add_store_commands
from irtcat.api.store_commands import counted
from irtcat.api.study_command import add_command as add_study_command

MAX_NODES = 1001
"""Most quadrature nodes: mirt's defaults are 61 (calibration) and 121 (scoring)."""
THETA_LIMIT = 6.0
"""A prior mean beyond +-6 (the estimation range, engine.THETA_BOUNDS) scores nobody."""
MAX_CYCLES = 100_000

_INPUT_ERRORS = (
    ("irtcat.itembank.errors", "DataFormatError"),
    ("irtcat.engine.exceptions", "InvalidParameterError"),
    ("irtcat.engine.exceptions", "InvalidResponsesError"),
    ("irtcat.calibration.workflow", "CalibrationInputError"),
    ("irtcat.calibration.cluster", "ClusterError"),
    ("irtcat.itembank.errors", "DatabaseError"),
    ("irtcat.itembank.errors", "NotFoundError"),
)
"""(module, class) of the errors that mean bad input or usage: exit status 2."""


def _build_parser():
    parser = Parser(prog="irtcat", description="Adaptive assessment engine.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    commands.add_parser("score", help="score persons from their responses",
                        define=_define_score)
    commands.add_parser("calibrate", help="estimate item parameters by MML-EM",
                        define=_define_calibrate)
    commands.add_parser("link", help="put a bank on another bank's scale", define=_define_link)
    add_simulate_command(commands)
    add_study_command(commands)
    commands.add_parser("report", help="an HTML report of a bank: parameters, fit, curves, "
                        "test information", define=_define_report)
    add_info_command(commands)
    add_store_commands(commands)
    add_fit_commands(commands)
    add_server_commands(commands)
    commands.add_parser("worker", help="run queued calibrations, simulations, reports and "
                                       "exports (irtcat serve starts them; more may run on "
                                       "other hosts)", define=_define_worker)
    add_demo_command(commands)
    add_dif_command(commands)
    add_roles_command(commands)
    add_credential_command(commands)
    add_lti_command(commands)
    return parser


def _define_worker(worker):
    from irtcat.api.worker import add_arguments

    add_arguments(worker)


def _define_score(score):
    from irtcat.api import partitioned_score
    from irtcat.engine import METHODS
    from irtcat.engine.names import canonical_method

    score.add_argument("data", metavar="DATA.csv", help="wide or long response CSV, or a "
                       "Parquet response log (a file, or a folder of partitioned files)")
    score.add_argument("--bank", required=True, metavar="BANK.json", help="irtcat-bank/1 document")
    score.add_argument("--method", type=lambda text: canonical_method(text, (*METHODS, "pv"),
                                                                      strict=False),
                       choices=(*METHODS, "pv"), default="eap",
                       help="ability estimator (any case: mirt's EAP, MAP, ML, WLE, EAPsum); "
                            "pv: plausible values, written as person_id,theta,se,pv1..pvN: "
                            "theta and se the EAP and posterior SD, pv1..pvN random draws from "
                            "each person's posterior on the same grid")
    score.add_argument("--draws", type=whole_number(1, 1000), metavar="N",
                       help="plausible values per person with --method pv (default 5)")
    score.add_argument("--seed", type=whole_number(0), metavar="S",
                       help="of the plausible values' random numbers, with --method pv: the "
                            "same seed, the same draws (default 1)")
    score.add_argument("--out", metavar="SCORES.csv", help="default: standard output")
    score.add_argument("--prior-mean", type=number_in(-THETA_LIMIT, THETA_LIMIT),
                       help="default: the bank's population mean")
    score.add_argument("--prior-sd", type=positive_number(100.0),
                       help="default: the bank's population sd")
    score.add_argument("--quadpts", type=_node_count, default=121,
                       help="EAP quadrature nodes on [-6, 6] (default 121, as mirt)")
    score.add_argument("--weights", metavar="W1,W2,...", help="a multidimensional bank: "
                       "the composite's weights, one per factor (adds composite,composite_se)")
    partitioned_score.add_arguments(score)
    score.set_defaults(run=run_score)


def _define_calibrate(calibrate):
    from irtcat.api import fixed_calibrate, group_calibrate, mirt_calibrate
    from irtcat.calibration.mml_em import M_STEPS
    from irtcat.engine import MODELS

    calibrate.add_argument("data", metavar="DATA.csv", help="wide or long response CSV, or a "
                           "Parquet response log (a file, or a folder of partitioned files)")
    calibrate.add_argument("--format", dest="data_format", choices=("csv", "parquet"),
                           type=str.lower, default=None,
                           help="the responses' format (default: parquet for a folder, a URI "
                                "or a .parquet file, else csv)")
    calibrate.add_argument("--model", type=model_name, choices=MODELS,
                           help="model of every item, any case, mirt's names too (2PL, graded, "
                                "gpcm, ...; default: each item's model in --bank)")
    calibrate.add_argument("--out", metavar="BANK.json", help="default: standard output")
    calibrate.add_argument("--bank", metavar="BANK.json",
                           help="a bank tagging items by standard (and model); parameters optional")
    calibrate.add_argument("--standard", metavar="CODE",
                           help="calibrate this standard's items only")
    calibrate.add_argument("--by-standard", metavar="BANK.json",
                           help="calibrate each standard tagged in BANK.json; --out names a "
                                "folder, which gets one CODE.json per standard")
    calibrate.add_argument("--anchor", metavar="BANK.json",
                           help="keep these items' parameters: new items join the anchor's scale")
    calibrate.add_argument("--se", action="store_true", help="standard errors of the parameters")
    calibrate.add_argument("--priors", action="store_true",
                           help="Bayes-modal M-step with the default priors (see --prior-*)")
    for name, text in (("a", "MEANLOG,SDLOG lognormal prior on a (default 0,0.5)"),
                       ("b", "MEAN,SD normal prior on b (default 0,2)"),
                       ("c", "ALPHA,BETA beta prior on c (default 5,17)"),
                       ("u", "ALPHA,BETA beta prior on u (default 17,5)")):
        calibrate.add_argument(f"--prior-{name}", type=shape_pair if name in "cu" else pair,
                               metavar="X,Y", help=text)
    calibrate.add_argument("--quadpts", type=_node_count, default=61,
                           help="EM quadrature nodes on [-6, 6]")
    calibrate.add_argument("--max-iter", type=whole_number(1, MAX_CYCLES), default=500,
                           help="most EM cycles")
    calibrate.add_argument("--tol", type=positive_number(1.0), default=1e-4,
                           help="converged when no parameter changes more than this")
    calibrate.add_argument("--m-step", choices=M_STEPS,
                           help="mirt: R mirt's EM path and estimates (default); newton: each "
                                "M-step solved exactly, to the maximum where mirt stops short "
                                "(--group always solves it so)")
    calibrate.add_argument("--no-fit", action="store_true", help="skip the item fit statistics")
    calibrate.add_argument("--quiet", action="store_true", help="no progress on stderr")
    calibrate.add_argument("--scheduler", metavar="local|local:N|ADDRESS",
                           help="run the E-steps on a Dask cluster: local (a LocalCluster of "
                                "2 processes, started for the run), local:N (N processes) or "
                                "a scheduler's address, tcp://HOST:8786 (default: "
                                "$IRTCAT_DASK_SCHEDULER; unset or '': in this process)")
    calibrate.add_argument("--partition-rows", type=whole_number(1), metavar="N",
                           help="persons (or response patterns) per partition of the E-step's "
                                "sums, each partition a task on a cluster (default 262144)")
    group_calibrate.add_arguments(calibrate)
    fixed_calibrate.add_arguments(calibrate)
    mirt_calibrate.add_arguments(calibrate)
    calibrate.set_defaults(run=run_calibrate)


def _define_link(link):
    from irtcat.calibration.linking import METHODS as LINK_METHODS

    link.add_argument("new", metavar="NEW.json", help="the bank to transform")
    link.add_argument("--to", required=True, metavar="OLD.json", help="the bank whose scale to use")
    link.add_argument("--method", type=str.lower, choices=LINK_METHODS, default="stocking-lord",
                      help="linking method")
    link.add_argument("--out", metavar="BANK.json", help="default: standard output")
    link.set_defaults(run=run_link)


def _define_report(report):
    report.add_argument("bank", metavar="BANK.json", help="irtcat-bank/1 document")
    report.add_argument("--out", metavar="REPORT.html", help="default: standard output")
    report.add_argument("--title", help="the page's title (default: from the file name)")
    report.add_argument("--dif", metavar="DIF.json", help="add a DIF section: the output "
                        "of irtcat dif --format json (or of POST /v1/dif)")
    report.set_defaults(run=run_report)


def _node_count(text):
    """argparse type of --quadpts: 5 to MAX_NODES nodes."""
    value = int(text)
    if value < 5:
        raise argparse.ArgumentTypeError(f"needs at least 5 nodes, got {text}")
    if value > MAX_NODES:
        raise argparse.ArgumentTypeError(f"takes at most {MAX_NODES} nodes, got {text}")
    return value


def _score(data_path, bank_path, method, prior_mean=None, prior_sd=None, quadpts=121,
           draws=5, seed=1):
    """(data, bank, estimate): a ThetaEstimate, or PlausibleValues for method "pv"."""
    from irtcat.engine import estimate_theta
    from irtcat.engine.plausible import draw_plausible_values
    from irtcat.itembank import align_responses, read_bank, read_responses

    bank = read_bank(bank_path)
    data = read_responses(data_path)
    responses, params, _ = align_responses(data, bank)
    prior = {"prior_mean": bank.population["mean"] if prior_mean is None else prior_mean,
             "prior_sd": bank.population["sd"] if prior_sd is None else prior_sd,
             "n_nodes": quadpts}
    if method == "pv":
        return data, bank, draw_plausible_values(responses, params, draws, seed=seed, **prior)
    return data, bank, estimate_theta(responses, params, method, **prior)


def run_score(args):
    from irtcat.api import mirt_commands, partitioned_score
    from irtcat.itembank import write_scores

    document = mirt_commands.multidimensional_document(args.bank)
    if document is not None:
        partitioned_score.refuse_multidimensional(args)
        return mirt_commands.run_score(args, document)
    if args.weights is not None:
        raise UsageError("--weights go with a multidimensional bank (one with 'dimensions')")

    if args.method != "pv" and (args.draws is not None or args.seed is not None):
        raise UsageError("--draws and --seed go with --method pv")
    if partitioned_score.applies(args):
        return partitioned_score.run(args)
    data, _, estimate = _score(args.data, args.bank, args.method, args.prior_mean, args.prior_sd,
                               args.quadpts, args.draws or 5, 1 if args.seed is None else args.seed)
    extra = None
    if args.method == "pv":
        extra = {f"pv{k + 1}": column for k, column in enumerate(estimate.draws.T)}
        estimate = estimate.estimate
    write_scores(data.person_ids, estimate, path=args.out, stream=sys.stdout, extra=extra)
    return 0


def _priors(args):
    from irtcat.calibration.mml_em import Priors

    chosen = {key: getattr(args, f"prior_{key}") for key in "abcu"}
    if args.priors:
        defaults = vars(Priors.defaults())
        chosen = {key: value or defaults[key] for key, value in chosen.items()}
    if not any(chosen.values()):
        return None
    return Priors(**chosen)


class Progress:
    """EM progress on stderr once a run has taken `after` seconds: on a terminal one
    line rewritten in place, elsewhere (a log, a pipe) a line every `every` seconds."""

    def __init__(self, quiet, label="", stream=None, after=2.0, every=5.0):
        self.quiet, self.label, self.after, self.every = quiet, label, after, every
        self.stream = stream or sys.stderr
        self.in_place = self.stream.isatty()
        self.shown_at = None

    def __call__(self, cycle, loglik, change, seconds):
        if self.quiet or seconds < self.after:
            return
        if not self.in_place and self.shown_at is not None \
                and seconds - self.shown_at < self.every:
            return
        self.shown_at = seconds
        line = (f"{self.label}cycle {cycle:4d}  loglik {loglik:.4f}  largest change "
                f"{change:.2e}  {seconds:.1f} s")
        if self.in_place:
            self.stream.write(f"\r{line}\x1b[K")      # back to the start, clear the rest
            self.stream.flush()
        else:
            print(line, file=self.stream, flush=True)

    def close(self):
        """End the line rewritten in place, so what follows starts on its own."""
        if self.in_place and self.shown_at is not None:
            self.stream.write("\n")
            self.shown_at = None


def _calibrate_one(args, data, models, anchors, standards, standard=None, client=None):
    from irtcat.calibration.workflow import calibrate_document
    from irtcat.engine import ConvergenceWarning

    label = f"[{standard}] " if standard and args.by_standard else ""
    progress = Progress(args.quiet, label)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            document, _ = calibrate_document(
                data, models, anchors=anchors, standards=standards, standard=standard,
                priors=_priors(args), standard_errors=args.se, n_nodes=args.quadpts,
                max_iter=args.max_iter, tol=args.tol, m_step=args.m_step or "mirt",
                fit=not args.no_fit, progress=progress, cluster=client,
                partition_rows=args.partition_rows)
        finally:
            progress.close()
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    for message in messages + document["calibration"].get("warnings", []):
        print(f"irtcat: warning: {label}{message}", file=sys.stderr)
    if not args.quiet:
        record = document["calibration"]
        flagged = sum(1 for item in document["items"] if item.get("fit", {}).get("flagged"))
        excluded = len(record.get("excluded", []))
        print(f"{label}{counted(len(document['items']), 'item')}, "
              f"{counted(record['n_persons'], 'person')}: loglik {record['loglik']:.4f}, "
              f"{'converged' if record['converged'] else 'NOT converged'} in "
              f"{counted(record['iterations'], 'cycle')}, {record['seconds']:.2f} s; "
              f"{flagged} flagged by fit, {excluded} excluded", file=sys.stderr)
    return document


def _by_standard_folder(out):
    """The folder --by-standard writes into; UsageError for none or a path naming a file."""
    if not out:
        raise UsageError("--by-standard writes one bank per standard: give --out FOLDER")
    if out.lower().endswith(".json") or os.path.isfile(out):
        raise UsageError(f"--by-standard writes one CODE.json per standard into a folder: "
                         f"--out {out} names a file; give a folder")
    return out


def run_calibrate(args):
    from irtcat.api import fixed_calibrate, group_calibrate, mirt_calibrate
    from irtcat.api.cluster_option import cluster_for, responses_for

    if args.factors or args.bifactor:
        return mirt_calibrate.run(args)
    if args.group:
        return group_calibrate.run(args)
    group_calibrate.check_unused(args)
    if args.fixed_method:
        return fixed_calibrate.run(args)
    fixed_calibrate.check_unused(args)
    folder = _by_standard_folder(args.out) if args.by_standard else None
    with cluster_for(args) as client:
        data = responses_for(args, client)
        return _calibrate_log(args, data, folder, client)


def _calibrate_log(args, data, folder, client):
    from irtcat.calibration.workflow import check_priors_apply
    from irtcat.itembank import read_bank, read_item_tags, write_json

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
    check_priors_apply([key for key in "abcu" if getattr(args, f"prior_{key}")], models)
    standards = {item: tag["standard"] for item, tag in tags.items() if tag["standard"]}
    codes = [args.standard]
    if args.by_standard:
        codes = sorted({standards[item] for item in data.item_ids if item in standards})
        if not codes:
            raise UsageError("no item of the data is tagged with a standard in --by-standard")
    documents = {code: _calibrate_one(args, data, models, anchors, standards, code, client)
                 for code in codes}
    if not args.by_standard:
        write_json(documents[args.standard], args.out, sys.stdout)
        return 0
    os.makedirs(folder, exist_ok=True)
    for code, document in documents.items():
        write_json(document, os.path.join(folder, f"{code}.json"))
    return 0


def run_link(args):
    from irtcat.engine import ConvergenceWarning
    from irtcat.itembank import read_bank, write_bank
    from irtcat.itembank.linking import link_banks

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
               f"{counted(constants.n_common, 'common item')})")
    print(summary, file=sys.stdout if args.out else sys.stderr)
    write_bank(linked, args.out, sys.stdout)
    return 0


def _write_text(text, path=None, stream=None):
    """`text` (a string, or a function making it) to `path` (atomically) or to `stream`.

    A function is called once the file is open: an unwritable path fails first."""
    from irtcat.itembank.io import write_atomically

    if path is None:
        stream.write(text() if callable(text) else text)
    else:
        write_atomically(path, lambda handle: handle.write(text() if callable(text) else text))


def run_report(args):
    from irtcat.api.report import bank_report
    from irtcat.itembank import DataFormatError, read_json

    document = read_json(args.bank)
    title = args.title or f"Item bank report: {os.path.basename(args.bank)}"
    dif = None
    if args.dif:
        from irtcat.api.report_dif import check_dif_document

        try:
            dif = check_dif_document(read_json(args.dif))
        except DataFormatError as error:
            raise DataFormatError(f"{args.dif}: {error}") from None

    def page():
        try:
            return bank_report(document, title=title, dif=dif)
        except DataFormatError as error:
            raise DataFormatError(f"{args.bank}: {error}") from None

    _write_text(page, args.out, sys.stdout)
    return 0


def _input_errors():
    """The classes of `_INPUT_ERRORS` among the modules loaded (one never loaded has raised
    nothing), so that an error costs no import."""
    return (UsageError, *(getattr(sys.modules[module], name) for module, name in _INPUT_ERRORS
                          if module in sys.modules))


def main(argv=None):
    """Entry point of the `irtcat` console script; returns the exit status."""
    try:
        args = _build_parser().parse_args(argv)
        return args.run(args)
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if isinstance(error, _input_errors()):
            print(f"irtcat: error: {error}", file=sys.stderr)
            return 2
        if os.environ.get("IRTCAT_DEBUG"):        # an internal failure: one line unless debugging
            traceback.print_exc()
        print(f"irtcat: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
