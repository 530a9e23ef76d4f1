//! `intoto` 0.0.2 and 0.0.1: a DSSE envelope carrying an in-toto statement.
//!
//! Spec: rekor-v1.md T-04 (0.0.2, sigstore-js legacy), T-05 (0.0.1, older
//! cosign and cosign's legacy search), E-07. Mirrors sigstore/rekor
//! `pkg/types/intoto/v0.0.{1,2}/entry.go` and their generated models.
//!
//! 0.0.2 sends the envelope as an object whose `payload` and `sig` are base64
//! **of the envelope's base64 strings**; every signature carries its own key.
//! The body keeps the signatures and the client's `hash`, drops the payload
//! and recomputes `payloadHash`.
//!
//! 0.0.1 sends the envelope as a string with one key; the body keeps only the
//! server-computed hashes and the canonical key.

use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use super::decoding::{
    object, sha256_json, spec_object, std_base64, string, to_base64, Digest, Violations,
};
use super::envelope::{self, Envelope, Signature, INTOTO_PAYLOAD_TYPE};
use super::pki::PublicKey;
use super::{EntryError, Kind, Validated};

/// The versions of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// 0.0.1 (T-05).
    V001,
    /// 0.0.2 (T-04), the default.
    V002,
}

impl Version {
    pub(super) fn parse(version: &str) -> Option<Self> {
        match version {
            "0.0.1" => Some(Self::V001),
            "0.0.2" => Some(Self::V002),
            _ => None,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::V001 => "0.0.1",
            Self::V002 => "0.0.2",
        }
    }
}

fn invalid(msg: impl Into<String>) -> EntryError {
    EntryError::Invalid(msg.into())
}

/// Validates an `intoto` `spec` of `version`.
pub(super) fn validate(version: Version, spec: &Value) -> Result<Validated, EntryError> {
    match version {
        Version::V001 => v001(spec),
        Version::V002 => v002(spec),
    }
}

// ---- 0.0.2 ----

/// One `content.envelope.signatures[]` item, base64-decoded.
struct V2Signature {
    keyid: Option<String>,
    sig: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
}

struct V2Decoded<'a> {
    payload_type: Option<&'a str>,
    /// Once-decoded `payload`: the envelope's base64 text. Empty when absent.
    payload: Vec<u8>,
    /// `Some` when `signatures` is an array; non-object items are dropped.
    signatures: Option<Vec<V2Signature>>,
    hash: Option<Digest<'a>>,
    payload_hash: Option<Digest<'a>>,
}

