"""CASE 1.0 frameworks (1EdTech Competencies and Academic Standards Exchange): a CFPackage
imported into the skill standards, and the standards exported as a CFPackage.

Import (`import_case_package`; docs/case.md has the whole mapping):

- the ``CFDocument`` is the framework's document: its identifier and its descriptive
  fields (`DOCUMENT_FIELDS`: title, creator, publisher, ...) are stored and exported again;
- each ``CFItem`` is a standard. Its code is the ``humanCodingScheme``, else the item's
  identifier (also when two items share a code or it is longer than 64 characters); a
  CFItem whose identifier a stored standard already has keeps that standard's code. Its
  title is the ``abbreviatedStatement``, else the ``fullStatement`` (cut to 200
  characters); its description the ``fullStatement`` when that is not the title. Its CASE
  identifier is the item's identifier;
- an ``isChildOf`` association makes its origin item a child of its destination (an item,
  or the document: a top-level standard). Other association types are not kept;
- CASE has no proficiency cut scores: a standard that exists keeps its levels, a new one
  has none (it takes its nearest ancestor's, as irtcat-framework/1 says).

Everything is checked before anything is written (`DataFormatError`, one line): a missing
or malformed identifier, two items with one identifier, an association to a node the
package does not hold, an item with two parents, a cycle of parents.

Export (`case_package`): the document (stored, else `DEFAULT_DOCUMENT`), one CFItem per
standard (identifier = its CASE identifier, ``humanCodingScheme`` = its code unless the
code is that identifier) and one ``isChildOf`` association per standard, whose identifier
is a UUID derived from origin, type and destination, so that every export of the same
framework names it alike. URIs are `base_url` + ``/ims/case/v1p0/{CFDocuments, CFItems,
CFAssociations}/{identifier}``.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone

from irtcat.itembank.errors import DataFormatError
from irtcat.itembank.records import MAX_ID, parse_standard
from irtcat.itembank.standards import CASE_NAMESPACE

CASE_PATH = "/ims/case/v1p0"
IS_CHILD_OF = "isChildOf"
TITLE_LENGTH = 200
# The CFDocument fields (CASE 1.0, CFPackageDocument) an import keeps and an export gives
# back, besides identifier, uri and lastChangeDateTime (which the export writes itself).
DOCUMENT_FIELDS = ("title", "creator", "officialSourceURL", "publisher", "description",
                   "subject", "language", "version", "adoptionStatus", "statusStartDate",
                   "statusEndDate", "notes")
# The document of a framework that no CASE package has given: the same on every server.
DEFAULT_DOCUMENT = {"identifier": str(uuid.uuid5(CASE_NAMESPACE, "irtcat-framework")),
                    "fields": {"title": "irtcat skill framework", "creator": "irtcat"}}
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


# --- import -------------------------------------------------------------------------------

def import_case_package(store, package):
    """Create or update the standards of a CASE `package` (a CFPackage JSON object), keep
    their identifiers and the CFDocument; returns ``{"document": identifier, "created":
    [codes], "updated": [codes], "unchanged": [codes]}``. DataFormatError (nothing
    written) for a package that cannot be imported."""
    stored_codes = {identifier: code for code, identifier in store.case_identifiers().items()}
    levels = {standard["code"]: standard["levels"] for standard in store.standards()}
    document, standards, identifiers = parse_case_package(package, stored_codes, levels)
    summary = store.import_case_framework(standards, identifiers, document)
    return {"document": document["identifier"], **summary}


def parse_case_package(package, stored_codes=None, levels=None):
    """``(document, standards, identifiers)`` of a CFPackage: the document as
    ``{"identifier", "fields"}``, the standards as ``{code: entry}`` (`parse_standard`'s
    entries) and ``{code: CASE identifier}``. `stored_codes`: ``{identifier: code}`` of the
    stored standards; `levels`: ``{code: levels}`` of the stored standards."""
    if not isinstance(package, dict):
        raise DataFormatError("a CASE package is a JSON object with CFDocument and CFItems")
    document = _document(package.get("CFDocument"))
    items = _items(package.get("CFItems"), document["identifier"])
    parents = _parents(package.get("CFAssociations"), items, document["identifier"])
    codes = _codes(items, stored_codes or {})
    levels = levels or {}
    standards = {}
    for identifier, item in items.items():
        code = codes[identifier]
        title, description = _statements(item)
        parent = parents.get(identifier)
        standards[code] = parse_standard(
            {"code": code, "title": title, "description": description,
             "parent": None if parent is None else codes[parent],
             "levels": levels.get(code)}, f"CFItem {identifier}")
    return document, standards, {codes[identifier]: identifier for identifier in items}


def _identifier(value, where):
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise DataFormatError(f"{where} needs an identifier (a UUID), not {value!r}")
    return value


def _text(value, where):
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(f"{where} must be a non-empty string")
    return value


def _document(value):
    if not isinstance(value, dict):
        raise DataFormatError("a CASE package needs a CFDocument object")
    identifier = _identifier(value.get("identifier"), "the CFDocument")
    for name in ("title", "creator"):
        _text(value.get(name), f"the CFDocument's {name}")
    fields = {name: value[name] for name in DOCUMENT_FIELDS if value.get(name) is not None}
    if isinstance(fields.get("subject"), str):
        fields["subject"] = [fields["subject"]]
    for name, kept in fields.items():
        if not (isinstance(kept, str) or name == "subject" and isinstance(kept, list)
                and all(isinstance(entry, str) for entry in kept)):
            raise DataFormatError(f"the CFDocument's {name} must be a string"
                                  + (" or a list of strings" if name == "subject" else ""))
    return {"identifier": identifier, "fields": fields}


def _items(value, document_identifier):
    """``{identifier: CFItem}`` in the package's order."""
    if not isinstance(value, list) or not value:
        raise DataFormatError("a CASE package needs a non-empty CFItems list")
    items = {}
    for position, item in enumerate(value):
        if not isinstance(item, dict):
            raise DataFormatError(f"CFItem at position {position} must be an object")
        identifier = _identifier(item.get("identifier"), f"CFItem at position {position}")
        if identifier in items or identifier == document_identifier:
            raise DataFormatError(f"identifier {identifier} names two nodes of the package")
        _text(item.get("fullStatement"), f"CFItem {identifier}: fullStatement")
        for name in ("abbreviatedStatement", "humanCodingScheme"):
            if item.get(name) is not None and not isinstance(item[name], str):
                raise DataFormatError(f"CFItem {identifier}: {name} must be a string")
        items[identifier] = item
    return items


