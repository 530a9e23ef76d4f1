//! The read-only replica: serves the read half of the v1 API from a
//! `db.jsonl` snapshot, with no database and no private key.
//!
//! Start-up reads the file read-only in one pass that recomputes every leaf
//! hash and the tree, checks every checkpoint against it and against the
//! trusted key, verifies every SET (so each entry's `integratedTime` and
//! index) and re-derives every entry's index keys from its body, the
//! per-entry checks on every core; any mismatch refuses to start, naming the
//! line. Entries are then served from the file (read back and checked
//! against their leaf hash), so memory holds only the index; the earlier
//! mode that keeps them in memory is `replica.entries_in_memory`. With
//! `replica.state_dir` it also keeps a high-water mark, so that no restart
//! serves an older or forked snapshot than it served before. The served log is swapped
//! for a newer snapshot on SIGHUP or when the file changes, but only if the
//! new one verifies the same way AND is consistent with the one being served
//! (a consistency proof from the new tree checks out against the old root):
//! a replica never follows a log that rewrote history. A refused snapshot is
//! logged and the old one stays.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::dev::Server;
use actix_web::web;
use anyhow::{bail, Context};

use crate::api::ApiState;
use crate::config::Config;
use crate::log::Log;
use crate::merkle;
use crate::metrics::Metrics;
use crate::signing::{LogKeys, LogVerifier};
use crate::storage::file::{Entries, FileStore, INDEX_CACHE_FILE};
use crate::storage::jsonl::KeyPolicy;
use crate::storage::Store;

/// Which key snapshots must be signed with.
#[derive(Debug, Clone)]
pub enum TrustedKey {
    /// The configured public key.
    Configured(LogVerifier),
    /// Whatever key the first snapshot names (explicit opt-in); later
    /// snapshots must name the same one.
    Embedded,
}

