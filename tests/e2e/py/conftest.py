"""Starts a real tlog server for the sigstore-python end-to-end tests.

The same recipe as tests/e2e/js/lib/server.js: a fresh database in the throwaway
cluster named by DATABASE_URL, a fresh signing key from `tlog keygen`, `tlog migrate`,
then `tlog serve` on a free loopback port. One server per test module.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[3]


def tlog_binary() -> str:
    bin_ = os.environ.get("TLOG_BIN") or str(REPO_ROOT / "target" / "debug" / "tlog")
    if not Path(bin_).exists():
        raise RuntimeError(f"tlog binary not found at {bin_}: run 'cargo build' first or set TLOG_BIN")
    return bin_


def admin_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set: run the e2e tests through scripts/test.sh")
    return url


def psql(sql: str) -> str:
    bindir = os.environ.get("PG_BINDIR")
    psql_bin = str(Path(bindir) / "psql") if bindir and (Path(bindir) / "psql").exists() else "psql"
    res = subprocess.run(
        [psql_bin, "-X", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", admin_url(), "-c", sql],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"psql failed ({res.returncode}) for {sql}: {res.stderr}")
    return res.stdout


def database_url(name: str) -> str:
    parts = urlsplit(admin_url())
    return urlunsplit(parts._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base_url: str
    key_file: Path
    log_file: Path
    # `tlog trust-config` output, when the server runs a Rekor v2 log too.
    trust_config: Path | None = None

    def log(self) -> str:
        return self.log_file.read_text()


def _run(bin_: str, args: list[str], env: dict[str, str], log_file: Path) -> None:
    res = subprocess.run([bin_, *args], env=env, capture_output=True, text=True)
    with log_file.open("a") as f:
        f.write(f"$ tlog {' '.join(args)}\n{res.stdout}{res.stderr}\n")
    if res.returncode != 0:
        raise RuntimeError(f"tlog {' '.join(args)} exited with {res.returncode}:\n{res.stdout}{res.stderr}")


def _wait_until_serving(base_url: str, child: subprocess.Popen, log_file: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"tlog serve exited early ({child.returncode}):\n{log_file.read_text()}")
        try:
            if requests.get(f"{base_url}/api/v1/log", timeout=2).status_code == 200:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"tlog serve did not answer within {timeout}s ({last}):\n{log_file.read_text()}")


@pytest.fixture(scope="module")
def server():
    yield from start_server()


def start_server(extra_env: dict[str, str] | None = None, v2_origin: str | None = None):
    """Runs one `tlog serve` on a fresh database; yields its Server. `extra_env`
    adds TLOG_* settings (e.g. TLOG_CONFIG_FILE for a write policy). With
    `v2_origin`, the server also runs a Rekor v2 log of that origin (a fresh
    Ed25519 key from `tlog keygen --algorithm ed25519`), and the Server carries
    the `tlog trust-config` for both logs."""
    bin_ = tlog_binary()
    work = Path(tempfile.mkdtemp(prefix="tlog-e2e-py-"))
    log_file = work / "server.log"
    log_file.touch()
    db = f"tlog_e2e_py_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {db}")
    port = free_port()
    key_file = work / "log-key.pem"
    # The server reads every TLOG_* variable as configuration (and rejects unknown
    # keys), so pass only ours; it must take its database from TLOG_DATABASE_URL alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLOG_") and k != "DATABASE_URL"}
    env.update(
        TLOG_LISTEN=f"127.0.0.1:{port}",
        TLOG_METRICS_LISTEN="127.0.0.1:0",
        TLOG_DATABASE_URL=database_url(db),
        TLOG_KEY_FILE=str(key_file),
        TLOG_HOSTNAME="localhost",
        RUST_LOG=os.environ.get("RUST_LOG", "info"),
    )
    # E2E_SIGNER=pkcs11 (scripts/test.sh's second run): the log key is made on the
    # SoftHSM2 token E2E_PKCS11_TOKEN by `tlog keygen --pkcs11` and never leaves it.
    pkcs11 = os.environ.get("E2E_SIGNER") == "pkcs11"
    if pkcs11:
        env.update(
            TLOG_SIGNER__KIND="pkcs11",
            TLOG_SIGNER__PKCS11__MODULE=os.environ["E2E_PKCS11_MODULE"],
            TLOG_SIGNER__PKCS11__TOKEN_LABEL=os.environ["E2E_PKCS11_TOKEN"],
            TLOG_SIGNER__PKCS11__PIN_FILE=os.environ["E2E_PKCS11_PIN_FILE"],
            TLOG_SIGNER__PKCS11__KEY_LABEL=f"log-{db}",
        )
    # `keygen --pkcs11` loads and checks the whole configuration, so it runs
    # before the test's own settings, which may need keys made below (a
    # witness policy needs the v2 key).
    keygen_env = dict(env)
    env.update(extra_env or {})
    child = None
    try:
        if pkcs11:
            _run(bin_, ["keygen", "--pkcs11"], keygen_env, log_file)
        else:
            _run(bin_, ["keygen", "--out", str(key_file)], env, log_file)
        trust_config = None
        base_url = f"http://127.0.0.1:{port}"
        if v2_origin is not None:
            v2_key = work / "v2-key.pem"
            _run(bin_, ["keygen", "--algorithm", "ed25519", "--out", str(v2_key)], env, log_file)
            env.update(TLOG_V2__KEY_FILE=str(v2_key), TLOG_V2__ORIGIN=v2_origin)
            trust_config = work / "trust_config.json"
            res = subprocess.run(
                [bin_, "trust-config", "--v1-url", base_url, "--v2-url", base_url],
                env=env, capture_output=True, text=True, check=True,
            )
            trust_config.write_text(res.stdout)
        _run(bin_, ["migrate"], env, log_file)
        with log_file.open("a") as out:
            child = subprocess.Popen([bin_, "serve"], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        # 127.0.0.1, not localhost: the server listens on IPv4 loopback only.
        _wait_until_serving(base_url, child, log_file, 60)
        yield Server(base_url=base_url, key_file=key_file, log_file=log_file, trust_config=trust_config)
    finally:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        try:
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        except RuntimeError as exc:
            print(f"could not drop {db}: {exc}")
        # Keep the server's log where a failed run can be read afterwards (target/ is ignored).
        keep = REPO_ROOT / "target" / "e2e-logs"
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_file, keep / f"{db}.log")
        shutil.rmtree(work, ignore_errors=True)
