"""Open Badges 3.0 credentials of real sessions of the demo's credential test: signed
by the server, verified offline by `irtcat credential verify`, refused after any
changed byte."""

import json
import random

import jwt
import pytest

from irtcat.api.cli import main as irtcat
from irtcat.delivery import data_integrity as di
from irtcat.delivery.badges import verify_credential
from irtcat.delivery.errors import ProofError

STANDARDS = ("AI-ML", "AI-DE", "AI-RAI")


def keyed_answers(api):
    """{item id: the option its key scores highest} of every demo item (admin reads keys)."""
    right = {}
    for code in STANDARDS:
        listed = api.call("GET", f"/v1/items?standard={code}", api.admin)
        assert listed.status_code == 200
        for item in listed.json:
            key = item.get("key") or {}
            if "correct" in key:
                right[item["id"]] = key["correct"]
            elif "scores" in key:
                right[item["id"]] = max(key["scores"], key=key["scores"].get)
    return right


def finished(api, session, choose):
    item = session["item"]
    while item is not None:
        reply = api.answer(session, item["item_id"], choose(item))
        assert reply.status_code == 200, reply.json
        item = reply.json["item"]
    return session


@pytest.fixture
def passed(api):
    """A finished session of the credential test (cut 0.5) answered all right: a pass."""
    right = keyed_answers(api)
    session = finished(api, api.start(), lambda item: right[item["item_id"]])
    result = api.call("GET", f"/v1/sessions/{session['session_id']}/result", api.delivery)
    assert result.json["status"] == "finished" and result.json["decision"]["pass"] is True
    return session


def credential_of(api, session, key=None, **query):
    return api.call("GET", f"/v1/sessions/{session['session_id']}/credential",
                    key or api.delivery, query_string=query)


