"""Open Badges 3.0 credentials for passed sessions, and their verification.

`session_credential` builds an `OpenBadgeCredential` from a finished session whose
classification decision is a pass, and signs it (Data Integrity eddsa-rdfc-2022, or
VC-JWT). It is a pure function of the session and the issuer's key: `validFrom` and the
proof's `created` are the session's finish time, and Ed25519 signatures are
deterministic, so each request re-issues the same bytes and nothing is stored.

The issuer is a Profile whose id is the did:key of the server's "badge-issuer" Ed25519
key (kept in the store, `itembank.signing_keys`): a verifier needs nothing online. The
learner appears only as a salted SHA-256 of the learner id (an OB IdentityObject); the
salt is derived from the issuer key and the session, so the hash cannot be recomputed
without the credential. Results: per skill standard the proficiency level reached (a
RubricCriterionLevel) and a scaled score, and the test's scaled score, on the scale
500 + 100 θ (θ on the calibration's standard-normal scale, rounded to an integer).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from irtcat.itembank.sessions import session_snapshot
from irtcat.itembank.signing_keys import signing_key

from . import data_integrity as di
from .errors import ConflictError, ProofError
from .keys import aware

ISSUER_KEY_NAME = "badge-issuer"
JWT_MEDIA_TYPE = "application/vc+jwt"
SCALE_CENTER, SCALE_UNIT = 500, 100
BADGE_NAMESPACE = uuid.UUID("6f0c3f55-2b7e-5c4f-9a47-0c1d1c3b0b5e")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def issuer_key(database) -> Ed25519PrivateKey:
    """The server's badge-issuing Ed25519 key, made and stored on first use."""
    def make():
        raw = Ed25519PrivateKey.generate().private_bytes_raw()
        return base64.b64encode(raw).decode("ascii")
    stored = signing_key(database, ISSUER_KEY_NAME, "Ed25519", make)
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(stored))


def session_credential(delivery, session_id, issuer_name, form="ldp"):
    """The signed credential of a finished, passed session: a dict with a Data
    Integrity proof (`form` "ldp") or a compact VC-JWT string (`form` "jwt").
    ConflictError when the session is not finished or not passed."""
    summary = delivery.result(session_id)       # finishes a session past its deadline
    if summary["status"] != "finished":
        raise ConflictError("the session is not finished: no credential yet")
    if summary["decision"] is None or not summary["decision"]["pass"]:
        raise ConflictError("the session did not pass: it earns no credential")
    row, _ = session_snapshot(delivery.database, session_id)
    test = delivery.test(row.test_id)
    key = issuer_key(delivery.database)
    levels = {code: delivery.catalog.standard(code)[1] for code in test["standards"]}
    document = credential_document(
        session_id=session_id, learner_id=row.learner_id, test=test, summary=summary,
        finished=_timestamp(row.finished_at), levels=levels,
        case_identifiers=delivery.store.case_identifiers(),
        issuer_name=issuer_name, key=key)
    if form == "jwt":
        return credential_jwt(document, key)
    method = di.verification_method(di.raw_public_key(key))
    return di.sign(document, key, method=method, created=document["validFrom"])


def credential_document(*, session_id, learner_id, test, summary, finished, levels,
                        case_identifiers, issuer_name, key):
    """The unsigned OpenBadgeCredential (a dict). `summary`: the session's result
    (`Delivery.result`); `levels`: {code: [{"name", "cut"}]}; `finished`: the finish
    time as an XML Schema dateTime; `key`: the issuer's Ed25519PrivateKey."""
    public = di.raw_public_key(key)
    achievement_id = _urn("achievement", test["id"])
    descriptions, results = [_scale_description(achievement_id, "test", test["title"])], []
    alignments = []
    if summary["theta"] is not None:
        results.append(_scaled_result(achievement_id, "test", summary["theta"]))
    for standard in summary["standards"]:
        code, title = standard["code"], _plain(standard["title"])
        case_id = case_identifiers.get(code) or code
        alignments.append({"type": ["Alignment"], "targetType": "CFItem",
                           "targetName": title, "targetCode": case_id,
                           "targetUrl": f"urn:uuid:{case_id}" if _is_uuid(case_id)
                           else _urn("standard", code)})
        descriptions.append(_level_description(achievement_id, code, title, levels[code]))
        descriptions.append(_scale_description(achievement_id, code, title))
        if standard["level"] is not None:
            results.append({"type": ["Result"],
                            "resultDescription": _urn("levels", achievement_id, code),
                            "achievedLevel": _urn("level", achievement_id, code,
                                                  standard["level"]),
                            "value": _plain(standard["level"])})
        if standard["theta"] is not None:
            results.append(_scaled_result(achievement_id, code, standard["theta"]))
    title = _plain(test["title"])
    decision = summary["decision"]
    salt = hashlib.sha256(key.private_bytes_raw() + session_id.encode()).hexdigest()[:32]
    learner_hash = hashlib.sha256((learner_id + salt).encode("utf-8")).hexdigest()
    return {
        "@context": [di.CREDENTIALS_V2, di.OPEN_BADGES_V3],
        "id": _urn("credential", session_id),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": title,
        "issuer": {"id": di.did_key(public), "type": ["Profile"], "name": _plain(issuer_name)},
        "validFrom": finished,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [{"type": "IdentityObject", "identityHash": "sha256$" + learner_hash,
                            "identityType": "identifier", "hashed": True, "salt": salt}],
            "achievement": {
                "id": achievement_id, "type": ["Achievement"], "name": title,
                "description": f"Passed the computer-adaptive test {title}.",
                "criteria": {"narrative": (
                    f"Pass the adaptive test {title}: its {decision['method']} "
                    f"classification decides that the learner's ability θ is above the "
                    f"cut {decision['cut']}. Levels and scaled scores per skill standard "
                    f"are in the results.")},
                "alignment": alignments,
                "resultDescription": descriptions,
            },
            "result": results,
        },
    }


