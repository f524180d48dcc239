"""`irtcat info BANK.json`: a bank's test information, conditional SE and reliability.

Writes the CSV ``theta,information,se`` (standard output, or ``--out``): test
information I(theta) (the sum of the items' Fisher information) and the
conditional standard error 1 / sqrt(I(theta)) at each theta of ``--theta``,
and with ``--items`` one more column per item, ``info_<item id>``, in the
bank's order. Numbers have up to 8 significant digits.

Reliability goes to standard error, one line each, so the CSV stays clean:
the marginal reliability of the bank over its population (mirt's
`marginal_rxx`) and, with ``--data``, the empirical reliability of those
persons' EAP scores (mirt's `empirical_rxx`); calibration/reliability.py has
both. ``--quiet`` leaves them out.

``--theta`` takes FROM:TO:STEP (every STEP from FROM through TO) or a list
T1,T2,...; a leading minus sign is read as a number (``--theta -3:3:0.5``).
"""

from __future__ import annotations

import argparse
import math
import re
import sys

MAX_POINTS = 100_001
THETA_LIMIT = 50.0
DEFAULT_THETA = "-4:4:0.1"


def add_command(commands):
    """Register `irtcat info` (its arguments are defined when it is used)."""
    commands.add_parser("info", help="test information, conditional SE and reliability of a "
                                     "bank", define=_define_info, description=(
                            "Writes the CSV theta,information,se (test information and "
                            "conditional standard error 1/sqrt(information); with --items a "
                            "column info_<item id> per item). The marginal reliability over "
                            "the bank's population, and with --data the empirical reliability "
                            "of those persons' EAP scores, go to standard error, one line each."))


def _define_info(info):
    info.add_argument("bank", metavar="BANK.json", help="irtcat-bank/1 document")
    info.add_argument("--theta", type=theta_points, default=DEFAULT_THETA,
                      metavar="FROM:TO:STEP|T1,T2,...",
                      help=f"where to evaluate (default {DEFAULT_THETA})")
    info.add_argument("--items", action="store_true",
                      help="add each item's information: a column info_<item id> per item")
    info.add_argument("--data", metavar="DATA.csv",
                      help="wide or long responses to bank items: also report the empirical "
                           "reliability of their EAP scores")
    info.add_argument("--out", metavar="INFO.csv", help="default: standard output")
    info.add_argument("--quiet", action="store_true", help="no reliability lines on stderr")
    # "-3:3:0.1" and "-1,0,1" are values of --theta, not options (argparse reads only
    # plain negative numbers so).
    info._negative_number_matcher = re.compile(r"^-\.?\d")
    info.set_defaults(run=run_info)


def theta_points(text):
    """argparse type of --theta: FROM:TO:STEP or T1,T2,...; a tuple of floats."""
    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
            if not step > 0 or stop < start:
                raise argparse.ArgumentTypeError(
                    f"FROM:TO:STEP needs TO >= FROM and STEP > 0, got {text!r}")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > MAX_POINTS:
                raise argparse.ArgumentTypeError(
                    f"{text!r} makes {count} points; at most {MAX_POINTS}")
            values = tuple(round(start + k * step, 10) for k in range(count))
        else:
            values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected FROM:TO:STEP or numbers T1,T2,..., got {text!r}") from None
    if len(values) > MAX_POINTS:
        raise argparse.ArgumentTypeError(f"at most {MAX_POINTS} points, got {len(values)}")
    if not all(math.isfinite(v) and abs(v) <= THETA_LIMIT for v in values):
        raise argparse.ArgumentTypeError(
            f"every theta must be a number within +-{THETA_LIMIT:g}, got {text!r}")
    return values


def information_table(params, item_ids, theta, items=False):
    """The CSV's header and rows: theta, test information, SE (and each item's information).

    params : ItemParameters of n_items items; theta : sequence of n_points floats.
    Returns (header, rows): rows is a list of n_points lists of numbers.
    """
    import numpy as np

    from irtcat.engine import information

    theta = np.asarray(theta, dtype=float)
    per_item = information(theta, params)                     # (n_points, n_items)
    total = per_item.sum(axis=1)
    with np.errstate(divide="ignore"):
        se = 1.0 / np.sqrt(total)
    header = ["theta", "information", "se"]
    columns = [theta, total, se]
    if items:
        header += [f"info_{item}" for item in item_ids]
        columns += list(per_item.T)
    return header, np.column_stack(columns).tolist()


def run_info(args):
    import csv
    import io

    from irtcat.calibration.reliability import eap_reliability, marginal_reliability
    from irtcat.itembank import align_responses, read_bank, read_responses
    from irtcat.itembank.io import write_atomically

    bank = read_bank(args.bank)
    mean, sd = bank.population["mean"], bank.population["sd"]
    lines = []
    if not args.quiet:
        lines.append(f"marginal reliability {marginal_reliability(bank.params, mean, sd):.4f} "
                     f"(population N({mean:g}, {sd:g}^2), {len(bank.item_ids)} items)")
    if args.data:
        data = read_responses(args.data)
        responses, params, _ = align_responses(data, bank)
        empirical = eap_reliability(responses, params, mean, sd)
        if not args.quiet:
            lines.append(f"empirical reliability {empirical:.4f} (EAP of "
                         f"{len(data.person_ids)} persons of {args.data})")
    header, rows = information_table(bank.params, bank.item_ids, args.theta, args.items)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([f"{value:.8g}" for value in row] for row in rows)
    if args.out is None:
        sys.stdout.write(text.getvalue())
    else:
        write_atomically(args.out, lambda handle: handle.write(text.getvalue()))
    for line in lines:
        print(line, file=sys.stderr)
    return 0
