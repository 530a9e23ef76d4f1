//! `tlog monitor URL`: follows a live Rekor v1 log and trusts nothing it did
//! not check (issue 15, item 2), like sigstore/rekor-monitor but in the same
//! binary.
//!
//! Every poll:
//! 1. fetches `/api/v1/log` and verifies its signed checkpoint, and the final
//!    one of every frozen shard (`inactiveShards`), under the configured keys
//!    ([`shards::layout`]);
//! 2. finds the shard of the last verified checkpoint of the state file: the
//!    active one, or a frozen one after `tlog log rotate` (any other origin
//!    is **origin changed**). That shard must start at the same global index,
//!    be no smaller (**rollback**), have the same root at the same size
//!    (**split view**), and otherwise give a consistency proof from the old
//!    size that verifies (**inconsistent**);
//! 3. reads every entry added since, to the end of that shard and through
//!    every shard after it (10 per retrieve request, by global index), and
//!    checks its SET (over the global index) and its inclusion proof (at its
//!    index in its shard); a proof's checkpoint at the shard's size must
//!    carry the shard's root, and one at another size must be consistent
//!    with it;
//! 4. reports every entry whose signer is on the watch list;
//! 5. stores the active shard's checkpoint, and alerts when the log has not
//!    grown for `stale_after_secs`.
//!
//! A rotation that changes the key is followed when the key file holds the
//! new key too (one PEM block per key); until then its checkpoint is a
//! **bad checkpoint**.
//!
//! Alerts go to the log (warn), to Prometheus metrics and to the webhook. An
//! alert leaves the state as it was: the monitor keeps vouching only for the
//! last checkpoint it verified, and a later poll raises the alert again.
//!
//! What it does not do: it keeps no tree, so the entries it reads are bound
//! to the tree by their inclusion proofs, not by rebuilding it (that is
//! `tlog verify`); and it reaches the log over plain HTTP only.

mod client;
pub mod shards;
mod state;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::Serialize;

pub use client::{
    parse_hash, FetchError, FetchedEntry, InactiveShard, InclusionProof, LogClient, LogInfo,
    Verification, ENTRIES_PER_REQUEST,
};
pub use shards::Shard;
pub use state::{State, StateFile, STATE_FILE};
pub use watch::{Match, WatchList};

use crate::config::MonitorConfig;
use crate::merkle::{self, Hash};
use crate::metrics::MonitorMetrics;
use crate::note::Checkpoint;
use crate::signing::LogKeys;

/// What an alert is about: a fixed set, used as the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A consistency proof from the stored checkpoint does not verify.
    Inconsistent,
    /// Two different signed roots for one tree size.
    SplitView,
    /// The log serves a smaller tree than one it signed before.
    Rollback,
    /// The checkpoint names another log than the stored one, and the log
    /// lists no frozen shard of the stored one's origin.
    OriginChanged,
    /// A checkpoint that does not verify under the key, or that disagrees
    /// with the answer carrying it.
    BadCheckpoint,
    /// An entry whose SET or inclusion proof does not verify, or that the
    /// log does not serve.
    BadEntry,
    /// The log has not grown for longer than `stale_after_secs`.
    Stale,
}

impl AlertKind {
    /// The metric label.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Inconsistent => "inconsistent",
            Self::SplitView => "split_view",
            Self::Rollback => "rollback",
            Self::OriginChanged => "origin_changed",
            Self::BadCheckpoint => "bad_checkpoint",
            Self::BadEntry => "bad_entry",
            Self::Stale => "stale",
        }
    }
}

/// Something a poll found: an alert, or an entry signed by a watched signer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Finding {
    /// The log misbehaved (or stopped growing).
    Alert {
        /// What kind of misbehaviour.
        kind: AlertKind,
        /// What was seen, for a person.
        message: String,
        /// The signed notes that prove it, when there are any.
        evidence: Vec<String>,
    },
    /// An entry signed by a watched identity or key.
    IdentityMatch {
        /// The entry's index.
        log_index: u64,
        /// Its `integratedTime`.
        integrated_time: i64,
        /// The matching signer.
        #[serde(flatten)]
        signer: Match,
    },
}

