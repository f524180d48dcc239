"""Calibrate response data into an `irtcat-bank/1` document.

`calibrate_document` takes what the command line or the admin API has read
(a `ResponseData` matrix or a `ResponseLog`), settles which items can be
calibrated (excluding, with the reason recorded, an item nobody answered or
one whose answers all fell in one category), checks every response against
its item's model, fits by MML-EM and returns the bank document.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irtcat.engine import DICHOTOMOUS_MODELS, MODELS
from irtcat.engine.models import category_count, parameters_from_entries

from .coordinates import Counted, answer_statistics, coordinates, select_items
from .item_fit import item_fit
from .mml_em import MIN_VARIANCE, PRIOR_MODELS, MMLCalibrator
from .model_fit import model_fit_record
from .partitions import DaskPartitions
from .reliability import eap_reliability, marginal_reliability
from .responses import from_coordinates, from_dense
from .results import calibration_record, item_documents

DENSE_LIMIT = 50_000_000       # persons x items held as a matrix below this
WEAK_SLOPE = 0.05              # a slope below this is flagged
STEEP_SLOPE = 8.0              # and one above this: no real item discriminates that sharply
LOOSE_SLOPE = 0.5              # a slope whose SE exceeds this share of it is weakly determined
LOOSE_ASYMPTOTE = 0.1          # and so is an asymptote whose SE exceeds this
# An item with fewer answers than this is flagged as weakly determined, whatever its SEs:
# with 50 answers, even from persons whose theta were known, a 2PL slope of 1 has an SE
# of 0.37 (b = 0) to 0.43 (b = 1.5), and 0.51 for a = 1.7 (N(0, 1) persons); below that
# the likelihood is far from quadratic, so the asymptotic SE no longer bounds the error
# (items with 5 to 49 answers were off by up to 0.9 in a and 61 in b, unflagged).
MIN_ANSWERS = 50
AT_BOUND = 1e-6                # an asymptote this close to 0 (c) or 1 (u) is at its bound


class CalibrationInputError(ValueError):
    """Data or options that cannot be calibrated; the message is one line."""


def calibrate_document(data, models, *, anchors=None, standards=None, standard=None,
                       priors=None, standard_errors=False, n_nodes=61, max_iter=500, tol=1e-4,
                       m_step="mirt", fit=True, progress=None, latent_prior=None,
                       cluster=None, partition_rows=None):
    """Calibrate and return ``(document, calibrator)``.

    Parameters
    ----------
    data : ResponseData, ResponseLog, or a log coded on a cluster
        (`itembank.parquet_partitions.PartitionedLog`: its E-steps run there)
    models : str or dict {item_id: model}
        One model for every item, or each item's own (a mixed bank).
    anchors : dict {item_id: item document}, optional
        Items whose parameters stay fixed (fixed-parameter calibration).
    standards : dict {item_id: standard code}, optional
    standard : str, optional
        Calibrate only the items of this standard (needs `standards`).
    m_step : {"mirt", "newton"}
        The EM's M-step (see `calibration.mml_em`).
    latent_prior : a given population density on the grid, optional
        Held (or updated by EM) instead of estimating N(mean, sd) with the
        anchors (`calibration.fixed_calib`); see `MMLCalibrator`.
    cluster : distributed.Client, optional
        Run the E-steps on this Dask cluster, a partition of the persons on each worker
        (`calibration.partitions.DaskPartitions`); the estimates are those of one
        process.
    partition_rows : int, optional
        Persons (or response patterns) per partition of the E-step's sums, in one
        process as on a cluster (default `responses.PARTITION_ROWS`).
    """
    coords = coordinates(data)
    anchors = dict(anchors or {})
    standards = dict(standards or {})
    excluded = []
    if standard is not None:
        if not standards:
            raise CalibrationInputError("--standard needs a bank that tags items by standard")
        keep = np.array([standards.get(item) == standard for item in coords.item_ids])
        if not keep.any():
            raise CalibrationInputError(f"no item of the data belongs to standard {standard!r}")
        coords = select_items(coords, keep)
    if anchors and not set(anchors) & set(coords.item_ids):
        raise CalibrationInputError("no anchor item appears in the data")
    item_models = _models_of(coords.item_ids, models, anchors)
    keep = np.ones(len(coords.item_ids), dtype=bool)
    n_categories = np.zeros(len(coords.item_ids), dtype=np.intp)
    answered, highest, seen_by_item = answer_statistics(coords)
    scale_top = _scale_tops(coords.item_ids, item_models, highest, anchors)
    dropped = []                       # polytomous items whose top categories nobody chose
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
        if model not in DICHOTOMOUS_MODELS and highest[position] < scale_top[model]:
            dropped.append({"id": item, "categories": int(highest[position]) + 1,
                            "unused": list(range(highest[position] + 1, scale_top[model] + 1))})
        if model not in DICHOTOMOUS_MODELS and seen.size != highest[position] + 1:
            missing = sorted(set(range(highest[position] + 1)) - set(seen.tolist()))
            raise CalibrationInputError(
                f"item {item!r}: category {missing[0]} is never observed; recode its categories "
                "to 0..K-1 without gaps")
    answers = dict(zip(coords.item_ids, answered.tolist(), strict=True))
    if not keep.any():
        raise CalibrationInputError("no item can be calibrated: " + "; ".join(
            f"{e['id']}: {e['reason']}" for e in excluded[:3]))
    coords = select_items(coords, keep)
    n_categories = n_categories[keep]
    if anchors and not set(anchors) & set(coords.item_ids):
        raise CalibrationInputError("no anchor item has responses in the data: nothing would "
                                    "carry the anchor's scale")
    free = [item for item in coords.item_ids if item not in anchors]
    if not free:
        raise CalibrationInputError("every item of the data is an anchor: nothing to calibrate")
    if isinstance(coords, Counted):    # the answers are on a cluster's workers
        responses = coords.log.partitions(coords.positions, n_categories)
    else:
        responses = _response_set(coords, n_categories)
        if cluster is not None:
            responses = DaskPartitions(cluster, responses, partition_rows)
        elif partition_rows is not None:
            responses = dataclasses.replace(responses, partition_rows=int(partition_rows))
    model_list = [item_models[item] for item in coords.item_ids]
    fixed = {position: anchors[item] for position, item in enumerate(coords.item_ids)
             if item in anchors}
    calibrator = MMLCalibrator(model_list, n_nodes=n_nodes, max_iter=max_iter, tol=tol,
                               priors=priors, m_step=m_step, progress=progress,
                               latent_prior=latent_prior)
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
    extra_reliability = _reliability(items, calibrator, coords)
    reversed_items = {document["id"] for document in items
                      if not document.get("anchor") and document.get("a", 1.0) < 0}
    if reversed_items == {document["id"] for document in items if not document.get("anchor")}:
        raise CalibrationInputError("every item's discrimination came out negative: the "
                                    "responses look reverse-scored")
    if fit and isinstance(coords, Counted):
        extra_fit = "item fit not computed: the data stay on the cluster's workers"
    elif fit and not _attach_fit(items, calibrator, coords, n_categories, model_list):
        extra_fit = "item fit not computed: S-X2 needs the data as a matrix, too large here"
    else:
        extra_fit = None
    model_fit = _model_fit(calibrator, coords) if fit and extra_fit is None else None
    for document in items:
        if document.get("anchor"):
            continue
        slope = document.get("a", 1.0)
        reasons = []
        if slope < 0:
            reasons.append(f"discrimination {slope:.3g} is negative: a reverse-keyed item (its "
                           "score falls as the trait rises); kept as estimated, check its key")
        if abs(slope) < WEAK_SLOPE:
            reasons.append(f"discrimination {slope:.2g} near 0: the item hardly measures the "
                           "trait (miskeyed or reverse-scored?)")
        elif abs(slope) > STEEP_SLOPE:
            reasons.append(f"discrimination {slope:.3g} runs off: the likelihood is flat in "
                           "this item's slope; calibrate with priors (--priors) or more data")
        reasons.append(_asymptote_at_bound(document))
        reasons.append(_weakly_determined(document, answers[document["id"]]))
        reason = "; ".join(filter(None, reasons))
        if reason:
            document.setdefault("fit", {})
            document["fit"]["flagged"] = True
            document["fit"]["reason"] = "; ".join(
                filter(None, [document["fit"].get("reason"), reason]))
    # A negative slope (mirt's M-step allows one) is a reverse-keyed item: the bank keeps
    # it, flagged above (a graded one with its thresholds b_k = -d_k / a decreasing).
    undetermined = [item["id"] for item in items if _undetermined(item)]
    if standard_errors and not any("se" in item for item in items if not item.get("anchor")):
        extra_note = ("standard errors not computed: the information matrix is not positive "
                      "definite (a parameter is not identified by these data)")
    elif undetermined:
        extra_note = (f"standard errors not computed for {len(undetermined)} item"
                      f"{'' if len(undetermined) == 1 else 's'} the data do not determine "
                      f"({', '.join(undetermined[:5])}{', ...' if len(undetermined) > 5 else ''}"
                      "): null in their se, the reason in their fit")
    else:
        extra_note = None
    reported = model_list[0] if len(set(model_list)) == 1 else "mixed"
    extra = {"excluded": excluded} if excluded else {}
    boundary = _boundary_estimates(calibrator, items)
    if boundary:
        extra["boundary"] = boundary
    kept_ids = {document["id"] for document in items}
    dropped = [entry for entry in dropped if entry["id"] in kept_ids]
    if dropped:
        extra["categories_dropped"] = dropped
    messages = boundary + [_dropped_message(entry) for entry in dropped]
    if messages:
        extra["warnings"] = messages
    extra["reliability"] = extra_reliability
    if extra_note:
        extra["standard_errors"] = extra_note
    if extra_fit:
        extra["fit"] = extra_fit
    if model_fit:
        extra["model_fit"] = model_fit
    if anchors:
        extra["anchors"] = sorted(set(anchors) & set(coords.item_ids))
    if standard is not None:
        extra["standard"] = standard
    document = {"format": "irtcat-bank/1", "metric": "logistic",
                "population": {"mean": round(calibrator.mean_, 6), "sd": round(calibrator.sd_, 6)},
                "items": items,
                "calibration": calibration_record(calibrator, reported, extra)}
    return document, calibrator


def check_priors_apply(given, models):
    """CalibrationInputError when a prior asked for by name acts on none of the models.

    given : the keys of the priors given explicitly ("a", "b", "c", "u")
    models : str or dict {item_id: model}, as `calibrate_document` takes them
    """
    chosen = {models} if isinstance(models, str) else set(models.values())
    for key in given:
        if not chosen & set(PRIOR_MODELS[key]):
            raise CalibrationInputError(
                f"--prior-{key} does not apply to the {'/'.join(sorted(chosen))} model: "
                f"it acts on {', '.join(PRIOR_MODELS[key])} items only")


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


def _scale_tops(item_ids, item_models, highest, anchors):
    """{model: the highest category any free item of that model was answered in}."""
    tops = {}
    for position, item in enumerate(item_ids):
        if item not in anchors:
            model = item_models[item]
            tops[model] = max(tops.get(model, -1), int(highest[position]))
    return tops


def _dropped_message(entry):
    unused = entry["unused"]
    which = (f"category {unused[0]}" if len(unused) == 1
             else f"categories {unused[0]}..{unused[-1]}")
    return (f"item {entry['id']!r}: nobody chose {which}, which other items of its model "
            f"were answered in; it is calibrated with categories 0..{entry['categories'] - 1} "
            "only (no threshold for the unused ones): its bank entry has "
            f"{entry['categories']} categories")


def _asymptote_at_bound(document):
    """Why a free item's c or u is a boundary estimate (at 0 or 1), or None."""
    at_bound = [f"{key} = {document[key]:.2g} at its bound {bound}"
                for key, bound in (("c", 0), ("u", 1))
                if key in document and abs(document[key] - bound) < AT_BOUND]
    if not at_bound:
        return None
    return (f"boundary estimate ({', '.join(at_bound)}): the maximum lies on the edge of "
            "the parameter's range, where its standard error means nothing")


