//! `tlog export` and `tlog import`: a log to and from `db.jsonl`
//! (docs/db-jsonl.md).
//!
//! Export pages through the entries of any [`LogReader`] in index order and
//! writes the header, every entry and the latest checkpoint, so the same log
//! always gives the same bytes. Import checks a whole file first (hashes,
//! order, tree, checkpoint signatures under the log's key), then writes it
//! into an empty log in chunks, each a consistent signed log, so that an
//! interrupted import continues where it stopped.
//! A Rekor v2 log travels as its C2SP tiles instead ([`v2`]).

pub mod v2;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::merkle::Tree;
use crate::signing::{LogSigner, LogVerifier};
use crate::storage::jsonl::{
    self, Bodies, EntryRecord, Header, KeyPolicy, ScanOutcome, TailPolicy,
};
use crate::storage::{Batch, LogReader, LogWriter, NewEntry, StoreError, StoredCheckpoint};
use crate::tiles;

/// Entries read from storage per query.
const PAGE: u64 = 8192;
/// Entries per commit during import.
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
    out: impl Write,
    progress: &mut Progress,
) -> Result<StoredCheckpoint, TransferError> {
    export_shard(store, out, 0, progress).await
}

/// [`export`] of one shard of a time-sharded v1 log, whose first entry
/// has the global index `index_offset` (the header's `logIndexOffset`).
///
/// # Errors
/// As [`export`].
pub async fn export_shard<S: LogReader>(
    store: &S,
    mut out: impl Write,
    index_offset: u64,
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
    let mut header = Header::for_log(&identity, &checkpoint).map_err(TransferError::Format)?;
    header.index_offset = index_offset;
    let write = |out: &mut dyn Write, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| TransferError::Io("write the export", e))
    };
    write(&mut out, &jsonl::encode_header(&header))?;
    progress.total = checkpoint.size;
    // Two stages: this task reads page N+1 while a blocking thread encodes
    // page N (base64 and JSON are most of the work).
    let mut encoding: Option<tokio::task::JoinHandle<Vec<u8>>> = None;
    let mut next = 0;
    while next < checkpoint.size {
        let end = (next + PAGE).min(checkpoint.size);
        let page = store.entry_page(next, end).await?;
        if page.len() as u64 != end - next {
            return Err(corrupt(&format!("entries {next}..{end} are incomplete")));
        }
        let encoded = tokio::task::spawn_blocking(move || encode_page(&page));
        if let Some(previous) = encoding.replace(encoded) {
            write(&mut out, &finished(previous).await?)?;
            progress.update(next);
        }
        next = end;
    }
    if let Some(last) = encoding {
        write(&mut out, &finished(last).await?)?;
    }
    write(&mut out, &jsonl::encode_checkpoint(&checkpoint))?;
    out.flush()
        .map_err(|e| TransferError::Io("write the export", e))?;
    progress.update(checkpoint.size);
    Ok(checkpoint)
}

