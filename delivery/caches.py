"""What one worker keeps between requests: bounded caches, and the items and
standards as sessions read them.

Tests, tokens and the engine state of sessions never change once made, so their
caches (in `definitions`, `keys`, `sessions`) only drop the least recently used
entry beyond a bound (`remember`). Items and standards can be edited, so
`Catalog` reads each at most every ITEM_CACHE_SECONDS: an edited stem, option or
key reaches every worker within that time.
"""

from __future__ import annotations

import threading
import time

from irtcat.itembank.errors import NotFoundError

CACHED_ITEMS = 50_000
ITEM_CACHE_SECONDS = 10.0       # an edited stem, option or key reaches every worker within


def remember(cache, key, value, limit):
    """Put `key` in an LRU `cache` (an OrderedDict, under the caller's lock), dropping the
    oldest entries beyond `limit`."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


class Catalog:
    """Items and standards of a `Store` as delivering reads them, kept for
    ITEM_CACHE_SECONDS."""

    def __init__(self, store):
        self.store = store
        self._items = {}                  # item_id -> (loaded at, model, content, key)
        self._standards = {}              # code -> (loaded at, title, levels)
        self._lock = threading.Lock()

    def item(self, item_id):
        """``(model, content, key)`` of an item, read at most every ITEM_CACHE_SECONDS;
        NotFoundError for an unknown one."""
        now = time.monotonic()
        cached = self._items.get(item_id)
        if cached is None or now - cached[0] > ITEM_CACHE_SECONDS:
            found = self.store.item_content(item_id)
            if found is None:
                raise NotFoundError(f"no item {item_id!r}")
            cached = (now, *found)
            with self._lock:
                if len(self._items) > CACHED_ITEMS:
                    self._items.clear()
                self._items[item_id] = cached
        return cached[1:]

    def standard(self, code):
        """``(title, levels that apply)`` of a standard, read at most every
        ITEM_CACHE_SECONDS."""
        now = time.monotonic()
        cached = self._standards.get(code)
        if cached is None or now - cached[0] > ITEM_CACHE_SECONDS:
            cached = (now, self.store.standard(code)["title"], self.store.levels_of(code))
            with self._lock:
                self._standards[code] = cached
        return cached[1:]

    def item_view(self, item_id, position):
        """An item as a learner sees it: id, stem, options, position; nothing more."""
        content = self.item(item_id)[1] or {}
        return {"item_id": item_id, "stem": content.get("stem", ""),
                "options": [{"id": o["id"], "text": o["text"]}
                            for o in content.get("options", [])], "position": position}


__all__ = ["CACHED_ITEMS", "ITEM_CACHE_SECONDS", "Catalog", "remember"]
