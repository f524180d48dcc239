"""Online calibration's numerics: pretest items calibrated onto the operational scale
from a sparse log, then passed through review gates.

`calibrate_and_gate` takes a standard's response log (operational and pretest answers),
the published operational items (fixed: `calibration.fixed_calib.fixed_calib` with
mirt's default for `fixedCalib`, multiple weights updating over multiple EM cycles
(MWU-MEM): each E-step's prior is the previous cycle's posterior over all persons, so
the pretest items land on the operational scale whatever the takers' distribution;
the "multiple EM cycles" family is the one Ban, Hanson, Wang, Yi & Harris (2001, "A
comparative study of on-line pretest item calibration/scaling methods in computerized
adaptive testing", Journal of Educational Measurement 38(3), 191-212) found to give
the smallest errors of the online methods they compared, at every sample size) and
each person's learner attributes, and
answers one row per pretest item with the value of each gate and its decision:

- ``answers``: at least `GateSettings.min_answers` answers (an item with fewer is
  ``waiting`` and not calibrated in this run);
- ``precision``: SE(a) <= `max_se_a` and SE(b) <= `max_se_b` (the calibration's
  standard errors from the information matrix; a polytomous item's every threshold);
- ``fit``: Yen's Q1 with each person placed and predicted by the posterior given their
  other answers (`calibration.binned_fit.rest_posterior_q1`, built for adaptive-test
  logs; K categories a bin, df 10 (K - 1) minus the item's K parameters for a grm or
  gpcm item), its p adjusted over the calibrated pretest items by Benjamini & Hochberg
  (1995), not below `fit_alpha`;
- ``dif``: on each configured learner attribute, every value held by at least
  `MIN_GROUP` persons against the others (the most frequent value is only a
  reference), matched on theta (from the operational items plus the studied item,
  Zwick, Thayer & Wingersky 1994): Mantel-Haenszel for a dichotomous item
  (`calibration.dif.mh_dif_theta`, ETS class from delta), Mantel's (1963) ordinal test
  with the standardized mean difference for a grm or gpcm item
  (`calibration.dif_ordinal.mantel_dif_theta`, ETS class from SMD/SD, Zwick, Thayer &
  Mazzeo 1997); an ETS class C fails the gate, and so does an item that cannot be
  tested (too few answers in a group): its DIF is unknown;
- ``plausibility``: slope within `slope_range`, difficulty (every threshold of a
  polytomous item) within the range of the EAP thetas (from the operational items) of
  the persons who answered it.

An item passing every gate is ``promoted``; one failing any is ``held`` with the
reasons.

Memory: the fit and DIF gates read the log as a dense persons x items matrix (20,000
learners x 340 items: 54 MB) and each person's log-likelihood on 61 nodes.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import logsumexp

from irtcat.calibration.binned_fit import rest_posterior_q1
from irtcat.calibration.dif import mh_dif_theta
from irtcat.calibration.dif_ordinal import mantel_dif_theta
from irtcat.calibration.fixed_calib import fixed_calib
from irtcat.engine import ConvergenceWarning, log_likelihood, normal_grid
from irtcat.engine.models import parameters_from_entries
from irtcat.itembank.io import ResponseLog

FIXED_METHOD = "mwu-mem"    # mirt fixedCalib's default: multiple weights updating, EM cycles
GATES = ("answers", "precision", "fit", "dif", "plausibility")
PROMOTED, HELD, WAITING = "promoted", "held", "waiting"
N_NODES = 61
THETA_RANGE = (-6.0, 6.0)
MIN_GROUP = 100            # a learner attribute's value held by fewer persons is not a group


@dataclass(frozen=True)
class GateSettings:
    """What a pretest item must show to be promoted (the module docstring names each gate).

    min_answers : 500 by default, for 2PL items. Ban et al. (2001) studied online
        calibration at 300, 1,000 and 3,000 examinees, and He (2015, "CAT field-test
        item calibration sample size: how large is large under the Rasch model?",
        Global Journal of Human-Social Science 15(1)) found Rasch pretest items
        recovered well from about 250 answers each; a 2PL item also has a slope to
        estimate: with 500 answers from persons spread as N(0, 1), even with thetas
        known, a slope near 1 has an SE near 0.12 and b near 0 one near 0.1, inside
        the default SE gates (0.3) with room for items far from the persons.
    dif_attributes : learner attributes to test DIF on (each value against the others).
    slope_range : the plausible slopes, closed interval.
    auto_publish : publish the draft version at once instead of waiting for an admin.
    """

    min_answers: int = 500
    max_se_a: float = 0.3
    max_se_b: float = 0.3
    fit_alpha: float = 0.05
    dif_attributes: tuple = ()
    slope_range: tuple = (0.2, 4.0)
    auto_publish: bool = False

    @classmethod
    def from_mapping(cls, values):
        """Settings from a JSON object (a test's ``online_calibration`` or a request),
        unknown keys refused with ValueError."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown online calibration setting {unknown[0]!r}")
        for key, value in values.items():
            _check_type(key, value)
            if key in ("dif_attributes", "slope_range"):
                values[key] = tuple(value)
        settings = cls(**values)
        if settings.min_answers < 50:
            raise ValueError("min_answers must be at least 50")
        if len(settings.slope_range) != 2 or settings.slope_range[0] >= settings.slope_range[1]:
            raise ValueError("slope_range must be [lowest, highest] with lowest < highest")
        return settings

    def as_mapping(self):
        return {**asdict(self), "dif_attributes": list(self.dif_attributes),
                "slope_range": list(self.slope_range)}