/// Loads and verifies one snapshot into a read-only log that reads its
/// entries back from the file (see [`load_snapshot_with`]).
///
/// # Errors
/// The file's first problem, with its line; or a key that is not trusted.
pub async fn load_snapshot(
    path: &Path,
    key: &TrustedKey,
    entry_cache_bytes: u64,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Log<Store>>> {
    load_snapshot_with(path, key, Entries::OnDisk, entry_cache_bytes, metrics).await
}

/// Loads and verifies one snapshot into a read-only log.
///
/// One pass over the file checks, on every core, each entry's leaf hash,
/// its SET under the key (so its body, `integratedTime` and index), and its
/// index keys against the ones its body yields
/// ([`crate::entries::committed_index_keys`]: none removed, none added);
/// and in file order the tree and every checkpoint. With
/// [`Entries::OnDisk`] only the index stays in memory and entries are read
/// back from the file (each checked against its leaf hash again); with
/// [`Entries::InMemory`] bodies and SETs stay in memory as verified.
///
/// # Errors
/// The file's first problem, with its line; or a key that is not trusted.
pub async fn load_snapshot_with(
    path: &Path,
    key: &TrustedKey,
    entries: Entries,
    entry_cache_bytes: u64,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Log<Store>>> {
    load_snapshot_cached(path, key, entries, entry_cache_bytes, metrics, None).await
}

/// [`load_snapshot_with`], warm from the index cache `cache` (in
/// `replica.state_dir`) when it was written for exactly this file under
/// the configured key, and otherwise verified in full, after which the
/// cache is written for the next start, in the background. Only for
/// [`Entries::OnDisk`] and a configured key. See
/// [`crate::storage::file::INDEX_CACHE_FILE`]'s module for what a warm
/// start still checks.
///
/// # Errors
/// As [`load_snapshot_with`].
pub async fn load_snapshot_cached(
    path: &Path,
    key: &TrustedKey,
    entries: Entries,
    entry_cache_bytes: u64,
    metrics: Arc<Metrics>,
    cache: Option<&Path>,
) -> anyhow::Result<Arc<Log<Store>>> {
    let cache = match key {
        TrustedKey::Configured(v) if entries == Entries::OnDisk => {
            cache.map(|c| (c.to_owned(), v.public_key_der().to_vec()))
        }
        _ => None,
    };
    // A shard's entries sit at global indexes from its header's offset on.
    let index_offset = crate::storage::jsonl::read_header(path).map_or(0, |h| h.index_offset);
    let (owned_path, owned_key, owned_cache) = (path.to_owned(), key.clone(), cache.clone());
    let (store, verifier, start) = tokio::task::spawn_blocking(move || {
        if let (Some((cache, key_der)), TrustedKey::Configured(v)) = (&owned_cache, &owned_key) {
            match FileStore::open_snapshot_cached(&owned_path, cache, key_der)? {
                Ok(store) => {
                    tracing::info!(cache = %cache.display(), "warm start: the snapshot's bytes are the ones verified before");
                    return Ok((store, v.clone(), "warm"));
                }
                Err(why) => tracing::info!(cache = %cache.display(), why, "verifying the snapshot in full"),
            }
        }
        let verifier = match &owned_key {
            TrustedKey::Configured(v) => v.clone(),
            // The key the header names; the scan holds the file to it.
            TrustedKey::Embedded => match header_key(&owned_path) {
                Some(v) => v,
                // Let the scan say what is wrong with the header.
                None => {
                    FileStore::open_snapshot(&owned_path, KeyPolicy::Embedded, entries)?;
                    return Err(crate::storage::StoreError::Corrupt(
                        "line 1: the header names no usable key".to_owned(),
                    ));
                }
            },
        };
        let check = |record: &crate::storage::jsonl::EntryRecord| -> Result<(), String> {
            crate::verify::check_record(record, &verifier, index_offset).map(drop)
        };
        let store = FileStore::open_snapshot_checked(
            &owned_path,
            KeyPolicy::Trusted(&verifier),
            entries,
            Some(&check),
        )?;
        if let Some((cache, key_der)) = owned_cache {
            let writer = store.clone();
            std::thread::spawn(move || match writer.write_index_cache(&cache, &key_der) {
                Ok(()) => tracing::info!(cache = %cache.display(), "wrote the index cache for the next start"),
                Err(err) => tracing::warn!(cache = %cache.display(), error = %err, "couldn't write the index cache"),
            });
        }
        Ok((store, verifier, "cold"))
    })
    .await?
    .with_context(|| format!("couldn't load the snapshot {}", path.display()))?;
    metrics.replica_loads.with_label_values(&[start]).inc();
    let caches = replica_caches(entry_cache_bytes);
    // The offset the SETs were checked with must be the verified file's
    // (a warm start has it from the cache bound to the file's bytes).
    if start == "cold" && store.index_offset() != index_offset {
        bail!("{} changed while it was verified", path.display());
    }
    let index_offset = store.index_offset();
    let log = Log::open_read_only(Store::File(store), &verifier, caches, metrics, index_offset)
        .await
        .with_context(|| format!("couldn't open the snapshot {}", path.display()))?;
    Ok(log)
}

/// The key a snapshot's header names, if its first line is a header with
/// a key that parses.
fn header_key(path: &Path) -> Option<LogVerifier> {
    let header = crate::storage::jsonl::read_header(path)?;
    LogVerifier::from_spki_der(&header.public_key).ok()
}

/// Checks that `new` may replace `old`: same log, same key, not smaller, and
/// consistent (the new tree's consistency proof verifies against the old root).
///
/// # Errors
/// Why `new` is refused.
pub async fn check_successor(old: &Log<Store>, new: &Log<Store>) -> anyhow::Result<()> {
    let (a, b) = (old.info(), new.info());
    if a.tree_id != b.tree_id || a.log_id != b.log_id {
        bail!(
            "the new snapshot is another log (tree ID {}, log ID {}; serving tree ID {}, log ID {})",
            b.tree_id,
            b.log_id,
            a.tree_id,
            a.log_id
        );
    }
    let (old_head, new_head) = (old.checkpoint(), new.checkpoint());
    if new_head.size < old_head.size {
        bail!(
            "the new snapshot has {} entries, fewer than the {} being served",
            new_head.size,
            old_head.size
        );
    }
    let proof = if old_head.size == 0 || old_head.size == new_head.size {
        Vec::new()
    } else {
        new.consistency_proof(old_head.size, new_head.size)
            .await
            .map_err(|e| anyhow::anyhow!("couldn't compute a consistency proof: {e}"))?
            .0
    };
    merkle::verify_consistency(
        old_head.size,
        old_head.root,
        new_head.size,
        new_head.root,
        &proof,
    )
    .map_err(|_| {
        anyhow::anyhow!(
            "the new snapshot (size {}) is not consistent with the served one (size {}, root {}): \
             the log rewrote history",
            new_head.size,
            old_head.size,
            hex::encode(old_head.root.0)
        )
    })
}

/// Checks that `log` extends the tree `(size, root)` it was seen at before:
/// not smaller, and consistent with it. `what` names that earlier tree.
///
/// # Errors
/// Why `log` does not extend it: a rollback or a fork.
pub async fn check_extends(
    log: &Log<Store>,
    size: u64,
    root: merkle::Hash,
    what: &str,
) -> anyhow::Result<()> {
    let head = log.checkpoint();
    if head.size < size {
        bail!(
            "the snapshot has {} entries, fewer than the {size} of {what}: refusing a rollback",
            head.size
        );
    }
    let proof = if size == 0 || size == head.size {
        Vec::new()
    } else {
        log.consistency_proof(size, head.size)
            .await
            .map_err(|e| anyhow::anyhow!("couldn't compute a consistency proof: {e}"))?
            .0
    };
    merkle::verify_consistency(size, root, head.size, head.root, &proof).map_err(|_| {
        anyhow::anyhow!(
            "the snapshot (size {}) is not consistent with {what} (size {size}, root {}): \
             a fork, refused",
            head.size,
            hex::encode(root.0)
        )
    })
}

/// The high-water mark a replica keeps in `replica.state_dir`: the largest
/// tree it has served, so that after a restart it refuses a snapshot that is
/// older than, or forks from, what it served before. The file is small and
/// replaced atomically (write, fsync, rename).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HighWaterMark {
    /// The log's tree ID.
    pub tree_id: i64,
    /// The log ID (hex SHA-256 of the key).
    pub log_id: String,
    /// Tree size served.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
    /// The signed checkpoint served at that size.
    pub checkpoint: String,
}

/// The mark's file name inside `replica.state_dir`.
pub const HIGH_WATER_MARK_FILE: &str = "replica-high-water-mark.json";

impl HighWaterMark {
    /// The mark for what `log` serves.
    #[must_use]
    pub fn of(log: &Log<Store>) -> Self {
        let (info, head) = (log.info(), log.checkpoint());
        Self {
            tree_id: info.tree_id,
            log_id: info.log_id.clone(),
            size: head.size,
            root: hex::encode(head.root.0),
            checkpoint: head.note.clone(),
        }
    }

    /// Reads the mark in `dir`; `None` before the first snapshot was served.
    ///
    /// # Errors
    /// A mark that exists but cannot be read: refusing is safer than
    /// forgetting what was served.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = dir.join(HIGH_WATER_MARK_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("the high-water mark {} is damaged", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("couldn't read {}", path.display())),
        }
    }

    /// Writes the mark into `dir`, atomically.
    ///
    /// # Errors
    /// The directory is not writable.
    pub fn store(&self, dir: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        let path = dir.join(HIGH_WATER_MARK_FILE);
        let tmp = dir.join(format!("{HIGH_WATER_MARK_FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("couldn't write {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("couldn't replace {}", path.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Checks that `log` may be served after this mark: the same log, and
    /// extending the tree the mark records.
    ///
    /// # Errors
    /// Another log, a rollback or a fork.
    pub async fn check(&self, log: &Log<Store>) -> anyhow::Result<()> {
        let info = log.info();
        if info.tree_id != self.tree_id || info.log_id != self.log_id {
            bail!(
                "the snapshot is another log (tree ID {}, log ID {}) than the one this replica \
                 served before (tree ID {}, log ID {}; high-water mark in replica.state_dir)",
                info.tree_id,
                info.log_id,
                self.tree_id,
                self.log_id
            );
        }
        let root = hex::decode(&self.root)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .context("the high-water mark's root is not a hex SHA-256")?;
        check_extends(
            log,
            self.size,
            merkle::Hash(root),
            "the high-water mark this replica served before",
        )
        .await
    }
}

/// What a snapshot must extend besides the one being served: the
/// high-water mark in `state_dir`, and a pinned checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Floor {
    /// Where the high-water mark lives (`replica.state_dir`).
    pub state_dir: Option<PathBuf>,
    /// `replica.min_checkpoint`, verified under the trusted key: `(size, root)`.
    pub pinned: Option<(u64, merkle::Hash)>,
}

impl Floor {
    /// Checks `log` against the mark and the pin, and then raises the mark
    /// to it.
    ///
    /// # Errors
    /// A snapshot below either, or a mark that cannot be read or written.
    pub async fn admit(&self, log: &Log<Store>) -> anyhow::Result<()> {
        if let Some((size, root)) = self.pinned {
            check_extends(log, size, root, "replica.min_checkpoint").await?;
        }
        if let Some(dir) = &self.state_dir {
            if let Some(mark) = HighWaterMark::load(dir)? {
                mark.check(log).await?;
            }
            HighWaterMark::of(log).store(dir)?;
        }
        Ok(())
    }
}

/// The snapshot file's identity as seen by `stat`, to notice replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symlinks, as a Kubernetes ConfigMap mount needs.
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}

