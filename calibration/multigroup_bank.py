"""A multiple-group calibration as an `irtcat-bank/1` document.

The document stays a plain bank for any `irtcat-bank/1` reader: ``population``
is the reference group's N(0, 1) and every item's ``a``, ``b`` (``c``, ``u``)
are the reference group's, so scoring with the bank scores on the reference
scale. What the groups add is in keys such readers ignore:

- in ``calibration``: ``reference_group``, ``invariance`` (mirt's keywords),
  ``invariant_items``, ``sabic`` and ``hq`` beside ``aic`` and ``bic``, and
  ``groups``: one entry per group (the reference first) with its code,
  ``n_persons``, latent ``mean``, ``var`` and ``sd``, their standard errors
  (``se``: null where fixed) and its ``loglik``;
- in each item: ``equal_across_groups`` (the slope-intercept parameters
  constrained equal) and, for an item with a parameter free across groups,
  ``groups``: ``{code: {a, b, ..., slope_intercept, se}}`` of every other group;
- in each item, unless ``fit=False``: ``fit_by_group``: ``{code: fit}`` for every
  group (the reference too), the single-group bank's ``fit`` record computed by
  `calibration.item_fit.item_fit` on that group's persons with that group's item
  parameters and latent N(mean, var): Orlando and Thissen's S-X2 on complete data
  (or a few booklets), X2 given the other answers (`binned_fit.rest_posterior_q1`)
  on scattered missing responses; infit and outfit too when every item is rasch or
  pcm. The df count every slope-intercept parameter of the item, equal across
  groups or not (each group's table is judged as a single-group fit's would be).
"""

from __future__ import annotations

import numpy as np

from irtcat.engine.models import parameter_fields, parameters_from_entries

from .item_fit import item_fit
from .multigroup import MultipleGroupCalibrator
from .results import irt_standard_errors, rounded
from .workflow import CalibrationInputError, fit_record

SE_METHOD = "observed information (Oakes): central differences of the Fisher-identity gradient"


def multigroup_document(data, models, *, reference=None, invariance=(), standard_errors=False,
                        n_nodes=61, max_iter=500, tol=1e-4, fit=True, progress=None,
                        cluster=None, partition_rows=None):
    """Calibrate `data` (ResponseData with ``.groups``) in groups: ``(document, calibrator)``.

    models : str or dict {item_id: model}
    invariance : mirt's keywords and item ids (items equal across groups)
    fit : bool
        Item fit per group in each item's ``fit_by_group`` (see the module docstring).
    cluster, partition_rows : the EM's and the standard errors' E-steps on this Dask
        cluster, each group's persons in partitions of `partition_rows`
        (`MultipleGroupCalibrator.fit`); the item fit per group runs here.
    """
    if data.groups is None:
        raise CalibrationInputError("the data have no group codes")
    item_ids = list(data.item_ids)
    model_list = _model_list(item_ids, models)
    _check_items(data, item_ids)
    _check_free_items(data, item_ids, invariance)
    calibrator = MultipleGroupCalibrator(model_list, invariance=invariance, n_nodes=n_nodes,
                                         max_iter=max_iter, tol=tol, progress=progress)
    try:
        calibrator.fit(data.responses, data.groups, reference=reference, item_ids=item_ids,
                       cluster=cluster, partition_rows=partition_rows)
    except ValueError as error:
        raise CalibrationInputError(str(error)) from None
    try:
        cov = calibrator.covariance() if standard_errors else None
    finally:
        calibrator.close()
    if cov is not None and not np.all(np.isfinite(cov)):
        cov = None
    items, group_entries = _item_documents(calibrator, cov)
    if fit:
        _attach_group_fit(items, group_entries, calibrator, data)
    ic = calibrator.information_criteria()
    keywords = [key for key in invariance if key not in item_ids]
    latent_se = calibrator.latent_standard_errors(cov)
    groups = []
    for g, (code, latent) in enumerate(zip(calibrator.groups_, calibrator.latents_,
                                           strict=True)):
        groups.append({
            "code": code, "reference": g == 0, "n_persons": calibrator.group_sizes_[g],
            "mean": round(latent.mean, 6), "var": round(latent.var, 6),
            "sd": round(float(np.sqrt(latent.var)), 6),
            "se": {key: None if value is None else round(value, 6)
                   for key, value in latent_se[g].items()},
            "loglik": round(calibrator.group_log_likelihoods_[g], 4)})
    record = {
        "model": model_list[0] if len(set(model_list)) == 1 else "mixed",
        "loglik": round(calibrator.log_likelihood_, 4),
        "aic": round(float(ic["AIC"]), 4), "bic": round(float(ic["BIC"]), 4),
        "sabic": round(float(ic["SABIC"]), 4), "hq": round(float(ic["HQ"]), 4),
        "n_parameters": calibrator.n_parameters_, "iterations": calibrator.n_iter_,
        "converged": bool(calibrator.converged_), "n_persons": calibrator.n_persons_,
        "method": "MML-EM, multiple groups", "quadpts": n_nodes, "tol": tol,
        "reference_group": calibrator.groups_[0], "invariance": keywords,
        "invariant_items": [item for item in item_ids if item in invariance],
        "groups": groups, "seconds": round(calibrator.seconds_, 3)}
    if standard_errors:
        record["standard_errors"] = SE_METHOD if cov is not None else (
            "not computed: the information matrix is not positive definite (a parameter is "
            "not identified by these data)")
    document = {"format": "irtcat-bank/1", "metric": "logistic",
                "population": {"mean": 0.0, "sd": 1.0}, "items": items,
                "calibration": record}
    return document, calibrator


