"""Delivery: tests, sessions, scoring, keys and tokens, and queued long work.

Sits between storage (`irtcat.itembank`) and the HTTP API and command line
(`irtcat.api`): it uses the store's repositories and the engine, and imports
neither SQLAlchemy nor Flask. One module per concept:

- `sessions`: `Delivery`, starting, answering, finishing sessions and their results;
- `definitions`: test definitions (create, list, the learner page's public tests);
- `test_banks`: a test's bank under pinned versions in the engine's arrays;
- `results`: a session's θ, SE, per-standard levels and decision;
- `scoring`: scoring without a session (`POST /v1/score`);
- `keys`: API keys, session tokens, authentication and revocation;
- `caches`: what one worker keeps (bounded caches; items and standards as read);
- `errors`: the exceptions of delivering;
- `cat_config`: the CAT configuration JSON read into the engine's design;
- `calibration_runs`: calibration runs as a workflow over the store.

Importing this package imports none of them.
"""
