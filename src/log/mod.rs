//! The log: a read [`View`] and, on a process that may write, an appender.
//!
//! The [`View`] holds what reads need (the upper levels of the tree, the
//! checkpoint, bounded caches of level-0 tiles, entries and leaf look-ups,
//! proofs), in memory that does not grow with the log on Postgres, and
//! changes only by applying committed batches. The appender ([`appender`]) holds what writes need: the
//! signing key and a bounded submission pool that one [`Sequencer`] drains in
//! batches, committing each batch in a single storage transaction before
//! anyone is answered. A read-only log (the replica) has a view and no
//! appender.

mod appender;
mod leadership;
mod sequencer;
mod tiled;
mod view;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

pub use leadership::FOLLOW_POLL;
pub use sequencer::Sequencer;
pub use view::{CacheBytes, Committed, Proof, ReadError, Served, View};

use appender::Appender;

use crate::config::{BatchConfig, PoolConfig};
use crate::entries::Entry;
use crate::merkle::{self, Hash};
use crate::metrics::Metrics;
use crate::note::Checkpoint;
use crate::signing::LogVerifier;
use crate::signing::{LogSigner, SignError};
use crate::storage::{
    Held, LogIdentity, LogReader, LogWriter, Shared, StoreError, StoredCheckpoint, StoredEntry,
};

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
    /// The global `logIndex` of this shard's first entry: the sizes of the
    /// v1 shards frozen before it, summed (Rekor's virtual index; 0 for an
    /// unsharded log and for v2). Entries are stored by their index in the
    /// shard's own tree; SETs and `logIndex` carry this plus that index.
    pub index_offset: u64,
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

/// The log: its read view plus, unless it is read-only, the appender.
pub struct Log<S> {
    view: View<S>,
    appender: Option<Appender>,
    info: LogInfo,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// A [`SequencerState`]: unless running, appends answer 503 at once
    /// instead of queueing.
    sequencer: AtomicU8,
    /// Whether this process holds the sequencer's lease and sequences; when
    /// not, creates are handed to the leader.
    leader: AtomicBool,
    /// Creates handed to the leader, waiting for their outcome.
    handover: parking_lot::Mutex<leadership::Handover>,
}

/// Where a log reports, and the clock it reads.
struct Observe {
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
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
    /// Level-0 tile and leaf-lookup cache budget in bytes.
    pub tile_cache_bytes: u64,
    /// Integration-time source.
    pub clock: Arc<dyn Clock>,
    /// Where the log reports what it does.
    pub metrics: Arc<Metrics>,
    /// The sequencer's lease: the sequencer signs and commits only while it
    /// is held.
    pub lease: Arc<dyn Held>,
    /// [`LogInfo::index_offset`]: the v1 shards before this one, summed.
    pub index_offset: u64,
}

