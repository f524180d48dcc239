"""Where `irtcat calibrate --factors | --bifactor | --group | --fixed-method` run their
E-steps: on the Dask scheduler calibrate's ``--scheduler`` names (default
$IRTCAT_DASK_SCHEDULER; unset or '': in this process), as a plain calibration does
(`calibration.cluster`), with ``--partition-rows`` persons per partition.
"""

from __future__ import annotations

import contextlib

CONNECT_SECONDS = 10.0
"""How long a command waits for the scheduler of ``--scheduler ADDRESS`` to answer."""


@contextlib.contextmanager
def cluster_for(args):
    """Yield the `distributed.Client` of the run's scheduler, or None: in this process.
    A scheduler that cannot be named or reached is a usage error (exit 2, one line)."""
    from irtcat.api.arguments import UsageError
    from irtcat.calibration.cluster import ClusterError, connected, scheduler_from_environment

    scheduler = getattr(args, "scheduler", None)
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(connected(
                scheduler_from_environment() if scheduler is None else scheduler,
                timeout=CONNECT_SECONDS))
        except ClusterError as error:
            raise UsageError(str(error)) from None
        yield client


def partition_rows(args):
    """calibrate's ``--partition-rows``: persons per partition (None: the default)."""
    return getattr(args, "partition_rows", None)


def responses_for(args, client):
    """The responses of `irtcat calibrate`: read here, or, a Parquet log with a cluster,
    by the cluster's workers (`itembank.parquet_partitions`: no process holds it all)."""
    from irtcat.itembank import read_response_log
    from irtcat.itembank.parquet_io import is_parquet

    parquet = args.data_format == "parquet" or (args.data_format is None
                                                and is_parquet(args.data))
    if client is None or not parquet:
        return read_response_log(args.data, args.data_format)
    from irtcat.calibration.responses import PARTITION_ROWS
    from irtcat.itembank.parquet_partitions import PartitionedLog

    return PartitionedLog.open(client, args.data, args.partition_rows or PARTITION_ROWS)
