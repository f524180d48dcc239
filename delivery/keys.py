"""API keys and session tokens: making, listing and revoking keys, and who a
credential is.

A key is shown once and stored only as its SHA-256 digest (`irtcat.itembank.keys`);
so is a session's token (`irtcat.itembank.sessions`).

Tokens expire: a session's token works until `token_expires_at` (the test's
`token_ttl`, by default the time limit plus TOKEN_HOURS_PAST_LIMIT hours, or
UNTIMED_TOKEN_HOURS), stops with the key that started the session, and once the
session has finished only reads its final state for `finished_token_ttl`
seconds (FINISHED_TOKEN_SECONDS by default; `irtcat.delivery.sessions`).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from irtcat.itembank import keys as key_rows
from irtcat.itembank.errors import DataFormatError
from irtcat.itembank.schema import KEY_ROLES, utc_now
from irtcat.itembank.sessions import session_of_token

from .caches import remember
from .errors import TokenExpiredError

KEY_PREFIX = "irtk_"
TOKEN_PREFIX = "irts_"
CACHED_TOKENS = 4096
TOKEN_HOURS_PAST_LIMIT = 4      # a timed test's tokens live this long past its time limit
UNTIMED_TOKEN_HOURS = 24        # an untimed test's tokens live this long
FINISHED_TOKEN_SECONDS = 900    # a finished session's token reads its final state this long
REVOCATION_CHECK_SECONDS = 2.0  # a revoked key stops its sessions' tokens within this


def digest(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(database, role, name=""):
    """A new API key of `role`; returns the key itself, which is stored only hashed."""
    if role not in KEY_ROLES:
        raise DataFormatError(f"role must be one of {', '.join(KEY_ROLES)}, got {role!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_rows.add_key(database, key[:12], digest(key), role, name)
    return key


def revoke_key(database, prefix):
    """Revoke the key(s) starting with `prefix` (at least 12 characters); returns how many.

    Exactly 12 characters revoke every live key with that stored prefix; more must be
    the whole key."""
    if len(prefix) < 12:
        raise DataFormatError("give at least the first 12 characters of the key")
    return key_rows.revoke_keys(database, prefix[:12],
                                None if len(prefix) == 12 else digest(prefix))


def list_keys(database):
    return [{"prefix": row["prefix"], "role": row["role"], "name": row["name"],
             "created_at": row["created_at"].isoformat(),
             "revoked": row["revoked_at"] is not None} for row in key_rows.key_rows(database)]


def authenticate(database, secret):
    """``("key", id, role)`` for a live key, or None; tokens go through `token_grant`."""
    if not secret.startswith(KEY_PREFIX):
        return None
    row = key_rows.key_by_digest(database, digest(secret))
    if row is not None and row.revoked_at is None:
        return "key", row.id, row.role
    return None


@dataclass(frozen=True)
class TokenGrant:
    """What a session token opens, none of which ever changes: its session, the key that
    started it (None: the learner page) and when it expires (None: a session started
    before tokens expired, which then expires UNTIMED_TOKEN_HOURS after its start)."""

    session_id: str
    key_id: int | None
    expires_at: datetime


def token_grant(database, secret):
    """The `TokenGrant` of a session token, or None if no session has it."""
    row = session_of_token(database, digest(secret))
    if row is None:
        return None
    expires = row.token_expires_at or \
        aware(row.created_at) + timedelta(hours=UNTIMED_TOKEN_HOURS)
    return TokenGrant(row.id, row.key_id, aware(expires))


def key_revoked(database, key_id):
    return key_rows.key_revoked(database, key_id)


def token_lifetime(test):
    """Seconds a session token of `test` (its definition) lives from the session's start."""
    if test["token_ttl"] is not None:
        return test["token_ttl"]
    if test["time_limit"] is not None:
        return test["time_limit"] + TOKEN_HOURS_PAST_LIMIT * 3600
    return UNTIMED_TOKEN_HOURS * 3600


def new_token():
    """A new session token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def aware(moment):
    """A stored time as an aware UTC datetime (SQLite gives them back naive)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


class Credentials:
    """Who a credential is, for one worker: a token's grant never changes, so it is
    remembered; whether its key was revoked since is looked up at most every
    REVOCATION_CHECK_SECONDS."""

    def __init__(self, database):
        self.database = database
        self._tokens = OrderedDict()      # token digest -> TokenGrant (never changes)
        self._revocations = {}            # key id -> (checked at, revoked)
        self._lock = threading.Lock()

    def authenticate(self, secret):
        """``("key", id, role)``, ``("token", session_id, None)`` or None for `secret`;
        TokenExpiredError for a token past its lifetime or whose key was revoked."""
        if not secret.startswith(TOKEN_PREFIX):
            return authenticate(self.database, secret)
        token_digest = digest(secret)
        with self._lock:
            grant = self._tokens.get(token_digest)
        if grant is None:
            grant = token_grant(self.database, secret)
            if grant is None:
                return None
            with self._lock:
                remember(self._tokens, token_digest, grant, CACHED_TOKENS)
        if utc_now() >= grant.expires_at:
            raise TokenExpiredError("this session token has expired")
        if grant.key_id is not None and self._revoked(grant.key_id):
            raise TokenExpiredError("this session token ended with the key that started it")
        return "token", grant.session_id, None

    def remember(self, token, grant):
        """Keep the `TokenGrant` of a token just made."""
        with self._lock:
            remember(self._tokens, digest(token), grant, CACHED_TOKENS)

    def _revoked(self, key_id):
        now = time.monotonic()
        cached = self._revocations.get(key_id)
        if cached is None or now - cached[0] > REVOCATION_CHECK_SECONDS:
            cached = (now, key_revoked(self.database, key_id))
            with self._lock:
                self._revocations[key_id] = cached
        return cached[1]


__all__ = ["FINISHED_TOKEN_SECONDS", "KEY_PREFIX", "REVOCATION_CHECK_SECONDS", "TOKEN_PREFIX",
           "Credentials", "TokenGrant", "authenticate", "create_key", "digest", "key_revoked",
           "list_keys", "revoke_key", "token_grant", "token_lifetime"]
