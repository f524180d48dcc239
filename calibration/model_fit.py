"""Model fit as R mirt computes it: the M2 family and the comparison of nested models.

M2 (Maydeu-Olivares & Joe, 2006) tests the model on the first and second
moments of the responses: the item means ``E[x_i]`` and the cross products
``E[x_i x_j]`` (i < j), ``n_m = J + J (J - 1) / 2`` of them. For polytomous
items these are the moments of the item scores, Cai & Hansen's (2013) M2*
(mirt's default ``M2(type = 'M2*')``); for dichotomous items M2* is M2. With
the observed moments ``p``, the model-implied ones ``e``, their asymptotic
covariance ``Xi`` under the model and ``Delta = d e / d parameters``::

    C2 = Dc (Dc' Xi Dc)^-1 Dc'        Dc an orthonormal basis of Delta's complement
    M2 = N (p - e)' C2 (p - e)        df = n_m - estimated parameters

Everything is integrated as mirt's ``M2`` does it: 61 equally spaced nodes on
[-6, 6] with normalised N(mean, sd) weights. ``Xi`` holds
``E[x_A x_B] - e_A e_B`` for the item sets A, B of two moments; under local
independence the expectation is the integral of the product of the
conditional moments of the items of A and B, ``E[x_i^2 | theta]`` where an item is
in both. It is computed below as the plain products ``M' W M`` plus, per item,
its conditional variance times the products of the other items' means: no loop
over moment pairs. The complement ``Dc`` is the trailing columns of the complete
Householder QR of ``Delta``, as mirt takes it (`_complement`); where Delta has
full column rank and Xi is positive definite the same quadratic form comes from
a Cholesky factor of Xi (`_through_inverse`), faster on many items.

With missing responses (mirt's rule): each moment is averaged over the persons
who answered its items, scaled by the square root of their number, and ``C2``
is scaled by the square roots of those numbers over ``N``.

Derived as mirt does: ``p = 1 - pchisq`` (so a p-value below about 1e-16 is
0), ``RMSEA = sqrt(max(M2/df - 1, 0) / (N - 1))`` with its 90% interval from
the noncentral chi-square (lambda / (N df), mirt's ``RMSEA.CI``), SRMSR the root
mean square of the observed minus the model-implied inter-item correlations,
and TLI and CFI relative to the null model (every item independent of theta:
its fitted category proportions are the observed ones), reported only when the
null model's M2 exceeds the model's.

`m2_statistics` takes a model at any nodes (several factors, bifactor, quasi-Monte
Carlo); on the grid above with one factor it is `m2`.

`anova` gives the rows of mirt's ``anova(model_1, model_2)``;
`marginal_log_likelihood` the log-likelihood of a bank already fitted to the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import chdtr, chndtr, logsumexp

from irtcat.engine.estimation import log_likelihood
from irtcat.engine.quadrature import normal_grid

M2_NODES = 61
"""mirt's ``M2`` integrates on 61 nodes over [-6, 6] for one factor."""

MAX_M2_ITEMS = 60
"""More items than this: M2 is not computed (its matrices grow as J^4)."""


class ModelFitError(ValueError):
    """M2 cannot be computed (too few degrees of freedom, too many items)."""


@dataclass(frozen=True)
class M2Result:
    """mirt's ``M2()`` row; TLI and CFI None when the null model fits no worse."""

    M2: float
    df: int
    p: float
    RMSEA: float
    RMSEA_5: float
    RMSEA_95: float
    SRMSR: float
    TLI: float | None
    CFI: float | None

    def as_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class _Moments:
    """Conditional item-score moments at the nodes.

    mean, square : ndarray of shape (n_items, n_nodes)
        E[x | theta] and E[x^2 | theta].
    jacobian : ndarray of shape (n_items, n_columns, n_nodes)
        d E[x_i | theta] / d (column), zero for another item's columns.
    weights : ndarray of shape (n_nodes,), summing to 1
    """

    mean: np.ndarray
    square: np.ndarray
    jacobian: np.ndarray
    weights: np.ndarray


# --- observed moments -----------------------------------------------------------------

def _pairs(n_items):
    """(first, second) of every pair in R's ``lower.tri`` order (by first, then second)."""
    return np.triu_indices(n_items, 1)


