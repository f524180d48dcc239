"""The v1 routes, one module per resource, on one flask-smorest blueprint (`base.v1`).
Importing this package declares them all (`base.OPERATIONS`)."""

from . import (  # noqa: F401
    calibrations,
    careers,
    case,
    credentials,
    dif,
    exposure,
    items,
    lti,
    online,
    service,
    sessions,
    standards,
    tests,
)
from .base import MAX_BODY, OPERATIONS, STATUS_CODES, ApiError, v1  # noqa: F401
