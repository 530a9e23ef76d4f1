// End-to-end: sigstore-js's own Rekor v2 client (@sigstore/sign's RekorWitness with
// majorApiVersion 2, POST /api/v2/log/entries) against tlog's v2 log, and
// @sigstore/verify checking the hashedrekord 0.0.2 entry it returns (inclusion proof
// and C2SP checkpoint signed by the v2 log's Ed25519 key; no SET, integratedTime 0)
// against the trusted root of `tlog trust-config` (issue 14, "done when").
//
// Two limits of sigstore-js 4.1.1 / verify 3.1.1 shape this file (see REKOR-V2.md):
// - its v2 client always sends the signer's key material as `x509Certificate`, so the
//   signer here holds a certificate (self-signed, as sigstore-python's v2 test does);
//   a bare-key signer's request is refused by the log (last test).
//   Its DSSE request (dsseRequestV002) is refused too: rekor-tiles dropped it, and so
//   does tlog (sigstore-python sends DSSE as a hashedrekord over the PAE instead).
// - a v2 entry gives @sigstore/verify no timestamp, and it validates a certificate
//   only at a verified timestamp (a TSA's, which tlog does not run). The relying
//   party here trusts the signer's key itself: the bundle names that key by hint
//   instead of carrying the certificate, and verification runs with
//   timestampThreshold 0. Everything the log vouches for is checked as usual.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { bundleToJSON } from '@sigstore/bundle';
import { DSSEBundleBuilder, MessageSignatureBundleBuilder, RekorWitness } from '@sigstore/sign';

import { startServer } from '../lib/server.js';
import { KeySigner, assertRejected, flipByte, sha256, trustMaterial, verify } from '../lib/sigstore.js';

