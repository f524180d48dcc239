"""The item bank store: framework, items, bank versions, publications, response log.

Every write is one transaction: an import with one bad item writes nothing, and
repeating an import changes nothing. A bank version is immutable once
published; publishing is appending to ``publications``, so rolling back is
publishing an earlier version again, and a session pinned to a version keeps
reading exactly what it started with.

`Store.delivery_bank` turns a published version into the engine's arrays once
and keeps it (versions never change, so the cache never goes stale).
"""

from __future__ import annotations

import csv
import os
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from irtcat.engine.models import category_count, parameter_columns, parameters_from_columns

from .bank import ItemBank
from .io import BANK_FORMAT, DataFormatError, ResponseLog, parse_population
from .records import ItemRecord, parse_framework, parse_items
from .schema import (
    BankVersion,
    BankVersionItem,
    CalibrationRun,
    Item,
    Publication,
    Response,
    Standard,
    utc_now,
)

DEFAULT_POPULATION = {"mean": 0.0, "sd": 1.0}
CACHED_VERSIONS = 64


class NotFoundError(LookupError):
    """A standard, item or version that is not in the store; one-line message."""


@dataclass(frozen=True, eq=False)
class DeliveryBank:
    """A published bank version in the engine's arrays.

    `bank.items` holds ``{"id", "standard", "model", "status"}`` per item (no
    content, no key); `bank.params` the parameters in the same order.
    """

    version_id: int
    standard: str
    number: int
    bank: ItemBank
    columns: dict


def _version_info(version, current_id=None, n_items=None):
    info = {"standard": version.standard_code, "version": version.number,
            "published": version.published, "current": version.id == current_id,
            "created_at": version.created_at.isoformat(),
            "published_at": version.published_at.isoformat() if version.published_at else None,
            "calibration_run": version.calibration_run_id}
    if n_items is not None:
        info["items"] = n_items
    return info


def _record_of(row):
    return ItemRecord(row.id, row.standard_code, row.model, row.status, row.content, row.key,
                      list(row.tags or []), list(row.enemies or []), dict(row.extra or {}), None)


