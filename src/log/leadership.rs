//! Several `tlog serve` processes on one store: exactly one holds the
//! sequencer's lease and sequences; the others follow.
//!
//! - The **leader** takes creates into its own pool, as a single process
//!   does, and drains the store's queue ([`Shared::claim`]) into the same pool.
//! - A **follower** validates a create where it lands (signature checks spread
//!   over every process), queues the validated entry for the leader
//!   ([`Shared::enqueue`]) and answers once its own view holds the entry: so a
//!   201 from any process is readable on that process at once, and on the
//!   others as soon as they catch up.
//! - Every follower catches its view up on each commit notification, and
//!   polls every [`FOLLOW_POLL`] in case one was missed.
//! - The lease keeper renews the lease, or waits for it to run out and takes
//!   it over: then it catches the view up to the stored checkpoint before it
//!   sequences anything. A leader that loses the lease steps down and follows.
//!
//! Safety does not rest on the keeper's timing: the sequencer signs only while
//! [`Held::is_held`] (by this process's monotonic clock, so a pause of any
//! length counts), and every commit is fenced by the lease's epoch in the
//! store.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::{AppendError, Log};
use crate::entries::{Entry, Kind};
use crate::merkle::{self, Hash};
use crate::storage::{Event, Lease, LogWriter, QueuedEntry, Refusal, Shared};

/// How often a process re-reads the store when no notification came.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How long a follower waits for the leader to commit what it handed over
/// before it answers 503.
/// How often the leader takes from the queue of handed-over entries while
/// followers hand entries over, and while none did for a second. Enqueues
/// send no NOTIFY (see `PgStore::enqueue`), so this is the queue's latency.
const QUEUE_POLL_BUSY: Duration = Duration::from_millis(2);
const QUEUE_POLL_IDLE: Duration = Duration::from_millis(50);
const QUEUE_BUSY_FOR: Duration = Duration::from_secs(1);

const HANDOVER_PATIENCE: Duration = Duration::from_secs(10);
/// How long a follower waits for an answer before it queues the entry again.
const HANDOVER_RETRY: Duration = Duration::from_millis(1500);
/// Most queued entries the leader takes in one claim.
const CLAIM_LIMIT: usize = 4096;
/// Most refusals kept for entries whose queue ID is not known yet.
const EARLY_REFUSALS: usize = 4096;

type Reply = oneshot::Sender<Result<u64, AppendError>>;

/// One create that this process handed over, waiting for its outcome.
struct Waiter {
    /// Tells this waiter apart from others on the same leaf.
    token: u64,
    /// Its queue ID, once the queue gave one.
    id: Option<i64>,
    reply: Reply,
}

/// The creates this process handed to the leader, by leaf hash. It holds
/// only what is in flight, never the log.
#[derive(Default)]
pub(super) struct Handover {
    waiting: HashMap<[u8; 32], Vec<Waiter>>,
    /// Refusals that arrived before their enqueue returned.
    early: HashMap<i64, Refusal>,
    next_token: u64,
}

