"""The response log in the store: answers appended, all or nothing, and read back.

Every answer a session records, and every historical log imported, is a row of
``responses``; a repeated (session, item) is refused by the database's unique
constraint. `ResponseLogRepository.response_log` gives the log back as a
`ResponseLog`, ready for calibration.
"""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from irtcat.engine.models import category_count

from .errors import DataFormatError, NotFoundError
from .io import ResponseLog
from .schema import Item, Response, Standard, utc_now


class ResponseLogRepository:
    """The response log of one database (`self.database`)."""

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

    def write_responses_parquet(self, path, standard=None):
        """The log as a Parquet file at `path` (`parquet_io.write_parquet_log`)."""
        from .parquet_io import write_parquet_log

        return write_parquet_log(self.response_log(standard), path)

    def write_responses(self, stream, standard=None):
        """The log as long CSV (``person_id,item_id,response``, the session as the person)."""
        log = self.response_log(standard)
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["person_id", "item_id", "response"])
        persons = np.asarray(log.person_ids, dtype=object)[log.person_index]
        items = np.asarray(log.item_ids, dtype=object)[log.item_index]
        writer.writerows(zip(persons, items, log.response.astype(int).tolist(), strict=True))
        return len(log.response)


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


__all__ = ["ResponseLogRepository"]
