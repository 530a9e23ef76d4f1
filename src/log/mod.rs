//! The write path and the in-memory view of the log.
//!
//! [`Log`] holds what reads need without a database round trip: the Merkle
//! tree (all stored hashes), the leaf-hash index, the latest signed checkpoint
//! and a bounded cache of entries. Submissions go into a bounded pool; one
//! [`Sequencer`] drains it in batches and commits each batch in a single
//! storage transaction before anyone is answered.

mod sequencer;

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use quick_cache::sync::Cache;
use tokio::sync::{mpsc, oneshot};

pub use sequencer::Sequencer;

use crate::config::{BatchConfig, PoolConfig};
use crate::entries::Entry;
use crate::merkle::{self, Hash, ProofError, Tree};
use crate::metrics::Metrics;
use crate::note::Checkpoint;
use crate::signing::LogVerifier;
use crate::signing::{LogSigner, SignError};
use crate::storage::{
    LeafIndex, LogIdentity, LogReader, LogWriter, StoreError, StoredCheckpoint, StoredEntry,
};

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
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The log is a read-only replica: it has no key and no sequencer.
    #[error("this log is read-only")]
    ReadOnly,
    /// Storage refused this entry's data (for example a search key with a
    /// control character); the rest of its batch was committed without it.
    #[error("the entry can't be stored: {0}")]
    Rejected(String),
}

/// What the sequencer is doing, as `/healthz`, `/readyz` and the
/// `tlog_sequencer_state` metric report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SequencerState {
    /// Committing batches (or waiting for submissions).
    Running = 0,
    /// Storage is failing; appends answer 503 until a commit settles.
    Degraded = 1,
    /// Another writer moved the log; the sequencer stopped, and only a
    /// restart can reconcile.
    Conflicted = 2,
    /// The sequencer task ended (shutdown, or it died).
    Stopped = 3,
}

impl SequencerState {
    /// Every state, in metric order.
    pub const ALL: [SequencerState; 4] = [
        SequencerState::Running,
        SequencerState::Degraded,
        SequencerState::Conflicted,
        SequencerState::Stopped,
    ];

    /// The metric label.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SequencerState::Running => "running",
            SequencerState::Degraded => "degraded",
            SequencerState::Conflicted => "conflicted",
            SequencerState::Stopped => "stopped",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => SequencerState::Running,
            1 => SequencerState::Degraded,
            2 => SequencerState::Conflicted,
            _ => SequencerState::Stopped,
        }
    }
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Storage failed or holds inconsistent data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log key could not sign the log's first or re-signed checkpoint.
    #[error(transparent)]
    Sign(#[from] SignError),
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
    leaves: LeafIndex,
}

pub(crate) struct Submission {
    leaf: Hash,
    entry: Entry,
    /// Bytes it counts against `pool.max_bytes` while it waits.
    bytes: usize,
    reply: oneshot::Sender<Result<u64, AppendError>>,
    /// The span of the request that submitted it; the batch span links to it.
    origin: opentelemetry::trace::SpanContext,
}

/// The log: in-memory read state plus, unless it is read-only, the signing
/// key and the handle to the sequencer's pool.
pub struct Log<S> {
    store: S,
    writer: Option<Writer>,
    info: LogInfo,
    state: RwLock<State>,
    cache: Cache<u64, Arc<StoredEntry>, EntryWeighter>,
    /// The store serves entries from memory: the cache stays empty.
    entries_in_memory: bool,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// A [`SequencerState`]: unless running, appends answer 503 at once
    /// instead of queueing.
    sequencer: AtomicU8,
    /// Unix seconds when the served checkpoint was published (or loaded).
    checkpoint_at: AtomicI64,
}

/// Where a log reports, and the clock it reads.
struct Observe {
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

/// What only a writable log has.
struct Writer {
    signer: LogSigner,
    pool: mpsc::Sender<Submission>,
    /// Canonical bytes of the submissions waiting in `pool`.
    pool_bytes: AtomicUsize,
    /// Most bytes that may wait in `pool` (one submission is always let in).
    max_pool_bytes: usize,
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
    /// Where the log reports what it does.
    pub metrics: Arc<Metrics>,
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
        let (tx, rx) = mpsc::channel(options.pool.capacity);
        let writer = Writer {
            signer,
            pool: tx,
            pool_bytes: AtomicUsize::new(0),
            max_pool_bytes: options.pool.max_bytes,
        };
        let observe = Observe {
            metrics: options.metrics,
            clock: Arc::clone(&options.clock),
        };
        let log = Arc::new(
            Self::load(
                store,
                Some(writer),
                info,
                checkpoint,
                options.entry_cache_bytes,
                observe,
            )
            .await?,
        );
        log.resign_if_origin_changed().await?;
        let sequencer = Sequencer::new(Arc::clone(&log), rx, options.batch, options.clock);
        Ok((log, sequencer))
    }

