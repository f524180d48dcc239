"""Learners' sessions: start (with a delivery key, or from the learner page), read,
answer, finish, result; and scoring without a session."""

from __future__ import annotations

import secrets

from flask import g

from .. import exposure_schemas, observability, schemas
from .base import client_identity, operation


@operation("/sessions", "POST", roles=("delivery",), body=schemas.SessionStart,
           answer=schemas.SessionStarted, status=201, errors=(409, 422),
           summary="start a learner's session")
def start_session(data):
    g.quotas.hit("keyed_start", g.principal[1])
    return g.delivery.start_session(data["test_id"], data["learner_id"], g.principal[1],
                                    attributes=data.get("attributes"))


@operation("/public/sessions", "POST", body=schemas.PublicSessionStart,
           answer=schemas.SessionStarted, status=201, errors=(409,),
           summary="start a session of a public test from the learner page (no key); the "
                   "token then reads and answers it")
def start_public_session(data):
    g.quotas.hit("public_start", client_identity())
    learner_id = "web-" + secrets.token_hex(8)
    return g.delivery.start_session(data["test_id"], learner_id, public=True)


@operation("/sessions/<session_id>", "GET", roles=("delivery",), token=True,
           answer=schemas.SessionState, errors=(409,),
           summary="the session's status and current item")
def get_session(session_id):
    return g.delivery.state(session_id, token=g.principal[0] == "token")


@operation("/sessions/<session_id>/responses", "POST", roles=("delivery",), token=True,
           body=schemas.Answer, answer=schemas.SessionState, errors=(409, 422),
           summary="answer the current item; returns the next one")
def answer(session_id, data):
    g.quotas.hit("answer", session_id)
    owner = g.principal[1] if g.principal[0] == "key" else g.delivery.owner_key(session_id)
    if owner is not None:
        g.quotas.hit("answer_key", owner)
    state = g.delivery.answer(session_id, data["item_id"], data["response"],
                              token=g.principal[0] == "token")
    observability.count_answer()
    return state


@operation("/sessions/<session_id>/finish", "POST", roles=("delivery",),
           answer=schemas.SessionState, errors=(409,),
           summary="end the session early and score it")
def finish(session_id):
    return g.delivery.finish(session_id)


@operation("/sessions/<session_id>/result", "GET", roles=("delivery",),
           answer=schemas.Result, errors=(409,),
           summary="theta, SE, per-standard levels, decision and the scored answers")
def result(session_id):
    return g.delivery.result(session_id)


@operation("/score", "POST", roles=("delivery",), body=schemas.ScoreRequest,
           answer=schemas.Score, errors=(409, 422),
           summary="score items without a session: item scores (not options) of at least "
                   "10 items; θ rounded to 0.1, no SE (docs/API.md)")
def score(data):
    g.quotas.hit("score", g.principal[1])
    observability.audit("score_request", principal_id=g.principal[1],
                        items=len(data["responses"]), method=data["method"])
    return g.delivery.score(data["responses"], data["method"])


@operation("/sessions/<session_id>/trace", "GET", roles=("admin",),
           answer=exposure_schemas.SessionTrace,
           summary="the session's decision trace, step by step: eligible items, the best "
                   "candidates and their criterion values, exposure decisions, estimate, "
                   "stop reason (admin only)")
def trace(session_id):
    return g.delivery.trace(session_id)
