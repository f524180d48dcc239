"""The 1EdTech CAT service v1.0, engine side: sections, sessions and results mapped onto
irtcat's tests and sessions (docs/ims-cat.md).

- A section is an irtcat test: `sectionConfiguration` (base64, as the delivery platform
  sends its adaptive settings file) decodes to the test's id, or to a JSON object whose
  `testId` names it. The section remembers the key that created it; no other key sees it.
- A session is an irtcat session of that test (`Delivery.start_session`): its
  `sessionIdentifier` is the irtcat session id, so it lives in the store and continues on
  any worker and after a restart. `priorData` is recorded with it, and its
  `initialEstimatedAbility` (a number, or numeric text as TAO's client sends it) is the
  θ the first item is chosen at (`Delivery.start_session(start_theta=...)`); without it
  the test's start. Every later choice is made at the estimate from the answers, so a
  session chooses exactly as the same test through /v1 started at that θ.
- An item result's `SCORE` is the scored answer: it is recorded as the response that
  scores so (the correct option for 1, another option for 0, the option of that score on
  a scored-options item, the category itself on an item without a key), through
  `Delivery.answer` with all its checks (the current item, a repeat applied once).
- `sessionState` is opaque to the client: ``v1.<payload>.<mac>``, the payload the section
  and session ids (base64url JSON), the MAC an HMAC-SHA256 under the server's stored key
  ``ims-cat-state``. A state another server, section or session signed is refused.
- Once the session has finished, `assessmentResult.testResult.outcomeVariables` holds
  THETA, SE, PASSED (with a classification rule) and STOP_REASON, each
  ``{identifier, cardinality, baseType, value: [{baseType, value}]}``. While it is active
  there is no assessmentResult: the estimate after each answer would tell which answers
  were right (the /v1 result gives none either).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets

from irtcat.itembank.errors import DataFormatError, NotFoundError
from irtcat.itembank.exposure import session_steps
from irtcat.itembank.ims_cat import (
    add_section,
    add_section_session,
    end_section,
    section_of_session,
    section_row,
)
from irtcat.itembank.signing_keys import signing_key

from .errors import ConflictError, ForeignError, InvalidAnswerError

STATE_KEY_NAME = "ims-cat-state"
STATE_VERSION = "v1"
ENDED_EARLY = "ended_early"       # the stop reason of a session ended before its rules
CONFIGURATION_FIELDS = ("sectionConfiguration", "qtiMetadata", "qtiUsagedata")
TRUE_TEXTS, FALSE_TEXTS = ("true",), ("false",)


class ImsCat:
    """The CAT service's operations on a `Delivery`; `key_id`: the calling key's id."""

    def __init__(self, delivery):
        self.delivery = delivery
        self.database = delivery.database
        self._state_key = None

    # --- sections -------------------------------------------------------------------

    def create_section(self, key_id, body):
        """Store a section for the test `body["sectionConfiguration"]` names; returns
        ``{"sectionIdentifier"}``. NotFoundError for an unknown test."""
        test_id = section_test_id(body.get("sectionConfiguration"))
        self.delivery.test(test_id)                     # NotFoundError if unknown
        section_id = "cs_" + secrets.token_hex(10)
        configuration = {name: body.get(name) or "" for name in CONFIGURATION_FIELDS}
        if not all(isinstance(value, str) for value in configuration.values()):
            raise DataFormatError("sectionConfiguration, qtiMetadata, qtiUsagedata: "
                                  "base64 text")
        add_section(self.database, section_id, test_id, key_id, configuration)
        return {"sectionIdentifier": section_id}

    def section(self, key_id, section_id):
        """``{"sectionIdentifier", "sectionConfiguration", "qtiMetadata",
        "qtiUsagedata", "status"}`` of one of the key's sections."""
        row = self._own_section(key_id, section_id)
        return {"sectionIdentifier": row.id, **row.configuration,
                "status": "open" if row.ended_at is None else "ended"}

    def end_section(self, key_id, section_id):
        """End the section: it takes no new session (its sessions may still finish)."""
        self._own_section(key_id, section_id)
        end_section(self.database, section_id)

    def _own_section(self, key_id, section_id):
        row = section_row(self.database, section_id)
        if row.key_id != key_id:
            raise ForeignError("this section was created with another key")
        return row

    # --- sessions -------------------------------------------------------------------

    def create_session(self, key_id, section_id, body):
        """Start a session in an open section; returns ``{"sessionIdentifier",
        "nextItems": {"itemIdentifiers", "stageLength"}, "sessionState"}``."""
        row = self._own_section(key_id, section_id)
        if row.ended_at is not None:
            raise ConflictError(f"section {section_id!r} has ended")
        prior = prior_data((body or {}).get("priorData"))
        learner = str(prior.get("learnerIdentifier") or prior.get("sourcedId")
                      or f"ims-cat:{section_id}")[:200]
        started = self.delivery.start_session(row.test_id, learner, key_id=key_id,
                                              start_theta=_initial_ability(prior))
        session_id = started["session_id"]
        add_section_session(self.database, session_id, section_id, prior or None)
        return {"sessionIdentifier": session_id, **self._reply(section_id, session_id,
                                                               started)}

    def submit_results(self, key_id, section_id, session_id, body):
        """Record the `SCORE` of each item result in order; returns the next items
        (none once the test has ended), the assessmentResult once it has, and the
        sessionState (the same on every reply: it names the section and session)."""
        self._check_state(section_id, session_id, body.get("sessionState"))
        self._own_session(key_id, session_id)
        assessment = body.get("assessmentResult")
        results = assessment.get("itemResult") if isinstance(assessment, dict) else None
        if not isinstance(results, list) or not results:
            raise DataFormatError("assessmentResult.itemResult: a list of item results")
        state = None
        for result in results:
            item_id, score = item_score(result)
            state = self.delivery.answer(session_id, item_id,
                                         self._response_for(item_id, score))
        return self._reply(section_id, session_id, state)

    def end_session(self, key_id, section_id, session_id):
        """Finish the session now, scored on the answers given."""
        self._own_session(key_id, session_id, section_id)
        self.delivery.finish(session_id)

    def _own_session(self, key_id, session_id, section_id=None):
        if self.delivery.owner_key(session_id) != key_id:
            raise ForeignError("this session was started with another key")
        if section_id is not None:
            if section_of_session(self.database, session_id) != section_id:
                raise NotFoundError(f"no session {session_id!r} in section {section_id!r}")

    def _reply(self, section_id, session_id, state):
        """nextItems, sessionState and (finished) assessmentResult of a session state."""
        item = state.get("item")
        reply = {"nextItems": {"itemIdentifiers": [] if item is None else [item["item_id"]],
                               "stageLength": 0 if item is None else 1},
                 "sessionState": self.sign_state(section_id, session_id)}
        if state["status"] == "finished":
            reply["assessmentResult"] = self.assessment_result(session_id)
        return reply

    def assessment_result(self, session_id):
        """``{"testResult": {"outcomeVariables": [...]}}`` of a finished session."""
        result = self.delivery.result(session_id)
        steps = session_steps(self.database, session_id)
        stop = steps[-1].get("stop", ENDED_EARLY) if steps else ENDED_EARLY
        variables = [outcome("THETA", "float", result["theta"]),
                     outcome("SE", "float", result["se"])]
        if result["decision"] is not None:
            variables.append(outcome("PASSED", "boolean", result["decision"]["pass"]))
        variables.append(outcome("STOP_REASON", "identifier", stop))
        return {"testResult": {"outcomeVariables": [v for v in variables if v is not None]}}

    def _response_for(self, item_id, score):
        """The response to `item_id` that scores `score` (see the module's docstring);
        InvalidAnswerError if none does."""
        model, content, key = self.delivery.catalog.item(item_id)
        if key is None:
            return score
        options = [option["id"] for option in (content or {}).get("options", [])]
        if "correct" in key:
            wrong = [option for option in options if option != key["correct"]]
            if score == 1:
                return key["correct"]
            if score == 0 and wrong:
                return wrong[0]
        else:
            scored = [option for option in options if key["scores"].get(option) == score]
            if scored:
                return scored[0]
        raise InvalidAnswerError(f"no response to item {item_id!r} scores {score}")

    # --- the session state ----------------------------------------------------------

    def sign_state(self, section_id, session_id):
        """The opaque sessionState of a session: ``v1.<payload>.<mac>``."""
        payload = _b64(json.dumps({"section": section_id, "session": session_id},
                                  separators=(",", ":")).encode())
        return f"{STATE_VERSION}.{payload}.{self._mac(payload)}"

    def _check_state(self, section_id, session_id, state):
        """ForeignError unless `state` is this server's for this section and session."""
        parts = state.split(".") if isinstance(state, str) else []
        if len(parts) != 3 or parts[0] != STATE_VERSION \
                or not hmac.compare_digest(self._mac(parts[1]).encode(),
                                           parts[2].encode("utf-8", "replace")):
            raise ForeignError("the sessionState was not issued by this server")
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, binascii.Error):
            raise ForeignError("the sessionState was not issued by this server") from None
        if payload != {"section": section_id, "session": session_id}:
            raise ForeignError("the sessionState is another session's")

    def _mac(self, payload):
        if self._state_key is None:
            stored = signing_key(self.database, STATE_KEY_NAME, "HS256",
                                 lambda: base64.b64encode(secrets.token_bytes(32)).decode())
            self._state_key = base64.b64decode(stored)
        return _b64(hmac.new(self._state_key, payload.encode(), hashlib.sha256).digest())


