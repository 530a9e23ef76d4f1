//! Rekor v2 `hashedrekord` 0.0.2: the `CreateEntryRequest` of
//! `POST /api/v2/log/entries` → validated entry → canonical leaf bytes.
//! Spec: rekor-v2-tiles.md W-01…W-05, E-01…E-03, E-05.
//!
//! The request is protojson: field names in lowerCamel or snake_case, bytes
//! in standard or URL-safe base64 with or without padding, enums by name.
//! Unknown fields are refused, as the upstream gateway's strict marshaler
//! does. `dsseRequestV002` is refused (rekor-tiles ≥ 2.3 dropped it): DSSE
//! arrives as a hashedrekord over SHA-256(PAE), which needs nothing special.
//!
//! Enum numbers are not accepted, only names; every known client sends names.
//! The canonical body is protojson of the `Entry` message through RFC 8785,
//! which for this schema means sorted keys, standard padded base64 and
//! omitted empty fields (E-02); the same bytes are the leaf and the entry
//! bundle's record.

use base64::prelude::{
    Engine as _, BASE64_STANDARD, BASE64_STANDARD_NO_PAD, BASE64_URL_SAFE, BASE64_URL_SAFE_NO_PAD,
};
use serde_json::{json, Map, Value};

use super::digest_signature::{self, HashAlgorithm};
use super::pki::{Curve, KeyAlgorithm, PublicKey};

/// The generic client message of every validation failure (W-04); the
/// detail goes to the server log only.
pub const INVALID_REQUEST: &str = "invalid hashedrekord request";
/// The client message when the request is not a hashedrekord (W-03).
pub const NOT_HASHEDREKORD: &str = "invalid type, must be hashedrekord";

/// Longest canonical entry: an entry bundle's uint16 length prefix (W-12).
pub const MAX_ENTRY_LEN: usize = 65_535;

/// Why a v2 create request was refused. Both are HTTP 400 (gRPC
/// InvalidArgument); `detail` is for the server log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V2EntryError {
    /// Not a hashedrekord request: missing, or `dsseRequestV002` (W-03).
    #[error("{NOT_HASHEDREKORD}")]
    NotHashedRekord,
    /// Malformed or failed validation (W-01, W-04).
    #[error("{INVALID_REQUEST}: {detail}")]
    Invalid {
        /// What exactly was wrong, for the server log.
        detail: String,
    },
}

fn invalid(detail: impl Into<String>) -> V2EntryError {
    V2EntryError::Invalid {
        detail: detail.into(),
    }
}

/// A validated v2 hashedrekord: what the log appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Entry {
    /// The canonical `Entry` JSON (E-02): the Merkle leaf data.
    pub canonical: Vec<u8>,
}

/// The client algorithms rekor-tiles allows by default (W-05), by
/// `PublicKeyDetails` name, with the hash each implies. Pure Ed25519 is
/// absent: hashedrekord has no preimage to sign (W-04.5).
const KEY_DETAILS: &[(&str, HashAlgorithm)] = &[
    ("PKIX_RSA_PKCS1V15_2048_SHA256", HashAlgorithm::Sha256),
    ("PKIX_RSA_PKCS1V15_3072_SHA256", HashAlgorithm::Sha256),
    ("PKIX_RSA_PKCS1V15_4096_SHA256", HashAlgorithm::Sha256),
    ("PKIX_ECDSA_P256_SHA_256", HashAlgorithm::Sha256),
    ("PKIX_ECDSA_P384_SHA_384", HashAlgorithm::Sha384),
    ("PKIX_ECDSA_P521_SHA_512", HashAlgorithm::Sha512),
    ("PKIX_ED25519_PH", HashAlgorithm::Sha512),
];

