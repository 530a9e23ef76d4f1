//! The Postgres store: the only file with SQL.
//!
//! One batch is one transaction. The checkpoint row is compare-and-swapped on
//! its size first, which also serialises writers; entries, index keys and
//! tiles follow in bulk `UNNEST` inserts. The sequencer's lease is a row
//! with an epoch ([`PgLease`]); a store with a lease checks, inside each
//! commit, that the epoch is still the one it holds.

use parking_lot::Mutex;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Row};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared::{Event, QueuedEntry, Refusal, Shared};
use super::{
    check_index_keys, newest_of_union, Batch, KeyMatch, LogIdentity, LogReader, LogWriter,
    StoreError, StoredCheckpoint, StoredEntry,
};
use crate::merkle::Hash;
use crate::tiles::TILE_WIDTH;

/// How long a request waits for a pooled connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One log stored in a Postgres database, which may hold several (each a
/// row of `logs`, every other table keyed by `log_id`). A handle is scoped to
/// one log: [`PgStore::connect_lazy`] opens log 1 (the v1 log every database
/// made before migration 0005 holds), [`PgStore::for_log`] another one on the
/// same pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// The log this handle reads and writes.
    log_id: i64,
    /// The lease epoch commits are fenced by, once a lease is made.
    fence: Arc<Fence>,
    /// The connection that listens for [`Event`]s, once asked for one.
    listener: Arc<tokio::sync::Mutex<Option<PgListener>>>,
}

/// Notification channel of commits; the payload is the new tree size.
const MOVED_CHANNEL: &str = "tlog_checkpoint";
/// Notification channel of entries queued for the leader.
const QUEUED_CHANNEL: &str = "tlog_queued";
/// Notification channel of the leader's refusals ([`Refusal::encode`]).
const REFUSED_CHANNEL: &str = "tlog_refused";

/// The first log of every database: the v1 log of a single-log database.
pub const DEFAULT_LOG: i64 = 1;

/// A log's channel: `base` for log 1 (as before migration 0005), else
/// `<base>_<id>`, so that each log's followers wake only for their own log.
fn channel(base: &str, log_id: i64) -> String {
    if log_id == DEFAULT_LOG {
        base.to_owned()
    } else {
        format!("{base}_{log_id}")
    }
}

/// Which API a log speaks (`logs.api_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// Rekor v1: SETs, `<host> - <treeID>` origin.
    V1,
    /// Rekor v2: C2SP tlog-tiles, origin of its own.
    V2,
}

impl ApiVersion {
    fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
        }
    }
}

/// Whether a log takes new entries (`logs.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// Takes new entries.
    Active,
    /// Read-only: a rotated shard.
    Frozen,
}

/// One row of `logs`: a log's registration, apart from its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The log's ID in this database (`logs.id`, `log_id` elsewhere).
    pub id: i64,
    /// The API it speaks.
    pub api_version: ApiVersion,
    /// Active or frozen.
    pub state: LogState,
    /// Its checkpoint origin; `None` for a v1 log, whose origin is derived
    /// from the hostname and tree ID.
    pub origin: Option<String>,
}

/// One log of an API version as [`PgStore::shards`] lists it: a v1 shard,
/// or a v2 log (frozen ones, and the active one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogShard {
    /// Its `logs.id`.
    pub id: i64,
    /// Its checkpoint origin: a v2 log's; `None` for v1 (derived from the
    /// host name and tree ID).
    pub origin: Option<String>,
    /// Frozen by a rotation (else the active shard).
    pub frozen: bool,
    /// Its tree ID, once started.
    pub tree_id: Option<i64>,
    /// DER SPKI of its key, once started.
    pub public_key: Option<Vec<u8>>,
    /// Its tree size (final when frozen), once started.
    pub size: Option<u64>,
    /// When it was registered, RFC 3339 UTC.
    pub created_at: String,
    /// When it was frozen, RFC 3339 UTC.
    pub frozen_at: Option<String>,
}

/// What [`PgStore::rotate_v1`] or [`PgStore::rotate_v2`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The log frozen.
    pub frozen: i64,
    /// Its final tree size.
    pub frozen_size: u64,
    /// The new active log.
    pub active: i64,
}

/// What a store's commits check the lease against.
#[derive(Debug, Default)]
struct Fence {
    /// A lease was made for this store: commits are fenced from now on.
    enabled: AtomicBool,
    /// The epoch held, or -1 while the lease is not held.
    epoch: AtomicI64,
    /// The lease's length, in milliseconds.
    ttl_ms: AtomicI64,
    /// Until when the holder may sign: when the last successful renewal (by
    /// the keeper, or by a commit) was sent, plus the lease's length. `None`
    /// while not held.
    held_until: Mutex<Option<Instant>>,
}

impl Fence {
    /// Records a renewal sent at `sent`: never moves the deadline back.
    fn renewed(&self, sent: Instant, ttl: Duration) {
        let mut until = self.held_until.lock();
        let new = sent + ttl;
        if until.is_none_or(|old| old < new) {
            *until = Some(new);
        }
    }
}

