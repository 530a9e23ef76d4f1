"""sigstore-python 4.5.1's Rekor v2 client against tlog's v2 log (issue 14, "done when").

The server runs a v1 and a v2 log; `tlog trust-config` prints the ClientTrustConfig
for both. sigstore-python selects its Rekor client from that config alone
(`SigningContext.from_trust_config`), which must be the `RekorV2Client`; it uploads a
hashedrekord and a DSSE envelope as a hashedrekord over its PAE (what the client does
since rekor-tiles dropped `dsseRequestV002`), and its own code verifies each returned
entry (`TransparencyLogEntry._verify`: Merkle inclusion and the signed checkpoint)
against the trusted root from the same config.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore import dsse
from sigstore._internal.rekor import RekorClientError
from sigstore._internal.rekor.client_v2 import RekorV2Client
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import ClientTrustConfig
from sigstore.sign import SigningContext
from sigstore_models.common.v1 import HashAlgorithm

from conftest import start_server
from helpers import Signer, fresh_p256_der, rekor_keyring, trusted_root

ORIGIN = "rekor.e2e.test"


@pytest.fixture(scope="module")
def server():
    yield from start_server(v2_origin=ORIGIN)


@pytest.fixture(scope="module")
def trust_config(server) -> ClientTrustConfig:
    return ClientTrustConfig.from_json(server.trust_config.read_text())


@pytest.fixture(scope="module")
def rekor(trust_config) -> RekorV2Client:
    return SigningContext.from_trust_config(trust_config)._rekor


@pytest.fixture(scope="module")
def keyring(trust_config):
    return trust_config.trusted_root.rekor_keyring(KeyringPurpose.VERIFY)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


def test_the_trust_config_selects_the_v2_log(server, rekor, trust_config):
    assert isinstance(rekor, RekorV2Client)
    assert rekor.url == f"{server.base_url}/api/v2"
    versions = sorted(s.major_api_version for s in trust_config.signing_config._inner.rekor_tlog_urls)
    assert versions == [1, 2], "the config lists the v1 log too"


def _hashedrekord(rekor, signer, artifact: bytes):
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(artifact).digest())
    signature = signer.key.sign(hashed.digest, ec.ECDSA(hashed._as_prehashed()))
    return rekor._build_hashed_rekord_request(hashed, signature, signer.cert)


def test_a_hashedrekord_is_created_and_verifies(rekor, signer, keyring):
    entry = rekor.create_entry(_hashedrekord(rekor, signer, b"tlog e2e: a v2 hashedrekord\n"))
    inner = entry._inner
    assert (inner.kind_version.kind, inner.kind_version.version) == ("hashedrekord", "0.0.2")
    assert inner.integrated_time == 0
    assert inner.inclusion_promise is None
    entry._verify(keyring)


def test_a_dsse_envelope_as_hashedrekord_is_created_and_verifies(rekor, signer, keyring):
    digest = hashlib.sha256(b"tlog e2e: the subject of a v2 attestation\n").hexdigest()
    statement = (
        dsse.StatementBuilder()
        .subjects([dsse.Subject(name="artifact.txt", digest={"sha256": digest})])
        .predicate_type("https://slsa.dev/provenance/v1")
        .predicate({"buildDefinition": {"buildType": "https://example.com/tlog-e2e"}})
        .build()
    )
    envelope = dsse._sign(signer.key, statement)
    request = rekor._build_dsse_request(envelope, signer.cert)
    assert "hashedRekordRequestV002" in request or "hashed_rekord_request_v002" in request
    entry = rekor.create_entry(request)
    assert entry._inner.kind_version.kind == "hashedrekord"
    entry._verify(keyring)


def test_an_entry_does_not_verify_under_another_log_key(server, rekor, signer):
    entry = rekor.create_entry(_hashedrekord(rekor, signer, b"tlog e2e: checked under a wrong key\n"))
    wrong = rekor_keyring(trusted_root(server.base_url, fresh_p256_der()))
    with pytest.raises(VerificationError):
        entry._verify(wrong)


def test_a_duplicate_is_refused_with_the_already_exists_status(rekor, signer):
    request = _hashedrekord(rekor, signer, b"tlog e2e: sent twice\n")
    index = rekor.create_entry(request)._inner.log_index
    # The client reads google.rpc.Status {code, message}: 6 is ALREADY_EXISTS (W-07).
    with pytest.raises(RekorClientError) as err:
        rekor.create_entry(request)
    assert str(err.value) == f"6: an equivalent entry already exists in the transparency log with index {index}"
