"""API keys' rows: stored only as a digest, found by it, revoked by prefix.

The key itself, its digest and what a key may do are `irtcat.delivery.keys`'s;
here are the rows. A revoked key keeps its row (``revoked_at`` set), so the
sessions it started can tell that their key has gone.
"""

from __future__ import annotations

from sqlalchemy import select

from .schema import ApiKey, utc_now


def add_key(database, prefix, digest, role, name=""):
    """Store a key by its first characters (`prefix`) and its `digest`."""
    with database.writing() as session:
        session.add(ApiKey(prefix=prefix, digest=digest, role=role, name=name))


def revoke_keys(database, prefix, digest=None):
    """Revoke the live keys whose stored prefix is `prefix` (and, given `digest`, only the
    one with that digest) in one transaction; returns how many."""
    with database.writing() as session:
        rows = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix,
                                                    ApiKey.revoked_at.is_(None))).all()
        rows = [row for row in rows if digest is None or digest == row.digest]
        for row in rows:
            row.revoked_at = utc_now()
        return len(rows)


def key_rows(database):
    """Every key, oldest first: ``[{"prefix", "role", "name", "created_at", "revoked_at"}]``
    (times as datetimes; ``revoked_at`` None for a live key)."""
    with database.reading() as session:
        rows = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
        return [{"prefix": row.prefix, "role": row.role, "name": row.name,
                 "created_at": row.created_at, "revoked_at": row.revoked_at} for row in rows]


def key_by_digest(database, digest):
    """The row ``(id, role, revoked_at)`` of the key with `digest`, or None."""
    with database.read_connection() as connection:
        return connection.execute(select(ApiKey.id, ApiKey.role, ApiKey.revoked_at)
                                  .where(ApiKey.digest == digest)).one_or_none()


def key_revoked(database, key_id):
    """Whether key `key_id` has been revoked."""
    with database.read_connection() as connection:
        return connection.scalar(select(ApiKey.revoked_at).where(ApiKey.id == key_id)) \
            is not None


__all__ = ["add_key", "key_by_digest", "key_revoked", "key_rows", "revoke_keys"]