class Store:
    """Operations on one database (`itembank.database.Database`)."""

    def __init__(self, database):
        self.database = database
        self._cache = OrderedDict()
        self._cache_lock = threading.Lock()

    # --- standards -------------------------------------------------------------------

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
                _lock_standards(session, [entry["code"]])
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

    # --- items -----------------------------------------------------------------------

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
        records = parse_items(document)
        population = parse_population(document)
        calibration = document.get("calibration") if isinstance(document, dict) else None
        with self.database.writing() as session:
            if precondition is not None:
                _lock_standards(session, {record.standard for record in records.values()})
                precondition(session)
            return self._import_items(session, records, population, calibration)

    def _import_items(self, session, records, population, calibration):
        codes = {record.standard for record in records.values()}
        known = set(_lock_standards(session, codes))
        for record in records.values():
            if record.standard not in known:
                raise DataFormatError(f"item {record.id!r}: unknown standard "
                                      f"{record.standard!r}")
        existing = {row.id: row for row in session.scalars(
            select(Item).where(Item.id.in_(list(records))))}
        enemies = {e for record in records.values() for e in record.enemies}
        known_items = set(records) | set(session.scalars(
            select(Item.id).where(Item.id.in_(list(enemies - set(records))))))
        for record in records.values():
            missing = [e for e in record.enemies if e not in known_items]
            if missing:
                raise DataFormatError(f"item {record.id!r}: unknown enemy {missing[0]!r}")
            row = existing.get(record.id)
            if row is not None and row.standard_code != record.standard:
                raise DataFormatError(f"item {record.id!r} belongs to {row.standard_code!r}; "
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
            number, changed_parameters = self._publish_changes(
                session, code, [r for r in records.values() if r.standard == code],
                population, calibration)
            changed |= changed_parameters - {row["id"] for row in new_rows}
            if number is not None:
                versions.append({"standard": code, "version": number})
        return {"created": len(new_rows), "updated": len(changed),
                "unchanged": len(records) - len(new_rows) - len(changed), "versions": versions}

    def _publish_changes(self, session, code, records, population, calibration):
        """Publish a new version of `code` if `records` change its published items.

        Returns ``(version number or None, ids of items whose parameters changed)``."""
        current = self._current_version(session, code)
        entries = self._version_entries(session, current.id) if current is not None else {}
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
        changed = {item_id for item_id, parameters in candidate.items()
                   if entries.get(item_id) != parameters}
        same_scale = current is None or population == {"mean": current.population_mean,
                                                       "sd": current.population_sd}
        if not candidate or (not changed and same_scale):
            return None, changed
        version = self._add_version(session, code, candidate, population, calibration)
        self._publish(session, version)
        return version.number, changed

    def _add_version(self, session, code, entries, population, calibration, run_id=None):
        """A new draft version of `code` holding `entries` ({item_id: parameters})."""
        population = population or DEFAULT_POPULATION
        number = session.scalar(select(func.coalesce(func.max(BankVersion.number), 0))
                                .where(BankVersion.standard_code == code)) + 1
        version = BankVersion(standard_code=code, number=number,
                              population_mean=population["mean"],
                              population_sd=population["sd"], calibration=calibration,
                              arrays=_columns(entries), calibration_run_id=run_id,
                              published=False)
        session.add(version)
        session.flush()
        session.execute(insert(BankVersionItem), [
            {"version_id": version.id, "item_id": item_id, "position": position,
             "parameters": parameters}
            for position, (item_id, parameters) in enumerate(entries.items())])
        return version

    def add_draft_version(self, code, entries, population=None, calibration=None,
                          run_id=None):
        """Store a calibration's result as an unpublished version; returns its number.

        `entries`: ``{item_id: {"model", "a", "b", ..., "status"}}``.
        """
        with self.database.writing() as session:
            if session.get(Standard, code) is None:
                raise NotFoundError(f"no standard {code!r}")
            return self._add_version(session, code, entries, population, calibration,
                                     run_id).number

    @staticmethod
    def _publish(session, version):
        if not version.published:
            version.published = True
            version.published_at = utc_now()
        session.add(Publication(standard_code=version.standard_code, version_id=version.id))
        session.flush()

    @staticmethod
    def _current_version(session, code):
        version_id = session.scalar(select(Publication.version_id)
                                    .where(Publication.standard_code == code)
                                    .order_by(Publication.id.desc()).limit(1))
        return None if version_id is None else session.get(BankVersion, version_id)

    @staticmethod
    def _version_entries(session, version_id):
        rows = session.execute(select(BankVersionItem.item_id, BankVersionItem.parameters)
                               .where(BankVersionItem.version_id == version_id)
                               .order_by(BankVersionItem.position))
        return {item_id: parameters for item_id, parameters in rows}

    @staticmethod
    def _version(session, code, number):
        version = session.scalar(select(BankVersion).where(
            BankVersion.standard_code == code, BankVersion.number == number))
        if version is None:
            raise NotFoundError(f"standard {code!r} has no version {number}")
        return version

    def item(self, item_id):
        """One item's document with its published parameters, or None."""
        with self.database.reading() as session:
            row = session.get(Item, item_id)
            if row is None:
                return None
            current = self._current_version(session, row.standard_code)
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

    def _current_items(self, session, standard):
        """(item documents with published parameters, the published versions)."""
        query = select(Item).order_by(Item.seq)
        if standard is not None:
            query = query.where(Item.standard_code == standard)
        rows = session.scalars(query).all()
        versions, entries = [], {}
        for code in dict.fromkeys(row.standard_code for row in rows):
            current = self._current_version(session, code)
            if current is not None:
                versions.append(current)
                entries.update(self._version_entries(session, current.id))
        return [_record_of(row).document(_without_status(entries.get(row.id)), row.status)
                for row in rows], versions

    # --- versions --------------------------------------------------------------------

    def publish(self, code, number=None):
        """Make version `number` (default: the newest) the one new sessions use. Publishing
        an earlier version again is a rollback; publishing the current one changes nothing."""
        with self.database.writing() as session:
            if not _lock_standards(session, [code]):
                raise NotFoundError(f"no standard {code!r}")
            if number is None:
                number = session.scalar(select(func.max(BankVersion.number))
                                        .where(BankVersion.standard_code == code))
                if number is None:
                    raise NotFoundError(f"standard {code!r} has no bank version")
            version = self._version(session, code, number)
            current = self._current_version(session, code)
            if current is None or current.id != version.id:
                self._publish(session, version)
            return _version_info(version, version.id)

    def versions(self, code):
        """Every version of `code`, oldest first, with which one is current."""
        with self.database.reading() as session:
            if session.get(Standard, code) is None:
                raise NotFoundError(f"no standard {code!r}")
            current = self._current_version(session, code)
            counts = dict(session.execute(
                select(BankVersionItem.version_id, func.count()).join(BankVersion)
                .where(BankVersion.standard_code == code)
                .group_by(BankVersionItem.version_id)).all())
            rows = session.scalars(select(BankVersion).where(BankVersion.standard_code == code)
                                   .order_by(BankVersion.number))
            return [_version_info(row, current.id if current else None, counts.get(row.id, 0))
                    for row in rows]

    def export_bank(self, standard=None, version=None):
        """The `irtcat-bank/1` document of one standard or all.

        Without `version`: every item of the standard(s), in import order, with the
        parameters of the published version (none for items awaiting calibration).
        With `version` (needs `standard`): exactly that version's items and parameters.
        """
        if version is not None and standard is None:
            raise DataFormatError("a version number needs a standard")
        with self.database.reading() as session:
            if standard is not None and session.get(Standard, standard) is None:
                raise NotFoundError(f"no standard {standard!r}")
            if version is not None:
                chosen = self._version(session, standard, version)
                entries = self._version_entries(session, chosen.id)
                rows = {row.id: row for row in session.scalars(
                    select(Item).where(Item.id.in_(list(entries))))}
                items = [_record_of(rows[item_id]).document(parameters, parameters["status"])
                         for item_id, parameters in entries.items()]
                versions = [chosen]
            else:
                items, versions = self._current_items(session, standard)
            if not items:
                raise NotFoundError("no items" + (f" in standard {standard!r}" if standard
                                                  else " in the store"))
            return _bank_document(items, versions)

    # --- calibration runs --------------------------------------------------------------

    def item_records(self, code):
        """The items of standard `code` (`ItemRecord`, no parameters), in import order."""
        with self.database.reading() as session:
            if session.get(Standard, code) is None:
                raise NotFoundError(f"no standard {code!r}")
            rows = session.scalars(select(Item).where(Item.standard_code == code)
                                   .order_by(Item.seq))
            return [_record_of(row) for row in rows]

    def published_entries(self, code):
        """``{item_id: parameters}`` of the published version of `code` ({} if none)."""
        with self.database.reading() as session:
            current = self._current_version(session, code)
            return {} if current is None else self._version_entries(session, current.id)

    def create_calibration_run(self, code, model, source, options):
        """Record a queued calibration of standard `code`, to be run by this process;
        returns its id."""
        with self.database.writing() as session:
            if session.get(Standard, code) is None:
                raise NotFoundError(f"no standard {code!r}")
            run = CalibrationRun(standard_code=code, model=model or "items", source=source,
                                 options=options, status="queued", runner=_this_process())
            session.add(run)
            session.flush()
            return run.id

    def start_calibration_run(self, run_id, n_responses):
        with self.database.writing() as session:
            run = self._run(session, run_id)
            run.status, run.n_responses = "running", n_responses

    def fail_calibration_run(self, run_id, message):
        with self.database.writing() as session:
            run = self._run(session, run_id)
            run.status, run.error, run.finished_at = "failed", message, utc_now()

    def complete_calibration_run(self, run_id, document, entries):
        """Store a run's result and its draft bank version in one transaction; returns the
        version number. `entries`: ``{item_id: parameters with model and status}``."""
        with self.database.writing() as session:
            run = self._run(session, run_id)
            _lock_standards(session, [run.standard_code])
            version = self._add_version(session, run.standard_code, entries,
                                        document.get("population"),
                                        document.get("calibration"), run_id)
            run.status, run.result, run.finished_at = "done", document, utc_now()
            return version.number

    def calibration_run(self, run_id):
        """A run as ``{"id", "standard", "model", "source", "options", "status", "error",
        "n_responses", "version", "result", "created_at", "finished_at"}``.

        A queued or running run whose process (on this host) has ended is recorded as
        failed first: a server restarted mid-calibration does not leave it running."""
        with self.database.reading() as session:
            run = self._run(session, run_id)
            ended = run.status in ("queued", "running") and _has_ended(run.runner)
        if ended:
            with self.database.writing() as session:
                run = self._run(session, run_id)
                if run.status in ("queued", "running"):
                    run.status, run.finished_at = "failed", utc_now()
                    run.error = (f"the process running it ({run.runner}) ended before it "
                                 "finished; start the calibration again")
        with self.database.reading() as session:
            run = self._run(session, run_id)
            number = session.scalar(select(BankVersion.number)
                                    .where(BankVersion.calibration_run_id == run.id))
            return {"id": run.id, "standard": run.standard_code, "model": run.model,
                    "source": run.source, "options": run.options, "status": run.status,
                    "error": run.error, "n_responses": run.n_responses, "version": number,
                    "result": run.result, "created_at": run.created_at.isoformat(),
                    "finished_at": run.finished_at.isoformat() if run.finished_at else None}

    @staticmethod
    def _run(session, run_id):
        run = session.get(CalibrationRun, run_id)
        if run is None:
            raise NotFoundError(f"no calibration run {run_id}")
        return run

    # --- responses -------------------------------------------------------------------

    def add_responses(self, rows):
        """Append answers to the log, all or nothing. Each row: ``{"session_id",
        "learner_id", "item_id", "raw_response", "score", "bank_version_id"?,
        "pretest"?}``; a repeated (session, item) is refused by the database."""
        rows = [{"bank_version_id": None, "pretest": False, "responded_at": utc_now(), **row}
                for row in rows]
        with self.database.writing() as session:
            _bulk_insert(session, Response.__table__, rows)
        return len(rows)

    def import_response_log(self, log, source="import"):
        """Append a `ResponseLog` (e.g. historical data from a long CSV), all or nothing.

        Each person becomes a session ``"{source}:{person_id}"`` (and the learner
        `person_id`); the response is the score. Every item must be in the store and
        every score among its categories; a session already in the log is refused.
        """
        with self.database.writing() as session:
            rows = session.execute(select(Item.id, Item.model, Item.key)
                                   .where(Item.id.in_(list(log.item_ids)))).all()
            known = {item_id: category_count(model, key=key) for item_id, model, key in rows}
            for position, item_id in enumerate(log.item_ids):
                if item_id not in known:
                    raise DataFormatError(f"item {item_id!r} is not in the store")
                top = log.response[log.item_index == position].max()
                if known[item_id] is not None and top >= known[item_id]:
                    raise DataFormatError(f"item {item_id!r}: response {int(top)} is beyond its "
                                          f"categories 0..{known[item_id] - 1}")
            sessions = [f"{source}:{person}" for person in log.person_ids]
            clash = session.scalar(select(Response.session_id)
                                   .where(Response.session_id.in_(sessions)).limit(1))
            if clash is not None:
                raise DataFormatError(f"session {clash!r} is already in the log")
            now = utc_now()
            _bulk_insert(session, Response.__table__, [
                {"session_id": sessions[p], "learner_id": log.person_ids[p],
                 "item_id": log.item_ids[i], "raw_response": None, "score": int(score),
                 "responded_at": now, "bank_version_id": None, "pretest": False}
                for p, i, score in zip(log.person_index.tolist(), log.item_index.tolist(),
                                       log.response.tolist(), strict=True)])
        return len(log.response)

    def response_log(self, standard=None):
        """The stored log as a `ResponseLog` (one person per session, the score as the
        category), ready for `calibration.calibrate_document`."""
        with self.database.reading() as session:
            query = select(Response.session_id, Response.item_id, Response.score) \
                .order_by(Response.id)
            if standard is not None:
                if session.get(Standard, standard) is None:
                    raise NotFoundError(f"no standard {standard!r}")
                query = query.join(Item).where(Item.standard_code == standard)
            frame = pd.DataFrame(session.execute(query).all(),
                                 columns=["session_id", "item_id", "score"])
        person_index, persons = pd.factorize(frame["session_id"])
        item_index, items = pd.factorize(frame["item_id"])
        return ResponseLog([str(p) for p in persons], [str(i) for i in items],
                           person_index.astype(np.int32), item_index.astype(np.int32),
                           frame["score"].to_numpy(dtype=float))

    def write_responses(self, stream, standard=None):
        """The log as long CSV (``person_id,item_id,response``, the session as the person)."""
        log = self.response_log(standard)
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["person_id", "item_id", "response"])
        persons = np.asarray(log.person_ids, dtype=object)[log.person_index]
        items = np.asarray(log.item_ids, dtype=object)[log.item_index]
        writer.writerows(zip(persons, items, log.response.astype(int).tolist(), strict=True))
        return len(log.response)

    # --- delivery --------------------------------------------------------------------

    def current_version_id(self, code):
        """The id of the version new sessions of `code` use (one indexed query)."""
        with self.database.reading() as session:
            version_id = session.scalar(select(Publication.version_id)
                                        .where(Publication.standard_code == code)
                                        .order_by(Publication.id.desc()).limit(1))
        if version_id is None:
            raise NotFoundError(f"standard {code!r} has no published bank version")
        return version_id

    def current_version_ids(self, codes):
        """``{code: current version id}`` for `codes`, in one query; NotFoundError for a
        standard with no published version."""
        latest = (select(Publication.standard_code, func.max(Publication.id).label("last"))
                  .where(Publication.standard_code.in_(codes))
                  .group_by(Publication.standard_code).subquery())
        with self.database.reading() as session:
            found = dict(session.execute(
                select(Publication.standard_code, Publication.version_id)
                .join(latest, Publication.id == latest.c.last)).all())
        for code in codes:
            if code not in found:
                raise NotFoundError(f"standard {code!r} has no published bank version")
        return {code: found[code] for code in codes}

    def delivery_bank(self, code=None, version_id=None):
        """The engine's arrays of a version (default: the published one of `code`), loaded
        once per version and cached."""
        if version_id is None:
            version_id = self.current_version_id(code)
        with self._cache_lock:
            cached = self._cache.get(version_id)
            if cached is not None:
                self._cache.move_to_end(version_id)
                return cached
        loaded = self._load_version(version_id)
        with self._cache_lock:
            self._cache[version_id] = loaded
            while len(self._cache) > CACHED_VERSIONS:
                self._cache.popitem(last=False)
        return loaded

    def version_columns(self, version_id):
        """A version's parameters as columns (``{"id", "model", "a", "b", "c", "u",
        "status"}``, b padded with None), from the cache."""
        return self.delivery_bank(version_id=version_id).columns

    def _load_version(self, version_id):
        with self.database.reading() as session:
            version = session.get(BankVersion, version_id)
            if version is None:
                raise NotFoundError(f"no bank version {version_id}")
            columns = version.arrays
        params = parameters_from_columns(columns)
        items = tuple({"id": item_id, "standard": version.standard_code, "model": model,
                       "status": status} for item_id, model, status in zip(
                           columns["id"], columns["model"], columns["status"], strict=True))
        population = {"mean": version.population_mean, "sd": version.population_sd}
        return DeliveryBank(version_id, version.standard_code, version.number,
                            ItemBank(items, params, population, version.calibration), columns)


