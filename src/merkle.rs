//! RFC 6962 / RFC 9162 Merkle tree math: leaf and node hashing, an append-only
//! in-memory tree of stored hashes, inclusion and consistency proofs and their
//! verification.
//!
//! Pure: no I/O, nothing async. The stored-hash layout (Crosby–Wallach order,
//! two hashes per leaf) and the per-leaf hash computation come from
//! `tlog_tiles` (a port of Go's `sumdb/tlog`), as do the proof verifiers.
//! Proof *generation* is done here, directly on the stored hashes: the read
//! path asks for an inclusion proof per request, so it must cost O(log n)
//! lookups and a single allocation (the proof itself).
//!
//! The tree shape is RFC 6962 §2.1's: the node at level `l`, index `i` covers
//! leaves `[i·2^l, min((i+1)·2^l, size))`. Complete nodes are stored; the few
//! incomplete ones on the right edge are recomputed on demand.

use tlog_tiles::{node_hash, stored_hash_index, HashReader, EMPTY_HASH};

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

/// Longest proof a verifier looks at. Inclusion proofs have at most 64
/// hashes and consistency proofs at most 65 for any `u64` size; anything
/// longer is rejected before the (allocating) verifiers run.
const MAX_PROOF_LEN: usize = 128;

/// `SHA256(0x00 || data)`, RFC 6962 section 2.1.
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    tlog_tiles::record_hash(data)
}

/// Root of the empty tree, `SHA256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    EMPTY_HASH
}

/// An append-only Merkle tree held in memory as RFC 6962 stored hashes.
///
/// Holds `2n - popcount(n)` hashes for `n` leaves, in `tlog_tiles`'
/// stored-hash-index order, so any complete subtree's hash is one lookup.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    /// Stored hashes, indexed by [`tlog_tiles::stored_hash_index`].
    hashes: Vec<Hash>,
    /// Number of leaves.
    size: u64,
    /// Right-edge node hashes for the current size: `edges[l]` is
    /// `MTH(D[lo:size])` with `lo = ((size - 1) >> l) << l`, the one node per
    /// level that may be incomplete. The last one is the root. Kept so that
    /// proofs against the latest tree head cost lookups only, no hashing.
    edges: Vec<Hash>,
}

/// Hashes computed for a batch of new leaves, not yet part of the tree.
#[derive(Debug)]
pub struct Staged {
    /// Tree size the batch was staged on.
    old_size: u64,
    /// Tree size after the batch.
    size: u64,
    /// Stored hashes the batch adds, continuing the tree's stored hashes.
    hashes: Vec<Hash>,
    /// Root after the batch.
    root: Hash,
}

impl Staged {
    /// Tree size after the batch.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Tree size the batch was staged on.
    #[must_use]
    pub fn old_size(&self) -> u64 {
        self.old_size
    }
    /// Root hash after the batch.
    #[must_use]
    pub fn root(&self) -> Hash {
        self.root
    }
}

/// A read-only view of stored hashes: a tree, optionally with a staged batch
/// laid over its end. Implements [`HashReader`] so `tlog_tiles` functions
/// (tiles, proofs) can read from it.
#[derive(Debug, Clone, Copy)]
pub struct HashView<'a> {
    /// The tree's stored hashes.
    base: &'a [Hash],
    /// Stored hashes appended after `base` (a staged batch), or empty.
    extra: &'a [Hash],
    /// Number of leaves the view covers.
    size: u64,
    /// The tree's right-edge hashes at `size` (see [`Tree`]), or empty.
    edges: &'a [Hash],
}

/// `⌈log₂ n⌉` for `n >= 1`: the level of the smallest node spanning `n` leaves.
fn ceil_log2(n: u64) -> usize {
    if n <= 1 {
        0
    } else {
        (n - 1).ilog2() as usize + 1
    }
}

