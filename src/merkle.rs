//! RFC 6962 / RFC 9162 Merkle tree math: leaf and node hashing, an append-only
//! in-memory tree of stored hashes, inclusion and consistency proofs and their
//! verification.
//!
//! Pure: no I/O, nothing async. The stored-hash layout and proof algorithms come
//! from `tlog_tiles` (a port of Go's `sumdb/tlog`); this module gives them the
//! shapes the log needs.

pub use tlog_tiles::Hash;

/// Errors from proof generation or verification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// An index or size lies outside the tree.
    #[error("index or size out of range")]
    OutOfRange,
    /// A proof did not verify.
    #[error("proof does not verify")]
    Mismatch,
}

/// `SHA256(0x00 || data)`, RFC 6962 section 2.1.
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    todo!("{data:?}")
}

/// Root of the empty tree, `SHA256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    todo!()
}

/// An append-only Merkle tree held in memory as RFC 6962 stored hashes.
#[derive(Debug, Default, Clone)]
pub struct Tree {}

/// Hashes computed for a batch of new leaves, not yet part of the tree.
#[derive(Debug)]
pub struct Staged {}

impl Staged {
    /// Tree size after the batch.
    #[must_use]
    pub fn size(&self) -> u64 {
        todo!()
    }
    /// Root hash after the batch.
    #[must_use]
    pub fn root(&self) -> Hash {
        todo!()
    }
}

impl Tree {
    /// Rebuilds a tree from its leaf hashes in index order.
    #[must_use]
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let _ = leaves.into_iter();
        todo!()
    }
    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        todo!()
    }
    /// Leaf hash at `index`.
    #[must_use]
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        todo!("{index}")
    }
    /// Computes the hashes `leaves` add, without changing the tree.
    #[must_use]
    pub fn stage(&self, leaves: &[Hash]) -> Staged {
        todo!("{leaves:?}")
    }
    /// Appends a staged batch. It must have been staged on this tree at its current size.
    ///
    /// # Panics
    /// If the tree grew since `staged` was made.
    pub fn apply(&mut self, staged: Staged) {
        todo!("{staged:?}")
    }
    /// Root hash of the tree's first `size` leaves.
    ///
    /// # Errors
    /// `OutOfRange` if `size` exceeds the tree.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        todo!("{size}")
    }
    /// Audit path for leaf `index` in the tree of `size` leaves, leaf to root.
    ///
    /// # Errors
    /// `OutOfRange` unless `index < size <= self.size()`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        todo!("{index}{size}")
    }
    /// RFC 6962 consistency proof from `old` to `new` leaves.
    ///
    /// # Errors
    /// `OutOfRange` unless `0 < old <= new <= self.size()`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        todo!("{old}{new}")
    }
}

/// Checks an inclusion proof.
///
/// # Errors
/// `Mismatch` or `OutOfRange` when it does not verify.
pub fn verify_inclusion(
    leaf: Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: Hash,
) -> Result<(), ProofError> {
    todo!("{leaf:?}{index}{size}{proof:?}{root:?}")
}

/// Checks a consistency proof between two tree heads.
///
/// # Errors
/// `Mismatch` or `OutOfRange` when it does not verify.
pub fn verify_consistency(
    old_size: u64,
    old_root: Hash,
    new_size: u64,
    new_root: Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    todo!("{old_size}{old_root:?}{new_size}{new_root:?}{proof:?}")
}
