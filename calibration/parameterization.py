"""Item models in slope-intercept form, grouped into blocks for the M-step.

A `Block` holds the items of one model with one number of categories, their
free parameters as a matrix ``eta`` of shape (n_block_items, n_params), and
gives, at the quadrature nodes, the log category probabilities and their
derivatives with respect to ``eta``: the probabilities and their derivatives
in the linear predictor come from `engine.kernel` (the one statement of the
response model), this module forms the predictor and applies the chain rule:

    log_p  : (n, K, n_nodes)
    dlog_p : (n, n_params, K, n_nodes)

Parameters per model (mirt's slope-intercept form; ``z = a theta + d``):

    rasch  [d]               a = 1
    1pl    [a, d]            one a shared by every item of the block
    2pl    [a, d]
    3pl    [a, d, logit c]
    4pl    [a, d, logit c, logit u]
    grm    [a, d_1 .. d_K-1]          P*(X >= k) = expit(a theta + d_k), d decreasing
    gpcm   [a, d_1 .. d_K-1]          P(X = k) ∝ exp(k a theta + d_k), d_0 = 0
    pcm    [d_1 .. d_K-1]             a = 1
    nominal [a, ak_1 .. ak_K-2, d_1 .. d_K-1]
                                      P(X = k) ∝ exp(a ak_k theta + d_k),
                                      ak_0 = 0, ak_K-1 = K - 1, d_0 = 0 (mirt's)

IRT form: b = -d / a; GRM b_k = -d_k / a; GPCM and nominal b_k = -(d_k - d_{k-1}) / a
(the nominal item keeps its scores ak_0 .. ak_K-1).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit, ndtri  # ndtri: the normal quantile

from irtcat.engine import kernel
from irtcat.engine.kernel import DICHOTOMOUS_MODELS, log_expit_pair
from irtcat.engine.models import parameter_fields


class Block:
    """Items of one model and one category count.

    Attributes
    ----------
    model : str
    items : ndarray of int, shape (n,)
        Positions of the block's items in the bank.
    n_categories : int
    eta : ndarray of shape (n, n_params)
    """

    def __init__(self, model, items, n_categories, eta):
        self.model = model
        self.items = np.asarray(items, dtype=np.intp)
        self.n_categories = int(n_categories)
        self.eta = np.asarray(eta, dtype=float)

    @property
    def n_params(self):
        return self.eta.shape[1]

    # --- free parameters: eta, except that a 1pl block shares one slope ------------

    @property
    def n_free(self):
        return 1 + self.eta.shape[0] if self.model == "1pl" else self.eta.size

    def free_values(self):
        if self.model == "1pl":
            return np.concatenate([self.eta[:1, 0], self.eta[:, 1]])
        return self.eta.ravel()

    def eta_from_free(self, values):
        """The (n, P) parameter matrix that a free vector stands for."""
        if self.model == "1pl":
            return np.column_stack([np.full(self.eta.shape[0], values[0]), values[1:]])
        return np.asarray(values, dtype=float).reshape(self.eta.shape).copy()

    def set_free_values(self, values):
        self.eta = self.eta_from_free(values)

    def free_gradient(self, grad):
        """Gradient (n, P) per item -> gradient of the free vector."""
        if self.model == "1pl":
            return np.concatenate([[grad[:, 0].sum()], grad[:, 1]])
        return grad.ravel()

    def free_index(self, row):
        """Positions in the free vector of item `row`'s parameters (in eta order)."""
        if self.model == "1pl":
            return np.array([0, 1 + row])
        return row * self.n_params + np.arange(self.n_params)

    def parameter_names(self):
        if self.model in DICHOTOMOUS_MODELS:
            return ["d"] if self.model == "rasch" else ["a", "d", "logit_c", "logit_u"][
                : self.n_params]
        steps = [f"d{k}" for k in range(1, self.n_categories)]
        if self.model == "nominal":
            return ["a", *(f"ak{k}" for k in range(1, self.n_categories - 1)), *steps]
        return steps if self.model == "pcm" else ["a", *steps]

    # --- probabilities and derivatives --------------------------------------------

    def terms(self, eta, nodes, derivatives=True):
        """log P (n, K, Q) and d log P / d eta (n, P, K, Q); NaN where eta is invalid."""
        if self.model in DICHOTOMOUS_MODELS:
            return _dichotomous_terms(self.model, eta, nodes, derivatives)
        if self.model == "grm":
            return _graded_terms(eta, nodes, derivatives)
        return _partial_credit_terms(self.model, eta, nodes, derivatives)

    def valid(self, eta, positive_slope=True):
        """Per item: is eta inside the model's domain? shape (n,).

        positive_slope=False admits a negative slope (mirt's M-step does: a
        reverse-keyed item), though never a zero one.
        """
        ok = np.all(np.isfinite(eta), axis=1)
        if "a" in parameter_fields(self.model):
            ok &= eta[:, 0] > 0 if positive_slope else eta[:, 0] != 0
        if self.model == "4pl":
            ok &= eta[:, 3] > eta[:, 2]
        if self.model == "grm" and eta.shape[1] > 2:
            ok &= np.all(np.diff(eta[:, 1:], axis=1) < 0, axis=1)
        return ok

    # --- IRT form -----------------------------------------------------------------

    def category_scores(self, eta=None):
        """The category scores ak_0 .. ak_K-1 of each item, shape (n, K): k but for
        the nominal model's free inner scores."""
        eta = self.eta if eta is None else eta
        scores = np.tile(np.arange(self.n_categories, dtype=float), (eta.shape[0], 1))
        if self.model == "nominal":
            scores[:, 1:-1] = eta[:, 1: self.n_categories - 1]
        return scores

    def slopes(self, eta=None):
        eta = self.eta if eta is None else eta
        if self.model in ("rasch", "pcm"):
            return np.ones(eta.shape[0])
        return eta[:, 0]

    def intercepts(self, eta=None):
        """d (dichotomous: (n,); polytomous: (n, K-1))."""
        eta = self.eta if eta is None else eta
        if self.model == "rasch":
            return eta[:, 0]
        if self.model in DICHOTOMOUS_MODELS:
            return eta[:, 1]
        if self.model == "nominal":
            return eta[:, self.n_categories - 1:]
        return eta if self.model == "pcm" else eta[:, 1:]

    def irt(self, eta=None):
        """IRT-form parameters: dict of a (n,), b (n,) or (n, K-1), and c, u (n,);
        a nominal item's ak (n, K) too."""
        eta = self.eta if eta is None else eta
        a, d = self.slopes(eta), self.intercepts(eta)
        out = {"a": a}
        if self.model in DICHOTOMOUS_MODELS:
            out["b"] = -d / a
            out["c"] = expit(eta[:, 2]) if self.model in ("3pl", "4pl") else np.zeros(a.size)
            out["u"] = expit(eta[:, 3]) if self.model == "4pl" else np.ones(a.size)
        elif self.model == "grm":
            out["b"] = -d / a[:, None]
        else:
            full = np.concatenate([np.zeros((d.shape[0], 1)), d], axis=1)
            out["b"] = -np.diff(full, axis=1) / a[:, None]
        if self.model == "nominal":
            out["ak"] = self.category_scores(eta)
        return out

    def irt_jacobian(self, eta=None):
        """d(IRT parameters)/d eta per item: shape (n, n_irt, n_params).

        IRT parameters in order: a (when free), b or b_1..b_K-1, c, u (when free);
        nominal: a, ak_0..ak_K-1 (the first and last fixed: rows of 0), b_1..b_K-1.
        """
        eta = self.eta if eta is None else eta
        n, p = eta.shape
        a, d = self.slopes(eta), self.intercepts(eta)
        if self.model == "nominal":
            return _nominal_irt_jacobian(a, d, self.n_categories)
        if self.model == "rasch":
            return -np.ones((n, 1, 1))
        if self.model in DICHOTOMOUS_MODELS:
            jac = np.zeros((n, p, p))
            jac[:, 0, 0] = 1.0                               # a
            jac[:, 1, 0], jac[:, 1, 1] = d / a**2, -1.0 / a  # b = -d / a
            if p > 2:
                c = expit(eta[:, 2])
                jac[:, 2, 2] = c * (1 - c)
            if p > 3:
                u = expit(eta[:, 3])
                jac[:, 3, 3] = u * (1 - u)
            return jac
        steps = self.n_categories - 1
        free_a = self.model != "pcm"
        offset = 1 if free_a else 0
        jac = np.zeros((n, offset + steps, p))
        if free_a:
            jac[:, 0, 0] = 1.0
        for k in range(steps):
            if self.model == "grm":                          # b_k = -d_k / a
                jac[:, offset + k, 0] = d[:, k] / a**2
                jac[:, offset + k, offset + k] = -1.0 / a
            else:                                            # b_k = -(d_k - d_{k-1}) / a
                previous = d[:, k - 1] if k else 0.0
                if free_a:
                    jac[:, offset + k, 0] = (d[:, k] - previous) / a**2
                jac[:, offset + k, offset + k] = -1.0 / a
                if k:
                    jac[:, offset + k, offset + k - 1] = 1.0 / a
        return jac


