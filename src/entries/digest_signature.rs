//! Signatures over a digest the client computed: hashedrekord never sees the
//! artifact, only `data.hash`, so each verifier takes the digest itself.
//!
//! Spec: rekor-v1.md T-02 "Signature". Mirrors sigstore
//! `pkg/signature/{ecdsa,rsapkcs1v15,ed25519ph}.go` with Rekor's options
//! (`WithDigest`, `WithED25519ph`), and keeps their error messages, which reach
//! clients after `verifying signature: `.
//!
//! ECDSA takes ASN.1 DER or IEEE P1363 `r ‖ s`; RSA takes PKCS#1 v1.5 only;
//! Ed25519 keys verify Ed25519ph (RFC 8032 `HashEdDSA`) over a SHA-512 digest.
//! Which (key, hash) pairs are allowed is the caller's policy, checked after.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::signature::{self, EcdsaVerificationAlgorithm, RsaParameters, UnparsedPublicKey};
use ed25519_dalek::VerifyingKey;
use sha2::digest::{consts::U64, FixedOutput, HashMarker, Output, OutputSizeUser, Update};

use super::pki::{der_tlv, Curve, KeyAlgorithm, PublicKey};

/// The algorithm of a client-computed digest (`data.hash.algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    pub(super) fn parse(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha384" => Some(Self::Sha384),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    pub(super) const fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    pub(super) const fn aws(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        }
    }

    /// Go's `crypto.Hash.String()`, used in sigstore's messages.
    pub(super) const fn go_name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }
}

/// Verifies `sig` over the pre-computed `digest`; the error is sigstore's
/// verifier message.
pub(super) fn verify(
    key: &PublicKey,
    hash: HashAlgorithm,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    match key.algorithm() {
        KeyAlgorithm::Ecdsa(curve) => verify_ecdsa(curve, key.key_bytes(), hash, digest, sig),
        KeyAlgorithm::Rsa { .. } => verify_rsa(key.key_bytes(), hash, digest, sig),
        KeyAlgorithm::Ed25519 => verify_ed25519ph(key.key_bytes(), hash, digest, sig),
    }
}

fn import_digest(hash: HashAlgorithm, digest: &[u8]) -> Result<Digest, String> {
    Digest::import_less_safe(digest, hash.aws())
        .map_err(|_| "unexpected length of digest".to_owned())
}

/// ECDSA over any (curve, hash) pair; the policy decides later whether the
/// pair is allowed. DER signatures are tried as DER only; anything else is
/// read as IEEE P1363 `r ‖ s`, as sigstore does.
fn verify_ecdsa(
    curve: Curve,
    point: &[u8],
    hash: HashAlgorithm,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let digest = import_digest(hash, digest)?;
    let alg = ecdsa_algorithm(curve, hash);
    if is_der_ecdsa_signature(sig) {
        return UnparsedPublicKey::new(alg, point)
            .verify_digest(&digest, sig)
            .map_err(|_| "invalid signature when validating ASN.1 encoded signature".to_owned());
    }
    let der =
        p1363_to_der(sig).ok_or_else(|| "ecdsa: Invalid IEEE_P1363 encoded bytes".to_owned())?;
    UnparsedPublicKey::new(alg, point)
        .verify_digest(&digest, &der)
        .map_err(|_| "invalid signature when validating IEEE_P1363 encoded signature".to_owned())
}

