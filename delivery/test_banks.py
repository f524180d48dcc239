"""The bank of a test: its standards' pinned bank versions in the engine's arrays.

A `TestBank` is what every session of one test under pinned versions needs (the
items, the CAT design, the engine's tables), built once per worker. Items without
published parameters (pretest items awaiting calibration, or items retired since)
are delivered under a placeholder (`placeholder`) that never enters a θ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from irtcat.engine import DICHOTOMOUS_MODELS
from irtcat.engine.models import category_count, parameters_from_entries
from irtcat.engine.session import BankTables
from irtcat.itembank.bank import ItemBank
from irtcat.itembank.errors import DataFormatError

from .cat_config import design_from_config
from .mcat_banks import build_mcat_bank, multidimensional_versions

PRACTICE_TAG = "practice"       # items a public test may show to anyone


@dataclass(frozen=True, eq=False)
class TestBank:
    """What sessions of one test under pinned versions need, built once per worker.

    `items`: per position ``{"id", "standard", "model", "status", "version_id"}``;
    `excluded`: retired items, never selected.
    """

    __test__ = False

    bank: ItemBank
    design: object
    tables: BankTables
    items: tuple
    position: dict
    excluded: np.ndarray

    @property
    def max_items(self):
        return self.design.stopping.max_items

    @property
    def min_items(self):
        return self.design.stopping.min_items

    @property
    def exposure_target(self):
        """The exposure rate aimed at (live item eligibility's target)."""
        return self.design.exposure.target

    @property
    def theta_bands(self):
        """The θ edges live exposure is counted per band of (() none)."""
        return self.design.exposure.theta_bands

    def categories(self, position):
        """The number of response categories of the item at `position`."""
        return int(self.bank.params.n_categories[position])


def placeholder(model, key):
    """Parameters for an item without published ones (pretest, or retired since): what a
    session delivers it under and `score` scores it with; never in a session's θ."""
    if model in DICHOTOMOUS_MODELS:
        return {"model": "2pl", "a": 1.0, "b": 0.0}
    steps = (category_count(model, key=key) or 2) - 1
    return {"model": "grm", "a": 1.0, "b": list(np.linspace(-1.0, 1.0, steps))}


def pool_of(public, public_pool):
    """Which items a test selects: ``"credential"`` (all but practice items) for a test
    that is not public, ``"practice"`` (practice items only) or ``"all"`` for one that is."""
    return ("all" if public_pool == "all" else "practice") if public else "credential"


def build_test_bank(store, standards, config, versions, given=(), pool="credential"):
    """The `TestBank` of `standards` under `versions` ({code: version id}) and the CAT
    `config`; `given`: ids of items a session was given that the versions no longer
    hold (kept as pretest items); `pool` (`pool_of`) says which items may be selected.
    DataFormatError for a configuration the bank cannot serve.

    Over multidimensional versions the test is multidimensional: an
    `mcat_banks.McatTestBank` (`mcat_banks.build_mcat_bank`)."""
    entries, items = [], []
    records = store.item_records_of(standards)
    loaded_versions = [store.delivery_bank(version_id=versions[code], multidimensional=True)
                       for code in standards]
    if multidimensional_versions(loaded_versions):
        def selectable(items):
            practice = np.array([PRACTICE_TAG in (records[item["id"]].tags
                                                  if item["id"] in records else ())
                                 for item in items], dtype=bool)
            return {"credential": ~practice, "practice": practice}.get(
                pool, np.ones_like(practice))
        return build_mcat_bank(loaded_versions, standards, config, versions, selectable)
    for code in standards:
        loaded = store.delivery_bank(version_id=versions[code])
        columns = store.version_columns(versions[code])
        for position, item in enumerate(loaded.bank.items):
            entries.append({name: columns[name][position]
                            for name in ("model", "a", "ak", "b", "c", "u") if name in columns})
            items.append({**item, "version_id": versions[code]})
        in_version = {item["id"] for item in loaded.bank.items}
        for record in records.values():                  # pretest items awaiting calibration
            if record.standard == code and record.id not in in_version \
                    and (record.status == "pretest" or record.id in given):
                entries.append(placeholder(record.model, record.key))
                items.append({"id": record.id, "standard": code, "model": record.model,
                              "status": "pretest", "version_id": versions[code]})
    for item in items:
        record = records.get(item["id"])
        item["tags"] = list(record.tags) if record is not None else []
        item["enemies"] = list(record.enemies) if record is not None else []
    position = {item["id"]: i for i, item in enumerate(items)}
    enemy_sets = [[item["id"], *[e for e in item["enemies"] if e in position]]
                  for item in items if any(e in position for e in item["enemies"])]
    config = {**config, "enemies": list(config.get("enemies", [])) + enemy_sets}
    bank = ItemBank(tuple(items), parameters_from_entries(entries))
    design = design_from_config(config, bank)
    groups = dict(design.content.groups)
    for code in standards:
        groups.setdefault(("standard", code),
                          np.array([item["standard"] == code for item in items]))
    lower, upper = (float(v) for v in design.scoring.theta_range)
    if not np.isfinite(upper - lower):
        raise DataFormatError("scoring.quadrature.range is too wide")
    practice = np.array([PRACTICE_TAG in item["tags"] for item in items], dtype=bool)
    excluded = np.array([item["status"] == "retired" for item in items], dtype=bool)
    excluded |= {"credential": practice, "practice": ~practice}.get(
        pool, np.zeros_like(practice))
    # A test never gives more items than it may select (which bounds the session's
    # arrays), nor plans pretest slots its pool cannot fill.
    selectable = int((~excluded).sum())
    open_pretest = int((~excluded[design.pretest.items]).sum())
    design = replace(design, content=replace(design.content, groups=groups),
                     stopping=replace(design.stopping,
                                      max_items=max(1, min(design.stopping.max_items,
                                                           selectable)),
                                      min_items=min(design.stopping.min_items,
                                                    max(1, selectable))),
                     pretest=replace(design.pretest,
                                     count=min(design.pretest.count, open_pretest)))
    return TestBank(bank, design, BankTables(bank.params, design), tuple(items), position,
                    excluded)


__all__ = ["PRACTICE_TAG", "TestBank", "build_test_bank", "placeholder",
           "pool_of"]
