//! The one typed configuration: an optional YAML file, then `TLOG_`-prefixed
//! environment variables (`__` separates nested keys, e.g.
//! `TLOG_BATCH__MAX_ENTRIES`). Unknown keys are an error, so a typo fails at
//! start-up instead of being ignored. Every default is a named constant.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Yaml};
use figment::Figment;
use secrecy::SecretString;
use serde::Deserialize;

mod monitor;
pub use monitor::{MonitorConfig, WatchConfig, WatchIdentityConfig};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default public host name; set it to the name clients use.
pub const DEFAULT_HOSTNAME: &str = "localhost";
/// Default path of the log's signing key.
pub const DEFAULT_KEY_FILE: &str = "tlog-key.pem";
/// Default largest batch the sequencer commits at once.
pub const DEFAULT_BATCH_MAX_ENTRIES: usize = 512;
/// Default time the sequencer lingers for a batch to fill after taking what was
/// queued. 0 is pure group commit: the next batch is whatever arrived while
/// the previous one was committing.
pub const DEFAULT_BATCH_INTERVAL_MS: u64 = 0;
/// Default number of submissions waiting for the sequencer before 503.
pub const DEFAULT_POOL_CAPACITY: usize = 4096;
/// Default canonical bytes waiting for the sequencer before 503: 64 MiB, far
/// above a full pool of ordinary entries (about 1 KiB each), but a bound on
/// what large bodies can pin in memory.
pub const DEFAULT_POOL_MAX_BYTES: usize = 64 << 20;
/// Default canonical bytes at which a batch closes: 8 MiB, so a batch of
/// large bodies stays one modest transaction; 512 ordinary entries are
/// well under it.
pub const DEFAULT_BATCH_MAX_BYTES: usize = 8 << 20;
/// Default request body limit: 32 MiB (rekor-v1.md G-12).
pub const DEFAULT_MAX_REQUEST_BODY: usize = 32 << 20;
/// Default Postgres connection pool size.
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 16;
/// Default length of the sequencer lease, in milliseconds: failover takes
/// at most about this long.
pub const DEFAULT_LEASE_TTL_MS: u64 = 3_000;
/// Default address of the Prometheus metrics endpoint.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:2112";
/// Default grace period for in-flight requests on SIGTERM, in seconds.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// Default time a client has to send its request head, in milliseconds.
pub const DEFAULT_REQUEST_HEADER_TIMEOUT_MS: u64 = 5_000;
/// Default time a client has to send its request body once the head is in,
/// in milliseconds (a 32 MiB body at 10 Mbit/s fits).
pub const DEFAULT_REQUEST_BODY_TIMEOUT_MS: u64 = 30_000;

/// Default `unread_body_linger_ms`.
pub const DEFAULT_UNREAD_BODY_LINGER_MS: u64 = 1000;
/// Default `unread_body_drain_bytes_per_second`: 64 MiB, two refused bodies
/// at the default 32 MiB limit a second, drained for all clients together.
pub const DEFAULT_UNREAD_BODY_DRAIN_BYTES_PER_SECOND: u64 = 64 << 20;
/// Default validation jobs that may wait, per validation thread.
pub const DEFAULT_VALIDATION_QUEUE_PER_THREAD: usize = 64;

/// Default `validation.large_bytes_per_second`: 64 MiB, two bodies at the
/// default 32 MiB limit, or a few hundred large attestations, a second.
pub const DEFAULT_LARGE_BODY_BYTES_PER_SECOND: u64 = 64 << 20;
/// Default idle keep-alive for client connections, in seconds.
pub const DEFAULT_KEEP_ALIVE_SECS: u64 = 75;
/// Default memory budget for cached entries, in bytes.
pub const DEFAULT_ENTRY_CACHE_BYTES: u64 = 256 << 20;
/// Default tile-cache budget: 64 MiB, about 3,800 level-0 tiles (a million leaves).
pub const DEFAULT_TILE_CACHE_BYTES: u64 = 64 << 20;
/// Default directory of the embedded log, used when `database_url` is unset.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default interval at which a replica checks its file for a new snapshot.
pub const DEFAULT_REPLICA_POLL_INTERVAL_MS: u64 = 5000;

