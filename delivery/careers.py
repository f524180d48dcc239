"""The career framework and the talent network: which job roles a learner's levels meet,
a learner's consent to be found, and employers' searches of consenting learners.

A job role requires a level of some standards (``{"AI-ML": "proficient"}``); a
standard's levels are ordered by their cuts (`irtcat.delivery.results.level_of`), so a
level meets a requirement when it is the required one or above. The gap of a standard
is how many levels the learner is short: the rank of the required level minus the rank
of the level reached, a learner below the first cut (or not assessed on the standard)
ranking one below the first level.

A learner's credential is their latest finished session whose decision passed. An
employer sees of a consenting learner only that credential (test id, passed, finish
date), the level reached per standard and the contact handle the learner chose, under
the consent's opaque id: never θ, SE, responses, items, session ids, tokens or learner
ids (`talent_view` builds the whole entry from named fields).
"""

from __future__ import annotations

import re

from irtcat.itembank.careers import (
    consent_of,
    consented_credentials,
    give_consent,
    job_roles,
    replace_job_roles,
    revoke_consent,
)
from irtcat.itembank.errors import DataFormatError, NotFoundError, ReferenceConflict

from .errors import ConflictError

ROLES_FORMAT = "irtcat-roles/1"
ROLE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
MAX_ROLES = 200
MAX_CONTACT = 200
# "AI-ML:proficient,AI-DE:foundational": the query form of required levels.
MIN_LEVELS = re.compile(r"[^:,\s]+:[^:,\s]+(,[^:,\s]+:[^:,\s]+)*")


# --- levels and roles ---------------------------------------------------------------------

def level_ranks(levels):
    """``{level name: rank}`` of a standard's levels, 0 for the lowest cut."""
    ordered = sorted(levels, key=lambda level: level["cut"])
    return {level["name"]: rank for rank, level in enumerate(ordered)}


def levels_short(ranks, required, reached):
    """How many levels `reached` (a name, or None below the first cut) is short of
    `required` under `ranks` (`level_ranks`); 0 when it meets it."""
    return max(0, ranks[required] - ranks.get(reached, -1))


def check_required(required, levels_of):
    """`required` (``{code: level name}``) checked against the store: ReferenceConflict
    for an unknown standard, DataFormatError for a level the standard does not have.
    `levels_of(code)`: the levels that apply to a standard (NotFoundError if none)."""
    if not isinstance(required, dict) or not required:
        raise DataFormatError("required: an object of at least one standard code: level")
    for code, name in required.items():
        try:
            levels = levels_of(code)
        except NotFoundError:
            raise ReferenceConflict(f"required: no standard {code!r}") from None
        if name not in level_ranks(levels):
            known = ", ".join(level["name"] for level in levels) or "none"
            raise DataFormatError(f"required: {code} has no level {name!r} (its levels: "
                                  f"{known})")
    return dict(required)


def parse_roles(document, levels_of):
    """The roles of an `irtcat-roles/1` document (``{"format", "roles": [{"id", "title",
    "description", "required"}]}``), checked (`check_required`); DataFormatError naming
    what is wrong."""
    if not isinstance(document, dict) or document.get("format") != ROLES_FORMAT:
        raise DataFormatError(f"a career framework is a {ROLES_FORMAT} document")
    roles = document.get("roles")
    if not isinstance(roles, list) or len(roles) > MAX_ROLES:
        raise DataFormatError(f"roles: a list of at most {MAX_ROLES} roles")
    parsed, seen = [], set()
    for role in roles:
        role_id = role.get("id") if isinstance(role, dict) else None
        if not isinstance(role_id, str) or not ROLE_ID.fullmatch(role_id):
            raise DataFormatError(f"role id {str(role_id)[:40]!r} must match "
                                  f"^{ROLE_ID.pattern}$")
        if role_id in seen:
            raise DataFormatError(f"role {role_id!r} is given twice")
        seen.add(role_id)
        title, description = role.get("title"), role.get("description", "")
        if not isinstance(title, str) or not title.strip() or len(title) > 200:
            raise DataFormatError(f"role {role_id!r}: a title of 1 to 200 characters")
        if not isinstance(description, str) or len(description) > 10_000:
            raise DataFormatError(f"role {role_id!r}: a description of text")
        try:
            required = check_required(role.get("required"), levels_of)
        except DataFormatError as error:
            raise type(error)(f"role {role_id!r}: {error}") from None
        parsed.append({"id": role_id, "title": title.strip(),
                       "description": description, "required": required})
    return parsed


def parse_min_levels(text, levels_of):
    """``{code: level}`` of a query's ``AI-ML:proficient,AI-DE:foundational``, checked."""
    if not MIN_LEVELS.fullmatch(text or ""):
        raise DataFormatError("min_levels: CODE:LEVEL pairs separated by commas")
    pairs = [pair.split(":") for pair in text.split(",")]
    if len({code for code, _ in pairs}) < len(pairs):
        raise DataFormatError("min_levels: each standard once")
    return check_required(dict(pairs), levels_of)


