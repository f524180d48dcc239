"""The scoring state of adaptive tests: a log posterior on the EAP grid per examinee, and
the estimates read from it.

Every scored answer adds its log category probability at the grid nodes to the
examinee's log posterior (O(n_nodes)); the estimate is then the posterior mean
and SD (EAP), or a modal estimate (MAP, ML, WLE) started from the grid.
`ESTIMATORS` maps a scoring method's name to its estimator, chosen once per test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimation import estimate_from_pairs


def posterior_moments(log_post, nodes):
    """Mean and SD of each row of log posteriors (r, Q) on `nodes` (Q,): two (r,) arrays."""
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    mean = post @ nodes
    return mean, np.sqrt(np.maximum(post @ nodes**2 - mean**2, 0.0))


def _eap(batch, rows, log_post, mean, sd):
    """EAP: the posterior moments themselves."""
    return mean, sd


@dataclass(frozen=True)
class ModalEstimator:
    """MAP, ML or WLE for a batch's rows from their scored answers so far.

    The answers go to the estimator as (person, item, category) triples, so the
    work grows with the answers, not with the bank.

    method : the estimator's name for `estimate_from_pairs`
    mixed_answers_only : ML: estimate only examinees whose answers are not all in
        one extreme category (for dichotomous items: a right and a wrong answer)
    grid_objective : "posterior" (MAP) or "likelihood" (ML) to start Newton's method
        inside the bracket of the grid's maximum; None (WLE): the estimator's own search
    eap_fallback : ML and WLE: an estimate at a bound (or not finite) keeps the EAP
    """

    method: str
    mixed_answers_only: bool = False
    grid_objective: str | None = None
    eap_fallback: bool = False

    def __call__(self, batch, rows, log_post, eap, eap_sd):
        """(theta (r,), se (r,)) of `rows` given their log posteriors (r, Q) and EAPs."""
        scoring, tables = batch.design.scoring, batch.tables
        used = (batch.items[rows] >= 0) & batch.scored[rows]                # (r, slots)
        person, slot = np.nonzero(used)
        item = batch.items[rows][person, slot]
        answer = batch.responses[rows][person, slot]
        theta, se = eap.copy(), eap_sd.copy()
        estimated = np.ones(rows.size, dtype=bool)
        if self.mixed_answers_only:
            top = tables.params.n_categories[item] - 1
            not_lowest = np.bincount(person, weights=answer > 0, minlength=rows.size) > 0
            not_highest = np.bincount(person, weights=answer < top, minlength=rows.size) > 0
            estimated = not_lowest & not_highest
            if not estimated.any():
                return theta, se
            keep = estimated[person]
            renumber = np.cumsum(estimated) - 1
            person, item, answer = renumber[person[keep]], item[keep], answer[keep]
        which = np.flatnonzero(estimated)
        bracket, start = None, eap[which]
        if self.grid_objective is not None:
            # The maximum of the likelihood (or posterior) kept on the grid brackets the
            # estimate between the nodes either side of it, and the vertex of the parabola
            # through the three starts Newton's method there (a maximum at an end of the
            # grid is no bracket: the estimator's own search takes those rows).
            objective = log_post[which] if self.grid_objective == "posterior" else \
                log_post[which] - tables.log_weights
            peak = np.clip(np.argmax(objective, axis=1), 1, tables.nodes.size - 2)
            left, middle, right = (objective[np.arange(which.size), peak + shift]
                                   for shift in (-1, 0, 1))
            bend = left - 2.0 * middle + right
            with np.errstate(divide="ignore", invalid="ignore"):
                offset = np.where(bend < 0, 0.5 * (left - right) / bend, 0.0)
            step = tables.nodes[1] - tables.nodes[0]
            start = tables.nodes[peak] + np.clip(offset, -1.0, 1.0) * step
            bracket = (tables.nodes[peak - 1], tables.nodes[peak + 1])
        estimate = estimate_from_pairs(which.size, person, item, answer, tables.params,
                                       self.method, start, prior_mean=scoring.prior_mean,
                                       prior_sd=scoring.prior_sd, bracket=bracket)
        theta[which], se[which] = estimate.theta, estimate.se
        if self.eap_fallback:
            fallback = estimate.bounded | ~np.isfinite(estimate.theta)
            theta[which] = np.where(fallback, eap[which], estimate.theta)
            se[which] = np.where(fallback, eap_sd[which], estimate.se)
        return theta, se


ESTIMATORS = {
    "eap": _eap,
    "map": ModalEstimator("map", grid_objective="posterior"),
    "ml": ModalEstimator("ml", mixed_answers_only=True, grid_objective="likelihood",
                         eap_fallback=True),
    "wle": ModalEstimator("wle", eap_fallback=True),
}


def update_estimates(batch, rows):
    """Set theta, se and previous_theta of a batch's `rows` from their log posteriors."""
    log_post = batch.log_post[rows]
    mean, sd = posterior_moments(log_post, batch.tables.nodes)
    theta, se = batch.estimator(batch, rows, log_post, mean, sd)
    batch.previous_theta[rows] = batch.theta[rows]
    batch.theta[rows], batch.se[rows] = theta, se


def group_estimates(batch, groups):
    """EAP theta and SE per item group from that group's scored answers alone.

    groups : mapping of a caller's key to a (n_items,) bool mask
    Returns {key: (theta (n,), se (n,), answers (n,) int)} under the same keys; an
    examinee with no answer in a group gets the prior's mean and SD for it.
    """
    tables = batch.tables
    out = {}
    for key, mask in groups.items():
        log_post = np.broadcast_to(tables.log_weights, batch.log_post.shape).copy()
        answers = np.zeros(batch.n, dtype=np.intp)
        for slot in range(batch.items.shape[1]):
            item = batch.items[:, slot]
            use = (item >= 0) & batch.scored[:, slot]
            use[use] = mask[item[use]]
            rows = np.flatnonzero(use)
            log_post[rows] += tables.log_p[item[rows], batch.responses[rows, slot]]
            answers[rows] += 1
        out[key] = (*posterior_moments(log_post, tables.nodes), answers)
    return out
