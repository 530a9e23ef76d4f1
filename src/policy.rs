//! The write policy of a private log: which signers may add entries. Neither
//! Rekor v1 nor v2 has one; clients such as cosign cannot send credentials to
//! a Rekor log, so the policy judges *what was signed*, as the entry's
//! canonical body records it ([`crate::entries::Signer`]).
//!
//! Pure: PEM text and rules in, a decision out. `app` reads the files named
//! in `config::WritePolicyConfig`; the create handler calls
//! [`WritePolicy::check`] after validation, before the entry is appended.
//!
//! # Rules
//!
//! A signer is admitted by either rule; an entry is admitted when **every**
//! signer is (a DSSE envelope with an allowed and an unknown signature is
//! refused).
//!
//! - **Key rule** (`allowed_keys`): the signer's public key, a bare `PUBLIC
//!   KEY` or a certificate's key, equals a listed key (SPKI DER equality).
//! - **Certificate rule** (`trusted_roots`, optionally `allowed_identities`):
//!   the signer is a certificate that chains to a trusted certificate through
//!   the intermediates it was submitted with, and, when identities are listed,
//!   its SAN and its Fulcio OIDC issuer match one of them.
//!
//! Every certificate in `trusted_roots` is a trust anchor, so a Fulcio trust
//! bundle (root and intermediate) can be listed as it is. Every certificate on
//! the path must be valid at the time of submission: Fulcio certificates live
//! ten minutes and clients submit right after signing, and refusing expired
//! ones keeps a key whose certificate has expired from writing later, which is
//! what verifying at integration time means. Name and path-length constraints
//! and extended key usages are not checked.
//!
//! ssh, minisign and pgp keys (`rekord`) have no PEM SPKI form here, so while a
//! policy is set they are refused, naming the setting.

use regex::Regex;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;
use x509_parser::time::ASN1Time;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::entries::pki::{self, der_tlv, MAX_CHAIN_LEN};
use crate::entries::Signer;

/// Fulcio's OIDC issuer, a DER `UTF8String` (1.3.6.1.4.1.57264.1.8).
const OID_FULCIO_ISSUER_V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];
/// Fulcio's deprecated OIDC issuer, the raw text (1.3.6.1.4.1.57264.1.1).
const OID_FULCIO_ISSUER_V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];

/// A policy file or rule that cannot be used; `app` refuses to start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("write_policy.{setting}: {reason}")]
pub struct SetupError {
    /// The setting, e.g. `allowed_keys` or `allowed_identities[0].san_regex`.
    pub setting: String,
    /// What is wrong with it.
    pub reason: String,
}

