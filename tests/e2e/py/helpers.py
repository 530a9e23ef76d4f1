"""Signing material and trust configuration for the sigstore-python e2e tests."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sigstore._internal.trust import KeyringPurpose
from sigstore.models import TrustedRoot
from sigstore_models.trustroot import v1 as trustroot_v1

# Keys and the log are trusted from a minute before the test started.
VALID_FROM = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)


class Signer:
    """An ECDSA P-256 key with a self-signed certificate (sigstore-python's Rekor
    client submits a certificate, as it would one from Fulcio)."""

    def __init__(self, email: str = "e2e-python@example.com") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlog e2e")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )


def public_key_der(pem: bytes) -> bytes:
    key = serialization.load_pem_public_key(pem)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def fresh_p256_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def trusted_root(base_url: str, key_der: bytes, log_id_der: bytes | None = None) -> TrustedRoot:
    """A trusted root with one Rekor v1 log (spec V-06), parsed by sigstore-python."""
    log_id_der = key_der if log_id_der is None else log_id_der
    doc = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {
                "baseUrl": base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(key_der).decode(),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": VALID_FROM.strftime("%Y-%m-%dT%H:%M:%SZ")},
                },
                "logId": {"keyId": base64.b64encode(hashlib.sha256(log_id_der).digest()).decode()},
            }
        ],
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": [],
    }
    return TrustedRoot(trustroot_v1.TrustedRoot.from_json(json.dumps(doc)))


def rekor_keyring(root: TrustedRoot):
    return root.rekor_keyring(KeyringPurpose.VERIFY)


def leaf_hash(body_b64: str) -> str:
    """RFC 6962 leaf hash of a canonical body: the 64-hex form of its entry UUID."""
    return hashlib.sha256(b"\x00" + base64.b64decode(body_b64)).hexdigest()


def only_entry(response: dict) -> tuple[str, dict]:
    assert len(response) == 1, f"a LogEntry map has exactly one key, got {list(response)}"
    return next(iter(response.items()))