/// A replica bound to its port, serving one verified snapshot.
pub struct Replica {
    port: u16,
    metrics_port: u16,
    server: Server,
    metrics_server: Server,
    state: web::Data<ApiState>,
    reloader: Reloader,
}

/// Swaps in newer snapshots that pass [`check_successor`].
#[derive(Clone)]
pub struct Reloader {
    path: PathBuf,
    key: TrustedKey,
    entries: Entries,
    entry_cache_bytes: u64,
    state: web::Data<ApiState>,
    lock: Arc<tokio::sync::Mutex<Option<FileStamp>>>,
    metrics: Arc<Metrics>,
    floor: Floor,
}

impl Reloader {
    /// Loads the file now and serves it if it is a consistent successor.
    /// Returns the served tree size.
    ///
    /// # Errors
    /// Why the new snapshot was refused; the old one is still served.
    pub async fn reload(&self) -> anyhow::Result<u64> {
        let mut seen = self.lock.lock().await;
        *seen = stamp(&self.path);
        let cache = self
            .floor
            .state_dir
            .as_ref()
            .map(|d| d.join(INDEX_CACHE_FILE));
        let new = load_snapshot_cached(
            &self.path,
            &self.key,
            self.entries,
            self.entry_cache_bytes,
            Arc::clone(&self.metrics),
            cache.as_deref(),
        )
        .await?;
        let old = self.state.log();
        check_successor(&old, &new).await?;
        self.floor.admit(&new).await?;
        let size = new.checkpoint().size;
        self.state.replace_log(new);
        record_snapshot(&self.metrics, &self.path, size);
        Ok(size)
    }

