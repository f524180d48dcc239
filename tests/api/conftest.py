"""An API on an empty store (SQLite, and PostgreSQL when a server is given) holding the
demo framework and items, with parameters drawn once from a seeded generator, an admin
key, a delivery key and two tests."""

import json
import pathlib

import numpy as np
import pytest

from irtcat.api.app import close_app, create_app
from irtcat.api.worker import background_worker
from irtcat.delivery.keys import create_key

DEMO = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo"
CREDENTIAL_CONFIG = {"stop": {"min_items": 5, "max_items": 12, "se": 0.3,
                              "classification": {"cut": 0.5}},
                     "pretest": {"count": 1}}


def demo_items(seed=2026):
    """The demo items, the operational ones with 2PL or GRM parameters."""
    document = json.loads((DEMO / "items.json").read_text())
    rng = np.random.default_rng(seed)
    for item in document["items"]:
        if item["status"] == "pretest":
            continue
        item["a"] = round(float(rng.lognormal(0.2, 0.25)), 3)
        if item["model"] == "grm":
            item["b"] = sorted(round(float(v), 3) for v in rng.normal(0, 1, 2))
        else:
            item["b"] = round(float(rng.normal(0, 1)), 3)
    return document


class Api:
    """A test client with the keys and helpers to call the API as each role."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.store = app.extensions["irtcat"]["store"]
        self.admin = create_key(self.store.database, "admin")
        self.delivery = create_key(self.store.database, "delivery")

    def call(self, method, path, key=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def start(self, test_id="credential", learner_id="learner-1"):
        response = self.call("POST", "/v1/sessions", self.delivery,
                             json={"test_id": test_id, "learner_id": learner_id})
        assert response.status_code == 201, response.json
        return response.json

    def job_done(self, answer, polls=600):
        """`answer` itself, or, when it is a 202, the result of the job it names once
        that job is done or failed (polled every 0.1 s, at most `polls` times)."""
        if answer.status_code != 202:
            return answer
        job = answer.headers["Location"]
        for _ in range(polls):
            if self.call("GET", job, self.admin).json["status"] in ("done", "failed"):
                break
            self.worker.thread.join(0.1)
        return self.call("GET", f"{job}/result", self.admin)

    def answer(self, session, item_id, response, key=None):
        return self.call("POST", f"/v1/sessions/{session['session_id']}/responses",
                         key or session["token"],
                         json={"item_id": item_id, "response": response})


@pytest.fixture
def api(migrated_database_url):
    """The app on a store at this release's schema (as after `irtcat db upgrade`: the
    app does not migrate)."""
    database_url = migrated_database_url
    app = create_app({"DATABASE_URL": database_url})
    api = Api(app)
    api.store.import_framework(json.loads((DEMO / "framework.json").read_text()))
    api.store.import_items(demo_items())
    for body in ({"id": "credential", "title": "AI practitioner credential",
                  "standards": ["AI-ML", "AI-DE", "AI-RAI"], "config": CREDENTIAL_CONFIG},
                 {"id": "ml", "title": "Machine learning fundamentals", "standards": ["AI-ML"],
                  "config": {"stop": {"max_items": 8, "se": 0.35}}},
                 {"id": "open", "title": "Machine learning, on the learner page",
                  "standards": ["AI-ML"], "config": {"stop": {"max_items": 6}},
                  "public": True, "feedback": True}):
        assert api.call("POST", "/v1/tests", api.admin, json=body).status_code == 201
    with background_worker(database_url, poll=0.02) as worker:   # runs the long work
        api.worker = worker
        yield api
    close_app(app)
