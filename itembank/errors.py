"""Every exception the storage layer raises, in one place.

Each carries a one-line message fit to show a user as it is. The layers above
(`irtcat.delivery`, `irtcat.api`) catch them by these names; they are the only
exception classes the `irtcat.itembank` package defines (tests/test_architecture.py).

The database driver's own failures reach the layers above under two names given
here, so that no module outside the storage layer imports SQLAlchemy:
`StorageFailure` (any database failure: unreachable, a statement refused) and
`WriteConflict` (a constraint refused a write, e.g. two concurrent creations).
They are looked up when first used, so that reading a file (`DataFormatError`)
does not load SQLAlchemy.
"""


class DataFormatError(ValueError):
    """A file that cannot be read as what it claims to be; the message is one line."""


class ReferenceConflict(DataFormatError):
    """A well-formed document that contradicts what the store holds: it names a standard,
    parent or enemy item the store does not have, makes a standard its own ancestor, or
    moves an item to another standard (HTTP 409; exit 2 on the command line)."""


class NotFoundError(LookupError):
    """A standard, item or version that is not in the store; one-line message."""


class DatabaseError(RuntimeError):
    """The store cannot be reached or is not at the expected schema; one-line message."""


class PreconditionFailed(RuntimeError):
    """The resource changed since the tag the writer gave (HTTP 412); one-line message."""


def __getattr__(name):
    if name == "StorageFailure":
        from sqlalchemy.exc import SQLAlchemyError
        return SQLAlchemyError
    if name == "WriteConflict":
        from sqlalchemy.exc import IntegrityError
        return IntegrityError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DataFormatError", "DatabaseError", "NotFoundError", "PreconditionFailed",
           "ReferenceConflict"]