def _check_type(key, value):
    """ValueError unless `value` has the JSON type of setting `key`."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if key == "auto_publish":
        valid = isinstance(value, bool)
    elif key == "dif_attributes":
        valid = isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value)
    elif key == "slope_range":
        valid = isinstance(value, (list, tuple)) and all(number(x) for x in value)
    else:
        valid = number(value) and (key != "min_answers" or value == int(value))
    if not valid:
        raise ValueError(f"online calibration setting {key!r} has the wrong type: {value!r}")


@dataclass
class GateOutcome:
    """rows : one dict per pretest item (`_row`); document : the calibration's bank
    document (None when no item was ready); population : its {"mean", "sd"}."""

    rows: list
    document: dict | None
    population: dict | None

    @property
    def promoted(self):
        return [row for row in self.rows if row["decision"] == PROMOTED]


def calibrate_and_gate(log, models, anchors, pretest_ids, attributes, settings, *,
                       progress=None, cluster=None):
    """Calibrate the ready pretest items of `log` with `anchors` fixed, and gate them.

    Parameters
    ----------
    log : ResponseLog of the standard (persons x items, long form)
    models : {pretest item id: model}
    anchors : {item id: published entry with "model", "a", "b", ...} (operational)
    pretest_ids : the ids of the pretest items, in the order of the rows answered
    attributes : {attribute: list (n_persons,) of each person's value, None if absent}
    settings : GateSettings
    progress, cluster : the calibration's (`calibration.fixed_calib`): a call after every
        EM cycle; a Dask client whose workers run the E-steps
    Returns GateOutcome.
    """
    answers = np.bincount(log.item_index, minlength=len(log.item_ids))
    count = {item: int(answers[j]) for j, item in enumerate(log.item_ids)}
    ready = [item for item in pretest_ids if count.get(item, 0) >= settings.min_answers]
    rows = {item: _row(item, count.get(item, 0), settings) for item in pretest_ids}
    if not ready:
        return GateOutcome([rows[item] for item in pretest_ids], None, None)
    kept = _only(log, [item for item in log.item_ids if item in anchors or item in ready])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        document = fixed_calib(kept, anchors, method=FIXED_METHOD,
                               models={item: models[item] for item in ready},
                               standard_errors=True, progress=progress,
                               cluster=cluster).document
    population = document["population"]
    estimated = {item["id"]: item for item in document["items"] if not item.get("anchor")}
    matrix = _Matrix(kept, anchors, estimated, population)
    fit = _fit_gate(matrix, [item for item in ready if item in estimated], settings)
    dif = _dif_gate(matrix, attributes, settings)
    for item in ready:
        row = rows[item]
        entry = estimated.get(item)
        if entry is None:
            _fail(row, "precision", None, "not calibrated: "
                  + _excluded_reason(document, item))
            continue
        row["parameters"] = {key: entry[key] for key in ("model", "a", "b") if key in entry}
        _precision_gate(row, entry, settings)
        row["gates"]["fit"] = fit[item]
        row["gates"]["dif"] = dif.get(item, {"passed": True, "value": [],
                                             "reason": "no learner attribute configured"})
        _plausibility_gate(row, entry, matrix.theta_range(item), settings)
    for item in ready:
        row = rows[item]
        failed = [name for name in GATES if not row["gates"].get(name, {"passed": False})
                  ["passed"]]
        row["decision"] = HELD if failed else PROMOTED
        row["reasons"] = [row["gates"][name]["reason"] for name in failed
                          if name in row["gates"]]
    return GateOutcome([rows[item] for item in pretest_ids], document, population)


def _row(item, n_answers, settings):
    passed = n_answers >= settings.min_answers
    gate = {"passed": passed, "value": n_answers}
    if not passed:
        gate["reason"] = f"{n_answers} answers, {settings.min_answers} needed"
    return {"item": item, "answers": n_answers, "decision": WAITING if not passed else HELD,
            "reasons": [] if passed else [gate["reason"]], "parameters": None,
            "gates": {"answers": gate}}


def _fail(row, gate, value, reason):
    row["gates"][gate] = {"passed": False, "value": value, "reason": reason}


def _excluded_reason(document, item):
    for entry in document["calibration"].get("excluded", []):
        if entry["id"] == item:
            return entry["reason"]
    return "no estimate"


def _only(log, item_ids):
    """`log` restricted to the answers to `item_ids` (persons kept as they are)."""
    position = {item: j for j, item in enumerate(item_ids)}
    new_index = np.array([position.get(item, -1) for item in log.item_ids])
    keep = new_index[log.item_index] >= 0
    return ResponseLog(list(log.person_ids), list(item_ids), log.person_index[keep],
                       new_index[log.item_index[keep]].astype(np.int32), log.response[keep])


class _Matrix:
    """The kept log as a (n_persons, n_items) matrix with NaN, the items' parameters
    (anchors as published, the others as calibrated) and each person's log-likelihood
    from the operational items on a grid (n_persons, N_NODES)."""

    def __init__(self, log, anchors, estimated, population):
        self.item_ids = list(log.item_ids)
        self.responses = np.full((len(log.person_ids), len(self.item_ids)), np.nan)
        self.responses[log.person_index, log.item_index] = log.response
        entries = [anchors[item] if item in anchors else estimated.get(item)
                   for item in self.item_ids]
        self.present = np.array([entry is not None for entry in entries])
        self.params = parameters_from_entries([entry for entry in entries if entry is not None])
        self.responses = self.responses[:, self.present]
        self.item_ids = [item for item, kept in zip(self.item_ids, self.present, strict=True)
                         if kept]
        self.operational = np.array([item in anchors for item in self.item_ids])
        self.population = population
        self.grid = normal_grid(N_NODES, THETA_RANGE, population["mean"], population["sd"])
        operational = np.flatnonzero(self.operational)
        self.base = log_likelihood(self.responses[:, operational], self.grid.nodes,
                                   self.params.subset(operational)) + self.grid.log_weights
        self.theta = self._eap(self.base)

    def _eap(self, log_posterior):
        posterior = np.exp(log_posterior - logsumexp(log_posterior, axis=1, keepdims=True))
        return posterior @ self.grid.nodes

    def column(self, item):
        return self.item_ids.index(item)

    def theta_range(self, item):
        answered = ~np.isnan(self.responses[:, self.column(item)])
        return float(self.theta[answered].min()), float(self.theta[answered].max())

    def matching(self, rows):
        """`mh_dif_theta`'s estimate for the persons `rows` (with the operational items as
        its anchors): the EAP from the operational items plus the used pretest items."""
        base, responses = self.base[rows], self.responses[rows]
        pretest = np.flatnonzero(~self.operational)

        def estimate(used):
            extra = pretest[used[pretest]]
            if extra.size == 0:
                return self._eap(base)
            return self._eap(base + log_likelihood(responses[:, extra], self.grid.nodes,
                                                   self.params.subset(extra)))

        return estimate


def _precision_gate(row, entry, settings):
    se = entry.get("se") or {}
    value = {"a": se.get("a"), "b": se.get("b")}
    thresholds = value["b"] if isinstance(value["b"], list) else [value["b"]]
    if value["a"] is None or any(se_b is None for se_b in thresholds):
        _fail(row, "precision", value, "standard errors not determined by the data")
        return
    largest = max(thresholds)       # a polytomous item: its least precise threshold
    passed = value["a"] <= settings.max_se_a and largest <= settings.max_se_b
    gate = {"passed": passed, "value": value}
    if not passed:
        gate["reason"] = (f"SE(a) {value['a']:.3f} (at most {settings.max_se_a}), "
                          f"SE(b) {largest:.3f} (at most {settings.max_se_b})")
    row["gates"]["precision"] = gate


def _fit_gate(matrix, items, settings):
    """{item: gate}: rest-posterior Q1, p adjusted by Benjamini-Hochberg over `items`."""
    n_categories = matrix.params.n_categories
    n_parameters = np.where(matrix.operational, 0, np.where(n_categories > 2, n_categories, 2))
    result = rest_posterior_q1(matrix.responses, matrix.params, n_parameters,
                               population_mean=matrix.population["mean"],
                               population_sd=matrix.population["sd"])
    columns = np.array([matrix.column(item) for item in items], dtype=np.intp)
    adjusted = benjamini_hochberg(result["p_x2"][columns])
    gates = {}
    for item, j, p_adjusted in zip(items, columns, adjusted, strict=True):
        value = {"x2": _number(result["x2"][j]), "df": int(result["df_x2"][j]),
                 "p": _number(result["p_x2"][j]), "p_adjusted": _number(p_adjusted)}
        passed = bool(np.isfinite(p_adjusted) and p_adjusted >= settings.fit_alpha)
        gate = {"passed": passed, "value": value}
        if not passed:
            gate["reason"] = (f"misfit: Q1 {value['x2']} on {value['df']} df, adjusted p "
                              f"{value['p_adjusted']} (below {settings.fit_alpha})"
                              if np.isfinite(p_adjusted) else "item fit not computed")
        gates[item] = gate
    return gates


def benjamini_hochberg(p):
    """Benjamini & Hochberg's (1995) adjusted p-values (R's ``p.adjust(p, "BH")``) of
    the finite entries of `p` (n,); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return adjusted
    order = finite[np.argsort(p[finite])[::-1]]          # largest p first
    rank = np.arange(finite.size, 0, -1)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(p[order] * finite.size / rank))
    return adjusted


