//! The single sequencer: drains the submission pool in batches and commits each
//! batch in one storage transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{AppendError, Clock, Committed, Log, SequencerState, Submission};
use crate::config::BatchConfig;
use crate::entries::Entry;
use crate::signing::{SetFields, SignError};
use crate::storage::{
    Batch, LogWriter, NewEntry, Shared, StoreError, StoredCheckpoint, StoredEntry,
};

/// After a failed commit, how long waiters wait for the outcome before 503.
const SETTLE_PATIENCE: Duration = Duration::from_secs(3);
/// Pause between attempts to read the outcome of a failed commit.
const SETTLE_RETRY: Duration = Duration::from_millis(200);
/// How long the sequencer waits for a lease renewal that is under way (a slow
/// database) before it gives up on a batch.
pub(super) const LEASE_PATIENCE: Duration = Duration::from_secs(3);
/// While the log key cannot sign, how often it is tried again.
const SIGNER_RETRY: Duration = Duration::from_millis(500);
/// What the client of an entry hears when the database refused it without
/// saying why in terms fit for a client (the reason is logged).
const UNSTORABLE: &str = "it holds data the log's storage refuses";

type Reply = oneshot::Sender<Result<u64, AppendError>>;

/// Owns the receiving end of the pool. Run it with [`Sequencer::run`], or drive
/// it by hand with [`Sequencer::sequence_once`] in tests.
///
/// Dropping it (the task ended, panicked or was aborted) marks the log's
/// sequencer [`SequencerState::Stopped`], which `/healthz` reports.
pub struct Sequencer<S> {
    log: Arc<Log<S>>,
    pool: mpsc::Receiver<Submission>,
    batch: BatchConfig,
    clock: Arc<dyn Clock>,
    /// The task that waits for the log key to sign again, while it runs.
    signer_watch: Option<tokio::task::JoinHandle<()>>,
}

/// What a failed commit turned out to have done.
enum Outcome {
    Committed,
    NotCommitted,
}

/// Whether the sequencer goes on after a batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Another writer moved the log: nothing more can be committed.
    Stop,
}

/// What became of one attempt to commit part of a batch.
enum Attempt {
    /// Committed, published and answered.
    Committed,
    /// Not committed (storage failed or conflicted); these are unanswered.
    NotCommitted {
        waiting: Vec<([u8; 32], Reply)>,
        flow: Flow,
    },
    /// Storage refused data in it and wrote nothing; the submissions come
    /// back, unanswered, to be retried without the entries at fault.
    Rejected {
        submissions: Vec<Submission>,
        reason: String,
        culprits: Vec<(usize, String)>,
    },
}

/// Answers the entries a store refused, and returns what to retry, the
/// part to commit next last. When the store named no culprit, a lone entry is
/// the culprit, and a larger part is split in halves (bisection: a few
/// poisoned entries cost a few more attempts, not one per entry).
fn isolate(
    mut submissions: Vec<Submission>,
    reason: &str,
    mut culprits: Vec<(usize, String)>,
    failed: &mut HashMap<[u8; 32], AppendError>,
) -> Option<Vec<Vec<Submission>>> {
    let mut refuse = |submission: Submission, why: String| {
        tracing::warn!(reason = %why, "storage refused an entry");
        let error = AppendError::Rejected(why);
        failed.insert(submission.leaf.0, error.clone());
        let _ = submission.reply.send(Err(error));
    };
    if culprits.is_empty() {
        if submissions.len() == 1 {
            tracing::warn!(%reason, "the database refused an entry");
            refuse(submissions.remove(0), UNSTORABLE.to_owned());
            return None;
        }
        let second = submissions.split_off(submissions.len() / 2);
        return Some(vec![second, submissions]);
    }
    // Highest position first, so that removing one leaves the others in place.
    culprits.sort_by_key(|c| std::cmp::Reverse(c.0));
    culprits.dedup_by_key(|c| c.0);
    for (position, why) in culprits {
        if position < submissions.len() {
            refuse(submissions.remove(position), why);
        }
    }
    (!submissions.is_empty()).then(|| vec![submissions])
}

impl<S> Drop for Sequencer<S> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the sequencer panicked; appends stop until a restart");
        }
        self.log.set_sequencer_state(SequencerState::Stopped);
        if let Some(watch) = &self.signer_watch {
            watch.abort();
        }
    }
}

