"""The persons of a calibration split into partitions, and the E-step's sums over them.

An EM cycle needs from the persons only sums: the expected count of every (item,
category) column at every quadrature node, the posterior mass of every node and the
marginal log-likelihood (the sufficient statistics; ``n_columns x Q + Q + 1``
numbers, whatever the number of persons). So the persons can be split into
partitions, each partition's sums computed where its data are, and the sums added.

- In one process the `ResponseSet` is the only partition: ``data.reduce(f, *shared)``
  is ``f(data, *shared)``, the E-step as it always ran (in chunks of rows).
- On a Dask cluster, `DaskPartitions` holds each partition on a worker. A cycle sends
  the shared arrays (log P of every column at the nodes, and the population weights)
  once to every worker, runs ``f`` on every partition where it lies, and adds the
  results in a binary tree of fixed shape over the partitions in their order: the sum
  is the same floating-point number whatever the workers and whichever finished first.
  Only statistics travel: the data never leave their partition.

A partition lost with its worker mid-cycle is rebuilt (Dask's lineage where a task made
it, from this process's copy where it was scattered) and the whole cycle is run again:
a result is never built from a partial sum.
"""

from __future__ import annotations

import numpy as np

from .responses import ResponseSet

RETRIES = 3                    # whole cycles run again after a partition was lost
ROWS_PER_PARTITION = 250_000   # the default partition size (persons or patterns)


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


def row_partitions(data, n_partitions):
    """`data` split into `n_partitions` ResponseSets of consecutive rows (as equal as can be)."""
    bounds = np.linspace(0, data.n_rows, n_partitions + 1).round().astype(np.intp)
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        rows = slice(int(start), int(stop))
        weights = data.weights[rows]
        parts.append(ResponseSet(
            None if data.complete else data.onehot[rows], weights, data.n_categories,
            data.offsets, int(round(weights.sum())),
            upper=data.upper[rows] if data.complete else None))
    return parts


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
    n_partitions : int, optional
        Default: one per ROWS_PER_PARTITION rows, at least one per worker.
    """

    def __init__(self, client, data, n_partitions=None):
        self.client = client
        workers = max(len(client.scheduler_info().get("workers", {})), 1)
        if n_partitions is None:
            n_partitions = max(workers, -(-data.n_rows // ROWS_PER_PARTITION))
        self.n_partitions = max(1, min(int(n_partitions), data.n_rows))
        self._parts = row_partitions(data, self.n_partitions)
        self._summary = data
        self._futures = [None] * self.n_partitions
        self.bytes_per_cycle = 0
        self.rebuilt = 0
        self._place(range(self.n_partitions))

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
        fixed tree over the partitions' order; each result a tuple of arrays and floats."""
        from distributed import CancelledError
        from distributed.client import FutureCancelledError

        for attempt in range(RETRIES + 1):
            lost = [i for i, future in enumerate(self._futures) if future.status != "finished"]
            if lost:
                self._place(lost)
                self.rebuilt += len(lost)
            try:
                return self._reduce_once(function, shared)
            except (CancelledError, FutureCancelledError, OSError) as error:
                if attempt == RETRIES:
                    raise RuntimeError(f"the cluster lost partitions {RETRIES + 1} times "
                                       f"in one cycle: {error}") from None
        raise AssertionError("unreachable")

    def _reduce_once(self, function, shared):
        client = self.client
        workers = max(len(client.scheduler_info().get("workers", {})), 1)
        shared_futures = client.scatter(list(shared), broadcast=True, hash=False)
        level = [client.submit(function, part, *shared_futures, pure=False, retries=2)
                 for part in self._futures]
        while len(level) > 1:
            level = [client.submit(added, level[i], level[i + 1], pure=False, retries=2)
                     if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        result = level[0].result()
        shared_bytes = sum(np.asarray(array).nbytes for array in shared)
        result_bytes = sum(np.asarray(value).nbytes for value in result)
        # Every partition's partial sum, and each sum of two, may cross the network once.
        self.bytes_per_cycle = (shared_bytes * workers
                                + result_bytes * (2 * self.n_partitions - 1))
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


def reduce_statistics(data, function, *shared):
    """``function``'s sums over `data`: a ResponseSet (one partition, here) or
    DaskPartitions (the cluster's)."""
    if isinstance(data, ResponseSet):
        return function(data, *shared)
    return data.reduce(function, *shared)
