"""Exceptions and warnings raised by the engine."""


class InvalidParameterError(ValueError):
    """Item parameters outside the model's domain (a <= 0, c outside [0, 1), ...)."""


class InvalidResponsesError(ValueError):
    """A response that is not a category of its item."""


class ConvergenceWarning(UserWarning):
    """An iterative estimate stopped before meeting its tolerance."""
