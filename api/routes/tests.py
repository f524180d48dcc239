"""Test definitions: create, list and read them (admin), and the public ones the learner
page lists (no key)."""

from __future__ import annotations

from flask import g

from .. import schemas
from .base import operation


@operation("/tests", "POST", roles=("admin",), body=schemas.TestDoc, answer=schemas.TestDoc,
           status=201, errors=(409,), summary="define a test: standards and CAT configuration")
def post_test(data):
    return g.delivery.create_test(data.get("id"), data.get("title"), data["standards"],
                                  data["config"], data["public"], data["feedback"],
                                  time_limit=data["time_limit"], token_ttl=data["token_ttl"],
                                  finished_token_ttl=data["finished_token_ttl"],
                                  public_pool=data["public_pool"])


@operation("/tests", "GET", roles=("admin",), answer=schemas.TestDoc, paginated=True,
           summary="the tests")
def list_tests():
    return g.delivery.tests()


@operation("/tests/<test_id>", "GET", roles=("admin",), answer=schemas.TestDoc,
           summary="one test")
def get_test(test_id):
    return g.delivery.test(test_id)


@operation("/public/tests", "GET", answer=schemas.PublicTest, paginated=True,
           summary="the tests the learner page offers (no key)")
def public_tests():
    return g.delivery.public_tests()
