"""Test definitions' rows: what a test draws from and how (its CAT configuration).

A test never changes once created; the layer above caches it for that reason
(`irtcat.delivery.definitions`). Each row is handed out as a plain dict.
"""

from __future__ import annotations

from sqlalchemy import select

from .schema import Test


def add_test(database, test_id, **values):
    """Store test `test_id` with `values` (the columns of ``tests``); False, writing
    nothing, if a test of that id exists."""
    with database.writing() as session:
        if session.get(Test, test_id) is not None:
            return False
        session.add(Test(id=test_id, **values))
    return True


def find_test(database, test_id):
    """``{"id", "title", "standards", "config", "public", "feedback", "time_limit",
    "token_ttl", "finished_token_ttl", "public_pool"}`` of a test, or None."""
    with database.reading() as session:
        row = session.get(Test, test_id)
        return None if row is None else _definition(row)


def list_tests(database):
    """Every test's definition (as `find_test`), oldest first."""
    with database.reading() as session:
        rows = session.scalars(select(Test).order_by(Test.created_at, Test.id)).all()
        return [_definition(row) for row in rows]


def public_test_ids(database):
    """The ids of the public tests, oldest first."""
    with database.reading() as session:
        return session.scalars(select(Test.id).where(Test.public.is_(True))
                               .order_by(Test.created_at, Test.id)).all()


def _definition(row):
    return {"id": row.id, "title": row.title, "standards": row.standards,
            "config": row.config, "public": row.public, "feedback": row.feedback,
            "time_limit": row.time_limit, "token_ttl": row.token_ttl,
            "finished_token_ttl": row.finished_token_ttl, "public_pool": row.public_pool}


__all__ = ["add_test", "find_test", "list_tests", "public_test_ids"]