    async fn reload_and_log(&self, why: &str) {
        let result = self.reload().await;
        let label = if result.is_ok() { "ok" } else { "rejected" };
        self.metrics
            .replica_reloads
            .with_label_values(&[label])
            .inc();
        match result {
            Ok(size) => tracing::info!(size, why, "serving the reloaded snapshot"),
            Err(err) => tracing::error!(
                error = format!("{err:#}"),
                why,
                "kept serving the old snapshot: the new one was refused"
            ),
        }
    }

    async fn changed(&self) -> bool {
        let seen = self.lock.lock().await;
        let now = stamp(&self.path);
        now.is_some() && now != *seen
    }

    /// Reloads on SIGHUP and whenever the file changes, polled every `every`.
    async fn watch(self, every: Option<Duration>) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::warn!(error = %err, "couldn't listen for SIGHUP");
                None
            }
        };
        let mut tick = every.map(tokio::time::interval);
        loop {
            tokio::select! {
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    self.reload_and_log("SIGHUP").await;
                }
                _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                    if self.changed().await {
                        self.reload_and_log("file changed").await;
                    }
                }
            }
        }
    }
}

/// Reads and verifies `replica.min_checkpoint` under the trusted key (with
/// `trust_embedded_key`, the key of the snapshot just loaded).
fn pinned_checkpoint(
    file: Option<&Path>,
    key: &TrustedKey,
    log: &Log<Store>,
) -> anyhow::Result<Option<(u64, merkle::Hash)>> {
    let Some(file) = file else { return Ok(None) };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("couldn't read replica.min_checkpoint {}", file.display()))?;
    let verifier = match key {
        TrustedKey::Configured(v) => v.clone(),
        TrustedKey::Embedded => LogVerifier::from_pem(&log.info().public_key_pem)?,
    };
    let checkpoint = verifier.verify_checkpoint(&text).with_context(|| {
        format!(
            "replica.min_checkpoint {} does not verify under the log's key",
            file.display()
        )
    })?;
    Ok(Some((checkpoint.size, checkpoint.root)))
}

