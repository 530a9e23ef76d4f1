//! The read view of the log: what reads need without a database round trip.
//!
//! A [`View`] holds the Merkle tree (all stored hashes), the leaf-hash index,
//! the latest signed checkpoint and a bounded cache of entries. It changes in
//! one way only: [`View::apply`] lays a committed batch over its end. The
//! sequencer applies the batches it commits; a follower (another process on
//! the same database) and a leader that just took over apply what others
//! committed with [`View::catch_up`]. It never writes, and it never signs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use quick_cache::sync::Cache;

use crate::merkle::{Hash, ProofError, Staged, Tree};
use crate::storage::{LeafIndex, LogReader, StoreError, StoredCheckpoint, StoredEntry};

/// Leaves read from storage per query while rebuilding or catching up.
const REBUILD_CHUNK: u64 = 1 << 16;

/// An inclusion proof together with the checkpoint it proves against.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The signed tree head; `checkpoint.size` is the proof's tree size.
    pub checkpoint: Arc<StoredCheckpoint>,
    /// Audit path, leaf to root.
    pub hashes: Vec<Hash>,
}

/// A committed batch, as the view takes it in.
pub struct Committed {
    /// The tree hashes the batch adds, staged on the view's current size.
    pub staged: Staged,
    /// Leaf hashes of the new entries, in index order.
    pub leaves: Vec<Hash>,
    /// The checkpoint the batch was committed with.
    pub checkpoint: StoredCheckpoint,
    /// The new entries, when the caller has them (the sequencer does; a
    /// follower reads them from storage on demand instead).
    pub entries: Vec<StoredEntry>,
}

struct State {
    tree: Tree,
    checkpoint: Arc<StoredCheckpoint>,
    leaves: LeafIndex,
}

/// The in-memory read state of one log over a store.
pub struct View<S> {
    store: S,
    state: RwLock<State>,
    cache: Cache<u64, Arc<StoredEntry>, EntryWeighter>,
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
        (entry.body.len() + entry.set.len() + 64) as u64
    }
}

