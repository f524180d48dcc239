"""A multidimensional test through the delivery API: a credential over three standards
whose bank versions are one seeded 3-factor bank.

The reference is the engine itself: `engine.mcat.McatSession` run directly on the same
items, population and design (built here from the engine's classes, not from the test's
configuration), with the seed the store kept for the session and the same answers (drawn
once from the model at a true θ, simulation truth). The HTTP session must give the same
items in the same order, the same per-factor θ and SE (to the result's 4 decimals), the
same composite and decision, and a stored trace equal to the engine's step traces.
"""

import copy

import numpy as np
import pytest

from irtcat.api.app import close_app, create_app
from irtcat.delivery.keys import create_key
from irtcat.engine.mcat import McatDesign, McatSession, McatTables, draw_answers
from irtcat.engine.multidimensional import MultidimensionalItems, latent_population
from irtcat.itembank.database import Database, upgrade
from irtcat.itembank.sessions import session_snapshot

FACTORS = ["F1", "F2", "F3"]
FRAMEWORK = {"format": "irtcat-framework/1", "standards": [
    {"code": code, "title": f"Standard {code}", "parent": None,
     "levels": [{"name": "proficient", "cut": 0.0}]} for code in FACTORS]}
CORRELATION = [[1.0, 0.5, 0.6], [0.5, 1.0, 0.7], [0.6, 0.7, 1.0]]
DIMENSIONS = {"factors": FACTORS, "structure": "confirmatory", "mean": [0.0, 0.0, 0.0],
              "correlation": CORRELATION, "rotation": None}
WEIGHTS = [0.4, 0.3, 0.3]
CUT = 0.2
CONFIG = {"selection": {"method": "dprule"},
          "stop": {"min_items": 6, "max_items": 14, "se": 0.45,
                   "classification": {"cut": CUT, "weights": WEIGHTS}}}
TRUE_THETA = [0.8, -0.3, 0.5]
OPTIONS = ["A", "B", "C", "D"]


def bank_document(seed=18):
    """10 items per factor (the first two of each also load on the next factor), the
    last of each a 3-category graded item; every item keyed, with options."""
    rng = np.random.default_rng(seed)
    items = []
    for f, code in enumerate(FACTORS):
        for k in range(10):
            slopes = [0.0, 0.0, 0.0]
            slopes[f] = round(float(rng.uniform(0.8, 2.0)), 3)
            if k < 2:
                slopes[(f + 1) % 3] = round(float(rng.uniform(0.3, 0.8)), 3)
            item = {"id": f"{code}-{k:02d}", "standard": code, "a": slopes,
                    "content": {"stem": f"Question {code}-{k}",
                                "options": [{"id": o, "text": o} for o in OPTIONS]}}
            if k == 9:
                high = float(rng.uniform(0.5, 1.5))
                item.update(model="grm", d=[round(high, 3), round(high - 1.6, 3)],
                            key={"scores": {"A": 0, "B": 1, "C": 2, "D": 0}})
            else:
                item.update(model="2pl", d=round(float(rng.normal(0, 1)), 3),
                            key={"correct": "B"})
            items.append(item)
    return {"format": "irtcat-bank/1", "metric": "logistic",
            "population": {"mean": 0.0, "sd": 1.0}, "dimensions": DIMENSIONS, "items": items}


def engine_items():
    return MultidimensionalItems.from_entries(
        [{name: item[name] for name in ("id", "standard", "model", "a", "d") if name in item}
         for item in bank_document()["items"]], DIMENSIONS)


def true_answers():
    """{item id: category} of one learner at TRUE_THETA (simulation truth, seed 5)."""
    items = engine_items()
    drawn = draw_answers(items, np.array([TRUE_THETA]), np.random.default_rng(5))[0]
    return dict(zip(items.ids, (int(x) for x in drawn), strict=True))


def option_of(item_id, category):
    """The option the learner picks to score `category` on `item_id`."""
    if item_id.endswith("-09"):
        return "ABC"[category]
    return "B" if category == 1 else "A"


def engine_reference(seed, randomesque=1, **classification):
    """The engine's session with `seed` answered with `true_answers`: (item ids, result,
    step traces with item ids); `classification` McatDesign's fields of the SPRT."""
    items = engine_items()
    mean, correlation = latent_population(DIMENSIONS)
    design = McatDesign(criterion="dprule", min_items=6, max_items=14, se=(0.45,) * 3,
                        composite_weights=tuple(WEIGHTS), cut=CUT,
                        exposure="randomesque" if randomesque > 1 else "none",
                        randomesque=randomesque, **classification)
    session = McatSession(McatTables(items, mean, correlation, design), seed)
    answers, given, steps = true_answers(), [], []
    while (position := session.next_item()) is not None:
        steps.append(session.last_step)
        given.append(items.ids[position])
        session.answer(position, answers[items.ids[position]])
    steps.append(session.last_step)
    for step in steps:
        if "item" in step:
            step["item"] = items.ids[step["item"]]
            step["candidates"] = [{"item_id": items.ids[j], "value": value}
                                  for j, value in step["candidates"]]
    return given, session.result(), steps


