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
