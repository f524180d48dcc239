"""Item parameter drift: operational items re-estimated from a newer response log.

Each studied item is re-estimated by MML with every other item of the log
held at its bank values and the population N(mean, sd) of the new takers
estimated alongside (fixed-parameter calibration, `calibrate_document` with
``anchors=``): one item at a time (``mode="each"``, each item against all
the others fixed) or all studied items at once (``mode="together"``, the
unstudied items carrying the scale). Per item:

- the change of each parameter against its standard error,
  ``z = (new - old) / sqrt(se_new^2 + se_old^2)`` (the bank's SE counts
  where the bank records one): the per-parameter form of Lord's (1980)
  chi-square for item parameter change, the statistic Donoghue & Isham
  (1998, "A comparison of procedures to detect item parameter drift",
  Appl. Psych. Meas. 22(1), 33-51) found among the most effective;
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
`DriftThresholds.expected_score` (0.05 of the score range); Wells,
Subkoviak & Serlin (2002, "The effect of item parameter drift on examinee
ability estimates", Appl. Psych. Meas. 26(1), 77-87) show that drifts of
0.4 in b or 0.5 in a on a few items already shift the ability estimates,
the size these defaults catch from a few hundred answers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from irtcat.engine import ConvergenceWarning
from irtcat.engine.models import category_count, expected_score, parameters_from_entries

from .fixed_calib import (
    dense_responses,
    normal_weights,
    population_mml,
    posterior_node_mass,
)
from .mml_em import MMLCalibrator
from .responses import from_dense
from .results import item_documents
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
    groups = [[item] for item in chosen] if mode == "each" else [chosen]
    rows = []
    for free in groups:
        fixed = [item for item in carriers if item not in free]
        columns = [ids.index(item) for item in fixed + free]
        estimates, population = _reestimate(dense[:, columns], fixed + free, bank, len(fixed),
                                            max_iter, tol)
        for item, new_item in zip(free, estimates, strict=True):
            if weights == "takers":
                theta_weights = posterior[~np.isnan(dense[:, ids.index(item)])].sum(axis=0)
            else:
                theta_weights = normal_weights(GRID, *population)
            rows.append(_row(item, bank[item], new_item, answers[item],
                             theta_weights / theta_weights.sum(), thresholds))
    order = {item: position for position, item in enumerate(chosen)}
    rows.sort(key=lambda row: order[row.item])
    return DriftReport(rows, [], (mean, sd), mode, weights, thresholds)


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
