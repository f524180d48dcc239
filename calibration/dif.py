"""Mantel-Haenszel differential item functioning (DIF) of dichotomous items.

Two groups: the reference group and the focal group. Within each stratum k of a
matching variable, an item's 2 x 2 table counts A_k (reference, correct),
B_k (reference, incorrect), C_k (focal, correct) and D_k (focal, incorrect),
T_k = A_k + B_k + C_k + D_k. Only strata with T_k > 1 enter (as difR). Then

- alpha_MH = sum_k (A_k D_k / T_k) / sum_k (B_k C_k / T_k)   (> 1: the item favours
  the reference group);
- MH chi-square = (|sum_k (A_k - E[A_k])| - 0.5)^2 / sum_k Var(A_k), with
  E[A_k] = n_Rk m_1k / T_k and Var(A_k) = n_Rk n_Fk m_1k m_0k / (T_k^2 (T_k - 1))
  (the 0.5 is the continuity correction); p from chi-square with 1 df;
- varLambda, the Robins-Breslow-Greenland variance of log(alpha_MH), written as
  difR writes it: sum_k (A_k D_k + alpha B_k C_k)(A_k + D_k + alpha (B_k + C_k)) / T_k^2
  / (2 (sum_k A_k D_k / T_k)^2);
- delta_MH = -2.35 log(alpha_MH) (ETS delta scale, negative: favours the reference
  group), se_delta = 2.35 sqrt(varLambda);
- flagged: chi-square above its .95 quantile (3.841);
- two ETS classes: `ets_class_difR`, difR's printed code from |delta| alone (R's
  `symnum(abs(round(delta, 4)), c(0, 1, 1.5, Inf))`: A up to 1, B up to 1.5, C above;
  the intervals are closed on the right as R's `cut`), and `ets_class`, the full ETS
  rule: A if |delta| < 1 or p >= .05; C if |delta| >= 1.5 and (|delta| - 1) / se_delta
  > z_.95; B otherwise.

Matching variables:

- `mh_dif_score`: the total score over the anchor items plus the studied item
  (difR's `difMH`, `match = "score"`): complete data only.
- `mh_dif_theta`: the EAP theta over the anchor items plus the studied item, for
  sparse and adaptive-test data. Zwick, Thayer & Wingersky (1994, Applied
  Psychological Measurement 18, 121-140; 1995, JEM 32, 341-363) matched CAT
  examinees on an expected true score computed from their IRT ability estimate
  (and found that the studied item must be part of it). Here the match is the EAP
  theta itself in strata of fixed width (0.25 by default; on a 40-item test of
  average slope 1 near theta = 0 that is close to one expected score point), or in
  equal-count strata (quantiles of the theta). Only the persons who answered the
  studied item enter its tables; an item is not tested, with the reason, when
  fewer than `min_answers` persons of either group answered it or when its tables
  carry no variance.

  Why one prior for both groups, although the groups differ in mean (impact): MH
  is unbiased when it matches on a statistic sufficient for theta that includes the
  studied item (Holland & Thayer 1988; Zwick 1990, JES 15, 185-197), the same
  function of the answers for every person. An EAP with one common prior is a
  monotone function of the (weighted) score over a person's items, so it keeps that
  property; an EAP with each group's own prior does not: at equal EAP the focal
  persons then have the higher scores, and every item leans towards the focal group.
  On refs2's DIF simulation (focal N(-0.5, 1), 30 of 40 answers kept) group priors
  moved the mean delta of the 34 items without DIF from about 0 to +0.35..+0.39,
  while with the common prior it is -0.01 over 30 draws, as when matching on the
  simulated true theta (`benchmarks/dif_sparse.py`, docs/dif.md).

Purification (both matchings, as difR's nrIter loop): flag with every item as an
anchor, then match again on the items not flagged (always plus the studied item)
and repeat until the flagged set repeats, at most `max_steps` re-runs. Given
anchors replace purification: anchor items are then not tested (as difR).

The effect size from item curves of each group is in `calibration.dif_effect`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

DELTA_SCALE = 2.35
ALPHA = 0.05
CHI2_THRESHOLD = float(stats.chi2.ppf(1 - ALPHA, 1))   # 3.841, difR's qchisq(.95, 1)
ETS_Z = float(stats.norm.ppf(1 - ALPHA))               # 1.645
MAX_STEPS = 10                                         # difR's nrIter
STRATUM_WIDTH = 0.25
MIN_ANSWERS = 20


@dataclass
class MHItem:
    """The Mantel-Haenszel result of one item; the numbers are NaN when not tested."""

    item: str
    tested: bool
    reason: str
    n_reference: int
    n_focal: int
    mh_chi2: float = float("nan")
    p: float = float("nan")
    alpha_mh: float = float("nan")
    var_lambda: float = float("nan")
    delta_mh: float = float("nan")
    se_delta: float = float("nan")
    flagged: bool = False
    ets_class_difR: str = ""
    ets_class: str = ""


@dataclass
class MHAnalysis:
    """Results of every item, with how they were matched.

    steps : list of lists of item ids, the items flagged at each purification step
        (step 0 with every item as an anchor); one entry without purification.
    anchors : the items the final matching variable is made of
    """

    items: list
    matching: str
    purified: bool
    steps: list = field(default_factory=list)
    converged: bool = True
    anchors: list = field(default_factory=list)

    @property
    def flagged(self):
        return [result.item for result in self.items if result.flagged]


# --- the statistic ----------------------------------------------------------------

def stratum_tables(responses, focal, strata, n_strata):
    """Count the 2 x 2 tables of every item in every stratum.

    responses : ndarray (n_persons, n_items), 0/1 with NaN where not answered (any
        other score is left out)
    focal : bool ndarray (n_persons,)
    strata : int ndarray (n_persons, n_items), each person's stratum for each item
        (0 .. n_strata - 1); a person enters an item's tables only if they answered it
    Returns int ndarray (n_items, n_strata, 2, 2): [item, stratum, group (0 reference,
    1 focal), response (0, 1)].
    """
    n_items = responses.shape[1]
    answered = (responses == 0) | (responses == 1)          # NaN and other scores: left out
    item = np.broadcast_to(np.arange(n_items), responses.shape)[answered]
    cell = ((item * n_strata + strata[answered]) * 2
            + np.broadcast_to(focal[:, None], responses.shape)[answered]) * 2 \
        + responses[answered].astype(np.intp)
    counts = np.bincount(cell, minlength=n_items * n_strata * 4)
    return counts.reshape(n_items, n_strata, 2, 2)


def mantel_haenszel(tables, correct=True):
    """MH statistics of each item from its tables (see the module docstring).

    tables : ndarray (n_items, n_strata, 2, 2) from `stratum_tables`
    Returns a dict of ndarrays (n_items,): mh_chi2, p, alpha_mh, var_lambda, delta_mh,
    se_delta, variance (sum of Var(A_k); 0 means no test is possible).
    """
    tables = tables.astype(float)
    a, b = tables[..., 0, 1], tables[..., 0, 0]
    c, d = tables[..., 1, 1], tables[..., 1, 0]
    total = a + b + c + d
    used = total > 1
    t = np.where(used, total, 1.0)
    n_ref, n_foc, right, wrong = a + b, c + d, a + c, b + d
    expected = np.where(used, n_ref * right / t, 0.0)
    variance = np.where(used, n_ref * n_foc * right * wrong / (t * t * np.maximum(t - 1, 1)),
                        0.0)
    ad = np.where(used, a * d / t, 0.0)
    bc = np.where(used, b * c / t, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        departure = np.abs(np.sum(np.where(used, a, 0.0) - expected, axis=1))
        if correct:
            departure = departure - 0.5
        var_sum = variance.sum(axis=1)
        chi2 = departure ** 2 / var_sum
        alpha = ad.sum(axis=1) / bc.sum(axis=1)
        spread = np.where(used, (a * d + alpha[:, None] * b * c)
                          * (a + d + alpha[:, None] * (b + c)) / (t * t), 0.0)
        var_lambda = spread.sum(axis=1) / (2 * ad.sum(axis=1) ** 2)
        delta = -DELTA_SCALE * np.log(alpha)
        se_delta = DELTA_SCALE * np.sqrt(var_lambda)
    return {"mh_chi2": chi2, "p": stats.chi2.sf(chi2, 1), "alpha_mh": alpha,
            "var_lambda": var_lambda, "delta_mh": delta, "se_delta": se_delta,
            "variance": var_sum}


def ets_class_difR(delta):
    """difR's printed ETS code of |delta| (rounded to 4 decimals): A, B or C."""
    size = abs(round(float(delta), 4))
    return "A" if size <= 1 else "B" if size <= 1.5 else "C"


