"""The bank of a multidimensional test: its standards' pinned multidimensional bank
versions as one `engine.multidimensional.MultidimensionalItems`, with the test's
`McatDesign` and the engine's `McatTables`, built once per worker.

A credential over standards whose published versions are multidimensional on the same
factors (the same ``dimensions``: factors, population mean and correlation) is one
multidimensional test; each of its standards is a factor. Only operational items are
in the bank, and of them only those in the test's pool (`test_banks.pool_of`: practice
items): a multidimensional test delivers no pretest item and never a retired one.
A mix of unidimensional and multidimensional versions, versions on different
dimensions, or a standard that is not one of the factors is a DataFormatError (422).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irtcat.engine.mcat import McatTables
from irtcat.engine.multidimensional import MultidimensionalItems, latent_population
from irtcat.itembank.errors import DataFormatError

from .mcat_config import mcat_design_from_config

ENGINE_KEYS = ("id", "standard", "model", "a", "d", "c", "u")   # what the engine reads


@dataclass(frozen=True, eq=False)
class McatTestBank:
    """What sessions of one multidimensional test under pinned versions need.

    `items`: per position ``{"id", "standard", "model", "status", "version_id"}`` (the
    positions of `tables.items`); `factors`: the factor names (standards) in slope order;
    `max_items`, `min_items`: the design's.
    """

    __test__ = False

    design: object                 # engine.mcat.McatDesign
    tables: McatTables
    items: tuple
    position: dict
    factors: tuple
    max_items: int
    min_items: int

    theta_bands = ()                # a multidimensional test counts exposure in no θ band

    @property
    def exposure_target(self):
        """The exposure rate aimed at (live item eligibility's target, or None)."""
        return self.design.exposure_target

    @property
    def excluded(self):
        """(n,) bool: no item of the bank is excluded (they are left out when built)."""
        return np.zeros(len(self.items), dtype=bool)

    def categories(self, position):
        """The number of response categories of the item at `position`."""
        return int(self.tables.items.n_categories[position])


def multidimensional_versions(loaded):
    """Whether the loaded versions (`DeliveryBank`s) are multidimensional: True when all
    are, False when none is; DataFormatError for a mix."""
    kinds = {bank.dimensions is not None for bank in loaded}
    if len(kinds) > 1:
        raise DataFormatError("a test's standards must be all unidimensional or all "
                              "multidimensional on the same factors")
    return kinds == {True}


def build_mcat_bank(loaded, standards, config, versions, pool_mask=None):
    """The `McatTestBank` of `standards` from their loaded versions (`DeliveryBank`s, in
    the order of `standards`), `versions` ({code: version id}) and the CAT `config`.

    `pool_mask(items) -> (n,) bool`: which of the item dicts the test may select (None:
    all). DataFormatError for versions or a configuration that do not fit together."""
    dimensions = loaded[0].dimensions
    for code, bank in zip(standards, loaded, strict=True):
        if bank.dimensions != dimensions:
            raise DataFormatError(f"standard {code!r}: its bank version is on other "
                                  "dimensions than the test's other standards")
    factors = tuple(dimensions["factors"])
    outside = [code for code in standards if code not in factors]
    if outside:
        raise DataFormatError(f"standard {outside[0]!r} is not one of the bank's factors "
                              f"({', '.join(factors)})")
    items, entries = [], []
    for code, bank in zip(standards, loaded, strict=True):
        for item, entry in zip(bank.bank.items, bank.entries, strict=True):
            items.append({**item, "version_id": versions[code]})
            entries.append({name: entry[name] for name in ENGINE_KEYS if name in entry})
    keep = np.array([item["status"] == "operational" for item in items], dtype=bool)
    if pool_mask is not None:
        keep &= pool_mask(items)
    if not keep.any():
        raise DataFormatError("the test has no item it may select")
    items = [item for item, kept in zip(items, keep, strict=True) if kept]
    try:
        engine_items = MultidimensionalItems.from_entries(
            [entry for entry, kept in zip(entries, keep, strict=True) if kept], dimensions)
        mean, correlation = latent_population(dimensions)
    except ValueError as error:
        raise DataFormatError(str(error)) from None
    design = mcat_design_from_config(config, engine_items)
    try:
        tables = McatTables(engine_items, mean, correlation, design)
    except ValueError as error:
        raise DataFormatError(f"the CAT configuration: {error}") from None
    return McatTestBank(design, tables, tuple(items),
                        {item["id"]: i for i, item in enumerate(items)}, factors,
                        design.max_items, design.min_items)


__all__ = ["McatTestBank", "build_mcat_bank", "multidimensional_versions"]