/// Whether the registry permits this (key, hash) pair: like sigstore's
/// `IsAlgorithmPermitted`, any permitted entry with this key type and hash
/// will do, whatever `keyDetails` named (W-04.4; sigstore-js always names
/// `PKIX_ECDSA_P256_SHA_256`).
fn permitted(key: KeyAlgorithm, hash: HashAlgorithm) -> bool {
    use HashAlgorithm::{Sha256, Sha384, Sha512};
    matches!(
        (key, hash),
        (
            KeyAlgorithm::Rsa {
                bits: 2048 | 3072 | 4096
            },
            Sha256
        ) | (KeyAlgorithm::Ecdsa(Curve::P256), Sha256)
            | (KeyAlgorithm::Ecdsa(Curve::P384), Sha384)
            | (KeyAlgorithm::Ecdsa(Curve::P521), Sha512)
            | (KeyAlgorithm::Ed25519, Sha512)
    )
}

/// The protojson name of a `HashAlgorithm` (E-01 `data.algorithm`).
fn hash_name(hash: HashAlgorithm) -> &'static str {
    match hash {
        HashAlgorithm::Sha256 => "SHA2_256",
        HashAlgorithm::Sha384 => "SHA2_384",
        HashAlgorithm::Sha512 => "SHA2_512",
    }
}

fn digest_len(hash: HashAlgorithm) -> usize {
    match hash {
        HashAlgorithm::Sha256 => 32,
        HashAlgorithm::Sha384 => 48,
        HashAlgorithm::Sha512 => 64,
    }
}

/// An object's fields under their protojson names: each of `fields` is
/// `(lowerCamel, snake_case)`; any other key is an error (W-01).
fn fields<'a>(
    value: &'a Value,
    what: &str,
    fields: &[(&str, &str)],
) -> Result<Vec<Option<&'a Value>>, V2EntryError> {
    let object: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| invalid(format!("{what} is not an object")))?;
    let mut found = vec![None; fields.len()];
    for (key, v) in object {
        let slot = fields
            .iter()
            .position(|(camel, snake)| key == camel || key == snake)
            .ok_or_else(|| invalid(format!("unknown field {key:?} in {what}")))?;
        if found[slot].is_some() {
            return Err(invalid(format!("field {key:?} given twice in {what}")));
        }
        // protojson reads null as the field's default: absent.
        if !v.is_null() {
            found[slot] = Some(v);
        }
    }
    Ok(found)
}

/// protojson bytes: standard or URL-safe base64, padded or not.
fn bytes(value: Option<&Value>, what: &str) -> Result<Vec<u8>, V2EntryError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let text = value
        .as_str()
        .ok_or_else(|| invalid(format!("{what} is not a base64 string")))?;
    [
        &BASE64_STANDARD,
        &BASE64_STANDARD_NO_PAD,
        &BASE64_URL_SAFE,
        &BASE64_URL_SAFE_NO_PAD,
    ]
    .iter()
    .find_map(|engine| engine.decode(text).ok())
    .ok_or_else(|| invalid(format!("{what} is not base64")))
}

/// Parses and validates a `CreateEntryRequest` body (W-02…W-06).
///
/// # Errors
/// [`V2EntryError::NotHashedRekord`] without a hashedrekord request,
/// [`V2EntryError::Invalid`] for anything else wrong.
pub fn parse_create_request(body: &[u8]) -> Result<V2Entry, V2EntryError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let [hashed, dsse] = fields(
        &value,
        "CreateEntryRequest",
        &[
            ("hashedRekordRequestV002", "hashed_rekord_request_v002"),
            ("dsseRequestV002", "dsse_request_v002"),
        ],
    )?[..] else {
        unreachable!("two fields asked for")
    };
    match (hashed, dsse) {
        (Some(request), None) => parse_hashed_rekord(request),
        (Some(_), Some(_)) => Err(invalid("two members of the spec oneof")),
        (None, _) => Err(V2EntryError::NotHashedRekord),
    }
}

