"""sigstore-python's Rekor v1 client against a real tlog server (spec K-05).

The client uploads hashedrekord and dsse entries (built by its own request
builders), and `rekord` entries with x509, ssh, minisign and pgp keys and a legacy
`intoto` 0.0.1 entry (built as rekor_types models, signed by each format's real
tool: see signing_tools.py). It fetches each by UUID, by index and
through POST /api/v1/log/entries/retrieve/ (with the trailing slash it sends), and
sigstore-python's own code verifies each entry: the Merkle inclusion proof
(`verify_merkle_inclusion`), the signed checkpoint (`verify_checkpoint`) and the SET
(`TransparencyLogEntry._verify_set`), all three via `TransparencyLogEntry._verify`,
against a trusted root built from GET /api/v1/log/publicKey.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
from dataclasses import dataclass

import pytest
import requests
import sigstore.models
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore import dsse
from sigstore._internal.merkle import verify_merkle_inclusion
from sigstore._internal.rekor import RekorClientError, _hashedrekord_from_parts
from sigstore._internal.rekor.checkpoint import verify_checkpoint
from sigstore._internal.rekor.client import RekorClient
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import TransparencyLogEntry
from sigstore_models.common.v1 import HashAlgorithm
import rekor_types

import signing_tools
from helpers import Signer, fresh_p256_der, leaf_hash, only_entry, public_key_der, rekor_keyring, trusted_root


@dataclass
class Upload:
    entry: TransparencyLogEntry  # as the client parsed the 201 response
    raw: dict  # the same entry fetched as JSON by index: {uuid: LogEntry}
    uuid: str
    expected: object  # the rekor_types model the client searches with


@pytest.fixture(scope="module", autouse=True)
def all_v1_kinds():
    """sigstore-python 4.5.1 turns Rekor v1 responses of hashedrekord and dsse only
    into entries: `TransparencyLogEntry._from_v1_response` refuses any other kind with
    one `isinstance(body, Hashedrekord | Dsse)` check (its bundles carry no others),
    and that check is the only use of `sigstore.models.Dsse`. Widening that name
    for this module lets rekord and intoto 0.0.1 responses through the client's own
    parser; everything after it (proof, checkpoint, SET) is unchanged client code."""
    assert "isinstance(body_entry, Hashedrekord | Dsse)" in inspect.getsource(
        TransparencyLogEntry._from_v1_response
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sigstore.models, "Dsse", rekor_types.Dsse | rekor_types.Rekord | rekor_types.Intoto)
        yield


@pytest.fixture(scope="module")
def client(server) -> RekorClient:
    return RekorClient(server.base_url)


@pytest.fixture(scope="module")
def log_key_der(server) -> bytes:
    res = requests.get(f"{server.base_url}/api/v1/log/publicKey", timeout=10)
    assert res.status_code == 200
    return public_key_der(res.content)


@pytest.fixture(scope="module")
def keyring(server, log_key_der):
    return rekor_keyring(trusted_root(server.base_url, log_key_der))


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


def _fetch_raw(server, log_index: int) -> tuple[str, dict]:
    res = requests.get(f"{server.base_url}/api/v1/log/entries", params={"logIndex": log_index}, timeout=10)
    assert res.status_code == 200, res.text
    return only_entry(res.json())


@pytest.fixture(scope="module")
def hashedrekord(server, client, signer) -> Upload:
    artifact = b"tlog e2e: a message signed for sigstore-python's hashedrekord upload\n"
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(artifact).digest())
    signature = signer.key.sign(hashed.digest, ec.ECDSA(hashed._as_prehashed()))
    entry = client.create_entry(client._build_hashed_rekord_request(hashed, signature, signer.cert))
    uuid, raw = _fetch_raw(server, entry._inner.log_index)
    return Upload(entry, {uuid: raw}, uuid, _hashedrekord_from_parts(signer.cert, signature, hashed))


def _signed_statement(signer, subject: bytes) -> dsse.Envelope:
    """An in-toto statement about `subject`, signed into a DSSE envelope by the client."""
    digest = hashlib.sha256(subject).hexdigest()
    stmt = (
        dsse.StatementBuilder()
        .subjects([dsse.Subject(name="artifact.txt", digest={"sha256": digest})])
        .predicate_type("https://slsa.dev/provenance/v1")
        .predicate({"buildDefinition": {"buildType": "https://example.com/tlog-e2e"}})
        .build()
    )
    return dsse._sign(signer.key, stmt)


@pytest.fixture(scope="module")
def dsse_entry(server, client, signer) -> Upload:
    envelope = _signed_statement(signer, b"tlog e2e: the subject of sigstore-python's dsse upload\n")
    request = client._build_dsse_request(envelope, signer.cert)
    entry = client.create_entry(request)
    uuid, raw = _fetch_raw(server, entry._inner.log_index)
    return Upload(entry, {uuid: raw}, uuid, rekor_types.Dsse.model_validate(request))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _upload_model(server, client, model) -> Upload:
    """Creates the entry a rekor_types model describes through the client."""
    entry = client.create_entry(model.model_dump(mode="json", by_alias=True, exclude_none=True))
    uuid, raw = _fetch_raw(server, entry._inner.log_index)
    return Upload(entry, {uuid: raw}, uuid, model)


def _rekord(fmt: str, material: signing_tools.Material, artifact: bytes) -> rekor_types.Rekord:
    return rekor_types.Rekord(
        spec=rekor_types.rekord.RekordV001Schema(
            signature=rekor_types.rekord.Signature(
                format=rekor_types.rekord.Format(fmt),
                content=_b64(material.signature),
                publicKey=rekor_types.rekord.PublicKey(content=_b64(material.public_key)),
            ),
            data=rekor_types.rekord.Data(
                hash=rekor_types.rekord.Hash(algorithm="sha256", value=hashlib.sha256(artifact).hexdigest()),
                content=_b64(artifact),
            ),
        )
    )


REKORD_FORMATS = ["x509", "ssh", "minisign", "pgp"]


def _rekord_fixture(fmt: str):
    """A module-scoped fixture uploading one `rekord` signed with a `fmt` key."""

    @pytest.fixture(scope="module")
    def fixture(server, client, signer) -> Upload:
        artifact = f"tlog e2e: an artifact signed with a {fmt} key for a rekord upload\n".encode()
        email = f"e2e-{fmt}@example.com"
        material = {
            "x509": lambda: signing_tools.x509(artifact, signer),
            "ssh": lambda: signing_tools.ssh(artifact, email),
            "minisign": lambda: signing_tools.minisign(artifact),
            "pgp": lambda: signing_tools.pgp(artifact, email),
        }[fmt]()
        return _upload_model(server, client, _rekord(fmt, material, artifact))

    return fixture


rekord_x509 = _rekord_fixture("x509")
rekord_ssh = _rekord_fixture("ssh")
rekord_minisign = _rekord_fixture("minisign")
rekord_pgp = _rekord_fixture("pgp")


@pytest.fixture(scope="module")
def intoto_entry(server, client, signer) -> Upload:
    envelope = _signed_statement(signer, b"tlog e2e: the subject of the intoto 0.0.1 upload\n")
    model = rekor_types.Intoto(
        apiVersion="0.0.1",
        spec=rekor_types.intoto.IntotoV001Schema(
            content=rekor_types.intoto.Content(envelope=envelope.to_json()),
            publicKey=_b64(signing_tools.x509(b"", signer).public_key),
        ),
    )
    return _upload_model(server, client, model)


KINDS = ["hashedrekord", "dsse", *(f"rekord-{f}" for f in REKORD_FORMATS), "intoto-0.0.1"]
FIXTURES = {"dsse": "dsse_entry", "intoto-0.0.1": "intoto_entry"}


@pytest.fixture(params=KINDS)
def upload(request) -> Upload:
    kind = request.param
    return request.getfixturevalue(FIXTURES.get(kind, kind.replace("-", "_")))


def _same_entry(a: TransparencyLogEntry, b: TransparencyLogEntry) -> None:
    for field in ("log_index", "log_id", "integrated_time", "canonicalized_body", "kind_version"):
        assert getattr(a._inner, field) == getattr(b._inner, field), field


def test_create_returns_a_verified_entry_of_its_kind(upload, keyring):
    kv = upload.entry._inner.kind_version
    assert (kv.kind, kv.version) in {
        ("hashedrekord", "0.0.1"),
        ("dsse", "0.0.1"),
        ("rekord", "0.0.1"),
        ("intoto", "0.0.1"),
    }
    # Inclusion proof, checkpoint and SET, all by sigstore-python's own code.
    upload.entry._verify(keyring)
    verify_merkle_inclusion(upload.entry)
    verify_checkpoint(keyring, upload.entry)
    upload.entry._verify_set(keyring)


def test_uuid_is_tree_id_and_leaf_hash(upload):
    assert len(upload.uuid) == 80
    body = upload.raw[upload.uuid]["body"]
    assert upload.uuid[16:] == leaf_hash(body)
    assert base64.b64decode(body) == upload.entry._inner.canonicalized_body


def test_get_by_uuid(upload, client, keyring):
    for uuid in (upload.uuid, upload.uuid[16:]):  # 80-hex entry ID and 64-hex leaf hash
        got = client.log.entries.get(uuid=uuid)
        _same_entry(got, upload.entry)
        got._verify(keyring)


def test_get_by_index(upload, client, keyring):
    index = upload.entry._inner.log_index
    if index == 0:
        # RekorEntries.get(log_index=0) raises "uuid or log_index required" (bool(0) is
        # False), so index 0 goes through the client's response parser directly.
        got = TransparencyLogEntry._from_v1_response(upload.raw)
    else:
        got = client.log.entries.get(log_index=index)
    _same_entry(got, upload.entry)
    got._verify(keyring)


def test_retrieve_with_trailing_slash_finds_the_entry(upload, client, keyring):
    assert client.log.entries.retrieve.url.endswith("/entries/retrieve/")
    got = client.log.entries.retrieve.post(upload.expected)
    assert got is not None, "retrieve found nothing"
    _same_entry(got, upload.entry)
    got._verify(keyring)


def test_log_info(client, hashedrekord, dsse_entry):
    info = client.log.get()
    assert info.tree_size >= 2
    assert len(info.root_hash) == 64


def test_duplicate_is_rejected_with_409(client, hashedrekord):
    with pytest.raises(RekorClientError) as err:
        client.create_entry(hashedrekord.expected.model_dump(mode="json", by_alias=True))
    assert str(err.value).startswith("409: an equivalent entry already exists in the transparency log with UUID ")
    assert str(err.value).endswith(hashedrekord.uuid)


def test_bad_signature_is_rejected_with_400(client, signer):
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(b"signed").digest())
    other = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(b"claimed").digest())
    signature = signer.key.sign(hashed.digest, ec.ECDSA(hashed._as_prehashed()))
    with pytest.raises(RekorClientError, match=r"^400: "):
        client.create_entry(client._build_hashed_rekord_request(other, signature, signer.cert))


# Negative cases: the verification above is not vacuous.


def test_wrong_log_key_is_rejected(server, upload):
    wrong = rekor_keyring(trusted_root(server.base_url, fresh_p256_der()))
    with pytest.raises(VerificationError, match="checkpoint"):
        upload.entry._verify(wrong)
    with pytest.raises(VerificationError, match="SET"):
        upload.entry._verify_set(wrong)


def _tampered(raw: dict, edit) -> TransparencyLogEntry:
    (uuid, entry), = raw.items()
    entry = json.loads(json.dumps(entry))
    body = json.loads(base64.b64decode(entry["body"]))
    edit(body)
    entry["body"] = base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()
    return TransparencyLogEntry._from_v1_response({uuid: entry})


def _flip_hex(s: str) -> str:
    return ("1" if s[0] == "0" else "0") + s[1:]


def _edit_digest(body: dict) -> None:
    spec = body["spec"]
    digest = {
        "hashedrekord": lambda: spec["data"]["hash"],
        "rekord": lambda: spec["data"]["hash"],
        "dsse": lambda: spec["payloadHash"],
        "intoto": lambda: spec["content"]["payloadHash"],
    }[body["kind"]]()
    digest["value"] = _flip_hex(digest["value"])


def test_tampered_body_is_rejected(upload, keyring):
    # Unchanged, the raw entry verifies; so what fails below is the edit.
    TransparencyLogEntry._from_v1_response(upload.raw)._verify(keyring)
    tampered = _tampered(upload.raw, _edit_digest)
    with pytest.raises(VerificationError, match="inclusion proof"):
        tampered._verify(keyring)
    with pytest.raises(VerificationError, match="SET"):
        tampered._verify_set(keyring)


def test_tampered_proof_is_rejected(upload, keyring):
    (uuid, entry), = upload.raw.items()
    entry = json.loads(json.dumps(entry))
    proof = entry["verification"]["inclusionProof"]
    if proof["hashes"]:
        proof["hashes"][0] = _flip_hex(proof["hashes"][0])
    else:
        proof["rootHash"] = _flip_hex(proof["rootHash"])
    with pytest.raises(VerificationError):
        TransparencyLogEntry._from_v1_response({uuid: entry})._verify(keyring)