impl HashView<'_> {
    /// Number of leaves the view covers.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The stored hash at `index` (see [`tlog_tiles::stored_hash_index`]).
    #[must_use]
    pub fn stored(&self, index: u64) -> Option<Hash> {
        let i = usize::try_from(index).ok()?;
        match i.checked_sub(self.base.len()) {
            None => Some(self.base[i]),
            Some(j) => self.extra.get(j).copied(),
        }
    }

    /// Hash of the complete subtree at `level`, index `n`. The caller has
    /// checked that the subtree lies within the view.
    fn node(&self, level: u8, n: u64) -> Hash {
        self.stored(stored_hash_index(level, n))
            .expect("complete subtree inside the tree has a stored hash")
    }

    /// RFC 6962 `MTH(D[lo:hi])` for a range that starts on a boundary of
    /// its own size class (`lo` is a multiple of the smallest power of two
    /// `>= hi - lo`), which holds for every sibling and subproof range.
    ///
    /// The range splits into complete subtrees of decreasing size, left to
    /// right; folding them right to left is exactly RFC 6962's recursion.
    fn range_hash(&self, lo: u64, hi: u64) -> Hash {
        debug_assert!(lo < hi && hi <= self.size, "bad range {lo}..{hi}");
        if hi == self.size && !self.edges.is_empty() {
            // A right-edge node: cached (lo is aligned to its level).
            return self.edges[ceil_log2(hi - lo)];
        }
        // At most 64 pieces (one per bit of hi - lo); no heap allocation.
        let mut pieces = [Hash::default(); 64];
        let mut count = 0;
        let mut start = lo;
        while start < hi {
            let level = (hi - start).ilog2();
            debug_assert!(start.trailing_zeros() >= level, "unaligned range");
            let level8 = u8::try_from(level).expect("level below 64");
            pieces[count] = self.node(level8, start >> level);
            count += 1;
            start += 1 << level;
        }
        let mut hash = pieces[count - 1];
        for piece in pieces[..count - 1].iter().rev() {
            hash = node_hash(*piece, hash);
        }
        hash
    }

    /// Right-edge node hashes of the whole view, bottom up (see [`Tree`]).
    /// Costs at most one hash per level.
    fn edges(&self) -> Vec<Hash> {
        if self.size == 0 {
            return vec![];
        }
        let last = self.size - 1;
        let top = ceil_log2(self.size);
        let mut edges = Vec::with_capacity(top + 1);
        edges.push(self.node(0, last));
        for level in 1..=top {
            let below = level - 1;
            let (lo, lo_below) = ((last >> level) << level, (last >> below) << below);
            let right = edges[below];
            edges.push(if lo == lo_below {
                right // promoted: same leaves as the node below
            } else {
                // [lo, lo_below) is a complete left subtree.
                let level8 = u8::try_from(below).expect("level below 64");
                node_hash(self.node(level8, lo >> below), right)
            });
        }
        edges
    }

    /// Root of the view's first `size` leaves; the caller checked the size.
    fn root(&self, size: u64) -> Hash {
        if size == 0 {
            EMPTY_HASH
        } else {
            self.range_hash(0, size)
        }
    }

    /// RFC 6962 §2.1.1 `PATH(index, D[0:size])`, leaf to root, computed
    /// bottom-up: at each level the sibling of the path node is either a
    /// stored complete subtree, the single incomplete right-edge subtree, or
    /// absent (the path node is promoted unchanged).
    fn inclusion_proof(&self, index: u64, size: u64) -> Vec<Hash> {
        let depth = if size <= 1 { 0 } else { (size - 1).ilog2() + 1 };
        let mut proof = Vec::with_capacity(depth as usize);
        for level in 0..depth {
            let sibling = (index >> level) ^ 1;
            let lo = sibling << level;
            if lo >= size {
                continue; // no right sibling: promotion, nothing to send
            }
            let hi = size.min(lo + (1 << level));
            if hi - lo == 1 << level {
                let level8 = u8::try_from(level).expect("level below 64");
                proof.push(self.node(level8, sibling));
            } else {
                proof.push(self.range_hash(lo, hi));
            }
        }
        proof
    }

    /// RFC 6962 §2.1.2 `SUBPROOF(old, D[lo:hi], complete)`, with `old`
    /// counted from leaf 0, appended to `out` in RFC order (leaf side first).
    fn subproof(&self, old: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<Hash>) {
        if old == hi {
            // The old tree's subtree is this whole node: the verifier knows
            // it already if it is the old root itself.
            if !complete {
                out.push(self.range_hash(lo, hi));
            }
            return;
        }
        // k: the largest power of two smaller than hi - lo.
        let k = 1 << (hi - lo - 1).ilog2();
        if old <= lo + k {
            self.subproof(old, lo, lo + k, complete, out);
            out.push(self.range_hash(lo + k, hi));
        } else {
            self.subproof(old, lo + k, hi, false, out);
            out.push(self.range_hash(lo, lo + k));
        }
    }
}

