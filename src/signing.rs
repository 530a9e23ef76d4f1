//! The log's identity and the two signatures it emits: Signed Entry Timestamps
//! (rekor-v1.md C-09) and checkpoint signatures (C-11). ECDSA P-256 over SHA-256,
//! ASN.1 DER, as every Rekor v1 client requires (C-06).
//!
//! No HTTP, no database. Key files are read by the caller.

use crate::note::Checkpoint;

/// Errors from loading or generating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM is not a PKCS#8 ECDSA P-256 private key.
    #[error("couldn't parse log signing key: {0}")]
    Parse(String),
}

/// The log's signing key and the identifiers derived from it.
pub struct LogSigner {}

impl LogSigner {
    /// Loads a PKCS#8 PEM ECDSA P-256 private key.
    ///
    /// # Errors
    /// `KeyError::Parse` for anything else.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        todo!("{pem}")
    }
    /// Generates a new key, as PKCS#8 PEM.
    ///
    /// # Errors
    /// If the random source fails.
    pub fn generate_pkcs8_pem() -> Result<String, KeyError> {
        todo!()
    }
    /// DER SubjectPublicKeyInfo of the public key.
    #[must_use]
    pub fn public_key_der(&self) -> &[u8] {
        todo!()
    }
    /// PEM `PUBLIC KEY` with 64-character lines (E-02, V-04).
    #[must_use]
    pub fn public_key_pem(&self) -> String {
        todo!()
    }
    /// `SHA256(DER SPKI)`: the Rekor log ID (C-04).
    #[must_use]
    pub fn log_id(&self) -> [u8; 32] {
        todo!()
    }
    /// Signs the SET payload (C-09) and returns the DER signature.
    #[must_use]
    pub fn sign_set(&self, body_b64: &str, integrated_time: i64, log_index: u64) -> Vec<u8> {
        todo!("{body_b64}{integrated_time}{log_index}")
    }
    /// Signs a checkpoint and returns the whole signed note text (C-11).
    #[must_use]
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint, name: &str) -> String {
        todo!("{checkpoint:?}{name}")
    }
}
