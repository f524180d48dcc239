"""The response model, written once: log category probabilities as functions of
the linear predictor, per model family, and their derivatives in it.

Each parameterization computes its own linear predictor and applies the chain
rule for its own parameters: the engine's IRT form (``engine.models``:
``z = a (theta - b)``) and calibration's slope-intercept form
(``calibration.parameterization``: ``z = a theta + d``). Nothing here knows
about either.

Families (every function works elementwise on arrays of any shape; the
category axis, where there is one, is `axis`):

- dichotomous (rasch, 1pl .. 4pl), one predictor z::

      P(X = 1) = c + (u - c) L,  L = expit(z)

- graded (Samejima), K - 1 cumulative predictors z_1 > ... > z_{K-1}::

      P*_k = P(X >= k) = expit(z_k),  P_k = P*_k - P*_{k+1}  (P*_0 = 1, P*_K = 0)

  computed as ``log P*_k + log(1 - P*_{k+1}) + log(1 - exp(z_{k+1} - z_k))``, whose
  last term does not depend on theta (`graded_gaps`). The predictors ``z_k = a theta + d_k``
  (mirt's, d decreasing) decrease in k for either sign of the slope: a reverse-keyed item
  (a < 0) needs nothing else, its derivatives in theta are a times those in a common shift
  (`graded_derivatives`), so its information is a^2-weighted as any other's;

- partial credit (gpcm, pcm) and Bock's nominal model, K category predictors s_k::

      P_k = exp(s_k) / sum_v exp(s_v).

  In theta the predictors are ``s_k = ak_k t + const_k`` with ``t = a theta``:
  the category scores ak_k are k for gpcm and pcm, and free for the nominal
  model (mirt's identification: ak_0 = 0, ak_{K-1} = K - 1), so the nominal
  model is the partial credit family with scores of its own.

Everything is in log space and never subtracts two probabilities close to 1:
log probabilities stay finite at any finite predictor (a probability below the
smallest double has a finite log), and in the polytomous families a predictor
of -inf (a threshold or category an item does not have) gives -inf, never NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DICHOTOMOUS_MODELS = ("rasch", "1pl", "2pl", "3pl", "4pl")
POLYTOMOUS_MODELS = ("grm", "gpcm", "pcm", "nominal")
MODELS = DICHOTOMOUS_MODELS + POLYTOMOUS_MODELS
FAMILY = {"rasch": "dichotomous", "1pl": "dichotomous", "2pl": "dichotomous",
          "3pl": "dichotomous", "4pl": "dichotomous",
          "grm": "graded", "gpcm": "partial_credit", "pcm": "partial_credit",
          "nominal": "partial_credit"}


def expit(z):
    """The logistic function 1 / (1 + exp(-z)), exact to rounding at every z, from one
    exponential (numpy only: the kernel spares scoring the import of scipy.special,
    0.14 s of `irtcat score`'s start)."""
    small = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, small) / (1.0 + small)


def logsumexp(values, axis=None, keepdims=False):
    """log(sum(exp(values))) along `axis`, shifted by the largest value (-inf where
    every value is -inf), as scipy.special.logsumexp."""
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - top), axis=axis, keepdims=True)) + top
    return total if keepdims else np.squeeze(total, axis=axis)


def log_expit_pair(z):
    """(log expit(z), log expit(-z)) = (log L, log(1 - L)) from one exponential.

    Exact to rounding at every z, including -inf and +inf (written out: faster
    than scipy's ufunc on the small arrays of calibration's M-step).
    """
    softplus = np.log1p(np.exp(-np.abs(z)))                # log(1 + e^-|z|)
    return np.minimum(z, 0.0) - softplus, -(np.maximum(z, 0.0) + softplus)


# --- dichotomous --------------------------------------------------------------------

class Asymptotes(NamedTuple):
    """log c, log(1 - u) and log(u - c), each broadcastable against the predictor."""

    log_c: np.ndarray
    log_1mu: np.ndarray
    log_range: np.ndarray


