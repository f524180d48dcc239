"""The CAT configuration JSON of spec/FORMATS.md, read into an engine `CATDesign`.

Each section of the configuration becomes the settings of one role of the
engine (`Scoring`, `Selection`, `Exposure`, `Content`, `Stopping`, `Pretest`).
Standards and tags become content groups: item masks keyed ``("standard", code)``
and ``("tag", tag)``; item ids become positions.
Every key is optional (the defaults are FORMATS.md's); an unknown key or a
value out of range is a `DataFormatError` naming it, and so is a design the bank
cannot honour (`engine.validation.check_design`); the default `min_items` (5) is
lowered to a smaller bank's operational items.
"""

from __future__ import annotations

import numpy as np

from irtcat.engine.design import (
    CLASSIFICATION_METHODS,
    COMBINE_METHODS,
    CONTENT_METHODS,
    EXPOSURE_METHODS,
    SCORING_METHODS,
    SELECTION_METHODS,
    CATDesign,
    Classification,
    Content,
    ContentRule,
    Exposure,
    Pretest,
    Scoring,
    Selection,
    Stopping,
)
from irtcat.engine.names import canonical_method
from irtcat.engine.validation import InfeasibleDesignError, check_design
from irtcat.itembank.errors import DataFormatError

_KEYS = {
    "": {"start", "scoring", "selection", "exposure", "content", "content_method", "enemies",
         "stop", "pretest", "online_calibration"},   # the last: delivery.online_calibration
    "start": {"theta"},
    "scoring": {"method", "prior", "quadrature"},
    "prior": {"mean", "sd"},
    "quadrature": {"nodes", "range"},
    "selection": {"method", "randomesque", "strata", "progressive"},
    "exposure": {"method", "target", "k", "parameters", "theta_bands"},
    "stop": {"min_items", "max_items", "se", "delta_theta", "classification", "combine"},
    "classification": {"cut", "method", "delta", "alpha", "beta"},
    "pretest": {"count", "items"},
    "content": {"standard", "tag", "min", "max"},
}


def _section(config, name, where=""):
    value = config.get(name, {}) if name else config
    label = f"{where}{name}" if name else "the configuration"
    if not isinstance(value, dict):
        raise DataFormatError(f"{label} must be an object")
    unknown = sorted(set(value) - _KEYS[name])
    if unknown:
        raise DataFormatError(f"unknown key {unknown[0]!r} in {label}")
    return value


