//! DSSE envelopes as Rekor's `dsse` and `intoto` kinds read and verify them,
//! and the in-toto digests they index.
//!
//! Spec: rekor-v1.md T-03..T-05. Mirrors secure-systems-lab/go-securesystemslib
//! `dsse/{envelope,verify}.go` (PAE, the flexible base64 decoder, the
//! threshold-1 `EnvelopeVerifier`), sigstore `pkg/signature/dsse` and
//! `signature.LoadVerifier(key, crypto.SHA256)`, and rekor's in-toto index
//! key extraction.
//!
//! One verification pass uses one key: each signature is tried in envelope
//! order and the key accepts at most the **first** one it verifies (the Go
//! verifier drops a provider once it has matched). A pass that accepts
//! nothing fails the threshold. Per-signature errors are never reported.
//!
//! Not mirrored byte for byte: the text of JSON *syntax* errors in the
//! envelope (Go's `invalid character …` messages); type errors are.

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::decoding::{flexible_base64, go_field};
use super::digest_signature::{self, HashAlgorithm};
use super::json_limits;
use super::pki::{der_tlv, Curve, KeyAlgorithm, PublicKey};

/// The in-toto payload type, whose statements are indexed.
pub(super) const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Most signatures accepted in one envelope. Clients sign with one key
/// (sigstore-js, sigstore-python, cosign); 16 leaves room for multi-party
/// signing and bounds the signature checks of an entry to
/// [`MAX_ENVELOPE_SIGNATURES`] times [`MAX_ENVELOPE_VERIFIERS`].
pub(super) const MAX_ENVELOPE_SIGNATURES: usize = 16;

/// Most verifier keys accepted with one envelope (`dsse` `verifiers`, and
/// the keys of `intoto` 0.0.2, one per signature).
pub(super) const MAX_ENVELOPE_VERIFIERS: usize = 16;

/// The refusal of an envelope with more than [`MAX_ENVELOPE_SIGNATURES`].
pub(super) fn too_many_signatures(n: usize) -> String {
    format!("DSSE envelope has {n} signatures; at most {MAX_ENVELOPE_SIGNATURES} are accepted")
}

/// The refusal of more than [`MAX_ENVELOPE_VERIFIERS`] verifiers.
pub(super) fn too_many_verifiers(n: usize) -> String {
    format!("{n} verifiers given; at most {MAX_ENVELOPE_VERIFIERS} are accepted")
}

/// go-securesystemslib's fixed message for any base64 failure in an envelope.
const BAD_BASE64: &str = "unable to base64 decode payload (is payload in the right format?)";

/// A DSSE envelope: `{payloadType, payload, signatures: [{keyid, sig}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Envelope {
    pub(super) payload_type: String,
    /// Base64 of the payload, as in the envelope.
    pub(super) payload: String,
    pub(super) signatures: Vec<Signature>,
}

/// One envelope signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Signature {
    pub(super) keyid: String,
    /// Base64 of the signature bytes, as in the envelope.
    pub(super) sig: String,
}

