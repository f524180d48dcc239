"""Empirical and marginal reliability (calibration/reliability.py) against R mirt 1.45.1.

References: tests/data/refs2/{LSAT7,LSAT6,deAyala}__modelfit.json, keys
models.<2pl|1pl>.empirical_rxx (`empirical_rxx(fscores(mod, full.scores.SE = TRUE))`)
and models.<2pl|1pl>.marginal_rxx (`marginal_rxx(mod)`). The models are fitted
here by irtcat (`calibrate_document`, what `irtcat calibrate` runs): `2pl`, and
`1pl` = one common slope with theta ~ N(0, 1), as the files' calls. Tolerance
0.005 (the acceptance criterion).
"""

import json
import pathlib

import numpy as np
import pytest

from irtcat.calibration.reliability import (
    eap_reliability,
    empirical_reliability,
    marginal_reliability,
)
from irtcat.calibration.workflow import calibrate_document
from irtcat.engine import ItemParameters
from irtcat.engine.models import parameters_from_entries
from irtcat.itembank import read_responses

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
TOLERANCE = 0.005
CASES = [(name, model) for name in ("LSAT7", "LSAT6", "deAyala") for model in ("2pl", "1pl")]
FITS = {}


def fitted(name, model):
    """(document, data, mirt's model entry) of `name` fitted with `model`."""
    if (name, model) not in FITS:
        reference = json.loads((DATA / "refs2" / f"{name}__modelfit.json").read_text())
        data = read_responses(DATA / f"{name}.csv")
        document, _ = calibrate_document(data, model, fit=False)
        FITS[name, model] = document, data, reference["models"][model]
    return FITS[name, model]


@pytest.mark.parametrize(("name", "model"), CASES)
def test_reliability_like_mirt(name, model):
    document, data, mirt = fitted(name, model)
    # refs2/<name>__modelfit.json: models.<model>.empirical_rxx and .marginal_rxx
    params = parameters_from_entries(document["items"])
    population = document["population"]
    mean, sd = population["mean"], population["sd"]
    assert eap_reliability(data.responses, params, mean, sd) == \
        pytest.approx(mirt["empirical_rxx"], abs=TOLERANCE)
    assert marginal_reliability(params, mean, sd) == \
        pytest.approx(mirt["marginal_rxx"], abs=TOLERANCE)
    # The calibration record carries the same numbers (rounded to 4 decimals).
    record = document["calibration"]["reliability"]
    assert record["empirical"] == pytest.approx(mirt["empirical_rxx"], abs=TOLERANCE)
    assert record["marginal"] == pytest.approx(mirt["marginal_rxx"], abs=TOLERANCE)


def test_empirical_reliability_closed_form():
    # var(1, 2, 3, 4) = 5/3 with n - 1; mean(se^2) = 1: (5/3) / (5/3 + 1) = 5/8.
    assert empirical_reliability([1, 2, 3, 4], [1, 1, 1, 1]) == pytest.approx(0.625, abs=1e-15)
    # A non-finite estimate is left out, as mirt's empirical_rxx does.
    assert empirical_reliability([1, 2, 3, 4, np.inf], [1, 1, 1, 1, 1]) == \
        pytest.approx(0.625, abs=1e-15)
    assert np.isnan(empirical_reliability([1.0], [1.0]))


def test_marginal_reliability_does_not_depend_on_the_scale():
    """Reliability is a ratio of variances: putting theta on the scale m + s theta
    (slopes a / s, difficulties m + s b) with the population N(m, s^2) leaves it as
    it was on N(0, 1). mirt's formula, I / (I + s^2) against N(0, 1), would not."""
    params = ItemParameters.create(["2pl", "3pl", "grm"], [1.2, 0.8, 1.5],
                                   [0.3, -0.5, [-1.0, 0.2, 1.1]], c=[0, 0.2, 0])
    mean, sd = 0.7, 1.6
    moved = ItemParameters.create(list(params.model), params.a / sd, mean + sd * params.b,
                                  c=params.c)
    standard = marginal_reliability(params)
    assert 0.2 < standard < 0.9
    assert marginal_reliability(moved, mean, sd) == pytest.approx(standard, abs=1e-8)



def _adaptive_quadrature(params, mean, sd):
    """The same integral by QUADPACK's qagi on the infinite range (R's integrate())."""
    from scipy import integrate

    from irtcat.engine import test_information

    def integrand(z):
        scaled = sd**2 * float(test_information(np.array([mean + sd * z]), params)[0])
        return scaled / (scaled + 1.0) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)

    return integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-11, epsrel=1e-11,
                          limit=400)[0]


@pytest.mark.parametrize(("name", "model"), CASES)
def test_the_grid_integral_equals_adaptive_quadrature(name, model):
    # The trapezoid grid of marginal_reliability against qagi, on the fitted banks.
    document, _, _ = fitted(name, model)
    params = parameters_from_entries(document["items"])
    mean, sd = document["population"]["mean"], document["population"]["sd"]
    assert marginal_reliability(params, mean, sd) == pytest.approx(
        _adaptive_quadrature(params, mean, sd), abs=1e-9)


def test_the_grid_integral_resolves_a_sharp_item():
    # A slope of 8 (calibration's STEEP_SLOPE) off the centre, in another population:
    # the information peaks over about 0.2 on the theta scale.
    params = ItemParameters.create("2pl", np.array([8.0, 0.7, 1.5]), np.array([1.3, -0.4, 0.2]))
    assert marginal_reliability(params, 0.3, 0.8) == pytest.approx(
        _adaptive_quadrature(params, 0.3, 0.8), abs=1e-9)
