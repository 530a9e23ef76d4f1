//! The read view of the log: what reads need, with memory that does not
//! grow with the log.
//!
//! A [`View`] holds the upper levels of the Merkle tree ([`TiledTree`]: the
//! hash of every complete level-0 tile, and the leaves of the last one), the
//! latest signed checkpoint, and bounded caches of level-0 tiles, entries and
//! leaf-hash lookups. Proofs read the level-0 tiles they need from storage
//! through the tile cache, and each tile read is checked against the hash the
//! view holds for it. Entries are found by leaf hash through the store (an
//! index in Postgres) unless the store handed over an in-memory leaf index at
//! open (the embedded journal does: that mode keeps a map of every leaf, so
//! its memory still grows with the log).
//!
//! It changes in one way only: [`View::apply`] lays a committed batch over
//! its end. The sequencer applies the batches it commits; a follower and a
//! leader that just took over apply what others committed with
//! [`View::catch_up`]. It never writes, and it never signs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use quick_cache::sync::Cache;

use super::tiled::{Block, Lookup, TiledStaged, TiledTree, BLOCK};
use crate::merkle::{Hash, ProofError, Tree};
use crate::storage::{LeafIndex, LogReader, StoreError, StoredCheckpoint, StoredEntry};

/// Leaves read from storage per query while catching up.
const REBUILD_CHUNK: u64 = 1 << 16;

/// Block hashes (level-1 tile entries) read per query while loading.
const BLOCK_CHUNK: u64 = 1 << 16;

/// Blocks one proof may fetch: an inclusion proof needs one, a consistency
/// proof two or three. More means the store disagrees with itself.
const MAX_FETCHES: usize = 8;

/// Bytes a cached block costs: its 511 stored hashes and the tree around them.
const BLOCK_BYTES: u64 = 520 * 32 + 64;

/// Bytes a cached leaf-hash lookup costs, roughly.
const LOOKUP_BYTES: u64 = 96;

/// An inclusion proof together with the checkpoint it proves against.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The signed tree head; `checkpoint.size` is the proof's tree size.
    pub checkpoint: Arc<StoredCheckpoint>,
    /// Audit path, leaf to root.
    pub hashes: Vec<Hash>,
}

/// Why a proof or a leaf could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The index or sizes lie outside the tree.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// A level-0 tile could not be read, or did not match the tree.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How much memory the view's caches may use.
#[derive(Debug, Clone, Copy)]
pub struct CacheBytes {
    /// Entries served without a database round trip.
    pub entries: u64,
    /// Level-0 tiles (for proofs and leaf hashes), and leaf-hash lookups
    /// (a quarter of it).
    pub tiles: u64,
}

/// A committed batch, as the view takes it in.
pub struct Committed {
    /// The tree hashes the batch adds, staged on the view's current size.
    pub staged: TiledStaged,
    /// Leaf hashes of the new entries, in index order.
    pub leaves: Vec<Hash>,
    /// The checkpoint the batch was committed with.
    pub checkpoint: StoredCheckpoint,
    /// The new entries, when the caller has them (the sequencer does; a
    /// follower reads them from storage on demand instead).
    pub entries: Vec<StoredEntry>,
}

struct State {
    tree: TiledTree,
    checkpoint: Arc<StoredCheckpoint>,
    /// Every leaf, when the store handed its map over (the embedded journal).
    leaves: Option<LeafIndex>,
}

