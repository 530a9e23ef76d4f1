//! Public keys and certificates as Rekor's x509 PKI reads them: PEM in, a
//! verification key, its canonical PEM and its subjects out.
//!
//! Spec: rekor-v1.md T-02 "Key", E-08 (search keys). Mirrors sigstore/rekor
//! `pkg/pki/x509/x509.go` `NewPublicKey` and `CanonicalValue`, and sigstore
//! `cryptoutils.GetSubjectAlternateNames`.
//!
//! Accepted: a PKIX `PUBLIC KEY` (ECDSA P-256/384/521, RSA, Ed25519), one
//! `CERTIFICATE` (its key is used; validity is not checked, as in Rekor), or a
//! chain of up to [`MAX_CHAIN_LEN`] certificates, leaf first, verified with the
//! last one as the root at the leaf's `NotBefore`.
//!
//! Not done: SSH, PGP and minisign keys (those belong to `rekord`), name
//! constraints and alternative path building in chains (the chain must be given
//! in order).

use core::fmt::Write as _;
use core::net::{Ipv4Addr, Ipv6Addr};

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    Oid, OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
    OID_SIG_ECDSA_WITH_SHA512, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Most certificates accepted in one PEM chain (sigstore
/// `UnmarshalCertificatesFromPEMLimited`).
pub const MAX_CHAIN_LEN: usize = 10;

/// The `hash` pattern of `POST /api/v1/index/retrieve` (E-08), for 422 messages.
pub const HASH_SEARCH_PATTERN: &str =
    "^(sha512:)?[0-9a-fA-F]{128}$|^(sha256:)?[0-9a-fA-F]{64}$|^(sha1:)?[0-9a-fA-F]{40}$";

/// Fulcio's `OtherName` SAN, whose value is a `UTF8String` (a username such as
/// `foo!oidc.local`).
const OID_FULCIO_OTHERNAME: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 7];

/// The NIST curves an ECDSA key may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// secp256r1.
    P256,
    /// secp384r1.
    P384,
    /// secp521r1.
    P521,
}

impl Curve {
    /// Length in bytes of one scalar (r or s) on this curve.
    #[must_use]
    pub const fn scalar_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }
}

/// What kind of key signs, as far as the algorithm policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on a NIST curve.
    Ecdsa(Curve),
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// Modulus length in bits.
        bits: usize,
    },
    /// Ed25519.
    Ed25519,
}

/// Why a key was refused. The caller decides the client message prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PEM or DER does not hold a key we accept.
    #[error("{0}")]
    Invalid(String),
    /// A certificate chain parsed but does not verify (Rekor reports this
    /// while verifying the signature).
    #[error("{0}")]
    Chain(String),
}

fn invalid(msg: &str) -> KeyError {
    KeyError::Invalid(msg.to_owned())
}

/// A parsed verification key with its canonical form and subjects.
#[derive(Debug, Clone)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    /// The SPKI `subjectPublicKey` bits: an uncompressed EC point, a PKCS#1
    /// `RSAPublicKey`, or 32 raw Ed25519 bytes.
    key_bytes: Vec<u8>,
    canonical_pem: Vec<u8>,
    subjects: Vec<String>,
}

impl PublicKey {
    /// Parses PEM text as Rekor's x509 `NewPublicKey` does.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] with Rekor's message (`invalid public key: failure
    /// decoding PEM`, `invalid public key: cannot handle type RSA PUBLIC KEY`,
    /// an `x509: …` parse error); [`KeyError::Chain`] for a chain that does
    /// not verify.
    pub fn parse(pem_text: &[u8]) -> Result<Self, KeyError> {
        Self::parse_pem(pem_text, true)
    }

    /// Parses PEM text as [`PublicKey::parse`] does, with the same limits,
    /// but without verifying a certificate chain's signatures: for a key the
    /// log accepted already, read back from a committed body.
    ///
    /// # Errors
    /// As [`PublicKey::parse`], except that a chain is never
    /// [`KeyError::Chain`].
    pub fn parse_committed(pem_text: &[u8]) -> Result<Self, KeyError> {
        Self::parse_pem(pem_text, false)
    }