impl Envelope {
    /// `json.Unmarshal(text, &dsse.Envelope{})`: unknown fields ignored, keys
    /// matched case-insensitively, `null` as the zero value.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        json_limits::check(text.as_bytes()).map_err(|e| format!("invalid JSON: {e}"))?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            if e.is_eof() {
                "unexpected end of JSON input".to_owned()
            } else {
                format!("invalid JSON: {e}")
            }
        })?;
        let map = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go value of type dsse.Envelope",
                    json_kind(&other)
                ))
            }
        };
        let payload_type = go_string(&map, "payloadType", "Envelope.payloadType")?;
        let payload = go_string(&map, "payload", "Envelope.payload")?;
        let signatures = match go_field(&map, "signatures") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() > MAX_ENVELOPE_SIGNATURES => {
                return Err(too_many_signatures(items.len()))
            }
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::Null => Ok(Signature::default()),
                    Value::Object(sig) => Ok(Signature {
                        keyid: go_string(sig, "keyid", "Envelope.signatures.keyid")?,
                        sig: go_string(sig, "sig", "Envelope.signatures.sig")?,
                    }),
                    other => Err(type_error(other, "Envelope.signatures", "dsse.Signature")),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(type_error(other, "Envelope.signatures", "[]dsse.Signature"))
            }
        };
        Ok(Self {
            payload_type,
            payload,
            signatures,
        })
    }

    /// The decoded payload, as `DecodeB64Payload` reads it.
    pub(super) fn decoded_payload(&self) -> Result<Vec<u8>, String> {
        flexible_base64(&self.payload).ok_or_else(|| BAD_BASE64.to_owned())
    }

    /// One `EnvelopeVerifier.VerifyAndDecode` pass with `key` (loaded with
    /// SHA-256): the index of the signature it accepted, and the payload.
    ///
    /// `keyid` is the key's ID when the verifier has one (intoto 0.0.1): a
    /// signature naming another key ID is then skipped.
    pub(super) fn verify_with(
        &self,
        key: &PublicKey,
        keyid: Option<&str>,
    ) -> Result<(usize, Vec<u8>), String> {
        if self.signatures.is_empty() {
            return Err("no signature found".to_owned());
        }
        let payload = self.decoded_payload()?;
        let message = pae(&self.payload_type, &payload);
        let mut accepted = None;
        for (i, s) in self.signatures.iter().enumerate() {
            let sig = flexible_base64(&s.sig).ok_or_else(|| BAD_BASE64.to_owned())?;
            if accepted.is_some() {
                continue;
            }
            let skipped = keyid.is_some_and(|id| !s.keyid.is_empty() && s.keyid != id);
            if !skipped && verify_message(key, &message, &sig) {
                accepted = Some(i);
            }
        }
        let found = usize::from(accepted.is_some());
        accepted.map(|i| (i, payload)).ok_or_else(|| {
            format!("accepted signatures do not match threshold, Found: {found}, Expected 1")
        })
    }
}

/// DSSE v1 Pre-Authentication Encoding.
pub(super) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// `signature.LoadVerifier(key, crypto.SHA256).VerifySignature`: ECDSA of any
/// curve and RSA PKCS#1 v1.5 over SHA-256 of `message`, pure Ed25519.
pub(super) fn verify_message(key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
    #[cfg(test)]
    VERIFICATIONS.with(|n| n.set(n.get() + 1));
    match key.algorithm() {
        KeyAlgorithm::Ed25519 => aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ED25519,
            key.key_bytes(),
        )
        .verify(message, sig)
        .is_ok(),
        KeyAlgorithm::Ecdsa(_) | KeyAlgorithm::Rsa { .. } => {
            let digest = Sha256::digest(message);
            digest_signature::verify(key, HashAlgorithm::Sha256, &digest, sig).is_ok()
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Signature checks made on this thread, for tests that bound the work.
    pub(super) static VERIFICATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// go-securesystemslib `SHA256KeyID`: `ssh.FingerprintSHA256` of the key,
/// `SHA256:` and unpadded base64 of SHA-256 over its SSH wire encoding.
pub(super) fn ssh_key_id(key: &PublicKey) -> Option<String> {
    fn string(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut wire = Vec::new();
    match key.algorithm() {
        KeyAlgorithm::Ed25519 => {
            string(&mut wire, b"ssh-ed25519");
            string(&mut wire, key.key_bytes());
        }
        KeyAlgorithm::Ecdsa(curve) => {
            let name = match curve {
                Curve::P256 => "nistp256",
                Curve::P384 => "nistp384",
                Curve::P521 => "nistp521",
            };
            string(&mut wire, format!("ecdsa-sha2-{name}").as_bytes());
            string(&mut wire, name.as_bytes());
            string(&mut wire, key.key_bytes());
        }
        KeyAlgorithm::Rsa { .. } => {
            // PKCS#1 RSAPublicKey { n, e }; DER integers are SSH mpints.
            let (_, body, _) = der_tlv(key.key_bytes())?;
            let (_, n, rest) = der_tlv(body)?;
            let (_, e, _) = der_tlv(rest)?;
            string(&mut wire, b"ssh-rsa");
            string(&mut wire, e);
            string(&mut wire, n);
        }
    }
    use base64::Engine as _;
    let hash = Sha256::digest(&wire);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
    ))
}

/// `<alg>:<digest>` of every in-toto `subject[].digest`, or `None` where Go
/// would fail to decode the statement (then nothing is indexed).
pub(super) fn subject_digests(statement: &Value) -> Option<Vec<String>> {
    match statement {
        Value::Null => Some(Vec::new()),
        Value::Object(map) => digest_list(go_field(map, "subject")),
        _ => None,
    }
}

/// `<alg>:<digest>` of every SLSA `predicate.materials[].digest`, or `None`
/// where Go would fail to decode the predicate.
pub(super) fn material_digests(statement: &Value) -> Option<Vec<String>> {
    let Value::Object(map) = statement else {
        return matches!(statement, Value::Null).then(Vec::new);
    };
    match go_field(map, "predicate") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Object(predicate)) => digest_list(go_field(predicate, "materials")),
        Some(_) => None,
    }
}