# --- reading the client's documents -----------------------------------------------------

def section_test_id(configuration):
    """The test id a base64 `sectionConfiguration` names: its text, or the `testId` of
    the JSON object it holds; DataFormatError if it names none."""
    try:
        if not isinstance(configuration, str):
            raise ValueError("not text")
        text = base64.b64decode(configuration, validate=True).decode("utf-8").strip()
    except (ValueError, binascii.Error):
        raise DataFormatError("sectionConfiguration: base64 of a test id, or of a JSON "
                              "object with testId") from None
    if text.startswith("{"):
        try:
            text = json.loads(text).get("testId")
        except (ValueError, AttributeError):
            text = None
    if not isinstance(text, str) or not text or len(text) > 64:
        raise DataFormatError("sectionConfiguration names no test (base64 of a test id, "
                              "or of a JSON object with testId)")
    return text


def _initial_ability(prior):
    """The `initialEstimatedAbility` of `prior` as a float (TAO's client sends text such
    as ``"0.0"``), or None without one; DataFormatError for text that is not a number."""
    value = prior.get("initialEstimatedAbility")
    if value is None or value == "":
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise DataFormatError("priorData: initialEstimatedAbility is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise DataFormatError("priorData: initialEstimatedAbility is not a finite number")
    return value


def prior_data(entries):
    """``{key: value}`` of a `priorData` list of ``{"key", "value"}`` (the form TAO's
    client sends: ``[{"key": "initialEstimatedAbility", "value": "0.0"}]``)."""
    if entries is None:
        return {}
    if not isinstance(entries, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("key"), str) for entry in entries):
        raise DataFormatError("priorData: a list of {key, value}")
    return {entry["key"]: entry.get("value") for entry in entries}