/// The in-memory read state of one log over a store.
pub struct View<S> {
    store: S,
    state: RwLock<State>,
    cache: Cache<u64, Arc<StoredEntry>, EntryWeighter>,
    /// Complete level-0 tiles by block number, byte-capped.
    blocks: Cache<u64, Block, BlockWeighter>,
    /// Leaf hash to index, for recent entries and recent look-ups, when
    /// there is no `State::leaves`. Only hits are kept: a miss may turn
    /// into an entry at the next batch.
    lookups: Cache<[u8; 32], u64>,
    /// Encoded tiles and entry bundles as served (a v2 log's read API),
    /// byte-capped. Whatever a tile path names never changes once it
    /// exists, partial tiles included, so nothing here is ever stale.
    encoded: Cache<Served, bytes::Bytes, ServedWeighter>,
    /// The store serves entries from memory: the cache stays empty.
    entries_in_memory: bool,
    /// Unix seconds when the served checkpoint was published (or loaded).
    checkpoint_at: AtomicI64,
    /// Held by whoever stages on the tree and applies (the sequencer for one
    /// attempt, or a catch-up), so that a batch is applied on the size it
    /// was staged on.
    advance: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct EntryWeighter;

impl quick_cache::Weighter<u64, Arc<StoredEntry>> for EntryWeighter {
    fn weight(&self, _: &u64, entry: &Arc<StoredEntry>) -> u64 {
        entry_weight(entry)
    }
}

/// What a cached entry costs in memory: the allocations of its body and
/// SET (their capacity, not their length), the entry behind its `Arc`, and
/// the cache's slot.
fn entry_weight(entry: &StoredEntry) -> u64 {
    const OVERHEAD: usize = std::mem::size_of::<StoredEntry>() + 2 * 8 + 48;
    (entry.body.capacity() + entry.set.capacity() + OVERHEAD) as u64
}

/// `entry` as the cache keeps it: a body built by serialising may hold up
/// to twice its length, which a cache of many entries would multiply.
fn shrunk(mut entry: StoredEntry) -> Arc<StoredEntry> {
    entry.body.shrink_to_fit();
    entry.set.shrink_to_fit();
    Arc::new(entry)
}

/// What a served tile path names: a hash tile or an entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Served {
    /// `tile/<L>/<N>[.p/<W>]`.
    Tile(crate::tiles::TileId),
    /// `tile/entries/<N>[.p/<W>]` (its level is 0).
    Bundle(crate::tiles::TileId),
}

#[derive(Clone)]
struct ServedWeighter;

impl quick_cache::Weighter<Served, bytes::Bytes> for ServedWeighter {
    fn weight(&self, _: &Served, bytes: &bytes::Bytes) -> u64 {
        bytes.len() as u64 + 64
    }
}

#[derive(Clone)]
struct BlockWeighter;

impl quick_cache::Weighter<u64, Block> for BlockWeighter {
    fn weight(&self, _: &u64, _: &Block) -> u64 {
        BLOCK_BYTES
    }
}

impl<S: LogReader> View<S> {
    /// Loads the view of `store` at `checkpoint`: the hashes of the complete
    /// level-0 tiles (from level-1 tiles) and the leaves of the last one,
    /// never every leaf, checking their root against the checkpoint. `now`
    /// is when the checkpoint counts as loaded.
    ///
    /// # Errors
    /// Storage failures, or a tree that does not match the checkpoint.
    pub async fn load(
        store: S,
        checkpoint: StoredCheckpoint,
        caches: CacheBytes,
        now: i64,
    ) -> Result<Self, StoreError> {
        let tree = load_tree(&store, &checkpoint).await?;
        let entries_in_memory = store.entries_in_memory();
        let leaves = store
            .take_leaf_index()
            .filter(|leaves| leaves.len() as u64 == tree.size());
        let items = |bytes: u64, each: u64| usize::try_from(bytes / each).unwrap_or(usize::MAX);
        let lookup_bytes = caches.tiles / 4;
        Ok(Self {
            store,
            state: RwLock::new(State {
                tree,
                checkpoint: Arc::new(checkpoint),
                leaves,
            }),
            cache: Cache::with_weighter(
                items(caches.entries, 1024).max(16),
                caches.entries,
                EntryWeighter,
            ),
            blocks: Cache::with_weighter(
                items(caches.tiles, BLOCK_BYTES).max(4),
                caches.tiles - lookup_bytes,
                BlockWeighter,
            ),
            lookups: Cache::new(items(lookup_bytes, LOOKUP_BYTES).max(16)),
            // Sized like the tiles' budget; only a log whose tiles are
            // served (v2) ever fills it.
            encoded: Cache::with_weighter(
                items(caches.tiles, BLOCK_BYTES).max(4),
                caches.tiles,
                ServedWeighter,
            ),
            entries_in_memory,
            checkpoint_at: AtomicI64::new(now),
            advance: tokio::sync::Mutex::new(()),
        })
    }