/// The `db.jsonl` lines of a page of entries.
fn encode_page(page: &[(crate::storage::StoredEntry, Vec<String>)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(page.len() * 1200);
    for (entry, keys) in page {
        jsonl::write_entry(&mut buf, entry, &jsonl::normalize_keys(keys));
    }
    buf
}

async fn finished(task: tokio::task::JoinHandle<Vec<u8>>) -> Result<Vec<u8>, TransferError> {
    task.await
        .map_err(|e| TransferError::Format(format!("encoding task failed: {e}")))
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
    let reader = file;
    match jsonl::scan(
        reader,
        KeyPolicy::Trusted(verifier),
        TailPolicy::Refuse,
        Bodies::Drop,
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

/// Imports `path` into `store` through [`LogWriter`], the seam the
/// sequencer writes through: verifies the whole file first, then commits it
/// in chunks, each with its tiles and a checkpoint that `signer` signs (the
/// last one is the file's own). The store must hold no log, or an earlier,
/// interrupted import of this file, which is then continued: every chunk
/// leaves a consistent, signed log. Returns the imported checkpoint.
///
/// # Errors
/// A file that does not verify under `signer`'s key (nothing is written
/// then), a store that already holds another log or this whole one, or a
/// storage failure (the chunks committed before it stay).
pub async fn import<S: LogWriter>(
    store: &S,
    path: &Path,
    signer: &LogSigner,
    progress: &mut Progress,
) -> Result<StoredCheckpoint, TransferError> {
    // Pass 1: verify everything before touching the store.
    let verifier = signer.verifier();
    let owned = (path.to_owned(), verifier.clone());
    let verified = tokio::task::spawn_blocking(move || verify_file(&owned.0, &owned.1))
        .await
        .map_err(|e| TransferError::Format(format!("verification task failed: {e}")))??;
    if verified.header.index_offset != 0 {
        return Err(TransferError::Format(format!(
            "{}: a shard of a time-sharded log (logIndexOffset {}): import loads unsharded \
             logs only; serve the shards with `tlog replica --frozen-shard`",
            path.display(),
            verified.header.index_offset
        )));
    }
    progress.total = verified.checkpoint.size;
    let sign = |size: u64, root: crate::merkle::Hash| {
        let checkpoint = crate::note::Checkpoint {
            origin: verified.header.origin.clone(),
            size,
            root,
        };
        let note = signer
            .sign_checkpoint(&checkpoint, &verified.header.hostname)
            .map_err(|e| TransferError::Format(format!("couldn't sign a checkpoint: {e}")))?;
        Ok::<_, TransferError>(StoredCheckpoint { size, root, note })
    };
    let current = import_start(store, &verified, &sign).await?;

    // Pass 2: read again (re-checking, in case the file changed) and commit.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Batch, crate::merkle::Hash)>(2);
    let owned = (path.to_owned(), verifier);
    let reader = tokio::task::spawn_blocking(move || read_batches(&owned.0, &owned.1, &tx));
    let current = commit_batches(
        store,
        current,
        &verified.checkpoint,
        &mut rx,
        &sign,
        progress,
    )
    .await?;
    let reread = reader
        .await
        .map_err(|e| TransferError::Format(format!("reader task failed: {e}")))??;
    if reread != verified.checkpoint || current != verified.checkpoint {
        return Err(TransferError::Format(format!(
            "{}: the file changed during the import",
            path.display()
        )));
    }
    Ok(verified.checkpoint)
}

/// Commits the chunks `rx` brings, each with its tree's root, on top of
/// `current` (the stored log: empty, or an interrupted import's prefix,
/// whose chunks are checked and skipped). Each commit is signed by `sign`
/// but the one that reaches `last`, the source's own checkpoint. Returns
/// the checkpoint committed last.
async fn commit_batches<S: LogWriter>(
    store: &S,
    mut current: StoredCheckpoint,
    last: &StoredCheckpoint,
    rx: &mut tokio::sync::mpsc::Receiver<(Batch, crate::merkle::Hash)>,
    sign: &impl Fn(u64, crate::merkle::Hash) -> Result<StoredCheckpoint, TransferError>,
    progress: &mut Progress,
) -> Result<StoredCheckpoint, TransferError> {
    let mut end = 0;
    while let Some((batch, root)) = rx.recv().await {
        end += batch.entries.len() as u64;
        if end <= current.size {
            // Committed by the interrupted import: it must be this source's.
            if end == current.size && root != current.root {
                return Err(StoreError::Corrupt(format!(
                    "the stored log at size {end} is not this file's"
                ))
                .into());
            }
            continue;
        }
        if end - batch.entries.len() as u64 != current.size {
            return Err(StoreError::Corrupt(format!(
                "the stored log ends at size {}, inside a chunk of this file",
                current.size
            ))
            .into());
        }
        let next = if end == last.size && root == last.root {
            last.clone()
        } else {
            sign(end, root)?
        };
        store.commit(current.size, &batch, &next).await?;
        current = next;
        progress.update(end);
    }
    Ok(current)
}

/// Where an import into `store` starts: an empty log it initialises, or
/// the checkpoint of an interrupted import of the same log.
async fn import_start<S: LogWriter>(
    store: &S,
    verified: &jsonl::Scanned,
    sign: &impl Fn(u64, crate::merkle::Hash) -> Result<StoredCheckpoint, TransferError>,
) -> Result<StoredCheckpoint, TransferError> {
    let identity = verified.header.identity();
    let held = || {
        StoreError::Conflict(
            "the database already holds a log; import needs an empty one".to_owned(),
        )
    };
    match store.identity().await? {
        None => {
            let first = sign(0, crate::merkle::empty_root())?;
            store.init(&identity, &first).await?;
            Ok(first)
        }
        Some(existing) if existing == identity => {
            let stored = store
                .checkpoint()
                .await?
                .ok_or_else(|| StoreError::Corrupt("log has no checkpoint".into()))?;
            if stored.size >= verified.checkpoint.size {
                return Err(held().into());
            }
            Ok(stored)
        }
        Some(_) => Err(held().into()),
    }
}

/// Scans the file again, sending entries with their tiles in chunks.
fn read_batches(
    path: &Path,
    verifier: &LogVerifier,
    tx: &tokio::sync::mpsc::Sender<(Batch, crate::merkle::Hash)>,
) -> Result<StoredCheckpoint, TransferError> {
    let file = std::fs::File::open(path).map_err(|e| TransferError::Io("open the file", e))?;
    let reader = file;
    let mut tree = Tree::default();
    let mut pending: Vec<NewEntry> = Vec::with_capacity(IMPORT_CHUNK);
    let mut closed = false;
    let mut flush = |pending: &mut Vec<NewEntry>, tree: &mut Tree| {
        if pending.is_empty() || closed {
            return;
        }
        closed = tx
            .blocking_send(stage_batch(tree, std::mem::take(pending)))
            .is_err();
    };
    let outcome = jsonl::scan(
        reader,
        KeyPolicy::Trusted(verifier),
        TailPolicy::Refuse,
        Bodies::Keep,
        |v| {
            let EntryRecord { entry, index_keys } = v.record;
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

/// The batch that appends `entries` to `tree` (which it then holds), with
/// the tiles it changes, and the tree's root after it: one import chunk.
fn stage_batch(tree: &mut Tree, entries: Vec<NewEntry>) -> (Batch, crate::merkle::Hash) {
    let leaves: Vec<_> = entries.iter().map(|e| e.leaf_hash).collect();
    let staged = tree.stage(&leaves);
    let tiles = tiles::changed_tiles(tree, &staged);
    let root = staged.root();
    tree.apply(staged);
    (Batch { entries, tiles }, root)
}

/// Writes a signed `db.jsonl` directly from entry bodies, without a server:
/// for tests, fixtures and benchmark files. Assigns indexes, signs each SET
/// and the final checkpoint with the log key.
pub struct SnapshotWriter<W: Write> {
    out: W,
    signer: crate::signing::LogSigner,
    hostname: String,
    origin: String,
    tree: Tree,
    buf: Vec<u8>,
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a file for the log `tree_id`, signed by `signer` as `hostname`.
    ///
    /// # Errors
    /// Writing the header fails.
    pub fn new(
        mut out: W,
        signer: crate::signing::LogSigner,
        hostname: &str,
        tree_id: i64,
    ) -> std::io::Result<Self> {
        let origin = format!("{hostname} - {tree_id}");
        out.write_all(&jsonl::encode_header(&Header {
            tree_id,
            origin: origin.clone(),
            hostname: hostname.to_owned(),
            public_key: signer.public_key_der().to_vec(),
            index_offset: 0,
        }))?;
        Ok(Self {
            out,
            signer,
            hostname: hostname.to_owned(),
            origin,
            tree: Tree::default(),
            buf: Vec::new(),
        })
    }

    /// Appends an entry integrated at `integrated_time`; returns its index.
    ///
    /// # Errors
    /// Writing or signing fails.
    pub fn push(
        &mut self,
        body: Vec<u8>,
        integrated_time: i64,
        index_keys: &[String],
    ) -> std::io::Result<u64> {
        use base64::prelude::{Engine, BASE64_STANDARD};
        let index = self.tree.size() + self.buf.len() as u64 / 32;
        let set = self
            .signer
            .sign_set(&BASE64_STANDARD.encode(&body), integrated_time, index)
            .map_err(std::io::Error::other)?;
        self.buf.extend(crate::merkle::leaf_hash(&body).0);
        let entry = crate::storage::StoredEntry {
            index,
            body,
            integrated_time,
            set,
        };
        self.out.write_all(&jsonl::encode_entry(
            &entry,
            &jsonl::normalize_keys(index_keys),
        ))?;
        Ok(index)
    }

    /// Writes a checkpoint covering everything so far and returns it.
    ///
    /// # Errors
    /// Writing or signing fails.
    pub fn checkpoint(&mut self) -> std::io::Result<StoredCheckpoint> {
        let leaves: Vec<crate::merkle::Hash> = self
            .buf
            .chunks_exact(32)
            .map(|c| crate::merkle::Hash(c.try_into().expect("32 bytes")))
            .collect();
        self.buf.clear();
        let staged = self.tree.stage(&leaves);
        self.tree.apply(staged);
        let size = self.tree.size();
        let root = self.tree.root(size).expect("size is the tree's");
        let note = self
            .signer
            .sign_checkpoint(
                &crate::note::Checkpoint {
                    origin: self.origin.clone(),
                    size,
                    root,
                },
                &self.hostname,
            )
            .map_err(std::io::Error::other)?;
        let checkpoint = StoredCheckpoint { size, root, note };
        self.out.write_all(&jsonl::encode_checkpoint(&checkpoint))?;
        Ok(checkpoint)
    }

    /// Writes the final checkpoint, flushes, and returns the writer.
    ///
    /// # Errors
    /// Writing fails.
    pub fn finish(mut self) -> std::io::Result<(W, StoredCheckpoint)> {
        let checkpoint = self.checkpoint()?;
        self.out.flush()?;
        Ok((self.out, checkpoint))
    }
}
