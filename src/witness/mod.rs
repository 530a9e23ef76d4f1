//! Witness cosignatures for the Rekor v2 log (rekor-v2-tiles.md X-01…X-04):
//! after each new checkpoint, every witness the policy's quorum counts is
//! asked, in parallel, to cosign it (`add-checkpoint` with a consistency
//! proof from the size it last cosigned); the valid cosignatures are
//! appended after the log's own signature line, and the result is what
//! `/checkpoint` serves and what creates are answered with.
//!
//! The sequencer never waits for witnesses: rounds run in their own task,
//! one at a time, each bounded by `v2.witness_timeout_ms` per witness, and
//! a round always covers the newest checkpoint. Fail-open (the default, as
//! upstream): a round that misses the quorum publishes the checkpoint with
//! the log's signature only. Fail-closed: it publishes nothing, and creates
//! are answered 503 until a checkpoint that covers them met the quorum.

pub mod client;
pub mod policy;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge, Opts};
use signed_note::Signature;
use tokio::sync::{watch, Notify};

use crate::log::Log;
use crate::merkle::Hash;
use crate::metrics::Metrics;
use crate::note::c2sp::SignedNote;
use crate::storage::{Store, StoredCheckpoint};
pub use client::Failure;
pub use policy::{Policy, PolicyError};

/// Tries per witness and round: a 409 teaches the witness's size, and the
/// request is sent again with a proof from it.
const TRIES: usize = 3;
/// How far in the future a cosignature's timestamp may be (clock skew).
const MAX_FUTURE_SECS: u64 = 60;
/// How often the task looks for a new checkpoint without being told (one
/// committed by another process, or a create that did not kick it).
const POLL: Duration = Duration::from_millis(200);
/// How soon a round that missed the quorum is tried again at the same size.
const MISSED_RETRY: Duration = Duration::from_secs(1);

/// Settings from `v2.*`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Per-witness bound on one round (all its tries).
    pub timeout: Duration,
    /// CA certificates trusted besides the system's, for `https://`
    /// witnesses (`v2.witness_ca_file`).
    pub ca_file: Option<std::path::PathBuf>,
    /// Whether creates wait for the quorum (`v2.witness_fail_closed`).
    pub fail_closed: bool,
}

/// The checkpoint served at `/checkpoint` and in create answers.
#[derive(Debug, Clone)]
pub struct Published {
    /// Size, root and the note with its cosignature lines.
    pub checkpoint: Arc<StoredCheckpoint>,
    /// Whether its cosignatures meet the policy's quorum.
    pub quorum: bool,
}

/// Why witnessing could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The policy file could not be read.
    #[error("couldn't read v2.witness_policy {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The policy file has a bad line.
    #[error("v2.witness_policy {path}: {cause}")]
    Policy {
        /// The file.
        path: String,
        /// The first bad line.
        cause: PolicyError,
    },
    /// The HTTP client could not be built.
    #[error("couldn't build the witness HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// `v2.witness_ca_file` is unusable.
    #[error("v2.witness_ca_file: {0}")]
    Tls(#[from] crate::http_client::ClientError),
    /// The metrics could not be registered.
    #[error("couldn't register the witness metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The `tlog_witness_*` metrics.
struct WitnessMetrics {
    requests: IntCounterVec,
    failures: IntCounterVec,
    quorum: IntCounterVec,
    cosigned_size: IntGauge,
}

impl WitnessMetrics {
    fn new(metrics: &Metrics) -> Result<Self, prometheus::Error> {
        let this = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "tlog_witness_requests_total",
                    "add-checkpoint requests sent, by witness (policy name).",
                ),
                &["witness"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "tlog_witness_failures_total",
                    "Witness rounds without a valid cosignature, by witness and reason.",
                ),
                &["witness", "reason"],
            )?,
            quorum: IntCounterVec::new(
                Opts::new(
                    "tlog_witness_quorum_total",
                    "Witnessing rounds by outcome (met, missed).",
                ),
                &["result"],
            )?,
            cosigned_size: IntGauge::new(
                "tlog_witness_cosigned_size",
                "Tree size of the newest checkpoint that met the witness quorum.",
            )?,
        };
        for collector in [
            Box::new(this.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(this.failures.clone()),
            Box::new(this.quorum.clone()),
            Box::new(this.cosigned_size.clone()),
        ] {
            metrics.register(collector)?;
        }
        for result in ["met", "missed"] {
            this.quorum.with_label_values(&[result]);
        }
        Ok(this)
    }
}