    /// Applies what others committed since this view's checkpoint: reads the
    /// stored checkpoint, and if it is ahead, the leaf hashes up to it, and
    /// applies them once their root matches. Returns the new leaves with their
    /// indexes (empty when nothing changed). It waits for a batch being
    /// sequenced here (it takes the same lock the sequencer holds from staging to applying).
    ///
    /// # Errors
    /// Storage failures, or stored state that contradicts the view (a
    /// checkpoint smaller than the view's, or leaves that do not hash to it).
    pub async fn catch_up(&self, now: i64) -> Result<Vec<(Hash, u64)>, StoreError> {
        let _advancing = self.advance.lock().await;
        let Some(stored) = self.store.checkpoint().await? else {
            return Err(StoreError::Corrupt("the stored checkpoint vanished".into()));
        };
        let current = self.checkpoint();
        if stored.size == current.size {
            if stored.root != current.root {
                return Err(StoreError::Corrupt(format!(
                    "the stored checkpoint at size {} has another root",
                    stored.size
                )));
            }
            if stored.note != current.note {
                // Re-signed at the same size (a new origin): serve the new note.
                self.state.write().checkpoint = Arc::new(stored);
            }
            return Ok(Vec::new());
        }
        if stored.size < current.size {
            return Err(StoreError::Corrupt(format!(
                "the stored checkpoint went back from {} to {}",
                current.size, stored.size
            )));
        }
        let leaves = read_leaves(&self.store, current.size, stored.size).await?;
        let (staged, _) = self.state.read().tree.stage(&leaves);
        if staged.root() != stored.root {
            return Err(StoreError::Corrupt(format!(
                "the stored leaves do not hash to the checkpoint at size {}",
                stored.size
            )));
        }
        let added = (current.size..).zip(leaves.iter()).map(|(i, l)| (*l, i));
        let added = added.collect();
        self.apply(
            Committed {
                staged,
                leaves,
                checkpoint: stored,
                entries: Vec::new(),
            },
            now,
        );
        Ok(added)
    }