// A KeySigner whose key material is a self-signed certificate for its key (what a
// Fulcio-backed signer hands sigstore-js), made with the openssl CLI.
class CertSigner extends KeySigner {
  constructor() {
    super();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlog-e2e-cert-'));
    try {
      const keyFile = path.join(dir, 'key.pem');
      fs.writeFileSync(keyFile, this.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      const res = spawnSync(
        'openssl',
        ['req', '-new', '-x509', '-key', keyFile, '-subj', '/CN=tlog-e2e', '-days', '1', '-sha256',
          '-addext', 'subjectAltName=email:e2e@tlog.test'],
        { encoding: 'utf8' }
      );
      if (res.error) throw res.error;
      assert.equal(res.status, 0, `openssl req -x509: ${res.stderr}`);
      this.certPem = res.stdout;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  async sign(data) {
    return {
      signature: crypto.sign('sha256', data, this.privateKey),
      key: { $case: 'x509Certificate', certificate: this.certPem },
    };
  }
}

// The bundle as a relying party that trusts the signer's key holds it (see the top).
function withKeyHint(bundleJSON, signer) {
  const b = structuredClone(bundleJSON);
  const { tlogEntries, timestampVerificationData } = b.verificationMaterial;
  b.verificationMaterial = { publicKey: { hint: signer.hint }, tlogEntries, timestampVerificationData };
  return b;
}

describe('sigstore-js Rekor v2 client against tlog', () => {
  let server;
  let root; // the trusted root of `tlog trust-config`
  let v2Service; // the signing config's v2 log
  let signer;
  let builder;
  let signed; // { artifact, json }

  before(async () => {
    server = await startServer({ hostname: 'localhost', v2: true });
    root = server.trustConfig.trustedRoot;
    v2Service = server.trustConfig.signingConfig.rekorTlogUrls.find((s) => s.majorApiVersion === 2);
    assert.ok(v2Service, 'the signing config lists a v2 log');
    signer = new CertSigner();
    builder = new MessageSignatureBundleBuilder({
      signer,
      witnesses: [
        new RekorWitness({ rekorBaseURL: v2Service.url, majorApiVersion: v2Service.majorApiVersion, timeout: 20000 }),
      ],
    });
  });

  after(async () => {
    if (server) await server.stop();
  });

  test('the trust config lists both logs, the v2 one with its Ed25519 key', () => {
    assert.equal(v2Service.url, server.baseUrl);
    const kinds = root.tlogs.map((t) => t.publicKey.keyDetails).sort();
    assert.deepEqual(kinds, ['PKIX_ECDSA_P256_SHA_256', 'PKIX_ED25519']);
  });

  test('sigstore-js writes a hashedrekord 0.0.2 entry through its v2 client', async () => {
    const artifact = Buffer.from('tlog e2e: a v2 hashedrekord from sigstore-js\n');
    const json = bundleToJSON(await builder.create({ data: artifact }));
    signed = { artifact, json };

    const certDer = new crypto.X509Certificate(signer.certPem).raw.toString('base64');
    assert.equal(
      json.verificationMaterial.x509CertificateChain?.certificates?.[0]?.rawBytes,
      certDer,
      'the bundle carries the signer certificate'
    );
    const [entry] = json.verificationMaterial.tlogEntries;
    assert.deepEqual(entry.kindVersion, { kind: 'hashedrekord', version: '0.0.2' });
    // integratedTime 0, which protobuf JSON leaves out.
    assert.equal(entry.integratedTime ?? '0', '0', 'a v2 log gives no integrated time');
    assert.equal(entry.inclusionPromise, undefined, 'a v2 log gives no SET');
    const ed25519 = root.tlogs.find((t) => t.publicKey.keyDetails === 'PKIX_ED25519');
    assert.equal(entry.logId.keyId, ed25519.logId.keyId, 'the entry names the v2 log');

    const body = JSON.parse(Buffer.from(entry.canonicalizedBody, 'base64').toString('utf8'));
    const spec = body.spec.hashedRekordV002;
    assert.equal(spec.data.digest, sha256(artifact).toString('base64'));
    assert.equal(spec.signature.verifier.x509Certificate.rawBytes, certDer, 'the log records the certificate sent');

    const proof = entry.inclusionProof;
    assert.ok(proof, 'the entry has an inclusion proof');
    assert.equal(BigInt(proof.logIndex ?? 0), BigInt(entry.logIndex ?? 0)); // 0 is left out too
    const [origin] = proof.checkpoint.envelope.split('\n');
    assert.equal(origin, `${server.hostname}:${server.port}`, 'the checkpoint is the v2 log origin');
  });

  test('@sigstore/verify verifies the bundle against the trust config', () => {
    assert.ok(signed, 'no entry: the signing test above failed');
    const result = verify(withKeyHint(signed.json, signer), signed.artifact, trustMaterial(root, signer), {
      timestampThreshold: 0,
    });
    assert.ok(result.key, 'the verifier returns the signing key');
    assert.equal(result.key.export({ type: 'spki', format: 'pem' }), signer.pem);
  });

  test('a tampered artifact does not verify', () => {
    assert.ok(signed, 'no entry: the signing test above failed');
    const other = Buffer.from(signed.artifact);
    other[0] ^= 0x01;
    assertRejected(
      () => verify(withKeyHint(signed.json, signer), other, trustMaterial(root, signer), { timestampThreshold: 0 }),
      'SIGNATURE_ERROR',
      'another artifact'
    );
  });

  test('a second entry verifies with a proof hash; a changed proof or checkpoint does not', async () => {
    assert.ok(signed, 'no entry: the signing test above failed');
    const artifact = Buffer.from('tlog e2e: a second v2 entry\n');
    const json = withKeyHint(bundleToJSON(await builder.create({ data: artifact })), signer);
    const material = trustMaterial(root, signer);
    const { inclusionProof } = json.verificationMaterial.tlogEntries[0];
    assert.ok(inclusionProof.hashes?.length > 0, 'the second entry has a non-empty inclusion proof');
    verify(json, artifact, material, { timestampThreshold: 0 });

    const cases = {
      'a proof hash': (proof) => {
        proof.hashes[0] = flipByte(proof.hashes[0]);
      },
      'the checkpoint signature': (proof) => {
        const sep = proof.checkpoint.envelope.lastIndexOf(' ');
        const sig = proof.checkpoint.envelope.slice(sep + 1).trimEnd();
        proof.checkpoint.envelope = `${proof.checkpoint.envelope.slice(0, sep + 1)}${flipByte(sig, 10)}\n`;
      },
      'the checkpoint tree size': (proof) => {
        const lines = proof.checkpoint.envelope.split('\n');
        lines[1] = String(BigInt(lines[1]) + 1n);
        proof.checkpoint.envelope = lines.join('\n');
      },
    };
    for (const [what, change] of Object.entries(cases)) {
      const bundle = structuredClone(json);
      change(bundle.verificationMaterial.tlogEntries[0].inclusionProof);
      assertRejected(
        () => verify(bundle, artifact, material, { timestampThreshold: 0 }),
        'TLOG_INCLUSION_PROOF_ERROR',
        what
      );
    }
  });

  test('the entry does not verify without the v2 log key, or under another one', () => {
    assert.ok(signed, 'no entry: the signing test above failed');
    const bundle = withKeyHint(signed.json, signer);
    const v1Only = { ...root, tlogs: root.tlogs.filter((t) => t.publicKey.keyDetails !== 'PKIX_ED25519') };
    assertRejected(
      () => verify(bundle, signed.artifact, trustMaterial(v1Only, signer), { timestampThreshold: 0 }),
      'TLOG_INCLUSION_PROOF_ERROR',
      'a trusted root without the v2 log'
    );

    const { publicKey } = crypto.generateKeyPairSync('ed25519');
    const otherKey = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const swapped = {
      ...root,
      tlogs: root.tlogs.map((t) =>
        t.publicKey.keyDetails === 'PKIX_ED25519' ? { ...t, publicKey: { ...t.publicKey, rawBytes: otherKey } } : t
      ),
    };
    assertRejected(
      () => verify(bundle, signed.artifact, trustMaterial(swapped, signer), { timestampThreshold: 0 }),
      'TLOG_INCLUSION_PROOF_ERROR',
      'another key for the v2 log'
    );
  });

  test('a bare-key signer is refused: sigstore-js sends its SPKI as x509Certificate', async () => {
    const keyBuilder = new MessageSignatureBundleBuilder({
      signer: new KeySigner(),
      witnesses: [new RekorWitness({ rekorBaseURL: v2Service.url, majorApiVersion: 2, timeout: 20000, retry: 0 })],
    });
    await assert.rejects(
      keyBuilder.create({ data: Buffer.from('tlog e2e: a key-signed v2 request\n') }),
      (err) => {
        assert.equal(err.code, 'TLOG_CREATE_ENTRY_ERROR', err.message);
        assert.equal(err.cause?.statusCode, 400, `want a 400 from the log, got ${err.cause?.stack ?? err.cause}`);
        assert.match(err.cause.message, /invalid hashedrekord request/); // the log's google.rpc.Status
        return true;
      }
    );
  });

  test('a DSSE envelope is refused: sigstore-js 4.1.1 sends dsseRequestV002, which tlog drops', async () => {
    const dsseBuilder = new DSSEBundleBuilder({
      signer,
      witnesses: [new RekorWitness({ rekorBaseURL: v2Service.url, majorApiVersion: 2, timeout: 20000, retry: 0 })],
    });
    await assert.rejects(
      dsseBuilder.create({ data: Buffer.from('{"_type":"https://in-toto.io/Statement/v1"}'), type: 'application/vnd.in-toto+json' }),
      (err) => {
        assert.equal(err.code, 'TLOG_CREATE_ENTRY_ERROR', err.message);
        assert.equal(err.cause?.statusCode, 400, `want a 400 from the log, got ${err.cause?.stack ?? err.cause}`);
        assert.match(err.cause.message, /invalid type, must be hashedrekord/);
        return true;
      }
    );
  });
});
