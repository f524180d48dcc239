"""Delivering tests: API keys, tests, sessions and their answers, scoring.

A session's state is its stored responses plus the item chosen next; any
worker rebuilds the engine's session from them (`engine.session`), so a
server killed and restarted resumes every session where it was. An answer is
applied with a compare-and-set on the session's position inside one short
transaction, with the (session, item) unique constraint behind it: concurrent
duplicates are applied once, and a 2xx is sent only after the commit.

Nothing here returns an answer key or item parameters except the functions
documented as admin views, nor anything from which a caller could work them out:
a session's result gives no item scores, and scoring without a session takes item
scores (never options), at least MIN_SCORED_ITEMS operational items, and rounds
θ and SE to SCORE_DECIMALS (`score`). Items that cannot be scored there (unknown,
pretest, retired) are refused with one and the same message.

Tokens expire: a session's token works until `token_expires_at` (the test's
`token_ttl`, by default the time limit plus TOKEN_HOURS_PAST_LIMIT hours, or
UNTIMED_TOKEN_HOURS), stops with the key that started the session, and once the
session has finished only reads its final state for `finished_token_ttl`
seconds. A test's `time_limit` is enforced: an answer after the deadline is
refused and the session finished, scored on what was answered (mirtCAT's
`max_time`).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from irtcat.engine import DICHOTOMOUS_MODELS, ItemParameters, estimate_theta
from irtcat.engine.session import BankTables, Session

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
TOKEN_HOURS_PAST_LIMIT = 4      # a timed test's tokens live this long past its time limit
UNTIMED_TOKEN_HOURS = 24        # an untimed test's tokens live this long
FINISHED_TOKEN_SECONDS = 900    # a finished session's token reads its final state this long
REVOCATION_CHECK_SECONDS = 2.0  # a revoked key stops its sessions' tokens within this
MIN_SCORED_ITEMS = 10           # `score` takes at least this many items (and per standard)
SCORE_DECIMALS = 1              # `score` rounds θ and SE to this (a tenth of a typical SE)
PRACTICE_TAG = "practice"       # items a public test may show to anyone


class ConflictError(RuntimeError):
    """A request that contradicts the session's state (HTTP 409); one-line message."""


class InvalidAnswerError(ValueError):
    """An answer that is not one of the item's options or categories (HTTP 422)."""


class TokenExpiredError(RuntimeError):
    """A session token past its lifetime, or a finished session's token past its read
    window (HTTP 401, code ``token_expired``)."""


class TimeLimitError(ConflictError):
    """An answer after the test's time limit: the session is now finished (HTTP 409,
    code ``time_limit``)."""


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
    """``("key", id, role)`` for a live key, or None; tokens go through `token_grant`."""
    if not secret.startswith(KEY_PREFIX):
        return None
    with database.read_connection() as session:
        row = session.execute(select(ApiKey.id, ApiKey.role, ApiKey.revoked_at)
                              .where(ApiKey.digest == digest(secret))).one_or_none()
    if row is not None and row.revoked_at is None:
        return "key", row.id, row.role
    return None


@dataclass(frozen=True)
class TokenGrant:
    """What a session token opens, none of which ever changes: its session, the key that
    started it (None: the learner page) and when it expires (None: a session started
    before tokens expired, which then expires UNTIMED_TOKEN_HOURS after its start)."""

    session_id: str
    key_id: int | None
    expires_at: datetime


def token_grant(database, secret):
    """The `TokenGrant` of a session token, or None if no session has it."""
    with database.read_connection() as session:
        row = session.execute(select(DeliverySession.id, DeliverySession.key_id,
                                     DeliverySession.token_expires_at,
                                     DeliverySession.created_at)
                              .where(DeliverySession.token_digest == digest(secret))
                              ).one_or_none()
    if row is None:
        return None
    expires = row.token_expires_at or \
        _aware(row.created_at) + timedelta(hours=UNTIMED_TOKEN_HOURS)
    return TokenGrant(row.id, row.key_id, _aware(expires))