/// A `[]struct{ Digest map[string]string }` field.
fn digest_list(list: Option<&Value>) -> Option<Vec<String>> {
    let items = match list {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return None,
    };
    let mut out = Vec::new();
    for item in items {
        let digest = match item {
            Value::Null => continue,
            Value::Object(o) => go_field(o, "digest"),
            _ => return None,
        };
        match digest {
            None | Some(Value::Null) => {}
            Some(Value::Object(set)) => {
                for (alg, value) in set {
                    match value {
                        Value::String(v) => out.push(format!("{alg}:{v}")),
                        Value::Null => out.push(format!("{alg}:")),
                        _ => return None,
                    }
                }
            }
            Some(_) => return None,
        }
    }
    Some(out)
}

/// The statement in a decoded payload; invalid JSON indexes nothing.
///
/// # Errors
/// A payload over the [`json_limits`] is refused rather than indexed
/// partly: its message names the limit.
pub(super) fn statement(payload: &[u8]) -> Result<Value, String> {
    json_limits::check(payload).map_err(|e| format!("in-toto statement refused: {e}"))?;
    Ok(serde_json::from_slice(payload).unwrap_or(Value::Bool(false)))
}

fn go_string(map: &Map<String, Value>, name: &str, field: &str) -> Result<String, String> {
    match go_field(map, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(type_error(other, field, "string")),
    }
}

