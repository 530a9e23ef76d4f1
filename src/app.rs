//! Wiring: builds every part from a validated [`Config`] and runs the server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, HttpServer};
use anyhow::{bail, Context};
use secrecy::ExposeSecret;

use crate::api::validation::ValidationPool;
use crate::api::{app_with_api, ApiState};
use crate::config::{Config, SignerKind, WritePolicyConfig};
use crate::log::{Log, Options, SystemClock};
use crate::metrics::Metrics;
use crate::policy::{BearerTokens, Identity, SanPattern, WritePolicy};
use crate::signing::{LogSigner, Pkcs11Settings};
use crate::storage::postgres::PgStore;
use crate::storage::{Lease, Store, StoreLease};

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    metrics_port: u16,
    server: Server,
    metrics_server: Server,
    log: Arc<Log<Store>>,
    validation: Arc<ValidationPool>,
    stop: tokio::sync::watch::Sender<bool>,
    sequencer: tokio::task::JoinHandle<()>,
    lease: Arc<StoreLease>,
    v2: Option<V2Log>,
    /// Set when `tlog log rotate` froze the shard this process serves.
    rotated: Arc<AtomicBool>,
}

/// The Rekor v2 log beside the v1 one, with its own sequencer and lease.
struct V2Log {
    log: Arc<Log<Store>>,
    sequencer: tokio::task::JoinHandle<()>,
    lease: Arc<StoreLease>,
}

impl Application {
    /// Loads the key, opens the store (Postgres when `database_url` is set,
    /// else the embedded journal in `data_dir`), opens the log, starts the
    /// sequencer and binds the listener.
    ///
    /// # Errors
    /// A missing or wrong key, an unreachable database, a log that fails its
    /// consistency check, or an address that cannot be bound; each with a hint.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        if config.signer.kind == SignerKind::File
            && config.database_url.is_none()
            && !config.key_file.exists()
        {
            // The embedded default is the one-command start: a first run makes
            // its own key. With Postgres (production) the key is always given.
            keygen(&config.key_file)?;
            tracing::warn!(
                key_file = %config.key_file.display(),
                "created a new log signing key; keep it safe, it is the log's identity"
            );
        }
        let signer = open_signer(config)?;
        let (write_policy, bearer_tokens) = load_write_access(&config.write_policy)?;
        let (store, lease) = open_store(config).await?;
        let frozen = open_frozen_shards(config, &store).await?;
        // The active shard's first global index: every frozen shard's size.
        let index_offset = frozen.iter().map(|shard| shard.checkpoint().size).sum();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (log, sequencer) = start_log(
            config,
            store,
            signer,
            LogSetup {
                hostname: &config.hostname,
                metrics: Metrics::new(),
                index_offset,
            },
            &lease,
            &stopped,
        )
        .await
        .context("couldn't open the log")?;
        let v2 = open_v2_log(config, log.store(), &stopped).await?;
        let frozen_v2 = open_frozen_v2_logs(config, log.store()).await?;
        let witnessing = start_witnessing(config, v2.as_ref(), log.metrics(), &stopped)?;
        let listener = TcpListener::bind(config.listen_addr())
            .with_context(|| format!("couldn't listen on {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(
            api_state(config, Arc::clone(&log), config.entries.disabled())
                .with_write_access(write_policy, bearer_tokens)
                .with_v2(v2.as_ref().map(|v2| Arc::clone(&v2.log)))
                .with_witnessing(witnessing)
                .with_frozen_shards(frozen)
                .with_frozen_v2(frozen_v2),
        );
        tokio::spawn(probe_readiness(state.clone(), stopped.clone()));
        let state_for_metrics = state.clone();
        let validation = Arc::clone(&state.validation);
        let server = api_server(config, listener, state, crate::api::routes)?;
        let rotated = Arc::new(AtomicBool::new(false));
        // A rotation of either log (`tlog log rotate`, `--v2`) stops the
        // server, for a restart on the new one.
        let rotatable = std::iter::once(log.store()).chain(v2.as_ref().map(|v2| v2.log.store()));
        for store in rotatable {
            if let Store::Postgres(store) = store {
                tokio::spawn(watch_rotation(
                    store.clone(),
                    server.handle(),
                    Arc::clone(&rotated),
                    stopped.clone(),
                ));
            }
        }
        let (metrics_server, metrics_port) = metrics_server(config, state_for_metrics)?;
        tracing::info!(
            port,
            tree_id = log.info().tree_id,
            origin = %log.info().origin,
            size = log.checkpoint().size,
            "tlog serving"
        );
        Ok(Self {
            port,
            metrics_port,
            server,
            metrics_server,
            log,
            validation,
            stop,
            sequencer,
            lease,
            v2,
            rotated,
        })
    }

    /// The Rekor v2 log, when `v2.key_file` is set.
    #[must_use]
    pub fn v2_log(&self) -> Option<&Arc<Log<Store>>> {
        self.v2.as_ref().map(|v2| &v2.log)
    }

    /// The bound port (useful with port 0).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound metrics port.
    #[must_use]
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// A handle that stops the server.
    #[must_use]
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// A handle that ends the sequencer task as if it had died: for fault
    /// drills and tests of what `/healthz` then reports.
    #[doc(hidden)]
    #[must_use]
    pub fn sequencer_abort_handle(&self) -> tokio::task::AbortHandle {
        self.sequencer.abort_handle()
    }

    /// The log behind the server.
    #[must_use]
    pub fn log(&self) -> &Arc<Log<Store>> {
        &self.log
    }

    /// The pool that validates entries off the HTTP workers.
    #[must_use]
    pub fn validation_pool(&self) -> &Arc<ValidationPool> {
        &self.validation
    }

    /// Serves until the server is stopped, or until a rotation froze the
    /// shard it serves (see [`watch_rotation`]).
    ///
    /// # Errors
    /// I/O errors from the server; [`ShardRotated`] (as an I/O error of kind
    /// `Other`) after a rotation, once the server drained and stopped, so
    /// that the process exits non-zero and its supervisor starts it again
    /// on the new shard.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            metrics_server,
            stop,
            sequencer,
            log,
            lease,
            v2,
            rotated,
            ..
        } = self;
        let served = serve_with_metrics(server, metrics_server).await;
        // In-flight requests were answered while the server drained; now the
        // sequencer and the probe stop, releasing the log and its store.
        let _ = stop.send(true);
        let _ = sequencer.await;
        if let Some(v2) = v2 {
            let _ = v2.sequencer.await;
            drop(v2.log);
            if let Err(err) = v2.lease.release().await {
                tracing::warn!(error = %err, "couldn't release the v2 sequencer lease");
            }
        }
        // Worker threads drop their handles a moment after the server future
        // ends; return only once the store (and the journal's lock) is free.
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        while Arc::strong_count(&log) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if let Err(err) = lease.release().await {
            tracing::warn!(error = %err, "couldn't release the sequencer lease");
        }
        if served.is_ok() && rotated.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(ShardRotated));
        }
        served
    }
}