    /// Re-signs the current tree head when the configured host name changed,
    /// so that served checkpoints always carry the configured origin.
    async fn resign_if_origin_changed(&self) -> Result<(), OpenError> {
        let current = self.checkpoint();
        if self.carries_configured_origin(&current.note) {
            return Ok(());
        }
        let expected = self.sign(current.size, current.root)?;
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

    /// Whether a stored note has this log's origin and only its signer name.
    fn carries_configured_origin(&self, note: &str) -> bool {
        crate::note::SignedCheckpoint::parse(note).is_ok_and(|signed| {
            signed.checkpoint.origin == self.info.origin
                && signed
                    .signatures
                    .iter()
                    .all(|sig| sig.name == self.info.hostname)
        })
    }

    /// Signs a tree head with this log's origin and key.
    fn sign(&self, size: u64, root: Hash) -> Result<StoredCheckpoint, SignError> {
        let checkpoint = Checkpoint {
            origin: self.info.origin.clone(),
            size,
            root,
        };
        let note = self
            .signer()
            .sign_checkpoint(&checkpoint, &self.info.hostname)?;
        Ok(StoredCheckpoint { size, root, note })
    }

    /// The signing key; only writable logs have a sequencer that asks.
    fn signer(&self) -> &LogSigner {
        &self
            .writer
            .as_ref()
            .expect("only a writable log signs")
            .signer
    }
}

impl<S: LogReader> Log<S> {
    /// Opens a read-only log over `store`: no key, no sequencer. Rebuilds the
    /// tree and checks that the stored checkpoint matches it and verifies
    /// under `verifier`, the log's public key.
    ///
    /// # Errors
    /// Storage failures, corrupt state, a store made with another key, or a
    /// checkpoint that does not verify.
    pub async fn open_read_only(
        store: S,
        verifier: &LogVerifier,
        entry_cache_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, OpenError> {
        let corrupt = |why: String| OpenError::Store(StoreError::Corrupt(why));
        let identity = store
            .identity()
            .await?
            .ok_or_else(|| corrupt("the store holds no log".into()))?;
        if identity.public_key != verifier.public_key_der() {
            return Err(OpenError::WrongKey {
                configured: hex::encode(verifier.log_id()),
            });
        }
        let checkpoint = store
            .checkpoint()
            .await?
            .ok_or_else(|| corrupt("log has an identity but no checkpoint".into()))?;
        let signed = verifier
            .verify_checkpoint(&checkpoint.note)
            .map_err(|e| corrupt(format!("the checkpoint does not verify: {e}")))?;
        if signed.size != checkpoint.size || signed.root != checkpoint.root {
            return Err(corrupt("the signed checkpoint names another tree".into()));
        }
        let hostname = crate::storage::jsonl::hostname_of(&signed.origin, identity.tree_id)
            .map_err(corrupt)?;
        let info = LogInfo {
            tree_id: identity.tree_id,
            origin: signed.origin,
            hostname,
            log_id: hex::encode(verifier.log_id()),
            public_key_pem: verifier.public_key_pem(),
        };
        let observe = Observe {
            metrics,
            clock: Arc::new(SystemClock),
        };
        Ok(Arc::new(
            Self::load(store, None, info, checkpoint, entry_cache_bytes, observe).await?,
        ))
    }

    async fn load(
        store: S,
        writer: Option<Writer>,
        info: LogInfo,
        checkpoint: StoredCheckpoint,
        entry_cache_bytes: u64,
        observe: Observe,
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
            writer,
            info,
            state: RwLock::new(State {
                tree,
                checkpoint: Arc::new(checkpoint),
                leaves,
            }),
            cache: Cache::with_weighter(estimated_items, entry_cache_bytes, EntryWeighter),
            entries_in_memory,
            checkpoint_at: AtomicI64::new(observe.clock.now_unix()),
            metrics: observe.metrics,
            clock: observe.clock,
            sequencer: AtomicU8::new(SequencerState::Running as u8),
        })
    }