impl HashReader for HashView<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| self.stored(i).ok_or(tlog_tiles::Error::IndexesNotInTree))
            .collect()
    }
}

impl Tree {
    /// Rebuilds a tree from its leaf hashes in index order.
    #[must_use]
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let leaves: Vec<Hash> = leaves.into_iter().collect();
        let mut tree = Self::default();
        let staged = tree.stage(&leaves);
        tree.apply(staged);
        tree
    }
    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Leaf hash at `index`.
    #[must_use]
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        if index >= self.size {
            return None;
        }
        self.view().stored(stored_hash_index(0, index))
    }
    /// A read-only view of the tree's stored hashes.
    #[must_use]
    pub fn view(&self) -> HashView<'_> {
        HashView {
            base: &self.hashes,
            extra: &[],
            size: self.size,
            edges: &self.edges,
        }
    }
    /// A read-only view of the tree as it will be once `staged` is applied.
    ///
    /// # Panics
    /// If `staged` was not staged on this tree at its current size.
    #[must_use]
    pub fn view_staged<'a>(&'a self, staged: &'a Staged) -> HashView<'a> {
        assert_eq!(
            staged.old_size, self.size,
            "batch staged on another tree size"
        );
        HashView {
            base: &self.hashes,
            extra: &staged.hashes,
            size: staged.size,
            edges: &[],
        }
    }
    /// Computes the hashes `leaves` add, without changing the tree.
    ///
    /// # Panics
    /// Never in practice: it would take a bug in the stored-hash index math.
    #[must_use]
    pub fn stage(&self, leaves: &[Hash]) -> Staged {
        // Each leaf adds 1 + trailing_ones(n) stored hashes; 2 on average.
        let mut hashes = Vec::with_capacity(2 * leaves.len() + 64);
        let mut n = self.size;
        for &leaf in leaves {
            let view = HashView {
                base: &self.hashes,
                extra: &hashes,
                size: n,
                edges: &[],
            };
            // Reads the left siblings that leaf n completes, all stored already.
            let new = tlog_tiles::stored_hashes_for_record_hash(n, leaf, &view)
                .expect("earlier stored hashes are present");
            hashes.extend(new);
            n += 1;
        }
        let view = HashView {
            base: &self.hashes,
            extra: &hashes,
            size: n,
            edges: &[],
        };
        let root = view.root(n);
        Staged {
            old_size: self.size,
            size: n,
            hashes,
            root,
        }
    }
    /// Appends a staged batch. It must have been staged on this tree at its current size.
    ///
    /// # Panics
    /// If the tree grew since `staged` was made.
    pub fn apply(&mut self, staged: Staged) {
        assert_eq!(
            staged.old_size, self.size,
            "batch staged at size {} applied at size {}",
            staged.old_size, self.size
        );
        self.hashes.extend(staged.hashes);
        self.size = staged.size;
        self.edges = HashView {
            edges: &[],
            ..self.view()
        }
        .edges();
        debug_assert_eq!(
            self.edges.last().copied(),
            (self.size > 0).then_some(staged.root)
        );
    }
    /// Root hash of the tree's first `size` leaves.
    ///
    /// # Errors
    /// `OutOfRange` if `size` exceeds the tree.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size {
            return Err(ProofError::OutOfRange);
        }
        Ok(self.view().root(size))
    }
    /// Audit path for leaf `index` in the tree of `size` leaves, leaf to root.
    ///
    /// Empty for a tree of one leaf (C-13: `hashes: []`).
    ///
    /// # Errors
    /// `OutOfRange` unless `index < size <= self.size()`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        if index >= size || size > self.size {
            return Err(ProofError::OutOfRange);
        }
        Ok(self.view().inclusion_proof(index, size))
    }
    /// RFC 6962 consistency proof from `old` to `new` leaves.
    ///
    /// Empty when `old == new`.
    ///
    /// # Errors
    /// `OutOfRange` unless `0 < old <= new <= self.size()`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        if old == 0 || old > new || new > self.size {
            return Err(ProofError::OutOfRange);
        }
        let mut proof = Vec::with_capacity(2 * 64);
        self.view().subproof(old, 0, new, true, &mut proof);
        Ok(proof)
    }
}

