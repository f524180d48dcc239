"""DIF effect sizes a reviewer reads: differences of expected item scores between the
reference group's and the focal group's item curves.

The group curves come from separate calibrations, one per group, each with its own
population fixed at N(0, 1) (MML-EM, `calibration.workflow.calibrate_document`).
The focal calibration is then put on the reference group's scale by Stocking-Lord
linking over anchor items (`calibration.linking`): items believed free of DIF, i.e.
the items Mantel-Haenszel did not flag or the given anchors. After linking the focal
population is N(B, A^2) on the reference scale. For each item j,

    signed_j   = integral (E_Rj(theta) - E_Fj(theta)) g_F(theta) dtheta
    unsigned_j = integral |E_Rj(theta) - E_Fj(theta)| g_F(theta) dtheta

with E the expected item score (the ICC of a 0/1 item) and g_F the focal group's
theta density, by quadrature (61 nodes over its mean +- 6 sd). The signed value is
positive when the item favours the reference group (as alpha_MH > 1, delta_MH < 0);
on a 0/1 item both are differences of proportions correct (the unsigned one is
Raju's unsigned area weighted by the focal density). Nonuniform DIF shows as an
unsigned value well above the signed one.

Separate calibrations need enough persons in each group (a few hundred for a 2PL);
an item one group's calibration leaves out gets no effect size and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from irtcat.engine import expected_score, normal_grid
from irtcat.engine.models import parameters_from_entries

from .linking import link_parameters, transform_parameters
from .workflow import calibrate_document

N_NODES = 61
HALF_WIDTH_SD = 6.0


@dataclass
class GroupEffects:
    """Effect sizes of every item.

    signed, unsigned : ndarray (n_items,), NaN where not computed
    reasons : dict {item_id: why no effect size}
    focal_mean, focal_sd : the focal population on the reference scale
    """

    item_ids: list
    signed: np.ndarray
    unsigned: np.ndarray
    reasons: dict
    focal_mean: float
    focal_sd: float


def expected_score_differences(reference, focal, focal_mean=0.0, focal_sd=1.0,
                               n_nodes=N_NODES):
    """Signed and unsigned expected-score differences averaged over the focal density.

    reference, focal : ItemParameters of the same n_items items on one scale
    Returns (signed, unsigned), each ndarray (n_items,).
    """
    half = HALF_WIDTH_SD * focal_sd
    grid = normal_grid(n_nodes, (focal_mean - half, focal_mean + half), focal_mean, focal_sd)
    weights = np.exp(grid.log_weights)
    difference = expected_score(grid.nodes, reference) - expected_score(grid.nodes, focal)
    return weights @ difference, weights @ np.abs(difference)


def _calibrated(data, rows, models):
    """Item parameters {id: item document} and population of one group's calibration,
    with {id: reason} for the items left out."""
    subset = replace(data, person_ids=[data.person_ids[i] for i in rows],
                     responses=data.responses[rows], groups=None)
    document, _ = calibrate_document(subset, models, fit=False)
    excluded = {entry["id"]: entry["reason"] for entry in
                document["calibration"].get("excluded", [])}
    return {item["id"]: item for item in document["items"]}, document["population"], excluded


def group_effects(data, focal, models, anchors):
    """Calibrate each group, link the focal one onto the reference scale over `anchors`
    and return `GroupEffects` of every item of `data`.

    data : ResponseData (n_persons, n_items)
    focal : bool ndarray (n_persons,)
    models : model name or {item_id: model}, as `calibrate_document`
    anchors : list of item ids to link on
    CalibrationInputError (one line) when a group cannot be calibrated.
    """
    focal = np.asarray(focal, dtype=bool)
    groups = [_calibrated(data, np.flatnonzero(~focal), models),
              _calibrated(data, np.flatnonzero(focal), models)]
    (reference, _, left_ref), (focal_items, population, left_foc) = groups
    common = [item for item in data.item_ids if item in reference and item in focal_items]
    links = [item for item in anchors if item in common]
    if not links:
        from .workflow import CalibrationInputError

        raise CalibrationInputError("no anchor item was calibrated in both groups: the group "
                                    "curves cannot be put on one scale")
    constants = link_parameters(
        parameters_from_entries([focal_items[item] for item in links]),
        parameters_from_entries([reference[item] for item in links]), "stocking-lord",
        names=links)
    mean = constants.A * population["mean"] + constants.B
    sd = constants.A * population["sd"]
    signed = np.full(len(data.item_ids), np.nan)
    unsigned = np.full(len(data.item_ids), np.nan)
    if common:
        linked = transform_parameters(
            parameters_from_entries([focal_items[item] for item in common]), constants)
        values = expected_score_differences(
            parameters_from_entries([reference[item] for item in common]), linked, mean, sd)
        position = [data.item_ids.index(item) for item in common]
        signed[position], unsigned[position] = values
    reasons = {}
    for item in data.item_ids:
        if item in left_ref:
            reasons[item] = f"reference-group calibration left it out: {left_ref[item]}"
        elif item in left_foc:
            reasons[item] = f"focal-group calibration left it out: {left_foc[item]}"
    return GroupEffects(list(data.item_ids), signed, unsigned, reasons, float(mean), float(sd))


def effect_columns(data, focal, models, anchors):
    """The effect-size columns of a DIF table: ``({item: {"signed_difference",
    "unsigned_difference", "effect_reason"}}, None)``, or, when a group cannot be
    calibrated, None differences for every item and ``(..., the one-line reason)``."""
    from .workflow import CalibrationInputError

    try:
        effects = group_effects(data, focal, models, anchors)
    except CalibrationInputError as error:
        reason = f"no effect sizes: {error}"
        return {item: {"signed_difference": None, "unsigned_difference": None,
                       "effect_reason": reason} for item in data.item_ids}, reason
    return {item: {"signed_difference": float(signed), "unsigned_difference": float(unsigned),
                   "effect_reason": effects.reasons.get(item, "")}
            for item, signed, unsigned in zip(data.item_ids, effects.signed, effects.unsigned,
                                              strict=True)}, None