/// Why a server stopped on its own: `tlog log rotate` froze the v1 shard it
/// was serving, or `tlog log rotate --v2` its v2 log. Starting it again
/// serves the new active one.
#[derive(Debug, thiserror::Error)]
#[error(
    "the v1 log was rotated (`tlog log rotate`, or its v2 log with --v2): exiting so that a restart serves the new shard"
)]
pub struct ShardRotated;

/// How often a server checks whether its v1 shard (or v2 log) was frozen.
pub const ROTATION_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Stops the server (gracefully) once `store`'s log reads frozen, setting
/// `rotated`: the process then exits with [`ShardRotated`] and its supervisor
/// restarts it on the new active shard.
///
/// Exiting, rather than swapping the new shard in while running, keeps one
/// tested way of opening a log (key check, lease, sequencer, follower and
/// frozen shards are all set up at start): a server never holds two active
/// shards at once, and a fresh start cannot fork the new tree, which has no
/// entry yet. No commit lands on the frozen shard meanwhile (the rotation
/// fenced its lease), so creates sent to it answer 503 until the restart.
async fn watch_rotation(
    store: PgStore,
    server: actix_web::dev::ServerHandle,
    rotated: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(ROTATION_POLL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        match store.is_frozen().await {
            Ok(true) => {
                tracing::warn!(
                    log = store.log_id(),
                    "a log this server serves (its v1 shard or v2 log) was frozen by a \
                     rotation: stopping, so that a restart serves the new one"
                );
                rotated.store(true, Ordering::SeqCst);
                server.stop(true).await;
                return;
            }
            Ok(false) => {}
            Err(err) => tracing::debug!(error = %err, "couldn't read the shard's state"),
        }
    }
}

/// Opens the frozen v1 shards of a Postgres store read-only, oldest first,
/// each with its own key (from its identity) and global index offset; none
/// for the embedded journal, which has one shard.
///
/// # Errors
/// A frozen shard that does not open or whose checkpoint does not verify.
async fn open_frozen_shards(
    config: &Config,
    store: &Store,
) -> anyhow::Result<Vec<Arc<Log<Store>>>> {
    let Store::Postgres(pg) = store else {
        return Ok(Vec::new());
    };
    let active = pg.log_id();
    let mut frozen = Vec::new();
    let mut offset = 0;
    for shard in pg.v1_shards().await? {
        if !shard.frozen || shard.id > active {
            continue;
        }
        let key = shard
            .public_key
            .with_context(|| format!("frozen v1 log {} has no identity", shard.id))?;
        let verifier = crate::signing::LogVerifier::from_spki_der(&key)
            .with_context(|| format!("frozen v1 log {}'s key", shard.id))?;
        let log = Log::open_read_only(
            Store::Postgres(pg.for_log(shard.id)),
            &verifier,
            frozen_caches(config),
            Arc::new(Metrics::new()),
            offset,
        )
        .await
        .with_context(|| format!("couldn't open frozen v1 log {}", shard.id))?;
        offset += log.checkpoint().size;
        tracing::info!(
            log = shard.id,
            tree_id = log.info().tree_id,
            size = log.checkpoint().size,
            "serving a frozen v1 shard"
        );
        frozen.push(log);
    }
    Ok(frozen)
}

/// The caches of each active log: the configured budgets are the
/// process's, so with a v2 log beside the v1 log each gets half of them.
fn active_caches(config: &Config) -> crate::log::CacheBytes {
    let logs = if config.v2.key_file.is_some() { 2 } else { 1 };
    crate::log::CacheBytes {
        entries: config.entry_cache_bytes / logs,
        tiles: config.tile_cache_bytes / logs,
    }
}

/// The caches of a frozen v1 shard or v2 log: an eighth of the configured
/// ones, since a frozen log serves old entries, rarely.
fn frozen_caches(config: &Config) -> crate::log::CacheBytes {
    crate::log::CacheBytes {
        entries: config.entry_cache_bytes / 8,
        tiles: config.tile_cache_bytes / 8,
    }
}

/// Opens the v2 logs that `tlog log rotate --v2` froze, read-only, oldest
/// first: each under the key of its identity and its own origin. None for
/// the embedded journal, which holds no v2 log.
///
/// # Errors
/// A frozen v2 log that does not open or whose checkpoint does not verify.
async fn open_frozen_v2_logs(
    config: &Config,
    store: &Store,
) -> anyhow::Result<Vec<Arc<Log<Store>>>> {
    let Store::Postgres(pg) = store else {
        return Ok(Vec::new());
    };
    let mut frozen = Vec::new();
    for shard in pg.shards(crate::storage::postgres::ApiVersion::V2).await? {
        let Some(origin) = shard.origin.as_deref().filter(|_| shard.frozen) else {
            continue;
        };
        if shard.public_key.is_none() {
            // Frozen before any server created it: nothing to serve.
            continue;
        }
        let log = Log::open_read_only_v2(
            Store::Postgres(pg.for_log(shard.id)),
            origin,
            frozen_caches(config),
            Arc::new(Metrics::new()),
        )
        .await
        .with_context(|| format!("couldn't open frozen v2 log {} ({origin})", shard.id))?;
        tracing::info!(
            log = shard.id,
            origin,
            size = log.checkpoint().size,
            "serving a frozen v2 log"
        );
        frozen.push(log);
    }
    Ok(frozen)
}

