"""The Rekor v2 log turned over (issue 14, item 5), verified by sigstore-python 4.5.1.

As the public instance moves from one v2 log to the next (a new origin and a new
key), `tlog log rotate --v2` freezes the running v2 log beside a live server, which
exits on its own and is started again on the new origin and key. sigstore-python's
`RekorV2Client`, chosen from `tlog trust-config` each time, writes one entry to each
log. The trust configuration after the rotation lists both keys (the frozen one
with `validFor.end`), and `TransparencyLogEntry._verify` accepts the entries of both
logs under it; a trusted root without the frozen key refuses the old entry. The
frozen log's final checkpoint stays served at `/logs/<origin>/checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore._internal.rekor.client_v2 import RekorV2Client
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import ClientTrustConfig
from sigstore.sign import SigningContext
from sigstore_models.common.v1 import HashAlgorithm

from conftest import _run
from helpers import Signer
from test_sharding import VALID_FROM, ShardedLog

FIRST = "log2026-1.e2e.test"
SECOND = "log2027-1.e2e.test"


class RotatingV2Log(ShardedLog):
    """A v1 log with a v2 log beside it, on its own database."""

    def __init__(self) -> None:
        super().__init__()
        self.use_v2("first", FIRST)

    def use_v2(self, key_name: str, origin: str) -> None:
        key = self.work / f"v2-{key_name}.pem"
        _run(self.bin, ["keygen", "--algorithm", "ed25519", "--out", str(key)], self.env, self.log_file)
        self.env.update(TLOG_V2__KEY_FILE=str(key), TLOG_V2__ORIGIN=origin)

    def trust_config_json(self) -> dict:
        res = subprocess.run(
            [self.bin, "trust-config", "--v1-url", self.base_url, "--v2-url", self.base_url,
             "--valid-from", VALID_FROM],
            env=self.env, capture_output=True, text=True, check=True,
        )
        return json.loads(res.stdout)

    def v2_client(self) -> RekorV2Client:
        config = ClientTrustConfig.from_json(json.dumps(self.trust_config_json()))
        rekor = SigningContext.from_trust_config(config)._rekor
        assert isinstance(rekor, RekorV2Client)
        return rekor

    def rotate_v2(self, key_name: str, origin: str) -> None:
        """Rotates beside the running server, which then exits non-zero by itself."""
        self.use_v2(key_name, origin)
        _run(self.bin, ["log", "rotate", "--v2"], self.env, self.log_file)
        assert self.child.wait(20) != 0, "a server of a frozen v2 log exits with an error"
        self.serve()


def _upload(rekor: RekorV2Client, signer: Signer, artifact: bytes):
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(artifact).digest())
    signature = signer.key.sign(hashed.digest, ec.ECDSA(hashed._as_prehashed()))
    return rekor.create_entry(rekor._build_hashed_rekord_request(hashed, signature, signer.cert))


@pytest.fixture(scope="module")
def rotated():
    log = RotatingV2Log()
    try:
        log.serve()
        signer = Signer()
        old = _upload(log.v2_client(), signer, b"tlog e2e: an entry of the first v2 log\n")
        log.rotate_v2("second", SECOND)
        new = _upload(log.v2_client(), signer, b"tlog e2e: an entry of the second v2 log\n")
        yield log, old, new
    finally:
        log.close()


def _keyring(doc: dict):
    config = ClientTrustConfig.from_json(json.dumps(doc))
    return config.trusted_root.rekor_keyring(KeyringPurpose.VERIFY)


def test_each_log_starts_at_zero_under_its_own_origin(rotated):
    _, old, new = rotated
    assert old._inner.log_index == 0
    assert new._inner.log_index == 0
    assert old._inner.inclusion_proof.checkpoint.envelope.startswith(f"{FIRST}\n")
    assert new._inner.inclusion_proof.checkpoint.envelope.startswith(f"{SECOND}\n")
    assert old._inner.log_id.key_id != new._inner.log_id.key_id


def test_entries_of_the_frozen_and_the_active_log_verify(rotated):
    log, old, new = rotated
    doc = log.trust_config_json()
    v2 = [t for t in doc["trustedRoot"]["tlogs"] if t["publicKey"]["keyDetails"] == "PKIX_ED25519"]
    assert len(v2) == 2
    assert "end" in v2[0]["publicKey"]["validFor"], "the frozen key is valid until it froze"
    assert v2[0]["baseUrl"] == f"{log.base_url}/logs/{FIRST}"
    urls = [u for u in doc["signingConfig"]["rekorTlogUrls"] if u["majorApiVersion"] == 2]
    assert [u["url"] for u in urls] == [log.base_url], "clients write to the new log only"
    keyring = _keyring(doc)
    old._verify(keyring)
    new._verify(keyring)


def test_the_frozen_entry_needs_the_frozen_key(rotated):
    log, old, new = rotated
    doc = log.trust_config_json()
    doc["trustedRoot"]["tlogs"] = [
        t for t in doc["trustedRoot"]["tlogs"] if "end" not in t["publicKey"]["validFor"]
    ]
    keyring = _keyring(doc)
    new._verify(keyring)
    with pytest.raises(VerificationError):
        old._verify(keyring)


def test_the_frozen_log_keeps_its_final_checkpoint(rotated):
    log, old, _ = rotated
    res = requests.get(f"{log.base_url}/logs/{FIRST}/checkpoint", timeout=10)
    assert res.status_code == 200
    assert res.text == old._inner.inclusion_proof.checkpoint.envelope
    head = requests.get(f"{log.base_url}/checkpoint", timeout=10).text
    assert head.startswith(f"{SECOND}\n1\n")