def key_revoked(database, key_id):
    with database.read_connection() as session:
        return session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == key_id)) \
            is not None


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
    """Parameters for an item without published ones (pretest, or retired since): what a
    session delivers it under and `score` scores it with; never in a session's θ."""
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
    batch: Session                # the engine's session
    test_id: str
    learner_id: str
    seed: int
    deadline: datetime | None = None


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
        self._revocations = {}            # key id -> (checked at, revoked)
        self._lock = threading.Lock()

    def authenticate(self, secret):
        """``("key", id, role)``, ``("token", session_id, None)`` or None for `secret`;
        TokenExpiredError for a token past its lifetime or whose key was revoked.

        A token's grant never changes, so it is remembered; whether its key was revoked
        since is looked up at most every REVOCATION_CHECK_SECONDS."""
        if not secret.startswith(TOKEN_PREFIX):
            return authenticate(self.database, secret)
        token_digest = digest(secret)
        with self._lock:
            grant = self._tokens.get(token_digest)
        if grant is None:
            grant = token_grant(self.database, secret)
            if grant is None:
                return None
            with self._lock:
                _remember(self._tokens, token_digest, grant, CACHED_SESSIONS)
        if utc_now() >= grant.expires_at:
            raise TokenExpiredError("this session token has expired")
        if grant.key_id is not None and self._revoked(grant.key_id):
            raise TokenExpiredError("this session token ended with the key that started it")
        return "token", grant.session_id, None

    def _revoked(self, key_id):
        now = time.monotonic()
        cached = self._revocations.get(key_id)
        if cached is None or now - cached[0] > REVOCATION_CHECK_SECONDS:
            cached = (now, key_revoked(self.database, key_id))
            with self._lock:
                self._revocations[key_id] = cached
        return cached[1]

    # --- tests ------------------------------------------------------------------------

    def create_test(self, test_id, title, standards, config, public=False, feedback=False,
                    *, time_limit=None, token_ttl=None, finished_token_ttl=None,
                    public_pool="practice"):
        """Store a test; the configuration is checked against the published banks.

        `public`: listed on the learner page and startable there without a key; it then
        draws only items tagged ``practice``, unless `public_pool` is ``"all"`` (the
        owner's explicit choice), and a test that is not public never draws them;
        `feedback`: a finished session shows its learner θ, levels and the decision;
        `time_limit`, `token_ttl`, `finished_token_ttl`: seconds (see the module)."""
        if not isinstance(standards, list) or not standards:
            raise DataFormatError("standards must be a non-empty list of codes")
        for code in standards:
            self.store.standard(code)                         # NotFoundError if unknown
        if not isinstance(config, dict):
            raise DataFormatError("config must be an object (the CAT configuration)")
        if public_pool not in ("practice", "all"):
            raise DataFormatError("public_pool must be practice or all")
        for name, seconds in (("time_limit", time_limit), ("token_ttl", token_ttl),
                              ("finished_token_ttl", finished_token_ttl)):
            if seconds is not None and not 1 <= seconds <= 366 * 86400:
                raise DataFormatError(f"{name} must be 1 to {366 * 86400} seconds")
        if time_limit is not None and token_ttl is not None and token_ttl < time_limit:
            raise DataFormatError("token_ttl must be at least the time limit")
        pool = _pool(public, public_pool)
        try:
            versions = self.store.current_version_ids(standards)
        except NotFoundError:
            versions = None                # nothing published yet: checked when it is
        if versions is not None:
            self._build(standards, config, versions, pool=pool)  # DataFormatError if invalid
        test_id = test_id or "t_" + secrets.token_hex(6)
        with self.database.writing() as session:
            if session.get(Test, test_id) is not None:
                raise ConflictError(f"test {test_id!r} already exists")
            session.add(Test(id=test_id, title=title or test_id, standards=standards,
                             config=config, public=bool(public), feedback=bool(feedback),
                             time_limit=time_limit, token_ttl=token_ttl,
                             finished_token_ttl=finished_token_ttl,
                             public_pool=public_pool))
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
            if built.excluded.all():
                continue                  # no practice item to show yet
            listed.append({"id": test_id, "title": test["title"],
                           "standards": [{"code": code, "title": self._standard(code)[0]}
                                         for code in test["standards"]],
                           "max_items": built.design.stopping.max_items})
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
        built = self._build(test["standards"], test["config"], versions, given,
                            pool=_pool(test["public"], test["public_pool"]))
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

    def _build(self, standards, config, versions, given=(), pool="credential"):
        """The `TestBank`; `pool` (`_pool`) says which items may be selected."""
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
        groups = dict(design.content.groups)
        for code in standards:
            groups.setdefault(("standard", code),
                              np.array([item["standard"] == code for item in items]))
        lower, upper = (float(v) for v in design.scoring.theta_range)
        if not np.isfinite(upper - lower):
            raise DataFormatError("scoring.quadrature.range is too wide")
        practice = np.array([PRACTICE_TAG in item["tags"] for item in items], dtype=bool)
        excluded = np.array([item["status"] == "retired" for item in items], dtype=bool)
        excluded |= {"credential": practice, "practice": ~practice}.get(
            pool, np.zeros_like(practice))
        # A test never gives more items than it may select (which bounds the session's
        # arrays), nor plans pretest slots its pool cannot fill.
        selectable = int((~excluded).sum())
        open_pretest = int((~excluded[design.pretest.items]).sum())
        design = replace(design, content=replace(design.content, groups=groups),
                         stopping=replace(design.stopping,
                                          max_items=max(1, min(design.stopping.max_items,
                                                               selectable)),
                                          min_items=min(design.stopping.min_items,
                                                        max(1, selectable))),
                         pretest=replace(design.pretest,
                                         count=min(design.pretest.count, open_pretest)))
        return TestBank(bank, design, BankTables(bank.params, design), tuple(items), position,
                        excluded)

    # --- sessions ---------------------------------------------------------------------

    def start_session(self, test_id, learner_id, key_id=None, public=False):
        """Start a session; returns ``{"session_id", "token", "status", "position",
        "max_items", "item"}``. `public`: started from the learner page, without a key,
        which only a public test allows."""
        try:
            test = self.test(test_id)
        except NotFoundError:
            test = None
        if test is None or (public and not test["public"]):
            # the same for an unknown test and a keyed one: the learner page's callers
            # learn no test id
            raise NotFoundError(f"no {'public ' if public else ''}test {test_id!r}")
        versions = self.store.current_version_ids(test["standards"])
        built = self.test_bank(test_id, versions)
        seed = secrets.randbits(62)
        batch = Session(built.tables, built.design, seed, built.excluded)
        first = batch.next_item()
        if first is None:
            raise ConflictError(f"test {test_id!r} has no item to deliver")
        session_id = "s_" + secrets.token_hex(10)
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        started = utc_now()
        deadline = None if test["time_limit"] is None else \
            started + timedelta(seconds=test["time_limit"])
        expires = started + timedelta(seconds=_token_lifetime(test))
        with self.database.writing() as session:
            session.add(DeliverySession(
                id=session_id, test_id=test_id, learner_id=learner_id,
                token_digest=digest(token), key_id=key_id, status="active",
                versions=versions, seed=seed, current_item=built.items[first]["id"],
                position=1, created_at=started, deadline=deadline,
                token_expires_at=expires))
        self._keep(session_id, _Live(1, built.items[first]["id"], built, batch, test_id,
                                     learner_id, seed, deadline))
        with self._lock:
            _remember(self._tokens, digest(token), TokenGrant(session_id, key_id, expires),
                      CACHED_SESSIONS)
        return {"session_id": session_id, "token": token, "status": "active", "position": 1,
                "max_items": built.design.stopping.max_items, "deadline": deadline,
                "token_expires_at": expires,
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

    def state(self, session_id, snapshot=None, token=False):
        """``{"session_id", "status", "position", "max_items", "item"}``; `item` is None
        once finished, and then `result` is there too if the test gives feedback.

        A session past its deadline is finished first. `token`: the caller holds the
        session's token, which reads a finished session only for the test's
        `finished_token_ttl` (TokenExpiredError after)."""
        row, answers = snapshot or self._snapshot(session_id)
        if row.status == "active" and _past(row.deadline):
            self.finish(session_id)
            row, answers = self._snapshot(session_id)
        if token and row.status == "finished":
            self._check_finished_window(row)
        item = None
        if row.status == "active" and row.current_item is not None:
            item = self._item_view(row.current_item, row.position)
        return self._state_view(row.id, row.test_id, self._session_bank(row, answers),
                                row.status, row.position, item, row.result)

    def _check_finished_window(self, row):
        """TokenExpiredError once a finished session's token has read it long enough."""
        window = self.test(row.test_id)["finished_token_ttl"] or FINISHED_TOKEN_SECONDS
        if _past(_aware(row.finished_at) + timedelta(seconds=window)):
            raise TokenExpiredError("this session has finished and its token has expired")

    def _state_view(self, session_id, test_id, built, status, position, item, result):
        state = {"session_id": session_id, "status": status, "position": position,
                 "max_items": built.design.stopping.max_items, "item": item}
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

    def answer(self, session_id, item_id, response, token=False):
        """Record the answer to the current item and move on; idempotent for a repeat.
        `token`: the caller holds the session's token (see `state`).

        When this worker served the session's last step it holds the engine state and
        writes at once, the compare-and-set on the position standing in for a read;
        otherwise (or when the write finds the session moved) it reads the session,
        rebuilds the state from the stored answers and tries again."""
        with self._lock:
            live = self._live.get(session_id)
        if live is not None and _past(live.deadline):
            live = None                             # the slow path finishes the session
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
            if token and row.status == "finished":
                self._check_finished_window(row)
            if item_id in given:
                if given[item_id].raw_response == _raw(response):
                    return self.state(session_id, (row, answers), token=token)
                raise ConflictError(f"item {item_id!r} was already answered with another "
                                    "response")
            if row.status == "active" and _past(row.deadline):
                self.finish(session_id)
                raise TimeLimitError("the test's time limit has passed: the session is "
                                     "finished on the answers given")
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
                         row.seed, _aware(row.deadline))
            done = self._step(session_id, live, item_id, response, score, at)
            if done is not None:
                return done
        raise ConflictError("the session is being answered concurrently; try again")

    def _step(self, session_id, live, item_id, response, score, at):
        """Record the answer in `live`, choose the next item and commit both if the stored
        session is still at `live.position`; the new state, or None if it moved."""
        built, batch = live.built, live.batch
        batch.answer(at, score)
        next_position = batch.next_item()
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
        if live.built.design.exposure.method == "sympson-hetter":
            return
        with self._lock:
            _remember(self._live, session_id, live, CACHED_SESSIONS)

    def finish(self, session_id):
        """End a session early and score it; finishing a finished session changes nothing.

        A session ended (here, or by its time limit) before its test's minimum length
        gets no estimate (null θ, SE, levels and decision): a session ended after one
        answer would tell that item's key, or that it is a pretest item (θ at the
        prior's mean)."""
        for _ in range(ANSWER_ATTEMPTS):
            row, answers = self._snapshot(session_id)
            if row.status == "finished":
                return self.state(session_id, (row, answers))
            built = self._session_bank(row, answers)
            if len(answers) >= built.design.stopping.min_items:
                result = self._result(built, self._rebuild(built, row, answers), row.test_id)
            else:
                result = self._no_estimate(row.test_id)
            values = {"status": "finished", "finished_at": utc_now(), "current_item": None,
                      "position": len(answers), "result": result}
            with self.database.write_connection() as session:
                moved = session.execute(_MOVE, {**values, "moving": session_id,
                                                "from_position": row.position}).rowcount
            if moved == 1:
                return self.state(session_id)
        raise ConflictError("the session is being answered concurrently; try again")

    def result(self, session_id):
        """The delivery platform's view: θ, SE, per-standard levels, decision, answers.

        An active session's has no estimate yet (null θ, SE, levels and decision): the
        estimate after each answer would tell which items are pretest (θ unmoved) and,
        answer by answer, which answers were right."""
        row, answers = self._snapshot(session_id)
        if row.status == "active" and _past(row.deadline):
            self.finish(session_id)
            row, answers = self._snapshot(session_id)
        summary = row.result if row.result is not None else self._no_estimate(row.test_id)
        # No item scores: with them, a delivery key would read the key of every item its
        # sessions were given (docs/API.md, "What no caller without the admin role learns").
        return {"session_id": row.id, "status": row.status, **summary,
                "responses": [{"item_id": a.item_id, "response": _parsed(a.raw_response),
                               "score": None} for a in answers]}

    def _no_estimate(self, test_id):
        """A result without an estimate: the shape of `_result`, every value null."""
        return {"theta": None, "se": None, "decision": None, "standards": [
            {"code": code, "title": self._standard(code)[0], "theta": None, "se": None,
             "level": None} for code in self.test(test_id)["standards"]]}

    def _rebuild(self, built, row, answers):
        positions = [built.position[a[0]] for a in answers]
        scores = [a[2] for a in answers]
        return Session.replay(built.tables, built.design, row.seed, positions, scores,
                              built.excluded)

    def _result(self, built, batch, test_id):
        standards = self.test(test_id)["standards"]
        groups = built.design.content.groups
        result = batch.result({code: groups[("standard", code)] for code in standards})
        out = []
        for code in standards:
            theta, se = result.groups[code].theta, result.groups[code].se
            if result.groups[code].answers == 0:                # nothing answered here
                out.append({"code": code, "title": self._standard(code)[0],
                            "theta": None, "se": None, "level": None})
                continue
            out.append({"code": code, "title": self._standard(code)[0],
                        "theta": _finite(theta), "se": _finite(se),
                        "level": _level(self._standard(code)[1], theta)})
        rule = built.design.stopping.classification
        decision = None
        if rule is not None and result.decision != 0:   # none without a scored answer
            decision = {"cut": rule.cut, "pass": result.decision == 1, "method": rule.method}
        return {"theta": _finite(result.theta), "se": _finite(result.se),
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
        """θ and SE of a set of scored items under the published banks, overall and per
        standard: ``{"theta", "se", "standards": [{"code", "theta", "se", "level"}]}``.

        `answers`: ``[{"item_id", "response"}]`` where `response` is the item's score (0
        or 1, or a category of a polytomous item), never an option: the answer key takes
        no part, so no sequence of calls can tell it. At least MIN_SCORED_ITEMS
        items; a standard with fewer gets no estimate of its own; θ is
        rounded to SCORE_DECIMALS and the level follows the rounded θ; `se` is null: an
        SE per answer pattern, the posterior SD or the asymptotic SE at the rounded θ
        alike, told a prober every item's slope within 0.04 from 100 calls (a least-squares
        fit over score patterns; tests/api/test_abuse.py), where θ alone tells neither
        slope nor difficulty better than a guess. An item without published parameters
        (pretest, retired) is scored with the placeholder a session delivers it under
        (`_placeholder`), never refused: a refusal told a delivery key which of the items
        its sessions were given are pretest. An unknown id is 422."""
        if not isinstance(answers, list) or len(answers) < MIN_SCORED_ITEMS:
            raise InvalidAnswerError(f"responses must hold at least {MIN_SCORED_ITEMS} "
                                     "scored items")
        item_ids = [a["item_id"] for a in answers]
        if len(set(item_ids)) != len(item_ids):
            raise DataFormatError("an item appears twice in responses")
        for answer in answers:
            value = answer["response"]
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidAnswerError("response must be the item's score (an integer "
                                         "category such as 0 or 1), not an option")
        with self.database.reading() as session:
            rows = {row.id: row for row in session.execute(
                select(Item.id, Item.standard_code, Item.status, Item.model, Item.key)
                .where(Item.id.in_(item_ids)))}
        published = {}                         # code -> (columns, {item_id: position})
        for code in dict.fromkeys(row.standard_code for row in rows.values()):
            try:
                columns = self.store.version_columns(self.store.current_version_id(code))
            except NotFoundError:
                continue
            published[code] = columns, {item: at for at, item in enumerate(columns["id"])}
        entries, scores, codes = [], [], []
        for item_id in item_ids:
            if item_id not in rows:
                raise InvalidAnswerError(f"item {item_id!r} cannot be scored here")
            code = rows[item_id].standard_code
            columns, positions = published.get(code, ({}, {}))
            at = positions.get(item_id) if rows[item_id].status == "operational" else None
            if at is None:                      # pretest or retired: scored like any item
                entries.append(_placeholder(rows[item_id].model, rows[item_id].key))
            else:
                entries.append({name: columns[name][at]
                                for name in ("model", "a", "b", "c", "u")})
            codes.append(code)
        for entry in entries:
            if isinstance(entry["b"], list):
                entry["b"] = [v for v in entry["b"] if v is not None]
        params = _params_of(entries)
        for answer, n in zip(answers, params.n_categories, strict=True):
            if not 0 <= answer["response"] < n:
                raise InvalidAnswerError(f"item {answer['item_id']!r} takes a score 0 to "
                                         f"{int(n) - 1}")
            scores.append(answer["response"])
        responses = np.array([scores], dtype=float)

        def coarse_theta(columns):
            return _coarse(float(estimate_theta(responses[:, columns],
                                                params.subset(columns), method).theta[0]))

        standards = []
        for code in dict.fromkeys(codes):
            columns = np.flatnonzero([c == code for c in codes])
            theta = coarse_theta(columns) if columns.size >= MIN_SCORED_ITEMS else None
            standards.append({"code": code, "theta": theta, "se": None,
                              "level": None if theta is None
                              else _level(self._standard(code)[1], theta)})
        return {"theta": coarse_theta(np.arange(len(codes))), "se": None,
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
            "config": row.config, "public": row.public, "feedback": row.feedback,
            "time_limit": row.time_limit, "token_ttl": row.token_ttl,
            "finished_token_ttl": row.finished_token_ttl, "public_pool": row.public_pool}


def _pool(public, public_pool):
    """Which items a test selects: ``"credential"`` (all but practice items) for a test
    that is not public, ``"practice"`` (practice items only) or ``"all"`` for one that is."""
    return ("all" if public_pool == "all" else "practice") if public else "credential"


def _token_lifetime(test):
    """Seconds a session token of `test` lives from the session's start."""
    if test["token_ttl"] is not None:
        return test["token_ttl"]
    if test["time_limit"] is not None:
        return test["time_limit"] + TOKEN_HOURS_PAST_LIMIT * 3600
    return UNTIMED_TOKEN_HOURS * 3600


def _aware(moment):
    """A stored time as an aware UTC datetime (SQLite gives them back naive)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def _past(deadline):
    return deadline is not None and utc_now() >= _aware(deadline)


def _raw(response):
    """The stored text of a response (an option id, or a category number)."""
    return response if isinstance(response, str) else str(response)


def _parsed(raw):
    return int(raw) if raw is not None and raw.isdigit() else raw


def _finite(value):
    return round(value, 4) if np.isfinite(value) else None


def _coarse(value):
    return round(value, SCORE_DECIMALS) if np.isfinite(value) else None


def _level(levels, theta):
    """The highest level whose cut θ reaches, or None below the first cut."""
    reached = [level["name"] for level in levels if theta >= level["cut"]]
    return reached[-1] if reached else None
