"""A LocalCluster for the tests that run work on Dask (not a test module).

distributed sets its workers' variables (MALLOC_TRIM_THRESHOLD_, the thread caps) in this
process's environment when it starts them, and leaves them there: every process a later
test starts would inherit them, and MALLOC_TRIM_THRESHOLD_ makes numpy's large
temporaries several times slower (benchmarks/study.py). The environment is put back as
it was once the workers are up.
"""

import contextlib
import os

import pytest


@contextlib.contextmanager
def local_cluster(n_workers=2):
    """Yield a LocalCluster of `n_workers` processes of one thread (dashboard on any
    free port, never the busy default 8787)."""
    from distributed import LocalCluster

    inherited = os.environ.copy()
    try:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
    finally:
        os.environ.clear()
        os.environ.update(inherited)
    with cluster:
        yield cluster


def scheduler_fixture():
    """A module-scoped fixture: the address of one LocalCluster of two worker processes
    for the module that holds it (``scheduler = scheduler_fixture()``)."""
    @pytest.fixture(scope="module")
    def scheduler():
        pytest.importorskip("distributed")
        with local_cluster(2) as cluster:
            yield cluster.scheduler_address
    return scheduler