impl Finding {
    fn alert(kind: AlertKind, message: impl Into<String>, evidence: Vec<String>) -> Self {
        Self::Alert {
            kind,
            message: message.into(),
            evidence,
        }
    }

    /// Whether this is an alert (not an identity match).
    #[must_use]
    pub fn is_alert(&self) -> bool {
        matches!(self, Self::Alert { .. })
    }
}

/// Why the monitor could not be set up; names the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// Why a poll could not finish (retried at the next one; not an alert).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The log could not be read.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The state file could not be read or written.
    #[error("couldn't use the monitor state: {0}")]
    State(#[from] std::io::Error),
}

/// The validated monitor settings.
pub struct Settings {
    /// Base URL of the log.
    pub url: String,
    /// The log's keys: one, or its shards' when a rotation changed it.
    pub keys: LogKeys,
    /// Where the state is kept.
    pub state: StateFile,
    /// Time between polls.
    pub interval: Duration,
    /// Alert after this long without growth.
    pub stale_after: Option<Duration>,
    /// Where identity checks begin without a state.
    pub start_index: Option<u64>,
    /// Where alerts are sent (a JSON `POST` each).
    pub webhook_url: Option<String>,
    /// CA certificates trusted besides the system's, for `https://` URLs.
    pub ca_file: Option<PathBuf>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Entry requests in flight.
    pub concurrency: usize,
    /// Whom to report.
    pub watch: WatchList,
}

impl Settings {
    /// Reads and checks the `monitor` section.
    ///
    /// # Errors
    /// A missing URL, key or state directory, an unreadable key, or a bad
    /// watch list, naming the setting.
    pub fn from_config(config: &MonitorConfig) -> Result<Self, SetupError> {
        let need = |what: &str| SetupError(format!("monitor.{what} is required"));
        let url = config.url.clone().ok_or_else(|| need("url (or URL)"))?;
        if !crate::http_client::is_http_url(&url) {
            return Err(SetupError(format!(
                "monitor.url {url:?}: not an http:// or https:// URL"
            )));
        }
        let key_path: &PathBuf = config
            .public_key
            .as_ref()
            .ok_or_else(|| need("public_key (--public-key)"))?;
        let pem = std::fs::read_to_string(key_path).map_err(|e| {
            SetupError(format!(
                "couldn't read monitor.public_key {}: {e}",
                key_path.display()
            ))
        })?;
        let keys = LogKeys::from_pem(&pem).map_err(|e| {
            SetupError(format!(
                "monitor.public_key {} is not a log key (or a PEM file of them): {e}",
                key_path.display()
            ))
        })?;
        let state_dir = config
            .state_dir
            .as_ref()
            .ok_or_else(|| need("state_dir (--state-dir)"))?;
        if config.concurrency == 0 || config.request_timeout_secs == 0 {
            return Err(SetupError(
                "monitor.concurrency and monitor.request_timeout_secs must be positive".to_owned(),
            ));
        }
        Ok(Self {
            url,
            keys,
            state: StateFile::in_dir(state_dir),
            interval: Duration::from_secs(config.interval_secs.max(1)),
            stale_after: (config.stale_after_secs > 0)
                .then(|| Duration::from_secs(config.stale_after_secs)),
            start_index: config.start_index,
            webhook_url: config.webhook_url.clone(),
            ca_file: config.ca_file.clone(),
            timeout: Duration::from_secs(config.request_timeout_secs),
            concurrency: config.concurrency,
            watch: WatchList::new(&config.watch).map_err(SetupError)?,
        })
    }
}

/// A monitor of one log.
pub struct Monitor {
    settings: Arc<Settings>,
    client: LogClient,
    webhook: reqwest::Client,
    metrics: Arc<MonitorMetrics>,
}

