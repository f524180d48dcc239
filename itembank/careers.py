"""The career framework and the talent network in the store (migration 0015).

- Job roles: `job_roles(database)` reads them, `replace_job_roles(database, roles)` makes
  the stored set exactly `roles` (the career framework is one document).
- Consents: `give_consent` records a learner's consent (a learner is a session's
  `learner_id` under the key that started it), `revoke_consent` ends it,
  `consented_credentials` reads, for every consent in force, the learner's latest passed
  session: what a search of the talent network starts from.

Nothing here decides what a role requires or who meets it (`irtcat.delivery.careers`).
"""

from __future__ import annotations

import secrets

from sqlalchemy import and_, delete, select, update

from .errors import NotFoundError
from .schema import Consent, DeliverySession, JobRole, utc_now


def job_roles(database):
    """Every job role, by id: ``[{"id", "title", "description", "required"}]``."""
    with database.reading() as session:
        return [_role_document(row) for row in
                session.scalars(select(JobRole).order_by(JobRole.id))]


def replace_job_roles(database, roles):
    """Make the stored roles exactly `roles` (documents as `job_roles` returns them,
    already checked); returns ``{"created", "updated", "unchanged", "removed"}`` (ids)."""
    summary = {"created": [], "updated": [], "unchanged": [], "removed": []}
    wanted = {role["id"]: role for role in roles}
    with database.writing() as session:
        existing = {row.id: row for row in session.scalars(select(JobRole))}
        for role_id in sorted(set(existing) - set(wanted)):
            summary["removed"].append(role_id)
        session.execute(delete(JobRole).where(JobRole.id.in_(summary["removed"])))
        for role_id, role in sorted(wanted.items()):
            row = existing.get(role_id)
            if row is None:
                session.add(JobRole(**role))
                status = "created"
            elif _role_document(row) == role:
                status = "unchanged"
            else:
                row.title, row.description = role["title"], role["description"]
                row.required, row.updated_at = role["required"], utc_now()
                status = "updated"
            summary[status].append(role_id)
    return summary


def give_consent(database, session_id, contact):
    """Record consent given with `session_id` (its learner and key) and `contact`; a
    consent of the same learner still in force is revoked by this one. Returns
    ``{"consent_id", "contact", "given_at"}``; NotFoundError for an unknown session."""
    now = utc_now()
    with database.writing() as session:
        row = session.get(DeliverySession, session_id)
        if row is None:
            raise NotFoundError(f"no session {session_id!r}")
        session.execute(update(Consent).where(_same_learner(row.learner_id, row.key_id),
                                              Consent.revoked_at.is_(None))
                        .values(revoked_at=now))
        consent = Consent(id="c_" + secrets.token_hex(12), session_id=session_id,
                          learner_id=row.learner_id, key_id=row.key_id, contact=contact,
                          given_at=now)
        session.add(consent)
    return {"consent_id": consent.id, "contact": contact, "given_at": now}


def revoke_consent(database, session_id):
    """Revoke every consent in force of the learner of `session_id`; returns how many
    (0 when there was none). NotFoundError for an unknown session."""
    with database.writing() as session:
        row = session.get(DeliverySession, session_id)
        if row is None:
            raise NotFoundError(f"no session {session_id!r}")
        return session.execute(
            update(Consent).where(_same_learner(row.learner_id, row.key_id),
                                  Consent.revoked_at.is_(None))
            .values(revoked_at=utc_now())).rowcount


def consent_of(database, session_id):
    """The consent in force of the learner of `session_id` (``{"consent_id", "contact",
    "given_at"}``), or None."""
    with database.reading() as session:
        row = session.get(DeliverySession, session_id)
        if row is None:
            raise NotFoundError(f"no session {session_id!r}")
        consent = session.scalars(select(Consent).where(
            _same_learner(row.learner_id, row.key_id), Consent.revoked_at.is_(None))
            .order_by(Consent.given_at.desc())).first()
        return None if consent is None else {"consent_id": consent.id,
                                             "contact": consent.contact,
                                             "given_at": consent.given_at}


def consented_credentials(database):
    """For each consent in force whose learner has a finished session that passed (its
    result's decision), the latest such session: ``[{"consent_id", "contact", "test_id",
    "finished_at", "result"}]`` by consent id. `result` is the stored session result
    (θ and all): the caller keeps only what an employer may see."""
    with database.reading() as session:
        consents = session.scalars(select(Consent).where(Consent.revoked_at.is_(None))
                                   .order_by(Consent.id)).all()
        if not consents:
            return []
        learners = {(c.learner_id, c.key_id) for c in consents}
        rows = session.execute(
            select(DeliverySession.learner_id, DeliverySession.key_id,
                   DeliverySession.test_id, DeliverySession.finished_at,
                   DeliverySession.result)
            .where(DeliverySession.status == "finished",
                   DeliverySession.learner_id.in_({learner for learner, _ in learners}))
            .order_by(DeliverySession.finished_at)).all()
    latest = {}
    for learner_id, key_id, test_id, finished_at, result in rows:    # the last one wins
        decision = (result or {}).get("decision") or {}
        if (learner_id, key_id) in learners and decision.get("pass") is True:
            latest[(learner_id, key_id)] = {"test_id": test_id, "finished_at": finished_at,
                                            "result": result}
    return [{"consent_id": c.id, "contact": c.contact, **latest[(c.learner_id, c.key_id)]}
            for c in consents if (c.learner_id, c.key_id) in latest]


def _same_learner(learner_id, key_id):
    """The consents of one learner: the same learner id under the same key (None: the
    learner page)."""
    same_key = Consent.key_id.is_(None) if key_id is None else Consent.key_id == key_id
    return and_(Consent.learner_id == learner_id, same_key)


def _role_document(row):
    return {"id": row.id, "title": row.title, "description": row.description,
            "required": dict(row.required)}


__all__ = ["consent_of", "consented_credentials", "give_consent", "job_roles",
           "replace_job_roles", "revoke_consent"]
