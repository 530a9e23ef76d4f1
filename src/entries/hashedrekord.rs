//! `hashedrekord` 0.0.1: a signature over an artifact digest, with the key or
//! certificate that made it.
//!
//! Spec: rekor-v1.md T-02 (validation, algorithm policy, canonical body, index
//! keys), X-03. Mirrors sigstore/rekor `pkg/types/hashedrekord/v0.0.1/entry.go`
//! and `pkg/api/entries.go` `checkEntryAlgorithms`. Keys come from `pki`;
//! the digest signatures are checked by `digest_signature`.
//!
//! The signature is checked against the submitted **digest**: the artifact is
//! never seen. Order of checks: base64 decoding, the shape of `spec`, the key,
//! the hash value, the signature, then the algorithm policy.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::decoding::{go_type, std_base64};
use super::digest_signature::{self, HashAlgorithm};
use super::pki::{Curve, KeyAlgorithm, KeyError, PublicKey};
use super::EntryError;

/// The only version of this kind that can be written.
pub(super) const API_VERSION: &str = "0.0.1";

/// The canonical body before JCS (C-08). Only these fields survive.
#[derive(Debug, Serialize)]
pub(super) struct Body<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    spec: Spec<'a>,
}

#[derive(Debug, Serialize)]
struct Spec<'a> {
    data: Data<'a>,
    signature: Signature,
}

#[derive(Debug, Serialize)]
struct Data<'a> {
    hash: Hash<'a>,
}

#[derive(Debug, Serialize)]
struct Hash<'a> {
    algorithm: &'static str,
    /// Kept exactly as submitted, not lowercased (T-02).
    value: &'a str,
}

#[derive(Debug, Serialize)]
struct Signature {
    /// Base64 of the decoded signature bytes.
    content: String,
    #[serde(rename = "publicKey")]
    public_key: KeyContent,
}

#[derive(Debug, Serialize)]
struct KeyContent {
    /// Base64 of the canonical PEM.
    content: String,
}

/// A verified entry: its body, ready for JCS, and its index keys.
#[derive(Debug)]
pub(super) struct Validated<'a> {
    pub(super) body: Body<'a>,
    pub(super) index_keys: Vec<String>,
}

fn invalid(msg: impl Into<String>) -> EntryError {
    EntryError::Invalid(msg.into())
}

/// Validates a `hashedrekord` 0.0.1 `spec` and verifies its signature.
pub(super) fn validate(spec: &Value) -> Result<Validated<'_>, EntryError> {
    let spec = spec.as_object().ok_or_else(|| {
        invalid(format!(
            "unsupported input type {} for DecodeEntry",
            go_type(spec)
        ))
    })?;
    let sig_obj = object(spec, "signature");
    let key_obj = sig_obj.and_then(|s| object(s, "publicKey"));
    // Rekor decodes both base64 fields before it looks at anything else.
    let sig = std_base64(content(sig_obj)).map_err(|e| {
        invalid(format!(
            "failed parsing base64 data for signature content: {e}"
        ))
    })?;
    let key_pem = std_base64(content(key_obj)).map_err(|e| {
        invalid(format!(
            "failed parsing base64 data for public key content: {e}"
        ))
    })?;

    if sig_obj.is_none() {
        return Err(invalid("missing signature"));
    }
    let (algorithm, value) = hash_fields(spec)?;
    if key_obj.is_none() {
        return Err(invalid("missing public key"));
    }
    if sig.is_empty() {
        return Err(invalid("missing signature content"));
    }
    let key = PublicKey::parse(&key_pem).map_err(|e| match e {
        KeyError::Invalid(msg) => invalid(msg),
        KeyError::Chain(msg) => invalid(format!("verifying signature: {msg}")),
    })?;
    let mut digest = [0u8; 64];
    let digest = decode_digest(algorithm, value, &mut digest)?;
    digest_signature::verify(&key, algorithm, digest, &sig)
        .map_err(|e| invalid(format!("verifying signature: {e}")))?;
    if !algorithms_allowed(key.algorithm(), algorithm) {
        return Err(invalid("entry algorithms are not allowed"));
    }

    let index_keys = index_keys(&key_pem, &key, algorithm, value);
    let engine = &base64::engine::general_purpose::STANDARD;
    let body = Body {
        api_version: API_VERSION,
        kind: super::Kind::HashedRekord.name(),
        spec: Spec {
            data: Data {
                hash: Hash {
                    algorithm: algorithm.name(),
                    value,
                },
            },
            signature: Signature {
                content: engine.encode(&sig),
                public_key: KeyContent {
                    content: engine.encode(key.canonical_pem()),
                },
            },
        },
    };
    Ok(Validated { body, index_keys })
}

