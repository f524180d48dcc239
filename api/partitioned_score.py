"""`irtcat score` partition by partition (`delivery.bulk_scoring`), here or on a Dask
cluster: the same CSV, in the same person order, as scoring the data at once.

It applies to a long response log (a long CSV, or Parquet: a file, a folder of
partitioned files or a URI, `itembank.parquet_io`), to any data when a scheduler is
named (``--scheduler``, else $IRTCAT_DASK_SCHEDULER) and whenever ``--partition-rows``
is given. A wide CSV scored here is read and scored at once, as before (it is a matrix
already, and a class's file needs no pandas). A multidimensional bank is scored at once
too; naming a scheduler, a partition size or Parquet data for one is a usage error.
"""

from __future__ import annotations

import sys

from irtcat.api.arguments import UsageError, whole_number

MAX_PARTITION = 10_000_000


def add_arguments(score):
    """`irtcat score`'s options of partitioned scoring."""
    from irtcat.api.study_command import add_scheduler_argument
    from irtcat.delivery.bulk_scoring import PARTITION_PERSONS

    score.add_argument("--format", dest="data_format", choices=("csv", "parquet"),
                       type=str.lower, default=None,
                       help="the responses' format (default: parquet for a folder, a URI or "
                            "a .parquet file, else csv)")
    score.add_argument("--partition-rows", type=whole_number(1, MAX_PARTITION), metavar="N",
                       help=f"persons scored together (default {PARTITION_PERSONS:,}; the "
                            "scores do not depend on it)")
    add_scheduler_argument(score)


def _parquet(args):
    from irtcat.itembank.parquet_io import is_parquet

    return args.data_format == "parquet" or (args.data_format is None
                                             and is_parquet(args.data))


def _long_csv(path):
    """Whether `path` opens as a CSV whose header is a long log's (a file that does not
    open is left to the reader, which names the problem)."""
    import csv

    from irtcat.itembank.io import LONG_HEADER

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return [name.strip() for name in header or []] == LONG_HEADER


def refuse_multidimensional(args):
    """UsageError when partitioned scoring was asked for on a multidimensional bank."""
    if args.scheduler is not None or args.partition_rows is not None or _parquet(args):
        raise UsageError("--scheduler, --partition-rows and Parquet data score a "
                         "unidimensional bank")


def applies(args):
    """Whether `irtcat score` runs partition by partition (module docstring)."""
    from irtcat.calibration.cluster import scheduler_from_environment

    return (args.scheduler is not None or args.partition_rows is not None
            or scheduler_from_environment() is not None or _parquet(args)
            or _long_csv(args.data))


def run(args):
    """Score `args.data` partition by partition and write the scores CSV."""
    from irtcat.api.cluster_option import cluster_for
    from irtcat.delivery.bulk_scoring import PARTITION_PERSONS, score_partitioned
    from irtcat.itembank import read_bank, read_response_log, write_scores

    bank = read_bank(args.bank)
    data = read_response_log(args.data, args.data_format)
    prior = {"prior_mean": bank.population["mean"] if args.prior_mean is None
             else args.prior_mean,
             "prior_sd": bank.population["sd"] if args.prior_sd is None else args.prior_sd,
             "n_nodes": args.quadpts}
    with cluster_for(args) as client:
        scores = score_partitioned(data, bank, args.method, client=client,
                                   size=args.partition_rows or PARTITION_PERSONS,
                                   draws=args.draws or 5,
                                   seed=1 if args.seed is None else args.seed, **prior)
    extra = None
    if scores.draws is not None:
        extra = {f"pv{k + 1}": column for k, column in enumerate(scores.draws.T)}
    write_scores(data.person_ids, scores.estimate, path=args.out, stream=sys.stdout,
                 extra=extra)
    return 0
