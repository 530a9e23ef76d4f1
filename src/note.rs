//! Rekor v1 checkpoints (signed tree heads): the note text, its signature line,
//! parsing and verification. Spec: rekor-v1.md C-11, C-12.
//!
//! Pure: no I/O. Built on `signed_note`, with Rekor's key hint (the first four
//! bytes of SHA-256 over the DER SubjectPublicKeyInfo), not the C2SP key ID.

use crate::merkle::Hash;

/// An unsigned tree head: `<origin>\n<size>\n<base64 root>\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// `<hostname> - <treeID>`.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

/// Errors from parsing or verifying a signed checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// The text is not a well-formed checkpoint note.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No signature verified under the given key.
    #[error("checkpoint signature does not verify")]
    BadSignature,
}

impl Checkpoint {
    /// The exact bytes that are signed (C-11).
    #[must_use]
    pub fn body(&self) -> String {
        todo!()
    }
}
