"""Delivering tests: API keys, tests, sessions and their answers, scoring.

A session's state is its stored responses plus the item chosen next; any
worker rebuilds the engine's one-examinee batch from them (`engine.cat`), so a
server killed and restarted resumes every session where it was. An answer is
applied with a compare-and-set on the session's position inside one short
transaction, with the (session, item) unique constraint behind it: concurrent
duplicates are applied once, and a 2xx is sent only after the commit.

Nothing here returns an answer key or item parameters except the functions
documented as admin views.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine import DICHOTOMOUS_MODELS, ItemParameters, estimate_theta
from engine.cat import (
    BankTables,
    group_estimates,
    next_session_item,
    rebuild_session,
    record,
)

from .bank import ItemBank
from .cat_config import design_from_config
from .io import DataFormatError
from .schema import ApiKey, DeliverySession, Item, Response, Test, utc_now
from .store import NotFoundError

KEY_PREFIX = "irtk_"
TOKEN_PREFIX = "irts_"
CACHED_TESTS = 32
CACHED_SESSIONS = 4096
CACHED_ITEMS = 50_000
ITEM_CACHE_SECONDS = 10.0       # an edited stem, option or key reaches every worker within
ANSWER_ATTEMPTS = 8


class ConflictError(RuntimeError):
    """A request that contradicts the session's state (HTTP 409); one-line message."""


class InvalidAnswerError(ValueError):
    """An answer that is not one of the item's options or categories (HTTP 422)."""


def digest(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# --- keys ---------------------------------------------------------------------------------

def create_key(database, role, name=""):
    """A new API key of `role`; returns the key itself, which is stored only hashed."""
    if role not in ("admin", "delivery"):
        raise DataFormatError(f"role must be admin or delivery, got {role!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with database.writing() as session:
        session.add(ApiKey(prefix=key[:12], digest=digest(key), role=role, name=name))
    return key


def revoke_key(database, prefix):
    """Revoke the key(s) starting with `prefix` (at least 12 characters); returns how many."""
    if len(prefix) < 12:
        raise DataFormatError("give at least the first 12 characters of the key")
    with database.writing() as session:
        rows = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix[:12],
                                                    ApiKey.revoked_at.is_(None))).all()
        rows = [row for row in rows if len(prefix) == 12 or digest(prefix) == row.digest]
        for row in rows:
            row.revoked_at = utc_now()
        return len(rows)


def list_keys(database):
    with database.reading() as session:
        rows = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
        return [{"prefix": row.prefix, "role": row.role, "name": row.name,
                 "created_at": row.created_at.isoformat(),
                 "revoked": row.revoked_at is not None} for row in rows]


def authenticate(database, secret):
    """``("key", id, role)``, ``("token", session_id, None)`` or None for `secret`."""
    with database.read_connection() as session:
        if secret.startswith(KEY_PREFIX):
            row = session.execute(select(ApiKey.id, ApiKey.role, ApiKey.revoked_at)
                                  .where(ApiKey.digest == digest(secret))).one_or_none()
            if row is not None and row.revoked_at is None:
                return "key", row.id, row.role
        elif secret.startswith(TOKEN_PREFIX):
            session_id = session.scalar(select(DeliverySession.id).where(
                DeliverySession.token_digest == digest(secret)))
            if session_id is not None:
                return "token", session_id, None
    return None


# --- the bank of a test -----------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TestBank:
    """What sessions of one test under pinned versions need, built once per worker.

    `items`: per position ``{"id", "standard", "model", "status", "version_id"}``;
    `excluded`: retired items, never selected.
    """

    __test__ = False

    bank: ItemBank
    design: object
    tables: BankTables
    items: tuple
    position: dict
    excluded: np.ndarray


def _placeholder(model, key):
    """Parameters for a pretest item awaiting calibration: never scored, only delivered."""
    if model in DICHOTOMOUS_MODELS:
        return {"model": "2pl", "a": 1.0, "b": 0.0}
    steps = max((key or {}).get("scores", {"0": 0, "1": 1}).values())
    return {"model": "grm", "a": 1.0, "b": list(np.linspace(-1.0, 1.0, steps))}


