//! The index keys of an entry the log accepted already, read back from its
//! committed (canonical) body without verifying any signature: what an
//! auditor (`tlog verify`) and a replica check a snapshot's `indexKeys`
//! against (issue 15, item 3).
//!
//! Admission ([`super::parse_for_insert`]) verifies the entry's signatures and
//! then derives its keys; a stored body was verified when it was written and
//! its SET says the log accepted it, so re-verifying costs a signature check
//! per entry for nothing. This path reads the same fields admission derived
//! the keys from, under the same input bounds (the JSON limits, the envelope
//! signature cap, the certificate chain length), and parses keys and
//! certificates only for their subjects: a chain's signatures are not
//! checked again.
//!
//! Not every key admission wrote is in the body. [`Unstored`] says which ones
//! may be missing from it, and [`CommittedKeys::check`] allows exactly those:
//! - `hashedrekord`: admission hashed the PEM as the client sent it, the body
//!   keeps the canonical PEM; the two agree unless the client's PEM was not
//!   canonical, and then one other SHA-256 stands in for it;
//! - `dsse` and `intoto`: the in-toto statement's subject and material
//!   digests come from a payload the body does not keep (and `dsse` does not
//!   keep the payload type either);
//! - `rekord` with `ssh`: the key comment, when an e-mail address, is dropped
//!   from the canonical key.
//!
//! `hashedrekord` 0.0.2 (Rekor v2) entries write no index keys: the v2 API
//! has no search.

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::decoding::{object, spec_object, std_base64, string};
use super::envelope::{INTOTO_PAYLOAD_TYPE, MAX_ENVELOPE_SIGNATURES};
use super::pki::PublicKey;
use super::{digest_signature::HashAlgorithm, Kind, ProposedEntry};

/// The keys a committed body determines, and what else admission may have
/// written that it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedKeys {
    /// The entry's kind.
    pub kind: Kind,
    /// Keys admission wrote for certain, sorted and unique.
    pub keys: Vec<String>,
    /// Keys admission may have written that the body does not determine.
    pub unstored: Unstored,
}

/// Index keys whose source the committed body does not keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unstored {
    /// `hashedrekord`: the SHA-256 (hex) of the canonical PEM the body
    /// keeps. Admission hashed the PEM as sent: this key, or one other
    /// 64-hex-digit key in its place when that PEM was not canonical.
    pub submitted_key_hash: Option<String>,
    /// `dsse`, `intoto`: any number of `<alg>:<value>` digests of an in-toto
    /// statement's subjects and materials.
    pub statement_digests: bool,
    /// `rekord` `ssh`: at most one e-mail address, the key's comment.
    pub ssh_comment: bool,
}