/// The root of a tree built leaf by leaf in O(log n) memory: the roots of
/// its complete subtrees, largest first (RFC 9162 §2.1.1's decomposition of
/// the size into powers of two). For audits that stream a log once.
#[derive(Debug, Default, Clone)]
pub struct CompactRange {
    size: u64,
    /// `nodes[i]` covers the i-th power of two of `size`, from the top bit.
    nodes: Vec<Hash>,
}

impl CompactRange {
    /// Leaves pushed so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the leaf hash `leaf`.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        // Each trailing one bit is a complete subtree the new leaf completes.
        while size & 1 == 1 {
            let left = self.nodes.pop().expect("one node per one bit");
            hash = node_hash(left, hash);
            size >>= 1;
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// `MTH` of the leaves pushed so far.
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(&last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(last, |right, &left| node_hash(left, right))
    }
}

/// Maps the verifiers' errors onto ours: bad sizes are out of range,
/// everything else is a proof that does not verify.
fn from_tlog(err: &tlog_tiles::Error) -> ProofError {
    match err {
        tlog_tiles::Error::InvalidInput(_) => ProofError::OutOfRange,
        _ => ProofError::Mismatch,
    }
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2).
///
/// # Errors
/// `OutOfRange` unless `index < size`; `Mismatch` when the proof does not
/// lead from `leaf` to `root`.
pub fn verify_inclusion(
    leaf: Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Mismatch);
    }
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).map_err(|e| from_tlog(&e))
}

/// Checks a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
///
/// Follows transparency-dev/merkle `proof.VerifyConsistency`: equal sizes
/// need an empty proof and equal roots; an old size of 0 needs an empty
/// proof and is consistent with anything.
///
/// # Errors
/// `OutOfRange` if `old_size > new_size`; `Mismatch` when the proof does
/// not verify.
pub fn verify_consistency(
    old_size: u64,
    old_root: Hash,
    new_size: u64,
    new_root: Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange);
    }
    if old_size == new_size {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old_size == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Mismatch);
    }
    tlog_tiles::check_tree(&proof.to_vec(), new_size, new_root, old_size, old_root)
        .map_err(|e| from_tlog(&e))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::many_single_char_names)]
mod tests {
    use super::*;

    fn h(hex_str: &str) -> Hash {
        Hash(hex::decode(hex_str).unwrap().try_into().unwrap())
    }

    // ---- RFC 6962 reference (§2.1), naive and recursive, for comparison ----

