//! The storage seam: what the log needs from durable state, with the contract
//! each implementation must keep. Readers and writers are separate traits, so a
//! read-only server holds a [`LogReader`] and cannot write.
//!
//! The log keeps only the upper levels of its Merkle tree in memory, loaded on
//! start from the level-1 tiles ([`LogReader::block_hashes`]); it reads
//! level-0 tiles and finds entries by leaf hash ([`LogReader::find_leaves`])
//! through storage, which is the source of truth and holds entries, signed
//! checkpoints, tiles and search-index keys.

use std::future::Future;

use crate::merkle::{Hash, Tree};
use crate::tiles::TileId;

pub mod file;
pub mod jsonl;
pub mod lease;
pub mod postgres;
pub mod shared;
pub mod tiles_dir;

pub use lease::{Held, Lease, StoreLease};
pub use shared::{Event, QueuedEntry, Refusal, Shared};

/// Errors sorted by what the caller must do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The expected checkpoint is no longer current: another writer moved the
    /// log, or a retry already committed. The caller reloads state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend could not be reached or failed transiently; retrying may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data contradicts itself or the request; do not retry.
    #[error("storage corrupt: {0}")]
    Corrupt(String),
    /// The writer's lease was taken over by another process: nothing was
    /// written, and this process must not write again until it holds the
    /// lease anew.
    #[error("the sequencer lease is held by another process")]
    Fenced,
    /// The store is a read-only snapshot; writes are refused.
    #[error("the store is a read-only snapshot")]
    ReadOnly,
    /// The batch holds data this store cannot keep (for example a search key
    /// with a NUL). Nothing was written, and the same data would fail again.
    /// `culprits` are the positions in the batch of the entries at fault, each
    /// with its reason, when the store can tell; empty when it cannot.
    #[error("rejected: {reason}")]
    Rejected {
        /// What the store refused.
        reason: String,
        /// `(position in the batch, why)` of each entry at fault, if known.
        culprits: Vec<(usize, String)>,
    },
}

/// Why a store refuses the search-index key `key`, if it does: the rule of
/// [`crate::entries::check_index_key`], which admission applies too, so that every
/// store keeps the same keys and a log moves between them unchanged.
#[must_use]
pub fn index_key_problem(key: &str) -> Option<String> {
    crate::entries::check_index_key(key).err()
}

/// Checks every index key of `entries` against [`index_key_problem`].
///
/// # Errors
/// `Rejected` naming each entry with a key no store keeps.
pub fn check_index_keys(entries: &[NewEntry]) -> Result<(), StoreError> {
    let culprits: Vec<(usize, String)> = entries
        .iter()
        .enumerate()
        .filter_map(|(position, new)| {
            new.index_keys
                .iter()
                .find_map(|key| index_key_problem(key))
                .map(|why| (position, why))
        })
        .collect();
    match culprits.first() {
        None => Ok(()),
        Some((_, why)) => Err(StoreError::Rejected {
            reason: format!("{} entries can't be stored: {why}", culprits.len()),
            culprits,
        }),
    }
}

/// How a search combines its keys (E-08 `operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// Entries that wrote any of the keys (`or`).
    Any,
    /// Entries that wrote every one of the keys (`and`).
    All,
}

/// The newest `limit` of several ascending index lists' union, ascending.
#[must_use]
pub fn newest_of_union<'a>(lists: impl IntoIterator<Item = &'a [u64]>, limit: usize) -> Vec<u64> {
    let mut all: Vec<u64> = lists
        .into_iter()
        .flat_map(|list| &list[list.len().saturating_sub(limit)..])
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    all.split_off(all.len().saturating_sub(limit))
}

/// Who the log is: fixed at initialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogIdentity {
    /// Random non-zero int63 tree ID (rekor-v1.md C-01).
    pub tree_id: i64,
    /// DER SubjectPublicKeyInfo of the signing key the log was created with.
    pub public_key: Vec<u8>,
}

/// A signed tree head as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
    /// The full signed note text (rekor-v1.md C-11).
    pub note: String,
}