def _observed(responses):
    """Observed moments (n_m,), persons per moment (n_m,) and correlations (J, J).

    mirt's ``colMeans(na.rm)`` and ``crossprod / pairwise counts``; the correlations
    are ``cov2cor(cross / counts - outer(means))``.
    """
    observed = ~np.isnan(responses)
    x = np.where(observed, responses, 0.0)
    counts = observed.T.astype(float) @ observed                    # (J, J)
    cross = (x.T @ x) / counts
    means = np.diag(x.T @ observed.astype(float)) / np.diag(counts)
    first, second = _pairs(responses.shape[1])
    moments = np.concatenate([means, cross[first, second]])
    n_per_moment = np.concatenate([np.diag(counts), counts[first, second]])
    return moments, n_per_moment, _correlation(cross - np.outer(means, means))


def _correlation(covariance):
    scale = 1.0 / np.sqrt(np.diag(covariance))
    return covariance * np.outer(scale, scale)


# --- model moments --------------------------------------------------------------------

def _model_moments(calibrator, n_items):
    """`_Moments` of a fitted `MMLCalibrator` on mirt's M2 grid; the columns are its
    free item parameters (latent ones are not in mirt's Delta, as in mirt)."""
    grid = normal_grid(M2_NODES, (-6.0, 6.0), calibrator.mean_, calibrator.sd_)
    nodes = grid.nodes
    free = [block for block in calibrator.blocks_ if not block.fixed]
    n_columns = sum(block.n_free for block in free)
    mean = np.zeros((n_items, nodes.size))
    square = np.zeros_like(mean)
    jacobian = np.zeros((n_items, n_columns, nodes.size))
    offset = 0
    for block in calibrator.blocks_:
        log_p, dlog = block.terms(block.eta, nodes, derivatives=not block.fixed)
        prob = np.exp(log_p)                                          # (n, K, Q)
        score = np.arange(block.n_categories, dtype=float)[:, None]   # (K, 1)
        mean[block.items] = np.sum(score * prob, axis=1)
        square[block.items] = np.sum(score**2 * prob, axis=1)
        if block.fixed:
            continue
        # d E / d eta_p = sum_k k P_k d log P_k / d eta_p; a cell with P = 0 adds 0
        terms = np.where(prob[:, None] > 0, score * prob[:, None] * dlog, 0.0)
        derivative = terms.sum(axis=2)                               # (n, P, Q)
        for row, item in enumerate(block.items):
            jacobian[item, offset + block.free_index(row)] = derivative[row]
        offset += block.n_free
    return _Moments(mean, square, jacobian, grid.weights)


def _null_moments(responses, n_categories):
    """The null model's moments: items independent of theta, each item's category
    proportions those observed among the persons who answered it (its ML fit).

    One node of weight 1. mirt's null model estimates K - 1 intercepts per item,
    but all of an item's columns of Delta are multiples of one (its mean moves,
    nothing else), so the jacobian has one column per item.
    """
    observed = ~np.isnan(responses)
    x = np.where(observed, responses, 0.0)
    n = observed.sum(axis=0)
    mean = (x.sum(axis=0) / n)[:, None]
    square = ((x**2).sum(axis=0) / n)[:, None]
    n_items = responses.shape[1]
    jacobian = np.zeros((n_items, n_items, 1))
    jacobian[np.arange(n_items), np.arange(n_items), 0] = np.sqrt(square[:, 0] - mean[:, 0] ** 2)
    return _Moments(mean, square, jacobian, np.ones(1)), int(np.sum(n_categories - 1))


def _implied(moments):
    """Model-implied moments e (n_m,), Delta (n_m, n_columns), Xi (n_m, n_m) and the
    implied inter-item correlations (J, J)."""
    mean, square, weights = moments.mean, moments.square, moments.weights
    n_items = mean.shape[0]
    first, second = _pairs(n_items)
    products = np.concatenate([mean, mean[first] * mean[second]])     # (n_m, Q)
    weighted = products * weights
    implied = weighted.sum(axis=1)
    # Delta: univariate dE_i; a pair's is dE_i E_j on i's columns plus E_i dE_j on j's
    weighted_jacobian = moments.jacobian * weights                    # (J, C, Q)
    cross = np.einsum("icq,jq->ijc", weighted_jacobian, mean)        # (J, J, C)
    delta = np.concatenate([weighted_jacobian.sum(axis=2),
                            cross[first, second] + cross[second, first]])
    # Xi: plain products, then each shared item's E[x^2] in place of E[x]^2
    raw = weighted @ products.T
    variance = square - mean**2                                       # (J, Q)
    others = np.broadcast_to(mean[None], (n_items, n_items, mean.shape[1])).copy()
    others[np.arange(n_items), np.arange(n_items)] = 1.0               # (i, k, Q)
    shared = np.einsum("q,iq,ikq,ilq->ikl", weights, variance, others, others)
    index = np.empty((n_items, n_items), dtype=np.intp)               # moment of {i, k}
    index[first, second] = index[second, first] = n_items + np.arange(first.size)
    index[np.arange(n_items), np.arange(n_items)] = np.arange(n_items)
    np.add.at(raw, (index[:, :, None], index[:, None, :]), shared)
    both = n_items + np.arange(first.size)                            # a pair with itself
    raw[both, both] += (variance[first] * variance[second]) @ weights
    xi = raw - np.outer(implied, implied)
    second_moment = np.einsum("iq,jq,q->ij", mean, mean, weights)
    np.fill_diagonal(second_moment, square @ weights)
    covariance = second_moment - np.outer(implied[:n_items], implied[:n_items])
    return implied, delta, xi, _correlation(covariance)


