"""The variable-metric minimiser behind mirt's M-step (calibration.bfgs).

Its faithfulness to R's optim is tested where it matters, on mirt's own EM
paths (test_mml_em.py::test_mirt_m_step_takes_mirts_path: the same cycles and
the same estimates to 1e-5); here, its answers on problems with closed forms.
"""

import numpy as np
import pytest

from calibration.bfgs import minimize


def test_a_convex_quadratic_reaches_its_closed_form_minimum():
    # f(x) = x'Ax/2 - b'x has its minimum at A^-1 b.
    rng = np.random.default_rng(3)
    m = rng.normal(size=(6, 6))
    a = m @ m.T + 6 * np.eye(6)
    b = rng.normal(size=6)
    x = minimize(lambda x: 0.5 * x @ a @ x - b @ x, lambda x: a @ x - b, np.zeros(6), 200,
                 rel_tol=1e-15)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), atol=1e-6)


def test_rosenbrock_reaches_its_minimum_at_one_one():
    def value(x):
        return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2

    def gradient(x):
        return np.array([-400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]),
                         200 * (x[1] - x[0] ** 2)])

    x = minimize(value, gradient, np.array([-1.2, 1.0]), 100)
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-3)


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