fn v2_decode(spec: &Value) -> Result<V2Decoded<'_>, EntryError> {
    let spec = spec_object(spec)?;
    let content = object(spec, "content");
    let env = content.and_then(|c| object(c, "envelope"));
    let decoded = |field: &str, what: &str| -> Result<Option<Vec<u8>>, EntryError> {
        env.and_then(|e| string(e, field))
            .filter(|s| !s.is_empty())
            .map(|s| {
                std_base64(s)
                    .map_err(|e| invalid(format!("failed parsing base64 data for {what}: {e}")))
            })
            .transpose()
    };
    let payload = decoded("payload", "payload")?.unwrap_or_default();
    let signatures = env
        .and_then(|e| e.get("signatures"))
        .and_then(Value::as_array)
        .map(|items| {
            // Each item carries its own key: this caps the verifiers too.
            if items.len() > envelope::MAX_ENVELOPE_SIGNATURES {
                return Err(invalid(envelope::too_many_signatures(items.len())));
            }
            items
                .iter()
                .filter_map(Value::as_object)
                .map(v2_signature)
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(V2Decoded {
        payload_type: env.and_then(|e| string(e, "payloadType")),
        payload,
        signatures,
        hash: content.and_then(|c| Digest::read(c, "hash")),
        payload_hash: content.and_then(|c| Digest::read(c, "payloadHash")),
    })
}

fn v2_signature(item: &Map<String, Value>) -> Result<V2Signature, EntryError> {
    let field = |name: &str, what: &str| {
        string(item, name)
            .map(|s| {
                std_base64(s)
                    .map_err(|e| invalid(format!("failed parsing base64 data for {what}: {e}")))
            })
            .transpose()
    };
    Ok(V2Signature {
        keyid: string(item, "keyid").map(str::to_owned),
        sig: field("sig", "signature")?,
        public_key: field("publicKey", "public key")?,
    })
}

fn v2_check_schema(d: &V2Decoded<'_>) -> Result<(), EntryError> {
    let mut v = Violations::default();
    if d.payload_type.is_none() {
        v.required("content.envelope.payloadType");
    }
    match &d.signatures {
        None => v.required("content.envelope.signatures"),
        Some(s) if s.is_empty() => v.too_few("content.envelope.signatures", 1),
        Some(sigs) => {
            for (i, s) in sigs.iter().enumerate() {
                if s.public_key.is_none() {
                    v.required(&format!("content.envelope.signatures.{i}.publicKey"));
                }
                if s.sig.is_none() {
                    v.required(&format!("content.envelope.signatures.{i}.sig"));
                }
            }
        }
    }
    if let Some(h) = &d.hash {
        v.sha256_digest("content.hash", h);
    }
    if let Some(h) = &d.payload_hash {
        v.sha256_digest("content.payloadHash", h);
    }
    v.finish()
}

fn v002(spec: &Value) -> Result<Validated, EntryError> {
    let d = v2_decode(spec)?;
    v2_check_schema(&d)?;
    let sigs = d.signatures.as_deref().unwrap_or_default();
    let payload_type = d.payload_type.unwrap_or_default();
    // Without a payload nothing is verified (Rekor's search path); the
    // client's payloadHash is then kept.
    let verified = if d.payload.is_empty() {
        None
    } else {
        Some(v2_verify(&d.payload, payload_type, sigs)?)
    };
    let not_insertable = v2_not_insertable(&d, sigs);
    let hash = d.hash.ok_or_else(|| invalid("missing envelope digest"))?;
    let payload_hash = match &verified {
        Some((_, payload)) => sha256_json(&Sha256::digest(payload)),
        None => d
            .payload_hash
            .ok_or_else(|| invalid("missing payload digest"))?
            .to_json(),
    };
    let signatures: Vec<Value> = sigs.iter().map(v2_signature_json).collect();
    let mut index_keys = Vec::new();
    if let Some((keys, payload)) = &verified {
        for key in keys {
            index_keys.push(format!(
                "sha256:{}",
                hex::encode(Sha256::digest(key.canonical_pem()))
            ));
            index_keys.extend(key.subjects().iter().map(|s| s.to_lowercase()));
        }
        index_keys.push(format!("sha256:{}", hex::encode(Sha256::digest(payload))));
        if payload_type == INTOTO_PAYLOAD_TYPE {
            index_keys.extend(statement_keys(payload)?);
        }
    }
    let body = json!({
        "apiVersion": Version::V002.name(),
        "kind": Kind::Intoto.name(),
        "spec": {"content": {
            "envelope": {"payloadType": payload_type, "signatures": signatures},
            "hash": hash.to_json(),
            "payloadHash": payload_hash,
        }}
    });
    Ok(Validated {
        body,
        index_keys,
        not_insertable,
    })
}

/// Rebuilds the envelope from the once-decoded strings and runs rekor's
/// 0.0.2 `verifyEnvelope`: every key must verify a signature, every signature
/// must be verified. Returns the keys and the decoded payload.
fn v2_verify(
    payload_text: &[u8],
    payload_type: &str,
    sigs: &[V2Signature],
) -> Result<(Vec<PublicKey>, Vec<u8>), EntryError> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let env = Envelope {
        payload_type: payload_type.to_owned(),
        payload: text(payload_text),
        signatures: sigs
            .iter()
            .map(|s| Signature {
                keyid: s.keyid.clone().unwrap_or_default(),
                sig: text(s.sig.as_deref().unwrap_or_default()),
            })
            .collect(),
    };
    let mut covered = vec![false; sigs.len()];
    let mut keys = Vec::with_capacity(sigs.len());
    for s in sigs {
        let key = PublicKey::parse(s.public_key.as_deref().unwrap_or_default())
            .map_err(|e| invalid(format!("could not parse public key as x509: {e}")))?;
        // The key is named by the keyid of the item that carries it, if any:
        // a signature naming another key is not tried with it.
        let keyid = s.keyid.as_deref().filter(|id| !id.is_empty());
        let (accepted, _) = env
            .verify_with(&key, keyid)
            .map_err(|e| invalid(format!("could not verify envelope: {e}")))?;
        for (i, other) in env.signatures.iter().enumerate() {
            covered[i] |= other.sig == env.signatures[accepted].sig;
        }
        keys.push(key);
    }
    if covered.contains(&false) {
        return Err(invalid("all signatures must have a key that verifies it"));
    }
    let payload = std_base64(&env.payload)
        .map_err(|e| invalid(format!("could not decode envelope payload: {e}")))?;
    Ok((keys, payload))
}