def _complement(delta, n_dropped):
    """mirt's orthogonal complement: the columns after the first `n_dropped` of the
    complete QR's Q (Householder, as R's ``qr``). shape (n_m, n_m - n_dropped)."""
    q, _ = np.linalg.qr(delta, mode="complete")
    return q[:, n_dropped:]


def _statistic(moments, n_dropped, observed, n_per_moment, n_persons):
    """M2 and the implied correlations for one set of model moments."""
    implied, delta, xi, correlation = _implied(moments)
    if n_dropped + 1 > delta.shape[0]:
        raise ModelFitError("M2 cannot be calculated: too few degrees of freedom "
                            f"({delta.shape[0]} moments for {n_dropped} parameters)")
    ratio = np.sqrt(n_per_moment / n_persons)
    residual = np.sqrt(n_per_moment) * (observed - implied) * ratio   # scaled as mirt's C2
    if n_dropped == delta.shape[1]:
        value = _through_inverse(delta, xi, residual)
        if value is not None:
            return abs(value), correlation
    basis = _complement(delta, n_dropped)                             # (n_m, n_m - n_dropped)
    projected = basis.T @ residual
    middle = basis.T @ xi @ basis
    try:
        value = float(projected @ np.linalg.solve(middle, projected))
    except np.linalg.LinAlgError as error:
        raise ModelFitError("M2 cannot be calculated: the orthogonal complement matrix is "
                            "singular") from error
    return abs(value), correlation


def _through_inverse(delta, xi, residual):
    """``r' C2 r`` by the identity ``C2 = Xi^-1 - Xi^-1 D (D' Xi^-1 D)^-1 D' Xi^-1``
    (Delta of full column rank, Xi positive definite): a Cholesky factor of Xi
    instead of the complement's (n_m - p)^2 products, several times faster on
    many items. None when Xi is not positive definite (the complement is used)."""
    # imported here: a calibration that computes no M2 does not import scipy.linalg
    from scipy.linalg import cho_factor, cho_solve

    try:
        factor = cho_factor(xi)
    except np.linalg.LinAlgError:
        return None
    solved_residual = cho_solve(factor, residual)
    solved_delta = cho_solve(factor, delta)
    projected = delta.T @ solved_residual
    try:
        correction = projected @ np.linalg.solve(delta.T @ solved_delta, projected)
    except np.linalg.LinAlgError:
        return None
    return float(residual @ solved_residual - correction)


# --- indices ------------------------------------------------------------------------

def rmsea(statistic, df, n_persons):
    """mirt's ``rmsea``: sqrt(max(X2/df - 1, 0) / (N - 1)); NaN for df <= 0."""
    if df <= 0:
        return float("nan")
    return float(np.sqrt(max(statistic / df - 1.0, 0.0) / (n_persons - 1)))


def rmsea_interval(statistic, df, n_persons, level=0.9):
    """mirt's ``RMSEA.CI``: sqrt(lambda / (N df)) at the noncentrality parameters where
    the noncentral chi-square cdf at the statistic is (1 + level) / 2 and (1 - level) / 2;
    a bound with no root in mirt's bracket is 0."""
    from scipy.optimize import brentq  # here: not imported by every calibration

    alpha = (1.0 - level) / 2.0

    def bound(target, upper):
        def excess(ncp):
            return chndtr(statistic, df, ncp) - target
        low, high = excess(0.0), excess(upper)
        if low * high > 0 or not np.isfinite(low * high):
            return 0.0
        root = 0.0 if low == 0 else brentq(excess, 0.0, upper, xtol=1e-12, rtol=1e-12)
        return float(np.sqrt(root / (n_persons * df)))

    return (bound(1.0 - alpha, statistic),
            bound(alpha, max(float(n_persons), 5.0 * statistic)))