fn setup(setting: &str, reason: impl Into<String>) -> SetupError {
    SetupError {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// Why an entry is outside the policy; the message names the rule (HTTP 403).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// A signer's key is not listed, and no certificate rule admits it.
    #[error("the signing key is not listed in write_policy.allowed_keys")]
    KeyNotAllowed,
    /// A bare key where only certificates are admitted.
    #[error("a bare public key is not admitted: write_policy admits certificates that chain to write_policy.trusted_roots")]
    CertificateRequired,
    /// The certificate does not chain to a trusted root at submission time.
    #[error("the certificate does not chain to write_policy.trusted_roots: {0}")]
    Untrusted(&'static str),
    /// The certificate's identity is not listed.
    #[error("the certificate identity {san:?} with OIDC issuer {issuer:?} is not in write_policy.allowed_identities")]
    Identity {
        /// The certificate's first SAN (empty without one).
        san: String,
        /// Its Fulcio OIDC issuer (empty without one).
        issuer: String,
    },
    /// A certificate whose key is not listed and that the certificate rule
    /// refuses too; names both rules.
    #[error("the signing key is not listed in write_policy.allowed_keys, and {0}")]
    Neither(Box<Refusal>),
    /// A key format the policy cannot match.
    #[error("{0} keys are not admitted: write_policy.allowed_keys lists PEM public keys only")]
    UnsupportedFormat(&'static str),
    /// Nothing signed the entry (never the case for a verified entry).
    #[error("the entry has no signer to check against write_policy")]
    NoSigner,
}

/// How a rule matches a certificate's SAN.
#[derive(Debug, Clone)]
pub enum SanPattern {
    /// The whole SAN, byte for byte.
    Exact(String),
    /// A regular expression that must match the whole SAN.
    Regex(Regex),
}

impl SanPattern {
    /// A pattern anchored at both ends, so `.*@example\.com` cannot match
    /// `x@example.com.evil`.
    ///
    /// # Errors
    /// The regular expression does not compile.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(&format!("^(?:{pattern})$")).map(Self::Regex)
    }

    fn matches(&self, san: &str) -> bool {
        match self {
            Self::Exact(want) => want == san,
            Self::Regex(re) => re.is_match(san),
        }
    }
}

/// One allowed certificate identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// What the SAN must be.
    pub san: SanPattern,
    /// The exact OIDC issuer from the Fulcio extension.
    pub issuer: String,
}

/// A loaded write policy; see the module docs for the rules.
#[derive(Debug, Default)]
pub struct WritePolicy {
    /// SPKI DER of each allowed key; `None` without the key rule.
    allowed_keys: Option<Vec<Vec<u8>>>,
    /// DER of each trust anchor; `None` without the certificate rule.
    trusted_roots: Option<Vec<Vec<u8>>>,
    identities: Vec<Identity>,
}

impl WritePolicy {
    /// A policy from the PEM text of `allowed_keys` and `trusted_roots` (each
    /// optional) and the identity rules.
    ///
    /// # Errors
    /// A file without blocks of its type, a block that does not parse, or
    /// identities without `trusted_roots` (anyone can make a certificate with
    /// any identity; only a trusted issuer makes one mean something).
    pub fn new(
        allowed_keys: Option<&[u8]>,
        trusted_roots: Option<&[u8]>,
        identities: Vec<Identity>,
    ) -> Result<Self, SetupError> {
        let allowed_keys = allowed_keys.map(parse_keys).transpose()?;
        let trusted_roots = trusted_roots.map(parse_roots).transpose()?;
        if !identities.is_empty() && trusted_roots.is_none() {
            return Err(setup(
                "allowed_identities",
                "needs write_policy.trusted_roots: without a trusted issuer anyone can make a certificate with any identity",
            ));
        }
        Ok(Self {
            allowed_keys,
            trusted_roots,
            identities,
        })
    }

    /// Whether any rule is set; an empty policy admits everything and is
    /// not installed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.allowed_keys.is_none() && self.trusted_roots.is_none()
    }

    /// Admits an entry whose every signer is admitted, at Unix time `now`.
    ///
    /// # Errors
    /// The [`Refusal`] of the first signer outside the policy.
    pub fn check(&self, signers: &[Signer], now: i64) -> Result<(), Refusal> {
        if signers.is_empty() {
            return Err(Refusal::NoSigner);
        }
        signers.iter().try_for_each(|s| self.admit(s, now))
    }

    fn admit(&self, signer: &Signer, now: i64) -> Result<(), Refusal> {
        let pem_text = match signer {
            Signer::X509(pem) => pem,
            Signer::Ssh(_) => return Err(Refusal::UnsupportedFormat("ssh")),
            Signer::Minisign(_) => return Err(Refusal::UnsupportedFormat("minisign")),
            Signer::Pgp(_) => return Err(Refusal::UnsupportedFormat("pgp")),
        };
        // The entry was verified with this PEM, so it parses; refuse if not.
        let blocks = pem::parse_many(pem_text).map_err(|_| Refusal::KeyNotAllowed)?;
        let Some(first) = blocks.first() else {
            return Err(Refusal::KeyNotAllowed);
        };
        if first.tag() != "CERTIFICATE" {
            return match self.allowed_keys {
                Some(_) if self.key_listed(first.contents()) => Ok(()),
                None => Err(Refusal::CertificateRequired),
                Some(_) => Err(Refusal::KeyNotAllowed),
            };
        }
        let certs = blocks
            .iter()
            .take(MAX_CHAIN_LEN)
            .map(|b| X509Certificate::from_der(b.contents()).map(|(_, c)| c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Refusal::KeyNotAllowed)?;
        if self.key_listed(certs[0].public_key().raw) {
            return Ok(());
        }
        let Some(roots) = &self.trusted_roots else {
            return Err(Refusal::KeyNotAllowed);
        };
        match self.certificate_admitted(&certs, roots, now) {
            Err(refusal) if self.allowed_keys.is_some() => Err(Refusal::Neither(Box::new(refusal))),
            result => result,
        }
    }

    /// The certificate rule: a path to a trusted root, then the identity.
    fn certificate_admitted(
        &self,
        certs: &[X509Certificate<'_>],
        roots: &[Vec<u8>],
        now: i64,
    ) -> Result<(), Refusal> {
        let roots = roots
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
            .collect::<Vec<_>>();
        let now = ASN1Time::from_timestamp(now).map_err(|_| Refusal::Untrusted("bad clock"))?;
        chain_to_roots(certs, &roots, now).map_err(Refusal::Untrusted)?;
        self.identity_allowed(&certs[0])
    }

    fn key_listed(&self, spki_der: &[u8]) -> bool {
        self.allowed_keys
            .as_ref()
            .is_some_and(|keys| keys.iter().any(|k| k == spki_der))
    }

    fn identity_allowed(&self, leaf: &X509Certificate<'_>) -> Result<(), Refusal> {
        if self.identities.is_empty() {
            return Ok(());
        }
        let sans = pki::certificate_subjects(leaf).unwrap_or_default();
        let issuer = oidc_issuer(leaf);
        let listed = self.identities.iter().any(|id| {
            issuer.as_deref() == Some(id.issuer.as_str()) && sans.iter().any(|s| id.san.matches(s))
        });
        if listed {
            return Ok(());
        }
        Err(Refusal::Identity {
            san: sans.into_iter().next().unwrap_or_default(),
            issuer: issuer.unwrap_or_default(),
        })
    }
}

/// Who a signer is, as a monitor's watch list sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerIdentity {
    /// The certificate's SANs (none for a bare key).
    pub sans: Vec<String>,
    /// Its Fulcio OIDC issuer, if it has the extension.
    pub issuer: Option<String>,
    /// Lowercase hex SHA-256 of the public key's SPKI DER (the `PUBLIC KEY`
    /// PEM block, or the certificate's key); for ssh, minisign and pgp keys,
    /// of the key as the body stores it.
    pub key_fingerprint: String,
    /// Lowercase hex SHA-256 of the leaf certificate's DER, for a certificate.
    pub certificate_fingerprint: Option<String>,
}

/// The identity of `signer`: SANs and OIDC issuer of a certificate (the same
/// extraction as the certificate rule), and fingerprints. `None` for PEM
/// that does not parse.
#[must_use]
pub fn signer_identity(signer: &Signer) -> Option<SignerIdentity> {
    let pem_text = match signer {
        Signer::X509(pem) => pem,
        Signer::Ssh(raw) | Signer::Minisign(raw) | Signer::Pgp(raw) => {
            return Some(SignerIdentity {
                key_fingerprint: hex::encode(Sha256::digest(raw)),
                ..SignerIdentity::default()
            })
        }
    };
    let blocks = pem::parse_many(pem_text).ok()?;
    let first = blocks.first()?;
    if first.tag() != "CERTIFICATE" {
        return Some(SignerIdentity {
            key_fingerprint: hex::encode(Sha256::digest(first.contents())),
            ..SignerIdentity::default()
        });
    }
    let (_, cert) = X509Certificate::from_der(first.contents()).ok()?;
    Some(SignerIdentity {
        sans: pki::certificate_subjects(&cert).unwrap_or_default(),
        issuer: oidc_issuer(&cert),
        key_fingerprint: hex::encode(Sha256::digest(cert.public_key().raw)),
        certificate_fingerprint: Some(hex::encode(Sha256::digest(first.contents()))),
    })
}

/// Finds a path from `certs[0]` through `certs[1..]` (CA intermediates) to one
/// of `roots`, every certificate on it valid at `now`.
fn chain_to_roots(
    certs: &[X509Certificate<'_>],
    roots: &[X509Certificate<'_>],
    now: ASN1Time,
) -> Result<(), &'static str> {
    let mut current = &certs[0];
    if !current.validity().is_valid_at(now) {
        return Err("the certificate was not valid at submission time");
    }
    let usable = |c: &X509Certificate<'_>, child: &X509Certificate<'_>| {
        c.validity().is_valid_at(now) && pki::is_issued_by(child, c)
    };
    for _ in 0..MAX_CHAIN_LEN {
        if roots.iter().any(|root| usable(root, current)) {
            return Ok(());
        }
        current = certs[1..]
            .iter()
            .find(|c| is_ca(c) && usable(c, current))
            .ok_or("no trusted issuer signed it, or its issuer was not valid at submission time")?;
    }
    Err("the chain is too long")
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    cert.basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca)
}

/// The Fulcio OIDC issuer: the DER extension if present, else the legacy raw one.
fn oidc_issuer(cert: &X509Certificate<'_>) -> Option<String> {
    let value = |oid: &[u64]| {
        cert.extensions()
            .iter()
            .find(|e| e.oid.iter().is_some_and(|o| o.eq(oid.iter().copied())))
            .map(|e| e.value)
    };
    let v2 = value(OID_FULCIO_ISSUER_V2).and_then(|v| match der_tlv(v)? {
        (0x0c, text, []) => String::from_utf8(text.to_vec()).ok(),
        _ => None,
    });
    v2.or_else(|| value(OID_FULCIO_ISSUER_V1).and_then(|v| String::from_utf8(v.to_vec()).ok()))
}

fn parse_keys(text: &[u8]) -> Result<Vec<Vec<u8>>, SetupError> {
    let blocks = blocks_of("allowed_keys", text, "PUBLIC KEY")?;
    for (i, der) in blocks.iter().enumerate() {
        match SubjectPublicKeyInfo::from_der(der) {
            Ok(([], _)) => {}
            _ => {
                return Err(setup(
                    "allowed_keys",
                    format!("key {} is not a DER SubjectPublicKeyInfo", i + 1),
                ))
            }
        }
    }
    Ok(blocks)
}

fn parse_roots(text: &[u8]) -> Result<Vec<Vec<u8>>, SetupError> {
    let blocks = blocks_of("trusted_roots", text, "CERTIFICATE")?;
    for (i, der) in blocks.iter().enumerate() {
        if !matches!(X509Certificate::from_der(der), Ok(([], _))) {
            return Err(setup(
                "trusted_roots",
                format!("certificate {} does not parse", i + 1),
            ));
        }
    }
    Ok(blocks)
}

/// The contents of every PEM block, all of which must have `tag`.
fn blocks_of(setting: &str, text: &[u8], tag: &str) -> Result<Vec<Vec<u8>>, SetupError> {
    let blocks =
        pem::parse_many(text).map_err(|e| setup(setting, format!("couldn't read PEM: {e}")))?;
    if blocks.is_empty() {
        return Err(setup(setting, format!("holds no {tag} block")));
    }
    blocks
        .into_iter()
        .map(|b| {
            if b.tag() == tag {
                Ok(b.into_contents())
            } else {
                Err(setup(
                    setting,
                    format!("holds a {} block; only {tag} blocks are allowed", b.tag()),
                ))
            }
        })
        .collect()
}

/// The bearer tokens a create must present (`write_policy.bearer_tokens_file`),
/// kept as SHA-256 digests and compared in constant time.
#[derive(Debug)]
pub struct BearerTokens(Vec<[u8; 32]>);

impl BearerTokens {
    /// Tokens from the file text: one per line, surrounding whitespace
    /// trimmed; blank lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// The file lists no token.
    pub fn parse(text: &str) -> Result<Self, SetupError> {
        let tokens: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        if tokens.is_empty() {
            return Err(setup("bearer_tokens_file", "lists no token"));
        }
        Ok(Self(tokens))
    }

    /// Whether an `Authorization` header value carries a listed token. Every
    /// token is compared, so the time taken does not tell which one matched.
    #[must_use]
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(token) = authorization.and_then(bearer_token) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(token).into();
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, t| found | t.ct_eq(&given))
            .into()
    }
}

