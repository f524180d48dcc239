"""The variable-metric minimiser behind mirt's M-step (calibration.bfgs).

Its faithfulness to R's optim is tested where it matters, on mirt's own EM
paths (test_mml_em.py::test_mirt_m_step_takes_mirts_path: the same cycles and
the same estimates to 1e-5); here, R's documented Rosenbrock run and problems
with closed forms.
"""

import numpy as np
import pytest

from irtcat.calibration.bfgs import minimize


def test_a_convex_quadratic_reaches_its_closed_form_minimum():
    # f(x) = x'Ax/2 - b'x has its minimum at A^-1 b.
    rng = np.random.default_rng(3)
    m = rng.normal(size=(6, 6))
    a = m @ m.T + 6 * np.eye(6)
    b = rng.normal(size=6)
    x = minimize(lambda x: 0.5 * x @ a @ x - b @ x, lambda x: a @ x - b, np.zeros(6), 200,
                 rel_tol=1e-15)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), atol=1e-6)


def test_rosenbrock_takes_rs_documented_path():
    # R's ?optim example, optim(c(-1.2, 1), fr, grr, method = "BFGS"), prints
    # $value 9.594956e-18 and $counts 110 function and 43 gradient evaluations.
    counts = {"value": 0, "gradient": 0}

    def value(x):
        counts["value"] += 1
        return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2

    def gradient(x):
        counts["gradient"] += 1
        return np.array([-400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]),
                         200 * (x[1] - x[0] ** 2)])

    x = minimize(value, gradient, np.array([-1.2, 1.0]), 100)
    assert (counts["value"], counts["gradient"]) == (110, 43)
    assert value(x) == pytest.approx(9.594956e-18, rel=1e-6)


def test_the_iteration_budget_counts_gradient_evaluations():
    # With a budget of 2 the search takes exactly one accepted step: on f = |x|^2 / 2
    # the first step, along -x with unit length, lands on the minimum at once.
    calls = []

    def gradient(x):
        calls.append(x.copy())
        return x

    x = minimize(lambda x: 0.5 * x @ x, gradient, np.array([3.0, -4.0]), 2)
    assert len(calls) == 2
    np.testing.assert_array_equal(x, [0.0, 0.0])


def test_an_invalid_starting_point_is_refused():
    with pytest.raises(ValueError, match="not finite"):
        minimize(lambda x: np.nan, lambda x: x, np.zeros(2), 10)