    /// The storage backend.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The committed entry at `index`, from memory when cached.
    ///
    /// # Errors
    /// Storage failures on a cache miss.
    pub async fn entry(&self, index: u64) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        if index >= self.checkpoint().size {
            return Ok(None);
        }
        let cached = !self.entries_in_memory;
        if let Some(entry) = cached.then(|| self.cache.get(&index)).flatten() {
            return Ok(Some(entry));
        }
        let Some(entry) = self.store.entry(index).await? else {
            return Err(StoreError::Corrupt(format!("entry {index} is missing")));
        };
        let entry = if cached {
            let entry = shrunk(entry);
            self.cache.insert(index, Arc::clone(&entry));
            entry
        } else {
            Arc::new(entry)
        };
        Ok(Some(entry))
    }

    /// Index of the entry with leaf hash `leaf`, if it is in the log.
    ///
    /// # Errors
    /// Storage failures when the leaf is not in memory.
    pub async fn find_leaf(&self, leaf: &Hash) -> Result<Option<u64>, StoreError> {
        Ok(self.find_leaves(std::slice::from_ref(leaf)).await?[0])
    }

    /// [`Self::find_leaf`] for several leaves, with one store query for
    /// those not in memory.
    ///
    /// # Errors
    /// Storage failures when some leaf is not in memory.
    pub async fn find_leaves(&self, leaves: &[Hash]) -> Result<Vec<Option<u64>>, StoreError> {
        if let Some(map) = &self.state.read().leaves {
            return Ok(leaves.iter().map(|l| map.get(&l.0).copied()).collect());
        }
        let mut found: Vec<Option<u64>> = leaves.iter().map(|l| self.lookups.get(&l.0)).collect();
        let missing: Vec<Hash> = (leaves.iter().zip(&found))
            .filter(|(_, f)| f.is_none())
            .map(|(l, _)| *l)
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let mut answers = self.store.find_leaves(&missing).await?.into_iter();
        for (leaf, slot) in leaves.iter().zip(found.iter_mut()) {
            if slot.is_none() {
                // Committed but not yet applied here still counts: the
                // sequencer must refuse it, and a read of it finds nothing
                // until the view has it.
                *slot = answers.next().flatten();
                if let Some(index) = *slot {
                    self.lookups.insert(leaf.0, index);
                }
            }
        }
        Ok(found)
    }

    /// Leaf hash at `index`, if committed.
    ///
    /// # Errors
    /// Storage failures reading its level-0 tile.
    pub async fn leaf_hash(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        match self
            .read(|state, blocks| state.tree.leaf(index, blocks))
            .await
        {
            Ok(leaf) => Ok(Some(leaf)),
            Err(ReadError::Proof(_)) => Ok(None),
            Err(ReadError::Store(err)) => Err(err),
        }
    }

    /// The bytes of tile `id` (C2SP tlog-tiles) of the committed tree, if
    /// it has one at that width: tiles above level 0 from the upper levels in
    /// memory, a level-0 tile from its block (read from storage through the
    /// cache, and checked) or from the tail.
    ///
    /// # Errors
    /// Storage failures, or a stored tile that contradicts the view.
    pub async fn read_tile(&self, id: crate::tiles::TileId) -> Result<Option<Vec<u8>>, ReadError> {
        self.read(|state, blocks| state.tree.read_tile(id, blocks))
            .await
    }

    /// The encoded bytes of `what`, from the cache of served tiles, or
    /// made by `encode` and kept when it yields some (a path the tree does
    /// not have yet yields none and is not kept).
    ///
    /// # Errors
    /// Whatever `encode` fails with.
    pub async fn served<E, F>(&self, what: Served, encode: F) -> Result<Option<bytes::Bytes>, E>
    where
        F: std::future::Future<Output = Result<Option<Vec<u8>>, E>>,
    {
        if let Some(bytes) = self.encoded.get(&what) {
            return Ok(Some(bytes));
        }
        let Some(encoded) = encode.await? else {
            return Ok(None);
        };
        let bytes = bytes::Bytes::from(encoded);
        self.encoded.insert(what, bytes.clone());
        Ok(Some(bytes))
    }

    /// Inclusion proof of `index` against the latest checkpoint.
    ///
    /// # Errors
    /// `OutOfRange` if `index` is not in the committed tree; storage
    /// failures reading its level-0 tile.
    pub async fn inclusion_proof(&self, index: u64) -> Result<Proof, ReadError> {
        self.read(|state, blocks| {
            let checkpoint = Arc::clone(&state.checkpoint);
            let hashes = state.tree.inclusion_proof(index, checkpoint.size, blocks)?;
            Ok(Proof { checkpoint, hashes })
        })
        .await
    }

    /// Inclusion proof of `index` in the tree of `size` (a committed size:
    /// a checkpoint served with witness cosignatures may trail the latest).
    ///
    /// # Errors
    /// `OutOfRange` unless `index < size <= size of the latest checkpoint`;
    /// storage failures reading its level-0 tile.
    pub async fn inclusion_proof_at(&self, index: u64, size: u64) -> Result<Vec<Hash>, ReadError> {
        self.read(|state, blocks| {
            if size > state.checkpoint.size {
                return Err(Lookup::Proof(ProofError::OutOfRange));
            }
            state.tree.inclusion_proof(index, size, blocks)
        })
        .await
    }

    /// Consistency proof between two committed sizes, and the latest checkpoint.
    ///
    /// # Errors
    /// `OutOfRange` unless `0 < old <= new <= size`; storage failures
    /// reading level-0 tiles.
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<(Vec<Hash>, Arc<StoredCheckpoint>), ReadError> {
        self.read(|state, blocks| {
            if new > state.checkpoint.size {
                return Err(Lookup::Proof(ProofError::OutOfRange));
            }
            let hashes = if old == new {
                Vec::new()
            } else {
                state.tree.consistency_proof(old, new, blocks)?
            };
            Ok((hashes, Arc::clone(&state.checkpoint)))
        })
        .await
    }

    /// Runs `f` on the state with the blocks at hand, fetching each block it
    /// says it misses and running it again. The lock is never held while
    /// reading: a batch applied in between only adds to the tree, and the
    /// blocks fetched are complete, so never change.
    async fn read<T>(
        &self,
        f: impl Fn(&State, &dyn Fn(u64) -> Option<Block>) -> Result<T, Lookup>,
    ) -> Result<T, ReadError> {
        let mut fetched: Vec<(u64, Block)> = Vec::new();
        loop {
            let result = {
                let lookup = |b: u64| {
                    let here = fetched.iter().find(|(i, _)| *i == b);
                    here.map(|(_, t)| Arc::clone(t))
                        .or_else(|| self.blocks.get(&b))
                };
                let state = self.state.read();
                f(&state, &lookup)
            };
            match result {
                Ok(value) => return Ok(value),
                Err(Lookup::Proof(err)) => return Err(ReadError::Proof(err)),
                Err(Lookup::Missing(block)) if fetched.len() < MAX_FETCHES => {
                    let tree = self.block(block).await?;
                    fetched.push((block, tree));
                }
                Err(Lookup::Missing(block)) => {
                    return Err(StoreError::Corrupt(format!(
                        "level-0 tile {block} is still missing after reading it"
                    ))
                    .into());
                }
            }
        }
    }

    /// Complete block `block`, from the cache or read from its level-0 tile
    /// and checked against the hash the view holds for it.
    async fn block(&self, block: u64) -> Result<Block, StoreError> {
        if let Some(tree) = self.blocks.get(&block) {
            return Ok(tree);
        }
        let expected = self.state.read().tree.block_hash(block);
        let expected = expected
            .ok_or_else(|| StoreError::Corrupt(format!("level-0 tile {block} is not complete")))?;
        let leaves = self
            .store
            .leaf_hashes(block * BLOCK, (block + 1) * BLOCK)
            .await?;
        if leaves.len() as u64 != BLOCK {
            return Err(StoreError::Corrupt(format!(
                "level-0 tile {block} is incomplete"
            )));
        }
        let tree = Arc::new(Tree::from_leaves(leaves));
        if tree.root(BLOCK).ok() != Some(expected) {
            return Err(StoreError::Corrupt(format!(
                "level-0 tile {block} does not hash to its level-1 entry"
            )));
        }
        self.blocks.insert(block, Arc::clone(&tree));
        Ok(tree)
    }
}