/// The `ClientTrustConfig` for the configured logs (`tlog trust-config`):
/// the v1 log at `v1_url` and, when `v2.key_file` is set, the v2 log at
/// `v2_url` (default `https://<v2 origin>`), each key valid from
/// `valid_from` (RFC 3339). On Postgres every v1 shard's key is listed
/// (see [`v1_trusted_keys`]), so that entries of frozen shards verify.
///
/// # Errors
/// A key that cannot be loaded, or a database that cannot be read.
pub async fn trust_config(
    config: &Config,
    v1_url: Option<&str>,
    v2_url: Option<&str>,
    valid_from: &str,
) -> anyhow::Result<String> {
    let v1_base = v1_url.map_or_else(|| format!("https://{}", config.hostname), str::to_owned);
    let mut logs = v1_trusted_keys(config, &v1_base, valid_from).await?;
    let origin = config.v2.origin(&config.hostname);
    let v2_base = v2_url.map_or_else(|| format!("https://{origin}"), str::to_owned);
    logs.extend(frozen_v2_trusted_keys(config, &v2_base, valid_from).await?);
    if let Some(key_file) = &config.v2.key_file {
        let pem = std::fs::read_to_string(key_file)
            .with_context(|| format!("couldn't read v2.key_file {}", key_file.display()))?;
        let v2 = LogSigner::from_ed25519_pem(&pem, origin)?;
        logs.push(crate::trust::TrustedLog {
            base_url: v2_base,
            major_api_version: 2,
            public_key_der: v2.public_key_der().to_vec(),
            key_details: "PKIX_ED25519",
            log_id: v2.log_id(),
            valid_from: valid_from.to_owned(),
            valid_until: None,
            operator: config.hostname.clone(),
        });
    }
    let mut text = serde_json::to_string_pretty(&crate::trust::client_trust_config(&logs))?;
    text.push('\n');
    Ok(text)
}

/// The frozen v2 logs' keys for the trust configuration (Postgres only),
/// oldest first: each valid from its creation (the first v2 log's from
/// `valid_from`) until it was frozen, served at `<v2 base>/logs/<origin>`.
async fn frozen_v2_trusted_keys(
    config: &Config,
    v2_base: &str,
    valid_from: &str,
) -> anyhow::Result<Vec<crate::trust::TrustedLog>> {
    if config.database_url.is_none() {
        return Ok(Vec::new());
    }
    let store = connect(config).await?;
    let logs = store
        .shards(crate::storage::postgres::ApiVersion::V2)
        .await?;
    let mut trusted = Vec::new();
    for (i, log) in logs.into_iter().enumerate() {
        let (Some(origin), Some(der), true) = (log.origin, log.public_key, log.frozen) else {
            continue;
        };
        let raw = crate::note::c2sp::ed25519_raw(&der)
            .with_context(|| format!("frozen v2 log {}'s key is not Ed25519", log.id))?;
        trusted.push(crate::trust::TrustedLog {
            base_url: format!("{}/logs/{origin}", v2_base.trim_end_matches('/')),
            major_api_version: 2,
            log_id: crate::note::c2sp::log_key_hash(&origin, &raw),
            public_key_der: der,
            key_details: "PKIX_ED25519",
            valid_from: if i == 0 {
                valid_from.to_owned()
            } else {
                log.created_at
            },
            valid_until: log.frozen_at,
            operator: config.hostname.clone(),
        });
    }
    Ok(trusted)
}

/// The v1 log's keys for the trust configuration: on Postgres one per
/// distinct key of its shards, valid from `valid_from` for the first
/// shard's key and from its first shard's creation for a later one, and
/// until its last shard was frozen unless the active shard still signs with
/// it; else (or before the log was ever started) the configured key.
async fn v1_trusted_keys(
    config: &Config,
    base_url: &str,
    valid_from: &str,
) -> anyhow::Result<Vec<crate::trust::TrustedLog>> {
    let trusted = |der: Vec<u8>, valid_from: String, valid_until: Option<String>| {
        let log_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        crate::trust::TrustedLog {
            base_url: base_url.to_owned(),
            major_api_version: 1,
            public_key_der: der,
            key_details: "PKIX_ECDSA_P256_SHA_256",
            log_id: log_id.as_ref().try_into().expect("SHA-256 is 32 bytes"),
            valid_from,
            valid_until,
            operator: config.hostname.clone(),
        }
    };
    let mut logs: Vec<crate::trust::TrustedLog> = Vec::new();
    if config.database_url.is_some() {
        let store = connect(config).await?;
        for (i, shard) in store.v1_shards().await?.into_iter().enumerate() {
            let Some(der) = shard.public_key else {
                continue;
            };
            let until = if shard.frozen { shard.frozen_at } else { None };
            match logs.iter_mut().find(|log| log.public_key_der == der) {
                // A later shard with the same key extends its validity.
                Some(log) => log.valid_until = until,
                None => {
                    let start = if i == 0 {
                        valid_from.to_owned()
                    } else {
                        shard.created_at
                    };
                    logs.push(trusted(der, start, until));
                }
            }
        }
    }
    if logs.is_empty() {
        let v1 = open_signer(config)?;
        logs.push(trusted(
            v1.public_key_der().to_vec(),
            valid_from.to_owned(),
            None,
        ));
    }
    Ok(logs)
}