    fn parse_pem(pem_text: &[u8], verify: bool) -> Result<Self, KeyError> {
        let blocks = pem::parse_many(pem_text)
            .map_err(|_| invalid("invalid public key: failure decoding PEM"))?;
        match blocks.as_slice() {
            [] => Err(invalid("invalid public key: failure decoding PEM")),
            [one] => match one.tag() {
                "PUBLIC KEY" => Self::from_spki_der(one.contents()),
                "CERTIFICATE" => Self::from_chain(&blocks, verify),
                other => Err(KeyError::Invalid(format!(
                    "invalid public key: cannot handle type {other}"
                ))),
            },
            many if many.len() > MAX_CHAIN_LEN => {
                Err(invalid("too many certificates specified in PEM block"))
            }
            many => Self::from_chain(many, verify),
        }
    }

    /// The key type and size, for the algorithm policy.
    #[must_use]
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The raw key bits (EC point, PKCS#1 RSA key or Ed25519 bytes).
    #[must_use]
    pub fn key_bytes(&self) -> &[u8] {
        &self.key_bytes
    }

    /// The re-encoded PEM: no headers, 64-column base64, LF endings, a
    /// trailing LF; certificates concatenated for a chain.
    #[must_use]
    pub fn canonical_pem(&self) -> &[u8] {
        &self.canonical_pem
    }

    /// The leaf certificate's SANs in sigstore's order (DNS, email, IP, URI,
    /// Fulcio `OtherName`), as written; empty for a bare key.
    #[must_use]
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// Parses a DER `SubjectPublicKeyInfo` (Rekor v2's `publicKey.rawBytes`).
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|_| invalid("x509: failed to parse public key"))?;
        if !rest.is_empty() {
            return Err(invalid("x509: trailing data after ASN.1 of public-key"));
        }
        let (algorithm, key_bytes) = analyse_spki(&spki)?;
        let mut canonical_pem = Vec::with_capacity(der.len() * 4 / 3 + 64);
        encode_pem("PUBLIC KEY", der, &mut canonical_pem);
        Ok(Self {
            algorithm,
            key_bytes: key_bytes.to_vec(),
            canonical_pem,
            subjects: Vec::new(),
        })
    }

    /// The key of one DER certificate, with no chain, expiry or identity
    /// checks (Rekor v2's `x509Certificate.rawBytes`; rekor-v2-tiles.md W-04.3).
    pub(crate) fn from_certificate_der(der: &[u8]) -> Result<Self, KeyError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|_| invalid("x509: malformed certificate"))?;
        if !rest.is_empty() {
            return Err(invalid("x509: trailing data"));
        }
        let (algorithm, key_bytes) = analyse_spki(cert.public_key())?;
        let mut canonical_pem = Vec::new();
        encode_pem("CERTIFICATE", der, &mut canonical_pem);
        Ok(Self {
            algorithm,
            key_bytes: key_bytes.to_vec(),
            canonical_pem,
            subjects: subject_alternative_names(&cert)?,
        })
    }

    /// One certificate, or a chain leaf first; the leaf's key signs.
    fn from_chain(blocks: &[pem::Pem], verify: bool) -> Result<Self, KeyError> {
        let mut certs = Vec::with_capacity(blocks.len());
        let mut canonical_pem = Vec::new();
        for block in blocks {
            if block.tag() != "CERTIFICATE" {
                return Err(invalid("x509: malformed certificate"));
            }
            let (rest, cert) = X509Certificate::from_der(block.contents())
                .map_err(|_| invalid("x509: malformed certificate"))?;
            if !rest.is_empty() {
                return Err(invalid("x509: trailing data"));
            }
            encode_pem("CERTIFICATE", block.contents(), &mut canonical_pem);
            certs.push(cert);
        }
        let leaf = &certs[0];
        let (algorithm, key_bytes) = analyse_spki(leaf.public_key())?;
        let key_bytes = key_bytes.to_vec();
        let subjects = subject_alternative_names(leaf)?;
        if verify {
            verify_chain(&certs).map_err(|e| KeyError::Chain(e.to_owned()))?;
        }
        Ok(Self {
            algorithm,
            key_bytes,
            canonical_pem,
            subjects,
        })
    }
}