def _nominal_irt_jacobian(a, d, n_categories):
    """d(a, ak_0..ak_K-1, b_1..b_K-1)/d(a, ak_1..ak_K-2, d_1..d_K-1): (n, 2K, 2K - 2)."""
    n, steps = d.shape[0], n_categories - 1
    jac = np.zeros((n, 1 + n_categories + steps, 2 * steps))
    jac[:, 0, 0] = 1.0
    inner = np.arange(1, steps)                                   # free scores ak_1..ak_K-2
    jac[:, 1 + inner, inner] = 1.0
    full = np.concatenate([np.zeros((n, 1)), d], axis=1)
    for k in range(steps):                                        # b_k = -(d_k - d_{k-1}) / a
        row, column = 1 + n_categories + k, n_categories - 1 + k
        jac[:, row, 0] = (full[:, k + 1] - full[:, k]) / a**2
        jac[:, row, column] = -1.0 / a
        if k:
            jac[:, row, column - 1] = 1.0 / a
    return jac


# --- the model's terms in eta: engine.kernel's, by the chain rule ---------------------

def _dichotomous_terms(model, eta, nodes, derivatives):
    n = eta.shape[0]
    if model == "rasch":
        a, d = np.ones(n), eta[:, 0]
    else:
        a, d = eta[:, 0], eta[:, 1]
    z = a[:, None] * nodes + d[:, None]                                # (n, Q)
    guessing = model in ("3pl", "4pl")
    asymptotes = None
    if guessing:
        log_c, log_1mc = (part[:, None] for part in log_expit_pair(eta[:, 2]))
        if model == "4pl":
            log_u, log_1mu = (part[:, None] for part in log_expit_pair(eta[:, 3]))
        else:
            log_u, log_1mu = np.zeros((n, 1)), np.full((n, 1), -np.inf)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_range = np.log(np.exp(log_u) - np.exp(log_c))                  # log(u - c)
        asymptotes = kernel.Asymptotes(log_c, log_1mu, log_range)
    terms = kernel.dichotomous(z, asymptotes)
    log_p = np.stack([terms.log_p0, terms.log_p1], axis=1)             # (n, 2, Q)
    if not derivatives:
        return log_p, None
    d0, d1, _, _ = kernel.dichotomous_derivatives(terms)
    dz = np.stack([d0, d1], axis=1)                                    # (n, 2, Q)
    parts = [dz] if model == "rasch" else [dz * nodes, dz]
    if guessing:
        # d c / d logit c = c (1 - c), d u / d logit u = u (1 - u), in log space
        dc0, dc1, du0, du1 = kernel.dichotomous_asymptote_log_slopes(terms, model == "4pl")
        dc = log_c + log_1mc
        parts.append(np.stack([-np.exp(dc + dc0), np.exp(dc + dc1)], 1))
        if model == "4pl":
            du = log_u + log_1mu
            parts.append(np.stack([-np.exp(du + du0), np.exp(du + du1)], 1))
    return log_p, np.stack(parts, axis=1)                              # (n, P, 2, Q)