/// `data.hash.{algorithm,value}`, checked as Rekor's generated model does.
fn hash_fields(spec: &Map<String, Value>) -> Result<(HashAlgorithm, &str), EntryError> {
    let data = object(spec, "data").ok_or_else(|| invalid("missing data"))?;
    let hash = object(data, "hash").ok_or_else(|| invalid("missing hash"))?;
    let algorithm = hash
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("missing hash algorithm"))?;
    let algorithm = HashAlgorithm::parse(algorithm).ok_or_else(|| {
        invalid("data.hash.algorithm in body should be one of [sha256 sha384 sha512]")
    })?;
    let value = hash
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("missing hash value"))?;
    Ok((algorithm, value))
}

/// Hex-decodes the digest into `buf`, checking its length for `algorithm`.
fn decode_digest<'b>(
    algorithm: HashAlgorithm,
    value: &str,
    buf: &'b mut [u8; 64],
) -> Result<&'b [u8], EntryError> {
    let len = algorithm.aws().output_len();
    let out = &mut buf[..len];
    if value.len() != 2 * len || hex::decode_to_slice(value, out).is_err() {
        return Err(invalid("invalid value for hash"));
    }
    Ok(out)
}

/// T-02 index keys, lowercased: SHA-256 of the key bytes as submitted, the
/// leaf's SANs, then `<algorithm>:<value>`.
fn index_keys(
    key_pem: &[u8],
    key: &PublicKey,
    algorithm: HashAlgorithm,
    value: &str,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(2 + key.subjects().len());
    keys.push(hex::encode(Sha256::digest(key_pem)));
    keys.extend(key.subjects().iter().map(|s| s.to_lowercase()));
    keys.push(format!(
        "{}:{}",
        algorithm.name(),
        value.to_ascii_lowercase()
    ));
    keys
}

/// The default `--client-signing-algorithms` of Rekor (T-02).
fn algorithms_allowed(key: KeyAlgorithm, hash: HashAlgorithm) -> bool {
    use HashAlgorithm::{Sha256, Sha384, Sha512};
    match key {
        KeyAlgorithm::Rsa { bits } => hash == Sha256 && matches!(bits, 2048 | 3072 | 4096),
        KeyAlgorithm::Ecdsa(Curve::P256) => hash == Sha256,
        KeyAlgorithm::Ecdsa(Curve::P384) => hash == Sha384,
        KeyAlgorithm::Ecdsa(Curve::P521) | KeyAlgorithm::Ed25519 => hash == Sha512,
    }
}

fn object<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key).and_then(Value::as_object)
}

