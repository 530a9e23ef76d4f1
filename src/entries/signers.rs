//! The keys that verified an entry, read back from its canonical body: what a
//! write policy decides on.
//!
//! Reading the body, not the request, means the policy judges exactly what the
//! log records, and every kind's verifiers come out in one place: a kind only
//! has to keep writing its keys where Rekor's canonical body puts them
//! (rekor-v1.md T-02..T-06):
//!
//! - `hashedrekord`, `rekord`: `spec.signature.publicKey.content`, with
//!   `spec.signature.format` for `rekord` (x509, ssh, minisign, pgp);
//! - `dsse`: `spec.signatures[].verifier`, one per verified signature;
//! - `intoto` 0.0.2: `spec.content.envelope.signatures[].publicKey`;
//! - `intoto` 0.0.1: `spec.publicKey`.

use serde_json::Value;

use super::decoding::std_base64;
use super::Kind;

/// A key that verified one of an entry's signatures, in the form the body
/// stores it (decoded from base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// PEM: a PKIX `PUBLIC KEY`, or a certificate or chain, leaf first.
    X509(Vec<u8>),
    /// An OpenSSH public key line (`rekord`).
    Ssh(Vec<u8>),
    /// A minisign public key (`rekord`).
    Minisign(Vec<u8>),
    /// An armored OpenPGP public key (`rekord`).
    Pgp(Vec<u8>),
}

/// The signers recorded in a verified `body` of `kind`, in body order.
///
/// A committed form that was only canonicalised for search carries the same
/// fields; an absent or undecodable field yields no signer.
#[must_use]
pub fn signers(kind: Kind, body: &Value) -> Vec<Signer> {
    let spec = &body["spec"];
    let decoded = |v: &Value| v.as_str().and_then(|s| std_base64(s).ok());
    match kind {
        Kind::HashedRekord => decoded(&spec["signature"]["publicKey"]["content"])
            .map(Signer::X509)
            .into_iter()
            .collect(),
        Kind::Rekord => {
            let key = decoded(&spec["signature"]["publicKey"]["content"]);
            let signer = match spec["signature"]["format"].as_str() {
                Some("x509") => key.map(Signer::X509),
                Some("ssh") => key.map(Signer::Ssh),
                Some("minisign") => key.map(Signer::Minisign),
                Some("pgp") => key.map(Signer::Pgp),
                _ => None,
            };
            signer.into_iter().collect()
        }
        Kind::Dsse => list(&spec["signatures"], "verifier", decoded),
        Kind::Intoto => match spec["publicKey"].as_str() {
            // 0.0.1: one key for the whole envelope.
            Some(_) => decoded(&spec["publicKey"])
                .map(Signer::X509)
                .into_iter()
                .collect(),
            None => list(
                &spec["content"]["envelope"]["signatures"],
                "publicKey",
                decoded,
            ),
        },
    }
}

fn list(items: &Value, field: &str, decoded: impl Fn(&Value) -> Option<Vec<u8>>) -> Vec<Signer> {
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| decoded(&item[field]))
                .map(Signer::X509)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entries::test_support::b64;

    #[test]
    fn each_kind_reports_the_keys_its_body_records() {
        let (a, b) = (b"key a".to_vec(), b"key b".to_vec());
        let cases = [
            (
                Kind::HashedRekord,
                json!({"spec": {"signature": {"publicKey": {"content": b64(&a)}}}}),
                vec![Signer::X509(a.clone())],
            ),
            (
                Kind::Dsse,
                json!({"spec": {"signatures": [{"verifier": b64(&a)}, {"verifier": b64(&b)}]}}),
                vec![Signer::X509(a.clone()), Signer::X509(b.clone())],
            ),
            (
                Kind::Intoto,
                json!({"spec": {"content": {"envelope": {"signatures": [{"publicKey": b64(&b)}]}}}}),
                vec![Signer::X509(b.clone())],
            ),
            (
                Kind::Intoto,
                json!({"spec": {"content": {}, "publicKey": b64(&a)}}),
                vec![Signer::X509(a.clone())],
            ),
        ];
        for (kind, body, want) in cases {
            assert_eq!(signers(kind, &body), want, "{body}");
        }
        for (format, want) in [
            ("x509", Signer::X509(a.clone())),
            ("ssh", Signer::Ssh(a.clone())),
            ("minisign", Signer::Minisign(a.clone())),
            ("pgp", Signer::Pgp(a.clone())),
        ] {
            let body = json!({"spec": {"signature": {"format": format, "publicKey": {"content": b64(&a)}}}});
            assert_eq!(signers(Kind::Rekord, &body), [want]);
        }
        assert!(signers(Kind::Dsse, &json!({})).is_empty());
    }
}
