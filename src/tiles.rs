//! C2SP tlog-tiles: tile coordinates, paths and tile bytes, derived from the
//! in-memory [`crate::merkle::Tree`]. Spec: <https://c2sp.org/tlog-tiles>.
//!
//! Pure: no I/O. Tiles have height 8 (256 hashes); a partial tile holds the
//! right edge of its level and is replaced as the tree grows. A tile at level
//! `L`, index `N`, holds the hashes of the complete subtrees at tree level
//! `8·L`, numbered `256·N` onwards. Entry bundles (`tile/entries/…`) are not
//! built here: their bytes are the entries, which this module never sees.

use tlog_tiles::Tile;

use crate::merkle::{Hash, HashView, Staged, Tree};

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

/// Tile height: each tile spans 8 tree levels.
pub const TILE_HEIGHT: u8 = 8;

/// Bytes per hash in tile data.
const HASH_SIZE: usize = 32;

/// Highest tile level a `u64` tree size can reach (`64 / 8`, rounded up).
const MAX_LEVEL: u8 = 8;

/// Errors from parsing tile paths or tile bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileError {
    /// The path is not a canonical C2SP hash-tile path.
    #[error("malformed tile path: {0:?}")]
    BadPath(String),
    /// Tile data is not 1..=256 whole hashes.
    #[error("malformed tile data: {0} bytes")]
    BadData(usize),
}

impl TileId {
    /// Whether the tile holds all 256 hashes and will never change.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The C2SP path below `tile/`, e.g. `0/x001/234.p/7`.
    ///
    /// The index is written in groups of three digits, all but the last
    /// prefixed with `x`; partial tiles end in `.p/<width>`.
    #[must_use]
    pub fn path(&self) -> String {
        let index = index_path(self.index);
        if self.is_full() {
            format!("{}/{index}", self.level)
        } else {
            format!("{}/{index}.p/{}", self.level, self.width)
        }
    }

    /// The C2SP path below `tile/` of the entry bundle beside this level-0
    /// tile, e.g. `entries/x001/234.p/7` (R-05: the same index and width).
    #[must_use]
    pub fn entries_path(&self) -> String {
        let index = index_path(self.index);
        if self.is_full() {
            format!("entries/{index}")
        } else {
            format!("entries/{index}.p/{}", self.width)
        }
    }

    /// Parses a path below `tile/` (the inverse of [`TileId::path`]).
    ///
    /// Only canonical paths are accepted: no leading zeros beyond the
    /// three-digit groups, no `.p/256`, no `.p/0`, level at most 8.
    ///
    /// # Errors
    /// `TileError::BadPath` for anything else, including entry-bundle paths
    /// (`entries/…`).
    pub fn from_path(path: &str) -> Result<Self, TileError> {
        let bad = || TileError::BadPath(path.to_owned());
        let (level, rest) = path.split_once('/').ok_or_else(bad)?;
        let level: u8 = parse_decimal(level).ok_or_else(bad)?;
        if level > MAX_LEVEL {
            return Err(bad());
        }
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index_part, width)) => (index_part, parse_decimal(width).ok_or_else(bad)?),
            None => (rest, TILE_WIDTH),
        };
        if width == 0 || width > TILE_WIDTH {
            return Err(bad());
        }
        let mut index: u64 = 0;
        for group in index_part.split('/') {
            let digits = group.strip_prefix('x').unwrap_or(group);
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let value: u64 = digits.parse().map_err(|_| bad())?;
            index = index
                .checked_mul(1000)
                .and_then(|i| i.checked_add(value))
                .ok_or_else(bad)?;
        }
        let tile = Self {
            level,
            index,
            width,
        };
        // Round-tripping rejects misplaced `x` prefixes, leading zero
        // groups and `.p/256`.
        if tile.path() != path {
            return Err(bad());
        }
        Ok(tile)
    }

    /// The `tlog_tiles` tile with the same coordinates.
    fn to_tlog(self) -> Tile {
        Tile::new(
            TILE_HEIGHT,
            self.level,
            self.index,
            u32::from(self.width),
            false,
        )
    }

    /// The tile with the same coordinates as a `tlog_tiles` hash tile of
    /// height 8.
    fn from_tlog(tile: &Tile) -> Self {
        Self {
            level: tile.level(),
            index: tile.level_index(),
            width: u16::try_from(tile.width()).expect("height-8 tiles are at most 256 wide"),
        }
    }
}