impl<S: LogReader> View<S> {
    /// Rebuilds the view of `store` at `checkpoint`, checking the rebuilt
    /// tree's root against it. `now` is when the checkpoint counts as loaded.
    ///
    /// # Errors
    /// Storage failures, or a tree that does not match the checkpoint.
    pub async fn load(
        store: S,
        checkpoint: StoredCheckpoint,
        entry_cache_bytes: u64,
        now: i64,
    ) -> Result<Self, StoreError> {
        let tree = rebuild_tree(&store, &checkpoint).await?;
        let entries_in_memory = store.entries_in_memory();
        let leaves = match store.take_leaf_index() {
            Some(leaves) if leaves.len() as u64 == tree.size() => leaves,
            _ => (0..tree.size())
                .map(|i| (tree.leaf(i).expect("leaf in range").0, i))
                .collect(),
        };
        let estimated_items = usize::try_from(entry_cache_bytes / 1024)
            .unwrap_or(usize::MAX)
            .max(16);
        Ok(Self {
            store,
            state: RwLock::new(State {
                tree,
                checkpoint: Arc::new(checkpoint),
                leaves,
            }),
            cache: Cache::with_weighter(estimated_items, entry_cache_bytes, EntryWeighter),
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
        let mut leaves = Vec::new();
        let mut start = current.size;
        while start < stored.size {
            let end = (start + REBUILD_CHUNK).min(stored.size);
            let chunk = self.store.leaf_hashes(start, end).await?;
            if chunk.len() as u64 != end - start {
                return Err(StoreError::Corrupt(format!(
                    "leaf hashes {start}..{end} are incomplete"
                )));
            }
            leaves.extend(chunk);
            start = end;
        }
        let staged = self.state.read().tree.stage(&leaves);
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
        let entry = Arc::new(entry);
        if cached {
            self.cache.insert(index, Arc::clone(&entry));
        }
        Ok(Some(entry))
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
        {
            let mut state = self.state.write();
            let first = staged.old_size();
            state.tree.apply(staged);
            for (index, leaf) in (first..).zip(&leaves) {
                state.leaves.insert(leaf.0, index);
            }
            state.checkpoint = Arc::new(checkpoint);
        }
        self.checkpoint_at.store(now, Ordering::Relaxed);
        if !self.entries_in_memory {
            for entry in entries {
                self.cache.insert(entry.index, Arc::new(entry));
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
    pub(super) fn stage(&self, leaves: &[Hash]) -> (Staged, Vec<(crate::tiles::TileId, Vec<u8>)>) {
        let state = self.state.read();
        let staged = state.tree.stage(leaves);
        let tiles = crate::tiles::changed_tiles(&state.tree, &staged);
        (staged, tiles)
    }

    /// Unix seconds when the served checkpoint was published (or loaded).
    pub fn checkpoint_at(&self) -> i64 {
        self.checkpoint_at.load(Ordering::Relaxed)
    }

    /// The latest committed signed checkpoint.
    pub fn checkpoint(&self) -> Arc<StoredCheckpoint> {
        Arc::clone(&self.state.read().checkpoint)
    }

    /// Index of the entry with leaf hash `leaf`, if it is in the log.
    pub fn find_leaf(&self, leaf: &Hash) -> Option<u64> {
        self.state.read().leaves.get(&leaf.0).copied()
    }

    /// Leaf hash at `index`, if committed.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        let state = self.state.read();
        (index < state.checkpoint.size).then(|| state.tree.leaf(index))?
    }

    /// The bytes of tile `id` (C2SP tlog-tiles) of the committed tree, if
    /// it has one at that width. Computed from the in-memory tree: like the
    /// tree itself, this needs the log to fit in memory.
    pub fn read_tile(&self, id: crate::tiles::TileId) -> Option<Vec<u8>> {
        crate::tiles::read_tile(&self.state.read().tree, id)
    }

    /// Inclusion proof of `index` against the latest checkpoint.
    ///
    /// # Errors
    /// `OutOfRange` if `index` is not in the committed tree.
    pub fn inclusion_proof(&self, index: u64) -> Result<Proof, ProofError> {
        let state = self.state.read();
        let checkpoint = Arc::clone(&state.checkpoint);
        let hashes = state.tree.inclusion_proof(index, checkpoint.size)?;
        Ok(Proof { checkpoint, hashes })
    }

    /// Consistency proof between two committed sizes, and the latest checkpoint.
    ///
    /// # Errors
    /// `OutOfRange` unless `0 < old <= new <= size`.
    pub fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<(Vec<Hash>, Arc<StoredCheckpoint>), ProofError> {
        let state = self.state.read();
        if new > state.checkpoint.size {
            return Err(ProofError::OutOfRange);
        }
        let hashes = if old == new {
            Vec::new()
        } else {
            state.tree.consistency_proof(old, new)?
        };
        Ok((hashes, Arc::clone(&state.checkpoint)))
    }
}

async fn rebuild_tree<S: LogReader>(
    store: &S,
    checkpoint: &StoredCheckpoint,
) -> Result<Tree, StoreError> {
    if let Some(tree) = store.take_tree().filter(|t| t.size() == checkpoint.size) {
        return check_root(tree, checkpoint);
    }
    let mut leaves = Vec::with_capacity(usize::try_from(checkpoint.size).unwrap_or(0));
    let mut start = 0;
    while start < checkpoint.size {
        let end = (start + REBUILD_CHUNK).min(checkpoint.size);
        let chunk = store.leaf_hashes(start, end).await?;
        if chunk.len() as u64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "leaf hashes {start}..{end} are incomplete"
            )));
        }
        leaves.extend(chunk);
        start = end;
    }
    check_root(Tree::from_leaves(leaves), checkpoint)
}

fn check_root(tree: Tree, checkpoint: &StoredCheckpoint) -> Result<Tree, StoreError> {
    let root = tree.root(checkpoint.size).map_err(|_| {
        StoreError::Corrupt("rebuilt tree is smaller than the checkpoint".to_owned())
    })?;
    if root != checkpoint.root {
        return Err(StoreError::Corrupt(format!(
            "the tree rebuilt from stored tiles does not match the checkpoint at size {}",
            checkpoint.size
        )));
    }
    Ok(tree)
}
