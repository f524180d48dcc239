"""The career framework (job roles), a learner's consent to be found, and employers'
searches of the talent network (irtcat.delivery.careers)."""

from __future__ import annotations

from flask import g

from .. import careers_schemas as schemas
from .base import operation


@operation("/roles", "GET", roles=("admin", "delivery", "employer"),
           answer=schemas.JobRole, paginated=True,
           summary="the career framework's job roles: the level each requires per standard")
def list_roles():
    return g.delivery.careers.roles()


@operation("/roles", "PUT", roles=("admin",), body=schemas.CareerFramework,
           answer=schemas.RolesSummary, errors=(409,),
           summary="replace the career framework's job roles (an irtcat-roles/1 document)")
def put_roles(data):
    return g.delivery.careers.replace_roles(data)


@operation("/sessions/<session_id>/consent", "POST", roles=("delivery",), token=True,
           body=schemas.ConsentRequest, answer=schemas.Consent, status=201, errors=(409,),
           summary="the learner consents to be found by employers through the talent "
                   "network, with a contact handle; the session must have finished and "
                   "passed")
def give_consent(session_id, data):
    return g.delivery.careers.give_consent(session_id, data["contact"],
                                           token=g.principal[0] == "token")


@operation("/sessions/<session_id>/consent", "DELETE", roles=("delivery",), token=True,
           answer=schemas.Revoked,
           summary="revoke the learner's consent: no search finds them from now on")
def revoke_consent(session_id):
    return {"revoked": g.delivery.careers.revoke_consent(
        session_id, token=g.principal[0] == "token")}


@operation("/talent", "GET", roles=("employer",), query=schemas.TalentQuery,
           answer=schemas.TalentCandidate, paginated=True,
           summary="consenting learners who meet a job role or minimum levels: their "
                   "credential, levels and contact only")
def search_talent(query):
    g.quotas.hit("talent_search", g.principal[1])
    careers = g.delivery.careers
    return careers.search(careers.required_levels(query.get("role"),
                                                  query.get("min_levels")))
