"""`irtcat demo` (what `make run` runs): a working assessment service in one command.

On the database of IRTCAT_DATABASE_URL (default ``irtcat.db`` here) it
1. imports the demo framework (three AI skill standards with proficiency levels)
   and its items (question text, options, keys; no parameters yet);
2. simulates a response log: 1,500 learners answer every operational item, drawn
   from true parameters that follow each item's difficulty hint;
3. calibrates each standard from that log with irtcat's own MML-EM, and publishes;
4. defines a test per standard and a credential test over all three with a cut, and
   the career framework's job roles (demo/careers.json);
5. creates an admin and a delivery key and prints a copy-paste curl walk-through;
then serves the API on 127.0.0.1:8000 (``--port``; `make run PORT=8010`). Run
again, it reuses what is there. A port already in use is reported before anything
is made.
"""

from __future__ import annotations

import json
import sys

from .store_commands import counted

STANDARDS = ("AI-ML", "AI-DE", "AI-RAI")
LEARNERS = 1500
HINT_B = {"easy": -1.0, "medium": 0.0, "hard": 1.0}
CREDENTIAL = {"id": "ai-practitioner", "title": "AI practitioner credential",
              "standards": list(STANDARDS),
              "config": {"selection": {"method": "mfi", "randomesque": 4},
                         "content": [{"standard": code, "min": 4, "max": 10}
                                     for code in STANDARDS],
                         "stop": {"min_items": 12, "max_items": 30, "se": 0.3,
                                  "classification": {"cut": 0.5, "method": "sprt"}},
                         "pretest": {"count": 2}},
              "public": False, "feedback": False}
# The credential's form on the learner page: public, so it draws only the items tagged
# practice (never the credential's operational items, nor its pretest items).
PRACTICE_CREDENTIAL = {**CREDENTIAL, "id": "ai-practitioner-practice",
                       "title": "AI practitioner credential (practice)",
                       "config": {**CREDENTIAL["config"], "pretest": {"count": 0}},
                       "public": True, "feedback": True}
TITLES = {"AI-ML": "Machine learning fundamentals", "AI-DE": "Data engineering for AI",
          "AI-RAI": "Responsible AI"}


def _demo_document(name):
    from importlib import resources

    return json.loads((resources.files("irtcat.api") / "demo" / name).read_text(encoding="utf-8"))


def _simulated_log(items, rng):
    """Rows of the response log for `items` (item documents of one standard)."""
    from irtcat.engine import ItemParameters
    from irtcat.engine.simulate import simulate_responses

    operational = [item for item in items if item["status"] == "operational"]
    models, a, b = [], [], []
    for item in operational:
        center = HINT_B.get(item.get("difficulty"), 0.0) + rng.normal(0.0, 0.4)
        a.append(float(rng.lognormal(0.15, 0.25)))
        if item["model"] == "grm":
            models.append("grm")
            b.append([center - 0.8, center + 0.8])
        else:
            models.append("2pl")
            b.append(center)
    answers = simulate_responses(rng.standard_normal(LEARNERS),
                                 ItemParameters.create(models, a, b), rng)
    code = operational[0]["standard"]
    return [{"session_id": f"sim-{code}-{person}", "learner_id": f"sim-{person}",
             "item_id": item["id"], "raw_response": None, "score": int(answers[person, j])}
            for person in range(LEARNERS) for j, item in enumerate(operational)]