def role_fit(roles, standards, levels_of):
    """Which of `roles` the levels of a result's `standards` (``[{"code", "level"}]``)
    meet: ``[{"id", "title", "met", "gaps": [{"code", "required", "level", "short"}]}]``,
    a gap per required standard not met (`level`: the one reached, null if none)."""
    reached = {standard["code"]: standard["level"] for standard in standards}
    fits = []
    for role in roles:
        gaps = []
        for code, required in sorted(role["required"].items()):
            ranks = _ranks_or_none(levels_of, code)
            if ranks is None or required not in ranks:
                continue                    # a standard or level since removed: no gap
            short = levels_short(ranks, required, reached.get(code))
            if short:
                gaps.append({"code": code, "required": required,
                             "level": reached.get(code), "short": short})
        fits.append({"id": role["id"], "title": role["title"], "met": not gaps,
                     "gaps": gaps})
    return fits


def _ranks_or_none(levels_of, code):
    try:
        return level_ranks(levels_of(code))
    except NotFoundError:
        return None


# --- the talent network -------------------------------------------------------------------

class Careers:
    """Job roles, consents and talent searches on a `Delivery` (its store, catalog and
    sessions)."""

    def __init__(self, delivery):
        self.delivery = delivery
        self.database = delivery.database

    def levels_of(self, code):
        """The levels that apply to a standard (the catalog's, cached)."""
        return self.delivery.catalog.standard(code)[1]

    def roles(self):
        return job_roles(self.database)

    def replace_roles(self, document):
        """Make the career framework `document` (`parse_roles`) the stored one; returns
        ``{"created", "updated", "unchanged", "removed"}``."""
        return replace_job_roles(self.database, parse_roles(document, self.store_levels))

    def store_levels(self, code):
        """The levels of a standard as stored now (not cached): for checking writes."""
        return self.delivery.store.levels_of(code)

    def fit(self, standards):
        """The roles a result's `standards` meet and the gaps of the others (`role_fit`)."""
        return role_fit(self.roles(), standards, self.levels_of)

    def give_consent(self, session_id, contact, token=False):
        """Record the consent of the learner of `session_id`, a finished session that
        passed (ConflictError otherwise); `token`: the caller holds its token, which
        works only while the finished session's token may read it."""
        state = self.delivery.state(session_id, token=token)
        if state["status"] != "finished":
            raise ConflictError("consent is given once the session has finished")
        decision = self.delivery.result(session_id)["decision"]
        if not decision or decision["pass"] is not True:
            raise ConflictError("only a session that passed is a credential to share")
        contact = contact.strip()
        if not contact or len(contact) > MAX_CONTACT:
            raise DataFormatError(f"contact: 1 to {MAX_CONTACT} characters")
        return give_consent(self.database, session_id, contact)

    def revoke_consent(self, session_id, token=False):
        """Revoke the consent of the learner of `session_id` (every search stops finding
        them at once); returns how many consents were in force."""
        self.delivery.state(session_id, token=token)     # an expired token: refused
        return revoke_consent(self.database, session_id)

    def consent(self, session_id):
        return consent_of(self.database, session_id)

    def required_levels(self, role_id=None, min_levels=None):
        """``{code: level}`` to search by: a role's (NotFoundError if unknown), or parsed
        from `min_levels` (`parse_min_levels`); neither: none (``{}``)."""
        if role_id is None and min_levels is None:
            return {}
        if role_id is not None:
            for role in self.roles():
                if role["id"] == role_id:
                    return role["required"]
            raise NotFoundError(f"no job role {role_id!r}")
        return parse_min_levels(min_levels, self.levels_of)

    def search(self, required):
        """The consenting learners whose latest passed session meets `required`, each as
        `talent_view` shows it to an employer, by consent id."""
        found = []
        for entry in consented_credentials(self.database):
            standards = entry["result"].get("standards") or []
            fit = role_fit([{"id": "", "title": "", "required": required}], standards,
                           self.levels_of)
            if fit[0]["met"]:
                found.append(talent_view(entry))
        return found


def talent_view(entry):
    """What an employer sees of a consenting learner (`consented_credentials`'s entry):
    each field named here, nothing else of the stored result."""
    return {"candidate_id": entry["consent_id"], "contact": entry["contact"],
            "credential": {"test_id": entry["test_id"], "passed": True,
                           "finished_on": entry["finished_at"].date()},
            "levels": [{"code": standard["code"], "title": standard.get("title"),
                        "level": standard["level"]}
                       for standard in entry["result"].get("standards") or []]}


__all__ = ["MAX_CONTACT", "ROLES_FORMAT", "Careers", "check_required", "level_ranks",
           "levels_short", "parse_min_levels", "parse_roles", "role_fit", "talent_view"]
