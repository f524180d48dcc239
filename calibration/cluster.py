"""Where long work runs: in this process, or on a Dask cluster (`dask.distributed`).

A scheduler is named the way `IRTCAT_DASK_SCHEDULER` and ``--scheduler`` name it:

- ``None`` or ``""``: no cluster; the work runs in this process, as it always has.
- ``"local"`` or ``"local:N"``: a `LocalCluster` of N worker processes (default 2),
  one thread each, started for the work and stopped after it: the way to try a cluster
  on one machine.
- anything else: the address of a running scheduler (``tcp://10.0.0.5:8786``), as
  ``dask scheduler`` prints it; its workers (``dask worker ADDRESS``) must have irtcat
  installed.

`connected(scheduler)` is a context manager that yields a `distributed.Client` (or
None for no cluster) and closes what it opened. dask is imported only when a cluster
is asked for, so the embedded default pays nothing for it.
"""

from __future__ import annotations

import contextlib
import os

SCHEDULER_VARIABLE = "IRTCAT_DASK_SCHEDULER"
LOCAL_WORKERS = 2


class ClusterError(RuntimeError):
    """A scheduler that cannot be reached or named."""


def scheduler_from_environment():
    """The scheduler `IRTCAT_DASK_SCHEDULER` names, or None."""
    return os.environ.get(SCHEDULER_VARIABLE) or None


def local_workers(scheduler):
    """N of ``"local:N"`` (2 for ``"local"``); None for a scheduler's address."""
    if scheduler == "local":
        return LOCAL_WORKERS
    if scheduler.startswith("local:"):
        count = scheduler.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ClusterError(f"scheduler {scheduler!r}: expected local:N with N >= 1")
        return int(count)
    return None


@contextlib.contextmanager
def local_cluster(n_workers=LOCAL_WORKERS):
    """A `distributed.LocalCluster` of `n_workers` processes of one thread each, its
    dashboard on any free port. Its workers keep glibc's default trim threshold:
    distributed's own (MALLOC_TRIM_THRESHOLD_=65536) hands freed memory back to the
    system at every turn, and made a simulation 3 to 5 times slower on a worker than
    here. This process's environment is left as it was."""
    import dask
    from distributed import LocalCluster

    saved = dict(os.environ)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
    os.environ.clear()
    os.environ.update(saved)       # the nannies set the workers' variables here to spawn
    with cluster:
        yield cluster


@contextlib.contextmanager
def connected(scheduler, *, timeout=10):
    """Yield a `distributed.Client` of `scheduler` (None: yield None), closed after."""
    if not scheduler:
        yield None
        return
    from distributed import Client

    workers = local_workers(scheduler)
    with contextlib.ExitStack() as stack:
        if workers is not None:
            address = stack.enter_context(local_cluster(workers)).scheduler_address
        else:
            address = scheduler
        try:
            client = stack.enter_context(Client(address, timeout=timeout))
        except OSError as error:
            raise ClusterError(f"no Dask scheduler answers at {address}: {error}") from None
        except ValueError as error:                  # not an address: "missing port number"
            raise ClusterError(f"scheduler {address!r}: {error}") from None
        yield client
