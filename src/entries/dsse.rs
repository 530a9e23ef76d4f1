//! `dsse` 0.0.1: a DSSE envelope and the keys that verify every signature.
//! The log stores hashes of the envelope and payload, not the envelope.
//!
//! Spec: rekor-v1.md T-03, E-07. Mirrors sigstore/rekor
//! `pkg/types/dsse/v0.0.1/entry.go` (`DecodeEntry`, `Unmarshal`,
//! `verifyEnvelope`, `Canonicalize`, `IndexKeys`, `Insertable`) and its
//! generated model's `Validate`.
//!
//! Two forms: `proposedContent` (an envelope string and verifiers), which can
//! be written, and the committed form (`signatures`, `envelopeHash`,
//! `payloadHash`, as in a stored body), which is only good for search.

use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use super::decoding::{
    object, sha256_json, spec_object, std_base64, string, to_base64, Digest, Violations,
};
use super::envelope::{self, Envelope, INTOTO_PAYLOAD_TYPE};
use super::pki::PublicKey;
use super::{EntryError, Kind, Validated};

/// The only version of this kind.
pub(super) const API_VERSION: &str = "0.0.1";

/// The `signatures[].signature` pattern: standard padded base64.
const SIGNATURE_PATTERN: &str =
    r"^(?:[A-Za-z0-9+\/]{4})*(?:[A-Za-z0-9+\/]{2}==|[A-Za-z0-9+\/]{3}=|[A-Za-z0-9+\/]{4})$";

fn invalid(msg: impl Into<String>) -> EntryError {
    EntryError::Invalid(msg.into())
}

/// `spec` as `DecodeEntry` reads it (verifiers and signature verifiers
/// base64-decoded).
struct Decoded<'a> {
    /// `Some` when `proposedContent` is an object.
    proposed: Option<Proposed<'a>>,
    /// `Some` when `signatures` is an array; non-object items are dropped.
    signatures: Option<Vec<CommittedSignature<'a>>>,
    envelope_hash: Option<Digest<'a>>,
    payload_hash: Option<Digest<'a>>,
}

struct Proposed<'a> {
    envelope: Option<&'a str>,
    /// `Some` when `verifiers` is an array; empty strings are dropped.
    verifiers: Option<Vec<Vec<u8>>>,
}

struct CommittedSignature<'a> {
    signature: Option<&'a str>,
    verifier: Option<Vec<u8>>,
}

