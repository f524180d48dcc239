"""LTI 1.3's rows: registered platforms, each OIDC login's state and nonce, and the
sessions launches started (`irtcat.delivery.lti` holds the protocol).

A platform is ``{"id", "issuer", "client_id", "deployment_ids", "auth_login_url",
"token_url", "jwks_url"}``. A login's nonce is consumed by one launch (`use_login`), in a
compare-and-set on ``used_at``: two launches racing with one id token, one wins.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from .errors import NotFoundError, ReferenceConflict
from .schema import LtiLaunch, LtiNonce, LtiPlatform, utc_now

PLATFORM_FIELDS = ("issuer", "client_id", "deployment_ids", "auth_login_url", "token_url",
                   "jwks_url")


def _view(row):
    return {"id": row.id, **{name: getattr(row, name) for name in PLATFORM_FIELDS}}


def add_platform(database, platform):
    """Register `platform` (a dict of PLATFORM_FIELDS); its view with its new id.
    ReferenceConflict when its issuer and client id are registered already."""
    with database.writing() as session:
        taken = session.scalar(select(LtiPlatform.id).where(
            LtiPlatform.issuer == platform["issuer"],
            LtiPlatform.client_id == platform["client_id"]))
        if taken is not None:
            raise ReferenceConflict(f"the platform {platform['issuer']!r} with client id "
                                    f"{platform['client_id']!r} is registered already "
                                    f"(id {taken})")
        row = LtiPlatform(**{name: platform[name] for name in PLATFORM_FIELDS})
        session.add(row)
        session.flush()
        return _view(row)


def platforms(database):
    """Every registered platform, by id."""
    with database.reading() as session:
        return [_view(row) for row in
                session.scalars(select(LtiPlatform).order_by(LtiPlatform.id))]


def platform(database, platform_id):
    """The platform `platform_id`; NotFoundError if none."""
    with database.reading() as session:
        row = session.get(LtiPlatform, platform_id)
        if row is None:
            raise NotFoundError(f"no LTI platform {platform_id}")
        return _view(row)


def platforms_of_issuer(database, issuer):
    """The platforms registered with `issuer` (one per client id)."""
    with database.reading() as session:
        return [_view(row) for row in session.scalars(
            select(LtiPlatform).where(LtiPlatform.issuer == issuer).order_by(LtiPlatform.id))]


def remove_platform(database, platform_id):
    """Forget platform `platform_id` with its logins and launches (their sessions stay;
    no score is posted for them any more); NotFoundError if none."""
    with database.writing() as session:
        if session.get(LtiPlatform, platform_id) is None:
            raise NotFoundError(f"no LTI platform {platform_id}")
        session.execute(delete(LtiNonce).where(LtiNonce.platform_id == platform_id))
        session.execute(delete(LtiLaunch).where(LtiLaunch.platform_id == platform_id))
        session.execute(delete(LtiPlatform).where(LtiPlatform.id == platform_id))


def add_login(database, platform_id, state, nonce):
    """Record an OIDC login's `state` and `nonce` for `platform_id`."""
    with database.writing() as session:
        session.add(LtiNonce(nonce=nonce, state=state, platform_id=platform_id))


def login_of_state(database, state):
    """``{"nonce", "platform_id", "issued_at", "used"}`` of the login whose state is
    `state`, or None."""
    with database.reading() as session:
        row = session.scalar(select(LtiNonce).where(LtiNonce.state == state))
        return None if row is None else {"nonce": row.nonce, "platform_id": row.platform_id,
                                         "issued_at": row.issued_at,
                                         "used": row.used_at is not None}


def nonce_used(database, nonce):
    """Whether a launch has used `nonce` already."""
    with database.reading() as session:
        return session.scalar(select(LtiNonce.used_at).where(LtiNonce.nonce == nonce)) \
            is not None


def use_login(database, state, nonce):
    """Mark the login of `state` and `nonce` used; False when it was used already (or is
    not that pair)."""
    with database.writing() as session:
        changed = session.execute(
            update(LtiNonce).where(LtiNonce.state == state, LtiNonce.nonce == nonce,
                                   LtiNonce.used_at.is_(None)).values(used_at=utc_now()))
        return changed.rowcount == 1


def forget_logins(database, issued_before):
    """Delete the logins issued before `issued_before` that no launch used."""
    with database.writing() as session:
        session.execute(delete(LtiNonce).where(LtiNonce.issued_at < issued_before,
                                               LtiNonce.used_at.is_(None)))


def add_launch(database, session_id, platform_id, subject, deployment_id, lineitem):
    """Record that an LTI launch started session `session_id`."""
    with database.writing() as session:
        session.add(LtiLaunch(session_id=session_id, platform_id=platform_id,
                              subject=subject, deployment_id=deployment_id,
                              lineitem=lineitem))


def launch(database, session_id):
    """``{"session_id", "platform_id", "subject", "deployment_id", "lineitem"}`` of the
    launch that started `session_id`, or None for a session no launch started."""
    with database.reading() as session:
        row = session.get(LtiLaunch, session_id)
        return None if row is None else {
            "session_id": row.session_id, "platform_id": row.platform_id,
            "subject": row.subject, "deployment_id": row.deployment_id,
            "lineitem": row.lineitem}


__all__ = ["PLATFORM_FIELDS", "add_launch", "add_login", "add_platform", "forget_logins",
           "launch", "login_of_state", "nonce_used", "platform", "platforms",
           "platforms_of_issuer", "remove_platform", "use_login"]