def ets_class(delta, se_delta, p):
    """The full ETS rule with significance tests: A, B or C."""
    size = abs(float(delta))
    if size < 1 or not p < ALPHA:
        return "A"
    if size >= 1.5 and (size - 1) / se_delta > ETS_Z:
        return "C"
    return "B"


# --- matching and purification -----------------------------------------------------

def _check_input(responses, focal, item_ids):
    responses = np.asarray(responses, dtype=float)
    focal = np.asarray(focal, dtype=bool)
    if responses.ndim != 2 or focal.shape != (responses.shape[0],):
        raise ValueError("responses must be (n_persons, n_items) and focal (n_persons,)")
    if len(item_ids) != responses.shape[1]:
        raise ValueError("one item id per response column is needed")
    if focal.all() or not focal.any():
        raise ValueError("both the reference and the focal group need persons")
    return responses, focal


def _anchor_mask(item_ids, anchors):
    if anchors is None:
        return None
    position = {item: j for j, item in enumerate(item_ids)}
    unknown = [item for item in anchors if item not in position]
    if unknown:
        raise ValueError(f"anchor item {unknown[0]!r} is not in the data")
    mask = np.zeros(len(item_ids), dtype=bool)
    mask[[position[item] for item in anchors]] = True
    return mask


def _results(item_ids, responses, focal, tables, untested, min_answers):
    """`MHItem` of every item from its tables; `untested` maps position -> reason."""
    values = mantel_haenszel(tables)
    answered = ~np.isnan(responses)
    n_ref = (answered & ~focal[:, None]).sum(axis=0)
    n_foc = (answered & focal[:, None]).sum(axis=0)
    results = []
    for j, item in enumerate(item_ids):
        reason = untested.get(j) or _untestable(values, j, n_ref[j], n_foc[j], min_answers)
        if reason:
            results.append(MHItem(item, False, reason, int(n_ref[j]), int(n_foc[j])))
            continue
        row = {key: float(values[key][j]) for key in values if key != "variance"}
        results.append(MHItem(
            item, True, "", int(n_ref[j]), int(n_foc[j]), **row,
            flagged=bool(row["mh_chi2"] > CHI2_THRESHOLD),
            ets_class_difR=ets_class_difR(row["delta_mh"]),
            ets_class=ets_class(row["delta_mh"], row["se_delta"], row["p"])))
    return results


