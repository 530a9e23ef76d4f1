//! The Merkle tree as the view keeps it: everything above the level-0 tiles,
//! plus the leaves of the last, incomplete one.
//!
//! A level-0 tile (C2SP tlog-tiles, height 8) holds 256 leaf hashes; the
//! subtree over it is a "block". The view keeps the hash of every complete
//! block (tree level 8, what level-1 tiles hold) as the leaves of a small
//! [`Tree`], `upper`: its stored hashes are exactly the tree's stored hashes
//! at levels 8 and up, because RFC 6962 interior nodes hash the same way at
//! every level. Below level 8 it keeps only the incomplete last block
//! (`tail`, fewer than 256 leaves). Memory is then about 64 bytes per 256
//! leaves, a 256th of the whole tree's.
//!
//! A root needs no level-0 tile but the tail. An inclusion proof needs the
//! block of its leaf; a consistency proof the blocks at its two sizes. Those
//! come from storage through the view's cache: the functions here say which
//! block they miss ([`Missing`]) and the caller fetches it and asks again.

use std::sync::Arc;

use tlog_tiles::{node_hash, stored_hash_index, EMPTY_HASH};

use crate::merkle::{Hash, HashView, ProofError, Staged, Tree};
use crate::tiles::{TileId, TILE_WIDTH};

/// Leaves per block (one full level-0 tile).
pub const BLOCK: u64 = TILE_WIDTH as u64;

/// Tree level of a block's root.
const BLOCK_LEVEL: u8 = 8;

/// A complete block's stored hashes, as read from its level-0 tile.
pub type Block = Arc<Tree>;

/// Why a computation on the tree stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// It needs block `.0`, which the caller did not hand in.
    Missing(u64),
    /// An index or size outside the tree.
    Proof(ProofError),
}

/// The upper levels and the incomplete last block of the log's tree.
#[derive(Debug, Default)]
pub struct TiledTree {
    /// Leaves: the level-8 hash of each complete block.
    upper: Tree,
    /// Leaves of the last block, fewer than [`BLOCK`].
    tail: Tree,
}

/// A batch staged on a [`TiledTree`], not yet applied.
#[derive(Debug)]
pub struct TiledStaged {
    old_size: u64,
    size: u64,
    root: Hash,
    upper: Staged,
    tail: Tree,
    /// Blocks the batch completes, by block number.
    blocks: Vec<(u64, Block)>,
}

impl TiledStaged {
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

/// Where the hashes of complete subtrees come from: `upper` for levels 8 and
/// up, the tail or a handed-in block below.
struct Nodes<'a> {
    upper: HashView<'a>,
    tail: &'a Tree,
    blocks: &'a dyn Fn(u64) -> Option<Block>,
}

