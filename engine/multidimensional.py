"""Compensatory multidimensional items in mirt's slope-intercept form.

An item j with slopes a_j (m,) over m factors has the linear predictor
``t_j = a_j . theta`` and the families of `engine.kernel` in it:

- ``2pl``/``3pl``/``4pl``: ``P(X = 1) = c + (u - c) expit(t + d)``;
- ``grm``: ``P(X >= k) = expit(t + d_k)``, k = 1 .. K - 1, d decreasing;
- ``gpcm``: ``P(X = k) ∝ exp(k t + d_k)``, d_0 = 0.

Every derivative in theta is a_j times the derivative in t, so the Fisher information
matrix of an item is ``I_j(theta) = a_j a_j^T i_j(t_j)``, i_j the scalar information in
the predictor, and the observed information of an answer x is ``-a_j a_j^T g2_j(x)``.

`MultidimensionalItems.from_entries` reads the bank format's items and `dimensions`
object (the one validation of multidimensional items: a ValueError names the item and
what is wrong with it); `latent_population` reads the population N(mean, correlation).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from . import kernel

MULTIDIMENSIONAL_MODELS = ("2pl", "3pl", "4pl", "grm", "gpcm")
_FAMILIES = {"2pl": "dichotomous", "3pl": "dichotomous", "4pl": "dichotomous",
             "grm": "graded", "gpcm": "partial_credit"}
STRUCTURES = ("confirmatory", "bifactor", "exploratory")


@dataclass(frozen=True, eq=False)
class MultidimensionalItems:
    """n items over m factors, at most K categories.

    Attributes
    ----------
    models : ndarray of str, shape (n,)
    slopes : ndarray of shape (n, m)
    intercepts : ndarray of shape (n, K - 1), NaN beyond an item's last intercept
    c, u : ndarray of shape (n,), lower and upper asymptotes (0 and 1 but for 3pl/4pl)
    factors : tuple of str, length m
    ids : tuple of str, length n
    standards : tuple of (str or None), length n: each item's ``standard`` key
    """

    models: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray
    c: np.ndarray
    u: np.ndarray
    factors: tuple
    ids: tuple = ()
    standards: tuple = ()

    @property
    def n_items(self):
        """n, the number of items."""
        return len(self.models)

    @property
    def n_factors(self):
        """m, the number of factors."""
        return len(self.factors)

    @functools.cached_property
    def n_categories(self):
        """Categories per item (intercepts + 1), shape (n,)."""
        return np.count_nonzero(np.isfinite(self.intercepts), axis=1) + 1

    @property
    def max_categories(self):
        """K: the intercepts' columns are trimmed to the widest item's."""
        return self.intercepts.shape[1] + 1

    @classmethod
    def from_entries(cls, items, dimensions):
        """Items of a bank document (its ``items`` list and ``dimensions`` object)."""
        factors = _factor_names(dimensions)
        parsed = [_parse_item(entry, position, len(factors))
                  for position, entry in enumerate(items)]
        if not parsed:
            raise ValueError("a multidimensional bank needs at least one item")
        ids = tuple(p["id"] for p in parsed)
        if len(set(ids)) != len(ids):
            raise ValueError("item ids must be unique")
        width = max(len(p["d"]) for p in parsed)
        intercepts = np.full((len(parsed), width), np.nan)
        for row, p in enumerate(parsed):
            intercepts[row, : len(p["d"])] = p["d"]
        return cls(np.array([p["model"] for p in parsed]),
                   np.array([p["a"] for p in parsed], dtype=float), intercepts,
                   np.array([p["c"] for p in parsed]), np.array([p["u"] for p in parsed]),
                   factors, ids, tuple(p["standard"] for p in parsed))

    def to_entries(self):
        """The items as bank entries (FORMAT: ``a`` a list, ``d`` a number or a list)."""
        entries = []
        for j in range(self.n_items):
            entry = {"id": self.ids[j] if self.ids else f"item{j + 1}"}
            if self.standards and self.standards[j] is not None:
                entry["standard"] = self.standards[j]
            model = str(self.models[j])
            d = self.intercepts[j][~np.isnan(self.intercepts[j])].tolist()
            entry.update(model=model, a=self.slopes[j].tolist(),
                         d=d[0] if _FAMILIES[model] == "dichotomous" else d)
            if self.c[j] != 0:
                entry["c"] = float(self.c[j])
            if self.u[j] != 1:
                entry["u"] = float(self.u[j])
            entries.append(entry)
        return entries

    def subset(self, index):
        """The items at positions `index` (ints, in that order) or of a bool mask (n,)."""
        positions = np.arange(self.n_items)[index]
        width = max(int(self.n_categories[positions].max(initial=2)) - 1, 1)

        def picked(labels):
            return tuple(labels[p] for p in positions) if labels else ()

        return MultidimensionalItems(self.models[positions], self.slopes[positions],
                                     self.intercepts[positions, :width], self.c[positions],
                                     self.u[positions], self.factors, picked(self.ids),
                                     picked(self.standards))

    @functools.cached_property
    def _groups(self):
        """Per family: the item positions and what its kernel needs."""
        families = np.array([_FAMILIES[m] for m in self.models])
        groups = {}
        for family in ("dichotomous", "graded", "partial_credit"):
            index = np.flatnonzero(families == family)
            if index.size:
                groups[family] = _prepare(family, index, self)
        return groups


def _prepare(family, index, items):
    d = items.intercepts[index]
    n_steps = np.sum(~np.isnan(d), axis=1)
    width = int(n_steps.max())
    d = d[:, :width]
    valid = np.arange(width + 1)[None, :] <= n_steps[:, None]          # (n_g, width + 1)
    group = {"index": index, "valid": valid}
    if family == "dichotomous":
        c, u = items.c[index], items.u[index]
        group["d"] = d[:, 0]
        if np.all(c == 0) and np.all(u == 1):
            group["asymptotes"] = None
        else:
            with np.errstate(divide="ignore"):
                group["asymptotes"] = kernel.Asymptotes(np.log(c), np.log1p(-u), np.log(u - c))
            group["c"], group["u"] = c, u
    elif family == "graded":
        group["d"] = np.where(np.isnan(d), -np.inf, d)                     # (n_g, width)
        gaps = np.nan_to_num(-np.diff(d, axis=1), nan=np.inf)              # d_k - d_{k+1}
        log_gap, _ = kernel.graded_gaps(gaps)
        log_gap[~valid] = -np.inf
        group["log_gap"] = log_gap
    else:
        constants = np.concatenate([np.zeros((index.size, 1)), d], axis=1)
        group["constants"] = np.where(valid, constants, -np.inf)           # (n_g, width + 1)
    return group


def _family_terms(family, group, t, derivatives):
    """log P_k and, with `derivatives`, d/dt and d^2/dt^2 of it: each (q, n_g, K_g)."""
    valid = group["valid"]
    if family == "dichotomous":
        terms = kernel.dichotomous(t + group["d"], group["asymptotes"])
        log_p = np.stack([terms.log_p0, terms.log_p1], axis=-1)
        if not derivatives:
            return log_p, None, None
        d0, d1, dd0, dd1 = kernel.dichotomous_derivatives(terms, second=True)
        return log_p, np.stack([d0, d1], axis=-1), np.stack([dd0, dd1], axis=-1)
    if family == "graded":
        terms = kernel.graded(t[..., None] + group["d"], group["log_gap"])
        if not derivatives:
            return terms.log_p, None, None
        first, second, _, _ = kernel.graded_derivatives(terms, second=True)
        return terms.log_p, np.where(valid, first, 0.0), np.where(valid, second, 0.0)
    k = np.arange(valid.shape[1])
    terms = kernel.partial_credit(k * t[..., None] + group["constants"], derivatives=derivatives)
    if not derivatives:
        return terms.log_p, None, None
    return (terms.log_p, np.where(valid, k - terms.mean, 0.0),
            np.where(valid, -terms.variance, 0.0))


def predictor_terms(theta, items, derivatives=True):
    """log P_k at theta and its first two derivatives in each item's predictor.

    Parameters
    ----------
    theta : ndarray of shape (q, m)

    Returns
    -------
    log_p, g1, g2 : ndarray of shape (q, n, K)
        -inf, 0, 0 beyond an item's categories; g1, g2 None without `derivatives`.
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    t = theta @ items.slopes.T                                          # (q, n)
    shape = (theta.shape[0], items.n_items, items.max_categories)
    log_p = np.full(shape, -np.inf)
    g1 = np.zeros(shape) if derivatives else None
    g2 = np.zeros(shape) if derivatives else None
    with np.errstate(under="ignore"):
        for family, group in items._groups.items():
            index = group["index"]
            terms = _family_terms(family, group, t[:, index], derivatives)
            width = terms[0].shape[-1]
            log_p[:, index, :width] = terms[0]
            if derivatives:
                g1[:, index, :width] = terms[1]
                g2[:, index, :width] = terms[2]
    return log_p, g1, g2


