"""DIF on live data: a standard's stored response log, persons grouped by a learner
attribute given at their sessions' start (``{"group": "F"}``).

Each session is a person; the answers are the scores the sessions recorded on the
standard's items that have published parameters (pretest items awaiting calibration
and answers to other standards are left out). Persons are grouped by the value of
the attribute: the focal value against every other value (the reference group);
persons whose session has no such attribute (or answers imported without a session)
are left out and counted.

- ``mh`` (default): Mantel-Haenszel matched on the EAP theta over the anchor items
  plus the studied item (`calibration.dif.mh_dif_theta`), the EAPs from the standard's
  published bank parameters and population, since adaptive data are sparse; effect
  sizes from each group's calibration linked on the unflagged items
  (`calibration.dif_effect.group_effects`), or the reason there are none.
- ``lr``: the likelihood-ratio test of a multiple-group calibration
  (`calibration.multigroup.likelihood_ratio_dif`), only for dense data: at least
  LR_MIN_COVERAGE of the person x item cells answered and LR_MIN_PERSONS persons in
  each group (else DataFormatError, 422 over HTTP), and one model for every item.

`dif_document` answers the JSON document of `irtcat dif --format json` with what the
store adds (standard, attribute, bank version, counts of persons), which the bank
report's DIF section reads (`irtcat report --dif`).
"""

from __future__ import annotations

import math

import numpy as np

from irtcat.calibration.dif import eap_matching, likelihood_ratio_rows, mh_dif_theta
from irtcat.itembank.errors import DataFormatError, NotFoundError
from irtcat.itembank.io import ResponseData
from irtcat.itembank.sessions import attributed_response_log

from .errors import ConflictError

LR_MIN_COVERAGE = 0.9
LR_MIN_PERSONS = 100
REFERENCE = "reference"          # the reference group's code in the likelihood-ratio fit


def dif_document(store, standard, attribute, focal, method="mh", purify=False):
    """Run DIF on `standard`'s stored log, grouped by the learner attribute `attribute`.

    Returns ``{"method", "standard", "attribute", "reference" (the other values, sorted),
    "focal", "matching", "purification", "bank_version", "persons": {"reference",
    "focal", "without_attribute"}, "items": [one row per item]}``; the rows are those of
    `irtcat dif --format json` (non-finite numbers as null). NotFoundError for an
    unknown standard, ConflictError when it has no published bank version,
    DataFormatError when the attribute or the focal value is not in the log or the data
    do not allow the method.
    """
    log, values = attributed_response_log(store.database, standard, attribute)
    try:
        bank = store.delivery_bank(standard)
    except NotFoundError:
        raise ConflictError(f"standard {standard!r} has no published bank version: DIF "
                            "matches persons with its parameters") from None
    data, is_focal, persons = _grouped_matrix(log, values, bank, attribute, focal)
    if method == "lr":
        rows, extra = _likelihood_ratio(data, is_focal, bank)
    else:
        rows, extra = _mantel_haenszel(data, is_focal, bank, purify)
    reference = sorted({value for value in values if value is not None and value != focal})
    return {"method": method, "standard": standard, "attribute": attribute,
            "reference": reference, "focal": focal, **extra,
            "bank_version": bank.number, "persons": persons,
            "items": [{key: _finite(value) for key, value in row.items()} for row in rows]}


