"""From a fitted calibrator to `irtcat-bank/1` item documents and a record."""

from __future__ import annotations

import numpy as np

from .standard_errors import covariance


def _rounded(value, digits=10):
    """Floats to `digits` significant digits (a tiny slope must stay > 0)."""
    if isinstance(value, np.ndarray):
        return [float(f"{float(v):.{digits}g}") for v in value]
    return float(f"{float(value):.{digits}g}")


def item_documents(calibrator, item_ids, data=None, standard_errors=False):
    """One IRT-form item document per calibrated item, in the order of `item_ids`.

    With `standard_errors`, `data` (the ResponseSet the calibrator was fitted
    to) is needed: SEs come from the observed information (slope-intercept
    form, under ``"se_slope_intercept"``) and, by the delta method, in IRT
    form under ``"se"``. Anchor items are returned with their given values.
    """
    cov = covariance(calibrator, data) if standard_errors else None
    if cov is not None and not np.all(np.isfinite(cov)):
        cov = None
    documents = [None] * len(item_ids)
    start = 0
    for block in calibrator.blocks_:
        irt = block.irt()
        jacobian = block.irt_jacobian()
        for row, item in enumerate(block.items):
            model = calibrator.reported_models_[item]
            document = {"id": item_ids[item], "model": model}
            if model not in ("rasch", "pcm"):
                document["a"] = _rounded(irt["a"][row])
            document["b"] = _rounded(irt["b"][row])
            if model in ("3pl", "4pl"):
                document["c"] = _rounded(irt["c"][row])
            if model == "4pl":
                document["u"] = _rounded(irt["u"][row])
            if not block.fixed:
                document["slope_intercept"] = {
                    name: _rounded(value) for name, value in
                    zip(block.parameter_names(), block.eta[row], strict=True)}
                if cov is not None:
                    index = start + block.free_index(row)
                    block_cov = cov[np.ix_(index, index)]
                    document["se_slope_intercept"] = {
                        name: _rounded(np.sqrt(block_cov[i, i]))
                        for i, name in enumerate(block.parameter_names())}
                    document["se"] = _irt_standard_errors(model, jacobian[row], block_cov)
            else:
                document["anchor"] = True
            documents[item] = document
        if not block.fixed:
            start += block.n_free
    return documents, cov


def _irt_standard_errors(model, jacobian, block_cov):
    """Delta-method SEs of the IRT-form parameters of one item."""
    variance = np.einsum("ip,pq,iq->i", jacobian, block_cov, jacobian)
    se = np.sqrt(np.maximum(variance, 0.0))
    out, position = {}, 0
    if model not in ("rasch", "pcm"):
        out["a"] = _rounded(se[0])
        position = 1
    if model in ("rasch", "1pl", "2pl", "3pl", "4pl"):
        out["b"] = _rounded(se[position])
        position += 1
        if model in ("3pl", "4pl"):
            out["c"] = _rounded(se[position])
        if model == "4pl":
            out["u"] = _rounded(se[position + 1])
    else:
        out["b"] = _rounded(se[position:])
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
