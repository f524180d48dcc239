"""The persons of a calibration split into partitions, and the E-step's sums over them.

An EM cycle needs from the persons only sums: the expected count of every (item,
category) column at every quadrature node, the posterior mass of every node and the
marginal log-likelihood (the sufficient statistics; ``n_columns x Q + Q + 1``
numbers, whatever the number of persons). So the persons can be split into
partitions, each partition's sums computed where its data are, and the sums added.

The partitions are runs of `ResponseSet.partition_rows` consecutive rows (persons, or
response patterns with their counts), whatever runs them:

- In one process `reduce_statistics(data, f, *shared)` applies ``f`` to each run of
  rows in place (`RowSpan`) and adds the results with `tree_sum`; data of one partition
  (up to 262,144 rows by default) take the E-step as it always ran.
- On a Dask cluster, `DaskPartitions` holds each partition on a worker. A cycle sends
  the shared arrays (log P of every column at the nodes, and the population weights)
  once to every worker, runs ``f`` on every partition where it lies, and adds the
  results in the same tree: here for up to 8 partitions (one round trip less a cycle),
  else each addition a task on the workers. The sums are the same floating-point
  numbers as in one process, whatever the number of workers and whichever finished
  first, and so are the estimates. Only statistics travel: the data never leave their
  partition.

"The same numbers" needs the same arithmetic: Dask's workers run one BLAS thread, and
a process with several rounds its matrix products differently in the last bits. With
OPENBLAS_NUM_THREADS=1 (as `make test` runs) one process and a cluster agree to the
last bit. With more BLAS threads here they differ by rounding: 1e-15 in the estimates
with Newton's M-step; mirt's M-step (a BFGS cut off after a budget of iterations, and
EM stopped at `tol`) can carry such a difference to 1e-7 (a mixed bank of 16 items).

A partition lost with its worker mid-cycle is rebuilt (Dask's lineage where a task made
it, from this process's copy where it was scattered) and the whole cycle is run again:
a result is never built from a partial sum.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .cluster import ClusterError
from .responses import ResponseSet, column_offsets

RETRIES = 3          # whole cycles run again after a partition was lost
ITEMS_PER_TASK = 2_000   # a bank's M-step runs in parts of this many items on a cluster
GATHERED_PARTITIONS = 8  # up to this many partitions' sums are added here, in the same tree


def estep_statistics(data, log_p_design, log_weights):
    """The E-step sums of one partition.

    data : ResponseSet
    log_p_design : ndarray of shape (n_design_columns, Q)
        log P of each column of the design (`upper` for complete data, where log P of
        category 0 has been subtracted, else `onehot`) at the nodes.
    log_weights : ndarray of shape (Q,)
        Log population weight of each node (plus log P of every category 0, complete data).

    Returns ``(design_counts (n_design_columns, Q), node_mass (Q,), loglik)``, each
    weighted by the rows' weights.
    """
    design = data.upper if data.complete else data.onehot
    design_counts = np.zeros_like(log_p_design)
    node_mass = np.zeros(log_p_design.shape[1])
    loglik = 0.0
    for rows in data.chunks():
        chunk = design[rows]
        joint = chunk @ log_p_design                             # (rows, Q)
        joint += log_weights
        peak = joint.max(axis=1, keepdims=True)
        joint -= peak
        posterior = np.exp(joint, out=joint)                     # in place: log-sum-exp
        total = posterior.sum(axis=1, keepdims=True)
        weights = data.weights[rows]
        posterior *= weights[:, None] / total
        design_counts += chunk.T @ posterior
        node_mass += posterior.sum(axis=0)
        loglik += float(weights @ (peak[:, 0] + np.log(total[:, 0])))
    return design_counts, node_mass, loglik


def added(first, second):
    """Two partitions' statistics added, item by item of the tuples."""
    return tuple(a + b for a, b in zip(first, second, strict=True))


def tree_sum(values, add=added):
    """``values`` added pairwise, level by level, in their order: a tree whose shape
    depends only on how many there are, so the floating-point sum does too."""
    level = list(values)
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def partition_bounds(data):
    """``[(start, stop), ...]``: the rows of each partition of `data`
    (`data.partition_rows` each, the last one shorter)."""
    size = max(int(data.partition_rows), 1)
    return [(start, min(start + size, data.n_rows)) for start in range(0, data.n_rows, size)]