/// Opens the Rekor v2 log when `v2.key_file` is set: its key, its log in
/// the store beside `v1`, its sequencer, and (on a shared store) its lease
/// keeper and follower, all ending when `stopped` turns true.
///
/// # Errors
/// An unreadable or wrong key, or a v2 log that does not open.
async fn open_v2_log(
    config: &Config,
    v1: &Store,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<V2Log>> {
    let Some(key_file) = &config.v2.key_file else {
        return Ok(None);
    };
    let origin = config.v2.origin(&config.hostname);
    let pem = std::fs::read_to_string(key_file).with_context(|| {
        format!(
            "couldn't read v2.key_file {}; hint: create one with \
             `tlog keygen --algorithm ed25519 --out {}`",
            key_file.display(),
            key_file.display()
        )
    })?;
    let signer = LogSigner::from_ed25519_pem(&pem, origin)
        .with_context(|| format!("in {}", key_file.display()))?;
    let (store, lease) = crate::storage::open_v2(config, v1, origin)
        .await
        .context("couldn't open the v2 log's store")?;
    if lease
        .acquire()
        .await
        .context("couldn't read the v2 sequencer lease")?
        .is_none()
    {
        tracing::info!("another process holds the v2 sequencer lease: following it");
    }
    let lease = Arc::new(lease);
    let (log, sequencer) = start_log(
        config,
        store,
        signer,
        LogSetup {
            hostname: origin,
            metrics: Metrics::for_log("v2"),
            index_offset: 0,
        },
        &lease,
        stopped,
    )
    .await
    .context("couldn't open the v2 log")?;
    tracing::info!(origin, size = log.checkpoint().size, "v2 log serving");
    Ok(Some(V2Log {
        log,
        sequencer,
        lease,
    }))
}

/// Starts witnessing the v2 log when `v2.witness_policy` is set: the policy
/// (a bad line stops start-up, naming file and line) and the task that
/// gathers cosignatures until `stopped`, reporting to `metrics`.
///
/// # Errors
/// An unreadable or invalid policy file.
fn start_witnessing(
    config: &Config,
    v2: Option<&V2Log>,
    metrics: &Metrics,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<Arc<crate::witness::Witnessing>>> {
    let (Some(path), Some(v2)) = (&config.v2.witness_policy, v2) else {
        return Ok(None);
    };
    let policy = crate::witness::load_policy(path)?;
    let settings = crate::witness::Settings {
        timeout: std::time::Duration::from_millis(config.v2.witness_timeout_ms),
        ca_file: config.v2.witness_ca_file.clone(),
        fail_closed: config.v2.witness_fail_closed,
    };
    let witnessing =
        crate::witness::Witnessing::new(Arc::clone(&v2.log), policy, settings, metrics)?;
    tokio::spawn(Arc::clone(&witnessing).run(stopped.clone()));
    tracing::info!(
        policy = %path.display(),
        fail_closed = config.v2.witness_fail_closed,
        "witnessing the v2 log"
    );
    Ok(Some(witnessing))
}

/// What differs between the logs [`start_log`] opens: the v1 log's active
/// shard and the v2 log.
struct LogSetup<'a> {
    /// The signer name (the v1 host name, or the v2 origin).
    hostname: &'a str,
    /// Where the log records.
    metrics: Metrics,
    /// [`crate::log::LogInfo::index_offset`].
    index_offset: u64,
}

/// Opens a writable log on `store` with `config`'s batch, pool and cache
/// settings, recording into `metrics`, and starts its sequencer. When other processes may share the
/// store it also keeps (or waits for) the lease and follows what the leader
/// commits. The sequencer marks the log when it ends, panics included, so
/// health and readiness follow it.
async fn start_log(
    config: &Config,
    store: Store,
    signer: LogSigner,
    setup: LogSetup<'_>,
    lease: &Arc<StoreLease>,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Result<(Arc<Log<Store>>, tokio::task::JoinHandle<()>), crate::log::OpenError> {
    let LogSetup {
        hostname,
        metrics,
        index_offset,
    } = setup;
    let caches = active_caches(config);
    let options = Options {
        hostname: hostname.to_owned(),
        batch: config.batch,
        pool: config.pool,
        entry_cache_bytes: caches.entries,
        tile_cache_bytes: caches.tiles,
        clock: Arc::new(SystemClock),
        metrics: Arc::new(metrics),
        lease: Arc::clone(lease) as Arc<dyn crate::storage::Held>,
        index_offset,
    };
    let (log, sequencer) = Log::open(store, signer, options).await?;
    let sequencer = tokio::spawn(sequencer.run(stopped.clone()));
    if crate::storage::Shared::is_shared(log.store()) {
        tokio::spawn(Arc::clone(&log).keep_lease(Arc::clone(lease), stopped.clone()));
        tokio::spawn(Arc::clone(&log).follow(stopped.clone()));
        tokio::spawn(Arc::clone(&log).drain_queue_while_leading(stopped.clone()));
    }
    Ok((log, sequencer))
}

/// The state every handler shares, with the HTTP limits of `config`.
#[must_use]
pub fn api_state(
    config: &Config,
    log: Arc<Log<Store>>,
    disabled_kinds: Vec<crate::entries::Kind>,
) -> ApiState {
    let validation = &config.validation;
    ApiState::new(log, config.max_request_body, disabled_kinds)
        .with_unread_drain(config.unread_body_drain_bytes_per_second)
        .with_body_timeout(std::time::Duration::from_millis(
            config.request_body_timeout_ms,
        ))
        .with_validation(Arc::new(
            ValidationPool::new(validation.threads(), validation.queue())
                .with_large_bytes_per_second(validation.large_bytes_per_second()),
        ))
}

/// The one HTTP server builder, for `serve` and `replica` alike, so that
/// every connection limit applies to both: `routes` is all that differs.
///
/// # Errors
/// The listener cannot be used.
pub fn api_server(
    config: &Config,
    listener: TcpListener,
    state: web::Data<ApiState>,
    routes: fn(&mut web::ServiceConfig),
) -> anyhow::Result<Server> {
    let limit = crate::api::rate_limit::build(&config.rate_limit);
    let server = HttpServer::new(move || app_with_api(state.clone(), limit.as_ref(), routes))
        .shutdown_timeout(config.shutdown_grace_secs)
        .client_request_timeout(std::time::Duration::from_millis(
            config.request_header_timeout_ms,
        ))
        .keep_alive(std::time::Duration::from_secs(config.keep_alive_secs))
        .client_disconnect_timeout(std::time::Duration::from_millis(
            config.unread_body_linger_ms,
        ))
        .on_connect(crate::api::unread::on_connect)
        .listen(listener)?
        .run();
    Ok(server)
}

/// Longest wait for the server's workers to release the log on shutdown.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often readiness re-checks the database.
const READINESS_PROBE: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps `/readyz` current without a request ever waiting on the database:
/// ready while the store answers a ping in time (the sequencer's own state
/// is read by `/readyz` directly).
async fn probe_readiness(state: web::Data<ApiState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let log = state.log();
        let reachable = match log.store() {
            Store::Postgres(store) => tokio::time::timeout(READINESS_PROBE, store.ping())
                .await
                .is_ok_and(|r| r.is_ok()),
            Store::File(_) => true,
        };
        state.set_ready(reachable);
        drop(log);
        tokio::select! {
            () = tokio::time::sleep(READINESS_PROBE) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Runs the API server and the metrics server until the API server stops
/// (on SIGTERM, after draining), then stops the metrics server.
///
/// # Errors
/// I/O errors from the API server.
pub async fn serve_with_metrics(server: Server, metrics_server: Server) -> std::io::Result<()> {
    // An actix server runs only while polled: serve metrics alongside.
    let metrics = metrics_server.handle();
    let metrics_task = tokio::spawn(metrics_server);
    let served = server.await;
    metrics.stop(true).await;
    let _ = metrics_task.await;
    served
}

/// The Prometheus endpoint on its own port, so that scraping never competes
/// with the API's workers or ingress rules.
///
/// # Errors
/// The metrics address cannot be bound.
pub fn metrics_server(
    config: &Config,
    state: web::Data<ApiState>,
) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(&config.metrics_listen)
        .with_context(|| format!("couldn't listen on {} for metrics", config.metrics_listen))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(render_metrics))
    })
    .workers(1)
    .listen(listener)?
    .run();
    Ok((server, port))
}

