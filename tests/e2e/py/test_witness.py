"""sigstore-python 4.5.1 against a Rekor v2 log whose checkpoints a real witness cosigns
(issue 14 item 4, "done when": a cosigned checkpoint that sigstore-python still verifies).

The witness is aics-witness from PyPI (scripts/aics-witness.sh installs it; AICS_WITNESS
names its command), a third-party C2SP tlog-witness. tlog runs fail-closed, so every
create it answers carries a checkpoint the witness cosigned: its own signature line first,
the witness's cosignature after it. sigstore-python ignores the cosignature (X-05) and must
still verify the entry; the test checks the cosignature itself with `cryptography` alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sigstore._internal.rekor.client_v2 import RekorV2Client
from sigstore._internal.trust import KeyringPurpose
from sigstore.hashes import Hashed
from sigstore.models import ClientTrustConfig
from sigstore.sign import SigningContext
from sigstore_models.common.v1 import HashAlgorithm

from conftest import REPO_ROOT, free_port, start_server
from helpers import Signer

ORIGIN = "rekor.witness.e2e.test"
WITNESS_NAME = "witness.e2e.test"
# Test-only witness seed.
SEED = bytes(range(0x60, 0x80))


def aics_witness() -> str:
    cmd = os.environ.get("AICS_WITNESS") or str(REPO_ROOT / ".cache" / "aics-witness" / "bin" / "aics-witness")
    if not Path(cmd).exists():
        raise RuntimeError("aics-witness is missing; run scripts/aics-witness.sh (scripts/test.sh does)")
    return cmd


def witness_vkey() -> str:
    raw = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
    key_id = hashlib.sha256(WITNESS_NAME.encode() + b"\n\x04" + raw).digest()[:4]
    key = base64.b64encode(b"\x04" + raw).decode()
    return f"{WITNESS_NAME}+{key_id.hex()}+{key}"


@pytest.fixture(scope="module")
def witness():
    work = Path(tempfile.mkdtemp(prefix="tlog-e2e-witness-"))
    port = free_port()
    config = str(work / "witness.json")
    env = dict(os.environ, WITNESS_SEED_HEX=SEED.hex())
    cmd = aics_witness()
    # --new-database: a key from WITNESS_SEED_HEX counts as existing, and this one never cosigned.
    subprocess.run([cmd, "init", "--config", config, "--name", WITNESS_NAME, "--listen", f"127.0.0.1:{port}",
                    "--new-database"], env=env, check=True, capture_output=True)
    log = (work / "witness.log").open("w")
    child = subprocess.Popen([cmd, "serve", "--config", config], env=env, stdout=log, stderr=log)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "config": config, "env": env, "child": child, "cmd": cmd}
    finally:
        child.terminate()
        child.wait(10)


@pytest.fixture(scope="module")
def server(witness):
    policy = Path(tempfile.mkdtemp(prefix="tlog-e2e-policy-")) / "policy.txt"
    policy.write_text(f"witness w1 {witness_vkey()} {witness['url']}\nquorum w1\n")
    yield from start_server(
        extra_env={
            "TLOG_V2__WITNESS_POLICY": str(policy),
            "TLOG_V2__WITNESS_FAIL_CLOSED": "true",
            "TLOG_V2__WITNESS_TIMEOUT_MS": "2000",
        },
        v2_origin=ORIGIN,
    )


@pytest.fixture(scope="module")
def trust_config(server, witness) -> ClientTrustConfig:
    text = server.trust_config.read_text()
    # Tell the witness about the log: its vkey from the trusted root's Ed25519 key.
    doc = json.loads(text)
    tlog = next(t for t in doc["trustedRoot"]["tlogs"] if t["publicKey"]["keyDetails"] == "PKIX_ED25519")
    raw = base64.b64decode(tlog["publicKey"]["rawBytes"])[12:]
    key_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    key = base64.b64encode(b"\x01" + raw).decode()
    vkey = f"{ORIGIN}+{key_id.hex()}+{key}"
    subprocess.run([witness["cmd"], "add-log", "--config", witness["config"], "--origin", ORIGIN, "--vkey", vkey],
                   env=witness["env"], check=True, capture_output=True)
    witness["child"].send_signal(signal.SIGHUP)
    return ClientTrustConfig.from_json(text)


@pytest.fixture(scope="module")
def rekor(trust_config) -> RekorV2Client:
    return SigningContext.from_trust_config(trust_config)._rekor


def _request(rekor, signer, artifact: bytes):
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(artifact).digest())
    signature = signer.key.sign(hashed.digest, ec.ECDSA(hashed._as_prehashed()))
    return rekor._build_hashed_rekord_request(hashed, signature, signer.cert)


def _check_cosignature(envelope: str) -> int:
    """The envelope's witness line verifies under the witness key (X-04); returns its time."""
    text, sigs = envelope.split("\n\n")
    lines = sigs.rstrip("\n").split("\n")
    assert len(lines) == 2 and lines[0].startswith(f"\u2014 {ORIGIN} "), envelope
    name, b64 = lines[1].removeprefix("\u2014 ").split(" ")
    assert name == WITNESS_NAME
    blob = base64.b64decode(b64)
    public: Ed25519PublicKey = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    raw = public.public_bytes_raw()
    assert blob[:4] == hashlib.sha256(WITNESS_NAME.encode() + b"\n\x04" + raw).digest()[:4]
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    public.verify(blob[12:], f"cosignature/v1\ntime {timestamp}\n{text}\n".encode())
    return timestamp


def test_sigstore_python_verifies_an_entry_against_a_cosigned_checkpoint(rekor, trust_config):
    keyring = trust_config.trusted_root.rekor_keyring(KeyringPurpose.VERIFY)
    signer = Signer()
    entry = None
    # The witness reads its new log on SIGHUP; until then tlog answers 503 (fail-closed).
    deadline = time.monotonic() + 30
    while entry is None:
        try:
            entry = rekor.create_entry(_request(rekor, signer, f"tlog e2e witnessed {time.time()}\n".encode()))
        except Exception:  # noqa: BLE001 - the 503 before the witness knows the log
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    envelope = entry._inner.inclusion_proof.checkpoint.envelope
    assert abs(_check_cosignature(envelope) - time.time()) < 60
    entry._verify(keyring)

    # A second entry: the witness cosigns the next size with a consistency proof.
    second = rekor.create_entry(_request(rekor, signer, b"tlog e2e witnessed, second\n"))
    envelope = second._inner.inclusion_proof.checkpoint.envelope
    _check_cosignature(envelope)
    second._verify(keyring)


def test_the_served_checkpoint_carries_the_cosignature(server, rekor, trust_config):
    signer = Signer()
    rekor.create_entry(_request(rekor, signer, b"tlog e2e witnessed, served\n"))
    for path in ("/checkpoint", "/api/v2/checkpoint"):
        note = requests.get(f"{server.base_url}{path}", timeout=5).text
        _check_cosignature(note)
