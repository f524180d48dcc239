"""DIF on live data: the stored response log of a standard, persons grouped by a learner
attribute given at their sessions' start; queued for the worker processes
(`api.long_work`, `delivery.dif`)."""

from __future__ import annotations

from flask import g

from irtcat.delivery.errors import ConflictError
from irtcat.itembank.errors import NotFoundError

from .. import long_work, observability, schemas
from .base import operation


@operation("/dif", "POST", roles=("admin",), body=schemas.DifRequest, errors=(404, 409),
           queued=True,
           summary="differential item functioning on a standard's stored answers, persons "
                   "grouped by a learner attribute: a JSON table, one row per item "
                   "(docs/API.md)")
def post_dif(data):
    g.store.standard(data["standard"])                 # 404 for an unknown standard
    try:                       # 409 before queueing: the EAPs need published parameters
        g.store.current_version_id(data["standard"])
    except NotFoundError as error:
        raise ConflictError(str(error)) from None
    observability.audit("dif_requested", standard=data["standard"],
                        attribute=data["attribute"], method=data["method"])
    return long_work.dif(data)