/// Sets the snapshot gauges after a snapshot is served.
fn record_snapshot(metrics: &Metrics, path: &Path, size: u64) {
    metrics
        .replica_snapshot_entries
        .set(i64::try_from(size).unwrap_or(i64::MAX));
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    metrics
        .replica_snapshot_bytes
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
}

impl Replica {
    /// Loads and verifies the configured snapshot and binds the listener.
    ///
    /// # Errors
    /// No snapshot or key configured, a snapshot that fails verification
    /// (naming the line), or an address that cannot be bound.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let settings = &config.replica;
        let Some(path) = settings.db.clone() else {
            bail!("no snapshot to serve; hint: pass --db FILE or set replica.db");
        };
        let keys = match &settings.public_key {
            Some(file) => {
                let pem = std::fs::read_to_string(file)
                    .with_context(|| format!("couldn't read the public key {}", file.display()))?;
                Some(LogKeys::from_pem(&pem).with_context(|| format!("in {}", file.display()))?)
            }
            None => None,
        };
        let key = match (&keys, settings.trust_embedded_key) {
            (Some(keys), _) => key_for(keys, &path),
            (None, true) => {
                tracing::warn!("trusting the key embedded in the snapshot (--trust-embedded-key)");
                TrustedKey::Embedded
            }
            (None, false) => bail!(
                "no public key to verify the snapshot with; hint: pass --public-key FILE \
                 (the log's /api/v1/log/publicKey), or --trust-embedded-key to trust the file's own key"
            ),
        };
        let started = std::time::Instant::now();
        let first_stamp = stamp(&path);
        let metrics = Arc::new(Metrics::new());
        let entries = if settings.entries_in_memory {
            Entries::InMemory
        } else {
            Entries::OnDisk
        };
        let cache = settings
            .state_dir
            .as_ref()
            .map(|d| d.join(INDEX_CACHE_FILE));
        let log = load_snapshot_cached(
            &path,
            &key,
            entries,
            config.entry_cache_bytes,
            Arc::clone(&metrics),
            cache.as_deref(),
        )
        .await?;
        let frozen = load_frozen_shards(config, keys.as_ref(), &metrics).await?;
        let before: u64 = frozen.iter().map(|shard| shard.checkpoint().size).sum();
        if log.info().index_offset != before {
            bail!(
                "{} starts at global index {} (its logIndexOffset), but the frozen shards before \
                 it hold {before} entries; hint: give every earlier shard's snapshot with \
                 --frozen-shard (replica.frozen_shards), oldest first",
                path.display(),
                log.info().index_offset
            );
        }
        let floor = Floor {
            state_dir: settings.state_dir.clone(),
            pinned: pinned_checkpoint(settings.min_checkpoint.as_deref(), &key, &log)?,
        };
        floor
            .admit(&log)
            .await
            .with_context(|| format!("refusing to serve {}", path.display()))?;
        record_snapshot(&metrics, &path, log.checkpoint().size);
        tracing::info!(
            path = %path.display(),
            size = log.checkpoint().size,
            elapsed_ms = started.elapsed().as_millis(),
            "snapshot verified"
        );
        let listener = TcpListener::bind(config.listen_addr())
            .with_context(|| format!("couldn't listen on {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let tiles_dir = match &settings.v2_tiles {
            Some(dir) => Some(Arc::new(load_tiles_dir(config, dir).await?)),
            None => None,
        };
        let state = web::Data::new(
            crate::app::api_state(config, log, Vec::new())
                .with_frozen_shards(frozen)
                .with_tiles_dir(tiles_dir),
        );
        let server =
            crate::app::api_server(config, listener, state.clone(), crate::api::read_routes)?;
        let (metrics_server, metrics_port) = crate::app::metrics_server(config, state.clone())?;
        let reloader = Reloader {
            path,
            key,
            entries,
            entry_cache_bytes: config.entry_cache_bytes,
            state: state.clone(),
            lock: Arc::new(tokio::sync::Mutex::new(first_stamp)),
            metrics,
            floor,
        };
        let every = (settings.poll_interval_ms > 0)
            .then(|| Duration::from_millis(settings.poll_interval_ms));
        tokio::spawn(reloader.clone().watch(every));
        tracing::info!(port, "tlog replica serving (read-only)");
        Ok(Self {
            port,
            metrics_port,
            server,
            metrics_server,
            state,
            reloader,
        })
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server.
    #[must_use]
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The shared state: the served log.
    #[must_use]
    pub fn state(&self) -> &web::Data<ApiState> {
        &self.state
    }

    /// Reloads now, as SIGHUP does.
    #[must_use]
    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    /// Serves until stopped.
    ///
    /// # Errors
    /// I/O errors from the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        crate::app::serve_with_metrics(self.server, self.metrics_server).await
    }