def prepare(store, rng, report=print):
    """Load the demo into `store` unless it is there; returns the Delivery service."""
    from irtcat.delivery.calibration_runs import calibrate_standard
    from irtcat.delivery.sessions import Delivery
    from irtcat.itembank.errors import NotFoundError

    delivery = Delivery(store)
    known = {standard["code"] for standard in store.standards()}
    if not set(STANDARDS) <= known:
        store.import_framework(_demo_document("framework.json"))
        report("Imported the framework: AI practitioner, with "
               + ", ".join(TITLES[c] for c in STANDARDS))
    items = _demo_document("items.json")["items"]
    store.import_items({"format": "irtcat-bank/1", "items": items})
    for code in STANDARDS:
        try:
            store.current_version_id(code)
            continue
        except NotFoundError:
            pass
        mine = [item for item in items if item["standard"] == code]
        if not store.response_log(code).response.size:
            store.add_responses(_simulated_log(mine, rng))
        run = calibrate_standard(store, code, standard_errors=False)
        store.publish(code, run["version"])
        record = run["result"]["calibration"]
        report(f"{code}: calibrated {counted(len(run['result']['items']), 'item')} from "
               f"{counted(run['n_responses'], 'simulated response')} (loglik "
               f"{record['loglik']:.1f}, {counted(record['iterations'], 'EM cycle')}), "
               f"published as version {run['version']}")
    existing = {test["id"] for test in delivery.tests()}
    for code in STANDARDS:
        test_id = code.lower()
        if test_id not in existing:
            delivery.create_test(test_id, TITLES[code], [code],
                                 {"selection": {"method": "mfi", "randomesque": 4},
                                  "stop": {"min_items": 5, "max_items": 20, "se": 0.35}},
                                 public=True, feedback=True)
    for test in (CREDENTIAL, PRACTICE_CREDENTIAL):
        if test["id"] not in existing:
            delivery.create_test(**{("test_id" if k == "id" else k): v
                                    for k, v in test.items()})
    if not delivery.careers.roles():
        roles = delivery.careers.replace_roles(_demo_document("careers.json"))
        report(f"Career framework: {counted(len(roles['created']), 'job role')}")
    return delivery


WALKTHROUGH = """
irtcat demo is ready: {n_tests} tests on {n_items} calibrated items.
  delivery key (for an LMS):           {delivery}
  admin key (for a psychometrician):   {admin}
Keys are shown once; only their hashes are stored.

Take a test in a browser: http://{host}:{port}/
Or be the LMS, in another terminal:

  K={delivery}
  curl -s {host}:{port}/v1/sessions -H "Authorization: Bearer $K" \\
       -H 'Content-Type: application/json' \\
       -d '{{"test_id": "ai-practitioner", "learner_id": "ada"}}'
  # -> {{"session_id": "s_...", "token": "irts_...", "item": {{"item_id": ..., "stem": ...}}}}
  S=<session_id>; I=<item_id from the item>
  curl -s {host}:{port}/v1/sessions/$S/responses -H "Authorization: Bearer $K" \\
       -H 'Content-Type: application/json' -d '{{"item_id": "'$I'", "response": "B"}}'
  # ... answer until "status": "finished", then:
  curl -s {host}:{port}/v1/sessions/$S/result -H "Authorization: Bearer $K"

The OpenAPI document: http://{host}:{port}/v1/openapi.json
"""


def run_demo(args):
    import numpy as np

    from irtcat.delivery.keys import create_key

    from .serve import _check_host, _check_port_free, migrated_database, run_serve
    from .store_commands import open_store

    if not args.no_serve:             # before making keys that a failed start would waste
        _check_host(args.host, False)
        _check_port_free(args.host, args.port)
    with migrated_database():
        pass
    rng = np.random.default_rng(args.seed)
    with open_store() as store:
        delivery = prepare(store, rng, report=lambda line: print(line, file=sys.stderr))
        admin = create_key(store.database, "admin", "demo")
        key = create_key(store.database, "delivery", "demo")
        n_items = sum(len(store.delivery_bank(code).bank.items) for code in STANDARDS)
        print(WALKTHROUGH.format(n_tests=len(delivery.tests()), n_items=n_items,
                                 delivery=key, admin=admin, host=args.host, port=args.port))
    if args.no_serve:
        return 0
    args.debug = False
    return run_serve(args)


def add_command(commands):
    commands.add_parser(
        "demo", help="load a demo framework, items and tests, and serve them (make run)",
        define=_define_demo)


def _define_demo(demo):
    from .arguments import whole_number
    from .serve import MAX_WORKERS

    demo.add_argument("--no-serve", action="store_true", help="prepare and print, do not serve")
    demo.add_argument("--seed", type=whole_number(0), default=2026,
                      help="of the simulated response log")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    demo.add_argument("--port", type=whole_number(1, 65535), default=8000,
                      help="TCP port to listen on")
    demo.add_argument("--workers", type=whole_number(1, MAX_WORKERS), default=3,
                      help="worker processes")
    demo.add_argument("--threads", type=whole_number(1, MAX_WORKERS), default=2,
                      help="threads per worker")
    demo.set_defaults(run=run_demo)