class RowSpan:
    """Rows start..stop of a ResponseSet, read in place: a partition in this process.
    It answers what `estep_statistics` reads, with `chunks` in the span."""

    def __init__(self, data, start, stop):
        self.data, self.start, self.stop = data, start, stop

    def __getattr__(self, name):
        return getattr(self.data, name)

    def chunks(self):
        return self.data.chunks(self.start, self.stop)


def reduce_statistics(data, function, *shared):
    """``function``'s sums over the partitions of `data`, added by `tree_sum`: a
    ResponseSet here (one partition: ``function(data, *shared)``, the E-step as it
    always ran), or DaskPartitions on its cluster. Both give the same numbers."""
    if not isinstance(data, ResponseSet):
        return data.reduce(function, *shared)
    bounds = partition_bounds(data)
    if len(bounds) == 1:
        return function(data, *shared)
    return tree_sum(function(RowSpan(data, start, stop), *shared) for start, stop in bounds)


def row_partitions(data):
    """`data` split into the ResponseSets of its partitions (copies of their rows)."""
    parts = []
    for start, stop in partition_bounds(data):
        rows = slice(start, stop)
        weights = data.weights[rows]
        parts.append(ResponseSet(
            None if data.complete else data.onehot[rows], weights, data.n_categories,
            data.offsets, int(round(weights.sum())),
            upper=data.upper[rows] if data.complete else None,
            partition_rows=data.partition_rows))
    return parts


class LocalPartitions:
    """A ResponseSet's partitions in this process, each in a calibrator's own layout
    (``layout(ResponseSet)``, made once): `reduce` sums a function over them in
    `tree_sum`'s tree, as `DaskPartitions(client, data, layout=layout)` does on a
    cluster. Data of one partition are laid out whole, not copied first."""

    def __init__(self, data, layout):
        parts = [data] if len(partition_bounds(data)) == 1 else row_partitions(data)
        self.parts = [layout(part) for part in parts]

    def reduce(self, function, *shared):
        return tree_sum(function(part, *shared) for part in self.parts)


@dataclasses.dataclass(frozen=True)
class PartitionSummary:
    """What the EM reads of data held elsewhere: the layout, the persons and the
    observed count of every (item, category) column (`ResponseSet.item_counts`)."""

    n_categories: np.ndarray
    n_persons: int
    counts: np.ndarray
    n_rows: int
    complete: bool = False

    @property
    def offsets(self):
        return column_offsets(self.n_categories)

    @property
    def n_items(self):
        return self.n_categories.size

    @property
    def upper_columns(self):
        return np.setdiff1d(np.arange(self.offsets[-1]), self.offsets[:-1])

    def item_counts(self):
        return self.counts