def item_score(result):
    """``(item_id, score)`` of an item result: its identifier and the whole number of its
    SCORE outcome variable (a number, numeric text or true/false, any baseType's case,
    cardinality single or 0); DataFormatError otherwise."""
    if not isinstance(result, dict) or not isinstance(result.get("identifier"), str):
        raise DataFormatError("itemResult: an object with an identifier")
    variables = result.get("outcomeVariables") or []
    found = [v for v in variables if isinstance(v, dict)
             and str(v.get("identifier", "")).upper() == "SCORE"]
    if not found:
        raise DataFormatError(f"itemResult {result['identifier']!r} has no SCORE")
    values = found[0].get("value")
    if isinstance(values, dict):
        values = [values]
    if found[0].get("cardinality", 0) not in (0, "single") or not isinstance(values, list) \
            or len(values) != 1 or not isinstance(values[0], dict):
        raise DataFormatError("SCORE: a single value [{baseType, value}]")
    return result["identifier"], whole_score(values[0].get("value"))


def whole_score(value):
    """A SCORE's value as an int; DataFormatError if it is not a whole number."""
    if isinstance(value, str):
        text = value.strip().lower()
        value = True if text in TRUE_TEXTS else False if text in FALSE_TEXTS else text
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and math.isfinite(value) and value == int(value):
        return int(value)
    raise DataFormatError("SCORE: a whole number (a category or 0/1)")


def outcome(identifier, base_type, value):
    """An outcome variable of one value, or None for a value that is None."""
    if value is None:
        return None
    return {"identifier": identifier, "cardinality": "single", "baseType": base_type,
            "value": [{"baseType": base_type, "value": value}]}


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


__all__ = ["ImsCat", "item_score", "prior_data", "section_test_id"]