class DichotomousTerms(NamedTuple):
    """log P(X = 0), log P(X = 1), log L and log(1 - L): each of the predictor's shape."""

    log_p0: np.ndarray
    log_p1: np.ndarray
    log_l: np.ndarray
    log_1ml: np.ndarray
    asymptotes: Asymptotes | None


def dichotomous(z, asymptotes=None):
    """log P(X = 0) and log P(X = 1) at a finite predictor `z` (any shape).

    `asymptotes` None is the logistic model itself (c = 0, u = 1). log(1 - L) is
    taken as log L - z, exact to rounding in absolute terms (what a probability
    or a log-likelihood needs) and one operation cheaper than `log_expit_pair`'s,
    which calibration's many small M-step calls feel.
    """
    log_l = np.minimum(z, 0.0) - np.log1p(np.exp(-np.abs(z)))
    log_1ml = log_l - z
    if asymptotes is None:
        return DichotomousTerms(log_1ml, log_l, log_l, log_1ml, None)
    log_p1 = np.logaddexp(asymptotes.log_c, asymptotes.log_range + log_l)
    log_p0 = np.logaddexp(asymptotes.log_1mu, asymptotes.log_range + log_1ml)
    return DichotomousTerms(log_p0, log_p1, log_l, log_1ml, asymptotes)


def dichotomous_derivatives(terms, second=False):
    """d log P_k / dz for k = 0, 1 and, with `second`, d^2 log P_k / dz^2.

    Returns (d0, d1, dd0, dd1), each of the predictor's shape (dd0, dd1 None
    without `second`). With asymptotes the weights w1 = (u - c) L / P_1 and
    w0 = (u - c)(1 - L) / P_0, both in [0, 1], enter:
    ``d1 = (1 - L) w1``, ``d0 = -L w0``.
    """
    ell, one_minus = np.exp(terms.log_l), np.exp(terms.log_1ml)
    if terms.asymptotes is None:
        d1, d0 = one_minus, -ell
        w1 = w0 = 1.0
    else:
        log_range = terms.asymptotes.log_range
        w1 = np.exp(log_range + terms.log_l - terms.log_p1)
        w0 = np.exp(log_range + terms.log_1ml - terms.log_p0)
        d1, d0 = w1 * one_minus, -w0 * ell
    if not second:
        return d0, d1, None, None
    slope = 1.0 - 2.0 * ell
    return d0, d1, d0 * (slope + ell * w0), d1 * (slope - one_minus * w1)


def logistic_answer_derivatives(z, category):
    """d log P(X = x) / dz = x - L and d^2 log P(X = x) / dz^2 = -L (1 - L) of the
    logistic model without asymptotes, for answers x in {0, 1} (arrays of z's shape):
    `dichotomous_derivatives` in closed form, for one category per predictor."""
    ell = expit(z)
    return category - ell, -ell * (1.0 - ell)


def _one_plus_exp(z):
    """1 + exp(z), the exponent held at 700 (where 1 + exp(z) is 1e304 and every use of it
    here gives an information below the smallest double anyway): no overflow."""
    value = np.minimum(z, 700.0)
    np.exp(value, out=value)
    value += 1.0
    return value


