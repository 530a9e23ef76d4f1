"""write_policy with sigstore-python's Rekor v1 client (issue 12, spec K-05).

One tlog serves with a policy of one allowed key, a trusted root (a private
"Fulcio" CA made here) and one allowed identity. sigstore-python submits
hashedrekord entries with a certificate, as it does with Fulcio's:

- a self-signed certificate for the listed key is logged (201);
- one for an unlisted key is refused with 403 naming write_policy.allowed_keys;
- a certificate from the trusted CA for alice@example.com and the allowed OIDC
  issuer is logged;
- one from that CA for another identity is refused with 403 naming
  write_policy.allowed_identities.
"""

from __future__ import annotations

import datetime
import hashlib
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sigstore._internal.rekor import RekorClientError
from sigstore._internal.rekor.client import RekorClient
from sigstore.hashes import Hashed
from sigstore_models.common.v1 import HashAlgorithm

from conftest import start_server
from helpers import Signer

ISSUER = "https://issuer.example"
# Fulcio's OIDC issuer extension, a DER UTF8String (sigstore docs/oid-info.md).
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def _utf8_string(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


class PrivateFulcio:
    """A CA that issues short-lived leaves with an email SAN and an OIDC issuer."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlog e2e fulcio")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, email: str, issuer: str) -> Signer:
        signer = Signer(email)
        now = datetime.datetime.now(datetime.timezone.utc)
        signer.cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.name)
            .public_key(signer.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_OID, _utf8_string(issuer)), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return signer


@pytest.fixture(scope="module")
def fulcio() -> PrivateFulcio:
    return PrivateFulcio()


@pytest.fixture(scope="module")
def allowed() -> Signer:
    return Signer("allowed@example.com")


@pytest.fixture(scope="module")
def policy_server(fulcio, allowed):
    with tempfile.TemporaryDirectory(prefix="tlog-e2e-policy-") as d:
        work = Path(d)
        keys = work / "allowed-keys.pem"
        keys.write_bytes(
            allowed.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        roots = work / "fulcio-roots.pem"
        roots.write_bytes(fulcio.cert.public_bytes(serialization.Encoding.PEM))
        config = work / "tlog.yaml"
        config.write_text(
            f"write_policy:\n"
            f"  allowed_keys: {keys}\n"
            f"  trusted_roots: {roots}\n"
            f"  allowed_identities:\n"
            f"    - san: alice@example.com\n"
            f"      issuer: {ISSUER}\n"
        )
        yield from start_server({"TLOG_CONFIG_FILE": str(config)})


@pytest.fixture(scope="module")
def client(policy_server) -> RekorClient:
    return RekorClient(policy_server.base_url)


def _upload(client: RekorClient, signer: Signer, artifact: bytes):
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(artifact).digest())
    signature = signer.key.sign(hashed.digest, ec.ECDSA(hashed._as_prehashed()))
    return client.create_entry(client._build_hashed_rekord_request(hashed, signature, signer.cert))


def test_an_allowed_key_is_logged(client, allowed):
    entry = _upload(client, allowed, b"tlog e2e: signed by the allowed key\n")
    assert entry._inner.log_index >= 0


def test_an_unlisted_key_gets_403(client):
    with pytest.raises(RekorClientError, match=r"^403: entry refused by the write policy: .*write_policy\.allowed_keys"):
        _upload(client, Signer("stranger@example.com"), b"tlog e2e: signed by an unlisted key\n")


def test_a_certificate_for_the_allowed_identity_is_logged(client, fulcio):
    alice = fulcio.issue("alice@example.com", ISSUER)
    entry = _upload(client, alice, b"tlog e2e: signed by alice\n")
    assert entry._inner.log_index >= 0


def test_a_certificate_with_another_identity_gets_403(client, fulcio):
    mallory = fulcio.issue("mallory@example.com", ISSUER)
    with pytest.raises(RekorClientError, match=r"^403: .*write_policy\.allowed_identities"):
        _upload(client, mallory, b"tlog e2e: signed by mallory\n")


def test_a_certificate_from_another_issuer_gets_403(client, fulcio):
    alice_elsewhere = fulcio.issue("alice@example.com", "https://other-issuer.example")
    with pytest.raises(RekorClientError, match=r"^403: .*write_policy\.allowed_identities"):
        _upload(client, alice_elsewhere, b"tlog e2e: alice, other issuer\n")