def _dif_gate(matrix, attributes, settings):
    """{item: gate}: every value of every attribute in `settings.dif_attributes` against
    the persons with another value (Mantel-Haenszel for a dichotomous item, Mantel's
    ordinal test and SMD/SD for a polytomous one); class C or untestable fails."""
    pretest = [item for item, operational in zip(matrix.item_ids, matrix.operational,
                                                  strict=True) if not operational]
    operational = [item for item in matrix.item_ids if item not in pretest]
    polytomous = [item for item in pretest
                  if matrix.params.n_categories[matrix.column(item)] > 2]
    values_by_item = {item: [] for item in pretest}
    for attribute in settings.dif_attributes:
        values = np.array(attributes.get(attribute, [None] * matrix.responses.shape[0]),
                          dtype=object)
        present = np.flatnonzero(values != None)  # noqa: E711 (elementwise on objects)
        levels, counts = np.unique(values[present].astype(str), return_counts=True)
        if levels.size < 2:
            for item in pretest:
                values_by_item[item].append({"attribute": attribute, "focal": None,
                                             "class": None, "reason": "fewer than two groups"})
            continue
        estimate = matrix.matching(present)
        reference = levels[np.argmax(counts)]          # the largest group
        for focal in levels[(counts >= MIN_GROUP) & (levels != reference)]:
            is_focal = values[present].astype(str) == focal
            analysis = mh_dif_theta(matrix.responses[present], is_focal, matrix.item_ids,
                                    estimate, anchors=operational)
            for result in analysis.items:
                if result.item in values_by_item and result.item not in polytomous:
                    values_by_item[result.item].append({
                        "attribute": attribute, "focal": str(focal),
                        "delta": _number(result.delta_mh), "p": _number(result.p),
                        "class": result.ets_class or None,
                        "reason": result.reason or None})
            for result in mantel_dif_theta(matrix.responses[present], is_focal,
                                           matrix.item_ids, estimate, items=polytomous,
                                           anchors=operational):
                values_by_item[result["item"]].append({
                    "attribute": attribute, "focal": str(focal), "method": "mantel",
                    "smd": _number(result["smd"]), "smd_sd": _number(result["smd_sd"]),
                    "p": _number(result["p"]), "class": result["ets_class"] or None,
                    "reason": result["reason"] or None})
    gates = {}
    for item, tests in values_by_item.items():
        failing = [test for test in tests if test["class"] in (None, "C")]
        gate = {"passed": not failing, "value": tests}
        if failing:
            gate["reason"] = "; ".join(_dif_reason(test) for test in failing)
        gates[item] = gate
    return gates if settings.dif_attributes else {}


