"""A minimal Rekor v1 client for `scripts/release.sh ci-selftest` when cosign
is not installed: it builds a hashedrekord proposal, and verifies the log's
answer offline: the signed entry timestamp (SET) with the log's public key,
and the RFC 6962 inclusion proof of the entry in the signed tree.

  proposal BLOB SIG_DER SIGNER_PUB_PEM   print the POST /api/v1/log/entries body
  verify ENTRY_JSON LOG_PUB_PEM BLOB     exit 0 only if the entry is for BLOB and verifies
"""

import base64
import hashlib
import json
import subprocess
import sys
import tempfile


def b64(b):
    return base64.b64encode(b).decode()


def proposal(blob, sig, pub):
    digest = hashlib.sha256(open(blob, "rb").read()).hexdigest()
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "signature": {"content": b64(open(sig, "rb").read()), "publicKey": {"content": b64(open(pub, "rb").read())}},
            "data": {"hash": {"algorithm": "sha256", "value": digest}},
        },
    }
    print(json.dumps(body))


def verify_sig(pub, payload, sig):
    with tempfile.NamedTemporaryFile() as p, tempfile.NamedTemporaryFile() as s:
        p.write(payload)
        p.flush()
        s.write(sig)
        s.flush()
        r = subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", pub, "-signature", s.name, p.name], capture_output=True
        )
        return r.returncode == 0


def root_from_proof(index, size, leaf, hashes):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise ValueError("index beyond tree size")
    fn, sn, r = index, size - 1, leaf
    for p in hashes:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


def verify(entry_path, log_pub, blob):
    resp = json.load(open(entry_path))
    (uuid, e), = resp.items()
    body = base64.b64decode(e["body"])
    kind = json.loads(body)
    want = hashlib.sha256(open(blob, "rb").read()).hexdigest()
    if kind["spec"]["data"]["hash"]["value"] != want:
        sys.exit("entry is not for this blob")
    v = e["verification"]
    payload = json.dumps(
        {"body": e["body"], "integratedTime": e["integratedTime"], "logID": e["logID"], "logIndex": e["logIndex"]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    if not verify_sig(log_pub, payload, base64.b64decode(v["signedEntryTimestamp"])):
        sys.exit("signed entry timestamp does not verify with the log key")
    proof = v["inclusionProof"]
    leaf = hashlib.sha256(b"\x00" + body).digest()
    if not uuid.endswith(leaf.hex()):
        sys.exit("entry UUID is not the leaf hash")
    root = root_from_proof(proof["logIndex"], proof["treeSize"], leaf, [bytes.fromhex(h) for h in proof["hashes"]])
    if root.hex() != proof["rootHash"]:
        sys.exit("inclusion proof does not lead to the root hash")
    print(f"verified entry {proof['logIndex']} in a tree of {proof['treeSize']}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"proposal": proposal, "verify": verify}[cmd](*args)