def credential_jwt(document, key):
    """The VC-JWT form (W3C VC-JOSE-COSE): a compact EdDSA JWS whose payload is the
    unsigned credential; header `typ` vc+jwt, `cty` vc, `kid` the did:key method."""
    method = di.verification_method(di.raw_public_key(key))
    unsigned = {name: value for name, value in document.items() if name != "proof"}
    return jwt.encode(unsigned, key, algorithm="EdDSA",
                      headers={"typ": "vc+jwt", "cty": "vc", "kid": method})


def verify_credential(text):
    """Verify a credential file's text (JSON with a Data Integrity proof, or a compact
    VC-JWT) offline; returns one line "valid: ..." or raises ProofError with the
    reason."""
    text = text.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ProofError(f"the credential is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise ProofError("the credential is not a JSON object")
        proof = di.verify(document)
        form, method = f"{di.CRYPTOSUITE} proof created {proof.get('created')}", \
            proof["verificationMethod"]
    else:
        document, method = _verified_jwt(text)
        form = "VC-JWT (EdDSA)"
    issuer = document.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    if issuer_id != method.partition("#")[0]:
        raise ProofError(f"the issuer {issuer_id!r} is not the signing key's did:key")
    types = document.get("type")
    if not isinstance(types, list) or "VerifiableCredential" not in types:
        raise ProofError("the document is not a VerifiableCredential")
    kind = "OpenBadgeCredential" if "OpenBadgeCredential" in types else "credential"
    name = issuer.get("name") if isinstance(issuer, dict) else None
    return (f"valid: {kind} {document.get('name')!r} issued by "
            f"{name + ' ' if name else ''}{issuer_id}, {form}")


def _verified_jwt(text):
    """``(payload, kid)`` of a compact JWS signed with the did:key its `kid` names."""
    try:
        header = jwt.get_unverified_header(text)
    except jwt.PyJWTError as error:
        raise ProofError(f"neither JSON nor a compact JWT: {error}") from None
    method = header.get("kid")
    if header.get("alg") != "EdDSA" or not isinstance(method, str):
        raise ProofError("the JWT is not EdDSA-signed with a kid")
    public = Ed25519PublicKey.from_public_bytes(di.resolve_did_key(method))
    try:
        payload = jwt.decode(text, public, algorithms=["EdDSA"],
                             options={"verify_aud": False, "verify_iss": False})
    except jwt.PyJWTError as error:
        raise ProofError(f"the JWT does not verify: {error}") from None
    return payload, method


def _level_description(achievement_id, code, title, levels):
    names = [_plain(level["name"]) for level in levels]
    return {"id": _urn("levels", achievement_id, code), "type": ["ResultDescription"],
            "name": f"{title}: proficiency level", "resultType": "RubricCriterionLevel",
            "allowedValue": names,
            "rubricCriterionLevel": [
                {"id": _urn("level", achievement_id, code, name),
                 "type": ["RubricCriterionLevel"], "name": name,
                 "description": f"ability θ at least {level['cut']}"}
                for name, level in zip(names, levels, strict=True)]}


def _scale_description(achievement_id, code, title):
    return {"id": _urn("scale", achievement_id, code), "type": ["ResultDescription"],
            "name": f"{title}: scaled score {SCALE_CENTER} + {SCALE_UNIT} θ",
            "resultType": "ScaledScore"}


def _scaled_result(achievement_id, code, theta):
    return {"type": ["Result"], "resultDescription": _urn("scale", achievement_id, code),
            "value": str(round(SCALE_CENTER + SCALE_UNIT * theta))}


def _urn(*parts):
    """A stable urn:uuid naming `parts` (uuid5 in the badges' namespace)."""
    return "urn:uuid:" + str(uuid.uuid5(BADGE_NAMESPACE, "\x1f".join(parts)))


def _is_uuid(text):
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _plain(text):
    """Text without control characters (which RDFC-1.0 and pyld escape differently)."""
    return CONTROL_CHARACTERS.sub(" ", str(text))


def _timestamp(moment):
    return aware(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["ISSUER_KEY_NAME", "JWT_MEDIA_TYPE", "credential_document", "credential_jwt",
           "issuer_key", "session_credential", "verify_credential"]