fn decode(spec: &Value) -> Result<Decoded<'_>, EntryError> {
    let spec = spec_object(spec)?;
    let proposed = object(spec, "proposedContent")
        .map(|pc| {
            let verifiers = pc
                .get("verifiers")
                .and_then(Value::as_array)
                .map(|items| {
                    if items.len() > envelope::MAX_ENVELOPE_VERIFIERS {
                        return Err(invalid(envelope::too_many_verifiers(items.len())));
                    }
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            std_base64(s).map_err(|e| {
                                invalid(format!("failed parsing base64 data for verifier: {e}"))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            Ok::<_, EntryError>(Proposed {
                envelope: string(pc, "envelope"),
                verifiers,
            })
        })
        .transpose()?;
    let signatures = spec
        .get("signatures")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(committed_signature)
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Decoded {
        proposed,
        signatures,
        envelope_hash: Digest::read(spec, "envelopeHash"),
        payload_hash: Digest::read(spec, "payloadHash"),
    })
}

fn committed_signature(item: &Map<String, Value>) -> Result<CommittedSignature<'_>, EntryError> {
    let verifier = match string(item, "verifier") {
        Some(v) if !v.is_empty() => Some(std_base64(v).map_err(|e| {
            invalid(format!(
                "failed parsing base64 data for signature verifier: {e}"
            ))
        })?),
        _ => None,
    };
    Ok(CommittedSignature {
        signature: string(item, "signature"),
        verifier,
    })
}

/// The generated model's `Validate`, in its order.
fn check_schema(d: &Decoded<'_>) -> Result<(), EntryError> {
    let mut v = Violations::default();
    if let Some(h) = &d.envelope_hash {
        v.sha256_digest("envelopeHash", h);
    }
    if let Some(h) = &d.payload_hash {
        v.sha256_digest("payloadHash", h);
    }
    if let Some(p) = &d.proposed {
        if p.envelope.is_none() {
            v.required("proposedContent.envelope");
        }
        match &p.verifiers {
            None => v.required("proposedContent.verifiers"),
            Some(list) if list.is_empty() => v.too_few("proposedContent.verifiers", 1),
            Some(_) => {}
        }
    }
    for (i, s) in d.signatures.iter().flatten().enumerate() {
        match s.signature {
            None => v.required(&format!("signatures.{i}.signature")),
            Some(sig) if !is_std_base64(sig) => {
                v.mismatch(&format!("signatures.{i}.signature"), SIGNATURE_PATTERN);
            }
            Some(_) => {}
        }
        if s.verifier.is_none() {
            v.required(&format!("signatures.{i}.verifier"));
        }
    }
    v.finish()
}

/// [`SIGNATURE_PATTERN`] without a regex engine.
fn is_std_base64(s: &str) -> bool {
    let b = s.as_bytes();
    let alpha = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    if b.len() % 4 != 0 {
        return false;
    }
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    pad <= 2 && b[..b.len() - pad].iter().all(alpha)
}

/// Validates a `dsse` 0.0.1 `spec`; the committed form is not insertable.
pub(super) fn validate(spec: &Value) -> Result<Validated, EntryError> {
    let d = decode(spec)?;
    check_schema(&d)?;
    let has_committed = d.envelope_hash.is_some()
        || d.payload_hash.is_some()
        || d.signatures.as_ref().is_some_and(|s| !s.is_empty());
    let Some(proposed) = &d.proposed else {
        let (Some(eh), Some(ph), Some(sigs)) = (d.envelope_hash, d.payload_hash, &d.signatures)
        else {
            return Err(invalid(
                "either proposedContent or envelopeHash, payloadHash, and signatures must be present",
            ));
        };
        if sigs.is_empty() {
            return Err(invalid(
                "either proposedContent or envelopeHash, payloadHash, and signatures must be present",
            ));
        }
        return Ok(committed(eh, ph, sigs));
    };
    if has_committed {
        return Err(invalid("either proposedContent or envelopeHash, payloadHash, and signatures must be present but not both"));
    }
    // Schema-checked above: both are present.
    let envelope_text = proposed.envelope.unwrap_or_default();
    let verifiers = proposed.verifiers.as_deref().unwrap_or_default();
    let env = Envelope::parse(envelope_text).map_err(invalid)?;
    if env.signatures.is_empty() {
        return Err(invalid("DSSE envelope must contain 1 or more signatures"));
    }
    let (keys, payload) = verify_envelope(&env, verifiers)?;
    proposed_entry(envelope_text, &env, &keys, &payload)
}

/// rekor `verifyEnvelope`: keys in order until every signature is covered;
/// returns the key of each signature (envelope order) and the payload.
fn verify_envelope(
    env: &Envelope,
    verifiers: &[Vec<u8>],
) -> Result<(Vec<Option<PublicKey>>, Vec<u8>), EntryError> {
    let mut keys: Vec<Option<PublicKey>> = vec![None; env.signatures.len()];
    let mut payload = Vec::new();
    let uncovered = |keys: &[Option<PublicKey>]| {
        env.signatures
            .iter()
            .enumerate()
            .any(|(i, s)| !is_covered(env, keys, i, &s.sig))
    };
    for pem in verifiers {
        if !uncovered(&keys) {
            break;
        }
        let key = PublicKey::parse(pem)
            .map_err(|e| invalid(format!("could not parse public key as x509: {e}")))?;
        let (accepted, decoded) = env
            .verify_with(&key, None)
            .map_err(|e| invalid(format!("could not verify envelope: {e}")))?;
        // Rekor keys signatures by their text: identical copies are covered together.
        for (i, s) in env.signatures.iter().enumerate() {
            if s.sig == env.signatures[accepted].sig {
                keys[i] = Some(key.clone());
            }
        }
        payload = decoded;
    }
    if uncovered(&keys) {
        return Err(invalid("all signatures must have a key that verifies it"));
    }
    Ok((keys, payload))
}

fn is_covered(env: &Envelope, keys: &[Option<PublicKey>], i: usize, sig: &str) -> bool {
    keys[i].is_some()
        || env
            .signatures
            .iter()
            .zip(keys)
            .any(|(s, k)| k.is_some() && s.sig == sig)
}

/// The body and index keys of a verified proposal.
fn proposed_entry(
    envelope_text: &str,
    env: &Envelope,
    keys: &[Option<PublicKey>],
    payload: &[u8],
) -> Result<Validated, EntryError> {
    // One signature per distinct text, sorted by it (Rekor's map + sort.Strings).
    let mut signed: Vec<(&str, &PublicKey)> = env
        .signatures
        .iter()
        .zip(keys)
        .filter_map(|(s, k)| Some((s.sig.as_str(), k.as_ref()?)))
        .collect();
    signed.sort_by(|a, b| a.0.cmp(b.0));
    signed.dedup_by(|a, b| a.0 == b.0);
    let payload_hash = Sha256::digest(payload);
    let envelope_hash = Sha256::digest(envelope_text.as_bytes());
    let mut index_keys = Vec::new();
    for (_, key) in &signed {
        index_keys.push(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(key.canonical_pem()))
        ));
        index_keys.extend(key.subjects().iter().map(|s| s.to_lowercase()));
    }
    index_keys.push(format!("sha256:{}", hex::encode(payload_hash)));
    index_keys.push(format!("sha256:{}", hex::encode(envelope_hash)));
    if env.payload_type == INTOTO_PAYLOAD_TYPE {
        let stmt = envelope::statement(payload).map_err(invalid)?;
        if let Some(subjects) = envelope::subject_digests(&stmt) {
            let materials = envelope::material_digests(&stmt).unwrap_or_default();
            let digests: Vec<String> = subjects
                .iter()
                .chain(&materials)
                .map(|k| k.to_lowercase())
                .collect();
            #[cfg(test)]
            super::committed::record_statement_keys(&digests);
            index_keys.extend(digests);
        }
    }
    let signatures: Vec<Value> = signed
        .iter()
        .map(|(sig, key)| json!({"signature": sig, "verifier": to_base64(key.canonical_pem())}))
        .collect();
    Ok(Validated {
        body: body(
            sha256_json(&envelope_hash),
            sha256_json(&payload_hash),
            signatures,
        ),
        index_keys,
        not_insertable: None,
    })
}