/// Witnessing for one log.
pub struct Witnessing {
    log: Arc<Log<Store>>,
    policy: Policy,
    /// The witnesses asked: the ones the quorum counts.
    asked: Vec<usize>,
    http: reqwest::Client,
    settings: Settings,
    /// Per witness (policy index): the size it last cosigned, as learnt
    /// from its answers; 0 until then.
    old_sizes: parking_lot::Mutex<Vec<u64>>,
    published: watch::Sender<Arc<Published>>,
    kick: Notify,
    metrics: WitnessMetrics,
}

/// Reads and parses the policy file.
///
/// # Errors
/// An unreadable file, or its first bad line, naming both.
pub fn load_policy(path: &Path) -> Result<Policy, SetupError> {
    let shown = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|cause| SetupError::Read {
        path: shown(),
        cause,
    })?;
    Policy::parse(&text).map_err(|cause| SetupError::Policy {
        path: shown(),
        cause,
    })
}

impl Witnessing {
    /// Witnessing for `log` under `policy`, reporting to `metrics`.
    ///
    /// # Errors
    /// The HTTP client cannot be built, or the metrics are registered twice.
    pub fn new(
        log: Arc<Log<Store>>,
        policy: Policy,
        settings: Settings,
        metrics: &Metrics,
    ) -> Result<Arc<Self>, SetupError> {
        let http = crate::http_client::builder(settings.ca_file.as_deref())?
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("tlog/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let initial = Published {
            checkpoint: log.checkpoint(),
            quorum: false,
        };
        let asked = policy.quorum_witnesses();
        Ok(Arc::new(Self {
            old_sizes: parking_lot::Mutex::new(vec![0; policy.witnesses().len()]),
            log,
            policy,
            asked,
            http,
            settings,
            published: watch::channel(Arc::new(initial)).0,
            kick: Notify::new(),
            metrics: WitnessMetrics::new(metrics)?,
        }))
    }

    /// Whether creates wait for the quorum.
    #[must_use]
    pub fn fail_closed(&self) -> bool {
        self.settings.fail_closed
    }

    /// The checkpoint to serve now.
    #[must_use]
    pub fn published(&self) -> Arc<Published> {
        Arc::clone(&self.published.borrow())
    }

    /// How long a create waits for a checkpoint that covers it: a round in
    /// flight and the next one, each bounded by the witness timeout.
    #[must_use]
    pub fn wait_bound(&self) -> Duration {
        self.settings.timeout * 2 + Duration::from_millis(250)
    }

    /// Tells the task that a new checkpoint may be there.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Waits up to [`Self::wait_bound`] for a published checkpoint that
    /// covers `index` (fail-closed: one that met the quorum). `None` when
    /// none came in time.
    pub async fn wait_covering(&self, index: u64) -> Option<Arc<Published>> {
        self.kick();
        let fits = |p: &Arc<Published>| {
            p.checkpoint.size > index && (p.quorum || !self.settings.fail_closed)
        };
        let mut rx = self.published.subscribe();
        let waited = tokio::time::timeout(self.wait_bound(), rx.wait_for(fits)).await;
        match waited {
            Ok(Ok(published)) => Some(Arc::clone(&published)),
            _ => None,
        }
    }