/// The outcome of the checks against the stored checkpoint.
enum Step {
    /// The shard `shard` (in [`shards::layout`]'s order) extends (or
    /// equals) the stored checkpoint, which ended at global index `old_end`.
    Extends { shard: usize, old_end: u64 },
    /// An alert; the state stays.
    Refused(Finding),
}

impl Monitor {
    /// A monitor with `settings`, counting into `metrics`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(settings: Settings, metrics: Arc<MonitorMetrics>) -> Result<Self, SetupError> {
        let ca_file = settings.ca_file.as_deref();
        let client = LogClient::new(&settings.url, settings.timeout, ca_file)
            .map_err(|e| SetupError(e.to_string()))?;
        let webhook = crate::http_client::builder(ca_file)
            .map_err(|e| SetupError(e.to_string()))?
            .timeout(settings.timeout)
            .build()
            .map_err(|e| SetupError(format!("couldn't build the webhook client: {e}")))?;
        Ok(Self {
            settings: Arc::new(settings),
            client,
            webhook,
            metrics,
        })
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One poll at Unix time `now`, reported (log, metrics, webhook).
    ///
    /// # Errors
    /// See [`PollError`]; the poll is counted as `error`.
    pub async fn poll_and_report(&self, now: i64) -> Result<Vec<Finding>, PollError> {
        match self.poll(now).await {
            Ok(findings) => {
                let outcome = if findings.iter().any(Finding::is_alert) {
                    "alert"
                } else {
                    "ok"
                };
                self.metrics.polls.with_label_values(&[outcome]).inc();
                self.report(&findings).await;
                Ok(findings)
            }
            Err(e) => {
                self.metrics.polls.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, url = %self.settings.url, "monitor poll failed");
                Err(e)
            }
        }
    }

    /// Polls forever, every `interval`.
    pub async fn run(&self) {
        loop {
            let _ = self.poll_and_report(unix_now()).await;
            tokio::time::sleep(self.settings.interval).await;
        }
    }

    /// One poll at Unix time `now`: every check of the module docs. Alerts
    /// and matches are returned, not yet reported.
    ///
    /// # Errors
    /// See [`PollError`].
    pub async fn poll(&self, now: i64) -> Result<Vec<Finding>, PollError> {
        let stored = self.settings.state.load()?;
        let info = self.client.log_info().await?;
        let shards = match shards::layout(&info, &self.settings.keys) {
            Ok(shards) => shards,
            Err(e) => {
                return Ok(vec![Finding::alert(
                    AlertKind::BadCheckpoint,
                    e.message,
                    vec![e.note],
                )])
            }
        };
        let active = shards.last().expect("a layout ends with the active shard");
        self.metrics
            .tree_size
            .set(i64::try_from(active.head.size).unwrap_or(i64::MAX));
        let end = active.end();
        let (first_shard, from, grew_at) = match &stored {
            // Trust on first use.
            None => (0, self.settings.start_index.unwrap_or(end), now),
            Some(state) => match self.compare(state, &shards).await? {
                Step::Refused(alert) => return Ok(vec![alert]),
                Step::Extends { shard, old_end } => {
                    let grew_at = if end > old_end { now } else { state.grew_at };
                    (shard, state.next_index, grew_at)
                }
            },
        };
        let mut findings = Vec::new();
        for shard in &shards[first_shard..] {
            let start = from.max(shard.offset);
            if start < shard.end() {
                findings.extend(self.check_entries(start, shard).await?);
                if findings.iter().any(Finding::is_alert) {
                    return Ok(findings);
                }
            }
        }
        self.metrics.last_growth.set(grew_at);
        if let Some(stale) = self.settings.stale_after {
            let age = now.saturating_sub(grew_at);
            if u64::try_from(age).unwrap_or(0) > stale.as_secs() {
                findings.push(Finding::alert(
                    AlertKind::Stale,
                    format!(
                        "the log has not grown past size {} for {age} s (stale_after_secs {})",
                        active.head.size,
                        stale.as_secs()
                    ),
                    Vec::new(),
                ));
            }
        }
        self.settings.state.store(&State {
            checkpoint: active.note.clone(),
            index_offset: active.offset,
            next_index: end,
            grew_at,
        })?;
        Ok(findings)
    }

    /// Step 2 of the module docs.
    async fn compare(&self, state: &State, shards: &[Shard]) -> Result<Step, PollError> {
        let active = shards.last().expect("a layout ends with the active shard");
        let evidence = |note: &str| vec![state.checkpoint.clone(), note.to_owned()];
        let Ok((old, _)) = self.settings.keys.verify_checkpoint(&state.checkpoint) else {
            return Ok(Step::Refused(Finding::alert(
                AlertKind::BadCheckpoint,
                format!(
                    "the stored checkpoint in {} does not verify under the key: a state from another log",
                    self.settings.state.path().display()
                ),
                evidence(&active.note),
            )));
        };
        let Some(at) = shards.iter().position(|s| s.head.origin == old.origin) else {
            return Ok(Step::Refused(Finding::alert(
                AlertKind::OriginChanged,
                format!(
                    "the log now signs as {:?}, the stored checkpoint is {:?}'s, and no inactive shard is",
                    active.head.origin, old.origin
                ),
                evidence(&active.note),
            )));
        };
        let shard = &shards[at];
        let evidence = || evidence(&shard.note);
        if shard.offset != state.index_offset {
            return Ok(Step::Refused(Finding::alert(
                AlertKind::Inconsistent,
                format!(
                    "the shard {:?} now starts at global index {}, not {} as before: the shards before it changed",
                    old.origin, shard.offset, state.index_offset
                ),
                evidence(),
            )));
        }
        let new = &shard.head;
        if new.size < old.size {
            return Ok(Step::Refused(Finding::alert(
                AlertKind::Rollback,
                format!(
                    "the log serves size {} of {:?}, smaller than the size {} it signed before",
                    new.size, old.origin, old.size
                ),
                evidence(),
            )));
        }
        let extends = Step::Extends {
            shard: at,
            old_end: state.index_offset + old.size,
        };
        if new.size == old.size {
            if new.root == old.root {
                return Ok(extends);
            }
            return Ok(Step::Refused(split_view(&old, new, evidence())));
        }
        let proof = if old.size == 0 {
            Vec::new()
        } else {
            self.client
                .consistency_proof(old.size, new.size, shard.tree_id.as_deref())
                .await?
        };
        if merkle::verify_consistency(old.size, old.root, new.size, new.root, &proof).is_err() {
            return Ok(Step::Refused(Finding::alert(
                AlertKind::Inconsistent,
                format!(
                    "the log's consistency proof from size {} to {} does not verify: the log at {} is not an extension of the one at {}",
                    old.size, new.size, new.size, old.size
                ),
                evidence(),
            )));
        }
        Ok(extends)
    }

    /// Steps 3 and 4: the entries of `shard` from global index `from` to
    /// its end, a window of `concurrency` requests at a time (bounded memory).
    async fn check_entries(&self, from: u64, shard: &Shard) -> Result<Vec<Finding>, PollError> {
        let head = &shard.head;
        let mut findings = Vec::new();
        // Checkpoints seen in inclusion proofs, by size: one root per size.
        let mut seen: BTreeMap<u64, (Hash, String)> = BTreeMap::new();
        let window = ENTRIES_PER_REQUEST * self.settings.concurrency as u64;
        let mut start = from;
        while start < shard.end() {
            let end = (start + window).min(shard.end());
            let entries = self.fetch_window(start, end).await?;
            let settings = Arc::clone(&self.settings);
            let owned = shard.clone();
            let checked = tokio::task::spawn_blocking(move || {
                check_window(&settings, &owned, start, end, &entries)
            })
            .await
            .expect("an entry check panicked");
            self.metrics.entries_checked.inc_by(end - start);
            let (window_findings, checkpoints) = checked;
            findings.extend(window_findings);
            if findings.iter().any(Finding::is_alert) {
                return Ok(findings);
            }
            for (size, root, note) in checkpoints {
                if let Some((known, known_note)) = seen.get(&size) {
                    if *known != root {
                        let (a, b) = (
                            checkpoint_of(head, size, *known),
                            checkpoint_of(head, size, root),
                        );
                        findings.push(split_view(&a, &b, vec![known_note.clone(), note]));
                        return Ok(findings);
                    }
                } else {
                    seen.insert(size, (root, note));
                }
            }
            start = end;
        }
        // Every other size seen must be consistent with the head.
        for (size, (root, note)) in seen {
            let (old, new) = if size < head.size {
                ((size, root), (head.size, head.root))
            } else {
                ((head.size, head.root), (size, root))
            };
            let proof = self
                .client
                .consistency_proof(old.0, new.0, shard.tree_id.as_deref())
                .await?;
            if merkle::verify_consistency(old.0, old.1, new.0, new.1, &proof).is_err() {
                findings.push(Finding::alert(
                    AlertKind::Inconsistent,
                    format!(
                        "an inclusion proof's checkpoint at size {size} is not consistent with the log's checkpoint at size {}",
                        head.size
                    ),
                    vec![note],
                ));
                return Ok(findings);
            }
        }
        Ok(findings)
    }

    /// The entries `[start, end)`, `concurrency` requests at once.
    async fn fetch_window(&self, start: u64, end: u64) -> Result<Vec<FetchedEntry>, PollError> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut first = start;
        while first < end {
            let last = (first + ENTRIES_PER_REQUEST).min(end);
            let indexes: Vec<u64> = (first..last).collect();
            let client = self.client.clone();
            tasks.spawn(async move { client.entries(&indexes).await });
            first = last;
        }
        let mut entries = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            entries.extend(joined.expect("an entry request panicked")?);
        }
        Ok(entries)
    }

    /// Sends `findings` to the log, the metrics and the webhook.
    pub async fn report(&self, findings: &[Finding]) {
        for finding in findings {
            match finding {
                Finding::Alert { kind, message, .. } => {
                    self.metrics.alerts.with_label_values(&[kind.name()]).inc();
                    tracing::warn!(kind = kind.name(), url = %self.settings.url, "monitor alert: {message}");
                }
                Finding::IdentityMatch {
                    log_index, signer, ..
                } => {
                    self.metrics.identity_matches.inc();
                    tracing::warn!(
                        log_index,
                        rule = signer.rule,
                        sans = ?signer.sans,
                        issuer = ?signer.issuer,
                        key = %signer.key_fingerprint,
                        "monitor: entry signed by a watched signer"
                    );
                }
            }
            if let Some(url) = &self.settings.webhook_url {
                self.deliver(url, finding).await;
            }
        }
    }

    async fn deliver(&self, url: &str, finding: &Finding) {
        let body = serde_json::json!({ "log": self.settings.url, "finding": finding });
        let sent = self
            .webhook
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let failed = match sent {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("it answered {}", response.status())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            self.metrics.webhook_failures.inc();
            tracing::warn!(webhook = url, "couldn't deliver a monitor alert: {why}");
        }
    }
}