def _parents(value, items, document_identifier):
    """``{item identifier: parent item identifier}`` from the isChildOf associations (an
    item that is a child of the document is not in it)."""
    if value is None:
        value = []
    if not isinstance(value, list):
        raise DataFormatError("CFAssociations must be a list")
    parents = {}
    for position, association in enumerate(value):
        if not isinstance(association, dict):
            raise DataFormatError(f"CFAssociation at position {position} must be an object")
        if association.get("associationType") != IS_CHILD_OF:
            continue
        where = f"CFAssociation {association.get('identifier', position)}"
        origin = _node(association.get("originNodeURI"), f"{where}: originNodeURI")
        destination = _node(association.get("destinationNodeURI"),
                            f"{where}: destinationNodeURI")
        if origin not in items:
            raise DataFormatError(f"{where}: its origin {origin} is not a CFItem of the "
                                  "package")
        if destination not in items and destination != document_identifier:
            raise DataFormatError(f"{where}: its destination {destination} is neither a "
                                  "CFItem of the package nor its CFDocument")
        parent = None if destination == document_identifier else destination
        if parents.get(origin, parent) != parent:
            raise DataFormatError(f"CFItem {origin} is a child of two nodes; a standard has "
                                  "one parent")
        parents[origin] = parent
    for start in parents:
        seen, node = {start}, parents[start]
        while node is not None:
            if node in seen:
                raise DataFormatError(f"CFItem {start}: its isChildOf associations form a "
                                      "cycle")
            seen.add(node)
            node = parents.get(node)
    return {child: parent for child, parent in parents.items() if parent is not None}


def _node(value, where):
    if not isinstance(value, dict):
        raise DataFormatError(f"{where} must be a LinkURI object {{title, identifier, uri}}")
    return _identifier(value.get("identifier"), where)


