//! C2SP tlog-tiles: tile coordinates, paths and tile bytes, derived from the
//! in-memory [`crate::merkle::Tree`].
//!
//! Pure: no I/O. Tiles have height 8 (256 hashes); a partial tile holds the
//! right edge of its level and is replaced as the tree grows.

use crate::merkle::{Staged, Tree};

/// One tile: level, index within the level, and width (1..=256; 256 is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Tile level (tree level / 8).
    pub level: u8,
    /// Index of the tile within its level.
    pub index: u64,
    /// Number of hashes in the tile, 1..=256.
    pub width: u16,
}

/// Hashes in a full tile.
pub const TILE_WIDTH: u16 = 256;

impl TileId {
    /// Whether the tile holds all 256 hashes and will never change.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }
    /// The C2SP path below `tile/`, e.g. `0/x001/234.p/7`.
    #[must_use]
    pub fn path(&self) -> String {
        todo!()
    }
}

/// The tiles (with their bytes, 32 bytes per hash) that a staged batch creates
/// or changes, at every level.
#[must_use]
pub fn changed_tiles(tree: &Tree, staged: &Staged) -> Vec<(TileId, Vec<u8>)> {
    todo!("{tree:?}{staged:?}")
}
