"""The learner page at ``/`` and its assets under ``/static``, shipped in api/static.

The page holds no key: it lists public tests and starts sessions through
``/v1/public/...``, then reads and answers its session with the session token.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC = Path(__file__).with_name("static")
pages = Blueprint("pages", __name__, static_folder=str(STATIC), static_url_path="/static")


@pages.get("/")
def learner_page():
    response = send_from_directory(STATIC, "index.html", max_age=0)
    # The page talks only to this server; nothing else may run in it.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
