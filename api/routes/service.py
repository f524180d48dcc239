"""Operator routes: liveness, readiness and metrics."""

from __future__ import annotations

from flask import g

from irtcat.itembank.errors import StorageFailure
from irtcat.itembank.monitoring import readiness

from .. import observability, schemas
from .base import ApiError, operation


@operation("/ready", "GET", errors=(503,),
           summary="readiness: the database answers and is at this release's schema (503 "
                   "otherwise)")
def ready():
    ok, details = readiness(g.store.database)
    if not ok:
        raise ApiError(503, "the service is not ready", "not_ready", details)
    return {"status": "ready", **details}


@operation("/metrics", "GET", roles=("admin",),
           produces=("text/plain", "Prometheus text exposition format"),
           summary="Prometheus metrics (text exposition format): request latency by route, "
                   "answers, active sessions, calibration jobs, exposure maximum per test")
def metrics():
    return observability.metrics_view(g.store.database)


@operation("/health", "GET", answer=schemas.Health, summary="liveness and the database")
def health():
    try:
        g.store.database.ping()
    except StorageFailure:
        raise ApiError(500, "the database is not reachable", "database_unavailable") from None
    return {"status": "ok", "database": "reachable"}