async fn render_metrics(state: web::Data<ApiState>) -> actix_web::HttpResponse {
    let log = state.log();
    // The v2 log's series carry `log="v2"` (`Metrics::for_log`); HTTP and
    // validation metrics are the server's, kept with the v1 log's.
    let logs: Vec<_> = std::iter::once(log.clone()).chain(state.v2_log()).collect();
    for each in &logs {
        each.update_gauges();
    }
    // The logs share one connection pool: its figures are reported once.
    if let Some((idle, in_use)) = log.store().connection_stats() {
        let gauges = &log.metrics().db_connections;
        gauges.with_label_values(&["idle"]).set(i64::from(idle));
        gauges.with_label_values(&["in_use"]).set(i64::from(in_use));
    }
    let (small, large) = state.validation.in_use_by_lane();
    for (lane, jobs) in [("small", small), ("large", large)] {
        log.metrics()
            .validation_jobs
            .with_label_values(&[lane])
            .set(i64::try_from(jobs).unwrap_or(i64::MAX));
    }
    let all: Vec<&Metrics> = logs.iter().map(|each| each.metrics()).collect();
    actix_web::HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(Metrics::render_all(&all))
}

/// Opens the configured store for writing (see [`crate::storage::open`])
/// and takes the sequencer's lease on it if it is free.
///
/// # Errors
/// An unreachable database, or a journal that another server holds or that
/// fails its checks.
pub async fn open_store(config: &Config) -> anyhow::Result<(Store, Arc<StoreLease>)> {
    if config.database_url.is_none() {
        tracing::info!(data_dir = %config.data_dir.display(), "no database_url: using the embedded log");
    }
    let (store, lease) = crate::storage::open(config)
        .await
        .with_context(|| open_hint(config))?;
    // Held: this process sequences. Not held: another does, and this one
    // follows until the lease is free.
    let held = lease
        .acquire()
        .await
        .context("couldn't read the sequencer lease")?;
    if held.is_none() {
        tracing::info!("another process holds the sequencer lease: following it");
    }
    Ok((store, Arc::new(lease)))
}

/// What to say when the configured store does not open.
fn open_hint(config: &Config) -> String {
    if config.database_url.is_some() {
        "couldn't connect to Postgres; hint: check database_url and that the server is up"
            .to_owned()
    } else {
        format!(
            "couldn't open the embedded log in {}",
            config.data_dir.display()
        )
    }
}

/// `tlog export`: writes the configured log to `out` (`-` for stdout),
/// through a temporary file that is renamed into place when complete.
///
/// # Errors
/// The store cannot be opened or read, or the file cannot be written.
pub async fn export(config: &Config, out: &Path) -> anyhow::Result<()> {
    export_v1(config, out, None).await
}

/// `tlog export [--shard ID]`: [`export`], or with `shard` that v1 shard of
/// a time-sharded log (`tlog log list` shows the IDs), its header giving
/// the global index of its first entry.
///
/// # Errors
/// As [`export`]; a sharded database without `shard`, or a `shard` that
/// is not one of its v1 shards.
pub async fn export_v1(config: &Config, out: &Path, shard: Option<i64>) -> anyhow::Result<()> {
    let store = crate::storage::open_reader(config).await.with_context(|| {
        if config.database_url.is_some() {
            open_hint(config)
        } else {
            "couldn't read the embedded log; hint: stop `tlog serve` first, or set database_url"
                .to_owned()
        }
    })?;
    let mut index_offset = 0;
    let store = match (&store, shard) {
        (Store::Postgres(pg), _) => {
            // A shard's file holds its own tree from index 0; its header's
            // logIndexOffset says where its global indexes start.
            let shards = pg.v1_shards().await?;
            let chosen = match shard {
                Some(id) => shards.iter().position(|s| s.id == id).with_context(|| {
                    let ids: Vec<String> = shards.iter().map(|s| s.id.to_string()).collect();
                    format!("no v1 shard {id} (v1 shards: {})", ids.join(", "))
                })?,
                None if shards.len() > 1 => bail!(
                    "this database holds a sharded v1 log ({} shards, `tlog log list`): \
                     export each shard to a file of its own with `--shard ID`",
                    shards.len()
                ),
                None => shards.len().saturating_sub(1),
            };
            index_offset = shards[..chosen].iter().map(|s| s.size.unwrap_or(0)).sum();
            match shards.get(chosen) {
                Some(s) => Store::Postgres(pg.for_log(s.id)),
                None => store,
            }
        }
        (Store::File(_), Some(_)) => {
            bail!("the embedded journal holds one v1 log, which is never sharded: no --shard")
        }
        (Store::File(_), None) => store,
    };
    if let Store::Postgres(pg) = &store {
        let v2: Vec<String> = pg
            .shards(crate::storage::postgres::ApiVersion::V2)
            .await?
            .into_iter()
            .filter_map(|log| log.origin)
            .collect();
        if !v2.is_empty() {
            tracing::warn!(
                v2_logs = v2.join(", "),
                "db.jsonl holds the v1 log only: export each v2 log with \
                 `tlog export --v2 --out DIR [--origin ORIGIN]`"
            );
        }
    }
    let mut progress = crate::export::Progress::new("export", 0);
    let started = std::time::Instant::now();
    let checkpoint = if out == Path::new("-") {
        let stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        crate::export::export_shard(&store, stdout, index_offset, &mut progress).await?
    } else {
        let tmp = out.with_extension("partial");
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("couldn't create {}", tmp.display()))?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        let checkpoint =
            crate::export::export_shard(&store, &mut writer, index_offset, &mut progress).await?;
        let file = writer
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&tmp, out)
            .with_context(|| format!("couldn't rename {} to {}", tmp.display(), out.display()))?;
        checkpoint
    };
    tracing::info!(
        size = checkpoint.size,
        elapsed_ms = started.elapsed().as_millis(),
        "export written"
    );
    Ok(())
}

/// `tlog import`: verifies `input` under `key_file`'s public key and loads it
/// into the configured store (Postgres, or the embedded journal) through the
/// same commit path as the sequencer, holding the sequencer's lease.
///
/// # Errors
/// A file that does not verify, a store that already holds another log, a
/// running server, or a storage failure.
pub async fn import(config: &Config, input: &Path) -> anyhow::Result<()> {
    let signer = open_signer(config)?;
    let (store, lease) = crate::storage::open(config)
        .await
        .with_context(|| open_hint(config))?;
    let mut progress = crate::export::Progress::new("import", 0);
    let started = std::time::Instant::now();
    let checkpoint = holding_lease(lease, "couldn't take the sequencer lease", async {
        crate::export::import(&store, input, &signer, &mut progress)
            .await
            .with_context(|| format!("couldn't import {}", input.display()))
    })
    .await?;
    tracing::info!(
        size = checkpoint.size,
        elapsed_ms = started.elapsed().as_millis(),
        "import committed"
    );
    Ok(())
}