def _this_process():
    return f"{socket.gethostname()}:{os.getpid()}"


def _has_ended(runner):
    """Whether the process `runner` ("host:pid") is known to have ended: only a process of
    this host can be checked, and one of another user counts as running."""
    host, _, pid = (runner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _columns(entries):
    """The parameters of `entries` ({item_id: parameters}) as columns, b padded with None."""
    values = list(entries.values())
    return {"id": list(entries), **parameter_columns(values),
            "status": [p["status"] for p in values]}


def _lock_standards(session, codes):
    """The codes among `codes` that exist, their rows locked until the transaction ends:
    versions of one standard are numbered and published one writer at a time (SQLite's
    BEGIN IMMEDIATE already serialises writers; PostgreSQL takes row locks)."""
    return session.scalars(select(Standard.code).where(Standard.code.in_(list(codes)))
                           .order_by(Standard.code).with_for_update()).all()


def _bulk_insert(session, table, rows):
    """Insert many rows in the session's transaction: COPY on PostgreSQL (one round
    trip per batch instead of one per row), executemany elsewhere."""
    connection = session.connection()
    if connection.dialect.name != "postgresql" or not rows:
        connection.execute(insert(table), rows)
        return
    names = list(rows[0])
    columns = ", ".join(f'"{name}"' for name in names)
    import psycopg

    statement = f'COPY "{table.name}" ({columns}) FROM STDIN'
    try:
        with connection.connection.driver_connection.cursor() as cursor, \
                cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[name] for name in names])
    except psycopg.errors.IntegrityError as error:
        raise IntegrityError(statement, None, error) from None


def _depth(code, parents):
    """Ancestors of `code`; DataFormatError for an unknown parent or a cycle."""
    depth, seen, node = 0, {code}, parents[code]
    while node is not None:
        if node not in parents:
            raise DataFormatError(f"standard {code!r}: unknown parent {node!r}")
        if node in seen:
            raise DataFormatError(f"standard {code!r}: its parents form a cycle")
        seen.add(node)
        depth += 1
        node = parents[node]
    return depth


def _standard_document(row):
    return {"code": row.code, "title": row.title, "description": row.description,
            "parent": row.parent_code, "levels": list(row.levels or [])}


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
    document["items"] = items
    calibrations = [v.calibration for v in versions if v.calibration is not None]
    if calibrations and all(c == calibrations[0] for c in calibrations) \
            and len(calibrations) == len(versions):
        document["calibration"] = calibrations[0]
    elif calibrations:
        document["calibrations"] = {v.standard_code: v.calibration for v in versions
                                    if v.calibration is not None}
    return document


__all__ = ["DeliveryBank", "NotFoundError", "Store"]
