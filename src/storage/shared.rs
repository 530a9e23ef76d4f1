//! What several processes on one store need beyond reading and writing: a
//! queue that hands validated entries to the process holding the sequencer's
//! lease, and notifications when the log moves.
//!
//! Why a queue in the store rather than forwarding over HTTP to the leader:
//! every process already trusts and reaches the database, so the queue needs
//! no leader address, no internal endpoint, no credentials of its own, and
//! nothing that a client could reach to skip validation. It survives a change
//! of leader: whatever the old leader had not taken, the new one drains.

use std::future::Future;
use std::time::Duration;

use super::StoreError;

/// A validated entry waiting in the queue.
#[derive(Debug, Clone)]
pub struct QueuedEntry {
    /// The entry kind's name (`entries::Kind::name`).
    pub kind: String,
    /// The JCS-canonical body.
    pub body: Vec<u8>,
    /// Its search-index keys.
    pub index_keys: Vec<String>,
}

/// Why the leader did not commit a queued entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An equivalent entry is already in the log, at this index.
    Duplicate(u64),
    /// The store refuses the entry's data, for this reason.
    Rejected(String),
    /// The leader could not take it now (pool full, storage failing,
    /// lease lost); the client may retry.
    Unavailable,
}

/// Something that happened in the shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A batch was committed: the log moved.
    Moved,
    /// An entry was queued for the leader.
    Queued,
    /// The leader refused the queued entry `id`.
    Refused {
        /// The queue ID [`Shared::enqueue`] returned.
        id: i64,
        /// Why.
        refusal: Refusal,
    },
}

impl Refusal {
    /// The notification text of a refusal of entry `id`.
    #[must_use]
    pub fn encode(&self, id: i64) -> String {
        match self {
            Refusal::Duplicate(index) => format!("{id} duplicate {index}"),
            Refusal::Rejected(why) => format!("{id} rejected {why}"),
            Refusal::Unavailable => format!("{id} unavailable"),
        }
    }

    /// Parses [`Refusal::encode`]'s text.
    #[must_use]
    pub fn decode(text: &str) -> Option<(i64, Self)> {
        let mut parts = text.splitn(3, ' ');
        let id = parts.next()?.parse().ok()?;
        let refusal = match (parts.next()?, parts.next()) {
            ("duplicate", Some(index)) => Refusal::Duplicate(index.parse().ok()?),
            ("rejected", why) => Refusal::Rejected(why.unwrap_or_default().to_owned()),
            ("unavailable", _) => Refusal::Unavailable,
            _ => return None,
        };
        Some((id, refusal))
    }
}

/// A store that several `tlog serve` processes share.
///
/// Notifications are a wake-up, not a record: one may be missed (a dropped
/// connection), so a listener also polls.
pub trait Shared: Send + Sync {
    /// Whether other processes may share this store; only then are the
    /// other methods used.
    fn is_shared(&self) -> bool;
    /// Queues `entry` for the leader, durably, and wakes it. Returns the
    /// entry's queue ID.
    fn enqueue(&self, entry: &QueuedEntry) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Takes (and deletes) up to `limit` queued entries, oldest first. Two
    /// callers never take the same entry.
    fn claim(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(i64, QueuedEntry)>, StoreError>> + Send;
    /// Tells whoever queued entry `id` that it was not committed.
    fn refuse(
        &self,
        id: i64,
        refusal: &Refusal,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Waits up to `timeout` for the next [`Event`]; `None` when none came.
    /// The first call starts listening.
    fn next_event(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<Event>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_round_trip_through_their_notification_text() {
        for refusal in [
            Refusal::Duplicate(7),
            Refusal::Rejected("a key with a NUL".into()),
            Refusal::Rejected(String::new()),
            Refusal::Unavailable,
        ] {
            assert_eq!(Refusal::decode(&refusal.encode(42)), Some((42, refusal)));
        }
        assert_eq!(Refusal::decode("x unavailable"), None);
        assert_eq!(Refusal::decode("1 nonsense"), None);
    }
}