def _boundary_estimates(calibrator, items):
    """The record's list of boundary estimates: one line each, [] when none."""
    lines = []
    latent = calibrator.latent_
    if latent.estimate_var and latent.var <= MIN_VARIANCE * (1.0 + 1e-9):
        lines.append(f"population sd {np.sqrt(latent.var):.2g} is at its lower bound (variance "
                     f"{MIN_VARIANCE:g}, mirt's floor): the data show no spread of ability "
                     f"beyond chance with {calibrator.n_persons_} persons; the item estimates "
                     "are conditional on it")
    at_bound = [item["id"] for item in items
                if not item.get("anchor") and _asymptote_at_bound(item)]
    if at_bound:
        lines.append(f"{len(at_bound)} item{'' if len(at_bound) == 1 else 's'} with an "
                     f"asymptote at its bound ({', '.join(at_bound[:5])}"
                     f"{', ...' if len(at_bound) > 5 else ''}): see their fit reason")
    return lines


def _undetermined(document):
    """True for a free item whose SEs are null: the data do not determine it."""
    return any(value is None for value in (document.get("se") or {}).values())


def _weakly_determined(document, n_answers):
    """Why an item's estimates are not or weakly determined by the data (from its SEs
    and its number of answers), or None.

    On a nearly flat likelihood (a 3PL on a few hundred persons) estimates
    move along a ridge by a fraction of their SE with where EM stops, so two
    programs may report different values with the same log-likelihood.
    """
    if _undetermined(document):
        return ("not determined by the data (its information is singular; no standard "
                f"errors): the estimates are arbitrary, from {n_answers} answers")
    if n_answers < MIN_ANSWERS:
        return (f"weakly determined: {n_answers} answers (fewer than {MIN_ANSWERS}); its "
                "estimates may be far off whatever their standard errors say")
    se = document.get("se") or {}
    loose = []
    if "a" in se and se["a"] > LOOSE_SLOPE * abs(document["a"]):
        loose.append(f"SE of a {se['a']:.3g} for a = {document['a']:.3g}")
    loose += [f"SE of {key} {se[key]:.3g}" for key in ("c", "u")
              if key in se and se[key] > LOOSE_ASYMPTOTE]
    if not loose:
        return None
    return (f"weakly determined ({', '.join(loose)}): the likelihood is nearly flat in this "
            "item's parameters; priors (--priors) or more data would pin them down")


