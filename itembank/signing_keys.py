"""The server's private keys, one per purpose, kept in the store so that every worker and
every restart signs with the same key: `signing_key(database, name, algorithm, make)`
returns the stored key of `name`, making it with `make()` (a text: PEM, or base64 of raw
bytes) the first time. Two workers asking at once both get the first one stored.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from .schema import SigningKey


def signing_key(database, name, algorithm, make):
    """The private key text stored as `name`, made with `make()` and stored (as of
    `algorithm`, a label such as ``"HS256"``, ``"RS256"``, ``"Ed25519"``) if there is none;
    ValueError if the stored key is of another algorithm."""
    stored = _stored(database, name)
    if stored is None:
        try:
            with database.writing() as session:
                session.add(SigningKey(name=name, algorithm=algorithm, private_key=make()))
        except IntegrityError:
            pass                                   # another worker stored one first
        stored = _stored(database, name)
    if stored[0] != algorithm:
        raise ValueError(f"signing key {name!r} is {stored[0]}, not {algorithm}")
    return stored[1]


def _stored(database, name):
    with database.reading() as session:
        row = session.get(SigningKey, name)
        return None if row is None else (row.algorithm, row.private_key)


__all__ = ["signing_key"]
