"""Item parameter drift: operational items re-estimated from a newer response log.

Each studied item is re-estimated by MML with every other item of the log
held at its bank values (the "carriers" of the scale):

- ``mode="each"`` (default): one item at a time, every other item fixed, the
  population N(mean, sd) of the log's takers held at its MML estimate from the
  carriers (`fixed_calib.population_mml`); all items' EMs run side by side
  (`_each_item_em`: the multiple-EM-cycle method of online calibration);
- ``mode="together"``: all studied items free at once with the unstudied ones
  fixed and the population estimated alongside (`MMLCalibrator`, as
  `calibrate_document` with ``anchors=``).

Per item:

- the change of each parameter against its standard error,
  ``z = (new - old) / sqrt(se_new^2 + se_old^2)`` (the bank's SE counts
  where the bank records one): the per-parameter form of Lord's (1980)
  chi-square for item parameter change, one of the procedures Donoghue &
  Isham (1998, "A comparison of procedures to detect item parameter drift",
  Appl. Psych. Meas. 22(1), 33-51) compared;
  for a polytomous item the threshold with the largest |z| is reported;
- the expected-score difference of the new and old item curves,
  ``sum_q w_q (E_new(theta_q) - E_old(theta_q)) / (K - 1)`` (signed) and with
  ``|.|`` (unsigned): Raju's (1988) signed and unsigned areas between the
  curves, weighted by the theta distribution of the takers (Wainer's 1993
  standardized impact), so that a change where nobody sits does not count.
  The weights are the takers' summed posteriors (their EAP distribution,
  ``weights="takers"``: the persons who answered the item, scored on the bank's
  values with the population estimated from the log) or the normal of that
  population (``weights="normal"``).

An item is flagged when |z| of a or b exceeds `DriftThresholds.z` (3 by
default: about 0.5% of stable items flagged by chance over two parameters)
or its unsigned expected-score difference exceeds
`DriftThresholds.expected_score` (0.05 of the score range). Wells,
Subkoviak & Serlin (2002, "The effect of item parameter drift on examinee
ability estimates", Appl. Psych. Meas. 26(1), 77-87) simulated drifts of
0.4 in b and 0.5 in a: sizes these defaults catch from a few hundred answers
(tests/calibration/test_drift.py).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp

from irtcat.engine import ConvergenceWarning
from irtcat.engine.models import (
    category_count,
    expected_score,
    parameter_fields,
    parameters_from_entries,
)

from .fixed_calib import (
    dense_responses,
    normal_weights,
    population_mml,
    posterior_node_mass,
)
from .mml_em import MMLCalibrator, _m_step, eta_from_irt
from .parameterization import Block
from .responses import from_dense
from .results import irt_standard_errors, item_documents, rounded
from .workflow import CalibrationInputError

GRID = np.linspace(-6.0, 6.0, 61)


@dataclass(frozen=True)
class DriftThresholds:
    """z : |change / SE| of a or b beyond which an item is flagged
    expected_score : unsigned expected-score difference (share of the score range)
        beyond which an item is flagged
    min_answers : items with fewer answers in the log are not studied"""

    z: float = 3.0
    expected_score: float = 0.05
    min_answers: int = 100


@dataclass
class DriftRow:
    """One studied item.

    old, new : dict {parameter: value} (IRT form; lists for polytomous b)
    se : dict {parameter: SE of the new value}
    z : dict {"a", "b": signed z of the change, the largest |z| for a list}
    expected_score_signed, expected_score_unsigned : float
    reasons : why it is flagged ([] when not)
    converged : whether the re-estimation's EM converged
    """

    item: str
    model: str
    n_answers: int
    old: dict
    new: dict
    se: dict
    z: dict
    expected_score_signed: float
    expected_score_unsigned: float
    flagged: bool
    reasons: list = field(default_factory=list)
    converged: bool = True


@dataclass
class DriftReport:
    """rows : list of DriftRow (studied items, in the log's order)
    skipped : list of {"id", "reason"} for items not studied
    population : (mean, sd) of the log's takers with every item at its bank values
    mode, weights : as given; thresholds : DriftThresholds"""

    rows: list
    skipped: list
    population: tuple
    mode: str
    weights: str
    thresholds: DriftThresholds

    def flagged(self):
        """Ids of the flagged items."""
        return [row.item for row in self.rows if row.flagged]

    def as_dict(self):
        """A JSON-ready record: settings, population, skipped items and one dict per row."""
        return {"mode": self.mode, "weights": self.weights,
                "thresholds": asdict(self.thresholds),
                "population": {"mean": float(self.population[0]),
                               "sd": float(self.population[1])},
                "flagged": self.flagged(), "skipped": list(self.skipped),
                "items": [asdict(row) for row in self.rows]}


def detect_drift(data, items, *, studied=None, mode="each", weights="takers",
                 thresholds=DriftThresholds(), purify=True, max_iter=500, tol=1e-4):
    """Re-estimate operational items from `data` with the others fixed; flag drift.

    Parameters
    ----------
    data : ResponseData-like (person_ids, item_ids, responses of shape
        (n_persons, n_items), NaN where not answered) or a ResponseLog; items
        of the log not in `items` (pretest items) are left out
    items : dict {item_id: item document}, the bank's values
    studied : list of item ids, default every item of the log in `items`
    mode : "each" (one item free at a time) or "together" (all studied items free)
    weights : "takers" or "normal": the theta distribution of the expected-score difference
    purify : bool
        Re-run with the flagged items out of the fixed set until that set stops
        changing (at most 3 runs), so that drifted items do not carry the scale
        (the purification of Candell & Drasgow, 1988, Appl. Psych. Meas. 12(3), 253-260).

    Returns DriftReport.
    """
    if mode not in ("each", "together"):
        raise ValueError(f"unknown drift mode {mode!r}; expected each or together")
    if weights not in ("takers", "normal"):
        raise ValueError(f"unknown weights {weights!r}; expected takers or normal")
    dense = dense_responses(data)
    all_ids = list(data.item_ids)
    known = [item for item in all_ids if item in items]
    dense = dense[:, [all_ids.index(item) for item in known]]
    answered = ~np.isnan(dense)
    answers = dict(zip(known, answered.sum(axis=0).tolist(), strict=True))
    candidates = list(studied) if studied is not None else known
    skipped = [{"id": item, "reason": "not in the bank or not in the log"}
               for item in candidates if item not in answers]
    skipped += [{"id": item, "reason": f"{answers[item]} answers (fewer than "
                 f"{thresholds.min_answers})"} for item in candidates
                if item in answers and answers[item] < thresholds.min_answers]
    chosen = [item for item in candidates
              if item in answers and answers[item] >= thresholds.min_answers]
    if len(chosen) == len(known) and (mode == "together" or len(known) < 2):
        raise CalibrationInputError("drift needs at least one item held at its bank values "
                                    "to carry the scale")
    bank = {item: items[item] for item in known}
    flagged, report = set(), None
    for _ in range(3 if purify else 1):
        carriers = [item for item in known if item not in flagged]
        if not set(carriers) - set(chosen) and mode == "together":
            break                     # nothing unflagged left to hold: keep the last run
        report = _drift_run(dense, known, bank, chosen, carriers, mode, weights, thresholds,
                            answers, max_iter, tol)
        report.skipped = skipped
        if set(report.flagged()) == flagged:
            break
        flagged = set(report.flagged())
    return report


def _drift_run(dense, ids, bank, chosen, carriers, mode, weights, thresholds, answers,
               max_iter, tol):
    """One pass: `chosen` re-estimated with the `carriers` (not studied) held fixed."""
    carrier_columns = [ids.index(item) for item in carriers]
    mean, sd = population_mml(dense[:, carrier_columns], carriers, bank)
    posterior = posterior_node_mass(dense[:, carrier_columns], carriers, bank, GRID,
                                    normal_weights(GRID, mean, sd))
    if mode == "each":
        estimates = _each_item_em(dense, ids, bank, chosen, carriers, (mean, sd), max_iter, tol)
        populations = dict.fromkeys(chosen, (mean, sd))
    else:
        fixed = [item for item in carriers if item not in chosen]
        columns = [ids.index(item) for item in fixed + chosen]
        documents, population = _reestimate(dense[:, columns], fixed + chosen, bank,
                                            len(fixed), max_iter, tol)
        estimates = dict(zip(chosen, documents, strict=True))
        populations = dict.fromkeys(chosen, population)
    rows = []
    for item in chosen:
        if weights == "takers":
            theta_weights = posterior[~np.isnan(dense[:, ids.index(item)])].sum(axis=0)
        else:
            theta_weights = normal_weights(GRID, *populations[item])
        rows.append(_row(item, bank[item], estimates[item], answers[item],
                         theta_weights / theta_weights.sum(), thresholds))
    return DriftReport(rows, [], (mean, sd), mode, weights, thresholds)


def _each_item_em(dense, ids, bank, chosen, carriers, population, max_iter, tol,
                  batch_answers=200_000):
    """Every chosen item by its own EM, all at once: {item: item document}.

    Item i's E-step weighs each of its answers by the person's posterior from
    the carriers other than i (at their bank values), the population held and
    i's current parameters; its M-step is Newton's (`mml_em._m_step`), from
    the bank values. This is the multiple-EM-cycle method of online
    calibration (Ban, Hanson, Wang, Yi & Harris, 2001, J. Educ. Meas. 38(3),
    191-212) with the studied item's own answers left out of the others' posterior.
    SEs come from the observed information: central differences of the
    Fisher-identity gradient.

    dense : ndarray of shape (n_persons, len(ids)), NaN where not answered
    """
    carrier_columns = [ids.index(item) for item in carriers]
    base = np.log(posterior_node_mass(dense[:, carrier_columns], carriers, bank, GRID,
                                      normal_weights(GRID, *population)) + 1e-300)
    out = {}
    kinds = {}
    for item in chosen:
        model = bank[item]["model"]
        kinds.setdefault((model, category_count(model, b=bank[item].get("b"))), []).append(item)
    for (model, n_categories), items in kinds.items():
        batch, total = [], 0
        for item in items + [None]:
            size = 0 if item is None else int(np.sum(~np.isnan(dense[:, ids.index(item)])))
            if batch and (item is None or total + size > batch_answers):
                out.update(_em_batch(dense, ids, bank, batch, carriers, base, model,
                                     n_categories, max_iter, tol))
                batch, total = [], 0
            if item is not None:
                batch.append(item)
                total += size
    return out


def _em_batch(dense, ids, bank, items, carriers, base, model, n_categories, max_iter, tol):
    """`_each_item_em` for items of one model and category count."""
    columns = [ids.index(item) for item in items]
    answered = ~np.isnan(dense[:, columns])
    person, row = np.nonzero(answered)                       # one entry per answer
    category = dense[:, columns][person, row].astype(np.intp)
    bank_block = Block(model, np.arange(len(items)), n_categories,
                       np.array([eta_from_irt(model, bank[item]) for item in items]))
    leave_out = base[person]                                 # (n_answers, Q)
    own = np.array([item in set(carriers) for item in items])[row]
    if own.any():                                            # the item's own bank term out
        log_p, _ = bank_block.terms(bank_block.eta, GRID, derivatives=False)
        leave_out[own] -= log_p[row[own], category[own]]
    leave_out -= leave_out.max(axis=1, keepdims=True)
    cell = row * n_categories + category
    gather = sp.csr_matrix((np.ones(cell.size), (cell, np.arange(cell.size))),
                           shape=(len(items) * n_categories, cell.size))

    def posterior(eta):
        log_p, _ = bank_block.terms(eta, GRID, derivatives=False)
        joint = leave_out + log_p[row, category]
        joint -= joint.max(axis=1, keepdims=True)
        weights = np.exp(joint)
        return weights / weights.sum(axis=1, keepdims=True)

    def counts(eta):
        return (gather @ posterior(eta)).reshape(len(items), n_categories, GRID.size)

    block = Block(model, np.arange(len(items)), n_categories, bank_block.eta.copy())
    converged = False
    for _ in range(max_iter):
        updated = _m_step(block, counts(block.eta), GRID, None)
        change = float(np.max(np.abs(updated - block.eta)))
        block.eta = updated
        if change < tol:
            converged = True
            break
    covariance = _item_covariances(block, counts)
    irt, jacobian = block.irt(), block.irt_jacobian()
    documents = {}
    for position, item in enumerate(items):
        document = {"id": item, "model": model}
        document.update({name: rounded(irt[name][position])
                         for name in parameter_fields(model)})
        if np.isnan(covariance[position]).any():       # not determined by the answers
            document["se"] = dict.fromkeys(parameter_fields(model))
        else:
            document["se"] = irt_standard_errors(model, jacobian[position],
                                                 covariance[position],
                                                 {name: irt[name][position] for name in irt})
        document["converged"] = converged
        documents[item] = document
    return documents


def _item_covariances(block, counts, step=1e-4):
    """Inverse observed information of each item's eta: (n, P, P); NaN where singular.

    The gradient of item i's marginal log-likelihood is, by Fisher's identity, the
    expected complete-data gradient under its posterior (`counts(eta)` weighed by
    d log P / d eta); its Jacobian is taken by central differences.
    """
    n, n_params = block.eta.shape

    def gradient(eta):
        _, dlog = block.terms(eta, GRID)
        return np.einsum("nkq,npkq->np", counts(eta), dlog)

    hessian = np.zeros((n, n_params, n_params))
    for p in range(n_params):
        shift = np.zeros_like(block.eta)
        shift[:, p] = step
        hessian[:, :, p] = (gradient(block.eta + shift) - gradient(block.eta - shift)) / (2 * step)
    hessian = 0.5 * (hessian + np.transpose(hessian, (0, 2, 1)))
    covariance = np.full_like(hessian, np.nan)
    for position in range(n):
        with np.errstate(all="ignore"):
            try:
                candidate = np.linalg.inv(-hessian[position])
            except np.linalg.LinAlgError:
                continue
        if np.all(np.linalg.eigvalsh(candidate) > 0):
            covariance[position] = candidate
    return covariance


def _reestimate(matrix, ids, bank, n_fixed, max_iter, tol):
    """The free items (after the first `n_fixed` columns) fitted by MML-EM with the
    others fixed and N(mean, sd) estimated: ([item document], (mean, sd)).

    matrix : ndarray of shape (n_persons, len(ids)), NaN where not answered
    """
    for item, column in zip(ids[n_fixed:], matrix.T[n_fixed:], strict=True):
        if np.unique(column[~np.isnan(column)]).size < 2:
            raise CalibrationInputError(f"item {item!r} cannot be re-estimated: every answer "
                                        "falls in one category")
    n_categories = [category_count(bank[item]["model"], b=bank[item].get("b")) for item in ids]
    responses = from_dense(matrix, n_categories)
    calibrator = MMLCalibrator([bank[item]["model"] for item in ids], max_iter=max_iter,
                               tol=tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # reported as not converged
        calibrator.fit(responses, fixed={j: bank[ids[j]] for j in range(n_fixed)})
    documents, _ = item_documents(calibrator, ids, responses, standard_errors=True)
    for document in documents[n_fixed:]:
        document["converged"] = bool(calibrator.converged_)
    return documents[n_fixed:], (calibrator.mean_, calibrator.sd_)


def _row(item, old, new, n_answers, theta_weights, thresholds):
    model = old["model"]
    old_params = parameters_from_entries([old])
    new_params = parameters_from_entries([new])
    top = category_count(model, b=old.get("b")) - 1
    difference = (expected_score(GRID, new_params) - expected_score(GRID, old_params))[:, 0]
    signed = float(theta_weights @ difference) / top
    unsigned = float(theta_weights @ np.abs(difference)) / top
    se = dict(new.get("se") or {})
    old_se = old.get("se") or {}
    z = {}
    for name in ("a", "b"):
        if name not in new or name not in se or se[name] is None:
            continue
        change = np.atleast_1d(np.subtract(new[name], old[name]))
        error = np.atleast_1d(np.asarray(se[name], dtype=float)) ** 2
        if old_se.get(name) is not None:
            error = error + np.atleast_1d(np.asarray(old_se[name], dtype=float)) ** 2
        ratio = change / np.sqrt(error)
        z[name] = float(ratio[np.argmax(np.abs(ratio))])
    reasons = [f"{name} changed by {z[name]:+.2f} SE" for name in z
               if abs(z[name]) > thresholds.z]
    if unsigned > thresholds.expected_score:
        reasons.append(f"expected score moved by {unsigned:.3f} of its range over the takers")
    kept = ("a", "b", "c", "u")
    return DriftRow(item, model, int(n_answers), {k: old[k] for k in kept if k in old},
                    {k: new[k] for k in kept if k in new}, se, z, signed, unsigned,
                    bool(reasons), reasons, bool(new.get("converged", True)))