def chi_square_p(statistic, df):
    """mirt's ``1 - pchisq(X2, df)``: exactly 0 once pchisq rounds to 1."""
    return float(1.0 - chdtr(df, statistic))


def m2(calibrator, responses, n_categories=None, level=0.9):
    """mirt's ``M2(mod)`` (type M2*, 61 nodes on [-6, 6], TLI and CFI against the null).

    Parameters
    ----------
    calibrator : MMLCalibrator, fitted
    responses : ndarray of shape (n_persons, n_items)
        The calibration's responses, categories 0..K-1, NaN where missing.
    n_categories : array_like of int, shape (n_items,), optional
        Default: each item's block's categories.
    level : float
        Of the RMSEA interval (mirt: 0.9).

    Returns
    -------
    M2Result

    Raises
    ------
    ModelFitError
        Too many items (`MAX_M2_ITEMS`) or too few degrees of freedom.
    """
    responses = _checked(responses)
    n_items = responses.shape[1]
    if n_categories is None:
        n_categories = np.zeros(n_items, dtype=int)
        for block in calibrator.blocks_:
            n_categories[block.items] = block.n_categories
    return _m2_family(responses, _model_moments(calibrator, n_items),
                      calibrator.n_parameters_, n_categories, level)


def m2_statistics(responses, log_probability, log_weights, n_parameters, mean_jacobian,
                  *, n_categories=None, level=0.9):
    """mirt's ``M2(mod)`` family for a model given at arbitrary quadrature nodes.

    The nodes may be a product grid over several factors, a bifactor or quasi-Monte
    Carlo set: only the category probabilities there, the nodes' weights and the
    derivatives of the conditional item means enter (local independence given the
    nodes). On mirt's 61-node grid of a one-factor model this is `m2`.

    Parameters
    ----------
    responses : ndarray (n_persons, n_items)
        Categories 0..K-1, NaN where missing.
    log_probability : ndarray (n_nodes, n_items, n_max_categories)
        log P(x_i = k | node); -inf for the categories an item does not have.
    log_weights : ndarray (n_nodes,)
        Log weights of the nodes (normalized here: mirt's ``Prior / sum(Prior)``).
    n_parameters : int
        All estimated parameters (latent ones included): df = n_moments - n_parameters.
    mean_jacobian : ndarray (n_items, n_columns, n_nodes)
        d E[x_i | node] / d (free item parameter), zero for another item's parameters;
        only its column space matters (any reparameterization gives the same M2).
        `compensatory_mean_jacobian` builds it for the multidimensional models.
    n_categories : array_like of int (n_items,), optional
        For the null model; default: the categories with a finite log probability.
    level : float
        Of the RMSEA interval (mirt: 0.9).

    Returns
    -------
    M2Result
    """
    responses = _checked(responses)
    probability = np.exp(np.asarray(log_probability, dtype=float))      # (Q, J, K)
    score = np.arange(probability.shape[2], dtype=float)
    weights = np.exp(np.asarray(log_weights, dtype=float) - logsumexp(log_weights))
    moments = _Moments(mean=(probability @ score).T, square=(probability @ score**2).T,
                       jacobian=np.asarray(mean_jacobian, dtype=float), weights=weights)
    if n_categories is None:
        n_categories = np.isfinite(log_probability).any(axis=0).sum(axis=1)
    return _m2_family(responses, moments, n_parameters, n_categories, level)


def _checked(responses):
    """The responses as floats, refused where M2 is not computed (too many items, a
    pair of items nobody answered both of)."""
    responses = np.asarray(responses, dtype=float)
    n_items = responses.shape[1]
    if n_items > MAX_M2_ITEMS:
        raise ModelFitError(f"M2 is computed for at most {MAX_M2_ITEMS} items, not {n_items}")
    answered = (~np.isnan(responses)).astype(float)
    together = answered.T @ answered                  # persons who answered both items
    never = int(np.sum(np.triu(together == 0, k=1)))
    if never:
        raise ModelFitError(f"M2 needs every pair of items answered by some person: "
                            f"{never} of {n_items * (n_items - 1) // 2} pairs are not "
                            "(an adaptive-test log: see the items' fit)")
    return responses


