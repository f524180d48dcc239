"""calibration.workflow's per-item category check: the categories each item was answered in.

The definition asserted: for every item, the sorted distinct categories of
its responses (``np.unique`` of that item's entries), whichever way they are
found (a count table for the usual small categories, unique pairs when the
table would outgrow the data).
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from irtcat.calibration.coordinates import categories_seen


@pytest.mark.parametrize("largest", [4, 200_000])      # a count table, then unique pairs
def test_categories_seen_are_each_items_distinct_responses(largest):
    rng = np.random.default_rng(11)
    n_items = 8
    item = rng.integers(0, n_items - 1, 600)           # the last item is never answered
    category = rng.integers(0, 5, 600)
    category[0] = largest
    seen = categories_seen(item, category, n_items, int(category.max()) + 1)
    assert len(seen) == n_items
    for j in range(n_items):
        assert_array_equal(seen[j], np.unique(category[item == j]))
    assert seen[-1].size == 0