    /// The bound metrics port.
    #[must_use]
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }
}

/// The configured key that signed the snapshot at `path` (the one its
/// header names), or else the first, under which the scan then refuses it.
fn key_for(keys: &LogKeys, path: &Path) -> TrustedKey {
    let named = crate::storage::jsonl::read_header(path).and_then(|header| {
        keys.keys()
            .iter()
            .find(|k| k.public_key_der() == header.public_key)
            .cloned()
    });
    TrustedKey::Configured(named.unwrap_or_else(|| keys.keys()[0].clone()))
}

/// Loads and verifies `replica.frozen_shards`, oldest first, each as a
/// snapshot is, under the configured key that signed it; each must start
/// where the ones before it end. They are not reloaded: a frozen shard
/// does not change, and a rotation on the primary means a new list and a
/// restart.
///
/// # Errors
/// A shard without a configured key, one that does not verify, or a gap
/// or overlap in the global indexes.
async fn load_frozen_shards(
    config: &Config,
    keys: Option<&LogKeys>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Vec<Arc<Log<Store>>>> {
    let paths = &config.replica.frozen_shards;
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let Some(keys) = keys else {
        bail!("replica.frozen_shards needs replica.public_key with every shard's key");
    };
    let mut frozen: Vec<Arc<Log<Store>>> = Vec::with_capacity(paths.len());
    let mut next = 0;
    for path in paths {
        let shard = load_snapshot_cached(
            path,
            &key_for(keys, path),
            Entries::OnDisk,
            config.entry_cache_bytes,
            Arc::clone(metrics),
            None,
        )
        .await?;
        let offset = shard.info().index_offset;
        if offset != next {
            bail!(
                "the frozen shard {} starts at global index {offset}, not {next} (where the \
                 shards before it end): give them oldest first, each once",
                path.display()
            );
        }
        if frozen
            .iter()
            .any(|s| s.info().tree_id == shard.info().tree_id)
        {
            bail!("the frozen shard {} is given twice", path.display());
        }
        next += shard.checkpoint().size;
        tracing::info!(path = %path.display(), offset, size = shard.checkpoint().size, "frozen shard verified");
        frozen.push(shard);
    }
    Ok(frozen)
}

/// The v2 high-water mark's file name inside `replica.state_dir`: the
/// last v2 checkpoint served, which every later directory must extend.
pub const V2_HIGH_WATER_MARK_FILE: &str = "replica-v2-checkpoint";

/// The digests of the v2 tiles last verified, beside the v2 high-water
/// mark ([`crate::storage::tiles_dir::encode_digests`]).
pub const V2_DIGESTS_FILE: &str = "replica-v2-tiles.sha256";

/// Verifies the v2 tiles directory `dir` as `tlog verify` does, under
/// `replica.v2_public_key`, and (with `replica.state_dir`) as extending
/// the v2 checkpoint served before, which it then replaces.
///
/// A restart on the directory it verified last (its checkpoint is the
/// high-water mark, and the digests kept beside the mark are bound to it)
/// checks only the checkpoint's signature: every file is still hashed and
/// compared when it is read, so a file changed while the replica was down
/// is refused when asked for, as one changed while it runs is. This keeps
/// the restart independent of the log's size (a full audit takes about
/// 50 s per million entries on two cores).
///
/// The directory is served as it was at this check: a file changed later
/// is refused when asked for. Unlike the snapshot it is not reloaded while
/// running; a newer export is a new directory and a restart (the chart
/// rolls its pods when the configuration changes).
///
/// # Errors
/// No key, a directory that does not verify, a rollback or fork of what
/// was served before, or a state directory that cannot be written.
async fn load_tiles_dir(
    config: &Config,
    dir: &Path,
) -> anyhow::Result<crate::storage::tiles_dir::TilesDir> {
    use crate::verify::{verify_source, TileSource};
    let settings = &config.replica;
    let Some(key_file) = &settings.v2_public_key else {
        bail!("replica.v2_tiles needs replica.v2_public_key, the v2 log's Ed25519 public key");
    };
    let pem = std::fs::read_to_string(key_file)
        .with_context(|| format!("couldn't read replica.v2_public_key {}", key_file.display()))?;
    let key = crate::signing::ed25519_public_key(&pem).with_context(|| {
        format!(
            "replica.v2_public_key {} is not a PEM Ed25519 public key",
            key_file.display()
        )
    })?;
    let state = settings.state_dir.as_deref();
    let mark = state.map(|d| d.join(V2_HIGH_WATER_MARK_FILE));
    let since = match &mark {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(note) => Some(note),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("couldn't read {}", path.display())),
        },
        None => None,
    };
    let started = std::time::Instant::now();
    if let (Some(state), Some(mark)) = (state, &since) {
        if let Some(tiles) = resume_tiles_dir(config, dir, state, mark, &key).await {
            tracing::info!(
                dir = %dir.display(),
                origin = tiles.origin(),
                elapsed_ms = started.elapsed().as_millis(),
                "v2 tiles resumed: the directory is the one verified last"
            );
            return Ok(tiles);
        }
    }
    let digests = Arc::default();
    let source = TileSource::Recorded(dir.to_owned(), Arc::clone(&digests));
    let report = verify_source(&source, &key, since.as_deref(), 16, None).await;
    if let Some(problem) = &report.problem {
        let at = problem
            .index
            .map_or_else(String::new, |i| format!(" (entry {i})"));
        bail!(
            "refusing to serve the v2 tiles in {}: {}{at}",
            dir.display(),
            problem.reason
        );
    }
    // The checkpoint as verified: read again, it must still say the same.
    let note = source
        .get("/checkpoint", 1 << 20)
        .await
        .map_err(anyhow::Error::msg)?;
    let note = String::from_utf8(note).context("the v2 checkpoint is not UTF-8")?;
    let origin = report.origin.clone().unwrap_or_default();
    let head = crate::note::c2sp::verify_log_checkpoint(&note, &origin, &key)
        .map_err(|e| anyhow::anyhow!("the v2 checkpoint changed while it was verified: {e}"))?;
    if Some(hex::encode(head.root.0)) != report.root || head.size != report.tree_size {
        bail!("the v2 checkpoint changed while it was verified");
    }
    let mut digests = std::mem::take(&mut *digests.lock());
    digests.remove("checkpoint");
    if let (Some(state), Some(mark)) = (state, &mark) {
        // The digests first: a mark without them only costs an audit.
        let kept = crate::storage::tiles_dir::encode_digests(&note, &digests);
        write_atomically(&state.join(V2_DIGESTS_FILE), &kept)?;
        write_atomically(mark, note.as_bytes())?;
    }
    tracing::info!(
        dir = %dir.display(),
        origin,
        size = head.size,
        elapsed_ms = started.elapsed().as_millis(),
        "v2 tiles verified"
    );
    Ok(crate::storage::tiles_dir::TilesDir::new(
        dir.to_owned(),
        origin,
        note,
        digests,
        config.tile_cache_bytes,
    ))
}

