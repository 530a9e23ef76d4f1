//! Rekor entry kinds: parse a proposed entry, verify its signature, and produce
//! the canonical body (the Merkle leaf) and the search-index keys it writes.
//! Spec: rekor-v1.md T-01..T-06, C-07, C-08, E-04.
//!
//! Pure: no I/O. One file per kind; kinds form a closed enum.

/// The entry kinds this log accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `hashedrekord` 0.0.1 (T-02).
    HashedRekord,
}

/// A validated entry, ready to be appended.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its kind.
    pub kind: Kind,
    /// The JCS-canonical body: the Merkle leaf data (C-08).
    pub canonical: Vec<u8>,
    /// Search-index keys, lowercased (T-02 "Index keys").
    pub index_keys: Vec<String>,
}

/// Why a proposed entry was refused. The API maps each to Rekor's status and body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    /// Not JSON at all (400; an allowed deviation from Rekor's 500).
    #[error("{0}")]
    Malformed(String),
    /// Top-level schema failure (HTTP 422, `code` a go-openapi 6xx value).
    #[error("{message}")]
    Schema {
        /// go-openapi error code (601 type, 602 required, 605 pattern, ...).
        code: u16,
        /// Client message.
        message: String,
    },
    /// `kind` is not one we know (HTTP 422, `code` 422).
    #[error("invalid kind value: {0:?}")]
    UnknownKind(String),
    /// The kind is known but the entry is invalid (HTTP 400, "error processing entry: ...").
    #[error("{0}")]
    Invalid(String),
}

/// Parses and fully validates a `POST /api/v1/log/entries` body.
///
/// # Errors
/// See [`EntryError`].
pub fn parse_proposed(body: &[u8]) -> Result<Entry, EntryError> {
    todo!("{body:?}")
}