def _grouped_matrix(log, values, bank, attribute, focal):
    """(ResponseData of the persons with the attribute and the bank's items they answered,
    bool ndarray (n_persons,) focal, counts of persons)."""
    present = np.array([value is not None for value in values], dtype=bool)
    if not present.any():
        raise DataFormatError(f"no session with answers to this standard has the attribute "
                              f"{attribute!r}")
    if not any(value == focal for value in values):
        raise DataFormatError(f"no session with answers to this standard has {attribute} = "
                              f"{focal!r}")
    position = {item_id: j for j, item_id in enumerate(bank.bank.item_ids)}
    columns = np.array([position.get(item_id, -1) for item_id in log.item_ids])
    kept = present[log.person_index] & (columns[log.item_index] >= 0)
    persons = np.unique(log.person_index[kept])
    row_of = np.full(len(log.person_ids), -1)
    row_of[persons] = np.arange(len(persons))
    items = np.unique(columns[log.item_index[kept]])
    column_of = np.full(len(position), -1)
    column_of[items] = np.arange(len(items))
    responses = np.full((len(persons), len(items)), np.nan)
    responses[row_of[log.person_index[kept]], column_of[columns[log.item_index[kept]]]] = \
        log.response[kept]
    is_focal = np.array([values[p] == focal for p in persons], dtype=bool)
    if is_focal.all():
        raise DataFormatError(f"every session with {attribute!r} has the value {focal!r}: "
                              "no reference group")
    item_ids = [bank.bank.item_ids[j] for j in items]
    data = ResponseData([log.person_ids[p] for p in persons], item_ids, responses,
                        [focal if f else REFERENCE for f in is_focal])
    counts = {"reference": int((~is_focal).sum()), "focal": int(is_focal.sum()),
              "without_attribute": int((~present).sum())}
    return data, is_focal, counts


def _bank_subset(bank, item_ids):
    return bank.bank.params.subset(bank.bank.index_of(item_ids))


def _mantel_haenszel(data, is_focal, bank, purify):
    population = bank.bank.population
    estimate = eap_matching(data.responses, _bank_subset(bank, data.item_ids),
                            prior_mean=population["mean"], prior_sd=population["sd"])
    analysis = mh_dif_theta(data.responses, is_focal, data.item_ids, estimate, purify=purify)
    rows = [dict(vars(result)) for result in analysis.items]
    anchors = [row["item"] for row in rows if not row["flagged"]]
    effects = _effects(data, is_focal, bank, anchors)
    for row in rows:
        row.update(effects.get(row["item"], {}))
    purification = {"steps": len(analysis.steps) - 1, "flagged_by_step": analysis.steps,
                    "converged": analysis.converged} if analysis.purified else None
    return rows, {"matching": "theta", "purification": purification}


def _effects(data, is_focal, bank, anchors):
    """{item: its effect-size columns} (`calibration.dif_effect.effect_columns`)."""
    from irtcat.calibration.dif_effect import effect_columns

    models = {item["id"]: item["model"] for item in bank.bank.items}
    return effect_columns(data, is_focal, {item: models[item] for item in data.item_ids},
                          anchors)[0]


def _likelihood_ratio(data, is_focal, bank):
    from irtcat.calibration.multigroup import likelihood_ratio_dif

    coverage = float(np.mean(~np.isnan(data.responses)))
    smaller = int(min(is_focal.sum(), (~is_focal).sum()))
    if coverage < LR_MIN_COVERAGE or smaller < LR_MIN_PERSONS:
        raise DataFormatError(
            f"method lr needs dense data: {coverage:.0%} of the person x item cells are "
            f"answered (at least {LR_MIN_COVERAGE:.0%} needed) and the smaller group has "
            f"{smaller} persons (at least {LR_MIN_PERSONS}); adaptive data are sparse: use "
            "method mh")
    models = {model for model in _bank_subset(bank, data.item_ids).model}
    if len(models) != 1:
        raise DataFormatError("method lr needs one model for every item of the standard; "
                              f"it has {', '.join(sorted(models))}")
    results = likelihood_ratio_dif(data, models.pop(), reference=REFERENCE)
    rows = likelihood_ratio_rows(results, data.item_ids,
                                 label=lambda code: REFERENCE if code == REFERENCE else "focal")
    return rows, {"matching": None, "purification": None}


def _finite(value):
    """JSON's value of a cell: non-finite numbers as null, numpy scalars as Python's."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