/// `1234067` → `x001/x234/067`.
fn index_path(index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Plain decimal without sign or leading zeros.
fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// Reads the bytes of `tiles` from `view`.
fn read_tiles(view: &HashView<'_>, tiles: Vec<Tile>) -> Vec<(TileId, Vec<u8>)> {
    tiles
        .into_iter()
        .map(|tile| {
            let bytes = tile
                .read_data(view)
                .expect("tiles of the view's size lie within the view");
            (TileId::from_tlog(&tile), bytes)
        })
        .collect()
}

/// The tiles (with their bytes, 32 bytes per hash) that a staged batch creates
/// or changes, at every level.
///
/// Ordered by level, then index. Includes every full tile completed by the
/// batch and the new partial right-edge tile of each level (if any); a tile
/// that was full before the batch never appears.
///
/// # Panics
/// If `staged` was not staged on `tree` at its current size.
#[must_use]
pub fn changed_tiles(tree: &Tree, staged: &Staged) -> Vec<(TileId, Vec<u8>)> {
    let view = tree.view_staged(staged);
    let tiles = Tile::new_tiles(TILE_HEIGHT, staged.old_size(), staged.size());
    read_tiles(&view, tiles)
}

/// Every tile of the tree at its current size, with its bytes; the same as
/// [`changed_tiles`] for a batch holding the whole tree.
#[must_use]
pub fn all_tiles(tree: &Tree) -> Vec<(TileId, Vec<u8>)> {
    read_tiles(&tree.view(), Tile::new_tiles(TILE_HEIGHT, 0, tree.size()))
}

/// The bytes of one tile of `tree`, if the tree is big enough to have it at
/// exactly that width (a partial tile narrower than the tree's right edge
/// is still served, as C2SP allows clients to ask for older partial tiles).
#[must_use]
pub fn read_tile(tree: &Tree, id: TileId) -> Option<Vec<u8>> {
    if id.level > MAX_LEVEL || id.width == 0 || id.width > TILE_WIDTH {
        return None;
    }
    let shift = u32::from(id.level) * u32::from(TILE_HEIGHT);
    // Complete subtrees at tree level 8·level.
    let nodes = tree.size().checked_shr(shift).unwrap_or(0);
    let end = id
        .index
        .checked_mul(u64::from(TILE_WIDTH))?
        .checked_add(u64::from(id.width))?;
    if end > nodes {
        return None;
    }
    id.to_tlog().read_data(&tree.view()).ok()
}

/// The hash tiles of a tree built leaf by leaf in bounded memory (at most
/// 255 hashes per level): [`TileStream::push`] gives each tile as it
/// becomes full, [`TileStream::edge`] the partial tiles of the right edge
/// at the size reached (rekor-v2-tiles.md R-07). For writing or checking
/// a whole log's tiles in one pass, where [`changed_tiles`] would need the
/// tree in memory.
#[derive(Debug, Default, Clone)]
pub struct TileStream {
    size: u64,
    /// `levels[l]`: the hashes of tile level `l` not yet in a full tile.
    levels: Vec<Vec<Hash>>,
}

impl TileStream {
    /// Leaves pushed so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns the tiles it completed, lowest level
    /// first, with their bytes.
    pub fn push(&mut self, leaf: Hash) -> Vec<(TileId, Vec<u8>)> {
        self.size += 1;
        let mut full = Vec::new();
        let mut hash = leaf;
        let mut level = 0u8;
        loop {
            if self.levels.len() == usize::from(level) {
                self.levels
                    .push(Vec::with_capacity(usize::from(TILE_WIDTH)));
            }
            let hashes = &mut self.levels[usize::from(level)];
            hashes.push(hash);
            if hashes.len() < usize::from(TILE_WIDTH) {
                return full;
            }
            let hashes = std::mem::take(hashes);
            let nodes = self.size >> (u32::from(level) * u32::from(TILE_HEIGHT));
            let id = TileId {
                level,
                index: nodes / u64::from(TILE_WIDTH) - 1,
                width: TILE_WIDTH,
            };
            hash = leaves_root(&hashes);
            full.push((id, hashes.iter().flat_map(|h| h.0).collect()));
            level += 1;
        }
    }

    /// The partial tiles at the right edge of every level, lowest first:
    /// with the full tiles given so far, every tile of a tree of this size.
    #[must_use]
    pub fn edge(&self) -> Vec<(TileId, Vec<u8>)> {
        (0u8..)
            .zip(&self.levels)
            .filter(|(_, hashes)| !hashes.is_empty())
            .map(|(level, hashes)| {
                let nodes = self.size >> (u32::from(level) * u32::from(TILE_HEIGHT));
                let id = TileId {
                    level,
                    index: nodes / u64::from(TILE_WIDTH),
                    width: u16::try_from(hashes.len()).expect("under 256"),
                };
                (id, hashes.iter().flat_map(|h| h.0).collect())
            })
            .collect()
    }
}

/// The Merkle root of `hashes` as a tree of their own: for a full tile's
/// 256, the hash its level above holds.
#[must_use]
pub fn leaves_root(hashes: &[Hash]) -> Hash {
    let mut range = crate::merkle::CompactRange::default();
    for hash in hashes {
        range.push(*hash);
    }
    range.root()
}

/// An entry bundle (C2SP tlog-tiles "Log entries"; rekor-v2-tiles.md R-05):
/// each entry as a big-endian uint16 length and its bytes, in index order.
///
/// # Errors
/// `TileError::BadData` with the length of an entry over 65 535 bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, TileError> {
    let mut bundle = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).map_err(|_| TileError::BadData(entry.len()))?;
        bundle.extend_from_slice(&len.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Ok(bundle)
}

