"""The LTI 1.3 tool's browser and platform routes, outside /v1 (`irtcat.delivery.lti`):

- ``GET|POST /lti/login``: the platform's OIDC login initiation; 302 to its
  authorization endpoint with a new state and nonce;
- ``POST /lti/launch``: the platform's form post of ``id_token`` and ``state``; a valid
  launch starts the session and sends the browser (303) to the learner page, the session
  named in the URL fragment (``#lti_session=...&lti_token=...``), which never reaches a
  server or a Referer header; api/static/lti.js hands it to the page;
- ``GET /lti/jwks``: the tool's public keys (the platform checks the tool's token
  request assertions with them);
- ``GET /lti/openapi.json``: the OpenAPI document of these routes (`api.lti_openapi`).

A refused login or launch answers 400 with the error envelope (code ``lti_rejected``, the
reason as message) and logs an audit line ``lti_launch_failed`` with the reason.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, redirect, request, url_for

from irtcat.delivery.lti import LaunchRejected

from . import lti_openapi, observability

lti_pages = Blueprint("lti", __name__, url_prefix="/lti")


def _tool():
    return current_app.extensions["irtcat"]["lti"]


def _rejected(step, error):
    observability.audit("lti_launch_failed", step=step, reason=str(error),
                        issuer=request.values.get("iss", ""), client=request.remote_addr)
    body = jsonify({"error": {"code": "lti_rejected", "message": str(error), "details": {}}})
    return body, 400


@lti_pages.route("/login", methods=["GET", "POST"])
def login():
    try:
        location = _tool().login(request.values, url_for("lti.launch", _external=True))
    except LaunchRejected as error:
        return _rejected("login", error)
    return redirect(location, 302)


@lti_pages.post("/launch")
def launch():
    try:
        started = _tool().launch(request.form.get("id_token"), request.form.get("state"))
    except LaunchRejected as error:
        return _rejected("launch", error)
    observability.audit("lti_launch", session_id=started["session_id"],
                        test_id=started["test_id"])
    fragment = urlencode({"lti_session": started["session_id"], "lti_token": started["token"],
                          "lti_test": started["test_id"], "lti_title": started["title"],
                          "lti_max_items": started["max_items"]})
    response = redirect(url_for("pages.learner_page") + "#" + fragment, 303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@lti_pages.get("/jwks")
def jwks():
    response = jsonify(_tool().jwks())
    response.headers["Cache-Control"] = "max-age=3600"
    return response


@lti_pages.get("/openapi.json")
def openapi():
    return jsonify(lti_openapi.document())
