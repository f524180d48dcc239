"""The `irtcat` command line.

Exit status: 0 on success; 2 with one line on stderr for bad input or usage;
1 for an internal failure (one line, the traceback only with IRTCAT_DEBUG=1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from importlib import resources

from engine import METHODS, InvalidParameterError, InvalidResponsesError, eap_sum_table
from engine import estimate_theta as _estimate_theta
from itembank import DataFormatError, align_responses, read_bank, read_responses, write_scores


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
    score.add_argument("--prior-mean", type=float, help="default: the bank's population mean")
    score.add_argument("--prior-sd", type=_positive_float, help="default: the bank's population sd")
    score.add_argument("--quadpts", type=_node_count, default=121,
                       help="EAP quadrature nodes on [-6, 6] (default 121, as mirt)")
    score.set_defaults(run=run_score)

    demo = commands.add_parser("demo", help="score the bundled LSAT7 data and print a summary")
    demo.set_defaults(run=run_demo)
    return parser


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
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


def run_demo(args):
    demo = resources.files("api") / "demo"
    with resources.as_file(demo / "LSAT7.csv") as data_path, \
            resources.as_file(demo / "LSAT7_bank.json") as bank_path:
        bank = read_bank(bank_path)
        print(f"LSAT7: {len(bank.items)} items, 2PL, parameters from "
              f"{bank.calibration.get('source', 'the bank')}")
        print(f"{'item':8} {'a':>7} {'b':>7}")
        for item in bank.items:
            print(f"{item['id']:8} {item['a']:7.3f} {item['b']:7.3f}")
        print()
        print(f"{'method':8} {'mean theta':>10} {'mean se':>8} {'bounded':>8} {'seconds':>8}"
              "   (means over persons with a finite estimate)")
        for method in METHODS:
            started = time.perf_counter()
            data, _, estimate = _score(data_path, bank_path, method)
            seconds = time.perf_counter() - started
            finite = ~estimate.bounded
            mean_theta, mean_se = estimate.theta[finite].mean(), estimate.se[finite].mean()
            print(f"{method:8} {mean_theta:10.3f} {mean_se:8.3f} "
                  f"{int(estimate.bounded.sum()):8d} {seconds:8.3f}")
        print(f"\n{len(data.person_ids)} persons scored. Summed score -> EAP theta (se):")
        table = eap_sum_table(bank.params)
        print("  ".join(f"{s}: {t:+.2f} ({e:.2f})" for s, t, e in
                        zip(table.score, table.theta, table.se, strict=True)))
        print("\nScore your own data: irtcat score DATA.csv --bank BANK.json --method eap")
    return 0


def main(argv=None):
    """Entry point of the `irtcat` console script; returns the exit status."""
    try:
        args = _build_parser().parse_args(argv)
        return args.run(args)
    except (UsageError, DataFormatError, InvalidParameterError, InvalidResponsesError) as error:
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
