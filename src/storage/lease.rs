//! The sequencer's lease: who may write the log.
//!
//! One process at a time holds the lease of a log and runs its sequencer.
//! Every change of holder moves the lease's epoch forward; a store that knows
//! the epoch its writer holds refuses a commit made under an older one
//! (fencing), so a holder that was paused past its lease's end cannot write
//! once another has taken over.

use std::future::Future;
use std::time::Duration;

use super::StoreError;

/// Whether a lease is held now: the half of [`Lease`] the sequencer asks
/// before it signs, object-safe so that the log keeps one without a type
/// parameter. Called from any thread, at any time.
pub trait Held: Send + Sync {
    /// Whether this holder may still sign and commit now, by its own
    /// monotonic clock: it holds the lease, and the lease has not run out
    /// since the last renewal was sent. Always false after a pause longer
    /// than the lease, however it ended.
    fn is_held(&self) -> bool;
}

/// The lease on a log's sequencer.
///
/// `acquire` and `release` are called from one task at a time (the lease
/// keeper).
pub trait Lease: Held {
    /// Takes the lease if it is free or has expired, or renews it if this
    /// holder has it. Returns its epoch while this holder has it, `None`
    /// while another does.
    fn acquire(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Gives the lease up, so that another process takes over without waiting
    /// for it to expire.
    fn release(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// How often the holder (and a process waiting for the lease) calls
    /// [`Lease::acquire`].
    fn renew_every(&self) -> Duration;
}

/// The embedded journal's lease: the exclusive lock on `db.jsonl`, which
/// [`super::file::FileStore::open`] takes and holds for the store's life. It
/// is held for good once the store is open, so its epoch never changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileLease;

impl Held for FileLease {
    fn is_held(&self) -> bool {
        true
    }
}

impl Lease for FileLease {
    async fn acquire(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(1))
    }
    async fn release(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn renew_every(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

/// The lease of the configured store, wired at the edge like [`super::Store`].
pub enum StoreLease {
    /// A lease kept in Postgres.
    Postgres(super::postgres::PgLease),
    /// The embedded journal's file lock.
    File(FileLease),
}

impl Held for StoreLease {
    fn is_held(&self) -> bool {
        match self {
            StoreLease::Postgres(l) => l.is_held(),
            StoreLease::File(l) => l.is_held(),
        }
    }
}

impl Lease for StoreLease {
    async fn acquire(&self) -> Result<Option<u64>, StoreError> {
        match self {
            StoreLease::Postgres(l) => l.acquire().await,
            StoreLease::File(l) => l.acquire().await,
        }
    }
    async fn release(&self) -> Result<(), StoreError> {
        match self {
            StoreLease::Postgres(l) => l.release().await,
            StoreLease::File(l) => l.release().await,
        }
    }
    fn renew_every(&self) -> Duration {
        match self {
            StoreLease::Postgres(l) => l.renew_every(),
            StoreLease::File(l) => l.renew_every(),
        }
    }
}