fn split_view(a: &Checkpoint, b: &Checkpoint, evidence: Vec<String>) -> Finding {
    Finding::alert(
        AlertKind::SplitView,
        format!(
            "two signed roots for size {}: {} and {}",
            a.size,
            hex::encode(a.root.0),
            hex::encode(b.root.0)
        ),
        evidence,
    )
}

fn checkpoint_of(head: &Checkpoint, size: u64, root: Hash) -> Checkpoint {
    Checkpoint {
        origin: head.origin.clone(),
        size,
        root,
    }
}

/// A checkpoint seen in an inclusion proof: size, root, note.
type Seen = (u64, Hash, String);

/// Checks one window of entries of `shard` (CPU only): each global index in
/// `[start, end)` served once, each SET and inclusion proof, and the watch
/// list.
fn check_window(
    settings: &Settings,
    shard: &Shard,
    start: u64,
    end: u64,
    entries: &[FetchedEntry],
) -> (Vec<Finding>, Vec<Seen>) {
    let head = &shard.head;
    let mut findings = Vec::new();
    let mut checkpoints: HashMap<&str, Checkpoint> = HashMap::new();
    let mut served = vec![false; usize::try_from(end - start).expect("a window is small")];
    let bad = |index: u64, why: String| {
        Finding::alert(
            AlertKind::BadEntry,
            format!("entry {index}: {why}"),
            Vec::new(),
        )
    };
    for entry in entries {
        let index = entry.log_index;
        if index < start || index >= end || served[(index - start) as usize] {
            return (
                vec![bad(index, "served unasked or twice".to_owned())],
                Vec::new(),
            );
        }
        served[(index - start) as usize] = true;
        let proof_note = entry.verification.inclusion_proof.checkpoint.as_str();
        if !checkpoints.contains_key(proof_note) {
            match shard.key.verify_checkpoint(proof_note) {
                Ok(cp) if cp.origin == head.origin => {
                    checkpoints.insert(proof_note, cp);
                }
                _ => {
                    return (
                        vec![Finding::alert(
                            AlertKind::BadCheckpoint,
                            format!("entry {index}: its inclusion proof's checkpoint is not its shard's under the shard's key"),
                            vec![proof_note.to_owned()],
                        )],
                        Vec::new(),
                    )
                }
            }
        }
        let checkpoint = &checkpoints[proof_note];
        if let Err(why) = check_entry(shard, entry, checkpoint) {
            return (vec![bad(index, why)], Vec::new());
        }
        if checkpoint.size == head.size && checkpoint.root != head.root {
            let alert = split_view(head, checkpoint, vec![proof_note.to_owned()]);
            return (vec![alert], Vec::new());
        }
        if !settings.watch.is_empty() {
            let body = entry.body_bytes().unwrap_or_default();
            findings.extend(settings.watch.matches(&body).into_iter().map(|signer| {
                Finding::IdentityMatch {
                    log_index: index,
                    integrated_time: entry.integrated_time,
                    signer,
                }
            }));
        }
    }
    if let Some(missing) = served.iter().position(|s| !s) {
        let index = start + missing as u64;
        return (
            vec![bad(index, "the log did not serve it".to_owned())],
            Vec::new(),
        );
    }
    let seen = checkpoints
        .into_iter()
        .filter(|(_, cp)| cp.size != head.size)
        .map(|(note, cp)| (cp.size, cp.root, note.to_owned()))
        .collect();
    (findings, seen)
}

