"""Delivering tests: sessions and their answers, on top of test definitions.

A session's state is its stored responses plus the item chosen next; any
worker rebuilds the engine's session from them (`engine.session`), so a
server killed and restarted resumes every session where it was. An answer is
applied with a compare-and-set on the session's position inside one short
transaction, with the (session, item) unique constraint behind it
(`irtcat.itembank.sessions.advance_session`): concurrent duplicates are applied
once, and a 2xx is sent only after the commit.

Nothing here returns an answer key or item parameters, nor anything from which a
caller could work them out: a session's result gives no item scores, and scoring
without a session takes item scores, never options (`irtcat.delivery.scoring`).

A session token's lifetime is `irtcat.delivery.keys`'s; once the session has
finished, its token only reads the final state for the test's
`finished_token_ttl` seconds (FINISHED_TOKEN_SECONDS by default). A test's
`time_limit` is enforced: an answer after the deadline is refused and the
session finished, scored on what was answered (mirtCAT's `max_time`).

Exposure is controlled across workers (`irtcat.delivery.live_exposure`): each
item given is counted in the store with the step that gives it, and each step's
decision trace is stored with it (`trace`, admin-only). A rebuild reads the
exposure decisions back from the traces (items Sympson-Hetter passed over, the
eligibility draw), so a session continued by another worker, or after a restart,
chooses exactly as the one it continues.

A test over multidimensional bank versions runs the multidimensional engine
(`irtcat.delivery.mcat_sessions`): the same routes and shapes, a session rebuilt by
replaying its answers from its seed, and a result with per-standard θ and the composite.

Length: one class, `Delivery`, because every route of a session (start, answer, finish,
state, result, trace) goes through the same live-state cache and compare-and-set; the
pieces that stand alone (test banks, θ bands, multidimensional sessions, live
exposure, scoring) are modules of their own.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from irtcat.engine.models import category_count
from irtcat.engine.session import Session
from irtcat.itembank.errors import DataFormatError, NotFoundError
from irtcat.itembank.exposure import session_steps
from irtcat.itembank.schema import utc_now
from irtcat.itembank.sessions import (
    add_session,
    advance_session,
    session_key_id,
    session_snapshot,
)

from . import mcat_sessions
from .caches import remember
from .careers import Careers
from .definitions import Definitions
from .errors import ConflictError, InvalidAnswerError, TimeLimitError, TokenExpiredError
from .keys import (
    FINISHED_TOKEN_SECONDS,
    Credentials,
    TokenGrant,
    aware,
    digest,
    new_token,
    token_lifetime,
)
from .live_exposure import LiveEligibility, exposure_figures, trace_view
from .mcat_banks import McatTestBank
from .results import no_estimate, session_result
from .scoring import score as score_without_session
from .test_banks import TestBank

CACHED_SESSIONS = 4096
ANSWER_ATTEMPTS = 8
MAX_ATTRIBUTES = 8
MAX_ATTRIBUTE_LENGTH = 64
ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
log = logging.getLogger("irtcat.delivery")


def check_attributes(attributes):
    """A session's learner attributes as stored: None when none are given, else a dict of
    at most MAX_ATTRIBUTES names matching ATTRIBUTE_NAME, each with a string of at most
    MAX_ATTRIBUTE_LENGTH characters; DataFormatError naming what breaks the rule."""
    if not attributes:
        return None
    if not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES:
        raise DataFormatError(f"attributes: an object of at most {MAX_ATTRIBUTES} names")
    for name, value in attributes.items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME.fullmatch(name):
            raise DataFormatError(f"attribute name {str(name)[:40]!r} must match "
                                  f"^{ATTRIBUTE_NAME.pattern}$")
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ATTRIBUTE_LENGTH:
            raise DataFormatError(f"attribute {name!r}: a string of 1 to "
                                  f"{MAX_ATTRIBUTE_LENGTH} characters")
    return dict(attributes)


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
    bands: frozenset = frozenset()    # θ bands the session was given an item in


class Delivery(Definitions):
    """Tests, sessions and scoring on a `Store`."""

    def __init__(self, store):
        super().__init__(store)
        self.credentials = Credentials(self.database)
        self._live = OrderedDict()        # session_id -> _Live
        self._owners = OrderedDict()      # session id -> id of the key that started it
        self.eligibility = LiveEligibility(self.database)
        self.careers = Careers(self)
        # called with (session_id, learner_id) once a session's end is committed: each
        # only queues work (the LTI score), the answer that ended the session waits for it
        self.finish_hooks = []

    def authenticate(self, secret):
        """``("key", id, role)``, ``("token", session_id, None)`` or None for `secret`;
        TokenExpiredError for a token past its lifetime or whose key was revoked
        (`keys.Credentials`)."""
        return self.credentials.authenticate(secret)

    def score(self, answers, method="eap"):
        """θ of a set of scored items without a session (`scoring.score`)."""
        return score_without_session(self.store, self.catalog, answers, method)

    def start_session(self, test_id, learner_id, key_id=None, public=False, attributes=None,
                      start_theta=None):
        """Start a session; returns ``{"session_id", "token", "status", "position",
        "max_items", "item"}``. `public`: started from the learner page, without a key,
        which only a public test allows. `attributes`: the learner's attributes
        (`check_attributes`), stored with the session for DIF and never returned.
        `start_theta`: the θ the first item is chosen at, instead of the test's start
        (the 1EdTech CAT service's ``initialEstimatedAbility``); it moves only that
        choice, which the step trace records (every later one is made at the estimate
        from the answers), so a rebuilt session needs nothing more."""
        attributes = check_attributes(attributes)
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
        if isinstance(built, McatTestBank):
            if start_theta is not None:
                raise DataFormatError("a multidimensional test starts at its population's "
                                      "mean: it takes no start θ")
            batch = mcat_sessions.start(built, seed, self.eligibility.probabilities(
                test_id, built) if built.design.live_eligibility else None)
        else:
            eligibility = self.eligibility.probabilities(test_id, built) \
                if built.design.exposure.method == "item-eligibility" else None
            batch = Session.start(built.tables, _started_at(built.design, start_theta), seed,
                                  built.excluded, eligibility)
        first = batch.next_item()
        if first is None:
            raise ConflictError(f"test {test_id!r} has no item to deliver")
        session_id = "s_" + secrets.token_hex(10)
        token = new_token()
        started = utc_now()
        deadline = None if test["time_limit"] is None else \
            started + timedelta(seconds=test["time_limit"])
        expires = started + timedelta(seconds=token_lifetime(test))
        add_session(self.database, id=session_id, test_id=test_id, learner_id=learner_id,
                    token_digest=digest(token), key_id=key_id, status="active",
                    versions=versions, seed=seed, current_item=built.items[first]["id"],
                    position=1, created_at=started, deadline=deadline,
                    token_expires_at=expires, attributes=attributes,
                    first_step=batch.last_step, first_item=_counted(built, first),
                    ineligible=[built.items[j]["id"] for j in batch.ineligible],
                    band=_band_count(built, batch, frozenset()))
        self._keep(session_id, _Live(1, built.items[first]["id"], built, batch, test_id,
                                     learner_id, seed, deadline,
                                     _bands_given(batch, frozenset())))
        self.credentials.remember(token, TokenGrant(session_id, key_id, expires))
        return {"session_id": session_id, "token": token, "status": "active", "position": 1,
                "max_items": built.max_items, "deadline": deadline,
                "token_expires_at": expires,
                "item": self.catalog.item_view(built.items[first]["id"], 1)}

    def _snapshot(self, session_id):
        """The session's row and its answers ``(item_id, raw_response, score)`` in order."""
        return session_snapshot(self.database, session_id)

    def state(self, session_id, snapshot=None, token=False):
        """``{"session_id", "status", "position", "max_items", "item"}``; `item` is None
        once finished, and then `result` is there too if the test gives feedback.

        A session past its deadline is finished first. `token`: the caller holds the
        session's token, which reads a finished session only for the test's
        `finished_token_ttl` (TokenExpiredError after)."""
        row, answers = snapshot or self._snapshot(session_id)
        if row.status == "active" and _past(row.deadline):
            self.finish(session_id, "time_limit")
            row, answers = self._snapshot(session_id)
        if token and row.status == "finished":
            self._check_finished_window(row)
        item = None
        if row.status == "active" and row.current_item is not None:
            item = self.catalog.item_view(row.current_item, row.position)
        return self._state_view(row.id, row.test_id, self._session_bank(row, answers),
                                row.status, row.position, item, row.result)

    def _check_finished_window(self, row):
        """TokenExpiredError once a finished session's token has read it long enough."""
        window = self.test(row.test_id)["finished_token_ttl"] or FINISHED_TOKEN_SECONDS
        if _past(aware(row.finished_at) + timedelta(seconds=window)):
            raise TokenExpiredError("this session has finished and its token has expired")

    def _state_view(self, session_id, test_id, built, status, position, item, result):
        state = {"session_id": session_id, "status": status, "position": position,
                 "max_items": built.max_items, "item": item}
        if status == "finished" and result is not None and self.test(test_id)["feedback"]:
            state["result"] = {name: result[name] for name in ("theta", "se", "standards",
                                                              "decision", "thetas", "composite")
                               if name in result}
            state["result"]["roles"] = self.careers.fit(result["standards"])
        return state

    def owner_key(self, session_id):
        """The id of the key that started the session (None: the learner page), which
        never changes; remembered."""
        with self._lock:
            if session_id in self._owners:
                return self._owners[session_id]
        key_id = session_key_id(self.database, session_id)
        with self._lock:
            remember(self._owners, session_id, key_id, CACHED_SESSIONS)
        return key_id

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
            score = self._score_answer(item_id, response, live.built.categories(at))
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
                self.finish(session_id, "time_limit")
                raise TimeLimitError("the test's time limit has passed: the session is "
                                     "finished on the answers given")
            if row.status != "active":
                raise ConflictError("the session is finished")
            if item_id != row.current_item:
                raise ConflictError(f"item {item_id!r} is not the current item")
            built = self._session_bank(row, answers)
            at = built.position[item_id]
            score = self._score_answer(item_id, response, built.categories(at))
            batch, bands = self._rebuild(built, row, answers, with_bands=True)
            live = _Live(row.position, row.current_item, built, batch, row.test_id,
                         row.learner_id, row.seed, aware(row.deadline), bands)
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
        moved = advance_session(self.database, session_id, live.position, values, {
            "learner_id": live.learner_id, "item_id": item_id, "raw_response": _raw(response),
            "score": score, "responded_at": utc_now(), "bank_version_id": item["version_id"],
            "pretest": bool(item["status"] == "pretest"), "trace": batch.last_step},
            given=None if finished else (live.test_id, *_counted(built, next_position)),
            band=None if finished else _band_count(built, batch, live.bands))
        if not moved:
            return None                                   # another request moved it first
        if finished:
            self._finished(session_id, live.learner_id)
        else:
            bands = _bands_given(batch, live.bands)
            self._keep(session_id, replace(live, position=values["position"],
                                           current_item=values["current_item"], bands=bands))
        return self._state_view(
            session_id, live.test_id, built, "finished" if finished else "active",
            values["position"],
            None if finished else self.catalog.item_view(values["current_item"],
                                                         values["position"]),
            values.get("result"))

    def _keep(self, session_id, live):
        """Keep a session's engine state for its next answer on this worker."""
        with self._lock:
            remember(self._live, session_id, live, CACHED_SESSIONS)

    def finish(self, session_id, reason="finished_early"):
        """End a session early and score it; finishing a finished session changes nothing.

        A session ended (here, or by its time limit) before its test's minimum length
        gets no estimate (null θ, SE, levels and decision): a session ended after one
        answer would tell that item's key, or that it is a pretest item (θ at the
        prior's mean). Its trace gets a last step saying why it stopped (`reason`:
        ``finished_early`` when the platform ended it, ``time_limit``) with the final
        estimate, or none."""
        for _ in range(ANSWER_ATTEMPTS):
            row, answers = self._snapshot(session_id)
            if row.status == "finished":
                return self.state(session_id, (row, answers))
            built = self._session_bank(row, answers)
            if len(answers) >= built.min_items:
                result = self._result(built, self._rebuild(built, row, answers), row.test_id)
            else:
                result = self._no_estimate(row.test_id)
            values = {"status": "finished", "finished_at": utc_now(), "current_item": None,
                      "position": len(answers), "result": result}
            steps = len(session_steps(self.database, session_id))
            if steps:                                    # none: stored before traces
                values["steps"] = [*(row.steps or ()), {
                    "step": steps + 1, "theta": result["theta"], "se": result["se"],
                    "stop": reason}]
            if advance_session(self.database, session_id, row.position, values):
                self._finished(session_id, row.learner_id)
                return self.state(session_id)
        raise ConflictError("the session is being answered concurrently; try again")

    def _finished(self, session_id, learner_id):
        """Run the finish hooks; one that fails is logged, the session stays finished."""
        for hook in self.finish_hooks:
            try:
                hook(session_id, learner_id)
            except Exception:                       # noqa: BLE001 - the end is committed
                log.exception("finish hook %s failed for session %s",
                              getattr(hook, "__name__", hook), session_id)

    def result(self, session_id):
        """The delivery platform's view: θ, SE, per-standard levels, decision, answers.

        An active session's has no estimate yet (null θ, SE, levels and decision): the
        estimate after each answer would tell which items are pretest (θ unmoved) and,
        answer by answer, which answers were right."""
        row, answers = self._snapshot(session_id)
        if row.status == "active" and _past(row.deadline):
            self.finish(session_id, "time_limit")
            row, answers = self._snapshot(session_id)
        summary = row.result if row.result is not None else self._no_estimate(row.test_id)
        # No item scores: with them, a delivery key would read the key of every item its
        # sessions were given (docs/API.md, "What no caller without the admin role learns").
        return {"session_id": row.id, "status": row.status, **summary,
                "roles": self.careers.fit(summary["standards"]),
                "responses": [{"item_id": a.item_id, "response": _parsed(a.raw_response),
                               "score": None} for a in answers]}

    def _no_estimate(self, test_id):
        return no_estimate(self.test(test_id)["standards"], self.catalog)

    def _rebuild(self, built, row, answers, with_bands=False):
        """The engine's session after `answers`, with the exposure decisions its stored
        traces recorded (read only for a test whose control makes any, or with θ bands);
        `with_bands`: ``(session, the θ bands it was given an item in)``."""
        positions = [built.position[a[0]] for a in answers]
        scores = [a[2] for a in answers]
        if isinstance(built, McatTestBank):                 # replayed from the seed
            traces = session_steps(self.database, row.id) if built.design.live_eligibility \
                else ()
            session = mcat_sessions.rebuild(built, row.seed, positions, scores,
                                            traces[0].get("ineligible", ()) if traces else ())
            return (session, frozenset()) if with_bands else session
        removed, ineligible, by_band, traces = (), (), None, ()
        exposure = built.design.exposure
        if exposure.method in ("sympson-hetter", "item-eligibility") or exposure.theta_bands:
            traces = session_steps(self.database, row.id)
            removed = [j for trace in traces for j in trace.get("rejected", ())]
            ineligible = traces[0].get("ineligible", ()) if traces else ()
            by_band = traces[0].get("ineligible_bands") if traces else None
        session = Session(built.tables, built.design, row.seed, built.excluded,
                          items=positions, responses=scores, removed=removed,
                          ineligible=ineligible, ineligible_bands=by_band)
        if not with_bands:
            return session
        return session, frozenset(trace["band"] for trace in traces
                                  if "band" in trace and "item" in trace)

    def trace(self, session_id):
        """A session's decision trace, step by step (admin-only: it holds criterion values
        and which items are pretest): ``{"session_id", "test_id", "status", "steps"}``."""
        row, answers = self._snapshot(session_id)
        built = self._session_bank(row, answers)
        return {"session_id": row.id, "test_id": row.test_id, "status": row.status,
                "steps": trace_view(session_steps(self.database, row.id), built)}

    def exposure(self, test_id):
        """The live exposure of a test's sessions (`live_exposure.exposure_figures`), its
        operational items those of the bank its new sessions use."""
        test = self.test(test_id)
        built = self.test_bank(test_id, self.store.current_version_ids(test["standards"]))
        return exposure_figures(self.database, test_id, built)

    def _result(self, built, batch, test_id):
        if isinstance(built, McatTestBank):
            return mcat_sessions.mcat_result(batch, built, self.test(test_id)["standards"],
                                             self.catalog)
        return session_result(batch, built.design, self.test(test_id)["standards"],
                              self.catalog)

    def _score_answer(self, item_id, response, n_categories):
        """The score of `response` to `item_id` from its key; InvalidAnswerError if not an
        option (or, for an item without a key, not one of its `n_categories`)."""
        model, content, key = self.catalog.item(item_id)
        if key is None:
            n = category_count(model) or n_categories
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


def _started_at(design, start_theta):
    """`design` with its start θ moved to `start_theta` (None: as it is); DataFormatError
    for a value that is not a finite number within the design's θ range."""
    if start_theta is None:
        return design
    low, high = design.scoring.theta_range
    if not isinstance(start_theta, (int, float)) or not low <= start_theta <= high:
        raise DataFormatError(f"the start θ must be a number within [{low:g}, {high:g}]")
    return replace(design, scoring=replace(design.scoring, start_theta=float(start_theta)))


def _bands_given(batch, visited):
    """The θ bands a session was given an item in: `visited` and the band of the item
    `batch` just chose (none for a test without bands, or a multidimensional one)."""
    return visited if batch.band is None else visited | {batch.band}


def _band_count(built, batch, visited):
    """``(band, entered)`` of the item `batch` just chose, for the θ-band counts: None
    for a test without bands (or a multidimensional one); `entered` None if the session
    was given an item in that band before (`visited`), else the ids of the operational
    items it drew ineligible there."""
    if batch.band is None:
        return None
    if batch.band in visited:
        return batch.band, None
    drawn = batch.ineligible_bands[batch.band] if batch.ineligible_bands is not None else ()
    return batch.band, [built.items[j]["id"] for j in drawn]


def _counted(built, position):
    """``(item_id, pretest)`` of the item at `position` of `built`, as counted."""
    item = built.items[position]
    return item["id"], item["status"] == "pretest"


def _past(deadline):
    return deadline is not None and utc_now() >= aware(deadline)


def _raw(response):
    """The stored text of a response (an option id, or a category number)."""
    return response if isinstance(response, str) else str(response)


def _parsed(raw):
    return int(raw) if raw is not None and raw.isdigit() else raw


__all__ = ["ANSWER_ATTEMPTS", "CACHED_SESSIONS", "Delivery"]
