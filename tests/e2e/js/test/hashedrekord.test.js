// End-to-end: sigstore-js signs with a plain ECDSA P-256 key, uploads a hashedrekord
// entry to a real tlog server through its own RekorWitness, and verifies the bundle
// with @sigstore/verify against a trusted root built from the log's public key
// (shared/specs/rekor-v1.md V-06). Negative cases show that each of the log's
// guarantees (SET, inclusion proof, checkpoint) is actually checked.
// DSSE envelopes are covered in dsse.test.js.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { bundleToJSON } from '@sigstore/bundle';
import { MessageSignatureBundleBuilder, RekorWitness } from '@sigstore/sign';
import { VerificationError } from '@sigstore/verify';

import { startServer } from '../lib/server.js';
import {
  KeySigner,
  VALID_FROM,
  assertRejected,
  flipByte,
  freshP256Der,
  getJSON,
  proofOnly,
  setOnly,
  sha256,
  tlogEntry,
  trustMaterial,
  trustedRootJSON,
  uploaded,
  verify,
} from '../lib/sigstore.js';

describe('sigstore-js hashedrekord against tlog', () => {
  let server;
  let logKeyDer;
  let signer;
  let builder;
  let goodRoot;
  let material;
  const signed = []; // { artifact, bundle, json }, in log order
  let hello; // the entry most checks look at

  async function signAndUpload(text) {
    const artifact = Buffer.from(text);
    const bundle = await builder.create({ data: artifact });
    const json = bundleToJSON(bundle);
    const item = { artifact, bundle, json };
    signed.push(item);
    return item;
  }

  before(async () => {
    server = await startServer({ hostname: 'localhost' });

    const res = await fetch(`${server.baseUrl}/api/v1/log/publicKey`);
    assert.equal(res.status, 200, 'GET /api/v1/log/publicKey');
    const pem = await res.text();
    assert.match(pem, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n?$/);
    const logKey = crypto.createPublicKey(pem);
    assert.equal(logKey.asymmetricKeyType, 'ec');
    assert.equal(logKey.asymmetricKeyDetails.namedCurve, 'prime256v1');
    logKeyDer = logKey.export({ type: 'spki', format: 'der' });

    signer = new KeySigner();
    builder = new MessageSignatureBundleBuilder({
      signer,
      witnesses: [new RekorWitness({ rekorBaseURL: server.baseUrl, fetchOnConflict: true, timeout: 15000 })],
    });
    goodRoot = trustedRootJSON({ baseUrl: server.baseUrl, keyDer: logKeyDer });
    material = trustMaterial(goodRoot, signer);
  });

  after(async () => {
    if (server) await server.stop();
  });

  test('GET /api/v1/log/publicKey serves the log key as PEM (spec V-04)', async () => {
    const res = await fetch(`${server.baseUrl}/api/v1/log/publicKey`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/x-pem-file/);
    const der = crypto.createPublicKey(await res.text()).export({ type: 'spki', format: 'der' });
    assert.deepEqual(der, logKeyDer);
  });

  test('the first entry of an empty log verifies (tree size 1, empty audit path)', async () => {
    const { artifact, bundle, json } = await signAndUpload('first entry in the log');
    // (The protobuf JSON form omits zero values, so look at the bundle object.)
    const entry = bundle.verificationMaterial.tlogEntries[0];
    assert.equal(entry.logIndex, '0');
    assert.equal(entry.inclusionProof.treeSize, '1');
    assert.deepEqual(entry.inclusionProof.hashes, []);
    const result = verify(json, artifact, material);
    assert.ok(result.key.equals(signer.publicKey), 'verifier returns the signing key');
  });

  test('a bundle from RekorWitness verifies: SET, inclusion proof and checkpoint', async () => {
    for (let i = 0; i < 4; i++) await signAndUpload(`filler entry ${i}`);
    hello = await signAndUpload('hello, transparency log');
    const { artifact, json } = uploaded(hello);
    const entry = tlogEntry(json);

    // Shape of what the log returned, as sigstore-js put it in the bundle.
    assert.deepEqual(entry.kindVersion, { kind: 'hashedrekord', version: '0.0.1' });
    assert.equal(entry.logId.keyId, sha256(logKeyDer).toString('base64'), 'logID = sha256(DER SPKI of the log key)');
    assert.equal(entry.logIndex, '5');
    assert.ok(entry.inclusionPromise?.signedEntryTimestamp, 'SET present');
    const integratedTime = Number(entry.integratedTime);
    assert.ok(integratedTime * 1000 >= VALID_FROM.getTime(), 'integratedTime is not in the past');
    assert.ok(integratedTime * 1000 <= Date.now() + 5000, 'integratedTime is not in the future');

    const proof = entry.inclusionProof;
    assert.equal(proof.logIndex, '5');
    assert.ok(Number(proof.treeSize) >= 6);
    assert.ok(proof.hashes.length > 0, 'a non-trivial audit path');

    // The body is the hashedrekord of what we signed (spec C-07; V-01 (a)).
    const body = JSON.parse(Buffer.from(entry.canonicalizedBody, 'base64').toString('utf8'));
    assert.equal(body.spec.data.hash.algorithm, 'sha256');
    assert.equal(body.spec.data.hash.value, sha256(artifact).toString('hex'));
    assert.equal(
      Buffer.from(body.spec.signature.publicKey.content, 'base64').toString('utf8'),
      signer.pem,
      'the entry carries the signer PEM'
    );

    // Checkpoint (C-11/C-12): origin "<hostname> - <treeID>", signer name = hostname,
    // and it describes the same tree head as the proof.
    const [note, sigBlock] = proof.checkpoint.envelope.split('\n\n');
    const [origin, size, rootB64, ...rest] = note.split('\n');
    assert.match(origin, /^localhost - [0-9]+$/);
    assert.equal(size, proof.treeSize);
    assert.equal(rootB64, proof.rootHash, 'checkpoint root == inclusionProof.rootHash');
    assert.deepEqual(rest, []);
    assert.match(sigBlock, /^\u2014 localhost [A-Za-z0-9+/=]+\n$/);
    const keyHint = Buffer.from(sigBlock.split(' ')[2].trim(), 'base64').subarray(0, 4);
    assert.deepEqual(keyHint, sha256(logKeyDer).subarray(0, 4), 'checkpoint key hint = logID[0:4]');

    // The full verification, then each of the log's two proofs on its own.
    const result = verify(json, artifact, material);
    assert.ok(result.key.equals(signer.publicKey));
    verify(proofOnly(json), artifact, material, { timestampThreshold: 0 });
    verify(setOnly(json), artifact, material);

    // Every earlier bundle still verifies.
    for (const item of signed) verify(item.json, item.artifact, material);
  });

  test('a trusted root with another log key rejects the bundle', () => {
    const { artifact, json } = uploaded(hello);
    const otherKey = freshP256Der();

    // Another log altogether: nothing in the root matches the entry's log ID.
    const otherLog = trustMaterial(trustedRootJSON({ baseUrl: server.baseUrl, keyDer: otherKey }), signer);
    assertRejected(() => verify(json, artifact, otherLog), 'TLOG_INCLUSION_PROMISE_ERROR', 'other log, SET');
    assertRejected(
      () => verify(proofOnly(json), artifact, otherLog, { timestampThreshold: 0 }),
      'TLOG_INCLUSION_PROOF_ERROR',
      'other log, checkpoint'
    );

    // Same log ID, wrong key: the signatures themselves must fail.
    const wrongKey = trustMaterial(
      trustedRootJSON({ baseUrl: server.baseUrl, keyDer: otherKey, logIdDer: logKeyDer }),
      signer
    );
    assertRejected(() => verify(json, artifact, wrongKey), 'TLOG_INCLUSION_PROMISE_ERROR', 'wrong key, SET');
    assertRejected(
      () => verify(proofOnly(json), artifact, wrongKey, { timestampThreshold: 0 }),
      'TLOG_INCLUSION_PROOF_ERROR',
      'wrong key, checkpoint'
    );

    // The checkpoint is signed as "localhost": a root for another host name rejects it.
    const otherHost = trustMaterial(
      trustedRootJSON({ baseUrl: `http://rekor.example.test:${server.port}`, keyDer: logKeyDer }),
      signer
    );
    assertRejected(
      () => verify(proofOnly(json), artifact, otherHost, { timestampThreshold: 0 }),
      'TLOG_INCLUSION_PROOF_ERROR',
      'checkpoint name not in baseUrl'
    );
  });

  test('a tampered tlog entry body is rejected', () => {
    const { artifact, json } = uploaded(hello);

    // Same JSON meaning, different bytes: only the log's signatures can notice.
    const tampered = structuredClone(json);
    const bodyText = Buffer.from(tlogEntry(json).canonicalizedBody, 'base64').toString('utf8');
    assert.equal(bodyText[0], '{');
    tlogEntry(tampered).canonicalizedBody = Buffer.from(`{ ${bodyText.slice(1)}`).toString('base64');
    assertRejected(() => verify(tampered, artifact, material), 'TLOG_INCLUSION_PROMISE_ERROR', 'body, SET');
    assertRejected(
      () => verify(proofOnly(tampered), artifact, material, { timestampThreshold: 0 }),
      'TLOG_INCLUSION_PROOF_ERROR',
      'body, inclusion proof'
    );

    // A body for another artifact digest.
    const otherDigest = structuredClone(json);
    const body = JSON.parse(bodyText);
    body.spec.data.hash.value = sha256(Buffer.from('something else')).toString('hex');
    tlogEntry(otherDigest).canonicalizedBody = Buffer.from(JSON.stringify(body)).toString('base64');
    assertRejected(() => verify(otherDigest, artifact, material), 'TLOG_INCLUSION_PROMISE_ERROR', 'digest, SET');

    // The SET also covers integratedTime and logIndex.
    const time = structuredClone(json);
    tlogEntry(time).integratedTime = String(Number(tlogEntry(json).integratedTime) + 1);
    assertRejected(() => verify(time, artifact, material), 'TLOG_INCLUSION_PROMISE_ERROR', 'integratedTime');
    const index = structuredClone(json);
    tlogEntry(index).logIndex = String(Number(tlogEntry(json).logIndex) + 1);
    assertRejected(() => verify(index, artifact, material), 'TLOG_INCLUSION_PROMISE_ERROR', 'logIndex');

    // And the entry binds the artifact: the bundle does not verify another one.
    assert.throws(() => verify(json, Buffer.from('another artifact'), material), VerificationError);
  });

  test('a tampered inclusion proof or checkpoint is rejected', async () => {
    const { artifact, json } = uploaded(hello);
    assert.ok(tlogEntry(json).inclusionProof.hashes.length > 0);

    const path = structuredClone(json);
    tlogEntry(path).inclusionProof.hashes[0] = flipByte(tlogEntry(json).inclusionProof.hashes[0]);
    assertRejected(() => verify(path, artifact, material), 'TLOG_INCLUSION_PROOF_ERROR', 'audit path');

    const dropped = structuredClone(json);
    tlogEntry(dropped).inclusionProof.hashes.pop();
    assertRejected(() => verify(dropped, artifact, material), 'TLOG_INCLUSION_PROOF_ERROR', 'short audit path');

    const proofIndex = structuredClone(json);
    const p = tlogEntry(proofIndex).inclusionProof;
    p.logIndex = String(Number(p.logIndex) - 1);
    assertRejected(() => verify(proofIndex, artifact, material), 'TLOG_INCLUSION_PROOF_ERROR', 'proof index');

    // A checkpoint whose signature was altered.
    const sig = structuredClone(json);
    const cp = tlogEntry(json).inclusionProof.checkpoint.envelope;
    const m = cp.match(/^([\s\S]*\n\n\u2014 localhost )([A-Za-z0-9+/=]+)\n$/);
    assert.ok(m, `checkpoint format: ${JSON.stringify(cp)}`);
    tlogEntry(sig).inclusionProof.checkpoint.envelope = `${m[1]}${flipByte(m[2], 10)}\n`;
    assertRejected(() => verify(sig, artifact, material), 'TLOG_INCLUSION_PROOF_ERROR', 'checkpoint signature');

    // A checkpoint with a forged root hash (signature no longer matches).
    const root = structuredClone(json);
    const [head, ...tail] = cp.split('\n\n');
    const lines = head.split('\n');
    lines[2] = flipByte(lines[2]);
    tlogEntry(root).inclusionProof.checkpoint.envelope = [lines.join('\n'), ...tail].join('\n\n');
    assertRejected(() => verify(root, artifact, material), 'TLOG_INCLUSION_PROOF_ERROR', 'checkpoint root');

    // A genuine, validly signed checkpoint of a different tree head: the proof
    // must be checked against the signed root, not merely accompany a valid signature.
    await signAndUpload('grow the tree');
    const info = await getJSON(`${server.baseUrl}/api/v1/log`);
    assert.ok(info.treeSize > Number(tlogEntry(json).inclusionProof.treeSize));
    const swapped = structuredClone(json);
    tlogEntry(swapped).inclusionProof.checkpoint.envelope = info.signedTreeHead;
    assertRejected(() => verify(swapped, artifact, material), 'TLOG_INCLUSION_PROOF_ERROR', 'other tree head');
  });

  test('re-submitting an entry gives 409 with Location; fetchOnConflict still verifies', async () => {
    const { artifact, bundle, json } = uploaded(hello);
    const entry = tlogEntry(json);
    const body = Buffer.from(entry.canonicalizedBody, 'base64');
    const leafHash = sha256(Buffer.concat([Buffer.from([0]), body])).toString('hex');
    const before = await getJSON(`${server.baseUrl}/api/v1/log`);

    // Raw HTTP (spec V-05): POST the same proposed entry again.
    const res = await fetch(`${server.baseUrl}/api/v1/log/entries`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body,
    });
    assert.equal(res.status, 409);
    const location = res.headers.get('location');
    assert.ok(location, '409 carries a Location header');
    const locPath = new URL(location, server.baseUrl).pathname;
    const m = locPath.match(/^\/api\/v1\/log\/entries\/([0-9a-f]{16})([0-9a-f]{64})$/);
    assert.ok(m, `Location is /api/v1/log/entries/<80 hex>: ${location}`);
    assert.equal(m[2], leafHash, 'the UUID ends with the leaf hash of the body');
    const err = await res.json();
    assert.equal(err.code, 409);

    // The library's own path: without fetchOnConflict the 409 is an error ...
    const strict = new RekorWitness({ rekorBaseURL: server.baseUrl, fetchOnConflict: false, timeout: 15000 });
    await assert.rejects(strict.testify(bundle.content, signer.pem), (e) => {
      assert.equal(e.code, 'TLOG_CREATE_ENTRY_ERROR');
      assert.equal(e.cause?.statusCode, 409);
      return true;
    });

    // ... and with it, the witness fetches the existing entry, which verifies.
    const witness = new RekorWitness({ rekorBaseURL: server.baseUrl, fetchOnConflict: true, timeout: 15000 });
    const { tlogEntries } = await witness.testify(bundle.content, signer.pem);
    assert.equal(tlogEntries.length, 1);
    const again = bundleToJSON({
      ...bundle,
      verificationMaterial: { ...bundle.verificationMaterial, tlogEntries },
    });
    const fetched = tlogEntry(again);
    assert.equal(fetched.logIndex, entry.logIndex, 'the existing entry, not a new one');
    assert.equal(fetched.canonicalizedBody, entry.canonicalizedBody);
    assert.equal(fetched.integratedTime, entry.integratedTime);
    verify(again, artifact, material);
    verify(proofOnly(again), artifact, material, { timestampThreshold: 0 });

    const afterInfo = await getJSON(`${server.baseUrl}/api/v1/log`);
    assert.equal(afterInfo.treeSize, before.treeSize, 'a duplicate does not grow the log');
  });
});