/// One entry's SET (over its global index), and its inclusion in
/// `checkpoint`, its shard's (at its index in the shard).
fn check_entry(shard: &Shard, entry: &FetchedEntry, checkpoint: &Checkpoint) -> Result<(), String> {
    let body = entry.body_bytes()?;
    let set = BASE64_STANDARD
        .decode(&entry.verification.signed_entry_timestamp)
        .map_err(|_| "its SET is not base64".to_owned())?;
    shard
        .key
        .verify_set(&entry.body, entry.integrated_time, entry.log_index, &set)
        .map_err(|_| "its SET does not verify under the key".to_owned())?;
    let local = entry.log_index - shard.offset;
    let proof = &entry.verification.inclusion_proof;
    if proof.log_index.is_some_and(|l| l != local) {
        return Err(format!(
            "its inclusion proof's logIndex {} is not its index {local} in its shard",
            proof.log_index.unwrap_or_default()
        ));
    }
    let hashes = entry
        .verification
        .inclusion_proof
        .hashes
        .iter()
        .map(|h| parse_hash(h).ok_or_else(|| format!("{h:?} is not a hex hash")))
        .collect::<Result<Vec<_>, _>>()?;
    merkle::verify_inclusion(
        merkle::leaf_hash(&body),
        local,
        checkpoint.size,
        &hashes,
        checkpoint.root,
    )
    .map_err(|_| {
        format!(
            "its inclusion proof does not lead to the root at size {}",
            checkpoint.size
        )
    })
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
