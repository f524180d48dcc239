"""Skill standards in the store: the framework's tree, each standard's levels.

`StandardRepository` is the part of `Store` (itembank/store.py) that reads and
writes standards; `lock_standards` is the row lock every writer of a standard's
items or versions takes first.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select

from .errors import NotFoundError, ReferenceConflict
from .records import parse_framework
from .schema import CaseDocument, Standard, utc_now

# The namespace of the CASE identifiers derived from standard codes (uuid5 of the code):
# the same code gives the same CFItem identifier on every server and after every export.
CASE_NAMESPACE = uuid.UUID("5d0c4a52-3f0e-5b7c-9a57-8f2c1b6e4a10")


def case_identifier(code, stored=None):
    """A standard's CASE identifier: the one stored (imported from a CASE package or set),
    else the UUID derived from its code."""
    return stored or str(uuid.uuid5(CASE_NAMESPACE, code))


class StandardRepository:
    """Standards of one database (`self.database`, an `itembank.database.Database`)."""

    def import_framework(self, document):
        """Create or update the standards of an `irtcat-framework/1` document.

        Returns ``{"created": [codes], "updated": [codes], "unchanged": [codes]}``.
        """
        standards = parse_framework(document)
        with self.database.writing() as session:
            return self._upsert_standards(session, standards)

    def put_standard(self, entry, precondition=None):
        """Create or replace one standard (already parsed by `parse_standard`).

        `precondition`: called with the transaction's session once the standard's row is
        locked, before anything is written; it raises to write nothing (`etags.expect`)."""
        with self.database.writing() as session:
            if precondition is not None:
                lock_standards(session, [entry["code"]])
                precondition(session)
            return self._upsert_standards(session, {entry["code"]: entry})

    def _upsert_standards(self, session, standards):
        existing = {row.code: row for row in session.scalars(select(Standard))}
        parents = {code: row.parent_code for code, row in existing.items()}
        parents.update({code: entry["parent"] for code, entry in standards.items()})
        depth = {code: _depth(code, parents) for code in standards}
        summary = {"created": [], "updated": [], "unchanged": []}
        for code in sorted(standards, key=depth.get):
            entry = standards[code]
            values = {"title": entry["title"], "description": entry["description"],
                      "parent_code": entry["parent"], "levels": entry["levels"]}
            row = existing.get(code)
            if row is None:
                session.add(Standard(code=code, **values))
                summary["created"].append(code)
            elif any(getattr(row, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(row, name, value)
                row.updated_at = utc_now()
                summary["updated"].append(code)
            else:
                summary["unchanged"].append(code)
            session.flush()
        return {name: sorted(codes) for name, codes in summary.items()}

    def standards(self):
        with self.database.reading() as session:
            rows = session.scalars(select(Standard).order_by(Standard.code)).all()
            return [_standard_document(row) for row in rows]

    def standard(self, code):
        with self.database.reading() as session:
            row = session.get(Standard, code)
            if row is None:
                raise NotFoundError(f"no standard {code!r}")
            return _standard_document(row)

    def case_identifiers(self):
        """``{code: CASE identifier}`` of every standard (`case_identifier`)."""
        with self.database.reading() as session:
            return {code: case_identifier(code, stored) for code, stored in
                    session.execute(select(Standard.code, Standard.case_identifier))}

    def set_case_identifiers(self, identifiers):
        """Store ``{code: identifier}`` (a CASE import); NotFoundError for an unknown code."""
        with self.database.writing() as session:
            for code, identifier in identifiers.items():
                row = session.get(Standard, code)
                if row is None:
                    raise NotFoundError(f"no standard {code!r}")
                row.case_identifier = identifier

    def import_case_framework(self, standards, identifiers, document):
        """A CASE import in one transaction: create or update `standards` (``{code: entry}``
        as `parse_standard` gives them, parents before children or not), store their CASE
        `identifiers` (``{code: identifier}``), and make `document` (``{"identifier",
        "fields"}``, the package's CFDocument) the framework's document. Returns the
        summary of `import_framework`; nothing is written when anything is refused."""
        with self.database.writing() as session:
            summary = self._upsert_standards(session, standards)
            for code, identifier in identifiers.items():
                session.get(Standard, code).case_identifier = identifier
            session.execute(delete(CaseDocument))
            session.add(CaseDocument(identifier=document["identifier"],
                                     fields=dict(document["fields"])))
            return summary

    def case_framework(self):
        """What a CASE export needs: ``(document, standards)`` where `document` is the stored
        CFDocument (``{"identifier", "fields", "updated_at"}``) or None, and `standards` every
        standard as ``{"code", "title", "description", "parent", "case_identifier",
        "updated_at"}`` (`case_identifier`: stored, else derived), by code."""
        with self.database.reading() as session:
            row = session.scalars(select(CaseDocument)).first()
            document = None if row is None else {
                "identifier": row.identifier, "fields": dict(row.fields),
                "updated_at": row.updated_at}
            standards = [{**_standard_document(standard),
                          "case_identifier": case_identifier(standard.code,
                                                             standard.case_identifier),
                          "updated_at": standard.updated_at}
                         for standard in session.scalars(select(Standard)
                                                         .order_by(Standard.code))]
            return document, standards

    def levels_of(self, code):
        """The proficiency levels that apply to `code`: its own, else its nearest ancestor's."""
        with self.database.reading() as session:
            seen = set()
            while code is not None and code not in seen:
                seen.add(code)
                row = session.get(Standard, code)
                if row is None:
                    raise NotFoundError(f"no standard {code!r}")
                if row.levels:
                    return list(row.levels)
                code = row.parent_code
            return []


def lock_standards(session, codes):
    """The codes among `codes` that exist, their rows locked until the transaction ends:
    versions of one standard are numbered and published one writer at a time (SQLite's
    BEGIN IMMEDIATE already serialises writers; PostgreSQL takes row locks)."""
    return session.scalars(select(Standard.code).where(Standard.code.in_(list(codes)))
                           .order_by(Standard.code).with_for_update()).all()


def _depth(code, parents):
    """Ancestors of `code`; DataFormatError for an unknown parent or a cycle."""
    depth, seen, node = 0, {code}, parents[code]
    while node is not None:
        if node not in parents:
            raise ReferenceConflict(f"standard {code!r}: unknown parent {node!r}")
        if node in seen:
            raise ReferenceConflict(f"standard {code!r}: its parents form a cycle")
        seen.add(node)
        depth += 1
        node = parents[node]
    return depth


def _standard_document(row):
    return {"code": row.code, "title": row.title, "description": row.description,
            "parent": row.parent_code, "levels": list(row.levels or [])}


__all__ = ["CASE_NAMESPACE", "StandardRepository", "case_identifier", "lock_standards"]
