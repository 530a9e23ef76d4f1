"""Every read endpoint's responses, errors included, against rekor's OpenAPI
description (`../shared/specs/rekor-openapi.yaml`, beside the repo; spec G-07, E-, L-01).

The Swagger 2.0 definitions are JSON Schema draft 4; the response schema of each
operation and status (or its `default`) is checked with jsonschema, `$ref`s resolving
into `#/definitions/...`. Patches, each where rekor itself answers outside its
description: `LogEntry.body` is a base64 string, not an object (the known bug), and
`LogInfo.inactiveShards` is `null` when there are none (Go's `[]T` without
omitempty; spec E-01). Error bodies must also carry both `code` and `message` (the
description leaves them optional; clients print them); a response described without a
schema (NotFound) must be empty, as rekor's is (spec G-07). `format: byte` is checked
as strict base64, `format: signedCheckpoint` as a signed note.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import os
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore._internal.rekor.client import RekorClient
from sigstore.hashes import Hashed
from sigstore_models.common.v1 import HashAlgorithm

from conftest import REPO_ROOT
from helpers import Signer, only_entry

SPEC_NAME = Path("shared") / "specs" / "rekor-openapi.yaml"


def spec_path() -> Path:
    if env := os.environ.get("REKOR_OPENAPI_SPEC"):
        return Path(env)
    # CI clones the repo with shared/ beside it; a git worktree may sit deeper.
    for parent in REPO_ROOT.parents:
        if (parent / SPEC_NAME).is_file():
            return parent / SPEC_NAME
    raise FileNotFoundError(f"{SPEC_NAME} not found beside {REPO_ROOT} or above (set REKOR_OPENAPI_SPEC)")


@pytest.fixture(scope="module")
def spec() -> dict:
    doc = yaml.safe_load(spec_path().read_text())
    assert doc["swagger"] == "2.0"
    body = doc["definitions"]["LogEntry"]["additionalProperties"]["properties"]["body"]
    assert body == {"type": "object", "additionalProperties": True}, "the known LogEntry.body bug moved"
    patched = copy.deepcopy(doc)
    patched["definitions"]["LogEntry"]["additionalProperties"]["properties"]["body"] = {
        "type": "string",
        "format": "byte",
    }
    shards = patched["definitions"]["LogInfo"]["properties"]["inactiveShards"]
    assert shards["type"] == "array"
    shards["type"] = ["array", "null"]
    return patched


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("byte", raises=(binascii.Error, ValueError))
def _is_base64(value) -> bool:
    if not isinstance(value, str):
        return True
    base64.b64decode(value, validate=True)
    return True


@FORMATS.checks("signedCheckpoint")
def _is_signed_note(value) -> bool:
    if not isinstance(value, str):
        return True
    note, sep, sigs = value.partition("\n\n")
    lines = note.split("\n")
    return bool(sep) and len(lines) >= 3 and sigs.startswith("\u2014 ") and value.endswith("\n")


def response_schema(spec: dict, path: str, method: str, status: int) -> dict | None:
    """The described schema of one response; None if it is described without one."""
    responses = spec["paths"][path][method]["responses"]
    response = responses.get(status, responses["default"])
    if "$ref" in response:
        response = spec["responses"][response["$ref"].rsplit("/", 1)[1]]
    if "schema" not in response:
        return None
    return {**response["schema"], "definitions": spec["definitions"]}


def check(spec: dict, path: str, method: str, res: requests.Response, status: int):
    assert res.status_code == status, f"{method.upper()} {path}: {res.status_code} {res.text}"
    schema = response_schema(spec, path, method, status)
    if schema is None:
        assert res.content == b"" and "content-type" not in res.headers, (res.headers, res.text)
        return None
    if path == "/api/v1/log/publicKey" and status == 200:
        assert res.headers["content-type"].startswith("application/x-pem-file")
        body = res.text
    else:
        assert res.headers["content-type"].startswith("application/json"), res.headers
        body = res.json()
    jsonschema.Draft4Validator(schema, format_checker=FORMATS).validate(body)
    if status >= 400:
        assert set(body) == {"code", "message"}, body
        assert isinstance(body["code"], int) and body["message"], body
    return body


@pytest.fixture(scope="module")
def entries(server) -> list[tuple[str, dict]]:
    """Three hashedrekord entries uploaded by sigstore-python's client: proofs with hashes."""
    client = RekorClient(server.base_url)
    signer = Signer()
    uploaded = []
    for i in range(3):
        hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(f"openapi {i}".encode()).digest())
        sig = signer.key.sign(hashed.digest, ec.ECDSA(hashed._as_prehashed()))
        request = client._build_hashed_rekord_request(hashed, sig, signer.cert)
        res = requests.post(f"{server.base_url}/api/v1/log/entries", json=request, timeout=30)
        uploaded.append((request, res))
    return uploaded


