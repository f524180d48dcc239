"""mirt.model syntax (calibration.factor_spec): names, positions, ranges, COV terms,
and the errors a mistyped specification gets."""

import numpy as np
import pytest

from irtcat.calibration.factor_spec import parse_factor_spec

ITEMS = [f"i{j:02d}" for j in range(1, 46)]


def test_the_three_factor_pattern_by_name():
    spec = parse_factor_spec("F1 = i01-i15; F2 = i16-i30; F3 = i31-i45; COV = F1*F2*F3", ITEMS)
    assert spec.factors == ["F1", "F2", "F3"]
    assert spec.loadings.sum(axis=0).tolist() == [15, 15, 15]
    assert spec.loadings[14, 0] and spec.loadings[15, 1] and spec.loadings[44, 2]
    assert spec.free_correlation.tolist() == [[False, True, True], [True, False, True],
                                              [True, True, False]]
    assert spec.standards()[0] == "F1" and spec.standards()[44] == "F3"


def test_positions_newlines_comma_lists_and_several_cov_terms():
    spec = parse_factor_spec("F1 = 1,3,5-7\nF2 = 2, 4, 8-45\nF3 = 1-45\nCOV = F1*F2, F2*F3",
                             ITEMS)
    assert np.flatnonzero(spec.loadings[:, 0]).tolist() == [0, 2, 4, 5, 6]
    assert spec.loadings[:, 2].all()
    assert spec.free_correlation[0, 1] and spec.free_correlation[1, 2]
    assert not spec.free_correlation[0, 2]
    assert spec.standards()[0] is None                   # item 1 loads on F1 and F3


def test_no_cov_means_orthogonal_factors():
    spec = parse_factor_spec("A = i01-i20; B = i21-i45", ITEMS)
    assert not spec.free_correlation.any()


@pytest.mark.parametrize("text, message", [
    ("F1 = i01-i15; F2 = i16-x30", "unknown item 'x30'"),
    ("F1 = i01-i45; F2 = ", "factor 'F2' has no items"),
    ("F1 = i01-i44", "item 'i45' is on no factor"),
    ("F1 = 1-46", "outside 1-45"),
    ("F1 = i01-i45; COV = F1*F9", "unknown factor 'F9'"),
    ("F1 i01-i45", "expected NAME = items"),
    ("F1 = i01-i45; F1 = i01", "defined twice"),
    ("F1 = i15-i01", "runs backwards"),
])
def test_bad_specifications_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_factor_spec(text, ITEMS)
