"""The CAT configuration of a multidimensional test: its keys (docs/multidimensional-cat.md)
read into an `engine.mcat.McatDesign` for a bank's `MultidimensionalItems`.

Shared by `irtcat simulate` on a multidimensional bank and by the delivery of tests over
multidimensional bank versions; a configuration that does not fit the bank is a
DataFormatError naming the key (a 422 through the API, exit 2 on the command line).
"""

from __future__ import annotations

import math

from irtcat.engine.mcat import McatDesign
from irtcat.engine.mcat_classification import CLASSIFICATION_METHODS
from irtcat.itembank.errors import DataFormatError

SELECTION_NAMES = ("drule", "dprule", "trule", "tprule", "arule", "aprule", "kl")
DEFAULT_SE = 0.3
CLASSIFICATION_KEYS = {"cut", "method", "alpha", "delta", "beta", "weights"}


def _section(config, key):
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise DataFormatError(f"'{key}' must be an object")
    return value


def _per_factor(value, factors, what):
    """A number, or {factor: number} naming every factor: a tuple, one per factor."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(factors))
        if unknown or set(value) != set(factors):
            raise DataFormatError(f"{what}: give one value per factor ({', '.join(factors)})"
                                  + (f"; unknown {unknown[0]!r}" if unknown else ""))
        value = [value[name] for name in factors]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * len(factors)
    if not isinstance(value, list) or len(value) != len(factors) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value):
        raise DataFormatError(f"{what}: a positive number, or one per factor "
                              f"({', '.join(factors)})")
    return tuple(float(v) for v in value)


def _weights(value, factors, what):
    if not isinstance(value, list) or len(value) != len(factors) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise DataFormatError(f"{what}: a list of {len(factors)} numbers, one per factor")
    return tuple(float(v) for v in value)


def _exposure(config, items):
    """(method, fixed probabilities (n,) or None, live target or None): item eligibility
    with a target and no parameters is live (the store's counts, as for unidimensional
    tests); with parameters, and Sympson-Hetter, the probabilities are fixed."""
    exposure = _section(config, "exposure")
    method = exposure.get("method", "none")
    probability = target = None
    if method == "item-eligibility" and "parameters" not in exposure:
        target = exposure.get("target", 0.25)
        if isinstance(target, bool) or not isinstance(target, (int, float)) or \
                not 0 <= target <= 1:
            raise DataFormatError(f"exposure.target must be a number in [0, 1], got {target!r}")
        return method, None, float(target)
    if method in ("sympson-hetter", "item-eligibility"):
        parameters = exposure.get("parameters")
        if not isinstance(parameters, dict):
            raise DataFormatError(f"exposure {method} on a multidimensional bank needs "
                                  "'parameters': {item id: probability} (no tuning run here)")
        unknown = sorted(set(parameters) - set(items.ids))
        if unknown:
            raise DataFormatError(f"exposure.parameters: {unknown[0]!r} is not an item of the bank")
        probability = tuple(float(parameters.get(item, 1.0)) for item in items.ids)
    return method, probability, target


def _content(rules, items, max_items):
    """(standard, min, max) triples of the configuration's content rules, checked."""
    if not isinstance(rules, list) or not all(isinstance(r, dict) and "standard" in r
                                              for r in rules):
        raise DataFormatError("'content' must be a list of {standard, min, max} objects")
    known = set(items.standards)
    triples = []
    for rule in rules:
        if rule["standard"] not in known:
            raise DataFormatError(f"content: no item of the bank has standard {rule['standard']!r}")
        triples.append((rule["standard"], int(rule.get("min", 0)), int(rule.get("max", 10**6))))
    if sum(low for _, low, _ in triples) > max_items:
        raise DataFormatError("content: the minimums add up to more than stop.max_items")
    return tuple(triples)


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFormatError(f"{name} must be a number, got {value!r}")
    return float(value)