def dichotomous_information(z, c=None, u=None):
    """Fisher information in the predictor z of the dichotomous family, elementwise:
    ``(dP/dz)^2 / (P (1 - P))`` with ``dP/dz = (u - c) L (1 - L)``, P = c + (u - c) L.

    Since ``P / L = c (1 + exp(-z)) + (u - c)`` and
    ``(1 - P) / (1 - L) = (1 - u)(1 + exp(z)) + (u - c)``::

        I = L (1 - L) (u - c) / (c (1 + e^-z) + u - c) (u - c) / ((1 - u)(1 + e^z) + u - c)

    with ``L (1 - L) = e / (1 + e)^2``, e = exp(-|z|): the logistic model's information
    (`c` and `u` None: 0 and 1), shrunk by each asymptote, with no difference of
    probabilities near 1 formed. Exact to rounding at every finite z; `c` and `u` arrays
    broadcastable against `z`, either None when 0 (or 1) for every item. Works in place
    on its temporaries (fresh arrays and np.where cost more than the arithmetic on a
    bank of 10,000 items). A parameterization multiplies by (dz/dtheta)^2.
    """
    spread = np.abs(z)
    np.negative(spread, out=spread)
    np.exp(spread, out=spread)                              # e, in (0, 1]
    scale = spread + 1.0
    scale *= scale
    spread /= scale                                         # L (1 - L), symmetric in z
    if c is None and u is None:
        return spread
    width = (1.0 if u is None else u) - (0.0 if c is None else c)
    if c is not None:                                       # (u - c) / (P / L)
        low = _one_plus_exp(np.negative(z))
        low *= c
        low += width
        np.divide(width, low, out=low)
        spread *= low
    if u is not None:                                       # (u - c) / ((1 - P) / (1 - L))
        high = _one_plus_exp(z)
        high *= 1.0 - u
        high += width
        np.divide(width, high, out=high)
        spread *= high
    return spread


def dichotomous_asymptote_log_slopes(terms, upper=True):
    """log |d log P_k / dc| and, with `upper`, log |d log P_k / du| for k = 0, 1.

    The signs are (-, +) for both: ``dP_1/dc = 1 - L``, ``dP_1/du = L``,
    ``P_0 = 1 - P_1``. Returns (dc0, dc1, du0, du1), each of the predictor's
    shape (du0, du1 None without `upper`), so that a parameterization multiplies
    by its own d c / d(parameter) in log space.
    """
    dc = (terms.log_1ml - terms.log_p0, terms.log_1ml - terms.log_p1)
    if not upper:
        return (*dc, None, None)
    return (*dc, terms.log_l - terms.log_p0, terms.log_l - terms.log_p1)


# --- graded -------------------------------------------------------------------------

class GradedTerms(NamedTuple):
    """log P_k (..., K) and log P*_k, log(1 - P*_k) (..., K - 1), categories along `axis`."""

    log_p: np.ndarray
    log_star: np.ndarray
    log_rest: np.ndarray
    axis: int


def _along(ndim, axis, start, stop):
    """The index of positions start:stop along `axis` of an `ndim` array."""
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


def _pad(values, before, after, axis):
    """`values` with `before` and `after` zeros along `axis`."""
    shape = list(values.shape)
    n = shape[axis]
    shape[axis] += before + after
    out = np.zeros(shape)
    out[_along(values.ndim, axis, before, before + n)] = values
    return out