/// Configuration of `tlog serve` and the commands that share its settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the Rekor API listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Public host name of the log. It is the checkpoint signer name and the
    /// first half of the origin `<hostname> - <treeID>`; sigstore-js requires
    /// it to be a substring of the URL clients use (rekor-v1.md C-12).
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Postgres URL. Without it, `serve` keeps the log in `data_dir`.
    /// Required by `migrate` and `import`.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Directory of the embedded log (its `db.jsonl` journal), used by
    /// `serve` and `export` when `database_url` is not set.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Path of the PKCS#8 PEM ECDSA P-256 signing key (`tlog keygen` writes one),
    /// used when `signer.kind` is `file`.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// Where the log key lives: `key_file`, or a PKCS#11 token.
    #[serde(default)]
    pub signer: SignerConfig,
    /// The Rekor v2 log beside the v1 one (issue 14), off unless `v2.key_file` is set.
    #[serde(default)]
    pub v2: V2Config,
    /// Postgres connection pool size.
    #[serde(default = "default_db_max_connections")]
    pub db_max_connections: u32,
    /// With Postgres: milliseconds the sequencer's lease lasts after each
    /// renewal (renewed every quarter of it). When the leader dies, another
    /// `tlog serve` on the same database takes over after at most this long.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// Largest accepted request body in bytes; larger bodies get 413.
    #[serde(default = "default_max_request_body")]
    pub max_request_body: usize,
    /// Address of the Prometheus `GET /metrics` endpoint (a separate port).
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// Seconds that in-flight requests get to finish after SIGTERM.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Milliseconds a client has to send its request head before 408.
    #[serde(default = "default_request_header_timeout_ms")]
    pub request_header_timeout_ms: u64,
    /// Milliseconds a client has to send its request body after the head;
    /// past it the request gets 408 and the connection is closed.
    #[serde(default = "default_request_body_timeout_ms")]
    pub request_body_timeout_ms: u64,
    /// Milliseconds the server goes on reading, and throwing away, the rest
    /// of a body it answered without reading (a 413, or a 503 from a full
    /// validation lane) before it closes the connection, so that the client
    /// can read the answer instead of a reset. Every byte read then costs a
    /// copy, so a flood of refused 32 MiB bodies would keep the cores busy
    /// for nothing; 0 closes at once.
    #[serde(default = "default_unread_body_linger_ms")]
    pub unread_body_linger_ms: u64,
    /// Bytes a second of such unread bodies the server drains, for all
    /// connections together. A body whose rest does not fit is not drained:
    /// the answer is still sent, but the connection reads no more and closes
    /// once it is out, so the client may see a reset after the answer. This
    /// bounds what a flood of refused bodies costs. 0: drain every body.
    #[serde(default = "default_unread_body_drain_bytes_per_second")]
    pub unread_body_drain_bytes_per_second: u64,
    /// Seconds an idle client connection is kept open.
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// Memory budget for entries served from memory, in bytes.
    #[serde(default = "default_entry_cache_bytes")]
    pub entry_cache_bytes: u64,
    /// Memory budget for level-0 tiles (read for proofs and leaf hashes) and
    /// leaf-hash look-ups (a quarter of it), in bytes.
    #[serde(default = "default_tile_cache_bytes")]
    pub tile_cache_bytes: u64,
    /// Sequencer batching.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Submission pool.
    #[serde(default)]
    pub pool: PoolConfig,
    /// The pool that validates entries off the HTTP workers.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// Optional per-client rate limit on the API.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Entry kinds.
    #[serde(default)]
    pub entries: EntriesConfig,
    /// Read-only replica (`tlog replica`).
    #[serde(default)]
    pub replica: ReplicaConfig,
    /// Log monitor (`tlog monitor`).
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// Who may write: off unless a rule is set (see `policy`).
    #[serde(default)]
    pub write_policy: WritePolicyConfig,
    /// OTLP/gRPC endpoint spans are exported to, e.g. `http://collector:4317`.
    /// Unset: `OTEL_EXPORTER_OTLP_ENDPOINT` decides; neither: no export.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