def _graded_terms(eta, nodes, derivatives):
    n, p = eta.shape
    a, d = eta[:, 0], eta[:, 1:]
    steps = p - 1
    z = a[:, None, None] * nodes + d[:, :, None]                       # (n, K-1, Q)
    # z_k - z_{k+1} = d_k - d_{k+1}: (n, K-2, 1)
    log_gap, inverse = kernel.graded_gaps(-np.diff(d, axis=1)[:, :, None], axis=1)
    terms = kernel.graded(z, log_gap, axis=1)                          # log_p (n, K, Q)
    if not derivatives:
        return terms.log_p, None
    # shift (n, K, Q); lower, upper (n, K-1, Q)
    shift, _, lower, upper = kernel.graded_derivatives(terms, inverse)
    dlog = np.zeros((n, p, steps + 1, nodes.size))
    dlog[:, 0] = shift * nodes                                         # a moves every z by theta
    for m in range(1, steps + 1):        # d_m moves z_m: categories m and m - 1
        dlog[:, m, m] = lower[:, m - 1]
        dlog[:, m, m - 1] = upper[:, m - 1]
    return terms.log_p, dlog


def _partial_credit_terms(model, eta, nodes, derivatives):
    n = eta.shape[0]
    free_a = model in ("gpcm", "nominal")
    a = eta[:, 0] if free_a else np.ones(n)
    if model == "nominal":   # [a, ak_1 .. ak_K-2, d_1 .. d_K-1]
        steps = eta.shape[1] // 2
        k = np.concatenate([np.zeros((n, 1)), eta[:, 1:steps], np.full((n, 1), steps)], 1)
        k, d = k[:, :, None], eta[:, steps:]                               # (n, K, 1)
    else:
        d = eta[:, 1:] if free_a else eta
        steps = d.shape[1]
        k = np.arange(steps + 1)[None, :, None]
    full_d = np.concatenate([np.zeros((n, 1)), d], axis=1)
    s = a[:, None, None] * k * nodes + full_d[:, :, None]                  # (n, K, Q)
    scores = k if model == "nominal" else None
    terms = kernel.partial_credit(s, axis=1, derivatives=derivatives, scores=scores)
    if not derivatives:
        return terms.log_p, None
    # s_k = ak_k (a theta) + d_k: d/da = (ak_k - mean) theta; d/d d_m = [k = m] - P_m;
    # nominal d/d ak_m = a theta ([k = m] - P_m)
    parts = [(k - terms.mean) * nodes] if free_a else []
    indicator = [(np.arange(steps + 1)[None, :, None] == m) - terms.p[:, m : m + 1]
                 for m in range(1, steps + 1)]
    if model == "nominal":
        parts += [a[:, None, None] * nodes * indicator[m - 1] for m in range(1, steps)]
    return terms.log_p, np.stack(parts + indicator, axis=1)


