"""From a fitted calibrator to `irtcat-bank/1` item documents and a record."""

from __future__ import annotations

import numpy as np

from irtcat.engine.kernel import DICHOTOMOUS_MODELS
from irtcat.engine.models import parameter_fields

from .standard_errors import covariance, parameter_items


def rounded(value, digits=10):
    """Floats to `digits` significant digits (a tiny slope must stay > 0)."""
    if isinstance(value, np.ndarray):
        return [float(f"{float(v):.{digits}g}") for v in value]
    return float(f"{float(value):.{digits}g}")


def item_documents(calibrator, item_ids, data=None, standard_errors=False):
    """One IRT-form item document per calibrated item, in the order of `item_ids`.

    With `standard_errors`, `data` (the ResponseSet the calibrator was fitted
    to) is needed: SEs come from the observed information (slope-intercept
    form, under ``"se_slope_intercept"``) and, by the delta method, in IRT
    form under ``"se"``; an item the data do not determine gets null SEs
    (`standard_errors.covariance`). Anchor items are returned with their given values.
    """
    cov, undetermined = covariance(calibrator, data) if standard_errors else (None, [])
    if cov is not None:
        kept = ~np.isin(parameter_items(calibrator), undetermined)
        if not np.all(np.isfinite(cov[np.ix_(kept, kept)])):
            cov = None
    documents = [None] * len(item_ids)
    start = 0
    for block in calibrator.blocks_:
        irt = block.irt()
        jacobian = block.irt_jacobian()
        for row, item in enumerate(block.items):
            model = calibrator.reported_models_[item]
            document = {"id": item_ids[item], "model": model}
            document.update({name: rounded(irt[name][row]) for name in parameter_fields(model)})
            if not block.fixed:
                document["slope_intercept"] = {
                    name: rounded(value) for name, value in
                    zip(block.parameter_names(), block.eta[row], strict=True)}
                if cov is not None and item in undetermined:
                    document["se_slope_intercept"] = dict.fromkeys(block.parameter_names())
                    document["se"] = dict.fromkeys(parameter_fields(model))
                elif cov is not None:
                    index = start + block.free_index(row)
                    block_cov = cov[np.ix_(index, index)]
                    document["se_slope_intercept"] = {
                        name: rounded(np.sqrt(block_cov[i, i]))
                        for i, name in enumerate(block.parameter_names())}
                    document["se"] = irt_standard_errors(
                        model, jacobian[row], block_cov, {name: irt[name][row] for name in irt})
            else:
                document["anchor"] = True
            documents[item] = document
        if not block.fixed:
            start += block.n_free
    return documents, cov


def irt_standard_errors(model, jacobian, block_cov, irt):
    """Delta-method SEs of the IRT-form parameters of one item, in the order of
    `Block.irt_jacobian`'s rows: the model's `parameter_fields`, one row per value
    of each (`irt`: the item's IRT-form values by name). A value that moves with no
    estimated parameter (a nominal item's fixed first and last score) has SE None."""
    variance = np.einsum("ip,pq,iq->i", jacobian, block_cov, jacobian)
    se = np.sqrt(np.maximum(variance, 0.0))
    fixed = ~np.any(jacobian, axis=1)
    out, position = {}, 0
    for name in parameter_fields(model):
        width = np.size(irt[name])
        values = [None if fixed[i] else rounded(se[i])
                  for i in range(position, position + width)]
        listed = np.ndim(irt[name]) > 0 and model not in DICHOTOMOUS_MODELS
        out[name] = values if listed else values[0]
        position += width
    return out


def calibration_record(calibrator, model, extra=None):
    """The bank's `calibration` object: fit, convergence and settings."""
    record = {
        "model": model,
        "loglik": round(float(calibrator.log_likelihood_), 4),
        "aic": round(float(calibrator.aic_), 4),
        "bic": round(float(calibrator.bic_), 4),
        "n_parameters": calibrator.n_parameters_,
        "iterations": calibrator.n_iter_,
        "converged": bool(calibrator.converged_),
        "n_persons": int(calibrator.n_persons_),
        "method": "MML-EM",
        "quadpts": calibrator.n_nodes,
        "tol": calibrator.tol,
        "m_step": calibrator.m_step,
        "optimizer": calibrator.m_step_method_,
        "priors": calibrator.priors.as_dict() if calibrator.priors is not None else None,
        "seconds": round(calibrator.seconds_, 3),
    }
    if extra:
        record.update(extra)
    return record
