"""Scoring many persons partition by partition, here or on a Dask cluster.

The persons of a response log (`itembank.ResponseLog`, long CSV or Parquet, in the
order of their first answer) or of a response matrix (`itembank.ResponseData`) are cut
into partitions of a fixed number of consecutive persons (`PARTITION_PERSONS`). Each
partition is made a matrix only where it is scored (a log travels as its answers, three
numbers each), is scored by `engine.estimate_theta` (or
`engine.plausible.draw_plausible_values`), and the partitions' scores are put together
in person order. The same partition size gives the same numbers bit for bit here and
on any cluster, with any number of workers. A person's score depends on their answers
alone, so it is also the score of the whole data scored at once, to the last bits of
a float: BLAS kernels group rows in blocks, and a partition boundary may shift a row
to another place in its block (a change of 1e-15; the scores CSV's six decimals are
those of a run at once).

Plausible values too: their draws are one uniform number per draw in person order from
``default_rng(seed)``; a partition starting at person s takes its generator advanced
by s x draws numbers (`numpy.random.PCG64.advance`), so it draws the numbers the whole
run would have drawn for its persons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irtcat.engine import estimate_theta
from irtcat.engine.estimation import ThetaEstimate
from irtcat.engine.plausible import draw_plausible_values
from irtcat.itembank.errors import DataFormatError
from irtcat.itembank.io import ResponseLog, align_responses

PARTITION_PERSONS = 50_000
"""Persons per partition by default: 50,000 persons of 100 answers make a matrix of
40 MB where they are scored."""


@dataclass(frozen=True, eq=False)
class Scores:
    """The scores of n persons, in the data's person order.

    estimate : ThetaEstimate of shape (n,) (for plausible values: the EAP and posterior SD)
    draws : ndarray of shape (n, n_draws) of plausible values, or None
    """

    estimate: ThetaEstimate
    draws: np.ndarray | None = None


def _log_parameters(log, bank):
    """The bank's parameters of the log's items (in the log's item order), after the
    checks `itembank.align_responses` makes of a matrix: every item in the bank, every
    response among its item's categories (the first offender in person order named)."""
    try:
        positions = bank.index_of(log.item_ids)
    except KeyError as missing:
        raise DataFormatError(f"item {missing.args[0]!r} of the data is not in the bank") \
            from None
    params = bank.params.subset(positions)
    n_categories = np.asarray(params.n_categories)
    over = np.flatnonzero(log.response >= n_categories[log.item_index])
    if over.size:
        at = over[np.lexsort((log.item_index[over], log.person_index[over]))[0]]
        item = int(log.item_index[at])
        raise DataFormatError(
            f"item {log.item_ids[item]!r}, person {log.person_ids[log.person_index[at]]}: "
            f"response {log.response[at]:g} is outside the item's categories 0.."
            f"{n_categories[item] - 1}")
    return params


def partitions(data, size=PARTITION_PERSONS):
    """The partitions of `data`, in person order: (first person, block), where a block is
    a matrix of its rows (ResponseData) or ``(n_rows, person, item, response)`` with
    person counted from the partition's first (ResponseLog)."""
    if not isinstance(data, ResponseLog):
        n_persons = data.responses.shape[0]
        return [(start, data.responses[start:start + size])
                for start in range(0, n_persons, size)]
    n_persons = len(data.person_ids)
    order = np.argsort(data.person_index, kind="stable")
    person = data.person_index[order]
    starts = list(range(0, n_persons, size))
    edges = np.searchsorted(person, [*starts, n_persons])
    out = []
    for k, start in enumerate(starts):
        rows = order[edges[k]:edges[k + 1]]
        out.append((start, (min(size, n_persons - start),
                            data.person_index[rows] - start, data.item_index[rows],
                            data.response[rows])))
    return out


def score_block(start, block, params, method, options):
    """Score one partition: (theta, se, bounded, draws or None), arrays over its persons.

    options : dict of the estimator's prior_mean, prior_sd and n_nodes; with method
        "pv" also draws and seed
    """
    if isinstance(block, tuple):
        n_rows, person, item, response = block
        matrix = np.full((n_rows, params.n_items), np.nan)
        matrix[person, item] = response                   # (n_rows, n_items)
    else:
        matrix = block
    prior = {key: options[key] for key in ("prior_mean", "prior_sd", "n_nodes")}
    if method == "pv":
        generator = np.random.Generator(np.random.PCG64(options["seed"]))
        generator.bit_generator.advance(start * options["draws"])
        values = draw_plausible_values(matrix, params, options["draws"], seed=generator,
                                       **prior)
        estimate, draws = values.estimate, values.draws
    else:
        estimate, draws = estimate_theta(matrix, params, method, **prior), None
    return estimate.theta, estimate.se, estimate.bounded, draws


def score_partitioned(data, bank, method="eap", *, client=None, size=PARTITION_PERSONS,
                      prior_mean=0.0, prior_sd=1.0, n_nodes=121, draws=5, seed=1):
    """Score every person of `data` (ResponseLog or ResponseData) with `bank`'s items,
    `size` persons at a time: on `client`'s workers (a distributed.Client) or here.

    method : one of engine.METHODS, or "pv" (`draws` plausible values from `seed`)

    Returns
    -------
    Scores, in the data's person order; the same numbers for any client (module
    docstring: for any `size` up to the last bits of a float).
    DataFormatError as `itembank.align_responses` for an item not in the bank or a
    response outside its item's categories.
    """
    if isinstance(data, ResponseLog):
        params = _log_parameters(data, bank)
    else:
        _, params, _ = align_responses(data, bank)
    options = {"prior_mean": prior_mean, "prior_sd": prior_sd, "n_nodes": n_nodes,
               "draws": int(draws), "seed": seed}
    parts = partitions(data, size)
    if client is None:
        scored = [score_block(start, block, params, method, options) for start, block in parts]
    else:
        [shared] = client.scatter([params], broadcast=True, hash=False)
        scored = client.gather([client.submit(score_block, start, block, shared, method,
                                              options, pure=False, retries=2)
                                for start, block in parts])
    if not scored:                                  # no persons
        scored = [score_block(0, np.empty((0, params.n_items)), params, method, options)]
    theta, se, bounded = (np.concatenate([part[i] for part in scored]) for i in range(3))
    estimate = ThetaEstimate(theta, se, "eap" if method == "pv" else method, bounded)
    return Scores(estimate, np.concatenate([part[3] for part in scored])
                  if method == "pv" else None)
