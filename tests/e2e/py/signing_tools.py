"""Signing material for the `rekord` kinds, made by the real tools of each format.

- ssh: OpenSSH's `ssh-keygen` (an Ed25519 key, `ssh-keygen -Y sign -n file`);
- minisign: the `minisign` command (Debian's package), key without password;
- pgp: GnuPG's `gpg` (an Ed25519 key in a throwaway GNUPGHOME, binary detached
  signature, armored public key, as rekor-cli users upload them);
- x509: `cryptography` (the ECDSA P-256 key and certificate of helpers.Signer).

tests/e2e/py/run.sh checks that the three commands exist; .ci/run installs them.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import Signer


@dataclass
class Material:
    signature: bytes
    public_key: bytes


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    res = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {res.returncode}:\n{res.stdout}{res.stderr}")


def x509(artifact: bytes, signer: Signer) -> Material:
    signature = signer.key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    return Material(signature, signer.cert.public_bytes(serialization.Encoding.PEM))


def ssh(artifact: bytes, email: str) -> Material:
    with tempfile.TemporaryDirectory(prefix="tlog-e2e-ssh-") as d:
        work = Path(d)
        (work / "artifact").write_bytes(artifact)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", "key", cwd=work)
        _run("ssh-keygen", "-Y", "sign", "-f", "key", "-n", "file", "artifact", cwd=work)
        return Material((work / "artifact.sig").read_bytes(), (work / "key.pub").read_bytes())


def minisign(artifact: bytes) -> Material:
    with tempfile.TemporaryDirectory(prefix="tlog-e2e-minisign-") as d:
        work = Path(d)
        (work / "artifact").write_bytes(artifact)
        _run("minisign", "-G", "-W", "-f", "-p", "key.pub", "-s", "key.sec", cwd=work)
        _run("minisign", "-S", "-s", "key.sec", "-m", "artifact", "-x", "artifact.minisig", cwd=work)
        return Material((work / "artifact.minisig").read_bytes(), (work / "key.pub").read_bytes())


def pgp(artifact: bytes, email: str) -> Material:
    with tempfile.TemporaryDirectory(prefix="tlog-e2e-gpg-") as d:
        work = Path(d)
        home = work / "gnupg"
        home.mkdir(mode=0o700)
        env = {"GNUPGHOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"}
        (work / "artifact").write_bytes(artifact)
        gpg = ("gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "")
        _run(*gpg, "--quick-gen-key", f"tlog e2e <{email}>", "ed25519", "sign", "never", cwd=work, env=env)
        _run(*gpg, "--armor", "--output", "key.asc", "--export", email, cwd=work, env=env)
        _run(*gpg, "--local-user", email, "--output", "artifact.sig", "--detach-sign", "artifact", cwd=work, env=env)
        # Stop the agent this GNUPGHOME started.
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)
        return Material((work / "artifact.sig").read_bytes(), (work / "key.asc").read_bytes())