/// The sequencer's lease, kept in the `sequencer_lease` row: a holder, an
/// expiry (by the database's clock) and an epoch that moves forward with
/// every change of holder. See [`super::lease::Lease`].
pub struct PgLease {
    pool: PgPool,
    /// The log whose `sequencer_lease` row this is.
    log_id: i64,
    fence: Arc<Fence>,
    /// Random, per process: who holds the lease.
    holder: String,
    ttl: Duration,
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("23")) => {
                StoreError::Corrupt(db.message().to_owned())
            }
            sqlx::Error::RowNotFound
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_) => StoreError::Corrupt(err.to_string()),
            _ => StoreError::Unavailable(err.to_string()),
        }
    }
}

/// Classifies a failed insert of entries or index keys: a data exception
/// (SQLSTATE class 22, such as 22021 for a NUL in text) or 54000 (an index
/// row over the btree limit) means the data itself can't be stored, so the
/// batch is `Rejected` rather than the database `Unavailable`. Which entry was
/// at fault the database does not say.
fn entry_insert_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db
            .code()
            .is_some_and(|c| c.starts_with("22") || c == "54000")
        {
            return StoreError::Rejected {
                reason: db.message().to_owned(),
                culprits: Vec::new(),
            };
        }
    }
    err.into()
}