/// rekor 0.0.2 `Insertable`: why the entry cannot be written, if so.
fn v2_not_insertable(d: &V2Decoded<'_>, sigs: &[V2Signature]) -> Option<&'static str> {
    if d.payload.is_empty() {
        return Some("missing envelope content");
    }
    if d.payload_type.is_none_or(str::is_empty) {
        return Some("missing payloadType content");
    }
    sigs.iter().find_map(|s| {
        if s.sig.as_ref().is_none_or(Vec::is_empty) {
            Some("missing signature content")
        } else if s.public_key.as_ref().is_none_or(Vec::is_empty) {
            Some("missing publicKey content")
        } else {
            None
        }
    })
}

/// A body signature: `keyid` only when non-empty; `sig` and `publicKey`
/// re-encoded from their decoded bytes, as Go marshals `strfmt.Base64`.
fn v2_signature_json(s: &V2Signature) -> Value {
    let mut out = Map::new();
    if let Some(id) = s.keyid.as_deref().filter(|id| !id.is_empty()) {
        out.insert("keyid".into(), Value::String(id.to_owned()));
    }
    if let Some(pk) = &s.public_key {
        out.insert("publicKey".into(), Value::String(to_base64(pk)));
    }
    if let Some(sig) = &s.sig {
        out.insert("sig".into(), Value::String(to_base64(sig)));
    }
    Value::Object(out)
}

/// Subject digests, then SLSA material digests, each only when Go decodes
/// that part of the statement (rekor `parseStatement`, `parseSlsaPredicate`).
fn statement_keys(payload: &[u8]) -> Result<Vec<String>, EntryError> {
    let stmt = envelope::statement(payload).map_err(invalid)?;
    let mut keys = envelope::subject_digests(&stmt).unwrap_or_default();
    keys.extend(envelope::material_digests(&stmt).unwrap_or_default());
    let keys: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
    #[cfg(test)]
    super::committed::record_statement_keys(&keys);
    Ok(keys)
}

// ---- 0.0.1 ----

struct V1Decoded<'a> {
    /// `Some` when `content` is an object.
    content: Option<V1Content<'a>>,
    /// Decoded `publicKey`, when a non-empty string.
    public_key: Option<Vec<u8>>,
}

struct V1Content<'a> {
    /// The envelope JSON text; empty when absent.
    envelope: &'a str,
    hash: Option<Digest<'a>>,
    payload_hash: Option<Digest<'a>>,
}

fn v1_decode(spec: &Value) -> Result<V1Decoded<'_>, EntryError> {
    let spec = spec_object(spec)?;
    let content = object(spec, "content").map(|c| V1Content {
        envelope: string(c, "envelope").unwrap_or_default(),
        hash: Digest::read(c, "hash"),
        payload_hash: Digest::read(c, "payloadHash"),
    });
    let public_key = string(spec, "publicKey")
        .filter(|s| !s.is_empty())
        .map(|s| {
            std_base64(s)
                .map_err(|e| invalid(format!("failed parsing base64 data for public key: {e}")))
        })
        .transpose()?;
    Ok(V1Decoded {
        content,
        public_key,
    })
}