def _reliability(items, calibrator, coords):
    """The fitted model's marginal reliability and, when the data fit in a matrix, the
    empirical one of the persons' EAP scores on the EM's grid (calibration/reliability.py)."""
    params = parameters_from_entries(items)
    record = {"marginal": round(marginal_reliability(params, calibrator.mean_,
                                                     calibrator.sd_), 4)}
    if not isinstance(coords, Counted) and \
            len(coords.person_ids) * len(coords.item_ids) <= DENSE_LIMIT:
        record["empirical"] = _finite(eap_reliability(_dense(coords), params, calibrator.mean_,
                                                      calibrator.sd_, calibrator.n_nodes))
    return record


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
        if not document.get("anchor"):
            document["fit"] = fit_record(result)
    return True


def fit_record(result):
    """An item's "fit" in the bank document from `item_fit`'s ItemFit `result`."""
    record = {"s_x2": _finite(result.s_x2), "df": int(result.df),
              "p": _finite(result.p_value), "flagged": bool(result.flagged)}
    if result.infit is not None:
        record["infit"], record["outfit"] = _finite(result.infit), _finite(result.outfit)
    if result.x2 is not None:     # missing responses: X2 given the other answers
        record.update(x2=_finite(result.x2), x2_df=result.x2_df, x2_p=_finite(result.x2_p))
    if result.reason:
        record["reason"] = result.reason
    return record


def _model_fit(calibrator, coords):
    """M2 and its indices for the calibration record (`model_fit.model_fit_record`)."""
    return model_fit_record(calibrator, _dense(coords))


def _finite(value):
    return None if value is None or not np.isfinite(value) else round(float(value), 4)