def _m2_family(responses, moments, n_parameters, n_categories, level):
    """M2, its p, RMSEA (with interval), SRMSR, TLI and CFI from the model's moments."""
    n_persons, n_items = responses.shape
    observed, n_per_moment, correlation = _observed(responses)
    statistic, implied_correlation = _statistic(moments, moments.jacobian.shape[1], observed,
                                                n_per_moment, n_persons)
    df = observed.size - n_parameters
    lower = np.tril_indices(n_items, -1)
    srmsr = float(np.sqrt(np.mean((correlation - implied_correlation)[lower] ** 2)))
    null_moments, null_parameters = _null_moments(responses, np.asarray(n_categories))
    null_statistic, _ = _statistic(null_moments, null_parameters, observed, n_per_moment,
                                   n_persons)
    null_df = observed.size - null_parameters
    tli = cfi = None
    if null_statistic > statistic:
        tli = float((null_statistic / null_df - statistic / df) / (null_statistic / null_df - 1))
        cfi = float(min(max(1 - (statistic - df) / (null_statistic - null_df), 0.0), 1.0))
    low, high = rmsea_interval(statistic, df, n_persons, level)
    return M2Result(statistic, int(df), chi_square_p(statistic, df),
                    rmsea(statistic, df, n_persons), low, high, srmsr, tli, cfi)


# --- nested models ----------------------------------------------------------------------

def marginal_log_likelihood(responses, params, *, population_mean=0.0, population_sd=1.0,
                            n_nodes=61):
    """Marginal log-likelihood of responses under fixed item parameters (a bank fitted
    to them): ``sum_persons log sum_q w_q L(x | theta_q)`` on `n_nodes` nodes over
    [-6, 6] with N(mean, sd) weights, the quantity MML-EM maximises.

    Parameters
    ----------
    responses : ndarray of shape (n_persons, n_items), NaN where missing
    params : ItemParameters
    """
    grid = normal_grid(n_nodes, (-6.0, 6.0), population_mean, population_sd)
    per_node = log_likelihood(responses, grid.nodes, params) + grid.log_weights  # (n, Q)
    return float(np.sum(logsumexp(per_node, axis=1)))


@dataclass(frozen=True)
class AnovaRow:
    """One row of mirt's ``anova``: X2, df and p only on the rows after the first."""

    model: str
    AIC: float
    SABIC: float
    HQ: float
    BIC: float
    logLik: float
    X2: float | None = None
    df: int | None = None
    p: float | None = None

    def as_dict(self):
        return asdict(self)


def information_criteria(log_likelihood, n_parameters, n_persons):
    """AIC, SABIC ((N + 2) / 24), HQ (2 k log log N) and BIC, as mirt."""
    deviance = -2.0 * log_likelihood
    return {"AIC": deviance + 2.0 * n_parameters,
            "SABIC": deviance + n_parameters * np.log((n_persons + 2.0) / 24.0),
            "HQ": deviance + 2.0 * n_parameters * np.log(np.log(n_persons)),
            "BIC": deviance + n_parameters * np.log(n_persons)}


def anova(models):
    """mirt's ``anova(m1, m2, ...)``: a row per model, each after the first with the
    likelihood-ratio X2 = 2 (logLik - previous logLik), df the difference in
    parameters and p = 1 - pchisq.

    Parameters
    ----------
    models : sequence of (name, log_likelihood, n_parameters, n_persons)

    Returns
    -------
    list of AnovaRow
    """
    rows = []
    previous = None
    for name, loglik, n_parameters, n_persons in models:
        criteria = {key: float(value) for key, value in
                    information_criteria(loglik, n_parameters, n_persons).items()}
        row = AnovaRow(name, **criteria, logLik=float(loglik))
        if previous is not None:
            statistic = 2.0 * (loglik - previous[0])
            df = int(abs(n_parameters - previous[1]))
            row = AnovaRow(name, **criteria, logLik=float(loglik), X2=float(statistic),
                           df=df, p=chi_square_p(statistic, df) if df else float("nan"))
        rows.append(row)
        previous = (loglik, n_parameters)
    return rows


def model_fit_record(calibrator, responses):
    """The bank's ``calibration.model_fit``: `m2`'s values under lower-case names (m2,
    df, p, rmsea, rmsea_5, rmsea_95, srmsr, tli, cfi; null where not defined), or
    ``{"reason": ...}`` when M2 cannot be computed."""
    try:
        result = m2(calibrator, responses)
    except ModelFitError as error:
        return {"reason": str(error)}
    record = {}
    for key, value in result.as_dict().items():
        finite = value is not None and np.isfinite(value)
        record[key.lower()] = (int(value) if key == "df" else round(float(value), 6)) \
            if finite else None
    return record