/// Checks a logged entry (its canonical bytes, as an entry bundle holds
/// them) as the log checked it at admission: it is a hashedrekord 0.0.2
/// whose signature verifies over its digest under its verifier, and its
/// bytes are exactly the canonical form (E-02) the log writes for it.
/// For audits of a v2 log, which issues no SETs.
///
/// # Errors
/// What is wrong, as a sentence about "it".
pub fn recheck_entry(canonical: &[u8]) -> Result<(), String> {
    let entry: Value =
        serde_json::from_slice(canonical).map_err(|e| format!("it is not JSON: {e}"))?;
    if entry["kind"] != "hashedrekord" || entry["apiVersion"] != "0.0.2" {
        return Err("it is not a hashedrekord 0.0.2 entry".to_owned());
    }
    let spec = &entry["spec"]["hashedRekordV002"];
    let request = json!({"hashedRekordRequestV002": {
        "digest": spec["data"]["digest"],
        "signature": spec["signature"],
    }});
    let request = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let admitted = parse_create_request(&request).map_err(|e| match e {
        V2EntryError::NotHashedRekord => "it is not a hashedrekord entry".to_owned(),
        V2EntryError::Invalid { detail } => format!("the log would refuse it: {detail}"),
    })?;
    if admitted.canonical != canonical {
        return Err("its bytes are not the canonical form of the entry they hold".to_owned());
    }
    Ok(())
}

/// The verifier of a request: its key, and its protojson for the entry.
struct Verifier {
    key: PublicKey,
    hash: HashAlgorithm,
    /// `{"keyDetails": …, "publicKey"|"x509Certificate": {"rawBytes": …}}`.
    canonical: Value,
}

fn parse_verifier(value: &Value) -> Result<Verifier, V2EntryError> {
    let [public_key, certificate, key_details] = fields(
        value,
        "verifier",
        &[
            ("publicKey", "public_key"),
            ("x509Certificate", "x509_certificate"),
            ("keyDetails", "key_details"),
        ],
    )?[..] else {
        unreachable!("three fields asked for")
    };
    let (member, raw) = match (public_key, certificate) {
        (Some(v), None) => ("publicKey", raw_bytes(v, "publicKey")?),
        (None, Some(v)) => ("x509Certificate", raw_bytes(v, "x509Certificate")?),
        _ => return Err(invalid("the verifier needs exactly one key or certificate")),
    };
    if raw.is_empty() {
        return Err(invalid("empty key or certificate"));
    }
    let key = if member == "publicKey" {
        PublicKey::from_spki_der(&raw)
    } else {
        PublicKey::from_certificate_der(&raw)
    }
    .map_err(|e| invalid(format!("couldn't parse the verifier: {e}")))?;
    let details = key_details
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("keyDetails is missing or not a name"))?;
    let hash = KEY_DETAILS
        .iter()
        .find(|(name, _)| *name == details)
        .map(|(_, hash)| *hash)
        .ok_or_else(|| invalid(format!("key details {details} are not allowed")))?;
    if !permitted(key.algorithm(), hash) {
        return Err(invalid(format!(
            "{:?} with {} is not allowed",
            key.algorithm(),
            hash.go_name()
        )));
    }
    let canonical = json!({
        "keyDetails": details,
        member: { "rawBytes": BASE64_STANDARD.encode(&raw) },
    });
    Ok(Verifier {
        key,
        hash,
        canonical,
    })
}

fn raw_bytes(value: &Value, what: &str) -> Result<Vec<u8>, V2EntryError> {
    let [raw] = fields(value, what, &[("rawBytes", "raw_bytes")])?[..] else {
        unreachable!("one field asked for")
    };
    bytes(raw, what)
}

