"""Data Integrity proofs with the eddsa-rdfc-2022 cryptosuite (W3C VC-DI-EdDSA).

Signing a JSON-LD document `document` (a dict, without `proof`) with an Ed25519 key:

1. proof configuration = the proof's fields without `proofValue`, with the
   document's `@context`;
2. canonicalize both with RDF Dataset Canonicalization (RDFC-1.0, the algorithm
   pyld names URDNA2015) into canonical N-Quads;
3. hash data = SHA-256(canonical proof configuration) || SHA-256(canonical document)
   (64 bytes);
4. `proofValue` = "z" + base58btc(Ed25519 signature of the hash data) (64 bytes).

JSON-LD contexts are served only from the bundled copies in `contexts/` (the W3C
credentials v2 context and the Open Badges 3.0.3 context): a document naming any
other context is refused, nothing is fetched at run time. RDFC-1.0 escapes control
characters in literals other than tab, newline and carriage return as \\uXXXX where
pyld writes them raw, so documents signed here carry no such characters (the badge
builder removes them); the other escapes agree.

Keys: an Ed25519 public key travels as a Multikey, "z" + base58btc(0xed 0x01 ||
32 key bytes), and as the did:key `did:key:<multikey>`, whose verification method
is `did:key:<multikey>#<multikey>`; a verifier resolves it offline.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from importlib import resources

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pyld import jsonld

from irtcat.delivery.errors import ProofError

CRYPTOSUITE = "eddsa-rdfc-2022"
PROOF_TYPE = "DataIntegrityProof"
CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
OPEN_BADGES_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
BUNDLED_CONTEXT_FILES = {CREDENTIALS_V2: "credentials-v2.jsonld",
                         OPEN_BADGES_V3: "ob-context-3.0.3.json"}
ED25519_MULTICODEC = bytes([0xED, 0x01])
BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# ---------------------------------------------------------------- base58btc, multikey

def base58_encode(data: bytes) -> str:
    """Bitcoin base58 of `data`; each leading zero byte becomes a "1"."""
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(BASE58_ALPHABET[digit])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def base58_decode(text: str) -> bytes:
    """The bytes of a Bitcoin base58 string; ProofError on a character outside it."""
    number = 0
    for char in text:
        digit = BASE58_ALPHABET.find(char)
        if digit < 0:
            raise ProofError(f"not base58: {char!r}")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * zeros + body


def multikey(public_key: bytes) -> str:
    """The Multikey ("z6Mk...") of a 32-byte Ed25519 public key."""
    return "z" + base58_encode(ED25519_MULTICODEC + public_key)


def public_key_of_multikey(text: str) -> bytes:
    """The 32 raw key bytes of an Ed25519 Multikey; ProofError for anything else."""
    if not text.startswith("z"):
        raise ProofError("the key is not multibase base58btc ('z')")
    raw = base58_decode(text[1:])
    if raw[:2] != ED25519_MULTICODEC or len(raw) != 34:
        raise ProofError("the key is not an Ed25519 Multikey")
    return raw[2:]


def did_key(public_key: bytes) -> str:
    """`did:key:z6Mk...` of a 32-byte Ed25519 public key."""
    return "did:key:" + multikey(public_key)


def verification_method(public_key: bytes) -> str:
    """`did:key:z6Mk...#z6Mk...`: the did:key's one verification method."""
    return did_key(public_key) + "#" + multikey(public_key)


