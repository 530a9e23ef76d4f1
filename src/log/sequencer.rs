//! The single sequencer: drains the submission pool in batches and commits each
//! batch in one storage transaction.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{AppendError, Clock, Log, Submission};
use crate::config::BatchConfig;
use crate::storage::{Batch, LogWriter, NewEntry, StoreError, StoredCheckpoint, StoredEntry};
use crate::tiles;

/// After a failed commit, how long waiters wait for the outcome before 503.
const SETTLE_PATIENCE: Duration = Duration::from_secs(3);
/// Pause between attempts to read the outcome of a failed commit.
const SETTLE_RETRY: Duration = Duration::from_millis(200);

type Reply = oneshot::Sender<Result<u64, AppendError>>;

/// Owns the receiving end of the pool. Run it with [`Sequencer::run`], or drive
/// it by hand with [`Sequencer::sequence_once`] in tests.
pub struct Sequencer<S> {
    log: Arc<Log<S>>,
    pool: mpsc::Receiver<Submission>,
    batch: BatchConfig,
    clock: Arc<dyn Clock>,
}

/// What a failed commit turned out to have done.
enum Outcome {
    Committed,
    NotCommitted,
}

impl<S: LogWriter + 'static> Sequencer<S> {
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
        }
    }

    /// Sequences batches until `stop` turns true (checked only between
    /// batches, never during a commit) or every sender is gone.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let first = tokio::select! {
                item = self.pool.recv() => match item {
                    Some(item) => item,
                    None => break,
                },
                _ = stop.wait_for(|stopped| *stopped) => break,
            };
            self.sequence_from(first).await;
        }
        tracing::info!("sequencer stopped");
    }

    /// Waits for the first submission, takes everything already queued (group
    /// commit: whatever arrived while the previous batch was committing), then
    /// lingers up to the batch interval for more while the batch is not full.
    /// Commits them. Returns `false` once the pool is closed and empty.
    pub async fn sequence_once(&mut self) -> bool {
        let Some(first) = self.pool.recv().await else {
            return false;
        };
        self.sequence_from(first).await;
        true
    }

    async fn sequence_from(&mut self, first: Submission) {
        let mut batch = vec![first];
        while batch.len() < self.batch.max_entries {
            match self.pool.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + self.batch.interval();
        while batch.len() < self.batch.max_entries && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, self.pool.recv()).await {
                Ok(Some(item)) => batch.push(item),
                Ok(None) | Err(_) => break,
            }
        }
        self.commit_batch(batch).await;
    }

    /// The write path. Its order is what keeps the log correct across crashes:
    ///
    /// 1. drop duplicates (against the tree and within the batch);
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
    /// checkpoint is read back to settle it before anything else happens.
    #[allow(clippy::too_many_lines)]
    #[tracing::instrument(
        name = "sequencer.batch",
        skip_all,
        fields(batch.submissions = submissions.len(), batch.entries, tree.size)
    )]
    async fn commit_batch(&mut self, submissions: Vec<Submission>) {
        let log = Arc::clone(&self.log);
        // One trace per batch, linked to the request spans it answers.
        crate::telemetry::link_current_span(submissions.iter().map(|s| s.origin.clone()));

        // 1. Duplicates. Only this task mutates the state, so what we read
        //    here stays true until we publish.
        let mut fresh: Vec<Submission> = Vec::with_capacity(submissions.len());
        let mut in_batch: HashMap<[u8; 32], usize> = HashMap::new();
        let mut repeats: Vec<(usize, Reply)> = Vec::new();
        {
            let state = log.state.read();
            for submission in submissions {
                if let Some(&index) = state.leaves.get(&submission.leaf.0) {
                    let _ = submission.reply.send(Err(AppendError::Duplicate(index)));
                } else if let Some(&position) = in_batch.get(&submission.leaf.0) {
                    repeats.push((position, submission.reply));
                } else {
                    in_batch.insert(submission.leaf.0, fresh.len());
                    fresh.push(submission);
                }
            }
        }
        if fresh.is_empty() {
            return;
        }

        // 2. Indexes and SETs. integratedTime is the batch's wall-clock second.
        let old_checkpoint = log.checkpoint();
        let old_size = old_checkpoint.size;
        let integrated_time = self.clock.now_unix();
        let mut replies = Vec::with_capacity(fresh.len());
        let mut entries = Vec::with_capacity(fresh.len());
        let kinds: Vec<&'static str> = fresh.iter().map(|s| s.entry.kind.name()).collect();
        let span = tracing::Span::current();
        span.record("batch.entries", fresh.len());
        let sign_sets = tracing::info_span!("sign.set", entries = fresh.len()).entered();
        for (offset, submission) in (0u64..).zip(fresh) {
            let index = old_size + offset;
            let body = submission.entry.canonical;
            let set = log
                .signer()
                .sign_set(&BASE64_STANDARD.encode(&body), integrated_time, index);
            replies.push((index, submission.reply));
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
        let (staged, tiles) = {
            let state = log.state.read();
            let staged = state.tree.stage(&leaves);
            let tiles = tiles::changed_tiles(&state.tree, &staged);
            (staged, tiles)
        };
        span.record("tree.size", staged.size());
        let new_checkpoint = tracing::info_span!("sign.checkpoint", tree.size = staged.size())
            .in_scope(|| log.sign(staged.size(), staged.root()));
        let batch = Batch { entries, tiles };

        // 4. One transaction. On error, settle what actually happened.
        let started = Instant::now();
        let committed = match log.store.commit(old_size, &batch, &new_checkpoint).await {
            Ok(()) => {
                log.metrics
                    .batch_commit
                    .observe(started.elapsed().as_secs_f64());
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, size = old_size, "batch commit failed");
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
            for (_, reply) in replies {
                let _ = reply.send(Err(AppendError::Unavailable("batch not committed".into())));
            }
            for (_, reply) in repeats {
                let _ = reply.send(Err(AppendError::Unavailable("batch not committed".into())));
            }
            return;
        }

        // 5. Publish, then answer. Readers see the new checkpoint and the
        //    hashes behind it at once, because both change under one lock.
        {
            let mut state = log.state.write();
            state.tree.apply(staged);
            for new in &batch.entries {
                state.leaves.insert(new.leaf_hash.0, new.entry.index);
            }
            state.checkpoint = Arc::new(new_checkpoint);
        }
        log.checkpoint_at.store(integrated_time, Ordering::Relaxed);
        log.metrics.batch_size.observe(batch.entries.len() as f64);
        for kind in kinds {
            log.metrics
                .entries_appended
                .with_label_values(&[kind])
                .inc();
        }
        for new in batch.entries {
            log.cache.insert(new.entry.index, Arc::new(new.entry));
        }
        for (position, reply) in repeats {
            let _ = reply.send(Err(AppendError::Duplicate(old_size + position as u64)));
        }
        for (index, reply) in replies {
            let _ = reply.send(Ok(index));
        }
        tracing::debug!(size = log.checkpoint().size, "committed batch");
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
            StoreError::Conflict(_) | StoreError::Corrupt(_)
        ) {
            // The transaction was rolled back; but a conflict means someone
            // else moved the log, which only a restart can reconcile.
            if let StoreError::Conflict(_) = first_error {
                tracing::error!("another writer changed the log; restart this server");
            }
            return Outcome::NotCommitted;
        }
        let started = Instant::now();
        self.log.degraded.store(true, Ordering::Relaxed);
        let outcome = loop {
            // Answer what queued meanwhile at once: a client should get 503,
            // not wait on a database that is down.
            while let Ok(queued) = self.pool.try_recv() {
                let _ = queued
                    .reply
                    .send(Err(AppendError::Unavailable("storage unavailable".into())));
            }
            match self.log.store.checkpoint().await {
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
        self.log.degraded.store(false, Ordering::Relaxed);
        tracing::info!("storage answers again; sequencing resumes");
        outcome
    }
}