impl<S: LogWriter + Shared + 'static> Sequencer<S> {
    pub(super) fn new(
        log: Arc<Log<S>>,
        pool: mpsc::Receiver<Submission>,
        batch: BatchConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            log,
            pool,
            batch,
            clock,
            signer_watch: None,
        }
    }

    /// Sequences batches until `stop` turns true (checked only between
    /// batches, never during a commit), every sender is gone, or another
    /// writer moved the log (then the state is `Conflicted`).
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let first = tokio::select! {
                item = self.pool.recv() => match item {
                    Some(item) => item,
                    None => break,
                },
                _ = stop.wait_for(|stopped| *stopped) => break,
            };
            if self.sequence_from(first).await == Flow::Stop {
                break;
            }
        }
        tracing::info!("sequencer stopped");
    }

    /// Waits for the first submission, takes everything already queued (group
    /// commit: whatever arrived while the previous batch was committing), then
    /// lingers up to the batch interval for more while the batch is not full.
    /// Commits them. Returns `false` once the pool is closed and empty, or
    /// the sequencer can commit nothing more (another writer moved the log).
    pub async fn sequence_once(&mut self) -> bool {
        let Some(first) = self.pool.recv().await else {
            return false;
        };
        self.sequence_from(first).await == Flow::Continue
    }

    /// Marks `submission` as out of the pool, freeing its bytes.
    fn took(&self, submission: Submission) -> Submission {
        if let Some(appender) = &self.log.appender {
            appender.took(submission.bytes);
        }
        submission
    }

    async fn sequence_from(&mut self, first: Submission) -> Flow {
        let first = self.took(first);
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        let full = |entries: usize, bytes: usize| {
            entries >= self.batch.max_entries || bytes >= self.batch.max_bytes
        };
        while !full(batch.len(), bytes) {
            match self.pool.try_recv() {
                Ok(item) => {
                    let item = self.took(item);
                    bytes += item.bytes;
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + self.batch.interval();
        while !full(batch.len(), bytes) && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, self.pool.recv()).await {
                Ok(Some(item)) => {
                    let item = self.took(item);
                    bytes += item.bytes;
                    batch.push(item);
                }
                Ok(None) | Err(_) => break,
            }
        }
        self.commit_batch(batch).await
    }

    /// Drops duplicates, then commits the rest with [`Self::attempt`]. When
    /// storage refuses data in the batch ([`StoreError::Rejected`]), the
    /// entries at fault are answered with `Rejected` and the others are
    /// committed without them: one poisoned entry never fails its batch. If
    /// the store cannot say which entries are at fault, the batch is split in
    /// halves until each refused entry stands alone. Every retry re-assigns
    /// indexes and re-signs from scratch; nothing signed for a refused
    /// attempt was written or answered.
    #[tracing::instrument(
        name = "sequencer.batch",
        skip_all,
        fields(batch.submissions = submissions.len(), batch.entries, tree.size)
    )]
    async fn commit_batch(&mut self, submissions: Vec<Submission>) -> Flow {
        // One trace per batch, linked to the request spans it answers.
        crate::telemetry::link_current_span(submissions.iter().map(|s| s.origin.clone()));

        // 1. Duplicates. Only this task mutates the state, so what we read
        //    here stays true until we publish.
        let mut fresh: Vec<Submission> = Vec::with_capacity(submissions.len());
        let mut in_batch: std::collections::HashSet<[u8; 32]> = std::collections::HashSet::new();
        let mut repeats: Vec<([u8; 32], Reply)> = Vec::new();
        {
            // One look-up for the whole batch (the store's leaf index, or
            // the journal's map in memory).
            let leaves: Vec<_> = submissions.iter().map(|s| s.leaf).collect();
            let known = match self.log.view.find_leaves(&leaves).await {
                Ok(known) => known,
                Err(err) => {
                    tracing::warn!(error = %err, "couldn't look the batch's entries up");
                    let error = AppendError::Unavailable("storage is unavailable".into());
                    for submission in submissions {
                        let _ = submission.reply.send(Err(error.clone()));
                    }
                    return Flow::Continue;
                }
            };
            for (submission, known) in submissions.into_iter().zip(known) {
                if let Some(index) = known {
                    let _ = submission.reply.send(Err(AppendError::Duplicate(index)));
                } else if in_batch.contains(&submission.leaf.0) {
                    repeats.push((submission.leaf.0, submission.reply));
                } else {
                    in_batch.insert(submission.leaf.0);
                    fresh.push(submission);
                }
            }
        }
        if fresh.is_empty() {
            return Flow::Continue;
        }

        // A stack of parts still to commit, the next one last.
        let mut parts = vec![fresh];
        let mut failed: HashMap<[u8; 32], AppendError> = HashMap::new();
        let mut flow = Flow::Continue;
        let mut storage_failed = false;
        while let Some(part) = parts.pop() {
            if storage_failed {
                let error = AppendError::Unavailable("batch not committed".into());
                for submission in part {
                    failed.insert(submission.leaf.0, error.clone());
                    let _ = submission.reply.send(Err(error.clone()));
                }
                continue;
            }
            match self.attempt(part).await {
                Attempt::Committed => {}
                Attempt::NotCommitted { waiting, flow: f } => {
                    storage_failed = true;
                    flow = f;
                    let error = AppendError::Unavailable("batch not committed".into());
                    for (leaf, reply) in waiting {
                        failed.insert(leaf, error.clone());
                        let _ = reply.send(Err(error.clone()));
                    }
                }
                Attempt::Rejected {
                    submissions,
                    reason,
                    culprits,
                } => {
                    if let Some(rest) = isolate(submissions, &reason, culprits, &mut failed) {
                        parts.extend(rest);
                    }
                }
            }
        }

        // A repeat within the batch shares its original's fate.
        for (leaf, reply) in repeats {
            let found = self.log.find_leaf(&crate::merkle::Hash(leaf)).await;
            let answer = match found.ok().flatten() {
                Some(index) => AppendError::Duplicate(index),
                None => failed
                    .get(&leaf)
                    .cloned()
                    .unwrap_or_else(|| AppendError::Unavailable("batch not committed".into())),
            };
            let _ = reply.send(Err(answer));
        }
        flow
    }

    /// The write path for one part of a batch, every entry in it new. Its
    /// order is what keeps the log correct across crashes:
    ///
    /// 1. (done by the caller) drop duplicates;
    /// 2. assign indexes and sign each entry's SET;
    /// 3. stage the new tree hashes and tiles, and sign the new checkpoint;
    /// 4. commit entries, index keys, tiles and checkpoint in ONE transaction
    ///    that compare-and-swaps the checkpoint on the old size;
    /// 5. only then publish the new state in memory and answer the waiters.
    ///
    /// Nothing is answered with success before step 4 returns `Ok`, so a crash
    /// at any point loses only unacknowledged submissions, and a restart
    /// resumes from the last committed checkpoint. If the commit fails with an
    /// unknown outcome (the connection dropped around COMMIT), the stored
    /// checkpoint is read back to settle it before anything else happens. If
    /// storage refuses the data, nothing was written, and what was signed in
    /// steps 2 and 3 is dropped unseen.
    #[allow(clippy::too_many_lines)]
    async fn attempt(&mut self, fresh: Vec<Submission>) -> Attempt {
        let log = Arc::clone(&self.log);
        // Nothing else stages on or applies to the view until this attempt ends.
        let _advancing = log.view.advancing().await;
        // Sign nothing without the lease: another process may be sequencing
        // this size (the commit is fenced too, for a pause after this check).
        if !log.wait_for_lease().await {
            tracing::warn!("not sequencing: this process does not hold the sequencer lease");
            let waiting = fresh.into_iter().map(|s| (s.leaf.0, s.reply)).collect();
            return Attempt::NotCommitted {
                waiting,
                flow: Flow::Continue,
            };
        }

        // 2. Indexes and SETs. integratedTime is the batch's wall-clock second.
        let old_checkpoint = log.checkpoint();
        let old_size = old_checkpoint.size;
        let integrated_time = self.clock.now_unix();
        let mut replies = Vec::with_capacity(fresh.len());
        let mut entries = Vec::with_capacity(fresh.len());
        let mut kinds = Vec::with_capacity(fresh.len());
        let mut origins = Vec::with_capacity(fresh.len());
        let span = tracing::Span::current();
        span.record("batch.entries", fresh.len());
        let sign_sets = tracing::info_span!("sign.set", entries = fresh.len()).entered();
        let bodies_b64: Vec<String> = fresh
            .iter()
            .map(|s| BASE64_STANDARD.encode(&s.entry.canonical))
            .collect();
        // A shard's SETs sign the global index (Rekor's virtual index).
        let fields: Vec<SetFields<'_>> = (log.info().index_offset + old_size..)
            .zip(&bodies_b64)
            .map(|(log_index, body_b64)| SetFields {
                body_b64,
                integrated_time,
                log_index,
            })
            .collect();
        // Signed in parallel when the key is in an HSM (issue 16). A key
        // that cannot sign fails the whole part: nothing was written yet.
        let sets = match log.signer().sign_sets(&fields) {
            Ok(sets) => sets,
            Err(err) => return self.signing_failed(&err, fresh),
        };
        drop(fields);
        for ((offset, submission), set) in (0u64..).zip(fresh).zip(sets) {
            let index = old_size + offset;
            let body = submission.entry.canonical;
            replies.push((index, submission.reply));
            kinds.push(submission.entry.kind);
            origins.push(submission.origin);
            entries.push(NewEntry {
                entry: StoredEntry {
                    index,
                    body,
                    integrated_time,
                    set,
                },
                leaf_hash: submission.leaf,
                index_keys: submission.entry.index_keys,
            });
        }
        drop(sign_sets);

        // 3. Tree hashes, tiles and the signed checkpoint for the new size.
        let leaves: Vec<_> = entries.iter().map(|e| e.leaf_hash).collect();
        let (staged, tiles) = log.view.stage(&leaves);
        span.record("tree.size", staged.size());
        let signed = tracing::info_span!("sign.checkpoint", tree.size = staged.size())
            .in_scope(|| log.sign(staged.size(), staged.root()));
        let new_checkpoint = match signed {
            Ok(checkpoint) => checkpoint,
            Err(err) => {
                let waiting = entries.iter().map(|e| e.leaf_hash.0).zip(replies);
                let waiting = waiting.map(|(leaf, (_, reply))| (leaf, reply)).collect();
                self.watch_signer(&err);
                return Attempt::NotCommitted {
                    waiting,
                    flow: Flow::Continue,
                };
            }
        };
        let batch = Batch { entries, tiles };

        // 4. One transaction. On error, settle what actually happened.
        let started = Instant::now();
        let mut flow = Flow::Continue;
        let committed = match log.store().commit(old_size, &batch, &new_checkpoint).await {
            Ok(()) => {
                log.metrics
                    .batch_commit
                    .observe(started.elapsed().as_secs_f64());
                true
            }
            Err(StoreError::Rejected { reason, culprits }) => {
                log.metrics
                    .batch_commits
                    .with_label_values(&["rejected"])
                    .inc();
                // Nothing was written: hand the submissions back whole.
                let submissions = batch
                    .entries
                    .into_iter()
                    .zip(replies)
                    .zip(kinds.into_iter().zip(origins))
                    .map(|((new, (_, reply)), (kind, origin))| Submission {
                        leaf: new.leaf_hash,
                        bytes: new.entry.body.len(),
                        entry: Entry {
                            kind,
                            canonical: new.entry.body,
                            index_keys: new.index_keys,
                            // Only admission (the write policy) reads them.
                            signers: Vec::new(),
                        },
                        reply,
                        origin,
                    })
                    .collect();
                return Attempt::Rejected {
                    submissions,
                    reason,
                    culprits,
                };
            }
            Err(StoreError::Fenced) => {
                // Another process took the lease over: it sequences now, and
                // this one writes nothing until it holds the lease again.
                tracing::warn!(
                    size = old_size,
                    "batch not committed: the sequencer lease was taken over"
                );
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, size = old_size, "batch commit failed");
                if let StoreError::Conflict(_) = err {
                    // Someone else moved the log, which only a restart can
                    // reconcile: stop, so that health checks say so.
                    tracing::error!("another writer changed the log; restart this server");
                    log.set_sequencer_state(SequencerState::Conflicted);
                    flow = Flow::Stop;
                }
                matches!(
                    self.settle(old_size, &new_checkpoint, &err, &mut replies)
                        .await,
                    Outcome::Committed
                )
            }
        };
        let outcome = if committed { "ok" } else { "failed" };
        log.metrics
            .batch_commits
            .with_label_values(&[outcome])
            .inc();
        if !committed {
            let waiting = batch
                .entries
                .iter()
                .map(|e| e.leaf_hash.0)
                .zip(replies)
                .map(|(leaf, (_, reply))| (leaf, reply))
                .collect();
            return Attempt::NotCommitted { waiting, flow };
        }

        // 5. Publish, then answer. Readers see the new checkpoint and the
        //    hashes behind it at once, because both change under one lock.
        log.metrics.batch_size.observe(batch.entries.len() as f64);
        for kind in kinds {
            log.metrics
                .entries_appended
                .with_label_values(&[kind.name()])
                .inc();
        }
        let added: Vec<_> = leaves.iter().copied().zip(old_size..).collect();
        log.view.apply(
            Committed {
                staged,
                leaves,
                checkpoint: new_checkpoint,
                entries: batch.entries.into_iter().map(|new| new.entry).collect(),
            },
            integrated_time,
        );
        log.resolve_committed(&added);
        // A fenced commit that succeeded held the lease up to its COMMIT (no
        // successor can take the lease over while the commit holds its row),
        // so the entries are in the one log whoever leads next.
        for (index, reply) in replies {
            let _ = reply.send(Ok(index));
        }
        tracing::debug!(size = log.checkpoint().size, "committed batch");
        Attempt::Committed
    }

    /// Reads the stored checkpoint until it tells whether a failed commit
    /// landed. Waiters get 503 after [`SETTLE_PATIENCE`]; the sequencer itself
    /// does not move on until the outcome is known, because the next batch's
    /// indexes depend on it.
    async fn settle(
        &mut self,
        old_size: u64,
        new: &StoredCheckpoint,
        first_error: &StoreError,
        replies: &mut Vec<(u64, Reply)>,
    ) -> Outcome {
        if matches!(
            first_error,
            StoreError::Conflict(_) | StoreError::Corrupt(_) | StoreError::Fenced
        ) {
            // The transaction was rolled back.
            return Outcome::NotCommitted;
        }
        let started = Instant::now();
        self.log.set_sequencer_state(SequencerState::Degraded);
        let outcome = loop {
            // Answer what queued meanwhile at once: a client should get 503,
            // not wait on a database that is down.
            while let Ok(queued) = self.pool.try_recv() {
                let queued = self.took(queued);
                let _ = queued
                    .reply
                    .send(Err(AppendError::Unavailable("storage unavailable".into())));
            }
            match self.log.store().checkpoint().await {
                Ok(Some(stored)) if stored.size == new.size && stored.root == new.root => {
                    break Outcome::Committed;
                }
                Ok(Some(stored)) if stored.size == old_size => break Outcome::NotCommitted,
                Ok(other) => {
                    tracing::error!(
                        ?other,
                        "stored checkpoint is neither the old nor the new one"
                    );
                    break Outcome::NotCommitted;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "couldn't read checkpoint to settle commit")
                }
            }
            if started.elapsed() > SETTLE_PATIENCE && !replies.is_empty() {
                for (_, reply) in replies.drain(..) {
                    let _ = reply.send(Err(AppendError::Unavailable("storage unavailable".into())));
                }
            }
            tokio::time::sleep(SETTLE_RETRY).await;
        };
        self.log.set_sequencer_state(SequencerState::Running);
        tracing::info!("storage answers again; sequencing resumes");
        outcome
    }
}