impl Nodes<'_> {
    /// Hash of the complete subtree at `level`, index `n`, inside the tree.
    fn node(&self, level: u8, n: u64) -> Result<Hash, Lookup> {
        if level >= BLOCK_LEVEL {
            let index = stored_hash_index(level - BLOCK_LEVEL, n);
            return Ok(self.upper.stored(index).expect("complete upper node"));
        }
        let block = (n << level) / BLOCK;
        let within = stored_hash_index(level, n - (block << (BLOCK_LEVEL - level)));
        if block == self.upper.size() {
            return Ok(self.tail.view().stored(within).expect("complete tail node"));
        }
        let tree = (self.blocks)(block).ok_or(Lookup::Missing(block))?;
        Ok(tree.view().stored(within).expect("complete block node"))
    }

    /// RFC 6962 `MTH(D[lo:hi])` for a range whose `lo` is aligned to the
    /// largest complete subtree in it (every range proofs ask for): complete
    /// subtrees of decreasing size, folded right to left.
    fn range_hash(&self, lo: u64, hi: u64) -> Result<Hash, Lookup> {
        let mut pieces = [Hash::default(); 64];
        let mut count = 0;
        let mut start = lo;
        while start < hi {
            let level = (hi - start).ilog2();
            let level8 = u8::try_from(level).expect("level below 64");
            pieces[count] = self.node(level8, start >> level)?;
            count += 1;
            start += 1 << level;
        }
        let mut hash = pieces[count - 1];
        for piece in pieces[..count - 1].iter().rev() {
            hash = node_hash(*piece, hash);
        }
        Ok(hash)
    }

    fn root(&self, size: u64) -> Result<Hash, Lookup> {
        if size == 0 {
            Ok(EMPTY_HASH)
        } else {
            self.range_hash(0, size)
        }
    }

    /// RFC 6962 §2.1.1 `PATH(index, D[0:size])`, leaf to root.
    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, Lookup> {
        let depth = if size <= 1 { 0 } else { (size - 1).ilog2() + 1 };
        let mut proof = Vec::with_capacity(depth as usize);
        for level in 0..depth {
            let sibling = (index >> level) ^ 1;
            let lo = sibling << level;
            if lo >= size {
                continue; // promoted: no sibling at this level
            }
            proof.push(self.range_hash(lo, size.min(lo + (1 << level)))?);
        }
        Ok(proof)
    }

    /// RFC 6962 §2.1.2 `SUBPROOF(old, D[lo:hi], complete)`, appended to `out`.
    fn subproof(
        &self,
        old: u64,
        (lo, hi): (u64, u64),
        complete: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), Lookup> {
        if old == hi {
            if !complete {
                out.push(self.range_hash(lo, hi)?);
            }
            return Ok(());
        }
        let k = 1 << (hi - lo - 1).ilog2();
        if old <= lo + k {
            self.subproof(old, (lo, lo + k), complete, out)?;
            out.push(self.range_hash(lo + k, hi)?);
        } else {
            self.subproof(old, (lo + k, hi), false, out)?;
            out.push(self.range_hash(lo, lo + k)?);
        }
        Ok(())
    }
}

/// The 32-byte hashes of `leaves`, back to back: a level-0 tile's bytes.
fn tile_bytes(leaves: &[Hash]) -> Vec<u8> {
    leaves.iter().flat_map(|h| h.0).collect()
}

/// The leaves of a small tree, in order.
fn leaves_of(tree: &Tree) -> impl Iterator<Item = Hash> + '_ {
    (0..tree.size()).map(|i| tree.leaf(i).expect("leaf in range"))
}