def _params_of(entries):
    rows = list(entries)
    b = [p["b"] if isinstance(p["b"], list) else [p["b"]] for p in rows]
    width = max(len(row) for row in b)
    b = np.array([row + [np.nan] * (width - len(row)) for row in b], dtype=float)
    return ItemParameters.create([p["model"] for p in rows], [p.get("a", 1.0) for p in rows],
                                 b, c=[p.get("c", 0.0) for p in rows],
                                 u=[p.get("u", 1.0) for p in rows])


@dataclass(eq=False)
class _Live:
    """A session's engine state, kept by the worker that served its last step so that
    its next answer needs no read: valid while the stored position is `position`."""

    position: int
    current_item: str
    built: TestBank
    batch: object                 # the engine's one-examinee CATBatch
    test_id: str
    learner_id: str
    seed: int


class Delivery:
    """Tests, sessions and scoring on a `Store`."""

    def __init__(self, store):
        self.store = store
        self.database = store.database
        self._banks = OrderedDict()
        self._tests = {}                  # tests never change once created
        self._items = {}                  # item_id -> (loaded at, model, content, key)
        self._live = OrderedDict()        # session_id -> _Live
        self._tokens = OrderedDict()      # token digest -> session id (never changes)
        self._owners = OrderedDict()      # session id -> id of the key that started it
        self._standards = {}              # code -> (loaded at, title, levels)
        self._lock = threading.Lock()

    def authenticate(self, secret):
        """`authenticate` with session tokens remembered: a token opens one session for
        good, so only keys (which can be revoked) are looked up every time."""
        if not secret.startswith(TOKEN_PREFIX):
            return authenticate(self.database, secret)
        token_digest = digest(secret)
        with self._lock:
            session_id = self._tokens.get(token_digest)
        if session_id is not None:
            return "token", session_id, None
        found = authenticate(self.database, secret)
        if found is not None:
            with self._lock:
                _remember(self._tokens, token_digest, found[1], CACHED_SESSIONS)
        return found

    # --- tests ------------------------------------------------------------------------

    def create_test(self, test_id, title, standards, config, public=False, feedback=False):
        """Store a test; the configuration is checked against the published banks.

        `public`: listed on the learner page and startable there without a key;
        `feedback`: a finished session shows its learner θ, levels and the decision."""
        if not isinstance(standards, list) or not standards:
            raise DataFormatError("standards must be a non-empty list of codes")
        for code in standards:
            self.store.standard(code)                         # NotFoundError if unknown
        if not isinstance(config, dict):
            raise DataFormatError("config must be an object (the CAT configuration)")
        try:
            versions = self.store.current_version_ids(standards)
        except NotFoundError:
            versions = None                # nothing published yet: checked when it is
        if versions is not None:
            self._build(standards, config, versions)        # DataFormatError if invalid
        test_id = test_id or "t_" + secrets.token_hex(6)
        with self.database.writing() as session:
            if session.get(Test, test_id) is not None:
                raise ConflictError(f"test {test_id!r} already exists")
            session.add(Test(id=test_id, title=title or test_id, standards=standards,
                             config=config, public=bool(public), feedback=bool(feedback)))
        return self.test(test_id)

    def test(self, test_id):
        cached = self._tests.get(test_id)
        if cached is not None:
            return cached
        with self.database.reading() as session:
            row = session.get(Test, test_id)
            if row is None:
                raise NotFoundError(f"no test {test_id!r}")
            found = _test_view(row)
        with self._lock:
            self._tests[test_id] = found
        return found

    def tests(self):
        with self.database.reading() as session:
            rows = session.scalars(select(Test).order_by(Test.created_at, Test.id)).all()
            return [_test_view(row) for row in rows]

    def public_tests(self):
        """The tests the learner page lists: ``[{"id", "title", "standards": [{"code",
        "title"}], "max_items"}]``; the configuration stays private."""
        with self.database.reading() as session:
            ids = session.scalars(select(Test.id).where(Test.public.is_(True))
                                  .order_by(Test.created_at, Test.id)).all()
        listed = []
        for test_id in ids:
            test = self.test(test_id)
            try:
                built = self.test_bank(test_id, self.store.current_version_ids(test["standards"]))
            except (NotFoundError, DataFormatError):
                continue                  # nothing published yet, or a bank it cannot use
            listed.append({"id": test_id, "title": test["title"],
                           "standards": [{"code": code, "title": self._standard(code)[0]}
                                         for code in test["standards"]],
                           "max_items": built.design.max_items})
        return listed

    def test_bank(self, test_id, versions, given=()):
        """The `TestBank` of a test under pinned `versions` ({code: version id}), cached.

        `given`: ids of items a session was given that the bank would not hold any more
        (pretest items since calibrated or retired); they are kept as pretest items."""
        test = self.test(test_id)
        cache_key = (test_id, tuple(sorted(versions.items())), tuple(sorted(given)))
        with self._lock:
            cached = self._banks.get(cache_key)
            if cached is not None:
                self._banks.move_to_end(cache_key)
                return cached
        built = self._build(test["standards"], test["config"], versions, given)
        with self._lock:
            _remember(self._banks, cache_key, built, CACHED_TESTS)
        return built

    def _session_bank(self, row, answers):
        """The bank of a session: its test's under its pinned versions, holding every item
        the session was given."""
        built = self.test_bank(row.test_id, row.versions)
        given = ({answer[0] for answer in answers} | {row.current_item}) - {None}
        missing = given - set(built.position)
        return self.test_bank(row.test_id, row.versions, missing) if missing else built

    def _build(self, standards, config, versions, given=()):
        entries, items = [], []
        with self.database.reading() as session:
            rows = {row.id: row for row in session.scalars(
                select(Item).where(Item.standard_code.in_(standards)))}
        for code in standards:
            loaded = self.store.delivery_bank(version_id=versions[code])
            columns = self.store.version_columns(versions[code])
            for position, item in enumerate(loaded.bank.items):
                entries.append({name: columns[name][position]
                                for name in ("model", "a", "b", "c", "u")})
                items.append({**item, "version_id": versions[code]})
            in_version = {item["id"] for item in loaded.bank.items}
            for row in rows.values():                    # pretest items awaiting calibration
                if row.standard_code == code and row.id not in in_version \
                        and (row.status == "pretest" or row.id in given):
                    entries.append(_placeholder(row.model, row.key))
                    items.append({"id": row.id, "standard": code, "model": row.model,
                                  "status": "pretest", "version_id": versions[code]})
        for entry in entries:
            if isinstance(entry["b"], list):
                entry["b"] = [v for v in entry["b"] if v is not None]
        for item in items:
            row = rows.get(item["id"])
            item["tags"] = list(row.tags) if row is not None else []
            item["enemies"] = list(row.enemies) if row is not None else []
        position = {item["id"]: i for i, item in enumerate(items)}
        enemy_sets = [[item["id"], *[e for e in item["enemies"] if e in position]]
                      for item in items if any(e in position for e in item["enemies"])]
        config = {**config, "enemies": list(config.get("enemies", [])) + enemy_sets}
        bank = ItemBank(tuple(items), _params_of(entries))
        design = design_from_config(config, bank)
        groups = dict(design.groups)
        for code in standards:
            groups.setdefault(f"standard:{code}",
                              np.array([item["standard"] == code for item in items]))
        lower, upper = (float(v) for v in design.theta_range)
        if not np.isfinite(upper - lower):
            raise DataFormatError("scoring.quadrature.range is too wide")
        # A test never gives more items than its bank holds: bounds the session's arrays.
        design = replace(design, groups=groups, max_items=min(design.max_items, len(items)),
                         min_items=min(design.min_items, len(items)),
                         pretest_count=min(design.pretest_count, design.pretest_items.size))
        excluded = np.array([item["status"] == "retired" for item in items])
        return TestBank(bank, design, BankTables(bank.params, design), tuple(items), position,
                        excluded)

    # --- sessions ---------------------------------------------------------------------

    def start_session(self, test_id, learner_id, key_id=None, public=False):
        """Start a session; returns ``{"session_id", "token", "status", "position",
        "max_items", "item"}``. `public`: started from the learner page, without a key,
        which only a public test allows."""
        test = self.test(test_id)
        if public and not test["public"]:
            raise NotFoundError(f"no public test {test_id!r}")
        versions = self.store.current_version_ids(test["standards"])
        built = self.test_bank(test_id, versions)
        seed = secrets.randbits(62)
        batch = rebuild_session(built.tables, built.design, seed, [], [], built.excluded)
        first = next_session_item(batch, seed)
        if first is None:
            raise ConflictError(f"test {test_id!r} has no item to deliver")
        session_id = "s_" + secrets.token_hex(10)
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        with self.database.writing() as session:
            session.add(DeliverySession(
                id=session_id, test_id=test_id, learner_id=learner_id,
                token_digest=digest(token), key_id=key_id, status="active",
                versions=versions, seed=seed, current_item=built.items[first]["id"],
                position=1))
        self._keep(session_id, _Live(1, built.items[first]["id"], built, batch, test_id,
                                     learner_id, seed))
        with self._lock:
            _remember(self._tokens, digest(token), session_id, CACHED_SESSIONS)
        return {"session_id": session_id, "token": token, "status": "active", "position": 1,
                "max_items": built.design.max_items,
                "item": self._item_view(built.items[first]["id"], 1)}

    def _snapshot(self, session_id):
        """The session's row and its answers ``(item_id, raw_response, score)`` in order."""
        with self.database.read_connection() as session:
            row = session.execute(select(DeliverySession.__table__).where(
                DeliverySession.id == session_id)).one_or_none()
            if row is None:
                raise NotFoundError(f"no session {session_id!r}")
            answers = session.execute(
                select(Response.item_id, Response.raw_response, Response.score)
                .where(Response.session_id == session_id).order_by(Response.id)).all()
        return row, answers

    def _item(self, item_id):
        """``(model, content, key)`` of an item, read at most every ITEM_CACHE_SECONDS."""
        now = time.monotonic()
        cached = self._items.get(item_id)
        if cached is None or now - cached[0] > ITEM_CACHE_SECONDS:
            with self.database.reading() as session:
                row = session.execute(select(Item.model, Item.content, Item.key)
                                      .where(Item.id == item_id)).one_or_none()
            if row is None:
                raise NotFoundError(f"no item {item_id!r}")
            cached = (now, row.model, row.content, row.key)
            with self._lock:
                if len(self._items) > CACHED_ITEMS:
                    self._items.clear()
                self._items[item_id] = cached
        return cached[1:]

    def _standard(self, code):
        """``(title, levels that apply)`` of a standard, read at most every
        ITEM_CACHE_SECONDS."""
        now = time.monotonic()
        cached = self._standards.get(code)
        if cached is None or now - cached[0] > ITEM_CACHE_SECONDS:
            cached = (now, self.store.standard(code)["title"], self.store.levels_of(code))
            with self._lock:
                self._standards[code] = cached
        return cached[1:]

    def _item_view(self, item_id, position):
        """An item as a learner sees it: id, stem, options, position; nothing more."""
        content = self._item(item_id)[1] or {}
        return {"item_id": item_id, "stem": content.get("stem", ""),
                "options": [{"id": o["id"], "text": o["text"]}
                            for o in content.get("options", [])], "position": position}

    def state(self, session_id, snapshot=None):
        """``{"session_id", "status", "position", "max_items", "item"}``; `item` is None
        once finished, and then `result` is there too if the test gives feedback."""
        row, answers = snapshot or self._snapshot(session_id)
        item = None
        if row.status == "active" and row.current_item is not None:
            item = self._item_view(row.current_item, row.position)
        return self._state_view(row.id, row.test_id, self._session_bank(row, answers),
                                row.status, row.position, item, row.result)

    def _state_view(self, session_id, test_id, built, status, position, item, result):
        state = {"session_id": session_id, "status": status, "position": position,
                 "max_items": built.design.max_items, "item": item}
        if status == "finished" and result is not None and self.test(test_id)["feedback"]:
            state["result"] = {name: result[name]
                               for name in ("theta", "se", "standards", "decision")}
        return state

    def owner_key(self, session_id):
        """The id of the key that started the session (None: the learner page), which
        never changes; remembered."""
        with self._lock:
            if session_id in self._owners:
                return self._owners[session_id]
        with self.database.read_connection() as session:
            found = session.execute(select(DeliverySession.key_id).where(
                DeliverySession.id == session_id)).one_or_none()
        if found is None:
            raise NotFoundError(f"no session {session_id!r}")
        with self._lock:
            _remember(self._owners, session_id, found.key_id, CACHED_SESSIONS)
        return found.key_id

    def answer(self, session_id, item_id, response):
        """Record the answer to the current item and move on; idempotent for a repeat.

        When this worker served the session's last step it holds the engine state and
        writes at once, the compare-and-set on the position standing in for a read;
        otherwise (or when the write finds the session moved) it reads the session,
        rebuilds the state from the stored answers and tries again."""
        with self._lock:
            live = self._live.get(session_id)
        if live is not None and item_id == live.current_item:
            at = live.built.position[item_id]
            score = self._score_answer(item_id, response,
                                       int(live.built.bank.params.n_categories[at]))
            with self._lock:
                live = self._live.pop(session_id, None)     # one request steps it at a time
            if live is not None and item_id == live.current_item:
                done = self._step(session_id, live, item_id, response, score, at)
                if done is not None:
                    return done
        for _ in range(ANSWER_ATTEMPTS):
            row, answers = self._snapshot(session_id)
            given = {answer.item_id: answer for answer in answers}
            if item_id in given:
                if given[item_id].raw_response == _raw(response):
                    return self.state(session_id, (row, answers))
                raise ConflictError(f"item {item_id!r} was already answered with another "
                                    "response")
            if row.status != "active":
                raise ConflictError("the session is finished")
            if item_id != row.current_item:
                raise ConflictError(f"item {item_id!r} is not the current item")
            built = self._session_bank(row, answers)
            at = built.position[item_id]
            score = self._score_answer(item_id, response,
                                       int(built.bank.params.n_categories[at]))
            live = _Live(row.position, row.current_item, built,
                         self._rebuild(built, row, answers), row.test_id, row.learner_id,
                         row.seed)
            done = self._step(session_id, live, item_id, response, score, at)
            if done is not None:
                return done
        raise ConflictError("the session is being answered concurrently; try again")

    def _step(self, session_id, live, item_id, response, score, at):
        """Record the answer in `live`, choose the next item and commit both if the stored
        session is still at `live.position`; the new state, or None if it moved."""
        built, batch = live.built, live.batch
        record(batch, np.array([0]), np.array([at]), np.array([score]))
        next_position = next_session_item(batch, live.seed)
        finished = next_position is None
        values = {"position": live.position + (0 if finished else 1),
                  "current_item": None if finished else built.items[next_position]["id"]}
        if finished:
            values.update(status="finished", finished_at=utc_now(),
                          result=self._result(built, batch, live.test_id))
        item = built.items[at]
        try:
            with self.database.write_connection() as session:
                moved = session.execute(_MOVE, {**values, "moving": session_id,
                                                "from_position": live.position}).rowcount
                if moved != 1:
                    raise _Retry
                session.execute(_RECORD, {
                    "session_id": session_id, "learner_id": live.learner_id,
                    "item_id": item_id, "raw_response": _raw(response), "score": score,
                    "responded_at": utc_now(), "bank_version_id": item["version_id"],
                    "pretest": bool(item["status"] == "pretest")})
        except (_Retry, IntegrityError):
            return None                                   # another request moved it first
        if not finished:
            self._keep(session_id, replace(live, position=values["position"],
                                           current_item=values["current_item"]))
        return self._state_view(
            session_id, live.test_id, built, "finished" if finished else "active",
            values["position"],
            None if finished else self._item_view(values["current_item"], values["position"]),
            values.get("result"))

    def _keep(self, session_id, live):
        """Keep a session's engine state for its next answer on this worker. Not under
        Sympson-Hetter, whose rejected items are not replayed by a rebuild."""
        if live.built.design.exposure == "sympson-hetter":
            return
        with self._lock:
            _remember(self._live, session_id, live, CACHED_SESSIONS)

    def finish(self, session_id):
        """End a session early and score it; finishing a finished session changes nothing."""
        for _ in range(ANSWER_ATTEMPTS):
            row, answers = self._snapshot(session_id)
            if row.status == "finished":
                return self.state(session_id, (row, answers))
            built = self._session_bank(row, answers)
            batch = self._rebuild(built, row, answers)
            values = {"status": "finished", "finished_at": utc_now(), "current_item": None,
                      "position": len(answers),
                      "result": self._result(built, batch, row.test_id)}
            with self.database.write_connection() as session:
                moved = session.execute(_MOVE, {**values, "moving": session_id,
                                                "from_position": row.position}).rowcount
            if moved == 1:
                return self.state(session_id)
        raise ConflictError("the session is being answered concurrently; try again")

    def result(self, session_id):
        """The delivery platform's view: θ, SE, per-standard levels, decision, answers."""
        row, answers = self._snapshot(session_id)
        if row.result is not None:
            summary = row.result
        else:
            built = self._session_bank(row, answers)
            summary = self._result(built, self._rebuild(built, row, answers), row.test_id)
        return {"session_id": row.id, "status": row.status, **summary,
                "responses": [{"item_id": a.item_id, "response": _parsed(a.raw_response),
                               "score": a.score} for a in answers]}

    def _rebuild(self, built, row, answers):
        positions = [built.position[a[0]] for a in answers]
        scores = [a[2] for a in answers]
        return rebuild_session(built.tables, built.design, row.seed, positions, scores,
                               built.excluded)

    def _result(self, built, batch, test_id):
        standards = self.test(test_id)["standards"]
        per_group = group_estimates(batch, [f"standard:{code}" for code in standards])
        out = []
        for code in standards:
            theta, se = per_group[f"standard:{code}"]
            if batch.group_counts[f"standard:{code}"][0] == 0:     # nothing answered here
                out.append({"code": code, "title": self._standard(code)[0],
                            "theta": None, "se": None, "level": None})
                continue
            out.append({"code": code, "title": self._standard(code)[0],
                        "theta": _finite(float(theta[0])),
                        "se": _finite(float(se[0])),
                        "level": _level(self._standard(code)[1], float(theta[0]))})
        rule = built.design.classification
        decision = None
        if rule is not None:
            # undecided (a session finished early) takes the side of theta, as the engine does
            side = batch.decision[0] if batch.decision[0] != 0 else \
                (1 if batch.theta[0] >= rule.cut else -1)
            decision = {"cut": rule.cut, "pass": bool(side == 1), "method": rule.method}
        return {"theta": _finite(float(batch.theta[0])), "se": _finite(float(batch.se[0])),
                "standards": out, "decision": decision}

    def _score_answer(self, item_id, response, n_categories):
        """The score of `response` to `item_id` from its key; InvalidAnswerError if not an
        option (or, for an item without a key, not one of its `n_categories`)."""
        model, content, key = self._item(item_id)
        if key is None:
            n = 2 if model in DICHOTOMOUS_MODELS else n_categories
            if isinstance(response, int) and not isinstance(response, bool) \
                    and 0 <= response < n:
                return response
            raise InvalidAnswerError(f"item {item_id!r} takes a category 0 to {n - 1}")
        options = [o["id"] for o in (content or {}).get("options", [])]
        if not isinstance(response, str) or response not in options:
            raise InvalidAnswerError(f"response must be one of the options "
                                     f"{', '.join(options)} of item {item_id!r}")
        if "correct" in key:
            return int(response == key["correct"])
        return int(key["scores"][response])

    # --- scoring without a session ------------------------------------------------------

    def score(self, answers, method="eap"):
        """θ and SE of a set of answered items under the published banks, overall and per
        standard: ``{"theta", "se", "standards": [{"code", "theta", "se", "level"}]}``."""
        if not isinstance(answers, list) or not answers:
            raise DataFormatError("responses must be a non-empty list of {item_id, response}")
        item_ids = [a["item_id"] for a in answers]
        if len(set(item_ids)) != len(item_ids):
            raise DataFormatError("an item appears twice in responses")
        with self.database.reading() as session:
            standard_of = dict(session.execute(select(Item.id, Item.standard_code)
                                               .where(Item.id.in_(item_ids))).all())
        missing = [i for i in item_ids if i not in standard_of]
        if missing:
            raise NotFoundError(f"no item {missing[0]!r}")
        published = {}                         # code -> (columns, {item_id: position})
        for code in dict.fromkeys(standard_of.values()):
            columns = self.store.version_columns(self.store.current_version_id(code))
            published[code] = columns, {item: at for at, item in enumerate(columns["id"])}
        entries, scores, codes = [], [], []
        for answer in answers:
            code = standard_of[answer["item_id"]]
            columns, positions = published[code]
            at = positions.get(answer["item_id"])
            if at is None:
                raise ConflictError(f"item {answer['item_id']!r} has no published parameters")
            entry = {name: columns[name][at] for name in ("model", "a", "b", "c", "u")}
            entries.append(entry)
            n_categories = 1 + len([v for v in entry["b"] if v is not None]) \
                if isinstance(entry["b"], list) else 2
            scores.append(self._score_answer(answer["item_id"], answer["response"],
                                             n_categories))
            codes.append(code)
        for entry in entries:
            if isinstance(entry["b"], list):
                entry["b"] = [v for v in entry["b"] if v is not None]
        params = _params_of(entries)
        responses = np.array([scores], dtype=float)
        overall = estimate_theta(responses, params, method)
        standards = []
        for code in dict.fromkeys(codes):
            mask = np.array([c == code for c in codes])
            estimate = estimate_theta(responses[:, mask], params.subset(np.flatnonzero(mask)),
                                      method)
            theta = float(estimate.theta[0])
            standards.append({"code": code, "theta": _finite(theta),
                              "se": _finite(float(estimate.se[0])),
                              "level": _level(self._standard(code)[1], theta)})
        return {"theta": _finite(float(overall.theta[0])), "se": _finite(float(overall.se[0])),
                "standards": standards}


class _Retry(Exception):
    pass


# An answer's two statements, built once: the compare-and-set that moves a session on
# (its SET clause from the parameters given) and the response row.
_MOVE = (update(DeliverySession.__table__)
         .where(DeliverySession.id == bindparam("moving"),
                DeliverySession.position == bindparam("from_position"),
                DeliverySession.status == "active"))
_RECORD = insert(Response.__table__)


def _remember(cache, key, value, limit):
    """Put `key` in an LRU `cache` (an OrderedDict, under the caller's lock), dropping the
    oldest entries beyond `limit`."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _test_view(row):
    return {"id": row.id, "title": row.title, "standards": row.standards,
            "config": row.config, "public": row.public, "feedback": row.feedback}


def _raw(response):
    """The stored text of a response (an option id, or a category number)."""
    return response if isinstance(response, str) else str(response)


def _parsed(raw):
    return int(raw) if raw is not None and raw.isdigit() else raw


def _finite(value):
    return round(value, 4) if np.isfinite(value) else None


def _level(levels, theta):
    """The highest level whose cut θ reaches, or None below the first cut."""
    reached = [level["name"] for level in levels if theta >= level["cut"]]
    return reached[-1] if reached else None