fn ecdsa_algorithm(curve: Curve, hash: HashAlgorithm) -> &'static EcdsaVerificationAlgorithm {
    use HashAlgorithm::{Sha256, Sha384, Sha512};
    match (curve, hash) {
        (Curve::P256, Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (Curve::P256, Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
        (Curve::P256, Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
        (Curve::P384, Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
        (Curve::P384, Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (Curve::P384, Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
        (Curve::P521, Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
        (Curve::P521, Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
        (Curve::P521, Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
    }
}

/// Go's `asn1.Unmarshal(sig, &struct{ R, S *big.Int }{})` succeeds: a
/// SEQUENCE of two INTEGERs (trailing bytes after it are ignored, as in Go).
fn is_der_ecdsa_signature(sig: &[u8]) -> bool {
    let Some((0x30, body, _)) = der_tlv(sig) else {
        return false;
    };
    matches!(
        der_tlv(body),
        Some((0x02, r, rest)) if !r.is_empty() && matches!(der_tlv(rest), Some((0x02, s, []))  if !s.is_empty())
    )
}

/// Longest P1363 signature sigstore will try (two P-521 scalars).
const MAX_P1363_LEN: usize = 132;

/// Re-encodes an IEEE P1363 `r ‖ s` signature as DER. Like Go's big-int
/// reading, the halves may be shorter or longer than the curve's scalars; the
/// verifier then refuses out-of-range values.
fn p1363_to_der(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.is_empty() || sig.len() % 2 != 0 || sig.len() > MAX_P1363_LEN {
        return None;
    }
    let (r, s) = sig.split_at(sig.len() / 2);
    let mut body = Vec::with_capacity(sig.len() + 6);
    der_unsigned_integer(r, &mut body);
    der_unsigned_integer(s, &mut body);
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(0x30);
    der_length(body.len(), &mut out);
    out.extend_from_slice(&body);
    Some(out)
}

fn der_unsigned_integer(bytes: &[u8], out: &mut Vec<u8>) {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let trimmed = &bytes[start..];
    let pad = trimmed.first().is_none_or(|&b| b & 0x80 != 0);
    out.push(0x02);
    der_length(trimmed.len() + usize::from(pad), out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
}

fn der_length(len: usize, out: &mut Vec<u8>) {
    // Signatures are at most 2 * 66 + 6 bytes, so one length byte suffices
    // beyond the short form.
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0x7f));
    } else {
        out.push(0x81);
        out.push(u8::try_from(len).unwrap_or(0xff));
    }
}

/// RSA PKCS#1 v1.5 only (no PSS). Keys from 1024 bits verify so that the
/// policy, not the verifier, refuses small keys.
fn verify_rsa(key: &[u8], hash: HashAlgorithm, digest: &[u8], sig: &[u8]) -> Result<(), String> {
    let alg: &'static RsaParameters = match hash {
        HashAlgorithm::Sha256 => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        HashAlgorithm::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        HashAlgorithm::Sha512 => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
    };
    let digest = import_digest(hash, digest)?;
    UnparsedPublicKey::new(alg, key)
        .verify_digest(&digest, sig)
        .map_err(|_| "crypto/rsa: verification error".to_owned())
}

/// Ed25519ph (RFC 8032 `HashEdDSA`, empty context) over the client's SHA-512
/// digest.
fn verify_ed25519ph(
    key: &[u8],
    hash: HashAlgorithm,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    const FAILED: &str = "failed to verify signature: ed25519: invalid signature";
    if hash != HashAlgorithm::Sha512 {
        return Err(format!(
            "unsupported hash algorithm: {:?} not in [SHA-512]",
            hash.go_name()
        ));
    }
    let key = <[u8; 32]>::try_from(key).map_err(|_| FAILED.to_owned())?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| FAILED.to_owned())?;
    let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| FAILED.to_owned())?;
    let prehashed = Prehashed::from_slice(digest).ok_or_else(|| FAILED.to_owned())?;
    key.verify_prehashed(prehashed, None, &sig)
        .map_err(|_| FAILED.to_owned())
}

/// A SHA-512 digest computed elsewhere, presented through the `Digest` traits
/// so that `ed25519-dalek` can use it as the Ed25519ph pre-hash. It only
/// returns the stored value: nothing is ever fed to it.
#[derive(Clone)]
pub(super) struct Prehashed([u8; 64]);

impl Prehashed {
    pub(super) fn from_slice(digest: &[u8]) -> Option<Self> {
        digest.try_into().ok().map(Self)
    }
}

impl Default for Prehashed {
    fn default() -> Self {
        Self([0; 64])
    }
}

impl HashMarker for Prehashed {}

impl OutputSizeUser for Prehashed {
    type OutputSize = U64;
}

impl Update for Prehashed {
    fn update(&mut self, data: &[u8]) {
        // Never called by `verify_prehashed`; refuse silently wrong use in tests.
        debug_assert!(data.is_empty(), "a pre-computed digest cannot absorb data");
    }
}

impl FixedOutput for Prehashed {
    fn finalize_into(self, out: &mut Output<Self>) {
        out.copy_from_slice(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p1363_conversion_handles_short_and_high_bit_scalars() {
        let mut sig = vec![0u8; 64];
        sig[31] = 0x01; // r = 1
        sig[32] = 0x80; // s has its high bit set
        let der = p1363_to_der(&sig).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 0x21, 0x00]);
        assert!(is_der_ecdsa_signature(&der));
        assert_eq!(p1363_to_der(&[1; 65]), None);
        assert_eq!(p1363_to_der(&[1; 134]), None);
        assert_eq!(p1363_to_der(&[]), None);
        let longest = p1363_to_der(&[1; 132]).unwrap();
        assert_eq!(&longest[..3], &[0x30, 0x81, 0x88]);
        assert!(is_der_ecdsa_signature(&longest));
        assert!(!is_der_ecdsa_signature(&sig));
    }
}
