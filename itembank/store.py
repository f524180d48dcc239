"""The item bank store: framework, items, bank versions, calibration runs, response log.

`Store` is one object over one database (`itembank.database.Database`) whose
operations are grouped by concept, one repository module each:

- `itembank/standards.py`: the framework's standards and their levels;
- `itembank/items.py`: importing, reading and exporting items;
- `itembank/versions.py`: bank versions, publishing, and the engine's arrays of a
  version (`Store.delivery_bank`, cached: versions never change);
- `itembank/run_records.py`: calibration runs' rows;
- `itembank/response_log.py`: the response log.

Every write is one transaction: an import with one bad item writes nothing, and
repeating an import changes nothing. A bank version is immutable once
published; publishing is appending to ``publications``, so rolling back is
publishing an earlier version again, and a session pinned to a version keeps
reading exactly what it started with.

What delivering tests stores (API keys, test definitions, sessions and their
answers) has repositories of its own: `itembank/keys.py`,
`itembank/definitions.py` (test definitions), `itembank/sessions.py`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .errors import NotFoundError
from .items import ItemRepository
from .response_log import ResponseLogRepository
from .run_records import CalibrationRunRepository
from .standards import StandardRepository
from .versions import DeliveryBank, VersionRepository


class Store(StandardRepository, ItemRepository, VersionRepository, CalibrationRunRepository,
            ResponseLogRepository):
    """Operations on one database (`itembank.database.Database`)."""

    def __init__(self, database):
        self.database = database
        self._cache = OrderedDict()
        self._cache_lock = threading.Lock()


__all__ = ["DeliveryBank", "NotFoundError", "Store"]
