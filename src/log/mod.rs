//! The write path and the in-memory view of the log.
//!
//! [`Log`] holds what reads need without a database round trip: the Merkle
//! tree (all stored hashes), the leaf-hash index, the latest signed checkpoint
//! and a bounded cache of entries. Submissions go into a bounded pool; one
//! [`Sequencer`] drains it in batches and commits each batch in a single
//! storage transaction before anyone is answered.

mod sequencer;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use quick_cache::sync::Cache;
use tokio::sync::{mpsc, oneshot};

pub use sequencer::Sequencer;

use crate::config::{BatchConfig, PoolConfig};
use crate::entries::Entry;
use crate::merkle::{self, Hash, ProofError, Tree};
use crate::note::Checkpoint;
use crate::signing::LogSigner;
use crate::storage::{LogIdentity, LogWriter, StoreError, StoredCheckpoint, StoredEntry};

/// Leaves read from storage per query while rebuilding the tree.
const REBUILD_CHUNK: u64 = 1 << 16;

/// Wall-clock source for integration times; tests pass their own.
pub trait Clock: Send + Sync {
    /// Current Unix time in seconds.
    fn now_unix(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        i64::try_from(now.as_secs()).expect("seconds fit i64")
    }
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The same canonical body is already in the log at this index.
    #[error("an equivalent entry already exists at index {0}")]
    Duplicate(u64),
    /// The submission pool is full; the client should retry later.
    #[error("submission pool is full")]
    Pushback,
    /// Storage failed; nothing was acknowledged.
    #[error("couldn't commit the batch: {0}")]
    Unavailable(String),
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Storage failed or holds inconsistent data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured key is not the key this log was created with.
    #[error("the signing key does not match this log's key (log ID of the configured key: {configured}); hint: point key_file at the key the log was created with")]
    WrongKey {
        /// Log ID (hex) of the configured key.
        configured: String,
    },
}

/// Fixed facts about the log, derived once at start-up.
#[derive(Debug, Clone)]
pub struct LogInfo {
    /// Tree ID (rekor-v1.md C-01).
    pub tree_id: i64,
    /// Public host name: the checkpoint signer name.
    pub hostname: String,
    /// `<hostname> - <treeID>`.
    pub origin: String,
    /// Lowercase hex SHA-256 of the public key DER (C-04).
    pub log_id: String,
    /// PEM of the public key (E-02).
    pub public_key_pem: String,
}

/// An inclusion proof together with the checkpoint it proves against.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The signed tree head; `checkpoint.size` is the proof's tree size.
    pub checkpoint: Arc<StoredCheckpoint>,
    /// Audit path, leaf to root.
    pub hashes: Vec<Hash>,
}

struct State {
    tree: Tree,
    checkpoint: Arc<StoredCheckpoint>,
    leaves: HashMap<[u8; 32], u64>,
}

pub(crate) struct Submission {
    leaf: Hash,
    entry: Entry,
    reply: oneshot::Sender<Result<u64, AppendError>>,
    /// The span of the request that submitted it; the batch span links to it.
    origin: opentelemetry::trace::SpanContext,
}

/// The log: in-memory read state plus the handle to the sequencer's pool.
pub struct Log<S> {
    store: S,
    signer: LogSigner,
    info: LogInfo,
    state: RwLock<State>,
    cache: Cache<u64, Arc<StoredEntry>, EntryWeighter>,
    pool: mpsc::Sender<Submission>,
}

#[derive(Clone)]
struct EntryWeighter;

impl quick_cache::Weighter<u64, Arc<StoredEntry>> for EntryWeighter {
    fn weight(&self, _: &u64, entry: &Arc<StoredEntry>) -> u64 {
        (entry.body.len() + entry.set.len() + 64) as u64
    }
}

/// Settings for [`Log::open`].
pub struct Options {
    /// Public host name.
    pub hostname: String,
    /// Batching.
    pub batch: BatchConfig,
    /// Submission pool.
    pub pool: PoolConfig,
    /// Entry cache budget in bytes.
    pub entry_cache_bytes: u64,
    /// Integration-time source.
    pub clock: Arc<dyn Clock>,
}

impl<S: LogWriter + 'static> Log<S> {
    /// Opens the log in `store`, creating it on first use, and rebuilds the
    /// in-memory tree from storage, checking it against the stored checkpoint.
    /// Returns the log and the sequencer that must be run for appends to happen.
    ///
    /// # Errors
    /// Storage failures, corrupt state, or a key that is not the log's.
    pub async fn open(
        store: S,
        signer: LogSigner,
        options: Options,
    ) -> Result<(Arc<Self>, Sequencer<S>), OpenError> {
        let identity = load_or_init_identity(&store, &signer, &options.hostname).await?;
        let info = LogInfo::new(&identity, &signer, &options.hostname);
        let checkpoint = store
            .checkpoint()
            .await?
            .ok_or_else(|| StoreError::Corrupt("log has an identity but no checkpoint".into()))?;
        let tree = rebuild_tree(&store, &checkpoint).await?;
        let leaves = (0..tree.size())
            .map(|i| (tree.leaf(i).expect("leaf in range").0, i))
            .collect();
        let (tx, rx) = mpsc::channel(options.pool.capacity);
        let weight = options.entry_cache_bytes;
        let estimated_items = usize::try_from(weight / 1024).unwrap_or(usize::MAX).max(16);
        let log = Arc::new(Self {
            store,
            signer,
            info,
            state: RwLock::new(State {
                tree,
                checkpoint: Arc::new(checkpoint),
                leaves,
            }),
            cache: Cache::with_weighter(estimated_items, weight, EntryWeighter),
            pool: tx,
        });
        log.resign_if_origin_changed().await?;
        let sequencer = Sequencer::new(Arc::clone(&log), rx, options.batch, options.clock);
        Ok((log, sequencer))
    }

    /// Re-signs the current tree head when the configured host name changed,
    /// so that served checkpoints always carry the configured origin.
    async fn resign_if_origin_changed(&self) -> Result<(), StoreError> {
        let current = self.checkpoint();
        let expected = self.sign(current.size, current.root);
        if expected_origin_matches(&current.note, &expected.note) {
            return Ok(());
        }
        tracing::info!(
            size = current.size,
            "re-signing checkpoint for the configured host name"
        );
        self.store
            .commit(current.size, &crate::storage::Batch::default(), &expected)
            .await?;
        self.state.write().checkpoint = Arc::new(expected);
        Ok(())
    }

    /// Signs a tree head with this log's origin and key.
    fn sign(&self, size: u64, root: Hash) -> StoredCheckpoint {
        let checkpoint = Checkpoint {
            origin: self.info.origin.clone(),
            size,
            root,
        };
        let note = self
            .signer
            .sign_checkpoint(&checkpoint, &self.info.hostname);
        StoredCheckpoint { size, root, note }
    }
}

