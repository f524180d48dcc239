"""Per-client quotas: named rate limits (`limits`, fixed windows) shared by every worker.

Each quota counts the hits of one identity (a client address, a delivery key,
a session) in fixed windows; the hit past the limit raises `QuotaExceeded`
with the seconds until the window ends, for a 429 with ``Retry-After``. The
counters live in the store's database (`itembank.counters`: every worker, and
every host on PostgreSQL) or in any `limits` storage named by
``IRTCAT_RATE_LIMIT_STORAGE`` (``redis://host:6379``, ``memcached://host:11211``,
``memory://`` for one process). Identities are hashed before they become keys,
so the counters hold no addresses or keys in the clear.

The defaults, each overridable by ``IRTCAT_QUOTAS="name=limit;name=limit"``
in `limits`' notation (``public_start=500/hour``); ``IRTCAT_QUOTAS=off``
turns every quota off (for throughput benchmarks only):

- ``public_start`` 200/hour per client address, anonymous starts on the
  learner page. The page needs no key, so a school's computer room reaches
  us from one address: two classes of 100 starting in the same hour pass,
  the probe's 600 starts in 28 s stop at 200.
- ``keyed_start`` 3000/minute per delivery key. An LMS starts a class of
  100 at once and serves many classes; 50 starts a second is more than one
  server absorbs, so only a runaway or leaked key meets it.
- ``answer`` 60/minute per session: a person does not answer faster than
  about once a second; a script replaying a whole test does.
- ``answer_key`` 30000/minute per delivery key (500 answers a second, above
  what one server sustains): a bound on one leaked key, not on a busy LMS.
- ``auth_failure`` 100/10 minutes per client address, failed authentications.
  Keys and tokens are too long to guess, so this stops floods and scanners
  (the probe's 160 guesses a second stop within a second) while a room of
  learners behind one address, each presenting an expired token once,
  passes. Once spent, the address's failures are answered 429 until the
  window ends; its valid keys and tokens still pass (api/app.py).
- ``score`` 200/day per delivery key: two classes of 100 scored from paper a
  day, which an integrator with more can have raised (IRTCAT_QUOTAS); a prober
  fitting every item's a and b to a day of chosen score patterns recovers none
  better than a guess (tests/api/test_abuse.py replays it with this budget).
- ``talent_search`` 600/hour per employer key: a recruiter's searches, not a
  scrape of the talent network.

A fixed window lets up to twice a limit through across the end of one window
and the start of the next; the limits above allow for that.

If the counter store fails, requests are let through (the quotas are a guard
against abuse, not a condition of service) and the failure is logged at most
once a minute.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time

from limits import parse_many
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from irtcat.itembank.counters import counter_storage

DEFAULTS = {
    "public_start": "200/hour",
    "keyed_start": "3000/minute",
    "answer": "60/minute",
    "answer_key": "30000/minute",
    "auth_failure": "100/10 minutes",
    "score": "200/day",
    "talent_search": "600/hour",
}
LOG_EVERY = 60.0                       # seconds between two logs of a failing store

logger = logging.getLogger(__name__)


class QuotaExceeded(Exception):
    """The hit went past the quota `name`; `retry_after` whole seconds (>= 1) until its
    window ends."""

    def __init__(self, name, retry_after):
        super().__init__(f"too many requests ({name}); retry after {retry_after} s")
        self.name, self.retry_after = name, retry_after


def parse_limit(name, notation):
    """One limit in `limits`' notation (``30/hour``, ``100 per 10 minutes``).

    Returns
    -------
    limit : limits.RateLimitItem

    Raises
    ------
    ValueError
        One line naming the quota, when `notation` is not one limit of at least 1.
    """
    try:
        items = parse_many(notation)
    except ValueError:
        items = []
    if len(items) != 1 or items[0].amount < 1:
        raise ValueError(f"quota {name!r}: cannot read {notation!r} as one limit "
                         "such as '60/minute' or '100 per 10 minutes'")
    return items[0]


def parse_overrides(text):
    """The limits of ``IRTCAT_QUOTAS`` (``name=limit;name=limit``) over the defaults.

    Returns
    -------
    limits : dict of str to limits.RateLimitItem
        Every quota of `DEFAULTS`, overridden where `text` names it.

    Raises
    ------
    ValueError
        One line naming the quota or the part of `text` that cannot be read.
    """
    notations = dict(DEFAULTS)
    for part in filter(None, (part.strip() for part in (text or "").split(";"))):
        name, equals, notation = (piece.strip() for piece in part.partition("="))
        if not equals:
            raise ValueError(f"IRTCAT_QUOTAS: {part!r} is not name=limit")
        if name not in DEFAULTS:
            raise ValueError(f"IRTCAT_QUOTAS: no quota {name!r} (there are "
                             f"{', '.join(DEFAULTS)})")
        notations[name] = notation
    return {name: parse_limit(name, notation) for name, notation in notations.items()}


def _identity_key(identity):
    return hashlib.blake2b(str(identity).encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()


class Quotas:
    """The named quotas over one `limits` storage.

    Parameters
    ----------
    storage : limits.storage.Storage or None
        Where the counters live (made with ``wrap_exceptions=True`` so that a failing
        store is recognised whatever its kind); None when not `enabled`.
    limits : dict of str to limits.RateLimitItem, optional
        The quotas (default: `DEFAULTS`).
    enabled : bool
        False lets every hit through and counts nothing.
    """

    def close(self):
        """Release the storage's connections (SQL counters); the quotas are unusable after."""
        dispose = getattr(self.storage, "dispose", None)
        if dispose is not None:
            dispose()

    def __init__(self, storage, limits=None, *, enabled=True):
        self.storage = storage
        self.limits = limits if limits is not None else parse_overrides("")
        self.enabled = enabled
        self._limiter = FixedWindowRateLimiter(storage) if enabled else None
        self._logged_at = -math.inf
        self._log_lock = threading.Lock()

    @classmethod
    def from_env(cls, database, environ=None):
        """The quotas of ``IRTCAT_QUOTAS`` over the storage of ``IRTCAT_RATE_LIMIT_STORAGE``,
        else over SQL counters beside `database` (an `itembank.database.Database`).

        Raises
        ------
        ValueError
            One line, for an override or a storage that cannot be used.
        """
        environ = os.environ if environ is None else environ
        setting = environ.get("IRTCAT_QUOTAS", "").strip()
        if setting.lower() == "off":
            return cls(None, enabled=False)
        limits = parse_overrides(setting)
        uri = environ.get("IRTCAT_RATE_LIMIT_STORAGE", "").strip()
        if not uri:
            return cls(counter_storage(database, wrap_exceptions=True), limits)
        try:
            storage = storage_from_string(uri, wrap_exceptions=True)
        except (ConfigurationError, ValueError) as error:
            raise ValueError(f"IRTCAT_RATE_LIMIT_STORAGE: {error}") from None
        return cls(storage, limits)

    def _retry_after(self, limit, key):
        left = math.ceil(self.storage.get_expiry(key) - time.time())
        return min(max(left, 1), limit.get_expiry())

    def hit(self, name, identity):
        """Count one request of `identity` (a client address, a key's id, a session id)
        against the quota `name`.

        Raises
        ------
        QuotaExceeded
            When this hit is past the limit (it is counted all the same).
        KeyError
            For a quota that does not exist.
        """
        if not self.enabled:
            return
        limit, identity_key = self.limits[name], _identity_key(identity)
        try:
            if self._limiter.hit(limit, name, identity_key):
                return
            retry_after = self._retry_after(limit, limit.key_for(name, identity_key))
        except StorageError as error:
            self._log(error)
            return
        raise QuotaExceeded(name, retry_after)

    def exhausted(self, name, identity):
        """Whether `identity` has spent the quota `name`, without counting.

        Returns
        -------
        retry_after : int
            Seconds until its window ends (>= 1), or 0 while hits remain.
        """
        if not self.enabled:
            return 0
        limit = self.limits[name]
        key = limit.key_for(name, _identity_key(identity))
        try:
            if self.storage.get(key) < limit.amount:
                return 0
            return self._retry_after(limit, key)
        except StorageError as error:
            self._log(error)
            return 0

    def _log(self, error):
        with self._log_lock:
            now = time.monotonic()
            if now - self._logged_at < LOG_EVERY:
                return
            self._logged_at = now
        cause = error.storage_error
        logger.warning("rate-limit counters unavailable, requests let through: %s",
                       (str(cause).splitlines() or [type(cause).__name__])[0])