impl<S: LogWriter + Shared + 'static> Log<S> {
    /// Opens the log in `store`, creating it on first use, and loads the upper
    /// levels of the tree from storage, checking them against the stored
    /// checkpoint.
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
        let info = LogInfo::new(&identity, &signer, &options.hostname, options.index_offset);
        let checkpoint = store
            .checkpoint()
            .await?
            .ok_or_else(|| StoreError::Corrupt("log has an identity but no checkpoint".into()))?;
        let (appender, rx) = Appender::new(signer, options.pool, options.lease);
        let observe = Observe {
            metrics: options.metrics,
            clock: Arc::clone(&options.clock),
        };
        let log = Arc::new(
            Self::load(
                store,
                Some(appender),
                info,
                checkpoint,
                CacheBytes {
                    entries: options.entry_cache_bytes,
                    tiles: options.tile_cache_bytes,
                },
                observe,
            )
            .await?,
        );
        // Only the lease's holder signs; another process follows from the start.
        if log.holds_lease() {
            log.leader.store(true, Ordering::SeqCst);
            log.resign_if_origin_changed().await?;
        }
        log.metrics
            .sequencer_leader
            .set(i64::from(log.leader.load(Ordering::SeqCst)));
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
        if self.info.origin == self.info.hostname {
            // A v2 log's origin is its identity (its key ID hashes it):
            // another origin is another log, never a re-signed one.
            return Err(OpenError::Store(StoreError::Conflict(format!(
                "the v2 log's checkpoint is not signed for origin {:?}; hint: v2.origin \
                 must stay the origin the log was created with",
                self.info.origin
            ))));
        }
        let expected = self.sign(current.size, current.root)?;
        tracing::info!(
            size = current.size,
            "re-signing checkpoint for the configured host name"
        );
        self.store()
            .commit(current.size, &crate::storage::Batch::default(), &expected)
            .await?;
        self.view.replace_checkpoint(expected);
        Ok(())
    }

    /// Whether a stored note has this log's origin and only its signer name.
    fn carries_configured_origin(&self, note: &str) -> bool {
        if self.info.origin == self.info.hostname {
            // A v2 log: C2SP text, one line by the key of this origin.
            return crate::note::c2sp::SignedNote::parse(note).is_ok_and(|signed| {
                std::str::from_utf8(signed.text())
                    .ok()
                    .and_then(|text| crate::note::c2sp::CheckpointText::parse(text).ok())
                    .is_some_and(|cp| cp.origin == self.info.origin)
            });
        }
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
        self.appender
            .as_ref()
            .expect("only a writable log signs")
            .signer()
    }

    /// Queues `entry` and waits until its batch is committed. Returns its index.
    ///
    /// # Errors
    /// `Duplicate` with the existing index, `Pushback` when the pool is full
    /// (in entries or bytes), `Unavailable` when the batch could not be
    /// committed or the sequencer is not running, `Rejected` when storage
    /// refused this entry's data, `ReadOnly` for a read-only log. On a
    /// process that does not hold the sequencer's lease, the entry is handed
    /// to the one that does, with the same answers.
    pub async fn append(&self, entry: Entry) -> Result<u64, AppendError> {
        let Some(appender) = &self.appender else {
            return Err(AppendError::ReadOnly);
        };
        let leaf = merkle::leaf_hash(&entry.canonical);
        // The sequencer checks every batch for duplicates in one query, so a
        // create that is queued needs no look-up of its own (on Postgres that
        // was one round trip per create). Only an append refused before it
        // reaches a batch looks its leaf up, so that a duplicate still gets
        // 409 rather than 503 from a full pool or a stalled sequencer.
        let refused = match self.sequencer_state() {
            SequencerState::Running => {
                let outcome = if self.is_leader() {
                    appender.submit(leaf, entry, &self.metrics).await
                } else {
                    self.hand_over(leaf, entry).await
                };
                match outcome {
                    Err(AppendError::Pushback) => AppendError::Pushback,
                    other => return other,
                }
            }
            SequencerState::Degraded => AppendError::Unavailable("storage is unavailable".into()),
            SequencerState::Conflicted | SequencerState::Stopped => {
                AppendError::Unavailable("the sequencer is not running".into())
            }
        };
        match self.find_leaf(&leaf).await {
            Ok(Some(index)) => Err(AppendError::Duplicate(index)),
            Ok(None) => Err(refused),
            Err(err) => {
                tracing::warn!(error = %err, "couldn't look the entry up");
                Err(refused)
            }
        }
    }

    /// Whether this process holds the sequencer's lease now (a read-only
    /// log holds none).
    fn holds_lease(&self) -> bool {
        self.appender.as_ref().is_some_and(Appender::holds_lease)
    }

    /// Whether this process holds the sequencer's lease, waiting up to
    /// `sequencer::LEASE_PATIENCE` for a renewal that a slow database holds
    /// up. False at once on a process that follows.
    async fn wait_for_lease(&self) -> bool {
        let deadline = tokio::time::Instant::now() + sequencer::LEASE_PATIENCE;
        while !self.holds_lease() {
            if !self.is_leader() || tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }
}