class Client:
    """An app on `database_url` with an admin and a delivery key; `restart` makes a fresh
    app on the same database (another worker, or the same after a restart)."""

    def __init__(self, database_url):
        self.url = database_url
        self.app = create_app({"DATABASE_URL": database_url})
        store = self.app.extensions["irtcat"]["store"]
        self.admin = create_key(store.database, "admin")
        self.delivery = create_key(store.database, "delivery")

    @property
    def store(self):
        return self.app.extensions["irtcat"]["store"]

    def call(self, method, path, key=None, **kwargs):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.app.test_client().open(path, method=method, headers=headers, **kwargs)

    def restart(self):
        close_app(self.app)
        self.app = create_app({"DATABASE_URL": self.url})

    def close(self):
        close_app(self.app)


@pytest.fixture
def client(database_url):
    database = Database(database_url)
    upgrade(database)
    database.dispose()
    api = Client(database_url)
    api.store.import_framework(FRAMEWORK)
    api.store.import_items(copy.deepcopy(bank_document()))
    yield api
    api.close()


def define(client, test_id, config, feedback=True):
    body = {"id": test_id, "standards": FACTORS, "config": config, "feedback": feedback}
    created = client.call("POST", "/v1/tests", client.admin, json=body)
    assert created.status_code == 201, created.json


def run_session(client, test_id, restart_after=None):
    """A whole session over HTTP answered with `true_answers`; a fresh app after the
    answer numbered `restart_after`. Returns (start, last state, items given)."""
    answers = true_answers()
    started = client.call("POST", "/v1/sessions", client.delivery,
                          json={"test_id": test_id, "learner_id": "learner-m"})
    assert started.status_code == 201, started.json
    state, given = started.json, []
    while state["item"] is not None:
        item_id = state["item"]["item_id"]
        given.append(item_id)
        answered = client.call("POST", f"/v1/sessions/{started.json['session_id']}/responses",
                               started.json["token"],
                               json={"item_id": item_id,
                                     "response": option_of(item_id, answers[item_id])})
        assert answered.status_code == 200, answered.json
        state = answered.json
        if len(given) == restart_after:
            client.restart()
    return started.json, state, given


def stored_seed(client, session_id):
    return session_snapshot(client.store.database, session_id)[0].seed


@pytest.mark.parametrize("restart_after", [None, 3])
def test_a_session_over_http_is_the_engines_session(client, restart_after):
    define(client, "mcred", CONFIG)
    started, state, given = run_session(client, "mcred", restart_after)
    reference, engine, _ = engine_reference(stored_seed(client, started["session_id"]))
    assert given == reference and state["status"] == "finished"
    result = client.call("GET", f"/v1/sessions/{started['session_id']}/result",
                         client.delivery).json
    assert [answer["item_id"] for answer in result["responses"]] == reference
    for f, code in enumerate(FACTORS):
        assert result["thetas"][code]["theta"] == pytest.approx(engine.theta[f], abs=5e-5)
        assert result["thetas"][code]["se"] == pytest.approx(engine.se[f], abs=5e-5)
        standard = result["standards"][f]
        assert standard["code"] == code and standard["theta"] == result["thetas"][code]["theta"]
        assert standard["level"] == ("proficient" if engine.theta[f] >= 0 else None)
    assert result["theta"] == result["composite"]["theta"] == pytest.approx(
        engine.composite, abs=5e-5)
    assert result["se"] == result["composite"]["se"] == pytest.approx(engine.composite_se,
                                                                       abs=5e-5)
    assert result["composite"]["weights"] == dict(zip(FACTORS, WEIGHTS, strict=True))
    assert result["decision"] == {"cut": CUT, "pass": engine.decision == 1, "method": "ci"}
    assert state["result"]["thetas"] == result["thetas"]           # the learner's feedback
    assert all("score" not in answer or answer["score"] is None
               for answer in result["responses"])