/// One entry as stored, with the signature issued when it was integrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Leaf index.
    pub index: u64,
    /// The JCS-canonical body: the Merkle leaf data.
    pub body: Vec<u8>,
    /// Unix seconds at integration.
    pub integrated_time: i64,
    /// DER ECDSA Signed Entry Timestamp over the entry (C-09).
    pub set: Vec<u8>,
}

/// An entry being appended, with the search keys it writes.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The entry.
    pub entry: StoredEntry,
    /// Its leaf hash, `SHA256(0x00 || body)`.
    pub leaf_hash: Hash,
    /// Lowercased search-index keys.
    pub index_keys: Vec<String>,
}

/// Everything one sequencer batch writes.
#[derive(Debug, Default)]
pub struct Batch {
    /// New entries, with consecutive indexes starting at the old tree size.
    pub entries: Vec<NewEntry>,
    /// Tiles created or grown by the batch, with their bytes.
    pub tiles: Vec<(TileId, Vec<u8>)>,
}

/// Leaf hash → index of every entry: how the log finds an entry by UUID and
/// spots a duplicate.
pub type LeafIndex = std::collections::HashMap<[u8; 32], u64, foldhash::fast::RandomState>;

/// Read access to a log's durable state.
///
/// Every method is safe to call concurrently and sees only committed data.
/// "Not found" is `Ok(None)` (or an empty list), never an error.
pub trait LogReader: Send + Sync {
    /// The log's identity, or `None` for a store that was never initialised.
    fn identity(&self) -> impl Future<Output = Result<Option<LogIdentity>, StoreError>> + Send;
    /// The latest committed checkpoint.
    fn checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<StoredCheckpoint>, StoreError>> + Send;
    /// The entry at `index`.
    fn entry(
        &self,
        index: u64,
    ) -> impl Future<Output = Result<Option<StoredEntry>, StoreError>> + Send;
    /// Level-0 leaf hashes `[start, end)`, in index order, read from tiles.
    /// Returns fewer only if the log is smaller.
    fn leaf_hashes(
        &self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send;
    /// Indexes of the newest `limit` entries that wrote any (or, with
    /// [`KeyMatch::All`], every one) of `keys` to the search index, ascending.
    /// The work is bounded by `limit` for [`KeyMatch::Any`], and by the
    /// entries of the keys for [`KeyMatch::All`]; never by the log's size.
    fn search(
        &self,
        keys: &[String],
        matching: KeyMatch,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;
    /// Entries `[start, end)` in index order, each with its search keys sorted
    /// and deduplicated (what `tlog export` writes). Returns fewer only if the
    /// log is smaller.
    fn entry_page(
        &self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<(StoredEntry, Vec<String>)>, StoreError>> + Send;
    /// The level-8 hash of each complete level-0 tile `[start, end)` (each
    /// the root of 256 leaves): the hashes level-1 tiles hold, in order.
    /// Returns fewer only if the log has fewer complete level-0 tiles. The
    /// work is proportional to `end - start`, not to the leaves below.
    ///
    /// The default reads the leaves and hashes them; a store that keeps
    /// level-1 tiles reads those instead.
    fn block_hashes(
        &self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send {
        async move {
            let width = u64::from(crate::tiles::TILE_WIDTH);
            let leaves = self.leaf_hashes(start * width, end * width).await?;
            Ok(leaves
                .chunks_exact(usize::from(crate::tiles::TILE_WIDTH))
                .map(|block| {
                    let tree = Tree::from_leaves(block.iter().copied());
                    tree.root(width).expect("a whole block")
                })
                .collect())
        }
    }
    /// The index of the committed entry with each leaf hash in `leaves`
    /// (`None` for one not in the log), in the same order: how an entry is
    /// found by UUID and a duplicate refused. One round trip for the lot;
    /// at most a few thousand leaves per call.
    fn find_leaves(
        &self,
        leaves: &[Hash],
    ) -> impl Future<Output = Result<Vec<Option<u64>>, StoreError>> + Send;
    /// The tree at the latest checkpoint, if the store built it while opening
    /// (the file store does, to check the file); handed out once, so that the
    /// log need not rebuild it from [`Self::leaf_hashes`]. The caller still
    /// checks its root against the checkpoint.
    fn take_tree(&self) -> Option<Tree> {
        None
    }
    /// Whether [`Self::entry`] is served from memory already, so that a cache
    /// in front of it would only hold the same entries twice.
    fn entries_in_memory(&self) -> bool {
        false
    }
    /// The leaf index at the latest checkpoint, if the store built it while
    /// opening (the file store does, beside its scan); handed out once.
    fn take_leaf_index(&self) -> Option<LeafIndex> {
        None
    }
}

/// Write access. There is one writer per log.
pub trait LogWriter: LogReader {
    /// Initialises an empty log with `identity` and its size-0 checkpoint.
    /// Atomic. Returns `Conflict` if the store is already initialised.
    fn init(
        &self,
        identity: &LogIdentity,
        checkpoint: &StoredCheckpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends `batch` at `old_size` and replaces the checkpoint of size
    /// `old_size` with `new`, atomically and durably: when this returns `Ok`,
    /// all of it survives a crash; when it returns an error, either none of it
    /// was written or (for `Unavailable`, whose outcome is unknown) all of it
    /// was, which the caller settles by reading [`LogReader::checkpoint`].
    /// Returns `Conflict` if the current checkpoint's size is not `old_size`,
    /// and `Rejected` (nothing written) if an entry holds data the store cannot
    /// keep, such as an index key that [`index_key_problem`] refuses.
    /// An empty batch re-signs the tree head at the same size.
    fn commit(
        &self,
        old_size: u64,
        batch: &Batch,
        new: &StoredCheckpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Which store a configuration names, and how to reach it: the one place
/// that decides the backend.
pub enum Backend<'a> {
    /// Postgres at this URL, with this pool size.
    Postgres {
        /// The database URL.
        url: &'a str,
        /// Pool size.
        max_connections: u32,
    },
    /// The embedded journal in this directory.
    File(&'a std::path::Path),
}

impl<'a> Backend<'a> {
    /// The backend `config` names: Postgres when `database_url` is set, else
    /// the embedded journal in `data_dir`.
    #[must_use]
    pub fn of(config: &'a crate::config::Config) -> Self {
        use secrecy::ExposeSecret;
        match &config.database_url {
            Some(url) => Backend::Postgres {
                url: url.expose_secret(),
                max_connections: config.db_max_connections,
            },
            None => Backend::File(&config.data_dir),
        }
    }
}

/// Opens the store `config` names for serving, with the sequencer's lease on
/// it: the active v1 shard on Postgres (reached and migrated; the lease
/// lasts `lease_ttl_ms`), or
/// the embedded journal, whose file lock is its lease.
///
/// # Errors
/// An unreachable database or failed migration (`Unavailable`), a journal
/// another process holds (`Conflict`), or one that fails its checks.
pub async fn open(config: &crate::config::Config) -> Result<(Store, StoreLease), StoreError> {
    match Backend::of(config) {
        Backend::Postgres {
            url,
            max_connections,
        } => {
            let store = postgres::PgStore::open(url, max_connections).await?;
            // The active shard: log 1 until `tlog log rotate` freezes it.
            let store = store.for_log(store.active_v1().await?);
            let lease = store.lease(std::time::Duration::from_millis(config.lease_ttl_ms));
            Ok((Store::Postgres(store), StoreLease::Postgres(lease)))
        }
        Backend::File(dir) => {
            let dir = dir.to_owned();
            let store = tokio::task::spawn_blocking(move || file::FileStore::open(&dir))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening task failed: {e}")))??;
            Ok((Store::File(store), StoreLease::File(lease::FileLease)))
        }
    }
}

/// The directory of a log's journal other than log 1's, below `data_dir`:
/// `logs/<id>` (each log is a journal of its own, so the file format and
/// its checks stay those of one log).
#[must_use]
pub fn journal_dir(data_dir: &std::path::Path, log_id: i64) -> std::path::PathBuf {
    data_dir.join("logs").join(log_id.to_string())
}

/// Opens the Rekor v2 log of origin `origin` beside the v1 log `v1` (the
/// store [`open`] gave), with its own lease: the active v2 log row of that
/// origin on Postgres, registered on first use. The embedded journal keeps
/// no v2 log yet.
///
/// # Errors
/// As [`open`]; `Conflict` when an active v2 log of another origin exists
/// (changing the origin is a rotation, which this does not do);
/// `Unavailable` for the embedded journal.
pub async fn open_v2(
    config: &crate::config::Config,
    v1: &Store,
    origin: &str,
) -> Result<(Store, StoreLease), StoreError> {
    match v1 {
        Store::Postgres(pg) => {
            let logs = pg.logs().await?;
            let active = logs.iter().find(|log| {
                log.api_version == postgres::ApiVersion::V2
                    && log.state == postgres::LogState::Active
            });
            let store = match active {
                Some(log) if log.origin.as_deref() == Some(origin) => pg.for_log(log.id),
                Some(log) => {
                    return Err(StoreError::Conflict(format!(
                        "the active v2 log has origin {:?}, not {origin:?} (v2.origin); hint: \
                         after `tlog log rotate --v2`, set v2.origin and v2.key_file to the new \
                         log's; to start a new v2 log, run `tlog log rotate --v2` with them",
                        log.origin.as_deref().unwrap_or("")
                    )))
                }
                None => match pg
                    .register_log(postgres::ApiVersion::V2, Some(origin))
                    .await
                {
                    Ok(store) => store,
                    // Another process registered it first: take theirs.
                    Err(StoreError::Conflict(_)) => {
                        let logs = pg.logs().await?;
                        let log = logs
                            .iter()
                            .find(|log| log.origin.as_deref() == Some(origin))
                            .ok_or_else(|| StoreError::Corrupt("v2 log vanished".into()))?;
                        pg.for_log(log.id)
                    }
                    Err(err) => return Err(err),
                },
            };
            let lease = store.lease(std::time::Duration::from_millis(config.lease_ttl_ms));
            Ok((Store::Postgres(store), StoreLease::Postgres(lease)))
        }
        // The db.jsonl format and its checks (header, checkpoint origin
        // `<host> - <treeID>`, the P-256 key that verifies it) are a v1 log's:
        // a v2 journal (in `journal_dir`) needs them per API version first.
        Store::File(_) => Err(StoreError::Unavailable(
            "the Rekor v2 log needs Postgres (database_url): the embedded journal \
             holds v1 logs only"
                .into(),
        )),
    }
}

/// Opens the store `config` names for reading only, beside a running
/// server: Postgres, or a snapshot of the journal as it is now.
///
/// # Errors
/// As [`open`].
pub async fn open_reader(config: &crate::config::Config) -> Result<Store, StoreError> {
    match Backend::of(config) {
        Backend::Postgres {
            url,
            max_connections,
        } => Ok(Store::Postgres(
            postgres::PgStore::open(url, max_connections).await?,
        )),
        Backend::File(dir) => {
            let path = dir.join(file::JOURNAL_FILE);
            let store = tokio::task::spawn_blocking(move || {
                file::FileStore::open_snapshot(
                    &path,
                    jsonl::KeyPolicy::Unchecked,
                    file::Entries::OnDisk,
                )
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening task failed: {e}")))??;
            Ok(Store::File(store))
        }
    }
}

/// The concrete store wired at the edge, so handlers need no generics.
#[derive(Debug, Clone)]
pub enum Store {
    /// Postgres (production).
    Postgres(postgres::PgStore),
    /// A `db.jsonl` journal (the embedded default), or a read-only snapshot.
    File(file::FileStore),
}

impl Store {
    /// Database pool connections as (idle, in use), for stores that have a pool.
    #[must_use]
    pub fn connection_stats(&self) -> Option<(u32, u32)> {
        match self {
            Store::Postgres(s) => Some(s.connection_stats()),
            Store::File(_) => None,
        }
    }
}

impl LogReader for Store {
    async fn identity(&self) -> Result<Option<LogIdentity>, StoreError> {
        match self {
            Store::Postgres(s) => s.identity().await,
            Store::File(s) => s.identity().await,
        }
    }
    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        match self {
            Store::Postgres(s) => s.checkpoint().await,
            Store::File(s) => s.checkpoint().await,
        }
    }
    async fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        match self {
            Store::Postgres(s) => s.entry(index).await,
            Store::File(s) => s.entry(index).await,
        }
    }
    async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        match self {
            Store::Postgres(s) => s.leaf_hashes(start, end).await,
            Store::File(s) => s.leaf_hashes(start, end).await,
        }
    }
    async fn search(
        &self,
        keys: &[String],
        matching: KeyMatch,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        match self {
            Store::Postgres(s) => s.search(keys, matching, limit).await,
            Store::File(s) => s.search(keys, matching, limit).await,
        }
    }
    async fn entry_page(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(StoredEntry, Vec<String>)>, StoreError> {
        match self {
            Store::Postgres(s) => s.entry_page(start, end).await,
            Store::File(s) => s.entry_page(start, end).await,
        }
    }
    async fn block_hashes(&self, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        match self {
            Store::Postgres(s) => s.block_hashes(start, end).await,
            Store::File(s) => s.block_hashes(start, end).await,
        }
    }
    async fn find_leaves(&self, leaves: &[Hash]) -> Result<Vec<Option<u64>>, StoreError> {
        match self {
            Store::Postgres(s) => s.find_leaves(leaves).await,
            Store::File(s) => s.find_leaves(leaves).await,
        }
    }
    fn take_tree(&self) -> Option<Tree> {
        match self {
            Store::Postgres(s) => s.take_tree(),
            Store::File(s) => s.take_tree(),
        }
    }
    fn entries_in_memory(&self) -> bool {
        match self {
            Store::Postgres(s) => s.entries_in_memory(),
            Store::File(s) => s.entries_in_memory(),
        }
    }
    fn take_leaf_index(&self) -> Option<LeafIndex> {
        match self {
            Store::Postgres(s) => s.take_leaf_index(),
            Store::File(s) => s.take_leaf_index(),
        }
    }
}

impl Shared for Store {
    fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }
    async fn enqueue(&self, entry: &QueuedEntry) -> Result<i64, StoreError> {
        match self {
            Store::Postgres(s) => s.enqueue(entry).await,
            Store::File(_) => Err(StoreError::Unavailable(
                "the embedded journal has one process: nothing to hand over".into(),
            )),
        }
    }
    async fn claim(&self, limit: usize) -> Result<Vec<(i64, QueuedEntry)>, StoreError> {
        match self {
            Store::Postgres(s) => s.claim(limit).await,
            Store::File(_) => Ok(Vec::new()),
        }
    }
    async fn refuse(&self, id: i64, refusal: &Refusal) -> Result<(), StoreError> {
        match self {
            Store::Postgres(s) => s.refuse(id, refusal).await,
            Store::File(_) => Ok(()),
        }
    }
    async fn next_event(&self, timeout: std::time::Duration) -> Result<Option<Event>, StoreError> {
        match self {
            Store::Postgres(s) => s.next_event(timeout).await,
            Store::File(_) => {
                tokio::time::sleep(timeout).await;
                Ok(None)
            }
        }
    }
}

impl LogWriter for Store {
    async fn init(
        &self,
        identity: &LogIdentity,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        match self {
            Store::Postgres(s) => s.init(identity, checkpoint).await,
            Store::File(s) => s.init(identity, checkpoint).await,
        }
    }
    async fn commit(
        &self,
        old_size: u64,
        batch: &Batch,
        new: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        match self {
            Store::Postgres(s) => s.commit(old_size, batch, new).await,
            Store::File(s) => s.commit(old_size, batch, new).await,
        }
    }
}
