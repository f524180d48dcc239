"""Items in the store: importing them (all or nothing), reading them, exporting banks.

Every write is one transaction: an import with one bad item writes nothing, and
repeating an import changes nothing. An import that changes the published
parameters or statuses of a standard's items publishes a new bank version of it
(`itembank/versions.py`). `ItemRepository` also holds the lean reads that
delivering tests needs (`item_records_of`, `item_content`, `item_summaries`).
"""

from __future__ import annotations

from sqlalchemy import func, insert, select

from .dimensions import parse_dimensions
from .errors import DataFormatError, NotFoundError, ReferenceConflict
from .io import BANK_FORMAT, parse_population
from .records import ItemRecord, parse_items
from .schema import BankVersionItem, Item, Standard, utc_now
from .standards import lock_standards
from .versions import (
    add_version,
    current_version,
    publish_version,
    version_by_number,
    version_entries,
)


def _record_of(row):
    return ItemRecord(row.id, row.standard_code, row.model, row.status, row.content, row.key,
                      list(row.tags or []), list(row.enemies or []), dict(row.extra or {}), None)


class ItemRepository:
    """Items of one database (`self.database`)."""

    def import_items(self, document, precondition=None):
        """Import items (a bank document or a list of item documents), all or nothing.

        `precondition`: as for `put_standard`, called once the items' standards are
        locked.

        New items are added, changed ones updated. For each standard whose
        published parameters or statuses change, a new bank version is created
        and published at once (items with parameters are live for new sessions);
        items without parameters wait for a calibration. Returns ``{"created",
        "updated", "unchanged": int, "versions": [{"standard", "version"}]}``.
        """
        dimensions = parse_dimensions(document)
        records = parse_items(document, dimensions)
        population = parse_population(document)
        calibration = document.get("calibration") if isinstance(document, dict) else None
        with self.database.writing() as session:
            if precondition is not None:
                lock_standards(session, {record.standard for record in records.values()})
                precondition(session)
            return self._import_items(session, records, population, calibration, dimensions)

    def _import_items(self, session, records, population, calibration, dimensions=None):
        codes = {record.standard for record in records.values()}
        known = set(lock_standards(session, codes))
        for record in records.values():
            if record.standard not in known:
                raise ReferenceConflict(f"item {record.id!r}: unknown standard "
                                      f"{record.standard!r}")
        existing = {row.id: row for row in session.scalars(
            select(Item).where(Item.id.in_(list(records))))}
        enemies = {e for record in records.values() for e in record.enemies}
        known_items = set(records) | set(session.scalars(
            select(Item.id).where(Item.id.in_(list(enemies - set(records))))))
        for record in records.values():
            missing = [e for e in record.enemies if e not in known_items]
            if missing:
                raise ReferenceConflict(f"item {record.id!r}: unknown enemy {missing[0]!r}")
            row = existing.get(record.id)
            if row is not None and row.standard_code != record.standard:
                raise ReferenceConflict(f"item {record.id!r} belongs to {row.standard_code!r}; "
                                      f"it cannot move to {record.standard!r}")
        seq = session.scalar(select(func.coalesce(func.max(Item.seq), 0)))
        new_rows, changed = [], set()
        for record in records.values():
            values = {"standard_code": record.standard, "model": record.model,
                      "content": record.content, "key": record.key, "status": record.status,
                      "tags": record.tags, "enemies": record.enemies, "extra": record.extra}
            row = existing.get(record.id)
            if row is None:
                seq += 1
                new_rows.append({"id": record.id, "seq": seq, "updated_at": utc_now(),
                                 **values})
            elif any(getattr(row, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(row, name, value)
                row.updated_at = utc_now()
                changed.add(record.id)
        if new_rows:
            session.execute(insert(Item), new_rows)
        session.flush()
        versions = []
        for code in sorted(codes):
            number, changed_parameters = _publish_changes(
                session, code, [r for r in records.values() if r.standard == code],
                population, calibration, dimensions)
            changed |= changed_parameters - {row["id"] for row in new_rows}
            if number is not None:
                versions.append({"standard": code, "version": number})
        return {"created": len(new_rows), "updated": len(changed),
                "unchanged": len(records) - len(new_rows) - len(changed), "versions": versions}

    def item(self, item_id):
        """One item's document with its published parameters, or None."""
        with self.database.reading() as session:
            row = session.get(Item, item_id)
            if row is None:
                return None
            current = current_version(session, row.standard_code)
            parameters = None
            if current is not None:
                parameters = session.scalar(select(BankVersionItem.parameters).where(
                    BankVersionItem.version_id == current.id,
                    BankVersionItem.item_id == item_id))
            return _record_of(row).document(_without_status(parameters), row.status)

    def items(self, standard=None):
        """Item documents (content and key included), with the published parameters;
        standards on different population scales may be listed together."""
        with self.database.reading() as session:
            if standard is not None and session.get(Standard, standard) is None:
                raise NotFoundError(f"no standard {standard!r}")
            return self._current_items(session, standard)[0]

    def _current_items(self, session, standard, published_only=False):
        """(item documents with published parameters, the published versions); with
        `published_only`, the items of the published versions alone."""
        query = select(Item).order_by(Item.seq)
        if standard is not None:
            query = query.where(Item.standard_code == standard)
        rows = session.scalars(query).all()
        versions, entries = [], {}
        for code in dict.fromkeys(row.standard_code for row in rows):
            current = current_version(session, code)
            if current is not None:
                versions.append(current)
                entries.update(version_entries(session, current.id))
        return [_record_of(row).document(_without_status(entries.get(row.id)), row.status)
                for row in rows if not published_only or row.id in entries], versions

    def export_bank(self, standard=None, version=None, published=False):
        """The `irtcat-bank/1` document of one standard or all.

        Without `version`: every item of the standard(s), in import order, with the
        parameters of the published version (none for items awaiting calibration);
        `published`: the items of the published versions only, as sessions deliver them.
        With `version` (needs `standard`): exactly that version's items and parameters.
        """
        if version is not None and standard is None:
            raise DataFormatError("a version number needs a standard")
        if version is not None and published:
            raise DataFormatError("give a version number or the published versions, not both")
        with self.database.reading() as session:
            if standard is not None and session.get(Standard, standard) is None:
                raise NotFoundError(f"no standard {standard!r}")
            if version is not None:
                chosen = version_by_number(session, standard, version)
                entries = version_entries(session, chosen.id)
                rows = {row.id: row for row in session.scalars(
                    select(Item).where(Item.id.in_(list(entries))))}
                items = [_record_of(rows[item_id]).document(parameters, parameters["status"])
                         for item_id, parameters in entries.items()]
                versions = [chosen]
            else:
                items, versions = self._current_items(session, standard, published)
            if not items:
                raise NotFoundError("no items" + (f" in standard {standard!r}" if standard
                                                  else " in the store"))
            return _bank_document(items, versions)

    def item_records(self, code):
        """The items of standard `code` (`ItemRecord`, no parameters), in import order."""
        with self.database.reading() as session:
            if session.get(Standard, code) is None:
                raise NotFoundError(f"no standard {code!r}")
            rows = session.scalars(select(Item).where(Item.standard_code == code)
                                   .order_by(Item.seq))
            return [_record_of(row) for row in rows]

    # --- what delivering tests reads ----------------------------------------------------

    def item_records_of(self, codes):
        """``{item_id: ItemRecord}`` of every item of the standards `codes` (no parameters)."""
        with self.database.reading() as session:
            return {row.id: _record_of(row) for row in session.scalars(
                select(Item).where(Item.standard_code.in_(list(codes))))}

    def item_content(self, item_id):
        """``(model, content, key)`` of one item, or None if there is none."""
        with self.database.reading() as session:
            row = session.execute(select(Item.model, Item.content, Item.key)
                                  .where(Item.id == item_id)).one_or_none()
        return None if row is None else (row.model, row.content, row.key)

    def item_summaries(self, item_ids):
        """``{item_id: row}`` of the items among `item_ids` that exist; each row has
        ``id``, ``standard_code``, ``status``, ``model`` and ``key`` (no content)."""
        with self.database.reading() as session:
            return {row.id: row for row in session.execute(
                select(Item.id, Item.standard_code, Item.status, Item.model, Item.key)
                .where(Item.id.in_(list(item_ids))))}


def _publish_changes(session, code, records, population, calibration, dimensions=None):
    """Publish a new version of `code` if `records` change its published items.

    `dimensions`: of a multidimensional import; an import without parameters keeps
    the current version's. A version is wholly unidimensional or wholly on the new
    version's factors (DataFormatError otherwise).

    Returns ``(version number or None, ids of items whose parameters changed)``."""
    current = current_version(session, code)
    entries = version_entries(session, current.id) if current is not None else {}
    candidate = dict(entries)
    for record in records:
        held = candidate.get(record.id)
        if record.parameters is not None:
            candidate[record.id] = {"model": record.model, **record.parameters,
                                    "status": record.status}
        elif held is not None:
            if held["model"] != record.model:
                raise DataFormatError(f"item {record.id!r}: its model changes from "
                                      f"{held['model']} to {record.model}; give its "
                                      "parameters")
            candidate[record.id] = {**held, "status": record.status}
    if current is not None:
        population = population or {"mean": current.population_mean,
                                    "sd": current.population_sd}
        calibration = calibration if calibration is not None else current.calibration
        if dimensions is None and all(record.parameters is None for record in records):
            dimensions = current.dimensions
    _check_dimensionality(code, candidate, dimensions)
    changed = {item_id for item_id, parameters in candidate.items()
               if entries.get(item_id) != parameters}
    same_scale = current is None or (
        population == {"mean": current.population_mean, "sd": current.population_sd}
        and dimensions == current.dimensions)
    if not candidate or (not changed and same_scale):
        return None, changed
    version = add_version(session, code, candidate, population, calibration,
                          dimensions=dimensions)
    publish_version(session, version)
    return version.number, changed


def _check_dimensionality(code, entries, dimensions):
    """Every item of a version has a number `a` (unidimensional) or a list of one slope
    per factor of `dimensions`; DataFormatError naming the first that does not."""
    size = None if dimensions is None else len(dimensions["factors"])
    for item_id, parameters in entries.items():
        slopes = parameters.get("a")
        listed = isinstance(slopes, list)
        if (size is None and listed) or (size is not None and (not listed
                                                                or len(slopes) != size)):
            kind = "unidimensional" if size is None else f"{size}-dimensional"
            raise DataFormatError(f"standard {code!r}: item {item_id!r} does not fit its "
                                  f"new {kind} bank version; import its parameters on the "
                                  "same factors")


def _without_status(parameters):
    """A version's parameters of one item, as its document shows them (the version's
    model included: a calibration may have changed it)."""
    if parameters is None:
        return None
    return {name: value for name, value in parameters.items() if name != "status"}


def _bank_document(items, versions):
    document = {"format": BANK_FORMAT, "metric": "logistic"}
    populations = {(v.population_mean, v.population_sd) for v in versions}
    if len(populations) > 1:
        raise DataFormatError("the standards' bank versions are on different population "
                              "scales; export one standard at a time")
    mean, sd = populations.pop() if populations else (0.0, 1.0)
    document["population"] = {"mean": mean, "sd": sd}
    dimensions = [v.dimensions for v in versions]
    if any(d != dimensions[0] for d in dimensions):
        raise DataFormatError("the standards' bank versions have different dimensions; "
                              "export one standard at a time")
    if dimensions and dimensions[0] is not None:
        document["dimensions"] = dimensions[0]
    document["items"] = items
    calibrations = [v.calibration for v in versions if v.calibration is not None]
    if calibrations and all(c == calibrations[0] for c in calibrations) \
            and len(calibrations) == len(versions):
        document["calibration"] = calibrations[0]
    elif calibrations:
        document["calibrations"] = {v.standard_code: v.calibration for v in versions
                                    if v.calibration is not None}
    return document


__all__ = ["ItemRepository"]