impl PgStore {
    /// Opens a connection pool. Connections are made lazily, so this fails only
    /// on a malformed URL; [`PgStore::ping`] checks reachability.
    ///
    /// # Errors
    /// `Unavailable` for a URL that does not parse.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid database URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            log_id: DEFAULT_LOG,
            fence: Arc::default(),
            listener: Arc::default(),
        })
    }

    /// A handle on log `log_id` of the same database and pool, with a lease
    /// and notifications of its own. The log need not be registered yet
    /// ([`PgStore::register_log`]); until it is, it reads as empty, and
    /// [`LogWriter::init`] fails.
    #[must_use]
    pub fn for_log(&self, log_id: i64) -> Self {
        Self {
            pool: self.pool.clone(),
            log_id,
            fence: Arc::default(),
            listener: Arc::default(),
        }
    }

    /// The log this handle is scoped to.
    #[must_use]
    pub fn log_id(&self) -> i64 {
        self.log_id
    }

    /// Hashes `[start, end)` of tile level `level`, in order, read from the
    /// tiles that hold them. A tile missing in between is corruption; fewer
    /// hashes come back only past the stored end.
    async fn tile_hashes(&self, level: i16, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let width = u64::from(TILE_WIDTH);
        let rows = sqlx::query(
            "SELECT idx, hashes FROM tiles WHERE log_id = $3 AND level = $4 AND idx BETWEEN $1 AND $2 \
             ORDER BY idx",
        )
        .bind(to_i64(start / width))
        .bind(to_i64((end - 1) / width))
        .bind(self.log_id)
        .bind(level)
        .fetch_all(&self.pool)
        .await?;
        let mut hashes = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
        for (expected_tile, row) in (start / width..).zip(rows) {
            if to_u64(row.get(0))? != expected_tile {
                return Err(StoreError::Corrupt(format!(
                    "level-{level} tile {expected_tile} is missing"
                )));
            }
            let bytes: &[u8] = row.get(1);
            for (i, chunk) in (0u64..).zip(bytes.chunks_exact(32)) {
                if (start..end).contains(&(expected_tile * width + i)) {
                    hashes.push(to_hash(chunk)?);
                }
            }
        }
        Ok(hashes)
    }

    /// Every log in the database, by ID.
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be read; `Corrupt` for a row
    /// with an unknown version or state.
    pub async fn logs(&self) -> Result<Vec<LogRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, api_version, state, origin FROM logs ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                let api_version = match r.get::<&str, _>(1) {
                    "v1" => ApiVersion::V1,
                    "v2" => ApiVersion::V2,
                    other => return Err(StoreError::Corrupt(format!("api version {other}"))),
                };
                let state = match r.get::<&str, _>(2) {
                    "active" => LogState::Active,
                    "frozen" => LogState::Frozen,
                    other => return Err(StoreError::Corrupt(format!("log state {other}"))),
                };
                Ok(LogRecord {
                    id: r.get(0),
                    api_version,
                    state,
                    origin: r.get(3),
                })
            })
            .collect()
    }

    /// Registers a new active log with the next free ID, its own sequencer
    /// lease row, and returns a handle on it. Its identity and first
    /// checkpoint follow with [`LogWriter::init`] on that handle.
    ///
    /// # Errors
    /// `Conflict` if another log already has `origin`; `Unavailable` if the
    /// database cannot be written.
    pub async fn register_log(
        &self,
        api_version: ApiVersion,
        origin: Option<&str>,
    ) -> Result<Self, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The table lock makes concurrent registrations take turns for an ID.
        sqlx::query("LOCK TABLE logs IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO logs (id, api_version, origin) \
             SELECT coalesce(max(id), 0) + 1, $1, $2 FROM logs RETURNING id",
        )
        .bind(api_version.as_str())
        .bind(origin)
        .fetch_one(&mut *tx)
        .await?;
        insert_free_lease(&mut tx, id).await?;
        tx.commit().await?;
        Ok(self.for_log(id))
    }

    /// The ID of the one active v1 log: the shard that takes entries. A
    /// database made before rotation existed has log 1 only.
    ///
    /// # Errors
    /// `Corrupt` unless exactly one v1 log is active; `Unavailable` if the
    /// database cannot be read.
    pub async fn active_v1(&self) -> Result<i64, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM logs WHERE api_version = 'v1' AND state = 'active' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        match ids[..] {
            [id] => Ok(id),
            _ => Err(StoreError::Corrupt(format!(
                "{} active v1 logs (exactly one must be active)",
                ids.len()
            ))),
        }
    }

    /// Every v1 log (shard) in creation order: frozen ones first, then the
    /// active one, with what `tlog log list` and the trust configuration
    /// show.
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be read.
    pub async fn v1_shards(&self) -> Result<Vec<LogShard>, StoreError> {
        self.shards(ApiVersion::V1).await
    }

    /// Every log of `api` in creation order (frozen ones before the active
    /// one), as [`PgStore::v1_shards`].
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be read.
    pub async fn shards(&self, api: ApiVersion) -> Result<Vec<LogShard>, StoreError> {
        const RFC3339: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";
        let rows = sqlx::query(&format!(
            "SELECT l.id, l.state, i.tree_id, i.public_key, c.size, \
               to_char(l.created_at AT TIME ZONE 'UTC', {RFC3339}), \
               to_char(l.frozen_at AT TIME ZONE 'UTC', {RFC3339}), l.origin \
             FROM logs l LEFT JOIN log_identity i ON i.log_id = l.id \
               LEFT JOIN checkpoint c ON c.log_id = l.id \
             WHERE l.api_version = $1 ORDER BY l.id"
        ))
        .bind(api.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(LogShard {
                    id: r.get(0),
                    origin: r.get(7),
                    frozen: r.get::<&str, _>(1) == "frozen",
                    tree_id: r.get(2),
                    public_key: r.get(3),
                    size: r.get::<Option<i64>, _>(4).map(to_u64).transpose()?,
                    created_at: r.get(5),
                    frozen_at: r.get(6),
                })
            })
            .collect()
    }

    /// Whether this handle's log is frozen now (a rotation froze it).
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be read; `Corrupt` for a log
    /// that is not registered.
    pub async fn is_frozen(&self) -> Result<bool, StoreError> {
        let state: String = sqlx::query_scalar("SELECT state FROM logs WHERE id = $1")
            .bind(self.log_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(state == "frozen")
    }

    /// Rotates the v1 log, in one transaction: fences the active log's
    /// sequencer lease (so that no commit lands on it from now on: a commit
    /// in flight holds the lease row and is waited for; a later one finds
    /// another epoch and is `Fenced`), freezes it at its last signed
    /// checkpoint, and registers a new active v1 log with `identity` and its
    /// size-0 checkpoint `first`. Returns the frozen log's ID and final size
    /// and the new log's ID.
    ///
    /// # Errors
    /// `Conflict` when the active log was never started (it has no
    /// identity) or `identity`'s tree ID is taken; `Corrupt` unless exactly
    /// one v1 log is active; `Unavailable` if the database fails.
    pub async fn rotate_v1(
        &self,
        identity: &LogIdentity,
        first: &StoredCheckpoint,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (old, frozen_size) = freeze_active(&mut tx, ApiVersion::V1, None).await?;
        let new: i64 = sqlx::query_scalar(
            "INSERT INTO logs (id, api_version) SELECT max(id) + 1, 'v1' FROM logs RETURNING id",
        )
        .fetch_one(&mut *tx)
        .await?;
        insert_free_lease(&mut tx, new).await?;
        let taken: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM log_identity WHERE tree_id = $1)")
                .bind(identity.tree_id)
                .fetch_one(&mut *tx)
                .await?;
        if taken {
            return Err(StoreError::Conflict(format!(
                "tree ID {} is taken",
                identity.tree_id
            )));
        }
        sqlx::query("INSERT INTO log_identity (log_id, tree_id, public_key) VALUES ($1, $2, $3)")
            .bind(new)
            .bind(identity.tree_id)
            .bind(&identity.public_key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO checkpoint (log_id, size, root, note) VALUES ($1, $2, $3, $4)")
            .bind(new)
            .bind(to_i64(first.size))
            .bind(&first.root.0[..])
            .bind(&first.note)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rotation {
            frozen: old,
            frozen_size,
            active: new,
        })
    }

    /// Rotates the v2 log, as [`PgStore::rotate_v1`] does the v1 one: fences
    /// and freezes the active v2 log at its last signed checkpoint, and
    /// registers a new active v2 log of origin `origin`, which the first
    /// server configured with it (`v2.origin`, `v2.key_file`) creates. A v2
    /// origin names one log forever (its key ID hashes it): one used before
    /// is refused.
    ///
    /// # Errors
    /// `Conflict` when there is no started active v2 log, or `origin` is the
    /// active log's or an earlier one's; `Corrupt` for more than one active
    /// v2 log; `Unavailable` if the database fails.
    pub async fn rotate_v2(&self, origin: &str) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (old, frozen_size) = freeze_active(&mut tx, ApiVersion::V2, Some(origin)).await?;
        let used: Option<i64> = sqlx::query_scalar("SELECT id FROM logs WHERE origin = $1")
            .bind(origin)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(id) = used {
            return Err(StoreError::Conflict(format!(
                "origin {origin:?} is log {id}'s: a v2 origin names one log forever; \
                 hint: set v2.origin to a new one (for example with the year, as log2026-1)"
            )));
        }
        let new: i64 = sqlx::query_scalar(
            "INSERT INTO logs (id, api_version, origin) SELECT max(id) + 1, 'v2', $1 FROM logs \
             RETURNING id",
        )
        .bind(origin)
        .fetch_one(&mut *tx)
        .await?;
        insert_free_lease(&mut tx, new).await?;
        tx.commit().await?;
        Ok(Rotation {
            frozen: old,
            frozen_size,
            active: new,
        })
    }

    /// Freezes this log: from now on its state reads `frozen`. Writes are
    /// refused by the log above the store, which reads the state at start.
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be written.
    pub async fn freeze(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE logs SET state = 'frozen' WHERE id = $1")
            .bind(self.log_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The sequencer's lease on this database, lasting `ttl` from each
    /// renewal. From now on this store's commits succeed only under the epoch
    /// the lease holds.
    #[must_use]
    pub fn lease(&self, ttl: Duration) -> PgLease {
        self.fence.epoch.store(-1, Ordering::SeqCst);
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.fence.ttl_ms.store(ttl_ms, Ordering::Relaxed);
        self.fence.enabled.store(true, Ordering::SeqCst);
        PgLease {
            pool: self.pool.clone(),
            log_id: self.log_id,
            fence: Arc::clone(&self.fence),
            holder: random_holder(),
            ttl,
        }
    }

    /// Connects, checks that the database answers and applies migrations.
    ///
    /// # Errors
    /// `Unavailable` for a bad URL, an unreachable database or a failed
    /// migration.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(url, max_connections)?;
        store.ping().await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// `Unavailable` with the driver's reason.
    #[tracing::instrument(name = "db.ping", skip_all, fields(db.system = "postgresql"))]
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Pool connections as (idle, in use).
    #[must_use]
    pub fn connection_stats(&self) -> (u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (idle, self.pool.size().saturating_sub(idle))
    }

    /// Applies pending migrations from `migrations/`.
    ///
    /// # Errors
    /// `Unavailable` if the database is unreachable or a migration fails.
    #[tracing::instrument(name = "db.migrate", skip_all, fields(db.system = "postgresql"))]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("couldn't run migrations: {e}")))
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).expect("tree sizes stay below 2^63")
}

fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative index {n}")))
}

fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".to_owned()))?;
    Ok(Hash(array))
}

impl LogReader for PgStore {
    #[tracing::instrument(name = "db.identity", skip_all, fields(db.system = "postgresql"))]
    async fn identity(&self) -> Result<Option<LogIdentity>, StoreError> {
        let row = sqlx::query("SELECT tree_id, public_key FROM log_identity WHERE log_id = $1")
            .bind(self.log_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| LogIdentity {
            tree_id: r.get(0),
            public_key: r.get(1),
        }))
    }

    #[tracing::instrument(name = "db.checkpoint", skip_all, fields(db.system = "postgresql"))]
    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query("SELECT size, root, note FROM checkpoint WHERE log_id = $1")
            .bind(self.log_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredCheckpoint {
                size: to_u64(r.get(0))?,
                root: to_hash(r.get::<&[u8], _>(1))?,
                note: r.get(2),
            })
        })
        .transpose()
    }

    #[tracing::instrument(name = "db.entry", skip_all, fields(db.system = "postgresql", index = index))]
    async fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        let row =
            sqlx::query("SELECT body, integrated_time, set_signature FROM entries WHERE log_id = $2 AND idx = $1")
                .bind(to_i64(index))
                .bind(self.log_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| StoredEntry {
            index,
            body: r.get(0),
            integrated_time: r.get(1),
            set: r.get(2),
        }))
    }

    #[tracing::instrument(name = "db.leaf_hashes", skip_all, fields(db.system = "postgresql", start = start, end = end))]
    async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        self.tile_hashes(0, start, end).await
    }

    async fn block_hashes(&self, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        // Level-1 tiles hold the level-8 hashes: one row per 65,536 leaves.
        self.tile_hashes(1, start, end).await
    }

    #[tracing::instrument(name = "db.find_leaves", skip_all, fields(db.system = "postgresql"))]
    async fn find_leaves(&self, leaves: &[Hash]) -> Result<Vec<Option<u64>>, StoreError> {
        if leaves.is_empty() {
            return Ok(Vec::new());
        }
        // (log_id, leaf_hash) is UNIQUE, so this is one index probe per leaf.
        let wanted: Vec<&[u8]> = leaves.iter().map(|l| l.0.as_slice()).collect();
        let rows = sqlx::query(
            "SELECT leaf_hash, idx FROM entries WHERE log_id = $2 AND leaf_hash = ANY($1)",
        )
        .bind(&wanted)
        .bind(self.log_id)
        .fetch_all(&self.pool)
        .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let leaf: &[u8] = row.get(0);
            found.insert(to_hash(leaf)?.0, to_u64(row.get(1))?);
        }
        Ok(leaves.iter().map(|l| found.get(&l.0).copied()).collect())
    }

    #[tracing::instrument(name = "db.search", skip_all, fields(db.system = "postgresql"))]
    async fn search(
        &self,
        keys: &[String],
        matching: KeyMatch,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let lists = match matching {
            // The union's newest are among each key's newest: one backward
            // scan of the primary key per key, each stopped at the limit.
            KeyMatch::Any => {
                let mut lists = Vec::with_capacity(keys.len());
                for key in keys {
                    let rows: Vec<i64> = sqlx::query_scalar(
                        "SELECT entry_idx FROM index_keys WHERE log_id = $3 AND key = $1 \
                         ORDER BY entry_idx DESC LIMIT $2",
                    )
                    .bind(key)
                    .bind(limit_sql)
                    .bind(self.log_id)
                    .fetch_all(&self.pool)
                    .await?;
                    lists.push(rows);
                }
                lists
            }
            // (key, entry_idx) is the primary key, so an entry that wrote
            // every key has one row per key.
            KeyMatch::All => {
                let count = i64::try_from(keys.len()).unwrap_or(i64::MAX);
                let rows: Vec<i64> = sqlx::query_scalar(
                    "SELECT entry_idx FROM index_keys WHERE log_id = $4 AND key = ANY($1) \
                     GROUP BY entry_idx HAVING count(*) = $2 \
                     ORDER BY entry_idx DESC LIMIT $3",
                )
                .bind(&keys)
                .bind(count)
                .bind(limit_sql)
                .bind(self.log_id)
                .fetch_all(&self.pool)
                .await?;
                vec![rows]
            }
        };
        let lists = lists
            .into_iter()
            .map(|rows| {
                let mut list = rows
                    .into_iter()
                    .map(to_u64)
                    .collect::<Result<Vec<_>, _>>()?;
                list.reverse();
                Ok(list)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(newest_of_union(lists.iter().map(Vec::as_slice), limit))
    }

    async fn entry_page(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(StoredEntry, Vec<String>)>, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let (first, last) = (to_i64(start), to_i64(end - 1));
        let rows = sqlx::query(
            "SELECT idx, body, integrated_time, set_signature FROM entries \
             WHERE log_id = $3 AND idx BETWEEN $1 AND $2 ORDER BY idx",
        )
        .bind(first)
        .bind(last)
        .bind(self.log_id)
        .fetch_all(&self.pool)
        .await?;
        let keys = sqlx::query(
            "SELECT entry_idx, key FROM index_keys WHERE log_id = $3 \
             AND entry_idx BETWEEN $1 AND $2 ORDER BY entry_idx, key",
        )
        .bind(first)
        .bind(last)
        .bind(self.log_id)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = keys.into_iter().peekable();
        let mut page = Vec::with_capacity(rows.len());
        for (expected, row) in (start..).zip(rows) {
            let index = to_u64(row.get(0))?;
            if index != expected {
                return Err(StoreError::Corrupt(format!("entry {expected} is missing")));
            }
            let mut entry_keys = Vec::new();
            while let Some(key) = keys.next_if(|k| k.get::<i64, _>(0) == row.get::<i64, _>(0)) {
                entry_keys.push(key.get(1));
            }
            let entry = StoredEntry {
                index,
                body: row.get(1),
                integrated_time: row.get(2),
                set: row.get(3),
            };
            page.push((entry, entry_keys));
        }
        Ok(page)
    }
}

impl LogWriter for PgStore {
    #[tracing::instrument(name = "db.init", skip_all, fields(db.system = "postgresql"))]
    async fn init(
        &self,
        identity: &LogIdentity,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO log_identity (log_id, tree_id, public_key) VALUES ($3, $1, $2)")
            .bind(identity.tree_id)
            .bind(&identity.public_key)
            .bind(self.log_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO checkpoint (log_id, size, root, note) VALUES ($4, $1, $2, $3)")
            .bind(to_i64(checkpoint.size))
            .bind(&checkpoint.root.0[..])
            .bind(&checkpoint.note)
            .bind(self.log_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.commit", skip_all, fields(db.system = "postgresql", old_size = old_size, new_size = new.size, entries = batch.entries.len(), tiles = batch.tiles.len()))]
    async fn commit(
        &self,
        old_size: u64,
        batch: &Batch,
        new: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        // Refuse what no store keeps before touching the database.
        check_index_keys(&batch.entries)?;
        // One statement, so one round trip and its own transaction: on a
        // loaded box each round trip of a multi-statement transaction cost
        // about a millisecond, and a batch commit took seven of them. Its
        // parts run in this order of dependence, each only if the one before
        // it changed a row:
        // 1. Fencing: the lease row is updated (and so locked to COMMIT) only
        //    under the epoch held, so no one takes the lease over while the
        //    batch is written, and a holder whose lease was taken over writes
        //    nothing. It renews the lease too: a leader that commits keeps it
        //    even when the keeper's own renewal waits behind a slow commit.
        // 2. The checkpoint's compare-and-swap, which takes the row lock that
        //    serialises writers; a stale writer writes nothing. It also wakes
        //    the processes that follow this log, at COMMIT.
        // 3. Entries, index keys and tiles.
        // A writer paused after sending it (SIGSTOP, a VM freeze) cannot
        // hold the lease row: the database runs the statement to its end
        // without the client.
        let sent = Instant::now();
        let fenced = self.fence.enabled.load(Ordering::SeqCst);
        let epoch = self.fence.epoch.load(Ordering::SeqCst);
        if fenced && epoch < 0 {
            return Err(StoreError::Fenced);
        }
        let rows = BatchRows::of(batch);
        let (held, swapped): (i64, i64) = sqlx::query_as(if fenced {
            COMMIT_FENCED
        } else {
            COMMIT_UNFENCED
        })
        .bind(self.log_id)
        .bind(to_i64(old_size))
        .bind(to_i64(new.size))
        .bind(&new.root.0[..])
        .bind(&new.note)
        .bind(channel(MOVED_CHANNEL, self.log_id))
        .bind(&rows.idx)
        .bind(&rows.leaf)
        .bind(&rows.body)
        .bind(&rows.time)
        .bind(&rows.set)
        .bind(&rows.keys)
        .bind(&rows.key_idx)
        .bind(&rows.tile_level)
        .bind(&rows.tile_idx)
        .bind(&rows.tile_width)
        .bind(&rows.tile_hashes)
        .bind(epoch)
        .bind(self.fence.ttl_ms.load(Ordering::Relaxed))
        .fetch_one(&self.pool)
        .await
        // Only what the inserts refuse is classified `Rejected`; anything else
        // (a lost connection above all) has an unknown outcome.
        .map_err(entry_insert_error)?;
        if held != 1 {
            return Err(StoreError::Fenced);
        }
        if swapped != 1 {
            return Err(StoreError::Conflict(format!(
                "checkpoint is no longer at size {old_size}"
            )));
        }
        if fenced {
            let ttl = u64::try_from(self.fence.ttl_ms.load(Ordering::Relaxed)).unwrap_or(0);
            self.fence.renewed(sent, Duration::from_millis(ttl));
        }
        Ok(())
    }
}

/// The rest of a batch commit, after `held`: the checkpoint's
/// compare-and-swap on `held`, then the rows on `swapped`. `$1` log, `$2`/`$3`
/// old and new size, `$4` root, `$5` note, `$6` channel, `$7`-`$11` entries,
/// `$12`-`$13` index keys, `$14`-`$17` tiles. A full tile never changes; a
/// partial one is only ever replaced by a wider one.
macro_rules! commit_rest {
    () => {
        "swapped AS (UPDATE checkpoint SET size = $3, root = $4, note = $5 \
           WHERE log_id = $1 AND size = $2 AND EXISTS (SELECT 1 FROM held) \
           RETURNING pg_notify($6, $3::text)), \
         new_entries AS (INSERT INTO entries (log_id, idx, leaf_hash, body, integrated_time, set_signature) \
           SELECT $1, * FROM UNNEST($7::int8[], $8::bytea[], $9::bytea[], $10::int8[], $11::bytea[]) \
           WHERE EXISTS (SELECT 1 FROM swapped)), \
         new_keys AS (INSERT INTO index_keys (log_id, key, entry_idx) \
           SELECT $1, * FROM UNNEST($12::text[], $13::int8[]) WHERE EXISTS (SELECT 1 FROM swapped) \
           ON CONFLICT DO NOTHING), \
         new_tiles AS (INSERT INTO tiles (log_id, level, idx, width, hashes) \
           SELECT $1, * FROM UNNEST($14::int2[], $15::int8[], $16::int2[], $17::bytea[]) \
           WHERE EXISTS (SELECT 1 FROM swapped) \
           ON CONFLICT (log_id, level, idx) DO UPDATE SET width = EXCLUDED.width, hashes = EXCLUDED.hashes \
           WHERE tiles.width < EXCLUDED.width) \
         SELECT (SELECT count(*) FROM held), (SELECT count(*) FROM swapped)"
    };
}

/// A batch commit under a lease (see [`PgStore::commit`]): `$18` is the
/// epoch held, `$19` the lease's length in milliseconds.
const COMMIT_FENCED: &str = concat!(
    "WITH held AS (UPDATE sequencer_lease \
       SET expires_at = clock_timestamp() + $19 * interval '1 millisecond' \
       WHERE log_id = $1 AND epoch = $18 RETURNING 1), ",
    commit_rest!()
);

/// A batch commit of a store made without a lease (tests, tools): the same
/// with `held` always one row. `$18`/`$19` are sent and unused.
const COMMIT_UNFENCED: &str = concat!(
    "WITH held AS (SELECT 1 WHERE $18::int8 IS NOT NULL AND $19::int8 IS NOT NULL), ",
    commit_rest!()
);

/// The first half of a rotation, in `tx`: takes turns with other
/// rotations and registrations (the table lock, as in `register_log`),
/// finds the one active log of `api` (which must not already have the
/// origin `next_origin`), fences its lease (a new epoch no process holds,
/// and a holder that never expires, so no one takes the lease again; a
/// commit holding the row is waited for) and freezes it. Returns its ID and
/// final size.
async fn freeze_active(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    api: ApiVersion,
    next_origin: Option<&str>,
) -> Result<(i64, u64), StoreError> {
    sqlx::query("LOCK TABLE logs IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await?;
    let active: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT id, origin FROM logs WHERE api_version = $1 AND state = 'active' ORDER BY id",
    )
    .bind(api.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let name = api.as_str();
    let (old, old_origin) = match &active[..] {
        [one] => one.clone(),
        [] if api == ApiVersion::V2 => {
            return Err(StoreError::Conflict(
                "there is no v2 log to rotate: serve one with v2.key_file first".into(),
            ))
        }
        _ => {
            return Err(StoreError::Corrupt(format!(
                "{} active {name} logs (exactly one must be active)",
                active.len()
            )))
        }
    };
    if next_origin.is_some() && old_origin.as_deref() == next_origin {
        return Err(StoreError::Conflict(format!(
            "the active v2 log already has origin {:?}; hint: set v2.origin (and \
             v2.key_file) to the new log's before rotating",
            old_origin.unwrap_or_default()
        )));
    }
    sqlx::query(
        "UPDATE sequencer_lease SET epoch = epoch + 1, holder = 'frozen', \
         expires_at = 'infinity' WHERE log_id = $1",
    )
    .bind(old)
    .execute(&mut **tx)
    .await?;
    let final_size: Option<i64> =
        sqlx::query_scalar("SELECT size FROM checkpoint WHERE log_id = $1")
            .bind(old)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(final_size) = final_size else {
        return Err(StoreError::Conflict(format!(
            "the active {name} log was never started: serve it once before rotating"
        )));
    };
    sqlx::query("UPDATE logs SET state = 'frozen', frozen_at = now() WHERE id = $1")
        .bind(old)
        .execute(&mut **tx)
        .await?;
    Ok((old, to_u64(final_size)?))
}

/// The sequencer lease row of a newly registered log: free, epoch 0.
async fn insert_free_lease(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    log_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sequencer_lease (log_id, epoch, holder, expires_at) \
         VALUES ($1, 0, '', '-infinity')",
    )
    .bind(log_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A batch as the columns [`PgStore::commit`] binds.
struct BatchRows<'a> {
    idx: Vec<i64>,
    leaf: Vec<&'a [u8]>,
    body: Vec<&'a [u8]>,
    time: Vec<i64>,
    set: Vec<&'a [u8]>,
    keys: Vec<&'a str>,
    key_idx: Vec<i64>,
    tile_level: Vec<i16>,
    tile_idx: Vec<i64>,
    tile_width: Vec<i16>,
    tile_hashes: Vec<&'a [u8]>,
}

impl<'a> BatchRows<'a> {
    fn of(batch: &'a Batch) -> Self {
        let n = batch.entries.len();
        let mut rows = Self {
            idx: Vec::with_capacity(n),
            leaf: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
            time: Vec::with_capacity(n),
            set: Vec::with_capacity(n),
            keys: Vec::new(),
            key_idx: Vec::new(),
            tile_level: Vec::with_capacity(batch.tiles.len()),
            tile_idx: Vec::with_capacity(batch.tiles.len()),
            tile_width: Vec::with_capacity(batch.tiles.len()),
            tile_hashes: Vec::with_capacity(batch.tiles.len()),
        };
        for new in &batch.entries {
            let e = &new.entry;
            rows.idx.push(to_i64(e.index));
            rows.leaf.push(&new.leaf_hash.0[..]);
            rows.body.push(&e.body[..]);
            rows.time.push(e.integrated_time);
            rows.set.push(&e.set[..]);
            for key in &new.index_keys {
                rows.keys.push(key.as_str());
                rows.key_idx.push(to_i64(e.index));
            }
        }
        for (tile, bytes) in &batch.tiles {
            rows.tile_level.push(i16::from(tile.level));
            rows.tile_idx.push(to_i64(tile.index));
            rows.tile_width
                .push(i16::try_from(tile.width).expect("tile width <= 256"));
            rows.tile_hashes.push(&bytes[..]);
        }
        rows
    }
}

impl Shared for PgStore {
    fn is_shared(&self) -> bool {
        true
    }

    #[tracing::instrument(name = "db.enqueue", skip_all, fields(db.system = "postgresql"))]
    async fn enqueue(&self, entry: &QueuedEntry) -> Result<i64, StoreError> {
        // Not flushed at COMMIT (synchronous_commit off): a queued entry is
        // not acknowledged, so a crash may lose it. No NOTIFY: Postgres
        // serialises every transaction that sends one on a database-wide
        // lock held through its COMMIT, so with a NOTIFY per queued entry
        // the followers' enqueues and the leader's batch commits queued
        // behind each other (two processes made about 500 creates/s where
        // one made 3,800). The leader polls the queue instead.
        let id: i64 = sqlx::query_scalar(
            "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)), \
             queued AS (INSERT INTO submissions (log_id, kind, body, index_keys) \
               VALUES ($4, $1, $2, $3) RETURNING id) \
             SELECT id FROM queued, quick",
        )
        .bind(&entry.kind)
        .bind(&entry.body)
        .bind(&entry.index_keys)
        .bind(self.log_id)
        .fetch_one(&self.pool)
        .await
        .map_err(entry_insert_error)?;
        Ok(id)
    }

    #[tracing::instrument(name = "db.claim", skip_all, fields(db.system = "postgresql"))]
    async fn claim(&self, limit: usize) -> Result<Vec<(i64, QueuedEntry)>, StoreError> {
        // Not flushed at COMMIT either: rows a crash brings back are taken
        // again, and the sequencer drops what is already in the log.
        let rows = sqlx::query(
            "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)) \
             DELETE FROM submissions WHERE EXISTS (SELECT 1 FROM quick) AND id IN \
               (SELECT id FROM submissions WHERE log_id = $2 ORDER BY id LIMIT $1 \
                FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, body, index_keys",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(self.log_id)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: Vec<(i64, QueuedEntry)> = rows
            .into_iter()
            .map(|r| {
                let entry = QueuedEntry {
                    kind: r.get(1),
                    body: r.get(2),
                    index_keys: r.get(3),
                };
                (r.get(0), entry)
            })
            .collect();
        claimed.sort_by_key(|(id, _)| *id);
        Ok(claimed)
    }

    async fn refuse(&self, id: i64, refusal: &Refusal) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel(REFUSED_CHANNEL, self.log_id))
            .bind(refusal.encode(id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn next_event(&self, timeout: Duration) -> Result<Option<Event>, StoreError> {
        let mut listener = self.listener.lock().await;
        if listener.is_none() {
            let mut new = PgListener::connect_with(&self.pool).await?;
            let channels = [MOVED_CHANNEL, QUEUED_CHANNEL, REFUSED_CHANNEL]
                .map(|base| channel(base, self.log_id));
            new.listen_all(channels.iter().map(String::as_str)).await?;
            *listener = Some(new);
        }
        let listening = listener.as_mut().expect("listener was just set");
        let Ok(received) = tokio::time::timeout(timeout, listening.recv()).await else {
            return Ok(None);
        };
        let notification = received?;
        let base = match notification.channel().rsplit_once('_') {
            Some((base, id)) if id.parse::<i64>().is_ok() => base,
            _ => notification.channel(),
        };
        let event = match base {
            MOVED_CHANNEL => Event::Moved,
            QUEUED_CHANNEL => Event::Queued,
            _ => match Refusal::decode(notification.payload()) {
                Some((id, refusal)) => Event::Refused { id, refusal },
                None => return Ok(None),
            },
        };
        Ok(Some(event))
    }
}

/// A random holder name for this process's lease.
fn random_holder() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random source");
    hex::encode(bytes)
}

impl super::lease::Held for PgLease {
    fn is_held(&self) -> bool {
        self.fence
            .held_until
            .lock()
            .is_some_and(|until| Instant::now() < until)
    }
}

impl super::lease::Lease for PgLease {
    #[tracing::instrument(name = "db.lease.acquire", skip_all, fields(db.system = "postgresql"))]
    async fn acquire(&self) -> Result<Option<u64>, StoreError> {
        let sent = Instant::now();
        let held = self.fence.epoch.load(Ordering::SeqCst);
        // Renew our own lease, or take one that has run out (by the
        // database's clock, the one clock every process shares).
        let row: Result<Option<i64>, _> = sqlx::query_scalar(
            "UPDATE sequencer_lease SET \
               epoch = CASE WHEN holder = $1 AND epoch = $2 THEN epoch ELSE epoch + 1 END, \
               holder = $1, \
               expires_at = clock_timestamp() + $3 * interval '1 millisecond' \
             WHERE log_id = $4 AND ((holder = $1 AND epoch = $2) OR expires_at < clock_timestamp()) \
             RETURNING epoch",
        )
        .bind(&self.holder)
        .bind(held)
        .bind(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX))
        .bind(self.log_id)
        .fetch_optional(&self.pool)
        .await;
        let row = match row {
            Ok(row) => row,
            Err(err) => {
                // Unknown outcome: keep what we had until its time runs out.
                return Err(err.into());
            }
        };
        if let Some(epoch) = row {
            if self.fence.epoch.swap(epoch, Ordering::SeqCst) != epoch {
                // A new tenure: nothing earlier counts.
                *self.fence.held_until.lock() = None;
            }
            self.fence.renewed(sent, self.ttl);
            Ok(Some(to_u64(epoch)?))
        } else {
            self.fence.epoch.store(-1, Ordering::SeqCst);
            *self.fence.held_until.lock() = None;
            Ok(None)
        }
    }

    #[tracing::instrument(name = "db.lease.release", skip_all, fields(db.system = "postgresql"))]
    async fn release(&self) -> Result<(), StoreError> {
        let epoch = self.fence.epoch.swap(-1, Ordering::SeqCst);
        *self.fence.held_until.lock() = None;
        if epoch < 0 {
            return Ok(());
        }
        sqlx::query(
            "UPDATE sequencer_lease SET expires_at = '-infinity' \
             WHERE log_id = $3 AND holder = $1 AND epoch = $2",
        )
        .bind(&self.holder)
        .bind(epoch)
        .bind(self.log_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn renew_every(&self) -> Duration {
        self.ttl / 4
    }
}
