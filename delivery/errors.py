"""The exceptions of delivering tests, in one place; each message is one line.

Storage's own (NotFoundError, DataFormatError, ...) are `irtcat.itembank.errors`.
"""


class ConflictError(RuntimeError):
    """A request that contradicts the session's state (HTTP 409); one-line message."""


class InvalidAnswerError(ValueError):
    """An answer that is not one of the item's options or categories (HTTP 422)."""


class TokenExpiredError(RuntimeError):
    """A session token past its lifetime, or a finished session's token past its read
    window (HTTP 401, code ``token_expired``)."""


class TimeLimitError(ConflictError):
    """An answer after the test's time limit: the session is now finished (HTTP 409,
    code ``time_limit``)."""


class ForeignError(PermissionError):
    """A 1EdTech CAT section or session of another key, or a sessionState this server did
    not sign for this session (HTTP 403)."""


class ProofError(ValueError):
    """A credential whose proof does not verify, or that cannot be canonicalized; the
    message says why (one line)."""


class LaunchRejected(Exception):
    """An LTI login or launch refused (`delivery.lti`); the message is the reason."""


class PassbackFailed(ConflictError):
    """The LTI platform refused the token request or the score; the message says which."""


__all__ = ["ConflictError", "ForeignError", "InvalidAnswerError", "LaunchRejected",
           "PassbackFailed", "ProofError", "TimeLimitError", "TokenExpiredError"]