impl<S> View<S> {
    /// Lays a committed batch over the view's end. Readers see the new
    /// checkpoint and the hashes behind it at once: both change under one lock.
    ///
    /// # Panics
    /// If the batch was staged on another size than the view's.
    pub fn apply(&self, committed: Committed, now: i64) {
        let Committed {
            staged,
            leaves,
            checkpoint,
            entries,
        } = committed;
        let first = staged.old_size();
        let blocks = {
            let mut state = self.state.write();
            let blocks = state.tree.apply(staged);
            if let Some(map) = &mut state.leaves {
                for (index, leaf) in (first..).zip(&leaves) {
                    map.insert(leaf.0, index);
                }
            }
            state.checkpoint = Arc::new(checkpoint);
            blocks
        };
        self.checkpoint_at.store(now, Ordering::Relaxed);
        // The newest blocks and leaves are the likeliest to be read next;
        // the caches are bounded, so only the last few are worth inserting.
        let keep = usize::try_from(self.blocks.capacity() / BLOCK_BYTES).unwrap_or(usize::MAX);
        for (block, tree) in blocks.into_iter().rev().take(keep) {
            self.blocks.insert(block, tree);
        }
        if self.state.read().leaves.is_none() {
            let keep = usize::try_from(self.lookups.capacity()).unwrap_or(usize::MAX);
            let skip = leaves.len().saturating_sub(keep);
            for (index, leaf) in (first..).zip(&leaves).skip(skip) {
                self.lookups.insert(leaf.0, index);
            }
        }
        if !self.entries_in_memory {
            for entry in entries {
                self.cache.insert(entry.index, shrunk(entry));
            }
        }
    }

