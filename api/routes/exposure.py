"""Live exposure of a test's sessions, counted across every worker (admin): as JSON, and
as an HTML report (`api.program_report.exposure_report`)."""

from __future__ import annotations

from flask import Response, g

from irtcat.engine.design import Exposure

from .. import exposure_schemas
from ..program_report import exposure_report
from .base import operation

DEFAULT_TARGET = Exposure().target       # a test's exposure.target when it sets none


@operation("/tests/<test_id>/exposure", "GET", roles=("admin",),
           answer=exposure_schemas.TestExposure, errors=(409,),
           summary="exposure rates of the test's live sessions: per item (operational and "
                   "pretest apart), maximum, overlap, pool use, per day")
def test_exposure(test_id):
    return g.delivery.exposure(test_id)


@operation("/tests/<test_id>/exposure/report", "GET", roles=("admin",), errors=(409,),
           produces=("text/html", "one self-contained HTML page"),
           summary="the test's live exposure as a report: summary against the exposure "
                   "target, operational item rates sorted (pretest items apart), per day")
def test_exposure_report(test_id):
    figures = g.delivery.exposure(test_id)
    exposure = (g.delivery.test(test_id)["config"] or {}).get("exposure") or {}
    page = exposure_report(figures, exposure.get("target", DEFAULT_TARGET),
                           exposure.get("method", "none"))
    return Response(page, mimetype="text/html")