/// Classifies an SPKI the way Go's `x509.ParsePKIXPublicKey` would accept it.
fn analyse_spki<'a>(
    spki: &'a SubjectPublicKeyInfo<'_>,
) -> Result<(KeyAlgorithm, &'a [u8]), KeyError> {
    let oid = &spki.algorithm.algorithm;
    let bits: &[u8] = &spki.subject_public_key.data;
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve_oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| invalid("x509: failed to parse ECDSA parameters as named curve"))?;
        let curve = curve_from_oid(&curve_oid)
            .ok_or_else(|| invalid("x509: unsupported elliptic curve"))?;
        // Go accepts only the uncompressed form: 0x04 ‖ X ‖ Y.
        if bits.len() != 1 + 2 * curve.scalar_len() || bits[0] != 0x04 {
            return Err(invalid("x509: failed to unmarshal elliptic curve point"));
        }
        Ok((KeyAlgorithm::Ecdsa(curve), bits))
    } else if *oid == OID_PKCS1_RSAENCRYPTION {
        let bits_len =
            rsa_modulus_bits(bits).ok_or_else(|| invalid("x509: invalid RSA public key"))?;
        Ok((KeyAlgorithm::Rsa { bits: bits_len }, bits))
    } else if *oid == OID_SIG_ED25519 {
        if bits.len() != 32 {
            return Err(invalid("x509: wrong Ed25519 public key size"));
        }
        Ok((KeyAlgorithm::Ed25519, bits))
    } else {
        Err(invalid("x509: unknown public key algorithm"))
    }
}

fn curve_from_oid(oid: &Oid<'_>) -> Option<Curve> {
    if *oid == OID_EC_P256 {
        Some(Curve::P256)
    } else if *oid == OID_NIST_EC_P384 {
        Some(Curve::P384)
    } else if *oid == OID_NIST_EC_P521 {
        Some(Curve::P521)
    } else {
        None
    }
}

/// Modulus length in bits of a PKCS#1 `RSAPublicKey`, as Go's `Size()*8`.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let (tag, body, _) = der_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, modulus, rest) = der_tlv(body)?;
    let (etag, exponent, _) = der_tlv(rest)?;
    if tag != 0x02 || etag != 0x02 || exponent.is_empty() || modulus.first()? & 0x80 != 0 {
        return None;
    }
    let first = modulus.iter().position(|&b| b != 0)?;
    Some((modulus.len() - first) * 8)
}

/// Verifies `certs[0]` up to `certs[last]`, trusted as the root, at the leaf's
/// `NotBefore`, with any EKU: Go's `x509.Certificate.Verify` as Rekor calls it.
fn verify_chain(certs: &[X509Certificate<'_>]) -> Result<(), &'static str> {
    // A single certificate is used as a bare key: Rekor checks neither its
    // validity period nor its issuer.
    let [leaf, _, ..] = certs else {
        return Ok(());
    };
    let at = leaf.validity().not_before;
    if certs.iter().any(|c| !c.validity().is_valid_at(at)) {
        return Err("x509: certificate has expired or is not yet valid");
    }
    for (i, pair) in certs.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if child.issuer().as_raw() != parent.subject().as_raw() {
            return Err("x509: certificate signed by unknown authority");
        }
        let constraints = parent
            .basic_constraints()
            .ok()
            .flatten()
            .map(|e| e.value.clone());
        let parent_is_root = i + 2 == certs.len();
        // Go demands CA=true of intermediates only; the root is trusted as given.
        if !parent_is_root && !constraints.as_ref().is_some_and(|bc| bc.ca) {
            return Err("x509: certificate is not authorized to sign other certificates");
        }
        // `i` intermediates sit between the leaf and `parent`.
        if let Some(max) = constraints.and_then(|bc| bc.path_len_constraint) {
            if i > max as usize {
                return Err("x509: too many intermediates for path length constraint");
            }
        }
        verify_cert_signature(child, parent)
            .map_err(|()| "x509: certificate signed by unknown authority")?;
    }
    Ok(())
}

/// Whether `parent` issued `child`: names match and `parent`'s key verifies
/// `child`'s signature. Nothing else (validity, constraints) is checked.
#[must_use]
pub fn is_issued_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == parent.subject().as_raw()
        && verify_cert_signature(child, parent).is_ok()
}