/// `tlog export --v2`: writes the v2 log of `origin` (by default the
/// active one; a frozen one by its origin) to the new directory `out` as
/// its C2SP tiles ([`crate::export::v2`]).
///
/// # Errors
/// No Postgres, no such v2 log, or a failed read or write.
pub async fn export_v2(config: &Config, origin: Option<&str>, out: &Path) -> anyhow::Result<()> {
    if config.database_url.is_none() {
        bail!("the Rekor v2 log needs Postgres (database_url): the embedded journal has none");
    }
    let store = connect(config).await?;
    let logs = store
        .shards(crate::storage::postgres::ApiVersion::V2)
        .await?;
    let log = match origin {
        Some(origin) => logs.iter().find(|l| l.origin.as_deref() == Some(origin)),
        None => logs.iter().find(|l| !l.frozen),
    };
    let Some(log) = log else {
        let known: Vec<&str> = logs.iter().filter_map(|l| l.origin.as_deref()).collect();
        bail!(
            "no v2 log {}in this database (v2 logs: {}); hint: `tlog log list`",
            origin.map_or_else(String::new, |o| format!("of origin {o:?} ")),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    };
    let mut progress = crate::export::Progress::new("export", 0);
    let started = std::time::Instant::now();
    let checkpoint =
        crate::export::v2::export_tiles(&store.for_log(log.id), out, &mut progress).await?;
    tracing::info!(
        size = checkpoint.size,
        origin = log.origin.as_deref().unwrap_or(""),
        elapsed_ms = started.elapsed().as_millis(),
        "v2 export written"
    );
    Ok(())
}

/// `tlog import --v2`: audits the tiles directory `input` under
/// `v2.key_file` and loads it as the v2 log of `v2.origin`, holding that
/// log's sequencer lease. The log must be new (or an interrupted import of
/// this directory); the database must have no other active v2 log.
///
/// # Errors
/// No Postgres or `v2.key_file`, a directory that does not verify, a log
/// that already holds entries, a running server, or a storage failure.
pub async fn import_v2(config: &Config, input: &Path) -> anyhow::Result<()> {
    use crate::storage::postgres::{ApiVersion, LogState};
    if config.database_url.is_none() {
        bail!("the Rekor v2 log needs Postgres (database_url): the embedded journal has none");
    }
    let Some(key_file) = &config.v2.key_file else {
        bail!(
            "v2.key_file is not set: a v2 import signs as the v2 log, with its key and v2.origin"
        );
    };
    let origin = config.v2.origin(&config.hostname);
    let pem = std::fs::read_to_string(key_file)
        .with_context(|| format!("couldn't read v2.key_file {}", key_file.display()))?;
    let signer = LogSigner::from_ed25519_pem(&pem, origin)
        .with_context(|| format!("in {}", key_file.display()))?;
    let pg = connect(config).await?;
    let logs = pg.logs().await?;
    let active = logs
        .iter()
        .find(|l| l.api_version == ApiVersion::V2 && l.state == LogState::Active);
    let store = match active {
        Some(log) if log.origin.as_deref() == Some(origin) => pg.for_log(log.id),
        Some(log) => bail!(
            "the database's active v2 log is {:?}, not {origin:?} (v2.origin): import into a \
             database without one",
            log.origin.as_deref().unwrap_or("")
        ),
        None if logs.iter().any(|l| l.origin.as_deref() == Some(origin)) => {
            bail!("v2 log {origin:?} exists and is frozen: a v2 origin names one log forever")
        }
        None => pg.register_log(ApiVersion::V2, Some(origin)).await?,
    };
    let lease = store.lease(std::time::Duration::from_millis(config.lease_ttl_ms));
    let mut progress = crate::export::Progress::new("import", 0);
    let started = std::time::Instant::now();
    let checkpoint = holding_lease(lease, "couldn't take the v2 log's sequencer lease", async {
        crate::export::v2::import_tiles(&store, input, &signer, &mut progress)
            .await
            .with_context(|| format!("couldn't import {}", input.display()))
    })
    .await?;
    tracing::info!(
        size = checkpoint.size,
        origin,
        elapsed_ms = started.elapsed().as_millis(),
        "v2 import committed"
    );
    Ok(())
}

/// Takes `lease` (refusing with `busy` when another process holds it),
/// keeps it renewed while `work` runs so that no server starts sequencing,
/// then gives it up, whatever `work` returned.
///
/// # Errors
/// The lease is held elsewhere or cannot be read; or what `work` returns.
async fn holding_lease<L, T>(
    lease: L,
    busy: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T>
where
    L: crate::storage::lease::Lease + Send + Sync + 'static,
{
    if lease.acquire().await?.is_none() {
        bail!("{busy}; hint: stop `tlog serve` first");
    }
    let lease = Arc::new(lease);
    let keeper = tokio::spawn({
        let lease = Arc::clone(&lease);
        async move {
            loop {
                tokio::time::sleep(lease.renew_every()).await;
                if let Err(err) = lease.acquire().await {
                    tracing::warn!(error = %err, "couldn't renew the sequencer lease");
                }
            }
        }
    });
    let outcome = work.await;
    keeper.abort();
    let _ = lease.release().await;
    outcome
}

/// `tlog log rotate`: freezes the active v1 shard at its last signed
/// checkpoint and starts a new active one with a new tree ID, signed by
/// `key_file` when given (a new key: point `key_file` at it before the
/// servers restart) or else by the configured key. Safe beside running
/// servers: see [`PgStore::rotate_v1`] and [`watch_rotation`].
///
/// # Errors
/// No Postgres (the embedded journal has one shard), a key that does not
/// load, or a database failure.
pub async fn rotate(
    config: &Config,
    key_file: Option<&Path>,
) -> anyhow::Result<crate::storage::postgres::Rotation> {
    if config.database_url.is_none() {
        bail!(
            "rotating the v1 log needs Postgres (database_url): the embedded journal \
             holds one v1 log; hint: move it to Postgres with `tlog export` and `tlog import`"
        );
    }
    let signer = match key_file {
        Some(path) => load_signer(path)?,
        None => open_signer(config)?,
    };
    let store = connect(config).await?;
    let identity = crate::storage::LogIdentity {
        tree_id: crate::log::random_tree_id(),
        public_key: signer.public_key_der().to_vec(),
    };
    let root = crate::merkle::empty_root();
    let checkpoint = crate::note::Checkpoint {
        origin: format!("{} - {}", config.hostname, identity.tree_id),
        size: 0,
        root,
    };
    let note = signer.sign_checkpoint(&checkpoint, &config.hostname)?;
    let first = crate::storage::StoredCheckpoint {
        size: 0,
        root,
        note,
    };
    let rotation = store
        .rotate_v1(&identity, &first)
        .await
        .context("couldn't rotate the v1 log")?;
    tracing::info!(
        frozen = rotation.frozen,
        frozen_size = rotation.frozen_size,
        active = rotation.active,
        tree_id = identity.tree_id,
        log_id = signer.log_id_hex(),
        "rotated the v1 log"
    );
    Ok(rotation)
}

/// `tlog log list`: one line per v1 shard, oldest first: its ID, state,
/// tree ID, size, the global indexes it holds, its key's log ID and when
/// it was created and frozen.
///
/// # Errors
/// No Postgres, or a database failure.
pub async fn list_shards(config: &Config) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    if config.database_url.is_none() {
        bail!("the embedded journal holds one v1 log, which is never sharded: shards need Postgres (database_url)");
    }
    let store = connect(config).await?;
    let mut out = String::from("log\tstate\ttree_id\tsize\tlog_indexes\tlog_id\tcreated\tfrozen\n");
    let mut offset = 0u64;
    for shard in store.v1_shards().await? {
        let size = shard.size.unwrap_or(0);
        let indexes = if size == 0 {
            "-".to_owned()
        } else {
            format!("{offset}..{}", offset + size - 1)
        };
        offset += size;
        let log_id = shard.public_key.as_deref().map_or_else(
            || "-".to_owned(),
            |der| hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)),
        );
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{size}\t{indexes}\t{log_id}\t{}\t{}",
            shard.id,
            if shard.frozen { "frozen" } else { "active" },
            shard
                .tree_id
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            shard.created_at,
            shard.frozen_at.as_deref().unwrap_or("-"),
        );
    }
    let v2 = store
        .shards(crate::storage::postgres::ApiVersion::V2)
        .await?;
    if !v2.is_empty() {
        out.push_str("\nv2 log\tstate\torigin\tsize\tlog_id\tcreated\tfrozen\n");
    }
    for log in v2 {
        let origin = log.origin.as_deref().unwrap_or("-");
        let log_id = log
            .public_key
            .as_deref()
            .and_then(crate::note::c2sp::ed25519_raw)
            .map_or_else(
                || "-".to_owned(),
                |raw| hex::encode(crate::note::c2sp::log_key_hash(origin, &raw)),
            );
        let _ = writeln!(
            out,
            "{}\t{}\t{origin}\t{}\t{log_id}\t{}\t{}",
            log.id,
            if log.frozen { "frozen" } else { "active" },
            log.size.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            log.created_at,
            log.frozen_at.as_deref().unwrap_or("-"),
        );
    }
    Ok(out)
}