    /// Waits until no one else stages or applies, and holds that until the
    /// guard drops: the sequencer holds it from staging to applying.
    pub(super) async fn advancing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.advance.lock().await
    }

    /// Replaces the served checkpoint with a re-signed one of the same tree.
    pub(super) fn replace_checkpoint(&self, checkpoint: StoredCheckpoint) {
        self.state.write().checkpoint = Arc::new(checkpoint);
    }

    /// Stages `leaves` on the current tree, and the tiles they change.
    pub(super) fn stage(
        &self,
        leaves: &[Hash],
    ) -> (TiledStaged, Vec<(crate::tiles::TileId, Vec<u8>)>) {
        self.state.read().tree.stage(leaves)
    }

    /// Unix seconds when the served checkpoint was published (or loaded).
    pub fn checkpoint_at(&self) -> i64 {
        self.checkpoint_at.load(Ordering::Relaxed)
    }

    /// The latest committed signed checkpoint.
    pub fn checkpoint(&self) -> Arc<StoredCheckpoint> {
        Arc::clone(&self.state.read().checkpoint)
    }
}

/// Leaf hashes `[start, end)` from `store`, in chunks.
async fn read_leaves<S: LogReader>(
    store: &S,
    start: u64,
    end: u64,
) -> Result<Vec<Hash>, StoreError> {
    let mut leaves = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    let mut from = start;
    while from < end {
        let to = (from + REBUILD_CHUNK).min(end);
        let chunk = store.leaf_hashes(from, to).await?;
        if chunk.len() as u64 != to - from {
            return Err(StoreError::Corrupt(format!(
                "leaf hashes {from}..{to} are incomplete"
            )));
        }
        leaves.extend(chunk);
        from = to;
    }
    Ok(leaves)
}

/// The tree at `checkpoint`: from the tree the store built while opening
/// (the embedded journal), or from its block hashes and last leaves, then
/// checked against the checkpoint's root.
async fn load_tree<S: LogReader>(
    store: &S,
    checkpoint: &StoredCheckpoint,
) -> Result<TiledTree, StoreError> {
    let blocks = checkpoint.size / BLOCK;
    let tree = match store.take_tree().filter(|t| t.size() == checkpoint.size) {
        Some(full) => tiled_from_full(&full),
        None => {
            let mut hashes = Vec::with_capacity(usize::try_from(blocks).unwrap_or(0));
            let mut from = 0;
            while from < blocks {
                let to = (from + BLOCK_CHUNK).min(blocks);
                let chunk = store.block_hashes(from, to).await?;
                if chunk.len() as u64 != to - from {
                    return Err(StoreError::Corrupt(format!(
                        "level-1 tile hashes {from}..{to} are incomplete"
                    )));
                }
                hashes.extend(chunk);
                from = to;
            }
            let tail = read_leaves(store, blocks * BLOCK, checkpoint.size).await?;
            TiledTree::new(hashes, tail)
        }
    };
    if tree.root(checkpoint.size, &|_| None).ok() != Some(checkpoint.root) {
        return Err(StoreError::Corrupt(format!(
            "the tree loaded from stored tiles does not match the checkpoint at size {}",
            checkpoint.size
        )));
    }
    Ok(tree)
}

/// The upper levels and last leaves of a whole tree.
fn tiled_from_full(full: &Tree) -> TiledTree {
    let blocks = full.size() / BLOCK;
    let view = full.view();
    let hashes = (0..blocks)
        .map(|b| {
            let index = tlog_tiles::stored_hash_index(8, b);
            view.stored(index).expect("complete block in the tree")
        })
        .collect();
    let tail = (blocks * BLOCK..full.size())
        .map(|i| full.leaf(i).expect("leaf in range"))
        .collect();
    TiledTree::new(hashes, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_entry_weighs_what_it_allocates_and_no_more_than_it_needs() {
        let mut body = Vec::with_capacity(2048);
        body.extend_from_slice(&[b'x'; 1000]);
        let entry = StoredEntry {
            index: 7,
            body,
            integrated_time: 0,
            set: vec![1; 70],
        };
        assert!(entry_weight(&entry) >= 2048 + 70, "its capacity counts");
        let kept = shrunk(entry);
        assert_eq!(kept.body, [b'x'; 1000]);
        assert!(kept.body.capacity() < 2048, "kept at its size");
        assert!(entry_weight(&kept) < 1000 + 70 + 256);
    }
}