/// The Rekor v2 log (C2SP tlog-tiles) that runs beside the v1 log, in the
/// same store as its own log (rekor-v2-tiles.md).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct V2Config {
    /// PKCS#8 PEM Ed25519 key (`tlog keygen --algorithm ed25519 --out FILE`).
    /// Unset: no v2 log, and the v2 routes answer 404.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The checkpoint origin and key name (K-01): the scheme-less base URL of
    /// the v2 log. Defaults to `hostname`.
    #[serde(default)]
    pub origin: Option<String>,
    /// C2SP tlog-policy file naming the witnesses asked to cosign each
    /// checkpoint and the quorum (docs/witnessing.md). Unset: no witnessing.
    #[serde(default)]
    pub witness_policy: Option<PathBuf>,
    /// Answer a create only once a checkpoint that includes it met the
    /// quorum (else 503 with Retry-After). Default false: fail-open.
    #[serde(default)]
    pub witness_fail_closed: bool,
    /// Bound on each witness's part of a round (all its tries), in ms.
    #[serde(default = "default_witness_timeout_ms")]
    pub witness_timeout_ms: u64,
    /// PEM CA certificates trusted besides the system's for `https://`
    /// witnesses.
    #[serde(default)]
    pub witness_ca_file: Option<PathBuf>,
}

fn default_witness_timeout_ms() -> u64 {
    1000
}

impl Default for V2Config {
    fn default() -> Self {
        Self {
            key_file: None,
            origin: None,
            witness_policy: None,
            witness_fail_closed: false,
            witness_timeout_ms: default_witness_timeout_ms(),
            witness_ca_file: None,
        }
    }
}

impl V2Config {
    /// The origin: `v2.origin`, else `hostname`.
    #[must_use]
    pub fn origin<'a>(&'a self, hostname: &'a str) -> &'a str {
        self.origin.as_deref().unwrap_or(hostname)
    }
}

/// Where the log's private key lives (issue 16).
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// `file` (default): `key_file`. `pkcs11`: a key on a token, `signer.pkcs11`.
    #[serde(default)]
    pub kind: SignerKind,
    /// The token and key, for `kind: pkcs11` and `tlog keygen --pkcs11`.
    #[serde(default)]
    pub pkcs11: Pkcs11Config,
}

/// The kinds of [`SignerConfig`].
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignerKind {
    /// A PKCS#8 PEM key file (`key_file`).
    #[default]
    File,
    /// A key that stays on a PKCS#11 token.
    Pkcs11,
}

/// A PKCS#11 token and the key pair on it. Every field but `sessions` is
/// required for `signer.kind: pkcs11`.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the vendor's PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    #[serde(default)]
    pub module: Option<PathBuf>,
    /// Label of the token (`CK_TOKEN_INFO.label`).
    #[serde(default)]
    pub token_label: Option<String>,
    /// `CKA_LABEL` of the key pair (private and public key objects).
    #[serde(default)]
    pub key_label: Option<String>,
    /// File holding the user PIN (one line; a trailing newline is ignored).
    /// The PIN is a secret: it is never logged.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Sessions signing in parallel. Unset: the number of cores.
    #[serde(default)]
    pub sessions: Option<usize>,
}