/// `tlog log rotate --v2`: freezes the active v2 log at its last signed
/// checkpoint and registers a new one with the configured `v2.origin`,
/// which must be new (set it, and `v2.key_file` for a new key, first).
/// Running servers exit ([`ShardRotated`]); restarted with that
/// configuration, the first one creates the new log. The frozen log stays
/// served read-only at `/logs/<origin>/`.
///
/// # Errors
/// No Postgres or no `v2.key_file`, an unreadable key, an origin that is
/// the active log's or was used before, or a database failure.
pub async fn rotate_v2(config: &Config) -> anyhow::Result<crate::storage::postgres::Rotation> {
    if config.database_url.is_none() {
        bail!("the Rekor v2 log needs Postgres (database_url): there is no v2 log to rotate");
    }
    let Some(key_file) = &config.v2.key_file else {
        bail!("v2.key_file is not set: rotating the v2 log needs the new log's key and v2.origin");
    };
    let origin = config.v2.origin(&config.hostname);
    let pem = std::fs::read_to_string(key_file)
        .with_context(|| format!("couldn't read v2.key_file {}", key_file.display()))?;
    // The new log's key must load before the old log is frozen.
    let signer = LogSigner::from_ed25519_pem(&pem, origin)
        .with_context(|| format!("in {}", key_file.display()))?;
    let store = connect(config).await?;
    let rotation = store
        .rotate_v2(origin)
        .await
        .context("couldn't rotate the v2 log")?;
    tracing::info!(
        frozen = rotation.frozen,
        frozen_size = rotation.frozen_size,
        active = rotation.active,
        origin,
        log_id = signer.log_id_hex(),
        "rotated the v2 log"
    );
    Ok(rotation)
}