def test_a_passed_session_gets_a_credential_that_verifies(api, passed):
    reply = credential_of(api, passed)
    assert reply.status_code == 200, reply.json
    badge = reply.json
    assert badge["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert badge["@context"] == [di.CREDENTIALS_V2, di.OPEN_BADGES_V3]
    proof = badge["proof"]
    assert proof["cryptosuite"] == "eddsa-rdfc-2022"
    assert proof["verificationMethod"].partition("#")[0] == badge["issuer"]["id"]
    assert badge["issuer"]["id"].startswith("did:key:z6Mk")
    achievement = badge["credentialSubject"]["achievement"]
    codes = api.store.case_identifiers()
    assert [a["targetCode"] for a in achievement["alignment"]] == [codes[c] for c in STANDARDS]
    assert all(a["targetType"] == "CFItem" for a in achievement["alignment"])
    assert "learner-1" not in json.dumps(badge)                 # the learner id hashed
    assert verify_credential(json.dumps(badge)).startswith("valid: OpenBadgeCredential")
    # a pure function of the session: the same bytes on every request, by the token too
    again = credential_of(api, passed, passed["token"])
    assert again.status_code == 200 and again.json == badge


def test_the_result_carries_levels_and_the_scaled_theta(api, passed):
    badge = credential_of(api, passed).json
    result = api.call("GET", f"/v1/sessions/{passed['session_id']}/result", api.delivery).json
    values = [entry["value"] for entry in badge["credentialSubject"]["result"]]
    assert values[0] == str(round(500 + 100 * result["theta"]))      # scale 500 + 100 θ
    levels = [s["level"] for s in result["standards"] if s["level"] is not None]
    assert levels and all(level in values for level in levels)


def field_paths(badge):
    """Paths to text values in several parts of the credential, the proof's included."""
    return [("id",), ("name",), ("validFrom",), ("issuer", "id"), ("issuer", "name"),
            ("credentialSubject", "achievement", "name"),
            ("credentialSubject", "achievement", "criteria", "narrative"),
            ("credentialSubject", "achievement", "alignment", 0, "targetCode"),
            ("credentialSubject", "result", 0, "value"),
            ("credentialSubject", "identifier", 0, "identityHash"),
            ("proof", "created"), ("proof", "verificationMethod"),
            ("proof", "proofValue")]


def flipped(text, value):
    """`text` with one byte of the JSON string `value` changed (its middle character)."""
    quoted = json.dumps(value)
    where = text.index(quoted) + len(quoted) // 2
    replacement = "3" if text[where] != "3" else "4"
    return text[:where] + replacement + text[where + 1:]


def test_any_changed_byte_fails_verification(api, passed, tmp_path, capsys):
    text = json.dumps(credential_of(api, passed).json, indent=2)
    path = tmp_path / "badge.json"
    path.write_text(text)
    assert irtcat(["credential", "verify", str(path)]) == 0
    assert capsys.readouterr().out.startswith("valid: ")
    badge = json.loads(text)
    for field in field_paths(badge):
        value = badge
        for step in field:
            value = value[step]
        changed = flipped(text, value)
        assert changed != text
        with pytest.raises(ProofError):
            verify_credential(changed)
        path.write_text(changed)
        assert irtcat(["credential", "verify", str(path)]) == 2, field
        assert capsys.readouterr().err.strip(), field


def verifies(data):
    """Whether bytes `data` verify: False for a ProofError or text that is not UTF-8 (the
    command's exit 2); any other exception fails the test."""
    try:
        verify_credential(data.decode("utf-8"))
    except (ProofError, UnicodeDecodeError):
        return False
    return True


def test_a_changed_byte_at_random_places_fails(api, passed):
    """120 positions of the served bytes (seeded), each replaced by another byte value."""
    served = credential_of(api, passed).get_data()
    assert verifies(served)
    rng = random.Random(2026)
    for at in sorted(rng.sample(range(len(served)), 120)):
        changed = bytearray(served)
        changed[at] = (served[at] + rng.randrange(1, 256)) % 256
        assert not verifies(bytes(changed)), (at, served[max(0, at - 20):at + 20])


def test_the_jwt_form_verifies_and_fails_when_changed(api, passed, tmp_path, capsys):
    reply = credential_of(api, passed, format="jwt")
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("application/vc+jwt")
    token = reply.get_data(as_text=True)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["typ"] == "vc+jwt"
    badge = credential_of(api, passed).json
    assert header["kid"] == badge["proof"]["verificationMethod"]
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload == {name: value for name, value in badge.items() if name != "proof"}
    path = tmp_path / "badge.jwt"
    path.write_text(token)
    assert irtcat(["credential", "verify", str(path)]) == 0
    assert "VC-JWT" in capsys.readouterr().out
    head, body, signature = token.split(".")
    for changed in (f"{head}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{signature}",
                    f"{head}.{body}.{signature[:5]}{'A' if signature[5] != 'A' else 'B'}"
                    f"{signature[6:]}"):
        with pytest.raises(ProofError):
            verify_credential(changed)


def test_no_credential_before_the_end_nor_without_a_pass(api):
    session = api.start(learner_id="learner-2")
    active = credential_of(api, session)
    assert active.status_code == 409 and "not finished" in active.json["error"]["message"]
    wrong = keyed_answers(api)

    def wrong_answer(item):
        options = [option["id"] for option in item["options"]]
        return next(o for o in options if o != wrong[item["item_id"]])
    finished(api, session, wrong_answer)
    result = api.call("GET", f"/v1/sessions/{session['session_id']}/result", api.delivery)
    assert result.json["decision"]["pass"] is False
    refused = credential_of(api, session)
    assert refused.status_code == 409 and "did not pass" in refused.json["error"]["message"]


def test_another_key_cannot_read_the_credential(api, passed):
    from irtcat.delivery.keys import create_key
    other = create_key(api.store.database, "delivery")
    assert credential_of(api, passed, other).status_code == 403
    assert credential_of(api, passed, format="xml").status_code == 400