def test_a_session_classified_by_the_sprt_runs_to_the_engines_decision(client):
    # no SE rule: the test ends when the SPRT on the composite decides (or at 14 items)
    rule = {"cut": CUT, "method": "sprt", "delta": 0.4, "alpha": 0.1, "beta": 0.1,
            "weights": WEIGHTS}
    define(client, "msprt", {"selection": {"method": "dprule"},
                             "stop": {"min_items": 6, "max_items": 14,
                                      "classification": rule}})
    started, state, given = run_session(client, "msprt", restart_after=2)
    design = {"classification": "sprt", "delta": 0.4, "alpha": 0.1, "beta": 0.1}
    reference, engine, steps = engine_reference(stored_seed(client, started["session_id"]),
                                                **design)
    # measured: 8 items, the SPRT's log ratio 2.32 past log(0.9/0.1) = 2.20, pass (the true
    # composite is 0.38 > 0.2); the same learner under CONFIG (SE 0.45 and the CI) takes 14
    assert given == reference and len(given) < 14 and steps[-1]["stop"] == "rules_met"
    assert state["status"] == "finished" and engine.decision != 0
    result = client.call("GET", f"/v1/sessions/{started['session_id']}/result",
                         client.delivery).json
    assert result["decision"] == {"cut": CUT, "pass": engine.decision == 1, "method": "sprt"}


def test_a_fresh_app_between_two_answers_changes_nothing_under_randomesque(client):
    # randomesque draws from the session's generator: a rebuilt session must draw the same
    config = {**CONFIG, "exposure": {"method": "randomesque", "k": 3}}
    define(client, "mrand", config)
    counts = {}
    for restart_after in (1, 2, 4):
        started, _, given = run_session(client, "mrand", restart_after)
        reference, _, _ = engine_reference(stored_seed(client, started["session_id"]), 3)
        assert given == reference
        for item_id in given:
            counts[item_id] = counts.get(item_id, 0) + 1
    # live exposure counts each item given once per session, as for other tests
    exposure = client.call("GET", "/v1/tests/mrand/exposure", client.admin)
    assert exposure.status_code == 200, exposure.json
    assert exposure.json["sessions"] == 3
    assert {item["item_id"]: item["administered"] for item in exposure.json["items"]} == counts


def test_the_trace_is_the_engines_and_admin_only(client):
    define(client, "mtrace", CONFIG)
    started, _, given = run_session(client, "mtrace", restart_after=2)
    path = f"/v1/sessions/{started['session_id']}/trace"
    assert client.call("GET", path, client.delivery).status_code == 403
    assert client.call("GET", path, started["token"]).status_code == 403
    trace = client.call("GET", path, client.admin)
    assert trace.status_code == 200, trace.json
    _, _, steps = engine_reference(stored_seed(client, started["session_id"]))
    assert trace.json["steps"] == steps
    assert [step["item"] for step in steps[:-1]] == given
    assert steps[-1]["stop"] in ("rules_met", "max_items")


def test_the_item_a_learner_sees_holds_no_parameters_and_no_key(client):
    define(client, "mview", CONFIG)
    started = client.call("POST", "/v1/sessions", client.delivery,
                          json={"test_id": "mview", "learner_id": "learner-v"}).json
    assert set(started["item"]) == {"item_id", "stem", "options", "position"}
    assert all(set(option) == {"id", "text"} for option in started["item"]["options"])


@pytest.mark.parametrize("config, message", [
    ({"selection": {"method": "mfi"}}, "selection.method 'mfi'"),
    ({"stop": {"se": {"F1": 0.3}}}, "stop.se: give one value per factor"),
    ({"stop": {"composite": {"weights": [1, 1]}}}, "stop.composite.weights: a list of 3"),
    ({"stop": {"classification": {"cut": 0, "method": "glr"}}}, "by ci or sprt"),
    ({"stop": {"classification": {"cut": 0, "method": "sprt", "delta": -0.1}}},
     "stop.classification.delta must be > 0"),
    ({"stop": {"classification": {"cut": 0, "method": "sprt", "weights": [1, 1]}}},
     "stop.classification.weights: a list of 3"),
    ({"content": [{"standard": "F9", "min": 1}]}, "no item of the bank has standard 'F9'"),
])
def test_a_configuration_that_does_not_fit_the_bank_is_a_422(client, config, message):
    answer = client.call("POST", "/v1/tests", client.admin,
                         json={"id": "bad", "standards": FACTORS, "config": config})
    assert answer.status_code == 422, answer.json
    assert message in answer.json["error"]["message"]


def test_a_simulation_job_of_a_multidimensional_test_is_refused_before_it_is_queued(client):
    define(client, "msim", CONFIG)
    answer = client.call("POST", "/v1/simulations", client.admin,
                         json={"test_id": "msim", "examinees": 10, "seed": 1})
    assert answer.status_code == 409, answer.json
    assert "irtcat simulate" in answer.json["error"]["message"]
