"""The one converter between item parameters and their stored columns or documents, and
the one category-count rule (engine.models). Expected values follow
shared/spec/FORMATS.md: a dichotomous item has categories 0 and 1; a polytomous item one
more than its thresholds (or steps); a scored key's categories are 0 .. its highest score."""

import numpy as np
from numpy.testing import assert_array_equal

from irtcat.engine.models import (
    category_count,
    parameter_columns,
    parameter_fields,
    parameters_from_columns,
    parameters_from_entries,
)

ENTRIES = [{"model": "2pl", "a": 1.2, "b": 0.3},
           {"model": "grm", "a": 0.8, "b": [-1.0, 0.0, 1.5]},
           {"model": "pcm", "b": [0.5]},
           {"model": "4pl", "a": 1.5, "b": -0.2, "c": 0.2, "u": 0.95}]


def test_columns_pad_b_with_none_and_default_the_fixed_parameters():
    columns = parameter_columns(ENTRIES)
    assert columns == {"model": ["2pl", "grm", "pcm", "4pl"], "a": [1.2, 0.8, 1.0, 1.5],
                       "b": [[0.3, None, None], [-1.0, 0.0, 1.5], [0.5, None, None],
                             [-0.2, None, None]],
                       "c": [0.0, 0.0, 0.0, 0.2], "u": [1.0, 1.0, 1.0, 0.95]}


def test_parameters_from_columns_and_from_entries_are_the_same_items():
    for params in (parameters_from_columns(parameter_columns(ENTRIES)),
                   parameters_from_entries(ENTRIES)):
        assert params.model == ("2pl", "grm", "pcm", "4pl")
        assert_array_equal(params.a, [1.2, 0.8, 1.0, 1.5])
        assert_array_equal(params.b, [[0.3, np.nan, np.nan], [-1.0, 0.0, 1.5],
                                      [0.5, np.nan, np.nan], [-0.2, np.nan, np.nan]])
        assert_array_equal(params.c, [0.0, 0.0, 0.0, 0.2])
        assert_array_equal(params.u, [1.0, 1.0, 1.0, 0.95])
        assert_array_equal(params.n_categories, [2, 4, 2, 2])


def test_stored_padding_wider_than_any_item_is_dropped():
    columns = {"model": ["grm"], "a": [1.0], "b": [[-1.0, 1.0, None, None]], "c": [0.0],
               "u": [1.0]}
    assert parameters_from_columns(columns).b.shape == (1, 2)


def test_category_count_from_model_thresholds_or_key():
    assert category_count("3pl") == 2
    assert category_count("rasch", b=0.4) == 2
    assert category_count("gpcm", b=[0.1, 0.2, 0.3]) == 4
    assert category_count("grm", key={"scores": {"A": 0, "B": 2, "C": 1}}) == 3
    assert category_count("grm") is None
    assert category_count("pcm", key={"correct": "A"}) is None


def test_parameter_fields_of_each_model():
    assert [parameter_fields(m) for m in ("rasch", "1pl", "2pl", "3pl", "4pl", "grm", "gpcm",
                                          "pcm")] == [
        ("b",), ("a", "b"), ("a", "b"), ("a", "b", "c"), ("a", "b", "c", "u"), ("a", "b"),
        ("a", "b"), ("b",)]