impl Pkcs11Config {
    /// Sessions signing in parallel, defaulted.
    #[must_use]
    pub fn sessions(&self) -> usize {
        self.sessions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Checks that every required field is set, naming the first that is not.
    ///
    /// # Errors
    /// `ConfigError::Invalid` naming the setting.
    pub fn check_complete(&self) -> Result<(), ConfigError> {
        let missing = [
            ("module", self.module.is_none()),
            ("token_label", self.token_label.is_none()),
            ("key_label", self.key_label.is_none()),
            ("pin_file", self.pin_file.is_none()),
        ];
        if let Some((name, _)) = missing.iter().find(|(_, absent)| *absent) {
            return Err(ConfigError::Invalid(format!(
                "signer.pkcs11.{name} is required for a PKCS#11 key"
            )));
        }
        if self.sessions == Some(0) {
            return Err(ConfigError::Invalid(
                "signer.pkcs11.sessions must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Which entry kinds may be written (rekor-v1.md T-01 `--enabled_entry_types`).
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct EntriesConfig {
    /// Kind names (`hashedrekord`, `dsse`, `intoto`, `rekord`) refused on
    /// `POST /api/v1/log/entries` with 400. Reads and searches still work.
    /// An unknown name fails start-up. Env: `TLOG_ENTRIES__DISABLED_KINDS=[dsse,intoto]`.
    #[serde(default)]
    pub disabled_kinds: Vec<String>,
}

impl EntriesConfig {
    /// The disabled kinds, already validated.
    ///
    /// # Panics
    /// If called on a config that did not pass [`Config::validate`].
    #[must_use]
    pub fn disabled(&self) -> Vec<crate::entries::Kind> {
        self.disabled_kinds
            .iter()
            .map(|name| crate::entries::Kind::from_name(name).expect("validated kind name"))
            .collect()
    }
}

/// Which signers may add entries, for private logs. Every rule is off by
/// default; with none set, behaviour is Rekor's. Files are read at start-up
/// and a malformed one stops it, naming the setting.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct WritePolicyConfig {
    /// PEM file of `PUBLIC KEY` blocks: signatures by these keys (bare, or in
    /// a certificate) may be logged.
    #[serde(default)]
    pub allowed_keys: Option<PathBuf>,
    /// PEM file of CA certificates (your Fulcio's root and intermediates): a
    /// certificate signer that chains to one may be logged.
    #[serde(default)]
    pub trusted_roots: Option<PathBuf>,
    /// Identities a certificate from `trusted_roots` must have (needs
    /// `trusted_roots`); empty admits every such certificate.
    #[serde(default)]
    pub allowed_identities: Vec<IdentityConfig>,
    /// File of bearer tokens, one a line; when set, a create must send
    /// `Authorization: Bearer <token>` with one of them, or get 401.
    #[serde(default)]
    pub bearer_tokens_file: Option<PathBuf>,
}

/// One allowed certificate identity: a SAN (exact, or a regular expression
/// matching the whole SAN) and the OIDC issuer of Fulcio's extension.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The exact SAN (an email, URI, ...).
    #[serde(default)]
    pub san: Option<String>,
    /// A regular expression (Rust `regex` syntax) the whole SAN must match.
    #[serde(default)]
    pub san_regex: Option<String>,
    /// The exact OIDC issuer URL, e.g. `https://token.actions.githubusercontent.com`.
    pub issuer: String,
}

/// A token bucket per client IP address (IPv6 per /56). Off by default:
/// most deployments limit at the ingress.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client; 0 turns the limit off.
    #[serde(default)]
    pub per_second: u64,
    /// Requests a client may make at once before the rate applies (at least 1).
    #[serde(default)]
    pub burst: u32,
    /// Proxies (CIDRs, e.g. `10.0.0.0/8`) whose `X-Forwarded-For` is believed:
    /// a request from one is limited as the right-most address in that
    /// header that is not itself a trusted proxy. Empty (the default): the
    /// peer address, and the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The pool that runs entry validation (signature checks) off the HTTP
/// workers, so that expensive requests cannot stall the other routes.
#[derive(Debug, Deserialize, Clone, Copy, Default)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Validations that run at once. Default: one per available core.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Validations that may wait for a thread; one more gets 503 with
    /// `Retry-After`. Default: [`DEFAULT_VALIDATION_QUEUE_PER_THREAD`] per thread.
    #[serde(default)]
    pub queue: Option<usize>,
    /// Bytes of large request bodies (64 KiB and more) admitted per second,
    /// across all clients; past it a large body gets 503 with `Retry-After`
    /// before it is read. 0 turns the limit off.
    /// Default: [`DEFAULT_LARGE_BODY_BYTES_PER_SECOND`].
    #[serde(default)]
    pub large_bytes_per_second: Option<u64>,
}

impl ValidationConfig {
    /// The large-body byte rate, defaulted.
    #[must_use]
    pub fn large_bytes_per_second(&self) -> u64 {
        self.large_bytes_per_second
            .unwrap_or(DEFAULT_LARGE_BODY_BYTES_PER_SECOND)
    }

    /// The thread count, defaulted to the available cores.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// The queue length, defaulted from the thread count.
    #[must_use]
    pub fn queue(&self) -> usize {
        self.queue
            .unwrap_or(self.threads() * DEFAULT_VALIDATION_QUEUE_PER_THREAD)
    }
}

/// What `tlog replica` serves and which key it trusts.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// The `db.jsonl` snapshot to serve.
    #[serde(default)]
    pub db: Option<PathBuf>,
    /// PEM public key the snapshot's checkpoints must verify under.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    /// Trust the key written in the snapshot itself instead of `public_key`.
    /// It proves only that the file is self-consistent, not who wrote it.
    #[serde(default)]
    pub trust_embedded_key: bool,
    /// Milliseconds between checks of the file for a new snapshot
    /// (0 to reload on SIGHUP only).
    #[serde(default = "default_replica_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// A directory of the replica's own (a volume that outlives the pod)
    /// where it keeps the high-water mark of what it served, so that after
    /// a restart it refuses an older or forked snapshot. Unset: no memory
    /// across restarts.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// A file with a signed checkpoint (as `/api/v1/log`'s `signedTreeHead`)
    /// that every snapshot must extend.
    #[serde(default)]
    pub min_checkpoint: Option<PathBuf>,
    /// Keep every entry's body and SET in memory (about 0.6 of the file)
    /// instead of reading them back from the file on demand: the earlier
    /// mode, kept for comparison. Off: memory does not grow with the file's
    /// bodies.
    #[serde(default)]
    pub entries_in_memory: bool,
    /// The snapshots of a time-sharded log's frozen shards (`tlog export
    /// --shard ID`), oldest first, served beside `db`, the active shard's,
    /// as its `inactiveShards`. `public_key` then holds every shard's key.
    #[serde(default)]
    pub frozen_shards: Vec<PathBuf>,
    /// A Rekor v2 log's tiles directory (`tlog export --v2`) to serve beside
    /// the snapshot at `/checkpoint`, `/tile/…` (also under `/api/v2/` and
    /// `/logs/<origin>/`), verified under `v2_public_key` first.
    #[serde(default)]
    pub v2_tiles: Option<PathBuf>,
    /// PEM Ed25519 public key of the v2 log whose tiles `v2_tiles` holds.
    #[serde(default)]
    pub v2_public_key: Option<PathBuf>,
}

/// How the sequencer forms batches.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Largest number of entries committed in one transaction.
    #[serde(default = "default_batch_max_entries")]
    pub max_entries: usize,
    /// Milliseconds to linger for more entries after taking what was queued;
    /// 0 commits as soon as the sequencer is free.
    #[serde(default = "default_batch_interval_ms")]
    pub interval_ms: u64,
    /// Canonical bytes at which a batch closes; the entry that reaches it is
    /// the batch's last, so one entry larger than this is a batch of its own.
    #[serde(default = "default_batch_max_bytes")]
    pub max_bytes: usize,
}

/// The bounded pool of submissions waiting to be sequenced.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Submissions that may wait; one more gets 503 with `Retry-After`.
    #[serde(default = "default_pool_capacity")]
    pub capacity: usize,
    /// Canonical bytes that may wait; a submission that would go over gets
    /// 503 with `Retry-After` (into an empty pool one is always let in).
    #[serde(default = "default_pool_max_bytes")]
    pub max_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_BATCH_MAX_ENTRIES,
            interval_ms: DEFAULT_BATCH_INTERVAL_MS,
            max_bytes: DEFAULT_BATCH_MAX_BYTES,
        }
    }
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            db: None,
            public_key: None,
            trust_embedded_key: false,
            poll_interval_ms: DEFAULT_REPLICA_POLL_INTERVAL_MS,
            state_dir: None,
            min_checkpoint: None,
            entries_in_memory: false,
            frozen_shards: Vec::new(),
            v2_tiles: None,
            v2_public_key: None,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_POOL_CAPACITY,
            max_bytes: DEFAULT_POOL_MAX_BYTES,
        }
    }
}

