"""DIF of polytomous (ordered-category) items: Mantel's test and the standardized mean
difference, matched on theta for sparse or adaptive-test data.

`calibration.dif` tests dichotomous items by Mantel-Haenszel; an item scored
0 .. K-1 needs the ordinal extension. Within each stratum k of the matching variable
let n_Rk, n_Fk be the reference and focal persons who answered the item,
T_k = n_Rk + n_Fk, n_tk the persons (both groups) in category t (score y_t = t), and
F_k the sum of the focal group's scores. Only strata with T_k > 1 and both groups
present enter. Then (Mantel 1963, "Chi-square tests with one degree of freedom;
extensions of the Mantel-Haenszel procedure", JASA 58, 690-700; for DIF, Zwick,
Donoghue & Grima 1993, "Assessment of differential item functioning for performance
tasks", JEM 30(3), 233-251):

- E(F_k) = n_Fk / T_k * sum_t y_t n_tk;
- Var(F_k) = n_Rk n_Fk / (T_k^2 (T_k - 1)) * (T_k sum_t y_t^2 n_tk - (sum_t y_t n_tk)^2);
- Mantel chi-square = (sum_k F_k - sum_k E(F_k))^2 / sum_k Var(F_k), 1 df (no
  continuity correction, as Zwick et al.);

and the effect size, the standardized mean difference (Dorans & Schmitt 1991; Zwick,
Thayer & Mazzeo 1997, "Descriptive and inferential procedures for assessing
differential item functioning in polytomous items", Applied Measurement in Education
10(4), 321-344): SMD = sum_k w_k (mean focal score_k - mean reference score_k) with
w_k = n_Fk / sum n_F over the strata used (negative: the item is harder for the focal
group), divided by the standard deviation of the item's scores over every person who
answered it (SMD/SD). ETS's classes for polytomous items (Zwick et al. 1997, the rule
ETS applies to NAEP and its programs): C ("CC") if p < .05 and |SMD/SD| > .25, B if
p < .05 and |SMD/SD| > .17, A otherwise.

The matching is `calibration.dif.mh_dif_theta`'s: the person's theta from the anchor
items plus the studied item (Zwick, Thayer & Wingersky 1994), in strata of fixed width.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .dif import ALPHA, MIN_ANSWERS, STRATUM_WIDTH, theta_strata

SMD_SD_B = 0.17
SMD_SD_C = 0.25


def ordinal_tables(scores, focal, strata, n_categories, n_strata):
    """Counts of one item's answers by stratum, group and category.

    scores : int ndarray (n,), each answering person's category 0 .. n_categories-1
    focal : bool ndarray (n,)
    strata : int ndarray (n,), 0 .. n_strata-1
    Returns int ndarray (n_strata, 2, n_categories): [stratum, group (0 reference,
    1 focal), category].
    """
    cell = (strata * 2 + focal.astype(np.intp)) * n_categories + scores
    counts = np.bincount(cell, minlength=n_strata * 2 * n_categories)
    return counts.reshape(n_strata, 2, n_categories)


def mantel_ordinal(tables):
    """Mantel's chi-square, its p and the SMD of one item's `ordinal_tables`.

    Returns dict: chi2, p, smd, variance (sum of Var(F_k); 0 means no test is possible).
    """
    tables = tables.astype(float)
    y = np.arange(tables.shape[2], dtype=float)
    n_ref, n_foc = tables[:, 0].sum(axis=1), tables[:, 1].sum(axis=1)
    total = n_ref + n_foc
    used = (total > 1) & (n_ref > 0) & (n_foc > 0)
    both = tables[used].sum(axis=1)                                   # (k, K)
    t, nr, nf = total[used], n_ref[used], n_foc[used]
    score_sum, square_sum = both @ y, both @ y ** 2
    focal_sum = tables[used, 1] @ y
    expected = nf / t * score_sum
    variance = nr * nf / (t * t * (t - 1)) * (t * square_sum - score_sum ** 2)
    var_sum = float(variance.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float((focal_sum.sum() - expected.sum()) ** 2 / var_sum)
        weights = nf / nf.sum()
        smd = float(np.sum(weights * (focal_sum / nf - (tables[used, 0] @ y) / nr)))
    p = float(stats.chi2.sf(chi2, 1)) if var_sum > 0 else float("nan")
    return {"chi2": chi2, "p": p, "smd": smd, "variance": var_sum}


def ets_polytomous_class(smd_sd, p):
    """ETS's A, B or C of a polytomous item from |SMD/SD| and Mantel's p."""
    size = abs(float(smd_sd))
    if not p < ALPHA or size <= SMD_SD_B:
        return "A"
    return "C" if size > SMD_SD_C else "B"


def mantel_dif_theta(responses, focal, item_ids, estimate, *, items, anchors,
                     width=STRATUM_WIDTH, min_answers=MIN_ANSWERS):
    """Mantel's ordinal DIF test of `items`, matched on theta.

    responses : ndarray (n_persons, n_items), integer scores with NaN where not answered
    focal : bool ndarray (n_persons,)
    item_ids : list of n_items ids
    estimate : callable(used) -> ndarray (n_persons,), each person's theta from the
        items where the bool mask `used` (n_items,) is True (as `mh_dif_theta`)
    items : the ids to test; anchors : the ids matched on (with the studied item)
    width : the strata's width in theta (`theta_strata`)
    min_answers : fewest answers per group for an item to be tested
    Returns one dict per entry of `items`: item, tested, n_reference, n_focal (the
    persons of each group who answered it), chi2, p, smd, smd_sd (NaN when not tested),
    ets_class ("" when not tested) and reason (why not tested, else "").
    """
    responses = np.asarray(responses, dtype=float)
    focal = np.asarray(focal, dtype=bool)
    anchor = np.isin(np.asarray(item_ids, dtype=object), list(anchors))
    results = []
    for item in items:
        j = item_ids.index(item)
        answered = ~np.isnan(responses[:, j])
        n_ref, n_foc = int(np.sum(answered & ~focal)), int(np.sum(answered & focal))
        result = {"item": item, "tested": False, "n_reference": n_ref, "n_focal": n_foc,
                  **dict.fromkeys(("chi2", "p", "smd", "smd_sd"), float("nan")),
                  "ets_class": "", "reason": ""}
        results.append(result)
        if min(n_ref, n_foc) < min_answers:
            result["reason"] = (f"{min(n_ref, n_foc)} answers in the smaller group, "
                                f"{min_answers} needed")
            continue
        used = anchor.copy()
        used[j] = True
        theta = estimate(used)[answered]
        scores = responses[answered, j].astype(np.intp)
        strata = theta_strata(theta, width)
        tables = ordinal_tables(scores, focal[answered], strata, int(scores.max()) + 1,
                                int(strata.max()) + 1)
        values = mantel_ordinal(tables)
        spread = float(np.std(scores))
        if not values["variance"] > 0 or spread == 0:
            result["reason"] = "no variance within the strata: not testable"
            continue
        result.update(tested=True, chi2=values["chi2"], p=values["p"], smd=values["smd"],
                      smd_sd=values["smd"] / spread)
        result["ets_class"] = ets_polytomous_class(result["smd_sd"], result["p"])
    return results
