"""`irtcat calibrate DATA --group COLUMN`: multiple-group calibration (R mirt's
multipleGroup) from the command line.

`add_arguments` adds the group options to calibrate's parser; `run_calibrate`
(api/cli.py) hands the run over to `run` when ``--group`` is given. The bank
written is an `irtcat-bank/1` document on the reference group's scale with
the groups in its calibration record and each item's fit per group in its
``fit_by_group`` (calibration/multigroup_bank.py; ``--no-fit`` leaves it out).

Options (mirt's names where mirt has one):

- ``--group COLUMN``: the wide file's column holding each person's group, or
  with ``--groups-file PERSONS.csv`` (needed for a long file) that file's column;
- ``--reference CODE``: the group fixed at N(0, 1) (default: the first code in
  sorted order, as mirt takes the first factor level);
- ``--invariance slopes,intercepts,free_means,free_var``: mirt's keywords
  (default none, as mirt: every group its own item parameters, each N(0, 1));
- ``--invariant-items ID,ID``: items whose parameters are constrained equal
  across groups (mirt: item names in ``invariance``). They are estimated, unlike
  the fixed items of ``--anchor BANK.json``, hence another name.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings

INVARIANCE = ("slopes", "intercepts", "free_means", "free_var")   # calibration.multigroup's


def _keywords(text):
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [key for key in keys if key not in INVARIANCE]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown keyword {unknown[0]!r}; expected some of "
                                         f"{', '.join(INVARIANCE)}")
    return keys


def _item_list(text):
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected item ids separated by commas")
    return items


_OPTIONS = (
    ("--group", "COLUMN", None, "calibrate in groups: the column holding each person's group"),
    ("--groups-file", "PERSONS.csv", None, "person attribute CSV (person_id,COLUMN,...) "
                                           "holding the groups; needed for a long DATA"),
    ("--reference", "CODE", None, "the group fixed at N(0, 1) (default: the first code, "
                                  "sorted)"),
    ("--invariance", "KEY,KEY", _keywords, "mirt's keywords among slopes, intercepts, "
                                           "free_means, free_var (default: none, as mirt)"),
    ("--invariant-items", "ID,ID", _item_list, "items whose parameters are equal across "
                                               "groups (estimated, unlike --anchor's)"),
)


def add_arguments(calibrate):
    """The multiple-group options of `irtcat calibrate`."""
    group = calibrate.add_argument_group("multiple groups (as mirt's multipleGroup)")
    for flag, metavar, kind, text in _OPTIONS:
        if kind is None:
            group.add_argument(flag, metavar=metavar, help=text)
        else:
            group.add_argument(flag, metavar=metavar, type=kind, default=(), help=text)


def run(args):
    """Calibrate in groups and write the bank; returns the exit status."""
    from irtcat.api.arguments import UsageError
    from irtcat.api.cli import Progress
    from irtcat.api.cluster_option import cluster_for, partition_rows
    from irtcat.api.store_commands import counted
    from irtcat.calibration.multigroup_bank import multigroup_document
    from irtcat.engine import ConvergenceWarning
    from irtcat.itembank import read_item_tags, read_responses, write_json

    clashing = [flag for flag, value in (("--by-standard", args.by_standard),
                                         ("--standard", args.standard),
                                         ("--anchor", args.anchor),
                                         ("--priors", args.priors or any(
                                             getattr(args, f"prior_{k}") for k in "abcu")))
                if value]
    if args.m_step == "mirt":
        clashing.append("--m-step mirt (groups are fitted with exact, Newton M-steps)")
    if clashing:
        raise UsageError(f"--group does not combine with {clashing[0]}")
    if args.model is not None:
        models = args.model
    elif args.bank:
        models = {item: tag["model"] for item, tag in read_item_tags(args.bank).items()
                  if tag["model"]}
    else:
        raise UsageError("--model is required unless --bank gives each item's model")
    data = read_responses(args.data, group=args.group, groups_path=args.groups_file)
    unknown = [item for item in args.invariant_items if item not in data.item_ids]
    if unknown:
        raise UsageError(f"--invariant-items: no item {unknown[0]!r} in {args.data}")
    # Progress lines end before anything else is printed; EM warnings become one line each.
    with cluster_for(args) as client, warnings.catch_warnings(record=True) as caught, \
            contextlib.closing(Progress(args.quiet)) as progress:
        warnings.simplefilter("always", ConvergenceWarning)
        document, _ = multigroup_document(
            data, models, reference=args.reference,
            invariance=(*args.invariance, *args.invariant_items), standard_errors=args.se,
            n_nodes=args.quadpts, max_iter=args.max_iter, tol=args.tol, fit=not args.no_fit,
            progress=progress, cluster=client, partition_rows=partition_rows(args))
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    print("".join(f"irtcat: warning: {text}\n" for text in messages), end="", file=sys.stderr)
    if not args.quiet:
        record = document["calibration"]
        groups = ", ".join(f"{g['code']}: {g['n_persons']} N({g['mean']:.3f}, {g['var']:.3f})"
                           for g in record["groups"])
        print(f"{counted(len(document['items']), 'item')}, {groups}: loglik "
              f"{record['loglik']:.4f}, {'converged' if record['converged'] else 'NOT converged'}"
              f" in {counted(record['iterations'], 'cycle')}, {record['seconds']:.2f} s",
              file=sys.stderr)
    write_json(document, args.out, sys.stdout)
    return 0


def check_unused(args):
    """A group option without --group is a usage error (exit 2)."""
    from irtcat.api.arguments import UsageError

    given = [flag for flag, value in (("--groups-file", args.groups_file),
                                      ("--reference", args.reference),
                                      ("--invariance", args.invariance),
                                      ("--invariant-items", args.invariant_items)) if value]
    if given:
        raise UsageError(f"{given[0]} needs --group COLUMN")
