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


class InfeasibleDesignError(InvalidParameterError):
    """A test design no run can honour (content minimums over the test length, an exposure
    target under the lowest rate a bank of that size allows, ...); its message is one line."""


CONTROLLED_EXPOSURE = ("sympson-hetter", "item-eligibility")
"""The exposure methods that aim at `exposure.target` (the others ignore it)."""


def scorable_items(design, n_items):
    """(n_items,) bool: the items a test may give as scored items (not pretest)."""
    scorable = np.ones(n_items, dtype=bool) if design.pretest.operational is None \
        else np.array(design.pretest.operational, dtype=bool)
    scorable[design.pretest.items] = False
    return scorable


def _disjoint(masks):
    """Indices of a greedy family of pairwise disjoint masks, in the order given."""
    taken, chosen = None, []
    for index, mask in enumerate(masks):
        if taken is None or not (taken & mask).any():
            chosen.append(index)
            taken = mask.copy() if taken is None else taken | mask
    return chosen


def lowest_exposure_bound(design, n_items):
    """(bound, reason): no run keeps every scored item's exposure rate under `bound`.

    The rates of the scored items sum to the mean scored length, which is at least
    `min_items` and the content minimums of disjoint groups together (`max_items` for a
    fixed-length test, since no test ends early while items are left), so the highest
    is at least that length / the scored items; a content minimum m over a group of g
    items puts the group's mean rate, and so its highest, at m / g or more.
    """
    scorable = scorable_items(design, n_items)
    n_scorable = int(scorable.sum())
    stopping = design.stopping
    fixed = stopping.min_items == stopping.max_items or (
        stopping.se is None and stopping.delta_theta is None
        and stopping.classification is None)
    rules, needed = _needed_minimums(design, scorable)
    shortest = min(max(stopping.min_items, sum(rules[i].min for i in needed)),
                   stopping.max_items)
    length = min(stopping.max_items if fixed else shortest, n_scorable)
    bound, reason = length / max(n_scorable, 1), (
        f"{length} scored items per test over {n_scorable} operational items")
    for rule in design.content.rules:
        group = int((design.content.groups[rule.group] & scorable).sum())
        if rule.min and group and rule.min / group > bound:
            bound, reason = rule.min / group, (f"content minimum {rule.min} over the {group} "
                                               f"operational items of {_name(rule.group)}")
    return bound, reason


def _needed_minimums(design, scorable):
    """(rules, indices of rules over pairwise disjoint groups, largest minimums first):
    every test takes at least the sum of those rules' minimums."""
    rules = list(design.content.rules)
    groups = [design.content.groups[rule.group] & scorable for rule in rules]
    by_min = sorted(range(len(rules)), key=lambda i: -rules[i].min)
    return rules, [by_min[i] for i in _disjoint([groups[i] for i in by_min])]


def _name(key):
    """A content group's key as the configuration names it: ("standard", "S1") -> S1."""
    return str(key[1]) if isinstance(key, tuple) and len(key) == 2 else str(key)


def check_design(design, n_items):
    """Raise InfeasibleDesignError, with a one-line reason, for a design no run can honour.

    Only sure impossibilities are refused (each check is a necessary condition of a
    test that keeps every rule): `min_items` over the scored items (or over what the
    enemy sets leave), a content minimum over its group's scored items, content
    minimums of disjoint groups summing over `max_items`, content maximums and enemy
    sets leaving fewer than `min_items`, and a controlled exposure target under
    `lowest_exposure_bound`.
    """
    stopping, content = design.stopping, design.content
    if not 1 <= stopping.min_items <= stopping.max_items:
        raise InfeasibleDesignError(f"stop.min_items {stopping.min_items} must be in "
                                    f"[1, max_items {stopping.max_items}]")
    scorable = scorable_items(design, n_items)
    n_scorable = int(scorable.sum())
    if stopping.min_items > n_scorable:
        raise InfeasibleDesignError(f"stop.min_items {stopping.min_items} is over the "
                                    f"{n_scorable} operational items of the bank")
    enemy_sets = [np.isin(np.arange(n_items), members) & scorable for members in
                  content.enemies]
    # At most one item of each enemy set: disjoint sets take |set| - 1 items each away.
    most = n_scorable - sum(max(int(enemy_sets[i].sum()) - 1, 0)
                            for i in _disjoint(enemy_sets))
    if stopping.min_items > most:
        raise InfeasibleDesignError(f"stop.min_items {stopping.min_items} is over the {most} "
                                    "operational items a test may take with its enemy sets")
    rules = list(content.rules)
    groups = [content.groups[rule.group] & scorable for rule in rules]
    for rule, group in zip(rules, groups, strict=True):
        if rule.max is not None and rule.min > rule.max:
            raise InfeasibleDesignError(f"content {_name(rule.group)}: min {rule.min} is over "
                                        f"max {rule.max}")
        if rule.min > group.sum():
            raise InfeasibleDesignError(f"content {_name(rule.group)}: min {rule.min} is over "
                                        f"its {int(group.sum())} operational items")
    _, needed = _needed_minimums(design, scorable)
    if sum(rules[i].min for i in needed) > stopping.max_items:
        raise InfeasibleDesignError(
            "content minimums " + " + ".join(f"{rules[i].min} ({_name(rules[i].group)})"
                                             for i in needed)
            + f" = {sum(rules[i].min for i in needed)} are over stop.max_items "
            f"{stopping.max_items}")
    capped = [i for i in range(len(rules)) if rules[i].max is not None]
    capped = [capped[i] for i in _disjoint([groups[i] for i in capped])]
    longest = n_scorable - sum(max(int(groups[i].sum()) - rules[i].max, 0) for i in capped)
    if longest < stopping.min_items:
        raise InfeasibleDesignError(f"content maximums leave at most {longest} items, under "
                                    f"stop.min_items {stopping.min_items}")
    if design.exposure.method in CONTROLLED_EXPOSURE:
        bound, reason = lowest_exposure_bound(design, n_items)
        if design.exposure.target < bound - 1e-12:
            raise InfeasibleDesignError(
                f"exposure.target {design.exposure.target:g} is under {bound:.3f} = {reason}: "
                "no run can keep every item under it")
