"""Test definitions: creating and listing tests, the learner page's public tests, and
each test's bank under pinned versions.

A test is checked against the published banks when it is created (its CAT
configuration must be one the bank can serve) and never changes after, so a
worker keeps every test it has read and the last CACHED_TESTS test banks built.

A public test is listed on the learner page and startable there without a key; it
draws only items tagged ``practice`` (`test_banks.PRACTICE_TAG`) unless its
`public_pool` is ``"all"`` (the owner's explicit choice), and a test that is not
public never draws them.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from irtcat.itembank import definitions as test_rows
from irtcat.itembank.errors import DataFormatError, NotFoundError

from .caches import Catalog, remember
from .errors import ConflictError
from .test_banks import build_test_bank, pool_of

CACHED_TESTS = 32
LONGEST_SECONDS = 366 * 86400   # a time limit or token lifetime is at most this


class Definitions:
    """Tests on a `Store`, and the banks they deliver from, cached per worker."""

    def __init__(self, store):
        self.store = store
        self.database = store.database
        self.catalog = Catalog(store)
        self._banks = OrderedDict()       # (test, versions, given) -> TestBank
        self._tests = {}                  # tests never change once created
        self._lock = threading.Lock()

    def create_test(self, test_id, title, standards, config, public=False, feedback=False,
                    *, time_limit=None, token_ttl=None, finished_token_ttl=None,
                    public_pool="practice"):
        """Store a test; the configuration is checked against the published banks.

        `public`: listed on the learner page and startable there without a key (see the
        module for the items it draws); `feedback`: a finished session shows its learner
        θ, levels and the decision; `time_limit`, `token_ttl`, `finished_token_ttl`:
        seconds (`irtcat.delivery.keys`, `irtcat.delivery.sessions`)."""
        if not isinstance(standards, list) or not standards:
            raise DataFormatError("standards must be a non-empty list of codes")
        for code in standards:
            self.store.standard(code)                         # NotFoundError if unknown
        if not isinstance(config, dict):
            raise DataFormatError("config must be an object (the CAT configuration)")
        if public_pool not in ("practice", "all"):
            raise DataFormatError("public_pool must be practice or all")
        for name, seconds in (("time_limit", time_limit), ("token_ttl", token_ttl),
                              ("finished_token_ttl", finished_token_ttl)):
            if seconds is not None and not 1 <= seconds <= LONGEST_SECONDS:
                raise DataFormatError(f"{name} must be 1 to {LONGEST_SECONDS} seconds")
        if time_limit is not None and token_ttl is not None and token_ttl < time_limit:
            raise DataFormatError("token_ttl must be at least the time limit")
        pool = pool_of(public, public_pool)
        try:
            versions = self.store.current_version_ids(standards)
        except NotFoundError:
            versions = None                # nothing published yet: checked when it is
        if versions is not None:
            # DataFormatError if the configuration does not fit the bank
            build_test_bank(self.store, standards, config, versions, pool=pool)
        test_id = test_id or "t_" + secrets.token_hex(6)
        added = test_rows.add_test(
            self.database, test_id, title=title or test_id, standards=standards,
            config=config, public=bool(public), feedback=bool(feedback),
            time_limit=time_limit, token_ttl=token_ttl,
            finished_token_ttl=finished_token_ttl, public_pool=public_pool)
        if not added:
            raise ConflictError(f"test {test_id!r} already exists")
        return self.test(test_id)

    def test(self, test_id):
        cached = self._tests.get(test_id)
        if cached is not None:
            return cached
        found = test_rows.find_test(self.database, test_id)
        if found is None:
            raise NotFoundError(f"no test {test_id!r}")
        with self._lock:
            self._tests[test_id] = found
        return found

    def tests(self):
        return test_rows.list_tests(self.database)

    def public_tests(self):
        """The tests the learner page lists: ``[{"id", "title", "standards": [{"code",
        "title"}], "max_items"}]``; the configuration stays private."""
        listed = []
        for test_id in test_rows.public_test_ids(self.database):
            test = self.test(test_id)
            try:
                built = self.test_bank(test_id, self.store.current_version_ids(test["standards"]))
            except (NotFoundError, DataFormatError):
                continue                  # nothing published yet, or a bank it cannot use
            if built.excluded.all():
                continue                  # no practice item to show yet
            listed.append({"id": test_id, "title": test["title"],
                           "standards": [{"code": code, "title": self.catalog.standard(code)[0]}
                                         for code in test["standards"]],
                           "max_items": built.max_items})
        return listed

    def test_bank(self, test_id, versions, given=()):
        """The `TestBank` of a test under pinned `versions` ({code: version id}), cached.

        `given`: ids of items a session was given that the bank would not hold any more
        (pretest items since calibrated or retired); they are kept as pretest items."""
        test = self.test(test_id)
        cache_key = (test_id, tuple(sorted(versions.items())), tuple(sorted(given)))
        with self._lock:
            cached = self._banks.get(cache_key)
            if cached is not None:
                self._banks.move_to_end(cache_key)
                return cached
        built = build_test_bank(self.store, test["standards"], test["config"], versions, given,
                                pool=pool_of(test["public"], test["public_pool"]))
        with self._lock:
            remember(self._banks, cache_key, built, CACHED_TESTS)
        return built

    def _session_bank(self, row, answers):
        """The bank of a session: its test's under its pinned versions, holding every item
        the session was given."""
        built = self.test_bank(row.test_id, row.versions)
        given = ({answer[0] for answer in answers} | {row.current_item}) - {None}
        missing = given - set(built.position)
        return self.test_bank(row.test_id, row.versions, missing) if missing else built


__all__ = ["CACHED_TESTS", "Definitions"]