/// The `content` string of an object, empty when absent (Rekor's `DecodeEntry`).
fn content(obj: Option<&Map<String, Value>>) -> &str {
    obj.and_then(|o| o.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rsa::KeySize;
    use serde_json::json;
    use sha2::{Sha384, Sha512};

    use super::super::test_support::{b64, der_to_p1363, pem, pem_with, TestKey};
    use super::super::{parse_proposed, Entry, EntryError, Kind};
    use super::*;

    /// rekor-v1.md V-01: the request body is the canonical body.
    const V01_REQUEST: &str = include_str!("../../tests/fixtures/v1/hashedrekord-v01-request.json");
    const ARTIFACT: &[u8] = b"tlog test artifact";

    fn digest_of(hash: &str) -> Vec<u8> {
        match hash {
            "sha256" => Sha256::digest(ARTIFACT).to_vec(),
            "sha384" => Sha384::digest(ARTIFACT).to_vec(),
            _ => Sha512::digest(ARTIFACT).to_vec(),
        }
    }

    /// A request with its keys deliberately out of JCS order and spaced out.
    fn request(algorithm: &str, value: &str, sig: &[u8], key_pem: &[u8]) -> Vec<u8> {
        format!(
            r#"{{ "spec": {{ "signature": {{ "publicKey": {{ "content": "{}" }}, "content": "{}" }},
                 "data": {{ "hash": {{ "value": "{value}", "algorithm": "{algorithm}" }} }} }},
                 "kind": "hashedrekord", "apiVersion": "0.0.1" }}"#,
            b64(key_pem),
            b64(sig)
        )
        .into_bytes()
    }

    /// The canonical body, written out by hand in JCS order.
    fn expected_canonical(algorithm: &str, value: &str, sig: &[u8], key_pem: &[u8]) -> Vec<u8> {
        format!(
            r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"{algorithm}","value":"{value}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
            b64(sig),
            b64(key_pem)
        )
        .into_bytes()
    }

    fn invalid(msg: &str) -> EntryError {
        EntryError::Invalid(msg.to_owned())
    }

    /// Submits a fresh signature by `key` over the artifact's `hash` digest and
    /// checks the entry end to end.
    fn assert_accepted(key: &TestKey, hash: &str, sig: &[u8]) -> Entry {
        let value = hex::encode(digest_of(hash));
        let key_pem = key.public_pem();
        let entry = parse_proposed(&request(hash, &value, sig, &key_pem)).unwrap();
        assert_eq!(entry.kind, Kind::HashedRekord);
        assert_eq!(
            String::from_utf8(entry.canonical.clone()).unwrap(),
            String::from_utf8(expected_canonical(hash, &value, sig, &key_pem)).unwrap()
        );
        assert_eq!(
            entry.index_keys,
            vec![
                hex::encode(Sha256::digest(&key_pem)),
                format!("{hash}:{value}")
            ]
        );
        entry
    }

    fn submit(key: &TestKey, hash: &str, sig: &[u8]) -> Result<Entry, EntryError> {
        let value = hex::encode(digest_of(hash));
        parse_proposed(&request(hash, &value, sig, &key.public_pem()))
    }

    #[test]
    fn v01_request_is_accepted_with_identical_canonical_bytes() {
        let entry = parse_proposed(V01_REQUEST.as_bytes()).unwrap();
        assert_eq!(entry.kind, Kind::HashedRekord);
        assert_eq!(entry.canonical, V01_REQUEST.as_bytes());
        let leaf = Sha256::digest([&[0u8][..], &entry.canonical].concat());
        assert_eq!(
            hex::encode(leaf),
            "d18a0b811c7277620ff2f259b9f868681a60784b9e1acfca1e1e560cee6a6e06"
        );
        assert_eq!(
            entry.index_keys,
            [
                "b1cff87ecb811b1451568d7e275572670621929fa39c1db17b5854884646e856",
                "foo!oidc.local",
                "sha256:bc103b4a84971ef6459b294a2b98568a2bfb72cded09d4acd1e16366a401f95b",
            ]
        );
    }

    #[test]
    fn v01_with_a_flipped_digest_bit_fails_verification() {
        let tampered = V01_REQUEST.replace(
            "bc103b4a84971ef6459b294a2b98568a2bfb72cded09d4acd1e16366a401f95b",
            "bc103b4a84971ef6459b294a2b98568a2bfb72cded09d4acd1e16366a401f95a",
        );
        assert_eq!(
            parse_proposed(tampered.as_bytes()).unwrap_err(),
            invalid(
                "verifying signature: invalid signature when validating ASN.1 encoded signature"
            )
        );
    }

    #[test]
    fn ecdsa_keys_are_accepted_with_their_hash_in_der_and_p1363() {
        for (curve, hash) in [
            (Curve::P256, "sha256"),
            (Curve::P384, "sha384"),
            (Curve::P521, "sha512"),
        ] {
            let key = TestKey::ecdsa(curve);
            let der = key.sign_digest(&digest_of(hash));
            assert_accepted(&key, hash, &der);
            let p1363 = der_to_p1363(&der, curve.scalar_len());
            assert_eq!(p1363.len(), 2 * curve.scalar_len());
            // The signature bytes are kept as sent: P1363 stays P1363.
            assert_accepted(&key, hash, &p1363);
        }
    }

    #[test]
    fn rsa_keys_of_allowed_sizes_are_accepted_with_sha256() {
        for size in [KeySize::Rsa2048, KeySize::Rsa3072, KeySize::Rsa4096] {
            let key = TestKey::rsa(size);
            let sig = key.sign_digest(&digest_of("sha256"));
            assert_accepted(&key, "sha256", &sig);
        }
    }

    #[test]
    fn ed25519ph_is_accepted_with_sha512() {
        let key = TestKey::ed25519();
        let sig = key.sign_digest(&digest_of("sha512"));
        assert_accepted(&key, "sha512", &sig);
    }

    #[test]
    fn pure_ed25519_signatures_are_refused() {
        let TestKey::Ed25519(signing) = TestKey::ed25519() else {
            unreachable!()
        };
        let pure = ed25519_dalek::Signer::sign(&signing, &digest_of("sha512")).to_bytes();
        assert_eq!(
            submit(&TestKey::Ed25519(signing), "sha512", &pure).unwrap_err(),
            invalid("verifying signature: failed to verify signature: ed25519: invalid signature")
        );
    }

    #[test]
    fn the_hash_value_is_kept_as_submitted_but_indexed_lowercase() {
        let key = TestKey::ecdsa(Curve::P256);
        let digest = digest_of("sha256");
        let upper = hex::encode_upper(&digest);
        let sig = key.sign_digest(&digest);
        let entry = parse_proposed(&request("sha256", &upper, &sig, &key.public_pem())).unwrap();
        assert_eq!(
            entry.canonical,
            expected_canonical("sha256", &upper, &sig, &key.public_pem())
        );
        assert_eq!(
            entry.index_keys[1],
            format!("sha256:{}", hex::encode(&digest))
        );
    }

    #[test]
    fn non_canonical_pem_is_re_encoded_but_indexed_as_submitted() {
        let key = TestKey::ecdsa(Curve::P256);
        let sig = key.sign_digest(&digest_of("sha256"));
        let value = hex::encode(digest_of("sha256"));
        let canonical_pem = pem("PUBLIC KEY", &key.spki());
        for sent in [
            pem_with("PUBLIC KEY", &key.spki(), 64, "\r\n"),
            pem_with("PUBLIC KEY", &key.spki(), 76, "\n"),
            [b"\n  ".as_slice(), &canonical_pem, b"\n\n"].concat(),
        ] {
            assert_ne!(sent, canonical_pem);
            let entry = parse_proposed(&request("sha256", &value, &sig, &sent)).unwrap();
            assert_eq!(
                entry.canonical,
                expected_canonical("sha256", &value, &sig, &canonical_pem)
            );
            assert_eq!(entry.index_keys[0], hex::encode(Sha256::digest(&sent)));
        }
    }

    #[test]
    fn certificates_whose_sans_make_bad_index_keys_are_refused() {
        use super::super::test_support::{certificate, san_email, san_uri, CertSpec};
        let ca = TestKey::ecdsa(Curve::P256);
        let leaf = TestKey::ecdsa(Curve::P256);
        let digest = digest_of("sha256");
        let sig = leaf.sign_digest(&digest);
        let value = hex::encode(&digest);
        let long = format!("https://example.com/{}", "a".repeat(3000));
        for (san, why) in [
            (
                san_email("dev\0@example.com"),
                r#"search index key "dev\0@example.com" contains the control character U+0000"#
                    .to_owned(),
            ),
            (
                san_uri(&long),
                format!(
                    r#"search index key "https://example.com/aaaaaaaaaaaa..." is {} bytes long, more than the 512 allowed"#,
                    long.len()
                ),
            ),
        ] {
            let mut spec = CertSpec::leaf("", "Test CA");
            spec.sans = vec![san];
            let cert_pem = pem("CERTIFICATE", &certificate(&spec, &leaf.spki(), &ca));
            assert_eq!(
                parse_proposed(&request("sha256", &value, &sig, &cert_pem)).unwrap_err(),
                invalid(&format!("entry not insertable into log: {why}"))
            );
        }
    }

    #[test]
    fn a_certificate_key_with_sans_signs_and_indexes_its_sans() {
        use super::super::test_support::{
            certificate, san_dns, san_email, san_fulcio_username, CertSpec,
        };
        let ca = TestKey::ecdsa(Curve::P256);
        let leaf = TestKey::ecdsa(Curve::P256);
        let mut spec = CertSpec::leaf("", "Test CA");
        spec.sans = vec![
            san_email("Alice@Example.com"),
            san_dns("Build.Example.com"),
            san_fulcio_username("Bob!oidc"),
        ];
        let cert_pem = pem("CERTIFICATE", &certificate(&spec, &leaf.spki(), &ca));
        let digest = digest_of("sha256");
        let sig = leaf.sign_digest(&digest);
        let value = hex::encode(&digest);
        let entry = parse_proposed(&request("sha256", &value, &sig, &cert_pem)).unwrap();
        assert_eq!(
            entry.canonical,
            expected_canonical("sha256", &value, &sig, &cert_pem)
        );
        assert_eq!(
            entry.index_keys,
            [
                hex::encode(Sha256::digest(&cert_pem)),
                "build.example.com".to_owned(),
                "alice@example.com".to_owned(),
                "bob!oidc".to_owned(),
                format!("sha256:{value}"),
            ]
        );
        // The certificate's key, not its issuer's, must have signed.
        let by_issuer = ca.sign_digest(&digest);
        assert_eq!(
            parse_proposed(&request("sha256", &value, &by_issuer, &cert_pem)).unwrap_err(),
            invalid(
                "verifying signature: invalid signature when validating ASN.1 encoded signature"
            )
        );
    }

    #[test]
    fn disallowed_key_and_hash_pairs_verify_then_fail_the_policy() {
        // P-384 over SHA-256 and RSA-1024 over SHA-256: made with `openssl
        // pkeyutl -sign` over SHA-256("tlog test artifact"), since aws-lc-rs
        // signs neither.
        const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEAi5rr5bfYmN7xLj2TE0jkmD5zWxplkzW\no9uhLZy8KxDY5H1xIDx0BHRlnwey6Q99gdkfsh6rciBHz0BFU90Iw7nEVUTaZbNE\neh9RL20ObWKxkQovSHdIHY4j0cTamz2b\n-----END PUBLIC KEY-----\n";
        const P384_SIG: &str = "MGQCMCptB3ZSrR3+Yl2Gpl+6yUNkya0HDvzCF45+YJyr7pMDEmQQGd+gAgU7rYUSpUcVCwIwW0L1Vk7rlohNtz4+zqCCs75TVpIGsOC4JrxKzc6V2ViHDv66ZfO+WL53D5jCGG0h";
        const RSA1024_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCln2vCYdFnhaVEwVUDILZundM/\nSY6J0EGET012UtAsBs4+4Sz7FmaiCw/enfRxNWFG6vnaUvjrkFK86RfhBswiVchF\nJRN7+/yw5zidmElM3+OOT4BmvFAnx1Z0/BEQJsc9IGvGx9GgG2ntPU8hi0z9/m5B\nDp0g2iwS3h9161recQIDAQAB\n-----END PUBLIC KEY-----\n";
        const RSA1024_SIG: &str = "Z8jeNfoU2Bw8N1+RAgWmeGBJ+0j9TB7V+neZQYnQvckFp1bSXsJ0dBne4o+p+clw4uttgbcvH87Tzyty4HoW+MHfdwSU+EyhHVz0DBm8ZsgEB7lwNx+QaUH/r+aijFdowptqxYtl5+1GHqzqjG2QUC2JhwMogiPfkvcMbAbmINc=";
        let value = hex::encode(digest_of("sha256"));
        let engine = base64::engine::general_purpose::STANDARD;
        for (key, sig) in [(P384_PEM, P384_SIG), (RSA1024_PEM, RSA1024_SIG)] {
            let sig = engine.decode(sig).unwrap();
            let body = request("sha256", &value, &sig, key.as_bytes());
            assert_eq!(
                parse_proposed(&body).unwrap_err(),
                invalid("entry algorithms are not allowed")
            );
            // A broken signature is reported as such: the policy comes after.
            let mut bad = sig.clone();
            *bad.last_mut().unwrap() ^= 1;
            let err = parse_proposed(&request("sha256", &value, &bad, key.as_bytes())).unwrap_err();
            assert!(
                matches!(err, EntryError::Invalid(m) if m.starts_with("verifying signature: "))
            );
        }

        let rsa = TestKey::rsa(KeySize::Rsa2048);
        let sig = rsa.sign_digest(&digest_of("sha512"));
        assert_eq!(
            submit(&rsa, "sha512", &sig).unwrap_err(),
            invalid("entry algorithms are not allowed")
        );
        let p521 = TestKey::ecdsa(Curve::P521);
        let sig = p521.sign_digest(&digest_of("sha512"));
        assert!(submit(&p521, "sha512", &sig).is_ok());
    }

    #[test]
    fn ed25519ph_over_a_non_sha512_digest_is_refused() {
        let key = TestKey::ed25519();
        let sig = key.sign_digest(&digest_of("sha512"));
        assert_eq!(
            submit(&key, "sha256", &sig).unwrap_err(),
            invalid(
                r#"verifying signature: unsupported hash algorithm: "SHA-256" not in [SHA-512]"#
            )
        );
    }

    #[test]
    fn wrong_signatures_are_refused_with_the_verifier_message() {
        let ec = TestKey::ecdsa(Curve::P256);
        let other = TestKey::ecdsa(Curve::P256);
        let digest = digest_of("sha256");
        let by_other = other.sign_digest(&digest);
        assert_eq!(
            submit(&ec, "sha256", &by_other).unwrap_err(),
            invalid(
                "verifying signature: invalid signature when validating ASN.1 encoded signature"
            )
        );
        assert_eq!(
            submit(&ec, "sha256", &der_to_p1363(&by_other, 32)).unwrap_err(),
            invalid("verifying signature: invalid signature when validating IEEE_P1363 encoded signature")
        );
        assert_eq!(
            submit(&ec, "sha256", b"not a signature").unwrap_err(),
            invalid("verifying signature: ecdsa: Invalid IEEE_P1363 encoded bytes")
        );
        // Too long for P-256 but within sigstore's 132 bytes: tried, and fails.
        assert_eq!(
            submit(&ec, "sha256", &[0x7f; 80]).unwrap_err(),
            invalid("verifying signature: invalid signature when validating IEEE_P1363 encoded signature")
        );

        let rsa = TestKey::rsa(KeySize::Rsa2048);
        let mut sig = rsa.sign_digest(&digest);
        sig[10] ^= 0xff;
        assert_eq!(
            submit(&rsa, "sha256", &sig).unwrap_err(),
            invalid("verifying signature: crypto/rsa: verification error")
        );

        let ed = TestKey::ed25519();
        let by_other = TestKey::ed25519().sign_digest(&digest_of("sha512"));
        assert_eq!(
            submit(&ed, "sha512", &by_other).unwrap_err(),
            invalid("verifying signature: failed to verify signature: ed25519: invalid signature")
        );
    }

    /// A valid P-256 request as a JSON value, for removing or breaking parts.
    fn valid_value() -> Value {
        let key = TestKey::ecdsa(Curve::P256);
        let sig = key.sign_digest(&digest_of("sha256"));
        serde_json::from_slice(&request(
            "sha256",
            &hex::encode(digest_of("sha256")),
            &sig,
            &key.public_pem(),
        ))
        .unwrap()
    }

    fn refusal(edit: impl FnOnce(&mut Value)) -> EntryError {
        let mut value = valid_value();
        edit(&mut value);
        parse_proposed(&serde_json::to_vec(&value).unwrap()).unwrap_err()
    }

    fn remove<'p>(path: &'p [&'p str]) -> impl FnOnce(&mut Value) + 'p {
        move |v| {
            let (last, parents) = path.split_last().unwrap();
            let parent = parents.iter().fold(v, |v, k| &mut v[*k]);
            parent.as_object_mut().unwrap().remove(*last);
        }
    }

    fn set<'p>(path: &'p [&'p str], to: Value) -> impl FnOnce(&mut Value) + 'p {
        move |v| *path.iter().fold(v, |v, k| &mut v[*k]) = to
    }

    #[test]
    fn fields_outside_the_schema_are_dropped_from_the_canonical_body() {
        let value = valid_value();
        let clean = parse_proposed(&serde_json::to_vec(&value).unwrap()).unwrap();
        let mut noisy = value;
        noisy["extra"] = json!("x");
        noisy["spec"]["data"]["content"] = json!("YXJ0aWZhY3Q=");
        noisy["spec"]["signature"]["format"] = json!("x509");
        noisy["spec"]["signature"]["publicKey"]["url"] = json!("https://example.com/key");
        let entry = parse_proposed(&serde_json::to_vec(&noisy).unwrap()).unwrap();
        assert_eq!(entry.canonical, clean.canonical);
        assert_eq!(entry.index_keys, clean.index_keys);
    }

    #[test]
    fn missing_pieces_are_named() {
        let cases: [(&[&str], &str); 7] = [
            (&["spec", "signature"], "missing signature"),
            (&["spec", "data"], "missing data"),
            (&["spec", "data", "hash"], "missing hash"),
            (
                &["spec", "data", "hash", "algorithm"],
                "missing hash algorithm",
            ),
            (&["spec", "data", "hash", "value"], "missing hash value"),
            (&["spec", "signature", "publicKey"], "missing public key"),
            (
                &["spec", "signature", "content"],
                "missing signature content",
            ),
        ];
        for (path, msg) in cases {
            assert_eq!(refusal(remove(path)), invalid(msg), "{path:?}");
        }
        assert_eq!(
            refusal(remove(&["spec", "signature", "publicKey", "content"])),
            invalid("invalid public key: failure decoding PEM")
        );
    }

    #[test]
    fn bad_base64_is_reported_with_its_field_and_offset() {
        assert_eq!(
            refusal(set(&["spec", "signature", "content"], json!("MEU*"))),
            invalid("failed parsing base64 data for signature content: illegal base64 data at input byte 3")
        );
        assert_eq!(
            refusal(set(&["spec", "signature", "publicKey", "content"], json!("LS0t!S1C"))),
            invalid("failed parsing base64 data for public key content: illegal base64 data at input byte 4")
        );
        // Unpadded standard base64 is refused, as by Go's StdEncoding.
        let err = refusal(set(&["spec", "signature", "content"], json!("MEUCIQ")));
        assert!(
            matches!(&err, EntryError::Invalid(m) if m.starts_with("failed parsing base64 data for signature content: illegal base64 data at input byte ")),
            "{err:?}"
        );
    }

    #[test]
    fn hash_values_must_be_hex_of_the_algorithms_length() {
        let digest = hex::encode(digest_of("sha256"));
        for (algorithm, value) in [
            ("sha256", digest[..62].to_owned()),
            ("sha256", format!("{digest}00")),
            ("sha384", digest.clone()),
            ("sha512", digest.clone()),
            ("sha256", format!("{}zz", &digest[..62])),
            ("sha256", String::new()),
        ] {
            let err = refusal(|v| {
                v["spec"]["data"]["hash"] = json!({"algorithm": algorithm, "value": value});
            });
            assert_eq!(
                err,
                invalid("invalid value for hash"),
                "{algorithm} {value}"
            );
        }
    }

    #[test]
    fn unknown_hash_algorithms_are_refused() {
        for algorithm in ["sha1", "SHA256", "md5", ""] {
            assert_eq!(
                refusal(set(
                    &["spec", "data", "hash", "algorithm"],
                    json!(algorithm)
                )),
                invalid("data.hash.algorithm in body should be one of [sha256 sha384 sha512]")
            );
        }
    }

    #[test]
    fn unsupported_and_garbage_keys_are_refused() {
        let rsa = TestKey::rsa(KeySize::Rsa2048);
        let TestKey::Rsa(pair) = &rsa else {
            unreachable!()
        };
        let pkcs1 = pem(
            "RSA PUBLIC KEY",
            aws_lc_rs::signature::KeyPair::public_key(pair).as_ref(),
        );
        assert_eq!(
            refusal(set(
                &["spec", "signature", "publicKey", "content"],
                json!(b64(&pkcs1))
            )),
            invalid("invalid public key: cannot handle type RSA PUBLIC KEY")
        );
        assert_eq!(
            refusal(set(
                &["spec", "signature", "publicKey", "content"],
                json!(b64(b"ssh-ed25519 AAAA me@host"))
            )),
            invalid("invalid public key: failure decoding PEM")
        );
        let garbage = pem("PUBLIC KEY", b"\x30\x03\x02\x01\x01");
        assert_eq!(
            refusal(set(
                &["spec", "signature", "publicKey", "content"],
                json!(b64(&garbage))
            )),
            invalid("x509: failed to parse public key")
        );
    }

    #[test]
    fn a_spec_that_is_not_an_object_is_refused() {
        assert_eq!(
            refusal(set(&["spec"], json!("text"))),
            invalid("unsupported input type string for DecodeEntry")
        );
    }
}
