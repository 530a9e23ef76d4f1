//! Every Prometheus metric tlog exports, declared in one place. Labels come
//! from fixed sets (route patterns, status codes, entry kinds, outcomes),
//! never from request text.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The metric instruments, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route pattern, method and status code.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route pattern.
    pub http_duration: HistogramVec,
    /// Entries appended, by kind.
    pub entries_appended: IntCounterVec,
    /// Entries per committed batch.
    pub batch_size: Histogram,
    /// Time to commit one batch to storage.
    pub batch_commit: Histogram,
    /// Batch commits by outcome (`ok`, `failed`).
    pub batch_commits: IntCounterVec,
    /// Submissions waiting for the sequencer (set at scrape time).
    pub pool_depth: IntGauge,
    /// Canonical bytes of the submissions waiting (set at scrape time).
    pub pool_bytes: IntGauge,
    /// Submissions refused with 503 because the pool was full.
    pub pushbacks: IntCounter,
    /// 1 while the sequencer task lives, 0 once it stopped or died (set at
    /// scrape time; writable logs only).
    pub sequencer_up: IntGauge,
    /// 1 while this process holds the sequencer's lease and sequences, 0
    /// while it follows another (writable logs only).
    pub sequencer_leader: IntGauge,
    /// 1 for the sequencer's current state (`running`, `degraded`,
    /// `conflicted`, `stopped`), 0 for the others (set at scrape time).
    pub sequencer_state: IntGaugeVec,
    /// Size of the tree behind the served checkpoint.
    pub tree_size: IntGauge,
    /// Seconds since the served checkpoint was signed or loaded (set at scrape time).
    pub checkpoint_age: IntGauge,
    /// Database connections by state (`idle`, `in_use`; set at scrape time).
    pub db_connections: IntGaugeVec,
    /// Entries in the served replica snapshot.
    pub replica_snapshot_entries: IntGauge,
    /// Bytes of the served replica snapshot file.
    pub replica_snapshot_bytes: IntGauge,
    /// Replica snapshot reloads by result (`ok`, `rejected`, `error`).
    pub replica_reloads: IntCounterVec,
    /// Replica snapshot loads by how (`warm` from the index cache in
    /// `replica.state_dir`, `cold`: verified in full).
    pub replica_loads: IntCounterVec,
    /// Validation jobs holding a place, running or waiting (large bodies
    /// also while they are read), by lane (`small`, `large`; set at scrape time).
    pub validation_jobs: IntGaugeVec,
    /// Connections whose unread request body was not drained, because
    /// draining it would have exceeded `unread_body_drain_bytes_per_second`.
    pub unread_bodies_cut: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every instrument.
    ///
    /// # Panics
    /// Never in practice: names and labels are constants.
    #[must_use]
    pub fn new() -> Self {
        Self::in_registry(Registry::new())
    }

    /// The instruments of one more log served beside the first (the Rekor
    /// v2 log): every series carries the label `log="<name>"`, so
    /// [`Metrics::render_all`] can export them beside the first log's.
    ///
    /// # Panics
    /// Never in practice: the label is a constant.
    #[must_use]
    pub fn for_log(name: &str) -> Self {
        let labels = std::collections::HashMap::from([("log".to_owned(), name.to_owned())]);
        Self::in_registry(Registry::new_custom(None, Some(labels)).expect("a valid label"))
    }

    fn in_registry(registry: Registry) -> Self {
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let metrics = Self {
            http_requests: IntCounterVec::new(
                Opts::new(
                    "tlog_http_requests_total",
                    "HTTP requests by route, method and status.",
                ),
                &["route", "method", "status"],
            )
            .unwrap(),
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "tlog_http_request_duration_seconds",
                    "HTTP request latency.",
                )
                .buckets(latency.clone()),
                &["route"],
            )
            .unwrap(),
            entries_appended: IntCounterVec::new(
                Opts::new(
                    "tlog_entries_appended_total",
                    "Entries appended to the log, by kind.",
                ),
                &["kind"],
            )
            .unwrap(),
            batch_size: Histogram::with_opts(
                HistogramOpts::new("tlog_batch_size_entries", "Entries per committed batch.")
                    .buckets(vec![
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                    ]),
            )
            .unwrap(),
            batch_commit: Histogram::with_opts(
                HistogramOpts::new(
                    "tlog_batch_commit_duration_seconds",
                    "Time to commit one batch to storage.",
                )
                .buckets(latency),
            )
            .unwrap(),
            batch_commits: IntCounterVec::new(
                Opts::new("tlog_batch_commits_total", "Batch commits by outcome."),
                &["outcome"],
            )
            .unwrap(),
            pool_depth: IntGauge::new("tlog_pool_depth", "Submissions waiting for the sequencer.")
                .unwrap(),
            pool_bytes: IntGauge::new(
                "tlog_pool_bytes",
                "Canonical bytes of the submissions waiting for the sequencer.",
            )
            .unwrap(),
            sequencer_up: IntGauge::new(
                "tlog_sequencer_up",
                "1 while the sequencer runs, 0 once it stopped or died.",
            )
            .unwrap(),
            sequencer_leader: IntGauge::new(
                "tlog_sequencer_leader",
                "1 while this process holds the sequencer lease, 0 while it follows.",
            )
            .unwrap(),
            sequencer_state: IntGaugeVec::new(
                Opts::new(
                    "tlog_sequencer_state",
                    "1 for the sequencer's current state, 0 for the others.",
                ),
                &["state"],
            )
            .unwrap(),
            pushbacks: IntCounter::new(
                "tlog_pushbacks_total",
                "Submissions refused with 503 because the pool was full.",
            )
            .unwrap(),
            tree_size: IntGauge::new(
                "tlog_tree_size",
                "Size of the tree behind the served checkpoint.",
            )
            .unwrap(),
            checkpoint_age: IntGauge::new(
                "tlog_checkpoint_age_seconds",
                "Seconds since the served checkpoint was signed or loaded.",
            )
            .unwrap(),
            db_connections: IntGaugeVec::new(
                Opts::new("tlog_db_connections", "Database pool connections by state."),
                &["state"],
            )
            .unwrap(),
            replica_snapshot_entries: IntGauge::new(
                "tlog_replica_snapshot_entries",
                "Entries in the served replica snapshot.",
            )
            .unwrap(),
            replica_snapshot_bytes: IntGauge::new(
                "tlog_replica_snapshot_bytes",
                "Bytes of the served replica snapshot file.",
            )
            .unwrap(),
            replica_reloads: IntCounterVec::new(
                Opts::new(
                    "tlog_replica_reloads_total",
                    "Replica snapshot reloads by result.",
                ),
                &["result"],
            )
            .unwrap(),
            replica_loads: IntCounterVec::new(
                Opts::new(
                    "tlog_replica_snapshot_loads_total",
                    "Replica snapshot loads: warm from the index cache, or cold (verified in full).",
                ),
                &["start"],
            )
            .unwrap(),
            validation_jobs: IntGaugeVec::new(
                Opts::new(
                    "tlog_validation_jobs",
                    "Validation jobs holding a place in the pool, by lane.",
                ),
                &["lane"],
            )
            .unwrap(),
            unread_bodies_cut: IntCounter::new(
                "tlog_unread_bodies_cut_total",
                "Connections that stopped reading an unread request body over the drain budget.",
            )
            .unwrap(),
            registry,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.http_requests.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.entries_appended.clone()),
            Box::new(self.batch_size.clone()),
            Box::new(self.batch_commit.clone()),
            Box::new(self.batch_commits.clone()),
            Box::new(self.pool_depth.clone()),
            Box::new(self.pool_bytes.clone()),
            Box::new(self.pushbacks.clone()),
            Box::new(self.sequencer_up.clone()),
            Box::new(self.sequencer_leader.clone()),
            Box::new(self.sequencer_state.clone()),
            Box::new(self.tree_size.clone()),
            Box::new(self.checkpoint_age.clone()),
            Box::new(self.db_connections.clone()),
            Box::new(self.replica_snapshot_entries.clone()),
            Box::new(self.replica_snapshot_bytes.clone()),
            Box::new(self.replica_reloads.clone()),
            Box::new(self.replica_loads.clone()),
            Box::new(self.validation_jobs.clone()),
            Box::new(self.unread_bodies_cut.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
    }

    /// Registers a collector declared elsewhere (the `tlog_witness_*`
    /// metrics) in this registry.
    ///
    /// # Errors
    /// A name that is already registered.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        Self::render_all(&[self])
    }

    /// One exposition of several logs' metrics: a family that more than one
    /// has is written once, with every log's series (the exposition format
    /// allows each name only once).
    #[must_use]
    pub fn render_all(all: &[&Metrics]) -> String {
        let mut families: Vec<prometheus::proto::MetricFamily> = Vec::new();
        for metrics in all {
            for mut family in metrics.registry.gather() {
                match families.iter_mut().find(|f| f.name() == family.name()) {
                    Some(known) => known.mut_metric().extend(family.take_metric()),
                    None => families.push(family),
                }
            }
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("exposition is UTF-8")
    }
}