/// A certificate's SANs in sigstore's order, as [`PublicKey::subjects`].
///
/// # Errors
/// A malformed subject alternative name extension.
pub fn certificate_subjects(cert: &X509Certificate<'_>) -> Result<Vec<String>, KeyError> {
    subject_alternative_names(cert)
}

fn verify_cert_signature(
    child: &X509Certificate<'_>,
    parent: &X509Certificate<'_>,
) -> Result<(), ()> {
    let (key, key_bytes) = analyse_spki(parent.public_key()).map_err(|_| ())?;
    let alg = cert_signature_algorithm(&child.signature_algorithm.algorithm, key).ok_or(())?;
    UnparsedPublicKey::new(alg, key_bytes)
        .verify(child.tbs_certificate.as_ref(), &child.signature_value.data)
        .map_err(|_| ())
}

fn cert_signature_algorithm(
    oid: &Oid<'_>,
    key: KeyAlgorithm,
) -> Option<&'static dyn VerificationAlgorithm> {
    use KeyAlgorithm::{Ecdsa, Ed25519, Rsa};
    let alg: &'static dyn VerificationAlgorithm = match key {
        Ecdsa(curve) => {
            let by_hash = match curve {
                Curve::P256 => [
                    &signature::ECDSA_P256_SHA256_ASN1,
                    &signature::ECDSA_P256_SHA384_ASN1,
                    &signature::ECDSA_P256_SHA512_ASN1,
                ],
                Curve::P384 => [
                    &signature::ECDSA_P384_SHA256_ASN1,
                    &signature::ECDSA_P384_SHA384_ASN1,
                    &signature::ECDSA_P384_SHA512_ASN1,
                ],
                Curve::P521 => [
                    &signature::ECDSA_P521_SHA256_ASN1,
                    &signature::ECDSA_P521_SHA384_ASN1,
                    &signature::ECDSA_P521_SHA512_ASN1,
                ],
            };
            let hashes = [
                &OID_SIG_ECDSA_WITH_SHA256,
                &OID_SIG_ECDSA_WITH_SHA384,
                &OID_SIG_ECDSA_WITH_SHA512,
            ];
            by_hash[hashes.iter().position(|h| *h == oid)?]
        }
        Rsa { .. } if *oid == OID_PKCS1_SHA256WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA256,
        Rsa { .. } if *oid == OID_PKCS1_SHA384WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA384,
        Rsa { .. } if *oid == OID_PKCS1_SHA512WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA512,
        Ed25519 if *oid == OID_SIG_ED25519 => &signature::ED25519,
        Rsa { .. } | Ed25519 => return None,
    };
    Some(alg)
}

/// sigstore `GetSubjectAlternateNames`: DNS names, emails, IPs, URIs, then the
/// Fulcio `OtherName`.
fn subject_alternative_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, KeyError> {
    let Some(san) = cert
        .subject_alternative_name()
        .map_err(|_| invalid("x509: malformed subject alternative name extension"))?
    else {
        return Ok(Vec::new());
    };
    let names = &san.value.general_names;
    let mut out = Vec::with_capacity(names.len());
    let pick = |f: &dyn Fn(&GeneralName<'_>) -> Option<String>, out: &mut Vec<String>| {
        out.extend(names.iter().filter_map(f));
    };
    pick(
        &|n| matches!(n, GeneralName::DNSName(s) if !s.is_empty()).then(|| text_of(n)),
        &mut out,
    );
    pick(
        &|n| matches!(n, GeneralName::RFC822Name(_)).then(|| text_of(n)),
        &mut out,
    );
    pick(
        &|n| match n {
            GeneralName::IPAddress(b) => format_ip(b),
            _ => None,
        },
        &mut out,
    );
    pick(
        &|n| matches!(n, GeneralName::URI(_)).then(|| text_of(n)),
        &mut out,
    );
    if let Some(other) = names.iter().find_map(fulcio_other_name) {
        out.push(other);
    }
    Ok(out)
}

