//! The `monitor` section: what `tlog monitor` follows, where it keeps its
//! state, when it alerts and whom it watches for.

use std::path::PathBuf;

use serde::Deserialize;

/// Default seconds between two polls of the followed log.
pub const DEFAULT_MONITOR_INTERVAL_SECS: u64 = 60;
/// Default seconds an HTTP request to the log or the webhook may take.
pub const DEFAULT_MONITOR_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Default number of entry requests (10 entries each) in flight at once.
pub const DEFAULT_MONITOR_CONCURRENCY: usize = 4;

/// What `tlog monitor` follows and how it alerts.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Base URL of the Rekor v1 log (`http://rekor.example`); `/api/v1/...`
    /// is appended.
    #[serde(default)]
    pub url: Option<String>,
    /// PEM public key every checkpoint and SET must verify under.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    /// A directory that outlives the process (a volume, for a `CronJob`),
    /// where the monitor keeps `monitor-state.json`: the last verified
    /// checkpoint and when the log last grew.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Seconds between polls when running continuously.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Alert when the log has not grown for this many seconds (0: never).
    #[serde(default)]
    pub stale_after_secs: u64,
    /// When there is no state yet, the first entry whose identity is
    /// checked; unset starts at the current tree size (new entries only).
    #[serde(default)]
    pub start_index: Option<u64>,
    /// URL that receives every alert and identity match as a JSON POST.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// PEM CA certificates trusted besides the system's for `https://` (the
    /// log and the webhook): a private log's CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds an HTTP request (log or webhook) may take.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Entry requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Whom to watch for.
    #[serde(default)]
    pub watch: WatchConfig,
}

/// The watch list: an entry is reported when any of its signers matches.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Certificate identities: a SAN (exact or a regex over the whole SAN)
    /// and, optionally, the OIDC issuer it must come with.
    #[serde(default)]
    pub identities: Vec<WatchIdentityConfig>,
    /// Hex SHA-256 fingerprints of public keys (SPKI DER) or certificates (DER).
    #[serde(default)]
    pub fingerprints: Vec<String>,
}

/// One watched certificate identity.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct WatchIdentityConfig {
    /// The exact SAN (an e-mail, URI, ...).
    #[serde(default)]
    pub san: Option<String>,
    /// A regular expression (Rust `regex` syntax) the whole SAN must match.
    #[serde(default)]
    pub san_regex: Option<String>,
    /// The exact OIDC issuer; unset matches any issuer, or none.
    #[serde(default)]
    pub issuer: Option<String>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            url: None,
            public_key: None,
            state_dir: None,
            interval_secs: DEFAULT_MONITOR_INTERVAL_SECS,
            stale_after_secs: 0,
            start_index: None,
            webhook_url: None,
            ca_file: None,
            request_timeout_secs: DEFAULT_MONITOR_REQUEST_TIMEOUT_SECS,
            concurrency: DEFAULT_MONITOR_CONCURRENCY,
            watch: WatchConfig::default(),
        }
    }
}

fn default_interval_secs() -> u64 {
    DEFAULT_MONITOR_INTERVAL_SECS
}

fn default_request_timeout_secs() -> u64 {
    DEFAULT_MONITOR_REQUEST_TIMEOUT_SECS
}

fn default_concurrency() -> usize {
    DEFAULT_MONITOR_CONCURRENCY
}