def _number(value, name, low=None, high=None, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DataFormatError(f"{name} must be a number, got {value!r}")
    if integer and value != int(value):
        raise DataFormatError(f"{name} must be a whole number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bound = (f"in [{low}, {high}]" if low is not None and high is not None
                 else f">= {low}" if low is not None else f"<= {high}")
        raise DataFormatError(f"{name} must be {bound}, got {value!r}")
    return int(value) if integer else float(value)


def _flag(value, name):
    if not isinstance(value, bool):
        raise DataFormatError(f"{name} must be true or false, got {value!r}")
    return value


def _probability(value, name):
    """An error rate strictly inside (0, 0.5)."""
    value = _number(value, name)
    if not 0 < value < 0.5:
        raise DataFormatError(f"{name} must be in (0, 0.5), got {value!r}")
    return value


def _band_edges(edges):
    """``exposure.theta_bands``: at most 20 increasing θ values cutting the scale into bands."""
    if not isinstance(edges, list) or len(edges) > 20:
        raise DataFormatError("exposure.theta_bands must be a list of at most 20 θ values")
    values = tuple(_number(v, f"exposure.theta_bands[{i}]") for i, v in enumerate(edges))
    if np.any(np.diff(values) <= 0):
        raise DataFormatError("exposure.theta_bands must be increasing")
    return values


def _choice(value, name, options):
    if value not in options:
        raise DataFormatError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def design_from_config(config, bank):
    """Build a CATDesign for `bank` (an ItemBank) from a parsed configuration dict."""
    top = _section(config, "")
    start = _section(top, "start")
    scoring = _section(top, "scoring")
    prior = _section(scoring, "prior", "scoring.")
    quadrature = _section(scoring, "quadrature", "scoring.")
    selection = _section(top, "selection")
    exposure = _section(top, "exposure")
    stop = _section(top, "stop")
    classification = _section(stop, "classification", "stop.") if "classification" in stop \
        else None
    pretest = _section(top, "pretest")
    ids = bank.item_ids
    position = {item_id: i for i, item_id in enumerate(ids)}
    n_items = len(ids)

    def positions(values, what):
        if not isinstance(values, list):
            raise DataFormatError(f"{what} must be a list of item ids")
        missing = [v for v in values if v not in position]
        if missing:
            raise DataFormatError(f"{what}: item {missing[0]!r} is not in the bank")
        return np.array([position[v] for v in values], dtype=np.intp)

    groups, content = {}, []
    for key in ("content", "enemies"):
        if not isinstance(top.get(key, []), list):
            raise DataFormatError(f"{key} must be a list")
    for index, rule in enumerate(top.get("content", [])):
        if not isinstance(rule, dict):
            raise DataFormatError(f"content[{index}] must be an object")
        unknown = sorted(set(rule) - _KEYS["content"])
        if unknown:
            raise DataFormatError(f"unknown key {unknown[0]!r} in content[{index}]")
        if ("standard" in rule) == ("tag" in rule):
            raise DataFormatError(f"content[{index}] names one standard or one tag")
        if "standard" in rule:
            name = ("standard", rule["standard"])
            mask = np.array([code == rule["standard"] for code in bank.standard_codes])
        else:
            name = ("tag", rule["tag"])
            mask = np.array([rule["tag"] in item.get("tags", []) for item in bank.items])
        if not mask.any():
            raise DataFormatError(f"content[{index}]: no item of the bank has "
                                  f"{' '.join(name)!r}")
        low = _number(rule.get("min", 0), f"content[{index}].min", 0, None, True)
        high = rule.get("max")
        high = None if high is None else _number(high, f"content[{index}].max", low, None, True)
        groups[name] = mask
        content.append(ContentRule(name, low, high))
    enemies = tuple(positions(group, f"enemies[{i}]")
                    for i, group in enumerate(top.get("enemies", [])))
    pretest_items = positions(pretest.get("items", []), "pretest.items") if "items" in pretest \
        else np.array([i for i, item in enumerate(bank.items)
                       if item.get("status") == "pretest"], dtype=np.intp)
    operational = np.ones(n_items, dtype=bool)
    operational[pretest_items] = False
    sympson_hetter = None
    if "parameters" in exposure:
        given = exposure["parameters"]
        if not isinstance(given, dict):
            raise DataFormatError("exposure.parameters maps item ids to probabilities")
        sympson_hetter = np.ones(n_items)
        for item_id, value in given.items():
            sympson_hetter[positions([item_id], "exposure.parameters")[0]] = _number(
                value, f"exposure.parameters[{item_id!r}]", 0, 1)
    quad_range = quadrature.get("range", [-6.0, 6.0])
    if not isinstance(quad_range, list) or len(quad_range) != 2:
        raise DataFormatError("scoring.quadrature.range must be [lower, upper]")
    lower = _number(quad_range[0], "scoring.quadrature.range[0]")
    upper = _number(quad_range[1], "scoring.quadrature.range[1]")
    if not lower < upper:
        raise DataFormatError("scoring.quadrature.range must have lower < upper")
    # The default minimum is at most the operational items; one asked for is checked.
    min_items = _number(stop.get("min_items", min(5, max(1, int(operational.sum())))),
                        "stop.min_items", 1, None, True)
    max_items = _number(stop.get("max_items", 30), "stop.max_items", min_items, None, True)
    rule = None
    if classification is not None:
        if "cut" not in classification:
            raise DataFormatError("stop.classification needs a cut")
        rule = Classification(
            cut=_number(classification["cut"], "stop.classification.cut"),
            method=_choice(classification.get("method", "sprt"), "stop.classification.method",
                           CLASSIFICATION_METHODS),
            delta=_number(classification.get("delta", 0.3), "stop.classification.delta", 0),
            alpha=_probability(classification.get("alpha", 0.05), "stop.classification.alpha"),
            beta=_probability(classification.get("beta", 0.05), "stop.classification.beta"))
    se = stop.get("se", 0.3)
    delta_theta = stop.get("delta_theta")
    start_theta = _number(start.get("theta", 0.0), "start.theta")
    scoring_settings = Scoring(
        method=_choice(canonical_method(scoring.get("method", "eap"), SCORING_METHODS, False),
                       "scoring.method", SCORING_METHODS),
        prior_mean=_number(prior.get("mean", bank.population["mean"]), "scoring.prior.mean"),
        prior_sd=_number(prior.get("sd", bank.population["sd"]), "scoring.prior.sd", 1e-6),
        n_nodes=_number(quadrature.get("nodes", 121), "scoring.quadrature.nodes", 5, 2001, True),
        theta_range=(lower, upper), start_theta=start_theta)
    selection_settings = Selection(
        method=_choice(selection.get("method", "mfi"), "selection.method", SELECTION_METHODS),
        randomesque=_number(selection.get("randomesque", 1), "selection.randomesque", 1, None,
                            True),
        strata=_number(selection.get("strata", 4), "selection.strata", 1, None, True),
        progressive=_flag(selection.get("progressive", False), "selection.progressive"))
    exposure_settings = Exposure(
        method=_choice(exposure.get("method", "none"), "exposure.method", EXPOSURE_METHODS),
        target=_number(exposure.get("target", 0.25), "exposure.target", 0, 1),
        k=_number(exposure.get("k", 5), "exposure.k", 1, None, True),
        sympson_hetter=sympson_hetter, theta_bands=_band_edges(exposure.get("theta_bands", [])))
    content_settings = Content(
        rules=tuple(content), groups=groups, enemies=enemies,
        method=_choice(top.get("content_method", "kingsbury-zara"), "content_method",
                       CONTENT_METHODS))
    stopping = Stopping(
        min_items=min_items, max_items=max_items,
        se=None if se is None else _number(se, "stop.se", 0),
        delta_theta=None if delta_theta is None else _number(delta_theta, "stop.delta_theta", 0),
        classification=rule,
        combine=_choice(stop.get("combine", "any"), "stop.combine", COMBINE_METHODS))
    pretest_settings = Pretest(
        items=pretest_items,
        count=_number(pretest.get("count", 0), "pretest.count", 0, None, True),
        operational=operational)
    design = CATDesign(scoring=scoring_settings, selection=selection_settings,
                       exposure=exposure_settings, content=content_settings, stopping=stopping,
                       pretest=pretest_settings)
    try:
        check_design(design, n_items)
    except InfeasibleDesignError as error:
        raise DataFormatError(f"the design cannot be honoured: {error}") from None
    return design
