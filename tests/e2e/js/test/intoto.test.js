// End-to-end: sigstore-js's legacy `intoto` mode. The same DSSE envelope signing as
// dsse.test.js, but RekorWitness uploads it as an `intoto` 0.0.2 entry (payload and
// signature double-base64, spec T-04); @sigstore/verify then checks the bundle's SET,
// inclusion proof, checkpoint and the entry body against the envelope.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { bundleToJSON } from '@sigstore/bundle';
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
const b64 = (s) => Buffer.from(s).toString('base64');

function statement(name) {
  return Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name, digest: { sha256: sha256(Buffer.from(name)).toString('hex') } }],
      predicateType: 'https://slsa.dev/provenance/v1',
      predicate: { buildDefinition: { buildType: 'https://example.test/e2e-intoto' } },
    })
  );
}

async function postJSON(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, `POST ${url}`);
  return res.json();
}

describe('sigstore-js legacy intoto 0.0.2 against tlog', () => {
  let server;
  let signer;
  let material;
  let logKeyDer;
  let attested; // { payload, bundle, json }

  const witness = (fetchOnConflict = true) =>
    new RekorWitness({ rekorBaseURL: server.baseUrl, entryType: 'intoto', fetchOnConflict, timeout: 15000 });
  const builder = () => new DSSEBundleBuilder({ signer, witnesses: [witness()] });

  before(async () => {
    server = await startServer({ hostname: 'localhost' });
    logKeyDer = await fetchLogKeyDer(server.baseUrl);
    signer = new KeySigner();
    material = trustMaterial(trustedRootJSON({ baseUrl: server.baseUrl, keyDer: logKeyDer }), signer);
  });

  after(async () => {
    if (server) await server.stop();
  });

  test('an intoto 0.0.2 bundle from RekorWitness verifies: SET, inclusion proof and checkpoint', async () => {
    for (let i = 0; i < 2; i++) await builder().create({ data: statement(`filler-${i}`), type: IN_TOTO });
    const payload = statement('legacy.tar.gz');
    const bundle = await builder().create({ data: payload, type: IN_TOTO });
    const json = bundleToJSON(bundle);
    attested = { payload, bundle, json };

    const entry = tlogEntry(json);
    assert.deepEqual(entry.kindVersion, { kind: 'intoto', version: '0.0.2' });
    assert.equal(entry.logIndex, '2');
    assert.ok(entry.inclusionProof.hashes.length > 0);

    // The canonicalized body (spec T-04): no payload; signature and key as submitted
    // (double base64); payloadHash recomputed by the server.
    const body = JSON.parse(Buffer.from(entry.canonicalizedBody, 'base64').toString('utf8'));
    const { envelope, payloadHash, hash } = body.spec.content;
    assert.equal(envelope.payload, undefined);
    assert.equal(envelope.payloadType, IN_TOTO);
    assert.deepEqual(payloadHash, { algorithm: 'sha256', value: sha256(payload).toString('hex') });
    assert.equal(hash.algorithm, 'sha256');
    assert.equal(envelope.signatures.length, 1);
    assert.equal(envelope.signatures[0].sig, b64(json.dsseEnvelope.signatures[0].sig));
    assert.equal(Buffer.from(envelope.signatures[0].publicKey, 'base64').toString('utf8'), signer.pem);

    const result = verify(json, undefined, material);
    assert.ok(result.key.equals(signer.publicKey));
    verify(proofOnly(json), undefined, material, { timestampThreshold: 0 });
    verify(setOnly(json), undefined, material);
  });

  test('the intoto entry is fetched by index, UUID and search with the same body', async () => {
    const { json } = uploaded(attested);
    const entry = tlogEntry(json);
    const byIndex = await getJSON(`${server.baseUrl}/api/v1/log/entries?logIndex=${entry.logIndex}`);
    const [uuid] = Object.keys(byIndex);
    assert.equal(Object.keys(byIndex).length, 1);
    assert.equal(byIndex[uuid].body, entry.canonicalizedBody);
    const byUuid = await getJSON(`${server.baseUrl}/api/v1/log/entries/${uuid}`);
    assert.equal(byUuid[uuid].body, entry.canonicalizedBody);
    const found = await postJSON(`${server.baseUrl}/api/v1/log/entries/retrieve`, { entryUUIDs: [uuid] });
    assert.equal(found.length, 1);
    assert.equal(found[0][uuid].body, entry.canonicalizedBody);
    const digest = `sha256:${sha256(attested.payload).toString('hex')}`;
    const indexed = await postJSON(`${server.baseUrl}/api/v1/index/retrieve`, { hash: digest });
    assert.deepEqual(indexed, [uuid]);
  });

  test('a tampered intoto bundle is rejected', () => {
    const { json } = uploaded(attested);

    const body = structuredClone(json);
    const text = Buffer.from(tlogEntry(json).canonicalizedBody, 'base64').toString('utf8');
    tlogEntry(body).canonicalizedBody = Buffer.from(`{ ${text.slice(1)}`).toString('base64');
    assertRejected(() => verify(body, undefined, material), 'TLOG_INCLUSION_PROMISE_ERROR', 'intoto body, SET');
    assertRejected(
      () => verify(proofOnly(body), undefined, material, { timestampThreshold: 0 }),
      'TLOG_INCLUSION_PROOF_ERROR',
      'intoto body, inclusion proof'
    );

    const payload = structuredClone(json);
    payload.dsseEnvelope.payload = statement('evil.tar.gz').toString('base64');
    assertRejected(() => verify(payload, undefined, material), 'TLOG_BODY_ERROR', 'intoto payload');

    const other = trustMaterial(
      trustedRootJSON({ baseUrl: server.baseUrl, keyDer: new KeySigner().der, logIdDer: logKeyDer }),
      signer
    );
    assert.throws(() => verify(json, undefined, other), VerificationError);
  });

  test('re-submitting an intoto entry: 409, and fetchOnConflict returns the existing entry', async () => {
    const { bundle, json } = uploaded(attested);
    await assert.rejects(witness(false).testify(bundle.content, signer.pem), (e) => {
      assert.equal(e.code, 'TLOG_CREATE_ENTRY_ERROR');
      assert.equal(e.cause?.statusCode, 409);
      return true;
    });
    const { tlogEntries } = await witness(true).testify(bundle.content, signer.pem);
    const again = bundleToJSON({ ...bundle, verificationMaterial: { ...bundle.verificationMaterial, tlogEntries } });
    assert.equal(tlogEntry(again).logIndex, tlogEntry(json).logIndex);
    verify(again, undefined, material);
  });
});