# --- starting values ----------------------------------------------------------------

_START_SLOPE = 0.851        # mirt: 0.5 * 1.702
_START_DIVISOR = np.sqrt(0.75) / 1.702


def start_values(model, proportions):
    """mirt's starting values from observed category proportions.

    proportions : ndarray of shape (n, K), rows sum to 1.
    Returns eta of shape (n, n_params).
    """
    proportions = np.clip(proportions, 1e-4, 1.0)
    n, n_categories = proportions.shape
    slope = np.full((n, 1), _START_SLOPE)
    if model in DICHOTOMOUS_MODELS:
        d = ndtri(proportions[:, 1]) / _START_DIVISOR
        if model == "rasch":
            return d[:, None]
        columns = [slope, d[:, None]]
        if model in ("3pl", "4pl"):
            columns.append(np.full((n, 1), logit(0.15)))
        if model == "4pl":
            columns.append(np.full((n, 1), logit(0.85)))
        return np.hstack(columns)
    if model == "grm":
        at_least = 1.0 - np.cumsum(proportions, axis=1)[:, :-1]        # P(X >= k), k = 1..K-1
        d = ndtri(np.clip(at_least, 1e-4, 1 - 1e-4)) / _START_DIVISOR
        for k in range(1, d.shape[1]):                                 # strictly decreasing
            d[:, k] = np.minimum(d[:, k], d[:, k - 1] - 1e-3)
        return np.hstack([slope, d])
    if model == "nominal":   # mirt: inner scores 0.5, intercepts 0
        inner = np.full((n, n_categories - 2), 0.5)
        return np.hstack([slope, inner, np.zeros((n, n_categories - 1))])
    quantile = ndtri(proportions)
    d = (quantile[:, 1:] - quantile[:, :1]) / _START_DIVISOR
    return d if model == "pcm" else np.hstack([slope, d])