impl<S: LogWriter + Shared + 'static> Sequencer<S> {
    /// The log key could not sign a part's SETs: nothing was written, so
    /// its submissions are handed back unanswered as not committed (503).
    fn signing_failed(&mut self, err: &SignError, fresh: Vec<Submission>) -> Attempt {
        self.watch_signer(err);
        Attempt::NotCommitted {
            waiting: fresh.into_iter().map(|s| (s.leaf.0, s.reply)).collect(),
            flow: Flow::Continue,
        }
    }

    /// Marks the sequencer degraded, so creates get 503 at once instead of
    /// queueing, and starts a task that tries the key every
    /// [`SIGNER_RETRY`] and marks it running again once it signs. Reads are
    /// untouched: they never sign.
    fn watch_signer(&mut self, err: &SignError) {
        tracing::error!(error = %err, "the log key cannot sign; creates get 503 until it can");
        self.log
            .metrics
            .batch_commits
            .with_label_values(&["failed"])
            .inc();
        self.log.set_sequencer_state(SequencerState::Degraded);
        if self.signer_watch.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let log = Arc::clone(&self.log);
        self.signer_watch = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(SIGNER_RETRY).await;
                if log.sequencer_state() != SequencerState::Degraded {
                    return;
                }
                let probe = Arc::clone(&log);
                let signed = tokio::task::spawn_blocking(move || probe.signer().probe()).await;
                if matches!(signed, Ok(Ok(()))) {
                    log.set_sequencer_state(SequencerState::Running);
                    tracing::info!("the log key signs again; sequencing resumes");
                    return;
                }
            }
        }));
    }
}