fn text_of(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
            (*s).to_owned()
        }
        _ => String::new(),
    }
}

/// Go's `net.IP.String`: dotted quad for IPv4 and IPv4-mapped IPv6, RFC 5952
/// otherwise.
fn format_ip(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(Ipv4Addr::from(v4).to_string());
    }
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
    Some(
        v6.to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
    )
}

/// The `UTF8String` inside a Fulcio `OtherName` (`[0] EXPLICIT UTF8String`).
fn fulcio_other_name(name: &GeneralName<'_>) -> Option<String> {
    let GeneralName::OtherName(oid, value) = name else {
        return None;
    };
    if oid.iter()?.ne(OID_FULCIO_OTHERNAME.iter().copied()) {
        return None;
    }
    let (tag, inner, _) = der_tlv(value)?;
    let (utf8_tag, text, _) = der_tlv(if tag == 0xa0 { inner } else { value })?;
    (utf8_tag == 0x0c)
        .then(|| String::from_utf8(text.to_vec()).ok())
        .flatten()
}

/// Splits one DER TLV off `input`: `(tag, contents, rest)`. Definite lengths
/// up to four length bytes; single-byte tags only.
pub(crate) fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Appends one canonical PEM block (sigstore `cryptoutils` / Go `pem.Encode`).
pub(crate) fn encode_pem(tag: &str, der: &[u8], out: &mut Vec<u8>) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    out.extend_from_slice(b"-----BEGIN ");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END ");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"-----\n");
}

/// The E-08 `publicKey` search key for format `x509`: lowercase hex SHA-256 of
/// the canonical PEM of `pem_text`, with no prefix.
///
/// # Errors
/// The [`KeyError`] of [`PublicKey::parse`]; the API answers 400 `public key
/// provided could not be parsed`.
pub fn public_key_search_key(pem_text: &[u8]) -> Result<String, KeyError> {
    let key = PublicKey::parse(pem_text)?;
    Ok(hex::encode(Sha256::digest(key.canonical_pem())))
}