/// The committed form, canonicalised as given (search only).
fn committed(eh: Digest<'_>, ph: Digest<'_>, sigs: &[CommittedSignature<'_>]) -> Validated {
    let mut signatures: Vec<(&str, String)> = sigs
        .iter()
        .map(|s| {
            (
                s.signature.unwrap_or_default(),
                to_base64(s.verifier.as_deref().unwrap_or_default()),
            )
        })
        .collect();
    signatures.sort_by(|a, b| a.0.cmp(b.0));
    let signatures = signatures
        .into_iter()
        .map(|(sig, verifier)| json!({"signature": sig, "verifier": verifier}))
        .collect();
    Validated {
        body: body(eh.to_json(), ph.to_json(), signatures),
        index_keys: Vec::new(),
        not_insertable: Some("missing proposed content"),
    }
}

fn body(envelope_hash: Value, payload_hash: Value, signatures: Vec<Value>) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": Kind::Dsse.name(),
        "spec": {
            "envelopeHash": envelope_hash,
            "payloadHash": payload_hash,
            "signatures": signatures,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::decoding::to_base64;
    use super::super::envelope::pae;
    use super::super::pki::Curve;
    use super::super::test_support::{certificate, pem, san_email, CertSpec, TestKey};
    use super::super::{parse_for_insert, parse_proposed, parse_search, EntryError};
    use super::*;

    /// A real public-good Rekor entry (log index 101487427; the PyPI
    /// attestation example of pypi/warehouse's attestation docs): the
    /// envelope string sigstore-python sent, rebuilt and checked against
    /// the stored `envelopeHash`.
    const REAL_REQUEST: &str = include_str!("../../tests/fixtures/v1/dsse-v01-request.json");
    const REAL_BODY: &str = include_str!("../../tests/fixtures/v1/dsse-v01-body.json");

    fn invalid(msg: &str) -> EntryError {
        EntryError::Invalid(msg.to_owned())
    }

    fn sign(key: &TestKey, payload_type: &str, payload: &[u8]) -> String {
        let message = pae(payload_type, payload);
        let sig = match key {
            TestKey::Ed25519(k) => ed25519_dalek::Signer::sign(k, &message).to_bytes().to_vec(),
            _ => key.sign_digest(&Sha256::digest(&message)),
        };
        to_base64(&sig)
    }

    fn envelope(payload_type: &str, payload: &[u8], sigs: &[String]) -> String {
        let sigs: Vec<Value> = sigs
            .iter()
            .map(|s| json!({"keyid": "", "sig": s}))
            .collect();
        serde_json::to_string(&json!({"payload": to_base64(payload), "payloadType": payload_type, "signatures": sigs})).unwrap()
    }

    fn proposal(env: &str, verifiers: &[Vec<u8>]) -> Value {
        let verifiers: Vec<String> = verifiers.iter().map(|v| to_base64(v)).collect();
        json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {"envelope": env, "verifiers": verifiers}}})
    }

    fn parse(v: &Value) -> Result<super::super::Entry, EntryError> {
        parse_proposed(&serde_json::to_vec(v).unwrap())
    }

    const STATEMENT: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"AB12"}}],"predicateType":"x","predicate":{"materials":[{"digest":{"sha1":"CD34"}}]}}"#;

    #[test]
    fn a_real_rekor_entry_is_rebuilt_byte_for_byte() {
        let entry = parse_proposed(REAL_REQUEST.as_bytes()).unwrap();
        assert_eq!(entry.kind, Kind::Dsse);
        assert_eq!(String::from_utf8(entry.canonical).unwrap(), REAL_BODY);
        assert!(entry.index_keys.contains(
            &"https://github.com/trailofbits/pypi-attestation-models/.github/workflows/release.yml@refs/tags/v0.0.4a2".to_owned()
        ));
        assert!(entry.index_keys.contains(
            &"sha256:c9709ce6fd5b67b59b4a28758cf14d3f411803c4b89b6068b1f1a8e4ee94c8ef".to_owned()
        ));
        // A flipped payload byte breaks the signature.
        let tampered = REAL_REQUEST.replacen("eyJfdHlwZSI6", "eyJfdHlwZSI7", 1);
        assert_eq!(
            parse_proposed(tampered.as_bytes()).unwrap_err(),
            invalid("could not verify envelope: accepted signatures do not match threshold, Found: 0, Expected 1")
        );
    }

    #[test]
    fn every_key_type_verifies_with_sha256_and_the_body_is_exact() {
        // P-384/P-521 over SHA-256 go through the same digest verifier as
        // P-256; aws-lc-rs cannot sign that pair, so they are not generated here.
        let keys = [
            TestKey::ecdsa(Curve::P256),
            TestKey::rsa(aws_lc_rs::rsa::KeySize::Rsa2048),
            TestKey::ed25519(),
        ];
        for key in &keys {
            let sig = sign(key, INTOTO_PAYLOAD_TYPE, STATEMENT);
            let env = envelope(INTOTO_PAYLOAD_TYPE, STATEMENT, std::slice::from_ref(&sig));
            let entry = parse(&proposal(&env, &[key.public_pem()])).unwrap();
            let expected = format!(
                r#"{{"apiVersion":"0.0.1","kind":"dsse","spec":{{"envelopeHash":{{"algorithm":"sha256","value":"{}"}},"payloadHash":{{"algorithm":"sha256","value":"{}"}},"signatures":[{{"signature":"{sig}","verifier":"{}"}}]}}}}"#,
                hex::encode(Sha256::digest(env.as_bytes())),
                hex::encode(Sha256::digest(STATEMENT)),
                to_base64(&key.public_pem())
            );
            assert_eq!(String::from_utf8(entry.canonical).unwrap(), expected);
            assert_eq!(
                entry.index_keys,
                [
                    format!("sha256:{}", hex::encode(Sha256::digest(key.public_pem()))),
                    format!("sha256:{}", hex::encode(Sha256::digest(STATEMENT))),
                    format!("sha256:{}", hex::encode(Sha256::digest(env.as_bytes()))),
                    "sha256:ab12".to_owned(),
                    "sha1:cd34".to_owned(),
                ]
            );
        }
    }

    #[test]
    fn signatures_are_sorted_and_certificate_sans_indexed() {
        let ca = TestKey::ecdsa(Curve::P256);
        let (a, b) = (TestKey::ecdsa(Curve::P256), TestKey::ecdsa(Curve::P256));
        let mut spec = CertSpec::leaf("", "CA");
        spec.sans = vec![san_email("Dev@Example.com")];
        let cert = pem("CERTIFICATE", &certificate(&spec, &a.spki(), &ca));
        let (sa, sb) = (sign(&a, "text/plain", b"hi"), sign(&b, "text/plain", b"hi"));
        let env = envelope("text/plain", b"hi", &[sa.clone(), sb.clone()]);
        let entry = parse(&proposal(&env, &[b.public_pem(), cert.clone()])).unwrap();
        let body: Value = serde_json::from_slice(&entry.canonical).unwrap();
        let sigs = body["spec"]["signatures"].as_array().unwrap();
        let mut expected = [(sa, to_base64(&cert)), (sb, to_base64(&b.public_pem()))];
        expected.sort();
        for (got, (sig, verifier)) in sigs.iter().zip(&expected) {
            assert_eq!(got["signature"], *sig);
            assert_eq!(got["verifier"], *verifier);
        }
        assert!(entry.index_keys.contains(&"dev@example.com".to_owned()));
        // Non-in-toto payloads index no statement digests.
        assert_eq!(entry.index_keys.len(), 2 + 1 + 2);
    }

    #[test]
    fn envelopes_over_the_caps_are_refused_before_any_signature_check() {
        use super::super::envelope::{too_many_signatures, too_many_verifiers, VERIFICATIONS};
        let key = TestKey::ecdsa(Curve::P256);
        let sig = sign(&key, "t", b"p");
        VERIFICATIONS.with(|n| n.set(0));
        let crowded = envelope("t", b"p", &vec![sig.clone(); 17]);
        assert_eq!(
            parse(&proposal(&crowded, &[key.public_pem()])).unwrap_err(),
            invalid(&too_many_signatures(17))
        );
        let one = envelope("t", b"p", std::slice::from_ref(&sig));
        assert_eq!(
            parse(&proposal(&one, &vec![key.public_pem(); 17])).unwrap_err(),
            invalid(&too_many_verifiers(17))
        );
        assert_eq!(VERIFICATIONS.with(std::cell::Cell::get), 0);
        assert_eq!(
            too_many_signatures(17),
            "DSSE envelope has 17 signatures; at most 16 are accepted"
        );
        assert_eq!(
            too_many_verifiers(17),
            "17 verifiers given; at most 16 are accepted"
        );
    }

    #[test]
    fn sixteen_keys_and_signatures_stay_within_the_bounded_work() {
        use super::super::envelope::VERIFICATIONS;
        let keys: Vec<TestKey> = (0..16).map(|_| TestKey::ecdsa(Curve::P256)).collect();
        let sigs: Vec<String> = keys.iter().map(|k| sign(k, "t", b"p")).collect();
        let pems: Vec<Vec<u8>> = keys.iter().map(TestKey::public_pem).collect();
        VERIFICATIONS.with(|n| n.set(0));
        let entry = parse(&proposal(&envelope("t", b"p", &sigs), &pems)).unwrap();
        assert_eq!(entry.index_keys.len(), 16 + 2);
        // Key i fails on the i signatures before its own: 16 * 17 / 2 checks.
        assert_eq!(VERIFICATIONS.with(std::cell::Cell::get), 136);
    }

    #[test]
    fn a_statement_that_would_write_a_bad_index_key_is_refused() {
        let key = TestKey::ecdsa(Curve::P256);
        for (digest, why) in [
            (
                r"\u0000",
                r#"search index key "sha256:\0" contains the control character U+0000"#
                    .to_owned(),
            ),
            (
                &*"a".repeat(3000),
                r#"search index key "sha256:aaaaaaaaaaaaaaaaaaaaaaaaa..." is 3007 bytes long, more than the 512 allowed"#
                    .to_owned(),
            ),
        ] {
            let statement = format!(r#"{{"subject":[{{"name":"x","digest":{{"sha256":"{digest}"}}}}]}}"#);
            let sig = sign(&key, INTOTO_PAYLOAD_TYPE, statement.as_bytes());
            let env = envelope(INTOTO_PAYLOAD_TYPE, statement.as_bytes(), &[sig]);
            assert_eq!(
                parse(&proposal(&env, &[key.public_pem()])).unwrap_err(),
                invalid(&format!("entry not insertable into log: {why}"))
            );
            // Searching for it is no write: the entry is only looked up.
            let body = serde_json::to_vec(&proposal(&env, &[key.public_pem()])).unwrap();
            assert!(parse_search(&body).is_ok());
        }
    }

    #[test]
    fn payloads_and_envelopes_over_the_json_limits_are_refused() {
        let key = TestKey::ecdsa(Curve::P256);
        let deep = format!(r#"{{"subject":{}{}}}"#, "[".repeat(70), "]".repeat(70));
        let sig = sign(&key, INTOTO_PAYLOAD_TYPE, deep.as_bytes());
        let env = envelope(INTOTO_PAYLOAD_TYPE, deep.as_bytes(), &[sig]);
        assert_eq!(
            parse(&proposal(&env, &[key.public_pem()])).unwrap_err(),
            invalid("in-toto statement refused: JSON nested deeper than 64 levels")
        );
        let wide = format!(r#"{{"x":[{}0]}}"#, "0,".repeat(100_000));
        assert_eq!(
            parse(&proposal(&wide, &[key.public_pem()])).unwrap_err(),
            invalid("invalid JSON: JSON document holds more than 100000 values")
        );
    }

    #[test]
    fn verifier_rules_follow_rekor() {
        let (a, b) = (TestKey::ecdsa(Curve::P256), TestKey::ecdsa(Curve::P256));
        let sa = sign(&a, "t", b"p");
        let one = envelope("t", b"p", std::slice::from_ref(&sa));
        // Verifiers after every signature is covered are not even parsed.
        assert!(parse(&proposal(&one, &[a.public_pem(), b"junk".to_vec()])).is_ok());
        assert_eq!(
            parse(&proposal(&one, &[b.public_pem(), a.public_pem()])).unwrap_err(),
            invalid("could not verify envelope: accepted signatures do not match threshold, Found: 0, Expected 1")
        );
        assert_eq!(
            parse(&proposal(&one, &[b"junk".to_vec()])).unwrap_err(),
            invalid("could not parse public key as x509: invalid public key: failure decoding PEM")
        );
        let two = envelope("t", b"p", &[sa, sign(&b, "t", b"p")]);
        assert_eq!(
            parse(&proposal(&two, &[a.public_pem()])).unwrap_err(),
            invalid("all signatures must have a key that verifies it")
        );
        // One key covers one signature per pass, even if it made two.
        let twice = envelope("t", b"p", &[sign(&a, "t", b"p"), sign(&a, "t", b"p")]);
        assert_eq!(
            parse(&proposal(&twice, &[a.public_pem()])).unwrap_err(),
            invalid("all signatures must have a key that verifies it")
        );
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let a = TestKey::ecdsa(Curve::P256);
        let key = [a.public_pem()];
        for (env, msg) in [
            (r#"{"payloadType":"t","payload":"cA==","signatures":[]}"#.to_owned(), "DSSE envelope must contain 1 or more signatures"),
            ("[1]".to_owned(), "json: cannot unmarshal array into Go value of type dsse.Envelope"),
            (r#"{"payload":"!!","signatures":[{"sig":"AA=="}]}"#.to_owned(), "could not verify envelope: unable to base64 decode payload (is payload in the right format?)"),
        ] {
            assert_eq!(parse(&proposal(&env, &key)).unwrap_err(), invalid(msg), "{env}");
        }
    }

    fn refusal(spec: Value) -> EntryError {
        parse(&json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": spec})).unwrap_err()
    }

    #[test]
    fn schema_and_form_errors_are_named() {
        let digest = json!({"algorithm": "sha256", "value": "00"});
        let either =
            "either proposedContent or envelopeHash, payloadHash, and signatures must be present";
        for (spec, msg) in [
            (json!("x"), "unsupported input type string for DecodeEntry".to_owned()),
            (json!({}), either.to_owned()),
            (json!({"envelopeHash": digest, "payloadHash": digest, "signatures": []}), either.to_owned()),
            (json!({"proposedContent": {"envelope": "{}", "verifiers": ["AA=="]}, "payloadHash": digest}),
             format!("{either} but not both")),
            (json!({"proposedContent": {}}),
             "validation failure list:\nproposedContent.envelope in body is required\nproposedContent.verifiers in body is required".to_owned()),
            (json!({"proposedContent": {"envelope": "{}", "verifiers": ["", 7]}}),
             "validation failure list:\nproposedContent.verifiers in body should have at least 1 items".to_owned()),
            (json!({"envelopeHash": {"algorithm": "md5"}, "payloadHash": {"value": "x"}, "signatures": [{"signature": "A"}]}),
             format!("validation failure list:\nenvelopeHash.algorithm in body should be one of [sha256]\nenvelopeHash.value in body is required\npayloadHash.algorithm in body is required\nsignatures.0.signature in body should match '{SIGNATURE_PATTERN}'\nsignatures.0.verifier in body is required")),
            (json!({"proposedContent": {"envelope": "{}", "verifiers": ["A*=="]}}),
             "failed parsing base64 data for verifier: illegal base64 data at input byte 1".to_owned()),
            (json!({"signatures": [{"signature": "AA==", "verifier": "!"}]}),
             "failed parsing base64 data for signature verifier: illegal base64 data at input byte 0".to_owned()),
        ] {
            assert_eq!(refusal(spec.clone()), invalid(&msg), "{spec}");
        }
    }

    #[test]
    fn the_committed_form_is_searchable_but_not_insertable() {
        let a = TestKey::ecdsa(Curve::P256);
        let sig = sign(&a, "t", b"p");
        let env = envelope("t", b"p", std::slice::from_ref(&sig));
        let stored = parse(&proposal(&env, &[a.public_pem()])).unwrap();
        let body: Value = serde_json::from_slice(&stored.canonical).unwrap();
        let committed = json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": body["spec"]});
        let bytes = serde_json::to_vec(&committed).unwrap();
        let found = parse_search(&bytes).unwrap();
        assert_eq!(found.canonical, stored.canonical);
        assert!(found.index_keys.is_empty());
        assert_eq!(
            parse_proposed(&bytes).unwrap_err(),
            invalid("entry not insertable into log: missing proposed content")
        );
        // A disabled kind is refused after validation, before insertability.
        assert_eq!(
            parse_for_insert(&bytes, |k| k != Kind::Dsse).unwrap_err(),
            invalid("entry kind 'dsse' is not enabled for submission on this server")
        );
        let proposed = serde_json::to_vec(&proposal(&env, &[a.public_pem()])).unwrap();
        assert!(parse_for_insert(&proposed, |k| k != Kind::HashedRekord).is_ok());
    }

    #[test]
    fn unknown_versions_are_refused() {
        assert_eq!(
            parse(&json!({"apiVersion": "0.0.2", "kind": "dsse", "spec": {}})).unwrap_err(),
            invalid("dsse implementation for version '0.0.2' not found: unable to locate entry for version 0.0.2")
        );
    }
}
