"""A time-sharded v1 log (issue 14, item 5) verified by sigstore-python 4.5.1.

One database, three shards: `tlog serve` takes an entry, `tlog log rotate` freezes
its shard (the server exits on its own, as it does under a supervisor, and is
started again), a second shard with the same key takes an entry, and a rotation to
a new key (`--key-file`) starts a third. sigstore-python's RekorClient fetches the
entry of the frozen second shard (global logIndex 1, index 0 in its own tree) and
the one of the active third shard (global 2), by global logIndex and by entry ID,
and `TransparencyLogEntry._verify` (inclusion proof, checkpoint, SET) checks each
against the trusted root of `tlog trust-config`, which lists both keys.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore._internal.rekor.client import RekorClient
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import ClientTrustConfig
from sigstore_models.common.v1 import HashAlgorithm

from conftest import REPO_ROOT, _run, _wait_until_serving, database_url, free_port, psql, tlog_binary
from helpers import Signer, only_entry

VALID_FROM = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)).strftime(
    "%Y-%m-%dT%H:%M:%SZ"
)


class ShardedLog:
    def __init__(self) -> None:
        self.bin = tlog_binary()
        self.work = Path(tempfile.mkdtemp(prefix="tlog-e2e-shard-"))
        self.log_file = self.work / "server.log"
        self.log_file.touch()
        self.db = f"tlog_e2e_shard_{secrets.token_hex(6)}"
        psql(f"CREATE DATABASE {self.db}")
        self.base_url = f"http://127.0.0.1:{free_port()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TLOG_") and k != "DATABASE_URL"}
        self.env.update(
            TLOG_LISTEN=self.base_url.removeprefix("http://"),
            TLOG_METRICS_LISTEN="127.0.0.1:0",
            TLOG_DATABASE_URL=database_url(self.db),
            TLOG_KEY_FILE=str(self.key("first")),
            TLOG_HOSTNAME="localhost",
            RUST_LOG=os.environ.get("RUST_LOG", "info"),
        )
        _run(self.bin, ["migrate"], self.env, self.log_file)
        self.child: subprocess.Popen | None = None

    def key(self, name: str) -> Path:
        path = self.work / f"{name}.pem"
        if not path.exists():
            _run(self.bin, ["keygen", "--out", str(path)], self.env, self.log_file)
        return path

    def serve(self) -> None:
        with self.log_file.open("a") as out:
            self.child = subprocess.Popen(
                [self.bin, "serve"], env=self.env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
            )
        _wait_until_serving(self.base_url, self.child, self.log_file, 60)

    def rotate(self, key_file: Path | None = None) -> None:
        """Rotates beside the running server, which then exits non-zero by itself."""
        args = ["log", "rotate"] + (["--key-file", str(key_file)] if key_file else [])
        _run(self.bin, args, self.env, self.log_file)
        assert self.child.wait(20) != 0, "a server of a frozen shard exits with an error"
        if key_file is not None:
            self.env["TLOG_KEY_FILE"] = str(key_file)
        self.serve()

    def trust_config(self) -> ClientTrustConfig:
        res = subprocess.run(
            [self.bin, "trust-config", "--v1-url", self.base_url, "--valid-from", VALID_FROM],
            env=self.env, capture_output=True, text=True, check=True,
        )
        return ClientTrustConfig.from_json(res.stdout)

    def close(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        try:
            psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        except RuntimeError as exc:
            print(f"could not drop {self.db}: {exc}")
        keep = REPO_ROOT / "target" / "e2e-logs"
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.log_file, keep / f"{self.db}.log")
        shutil.rmtree(self.work, ignore_errors=True)


def _upload(client: RekorClient, signer: Signer, artifact: bytes):
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(artifact).digest())
    signature = signer.key.sign(hashed.digest, ec.ECDSA(hashed._as_prehashed()))
    return client.create_entry(client._build_hashed_rekord_request(hashed, signature, signer.cert))


@pytest.fixture(scope="module")
def sharded():
    log = ShardedLog()
    try:
        log.serve()
        signer = Signer()
        client = RekorClient(log.base_url)
        _upload(client, signer, b"tlog e2e: the entry of the first shard\n")
        log.rotate()  # same key
        frozen = _upload(client, signer, b"tlog e2e: the entry of the second shard\n")
        log.rotate(log.key("second"))  # a new key
        active = _upload(client, signer, b"tlog e2e: the entry of the third shard\n")
        yield log, client, frozen, active
    finally:
        log.close()


def _raw(log: ShardedLog, log_index: int) -> tuple[str, dict]:
    res = requests.get(f"{log.base_url}/api/v1/log/entries", params={"logIndex": log_index}, timeout=10)
    assert res.status_code == 200, res.text
    return only_entry(res.json())


def test_the_log_reports_its_inactive_shards(sharded):
    log, _, _, _ = sharded
    info = requests.get(f"{log.base_url}/api/v1/log", timeout=10).json()
    shards = info["inactiveShards"]
    assert [s["treeSize"] for s in shards] == [1, 1]
    assert info["treeSize"] == 1
    assert len({s["treeID"] for s in shards} | {info["treeID"]}) == 3


@pytest.mark.parametrize("which", ["frozen", "active"])
def test_an_entry_of_each_shard_verifies(sharded, which):
    log, client, frozen, active = sharded
    created = {"frozen": frozen, "active": active}[which]
    expected_index = {"frozen": 1, "active": 2}[which]
    # As Rekor: the global logIndex, and the index in the shard's own tree.
    assert created._inner.log_index == expected_index
    assert created._inner.inclusion_proof.log_index == 0
    keyring = log.trust_config().trusted_root.rekor_keyring(KeyringPurpose.VERIFY)
    created._verify(keyring)
    entry_id, raw = _raw(log, expected_index)
    tree_id = int(entry_id[:16], 16)
    assert raw["verification"]["inclusionProof"]["checkpoint"].startswith(f"localhost - {tree_id}\n")
    by_index = client.log.entries.get(log_index=expected_index)
    by_index._verify(keyring)
    by_id = client.log.entries.get(uuid=entry_id)
    by_id._verify(keyring)
    assert by_id._inner.log_index == expected_index
    # The 64-hex UUID finds it too, in whichever shard holds it.
    client.log.entries.get(uuid=entry_id[16:])._verify(keyring)


def test_the_frozen_entry_needs_its_own_key(sharded):
    """A trusted root with only the new key refuses the frozen shard's entry: the
    trust config must carry every shard's key."""
    log, _, frozen, active = sharded
    doc = json.loads(subprocess.run(
        [log.bin, "trust-config", "--v1-url", log.base_url, "--valid-from", VALID_FROM],
        env=log.env, capture_output=True, text=True, check=True,
    ).stdout)
    tlogs = doc["trustedRoot"]["tlogs"]
    assert len(tlogs) == 2
    assert "end" in tlogs[0]["publicKey"]["validFor"]
    doc["trustedRoot"]["tlogs"] = tlogs[1:]
    keyring = ClientTrustConfig.from_json(json.dumps(doc)).trusted_root.rekor_keyring(KeyringPurpose.VERIFY)
    active._verify(keyring)
    with pytest.raises(VerificationError):
        frozen._verify(keyring)


def test_the_sharded_answers_match_rekors_openapi(sharded):
    """`inactiveShards` filled in, and an entry of a frozen shard, against Rekor's
    own description (test_openapi's schema and checks, unpatched for the array)."""
    from test_openapi import check, spec as spec_fixture  # noqa: PLC0415

    spec = spec_fixture.__wrapped__()
    log, _, _, _ = sharded
    check(spec, "/api/v1/log", "get", requests.get(f"{log.base_url}/api/v1/log", timeout=10), 200)
    res = requests.get(f"{log.base_url}/api/v1/log/entries", params={"logIndex": 1}, timeout=10)
    check(spec, "/api/v1/log/entries", "get", res, 200)
    tree_id = requests.get(f"{log.base_url}/api/v1/log", timeout=10).json()["inactiveShards"][0]["treeID"]
    res = requests.get(
        f"{log.base_url}/api/v1/log/proof", params={"lastSize": 1, "treeID": tree_id}, timeout=10
    )
    check(spec, "/api/v1/log/proof", "get", res, 200)