impl<S: LogWriter> Log<S> {
    /// Fixed facts about the log.
    pub fn info(&self) -> &LogInfo {
        &self.info
    }

    /// The storage backend.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Queues `entry` and waits until its batch is committed. Returns its index.
    ///
    /// # Errors
    /// `Duplicate` with the existing index, `Pushback` when the pool is full,
    /// `Unavailable` when the batch could not be committed.
    pub async fn append(&self, entry: Entry) -> Result<u64, AppendError> {
        let leaf = merkle::leaf_hash(&entry.canonical);
        if let Some(index) = self.find_leaf(&leaf) {
            return Err(AppendError::Duplicate(index));
        }
        let (reply, answer) = oneshot::channel();
        let origin = crate::telemetry::current_span_context();
        self.pool
            .try_send(Submission {
                leaf,
                entry,
                reply,
                origin,
            })
            .map_err(|_| AppendError::Pushback)?;
        answer
            .await
            .unwrap_or_else(|_| Err(AppendError::Unavailable("sequencer stopped".into())))
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

    /// The committed entry at `index`, from memory when cached.
    ///
    /// # Errors
    /// Storage failures on a cache miss.
    pub async fn entry(&self, index: u64) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        if index >= self.checkpoint().size {
            return Ok(None);
        }
        if let Some(entry) = self.cache.get(&index) {
            return Ok(Some(entry));
        }
        let Some(entry) = self.store.entry(index).await? else {
            return Err(StoreError::Corrupt(format!("entry {index} is missing")));
        };
        let entry = Arc::new(entry);
        self.cache.insert(index, Arc::clone(&entry));
        Ok(Some(entry))
    }
}

impl LogInfo {
    fn new(identity: &LogIdentity, signer: &LogSigner, hostname: &str) -> Self {
        Self {
            tree_id: identity.tree_id,
            hostname: hostname.to_owned(),
            origin: format!("{hostname} - {}", identity.tree_id),
            log_id: hex::encode(signer.log_id()),
            public_key_pem: signer.public_key_pem(),
        }
    }
}

/// Whether two signed notes share their body and signer name (signatures differ).
fn expected_origin_matches(current: &str, expected: &str) -> bool {
    let head = |note: &str| {
        let (body, sig) = note.split_once("\n\n").unwrap_or((note, ""));
        let name = sig.split(' ').nth(1).unwrap_or("").to_owned();
        (body.to_owned(), name)
    };
    head(current) == head(expected)
}

async fn load_or_init_identity<S: LogWriter>(
    store: &S,
    signer: &LogSigner,
    hostname: &str,
) -> Result<LogIdentity, OpenError> {
    let identity = match store.identity().await? {
        Some(identity) => identity,
        None => {
            let identity = LogIdentity {
                tree_id: random_tree_id(),
                public_key: signer.public_key_der().to_vec(),
            };
            let origin = format!("{hostname} - {}", identity.tree_id);
            let root = merkle::empty_root();
            let checkpoint = Checkpoint {
                origin,
                size: 0,
                root,
            };
            let note = signer.sign_checkpoint(&checkpoint, hostname);
            let first = StoredCheckpoint {
                size: 0,
                root,
                note,
            };
            match store.init(&identity, &first).await {
                Ok(()) => {
                    tracing::info!(tree_id = identity.tree_id, "created a new log");
                    identity
                }
                // Another process initialised it first: use theirs.
                Err(StoreError::Conflict(_)) => store
                    .identity()
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("log identity vanished".into()))?,
                Err(err) => return Err(err.into()),
            }
        }
    };
    if identity.public_key != signer.public_key_der() {
        return Err(OpenError::WrongKey {
            configured: hex::encode(signer.log_id()),
        });
    }
    Ok(identity)
}

/// A random positive, non-zero int63 (rekor-v1.md C-01).
fn random_tree_id() -> i64 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    loop {
        let mut bytes = [0u8; 8];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("system random source");
        let id = i64::from_be_bytes(bytes) & i64::MAX;
        if id != 0 {
            return id;
        }
    }
}

async fn rebuild_tree<S: LogWriter>(
    store: &S,
    checkpoint: &StoredCheckpoint,
) -> Result<Tree, StoreError> {
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
    let tree = Tree::from_leaves(leaves);
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