    fn k_of(n: usize) -> usize {
        // Largest power of two strictly smaller than n (n >= 2).
        1 << (n - 1).ilog2()
    }

    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => EMPTY_HASH,
            1 => d[0],
            n => node_hash(mth(&d[..k_of(n)]), mth(&d[k_of(n)..])),
        }
    }

    fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = k_of(n);
        if m < k {
            let mut p = path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = k_of(n);
        if m <= k {
            let mut p = subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    // ---- Upstream known-answer vectors ----
    //
    // Values copied from transparency-dev/merkle:
    //   testonly/constants.go @ 582a6ad190b6848f1d26f8bf08ddef29955d9db1
    //     (LeafInputs, RootHashes)
    //   proof/verify_test.go @ 02194e9afb6c1d95b5381350007963aa70fff472
    //     (inclusionProofs, consistencyProofs; leaf numbers there are 1-based)

    const TD_LEAF_INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    const TD_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// (0-based leaf index, tree size, proof)
    const TD_INCLUSION: [(u64, u64, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// (old size, new size, proof)
    const TD_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn td_tree() -> Tree {
        Tree::from_leaves(
            TD_LEAF_INPUTS
                .iter()
                .map(|x| leaf_hash(&hex::decode(x).unwrap())),
        )
    }

    fn hashes(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|x| h(x)).collect()
    }

    #[test]
    fn compact_range_roots_equal_the_tree_roots() {
        let all = leaves(70);
        let tree = Tree::from_leaves(all.iter().copied());
        let mut range = CompactRange::default();
        assert_eq!(range.root(), empty_root());
        for (n, leaf) in all.iter().enumerate() {
            range.push(*leaf);
            assert_eq!(range.size(), n as u64 + 1);
            assert_eq!(
                range.root(),
                tree.root(n as u64 + 1).unwrap(),
                "size {}",
                n + 1
            );
        }
    }

    #[test]
    fn roots_match_transparency_dev_vectors_for_sizes_0_to_8() {
        let tree = td_tree();
        for (size, want) in TD_ROOTS.iter().enumerate() {
            assert_eq!(tree.root(size as u64).unwrap(), h(want), "size {size}");
        }
        assert_eq!(tree.root(9), Err(ProofError::OutOfRange));
    }

    #[test]
    fn inclusion_proofs_match_transparency_dev_vectors() {
        let tree = td_tree();
        for (index, size, want) in TD_INCLUSION {
            let want = hashes(want);
            assert_eq!(tree.inclusion_proof(index, size).unwrap(), want);
            let leaf = tree.leaf(index).unwrap();
            let root = h(TD_ROOTS[size as usize]);
            verify_inclusion(leaf, index, size, &want, root).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_match_transparency_dev_vectors() {
        let tree = td_tree();
        for (old, new, want) in TD_CONSISTENCY {
            let want = hashes(want);
            assert_eq!(tree.consistency_proof(old, new).unwrap(), want);
            let (r1, r2) = (h(TD_ROOTS[old as usize]), h(TD_ROOTS[new as usize]));
            verify_consistency(old, r1, new, r2, &want).unwrap();
        }
    }

    #[test]
    fn verify_consistency_edge_cases_follow_transparency_dev() {
        // Cases from transparency-dev/merkle TestVerifyConsistency (same commit).
        let (a, b) = (leaf_hash(b"1"), leaf_hash(b"2"));
        let some = [EMPTY_HASH];
        assert_eq!(
            verify_consistency(0, a, 0, b, &[]),
            Err(ProofError::Mismatch)
        );
        assert_eq!(
            verify_consistency(1, a, 1, b, &[]),
            Err(ProofError::Mismatch)
        );
        assert_eq!(verify_consistency(0, a, 0, a, &[]), Ok(()));
        assert_eq!(verify_consistency(0, a, 1, b, &[]), Ok(()));
        assert_eq!(verify_consistency(1, b, 1, b, &[]), Ok(()));
        assert_eq!(
            verify_consistency(1, a, 0, b, &[]),
            Err(ProofError::OutOfRange)
        );
        assert_eq!(
            verify_consistency(2, a, 1, b, &[]),
            Err(ProofError::OutOfRange)
        );
        assert_eq!(
            verify_consistency(1, a, 2, b, &[]),
            Err(ProofError::Mismatch)
        );
        let e = EMPTY_HASH;
        assert!(verify_consistency(0, e, 0, e, &some).is_err());
        assert!(verify_consistency(0, e, 1, e, &some).is_err());
        assert!(verify_consistency(1, e, 1, e, &some).is_err());
    }

    #[test]
    fn verify_inclusion_rejects_impossible_positions() {
        let leaf = leaf_hash(b"data");
        for (index, size) in [(0, 0), (1, 0), (2, 1), (1, 1)] {
            assert_eq!(
                verify_inclusion(leaf, index, size, &[], leaf),
                Err(ProofError::OutOfRange)
            );
        }
        // A one-leaf tree: root == leaf and the proof is empty.
        assert_eq!(verify_inclusion(leaf, 0, 1, &[], leaf), Ok(()));
        assert_eq!(
            verify_inclusion(leaf, 0, 1, &[], EMPTY_HASH),
            Err(ProofError::Mismatch)
        );
        assert_eq!(
            verify_inclusion(leaf, 0, 1, &[leaf], leaf),
            Err(ProofError::Mismatch)
        );
    }

    // ---- Rekor v1 vectors (rekor-v1.md V-01 (d), V-03) ----

    const V01_LEAF3: &str = "d18a0b811c7277620ff2f259b9f868681a60784b9e1acfca1e1e560cee6a6e06";
    const V01_LEAF2: &str = "eca24f1ddaa4c8cd09bad957625e17d0fd0a53856b5902b38d4ea48580ddca9c";
    const V03_ROOT2: &str = "b7617fe6952910300608bacd6c1cb016ba64e9e4ccd37c919aac429303bc9ddd";
    const V03_ROOT3: &str = "f09b8d747328d88a125f95e56f80d4bd731dae5f0a928d05cdfe24755e9d3c60";
    const V03_ROOT4: &str = "b99614637dc4371dcd5523a984bdb25592ccf9f8c65ef3af468435e53f368e9f";
    const V03_NODE23: &str = "62b45f95406ccd896cc3886add9c46369c731a46577c5f90a887a47b062c4eac";

    #[test]
    fn rekor_v01_inclusion_proof_verifies() {
        let proof = [h(V01_LEAF2), h(V03_ROOT2)];
        verify_inclusion(h(V01_LEAF3), 3, 4, &proof, h(V03_ROOT4)).unwrap();
        // Same proof, wrong index or size: must not verify.
        assert!(verify_inclusion(h(V01_LEAF3), 2, 4, &proof, h(V03_ROOT4)).is_err());
        assert!(verify_inclusion(h(V01_LEAF3), 3, 5, &proof, h(V03_ROOT4)).is_err());
    }

    #[test]
    fn rekor_v03_consistency_proofs_verify() {
        let (r2, r3, r4) = (h(V03_ROOT2), h(V03_ROOT3), h(V03_ROOT4));
        verify_consistency(2, r2, 4, r4, &[h(V03_NODE23)]).unwrap();
        let p34 = [h(V01_LEAF2), h(V01_LEAF3), h(V03_ROOT2)];
        verify_consistency(3, r3, 4, r4, &p34).unwrap();
        verify_consistency(4, r4, 4, r4, &[]).unwrap();
        assert!(verify_consistency(2, r3, 4, r4, &[h(V03_NODE23)]).is_err());
        assert!(verify_consistency(3, r3, 4, r4, &p34[..2]).is_err());
    }

    #[test]
    fn rekor_v03_hashes_fit_together_under_our_node_hash() {
        // The leaves 0 and 1 are not published, but the interior nodes are:
        // these identities pin node_hash and the tree shape to real data.
        assert_eq!(node_hash(h(V01_LEAF2), h(V01_LEAF3)), h(V03_NODE23));
        assert_eq!(node_hash(h(V03_ROOT2), h(V01_LEAF2)), h(V03_ROOT3));
        assert_eq!(node_hash(h(V03_ROOT2), h(V03_NODE23)), h(V03_ROOT4));
    }

    // ---- Comparison against the naive RFC 6962 definitions ----

    #[test]
    fn proofs_equal_rfc6962_definitions_for_sizes_1_to_70() {
        let all = leaves(70);
        let tree = Tree::from_leaves(all.iter().copied());
        for n in 1..=70_usize {
            let d = &all[..n];
            let size = n as u64;
            // `tree` is bigger and computes right-edge nodes from stored
            // hashes; `exact` has this size and uses its cached edge.
            let exact = Tree::from_leaves(d.iter().copied());
            let root = mth(d);
            for m in 0..n {
                let (want_path, want_sub) = (path(m, d), subproof(m + 1, d, true));
                for t in [&tree, &exact] {
                    assert_eq!(t.root(size).unwrap(), root, "root {n}");
                    let got = t.inclusion_proof(m as u64, size).unwrap();
                    assert_eq!(got, want_path, "path {m} in {n}");
                    let got = t.consistency_proof(m as u64 + 1, size).unwrap();
                    assert_eq!(got, want_sub, "consistency {} -> {n}", m + 1);
                }
            }
        }
    }

    #[test]
    fn empty_and_single_leaf_trees() {
        let empty = Tree::default();
        assert_eq!(empty.size(), 0);
        assert_eq!(empty.root(0).unwrap(), empty_root());
        assert_eq!(
            hex::encode(empty_root().0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(empty.leaf(0), None);
        assert_eq!(empty.inclusion_proof(0, 0), Err(ProofError::OutOfRange));
        assert_eq!(empty.consistency_proof(0, 0), Err(ProofError::OutOfRange));

        let leaf = leaf_hash(b"one");
        let one = Tree::from_leaves([leaf]);
        assert_eq!(one.root(1).unwrap(), leaf);
        assert_eq!(one.inclusion_proof(0, 1).unwrap(), Vec::<Hash>::new());
        assert_eq!(one.consistency_proof(1, 1).unwrap(), Vec::<Hash>::new());
        assert_eq!(one.leaf(0), Some(leaf));
    }

    #[test]
    fn out_of_range_requests_are_refused() {
        let tree = Tree::from_leaves(leaves(10));
        assert_eq!(tree.inclusion_proof(10, 10), Err(ProofError::OutOfRange));
        assert_eq!(tree.inclusion_proof(3, 11), Err(ProofError::OutOfRange));
        assert_eq!(tree.inclusion_proof(5, 5), Err(ProofError::OutOfRange));
        assert_eq!(tree.consistency_proof(0, 5), Err(ProofError::OutOfRange));
        assert_eq!(tree.consistency_proof(6, 5), Err(ProofError::OutOfRange));
        assert_eq!(tree.consistency_proof(5, 11), Err(ProofError::OutOfRange));
        assert_eq!(tree.root(11), Err(ProofError::OutOfRange));
        assert_eq!(tree.leaf(10), None);
    }

    // ---- Incremental growth and round trips ----

    /// Grows a tree to 600 leaves in batches of varied sizes (0 included).
    fn grow_in_batches(all: &[Hash]) -> Vec<(Tree, Hash)> {
        let sizes = [1, 0, 2, 3, 1, 7, 64, 1, 120, 255, 1, 2, 256, 5, 300];
        let mut tree = Tree::default();
        let mut states = vec![];
        let mut at = 0;
        for &len in sizes.iter().cycle() {
            if at >= all.len() {
                break;
            }
            let end = (at + len).min(all.len());
            let staged = tree.stage(&all[at..end]);
            assert_eq!(tree.size(), at as u64, "stage must not mutate");
            let root = staged.root();
            assert_eq!(staged.size(), end as u64);
            tree.apply(staged);
            states.push((tree.clone(), root));
            at = end;
        }
        states
    }

    #[test]
    fn incremental_batches_give_the_same_roots_as_one_batch() {
        let all = leaves(600);
        let whole = Tree::from_leaves(all.iter().copied());
        for (tree, root) in grow_in_batches(&all) {
            let size = tree.size();
            assert_eq!(root, whole.root(size).unwrap());
            assert_eq!(root, tree.root(size).unwrap());
            // Proofs at the tree's own size use its cached right edge;
            // the bigger tree computes the same nodes from stored hashes.
            for index in 0..size {
                assert_eq!(
                    tree.inclusion_proof(index, size),
                    whole.inclusion_proof(index, size),
                    "inclusion {index} in {size}"
                );
                let old = index + 1;
                assert_eq!(
                    tree.consistency_proof(old, size),
                    whole.consistency_proof(old, size),
                    "consistency {old} -> {size}"
                );
            }
        }
        for size in 0..=600 {
            assert_eq!(
                whole.root(size).unwrap(),
                Tree::from_leaves(all[..size as usize].iter().copied())
                    .root(size)
                    .unwrap()
            );
        }
        for (i, leaf) in all.iter().enumerate() {
            assert_eq!(whole.leaf(i as u64), Some(*leaf));
        }
    }

    #[test]
    #[should_panic(expected = "staged at size")]
    fn applying_a_stale_batch_panics() {
        let mut tree = Tree::from_leaves(leaves(3));
        let a = tree.stage(&leaves(1));
        let b = tree.stage(&leaves(2));
        tree.apply(a);
        tree.apply(b);
    }

    /// Sizes that get every index and every old size checked: all small
    /// trees, and both sides of each tile and power-of-two boundary.
    fn checked_sizes() -> Vec<u64> {
        let mut sizes: Vec<u64> = (1..=40).collect();
        sizes.extend([63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 600]);
        sizes
    }

    #[test]
    fn every_generated_proof_verifies_and_tampered_ones_do_not() {
        let all = leaves(600);
        let tree = Tree::from_leaves(all.iter().copied());
        for size in checked_sizes() {
            let root = tree.root(size).unwrap();
            for index in 0..size {
                let mut proof = tree.inclusion_proof(index, size).unwrap();
                let leaf = all[index as usize];
                verify_inclusion(leaf, index, size, &proof, root).unwrap();
                if index % 7 == 0 {
                    assert_inclusion_tamper_fails(leaf, index, size, &mut proof, root);
                }
            }
            for old in 1..=size {
                let old_root = tree.root(old).unwrap();
                let mut proof = tree.consistency_proof(old, size).unwrap();
                verify_consistency(old, old_root, size, root, &proof).unwrap();
                if old % 7 == 0 && old != size {
                    assert_consistency_tamper_fails(old, old_root, size, root, &mut proof);
                }
            }
        }
        // Every size up to 600, the edges of each tree.
        for size in 1..=600 {
            let root = tree.root(size).unwrap();
            for index in [0, size / 2, size - 1] {
                let proof = tree.inclusion_proof(index, size).unwrap();
                verify_inclusion(all[index as usize], index, size, &proof, root).unwrap();
            }
            for old in [1, size / 2 + 1, size - 1, size]
                .into_iter()
                .filter(|&o| o > 0)
            {
                let proof = tree.consistency_proof(old, size).unwrap();
                verify_consistency(old, tree.root(old).unwrap(), size, root, &proof).unwrap();
            }
        }
    }

    fn assert_inclusion_tamper_fails(
        leaf: Hash,
        index: u64,
        size: u64,
        proof: &mut [Hash],
        root: Hash,
    ) {
        for i in 0..proof.len() {
            proof[i].0[0] ^= 1;
            assert!(verify_inclusion(leaf, index, size, proof, root).is_err());
            proof[i].0[0] ^= 1;
        }
        let mut longer = proof.to_vec();
        longer.push(root);
        assert!(verify_inclusion(leaf, index, size, &longer, root).is_err());
        if let Some((_, shorter)) = proof.split_last() {
            assert!(verify_inclusion(leaf, index, size, shorter, root).is_err());
        }
        if size > 1 {
            let other = (index + 1) % size;
            assert!(verify_inclusion(leaf, other, size, proof, root).is_err());
        }
        let mut bad_leaf = leaf;
        bad_leaf.0[31] ^= 0x80;
        assert!(verify_inclusion(bad_leaf, index, size, proof, root).is_err());
    }

    fn assert_consistency_tamper_fails(
        old: u64,
        old_root: Hash,
        size: u64,
        root: Hash,
        proof: &mut [Hash],
    ) {
        for i in 0..proof.len() {
            proof[i].0[5] ^= 16;
            assert!(verify_consistency(old, old_root, size, root, proof).is_err());
            proof[i].0[5] ^= 16;
        }
        let mut longer = proof.to_vec();
        longer.push(old_root);
        assert!(verify_consistency(old, old_root, size, root, &longer).is_err());
        assert!(verify_consistency(old, old_root, size, root, &proof[1..]).is_err());
        assert!(verify_consistency(old, root, size, old_root, proof).is_err());
        assert!(verify_consistency(old, old_root, size, root, &[]).is_err());
    }
}