fn v001(spec: &Value) -> Result<Validated, EntryError> {
    let d = v1_decode(spec)?;
    let mut v = Violations::default();
    match &d.content {
        None => v.required("content"),
        Some(c) => {
            if let Some(h) = &c.hash {
                v.sha256_digest("content.hash", h);
            }
            if let Some(h) = &c.payload_hash {
                v.sha256_digest("content.payloadHash", h);
            }
        }
    }
    if d.public_key.is_none() {
        v.required("publicKey");
    }
    v.finish()?;
    let (Some(content), Some(pem)) = (&d.content, &d.public_key) else {
        unreachable!("checked by the schema");
    };
    let key = PublicKey::parse(pem).map_err(|e| invalid(e.to_string()))?;
    if content.envelope.is_empty() {
        return v1_committed(content, &key);
    }
    let env = Envelope::parse(content.envelope).map_err(invalid)?;
    // sigstore's `WrapVerifier` gives the key its SSH fingerprint as key ID.
    let keyid = envelope::ssh_key_id(&key);
    env.verify_with(&key, keyid.as_deref()).map_err(invalid)?;
    let payload = std_base64(&env.payload).map_err(invalid)?;
    let not_insertable =
        (env.payload.is_empty() || env.payload_type.is_empty()).then_some("invalid DSSE envelope");
    let hash = Sha256::digest(content.envelope.as_bytes());
    let payload_hash = Sha256::digest(&payload);
    let key_hash = hex::encode(Sha256::digest(key.canonical_pem()));
    let mut index_keys = vec![format!("sha256:{}", hex::encode(hash))];
    index_keys.push(format!("sha256:{key_hash}"));
    index_keys.extend(key.subjects().iter().map(|s| s.to_lowercase()));
    index_keys.push(format!("sha256:{}", hex::encode(payload_hash)));
    if env.payload_type == INTOTO_PAYLOAD_TYPE {
        index_keys.extend(statement_keys(&payload)?);
    }
    Ok(Validated {
        body: v1_body(&key, sha256_json(&hash), Some(sha256_json(&payload_hash))),
        index_keys,
        not_insertable,
    })
}

/// 0.0.1 without an envelope: the client's hashes are checked and kept
/// (search only).
fn v1_committed(content: &V1Content<'_>, key: &PublicKey) -> Result<Validated, EntryError> {
    let Some(hash) = content.hash else {
        return Err(invalid("missing hash value for envelope"));
    };
    Ok(Validated {
        body: v1_body(
            key,
            hash.to_json(),
            content.payload_hash.map(Digest::to_json),
        ),
        index_keys: Vec::new(),
        not_insertable: Some("missing envelope content"),
    })
}