fn parse_hashed_rekord(value: &Value) -> Result<V2Entry, V2EntryError> {
    let [digest, signature] = fields(
        value,
        "hashedRekordRequestV002",
        &[("digest", "digest"), ("signature", "signature")],
    )?[..] else {
        unreachable!("two fields asked for")
    };
    // W-04.1: signature with content and verifier, and a digest.
    let signature = signature.ok_or_else(|| invalid("signature is missing"))?;
    let [content, verifier] = fields(
        signature,
        "signature",
        &[("content", "content"), ("verifier", "verifier")],
    )?[..] else {
        unreachable!("two fields asked for")
    };
    let content = bytes(content, "signature.content")?;
    if content.is_empty() {
        return Err(invalid("signature.content is empty"));
    }
    let verifier = verifier.ok_or_else(|| invalid("signature.verifier is missing"))?;
    let digest = bytes(digest, "digest")?;
    if digest.is_empty() {
        return Err(invalid("digest is empty"));
    }
    // W-04.2…5: the key, its details and the (key, hash) policy.
    let verifier = parse_verifier(verifier)?;
    // W-04.6: the digest is as long as its hash.
    if digest.len() != digest_len(verifier.hash) {
        return Err(invalid(format!(
            "a {} digest is {} bytes, not {}",
            verifier.hash.go_name(),
            digest_len(verifier.hash),
            digest.len()
        )));
    }
    // W-04.7: the signature verifies over the prehashed digest.
    digest_signature::verify(&verifier.key, verifier.hash, &digest, &content)
        .map_err(|e| invalid(format!("couldn't verify the signature: {e}")))?;
    // E-01: the entry, its signature verbatim, then E-02: JCS.
    let entry = json!({
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": { "hashedRekordV002": {
            "data": {
                "algorithm": hash_name(verifier.hash),
                "digest": BASE64_STANDARD.encode(&digest),
            },
            "signature": {
                "content": BASE64_STANDARD.encode(&content),
                "verifier": verifier.canonical,
            },
        }},
    });
    let canonical = serde_json_canonicalizer::to_vec(&entry)
        .map_err(|e| invalid(format!("couldn't canonicalize the entry: {e}")))?;
    // An entry bundle prefixes each entry with a uint16 length (W-12, R-05).
    if canonical.len() > MAX_ENTRY_LEN {
        return Err(invalid(format!(
            "the entry is {} bytes, more than {MAX_ENTRY_LEN}",
            canonical.len()
        )));
    }
    Ok(V2Entry { canonical })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle;

    /// V-03: the CLIENTS.md request (public-key variant).
    const DIGEST: &str = "dyj4ednYHjN4/zsjjBeeLahS9slp97Z67LTAVxjrjXw=";
    const SIG: &str = "MEQCIB+YPa9o3SN0sQ4uduGf+mZxwFfOhFZ0Cgy+p7Vt1o2SAiAPFDHqOAJLYmvtCWOsDyNY1H4V3zm4NEDYs3NyvHh1Pg==";
    const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2slOf8eZcj2moW2t4UFj7vCL6QpDzkDqqSUmm4OJCVvIauKLxm0aGs3VMPPfauMPaMutn0/s3jg0rroFxoicyg==";
    const V03: &str = r#"{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":"SHA2_256","digest":"dyj4ednYHjN4/zsjjBeeLahS9slp97Z67LTAVxjrjXw="},"signature":{"content":"MEQCIB+YPa9o3SN0sQ4uduGf+mZxwFfOhFZ0Cgy+p7Vt1o2SAiAPFDHqOAJLYmvtCWOsDyNY1H4V3zm4NEDYs3NyvHh1Pg==","verifier":{"keyDetails":"PKIX_ECDSA_P256_SHA_256","publicKey":{"rawBytes":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2slOf8eZcj2moW2t4UFj7vCL6QpDzkDqqSUmm4OJCVvIauKLxm0aGs3VMPPfauMPaMutn0/s3jg0rroFxoicyg=="}}}}}}"#;

    fn request(digest: &str, details: &str) -> Value {
        json!({"hashedRekordRequestV002": {
            "digest": digest,
            "signature": {"content": SIG, "verifier": {
                "publicKey": {"rawBytes": KEY}, "keyDetails": details}}}})
    }

    fn parse(value: &Value) -> Result<V2Entry, V2EntryError> {
        parse_create_request(value.to_string().as_bytes())
    }

    #[test]
    fn v03_request_gives_the_canonical_bytes_and_leaf() {
        let entry = parse(&request(DIGEST, "PKIX_ECDSA_P256_SHA_256")).unwrap();
        assert_eq!(String::from_utf8(entry.canonical.clone()).unwrap(), V03);
        assert_eq!(
            BASE64_STANDARD.encode(merkle::leaf_hash(&entry.canonical).0),
            "Uym3efeSrMCTH0BDFLAnqwbi1GjOYfydlkHmJc5gw9o="
        );
    }

    #[test]
    fn snake_case_names_and_url_safe_unpadded_bytes_give_the_same_bytes() {
        let url = |b64: &str| BASE64_URL_SAFE_NO_PAD.encode(BASE64_STANDARD.decode(b64).unwrap());
        let snake = json!({"hashed_rekord_request_v002": {
            "digest": url(DIGEST),
            "signature": {"content": url(SIG), "verifier": {
                "public_key": {"raw_bytes": url(KEY)}, "key_details": "PKIX_ECDSA_P256_SHA_256"}}}});
        assert_eq!(parse(&snake).unwrap().canonical, V03.as_bytes());
    }

    #[test]
    fn a_logged_entry_rechecks_only_in_its_canonical_form_with_its_signature() {
        recheck_entry(V03.as_bytes()).unwrap();
        // Another digest: the signature no longer verifies.
        let other = V03.replacen("dyj4", "eyj4", 1);
        let err = recheck_entry(other.as_bytes()).unwrap_err();
        assert!(err.contains("would refuse it"), "{err}");
        // The same entry, not in its canonical bytes (E-02).
        let spaced = V03.replacen(r#""kind":"#, r#""kind": "#, 1);
        let err = recheck_entry(spaced.as_bytes()).unwrap_err();
        assert!(err.contains("canonical"), "{err}");
        let unpadded = V03.replacen("yg==", "yg", 1);
        assert!(recheck_entry(unpadded.as_bytes()).is_err());
        // Another kind or version.
        let dsse = V03.replacen(r#""kind":"hashedrekord""#, r#""kind":"dsse""#, 1);
        let err = recheck_entry(dsse.as_bytes()).unwrap_err();
        assert!(err.contains("not a hashedrekord 0.0.2"), "{err}");
        assert!(recheck_entry(b"[]").is_err());
        assert!(recheck_entry(b"not json").is_err());
    }

    #[test]
    fn dsse_or_no_request_is_not_a_hashedrekord() {
        let dsse = json!({"dsseRequestV002": {"envelope": {}, "verifiers": []}});
        assert_eq!(parse(&dsse), Err(V2EntryError::NotHashedRekord));
        assert_eq!(parse(&json!({})), Err(V2EntryError::NotHashedRekord));
        assert_eq!(
            V2EntryError::NotHashedRekord.to_string(),
            "invalid type, must be hashedrekord"
        );
    }

    #[test]
    fn invalid_requests_are_refused_with_the_generic_message() {
        let mut unknown = request(DIGEST, "PKIX_ECDSA_P256_SHA_256");
        unknown["hashedRekordRequestV002"]["extra"] = json!(1);
        let short = BASE64_STANDARD.encode([7u8; 33]);
        let mut other_digest = BASE64_STANDARD.decode(DIGEST).unwrap();
        other_digest[0] ^= 1;
        let mut no_verifier = request(DIGEST, "PKIX_ECDSA_P256_SHA_256");
        no_verifier["hashedRekordRequestV002"]["signature"]
            .as_object_mut()
            .unwrap()
            .remove("verifier");
        let cases = [
            // W-01: an unknown field.
            unknown,
            // W-05: P-256 with SHA-384 is not a permitted pair.
            request(DIGEST, "PKIX_ECDSA_P384_SHA_384"),
            // W-04.5: pure Ed25519 is refused.
            request(DIGEST, "PKIX_ED25519"),
            // W-04.6: a digest of the wrong length.
            request(&short, "PKIX_ECDSA_P256_SHA_256"),
            // W-04.7: a signature over another digest.
            request(
                &BASE64_STANDARD.encode(other_digest),
                "PKIX_ECDSA_P256_SHA_256",
            ),
            // W-04.1: no verifier.
            no_verifier,
            request("", "PKIX_ECDSA_P256_SHA_256"),
        ];
        for case in cases {
            let err = parse(&case).unwrap_err();
            assert!(matches!(err, V2EntryError::Invalid { .. }), "{case}");
            assert!(err.to_string().starts_with(INVALID_REQUEST), "{err}");
        }
        assert!(matches!(
            parse_create_request(b"not json"),
            Err(V2EntryError::Invalid { .. })
        ));
    }
}
