"""`irtcat calibrate NEW.csv --anchor BANK.json --fixed-method METHOD [--old-data OLD.csv]`:
fixed-item calibration (R mirt's fixedCalib, or plain fixed-parameter calibration)
from the command line.

`add_arguments` adds the options to calibrate's parser; `run_calibrate`
(api/cli.py) hands the run over to `run` when ``--fixed-method`` is given.
The bank written holds the anchors (as given) and the new items; its
``population`` is the new sample's mean and sd and its calibration record a
``fixed_calibration`` entry naming the method (calibration/fixed_calib.py):

- ``--fixed-method fixed``: mirt(new, pars = anchors fixed, MEAN_1 and COV_11 free);
- ``--fixed-method nwu|owu|mwu`` (each also ``-oem`` for one EM cycle, ``-mem``
  by default): mirt's fixedCalib with that prior ability update;
- ``--old-data OLD.csv``: the sample the anchors were calibrated on, stacked on
  the new one as fixedCalib does (its items must all be in the anchor bank).

The method fixes the grid (61 nodes, 121 for owu and mwu) and the cycle limit
(mirt's; ``--max-iter`` other than its default 500 overrides it).
"""

from __future__ import annotations

import contextlib
import sys
import warnings

DEFAULT_MAX_ITER = 500   # calibrate's --max-iter default: left to the method when unchanged


def add_arguments(calibrate):
    """The fixed-item calibration options of `irtcat calibrate`."""
    group = calibrate.add_argument_group("fixed-item calibration (as mirt's fixedCalib)")
    group.add_argument("--fixed-method", metavar="METHOD",
                       help="with --anchor: fixed (anchors fixed, the new population "
                            "estimated) or mirt fixedCalib's nwu, owu, mwu (prior updating: "
                            "none, once, every cycle), each also -oem (one EM cycle) or -mem")
    group.add_argument("--old-data", metavar="OLD.csv",
                       help="the anchors' calibration sample, stacked on DATA as fixedCalib "
                            "does (nwu, owu, mwu)")


def run(args):
    """Calibrate the new items with the anchors fixed and write the bank; exit status."""
    from irtcat.api.arguments import UsageError
    from irtcat.api.cli import Progress
    from irtcat.api.cluster_option import cluster_for, partition_rows
    from irtcat.api.store_commands import counted
    from irtcat.calibration.fixed_calib import fixed_calib, method_name
    from irtcat.calibration.workflow import CalibrationInputError
    from irtcat.engine import ConvergenceWarning
    from irtcat.itembank import read_bank, read_response_log, write_json

    try:
        method = method_name(args.fixed_method)
    except ValueError as error:
        raise UsageError(f"--fixed-method: {error}") from None
    clashing = [flag for flag, value in (
        ("--by-standard", args.by_standard), ("--standard", args.standard),
        ("--m-step", args.m_step), ("--quadpts", args.quadpts != 61),
        ("--priors", args.priors or any(getattr(args, f"prior_{k}") for k in "abcu")))
        if value]
    if clashing:
        raise UsageError(f"--fixed-method does not combine with {clashing[0]}")
    if not args.anchor:
        raise UsageError("--fixed-method needs --anchor BANK.json (the items held fixed)")
    if args.old_data and method == "fixed":
        raise UsageError("--old-data serves mirt's fixedCalib methods (nwu, owu, mwu); the "
                         "plain fixed calibration uses the new sample only")
    bank = read_bank(args.anchor)
    anchors = {item["id"]: item for item in bank.items}
    data = read_response_log(args.data, getattr(args, "data_format", None))
    old = read_response_log(args.old_data) if args.old_data else None
    if args.model is None:
        raise UsageError("--model is required with --fixed-method (the new items' model)")
    with cluster_for(args) as client, warnings.catch_warnings(record=True) as caught, \
            contextlib.closing(Progress(args.quiet)) as progress:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            result = fixed_calib(
                data, anchors, method=method, old=old, models=args.model,
                population=(bank.population["mean"], bank.population["sd"]),
                standard_errors=args.se,
                fit=not args.no_fit, tol=args.tol,
                max_iter=None if args.max_iter == DEFAULT_MAX_ITER else args.max_iter,
                progress=progress, cluster=client, partition_rows=partition_rows(args))
        except CalibrationInputError as error:
            raise UsageError(str(error)) from None
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    print("".join(f"irtcat: warning: {text}\n" for text in messages), end="", file=sys.stderr)
    if not args.quiet:
        record = result.document["calibration"]
        print(f"{counted(len(result.new_items), 'new item')} ({method}), "
              f"{counted(record['n_persons'], 'person')}: new population "
              f"N({result.mean:.3f}, {result.sd:.3f}^2), "
              f"{'converged' if record['converged'] else 'NOT converged'} in "
              f"{counted(record['iterations'], 'cycle')}, {record['seconds']:.2f} s",
              file=sys.stderr)
    write_json(result.document, args.out, sys.stdout)
    return 0


def check_unused(args):
    """--old-data without --fixed-method is a usage error (exit 2)."""
    from irtcat.api.arguments import UsageError

    if args.old_data and not args.fixed_method:
        raise UsageError("--old-data needs --fixed-method nwu|owu|mwu")