/// The token of `Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive).
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = header.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.trim_ascii().is_empty())
        .then(|| token.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::pki::Curve;
    use crate::entries::test_support::{
        certificate, fulcio_issuer, pem, san_email, san_uri, CertSpec, TestKey,
    };

    /// 2024-01-01T12:00:00Z: inside the test leaves' validity (one day).
    const NOW: i64 = 1_704_110_400;

    fn key() -> TestKey {
        TestKey::ecdsa(Curve::P256)
    }

    struct Ca {
        key: TestKey,
        der: Vec<u8>,
        name: &'static str,
    }

    fn ca(name: &'static str) -> Ca {
        let key = key();
        let der = certificate(&CertSpec::ca(name, name), &key.spki(), &key);
        Ca { key, der, name }
    }

    /// A leaf for `key` issued by `ca`, with an email SAN and a Fulcio issuer.
    fn leaf(ca: &Ca, key: &TestKey, email: &str, issuer: &str) -> Vec<u8> {
        let mut spec = CertSpec::leaf("leaf", ca.name);
        spec.sans = vec![san_email(email)];
        spec.extensions = vec![fulcio_issuer(issuer, false)];
        pem("CERTIFICATE", &certificate(&spec, &key.spki(), &ca.key))
    }

    fn alice() -> Identity {
        Identity {
            san: SanPattern::Exact("alice@example.com".into()),
            issuer: "https://issuer.example".into(),
        }
    }

    fn policy(keys: &[&TestKey], roots: &[&Ca], identities: Vec<Identity>) -> WritePolicy {
        let keys: Vec<u8> = keys.iter().flat_map(|k| k.public_pem()).collect();
        let roots: Vec<u8> = roots
            .iter()
            .flat_map(|c| pem("CERTIFICATE", &c.der))
            .collect();
        WritePolicy::new(
            (!keys.is_empty()).then_some(&keys[..]),
            (!roots.is_empty()).then_some(&roots[..]),
            identities,
        )
        .unwrap()
    }

    #[test]
    fn listed_keys_are_admitted_by_spki_and_others_refused() {
        let (listed, other) = (key(), key());
        let p = policy(&[&listed], &[], vec![]);
        assert_eq!(p.check(&[Signer::X509(listed.public_pem())], NOW), Ok(()));
        assert_eq!(
            p.check(&[Signer::X509(other.public_pem())], NOW),
            Err(Refusal::KeyNotAllowed)
        );
        // A certificate for a listed key signs with that key: admitted.
        let self_signed = certificate(&CertSpec::leaf("x", "x"), &listed.spki(), &listed);
        let cert = Signer::X509(pem("CERTIFICATE", &self_signed));
        assert_eq!(p.check(&[cert], NOW), Ok(()));
    }

    #[test]
    fn every_signer_must_be_admitted() {
        let (listed, other) = (key(), key());
        let p = policy(&[&listed], &[], vec![]);
        let both = [
            Signer::X509(listed.public_pem()),
            Signer::X509(other.public_pem()),
        ];
        assert_eq!(p.check(&both, NOW), Err(Refusal::KeyNotAllowed));
        assert_eq!(p.check(&[], NOW), Err(Refusal::NoSigner));
    }

    #[test]
    fn non_pem_formats_are_refused_naming_allowed_keys() {
        let p = policy(&[&key()], &[], vec![]);
        for (signer, name) in [
            (Signer::Ssh(b"ssh-ed25519 AAAA".to_vec()), "ssh"),
            (Signer::Minisign(vec![]), "minisign"),
            (Signer::Pgp(vec![]), "pgp"),
        ] {
            let err = p.check(&[signer], NOW).unwrap_err();
            assert_eq!(err, Refusal::UnsupportedFormat(name));
            assert!(err.to_string().contains("write_policy.allowed_keys"));
        }
    }

    #[test]
    fn certificates_from_a_trusted_root_with_a_listed_identity_are_admitted() {
        let root = ca("root");
        let signer = key();
        let p = policy(&[], &[&root], vec![alice()]);
        let good = leaf(
            &root,
            &signer,
            "alice@example.com",
            "https://issuer.example",
        );
        assert_eq!(p.check(&[Signer::X509(good)], NOW), Ok(()));
        // The deprecated raw issuer extension counts too.
        let mut spec = CertSpec::leaf("leaf", root.name);
        spec.sans = vec![san_email("alice@example.com")];
        spec.extensions = vec![fulcio_issuer("https://issuer.example", true)];
        let legacy = pem(
            "CERTIFICATE",
            &certificate(&spec, &signer.spki(), &root.key),
        );
        assert_eq!(p.check(&[Signer::X509(legacy)], NOW), Ok(()));
    }

    #[test]
    fn another_identity_or_issuer_is_refused_naming_allowed_identities() {
        let root = ca("root");
        let signer = key();
        let p = policy(&[], &[&root], vec![alice()]);
        for (email, issuer) in [
            ("mallory@example.com", "https://issuer.example"),
            ("alice@example.com", "https://other.example"),
        ] {
            let cert = leaf(&root, &signer, email, issuer);
            let err = p.check(&[Signer::X509(cert)], NOW).unwrap_err();
            assert_eq!(
                err,
                Refusal::Identity {
                    san: email.into(),
                    issuer: issuer.into()
                }
            );
            assert!(err.to_string().contains("write_policy.allowed_identities"));
        }
    }

    #[test]
    fn with_both_rules_a_certificate_passes_either_and_a_refusal_names_both() {
        let root = ca("root");
        let (listed, other) = (key(), key());
        let p = policy(&[&listed], &[&root], vec![alice()]);
        let by_key = certificate(&CertSpec::leaf("x", "x"), &listed.spki(), &listed);
        assert_eq!(
            p.check(&[Signer::X509(pem("CERTIFICATE", &by_key))], NOW),
            Ok(())
        );
        let by_root = leaf(&root, &other, "alice@example.com", "https://issuer.example");
        assert_eq!(p.check(&[Signer::X509(by_root)], NOW), Ok(()));
        let neither = leaf(
            &root,
            &other,
            "mallory@example.com",
            "https://issuer.example",
        );
        let err = p.check(&[Signer::X509(neither)], NOW).unwrap_err();
        assert!(
            matches!(&err, Refusal::Neither(inner) if matches!(**inner, Refusal::Identity { .. }))
        );
        let message = err.to_string();
        assert!(message.contains("write_policy.allowed_keys"), "{message}");
        assert!(
            message.contains("write_policy.allowed_identities"),
            "{message}"
        );
        assert_eq!(
            p.check(&[Signer::X509(other.public_pem())], NOW),
            Err(Refusal::KeyNotAllowed)
        );
    }

    #[test]
    fn san_regexes_match_the_whole_san() {
        let root = ca("root");
        let signer = key();
        let rule = Identity {
            san: SanPattern::regex(r"https://ci\.example/.+").unwrap(),
            issuer: "https://issuer.example".into(),
        };
        let p = policy(&[], &[&root], vec![rule]);
        let with_uri = |uri: &str| {
            let mut spec = CertSpec::leaf("leaf", root.name);
            spec.sans = vec![san_uri(uri)];
            spec.extensions = vec![fulcio_issuer("https://issuer.example", false)];
            Signer::X509(pem(
                "CERTIFICATE",
                &certificate(&spec, &signer.spki(), &root.key),
            ))
        };
        assert_eq!(
            p.check(&[with_uri("https://ci.example/org/repo")], NOW),
            Ok(())
        );
        for uri in ["https://ci.example/", "x-https://ci.example/org"] {
            assert!(p.check(&[with_uri(uri)], NOW).is_err(), "{uri}");
        }
    }

    #[test]
    fn certificates_must_chain_to_a_trusted_root_at_submission_time() {
        let (root, stranger) = (ca("root"), ca("stranger"));
        let signer = key();
        let p = policy(&[], &[&root], vec![]);
        let foreign = leaf(
            &stranger,
            &signer,
            "alice@example.com",
            "https://issuer.example",
        );
        assert!(matches!(
            p.check(&[Signer::X509(foreign)], NOW),
            Err(Refusal::Untrusted(_))
        ));
        // Same name as the trusted root, other key: the signature decides.
        let impostor = Ca {
            name: "root",
            ..ca("root")
        };
        let forged = leaf(
            &impostor,
            &signer,
            "alice@example.com",
            "https://issuer.example",
        );
        assert!(p.check(&[Signer::X509(forged)], NOW).is_err());
        let good = leaf(
            &root,
            &signer,
            "alice@example.com",
            "https://issuer.example",
        );
        let expired = NOW + 2 * 86_400;
        assert_eq!(
            p.check(&[Signer::X509(good.clone())], expired),
            Err(Refusal::Untrusted(
                "the certificate was not valid at submission time"
            ))
        );
        // Bare keys need the key rule.
        assert_eq!(
            p.check(&[Signer::X509(signer.public_pem())], NOW),
            Err(Refusal::CertificateRequired)
        );
    }

    #[test]
    fn submitted_intermediates_complete_the_path() {
        let root = ca("root");
        let inter_key = key();
        let mut spec = CertSpec::ca("inter", "root");
        spec.path_len = Some(0);
        let inter_der = certificate(&spec, &inter_key.spki(), &root.key);
        let inter = Ca {
            key: inter_key,
            der: inter_der.clone(),
            name: "inter",
        };
        let signer = key();
        let mut chain = leaf(
            &inter,
            &signer,
            "alice@example.com",
            "https://issuer.example",
        );
        let p = policy(&[], &[&root], vec![alice()]);
        assert!(p.check(&[Signer::X509(chain.clone())], NOW).is_err());
        chain.extend(pem("CERTIFICATE", &inter_der));
        assert_eq!(p.check(&[Signer::X509(chain)], NOW), Ok(()));
        // Or the intermediate is itself listed as an anchor.
        let p = policy(&[], &[&inter], vec![alice()]);
        let alone = leaf(
            &inter,
            &signer,
            "alice@example.com",
            "https://issuer.example",
        );
        assert_eq!(p.check(&[Signer::X509(alone)], NOW), Ok(()));
    }

    #[test]
    fn policy_files_are_checked_at_setup() {
        let cert = pem("CERTIFICATE", &ca("root").der);
        let err = WritePolicy::new(Some(&cert), None, vec![]).unwrap_err();
        assert_eq!(err.setting, "allowed_keys");
        let err = WritePolicy::new(None, Some(b"not pem"), vec![]).unwrap_err();
        assert_eq!(err.setting, "trusted_roots");
        let garbage = pem("PUBLIC KEY", b"junk");
        assert!(WritePolicy::new(Some(&garbage), None, vec![]).is_err());
        let err = WritePolicy::new(Some(&key().public_pem()), None, vec![alice()]).unwrap_err();
        assert_eq!(err.setting, "allowed_identities");
        assert!(WritePolicy::new(None, None, vec![]).unwrap().is_empty());
    }

    #[test]
    fn bearer_tokens_match_exactly() {
        let tokens = BearerTokens::parse("# ci\n s3cret \n\nother\n").unwrap();
        assert!(tokens.accepts(Some(b"Bearer s3cret")));
        assert!(tokens.accepts(Some(b"bearer other")));
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Basic s3cret",
            b"s3cret",
            b"Bearer ",
            b"Bearer # ci",
        ] {
            assert!(
                !tokens.accepts(Some(bad)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(!tokens.accepts(None));
        assert!(BearerTokens::parse("# nothing\n\n").is_err());
    }
}