class DaskPartitions:
    """A ResponseSet's rows spread over a Dask cluster, partition by partition.

    It answers what the EM asks of its data (`n_categories`, `offsets`, `n_items`,
    `n_persons`, `complete`, `upper_columns`, `item_counts()`) and `reduce`, the sum of
    a function over the partitions. `bytes_per_cycle` is what the last `reduce` moved:
    the shared arrays to each worker, and the partial sums between workers and back.

    Parameters
    ----------
    client : distributed.Client
    data : ResponseSet, held here too, to rebuild a partition lost with its worker
    partition_rows : int, optional
        Rows per partition; default `data.partition_rows`, as in one process (then the
        sums, and so the estimates, are those of one process to the last bit). Give the
        same to both, through ``dataclasses.replace(data, partition_rows=...)``, to
        compare them on small data.
    layout : callable, optional
        Applied here to each partition's ResponseSet before it is sent: a calibrator's
        own form of its rows (what its `reduce` functions read; see `LocalPartitions`).
    """

    def __init__(self, client, data, partition_rows=None, layout=None):
        if partition_rows is not None:
            data = dataclasses.replace(data, partition_rows=int(partition_rows))
        parts = row_partitions(data)
        if layout is not None:
            parts = [layout(part) for part in parts]
        self._start(client, data, parts, [None] * len(parts))
        self._place(range(self.n_partitions))

    @classmethod
    def from_futures(cls, client, futures, summary):
        """Partitions that tasks on the cluster made (read from files, say): Dask's
        lineage remakes one lost with its worker. `summary` answers what the EM reads
        of its data (a `PartitionSummary`)."""
        self = cls.__new__(cls)
        self._start(client, summary, None, list(futures))
        return self

    def _start(self, client, summary, parts, futures):
        """`parts`: the partitions held here to send again (None: a task's results)."""
        self.client, self._summary, self._parts, self._futures = client, summary, parts, futures
        self.n_partitions = len(futures)
        self.bytes_per_cycle = 0
        self.rebuilt = 0
        self.items_per_task = ITEMS_PER_TASK

    # --- what the EM reads of its data ------------------------------------------------

    n_categories = property(lambda self: self._summary.n_categories)
    offsets = property(lambda self: self._summary.offsets)
    n_items = property(lambda self: self._summary.n_items)
    n_persons = property(lambda self: self._summary.n_persons)
    n_rows = property(lambda self: self._summary.n_rows)
    complete = property(lambda self: self._summary.complete)
    upper_columns = property(lambda self: self._summary.upper_columns)

    def item_counts(self):
        return self._summary.item_counts()

    # --- the sums ---------------------------------------------------------------------

    def reduce(self, function, *shared):
        """``sum(function(partition, *shared) for partition in partitions)``, added in a
        fixed tree over the partitions' order; each result a tuple of arrays and floats.

        ClusterError when the client has lost its scheduler, or when partitions are lost
        in RETRIES + 1 runs of the cycle: never a sum of fewer partitions."""
        from distributed import CancelledError, KilledWorker

        for attempt in range(RETRIES + 1):
            if self.client.status != "running":
                raise ClusterError(f"the Dask client lost its scheduler "
                                   f"({self.client.status})")
            try:
                lost = [i for i, future in enumerate(self._futures)
                        if future.status != "finished"]
                if lost and self._parts is not None:     # scattered: send them again
                    self._place(lost)
                    self.rebuilt += len(lost)
                return self._reduce_once(function, shared)
            except (CancelledError, KilledWorker, OSError) as error:
                if attempt == RETRIES:
                    raise ClusterError(f"the Dask cluster lost partitions in {RETRIES + 1} "
                                       f"runs of one cycle: {error}") from None
        raise AssertionError("unreachable")

    def item_parts(self, n_items):
        """Slices of a block's items for an M-step in parts: one part for a small bank
        (solved here), else parts of `items_per_task` items."""
        if n_items < 2 * self.items_per_task:
            return [slice(0, n_items)]
        return [slice(start, min(start + self.items_per_task, n_items))
                for start in range(0, n_items, self.items_per_task)]

    def map_parts(self, function, parts, *shared):
        """``[function(*part, *shared) for part in parts]``, each a task on the cluster
        (its arguments travel with it, so a lost worker's task simply runs again)."""
        from distributed import CancelledError, KilledWorker

        if self.client.status != "running":
            raise ClusterError(f"the Dask client lost its scheduler ({self.client.status})")
        futures = [self.client.submit(function, *part, *shared, pure=False, retries=RETRIES)
                   for part in parts]
        try:
            return self.client.gather(futures)
        except (CancelledError, KilledWorker, OSError) as error:
            raise ClusterError(f"the Dask cluster lost an M-step's task: {error}") from None

    def _reduce_once(self, function, shared):
        client = self.client
        workers = max(len(client.scheduler_info().get("workers", {})), 1)
        shared_futures = client.scatter(list(shared), broadcast=True, hash=False) \
            if shared else []
        partials = [client.submit(function, part, *shared_futures, pure=False, retries=2)
                    for part in self._futures]
        if len(partials) <= GATHERED_PARTITIONS:     # the sums come here, added here
            result = tree_sum(client.gather(partials))
            moved = len(partials)
        else:                                         # the additions are tasks there
            result = tree_sum(partials, lambda first, second: client.submit(
                added, first, second, pure=False, retries=2)).result()
            moved = 2 * len(partials) - 1
        shared_bytes = sum(np.asarray(array).nbytes for array in shared)
        result_bytes = sum(np.asarray(value).nbytes for value in result)
        # The shared arrays go to each worker; each partial sum (and, in a tree of tasks,
        # each sum of two) crosses the network at most once.
        self.bytes_per_cycle = shared_bytes * workers + result_bytes * moved
        return result

    def _place(self, indices):
        """Send the partitions at `indices` to the cluster (spread over its workers)."""
        indices = list(indices)
        futures = self.client.scatter([self._parts[i] for i in indices], hash=False)
        for i, future in zip(indices, futures, strict=True):
            self._futures[i] = future

    def close(self):
        """Release the partitions on the cluster."""
        for future in self._futures:
            if future is not None:
                future.release()
        self._futures = []
