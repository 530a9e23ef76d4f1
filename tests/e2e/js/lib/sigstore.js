// Helpers shared by the sigstore-js end-to-end tests: a key-based signer, the
// trusted root for a Rekor v1 log (spec V-06), verification as a relying party does
// it, and bundle surgery for the negative cases.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { bundleFromJSON } from '@sigstore/bundle';
import { PublicKeyDetails, TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, VerificationError, toSignedEntity, toTrustMaterial } from '@sigstore/verify';

// Keys and the log are trusted from a minute before the test started.
export const VALID_FROM = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);

export const sha256 = (data) => crypto.createHash('sha256').update(data).digest();

// A sigstore-js Signer backed by a local ECDSA P-256 key (no Fulcio).
export class KeySigner {
  constructor() {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    this.pem = publicKey.export({ type: 'spki', format: 'pem' });
    this.der = publicKey.export({ type: 'spki', format: 'der' });
    this.hint = sha256(this.der).toString('hex');
  }

  async sign(data) {
    return {
      signature: crypto.sign('sha256', data, this.privateKey),
      key: { $case: 'publicKey', publicKey: this.pem, hint: this.hint },
    };
  }
}

export function freshP256Der() {
  const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return publicKey.export({ type: 'spki', format: 'der' });
}

// The trusted-root entry for a Rekor v1 log, exactly as in spec V-06.
export function trustedRootJSON({ baseUrl, keyDer, logIdDer = keyDer }) {
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl,
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: keyDer.toString('base64'),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: { start: VALID_FROM.toISOString() },
        },
        logId: { keyId: sha256(logIdDer).toString('base64') },
      },
    ],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  };
}

export function trustMaterial(rootJSON, signer) {
  return toTrustMaterial(TrustedRoot.fromJSON(rootJSON), {
    [signer.hint]: {
      rawBytes: signer.der,
      keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
      validFor: { start: VALID_FROM, end: undefined },
    },
  });
}

// Verifies a serialized bundle as a relying party would: parse (with the bundle
// library's validation), then verify SET, inclusion proof, checkpoint, body and signature.
export function verify(bundleJSON, artifact, material, options = {}) {
  const bundle = bundleFromJSON(structuredClone(bundleJSON));
  const verifier = new Verifier(material, {
    tlogThreshold: 1,
    ctlogThreshold: 0,
    timestampThreshold: 1,
    ...options,
  });
  return verifier.verify(toSignedEntity(bundle, artifact));
}

// Only the inclusion proof and its checkpoint: no SET, so no tlog timestamp.
export function proofOnly(bundleJSON) {
  const b = structuredClone(bundleJSON);
  delete b.verificationMaterial.tlogEntries[0].inclusionPromise;
  return b;
}

// Only the SET: a v0.1 bundle without inclusion proof.
export function setOnly(bundleJSON) {
  const b = structuredClone(bundleJSON);
  b.mediaType = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
  delete b.verificationMaterial.tlogEntries[0].inclusionProof;
  return b;
}

export function assertRejected(fn, code, what) {
  assert.throws(
    fn,
    (err) => {
      assert.ok(err instanceof VerificationError, `${what}: expected a VerificationError, got ${err?.stack ?? err}`);
      assert.equal(err.code, code, `${what}: wrong error code (${err.message})`);
      return true;
    },
    `${what}: verification must fail`
  );
}

// Later tests look at the entry the upload test made; say so plainly if it is missing.
export function uploaded(item) {
  assert.ok(item, 'no uploaded entry: the upload test above failed');
  return item;
}

export function tlogEntry(bundleJSON) {
  return bundleJSON.verificationMaterial.tlogEntries[0];
}

export function flipByte(b64, index = 0) {
  const buf = Buffer.from(b64, 'base64');
  buf[index] ^= 0x01;
  return buf.toString('base64');
}

export async function getJSON(url) {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return res.json();
}

// The log's public key, as DER SPKI, from GET /api/v1/log/publicKey.
export async function fetchLogKeyDer(baseUrl) {
  const res = await fetch(`${baseUrl}/api/v1/log/publicKey`);
  assert.equal(res.status, 200, 'GET /api/v1/log/publicKey');
  return crypto.createPublicKey(await res.text()).export({ type: 'spki', format: 'der' });
}
