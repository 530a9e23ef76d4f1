//! minisign keys and signatures as Rekor's `minisign` PKI reads them, for
//! `rekord` entries and `publicKey` searches.
//!
//! Spec: rekor-v1.md T-06, E-08. Mirrors sigstore/rekor
//! `pkg/pki/minisign/minisign.go` on `jedisct1/go-minisign`:
//!
//! - a key is a `.pub` file (comment line, then base64 of `alg ‖ keyId ‖ key`),
//!   that base64 alone, or 32 raw Ed25519 bytes; canonical form: the base64;
//! - a signature is a `.minisig` file, or two lines whose second is base64 of
//!   `alg ‖ keyId ‖ sig`; canonical form: `untrusted comment:\n<base64>`;
//! - only the main signature is checked, as Rekor does: Ed25519 over the
//!   artifact, or over its BLAKE2b-512 when the algorithm is `ED`. The key id
//!   and the trusted-comment signature are not.
//!
//! Written here rather than on `minisign-verify`, which checks the key id and
//! the global signature (Rekor accepts without them) and hides the raw fields
//! the canonical forms need.

use blake2::{Blake2b512, Digest as _};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::Sha256;

use super::decoding::{std_base64, to_base64};

/// `alg ‖ keyId ‖ key`.
const KEY_LEN: usize = 2 + 8 + 32;
/// `alg ‖ keyId ‖ signature`.
const SIG_LEN: usize = 2 + 8 + 64;
const GLOBAL_SIG_LEN: usize = 64;

/// A minisign public key: `alg ‖ keyId ‖ key`.
#[derive(Debug)]
pub(crate) struct MinisignKey([u8; KEY_LEN]);

impl MinisignKey {
    /// Rekor's `NewPublicKey`: a `.pub` file, its base64 line, or raw bytes.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(bytes);
        if let Some((_, rest)) = text.split_once('\n') {
            if let Some(key) = Self::from_base64(rest) {
                return Ok(key);
            }
        }
        if let Some(key) = Self::from_base64(&text) {
            return Ok(key);
        }
        if bytes.len() == 32 {
            let mut raw = [0u8; KEY_LEN];
            raw[..2].copy_from_slice(b"Ed");
            raw[10..].copy_from_slice(bytes);
            return Ok(Self(raw));
        }
        Err("unable to read minisign public key: Invalid encoded public key".to_owned())
    }

    /// go-minisign `NewPublicKey`: base64 of exactly 42 bytes.
    fn from_base64(text: &str) -> Option<Self> {
        std_base64(text).ok()?.try_into().ok().map(Self)
    }

    /// Base64 of `alg ‖ keyId ‖ key`, no newline.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        to_base64(&self.0).into_bytes()
    }

    fn ed25519(&self) -> &[u8; 32] {
        self.0[10..].try_into().unwrap_or(&[0; 32])
    }
}

/// The E-08 `publicKey` search key for format `minisign`: hex SHA-256 of the
/// canonical base64.
///
/// # Errors
/// The key does not parse.
pub(crate) fn search_key(bytes: &[u8]) -> Result<String, String> {
    Ok(hex::encode(Sha256::digest(
        MinisignKey::parse(bytes)?.canonical(),
    )))
}

/// A minisign signature: `alg ‖ keyId ‖ sig`.
#[derive(Debug)]
pub(crate) struct MinisignSignature([u8; SIG_LEN]);

impl MinisignSignature {
    /// Rekor's `NewSignature`: go-minisign's four-line form, else two lines.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(bytes);
        if let Some(sig) = Self::four_lines(&text) {
            return Ok(sig);
        }
        let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
        if lines.len() != 2 {
            return Err(format!(
                "invalid signature provided: {} lines detected",
                lines.len()
            ));
        }
        let raw = std_base64(lines[1])
            .map_err(|_| "invalid signature provided: base64 decoding failed".to_owned())?;
        let len = raw.len();
        raw.try_into()
            .map(Self)
            .map_err(|_| format!("invalid signature provided: incorrect size {len} detected"))
    }

    /// go-minisign `DecodeSignature`.
    fn four_lines(text: &str) -> Option<Self> {
        let mut lines = text.splitn(4, '\n');
        let (_untrusted, sig, _trusted, global) =
            (lines.next()?, lines.next()?, lines.next()?, lines.next()?);
        let sig: [u8; SIG_LEN] = std_base64(sig).ok()?.try_into().ok()?;
        (std_base64(global).ok()?.len() == GLOBAL_SIG_LEN).then_some(Self(sig))
    }

    /// `untrusted comment:\n<base64 alg ‖ keyId ‖ sig>`, no trailing newline.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        format!("untrusted comment:\n{}", to_base64(&self.0)).into_bytes()
    }

    /// Ed25519 over `message`, or over BLAKE2b-512(`message`) for `ED`.
    /// `ed25519-dalek`'s `verify` is Go's `ed25519.Verify` (cofactorless,
    /// canonical `S`).
    pub(crate) fn verify(&self, key: &MinisignKey, message: &[u8]) -> Result<(), String> {
        const FAILED: &str = "failed to verify signature";
        let key = VerifyingKey::from_bytes(key.ed25519()).map_err(|_| FAILED.to_owned())?;
        let sig = Signature::from_slice(&self.0[10..]).map_err(|_| FAILED.to_owned())?;
        let prehashed;
        let signed = if self.0[1] == b'D' {
            prehashed = Blake2b512::digest(message);
            prehashed.as_slice()
        } else {
            message
        };
        ed25519_dalek::Verifier::verify(&key, signed, &sig).map_err(|_| FAILED.to_owned())
    }
}