def _untestable(values, j, n_ref, n_foc, min_answers):
    if n_ref < min_answers:
        return f"too few reference-group answers ({n_ref} < {min_answers})"
    if n_foc < min_answers:
        return f"too few focal-group answers ({n_foc} < {min_answers})"
    if not values["variance"][j] > 0:
        return "no variance: no stratum holds both groups and both answers"
    if not (np.isfinite(values["alpha_mh"][j]) and values["alpha_mh"][j] > 0):
        return "odds ratio undefined: a group answered the item all right or all wrong " \
               "within the strata"
    return None


def _run_purification(run, item_ids, anchors, purify, max_steps):
    """difR's loop: `run(anchor_mask)` gives the MHItem list matched on each mask."""
    n_items = len(item_ids)
    if anchors is not None:
        results = run(anchors)
        return results, [[r.item for r in results if r.flagged]], True, anchors
    anchor = np.ones(n_items, dtype=bool)
    results = run(anchor)
    flagged = [r.flagged for r in results]
    steps = [[r.item for r in results if r.flagged]]
    converged = not purify or not any(flagged)
    for _ in range(max_steps if purify and any(flagged) else 0):
        anchor = ~np.array(flagged)
        results = run(anchor)
        new = [r.flagged for r in results]
        steps.append([r.item for r in results if r.flagged])
        if new == flagged:
            converged = True
            break
        flagged = new
    return results, steps, converged, anchor


def mh_dif_score(responses, focal, item_ids, *, anchors=None, purify=False,
                 max_steps=MAX_STEPS, min_answers=0):
    """Mantel-Haenszel DIF matched on the total score, as difR's `difMH`.

    responses : ndarray (n_persons, n_items) of 0/1 (integer scores of polytomous
        items count in the matching score, but only 0/1 items are tested); no NaN
    focal : bool ndarray (n_persons,), True for the focal group
    item_ids : list of n_items ids
    anchors : list of item ids, optional: match on these (plus the studied item),
        test the others; replaces purification
    Returns `MHAnalysis`.
    """
    responses, focal = _check_input(responses, focal, item_ids)
    if np.isnan(responses).any():
        raise ValueError("matching on the total score needs complete data; match on theta "
                         "for data with missing answers")
    scores = responses.astype(np.intp)

    def strata_of(anchor, untested):
        return scores[:, anchor].sum(axis=1)[:, None] + scores * ~anchor

    return _analysis("score", responses, focal, item_ids, strata_of, anchors, purify,
                     max_steps, min_answers)