def _dif_reason(test):
    """Why one DIF test (an entry of the gate's value) fails the gate."""
    if test["class"] == "C":
        size = (f"SMD/SD {test['smd_sd']}" if test.get("method") == "mantel"
                else f"delta {test['delta']}")
        return f"DIF class C on {test['attribute']} = {test['focal']} ({size})"
    return (f"DIF not testable on {test['attribute']}"
            + (f" = {test['focal']}" if test["focal"] else "") + f": {test['reason']}")


def _plausibility_gate(row, entry, theta_range, settings):
    a, b = entry.get("a"), entry.get("b")
    low, high = settings.slope_range
    lowest, highest = theta_range
    value = {"a": a, "b": b, "slope_range": [low, high],
             "theta_range": [round(lowest, 4), round(highest, 4)]}
    reasons = []
    if not low <= a <= high:
        reasons.append(f"slope {a:.3f} outside [{low}, {high}]")
    thresholds = b if isinstance(b, list) else [b]
    outside = [value for value in thresholds if not lowest <= value <= highest]
    if outside:
        name = "threshold" if isinstance(b, list) else "difficulty"
        reasons.append(f"{name} {outside[0]} outside the thetas of those who answered "
                       f"[{lowest:.2f}, {highest:.2f}]")
    gate = {"passed": not reasons, "value": value}
    if reasons:
        gate["reason"] = "; ".join(reasons)
    row["gates"]["plausibility"] = gate


def _number(value):
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None