def _classification(rule):
    """McatDesign's classification fields of `stop.classification`: cut, classification
    ("ci", the default, or "sprt"), alpha, and for the SPRT delta (> 0) and beta (delta
    and beta are read only for the SPRT, as a unidimensional "ci" rule ignores them)."""
    if not isinstance(rule, dict) or "cut" not in rule:
        raise DataFormatError("stop.classification: an object with a 'cut'")
    unknown = sorted(set(rule) - CLASSIFICATION_KEYS)
    if unknown:
        raise DataFormatError(f"unknown key {unknown[0]!r} in stop.classification")
    method = rule.get("method", "ci")
    if method not in CLASSIFICATION_METHODS:
        raise DataFormatError(f"stop.classification.method {method!r}: a multidimensional test "
                              f"classifies its composite by {' or '.join(CLASSIFICATION_METHODS)}")
    fields = {"cut": _number(rule["cut"], "stop.classification.cut"), "classification": method,
              "alpha": _number(rule.get("alpha", 0.05), "stop.classification.alpha")}
    if not 0 < fields["alpha"] < (0.5 if method == "sprt" else 1):
        raise DataFormatError(f"stop.classification.alpha must be in (0, "
                              f"{0.5 if method == 'sprt' else 1}), got {rule['alpha']!r}")
    if method == "sprt":
        fields["delta"] = _number(rule.get("delta", 0.3), "stop.classification.delta")
        fields["beta"] = _number(rule.get("beta", 0.05), "stop.classification.beta")
        if fields["delta"] <= 0:
            raise DataFormatError(f"stop.classification.delta must be > 0, got {rule['delta']!r}")
        if not 0 < fields["beta"] < 0.5:
            raise DataFormatError(f"stop.classification.beta must be in (0, 0.5), "
                                  f"got {rule['beta']!r}")
    return fields


def mcat_design_from_config(config, items):
    """The McatDesign of a CAT configuration (a dict) on `items` (a
    `MultidimensionalItems`); DataFormatError naming what does not fit."""
    if not isinstance(config, dict):
        raise DataFormatError("the CAT configuration must be an object")
    try:
        return _design(config, items)
    except (ValueError, TypeError, KeyError) as error:
        if isinstance(error, DataFormatError):
            raise
        raise DataFormatError(f"the CAT configuration: {error}") from None


def _design(config, items):
    factors = items.factors
    scoring, selection = _section(config, "scoring"), _section(config, "selection")
    stop = _section(config, "stop")
    criterion = str(selection.get("method", "dprule")).lower()
    if criterion not in SELECTION_NAMES:
        raise DataFormatError(f"selection.method {selection.get('method')!r}: a multidimensional "
                              f"test selects by one of {', '.join(SELECTION_NAMES)}")
    composite = stop.get("composite")
    weights = composite_se = None
    if composite is not None:
        if not isinstance(composite, dict) or "weights" not in composite:
            raise DataFormatError("stop.composite: an object with 'weights' (and 'se')")
        weights = _weights(composite["weights"], factors, "stop.composite.weights")
        if composite.get("se") is not None:
            composite_se = _per_factor(composite["se"], ("composite",), "stop.composite.se")[0]
    classification = stop.get("classification")
    rule = {}
    if classification is not None:
        rule = _classification(classification)
        if weights is None:
            weights = _weights(classification.get("weights", [1 / len(factors)] * len(factors)),
                               factors, "stop.classification.weights")
        elif "weights" in classification:
            _weights(classification["weights"], factors, "stop.classification.weights")
    se_value = stop.get("se", DEFAULT_SE if composite is None and classification is None
                        else None)
    se = None if se_value is None else _per_factor(se_value, factors, "stop.se")
    content = _content(config.get("content", []), items, int(stop.get("max_items", 30)))
    method, probability, target = _exposure(config, items)
    try:
        return McatDesign(
            criterion=criterion, scoring=scoring.get("method", "eap"),
            min_items=min(int(stop.get("min_items", 5)), items.n_items),
            max_items=min(int(stop.get("max_items", 30)), items.n_items),
            se=se, composite_weights=weights, composite_se=composite_se, **rule,
            criterion_weights=None if "weights" not in selection else
            _weights(selection["weights"], factors, "selection.weights"),
            content=content, exposure=method,
            randomesque=int(selection.get("randomesque", 1)) if method != "randomesque"
            else int(_section(config, "exposure").get("k", selection.get("randomesque", 5))),
            exposure_probability=probability, exposure_target=target,
            focus=bool(selection.get("focus", False)))
    except (ValueError, TypeError, KeyError) as error:
        raise DataFormatError(f"the CAT configuration: {error}") from None


__all__ = ["DEFAULT_SE", "SELECTION_NAMES", "mcat_design_from_config"]
