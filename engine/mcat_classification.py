"""Pass/fail classification of a multidimensional test's composite ``w . theta``.

Two rules, the unidimensional test's names (`engine.stopping`):

- "ci": decided when the composite's confidence interval ``w.theta_hat +- z SE`` excludes
  the cut (z the normal quantile of 1 - alpha/2); the decision is the side of the cut.
- "sprt": Wald's sequential probability ratio test on the composite, as van Groen, Eggen
  & Veldkamp define it for a reference composite (2016, "Multidimensional computerized
  adaptive testing for classifying examinees with within-dimensionality", Applied
  Psychological Measurement 40(6), 387-404; the between-item case is Seitz & Frey 2013).
  The hypotheses ``w.theta = cut + delta`` (pass) and ``w.theta = cut - delta`` (fail) are
  hyperplanes; each is represented by the point of it nearest the current estimate, the
  estimate moved along the weight direction::

      theta_+- = theta_hat + (cut +- delta - w.theta_hat) w / (w.w)

  and the log likelihood ratio of the answers so far, ``log L(theta_+) - log L(theta_-)``,
  is compared with Wald's bounds ``log((1-beta)/alpha)`` (pass) and
  ``log(beta/(1-alpha))`` (fail) (`engine.stopping.wald_bounds`).

Why these points rather than the generalized likelihood ratio (the likelihood's maximum
on each hyperplane): they are a closed form, one likelihood per side and examinee at each
step (the GLR needs a constrained maximisation on both hyperplanes per examinee and step);
the two points differ only along w, so the ratio measures the evidence about the
composite alone, the other directions held at the estimate; with one factor (w = 1) they
are cut +- delta, the unidimensional SPRT exactly.
"""

from __future__ import annotations

import numpy as np

from .mcat_scoring import LOG_FLOOR
from .multidimensional import log_probability
from .stopping import wald_bounds

CLASSIFICATION_METHODS = ("ci", "sprt")
_LOG_P_CELLS = 2**22                     # points x items x categories held at once


def hyperplane_points(theta, weights, level):
    """The points of the hyperplane ``w . theta = level`` nearest each row of theta
    (r, m), along w (m,): (r, m)."""
    theta = np.asarray(theta, dtype=float)
    weights = np.asarray(weights, dtype=float)
    shift = (level - theta @ weights) / (weights @ weights)                # (r,)
    return theta + shift[:, None] * weights


def answers_log_likelihood(points, items, order, answers):
    """log L of each row's answers at its point: sum over t of log P(answers[i, t] |
    points[i]) of item order[i, t], steps with order -1 left out.

    points (r, m); order and answers (r, L) int; returns (r,). Probabilities 0 count as
    `LOG_FLOOR`.
    """
    order = np.asarray(order)
    given = order >= 0
    total = np.zeros(order.shape[0])
    if not given.any():
        return total
    used, local = np.unique(order[given], return_inverse=True)
    subset = items.subset(used)
    local_order = np.full(order.shape, -1, dtype=np.intp)
    local_order[given] = local
    block = max(1, _LOG_P_CELLS // (used.size * items.max_categories))
    for start in range(0, order.shape[0], block):
        rows = slice(start, start + block)
        log_p = np.maximum(log_probability(points[rows], subset), LOG_FLOOR)    # (b, u, K)
        person, step = np.nonzero(given[rows])
        terms = log_p[person, local_order[rows][person, step],
                      np.asarray(answers)[rows][person, step]]
        total[rows] = np.bincount(person, weights=terms, minlength=log_p.shape[0])
    return total


def sprt_log_ratio(items, theta, order, answers, weights, cut, delta):
    """log L(theta_+) - log L(theta_-) of each row's answers (see the module): (r,)."""
    theta = np.asarray(theta, dtype=float)
    r = theta.shape[0]
    points = np.concatenate([hyperplane_points(theta, weights, cut + delta),
                             hyperplane_points(theta, weights, cut - delta)])    # (2r, m)
    log_lik = answers_log_likelihood(points, items, np.concatenate([order, order]),
                                     np.concatenate([answers, answers]))
    return log_lik[:r] - log_lik[r:]


def composite_sprt(items, theta, order, answers, weights, design):
    """(decided (r,) bool, decision (r,) in {1, -1}) by the SPRT of `design` (its cut,
    delta, alpha, beta) on rows with estimates theta (r, m) and answers (r, L)."""
    ratio = sprt_log_ratio(items, theta, order, answers, weights, design.cut, design.delta)
    accept, reject = wald_bounds(design.alpha, design.beta)
    return (ratio >= accept) | (ratio <= reject), np.where(ratio >= accept, 1, -1)


def composite_interval(value, spread, cut, z):
    """(decided (r,) bool, decision (r,) in {1, -1}) of composites value, spread (r,)."""
    return np.abs(value - cut) >= z * spread, np.where(value >= cut, 1, -1)


__all__ = ["CLASSIFICATION_METHODS", "answers_log_likelihood", "composite_interval",
           "composite_sprt", "hyperplane_points", "sprt_log_ratio"]
