//! `tlog export` and `tlog import`: a log to and from `db.jsonl`
//! (docs/db-jsonl.md).
//!
//! Export pages through the entries of any [`LogReader`] in index order and
//! writes the header, every entry and the latest checkpoint, so the same log
//! always gives the same bytes. Import checks a whole file first (hashes,
//! order, tree, checkpoint signatures under the log's key), then writes it
//! into an empty Postgres log in one transaction: all of it or nothing.

use std::io::{BufReader, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::merkle::Tree;
use crate::signing::LogVerifier;
use crate::storage::jsonl::{self, EntryRecord, Header, KeyPolicy, ScanOutcome, TailPolicy};
use crate::storage::postgres::PgStore;
use crate::storage::{Batch, LogReader, NewEntry, StoreError, StoredCheckpoint};
use crate::tiles;

/// Entries read from storage per query.
const PAGE: u64 = 8192;
/// Entries written to Postgres per statement group during import.
const IMPORT_CHUNK: usize = 8192;

/// Why an export or import stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The store failed or holds inconsistent data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file does not check out.
    #[error("{0}")]
    Format(String),
    /// Writing or reading the file failed.
    #[error("couldn't {0}: {1}")]
    Io(&'static str, std::io::Error),
}

/// Entries/s and ETA on stderr, only when it is a terminal.
pub struct Progress {
    label: &'static str,
    total: u64,
    started: Instant,
    last: Instant,
    enabled: bool,
}

impl Progress {
    /// Progress over `total` entries, shown only if stderr is a terminal.
    #[must_use]
    pub fn new(label: &'static str, total: u64) -> Self {
        let now = Instant::now();
        Self {
            label,
            total,
            started: now,
            last: now,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Reports `done` entries; redraws at most five times a second.
    pub fn update(&mut self, done: u64) {
        if !self.enabled || (self.last.elapsed() < Duration::from_millis(200) && done < self.total)
        {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        #[allow(clippy::cast_precision_loss)]
        let rate = done as f64 / secs;
        #[allow(clippy::cast_precision_loss)]
        let eta = if rate > 0.0 {
            (self.total - done) as f64 / rate
        } else {
            0.0
        };
        eprint!(
            "\r{}: {done}/{} entries, {rate:.0} entries/s, ETA {eta:.0}s   ",
            self.label, self.total
        );
        if done >= self.total {
            eprintln!();
        }
    }
}

/// Writes `store`'s log to `out` as `db.jsonl`. Memory stays constant: one
/// page of entries at a time. Returns the checkpoint the file ends with.
///
/// # Errors
/// An empty or corrupt store, a storage failure, or a write failure.
pub async fn export<S: LogReader>(
    store: &S,
    mut out: impl Write,
    progress: &mut Progress,
) -> Result<StoredCheckpoint, TransferError> {
    let corrupt = |why: &str| TransferError::Store(StoreError::Corrupt(why.to_owned()));
    let identity = store
        .identity()
        .await?
        .ok_or_else(|| corrupt("the store holds no log"))?;
    // Entries never change, so everything below the checkpoint read now is a
    // consistent snapshot even while a server keeps appending.
    let checkpoint = store
        .checkpoint()
        .await?
        .ok_or_else(|| corrupt("the log has no checkpoint"))?;
    let header = Header::for_log(&identity, &checkpoint).map_err(TransferError::Format)?;
    let write = |out: &mut dyn Write, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| TransferError::Io("write the export", e))
    };
    write(&mut out, &jsonl::encode_header(&header))?;
    progress.total = checkpoint.size;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut next = 0;
    while next < checkpoint.size {
        let end = (next + PAGE).min(checkpoint.size);
        let page = store.entry_page(next, end).await?;
        if page.len() as u64 != end - next {
            return Err(corrupt(&format!("entries {next}..{end} are incomplete")));
        }
        buf.clear();
        for (entry, keys) in &page {
            buf.extend(jsonl::encode_entry(entry, &jsonl::normalize_keys(keys)));
        }
        write(&mut out, &buf)?;
        next = end;
        progress.update(next);
    }
    write(&mut out, &jsonl::encode_checkpoint(&checkpoint))?;
    out.flush()
        .map_err(|e| TransferError::Io("write the export", e))?;
    progress.update(checkpoint.size);
    Ok(checkpoint)
}

/// Checks `path` as a snapshot of the log signed by `verifier`.
///
/// # Errors
/// The first problem in the file, with its line.
pub fn verify_file(
    path: &Path,
    verifier: &LogVerifier,
) -> Result<Box<jsonl::Scanned>, TransferError> {
    let file = std::fs::File::open(path).map_err(|e| TransferError::Io("open the file", e))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    match jsonl::scan(
        reader,
        KeyPolicy::Trusted(verifier),
        TailPolicy::Refuse,
        |_| {},
    ) {
        Ok(ScanOutcome::Log(scanned)) => Ok(scanned),
        Ok(ScanOutcome::Empty) => Err(TransferError::Format(format!(
            "{}: the file holds no log",
            path.display()
        ))),
        Err(e) => Err(TransferError::Format(format!("{}: {e}", path.display()))),
    }
}

/// Imports `path` into `store`, which must hold no log: verifies the whole
/// file, then writes entries, search keys, tiles and the final checkpoint in
/// one transaction. Returns the imported checkpoint.
///
/// # Errors
/// A file that does not verify under `verifier`, a database that already
/// holds a log, or a storage failure; nothing is written in any case.
pub async fn import(
    store: &PgStore,
    path: &Path,
    verifier: &LogVerifier,
    progress: &mut Progress,
) -> Result<StoredCheckpoint, TransferError> {
    // Pass 1: verify everything before touching the database.
    let owned = (path.to_owned(), verifier.clone());
    let verified = tokio::task::spawn_blocking(move || verify_file(&owned.0, &owned.1))
        .await
        .map_err(|e| TransferError::Format(format!("verification task failed: {e}")))??;
    progress.total = verified.checkpoint.size;
    let mut import = store.begin_import(&verified.header.identity()).await?;

    // Pass 2: read again (re-checking, in case the file changed) and write.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let owned = (path.to_owned(), verifier.clone());
    let reader = tokio::task::spawn_blocking(move || read_batches(&owned.0, &owned.1, &tx));
    let mut written = 0;
    while let Some(batch) = rx.recv().await {
        import.write(&batch).await?;
        written += batch.entries.len() as u64;
        progress.update(written);
    }
    let reread = reader
        .await
        .map_err(|e| TransferError::Format(format!("reader task failed: {e}")))??;
    if reread != verified.checkpoint || written != verified.checkpoint.size {
        return Err(TransferError::Format(format!(
            "{}: the file changed during the import",
            path.display()
        )));
    }
    import.finish(&verified.checkpoint).await?;
    Ok(verified.checkpoint)
}

/// Scans the file again, sending entries with their tiles in chunks.
fn read_batches(
    path: &Path,
    verifier: &LogVerifier,
    tx: &tokio::sync::mpsc::Sender<Batch>,
) -> Result<StoredCheckpoint, TransferError> {
    let file = std::fs::File::open(path).map_err(|e| TransferError::Io("open the file", e))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut tree = Tree::default();
    let mut pending: Vec<NewEntry> = Vec::with_capacity(IMPORT_CHUNK);
    let mut closed = false;
    let mut flush = |pending: &mut Vec<NewEntry>, tree: &mut Tree| {
        if pending.is_empty() || closed {
            return;
        }
        let leaves: Vec<_> = pending.iter().map(|e| e.leaf_hash).collect();
        let staged = tree.stage(&leaves);
        let tiles = tiles::changed_tiles(tree, &staged);
        tree.apply(staged);
        let batch = Batch {
            entries: std::mem::take(pending),
            tiles,
        };
        closed = tx.blocking_send(batch).is_err();
    };
    let outcome = jsonl::scan(
        reader,
        KeyPolicy::Trusted(verifier),
        TailPolicy::Refuse,
        |v| {
            let EntryRecord { entry, index_keys } = v.record.clone();
            pending.push(NewEntry {
                entry,
                leaf_hash: v.leaf,
                index_keys,
            });
            if pending.len() >= IMPORT_CHUNK {
                flush(&mut pending, &mut tree);
            }
        },
    )
    .map_err(|e| TransferError::Format(format!("{}: {e}", path.display())))?;
    flush(&mut pending, &mut tree);
    match outcome {
        ScanOutcome::Log(scanned) => Ok(scanned.checkpoint),
        ScanOutcome::Empty => Err(TransferError::Format("the file holds no log".to_owned())),
    }
}