/// The directory `dir` as verified last, when its checkpoint is `mark`
/// (the v2 high-water mark), still signed by `key`, and the digests kept
/// in `state` are bound to it; `None` when it must be audited again.
async fn resume_tiles_dir(
    config: &Config,
    dir: &Path,
    state: &Path,
    mark: &str,
    key: &[u8; 32],
) -> Option<crate::storage::tiles_dir::TilesDir> {
    let source = crate::verify::TileSource::Dir(dir.to_owned());
    let note = source.get("/checkpoint", 1 << 20).await.ok()?;
    let note = String::from_utf8(note).ok()?;
    if note != mark {
        return None;
    }
    let origin = note.lines().next()?.to_owned();
    if let Err(err) = crate::note::c2sp::verify_log_checkpoint(&note, &origin, key) {
        tracing::warn!(error = %err, "the v2 checkpoint does not verify: auditing the directory");
        return None;
    }
    let kept = std::fs::read(state.join(V2_DIGESTS_FILE)).ok()?;
    let Some(digests) = crate::storage::tiles_dir::decode_digests(&kept, &note) else {
        tracing::warn!("{V2_DIGESTS_FILE} is not for this checkpoint: auditing the directory");
        return None;
    };
    Some(crate::storage::tiles_dir::TilesDir::new(
        dir.to_owned(),
        origin,
        note,
        digests,
        config.tile_cache_bytes,
    ))
}

/// Replaces `path` with `bytes` through a temporary file beside it.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("couldn't write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("couldn't replace {}", path.display()))?;
    Ok(())
}

/// The replica's cache budgets: its journal holds every leaf in memory
/// already, so level-0 tiles get only the default budget.
fn replica_caches(entry_cache_bytes: u64) -> crate::log::CacheBytes {
    crate::log::CacheBytes {
        entries: entry_cache_bytes,
        tiles: crate::config::DEFAULT_TILE_CACHE_BYTES,
    }
}