def _analysis(matching, responses, focal, item_ids, strata_of, anchors, purify, max_steps,
              min_answers):
    """Test every item, matched on ``strata_of(anchor mask, untested) -> int ndarray
    (n_persons, n_items)`` (each item's strata), with purification or given anchors."""
    anchor_mask = _anchor_mask(item_ids, anchors)
    untested = _not_dichotomous(responses, anchor_mask)

    def run(anchor):
        strata = strata_of(anchor, untested)
        tables = stratum_tables(responses, focal, strata, int(strata.max()) + 1)
        return _results(item_ids, responses, focal, tables, untested, min_answers)

    results, steps, converged, anchor = _run_purification(run, item_ids, anchor_mask, purify,
                                                          max_steps)
    return MHAnalysis(results, matching, purify and anchors is None, steps, converged,
                      [item for item, kept in zip(item_ids, anchor, strict=True) if kept])


def _not_dichotomous(responses, anchor_mask):
    untested = {}
    highest = np.nanmax(np.where(np.isnan(responses), 0, responses), axis=0)
    for j in np.flatnonzero(highest > 1):
        untested[int(j)] = "not a 0/1 item: Mantel-Haenszel tests dichotomous items"
    if anchor_mask is not None:
        untested.update({int(j): "anchor item" for j in np.flatnonzero(anchor_mask)})
    return untested


def theta_strata(theta, width=STRATUM_WIDTH, quantiles=None):
    """Stratum index of each theta (any shape): fixed-width bins from the lowest theta,
    or `quantiles` equal-count bins over all the values."""
    theta = np.asarray(theta, dtype=float)
    if quantiles:
        edges = np.quantile(theta, np.linspace(0, 1, quantiles + 1)[1:-1])
        return np.searchsorted(edges, theta, side="right")
    return np.floor((theta - theta.min()) / width).astype(np.intp)


def mh_dif_theta(responses, focal, item_ids, estimate, *, anchors=None, purify=False,
                 max_steps=MAX_STEPS, width=STRATUM_WIDTH, quantiles=None,
                 min_answers=MIN_ANSWERS):
    """Mantel-Haenszel DIF matched on theta, for sparse or adaptive-test data.

    responses : ndarray (n_persons, n_items), 0/1 with NaN where not answered
    focal : bool ndarray (n_persons,)
    item_ids : list of n_items ids
    estimate : callable(used) -> ndarray (n_persons,), each person's theta from the
        items where the bool mask `used` (n_items,) is True (e.g. `eap_matching`)
    anchors, purify, max_steps : as `mh_dif_score`
    width, quantiles : the strata (`theta_strata`)
    min_answers : fewest answers per group for an item to be tested
    Returns `MHAnalysis`.
    """
    responses, focal = _check_input(responses, focal, item_ids)

    def strata_of(anchor, untested):
        theta = np.repeat(estimate(anchor)[:, None], len(item_ids), axis=1)
        for j in np.flatnonzero(~anchor):
            if int(j) not in untested:
                used = anchor.copy()
                used[j] = True
                theta[:, j] = estimate(used)
        return theta_strata(theta, width, quantiles)

    return _analysis("theta", responses, focal, item_ids, strata_of, anchors, purify,
                     max_steps, min_answers)


def eap_matching(responses, params, *, prior_mean=0.0, prior_sd=1.0, n_nodes=121):
    """The `estimate` of `mh_dif_theta`: EAP theta from the chosen items only.

    responses : ndarray (n_persons, n_items) with NaN where not answered
    params : ItemParameters of the n_items items (one calibration of the pooled groups)
    """
    from irtcat.engine import estimate_eap

    responses = np.asarray(responses, dtype=float)

    def estimate(used):
        return estimate_eap(np.where(used, responses, np.nan), params, prior_mean=prior_mean,
                            prior_sd=prior_sd, n_nodes=n_nodes).theta

    return estimate


LR_STATISTICS = ("AIC", "SABIC", "HQ", "BIC", "X2", "df", "p", "p_adjusted")


def likelihood_ratio_rows(results, item_ids, anchors=(), label=str):
    """The rows of a likelihood-ratio DIF table, one per item of `item_ids` in order:
    ``item, tested, reason``, `LR_STATISTICS` and each group's parameters as
    ``<name>_<label(code)>``; an item without a result is not tested ("anchor item" or
    "not tested").

    results : the dicts of `calibration.multigroup.likelihood_ratio_dif`
    """
    tested = {result["item"]: result for result in results}
    rows = []
    for item in item_ids:
        result = tested.get(item)
        if result is None:
            reason = "anchor item" if item in (anchors or ()) else "not tested"
            rows.append({"item": item, "tested": False, "reason": reason})
            continue
        row = {"item": item, "tested": True, "reason": ""}
        row.update({key: result.get(key) for key in LR_STATISTICS})
        for code, values in result.get("groups", {}).items():
            row.update({f"{name}_{label(code)}": value for name, value in values.items()})
        rows.append(row)
    return rows
