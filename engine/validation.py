"""Checks at the trust boundary; the numerical code assumes they passed."""

from __future__ import annotations

import numpy as np

from .exceptions import InvalidParameterError, InvalidResponsesError
from .kernel import DICHOTOMOUS_MODELS, MODELS


def check_item_parameters(params, item_ids=None):
    """Raise InvalidParameterError naming the first item whose parameters are invalid."""
    names = item_ids if item_ids is not None else [f"item {i}" for i in range(params.n_items)]
    for i, model in enumerate(params.model):
        if model not in MODELS:
            raise InvalidParameterError(f"{names[i]}: unknown model {model!r}")
        a, c, u = params.a[i], params.c[i], params.u[i]
        thresholds = params.b[i][~np.isnan(params.b[i])]
        # A negative slope is a reverse-keyed item (mirt estimates and scores one);
        # a = 0 measures nothing and its b = -d / a is undefined.
        if not np.isfinite(a) or a == 0:
            raise InvalidParameterError(
                f"{names[i]}: discrimination a must be finite and non-zero, got {a}")
        if thresholds.size == 0 or not np.all(np.isfinite(thresholds)):
            raise InvalidParameterError(f"{names[i]}: b must be finite")
        if model in DICHOTOMOUS_MODELS:
            if thresholds.size != 1:
                raise InvalidParameterError(f"{names[i]}: a {model} item has one b")
            if not 0 <= c < 1:
                raise InvalidParameterError(f"{names[i]}: c must be in [0, 1), got {c}")
            if not c < u <= 1:
                raise InvalidParameterError(f"{names[i]}: u must be in (c, 1], got {u}")
        elif model == "nominal" and not np.all(np.isfinite(params.ak[i, : thresholds.size + 1])):
            raise InvalidParameterError(f"{names[i]}: a nominal item has {thresholds.size + 1} "
                                        "finite category scores ak")
        elif model == "grm" and np.any(a * np.diff(thresholds) <= 0):
            # z_k = a (theta - b_k) must decrease in k: b increasing, or decreasing for a < 0
            order = "increase" if a > 0 else "decrease (a < 0: a reverse-keyed item)"
            raise InvalidParameterError(f"{names[i]}: grm thresholds must {order}, got "
                                        f"{thresholds.tolist()}")


def check_responses(responses, params, item_ids=None, person_ids=None):
    """Check that every observed response is a category of its item.

    Parameters
    ----------
    responses : array_like of shape (n_persons, n_items), NaN where missing

    Returns
    -------
    ndarray of float, shape (n_persons, n_items)
    """
    responses = np.asarray(responses, dtype=float)
    if responses.ndim != 2 or responses.shape[1] != params.n_items:
        raise InvalidResponsesError(
            f"responses must have shape (n_persons, {params.n_items}), got {responses.shape}")
    observed = ~np.isnan(responses)
    values = np.where(observed, responses, 0.0)
    bad = observed & ((values < 0) | (values >= params.n_categories) | (values != np.floor(values)))
    if bad.any():
        person, item = np.argwhere(bad)[0]
        item_name = item_ids[item] if item_ids is not None else f"item {item}"
        person_name = person_ids[person] if person_ids is not None else f"row {person}"
        raise InvalidResponsesError(
            f"{item_name}: response {responses[person, item]:g} of {person_name} is not a "
            f"category 0..{params.n_categories[item] - 1}")
    return responses