/// Normalises an E-08 `hash` search value: checks [`HASH_SEARCH_PATTERN`],
/// lowercases, and adds the `sha1:`/`sha256:`/`sha512:` prefix its length
/// implies when absent (rekor `util.PrefixSHA`).
///
/// Returns `None` when the value does not match the pattern (422, code 605).
#[must_use]
pub fn normalize_hash_search_key(value: &str) -> Option<String> {
    let (prefix, hex_part) = match value.split_once(':') {
        Some((p, h)) => (Some(p), h),
        None => (None, value),
    };
    let implied = match hex_part.len() {
        40 => "sha1",
        64 => "sha256",
        128 => "sha512",
        _ => return None,
    };
    if prefix.is_some_and(|p| p != implied) || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = String::with_capacity(implied.len() + 1 + hex_part.len());
    let _ = write!(out, "{implied}:{}", hex_part.to_ascii_lowercase());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V01_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIEtTCCAp2gAwIBAgIUQo007zs0OhGOK8/Acik+axa7ve0wDQYJKoZIhvcNAQEL\n";

    #[test]
    fn hash_search_key_gets_the_prefix_its_length_implies() {
        let h64 = "AB".repeat(32);
        assert_eq!(
            normalize_hash_search_key(&h64),
            Some(format!("sha256:{}", "ab".repeat(32)))
        );
        assert_eq!(
            normalize_hash_search_key(&format!("sha256:{h64}")),
            Some(format!("sha256:{}", "ab".repeat(32)))
        );
        assert_eq!(
            normalize_hash_search_key(&"0".repeat(40)),
            Some(format!("sha1:{}", "0".repeat(40)))
        );
        assert_eq!(
            normalize_hash_search_key(&"f".repeat(128)),
            Some(format!("sha512:{}", "f".repeat(128)))
        );
    }

    #[test]
    fn hash_search_key_rejects_values_outside_the_pattern() {
        for bad in [
            String::new(),
            "g".repeat(64),
            "a".repeat(63),
            "a".repeat(96),
            format!("sha512:{}", "a".repeat(64)),
            format!("SHA256:{}", "a".repeat(64)),
            format!("md5:{}", "a".repeat(64)),
            format!("sha256:sha256:{}", "a".repeat(64)),
        ] {
            assert_eq!(normalize_hash_search_key(&bad), None, "{bad}");
        }
    }

    #[test]
    fn garbage_and_truncated_pem_fail_decoding() {
        for bad in [&b"not a pem"[..], b"", V01_CERT_PEM.as_bytes()] {
            assert_eq!(
                PublicKey::parse(bad).unwrap_err(),
                invalid("invalid public key: failure decoding PEM")
            );
        }
    }

    #[test]
    fn der_tlv_reads_short_and_long_lengths() {
        assert_eq!(
            der_tlv(&[0x02, 0x01, 0x05, 0xff]),
            Some((0x02, &[0x05][..], &[0xff][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let (tag, body, rest) = der_tlv(&long).unwrap();
        assert_eq!((tag, body.len(), rest.len()), (0x04, 0x80, 0));
        assert_eq!(der_tlv(&[0x04, 0x05, 0x00]), None);
    }

    #[test]
    fn ips_format_as_go_does() {
        assert_eq!(format_ip(&[10, 0, 0, 1]).unwrap(), "10.0.0.1");
        let mut mapped = [0u8; 16];
        mapped[10..].copy_from_slice(&[0xff, 0xff, 192, 168, 1, 2]);
        assert_eq!(format_ip(&mapped).unwrap(), "192.168.1.2");
        let mut v6 = [0u8; 16];
        v6[..2].copy_from_slice(&[0x20, 0x01]);
        v6[15] = 1;
        assert_eq!(format_ip(&v6).unwrap(), "2001::1");
        assert_eq!(format_ip(&[1, 2, 3]), None);
    }

    use super::super::test_support::{
        certificate, pem, pem_with, san_dns, san_email, san_fulcio_username, san_ip, san_uri,
        CertSpec, TestKey,
    };

    fn chain_pem(ders: &[Vec<u8>]) -> Vec<u8> {
        ders.iter().flat_map(|d| pem("CERTIFICATE", d)).collect()
    }

    /// leaf <- intermediate <- root, all P-256, validity nested.
    fn three_chain(leaf_key: &TestKey) -> (Vec<Vec<u8>>, TestKey, TestKey) {
        let root = TestKey::ecdsa(Curve::P256);
        let inter = TestKey::ecdsa(Curve::P256);
        let root_der = certificate(&CertSpec::ca("Root", "Root"), &root.spki(), &root);
        let inter_der = certificate(&CertSpec::ca("Intermediate", "Root"), &inter.spki(), &root);
        let mut leaf = CertSpec::leaf("", "Intermediate");
        leaf.sans = vec![san_email("dev@example.com")];
        let leaf_der = certificate(&leaf, &leaf_key.spki(), &inter);
        (vec![leaf_der, inter_der, root_der], inter, root)
    }

    #[test]
    fn public_keys_of_each_type_parse_with_their_algorithm() {
        for (key, algorithm) in [
            (
                TestKey::ecdsa(Curve::P256),
                KeyAlgorithm::Ecdsa(Curve::P256),
            ),
            (
                TestKey::ecdsa(Curve::P384),
                KeyAlgorithm::Ecdsa(Curve::P384),
            ),
            (
                TestKey::ecdsa(Curve::P521),
                KeyAlgorithm::Ecdsa(Curve::P521),
            ),
            (
                TestKey::rsa(aws_lc_rs::rsa::KeySize::Rsa3072),
                KeyAlgorithm::Rsa { bits: 3072 },
            ),
            (TestKey::ed25519(), KeyAlgorithm::Ed25519),
        ] {
            let parsed =
                PublicKey::parse(&pem_with("PUBLIC KEY", &key.spki(), 70, "\r\n")).unwrap();
            assert_eq!(parsed.algorithm(), algorithm);
            assert_eq!(parsed.canonical_pem(), key.public_pem());
            assert!(parsed.subjects().is_empty());
        }
    }

    #[test]
    fn compressed_ec_points_are_refused_as_go_does() {
        let key = TestKey::ecdsa(Curve::P256);
        let mut spki = key.spki();
        // Rewrite the 65-byte uncompressed point as a 33-byte compressed one.
        let point = spki.split_off(spki.len() - 65);
        let prefix_len = spki.len();
        let mut compressed = vec![0x02 | (point[64] & 1)];
        compressed.extend_from_slice(&point[1..33]);
        spki.truncate(prefix_len - 3);
        spki.extend([0x03, 34, 0x00]);
        spki.extend(compressed);
        spki[1] -= 32;
        assert_eq!(
            PublicKey::parse(&pem("PUBLIC KEY", &spki)).unwrap_err(),
            invalid("x509: failed to unmarshal elliptic curve point")
        );
    }

    #[test]
    fn certificate_sans_come_out_in_sigstore_order() {
        let ca = TestKey::ecdsa(Curve::P256);
        let key = TestKey::ecdsa(Curve::P384);
        let mut spec = CertSpec::leaf("", "CA");
        spec.sans = vec![
            san_fulcio_username("User!Issuer"),
            san_uri("https://github.com/org/repo/.github/workflows/x.yml@refs/heads/main"),
            san_ip(&[192, 0, 2, 7]),
            san_email("a@example.com"),
            san_dns("example.com"),
            san_email("b@example.com"),
            san_ip(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ];
        let der = certificate(&spec, &key.spki(), &ca);
        let parsed = PublicKey::parse(&pem("CERTIFICATE", &der)).unwrap();
        assert_eq!(parsed.algorithm(), KeyAlgorithm::Ecdsa(Curve::P384));
        assert_eq!(parsed.key_bytes(), &key.spki()[key.spki().len() - 97..]);
        assert_eq!(
            parsed.subjects(),
            [
                "example.com",
                "a@example.com",
                "b@example.com",
                "192.0.2.7",
                "2001:db8::1",
                "https://github.com/org/repo/.github/workflows/x.yml@refs/heads/main",
                "User!Issuer",
            ]
        );
        assert_eq!(parsed.canonical_pem(), pem("CERTIFICATE", &der));
    }

    #[test]
    fn an_expired_single_certificate_is_accepted() {
        let ca = TestKey::ecdsa(Curve::P256);
        let key = TestKey::ecdsa(Curve::P256);
        let mut spec = CertSpec::leaf("", "CA");
        (spec.not_before, spec.not_after) = ("000101000000Z", "000102000000Z");
        assert!(
            PublicKey::parse(&pem("CERTIFICATE", &certificate(&spec, &key.spki(), &ca))).is_ok()
        );
    }

    #[test]
    fn a_verified_chain_signs_with_the_leaf_key_and_indexes_the_leaf() {
        let leaf_key = TestKey::ecdsa(Curve::P256);
        let (ders, _, _) = three_chain(&leaf_key);
        let sent = chain_pem(&ders);
        let parsed = PublicKey::parse(&sent).unwrap();
        assert_eq!(parsed.canonical_pem(), sent);
        assert_eq!(parsed.subjects(), ["dev@example.com"]);
        assert_eq!(parsed.key_bytes(), &leaf_key.spki()[26..]);
        // A two-certificate chain (leaf, root) verifies too.
        let root = TestKey::ecdsa(Curve::P256);
        let root_der = certificate(&CertSpec::ca("Root", "Root"), &root.spki(), &root);
        let leaf_der = certificate(&CertSpec::leaf("", "Root"), &leaf_key.spki(), &root);
        assert!(PublicKey::parse(&chain_pem(&[leaf_der, root_der])).is_ok());
    }

    #[test]
    fn broken_chains_are_refused() {
        let leaf_key = TestKey::ecdsa(Curve::P256);
        let (ders, inter, root) = three_chain(&leaf_key);
        let unknown = |e: KeyError| {
            assert_eq!(
                e,
                KeyError::Chain("x509: certificate signed by unknown authority".into())
            );
        };

        // Out of order.
        unknown(
            PublicKey::parse(&chain_pem(&[
                ders[0].clone(),
                ders[2].clone(),
                ders[1].clone(),
            ]))
            .unwrap_err(),
        );
        // A root with the right name but another key.
        let impostor = TestKey::ecdsa(Curve::P256);
        let fake_root = certificate(&CertSpec::ca("Root", "Root"), &impostor.spki(), &impostor);
        unknown(
            PublicKey::parse(&chain_pem(&[ders[0].clone(), ders[1].clone(), fake_root]))
                .unwrap_err(),
        );

        // An intermediate that is not a CA.
        let mut not_ca = CertSpec::ca("Intermediate", "Root");
        not_ca.ca = false;
        let not_ca = certificate(&not_ca, &inter.spki(), &root);
        assert_eq!(
            PublicKey::parse(&chain_pem(&[ders[0].clone(), not_ca, ders[2].clone()])).unwrap_err(),
            KeyError::Chain(
                "x509: certificate is not authorized to sign other certificates".into()
            )
        );

        // An intermediate not yet valid at the leaf's NotBefore.
        let mut late = CertSpec::ca("Intermediate", "Root");
        late.not_before = "250101000000Z";
        let late = certificate(&late, &inter.spki(), &root);
        assert_eq!(
            PublicKey::parse(&chain_pem(&[ders[0].clone(), late, ders[2].clone()])).unwrap_err(),
            KeyError::Chain("x509: certificate has expired or is not yet valid".into())
        );

        // A root whose path length forbids the intermediate.
        let mut strict = CertSpec::ca("Root", "Root");
        strict.path_len = Some(0);
        let strict = certificate(&strict, &root.spki(), &root);
        assert_eq!(
            PublicKey::parse(&chain_pem(&[ders[0].clone(), ders[1].clone(), strict])).unwrap_err(),
            KeyError::Chain("x509: too many intermediates for path length constraint".into())
        );
    }

    #[test]
    fn chains_are_limited_to_ten_certificates_of_type_certificate() {
        let leaf_key = TestKey::ecdsa(Curve::P256);
        let (ders, _, _) = three_chain(&leaf_key);
        let eleven: Vec<Vec<u8>> = std::iter::repeat_n(ders[0].clone(), 11).collect();
        assert_eq!(
            PublicKey::parse(&chain_pem(&eleven)).unwrap_err(),
            invalid("too many certificates specified in PEM block")
        );
        let mixed = [pem("CERTIFICATE", &ders[0]), leaf_key.public_pem()].concat();
        assert_eq!(
            PublicKey::parse(&mixed).unwrap_err(),
            invalid("x509: malformed certificate")
        );
    }

    #[test]
    fn the_public_key_search_key_hashes_the_canonical_pem() {
        let key = TestKey::ed25519();
        let expected = hex::encode(Sha256::digest(key.public_pem()));
        assert_eq!(public_key_search_key(&key.public_pem()).unwrap(), expected);
        let crlf = pem_with("PUBLIC KEY", &key.spki(), 64, "\r\n");
        assert_eq!(public_key_search_key(&crlf).unwrap(), expected);
        assert!(public_key_search_key(b"nope").is_err());
    }
}
