"""Item response models: category probabilities, likelihood, information.

A bank may mix models. `ItemParameters` holds every item in common arrays and
groups the items by model family once, at construction:

- dichotomous (`rasch`, `1pl`, `2pl`, `3pl`, `4pl`): the 4PL
  ``P(X = 1) = c + (u - c) L`` with ``L = expit(a (theta - b))``;
- `grm` (Samejima): ``P*(X >= k) = expit(a (theta - b_k))``, the thresholds ordered so
  that ``a b_k`` increases: b increasing for a > 0, decreasing for a reverse-keyed item
  (a < 0; mirt's ``b_k = -d_k / a`` of intercepts d decreasing);
- `gpcm` and `pcm` (Muraki): ``P(X = k) ∝ exp(sum_{v <= k} a (theta - b_v))``;
- `nominal` (Bock), the gpcm with category scores ak_k in place of k:
  ``P(X = k) ∝ exp(a (ak_k theta - sum_{v <= k} b_v))``.

A nominal item of a bank states ``a``, ``ak`` (its K category scores) and ``b``
(K - 1 steps), FORMATS.md's style for polytomous items::

    {"id": "N1", "model": "nominal", "a": 0.79, "ak": [0, 1.27, 2.30, 3],
     "b": [-0.85, 0.17, 0.69]}

This is mirt's ``itemtype = 'nominal'``: a1 = ``a``, ak0..akK-1 = ``ak`` (calibration
writes mirt's identification ak_0 = 0, ak_{K-1} = K - 1; any finite scores are read),
and ``d_k = -a (b_1 + ... + b_k)``, the gpcm's conversion. `nominal_irt_form` gives
mirt's IRT form (``coef(IRTpars = TRUE)``).

Every response function returns ``theta.shape + (n_items,)`` or, per
category, ``theta.shape + (n_items, n_categories_max)``; categories beyond an
item's own count have probability 0 (log probability -inf).

All of it is computed in log space from three per-category quantities,
the log probability and its first and second derivatives in theta::

    log P_k,   g1_k = d log P_k / d theta,   g2_k = d^2 log P_k / d theta^2

from which information ``I = sum_k P_k g1_k^2`` and the term Warm's
estimator needs, ``J = sum_k P_k g1_k (g2_k + g1_k^2)``, follow. The
probabilities and their derivatives in the linear predictor come from
`engine.kernel` (the one statement of the response model, shared with
calibration); this module forms the predictor in IRT form and applies the
chain rule. Nothing cancels or overflows even at theta = +-300.

Length: a little over 500 lines, as `ItemParameters`, its conversions from bank
documents and columns, and the per-family terms change together whenever a model
is added, so they stay in one module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from . import kernel

# The one list of models lives in the kernel; engine/__init__ re-exports it from here.
from .kernel import DICHOTOMOUS_MODELS, FAMILY, MODELS, POLYTOMOUS_MODELS  # noqa: F401


@dataclass(frozen=True, eq=False)
class ItemParameters:
    """Parameters of ``n_items`` items in IRT form, possibly of mixed models.

    Attributes
    ----------
    model : tuple of str, length n_items
        One of `MODELS` per item.
    a : ndarray of shape (n_items,)
        Discrimination (1 for `rasch` and `pcm`).
    b : ndarray of shape (n_items, n_categories_max - 1)
        Difficulty (dichotomous: one column), GRM thresholds or GPCM steps;
        NaN beyond an item's last threshold.
    c, u : ndarray of shape (n_items,)
        Lower and upper asymptotes (0 and 1 for every model that fixes them).
    ak : ndarray of shape (n_items, n_categories_max), or None
        Category scores of `nominal` items (NaN for every other item and
        beyond an item's categories); None when the bank has no nominal item.

    Construct with `ItemParameters.create`, which validates nothing: use
    `engine.validation.check_item_parameters` at a trust boundary.
    """

    model: tuple
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    u: np.ndarray
    ak: np.ndarray | None = None
    _groups: dict = field(init=False, repr=False)

    def __post_init__(self):
        if self.ak is None and "nominal" in self.model:
            raise ValueError("nominal items need their category scores ak")
        families = np.array([FAMILY[m] for m in self.model], dtype=object)
        groups = {}
        for family in ("dichotomous", "graded", "partial_credit"):
            index = np.flatnonzero(families == family)
            if index.size:
                groups[family] = _prepare_group(family, index, self)
        object.__setattr__(self, "_groups", groups)

    @classmethod
    def create(cls, model, a, b, c=None, u=None, ak=None):
        """Build from per-item values.

        Parameters
        ----------
        model : str or sequence of str
            One model for all items, or one per item.
        a : array_like of shape (n_items,)
        b : sequence of length n_items
            A number for a dichotomous item, a sequence of thresholds or
            steps for a polytomous one; or a 2-D array padded with NaN.
        c, u : array_like of shape (n_items,), optional
            Default 0 and 1.
        ak : sequence of length n_items, optional
            The category scores of each nominal item (None for any other
            item); or a 2-D array padded with NaN. Needed when an item is nominal.
        """
        a = np.atleast_1d(np.asarray(a, dtype=float))
        n_items = a.shape[0]
        models = (model,) * n_items if isinstance(model, str) else tuple(model)
        if isinstance(b, np.ndarray) and b.ndim == 2:
            b_matrix = np.array(b, dtype=float)
        else:
            b_rows = [np.atleast_1d(np.asarray(row, dtype=float)) for row in b]
            width = max((row.size for row in b_rows), default=1)
            b_matrix = np.full((n_items, width), np.nan)
            for i, row in enumerate(b_rows):
                b_matrix[i, : row.size] = row
        c = np.zeros(n_items) if c is None else np.asarray(c, dtype=float).reshape(n_items)
        u = np.ones(n_items) if u is None else np.asarray(u, dtype=float).reshape(n_items)
        return cls(models, a, b_matrix, c, u, _score_matrix(ak, models, b_matrix.shape[1] + 1))

    @property
    def n_items(self):
        return self.a.shape[0]

    @property
    def n_categories(self):
        """Number of response categories of each item, shape (n_items,)."""
        return 1 + np.sum(~np.isnan(self.b), axis=1)

    @property
    def max_categories(self):
        return int(self.n_categories.max(initial=2))

    def subset(self, item_index):
        """The items at `item_index` (int array or bool mask), in that order."""
        item_index = np.asarray(item_index)
        if item_index.dtype == bool:
            item_index = np.flatnonzero(item_index)
        b = self.b[item_index]
        width = max(int(np.max(np.sum(~np.isnan(b), axis=1), initial=1)), 1)
        models = tuple(self.model[i] for i in item_index)
        ak = self.ak[item_index, : width + 1] if "nominal" in models else None
        return ItemParameters(models, self.a[item_index], b[:, :width], self.c[item_index],
                              self.u[item_index], ak)


def _score_matrix(ak, models, width):
    """Nominal items' category scores as an (n_items, `width`) array padded with NaN
    (NaN for other items), or None when no item is nominal."""
    if "nominal" not in models:
        return None
    if ak is None:
        raise ValueError("nominal items need their category scores ak")
    matrix = np.full((len(models), width), np.nan)
    for i, row in enumerate(ak):
        values = [] if models[i] != "nominal" else np.asarray(row, dtype=float)[:width]
        matrix[i, : len(values)] = values
    return matrix


def nominal_irt_form(a, ak, b):
    """mirt's IRT form of nominal items (``coef(IRTpars = TRUE)``): the category
    slopes ``a ak_k`` and intercepts ``d_k = -a (b_1 + ... + b_k)`` (d_0 = 0), each
    centred to sum to 0 over the item's categories.

    Parameters
    ----------
    a : ndarray of shape (n,)
    ak : ndarray of shape (n, K)
    b : ndarray of shape (n, K - 1)

    Returns
    -------
    slopes, intercepts : ndarray of shape (n, K)
    """
    a = np.asarray(a, dtype=float)[:, None]
    slopes = a * np.asarray(ak, dtype=float)
    steps = np.asarray(b, dtype=float)
    intercepts = -a * np.concatenate([np.zeros((steps.shape[0], 1)), np.cumsum(steps, 1)], 1)
    return (slopes - slopes.mean(axis=1, keepdims=True),
            intercepts - intercepts.mean(axis=1, keepdims=True))


# --- one item's parameters as documents and stored columns state them -----------------

def parameter_fields(model):
    """The parameters an item of `model` states (an `irtcat-bank/1` item's keys):
    ``("b",)`` for rasch and pcm (a = 1), up to ``("a", "b", "c", "u")`` for the 4pl;
    ``("a", "ak", "b")`` for the nominal model."""
    if model in ("rasch", "pcm"):
        return ("b",)
    return {"3pl": ("a", "b", "c"), "4pl": ("a", "b", "c", "u"),
            "nominal": ("a", "ak", "b")}.get(model, ("a", "b"))


def category_count(model, b=None, key=None):
    """How many response categories an item has: 2 for a dichotomous model; else one
    more than its thresholds or steps `b` (a list) when given; else one more than the
    highest score of its answer key (``{"scores": {option: score}}``); else None."""
    if model in DICHOTOMOUS_MODELS:
        return 2
    if b is not None:
        return len(b) + 1
    if key and "scores" in key:
        return max(key["scores"].values()) + 1
    return None


def parameter_columns(entries):
    """Per-item parameters (dicts with "model" and the `parameter_fields` of it, b a
    number or a list) as columns: ``{"model", "a", "b", "c", "u"}``, each a list of
    n_items values, b a list of rows padded with None; a = 1, c = 0, u = 1 where an
    item does not state them. With a nominal item, also "ak": rows of its category
    scores padded with None (all None for another item)."""
    entries = list(entries)
    b = [p["b"] if isinstance(p["b"], list) else [p["b"]] for p in entries]
    width = max((len(row) for row in b), default=1)
    columns = {"model": [p["model"] for p in entries],
               "a": [p.get("a", 1.0) for p in entries],
               "b": [row + [None] * (width - len(row)) for row in b],
               "c": [p.get("c", 0.0) for p in entries], "u": [p.get("u", 1.0) for p in entries]}
    if any(p["model"] == "nominal" for p in entries):
        scores = [list(p["ak"]) if p["model"] == "nominal" else [] for p in entries]
        columns["ak"] = [(row + [None] * (width + 1))[: width + 1] for row in scores]
    return columns


def parameters_from_columns(columns):
    """`ItemParameters` from `parameter_columns`' columns (None in b for no threshold)."""
    b = np.array(columns["b"], dtype=float).reshape(len(columns["model"]), -1)  # None: NaN
    missing = np.isnan(b)
    if not np.all(missing[:, :-1] <= missing[:, 1:]):      # a gap before a threshold
        rows = [row[~gap] for row, gap in zip(b, missing, strict=True)]
        b = np.full(b.shape, np.nan)
        for i, row in enumerate(rows):
            b[i, : row.size] = row
        missing = np.isnan(b)
    b = b[:, : max(1, int((~missing).sum(axis=1).max(initial=0)))]
    ak = columns.get("ak")
    if ak is not None:
        ak = np.array(ak, dtype=float).reshape(len(columns["model"]), -1)   # None: NaN
    return ItemParameters.create(list(columns["model"]), columns["a"], b, c=columns["c"],
                                 u=columns["u"], ak=ak)


def parameters_from_entries(entries):
    """`ItemParameters` of per-item parameter dicts (see `parameter_columns`)."""
    return parameters_from_columns(parameter_columns(entries))


def _prepare_group(family, index, params):
    """Precompute what the family's kernel needs for the items at `index`."""
    a = params.a[index]
    b = params.b[index]
    n_steps = np.sum(~np.isnan(b), axis=1)
    width = int(n_steps.max())
    b = b[:, :width]
    group = {"index": index, "a": a, "n_categories": n_steps + 1, "width": width + 1}
    local = np.full(params.n_items, -1, dtype=np.intp)           # bank item -> row in group
    local[index] = np.arange(index.size)
    if family == "dichotomous":
        c, u = params.c[index], params.u[index]
        group.update(b=b[:, 0], c=c, u=u, plain=bool(np.all(c == 0) and np.all(u == 1)))
        # Out-of-domain values give NaN here; check_item_parameters reports them.
        with np.errstate(divide="ignore", invalid="ignore"):
            group.update(log_c=np.log(c), log_1mu=np.log1p(-u), log_range=np.log(u - c))
    elif family == "graded":
        # For every threshold an item does not have, +inf (a > 0) or -inf (a < 0, a
        # reverse-keyed item), so that its predictor a (theta - b_k) is -inf: shape (n, width).
        group["thresholds"] = np.where(np.isnan(b), np.copysign(np.inf, a)[:, None], b)
        # The theta-free gap terms of each category, -inf beyond an item's last:
        # shape (n, width + 1). The gaps z_k - z_{k+1} = a (b_{k+1} - b_k) are > 0 for
        # either sign of a; a missing next threshold is an infinite gap (term 0).
        gaps = np.nan_to_num(a[:, None] * np.diff(b, axis=1), nan=np.inf)   # (n, width - 1)
        log_gap, _ = kernel.graded_gaps(gaps)
        valid = np.arange(width + 1)[None, :] < (n_steps + 1)[:, None]
        log_gap[~valid] = -np.inf
        group.update(log_gap=log_gap, valid=valid)
    else:
        # Cumulative steps B_k = sum_{v<=k} b_v with B_0 = 0: shape (n, width + 1).
        cumulative = np.concatenate([np.zeros((index.size, 1)), np.cumsum(np.nan_to_num(b), 1)], 1)
        valid = np.arange(width + 1)[None, :] < (n_steps + 1)[:, None]
        group.update(cumulative=cumulative, valid=valid)
        nominal = np.array([params.model[i] == "nominal" for i in index])
        if nominal.any():
            # Category scores: ak_k of a nominal item, k of a gpcm or pcm one, 0 beyond
            # an item's categories: shape (n, width + 1).
            scores = np.broadcast_to(np.arange(width + 1.0), valid.shape).copy()
            scores[nominal] = params.ak[index[nominal], : width + 1]
            group["scores"] = np.where(valid, scores, 0.0)
    group["local"] = local
    return group


# --- per-family terms in theta ---------------------------------------------------------
# Each takes theta of shape (m,), computes the family's linear predictor in IRT
# form and applies the chain rule to `engine.kernel`'s derivatives in it; it returns
# (log_p, g1, g2), each of shape (m, n_group_items, n_group_categories) (or
# (m, n_group_categories) for paired theta and items). With derivatives=False,
# g1 and g2 are None.

def _dichotomous_terms(theta, group, derivatives, paired=False):
    a = group["a"]
    z = a * ((theta if paired else theta[:, None]) - group["b"])   # (m, n), or (m,) paired
    asymptotes = None if group["plain"] else kernel.Asymptotes(
        group["log_c"], group["log_1mu"], group["log_range"])
    terms = kernel.dichotomous(z, asymptotes)
    log_p = np.stack([terms.log_p0, terms.log_p1], axis=-1)      # (m, n, 2)
    if not derivatives:
        return log_p, None, None
    d0, d1, dd0, dd1 = kernel.dichotomous_derivatives(terms, second=True)
    return (log_p, np.stack([a * d0, a * d1], axis=-1),
            np.stack([a**2 * dd0, a**2 * dd1], axis=-1))


def _graded_terms(theta, group, derivatives, paired=False):
    a = group["a"][:, None]                                      # (n, 1)
    shift = theta[:, None] if paired else theta[:, None, None]
    z = a * (shift - group["thresholds"])                        # (m, n, width) or (m, width)
    terms = kernel.graded(z, group["log_gap"])
    if not derivatives:
        return terms.log_p, None, None
    first, second, _, _ = kernel.graded_derivatives(terms, second=True)
    valid = group["valid"]
    return terms.log_p, np.where(valid, a * first, 0.0), np.where(valid, a**2 * second, 0.0)


def _partial_credit_terms(theta, group, derivatives, paired=False):
    a = group["a"][:, None]
    valid = group["valid"]
    scores = group.get("scores")                                 # (n, width + 1), nominal
    k = np.arange(valid.shape[1]) if scores is None else scores
    shift = theta[:, None] if paired else theta[:, None, None]
    s = a * (k * shift - group["cumulative"])                    # (m, n, width + 1) or (m, w + 1)
    terms = kernel.partial_credit(np.where(valid, s, -np.inf), derivatives=derivatives,
                                  scores=scores)
    if not derivatives:
        return terms.log_p, None, None
    return (terms.log_p, np.where(valid, a * (k - terms.mean), 0.0),
            np.where(valid, -(a**2) * terms.variance, 0.0))


_KERNELS = {"dichotomous": _dichotomous_terms, "graded": _graded_terms,
            "partial_credit": _partial_credit_terms}


def _underflow_is_zero(function):
    """Run `function` with floating-point underflow ignored.

    A probability below the smallest double rounds to 0, which is the right
    answer (its log stays finite); it is not an error at any theta, even
    inside a caller's ``np.errstate(all="raise")``.
    """
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with np.errstate(under="ignore"):
            return function(*args, **kwargs)
    return wrapper


@_underflow_is_zero
def category_terms(theta, params, derivatives=True):
    """Log category probabilities and their theta derivatives.

    Parameters
    ----------
    theta : ndarray of shape (m,)
    params : ItemParameters
    derivatives : bool
        Also return the first and second derivatives of the log probabilities.

    Returns
    -------
    log_p, g1, g2 : ndarray of shape (m, n_items, n_categories_max)
        ``-inf``, 0 and 0 beyond an item's categories; g1 and g2 are None
        when `derivatives` is False.
    """
    return _category_terms(np.asarray(theta, dtype=float), params, derivatives)


def _category_terms(theta, params, derivatives):
    groups = params._groups
    if len(groups) == 1:
        (family, group), = groups.items()
        out = _KERNELS[family](theta, group, derivatives)
        if np.array_equal(group["index"], np.arange(params.n_items)):
            return out
    shape = (theta.shape[0], params.n_items, params.max_categories)
    log_p = np.full(shape, -np.inf)
    g1 = np.zeros(shape) if derivatives else None
    g2 = np.zeros(shape) if derivatives else None
    for family, group in groups.items():
        terms = _KERNELS[family](theta, group, derivatives)
        width, index = terms[0].shape[-1], group["index"]
        log_p[:, index, :width] = terms[0]
        if derivatives:
            g1[:, index, :width] = terms[1]
            g2[:, index, :width] = terms[2]
    return log_p, g1, g2


@_underflow_is_zero
def pair_terms(theta, params, item_index, derivatives=True):
    """The terms of `category_terms` for m (theta, item) pairs.

    Parameters
    ----------
    theta : ndarray of shape (m,)
    item_index : int ndarray of shape (m,): the item of each pair

    Returns
    -------
    log_p, g1, g2 : ndarray of shape (m, n_categories_max)
    """
    theta = np.asarray(theta, dtype=float)
    item_index = np.asarray(item_index, dtype=np.intp)
    shape = (theta.size, params.max_categories)
    log_p = np.full(shape, -np.inf)
    g1 = np.zeros(shape) if derivatives else None
    g2 = np.zeros(shape) if derivatives else None
    for family, group in params._groups.items():
        local = group["local"][item_index]
        pairs = np.flatnonzero(local >= 0)
        if pairs.size == 0:
            continue
        rows = local[pairs]
        size = group["index"].size
        view = {key: value[rows] if isinstance(value, np.ndarray) and key != "local"
                and value.ndim and value.shape[0] == size else value
                for key, value in group.items()}
        terms = _KERNELS[family](theta[pairs], view, derivatives, paired=True)
        width = terms[0].shape[-1]
        log_p[pairs, :width] = terms[0]
        if derivatives:
            g1[pairs, :width] = terms[1]
            g2[pairs, :width] = terms[2]
    return log_p, g1, g2


def answer_derivatives(theta, params, item_index, category):
    """First and second derivatives in theta of log P(X = category | theta) for m
    (theta, item, category) triples: two ndarrays of shape (m,).

    A bank of plain dichotomous items (no asymptotes) takes the closed form
    a (x - P) and -a^2 P (1 - P); any other bank, `pair_terms`.
    """
    theta = np.asarray(theta, dtype=float)
    item_index = np.asarray(item_index, dtype=np.intp)
    family = params._groups.get("dichotomous")
    if len(params._groups) == 1 and family is not None and family["plain"]:
        a = params.a[item_index]
        d1, d2 = kernel.logistic_answer_derivatives(a * (theta - params.b[item_index, 0]),
                                                    category)
        return a * d1, a * a * d2
    _, g1, g2 = pair_terms(theta, params, item_index)
    at = (np.arange(item_index.size), category)
    return g1[at], g2[at]


def _flat(theta):
    theta = np.asarray(theta, dtype=float)
    return theta.reshape(-1), theta.shape


@_underflow_is_zero
def category_log_probability(theta, params):
    """log P(X = k | theta): shape ``theta.shape + (n_items, n_categories_max)``."""
    flat, shape = _flat(theta)
    log_p = category_terms(flat, params, derivatives=False)[0]
    return log_p.reshape(shape + log_p.shape[1:])


@_underflow_is_zero
def category_probability(theta, params):
    """P(X = k | theta): shape ``theta.shape + (n_items, n_categories_max)``; rows sum to 1."""
    return np.exp(category_log_probability(theta, params))


@_underflow_is_zero
def expected_score(theta, params):
    """E[X | theta] per item (the ICC of a dichotomous item): ``theta.shape + (n_items,)``."""
    p = category_probability(theta, params)
    return p @ np.arange(p.shape[-1], dtype=float)


@_underflow_is_zero
def information(theta, params):
    """Item Fisher information: shape ``theta.shape + (n_items,)``."""
    flat, shape = _flat(theta)
    log_p, g1, _ = category_terms(flat, params)
    info = np.sum(np.exp(log_p) * g1**2, axis=-1)               # (m, n_items)
    return info.reshape(shape + info.shape[1:])


def test_information(theta, params):
    """Test information, the sum of item information: shape ``theta.shape``."""
    return information(theta, params).sum(axis=-1)


def standard_error(theta, params):
    """1 / sqrt(test information): shape ``theta.shape``."""
    return 1.0 / np.sqrt(test_information(theta, params))


@_underflow_is_zero
def information_terms(theta, params):
    """Item information I and Warm's J = sum_k P_k g1_k (g2_k + g1_k^2).

    Returns
    -------
    info, warm : ndarray of shape (m, n_items) for theta of shape (m,)
    """
    log_p, g1, g2 = category_terms(np.asarray(theta, dtype=float), params)
    p = np.exp(log_p)
    return np.sum(p * g1**2, axis=-1), np.sum(p * g1 * (g2 + g1**2), axis=-1)


test_information.__test__ = False  # a response function, not a test for pytest to collect
