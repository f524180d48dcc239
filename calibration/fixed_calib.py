"""Fixed-item calibration: new items put on a bank's scale by holding its items fixed.

Two families, both as R's mirt (1.45) computes them:

- ``"fixed"``: plain fixed-parameter calibration, mirt's
  ``mirt(new, 1, pars = sv)`` with the anchors' ``est = FALSE`` and the
  latent ``MEAN_1`` and ``COV_11`` freed. Only the new sample is used; the
  population N(mean, sd) of the new sample is estimated by MML alongside the
  new items (61 nodes on [-6, 6]; `calibrate_document` with ``anchors=``).
- mirt's ``fixedCalib(new, 1, old_mod, PAU, NEMC)``, the methods compared by
  Kim (2006), "A comparative study of IRT fixed parameter calibration
  methods", J. Educ. Meas. 43(4), 355-381. The old and the new samples are
  stacked (the old sample answered the anchors only), the anchors and the
  old model's N(mean, sd) stay fixed and the new items are estimated by EM.
  The prior ability update (PAU):

  * ``nwu`` (no weights updating): the old model's normal prior throughout
    (mirt: Gaussian, 61 nodes);
  * ``owu`` (one weights updating): the prior is the old sample's posterior
    node mass under the old model (mirt: one EM cycle of an empirical
    histogram on the old data), held fixed (121 nodes, mirt's EH grid);
  * ``mwu`` (multiple weights updating, mirt's default): that prior in the
    first cycle, then in each cycle the normalised posterior node mass of the
    previous E-step over both samples (an empirical histogram, 121 nodes).

  and the number of EM cycles (NEMC): ``mem`` runs EM to convergence (mirt's
  TOL 1e-4; at most 500 cycles for nwu, 2000 for the histogram methods),
  ``oem`` runs one cycle. mirt's last step refits the result with TOL = NaN,
  which leaves the item parameters as they are.

Step by step this is mirt's algorithm on mirt's grid: the same starting
values (from the stacked data's proportions), the same E-step, mirt's BFGS
M-step with its iteration budget (`MMLCalibrator`'s "mirt" path, every new
item's parameters unbounded), Ramsay's acceleration every third cycle and
the same convergence rule.

The new sample's population is reported as the mean and sd of its posterior
node mass under the final prior (the histogram methods have no normal
population to estimate); for ``"fixed"`` they are the MML estimates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from irtcat.engine import ConvergenceWarning
from irtcat.engine.models import category_log_probability, parameters_from_entries

from .workflow import CalibrationInputError, calibrate_document

METHODS = ("fixed", "nwu-oem", "nwu-mem", "owu-oem", "owu-mem", "mwu-oem", "mwu-mem")
"""Fixed-item calibration methods; ``nwu``, ``owu`` and ``mwu`` alone mean their ``-mem``."""
GAUSSIAN_NODES = 61      # mirt's grid for one dimension
HISTOGRAM_NODES = 121    # mirt's grid for an empirical histogram (dentype = "EH")
MEM_CYCLES = {"nwu": 500, "owu": 2000, "mwu": 2000}   # mirt's NCYCLES defaults


@dataclass
class StackedResponses:
    """Persons by items with NaN where not answered (what `calibrate_document` reads).

    responses : ndarray of shape (n_persons, n_items)
    """

    person_ids: list
    item_ids: list
    responses: np.ndarray


class GridPrior:
    """A population density on the quadrature grid, for `MMLCalibrator(latent_prior=)`.

    weights : ndarray of shape (n_nodes,), summing to 1
    updating : bool
        Replace the weights after every E-step by that step's normalised node
        mass (an empirical histogram, mirt's ``rr / sum(rr)``).
    """

    def __init__(self, weights, updating=False):
        self.weights = np.asarray(weights, dtype=float) / np.sum(weights)
        self.updating = updating

    def log_weights(self, nodes):
        with np.errstate(divide="ignore"):
            return np.log(self.weights)

    def update(self, node_mass):
        if self.updating:
            self.weights = node_mass / node_mass.sum()


@dataclass
class FixedCalibration:
    """What `fixed_calib` returns.

    document : dict, an ``irtcat-bank/1`` document: the anchors (as given) and the new
        items, ``population`` the new sample's mean and sd, and under ``calibration``
        a ``fixed_calibration`` record (method, persons, nodes, population)
    calibrator : the fitted `MMLCalibrator`
    method : str, one of METHODS
    new_items : list of the ids calibrated (not anchors)
    mean, sd : float, the new sample's population
    nodes, weights : ndarray of shape (n_nodes,), the final prior on the grid
    """

    document: dict
    calibrator: object
    method: str
    new_items: list
    mean: float
    sd: float
    nodes: np.ndarray
    weights: np.ndarray

    def parameters(self):
        """{item id: item document} of the new items."""
        return {item["id"]: item for item in self.document["items"]
                if item["id"] in set(self.new_items)}


def method_name(text):
    """The canonical METHODS entry for ``text`` ("mwu" -> "mwu-mem"); ValueError if unknown."""
    name = text.strip().lower().replace("_", "-")
    name = f"{name}-mem" if name in MEM_CYCLES else name
    if name not in METHODS:
        raise ValueError(f"unknown fixed-item calibration method {text!r}; expected one of "
                         f"fixed, nwu, owu, mwu (each also -oem or -mem)")
    return name


def fixed_calib(new, anchors, *, method="mwu-mem", old=None, models="2pl",
                population=None, standard_errors=False, fit=False, tol=1e-4, max_iter=None,
                progress=None, cluster=None, partition_rows=None):
    """Calibrate the new items of `new` with the `anchors` fixed.

    Parameters
    ----------
    new : ResponseData-like (person_ids, item_ids, responses (n_persons, n_items) NaN
        where missing) or a ResponseLog; the new sample: anchors and new items
    anchors : dict {item_id: item document}
        The old model's items (a bank's items), fixed at these values.
    method : one of METHODS (or "nwu", "owu", "mwu")
    old : ResponseData-like, optional
        The old sample the anchors were calibrated on (its items all anchors);
        mirt's ``fixedCalib`` stacks it on the new one. Without it the
        histogram methods start from the old model's normal population
        (`population`) in place of the old sample's posterior. Not used by "fixed".
    models : str or dict {item_id: model} for the new items
    population : (mean, sd) of the old model, default (0, 1)
    standard_errors, fit : as `calibrate_document` (SEs given the final prior)
    tol, max_iter : EM's tolerance and cycle limit (default mirt's for the method)
    cluster, partition_rows : the EM's E-steps on this Dask cluster (`calibrate_document`'s);
        the start (owu, mwu with `old`) and the new sample's population, one pass each
        over the persons, run here

    Returns
    -------
    FixedCalibration
    """
    method = method_name(method)
    mean, sd = population if population is not None else (0.0, 1.0)
    if method == "fixed":
        document, calibrator = calibrate_document(
            new, models, anchors=anchors, standard_errors=standard_errors, fit=fit, tol=tol,
            max_iter=max_iter or 500, n_nodes=GAUSSIAN_NODES, progress=progress,
            cluster=cluster, partition_rows=partition_rows)
        nodes = calibrator.nodes_
        weights = normal_weights(nodes, calibrator.mean_, calibrator.sd_)
        return _result(document, calibrator, method, anchors, nodes, weights,
                       (calibrator.mean_, calibrator.sd_), len(new.person_ids), 0)
    update, cycles = method.split("-")
    data, n_old = _stack(old, new, anchors)
    n_nodes = GAUSSIAN_NODES if update == "nwu" else HISTOGRAM_NODES
    nodes = np.linspace(-6.0, 6.0, n_nodes)
    start = normal_weights(nodes, mean, sd)
    if update != "nwu" and old is not None:   # the old sample's posterior under the old model
        start = posterior_node_mass(dense_responses(old), old.item_ids, anchors, nodes,
                                    start).sum(axis=0)
    prior = GridPrior(start, updating=update == "mwu")
    limit = max_iter or (1 if cycles == "oem" else MEM_CYCLES[update])
    with warnings.catch_warnings():
        if cycles == "oem":   # one cycle is the method, not a failure to converge
            warnings.simplefilter("ignore", ConvergenceWarning)
        document, calibrator = calibrate_document(
            data, models, anchors=anchors, standard_errors=standard_errors, fit=fit, tol=tol,
            max_iter=limit, n_nodes=n_nodes, progress=progress, latent_prior=prior,
            cluster=cluster, partition_rows=partition_rows)
    calibrated = [item for item in document["items"] if not item.get("anchor")]
    new_rows = dense_responses(data)[n_old:]
    ids = list(data.item_ids)
    mass = posterior_node_mass(new_rows, ids, {**anchors, **{i["id"]: i for i in calibrated}},
                               nodes, prior.weights).sum(axis=0)
    new_mean, new_sd = _moments(nodes, mass)
    return _result(document, calibrator, method, anchors, nodes, prior.weights.copy(),
                   (new_mean, new_sd), data.responses.shape[0] - n_old, n_old)


def posterior_node_mass(responses, item_ids, items, nodes, weights):
    """Each person's posterior over the grid given fixed item parameters.

    responses : ndarray of shape (n_persons, n_items), NaN where not answered,
        columns named by `item_ids`; columns of items not in `items` are ignored
    items : dict {item_id: item document}
    nodes, weights : ndarray of shape (n_nodes,): the grid and the prior on it

    Returns ndarray of shape (n_persons, n_nodes), rows summing to 1.
    """
    columns = [j for j, item in enumerate(item_ids) if item in items]
    params = parameters_from_entries([items[item_ids[j]] for j in columns])
    log_p = np.moveaxis(category_log_probability(nodes, params), 0, -1)   # (items, K, Q)
    width = log_p.shape[1]
    chosen = responses[:, columns]
    person, item = np.nonzero(~np.isnan(chosen))
    category = chosen[person, item].astype(np.intp)
    answers = sp.csr_matrix((np.ones(person.size), (person, item * width + category)),
                            shape=(responses.shape[0], len(columns) * width))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_columns = np.where(np.isfinite(log_p), log_p, -745.0).reshape(-1, nodes.size)
        joint = answers @ log_columns + np.log(weights)
    return np.exp(joint - logsumexp(joint, axis=1, keepdims=True))


def population_mml(responses, item_ids, items, *, start=(0.0, 1.0), n_nodes=GAUSSIAN_NODES,
                   tol=1e-7, max_iter=1000):
    """The MML estimate of the population N(mean, sd) with every item fixed.

    EM on the grid (61 nodes on [-6, 6]): the mean and variance of the
    persons' summed posterior node mass, repeated to the fixed point, which
    is where the marginal likelihood's scores in mean and variance vanish.

    responses : ndarray of shape (n_persons, n_items), NaN where not answered
    items : dict {item_id: item document} for the columns `item_ids` (others ignored)

    Returns (mean, sd).
    """
    nodes = np.linspace(-6.0, 6.0, n_nodes)
    mean, sd = start
    for _ in range(max_iter):
        mass = posterior_node_mass(responses, item_ids, items, nodes,
                                   normal_weights(nodes, mean, sd)).sum(axis=0)
        new_mean, new_sd = _moments(nodes, mass)
        moved = max(abs(new_mean - mean), abs(new_sd**2 - sd**2))
        mean, sd = new_mean, new_sd
        if moved < tol:
            break
    return mean, sd


def normal_weights(nodes, mean, sd):
    """The N(mean, sd) density at `nodes` (shape (n_nodes,)) normalised to sum 1 (mirt's prior)."""
    density = np.exp(-0.5 * ((nodes - mean) / sd) ** 2)
    return density / density.sum()


def _moments(nodes, mass):
    mean = float(mass @ nodes / mass.sum())
    return mean, float(np.sqrt(mass @ (nodes - mean) ** 2 / mass.sum()))


def dense_responses(data):
    """(n_persons, n_items) float matrix, NaN where not answered, of a ResponseData or log."""
    if hasattr(data, "responses"):
        return np.asarray(data.responses, dtype=float)
    dense = np.full((len(data.person_ids), len(data.item_ids)), np.nan)
    dense[data.person_index, data.item_index] = data.response
    return dense


def _stack(old, new, anchors):
    """The old sample (anchors only) over the new one: (StackedResponses, n_old)."""
    new_dense = dense_responses(new)
    if old is None:
        return StackedResponses(list(new.person_ids), list(new.item_ids), new_dense), 0
    strangers = [item for item in old.item_ids if item not in anchors]
    if strangers:
        raise CalibrationInputError(f"item {strangers[0]!r} of the old sample is not in the "
                                    "anchor bank: every old item is held at its bank value")
    item_ids = list(new.item_ids) + [i for i in old.item_ids if i not in set(new.item_ids)]
    position = {item: j for j, item in enumerate(item_ids)}
    old_dense = dense_responses(old)
    stacked = np.full((old_dense.shape[0] + new_dense.shape[0], len(item_ids)), np.nan)
    stacked[:old_dense.shape[0], [position[i] for i in old.item_ids]] = old_dense
    stacked[old_dense.shape[0]:, [position[i] for i in new.item_ids]] = new_dense
    person_ids = [f"old:{p}" for p in old.person_ids] + [f"new:{p}" for p in new.person_ids]
    return StackedResponses(person_ids, item_ids, stacked), old_dense.shape[0]


def _result(document, calibrator, method, anchors, nodes, weights, moments, n_new, n_old):
    mean, sd = (float(value) for value in moments)
    document["population"] = {"mean": round(mean, 6), "sd": round(sd, 6)}
    document["calibration"]["fixed_calibration"] = {
        "method": method, "new_persons": int(n_new), "old_persons": int(n_old),
        "nodes": int(nodes.size), "population": dict(document["population"])}
    new_items = [item["id"] for item in document["items"] if item["id"] not in anchors]
    return FixedCalibration(document, calibrator, method, new_items, mean, sd, nodes, weights)
