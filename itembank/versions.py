"""Bank versions in the store: drafts, publications, and the arrays sessions use.

A bank version is immutable once published; publishing is appending to
``publications``, so rolling back is publishing an earlier version again, and a
session pinned to a version keeps reading exactly what it started with.
`VersionRepository.delivery_bank` turns a published version into the engine's
arrays once and keeps it (versions never change, so the cache never goes stale).
The module's functions work inside a caller's transaction (`session`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, insert, select

from irtcat.engine.models import parameter_columns, parameters_from_columns

from .bank import ItemBank
from .errors import DataFormatError, NotFoundError
from .schema import BankVersion, BankVersionItem, Publication, Standard, utc_now
from .standards import lock_standards

DEFAULT_POPULATION = {"mean": 0.0, "sd": 1.0}
CACHED_VERSIONS = 64


@dataclass(frozen=True, eq=False)
class DeliveryBank:
    """A published bank version in the engine's arrays.

    `bank.items` holds ``{"id", "standard", "model", "status"}`` per item (no
    content, no key); `bank.params` the parameters in the same order. A
    multidimensional version has no `bank.params`: its `dimensions` object and its
    items' `entries` (``{"id", "standard", "model", "a", "d", ...}`` in bank order)
    are what the engine reads (`MultidimensionalItems.from_entries`).
    """

    version_id: int
    standard: str
    number: int
    bank: ItemBank
    columns: dict
    dimensions: dict | None = None
    entries: tuple = ()


def _version_info(version, current_id=None, n_items=None):
    info = {"standard": version.standard_code, "version": version.number,
            "published": version.published, "current": version.id == current_id,
            "created_at": version.created_at.isoformat(),
            "published_at": version.published_at.isoformat() if version.published_at else None,
            "calibration_run": version.calibration_run_id}
    if n_items is not None:
        info["items"] = n_items
    return info


class VersionRepository:
    """Bank versions of one database (`self.database`); loaded versions are kept in
    `self._cache` (an OrderedDict) under `self._cache_lock`."""

    def add_draft_version(self, code, entries, population=None, calibration=None,
                          run_id=None, dimensions=None):
        """Store a calibration's result as an unpublished version; returns its number.

        `entries`: ``{item_id: {"model", "a", "b", ..., "status"}}`` (a multidimensional
        version: ``{"model", "a": [...], "d", ..., "status"}`` with its `dimensions`).
        """
        with self.database.writing() as session:
            if session.get(Standard, code) is None:
                raise NotFoundError(f"no standard {code!r}")
            return add_version(session, code, entries, population, calibration,
                               run_id, dimensions).number

    def publish(self, code, number=None):
        """Make version `number` (default: the newest) the one new sessions use. Publishing
        an earlier version again is a rollback; publishing the current one changes nothing."""
        with self.database.writing() as session:
            if not lock_standards(session, [code]):
                raise NotFoundError(f"no standard {code!r}")
            if number is None:
                number = session.scalar(select(func.max(BankVersion.number))
                                        .where(BankVersion.standard_code == code))
                if number is None:
                    raise NotFoundError(f"standard {code!r} has no bank version")
            version = version_by_number(session, code, number)
            current = current_version(session, code)
            if current is None or current.id != version.id:
                publish_version(session, version)
            return _version_info(version, version.id)

    def versions(self, code):
        """Every version of `code`, oldest first, with which one is current."""
        with self.database.reading() as session:
            if session.get(Standard, code) is None:
                raise NotFoundError(f"no standard {code!r}")
            current = current_version(session, code)
            counts = dict(session.execute(
                select(BankVersionItem.version_id, func.count()).join(BankVersion)
                .where(BankVersion.standard_code == code)
                .group_by(BankVersionItem.version_id)).all())
            rows = session.scalars(select(BankVersion).where(BankVersion.standard_code == code)
                                   .order_by(BankVersion.number))
            return [_version_info(row, current.id if current else None, counts.get(row.id, 0))
                    for row in rows]

    def published_entries(self, code):
        """``{item_id: parameters}`` of the published version of `code` ({} if none)."""
        with self.database.reading() as session:
            current = current_version(session, code)
            return {} if current is None else version_entries(session, current.id)

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

    def delivery_bank(self, code=None, version_id=None, multidimensional=False):
        """The engine's arrays of a version (default: the published one of `code`), loaded
        once per version and cached. A multidimensional version is a DataFormatError
        unless the caller reads one (`multidimensional`: a test's bank)."""
        if version_id is None:
            version_id = self.current_version_id(code)
        with self._cache_lock:
            loaded = self._cache.get(version_id)
            if loaded is not None:
                self._cache.move_to_end(version_id)
        if loaded is None:
            loaded = self._load_version(version_id)
            with self._cache_lock:
                self._cache[version_id] = loaded
                while len(self._cache) > CACHED_VERSIONS:
                    self._cache.popitem(last=False)
        if loaded.dimensions is not None and not multidimensional:
            raise DataFormatError(f"standard {loaded.standard!r}: bank version {loaded.number} "
                                  "is multidimensional; only a test's sessions use one")
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
            entries = () if version.dimensions is None else tuple(
                {"id": item_id, "standard": version.standard_code, **parameters}
                for item_id, parameters in version_entries(session, version_id).items())
        params = None if version.dimensions is not None else parameters_from_columns(columns)
        items = tuple({"id": item_id, "standard": version.standard_code, "model": model,
                       "status": status} for item_id, model, status in zip(
                           columns["id"], columns["model"], columns["status"], strict=True))
        population = {"mean": version.population_mean, "sd": version.population_sd}
        return DeliveryBank(version_id, version.standard_code, version.number,
                            ItemBank(items, params, population, version.calibration), columns,
                            version.dimensions, entries)


def add_version(session, code, entries, population, calibration, run_id=None,
                dimensions=None):
    """A new draft version of `code` holding `entries` ({item_id: parameters}); a
    multidimensional one with its `dimensions`."""
    population = population or DEFAULT_POPULATION
    number = session.scalar(select(func.coalesce(func.max(BankVersion.number), 0))
                            .where(BankVersion.standard_code == code)) + 1
    version = BankVersion(standard_code=code, number=number,
                          population_mean=population["mean"],
                          population_sd=population["sd"], calibration=calibration,
                          arrays=_columns(entries, dimensions is not None),
                          calibration_run_id=run_id, dimensions=dimensions,
                          published=False)
    session.add(version)
    session.flush()
    session.execute(insert(BankVersionItem), [
        {"version_id": version.id, "item_id": item_id, "position": position,
         "parameters": parameters}
        for position, (item_id, parameters) in enumerate(entries.items())])
    return version


def publish_version(session, version):
    if not version.published:
        version.published = True
        version.published_at = utc_now()
    session.add(Publication(standard_code=version.standard_code, version_id=version.id))
    session.flush()


def current_version(session, code):
    version_id = session.scalar(select(Publication.version_id)
                                .where(Publication.standard_code == code)
                                .order_by(Publication.id.desc()).limit(1))
    return None if version_id is None else session.get(BankVersion, version_id)


def version_entries(session, version_id):
    rows = session.execute(select(BankVersionItem.item_id, BankVersionItem.parameters)
                           .where(BankVersionItem.version_id == version_id)
                           .order_by(BankVersionItem.position))
    return {item_id: parameters for item_id, parameters in rows}


def version_by_number(session, code, number):
    version = session.scalar(select(BankVersion).where(
        BankVersion.standard_code == code, BankVersion.number == number))
    if version is None:
        raise NotFoundError(f"standard {code!r} has no version {number}")
    return version


def _columns(entries, multidimensional=False):
    """The parameters of `entries` ({item_id: parameters}) as columns, b padded with None;
    of a multidimensional version only ids, models and statuses (not delivered yet)."""
    values = list(entries.values())
    parameters = ({"model": [p["model"] for p in values]} if multidimensional
                  else parameter_columns(values))
    return {"id": list(entries), **parameters, "status": [p["status"] for p in values]}


__all__ = ["DeliveryBank", "VersionRepository", "add_version", "current_version",
           "publish_version", "version_by_number", "version_entries"]
