//! The appender: what only a writable log has. The signing key, and the
//! bounded submission pool that the [`super::Sequencer`] drains.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{AppendError, Submission};
use crate::config::PoolConfig;
use crate::entries::Entry;
use crate::merkle::Hash;
use crate::metrics::Metrics;
use crate::signing::LogSigner;
use crate::storage::Held;

/// The signer and the sending end of the pool.
pub(super) struct Appender {
    signer: LogSigner,
    /// The sequencer's lease; nothing is signed while it is not held.
    lease: Arc<dyn Held>,
    pool: mpsc::Sender<Submission>,
    /// Canonical bytes of the submissions waiting in `pool`.
    pool_bytes: AtomicUsize,
    /// Most bytes that may wait in `pool` (one submission is always let in).
    max_pool_bytes: usize,
}

impl Appender {
    /// An appender with an empty pool, and the pool's receiving end for the
    /// sequencer.
    pub(super) fn new(
        signer: LogSigner,
        pool: PoolConfig,
        lease: Arc<dyn Held>,
    ) -> (Self, mpsc::Receiver<Submission>) {
        let (tx, rx) = mpsc::channel(pool.capacity);
        let appender = Self {
            signer,
            lease,
            pool: tx,
            pool_bytes: AtomicUsize::new(0),
            max_pool_bytes: pool.max_bytes,
        };
        (appender, rx)
    }

    /// The log's signing key.
    pub(super) fn signer(&self) -> &LogSigner {
        &self.signer
    }

    /// Whether this process holds the sequencer's lease now.
    pub(super) fn holds_lease(&self) -> bool {
        self.lease.is_held()
    }

    /// Submissions waiting in the pool.
    pub(super) fn depth(&self) -> usize {
        self.pool.max_capacity() - self.pool.capacity()
    }

    /// Free places in the pool.
    pub(super) fn room(&self) -> usize {
        self.pool.capacity()
    }

    /// Canonical bytes waiting in the pool.
    pub(super) fn bytes(&self) -> usize {
        self.pool_bytes.load(Ordering::Relaxed)
    }

    /// Frees the bytes of a submission the sequencer took out of the pool.
    pub(super) fn took(&self, bytes: usize) {
        self.pool_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Queues `entry` (leaf hash `leaf`) and waits for its batch's outcome.
    ///
    /// # Errors
    /// `Pushback` when the pool is full, in entries or bytes; otherwise what
    /// the sequencer answered.
    pub(super) async fn submit(
        &self,
        leaf: Hash,
        entry: Entry,
        metrics: &Metrics,
    ) -> Result<u64, AppendError> {
        let bytes = entry.canonical.len();
        let waiting = self.pool_bytes.fetch_add(bytes, Ordering::Relaxed);
        if waiting > 0 && waiting + bytes > self.max_pool_bytes {
            self.pool_bytes.fetch_sub(bytes, Ordering::Relaxed);
            metrics.pushbacks.inc();
            return Err(AppendError::Pushback);
        }
        let (reply, answer) = oneshot::channel();
        let origin = crate::telemetry::current_span_context();
        self.pool
            .try_send(Submission {
                leaf,
                entry,
                bytes,
                reply,
                origin,
            })
            .map_err(|_| {
                self.pool_bytes.fetch_sub(bytes, Ordering::Relaxed);
                metrics.pushbacks.inc();
                AppendError::Pushback
            })?;
        answer
            .await
            .unwrap_or_else(|_| Err(AppendError::Unavailable("sequencer stopped".into())))
    }
}