def log_probability(theta, items):
    """log P(X = k | theta): shape (q, n, K) for theta (q, m)."""
    return predictor_terms(theta, items, derivatives=False)[0]


def predictor_information(theta, items):
    """Fisher information of each item in its predictor, i_j(a_j . theta): shape (q, n).

    Dichotomous items take `kernel.dichotomous_information` (no difference of
    probabilities near 1 formed), polytomous ones ``sum_k P_k (d log P_k / dt)^2``.
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    t = theta @ items.slopes.T                                          # (q, n)
    out = np.empty_like(t)
    with np.errstate(under="ignore"):
        for family, group in items._groups.items():
            index = group["index"]
            if family == "dichotomous":
                z = t[:, index] + group["d"]
                out[:, index] = kernel.dichotomous_information(z, group.get("c"), group.get("u"))
            else:
                log_p, g1, _ = _family_terms(family, group, t[:, index], True)
                out[:, index] = np.sum(np.exp(log_p) * g1**2, axis=-1)
    return out


def information(theta, items):
    """Item Fisher information matrices a_j a_j^T i_j: shape (q, n, m, m) for theta (q, m)."""
    scalar = predictor_information(theta, items)
    outer = items.slopes[:, :, None] * items.slopes[:, None, :]        # (n, m, m)
    return scalar[:, :, None, None] * outer


# --- the bank document -------------------------------------------------------------

def _factor_names(dimensions):
    if not isinstance(dimensions, dict):
        raise ValueError("'dimensions' must be an object")
    factors = dimensions.get("factors")
    if (not isinstance(factors, list) or not factors
            or not all(isinstance(f, str) and f for f in factors)):
        raise ValueError("'dimensions.factors' must be a non-empty list of factor names")
    if len(set(factors)) != len(factors):
        raise ValueError("'dimensions.factors' names must be unique")
    structure = dimensions.get("structure", "confirmatory")
    if structure not in STRUCTURES:
        raise ValueError(f"'dimensions.structure' must be one of {', '.join(STRUCTURES)}")
    return tuple(factors)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_item(entry, position, n_factors):
    if not isinstance(entry, dict):
        raise ValueError(f"item {position + 1}: must be an object")
    name = entry.get("id")
    if not isinstance(name, str) or not name:
        raise ValueError(f"item {position + 1}: 'id' must be a non-empty string")

    def fail(message):
        raise ValueError(f"item {name!r}: {message}")

    model = entry.get("model")
    if model not in MULTIDIMENSIONAL_MODELS:
        fail(f"'model' must be one of {', '.join(MULTIDIMENSIONAL_MODELS)} (got {model!r})")
    a = entry.get("a")
    if not isinstance(a, list) or len(a) != n_factors or not all(_number(v) for v in a):
        fail(f"'a' must be a list of {n_factors} finite slopes, one per factor")
    if not any(a):
        fail("'a' has no non-zero slope")
    d = entry.get("d")
    if _FAMILIES[model] == "dichotomous":
        if not _number(d):
            fail("'d' must be a finite number for a dichotomous item")
        d = [d]
    elif not isinstance(d, list) or not d or not all(_number(v) for v in d):
        fail(f"'d' must be a non-empty list of finite intercepts for a {model} item")
    if model == "grm" and np.any(np.diff(d) >= 0):
        fail("a grm item's intercepts 'd' must decrease")
    c, u = entry.get("c", 0.0), entry.get("u", 1.0)
    if not (_number(c) and _number(u)):
        fail("'c' and 'u' must be finite numbers")
    if c != 0 and model not in ("3pl", "4pl"):
        fail(f"'c' is a 3pl/4pl parameter, not one of a {model} item")
    if u != 1 and model != "4pl":
        fail(f"'u' is a 4pl parameter, not one of a {model} item")
    if not 0 <= c < u <= 1:
        fail("asymptotes must satisfy 0 <= c < u <= 1")
    standard = entry.get("standard")
    if standard is not None and not isinstance(standard, str):
        fail("'standard' must be a string")
    return {"id": name, "model": model, "a": a, "d": d, "c": float(c), "u": float(u),
            "standard": standard}


def latent_population(dimensions):
    """The population's mean (m,) and correlation (m, m) from `dimensions` (FORMAT:
    ``mean`` default 0, ``correlation`` default identity), checked symmetric, unit
    diagonal and positive definite."""
    m = len(_factor_names(dimensions))
    mean = np.asarray(dimensions.get("mean", [0.0] * m), dtype=float)
    correlation = np.asarray(dimensions.get("correlation", np.eye(m)), dtype=float)
    if mean.shape != (m,) or not np.all(np.isfinite(mean)):
        raise ValueError(f"'dimensions.mean' must be {m} finite numbers")
    if correlation.shape != (m, m) or not np.all(np.isfinite(correlation)):
        raise ValueError(f"'dimensions.correlation' must be a finite {m}x{m} matrix")
    if not np.allclose(correlation, correlation.T) or not np.allclose(np.diag(correlation), 1.0):
        raise ValueError("'dimensions.correlation' must be symmetric with a unit diagonal")
    if np.linalg.eigvalsh(correlation).min() <= 0:
        raise ValueError("'dimensions.correlation' must be positive definite")
    return mean, correlation