fn v1_body(key: &PublicKey, hash: Value, payload_hash: Option<Value>) -> Value {
    let mut content = Map::new();
    content.insert("hash".into(), hash);
    if let Some(ph) = payload_hash {
        content.insert("payloadHash".into(), ph);
    }
    json!({
        "apiVersion": Version::V001.name(),
        "kind": Kind::Intoto.name(),
        "spec": {"content": content, "publicKey": to_base64(key.canonical_pem())}
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::envelope::{pae, ssh_key_id};
    use super::super::pki::Curve;
    use super::super::test_support::TestKey;
    use super::super::{parse_proposed, parse_search, Entry, EntryError};
    use super::*;

    /// sigstore-go `pkg/testing/data/bundles/dsse.sigstore.json`: a real
    /// public-good entry (log index 6800908) written by sigstore-js; the
    /// proposal is rebuilt from the bundle's envelope and certificate.
    const REAL_REQUEST: &str = include_str!("../../tests/fixtures/v1/intoto-v002-request.json");
    const REAL_BODY: &str = include_str!("../../tests/fixtures/v1/intoto-v002-body.json");

    const STATEMENT: &[u8] = br#"{"subject":[{"digest":{"sha256":"AA11"}}],"predicate":{"materials":[{"digest":{"sha1":"BB22"}}]}}"#;

    fn invalid(msg: &str) -> EntryError {
        EntryError::Invalid(msg.to_owned())
    }

    fn parse(v: &Value) -> Result<Entry, EntryError> {
        parse_proposed(&serde_json::to_vec(v).unwrap())
    }

    /// The envelope's base64 signature text for `key` over PAE.
    fn sig_text(key: &TestKey, payload: &[u8]) -> String {
        let message = pae(INTOTO_PAYLOAD_TYPE, payload);
        to_base64(&key.sign_digest(&Sha256::digest(message)))
    }

    fn v2(payload: &[u8], sigs: &[(String, &TestKey)]) -> Value {
        let sigs: Vec<Value> = sigs
            .iter()
            .map(|(s, k)| json!({"sig": to_base64(s.as_bytes()), "publicKey": to_base64(&k.public_pem())}))
            .collect();
        json!({"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {
            "envelope": {"payloadType": INTOTO_PAYLOAD_TYPE,
                         "payload": to_base64(to_base64(payload).as_bytes()), "signatures": sigs},
            "hash": {"algorithm": "sha256", "value": "client-value"},
            "payloadHash": {"algorithm": "sha256", "value": "ignored"}}}})
    }

    #[test]
    fn a_real_v002_entry_is_rebuilt_byte_for_byte() {
        let entry = parse_proposed(REAL_REQUEST.as_bytes()).unwrap();
        assert_eq!(entry.kind, Kind::Intoto);
        assert_eq!(String::from_utf8(entry.canonical).unwrap(), REAL_BODY);
        assert!(entry.index_keys.contains(&"brian@dehamer.com".to_owned()));
        let tampered = REAL_REQUEST.replacen("\"payloadHash\"", "\"x\"", 1);
        assert_eq!(
            parse_proposed(tampered.as_bytes()).unwrap().canonical,
            REAL_BODY.as_bytes()
        );
    }

    #[test]
    fn v002_keeps_the_client_hash_and_recomputes_the_payload_hash() {
        let key = TestKey::ecdsa(Curve::P256);
        let sig = sig_text(&key, STATEMENT);
        let mut proposal = v2(STATEMENT, &[(sig.clone(), &key)]);
        proposal["spec"]["content"]["envelope"]["signatures"][0]["keyid"] = json!("");
        let entry = parse(&proposal).unwrap();
        let expected = format!(
            r#"{{"apiVersion":"0.0.2","kind":"intoto","spec":{{"content":{{"envelope":{{"payloadType":"{INTOTO_PAYLOAD_TYPE}","signatures":[{{"publicKey":"{}","sig":"{}"}}]}},"hash":{{"algorithm":"sha256","value":"client-value"}},"payloadHash":{{"algorithm":"sha256","value":"{}"}}}}}}}}"#,
            to_base64(&key.public_pem()),
            to_base64(sig.as_bytes()),
            hex::encode(Sha256::digest(STATEMENT))
        );
        assert_eq!(String::from_utf8(entry.canonical).unwrap(), expected);
        assert_eq!(
            entry.index_keys,
            [
                format!("sha256:{}", hex::encode(Sha256::digest(key.public_pem()))),
                format!("sha256:{}", hex::encode(Sha256::digest(STATEMENT))),
                "sha256:aa11".to_owned(),
                "sha1:bb22".to_owned(),
            ]
        );
        proposal["spec"]["content"]["envelope"]["signatures"][0]["keyid"] = json!("k1");
        let body: Value = serde_json::from_slice(&parse(&proposal).unwrap().canonical).unwrap();
        assert_eq!(
            body["spec"]["content"]["envelope"]["signatures"][0]["keyid"],
            "k1"
        );
    }

    #[test]
    fn v002_every_key_must_verify_and_every_signature_be_verified() {
        let (a, b) = (TestKey::ecdsa(Curve::P256), TestKey::ecdsa(Curve::P256));
        let sa = sig_text(&a, STATEMENT);
        assert_eq!(
            parse(&v2(STATEMENT, &[(sa.clone(), &b)])).unwrap_err(),
            invalid("could not verify envelope: accepted signatures do not match threshold, Found: 0, Expected 1")
        );
        assert_eq!(
            parse(&v2(
                STATEMENT,
                &[(sa.clone(), &a), (sa.clone(), &a), (sig_text(&b, b"x"), &a)]
            ))
            .unwrap_err(),
            invalid("all signatures must have a key that verifies it")
        );
        let mut bad_key = v2(STATEMENT, &[(sa, &a)]);
        bad_key["spec"]["content"]["envelope"]["signatures"][0]["publicKey"] =
            json!(to_base64(b"junk"));
        assert_eq!(
            parse(&bad_key).unwrap_err(),
            invalid("could not parse public key as x509: invalid public key: failure decoding PEM")
        );
    }

    #[test]
    fn v002_over_sixteen_signatures_is_refused_before_any_check() {
        use super::super::envelope::{too_many_signatures, VERIFICATIONS};
        let key = TestKey::ecdsa(Curve::P256);
        let sig = sig_text(&key, STATEMENT);
        let sigs: Vec<(String, &TestKey)> = (0..17).map(|_| (sig.clone(), &key)).collect();
        VERIFICATIONS.with(|n| n.set(0));
        assert_eq!(
            parse(&v2(STATEMENT, &sigs)).unwrap_err(),
            invalid(&too_many_signatures(17))
        );
        assert_eq!(VERIFICATIONS.with(std::cell::Cell::get), 0);
        assert!(parse(&v2(STATEMENT, &sigs[..16])).is_ok());
    }

    #[test]
    fn v002_keys_are_tried_only_on_signatures_with_their_keyid() {
        use super::super::envelope::VERIFICATIONS;
        let keys: Vec<TestKey> = (0..16).map(|_| TestKey::ecdsa(Curve::P256)).collect();
        let sigs: Vec<(String, &TestKey)> =
            keys.iter().map(|k| (sig_text(k, STATEMENT), k)).collect();
        let mut named = v2(STATEMENT, &sigs);
        for (i, s) in named["spec"]["content"]["envelope"]["signatures"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            s["keyid"] = json!(format!("key-{i}"));
        }
        VERIFICATIONS.with(|n| n.set(0));
        assert!(parse(&named).is_ok());
        // One check per key, not one per signature before its own.
        assert_eq!(VERIFICATIONS.with(std::cell::Cell::get), 16);
        // Without key IDs every key is tried in envelope order, as by Rekor.
        VERIFICATIONS.with(|n| n.set(0));
        assert!(parse(&v2(STATEMENT, &sigs)).is_ok());
        assert_eq!(VERIFICATIONS.with(std::cell::Cell::get), 16 * 17 / 2);
        // A key is not tried on a signature that names another key ID: here
        // each item carries the other item's signature.
        let crossed = [
            (sig_text(&keys[1], STATEMENT), &keys[0]),
            (sig_text(&keys[0], STATEMENT), &keys[1]),
        ];
        let mut wrong = v2(STATEMENT, &crossed);
        assert!(parse(&wrong).is_ok());
        wrong["spec"]["content"]["envelope"]["signatures"][0]["keyid"] = json!("a");
        wrong["spec"]["content"]["envelope"]["signatures"][1]["keyid"] = json!("b");
        assert_eq!(
            parse(&wrong).unwrap_err(),
            invalid("could not verify envelope: accepted signatures do not match threshold, Found: 0, Expected 1")
        );
    }

    type Edit = Box<dyn FnOnce(&mut Value)>;

    fn v2_refusal(edit: impl FnOnce(&mut Value)) -> EntryError {
        let key = TestKey::ecdsa(Curve::P256);
        let mut v = v2(STATEMENT, &[(sig_text(&key, STATEMENT), &key)]);
        edit(&mut v["spec"]["content"]);
        parse(&v).unwrap_err()
    }

    #[test]
    fn v002_schema_and_decoding_errors_are_named() {
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|c| { c["envelope"].as_object_mut().unwrap().remove("payloadType"); }),
             "validation failure list:\ncontent.envelope.payloadType in body is required"),
            (Box::new(|c| { c["envelope"].as_object_mut().unwrap().remove("signatures"); }),
             "validation failure list:\ncontent.envelope.signatures in body is required"),
            (Box::new(|c| c["envelope"]["signatures"] = json!([])),
             "validation failure list:\ncontent.envelope.signatures in body should have at least 1 items"),
            (Box::new(|c| c["envelope"]["signatures"] = json!([{}])),
             "validation failure list:\ncontent.envelope.signatures.0.publicKey in body is required\ncontent.envelope.signatures.0.sig in body is required"),
            (Box::new(|c| c["hash"] = json!({"algorithm": "sha1"})),
             "validation failure list:\ncontent.hash.algorithm in body should be one of [sha256]\ncontent.hash.value in body is required"),
            (Box::new(|c| c["payloadHash"] = json!({"value": "x"})),
             "validation failure list:\ncontent.payloadHash.algorithm in body is required"),
            (Box::new(|c| c["envelope"]["payload"] = json!("!!")),
             "failed parsing base64 data for payload: illegal base64 data at input byte 0"),
            (Box::new(|c| c["envelope"]["signatures"][0]["sig"] = json!("A!")),
             "failed parsing base64 data for signature: illegal base64 data at input byte 1"),
            (Box::new(|c| c["envelope"]["signatures"][0]["publicKey"] = json!("A!")),
             "failed parsing base64 data for public key: illegal base64 data at input byte 1"),
            (Box::new(|c| { c.as_object_mut().unwrap().remove("hash"); }), "missing envelope digest"),
            (Box::new(|c| c["envelope"]["payload"] = json!(to_base64(b"!!!!"))),
             "could not verify envelope: unable to base64 decode payload (is payload in the right format?)"),
            (Box::new(|c| c["envelope"]["signatures"][0]["sig"] = json!("")),
             "could not verify envelope: accepted signatures do not match threshold, Found: 0, Expected 1"),
        ];
        for (edit, msg) in cases {
            assert_eq!(v2_refusal(edit), invalid(msg));
        }
        assert_eq!(
            parse(&json!({"apiVersion": "0.0.2", "kind": "intoto", "spec": []})).unwrap_err(),
            invalid("unsupported input type []interface {} for DecodeEntry")
        );
    }

    #[test]
    fn v002_without_a_payload_is_searchable_but_not_insertable() {
        let key = TestKey::ecdsa(Curve::P256);
        let full = v2(STATEMENT, &[(sig_text(&key, STATEMENT), &key)]);
        let stored = parse(&full).unwrap();
        let mut bare = full.clone();
        bare["spec"]["content"]["envelope"]
            .as_object_mut()
            .unwrap()
            .remove("payload");
        bare["spec"]["content"]["payloadHash"]["value"] =
            json!(hex::encode(Sha256::digest(STATEMENT)));
        let bytes = serde_json::to_vec(&bare).unwrap();
        assert_eq!(parse_search(&bytes).unwrap().canonical, stored.canonical);
        assert_eq!(
            parse_proposed(&bytes).unwrap_err(),
            invalid("entry not insertable into log: missing envelope content")
        );
        bare["spec"]["content"]
            .as_object_mut()
            .unwrap()
            .remove("payloadHash");
        assert_eq!(
            parse_search(&serde_json::to_vec(&bare).unwrap()).unwrap_err(),
            invalid("missing payload digest")
        );
        let mut no_type = full;
        no_type["spec"]["content"]["envelope"]["payloadType"] = json!("");
        no_type["spec"]["content"]["envelope"]["signatures"][0]["sig"] = json!(to_base64(
            to_base64(&key.sign_digest(&Sha256::digest(pae("", STATEMENT)))).as_bytes()
        ));
        assert_eq!(
            parse(&no_type).unwrap_err(),
            invalid("entry not insertable into log: missing payloadType content")
        );
    }

    // ---- 0.0.1 ----

    fn v1(envelope: &str, key: &TestKey) -> Value {
        json!({"apiVersion": "0.0.1", "kind": "intoto", "spec": {
            "content": {"envelope": envelope, "hash": {"algorithm": "sha256", "value": "ignored"}},
            "publicKey": to_base64(&key.public_pem())}})
    }

    fn env_text(keyid: &str, sig: &str) -> String {
        serde_json::to_string(
            &json!({"payloadType": INTOTO_PAYLOAD_TYPE, "payload": to_base64(STATEMENT),
            "signatures": [{"keyid": keyid, "sig": sig}]}),
        )
        .unwrap()
    }

    #[test]
    fn v001_computes_both_hashes_and_canonicalises_the_key() {
        let key = TestKey::ecdsa(Curve::P256);
        let env = env_text("", &sig_text(&key, STATEMENT));
        let entry = parse(&v1(&env, &key)).unwrap();
        let hash = hex::encode(Sha256::digest(env.as_bytes()));
        let payload_hash = hex::encode(Sha256::digest(STATEMENT));
        assert_eq!(
            String::from_utf8(entry.canonical.clone()).unwrap(),
            format!(
                r#"{{"apiVersion":"0.0.1","kind":"intoto","spec":{{"content":{{"hash":{{"algorithm":"sha256","value":"{hash}"}},"payloadHash":{{"algorithm":"sha256","value":"{payload_hash}"}}}},"publicKey":"{}"}}}}"#,
                to_base64(&key.public_pem())
            )
        );
        assert_eq!(
            entry.index_keys,
            [
                format!("sha256:{hash}"),
                format!("sha256:{}", hex::encode(Sha256::digest(key.public_pem()))),
                format!("sha256:{payload_hash}"),
                "sha256:aa11".to_owned(),
                "sha1:bb22".to_owned(),
            ]
        );
        // Search with only the stored hash finds the same body.
        let committed = json!({"apiVersion": "0.0.1", "kind": "intoto", "spec": {
            "content": {"hash": {"algorithm": "sha256", "value": hash},
                        "payloadHash": {"algorithm": "sha256", "value": payload_hash}},
            "publicKey": to_base64(&key.public_pem())}});
        let bytes = serde_json::to_vec(&committed).unwrap();
        assert_eq!(parse_search(&bytes).unwrap().canonical, entry.canonical);
        assert_eq!(
            parse_proposed(&bytes).unwrap_err(),
            invalid("entry not insertable into log: missing envelope content")
        );
    }

    #[test]
    fn v001_honours_a_key_id_equal_to_the_ssh_fingerprint() {
        let key = TestKey::ecdsa(Curve::P256);
        let sig = sig_text(&key, STATEMENT);
        let id =
            ssh_key_id(&super::super::pki::PublicKey::parse(&key.public_pem()).unwrap()).unwrap();
        assert!(parse(&v1(&env_text(&id, &sig), &key)).is_ok());
        assert_eq!(
            parse(&v1(&env_text("other-key", &sig), &key)).unwrap_err(),
            invalid("accepted signatures do not match threshold, Found: 0, Expected 1")
        );
    }

    #[test]
    fn v001_errors_are_named() {
        let key = TestKey::ecdsa(Curve::P256);
        let good = v1(&env_text("", &sig_text(&key, STATEMENT)), &key);
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            edit(&mut v["spec"]);
            parse(&v).unwrap_err()
        };
        assert_eq!(
            with(&|s| {
                s.as_object_mut().unwrap().remove("content");
            }),
            invalid("validation failure list:\ncontent in body is required")
        );
        assert_eq!(
            with(&|s| {
                s.as_object_mut().unwrap().remove("publicKey");
            }),
            invalid("validation failure list:\npublicKey in body is required")
        );
        assert_eq!(with(&|s| s["content"]["payloadHash"] = json!({"algorithm": "md5", "value": "x"})),
            invalid("validation failure list:\ncontent.payloadHash.algorithm in body should be one of [sha256]"));
        assert_eq!(
            with(&|s| s["publicKey"] = json!("**")),
            invalid(
                "failed parsing base64 data for public key: illegal base64 data at input byte 0"
            )
        );
        assert_eq!(
            with(&|s| s["publicKey"] = json!(to_base64(b"junk"))),
            invalid("invalid public key: failure decoding PEM")
        );
        assert_eq!(
            with(&|s| s["content"] = json!({})),
            invalid("missing hash value for envelope")
        );
        assert_eq!(with(&|s| s["content"]["envelope"] = json!("{\"payload\":7}")),
            invalid("json: cannot unmarshal number into Go struct field Envelope.payload of type string"));
        assert_eq!(
            with(&|s| s["content"]["envelope"] = json!(env_text("", "AAAA"))),
            invalid("accepted signatures do not match threshold, Found: 0, Expected 1")
        );
        let url_payload = serde_json::to_string(&json!({"payloadType": "t", "payload": "-_8=",
            "signatures": [{"sig": to_base64(&key.sign_digest(&Sha256::digest(pae("t", &[0xfb, 0xff]))))}]})).unwrap();
        assert_eq!(
            with(&|s| s["content"]["envelope"] = json!(url_payload)),
            invalid("illegal base64 data at input byte 0")
        );
        let empty = serde_json::to_string(&json!({"payloadType": "", "payload": "",
            "signatures": [{"sig": to_base64(&key.sign_digest(&Sha256::digest(pae("", b""))))}]}))
        .unwrap();
        assert_eq!(
            with(&|s| s["content"]["envelope"] = json!(empty)),
            invalid("entry not insertable into log: invalid DSSE envelope")
        );
        assert_eq!(
            parse(&json!({"apiVersion": "0.0.3", "kind": "intoto", "spec": {}})).unwrap_err(),
            invalid("intoto implementation for version '0.0.3' not found: unable to locate entry for version 0.0.3")
        );
    }
}