    /// Whether this log accepts appends.
    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

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
    /// `Duplicate` with the existing index, `Pushback` when the pool is full
    /// (in entries or bytes), `Unavailable` when the batch could not be
    /// committed or the sequencer is not running, `Rejected` when storage
    /// refused this entry's data, `ReadOnly` for a read-only log.
    pub async fn append(&self, entry: Entry) -> Result<u64, AppendError> {
        let Some(writer) = &self.writer else {
            return Err(AppendError::ReadOnly);
        };
        let leaf = merkle::leaf_hash(&entry.canonical);
        if let Some(index) = self.find_leaf(&leaf) {
            return Err(AppendError::Duplicate(index));
        }
        match self.sequencer_state() {
            SequencerState::Running => {}
            SequencerState::Degraded => {
                return Err(AppendError::Unavailable("storage is unavailable".into()));
            }
            SequencerState::Conflicted | SequencerState::Stopped => {
                return Err(AppendError::Unavailable(
                    "the sequencer is not running".into(),
                ));
            }
        }
        let bytes = entry.canonical.len();
        let waiting = writer.pool_bytes.fetch_add(bytes, Ordering::Relaxed);
        if waiting > 0 && waiting + bytes > writer.max_pool_bytes {
            writer.pool_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.metrics.pushbacks.inc();
            return Err(AppendError::Pushback);
        }
        let (reply, answer) = oneshot::channel();
        let origin = crate::telemetry::current_span_context();
        writer
            .pool
            .try_send(Submission {
                leaf,
                entry,
                bytes,
                reply,
                origin,
            })
            .map_err(|_| {
                writer.pool_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.metrics.pushbacks.inc();
                AppendError::Pushback
            })?;
        answer
            .await
            .unwrap_or_else(|_| Err(AppendError::Unavailable("sequencer stopped".into())))
    }

    /// Whether appends are being refused because storage is failing.
    pub fn is_degraded(&self) -> bool {
        self.sequencer_state() == SequencerState::Degraded
    }

    /// What the sequencer is doing. A read-only log, which has none, reports
    /// `Running`: nothing is wrong with it.
    pub fn sequencer_state(&self) -> SequencerState {
        SequencerState::from_u8(self.sequencer.load(Ordering::Relaxed))
    }

    /// Whether this log can take appends now: `/readyz` for a writable log.
    pub fn accepts_appends(&self) -> bool {
        self.sequencer_state() == SequencerState::Running
    }

    /// Whether the sequencer is gone for good, so only a restart brings
    /// appends back: `/healthz` fails then.
    pub fn sequencer_is_dead(&self) -> bool {
        matches!(
            self.sequencer_state(),
            SequencerState::Conflicted | SequencerState::Stopped
        )
    }

    /// The metrics this log reports to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sets the gauges that are read at scrape time.
    pub fn update_gauges(&self) {
        let depth = self
            .writer
            .as_ref()
            .map_or(0, |w| w.pool.max_capacity() - w.pool.capacity());
        self.metrics
            .pool_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        let size = self.checkpoint().size;
        self.metrics
            .tree_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        let age = self.clock.now_unix() - self.checkpoint_at.load(Ordering::Relaxed);
        self.metrics.checkpoint_age.set(age.max(0));
        if let Some(writer) = &self.writer {
            let bytes = writer.pool_bytes.load(Ordering::Relaxed);
            self.metrics
                .pool_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            let current = self.sequencer_state();
            self.metrics
                .sequencer_up
                .set(i64::from(!self.sequencer_is_dead()));
            for state in SequencerState::ALL {
                self.metrics
                    .sequencer_state
                    .with_label_values(&[state.name()])
                    .set(i64::from(state == current));
            }
        }
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

impl<S> Log<S> {
    /// Moves the sequencer to `to`, unless it is already stopped or
    /// conflicted, which are final.
    fn set_sequencer_state(&self, to: SequencerState) {
        let _ = self
            .sequencer
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                let final_state =
                    now == SequencerState::Conflicted as u8 || now == SequencerState::Stopped as u8;
                (!final_state).then_some(to as u8)
            });
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
            let note = signer.sign_checkpoint(&checkpoint, hostname)?;
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