def test_create_responses(spec, entries, server):
    for _, res in entries:
        uuid, _ = only_entry(check(spec, "/api/v1/log/entries", "post", res, 201))
        assert res.headers["etag"] == uuid
    request, _ = entries[0]
    dup = requests.post(f"{server.base_url}/api/v1/log/entries", json=request, timeout=30)
    check(spec, "/api/v1/log/entries", "post", dup, 409)
    bad = requests.post(f"{server.base_url}/api/v1/log/entries", json={"kind": "hashedrekord"}, timeout=30)
    assert bad.status_code in (400, 422)
    check(spec, "/api/v1/log/entries", "post", bad, bad.status_code)


def test_log_info(spec, server, entries):
    info = check(spec, "/api/v1/log", "get", requests.get(f"{server.base_url}/api/v1/log"), 200)
    assert info["treeSize"] == len(entries)


def test_public_key(spec, server):
    url = f"{server.base_url}/api/v1/log/publicKey"
    assert "BEGIN PUBLIC KEY" in check(spec, "/api/v1/log/publicKey", "get", requests.get(url), 200)
    check(spec, "/api/v1/log/publicKey", "get", requests.get(url, params={"treeID": "1"}), 400)
    check(spec, "/api/v1/log/publicKey", "get", requests.get(url, params={"treeID": "x"}), 422)


def test_consistency_proof(spec, server, entries):
    url = f"{server.base_url}/api/v1/log/proof"
    path = "/api/v1/log/proof"
    proof = check(spec, path, "get", requests.get(url, params={"firstSize": 1, "lastSize": 3}), 200)
    assert proof["hashes"]
    assert check(spec, path, "get", requests.get(url, params={"firstSize": 3, "lastSize": 3}), 200)["hashes"] == []
    check(spec, path, "get", requests.get(url, params={"lastSize": 4}), 400)
    check(spec, path, "get", requests.get(url, params={"firstSize": 0, "lastSize": 3}), 422)
    check(spec, path, "get", requests.get(url), 422)


def test_entry_by_index(spec, server, entries):
    url = f"{server.base_url}/api/v1/log/entries"
    for i in range(len(entries)):
        entry = check(spec, "/api/v1/log/entries", "get", requests.get(url, params={"logIndex": i}), 200)
        assert only_entry(entry)[1]["logIndex"] == i
    check(spec, "/api/v1/log/entries", "get", requests.get(url, params={"logIndex": 99}), 404)
    check(spec, "/api/v1/log/entries", "get", requests.get(url), 422)
    check(spec, "/api/v1/log/entries", "get", requests.get(url, params={"logIndex": "-1"}), 422)


def test_entry_by_uuid(spec, server, entries):
    path = "/api/v1/log/entries/{entryUUID}"
    for _, created in entries:
        uuid, _ = only_entry(created.json())
        for key in (uuid, uuid[16:]):
            got = check(spec, path, "get", requests.get(f"{server.base_url}/api/v1/log/entries/{key}"), 200)
            assert only_entry(got)[0] == uuid
    check(spec, path, "get", requests.get(f"{server.base_url}/api/v1/log/entries/{'ab' * 32}"), 404)
    bad = requests.get(f"{server.base_url}/api/v1/log/entries/not-hex")
    assert bad.status_code in (400, 404, 422)
    check(spec, path, "get", bad, bad.status_code)


def test_entries_retrieve(spec, server, entries):
    path = "/api/v1/log/entries/retrieve"
    url = f"{server.base_url}{path}"
    uuids = [only_entry(res.json())[0] for _, res in entries]
    for query in (
        {"entryUUIDs": uuids},
        {"logIndexes": [0, 1, 2]},
        {"entries": [request for request, _ in entries]},
    ):
        got = check(spec, path, "post", requests.post(url, json=query), 200)
        assert sorted(only_entry(e)[0] for e in got) == sorted(uuids), query
    # A miss is an empty array, not an error.
    assert check(spec, path, "post", requests.post(url, json={"logIndexes": [42]}), 200) == []
    check(spec, path, "post", requests.post(url, json={"logIndexes": list(range(11))}), 422)
    check(spec, path, "post", requests.post(url, data=b"{not json", headers={"content-type": "application/json"}), 400)


def test_index_retrieve(spec, server, entries):
    path = "/api/v1/index/retrieve"
    url = f"{server.base_url}{path}"
    request, created = entries[0]
    uuid, _ = only_entry(created.json())
    digest = request["spec"]["data"]["hash"]["value"]
    assert check(spec, path, "post", requests.post(url, json={"hash": f"sha256:{digest}"}), 200) == [uuid]
    by_email = check(spec, path, "post", requests.post(url, json={"email": "e2e-python@example.com"}), 200)
    assert uuid in by_email
    check(spec, path, "post", requests.post(url, json={"hash": "sha256:xyz"}), 422)
    bad_format = {"publicKey": {"format": "gpg", "content": "AAAA"}}
    check(spec, path, "post", requests.post(url, json=bad_format), 422)
    unparsable = {"publicKey": {"format": "x509", "content": base64.b64encode(b"not a key").decode()}}
    check(spec, path, "post", requests.post(url, json=unparsable), 400)