/// The entries of an entry bundle, in order.
///
/// # Errors
/// `TileError::BadData` with the bundle's length if it is cut short.
pub fn parse_entry_bundle(mut bundle: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let bad = TileError::BadData(bundle.len());
    let mut entries = Vec::new();
    while !bundle.is_empty() {
        let Some((len, rest)) = bundle.split_first_chunk::<2>() else {
            return Err(bad);
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(bad);
        }
        let (entry, rest) = rest.split_at(len);
        entries.push(entry);
        bundle = rest;
    }
    Ok(entries)
}

/// Splits tile bytes into hashes, e.g. the leaf hashes of a level-0 tile
/// when rebuilding the tree on start-up.
///
/// # Errors
/// `TileError::BadData` unless `bytes` holds 1..=256 whole 32-byte hashes.
///
/// # Panics
/// Never: the length is checked first.
pub fn hashes_from_tile(bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    let count = bytes.len() / HASH_SIZE;
    if bytes.len() % HASH_SIZE != 0 || count == 0 || count > usize::from(TILE_WIDTH) {
        return Err(TileError::BadData(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(HASH_SIZE)
        .map(|chunk| Hash(chunk.try_into().expect("chunks are 32 bytes")))
        .collect())
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tessera_vectors {
    //! rekor-v2-tiles.md V-01, V-02 (transparency-dev/tessera testdata/log)
    //! and V-07, reproduced byte for byte.
    use super::*;
    use base64::prelude::{Engine as _, BASE64_STANDARD};

    const LEAVES: [&str; 15] = [
        "one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven",
        "twelf", "threeten", "fourten", "fivten",
    ];

    fn b64(hash: Hash) -> String {
        BASE64_STANDARD.encode(hash.0)
    }

    fn golden() -> Tree {
        Tree::from_leaves(
            LEAVES
                .iter()
                .map(|l| crate::merkle::leaf_hash(l.as_bytes())),
        )
    }

    #[test]
    fn golden_log_roots_tiles_and_bundles_match_v01() {
        let tree = golden();
        for (size, root) in [
            (1, "0Nc2CrefWKseHj/mStd+LqC8B+NrX0btIiPt2SmN+ek="),
            (2, "T1X2GdkhUjV3iyufF9b0kVsWFxIU0VI4EpNml2Teci4="),
            (3, "Wqx3HImawpLnS/Gv4ubjAvi1WIOy0b8Ze0amvqbavKk="),
            (7, "IrSXADBqJ7EQoUODSDKROySgNveeL6CFhik2w/+fS7U="),
            (15, "rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs="),
        ] {
            assert_eq!(b64(tree.root(size).unwrap()), root, "size {size}");
        }
        for width in 1..=15u16 {
            let id = TileId {
                level: 0,
                index: 0,
                width,
            };
            assert_eq!(id.path(), format!("0/000.p/{width}"));
            let expected: Vec<u8> = LEAVES[..usize::from(width)]
                .iter()
                .flat_map(|l| crate::merkle::leaf_hash(l.as_bytes()).0)
                .collect();
            assert_eq!(read_tile(&tree, id).unwrap(), expected);
        }
        assert_eq!(
            read_tile(
                &tree,
                TileId {
                    level: 0,
                    index: 0,
                    width: 15
                }
            )
            .unwrap()
            .len(),
            480
        );
        let bundle = |n: usize| entry_bundle(LEAVES[..n].iter().map(|l| l.as_bytes())).unwrap();
        assert_eq!(bundle(2), b"\x00\x03one\x00\x03two");
        assert_eq!(bundle(15).len(), 99);
        let fifteen = bundle(15);
        let parsed = parse_entry_bundle(&fifteen).unwrap();
        assert_eq!(parsed, LEAVES.map(str::as_bytes));
        assert!(parse_entry_bundle(&bundle(2)[..9]).is_err(), "cut short");
    }

    #[test]
    fn golden_log_proofs_match_v02() {
        let tree = golden();
        let inclusion: Vec<String> = tree
            .inclusion_proof(2, 15)
            .unwrap()
            .into_iter()
            .map(b64)
            .collect();
        assert_eq!(
            inclusion,
            [
                "9xWrP6pdBx5uKsS7mU1b9zWUPcw3mdoNCF55gM+5M2o=",
                "T1X2GdkhUjV3iyufF9b0kVsWFxIU0VI4EpNml2Teci4=",
                "g0ZoeYWtIV8Q8i+4CmgqPnBvH2il107lyCgTQsyB7H4=",
                "5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks=",
            ]
        );
        let consistency: Vec<String> = tree
            .consistency_proof(7, 15)
            .unwrap()
            .into_iter()
            .map(b64)
            .collect();
        assert_eq!(
            consistency,
            [
                "2Q0P5jSR+TdkwdXWyx+GbBWX0KZbNZkWzCjyTPSozsw=",
                "ThcgoV2DYcK+VCxBUDWAlNxmLy2r7dq7dK7+OlgQKWs=",
                "ycRkkNklus5eMVRUvkD1pK321vMrA+jjOiZKU8aOcY4=",
                "zY1lN35vrXYAPixXSd59LsU29xUJtuW4o2dNNg5Y2Co=",
                "5jLpqTgjsBDSEX6SgZiRnbTMdTuRd8bQ5tSsAOxe0Ks=",
            ]
        );
    }

    #[test]
    fn golden_log_key_is_the_v01_vkey() {
        // The test-only signing key of V-01, PRIVATE+KEY+<name>+<id>+<0x01 || seed>.
        let skey = "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";
        let seed = BASE64_STANDARD
            .decode(skey.splitn(5, '+').nth(4).unwrap())
            .unwrap();
        let key = crate::note::c2sp::Ed25519NoteKey::new(
            "example.com/log/testdata",
            &seed[1..].try_into().unwrap(),
        )
        .unwrap();
        assert_eq!(
            key.vkey(),
            "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
        );
    }

    #[test]
    fn tile_index_paths_match_v07() {
        for (n, path) in [
            (0, "0/000"),
            (5, "0/005"),
            (999, "0/999"),
            (1000, "0/x001/000"),
            (1_234_067, "0/x001/x234/067"),
            (1_000_000, "0/x001/x000/000"),
        ] {
            let id = TileId {
                level: 0,
                index: n,
                width: TILE_WIDTH,
            };
            assert_eq!(id.path(), path);
            assert_eq!(TileId::from_path(path).unwrap(), id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;
    use std::collections::BTreeMap;

    /// Latest width and bytes of each tile written, by (level, index).
    type Written = BTreeMap<(u8, u64), (u16, Vec<u8>)>;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn id(level: u8, index: u64, width: u16) -> TileId {
        TileId {
            level,
            index,
            width,
        }
    }

    #[test]
    fn paths_follow_c2sp_tlog_tiles() {
        let cases = [
            (id(0, 1234, 7), "0/x001/234.p/7"),
            (id(0, 1234, 256), "0/x001/234"),
            (id(2, 0, 256), "2/000"),
            (id(1, 1_234_067, 1), "1/x001/x234/067.p/1"),
            (id(0, 999, 255), "0/999.p/255"),
            (id(0, 1000, 256), "0/x001/000"),
        ];
        for (tile, path) in cases {
            assert_eq!(tile.path(), path);
            assert_eq!(TileId::from_path(path), Ok(tile));
        }
    }

    #[test]
    fn entry_bundle_paths_follow_their_level_0_tile() {
        // rekor-v2-tiles.md R-07 and V-07: bundles share their tile's index path.
        assert_eq!(id(0, 1234, 7).entries_path(), "entries/x001/234.p/7");
        assert_eq!(id(0, 0, 256).entries_path(), "entries/000");
        assert_eq!(
            id(0, 1_000_000, 256).entries_path(),
            "entries/x001/x000/000"
        );
    }

    #[test]
    fn a_tile_stream_gives_every_tile_of_the_tree_with_its_bytes() {
        // 70 000 leaves: R-07's tile set, each tile as the tree has it.
        let leaves: Vec<Hash> = (0u32..70_000)
            .map(|i| crate::merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let tree = Tree::from_leaves(leaves.clone());
        let mut stream = TileStream::default();
        let mut streamed: Vec<(TileId, Vec<u8>)> =
            leaves.iter().flat_map(|leaf| stream.push(*leaf)).collect();
        let edge = stream.edge();
        let edge_paths: Vec<String> = edge.iter().map(|(id, _)| id.path()).collect();
        assert_eq!(edge_paths, ["0/273.p/112", "1/001.p/17", "2/000.p/1"]);
        streamed.extend(edge);
        assert_eq!(streamed.len(), 273 + 1 + 1 + 1 + 1);
        for (id, bytes) in &streamed {
            assert_eq!(read_tile(&tree, *id).as_ref(), Some(bytes), "{}", id.path());
        }
        assert!(streamed.iter().any(|(id, _)| id.path() == "1/000"));
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for path in [
            "",
            "0",
            "0/1234",
            "0/x001/234.p/256",
            "0/x001/234.p/0",
            "0/x001/234.p/07",
            "0/001/234",
            "0/x000/234",
            "0/x001/x234",
            "00/000",
            "9/000",
            "0/000/",
            "0/000.p/",
            "entries/000",
            "0/-01",
            "0/x999/x999/x999/x999/x999/x999/x999",
        ] {
            assert!(TileId::from_path(path).is_err(), "{path:?} accepted");
        }
    }

    #[test]
    fn tile_bytes_hold_leaf_hashes_and_subtree_roots() {
        let all = leaves(600);
        let tree = Tree::from_leaves(all.iter().copied());
        let tiles = all_tiles(&tree);
        let ids: Vec<TileId> = tiles.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            ids,
            [id(0, 0, 256), id(0, 1, 256), id(0, 2, 88), id(1, 0, 2)]
        );
        let level0: Vec<u8> = tiles[..3].iter().flat_map(|(_, b)| b.clone()).collect();
        let want0: Vec<u8> = all.iter().flat_map(|h| h.0).collect();
        assert_eq!(level0, want0);
        let subtree = |r: std::ops::Range<usize>| {
            Tree::from_leaves(all[r].iter().copied())
                .root(256)
                .unwrap()
                .0
        };
        let want1 = [subtree(0..256), subtree(256..512)].concat();
        assert_eq!(tiles[3].1, want1);
    }

    /// Grows a tree to `total` leaves in batches of the given sizes (cycled)
    /// and checks that each batch's changed tiles only extend partial tiles.
    /// Returns the tree and the latest bytes of every tile written.
    fn grow(total: u64, batches: &[u64]) -> (Tree, Written) {
        let all = leaves(total);
        let mut tree = Tree::default();
        let mut written = Written::new();
        let mut at = 0;
        for &len in batches.iter().cycle() {
            if at >= total {
                break;
            }
            let end = (at + len).min(total);
            let staged = tree.stage(&all[at as usize..end as usize]);
            for (tile, bytes) in changed_tiles(&tree, &staged) {
                assert_eq!(bytes.len(), usize::from(tile.width) * 32);
                if let Some((width, old)) = written.get(&(tile.level, tile.index)) {
                    assert!(*width < TILE_WIDTH, "full tile {tile:?} rewritten");
                    assert!(*width < tile.width, "tile {tile:?} did not grow");
                    assert_eq!(old[..], bytes[..old.len()], "tile {tile:?} changed");
                }
                written.insert((tile.level, tile.index), (tile.width, bytes));
            }
            tree.apply(staged);
            at = end;
        }
        (tree, written)
    }

    fn assert_matches_final_tree(tree: &Tree, written: &Written) {
        let want: Written = all_tiles(tree)
            .into_iter()
            .map(|(t, b)| ((t.level, t.index), (t.width, b)))
            .collect();
        assert_eq!(*written, want);
    }

    #[test]
    fn incremental_changed_tiles_reproduce_the_final_tree_tiles() {
        for batches in [&[1][..], &[3, 0, 255, 1, 17, 256, 2][..], &[600][..]] {
            let (tree, written) = grow(600, batches);
            assert_matches_final_tree(&tree, &written);
        }
    }

    #[test]
    fn changed_tiles_cover_level_one_tiles_filling_up() {
        // 256·256 + 300 leaves: level-1 tile 0 becomes full, level 2 appears.
        let (tree, written) = grow(65_836, &[1000, 1, 4095, 77]);
        assert_eq!(written[&(1, 0)].0, TILE_WIDTH);
        assert_eq!(written[&(2, 0)].0, 1);
        assert_matches_final_tree(&tree, &written);
    }

    #[test]
    fn tree_rebuilt_from_level_zero_tiles_has_the_same_root() {
        let tree = Tree::from_leaves(leaves(700));
        let leaf_hashes: Vec<Hash> = all_tiles(&tree)
            .into_iter()
            .filter(|(t, _)| t.level == 0)
            .flat_map(|(_, bytes)| hashes_from_tile(&bytes).unwrap())
            .collect();
        let rebuilt = Tree::from_leaves(leaf_hashes);
        assert_eq!(rebuilt.size(), 700);
        assert_eq!(rebuilt.root(700), tree.root(700));
    }

    #[test]
    fn malformed_tile_bytes_are_refused() {
        assert_eq!(hashes_from_tile(&[]), Err(TileError::BadData(0)));
        assert_eq!(hashes_from_tile(&[0; 33]), Err(TileError::BadData(33)));
        assert_eq!(
            hashes_from_tile(&[0; 257 * 32]),
            Err(TileError::BadData(257 * 32))
        );
        assert_eq!(hashes_from_tile(&[7; 64]).unwrap(), vec![Hash([7; 32]); 2]);
    }

    #[test]
    fn read_tile_serves_current_and_older_widths_only() {
        let tree = Tree::from_leaves(leaves(600));
        let tiles = all_tiles(&tree);
        for (tile, bytes) in &tiles {
            assert_eq!(read_tile(&tree, *tile).as_ref(), Some(bytes));
        }
        let narrower = read_tile(&tree, id(0, 2, 10)).unwrap();
        assert_eq!(narrower[..], tiles[2].1[..320]);
        assert_eq!(read_tile(&tree, id(0, 2, 89)), None);
        assert_eq!(read_tile(&tree, id(0, 3, 1)), None);
        assert_eq!(read_tile(&tree, id(1, 0, 3)), None);
        assert_eq!(read_tile(&tree, id(2, 0, 1)), None);
        assert_eq!(read_tile(&tree, id(9, 0, 1)), None);
        assert_eq!(read_tile(&tree, id(0, u64::MAX, 256)), None);
    }
}
