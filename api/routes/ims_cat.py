"""The 1EdTech CAT service v1.0 under /ims/cat/v1p0 (docs/ims-cat.md): sections and
sessions for a delivery platform's `cat-client` key, mapped onto irtcat's tests and
sessions by `irtcat.delivery.ims_cat`.

A blueprint of its own, with its own OpenAPI document at /ims/cat/v1p0/openapi.json
(`api.ims_cat_schemas`): the v1 document's paths are relative to /v1. Keys are checked as
on every v1 route (`base.authorize`); errors are the envelope of spec/API.md (TAO's
client reads only whether the status is 2xx).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from irtcat.delivery.errors import ForeignError
from irtcat.delivery.ims_cat import ImsCat

from ..ims_cat_schemas import document
from .base import ApiError, Operation, authorize, check_text, json_body

PREFIX = "/ims/cat/v1p0"
ROLES = ("cat-client",)
ims_cat = Blueprint("ims_cat", __name__, url_prefix=PREFIX)


def _service():
    """The app's one `ImsCat` (it caches the state key)."""
    state = current_app.extensions["irtcat"]
    if "ims_cat" not in state:
        state["ims_cat"] = ImsCat(g.delivery)
    return state["ims_cat"]


def _route(rule, method, status=200):
    """Declare the view it decorates as `method rule`, for a cat-client key; the view
    takes the key's id as `key_id` and the JSON body (if the method has one) as `body`."""
    declared = Operation(PREFIX + rule, method, ROLES, False, None, None, status, "")

    def register(view):
        def guarded(**kwargs):
            authorize(declared, {})
            check_text(list(kwargs.values()), "the URL")
            if method == "POST":
                body = json_body()
                if not isinstance(body, dict):
                    raise ApiError(400, "the body must be a JSON object", "validation_error")
                kwargs["body"] = body
            answer = view(g.principal[1], **kwargs)
            return ("", 204) if answer is None else (jsonify(answer), status)
        ims_cat.add_url_rule(rule, f"{method.lower()}_{view.__name__}", guarded,
                             methods=[method])
        return view
    return register


@ims_cat.errorhandler(ForeignError)
def _foreign(error):
    return jsonify({"error": {"code": "forbidden", "message": str(error), "details": {}}}), 403


@ims_cat.route("/openapi.json", methods=["GET"])
def openapi():
    return jsonify(document())


@_route("/sections", "POST", status=201)
def create_section(key_id, body):
    return _service().create_section(key_id, body)


@_route("/sections/<section_id>", "GET")
def get_section(key_id, section_id):
    return _service().section(key_id, section_id)


@_route("/sections/<section_id>", "DELETE", status=204)
def end_section(key_id, section_id):
    _service().end_section(key_id, section_id)


@_route("/sections/<section_id>/sessions", "POST", status=201)
def create_session(key_id, section_id, body):
    g.quotas.hit("keyed_start", key_id)
    return _service().create_session(key_id, section_id, body)


@_route("/sections/<section_id>/sessions/<session_id>/results", "POST")
def submit_results(key_id, section_id, session_id, body):
    g.quotas.hit("answer", session_id)                 # the quotas of a /v1 answer
    g.quotas.hit("answer_key", key_id)
    return _service().submit_results(key_id, section_id, session_id, body)


@_route("/sections/<section_id>/sessions/<session_id>", "DELETE", status=204)
def end_session(key_id, section_id, session_id):
    _service().end_session(key_id, section_id, session_id)


__all__ = ["PREFIX", "ims_cat"]