def _codes(items, stored_codes):
    """``{identifier: standard code}``: a stored standard's code for an identifier it has,
    else the humanCodingScheme when only this item has it, else the identifier."""
    wanted = {identifier: (item.get("humanCodingScheme") or "").strip()
              for identifier, item in items.items()}
    counts = {}
    for code in wanted.values():
        counts[code] = counts.get(code, 0) + 1
    codes = {}
    for identifier, code in wanted.items():
        if identifier in stored_codes:
            codes[identifier] = stored_codes[identifier]
        elif code and counts[code] == 1 and len(code) <= MAX_ID:
            codes[identifier] = code
        else:
            codes[identifier] = identifier
    taken = {}
    for identifier, code in codes.items():
        if code in taken:
            raise DataFormatError(f"CFItems {taken[code]} and {identifier} would both be "
                                  f"standard {code!r}")
        taken[code] = identifier
    return codes


def _statements(item):
    """``(title, description)`` of a CFItem."""
    statement = item["fullStatement"].strip()
    abbreviated = (item.get("abbreviatedStatement") or "").strip()
    if abbreviated:
        return _cut(abbreviated), statement
    if len(statement) <= TITLE_LENGTH:
        return statement, ""
    return _cut(statement), statement


def _cut(text):
    return text if len(text) <= TITLE_LENGTH else text[:TITLE_LENGTH - 1].rstrip() + "…"


# --- export -------------------------------------------------------------------------------

def case_package(store, base_url):
    """The store's framework as a CASE 1.0 CFPackage (``{"CFDocument", "CFItems",
    "CFAssociations"}``), its URIs under `base_url` (e.g. ``https://irtcat.example.org``)."""
    document, standards = store.case_framework()
    stored = document or DEFAULT_DOCUMENT
    base = base_url.rstrip("/") + CASE_PATH
    identifiers = {standard["code"]: standard["case_identifier"] for standard in standards}
    titles = {standard["code"]: standard["title"] for standard in standards}
    changes = [standard["updated_at"] for standard in standards]
    if document is not None:
        changes.append(document["updated_at"])
    document_link = {"title": stored["fields"]["title"], "identifier": stored["identifier"],
                     "uri": f"{base}/CFDocuments/{stored['identifier']}"}
    cf_document = {"identifier": stored["identifier"], "uri": document_link["uri"],
                   **stored["fields"],
                   "lastChangeDateTime": _datetime(max(changes) if changes else None)}
    items, associations = [], []
    for standard in standards:
        identifier, changed = standard["case_identifier"], _datetime(standard["updated_at"])
        item = {"identifier": identifier, "uri": f"{base}/CFItems/{identifier}",
                "fullStatement": standard["description"] or standard["title"]}
        if standard["description"]:
            item["abbreviatedStatement"] = standard["title"]
        if standard["code"] != identifier:
            item["humanCodingScheme"] = standard["code"]
        items.append({**item, "lastChangeDateTime": changed})
        parent = standard["parent"]
        destination = document_link if parent is None else {
            "title": titles[parent], "identifier": identifiers[parent],
            "uri": f"{base}/CFItems/{identifiers[parent]}"}
        associations.append(_child_of(item, destination, base, changed))
    return {"CFDocument": cf_document, "CFItems": items, "CFAssociations": associations}


def _child_of(item, destination, base, changed):
    """The isChildOf association of `item` to `destination` (a LinkURI object)."""
    identifier = association_identifier(item["identifier"], IS_CHILD_OF,
                                        destination["identifier"])
    origin = {"title": item.get("abbreviatedStatement") or item["fullStatement"],
              "identifier": item["identifier"], "uri": item["uri"]}
    return {"identifier": identifier, "uri": f"{base}/CFAssociations/{identifier}",
            "associationType": IS_CHILD_OF, "originNodeURI": origin,
            "destinationNodeURI": destination, "lastChangeDateTime": changed}


def association_identifier(origin, association_type, destination):
    """The identifier of an association: a UUID derived from its two ends and its type."""
    return str(uuid.uuid5(CASE_NAMESPACE, f"{origin} {association_type} {destination}"))


def _datetime(moment):
    """A CASE dateTime (``2026-12-05T04:00:00+00:00``) of a stored time (naive: UTC)."""
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


__all__ = ["CASE_PATH", "DEFAULT_DOCUMENT", "DOCUMENT_FIELDS", "association_identifier",
           "case_package", "import_case_package", "parse_case_package"]