impl TiledTree {
    /// The tree with complete blocks hashing to `block_hashes` and `tail`
    /// leaves after them.
    ///
    /// # Panics
    /// If `tail` is a whole block or more.
    #[must_use]
    pub fn new(block_hashes: Vec<Hash>, tail: Vec<Hash>) -> Self {
        assert!((tail.len() as u64) < BLOCK, "the tail is a whole block");
        Self {
            upper: Tree::from_leaves(block_hashes),
            tail: Tree::from_leaves(tail),
        }
    }

    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.upper.size() * BLOCK + self.tail.size()
    }

    /// The level-8 hash of complete block `block`.
    #[must_use]
    pub fn block_hash(&self, block: u64) -> Option<Hash> {
        self.upper.leaf(block)
    }

    fn nodes<'a>(&'a self, blocks: &'a dyn Fn(u64) -> Option<Block>) -> Nodes<'a> {
        Nodes {
            upper: self.upper.view(),
            tail: &self.tail,
            blocks,
        }
    }

    /// The bytes of tile `id` (C2SP tlog-tiles) of this tree, if it has one
    /// at that width. A tile above level 0 is a tile one level down of the
    /// upper tree, whose leaves are the block hashes; a level-0 tile is its
    /// block's, or the tail's.
    ///
    /// # Errors
    /// `Missing` for a complete level-0 tile whose block was not handed in.
    pub fn read_tile(
        &self,
        id: TileId,
        blocks: &dyn Fn(u64) -> Option<Block>,
    ) -> Result<Option<Vec<u8>>, Lookup> {
        if id.level > 0 {
            let upper = TileId {
                level: id.level - 1,
                ..id
            };
            return Ok(crate::tiles::read_tile(&self.upper, upper));
        }
        let within = TileId { index: 0, ..id };
        let complete = self.upper.size();
        if id.index < complete {
            let block = blocks(id.index).ok_or(Lookup::Missing(id.index))?;
            Ok(crate::tiles::read_tile(&block, within))
        } else if id.index == complete {
            Ok(crate::tiles::read_tile(&self.tail, within))
        } else {
            Ok(None)
        }
    }

    /// Root of the first `size` leaves.
    ///
    /// # Errors
    /// `Missing` for a size inside a block not handed in; out of range
    /// beyond the tree.
    pub fn root(&self, size: u64, blocks: &dyn Fn(u64) -> Option<Block>) -> Result<Hash, Lookup> {
        if size > self.size() {
            return Err(Lookup::Proof(ProofError::OutOfRange));
        }
        self.nodes(blocks).root(size)
    }

    /// Leaf hash at `index`.
    ///
    /// # Errors
    /// As [`Self::root`].
    pub fn leaf(&self, index: u64, blocks: &dyn Fn(u64) -> Option<Block>) -> Result<Hash, Lookup> {
        if index >= self.size() {
            return Err(Lookup::Proof(ProofError::OutOfRange));
        }
        self.nodes(blocks).node(0, index)
    }

    /// Audit path of leaf `index` in the tree of `size` leaves.
    ///
    /// # Errors
    /// As [`Self::root`]; out of range unless `index < size <= self.size()`.
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
        blocks: &dyn Fn(u64) -> Option<Block>,
    ) -> Result<Vec<Hash>, Lookup> {
        if index >= size || size > self.size() {
            return Err(Lookup::Proof(ProofError::OutOfRange));
        }
        self.nodes(blocks).inclusion_proof(index, size)
    }

    /// RFC 6962 consistency proof from `old` to `new` leaves.
    ///
    /// # Errors
    /// As [`Self::root`]; out of range unless `0 < old <= new <= self.size()`.
    pub fn consistency_proof(
        &self,
        old: u64,
        new: u64,
        blocks: &dyn Fn(u64) -> Option<Block>,
    ) -> Result<Vec<Hash>, Lookup> {
        if old == 0 || old > new || new > self.size() {
            return Err(Lookup::Proof(ProofError::OutOfRange));
        }
        let mut proof = Vec::with_capacity(2 * 64);
        self.nodes(blocks)
            .subproof(old, (0, new), true, &mut proof)?;
        Ok(proof)
    }

    /// Computes what appending `leaves` adds, and the tiles (level 0 and up)
    /// that change, without changing the tree. Only the tail's block and
    /// later are touched, so nothing needs to be read.
    #[must_use]
    pub fn stage(&self, leaves: &[Hash]) -> (TiledStaged, Vec<(TileId, Vec<u8>)>) {
        let first_block = self.upper.size();
        let mut pending: Vec<Hash> = leaves_of(&self.tail).collect();
        pending.extend_from_slice(leaves);
        let mut tiles = Vec::new();
        let mut blocks = Vec::new();
        let mut block_hashes = Vec::new();
        let mut tail = Tree::default();
        if !leaves.is_empty() {
            for (block, chunk) in (first_block..).zip(pending.chunks(TILE_WIDTH.into())) {
                let width = u16::try_from(chunk.len()).expect("a tile holds at most 256");
                let id = TileId {
                    level: 0,
                    index: block,
                    width,
                };
                tiles.push((id, tile_bytes(chunk)));
                let tree = Tree::from_leaves(chunk.iter().copied());
                if width == TILE_WIDTH {
                    block_hashes.push(tree.root(BLOCK).expect("a whole block"));
                    blocks.push((block, Arc::new(tree)));
                } else {
                    tail = tree;
                }
            }
        } else {
            tail = self.tail.clone();
        }
        let upper = self.upper.stage(&block_hashes);
        // Tiles at level L >= 1 of the tree are the upper tree's at L - 1.
        let upper_tiles = crate::tiles::changed_tiles(&self.upper, &upper);
        tiles.extend(upper_tiles.into_iter().map(|(id, bytes)| {
            let id = TileId {
                level: id.level + 1,
                ..id
            };
            (id, bytes)
        }));
        let size = upper.size() * BLOCK + tail.size();
        let root = Nodes {
            upper: self.upper.view_staged(&upper),
            tail: &tail,
            blocks: &|_| None,
        }
        .root(size)
        .expect("a root needs the tail only");
        let staged = TiledStaged {
            old_size: self.size(),
            size,
            root,
            upper,
            tail,
            blocks,
        };
        (staged, tiles)
    }

    /// Appends a staged batch, and returns the blocks it completed.
    ///
    /// # Panics
    /// If the tree grew since `staged` was made.
    pub fn apply(&mut self, staged: TiledStaged) -> Vec<(u64, Block)> {
        assert_eq!(
            staged.old_size,
            self.size(),
            "batch staged at size {} applied at size {}",
            staged.old_size,
            self.size()
        );
        self.upper.apply(staged.upper);
        self.tail = staged.tail;
        staged.blocks
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn leaves(range: std::ops::Range<u64>) -> Vec<Hash> {
        range
            .map(|i| crate::merkle::leaf_hash(&i.to_be_bytes()))
            .collect()
    }

    /// A tiled tree grown by `batches`, the full tree beside it, and every
    /// block (as a reader would fetch them).
    fn grown(batches: &[u64]) -> (TiledTree, Tree, HashMap<u64, Block>) {
        let (mut tiled, mut full) = (TiledTree::default(), Tree::default());
        let mut blocks = HashMap::new();
        let mut n = 0;
        for &len in batches {
            let new = leaves(n..n + len);
            let (staged, tiles) = tiled.stage(&new);
            let full_staged = full.stage(&new);
            let mut expected = crate::tiles::changed_tiles(&full, &full_staged);
            let mut tiles = tiles;
            tiles.sort();
            expected.sort();
            assert_eq!(tiles, expected, "tiles after {n} + {len}");
            assert_eq!(staged.root(), full_staged.root());
            blocks.extend(tiled.apply(staged));
            full.apply(full_staged);
            n += len;
        }
        (tiled, full, blocks)
    }

    #[test]
    fn staging_writes_the_tiles_and_root_of_the_whole_tree() {
        grown(&[1, 2, 253, 1, 300, 256, 70_000, 5, 65_536]);
    }

    #[test]
    fn proofs_match_the_whole_trees_and_name_the_blocks_they_miss() {
        let (tiled, full, blocks) = grown(&[1000, 17, 70_000]);
        let all = |b: u64| blocks.get(&b).cloned();
        let size = full.size();
        for (index, at) in [(0, size), (5, 6), (300, size), (70_999, size), (500, 1000)] {
            assert_eq!(
                tiled.inclusion_proof(index, at, &all),
                Ok(full.inclusion_proof(index, at).unwrap())
            );
        }
        for (old, new) in [
            (1, size),
            (255, 257),
            (256, 512),
            (1000, 1017),
            (777, 70_001),
        ] {
            assert_eq!(
                tiled.consistency_proof(old, new, &all),
                Ok(full.consistency_proof(old, new).unwrap())
            );
            assert_eq!(tiled.root(old, &all), Ok(full.root(old).unwrap()));
        }
        assert_eq!(
            tiled.inclusion_proof(300, size, &|_| None),
            Err(Lookup::Missing(1))
        );
        assert_eq!(
            tiled.root(size, &|_| None),
            Ok(full.root(size).unwrap()),
            "the latest root needs no block"
        );
        assert_eq!(
            tiled.leaf(size, &all),
            Err(Lookup::Proof(ProofError::OutOfRange))
        );
    }

    #[test]
    fn a_tree_rebuilt_from_block_hashes_and_tail_has_the_same_root() {
        let (tiled, full, _) = grown(&[600]);
        let hashes = (0..tiled.size() / BLOCK).map(|b| tiled.block_hash(b).unwrap());
        let rebuilt = TiledTree::new(hashes.collect(), leaves(512..600));
        assert_eq!(rebuilt.root(600, &|_| None), Ok(full.root(600).unwrap()));
    }
}
