"""Stopping rules: when an adaptive test ends, and its pass/fail classification.

A test ends at `max_items` scored items always, and from `min_items` on when
its rules are met: the SE below `se`, theta moved less than `delta_theta`
since the answer before, or the classification against `cut` decided.
`COMBINE` maps "any"/"all" to how the rules given are combined, and
`CLASSIFIERS` a classification method's name to its function, one signature
``classify(rule, nodes, log_weights, log_post, theta, se) -> (decided, decision)``:

- "sprt": Wald's sequential probability ratio test on the likelihood of the
  scored answers at cut +- delta;
- "ci": the confidence interval theta +- z SE excludes the cut.

Before `max_items` a test never ends with a content minimum unmet.

A classification needs at least one scored answer: with none there is no
evidence either way, and the test gets no decision.
"""

from __future__ import annotations

import numpy as np


def _at(nodes, values, x):
    """Linear interpolation of every row of `values` (r, Q) at the point x: (r,)."""
    i = int(np.clip(np.searchsorted(nodes, x) - 1, 0, nodes.size - 2))
    w = (x - nodes[i]) / (nodes[i + 1] - nodes[i])
    return (1 - w) * values[:, i] + w * values[:, i + 1]


def wald_bounds(alpha, beta):
    """Wald's SPRT bounds on log L(cut + delta) / L(cut - delta): (accept, reject); the
    upper hypothesis (pass) is accepted at or above `accept`, rejected at or below `reject`."""
    return np.log((1 - beta) / alpha), np.log(beta / (1 - alpha))


def sprt(rule, nodes, log_weights, log_post, theta, se):
    """(decided (r,) bool, decision (r,) in {1, -1}) of r log posteriors (r, Q)."""
    log_lik = log_post - log_weights                                    # (r, Q)
    ratio = _at(nodes, log_lik, rule.cut + rule.delta) - _at(nodes, log_lik,
                                                             rule.cut - rule.delta)
    accept, reject = wald_bounds(rule.alpha, rule.beta)
    return (ratio >= accept) | (ratio <= reject), np.where(ratio >= accept, 1, -1)


def confidence_interval(rule, nodes, log_weights, log_post, theta, se):
    """(decided (r,) bool, decision (r,) in {1, -1}) of r estimates theta, se (r,)."""
    from scipy.stats import norm  # imported when used: it takes a while to load

    z = norm.ppf(1 - rule.alpha / 2)
    above, below = theta - z * se > rule.cut, theta + z * se < rule.cut
    return above | below, np.where(above, 1, -1)


CLASSIFIERS = {"sprt": sprt, "ci": confidence_interval}
COMBINE = {"any": lambda met: met.any(axis=0), "all": lambda met: met.all(axis=0)}


def classify(rule, tables, log_post, theta, se):
    """The classification of r states: log posteriors (r, Q) and their theta, se (r,)."""
    return CLASSIFIERS[rule.method](rule, tables.nodes, tables.log_weights, log_post, theta,
                                    se)


def rules_met(batch, rows):
    """Whether the stopping rules of the design are met for `rows`: (r,) bool.

    Records a classification decided now in `batch.decision`.
    """
    stopping = batch.design.stopping
    length = batch.scored_length[rows]
    theta, se = batch.theta[rows], batch.se[rows]
    reasons = []
    if stopping.se is not None:
        reasons.append(se < stopping.se)
    if stopping.delta_theta is not None:
        reasons.append((np.abs(theta - batch.previous_theta[rows]) < stopping.delta_theta)
                       & (length >= 2))
    if stopping.classification is not None:
        decided, decision = classify(stopping.classification, batch.tables, batch.log_post[rows],
                                     theta, se)
        batch.decision[rows] = np.where(decided, decision, batch.decision[rows])
        reasons.append(decided)
    if not reasons:
        return np.zeros(rows.size, dtype=bool)
    return COMBINE[stopping.combine](np.array(reasons)) & content_minimums_met(batch, rows)


def content_minimums_met(batch, rows):
    """Whether every content minimum of the design is met for `rows`: (r,) bool.

    A test whose rules are met goes on until its minimums are (at `max_items` at the
    latest, which the content method fills them by)."""
    met = np.ones(rows.size, dtype=bool)
    for rule in batch.design.content.rules:
        met &= batch.group_counts[rule.group][rows] >= rule.min
    return met


def final_decision(rule, decision, theta, scored_length):
    """The decision of tests that end now: (r,) in {1, -1, 0}.

    An undecided test takes the side of theta against the cut, if it has a scored
    answer; a test with none has no decision (0).
    """
    side = np.where(theta >= rule.cut, 1, -1)
    return np.where(decision != 0, decision, np.where(scored_length > 0, side, 0))
