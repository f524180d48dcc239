"""The variable-metric (BFGS) minimiser of R's ``optim(method = "BFGS")``.

R's optim runs Nash's variable-metric method (Compact Numerical Methods,
1990, Algorithm 21), and mirt's EM calls it for every M-step with a small
iteration budget. Reproducing mirt's estimates where its EM stops short of
the maximum (a flat likelihood) means reproducing that optimiser's path, so
this module follows the algorithm as published, step for step:

- the inverse-Hessian approximation starts as the identity and is reset
  after an uphill direction, a failed curvature condition, or every 2n
  gradients;
- the line search backtracks by a factor 0.2 from a unit step until the
  Armijo condition holds with constant 1e-4, and gives up when the step no
  longer changes any coordinate (compared after adding 10);
- the search ends when an accepted step lowers the value by no more than
  ``rel_tol * (|f| + rel_tol)``, or after ``max_iter`` gradient evaluations.
"""

from __future__ import annotations

import numpy as np

REL_TOL = float(np.sqrt(np.finfo(float).eps))   # R's default reltol
_STEP_REDUCTION = 0.2
_ARMIJO = 1e-4
_UNCHANGED_OFFSET = 10.0


def minimize(value, gradient, start, max_iter, rel_tol=REL_TOL):
    """Minimise ``value`` from ``start``; returns the final point, shape (n,).

    value : callable(x) -> float (may return a large number where x is invalid)
    gradient : callable(x) -> ndarray of shape (n,)
    """
    x = np.array(start, dtype=float)
    n = x.size
    if max_iter <= 0 or n == 0:
        return x
    f = value(x)
    if not np.isfinite(f):
        raise ValueError("the M-step objective is not finite at its starting point")
    f_min = f
    g = gradient(x)
    gradients = 1
    iterations = 1
    last_reset = gradients
    inverse = np.eye(n)
    while True:
        if last_reset == gradients:
            inverse = np.eye(n)
        origin, origin_gradient = x.copy(), g.copy()
        direction = -(inverse @ g)
        slope = direction @ g
        if slope < 0:                                   # downhill: line search
            step = 1.0
            while True:
                x = origin + step * direction
                unchanged = int(np.sum(_UNCHANGED_OFFSET + origin == _UNCHANGED_OFFSET + x))
                accepted = False
                if unchanged < n:
                    f = value(x)
                    accepted = bool(np.isfinite(f) and f <= f_min + slope * step * _ARMIJO)
                    if not accepted:
                        step *= _STEP_REDUCTION
                if unchanged == n or accepted:
                    break
            if not abs(f - f_min) > rel_tol * (abs(f_min) + rel_tol):
                unchanged = n                           # too little progress: stop here
                f_min = f
            if unchanged < n:                           # progress: update the metric
                f_min = f
                g = gradient(x)
                gradients += 1
                iterations += 1
                moved = step * direction
                change = g - origin_gradient
                curvature = moved @ change
                if curvature > 0:
                    image = inverse @ change
                    scale = 1.0 + (image @ change) / curvature
                    inverse = inverse + (scale * np.outer(moved, moved) - np.outer(image, moved)
                                         - np.outer(moved, image)) / curvature
                else:
                    last_reset = gradients
            elif last_reset < gradients:                # no progress: retry from the identity
                unchanged = 0
                last_reset = gradients
        else:                                           # uphill: reset unless just reset
            unchanged = 0
            if last_reset == gradients:
                unchanged = n
            else:
                last_reset = gradients
        if iterations >= max_iter:
            break
        if gradients - last_reset > 2 * n:
            last_reset = gradients
        if unchanged == n and last_reset == gradients:
            break
    return x