def graded_gaps(delta, axis=-1):
    """The theta-free part of the graded model from ``delta_k = z_k - z_{k+1} > 0``.

    Parameters
    ----------
    delta : ndarray of shape (..., K - 2) along `axis`
        Differences of consecutive cumulative predictors (k = 1 .. K - 2).

    Returns
    -------
    log_gap : ndarray of shape (..., K)
        ``log(1 - exp(-delta_k))`` for the inner categories 1 .. K - 2, 0 for the
        first and last (NaN where delta <= 0: thresholds out of order).
    inverse : ndarray of shape (..., K - 2)
        ``1 / expm1(delta_k)``, what the gap adds to d log P_k / dz_k.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        log_gap = np.log(-np.expm1(-delta))
        inverse = 1.0 / np.expm1(delta)
    return _pad(log_gap, 1, 1, axis), inverse


def graded(z, log_gap, axis=-1):
    """log P_k of the graded model.

    Parameters
    ----------
    z : ndarray of shape (..., K - 1) along `axis`
        Cumulative predictors, decreasing; -inf for a threshold an item lacks.
    log_gap : ndarray of shape (..., K), broadcastable
        From `graded_gaps` (-inf for a category an item lacks).
    """
    log_star, log_rest = log_expit_pair(z)                 # log P*_k, log(1 - P*_k)
    axis = axis % z.ndim
    log_p = _pad(log_star, 1, 0, axis)                     # log P*_k, P*_0 = 1
    log_p[_along(z.ndim, axis, 0, z.shape[axis])] += log_rest   # + log(1 - P*_{k+1})
    log_p += log_gap
    return GradedTerms(log_p, log_star, log_rest, axis)


def graded_derivatives(terms, inverse=None, second=False):
    """Derivatives of log P_k in a common shift t of every predictor and, with
    `inverse`, in each predictor; none divides by a probability.

    Parameters
    ----------
    terms : GradedTerms
    inverse : ndarray of shape (..., K - 2), optional
        From `graded_gaps`, with as many dimensions as the predictors.
    second : bool
        Also the second derivative in t.

    Returns
    -------
    shift : ndarray of shape (..., K)
        d log P_k / dt = (1 - P*_k) - P*_{k+1}.
    shift2 : ndarray of shape (..., K), or None
        d^2 log P_k / dt^2 = -(P*_k (1 - P*_k) + P*_{k+1} (1 - P*_{k+1})).
    lower : ndarray of shape (..., K - 1), or None
        d log P_k / dz_k for k = 1 .. K - 1: ``(1 - P*_k) + 1 / expm1(z_k - z_{k+1})``.
    upper : ndarray of shape (..., K - 1), or None
        d log P_k / dz_{k+1} for k = 0 .. K - 2: ``-P*_{k+1} - 1 / expm1(z_k - z_{k+1})``.
        Every other derivative in one predictor is 0.
    """
    axis, ndim = terms.axis, terms.log_star.ndim
    n_steps = terms.log_star.shape[axis]
    star, rest = np.exp(terms.log_star), np.exp(terms.log_rest)
    shift = _pad(rest, 1, 0, axis)
    shift[_along(ndim, axis, 0, n_steps)] -= star
    shift2 = lower = upper = None
    if second:
        spread = star * rest
        shift2 = _pad(spread, 1, 0, axis)
        shift2[_along(ndim, axis, 0, n_steps)] += spread
        np.negative(shift2, out=shift2)
    if inverse is not None:
        lower, upper = rest.copy(), -star
        lower[_along(ndim, axis, 0, n_steps - 1)] += inverse
        upper[_along(ndim, axis, 1, n_steps)] -= inverse
    return shift, shift2, lower, upper


# --- partial credit -----------------------------------------------------------------

class PartialCreditTerms(NamedTuple):
    """log P_k (..., K), and with derivatives P_k and the score's mean and variance."""

    log_p: np.ndarray
    p: np.ndarray | None
    mean: np.ndarray | None
    variance: np.ndarray | None


def partial_credit(s, axis=-1, derivatives=False, scores=None):
    """log P_k of the partial credit (and nominal) model from category predictors
    `s` (..., K).

    -inf in `s` for a category an item lacks. With `derivatives`, also P_k and
    the mean and variance of the category score (keeping `axis` as length 1).
    The scores are k (gpcm, pcm) unless `scores` gives them (the nominal
    model's ak_k: an array broadcastable against `s`, finite where `s` is):
    for predictors ``s_k = score_k t + const``, d log P_k / dt = score_k - mean
    and d^2 log P_k / dt^2 = -variance; d log P_k / d s_m = [k = m] - P_m.
    """
    log_p = s - logsumexp(s, axis=axis, keepdims=True)
    if not derivatives:
        return PartialCreditTerms(log_p, None, None, None)
    p = np.exp(log_p)
    if scores is None:
        shape = [1] * log_p.ndim
        shape[axis] = log_p.shape[axis]
        scores = np.arange(log_p.shape[axis]).reshape(shape)
    mean = np.sum(p * scores, axis=axis, keepdims=True)
    variance = np.sum(p * (scores - mean) ** 2, axis=axis, keepdims=True)
    return PartialCreditTerms(log_p, p, mean, variance)