impl<S: LogWriter + Shared + 'static> Log<S> {
    /// Whether this process holds the sequencer's lease and sequences.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Hands a validated entry to the leader through the store's queue and
    /// waits until this process's view holds it.
    pub(super) async fn hand_over(&self, leaf: Hash, entry: Entry) -> Result<u64, AppendError> {
        let (reply, answer) = oneshot::channel();
        let token = {
            let mut handover = self.handover.lock();
            handover.next_token += 1;
            let token = handover.next_token;
            handover.waiting.entry(leaf.0).or_default().push(Waiter {
                token,
                id: None,
                reply,
            });
            token
        };
        // Committed while we registered: the follower may have applied it.
        let known = self.find_leaf(&leaf).await.unwrap_or_else(|err| {
            // The leader refuses a duplicate anyway; this only answers sooner.
            tracing::debug!(error = %err, "couldn't look the entry up before handing it over");
            None
        });
        if let Some(index) = known {
            self.forget(&leaf, token);
            return Err(AppendError::Duplicate(index));
        }
        let queued = QueuedEntry {
            kind: entry.kind.name().to_owned(),
            body: entry.canonical,
            index_keys: entry.index_keys,
        };
        let started = tokio::time::Instant::now();
        let mut answer = answer;
        loop {
            let id = match self.store().enqueue(&queued).await {
                Ok(id) => id,
                Err(err) => {
                    self.forget(&leaf, token);
                    tracing::warn!(error = %err, "couldn't queue an entry for the leader");
                    return Err(AppendError::Unavailable("couldn't queue the entry".into()));
                }
            };
            self.learn_id(&leaf, token, id);
            // A leader that died (or lost its lease) after taking the entry
            // from the queue never answers: queue it again for its successor.
            // A copy that is still queued is refused as a duplicate once the
            // first is committed, and this waiter is answered by the commit.
            let wait = HANDOVER_RETRY.min(HANDOVER_PATIENCE.saturating_sub(started.elapsed()));
            match tokio::time::timeout(wait, &mut answer).await {
                Ok(Ok(outcome)) => return outcome,
                Ok(Err(_)) => break,
                Err(_) if started.elapsed() >= HANDOVER_PATIENCE => break,
                Err(_) => {}
            }
        }
        self.forget(&leaf, token);
        Err(AppendError::Unavailable(
            "the sequencer did not commit the entry in time".into(),
        ))
    }

    fn forget(&self, leaf: &Hash, token: u64) {
        let mut handover = self.handover.lock();
        if let Some(waiters) = handover.waiting.get_mut(&leaf.0) {
            waiters.retain(|w| w.token != token);
            if waiters.is_empty() {
                handover.waiting.remove(&leaf.0);
            }
        }
    }

    /// Records the queue ID of a waiter, answering it if its refusal came first.
    fn learn_id(&self, leaf: &Hash, token: u64, id: i64) {
        let mut handover = self.handover.lock();
        let early = handover.early.remove(&id);
        let Some(waiters) = handover.waiting.get_mut(&leaf.0) else {
            return;
        };
        let Some(position) = waiters.iter().position(|w| w.token == token) else {
            return;
        };
        match early {
            Some(refusal) => {
                let waiter = waiters.remove(position);
                let _ = waiter.reply.send(Err(refused(refusal)));
                if waiters.is_empty() {
                    handover.waiting.remove(&leaf.0);
                }
            }
            None => waiters[position].id = Some(id),
        }
    }

    /// Answers the create handed over as queue entry `id` with its refusal.
    fn resolve_refused(&self, id: i64, refusal: Refusal) {
        let mut handover = self.handover.lock();
        let found = handover.waiting.iter().find_map(|(leaf, waiters)| {
            let position = waiters.iter().position(|w| w.id == Some(id))?;
            Some((*leaf, position))
        });
        let Some((leaf, position)) = found else {
            // Not ours, or ours and its enqueue has not returned yet.
            if handover.early.len() >= EARLY_REFUSALS {
                handover.early.clear();
            }
            handover.early.insert(id, refusal);
            return;
        };
        let waiters = handover.waiting.get_mut(&leaf).expect("found above");
        let waiter = waiters.remove(position);
        if waiters.is_empty() {
            handover.waiting.remove(&leaf);
        }
        let _ = waiter.reply.send(Err(refused(refusal)));
    }

    /// Catches the view up with the store and answers what that committed.
    async fn catch_up(&self) {
        match self.view.catch_up(self.clock.now_unix()).await {
            Ok(added) => self.resolve_committed(&added),
            Err(err) => tracing::warn!(error = %err, "couldn't catch up with the stored log"),
        }
    }

    /// Takes what the queue holds into this leader's pool, as far as the
    /// pool has room. Each entry's outcome other than success is sent back
    /// through [`Shared::refuse`]; success the follower sees in the log.
    /// Returns how many it took.
    async fn drain_queue(self: &Arc<Self>) -> usize {
        let Some(appender) = &self.appender else {
            return 0;
        };
        if !self.is_leader() {
            return 0;
        }
        let room = appender.room().min(CLAIM_LIMIT);
        if room == 0 {
            return 0;
        }
        let claimed = match self.store().claim(room).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "couldn't take queued entries");
                return 0;
            }
        };
        let taken = claimed.len();
        for (id, queued) in claimed {
            let log = Arc::clone(self);
            tokio::spawn(async move {
                let outcome = log.append_queued(queued).await;
                if let Err(refusal) = outcome {
                    if let Err(err) = log.store().refuse(id, &refusal).await {
                        tracing::warn!(error = %err, "couldn't tell a follower its entry's fate");
                    }
                }
            });
        }
        taken
    }

    /// Takes from the queue while this process leads, until `stop`: every
    /// `QUEUE_POLL_BUSY` while followers hand entries over, every
    /// `QUEUE_POLL_IDLE` once none did for `QUEUE_BUSY_FOR`.
    pub async fn drain_queue_while_leading(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last_taken: Option<tokio::time::Instant> = None;
        loop {
            let busy = last_taken.is_some_and(|at| at.elapsed() < QUEUE_BUSY_FOR);
            let pause = if busy {
                QUEUE_POLL_BUSY
            } else {
                QUEUE_POLL_IDLE
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            if self.drain_queue().await > 0 {
                last_taken = Some(tokio::time::Instant::now());
            }
        }
    }

    /// Sequences one entry taken from the queue.
    async fn append_queued(&self, queued: QueuedEntry) -> Result<u64, Refusal> {
        let Some(kind) = Kind::from_name(&queued.kind) else {
            return Err(Refusal::Rejected(format!("unknown kind {}", queued.kind)));
        };
        let entry = Entry {
            kind,
            canonical: queued.body,
            index_keys: queued.index_keys,
            // Only admission (the write policy) reads them, where it landed.
            signers: Vec::new(),
        };
        // No look-up of its own: the follower looked it up before handing
        // it over, and the sequencer checks every batch.
        let leaf = merkle::leaf_hash(&entry.canonical);
        let appender = self.appender.as_ref().expect("only a writable log drains");
        appender
            .submit(leaf, entry, &self.metrics)
            .await
            .map_err(|err| match err {
                AppendError::Duplicate(index) => Refusal::Duplicate(index),
                AppendError::Rejected(why) => Refusal::Rejected(why),
                _ => Refusal::Unavailable,
            })
    }

    /// Follows the store until `stop`: catches up on every commit while
    /// following, drains the queue while leading, and answers refusals.
    pub async fn follow(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let event = tokio::select! {
                event = self.store().next_event(FOLLOW_POLL) => event,
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            match event {
                Ok(Some(Event::Refused { id, refusal })) => self.resolve_refused(id, refusal),
                // Only an older process still notifies per queued entry.
                Ok(Some(Event::Queued)) => {
                    self.drain_queue().await;
                }
                Ok(Some(Event::Moved) | None) => {
                    if self.is_leader() {
                        self.drain_queue().await;
                    } else {
                        self.catch_up().await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "couldn't listen to the store");
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
            }
        }
    }

    /// Keeps the sequencer's lease until `stop`: renews it while leading,
    /// takes it over once it is free, and steps down when it is lost.
    pub async fn keep_lease<L: Lease>(
        self: Arc<Self>,
        lease: Arc<L>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(lease.renew_every()) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            match lease.acquire().await {
                Ok(Some(epoch)) if !self.is_leader() => self.take_over(epoch).await,
                Ok(Some(_)) => {}
                Ok(None) if self.is_leader() => {
                    self.step_down("another process holds the sequencer lease");
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "couldn't renew the sequencer lease");
                    if self.is_leader() && !lease.is_held() {
                        self.step_down("the sequencer lease ran out");
                    }
                }
            }
        }
    }

    /// Becomes the leader: first the view takes in everything committed
    /// under earlier leases (which the epoch now fences off), then this
    /// process sequences.
    async fn take_over(self: &Arc<Self>, epoch: u64) {
        match self.view.catch_up(self.clock.now_unix()).await {
            Ok(added) => self.resolve_committed(&added),
            Err(err) => {
                tracing::warn!(error = %err, "took the sequencer lease but couldn't catch up; retrying");
                return;
            }
        }
        self.leader.store(true, Ordering::SeqCst);
        self.metrics.sequencer_leader.set(1);
        tracing::info!(
            epoch,
            size = self.checkpoint().size,
            "took the sequencer lease: this process sequences now"
        );
        self.drain_queue().await;
    }

    fn step_down(&self, why: &str) {
        self.leader.store(false, Ordering::SeqCst);
        self.metrics.sequencer_leader.set(0);
        tracing::warn!(
            reason = why,
            "lost the sequencer lease: this process follows now"
        );
    }
}

impl<S> Log<S> {
    /// Answers the creates handed over for leaves that are now committed.
    pub(super) fn resolve_committed(&self, added: &[(Hash, u64)]) {
        let mut handover = self.handover.lock();
        if handover.waiting.is_empty() {
            return;
        }
        for (leaf, index) in added {
            for waiter in handover.waiting.remove(&leaf.0).unwrap_or_default() {
                let _ = waiter.reply.send(Ok(*index));
            }
        }
    }
}

/// What a client of a refused handed-over entry hears.
fn refused(refusal: Refusal) -> AppendError {
    match refusal {
        Refusal::Duplicate(index) => AppendError::Duplicate(index),
        Refusal::Rejected(why) => AppendError::Rejected(why),
        Refusal::Unavailable => {
            AppendError::Unavailable("the sequencer could not take the entry".into())
        }
    }
}