/// Reads the files of `write_policy`: the policy (`None` when no rule is
/// set) and the bearer tokens (`None` when no file is named).
///
/// # Errors
/// A file that cannot be read or is malformed, or a SAN regex that does not
/// compile; each names its setting.
pub fn load_write_access(
    config: &WritePolicyConfig,
) -> anyhow::Result<(Option<WritePolicy>, Option<BearerTokens>)> {
    let read = |setting: &str, path: Option<&PathBuf>| {
        path.map(|p| {
            std::fs::read(p)
                .with_context(|| format!("couldn't read write_policy.{setting} {}", p.display()))
        })
        .transpose()
    };
    let keys = read("allowed_keys", config.allowed_keys.as_ref())?;
    let roots = read("trusted_roots", config.trusted_roots.as_ref())?;
    let identities = config
        .allowed_identities
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let san = match (&id.san, &id.san_regex) {
                (Some(exact), _) => SanPattern::Exact(exact.clone()),
                (None, Some(re)) => SanPattern::regex(re).with_context(|| {
                    format!("write_policy.allowed_identities[{i}].san_regex does not compile")
                })?,
                (None, None) => bail!("write_policy.allowed_identities[{i}] has no san"),
            };
            Ok(Identity {
                san,
                issuer: id.issuer.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let policy = WritePolicy::new(keys.as_deref(), roots.as_deref(), identities)?;
    let tokens = read("bearer_tokens_file", config.bearer_tokens_file.as_ref())?
        .map(|bytes| {
            let text = String::from_utf8(bytes)
                .context("write_policy.bearer_tokens_file is not UTF-8 text")?;
            anyhow::Ok(BearerTokens::parse(&text)?)
        })
        .transpose()?;
    if !policy.is_empty() || tokens.is_some() {
        tracing::info!(
            allowed_keys = config.allowed_keys.is_some(),
            trusted_roots = config.trusted_roots.is_some(),
            allowed_identities = config.allowed_identities.len(),
            bearer_tokens = tokens.is_some(),
            "write policy in force"
        );
    }
    Ok(((!policy.is_empty()).then_some(policy), tokens))
}

/// Opens the configured log key: `key_file`, or the PKCS#11 token and key
/// of `signer.pkcs11`, whose public key is read from the token.
///
/// # Errors
/// As [`load_signer`] or [`pkcs11_settings`], or the token, PIN or key is
/// wrong; each names the setting.
pub fn open_signer(config: &Config) -> anyhow::Result<LogSigner> {
    match config.signer.kind {
        SignerKind::File => load_signer(&config.key_file),
        SignerKind::Pkcs11 => {
            let settings = pkcs11_settings(config)?;
            let signer = LogSigner::open_pkcs11(settings)?;
            tracing::info!(
                log_id = signer.log_id_hex(),
                token_label = config.signer.pkcs11.token_label.as_deref(),
                key_label = config.signer.pkcs11.key_label.as_deref(),
                "signing with a PKCS#11 key"
            );
            Ok(signer)
        }
    }
}

/// The `signer.pkcs11` settings with the PIN read from `pin_file`.
///
/// # Errors
/// A required setting is missing, or the PIN file is unreadable or empty.
pub fn pkcs11_settings(config: &Config) -> anyhow::Result<Pkcs11Settings> {
    let pkcs11 = &config.signer.pkcs11;
    pkcs11.check_complete()?;
    let pin_file = pkcs11.pin_file.as_ref().expect("checked");
    let text = std::fs::read_to_string(pin_file).with_context(|| {
        format!(
            "couldn't read signer.pkcs11.pin_file {}",
            pin_file.display()
        )
    })?;
    let pin = text.strip_suffix('\n').unwrap_or(&text);
    let pin = pin.strip_suffix('\r').unwrap_or(pin);
    if pin.is_empty() {
        bail!("signer.pkcs11.pin_file {} is empty", pin_file.display());
    }
    Ok(Pkcs11Settings {
        module: pkcs11.module.clone().expect("checked"),
        token_label: pkcs11.token_label.clone().expect("checked"),
        key_label: pkcs11.key_label.clone().expect("checked"),
        pin: pin.to_owned().into(),
        sessions: pkcs11.sessions(),
    })
}

/// `tlog keygen --pkcs11`: creates the log's key pair on the token of
/// `signer.pkcs11` (sensitive, not extractable) and returns its public key
/// as PEM; writes the PEM to `out` too when given.
///
/// # Errors
/// As [`pkcs11_settings`], the token or PIN is wrong, a key with the label
/// exists, or `out` cannot be written.
pub fn keygen_pkcs11(config: &Config, out: Option<&Path>) -> anyhow::Result<String> {
    let settings = pkcs11_settings(config)?;
    let spki = crate::signing::pkcs11::generate(&settings)?;
    let pem = crate::signing::LogVerifier::from_spki_der(&spki)?.public_key_pem();
    if let Some(out) = out {
        std::fs::write(out, &pem).with_context(|| format!("couldn't write {}", out.display()))?;
    }
    Ok(pem)
}

/// Reads the signing key, with a hint when it is missing.
///
/// # Errors
/// The file is unreadable or not a PKCS#8 P-256 key.
pub fn load_signer(path: &Path) -> anyhow::Result<LogSigner> {
    let pem = std::fs::read_to_string(path).with_context(|| {
        format!(
            "couldn't read the signing key {}; hint: create one with `tlog keygen --out {}`",
            path.display(),
            path.display()
        )
    })?;
    LogSigner::from_pkcs8_pem(&pem).with_context(|| format!("in {}", path.display()))
}

/// Connects to Postgres and applies migrations.
///
/// # Errors
/// No URL configured, or the database is unreachable.
pub async fn connect(config: &Config) -> anyhow::Result<PgStore> {
    let Some(url) = &config.database_url else {
        bail!("database_url is not set; hint: set TLOG_DATABASE_URL=postgres://user@host/db");
    };
    PgStore::open(url.expose_secret(), config.db_max_connections)
        .await
        .context("couldn't connect to Postgres; hint: check database_url and that the server is up")
}

/// Writes a new PKCS#8 PEM signing key readable only by its owner.
///
/// # Errors
/// The file exists, or cannot be written.
pub fn keygen(path: &Path) -> anyhow::Result<()> {
    write_new_key(path, &LogSigner::generate_pkcs8_pem()?)
}

/// Writes a new Ed25519 key for a Rekor v2 log (`v2.key_file`) to `path`,
/// which must not exist yet.
///
/// # Errors
/// As [`keygen`].
pub fn keygen_ed25519(path: &Path) -> anyhow::Result<()> {
    write_new_key(path, &LogSigner::generate_ed25519_pem()?)
}

fn write_new_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("couldn't create {} (it must not exist yet)", path.display()))?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// `tlog monitor`: with `once`, one poll (a Kubernetes `CronJob`) whose findings are
/// printed as JSON lines; otherwise polls forever, serving `/metrics` on
/// `metrics_listen`. Returns whether an alert was raised (for the exit code).
///
/// # Errors
/// Bad `monitor` settings, an unbindable metrics address, or, with `once`,
/// a poll that could not finish.
pub async fn monitor(config: &Config, once: bool) -> anyhow::Result<bool> {
    use crate::metrics::MonitorMetrics;
    use crate::monitor::{Monitor, Settings};
    let settings = Settings::from_config(&config.monitor)?;
    let metrics = Arc::new(MonitorMetrics::new());
    let monitor = Monitor::new(settings, Arc::clone(&metrics))?;
    if once {
        let findings = monitor
            .poll_and_report(crate::monitor::unix_now())
            .await
            .with_context(|| format!("couldn't poll {}", monitor.settings().url))?;
        for finding in &findings {
            println!("{}", serde_json::to_string(finding)?);
        }
        return Ok(findings.iter().any(crate::monitor::Finding::is_alert));
    }
    let listener = TcpListener::bind(&config.metrics_listen)
        .with_context(|| format!("couldn't listen on {} for metrics", config.metrics_listen))?;
    tracing::info!(
        url = %monitor.settings().url,
        metrics = %listener.local_addr()?,
        "monitor started"
    );
    let data = web::Data::from(metrics);
    let server = HttpServer::new(move || {
        actix_web::App::new().app_data(data.clone()).route(
            "/metrics",
            web::get().to(|m: web::Data<MonitorMetrics>| async move {
                actix_web::HttpResponse::Ok()
                    .content_type("text/plain; version=0.0.4")
                    .body(m.render())
            }),
        )
    })
    .workers(1)
    .listen(listener)?
    .run();
    tokio::select! {
        result = server => result.context("the metrics server stopped")?,
        () = monitor.run() => {}
    }
    Ok(false)
}
