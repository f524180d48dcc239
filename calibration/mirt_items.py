"""Multidimensional items in mirt's slope-intercept form, and their M-step.

An `ItemGroup` holds the items that share a model, a number of categories
and a loading set (the factors whose slopes are free). Each item's free
parameters are one row of ``params`` (n, S + R): its S slopes on the loading
set, then the intercept columns of the unidimensional `Block` of the model:

    2pl   [a_1 .. a_S, d]
    3pl   [a_1 .. a_S, d, logit c]
    grm   [a_1 .. a_S, d_1 .. d_K-1]     P*(X >= k) = expit(a.theta + d_k)
    gpcm  [a_1 .. a_S, d_1 .. d_K-1]     P(X = k) ∝ exp(k a.theta + d_k), d_0 = 0

The response model sees the slopes only through the projection
``s = a . theta`` at each node. So log P and its derivatives are the
unidimensional `Block`'s (the one statement of each model, on engine.kernel)
evaluated at slope 1 and theta 0 with every intercept shifted by the
projection (by k s for the gpcm's category k); the derivative in s is a
weighted sum of the intercept derivatives, and the chain rule multiplies it
by the node's coordinates to give the slope derivatives.

The M-step maximises each item's expected complete-data log-likelihood
``sum_{k,q} r_kq log P_k(theta_q)`` by Fisher scoring with step halving,
every item of a group at once (plus a Beta log prior on c when given).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .parameterization import Block

MIRT_MODELS = ("2pl", "3pl", "grm", "gpcm")


class ItemGroup:
    """Items of one model, category count and loading set.

    Attributes
    ----------
    model : str, one of MIRT_MODELS
    items : ndarray of int, shape (n,), positions in the bank
    n_categories : int
    factors : ndarray of int, shape (S,), the factors with free slopes
    params : ndarray of shape (n, S + R)
    """

    def __init__(self, model, items, n_categories, factors, params):
        if model not in MIRT_MODELS:
            raise ValueError(f"model {model!r} is not multidimensional; "
                             f"expected one of {', '.join(MIRT_MODELS)}")
        self.model = model
        self.items = np.asarray(items, dtype=np.intp)
        self.n_categories = int(n_categories)
        self.factors = np.asarray(factors, dtype=np.intp)
        self.params = np.asarray(params, dtype=float)
        self._block = Block(model, self.items, self.n_categories, self.params[:, 0:0])

    @property
    def n_slopes(self):
        return self.factors.size

    def parameter_names(self):
        """Names of the columns of ``params`` after the slopes."""
        return self._block.parameter_names()[1:]

    def _shift_weights(self):
        """How the projection s moves each intercept column: (R,)."""
        rest = self.params.shape[1] - self.n_slopes
        if self.model == "gpcm":
            return np.arange(1.0, rest + 1)
        weights = np.zeros(rest)
        weights[: rest - 1 if self.model == "3pl" else rest] = 1.0
        return weights

    def terms(self, params, nodes, derivatives=True):
        """log P (n, K, Q) and d log P / d params (n, S + R, K, Q) at `nodes` (Q, S)."""
        n, slopes = params.shape[0], self.n_slopes
        rest = params[:, slopes:]
        projection = params[:, :slopes] @ nodes.T                           # (n, Q)
        n_nodes = projection.shape[1]
        weights = self._shift_weights()
        shifted = rest[:, None, :] + projection[:, :, None] * weights       # (n, Q, R)
        pseudo = np.concatenate([np.ones((n * n_nodes, 1)),
                                 shifted.reshape(n * n_nodes, -1)], axis=1)
        log_p, dlog = self._block.terms(pseudo, np.zeros(1), derivatives)
        log_p = log_p[..., 0].reshape(n, n_nodes, -1).transpose(0, 2, 1)    # (n, K, Q)
        if not derivatives:
            return log_p, None
        d_rest = dlog[:, 1:, :, 0].reshape(n, n_nodes, rest.shape[1], -1)   # (n, Q, R, K)
        d_rest = d_rest.transpose(0, 2, 3, 1)                               # (n, R, K, Q)
        d_projection = np.einsum("r,nrkq->nkq", weights, d_rest)
        d_slopes = d_projection[:, None] * nodes.T[None, :, None, :]        # (n, S, K, Q)
        return log_p, np.concatenate([d_slopes, d_rest], axis=1)

    def valid(self, params):
        """Per item: finite, graded intercepts decreasing. shape (n,)."""
        ok = np.all(np.isfinite(params), axis=1)
        if self.model == "grm" and params.shape[1] - self.n_slopes > 1:
            ok &= np.all(np.diff(params[:, self.n_slopes:], axis=1) < 0, axis=1)
        return ok

    # --- M-step ---------------------------------------------------------------------

    def _c_column(self):
        return self.params.shape[1] - 1 if self.model == "3pl" else None

    def objective(self, params, counts, nodes, c_prior=None, derivatives=True):
        """Expected complete-data log-likelihood per item (n,), gradient (n, P) and
        Fisher information (n, P, P); counts (n, K, Q)."""
        log_p, dlog = self.terms(params, nodes, derivatives)
        with np.errstate(invalid="ignore"):
            value = np.einsum("nkq,nkq->n", counts, np.where(counts > 0, log_p, 0.0))
        value = np.where(self.valid(params), value, -np.inf)
        column = self._c_column()
        prior_value = np.zeros(params.shape[0])
        if c_prior is not None and column is not None:
            alpha, beta = c_prior
            c = expit(params[:, column])
            prior_value = (alpha - 1) * np.log(c) + (beta - 1) * np.log1p(-c)
        if not derivatives:
            return value + prior_value, None, None
        grad = np.einsum("nkq,npkq->np", counts, dlog)
        mass = counts.sum(axis=1)                                            # (n, Q)
        weighted = dlog * np.sqrt(np.exp(log_p) * mass[:, None])[:, None]
        info = np.einsum("nakq,nbkq->nab", weighted, weighted)
        if c_prior is not None and column is not None:
            grad[:, column] += (alpha - 1) * (1 - c) - (beta - 1) * c
            info[:, column, column] += (alpha + beta - 2) * c * (1 - c)
        return value + prior_value, grad, info

    def m_step(self, counts, nodes, c_prior=None, max_newton=25):
        """Fisher scoring with step halving on every item; updates ``params``."""
        params = self.params.copy()
        value, grad, info = self.objective(params, counts, nodes, c_prior)
        active = np.ones(params.shape[0], dtype=bool)
        ridge = 1e-10 * np.eye(params.shape[1])
        for _ in range(max_newton):
            index = np.flatnonzero(active)
            step = np.linalg.solve(info[index] + ridge, grad[index][..., None])[..., 0]
            step *= np.minimum(1.0, 2.0 / np.maximum(np.abs(step).max(axis=1), 1e-300))[:, None]
            length = np.ones(index.size)
            accepted = np.zeros(index.size, dtype=bool)
            for _ in range(30):
                pending = np.flatnonzero(~accepted)
                if pending.size == 0:
                    break
                rows = index[pending]
                candidate = params[rows] + length[pending, None] * step[pending]
                trial, _, _ = _subset(self, rows).objective(
                    candidate, counts[rows], nodes, c_prior, derivatives=False)
                better = trial >= value[rows] - 1e-12 * np.abs(value[rows])
                params[rows[better]] = candidate[better]
                accepted[pending[better]] = True
                length[pending[~better]] *= 0.5
            moved = np.abs(step * length[:, None]).max(axis=1)
            active[index[(moved < 1e-9) | ~accepted]] = False
            if not active.any():
                break
            value, grad, info = self.objective(params, counts, nodes, c_prior)
        self.params = params


def _subset(group, rows):
    """A view of some of the group's items (for the line search)."""
    return ItemGroup(group.model, group.items[rows], group.n_categories, group.factors,
                     group.params[rows])
