"""The 1EdTech CAT service's sections and the sessions started in them (storage only:
`irtcat.delivery.ims_cat` gives them their meaning)."""

from __future__ import annotations

from sqlalchemy import select, update

from .errors import NotFoundError
from .schema import ImsCatSection, ImsCatSession, utc_now


def add_section(database, section_id, test_id, key_id, configuration):
    """Store a new open section."""
    with database.writing() as session:
        session.add(ImsCatSection(id=section_id, test_id=test_id, key_id=key_id,
                                  configuration=configuration, created_at=utc_now()))


def section_row(database, section_id):
    """The section's row (its columns as attributes); NotFoundError if none."""
    with database.read_connection() as connection:
        row = connection.execute(select(ImsCatSection.__table__).where(
            ImsCatSection.id == section_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"no section {section_id!r}")
    return row


def end_section(database, section_id):
    """Mark the section ended (once: a second call keeps the first time)."""
    with database.writing() as session:
        session.execute(update(ImsCatSection).where(ImsCatSection.id == section_id,
                                                    ImsCatSection.ended_at.is_(None))
                        .values(ended_at=utc_now()))


def add_section_session(database, session_id, section_id, prior_data):
    """Record that the irtcat session `session_id` belongs to the section."""
    with database.writing() as session:
        session.add(ImsCatSession(session_id=session_id, section_id=section_id,
                                  prior_data=prior_data))


def section_of_session(database, session_id):
    """The id of the section the session was started in, or None (a /v1 session)."""
    with database.read_connection() as connection:
        return connection.execute(select(ImsCatSession.section_id).where(
            ImsCatSession.session_id == session_id)).scalar_one_or_none()


__all__ = ["add_section", "add_section_session", "end_section", "section_of_session",
           "section_row"]