def resolve_did_key(method: str) -> bytes:
    """The Ed25519 public key named by a did:key verification method, offline."""
    did, _, fragment = method.partition("#")
    if not did.startswith("did:key:"):
        raise ProofError(f"the verification method is not a did:key: {method}")
    key = did.removeprefix("did:key:")
    if fragment and fragment != key:
        raise ProofError("the did:key fragment does not name its own key")
    return public_key_of_multikey(key)


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of the public half of `private_key`."""
    return private_key.public_key().public_bytes_raw()


# ---------------------------------------------------------------- canonicalization

@cache
def bundled_context(url: str) -> dict:
    """The parsed bundled context document of `url` (one of BUNDLED_CONTEXT_FILES)."""
    name = BUNDLED_CONTEXT_FILES[url]
    text = resources.files("irtcat.delivery").joinpath("contexts", name).read_text("utf-8")
    return json.loads(text)


def context_loader(extra: dict | None = None):
    """A pyld document loader serving the bundled contexts, plus `extra`
    ({url: parsed context document}); any other URL raises ProofError."""
    extra = extra or {}

    def load(url, options=None):
        if url in extra:
            document = extra[url]
        elif url in BUNDLED_CONTEXT_FILES:
            document = bundled_context(url)
        else:
            raise ProofError(f"unknown JSON-LD context (nothing is fetched): {url}")
        return {"contextUrl": None, "documentUrl": url, "document": document}

    return load


def canonical_nquads(document: dict, loader=None) -> str:
    """The RDFC-1.0 canonical N-Quads of a JSON-LD `document`, one line per quad."""
    options = {"algorithm": "URDNA2015", "format": "application/n-quads",
               "documentLoader": loader or context_loader()}
    try:
        return jsonld.normalize(document, options)
    except jsonld.JsonLdError as error:
        raise ProofError(f"the document is not valid JSON-LD here: {_root_cause(error)}") \
            from error


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    details = getattr(error, "details", None)
    cause = details.get("cause") if isinstance(details, dict) else None
    return str(cause) if cause is not None else str(error).splitlines()[0]


def hash_data(document: dict, proof_config: dict, loader=None) -> bytes:
    """SHA-256(canonical `proof_config`) || SHA-256(canonical `document`): 64 bytes.
    `proof_config` is the proof without proofValue; it takes the document's @context."""
    config = dict(proof_config)
    config["@context"] = document["@context"]
    config_hash = hashlib.sha256(canonical_nquads(config, loader).encode("utf-8")).digest()
    document_hash = hashlib.sha256(canonical_nquads(document, loader).encode("utf-8")).digest()
    return config_hash + document_hash


# ---------------------------------------------------------------- sign and verify

def sign(document: dict, private_key: Ed25519PrivateKey, *, method: str, created: str,
         loader=None) -> dict:
    """A copy of `document` with a DataIntegrityProof (eddsa-rdfc-2022,
    assertionMethod) signed by `private_key`; `method`: the verification method
    IRI; `created`: an XML Schema dateTime string."""
    unsigned = {key: value for key, value in document.items() if key != "proof"}
    proof = {"type": PROOF_TYPE, "created": created, "verificationMethod": method,
             "cryptosuite": CRYPTOSUITE, "proofPurpose": "assertionMethod"}
    signature = private_key.sign(hash_data(unsigned, proof, loader))
    signed = copy.deepcopy(unsigned)
    signed["proof"] = {**proof, "proofValue": "z" + base58_encode(signature)}
    return signed


def verify(document: dict, *, public_key: bytes | None = None, loader=None) -> dict:
    """The document's proof, when it verifies; ProofError saying why otherwise.

    The key is `public_key` (32 raw bytes) when given, else resolved offline from
    the proof's did:key verification method."""
    proof = document.get("proof")
    if not isinstance(proof, dict):
        raise ProofError("the document has no single proof object")
    expected = {"type": PROOF_TYPE, "cryptosuite": CRYPTOSUITE,
                "proofPurpose": "assertionMethod"}
    for field, value in expected.items():
        if proof.get(field) != value:
            raise ProofError(f"proof {field} is {proof.get(field)!r}, not {value!r}")
    proof_value = proof.get("proofValue")
    if not isinstance(proof_value, str) or not proof_value.startswith("z"):
        raise ProofError("proofValue is not multibase base58btc ('z')")
    signature = base58_decode(proof_value[1:])
    if len(signature) != 64:
        raise ProofError("proofValue is not a 64-byte Ed25519 signature")
    method = proof.get("verificationMethod")
    if not isinstance(method, str):
        raise ProofError("the proof names no verification method")
    key = public_key if public_key is not None else resolve_did_key(method)
    unsigned = {name: value for name, value in document.items() if name != "proof"}
    if "@context" not in unsigned:
        raise ProofError("the document has no @context")
    config = {name: value for name, value in proof.items() if name != "proofValue"}
    if "@context" in config and config["@context"] != unsigned.get("@context"):
        raise ProofError("the proof's @context differs from the document's")
    data = hash_data(unsigned, config, loader)
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, data)
    except InvalidSignature:
        raise ProofError("the signature does not match the document") from None
    return proof


__all__ = [
    "BUNDLED_CONTEXT_FILES", "CREDENTIALS_V2", "CRYPTOSUITE", "OPEN_BADGES_V3",
    "ProofError", "base58_decode", "base58_encode", "canonical_nquads", "context_loader",
    "did_key", "hash_data", "multikey", "public_key_of_multikey", "raw_public_key",
    "resolve_did_key", "sign", "verification_method", "verify",
]