def _model_list(item_ids, models):
    if isinstance(models, str):
        return [models] * len(item_ids)
    missing = [item for item in item_ids if item not in models]
    if missing:
        raise CalibrationInputError(f"no model given for item {missing[0]!r}")
    return [models[item] for item in item_ids]


def _check_items(data, item_ids):
    """Every item answered, in more than one category, by someone."""
    responses = np.asarray(data.responses, dtype=float)
    for position, item in enumerate(item_ids):
        seen = np.unique(responses[~np.isnan(responses[:, position]), position])
        if seen.size == 0:
            raise CalibrationInputError(f"item {item!r}: nobody answered it")
        if seen.size == 1:
            raise CalibrationInputError(f"item {item!r}: every answer is category "
                                        f"{int(seen[0])}; leave it out of the data")


def _check_free_items(data, item_ids, invariance):
    """An item with parameters free per group must be answered in more than one
    category within every group (else its group's parameters run off)."""
    if {"slopes", "intercepts"} <= set(invariance):
        return
    codes = np.asarray(data.groups, dtype=str)
    responses = np.asarray(data.responses, dtype=float)
    for code in sorted(set(codes.tolist())):
        answers = responses[codes == code]
        for position, item in enumerate(item_ids):
            if item in invariance:
                continue
            seen = np.unique(answers[~np.isnan(answers[:, position]), position])
            if seen.size < 2:
                raise CalibrationInputError(
                    f"item {item!r}: group {code!r} answered it in {seen.size} categor"
                    f"{'y' if seen.size == 1 else 'ies'}: its parameters free in that group "
                    "cannot be estimated; make it invariant (--invariant-items)")


def _item_documents(calibrator, cov):
    """One document per item (data order): the reference group's parameters on top,
    the other groups' under ``groups`` when some parameter differs by group.

    Returns (documents, by_group): by_group[g][item] is group g's entry of the item
    (model, IRT parameters, slope_intercept, se), items in data order."""
    documents = [None] * len(calibrator.item_ids_)
    by_group = [[None] * len(documents) for _ in calibrator.groups_]
    for number, block in enumerate(calibrator.blocks_):
        names = block.eta_names
        equal = [name for position, name in enumerate(names)
                 if np.all(block.columns[:, position] == block.columns[0, position])]
        per_group = []
        for g in range(len(calibrator.groups_)):
            group_block = block.group_block(g)
            irt, jacobian = group_block.irt(), group_block.irt_jacobian()
            entries = []
            for row in range(len(block.items)):
                model = calibrator.reported_models_[block.items[row]]
                entry = {"model": model}
                entry.update({key: rounded(value[row]) for key, value in irt.items()
                              if key in parameter_fields(model)})
                entry["slope_intercept"] = {name: rounded(value) for name, value in
                                            zip(names, group_block.eta[row], strict=True)}
                if cov is not None:
                    index = calibrator.item_covariance_index(number, row, g)
                    item_cov = cov[np.ix_(index, index)]
                    entry["se"] = irt_standard_errors(
                        model, jacobian[row], item_cov, {name: irt[name][row] for name in irt})
                    entry["se_slope_intercept"] = {
                        name: rounded(np.sqrt(item_cov[i, i])) for i, name in enumerate(names)}
                entries.append(entry)
            per_group.append(entries)
            for row, item in enumerate(block.items):
                by_group[g][item] = entries[row]
        for row, item in enumerate(block.items):
            document = {"id": calibrator.item_ids_[item], **per_group[0][row],
                        "equal_across_groups": equal}
            if not block.shared:
                document["groups"] = {
                    code: {key: value for key, value in per_group[g][row].items()
                           if key != "model"}
                    for g, code in enumerate(calibrator.groups_) if g > 0}
            documents[item] = document
    return documents, by_group


def _attach_group_fit(items, group_entries, calibrator, data):
    """Each item's ``fit_by_group``: `item_fit` on each group's persons, with the
    group's item parameters and latent distribution."""
    codes = np.asarray(data.groups, dtype=str)
    responses = np.asarray(data.responses, dtype=float)
    rasch = all(model in ("rasch", "pcm") for model in calibrator.reported_models_)
    for document in items:
        document["fit_by_group"] = {}
    for code, latent, entries in zip(calibrator.groups_, calibrator.latents_, group_entries,
                                     strict=True):
        n_parameters = np.array([len(entry["slope_intercept"]) for entry in entries])
        results = item_fit(responses[codes == code], parameters_from_entries(entries),
                           n_parameters, population_mean=latent.mean,
                           population_sd=float(np.sqrt(latent.var)),
                           variance_estimated=latent.estimate_var, rasch=rasch)
        for document, result in zip(items, results, strict=True):
            document["fit_by_group"][code] = fit_record(result)