fn type_error(value: &Value, field: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {field} of type {go_type}",
        json_kind(value)
    )
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::TestKey;
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // github.com/secure-systems-lab/dsse protocol.md test vector.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn envelopes_parse_as_go_decodes_them() {
        let env = Envelope::parse(
            r#"{"PayloadType":"t","payload":"cA==","signatures":[{"sig":"AA==","extra":1},null],"x":[]}"#,
        )
        .unwrap();
        assert_eq!(env.payload_type, "t");
        assert_eq!(env.signatures.len(), 2);
        assert_eq!(env.signatures[0].sig, "AA==");
        assert_eq!(env.signatures[1], Signature::default());
        assert_eq!(Envelope::parse("null").unwrap(), Envelope::default());
        for (text, err) in [
            ("[]", "json: cannot unmarshal array into Go value of type dsse.Envelope"),
            (r#"{"payload":1}"#, "json: cannot unmarshal number into Go struct field Envelope.payload of type string"),
            (r#"{"signatures":{}}"#, "json: cannot unmarshal object into Go struct field Envelope.signatures of type []dsse.Signature"),
            (r#"{"signatures":["x"]}"#, "json: cannot unmarshal string into Go struct field Envelope.signatures of type dsse.Signature"),
            (r#"{"signatures":[{"keyid":true}]}"#, "json: cannot unmarshal bool into Go struct field Envelope.signatures.keyid of type string"),
            ("{", "unexpected end of JSON input"),
        ] {
            assert_eq!(Envelope::parse(text).unwrap_err(), err, "{text}");
        }
        assert!(Envelope::parse("{x")
            .unwrap_err()
            .starts_with("invalid JSON: "));
    }

    #[test]
    fn ssh_key_ids_are_openssh_sha256_fingerprints() {
        // `ssh-keygen -lf` of the OpenSSH form of this Ed25519 key (RFC 8032
        // test 1 public key) prints this fingerprint.
        let spki = [
            &[
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ][..],
            &hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap(),
        ]
        .concat();
        let key = PublicKey::parse(&super::super::test_support::pem("PUBLIC KEY", &spki)).unwrap();
        let wire = [
            &[0, 0, 0, 11][..],
            b"ssh-ed25519",
            &[0, 0, 0, 32],
            key.key_bytes(),
        ]
        .concat();
        use base64::Engine as _;
        let expected = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(wire))
        );
        assert_eq!(ssh_key_id(&key).unwrap(), expected);
        for key in [
            TestKey::ecdsa(Curve::P256),
            TestKey::rsa(aws_lc_rs::rsa::KeySize::Rsa2048),
        ] {
            let parsed = PublicKey::parse(&key.public_pem()).unwrap();
            assert!(ssh_key_id(&parsed).unwrap().starts_with("SHA256:"));
        }
    }

    #[test]
    fn in_toto_digests_follow_go_decoding() {
        let stmt = json!({
            "subject": [{"digest": {"sha256": "AB", "sha512": "cd"}}, null, {"name": "x"}],
            "predicate": {"materials": [{"digest": {"sha1": "ef"}}], "builder": {}}
        });
        assert_eq!(subject_digests(&stmt).unwrap(), ["sha256:AB", "sha512:cd"]);
        assert_eq!(material_digests(&stmt).unwrap(), ["sha1:ef"]);
        assert_eq!(subject_digests(&json!({"subject": "x"})), None);
        assert_eq!(
            subject_digests(&json!({"subject": [{"digest": {"a": 1}}]})),
            None
        );
        assert_eq!(material_digests(&json!({"predicate": []})), None);
        assert_eq!(
            material_digests(&json!({"predicate": {"materials": [7]}})),
            None
        );
        assert_eq!(subject_digests(&json!([])), None);
        assert_eq!(subject_digests(&statement(b"not json").unwrap()), None);
        assert_eq!(subject_digests(&Value::Null).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn one_pass_accepts_only_the_first_signature_its_key_verifies() {
        use super::super::decoding::to_base64;
        let key = TestKey::ecdsa(Curve::P256);
        let parsed = PublicKey::parse(&key.public_pem()).unwrap();
        let payload = b"{}";
        let message = pae("t", payload);
        let sig = |k: &TestKey| to_base64(&k.sign_digest(&Sha256::digest(&message)));
        let other = TestKey::ecdsa(Curve::P256);
        let env = Envelope {
            payload_type: "t".into(),
            payload: to_base64(payload),
            signatures: vec![
                Signature {
                    keyid: String::new(),
                    sig: sig(&other),
                },
                Signature {
                    keyid: String::new(),
                    sig: sig(&key),
                },
                Signature {
                    keyid: String::new(),
                    sig: sig(&key),
                },
            ],
        };
        assert_eq!(
            env.verify_with(&parsed, None).unwrap(),
            (1, payload.to_vec())
        );
        let mut named = env.clone();
        named.signatures[1].keyid = "someone-else".into();
        assert_eq!(named.verify_with(&parsed, None).unwrap().0, 1);
        assert_eq!(named.verify_with(&parsed, Some("SHA256:x")).unwrap().0, 2);
        let mut bad = env.clone();
        bad.signatures[2].sig = "!!".into();
        assert_eq!(bad.verify_with(&parsed, None).unwrap_err(), BAD_BASE64);
        let mut none = env;
        none.signatures.truncate(1);
        assert_eq!(
            none.verify_with(&parsed, None).unwrap_err(),
            "accepted signatures do not match threshold, Found: 0, Expected 1"
        );
        none.signatures.clear();
        assert_eq!(
            none.verify_with(&parsed, None).unwrap_err(),
            "no signature found"
        );
    }
}
