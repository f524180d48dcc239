"""Reliability of a bank's theta scale: empirical (from scores) and marginal (from the bank).

Both are mirt's definitions (mirt 1.45.1, `empirical_rxx` and `marginal_rxx`):

- empirical: var(EAP) / (var(EAP) + mean(SE^2)) over the persons scored, var
  with n - 1, persons with a non-finite estimate left out;
- marginal: the integral over the real line of
  s^2 I(theta) / (s^2 I(theta) + 1) phi(theta; m, s), with I the test
  information and N(m, s^2) the population: the reliability
  s^2 / (s^2 + SE(theta)^2) at each theta, averaged over the population.

mirt integrates I / (I + s^2) against the N(0, 1) density; for the N(0, 1)
population of a calibration (every mirt reference) the two are the same
number. For another population irtcat's is the reliability as defined above.

The integral is taken by the trapezoid rule on a grid of step 0.002 over
[-12, 12] standard deviations of the population (the normal density is below
1e-31 beyond): for a smooth integrand that decays as fast as this one the rule
converges geometrically, and its value agrees with adaptive Gauss-Kronrod
quadrature on the infinite range (QUADPACK's qagi, which R's integrate() calls)
to better than 1e-9 on every reference bank (tests/calibration/test_reliability.py).
A fixed grid evaluates the test information in a few vectorised calls, and
spares `irtcat calibrate` the import of scipy.integrate (0.1 s).
"""

from __future__ import annotations

import numpy as np

from irtcat.engine import estimate_eap, test_information

GRID_STEP = 0.002
GRID_HALF_WIDTH = 12.0
GRID_CHUNK = 2000                      # thetas per call: bounds memory for large banks


def empirical_reliability(theta, se):
    """var(theta) / (var(theta) + mean(se^2)), var with n - 1.

    theta, se : array_like of shape (n_persons,); rows with a non-finite theta
    or se are left out. NaN with fewer than two persons left.
    """
    theta, se = np.asarray(theta, dtype=float), np.asarray(se, dtype=float)
    keep = np.isfinite(theta) & np.isfinite(se)
    if keep.sum() < 2:
        return float("nan")
    variance = np.var(theta[keep], ddof=1)
    return float(variance / (variance + np.mean(se[keep] ** 2)))


def marginal_reliability(params, mean=0.0, sd=1.0):
    """Expected reliability s^2 I / (s^2 I + 1) over the population N(mean, sd^2).

    params : ItemParameters; mean, sd : the population (a bank's "population").
    """
    standard = np.arange(-GRID_HALF_WIDTH, GRID_HALF_WIDTH + GRID_STEP / 2, GRID_STEP)
    information = np.concatenate([
        test_information(mean + sd * standard[start:start + GRID_CHUNK], params)
        for start in range(0, standard.size, GRID_CHUNK)])
    scaled = sd**2 * information
    density = np.exp(-0.5 * standard**2) / np.sqrt(2 * np.pi)
    values = scaled / (scaled + 1.0) * density
    return float(GRID_STEP * (values.sum() - 0.5 * (values[0] + values[-1])))


def eap_reliability(responses, params, mean=0.0, sd=1.0, n_nodes=121):
    """Empirical reliability of the persons' EAP scores with the population N(mean, sd^2)
    as prior, on `n_nodes` nodes on [-6, 6]: mirt's
    ``empirical_rxx(fscores(mod, full.scores.SE = TRUE))`` with fscores' 121 nodes.

    The calibration record scores on the EM's own grid (61 nodes) at half the cost: on
    LSAT7, LSAT6 and deAyala the two differ by less than 1e-8.

    responses : ndarray of shape (n_persons, n_items), NaN where missing
    """
    scores = estimate_eap(responses, params, prior_mean=mean, prior_sd=sd, n_nodes=n_nodes)
    return empirical_reliability(scores.theta, scores.se)
