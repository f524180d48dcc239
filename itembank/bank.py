"""ItemBank: the items of a bank with their parameters, no storage code."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irtcat.engine import ItemParameters


@dataclass(frozen=True, eq=False)
class ItemBank:
    """Items in bank order with the engine's parameter arrays.

    Attributes
    ----------
    items : tuple of dict
        Each item's document as read (id, standard, model, parameters, ...).
    params : ItemParameters
        Parameters of the calibrated items, in the order of `item_ids`.
    population : dict
        ``{"mean": float, "sd": float}``, the theta scale of the bank.
    calibration : dict or None
        The calibration record, if any.
    """

    items: tuple
    params: ItemParameters
    population: dict = field(default_factory=lambda: {"mean": 0.0, "sd": 1.0})
    calibration: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def item_ids(self):
        return [item["id"] for item in self.items]

    @property
    def standard_codes(self):
        return [item.get("standard") for item in self.items]

    def index_of(self, item_ids):
        """Positions of `item_ids` in the bank; KeyError naming the first unknown id."""
        lookup = {item_id: i for i, item_id in enumerate(self.item_ids)}
        try:
            return np.array([lookup[item_id] for item_id in item_ids], dtype=np.intp)
        except KeyError as missing:
            raise KeyError(missing.args[0]) from None