/// The instruments of `tlog monitor`, in their own registry (the monitor
/// serves only these).
pub struct MonitorMetrics {
    registry: Registry,
    /// Alerts raised, by kind (a fixed set: see `monitor::AlertKind`).
    pub alerts: IntCounterVec,
    /// Entries whose signer is on the watch list.
    pub identity_matches: IntCounter,
    /// Polls by outcome (`ok`, `alert`, `error`).
    pub polls: IntCounterVec,
    /// Entries whose SET and inclusion were checked.
    pub entries_checked: IntCounter,
    /// Size of the last verified checkpoint.
    pub tree_size: IntGauge,
    /// Unix seconds when the log was last seen growing.
    pub last_growth: IntGauge,
    /// Webhook deliveries that failed.
    pub webhook_failures: IntCounter,
}

impl Default for MonitorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl MonitorMetrics {
    /// Creates and registers every instrument.
    ///
    /// # Panics
    /// Never in practice: names and labels are constants.
    #[must_use]
    pub fn new() -> Self {
        let metrics = Self {
            registry: Registry::new(),
            alerts: IntCounterVec::new(
                Opts::new(
                    "tlog_monitor_alerts_total",
                    "Monitor alerts raised, by kind.",
                ),
                &["kind"],
            )
            .unwrap(),
            identity_matches: IntCounter::new(
                "tlog_monitor_identity_matches_total",
                "Entries signed by a watched identity or key.",
            )
            .unwrap(),
            polls: IntCounterVec::new(
                Opts::new("tlog_monitor_polls_total", "Monitor polls by outcome."),
                &["outcome"],
            )
            .unwrap(),
            entries_checked: IntCounter::new(
                "tlog_monitor_entries_checked_total",
                "Entries whose SET and inclusion the monitor checked.",
            )
            .unwrap(),
            tree_size: IntGauge::new(
                "tlog_monitor_tree_size",
                "Size of the last checkpoint the monitor verified.",
            )
            .unwrap(),
            last_growth: IntGauge::new(
                "tlog_monitor_last_growth_timestamp_seconds",
                "Unix time the monitor last saw the log grow.",
            )
            .unwrap(),
            webhook_failures: IntCounter::new(
                "tlog_monitor_webhook_failures_total",
                "Alert deliveries to the webhook that failed.",
            )
            .unwrap(),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(metrics.alerts.clone()),
            Box::new(metrics.identity_matches.clone()),
            Box::new(metrics.polls.clone()),
            Box::new(metrics.entries_checked.clone()),
            Box::new(metrics.tree_size.clone()),
            Box::new(metrics.last_growth.clone()),
            Box::new(metrics.webhook_failures.clone()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        metrics
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("exposition is UTF-8")
    }
}