    /// Runs rounds until `stopped` turns true: one for each new checkpoint,
    /// and again every [`MISSED_RETRY`] for one that missed the quorum.
    pub async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        // (size, root) of the last round, and whether it met the quorum.
        let mut last: Option<(u64, Hash, bool, tokio::time::Instant)> = None;
        loop {
            let checkpoint = self.log.checkpoint();
            let due = checkpoint.size > 0
                && match last {
                    Some((size, root, met, at))
                        if size == checkpoint.size && root == checkpoint.root =>
                    {
                        !met && at.elapsed() >= MISSED_RETRY
                    }
                    _ => true,
                };
            if due {
                let met = tokio::select! {
                    met = self.round(Arc::clone(&checkpoint)) => met,
                    _ = stopped.wait_for(|s| *s) => return,
                };
                last = Some((
                    checkpoint.size,
                    checkpoint.root,
                    met,
                    tokio::time::Instant::now(),
                ));
                continue;
            }
            tokio::select! {
                () = self.kick.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }

    /// Asks every quorum witness to cosign `checkpoint`, in parallel, and
    /// publishes the result. Returns whether the quorum was met.
    async fn round(&self, checkpoint: Arc<StoredCheckpoint>) -> bool {
        let Ok(note) = SignedNote::parse(&checkpoint.note) else {
            tracing::error!("the log's own checkpoint is not a signed note");
            return false;
        };
        let Ok(text) = std::str::from_utf8(note.text()) else {
            return false;
        };
        let asks = self.asked.iter().map(|&i| self.ask(i, &checkpoint, text));
        let answers = futures_util::future::join_all(asks).await;
        let mut cosigned = vec![false; self.policy.witnesses().len()];
        let mut lines: Vec<Signature> = Vec::new();
        for (&i, answer) in self.asked.iter().zip(answers) {
            let witness = &self.policy.witnesses()[i];
            match answer {
                Ok(line) => {
                    cosigned[i] = true;
                    lines.push(line);
                }
                Err(failure) => {
                    tracing::warn!(
                        witness = %witness.name,
                        size = checkpoint.size,
                        error = %failure,
                        "no cosignature from a witness"
                    );
                    self.metrics
                        .failures
                        .with_label_values(&[witness.name.as_str(), failure.label()])
                        .inc();
                }
            }
        }
        let met = self.policy.satisfied(&cosigned);
        self.metrics
            .quorum
            .with_label_values(&[if met { "met" } else { "missed" }])
            .inc();
        if met {
            self.metrics
                .cosigned_size
                .set(i64::try_from(checkpoint.size).unwrap_or(i64::MAX));
            let cosigned = StoredCheckpoint {
                size: checkpoint.size,
                root: checkpoint.root,
                note: note.with_cosignatures(&lines),
            };
            self.publish(Arc::new(cosigned), true);
        } else if !self.settings.fail_closed {
            // Fail-open: the log's own checkpoint, without cosignatures.
            self.publish(checkpoint, false);
        }
        met
    }

    fn publish(&self, checkpoint: Arc<StoredCheckpoint>, quorum: bool) {
        self.published.send_if_modified(|current| {
            // Never go back to a smaller tree (a round for an older size
            // cannot finish after a newer one, but be sure).
            if current.checkpoint.size > checkpoint.size {
                return false;
            }
            *current = Arc::new(Published { checkpoint, quorum });
            true
        });
    }

    /// One witness's part of a round, bounded by the witness timeout.
    async fn ask(
        &self,
        witness: usize,
        checkpoint: &StoredCheckpoint,
        text: &str,
    ) -> Result<Signature, Failure> {
        tokio::time::timeout(
            self.settings.timeout,
            self.exchange(witness, checkpoint, text),
        )
        .await
        .unwrap_or(Err(Failure::Timeout))
    }

    async fn exchange(
        &self,
        witness: usize,
        checkpoint: &StoredCheckpoint,
        text: &str,
    ) -> Result<Signature, Failure> {
        let entry = &self.policy.witnesses()[witness];
        let size = checkpoint.size;
        let mut old = self.old_sizes.lock()[witness];
        for _ in 0..TRIES {
            if old > size {
                return Err(Failure::Conflict(format!(
                    "the witness has cosigned size {old}, larger than this log's {size}"
                )));
            }
            let proof = if old == 0 || old == size {
                Vec::new()
            } else {
                self.log
                    .consistency_proof(old, size)
                    .await
                    .map_err(|e| Failure::Proof(e.to_string()))?
                    .0
            };
            self.metrics
                .requests
                .with_label_values(&[entry.name.as_str()])
                .inc();
            let body = client::request_body(old, &proof, &checkpoint.note);
            match client::add_checkpoint(&self.http, &entry.url, body).await? {
                client::Answer::Conflict(theirs) => {
                    if theirs == old {
                        return Err(Failure::Conflict(format!(
                            "409 naming the size that was sent ({old})"
                        )));
                    }
                    old = theirs;
                    self.old_sizes.lock()[witness] = theirs;
                }
                client::Answer::Cosigned(lines) => {
                    let line = self.check_cosignature(witness, text, lines)?;
                    self.old_sizes.lock()[witness] = size;
                    return Ok(line);
                }
            }
        }
        Err(Failure::Conflict(format!("still 409 after {TRIES} tries")))
    }

    /// The line of `witness`'s key among `lines` that verifies over the
    /// checkpoint `text`, with a timestamp that is not in the future
    /// (beyond [`MAX_FUTURE_SECS`]) and fits an int64.
    fn check_cosignature(
        &self,
        witness: usize,
        text: &str,
        lines: Vec<Signature>,
    ) -> Result<Signature, Failure> {
        let verifier = &self.policy.witnesses()[witness].verifier;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut why = "no line of its key".to_owned();
        for line in lines {
            if line.name() != verifier.name() || line.id() != verifier.key_id() {
                continue;
            }
            match verifier.verify_signature(text, &line) {
                Ok(time) if time > i64::MAX as u64 => {
                    why = format!("timestamp {time} is over 2^63-1");
                }
                Ok(time) if time > now + MAX_FUTURE_SECS => {
                    why = format!("timestamp {time} is in the future (now {now})");
                }
                Ok(_) => return Ok(line),
                Err(_) => why = "its line does not verify".into(),
            }
        }
        Err(Failure::BadCosignature(why))
    }
}
