// End-to-end: sigstore-js signs an in-toto statement as a DSSE envelope with a plain
// ECDSA P-256 key, uploads it as a `dsse` 0.0.1 entry through its own RekorWitness,
// and verifies the bundle with @sigstore/verify against the log's trusted root.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { bundleToJSON, envelopeToJSON } from '@sigstore/bundle';
import { DSSEBundleBuilder, RekorWitness } from '@sigstore/sign';
import { VerificationError } from '@sigstore/verify';

import { startServer } from '../lib/server.js';
import {
  KeySigner,
  assertRejected,
  fetchLogKeyDer,
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

const IN_TOTO = 'application/vnd.in-toto+json';

function statement(name) {
  return Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name, digest: { sha256: sha256(Buffer.from(name)).toString('hex') } }],
      predicateType: 'https://slsa.dev/provenance/v1',
      predicate: { buildDefinition: { buildType: 'https://example.test/e2e' } },
    })
  );
}

describe('sigstore-js dsse against tlog', () => {
  let server;
  let signer;
  let material;
  let logKeyDer;
  let attested; // { payload, bundle, json }

  const builder = (fetchOnConflict = true) =>
    new DSSEBundleBuilder({
      signer,
      witnesses: [
        new RekorWitness({ rekorBaseURL: server.baseUrl, entryType: 'dsse', fetchOnConflict, timeout: 15000 }),
      ],
    });

  before(async () => {
    server = await startServer({ hostname: 'localhost' });
    logKeyDer = await fetchLogKeyDer(server.baseUrl);
    signer = new KeySigner();
    material = trustMaterial(trustedRootJSON({ baseUrl: server.baseUrl, keyDer: logKeyDer }), signer);
  });

  after(async () => {
    if (server) await server.stop();
  });

  test('a DSSE bundle from RekorWitness verifies: SET, inclusion proof and checkpoint', async () => {
    // A few entries first, so the audit path is not trivial.
    for (let i = 0; i < 3; i++) await builder().create({ data: statement(`filler-${i}`), type: IN_TOTO });
    const payload = statement('artifact.tar.gz');
    const bundle = await builder().create({ data: payload, type: IN_TOTO });
    const json = bundleToJSON(bundle);
    attested = { payload, bundle, json };

    const entry = tlogEntry(json);
    assert.deepEqual(entry.kindVersion, { kind: 'dsse', version: '0.0.1' });
    assert.equal(entry.logIndex, '3');
    assert.ok(entry.inclusionProof.hashes.length > 0);

    // The canonicalized body (spec T-03): hashes of the envelope as submitted and of
    // the payload, and the signature with its verifier; the envelope itself is not stored.
    const body = JSON.parse(Buffer.from(entry.canonicalizedBody, 'base64').toString('utf8'));
    assert.deepEqual(Object.keys(body.spec).sort(), ['envelopeHash', 'payloadHash', 'signatures']);
    assert.deepEqual(body.spec.payloadHash, { algorithm: 'sha256', value: sha256(payload).toString('hex') });
    const submittedEnvelope = JSON.stringify(envelopeToJSON(bundle.content.dsseEnvelope));
    assert.deepEqual(body.spec.envelopeHash, {
      algorithm: 'sha256',
      value: sha256(Buffer.from(submittedEnvelope)).toString('hex'),
    });
    assert.equal(body.spec.signatures.length, 1);
    assert.equal(body.spec.signatures[0].signature, json.dsseEnvelope.signatures[0].sig);
    assert.equal(Buffer.from(body.spec.signatures[0].verifier, 'base64').toString('utf8'), signer.pem);

    const result = verify(json, undefined, material);
    assert.ok(result.key.equals(signer.publicKey));
    verify(proofOnly(json), undefined, material, { timestampThreshold: 0 });
    verify(setOnly(json), undefined, material);
  });

  test('a tampered DSSE bundle is rejected', () => {
    const { json } = uploaded(attested);

    // The entry body, re-serialized: only the log's signatures can notice.
    const body = structuredClone(json);
    const text = Buffer.from(tlogEntry(json).canonicalizedBody, 'base64').toString('utf8');
    tlogEntry(body).canonicalizedBody = Buffer.from(`{ ${text.slice(1)}`).toString('base64');
    assertRejected(() => verify(body, undefined, material), 'TLOG_INCLUSION_PROMISE_ERROR', 'dsse body, SET');
    assertRejected(
      () => verify(proofOnly(body), undefined, material, { timestampThreshold: 0 }),
      'TLOG_INCLUSION_PROOF_ERROR',
      'dsse body, inclusion proof'
    );

    // Another payload in the envelope: the logged payload hash no longer matches.
    const payload = structuredClone(json);
    payload.dsseEnvelope.payload = statement('evil.tar.gz').toString('base64');
    assertRejected(() => verify(payload, undefined, material), 'TLOG_BODY_ERROR', 'dsse payload');

    // Another log key.
    const other = trustMaterial(
      trustedRootJSON({ baseUrl: server.baseUrl, keyDer: new KeySigner().der, logIdDer: logKeyDer }),
      signer
    );
    assert.throws(() => verify(json, undefined, other), VerificationError);
  });

  test('re-submitting a DSSE entry: 409, and fetchOnConflict returns the existing entry', async () => {
    const { bundle, json } = uploaded(attested);
    const before = await getJSON(`${server.baseUrl}/api/v1/log`);

    const strict = new RekorWitness({ rekorBaseURL: server.baseUrl, entryType: 'dsse', fetchOnConflict: false });
    await assert.rejects(strict.testify(bundle.content, signer.pem), (e) => {
      assert.equal(e.code, 'TLOG_CREATE_ENTRY_ERROR');
      assert.equal(e.cause?.statusCode, 409);
      assert.match(e.cause?.location ?? '', /\/api\/v1\/log\/entries\/[0-9a-f]{80}$/);
      return true;
    });

    const witness = new RekorWitness({ rekorBaseURL: server.baseUrl, entryType: 'dsse', fetchOnConflict: true });
    const { tlogEntries } = await witness.testify(bundle.content, signer.pem);
    const again = bundleToJSON({ ...bundle, verificationMaterial: { ...bundle.verificationMaterial, tlogEntries } });
    assert.equal(tlogEntry(again).logIndex, tlogEntry(json).logIndex);
    assert.equal(tlogEntry(again).canonicalizedBody, tlogEntry(json).canonicalizedBody);
    verify(again, undefined, material);

    const afterInfo = await getJSON(`${server.baseUrl}/api/v1/log`);
    assert.equal(afterInfo.treeSize, before.treeSize, 'a duplicate does not grow the log');
  });
});
