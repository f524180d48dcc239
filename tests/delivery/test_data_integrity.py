"""eddsa-rdfc-2022 Data Integrity proofs against the published test vectors.

Sources (tests/data/open_badges/SOURCES.md): the Open Badges 3.0 vector of
1EdTech/openbadges-specification@1af145ff, ob_v3p0/impl/linked-data-proof-ob.html, and
the W3C vector of w3c/vc-di-eddsa@abb673eb, TestVectors/eddsa-rdfc-2022/.
"""

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from irtcat.delivery import data_integrity as di

DATA = Path(__file__).resolve().parents[1] / "data" / "open_badges"
EXAMPLES_CONTEXT = "https://www.w3.org/ns/credentials/examples/v2"


def read_json(name):
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="module")
def ob3():
    vector = read_json("ob3-vector.json")
    private = bytes.fromhex(vector["privateKeyHex"])[:32]       # seed || public key
    return vector, read_json("ob3-unsigned.json"), Ed25519PrivateKey.from_private_bytes(private)


@pytest.fixture(scope="module")
def w3c():
    loader = di.context_loader({EXAMPLES_CONTEXT: read_json("credentials-examples-v2.jsonld")})
    pair = read_json("w3c-key-pair.json")
    secret = di.base58_decode(pair["privateKeyMultibase"][1:])
    assert secret[:2] == bytes([0x80, 0x26])                    # ed25519-priv multicodec
    return loader, Ed25519PrivateKey.from_private_bytes(secret[2:])


def test_ob3_key_pair_gives_the_published_multikey(ob3):
    vector, _, key = ob3
    assert di.raw_public_key(key).hex() == vector["publicKeyHex"]
    assert di.multikey(di.raw_public_key(key)) == vector["publicKeyMultibase"]
    assert di.public_key_of_multikey(vector["publicKeyMultibase"]).hex() == vector["publicKeyHex"]


def test_ob3_canonical_forms_equal_the_published_files(ob3):
    vector, document, _ = ob3
    config = {**vector["proofOptions"], "@context": document["@context"]}
    assert di.canonical_nquads(document) == (DATA / "ob3-document-canon.nq").read_text()
    assert di.canonical_nquads(config) == (DATA / "ob3-proof-canon.nq").read_text()


def test_ob3_hashes_signature_and_proof_value_reproduced_exactly(ob3):
    vector, document, key = ob3
    data = di.hash_data(document, vector["proofOptions"])
    assert data.hex() == vector["proofHashHex"] + vector["documentHashHex"]
    assert key.sign(data).hex() == vector["signatureHex"]
    options = vector["proofOptions"]
    signed = di.sign(document, key, method=options["verificationMethod"],
                     created=options["created"])
    assert signed["proof"] == {**options, "proofValue": vector["proofValue"]}
    assert {k: v for k, v in signed.items() if k != "proof"} == document
    public = bytes.fromhex(vector["publicKeyHex"])
    assert di.verify(signed, public_key=public) == signed["proof"]


def test_w3c_vector_reproduced_exactly(w3c):
    loader, key = w3c
    document, config = read_json("w3c-unsigned.json"), read_json("w3c-proof-config.json")
    hashes = read_json("w3c-hashes.json")
    assert di.canonical_nquads(document, loader) == (DATA / "w3c-document-canon.nq").read_text()
    assert di.canonical_nquads(config, loader) == (DATA / "w3c-proof-canon.nq").read_text()
    proof_options = {k: v for k, v in config.items() if k != "@context"}
    data = di.hash_data(document, proof_options, loader)
    assert data.hex() == hashes["proofHashHex"] + hashes["documentHashHex"]
    signed = di.sign(document, key, method=config["verificationMethod"],
                     created=config["created"], loader=loader)
    assert signed == read_json("w3c-signed.json")
    # the vector's verification method is a did:key: it resolves offline
    assert di.verify(read_json("w3c-signed.json"), loader=loader)["proofValue"] \
        == signed["proof"]["proofValue"]


def test_a_changed_value_or_signature_fails(ob3):
    vector, document, key = ob3
    options = vector["proofOptions"]
    signed = di.sign(document, key, method=options["verificationMethod"],
                     created=options["created"])
    public = bytes.fromhex(vector["publicKeyHex"])
    renamed = json.loads(json.dumps(signed).replace("Teamwork Badge", "Teamwork Badgf"))
    with pytest.raises(di.ProofError, match="signature does not match"):
        di.verify(renamed, public_key=public)
    later = json.loads(json.dumps(signed).replace("19:23:24Z", "19:23:25Z"))
    with pytest.raises(di.ProofError, match="signature does not match"):
        di.verify(later, public_key=public)
    value = signed["proof"]["proofValue"]
    forged = {**signed, "proof": {**signed["proof"], "proofValue": value[:-1] + "s"}}
    with pytest.raises(di.ProofError):
        di.verify(forged, public_key=public)


def test_an_unknown_context_is_refused_not_fetched(ob3):
    _, document, _ = ob3
    elsewhere = {**document, "@context": [*document["@context"], "https://example.org/ctx"]}
    with pytest.raises(di.ProofError, match="unknown JSON-LD context"):
        di.canonical_nquads(elsewhere)


def test_base58_round_trip_keeps_leading_zeros():
    for data in (b"", b"\0", b"\0\0\x01\xff", bytes(range(40))):
        assert di.base58_decode(di.base58_encode(data)) == data
    assert di.base58_encode(b"hello world") == "StV1DL6CwTryKyV"     # Bitcoin base58 example


def test_did_key_round_trip(ob3):
    _, _, key = ob3
    public = di.raw_public_key(key)
    method = di.verification_method(public)
    assert method == f"{di.did_key(public)}#{di.multikey(public)}"
    assert di.resolve_did_key(method) == public
    with pytest.raises(di.ProofError):
        di.resolve_did_key("https://example.edu/issuers/565049#key")