impl CommittedKeys {
    /// Checks a snapshot's keys for this entry (sorted and unique, as the
    /// format requires) against the ones its body yields: none missing and
    /// none added, but for the [`Unstored`] ones.
    ///
    /// # Errors
    /// The first key missing or added, named.
    pub fn check(&self, file_keys: &[String]) -> Result<(), String> {
        if let Some(missing) = self
            .keys
            .iter()
            .find(|k| file_keys.binary_search(k).is_err())
        {
            return Err(format!(
                "index key {missing:?}, which its body yields, is missing from the file"
            ));
        }
        let hash = self.unstored.submitted_key_hash.as_deref();
        // Whether the submitted PEM's hash is accounted for.
        let mut key_hash =
            hash.is_none_or(|h| file_keys.binary_search_by(|k| (**k).cmp(h)).is_ok());
        let mut comment = false;
        for key in file_keys {
            if self.keys.binary_search(key).is_ok() || Some(key.as_str()) == hash {
                continue;
            }
            if !key_hash && is_hex_sha256(key) {
                key_hash = true;
                continue;
            }
            if self.unstored.statement_digests && is_digest_key(key) {
                continue;
            }
            if self.unstored.ssh_comment
                && !comment
                && super::ssh::is_email(key)
                && *key == key.to_lowercase()
            {
                comment = true;
                continue;
            }
            return Err(format!(
                "index key {key:?} is in the file, but its body does not yield it (was it added?)"
            ));
        }
        if !key_hash {
            return Err(format!(
                "index key {:?} (or the hash of the PEM as submitted), which its body yields, \
                 is missing from the file",
                hash.unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// 64 lowercase hex digits.
fn is_hex_sha256(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<alg>:<value>`, lowercase, as an in-toto digest key is written.
fn is_digest_key(key: &str) -> bool {
    key.split_once(':').is_some_and(|(alg, _)| !alg.is_empty()) && *key == key.to_lowercase()
}

/// The index keys of a committed body, without verifying its signatures.
///
/// # Errors
/// A body that is not the committed form of an entry this log writes: a
/// field missing or of the wrong type, a key that does not parse, or one
/// past the limits admission applies.
pub fn committed_index_keys(body: &[u8]) -> Result<CommittedKeys, String> {
    let value = super::parse_json(body).map_err(|e| e.to_string())?;
    let proposed = ProposedEntry::from_value(&value).map_err(|e| e.to_string())?;
    let spec = spec_object(proposed.spec).map_err(|e| e.to_string())?;
    let (kind, version) = (proposed.kind, proposed.api_version);
    let mut keys = Vec::new();
    let mut unstored = Unstored::default();
    match (kind, version) {
        (Kind::HashedRekord, "0.0.1") => {
            let hash = object(spec, "data")
                .and_then(|d| object(d, "hash"))
                .ok_or("missing data.hash")?;
            let algorithm = string(hash, "algorithm")
                .and_then(HashAlgorithm::parse)
                .ok_or("missing or unknown data.hash.algorithm")?;
            let value = string(hash, "value").ok_or("missing data.hash.value")?;
            let pem = base64_at(spec, &["signature", "publicKey", "content"])?;
            keys.extend(subjects(&pem)?);
            keys.push(format!(
                "{}:{}",
                algorithm.name(),
                value.to_ascii_lowercase()
            ));
            unstored.submitted_key_hash = Some(hex::encode(Sha256::digest(&pem)));
        }
        (Kind::Dsse, "0.0.1") => {
            let signatures = array(spec, "signatures", MAX_ENVELOPE_SIGNATURES)?;
            for item in signatures {
                let pem = base64_at(
                    item.as_object().ok_or("a signature is not an object")?,
                    &["verifier"],
                )?;
                keys.push(sha256_key(&pem));
                keys.extend(subjects(&pem)?);
            }
            keys.push(digest_at(spec, "payloadHash")?);
            keys.push(digest_at(spec, "envelopeHash")?);
            unstored.statement_digests = true;
        }
        (Kind::Intoto, "0.0.2") => {
            let content = object(spec, "content").ok_or("missing content")?;
            let envelope = object(content, "envelope").ok_or("missing content.envelope")?;
            let signatures = array(envelope, "signatures", MAX_ENVELOPE_SIGNATURES)?;
            for item in signatures {
                let raw = base64_at(
                    item.as_object().ok_or("a signature is not an object")?,
                    &["publicKey"],
                )?;
                let key = PublicKey::parse_committed(&raw).map_err(|e| e.to_string())?;
                keys.push(sha256_key(key.canonical_pem()));
                keys.extend(key.subjects().iter().map(|s| s.to_lowercase()));
            }
            keys.push(digest_at(content, "payloadHash")?);
            unstored.statement_digests =
                string(envelope, "payloadType") == Some(INTOTO_PAYLOAD_TYPE);
        }
        (Kind::Intoto, "0.0.1") => {
            let content = object(spec, "content").ok_or("missing content")?;
            let pem = base64_at(spec, &["publicKey"])?;
            keys.push(digest_at(content, "hash")?);
            keys.push(sha256_key(&pem));
            keys.extend(subjects(&pem)?);
            keys.push(digest_at(content, "payloadHash")?);
            unstored.statement_digests = true;
        }
        (Kind::Rekord, "0.0.1") => {
            let value = object(spec, "data")
                .and_then(|d| object(d, "hash"))
                .and_then(|h| string(h, "value"))
                .ok_or("missing data.hash.value")?;
            let signature = object(spec, "signature").ok_or("missing signature")?;
            let key = base64_at(signature, &["publicKey", "content"])?;
            keys.push(hex::encode(Sha256::digest(&key)));
            match string(signature, "format") {
                Some("x509") => keys.extend(subjects(&key)?),
                Some("pgp") => keys.extend(
                    super::pgp::PgpKey::parse(&key)?
                        .subjects()
                        .iter()
                        .map(|s| s.to_lowercase()),
                ),
                Some("minisign") => {}
                Some("ssh") => unstored.ssh_comment = true,
                _ => return Err("missing or unknown signature.format".to_owned()),
            }
            keys.push(format!("sha256:{value}"));
        }
        (kind, version) => {
            return Err(format!(
                "{} {version} is not a version this log writes",
                kind.name()
            ))
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(CommittedKeys {
        kind,
        keys,
        unstored,
    })
}

/// `sha256:<hex SHA-256 of bytes>`.
fn sha256_key(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The leaf's SANs of a PEM key or certificate (chain), lowercased.
fn subjects(pem: &[u8]) -> Result<Vec<String>, String> {
    let key = PublicKey::parse_committed(pem).map_err(|e| e.to_string())?;
    Ok(key.subjects().iter().map(|s| s.to_lowercase()).collect())
}

/// The base64 string at `path` below `map`, decoded.
fn base64_at(map: &Map<String, Value>, path: &[&str]) -> Result<Vec<u8>, String> {
    let (last, parents) = path.split_last().expect("a path");
    let mut at = map;
    for step in parents {
        at = object(at, step).ok_or_else(|| format!("missing {}", path.join(".")))?;
    }
    let text = string(at, last).ok_or_else(|| format!("missing {}", path.join(".")))?;
    std_base64(text).map_err(|e| format!("{}: {e}", path.join(".")))
}

/// `sha256:<value>` of the SHA-256 digest object `map[field]`.
fn digest_at(map: &Map<String, Value>, field: &str) -> Result<String, String> {
    let digest = object(map, field).ok_or_else(|| format!("missing {field}"))?;
    match (string(digest, "algorithm"), string(digest, "value")) {
        (Some("sha256"), Some(value)) => Ok(format!("sha256:{}", value.to_lowercase())),
        _ => Err(format!("{field} is not a SHA-256 digest")),
    }
}

/// The array `map[field]`, of at most `max` items.
fn array<'a>(map: &'a Map<String, Value>, field: &str, max: usize) -> Result<&'a [Value], String> {
    let items = map
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing {field}"))?;
    if items.len() > max {
        return Err(format!(
            "{} {field}, more than the {max} admission accepts",
            items.len()
        ));
    }
    Ok(items)
}

#[cfg(test)]
thread_local! {
    /// The in-toto statement digests admission indexed for the entry being
    /// parsed on this thread: what a committed body cannot show.
    static STATEMENT_KEYS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
pub(super) fn record_statement_keys(keys: &[String]) {
    STATEMENT_KEYS.with(|k| k.borrow_mut().extend_from_slice(keys));
}

#[cfg(test)]
pub(super) fn take_statement_keys() -> Vec<String> {
    STATEMENT_KEYS.with(|k| std::mem::take(&mut *k.borrow_mut()))
}

/// Test hook: admission's keys for `canonical` must be the ones
/// [`committed_index_keys`] finds in it. [`super::parse`] calls it for every
/// entry a unit test admits, so every kind and form the tests write is
/// checked.
#[cfg(test)]
pub(super) fn assert_agrees(canonical: &[u8], admitted: &[String]) {
    let derived = committed_index_keys(canonical).unwrap_or_else(|e| {
        panic!(
            "admitted body yields no committed keys: {e}\n{}",
            String::from_utf8_lossy(canonical)
        )
    });
    let admitted = crate::storage::jsonl::normalize_keys(admitted);
    if let Err(e) = derived.check(&admitted) {
        panic!(
            "committed keys disagree with admission: {e}\nadmitted {admitted:?}\nderived {derived:?}"
        );
    }
    // Exactly: what the body determines, the statement digests admission
    // indexed from the payload, and the PEM hash as submitted.
    let statement = take_statement_keys();
    assert!(statement.is_empty() || derived.unstored.statement_digests);
    let mut expected = derived.keys.clone();
    expected.extend(statement);
    let hash = derived.unstored.submitted_key_hash.clone();
    let mut rest: Vec<&String> = admitted.iter().filter(|k| !expected.contains(k)).collect();
    if let Some(hash) = &hash {
        let standing_in = rest.iter().position(|k| *k == hash).or_else(|| {
            rest.iter()
                .position(|k| is_hex_sha256(k))
                .filter(|_| !admitted.contains(hash))
        });
        if let Some(at) = standing_in {
            rest.remove(at);
        }
    }
    if derived.unstored.ssh_comment {
        rest.retain(|k| !super::ssh::is_email(k));
    }
    assert!(
        rest.is_empty(),
        "admission wrote keys the committed body does not account for: {rest:?}\nderived {derived:?}"
    );
    let expected = crate::storage::jsonl::normalize_keys(&expected);
    let missing: Vec<&String> = expected.iter().filter(|k| !admitted.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "derived keys admission did not write: {missing:?}"
    );
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};

    use super::super::pki::Curve;
    use super::super::test_support::{
        b64, certificate, pem, pem_with, san_email, CertSpec, TestKey,
    };
    use super::super::{parse_proposed, Entry, Kind};
    use super::*;

    fn hashedrekord(key_pem: &[u8], key: &TestKey) -> Vec<u8> {
        let digest = Sha256::digest(b"committed keys");
        let sig = key.sign_digest(&digest);
        format!(
            r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
            hex::encode(digest).to_uppercase(),
            b64(&sig),
            b64(key_pem)
        )
        .into_bytes()
    }

    fn rekord_x509(key_pem: &[u8], key: &TestKey) -> Vec<u8> {
        let artifact = b"a rekord artifact";
        format!(
            r#"{{"apiVersion":"0.0.1","kind":"rekord","spec":{{"data":{{"content":"{}"}},"signature":{{"format":"x509","content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
            b64(artifact),
            b64(&key.sign_message(artifact)),
            b64(key_pem)
        )
        .into_bytes()
    }

    fn rekord_pgp() -> Vec<u8> {
        let read = |name: &str| {
            std::fs::read(format!(
                "{}/tests/fixtures/pgp/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        format!(
            r#"{{"apiVersion":"0.0.1","kind":"rekord","spec":{{"data":{{"content":"{}"}},"signature":{{"format":"pgp","content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
            b64(&read("artifact.txt")),
            b64(&read("a.sig")),
            b64(&read("a.pub.asc"))
        )
        .into_bytes()
    }

    /// One admitted entry of each kind and form this file can build, the
    /// real-log fixtures among them: (what, request).
    fn corpus() -> Vec<(&'static str, Vec<u8>)> {
        let fixture = |name: &str| {
            std::fs::read(format!(
                "{}/tests/fixtures/v1/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let key = TestKey::ecdsa(Curve::P256);
        let ca = TestKey::ecdsa(Curve::P256);
        let mut spec = CertSpec::leaf("", "Test CA");
        spec.sans = vec![san_email("Dev@Example.com")];
        let cert = pem("CERTIFICATE", &certificate(&spec, &key.spki(), &ca));
        let mut chain = cert.clone();
        chain.extend(pem(
            "CERTIFICATE",
            &certificate(&CertSpec::ca("Test CA", "Test CA"), &ca.spki(), &ca),
        ));
        let crlf = pem_with("PUBLIC KEY", &key.spki(), 76, "\r\n");
        vec![
            (
                "hashedrekord V-01 fixture",
                fixture("hashedrekord-v01-request.json"),
            ),
            ("dsse fixture", fixture("dsse-v01-request.json")),
            ("intoto 0.0.2 fixture", fixture("intoto-v002-request.json")),
            ("hashedrekord key", hashedrekord(&key.public_pem(), &key)),
            ("hashedrekord certificate", hashedrekord(&cert, &key)),
            ("hashedrekord chain", hashedrekord(&chain, &key)),
            ("hashedrekord non-canonical PEM", hashedrekord(&crlf, &key)),
            ("rekord x509 key", rekord_x509(&key.public_pem(), &key)),
            ("rekord x509 certificate", rekord_x509(&cert, &key)),
            ("rekord pgp fixture", rekord_pgp()),
        ]
    }

    #[test]
    fn every_kind_yields_the_keys_admission_wrote_without_verifying() {
        let mut kinds = std::collections::BTreeSet::new();
        for (what, request) in corpus() {
            let Entry {
                kind,
                canonical,
                index_keys,
                ..
            } = parse_proposed(&request).unwrap_or_else(|e| panic!("{what}: {e}"));
            let admitted = crate::storage::jsonl::normalize_keys(&index_keys);
            let derived = committed_index_keys(&canonical).unwrap();
            assert_eq!(derived.kind, kind, "{what}");
            derived
                .check(&admitted)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            // Exactly admission's keys, but for what the body cannot hold.
            let mut known = derived.keys.clone();
            known.extend(derived.unstored.submitted_key_hash.clone());
            let statement: Vec<&String> = admitted.iter().filter(|k| !known.contains(k)).collect();
            if what.contains("non-canonical") {
                assert_eq!(statement.len(), 1, "{what}: the key hash as sent");
                assert!(!admitted.contains(derived.unstored.submitted_key_hash.as_ref().unwrap()));
            } else if derived.unstored.statement_digests {
                assert!(
                    statement.iter().all(|k| is_digest_key(k)),
                    "{what}: {statement:?}"
                );
            } else {
                assert!(statement.is_empty(), "{what}: {statement:?}");
                known.sort_unstable();
                known.dedup();
                assert_eq!(known, admitted, "{what}");
            }
            kinds.insert(kind.name());
        }
        assert_eq!(kinds.len(), Kind::ALL.len(), "{kinds:?}");
    }

    #[test]
    fn a_removed_or_added_key_is_named() {
        for (what, request) in corpus() {
            let entry = parse_proposed(&request).unwrap();
            let admitted = crate::storage::jsonl::normalize_keys(&entry.index_keys);
            let derived = committed_index_keys(&entry.canonical).unwrap();
            for (i, removed) in admitted.iter().enumerate() {
                let mut fewer = admitted.clone();
                fewer.remove(i);
                if derived.unstored.statement_digests && !derived.keys.contains(removed) {
                    // A statement digest: its payload is not in the body,
                    // so neither its presence nor its absence is known.
                    assert!(derived.check(&fewer).is_ok(), "{what}");
                    continue;
                }
                let err = derived.check(&fewer).expect_err(what);
                assert!(err.contains("is missing from the file"), "{what}: {err}");
                assert!(
                    err.contains(removed.as_str()) || err.contains("as submitted"),
                    "{what}: {err}"
                );
            }
            let added = crate::storage::jsonl::normalize_keys(
                &[admitted.clone(), vec!["attacker@example.com".to_owned()]].concat(),
            );
            let err = derived.check(&added).expect_err(what);
            assert!(
                err.contains("\"attacker@example.com\" is in the file"),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn bodies_that_are_not_committed_entries_are_refused_with_a_reason() {
        let key = TestKey::ecdsa(Curve::P256);
        let entry = parse_proposed(&hashedrekord(&key.public_pem(), &key)).unwrap();
        let body: Value = serde_json::from_slice(&entry.canonical).unwrap();
        let mut no_hash = body.clone();
        no_hash["spec"]["data"] = serde_json::json!({});
        let mut bad_key = body.clone();
        bad_key["spec"]["signature"]["publicKey"]["content"] =
            Value::String(base64::engine::general_purpose::STANDARD.encode("not a key"));
        let mut v2 = body;
        v2["apiVersion"] = Value::String("0.0.2".into());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for (body, why) in [
            (serde_json::to_vec(&no_hash).unwrap(), "missing data.hash"),
            (
                serde_json::to_vec(&bad_key).unwrap(),
                "failure decoding PEM",
            ),
            (
                serde_json::to_vec(&v2).unwrap(),
                "hashedrekord 0.0.2 is not a version",
            ),
            (deep.into_bytes(), "failed to parse proposed entry"),
            (b"{}".to_vec(), "kind in body is required"),
        ] {
            let err = committed_index_keys(&body).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn a_chain_is_read_for_its_sans_without_checking_its_signatures() {
        let key = TestKey::ecdsa(Curve::P256);
        let (ca, other) = (TestKey::ecdsa(Curve::P256), TestKey::ecdsa(Curve::P256));
        let mut spec = CertSpec::leaf("", "Test CA");
        spec.sans = vec![san_email("dev@example.com")];
        // Signed by `other`, not by the root that follows it.
        let mut chain = pem("CERTIFICATE", &certificate(&spec, &key.spki(), &other));
        chain.extend(pem(
            "CERTIFICATE",
            &certificate(&CertSpec::ca("Test CA", "Test CA"), &ca.spki(), &ca),
        ));
        assert!(PublicKey::parse(&chain).is_err());
        assert_eq!(subjects(&chain).unwrap(), ["dev@example.com"]);
    }
}
