"""Live exposure of a test's sessions, counted across every worker (admin)."""

from __future__ import annotations

from flask import g

from .. import exposure_schemas
from .base import operation


@operation("/tests/<test_id>/exposure", "GET", roles=("admin",),
           answer=exposure_schemas.TestExposure, errors=(409,),
           summary="exposure rates of the test's live sessions: per item (operational and "
                   "pretest apart), maximum, overlap, pool use, per day")
def test_exposure(test_id):
    return g.delivery.exposure(test_id)
