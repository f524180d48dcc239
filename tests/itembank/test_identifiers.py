"""Migration 0010: standards' CASE identifiers and the server's signing keys."""

import uuid

import pytest

from irtcat.itembank.errors import NotFoundError
from irtcat.itembank.signing_keys import signing_key
from irtcat.itembank.standards import CASE_NAMESPACE, case_identifier


def test_a_standard_without_a_stored_identifier_gets_its_codes_uuid5(store):
    store.import_framework({"format": "irtcat-framework/1", "standards": [
        {"code": "AI", "title": "AI"}, {"code": "AI-ML", "title": "ML", "parent": "AI"}]})
    given = "c0ffee00-0000-4000-8000-000000000001"
    store.set_case_identifiers({"AI-ML": given})
    # uuid5 by RFC 4122 of the code in the namespace, the same on every server
    assert store.case_identifiers() == {"AI": str(uuid.uuid5(CASE_NAMESPACE, "AI")),
                                        "AI-ML": given}
    assert case_identifier("AI") == store.case_identifiers()["AI"]
    with pytest.raises(NotFoundError):
        store.set_case_identifiers({"NOPE": given})


def test_a_signing_key_is_made_once_and_kept(database):
    made = []

    def make():
        made.append(1)
        return f"secret-{len(made)}"

    assert signing_key(database, "state", "HS256", make) == "secret-1"
    assert signing_key(database, "state", "HS256", make) == "secret-1"
    assert len(made) == 1
    with pytest.raises(ValueError, match="is HS256, not RS256"):
        signing_key(database, "state", "RS256", make)