impl BatchConfig {
    /// The batch interval as a duration.
    #[must_use]
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}
fn default_hostname() -> String {
    DEFAULT_HOSTNAME.to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn default_replica_poll_interval_ms() -> u64 {
    DEFAULT_REPLICA_POLL_INTERVAL_MS
}
fn default_key_file() -> PathBuf {
    PathBuf::from(DEFAULT_KEY_FILE)
}
fn default_metrics_listen() -> String {
    DEFAULT_METRICS_LISTEN.to_owned()
}
fn default_shutdown_grace_secs() -> u64 {
    DEFAULT_SHUTDOWN_GRACE_SECS
}
fn default_request_header_timeout_ms() -> u64 {
    DEFAULT_REQUEST_HEADER_TIMEOUT_MS
}
fn default_unread_body_drain_bytes_per_second() -> u64 {
    DEFAULT_UNREAD_BODY_DRAIN_BYTES_PER_SECOND
}
fn default_unread_body_linger_ms() -> u64 {
    DEFAULT_UNREAD_BODY_LINGER_MS
}
fn default_request_body_timeout_ms() -> u64 {
    DEFAULT_REQUEST_BODY_TIMEOUT_MS
}
fn default_keep_alive_secs() -> u64 {
    DEFAULT_KEEP_ALIVE_SECS
}
fn default_lease_ttl_ms() -> u64 {
    DEFAULT_LEASE_TTL_MS
}
fn default_db_max_connections() -> u32 {
    DEFAULT_DB_MAX_CONNECTIONS
}
fn default_max_request_body() -> usize {
    DEFAULT_MAX_REQUEST_BODY
}
fn default_entry_cache_bytes() -> u64 {
    DEFAULT_ENTRY_CACHE_BYTES
}
fn default_tile_cache_bytes() -> u64 {
    DEFAULT_TILE_CACHE_BYTES
}
fn default_batch_max_entries() -> usize {
    DEFAULT_BATCH_MAX_ENTRIES
}
fn default_batch_interval_ms() -> u64 {
    DEFAULT_BATCH_INTERVAL_MS
}
fn default_pool_capacity() -> usize {
    DEFAULT_POOL_CAPACITY
}
fn default_pool_max_bytes() -> usize {
    DEFAULT_POOL_MAX_BYTES
}
fn default_batch_max_bytes() -> usize {
    DEFAULT_BATCH_MAX_BYTES
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or has unknown or mistyped keys.
    #[error("couldn't load configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the optional YAML file, then `TLOG_*` environment variables, and validates.
    ///
    /// # Errors
    /// Unknown keys, wrong types, or values that fail [`Config::validate`].
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Yaml::file_exact(file));
        }
        // TLOG_CONFIG_FILE names the file itself (read by the CLI), not a key.
        figment = figment.merge(Env::prefixed("TLOG_").ignore(&["CONFIG_FILE"]).split("__"));
        let config: Self = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and formats that serde cannot.
    ///
    /// # Errors
    /// `ConfigError::Invalid` naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        if self.listen.parse::<SocketAddr>().is_err() {
            return invalid("listen must be an address like 127.0.0.1:3000");
        }
        if self.metrics_listen.parse::<SocketAddr>().is_err() {
            return invalid("metrics_listen must be an address like 127.0.0.1:2112");
        }
        if self.request_header_timeout_ms == 0 || self.request_body_timeout_ms == 0 {
            return invalid(
                "request_header_timeout_ms and request_body_timeout_ms must be positive",
            );
        }
        if !(200..=60_000).contains(&self.lease_ttl_ms) {
            return invalid("lease_ttl_ms must be between 200 and 60000");
        }
        if self.validation.threads == Some(0) {
            return invalid("validation.threads must be positive");
        }
        // A signed-note key name: non-empty, no whitespace, no '+' (C2SP signed-note).
        if self.hostname.is_empty()
            || self
                .hostname
                .contains(|c: char| c.is_whitespace() || c == '+')
        {
            return invalid("hostname must be a non-empty name without whitespace or '+'");
        }
        if let Some(origin) = &self.v2.origin {
            if origin.is_empty() || origin.contains(|c: char| c.is_whitespace() || c == '+') {
                return invalid("v2.origin must be a non-empty name without whitespace or '+'");
            }
        }
        if !(1..=60_000).contains(&self.v2.witness_timeout_ms) {
            return invalid("v2.witness_timeout_ms must be between 1 and 60000");
        }
        if self.v2.witness_policy.is_some() && self.v2.key_file.is_none() {
            return invalid("v2.witness_policy needs a v2 log: set v2.key_file");
        }
        if self.v2.witness_fail_closed && self.v2.witness_policy.is_none() {
            return invalid("v2.witness_fail_closed needs v2.witness_policy");
        }
        if self.batch.max_entries == 0 || self.batch.interval_ms > 10_000 {
            return invalid(
                "batch.max_entries must be positive and batch.interval_ms at most 10000",
            );
        }
        if self.pool.capacity == 0 || self.pool.max_bytes == 0 {
            return invalid("pool.capacity and pool.max_bytes must be positive");
        }
        if self.batch.max_bytes == 0 {
            return invalid("batch.max_bytes must be positive");
        }
        if self.db_max_connections < 2 {
            return invalid("db_max_connections must be at least 2");
        }
        for (i, id) in self.write_policy.allowed_identities.iter().enumerate() {
            if id.san.is_some() == id.san_regex.is_some() || id.issuer.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "write_policy.allowed_identities[{i}] needs exactly one of san and san_regex, and an issuer"
                )));
            }
        }
        if !self.write_policy.allowed_identities.is_empty()
            && self.write_policy.trusted_roots.is_none()
        {
            return invalid("write_policy.allowed_identities needs write_policy.trusted_roots: without a trusted issuer anyone can make a certificate with any identity");
        }
        if self.signer.kind == SignerKind::Pkcs11 {
            self.signer.pkcs11.check_complete()?;
        }
        if let Some(unknown) = self
            .entries
            .disabled_kinds
            .iter()
            .find(|name| crate::entries::Kind::from_name(name).is_none())
        {
            let known: Vec<&str> = crate::entries::Kind::ALL.iter().map(|k| k.name()).collect();
            return Err(ConfigError::Invalid(format!(
                "entries.disabled_kinds names an unknown kind {unknown:?}; known kinds are {}",
                known.join(", ")
            )));
        }
        Ok(())
    }

    /// The listen address, already validated.
    ///
    /// # Panics
    /// If called on a config that did not pass [`Config::validate`].
    #[must_use]
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated listen address")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml(yaml: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::new()
            .merge(Yaml::string(yaml))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn signer_defaults_to_the_key_file_and_pkcs11_needs_every_setting() {
        assert_eq!(from_yaml("{}").unwrap().signer.kind, SignerKind::File);
        let full = "signer:\n  kind: pkcs11\n  pkcs11:\n    module: /m.so\n    token_label: t\n    key_label: k\n    pin_file: /pin\n";
        let config = from_yaml(full).unwrap();
        assert_eq!(config.signer.kind, SignerKind::Pkcs11);
        assert_eq!(config.signer.pkcs11.key_label.as_deref(), Some("k"));
        for (field, line) in [
            ("module", "    module: /m.so\n"),
            ("token_label", "    token_label: t\n"),
            ("key_label", "    key_label: k\n"),
            ("pin_file", "    pin_file: /pin\n"),
        ] {
            let err = from_yaml(&full.replace(line, "")).unwrap_err().to_string();
            assert!(err.contains(&format!("signer.pkcs11.{field}")), "{err}");
        }
        let err = from_yaml(&format!("{full}    sessions: 0\n")).unwrap_err();
        assert!(err.to_string().contains("signer.pkcs11.sessions"), "{err}");
        assert!(from_yaml("signer:\n  kind: vault\n").is_err());
        assert!(from_yaml("signer:\n  pkcs11:\n    pin: \"1234\"\n").is_err());
    }

    #[test]
    fn empty_config_takes_documented_defaults() {
        let config = from_yaml("{}").unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.batch.max_entries, DEFAULT_BATCH_MAX_ENTRIES);
        assert_eq!(config.pool.capacity, DEFAULT_POOL_CAPACITY);
        assert_eq!(config.pool.max_bytes, DEFAULT_POOL_MAX_BYTES);
        assert_eq!(config.batch.max_bytes, DEFAULT_BATCH_MAX_BYTES);
        assert!(config.database_url.is_none());
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(config.replica.db.is_none() && !config.replica.trust_embedded_key);
        assert_eq!(
            config.replica.poll_interval_ms,
            DEFAULT_REPLICA_POLL_INTERVAL_MS
        );
    }

    #[test]
    fn replica_section_rejects_unknown_keys() {
        assert!(from_yaml("replica: {db: x.jsonl, public_key: k.pem}").is_ok());
        assert!(from_yaml("replica: {trust_embeded_key: true}").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = from_yaml("hostnme: x").unwrap_err();
        assert!(err.to_string().contains("hostnme"), "{err}");
        assert!(from_yaml("batch: {max_entrys: 3}").is_err());
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        assert!(from_yaml("listen: nowhere").is_err());
        assert!(from_yaml("hostname: 'a b'").is_err());
        assert!(from_yaml("batch: {max_entries: 0}").is_err());
        assert!(from_yaml("pool: {capacity: 0}").is_err());
        assert!(from_yaml("pool: {max_bytes: 0}").is_err());
        assert!(from_yaml("batch: {max_bytes: 0}").is_err());
    }

    #[test]
    fn witness_keys_have_defaults_and_need_what_they_use() {
        let config = from_yaml("{}").unwrap();
        assert_eq!(config.v2.witness_policy, None);
        assert!(!config.v2.witness_fail_closed);
        assert_eq!(config.v2.witness_timeout_ms, 1000);
        let ok = "v2: {key_file: k.pem, witness_policy: p.txt, witness_fail_closed: true}";
        assert!(from_yaml(ok).is_ok());
        for (yaml, needle) in [
            ("v2: {witness_policy: p.txt}", "needs a v2 log"),
            (
                "v2: {key_file: k.pem, witness_fail_closed: true}",
                "needs v2.witness_policy",
            ),
            ("v2: {witness_timeout_ms: 0}", "witness_timeout_ms"),
            ("v2: {witness_timeout_ms: 60001}", "witness_timeout_ms"),
        ] {
            let err = from_yaml(yaml).unwrap_err();
            assert!(err.to_string().contains(needle), "{yaml}: {err}");
        }
    }

    #[test]
    fn disabled_kinds_must_be_known_kinds() {
        let config = from_yaml("entries: {disabled_kinds: [dsse, intoto]}").unwrap();
        assert_eq!(
            config.entries.disabled(),
            [crate::entries::Kind::Dsse, crate::entries::Kind::Intoto]
        );
        let err = from_yaml("entries: {disabled_kinds: [rpm]}").unwrap_err();
        assert!(err.to_string().contains(r#"unknown kind "rpm""#), "{err}");
        assert!(from_yaml("{}").unwrap().entries.disabled().is_empty());
    }

    #[test]
    fn http_hardening_keys_have_defaults_and_are_checked() {
        let config = from_yaml("{}").unwrap();
        assert_eq!(
            config.request_body_timeout_ms,
            DEFAULT_REQUEST_BODY_TIMEOUT_MS
        );
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(config.validation.threads(), cores);
        assert_eq!(
            config.validation.queue(),
            cores * DEFAULT_VALIDATION_QUEUE_PER_THREAD
        );
        assert!(config.rate_limit.trusted_proxies.is_empty());
        let config = from_yaml(
            "validation: {threads: 3, queue: 0}\nrate_limit: {trusted_proxies: [10.0.0.0/8, '::1/128']}",
        )
        .unwrap();
        assert_eq!(
            (config.validation.threads(), config.validation.queue()),
            (3, 0)
        );
        assert_eq!(config.rate_limit.trusted_proxies.len(), 2);
        assert!(from_yaml("validation: {threads: 0}").is_err());
        assert!(from_yaml("request_body_timeout_ms: 0").is_err());
        assert!(from_yaml("rate_limit: {trusted_proxies: [10.0.0.300/8]}").is_err());
    }

    #[test]
    fn write_policy_is_off_by_default_and_identities_are_checked() {
        let config = from_yaml("{}").unwrap();
        assert!(config.write_policy.allowed_keys.is_none());
        assert!(config.write_policy.allowed_identities.is_empty());
        let ok = "write_policy: {trusted_roots: r.pem, allowed_identities: [{san: a@b.c, issuer: https://i}]}";
        assert!(from_yaml(ok).is_ok());
        for bad in [
            "write_policy: {allowed_identities: [{san: a@b.c, issuer: https://i}]}",
            "write_policy: {trusted_roots: r.pem, allowed_identities: [{issuer: https://i}]}",
            "write_policy: {trusted_roots: r.pem, allowed_identities: [{san: a, san_regex: b, issuer: https://i}]}",
            "write_policy: {trusted_roots: r.pem, allowed_identities: [{san: a, issuer: ''}]}",
            "write_policy: {allowed_keyz: k.pem}",
        ] {
            let err = from_yaml(bad).unwrap_err();
            assert!(err.to_string().contains("write_policy") || err.to_string().contains("allowed_keyz"), "{bad}: {err}");
        }
    }

    #[test]
    fn database_url_is_kept_secret_in_debug_output() {
        let config = from_yaml("database_url: postgres://u:hunter2@h/db").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