impl<S: LogReader> Log<S> {
    /// Opens a read-only log over `store`: no key, no sequencer. Loads the
    /// upper levels of the tree and checks that the stored checkpoint matches it and verifies
    /// under `verifier`, the log's public key.
    ///
    /// # Errors
    /// Storage failures, corrupt state, a store made with another key, or a
    /// checkpoint that does not verify.
    pub async fn open_read_only(
        store: S,
        verifier: &LogVerifier,
        caches: CacheBytes,
        metrics: Arc<Metrics>,
        index_offset: u64,
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
            index_offset,
        };
        Self::load_read_only(store, info, checkpoint, caches, metrics).await
    }

    /// Opens a frozen Rekor v2 log of origin `origin` for reading only: its
    /// key comes from its identity and its checkpoint must carry that key's
    /// line for `origin` ([`crate::note::c2sp::verify_log_checkpoint`]).
    ///
    /// # Errors
    /// Storage failures, corrupt state, a key that is not Ed25519, or a
    /// checkpoint that does not verify.
    pub async fn open_read_only_v2(
        store: S,
        origin: &str,
        caches: CacheBytes,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, OpenError> {
        use crate::note::c2sp;
        let corrupt = |why: String| OpenError::Store(StoreError::Corrupt(why));
        let identity = store
            .identity()
            .await?
            .ok_or_else(|| corrupt("the store holds no log".into()))?;
        let raw = c2sp::ed25519_raw(&identity.public_key)
            .ok_or_else(|| corrupt("a v2 log's key is not Ed25519".into()))?;
        let checkpoint = store
            .checkpoint()
            .await?
            .ok_or_else(|| corrupt("log has an identity but no checkpoint".into()))?;
        let signed = c2sp::verify_log_checkpoint(&checkpoint.note, origin, &raw)
            .map_err(|e| corrupt(format!("the checkpoint does not verify: {e}")))?;
        if signed.size != checkpoint.size || signed.root != checkpoint.root {
            return Err(corrupt("the signed checkpoint names another tree".into()));
        }
        let info = LogInfo {
            tree_id: identity.tree_id,
            origin: origin.to_owned(),
            hostname: origin.to_owned(),
            log_id: hex::encode(c2sp::log_key_hash(origin, &raw)),
            public_key_pem: crate::signing::public_key_pem(&identity.public_key),
            index_offset: 0,
        };
        Self::load_read_only(store, info, checkpoint, caches, metrics).await
    }

    /// The shared end of the read-only opens: a view with no appender.
    async fn load_read_only(
        store: S,
        info: LogInfo,
        checkpoint: StoredCheckpoint,
        caches: CacheBytes,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, OpenError> {
        let observe = Observe {
            metrics,
            clock: Arc::new(SystemClock),
        };
        Ok(Arc::new(
            Self::load(store, None, info, checkpoint, caches, observe).await?,
        ))
    }

    async fn load(
        store: S,
        appender: Option<Appender>,
        info: LogInfo,
        checkpoint: StoredCheckpoint,
        caches: CacheBytes,
        observe: Observe,
    ) -> Result<Self, StoreError> {
        let now = observe.clock.now_unix();
        let view = View::load(store, checkpoint, caches, now).await?;
        Ok(Self {
            view,
            appender,
            info,
            metrics: observe.metrics,
            clock: observe.clock,
            sequencer: AtomicU8::new(SequencerState::Running as u8),
            leader: AtomicBool::new(false),
            handover: parking_lot::Mutex::default(),
        })
    }

    /// Whether this log accepts appends.
    pub fn is_read_only(&self) -> bool {
        self.appender.is_none()
    }

    /// The read view.
    pub fn view(&self) -> &View<S> {
        &self.view
    }

    /// Fixed facts about the log.
    pub fn info(&self) -> &LogInfo {
        &self.info
    }

    /// The storage backend.
    pub fn store(&self) -> &S {
        self.view.store()
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
        let depth = self.appender.as_ref().map_or(0, Appender::depth);
        self.metrics
            .pool_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        let size = self.checkpoint().size;
        self.metrics
            .tree_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        let age = self.clock.now_unix() - self.view.checkpoint_at();
        self.metrics.checkpoint_age.set(age.max(0));
        if let Some(appender) = &self.appender {
            let bytes = appender.bytes();
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
        self.view.checkpoint()
    }

    /// Index of the entry with leaf hash `leaf`, if it is in the log.
    ///
    /// # Errors
    /// Storage failures when the leaf is not in memory.
    pub async fn find_leaf(&self, leaf: &Hash) -> Result<Option<u64>, StoreError> {
        self.view.find_leaf(leaf).await
    }

    /// Leaf hash at `index`, if committed.
    ///
    /// # Errors
    /// Storage failures reading its level-0 tile.
    pub async fn leaf_hash(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        self.view.leaf_hash(index).await
    }

    /// Inclusion proof of `index` against the latest checkpoint.
    ///
    /// # Errors
    /// `OutOfRange` if `index` is not in the committed tree; storage failures.
    pub async fn inclusion_proof(&self, index: u64) -> Result<Proof, ReadError> {
        self.view.inclusion_proof(index).await
    }

    /// Inclusion proof of `index` in the committed tree of `size`.
    ///
    /// # Errors
    /// `OutOfRange` unless `index < size <= size`; storage failures.
    pub async fn inclusion_proof_at(&self, index: u64, size: u64) -> Result<Vec<Hash>, ReadError> {
        self.view.inclusion_proof_at(index, size).await
    }

    /// Consistency proof between two committed sizes, and the latest checkpoint.
    ///
    /// # Errors
    /// `OutOfRange` unless `0 < old <= new <= size`; storage failures.
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<(Vec<Hash>, Arc<StoredCheckpoint>), ReadError> {
        self.view.consistency_proof(old, new).await
    }

    /// The committed entry at `index`, from memory when cached.
    ///
    /// # Errors
    /// Storage failures on a cache miss.
    pub async fn entry(&self, index: u64) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        self.view.entry(index).await
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
    fn new(identity: &LogIdentity, signer: &LogSigner, hostname: &str, index_offset: u64) -> Self {
        // A v2 log's key names its origin, which is also its signer name.
        let (hostname, origin) = match signer.origin() {
            Some(origin) => (origin.to_owned(), origin.to_owned()),
            None => (
                hostname.to_owned(),
                format!("{hostname} - {}", identity.tree_id),
            ),
        };
        Self {
            tree_id: identity.tree_id,
            hostname,
            origin,
            log_id: hex::encode(signer.log_id()),
            public_key_pem: signer.public_key_pem(),
            index_offset,
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
            let origin = signer.origin().map_or_else(
                || format!("{hostname} - {}", identity.tree_id),
                str::to_owned,
            );
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
#[must_use]
pub fn random_tree_id() -> i64 {
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
