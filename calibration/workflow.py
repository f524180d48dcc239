"""Calibrate response data into an `irtcat-bank/1` document.

`calibrate_document` takes what the command line or the admin API has read
(a `ResponseData` matrix or a `ResponseLog`), settles which items can be
calibrated (excluding, with the reason recorded, an item nobody answered or
one whose answers all fell in one category), checks every response against
its item's model, fits by MML-EM and returns the bank document.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irtcat.engine import DICHOTOMOUS_MODELS, MODELS
from irtcat.engine.models import category_count, parameters_from_entries

from .item_fit import item_fit
from .mml_em import MMLCalibrator
from .responses import from_coordinates, from_dense
from .results import calibration_record, item_documents

DENSE_LIMIT = 50_000_000       # persons x items held as a matrix below this
WEAK_SLOPE = 0.05              # a slope below this is flagged
STEEP_SLOPE = 8.0              # and one above this: no real item discriminates that sharply
LOOSE_SLOPE = 0.5              # a slope whose SE exceeds this share of it is weakly determined
LOOSE_ASYMPTOTE = 0.1          # and so is an asymptote whose SE exceeds this


class CalibrationInputError(ValueError):
    """Data or options that cannot be calibrated; the message is one line."""


@dataclass
class _Coordinates:
    """One entry per response (and the matrix too when the data came as one).

    person_index, item_index, response : ndarray of shape (n_responses,)
    dense : ndarray of shape (n_persons, n_items) with NaN, or None for a response log
    """

    person_ids: list
    item_ids: list
    person_index: np.ndarray
    item_index: np.ndarray
    response: np.ndarray
    dense: np.ndarray | None = None


def _coordinates(data):
    if hasattr(data, "person_index"):
        return _Coordinates(list(data.person_ids), list(data.item_ids), data.person_index,
                            data.item_index, data.response)
    observed = ~np.isnan(data.responses)
    person_index, item_index = np.nonzero(observed)
    return _Coordinates(list(data.person_ids), list(data.item_ids), person_index, item_index,
                        data.responses[observed], data.responses)


def _select_items(coords, keep):
    """Keep the responses to items whose position is in `keep` (bool per item)."""
    if keep.all():
        return coords
    new_position = np.cumsum(keep) - 1
    mask = keep[coords.item_index]
    return _Coordinates(coords.person_ids, [i for i, k in zip(coords.item_ids, keep,
                                                              strict=True) if k],
                        coords.person_index[mask], new_position[coords.item_index[mask]],
                        coords.response[mask],
                        None if coords.dense is None else coords.dense[:, keep])


def _categories_seen(item_index, category, n_items, width):
    """The categories each item was answered in: a list of n_items sorted int arrays.

    Counted in an (n_items, width) table when that is no larger than the
    data, else found as the unique (item, category) pairs.
    """
    if n_items * width <= max(category.size, 1 << 16):
        counts = np.bincount(item_index * width + category, minlength=n_items * width)
        item, seen = np.nonzero(counts.reshape(n_items, width))
    else:
        pairs = np.unique(item_index.astype(np.int64) * width + category)
        item, seen = pairs // width, pairs % width
    return np.split(seen, np.searchsorted(item, np.arange(1, n_items)))


def calibrate_document(data, models, *, anchors=None, standards=None, standard=None,
                       priors=None, standard_errors=False, n_nodes=61, max_iter=500, tol=1e-4,
                       m_step="mirt", fit=True, progress=None):
    """Calibrate and return ``(document, calibrator)``.

    Parameters
    ----------
    data : ResponseData or ResponseLog
    models : str or dict {item_id: model}
        One model for every item, or each item's own (a mixed bank).
    anchors : dict {item_id: item document}, optional
        Items whose parameters stay fixed (fixed-parameter calibration).
    standards : dict {item_id: standard code}, optional
    standard : str, optional
        Calibrate only the items of this standard (needs `standards`).
    m_step : {"mirt", "newton"}
        The EM's M-step (see `calibration.mml_em`).
    """
    coords = _coordinates(data)
    anchors = dict(anchors or {})
    standards = dict(standards or {})
    excluded = []
    if standard is not None:
        if not standards:
            raise CalibrationInputError("--standard needs a bank that tags items by standard")
        keep = np.array([standards.get(item) == standard for item in coords.item_ids])
        if not keep.any():
            raise CalibrationInputError(f"no item of the data belongs to standard {standard!r}")
        coords = _select_items(coords, keep)
    if anchors and not set(anchors) & set(coords.item_ids):
        raise CalibrationInputError("no anchor item appears in the data")
    item_models = _models_of(coords.item_ids, models, anchors)
    keep = np.ones(len(coords.item_ids), dtype=bool)
    n_categories = np.zeros(len(coords.item_ids), dtype=np.intp)
    answered = np.bincount(coords.item_index, minlength=len(coords.item_ids))
    highest = np.full(len(coords.item_ids), -1)
    category = coords.response.astype(np.intp)
    np.maximum.at(highest, coords.item_index, category)
    seen_by_item = _categories_seen(coords.item_index, category, len(coords.item_ids),
                                    int(highest.max(initial=0)) + 1)
    for position, item in enumerate(coords.item_ids):
        model = item_models[item]
        if answered[position] == 0:
            excluded.append({"id": item, "reason": "nobody answered it"})
            keep[position] = False
            continue
        if model in DICHOTOMOUS_MODELS and highest[position] > 1:
            raise CalibrationInputError(
                f"item {item!r}: response {highest[position]} is beyond the {model} model's "
                "categories 0..1")
        if item in anchors:
            anchor = anchors[item]
            n_categories[position] = category_count(anchor["model"], b=anchor["b"])
            if highest[position] >= n_categories[position]:
                raise CalibrationInputError(
                    f"anchor item {item!r}: response {highest[position]} is beyond its "
                    f"categories 0..{n_categories[position] - 1}")
            continue
        seen = seen_by_item[position]
        if seen.size == 1:
            excluded.append({"id": item, "reason": f"every answer is category {seen[0]}"})
            keep[position] = False
            continue
        n_categories[position] = 2 if model in DICHOTOMOUS_MODELS else highest[position] + 1
        if model not in DICHOTOMOUS_MODELS and seen.size != highest[position] + 1:
            missing = sorted(set(range(highest[position] + 1)) - set(seen.tolist()))
            raise CalibrationInputError(
                f"item {item!r}: category {missing[0]} is never observed; recode its categories "
                "to 0..K-1 without gaps")
    if not keep.any():
        raise CalibrationInputError("no item can be calibrated: " + "; ".join(
            f"{e['id']}: {e['reason']}" for e in excluded[:3]))
    coords = _select_items(coords, keep)
    n_categories = n_categories[keep]
    if anchors and not set(anchors) & set(coords.item_ids):
        raise CalibrationInputError("no anchor item has responses in the data: nothing would "
                                    "carry the anchor's scale")
    free = [item for item in coords.item_ids if item not in anchors]
    if not free:
        raise CalibrationInputError("every item of the data is an anchor: nothing to calibrate")
    responses = _response_set(coords, n_categories)
    model_list = [item_models[item] for item in coords.item_ids]
    fixed = {position: anchors[item] for position, item in enumerate(coords.item_ids)
             if item in anchors}
    calibrator = MMLCalibrator(model_list, n_nodes=n_nodes, max_iter=max_iter, tol=tol,
                               priors=priors, m_step=m_step, progress=progress)
    calibrator.fit(responses, fixed=fixed)
    items, _ = item_documents(calibrator, coords.item_ids, responses, standard_errors)
    for document in items:
        if document["id"] in anchors:   # exactly as given, not as re-derived from eta
            given = anchors[document["id"]]
            for key in ("a", "ak", "b", "c", "u"):
                if key in given:
                    document[key] = given[key]
        code = standard if standard is not None else standards.get(document["id"])
        if code is None and document["id"] in anchors:
            code = anchors[document["id"]].get("standard")
        if code is not None:
            document["standard"] = code
    reversed_items = {document["id"] for document in items
                      if not document.get("anchor") and document.get("a", 1.0) < 0}
    if reversed_items == {document["id"] for document in items if not document.get("anchor")}:
        raise CalibrationInputError("every item's discrimination came out negative: the "
                                    "responses look reverse-scored")
    if fit and not _attach_fit(items, calibrator, coords, n_categories, model_list):
        extra_fit = "item fit not computed: S-X2 needs the data as a matrix, too large here"
    else:
        extra_fit = None
    for document in items:
        if document.get("anchor"):
            continue
        slope = document.get("a", 1.0)
        reason = None
        if slope < 0:
            continue                                # excluded below
        if slope < WEAK_SLOPE:
            reason = (f"discrimination {slope:.2g} near 0: the item hardly measures the trait "
                      "(miskeyed or reverse-scored?)")
        elif slope > STEEP_SLOPE:
            reason = (f"discrimination {slope:.3g} runs off: the likelihood is flat in this "
                      "item's slope; calibrate with priors (--priors) or more data")
        loose = _weakly_determined(document)
        if loose:
            reason = "; ".join(filter(None, [reason, loose]))
        if reason:
            document.setdefault("fit", {})
            document["fit"]["flagged"] = True
            document["fit"]["reason"] = "; ".join(
                filter(None, [document["fit"].get("reason"), reason]))
    # A negative slope (mirt's M-step allows one) is a reverse-keyed item: a bank holds
    # a > 0 only, so the item is left out with the reason (the others were fitted with it).
    for document in [d for d in items if d["id"] in reversed_items]:
        items.remove(document)
        excluded.append({"id": document["id"], "reason": (
            f"discrimination {document['a']:.3g} is negative: the item measures the trait in "
            "reverse (miskeyed or reverse-scored?); re-key it and calibrate again")})
    if standard_errors and not any("se" in item for item in items if not item.get("anchor")):
        extra_note = ("standard errors not computed: the information matrix is not positive "
                      "definite (a parameter is not identified by these data)")
    else:
        extra_note = None
    reported = model_list[0] if len(set(model_list)) == 1 else "mixed"
    extra = {"excluded": excluded} if excluded else {}
    if extra_note:
        extra["standard_errors"] = extra_note
    if extra_fit:
        extra["fit"] = extra_fit
    if anchors:
        extra["anchors"] = sorted(set(anchors) & set(coords.item_ids))
    if standard is not None:
        extra["standard"] = standard
    document = {"format": "irtcat-bank/1", "metric": "logistic",
                "population": {"mean": round(calibrator.mean_, 6), "sd": round(calibrator.sd_, 6)},
                "items": items,
                "calibration": calibration_record(calibrator, reported, extra)}
    return document, calibrator


def _models_of(item_ids, models, anchors):
    if isinstance(models, str):
        if models not in MODELS:
            raise CalibrationInputError(f"unknown model {models!r}")
        chosen = {item: models for item in item_ids}
    else:
        missing = [item for item in item_ids if item not in models and item not in anchors]
        if missing:
            raise CalibrationInputError(f"no model given for item {missing[0]!r}")
        chosen = {item: models.get(item) for item in item_ids}
    for item in item_ids:
        if item in anchors:
            chosen[item] = anchors[item]["model"]
    return chosen


def _response_set(coords, n_categories):
    n_persons, n_items = len(coords.person_ids), len(coords.item_ids)
    density = coords.response.size / max(n_persons * n_items, 1)
    if n_persons * n_items <= DENSE_LIMIT and density > 0.5:
        return from_dense(_dense(coords), n_categories)
    return from_coordinates(n_persons, n_items, coords.person_index, coords.item_index,
                            coords.response.astype(np.intp), n_categories)


def _dense(coords):
    """The responses as a C-ordered (n_persons, n_items) matrix with NaN where missing."""
    if coords.dense is not None:
        return np.ascontiguousarray(coords.dense, dtype=float)
    dense = np.full((len(coords.person_ids), len(coords.item_ids)), np.nan)
    dense[coords.person_index, coords.item_index] = coords.response
    return dense


def _weakly_determined(document):
    """Why an item's estimates are weakly determined by the data (from its SEs), or None.

    On a nearly flat likelihood (a 3PL on a few hundred persons) estimates
    move along a ridge by a fraction of their SE with where EM stops, so two
    programs may report different values with the same log-likelihood.
    """
    se = document.get("se") or {}
    loose = []
    if "a" in se and se["a"] > LOOSE_SLOPE * document["a"]:
        loose.append(f"SE of a {se['a']:.3g} for a = {document['a']:.3g}")
    loose += [f"SE of {key} {se[key]:.3g}" for key in ("c", "u")
              if key in se and se[key] > LOOSE_ASYMPTOTE]
    if not loose:
        return None
    return (f"weakly determined ({', '.join(loose)}): the likelihood is nearly flat in this "
            "item's parameters; priors (--priors) or more data would pin them down")


def _attach_fit(items, calibrator, coords, n_categories, model_list):
    """S-X2 (and infit/outfit for Rasch models) under each free item's "fit".

    Returns False (and adds nothing) when the data are too large to hold as a matrix.
    """
    n_persons, n_items = len(coords.person_ids), len(coords.item_ids)
    if n_persons * n_items > DENSE_LIMIT:
        return False
    dense = _dense(coords)
    params = parameters_from_entries(items)
    n_parameters = np.array([0 if item.get("anchor") else len(item.get("slope_intercept", {}))
                             for item in items])
    rasch = all(model in ("rasch", "pcm") for model in model_list)
    results = item_fit(dense, params, n_parameters, population_mean=calibrator.mean_,
                       population_sd=calibrator.sd_,
                       variance_estimated=calibrator.latent_.estimate_var, rasch=rasch)
    for document, result in zip(items, results, strict=True):
        if document.get("anchor"):
            continue
        record = {"s_x2": _finite(result.s_x2), "df": int(result.df),
                  "p": _finite(result.p_value), "flagged": bool(result.flagged)}
        if result.infit is not None:
            record["infit"], record["outfit"] = _finite(result.infit), _finite(result.outfit)
        if result.reason:
            record["reason"] = result.reason
        document["fit"] = record
    return True


def _finite(value):
    return None if value is None or not np.isfinite(value) else round(float(value), 4)

