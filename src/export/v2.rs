//! `tlog export --v2` and `tlog import --v2`: a Rekor v2 log to and from
//! a directory in the C2SP tlog-tiles layout (rekor-v2-tiles.md R-01…R-05):
//! `checkpoint`, `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`.
//!
//! That layout is the v2 log's own portable form: rekor-tiles keeps its
//! logs as exactly these files in a bucket, any static server or CDN can
//! serve the directory, every tile client reads it, and `tlog verify`
//! audits it. Only the final partial tiles are written (the ones the
//! checkpoint needs); older partial widths are not.
//!
//! What the layout does not carry: the time each entry was stored (a v2
//! log issues no integrated time; imported entries read 0) and earlier
//! checkpoints. The checkpoint keeps its cosignatures.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{commit_batches, stage_batch, Progress, TransferError, IMPORT_CHUNK, PAGE};
use crate::merkle::{leaf_hash, CompactRange, Hash, Tree};
use crate::note::c2sp;
use crate::signing::LogSigner;
use crate::storage::{
    Batch, LogIdentity, LogReader, LogWriter, NewEntry, StoreError, StoredCheckpoint, StoredEntry,
};
use crate::tiles::{self, TileId, TileStream, TILE_WIDTH};
use crate::verify::{verify_source, TileSource};

/// Bundle and tile reads in flight while verifying an import.
const CONCURRENCY: usize = 16;

// Pages and chunks hold whole bundles.
const _: () = assert!(PAGE % TILE_WIDTH as u64 == 0 && IMPORT_CHUNK % TILE_WIDTH as usize == 0);

fn format(reason: String) -> TransferError {
    TransferError::Format(reason)
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> TransferError {
    move |e| TransferError::Io(what, e)
}

/// Writes `bytes` to `dir/tile/<path>`, making its directories.
fn write_tile(dir: &Path, path: &str, bytes: &[u8]) -> Result<(), TransferError> {
    let file = dir.join("tile").join(path);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(io("create a tile directory"))?;
    }
    std::fs::write(&file, bytes).map_err(io("write a tile"))
}

/// Writes the v2 log in `store` to `dir`, which must not exist, as its
/// tiles: through `<dir>.partial`, renamed into place once complete, so a
/// directory named `dir` is always a whole log. Memory stays bounded: one
/// page of entries and one [`TileStream`]. The same log always gives the
/// same files. Returns the checkpoint written.
///
/// # Errors
/// Not a v2 log (its key is not Ed25519), an empty or corrupt store, a
/// storage failure, `dir` (or `<dir>.partial`) existing, or a write failure.
pub async fn export_tiles<S: LogReader>(
    store: &S,
    dir: &Path,
    progress: &mut Progress,
) -> Result<StoredCheckpoint, TransferError> {
    let corrupt = |why: String| TransferError::Store(StoreError::Corrupt(why));
    let identity = store
        .identity()
        .await?
        .ok_or_else(|| corrupt("the store holds no log".to_owned()))?;
    if c2sp::ed25519_raw(&identity.public_key).is_none() {
        return Err(format(
            "this log's key is not Ed25519: it is a v1 log, which `tlog export` writes as db.jsonl"
                .to_owned(),
        ));
    }
    let checkpoint = store
        .checkpoint()
        .await?
        .ok_or_else(|| corrupt("the log has no checkpoint".to_owned()))?;
    let tmp = partial_dir(dir);
    for taken in [dir, tmp.as_path()] {
        if taken.exists() {
            return Err(format(format!(
                "{} exists; hint: export into a new directory (remove a `.partial` one left by an \
                 export that failed)",
                taken.display()
            )));
        }
    }
    std::fs::create_dir_all(&tmp).map_err(io("create the export directory"))?;
    progress.total = checkpoint.size;
    let mut state = (TileStream::default(), CompactRange::default());
    let mut next = 0;
    while next < checkpoint.size {
        let end = (next + PAGE).min(checkpoint.size);
        let page = store.entry_page(next, end).await?;
        if page.len() as u64 != end - next {
            return Err(corrupt(format!("entries {next}..{end} are incomplete")));
        }
        let tmp = tmp.clone();
        state = tokio::task::spawn_blocking(move || write_page(&tmp, next, &page, state))
            .await
            .map_err(|e| format(format!("writing task failed: {e}")))??;
        progress.update(end);
        next = end;
    }
    let (stream, range) = state;
    if range.root() != checkpoint.root {
        return Err(corrupt(format!(
            "the stored entries hash to root {}, not the checkpoint's {}",
            hex::encode(range.root().0),
            hex::encode(checkpoint.root.0)
        )));
    }
    for (id, bytes) in stream.edge() {
        write_tile(&tmp, &id.path(), &bytes)?;
    }
    let mut file =
        std::fs::File::create(tmp.join("checkpoint")).map_err(io("write the checkpoint"))?;
    file.write_all(checkpoint.note.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write the checkpoint"))?;
    std::fs::rename(&tmp, dir).map_err(io("rename the export directory into place"))?;
    progress.update(checkpoint.size);
    Ok(checkpoint)
}

fn partial_dir(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Writes the bundles of a page that starts at `first` (a multiple of
/// 256), and every tile its leaves complete.
fn write_page(
    dir: &Path,
    first: u64,
    page: &[(StoredEntry, Vec<String>)],
    (mut stream, mut range): (TileStream, CompactRange),
) -> Result<(TileStream, CompactRange), TransferError> {
    for (n, part) in (first / u64::from(TILE_WIDTH)..).zip(page.chunks(usize::from(TILE_WIDTH))) {
        let id = TileId {
            level: 0,
            index: n,
            width: u16::try_from(part.len()).expect("at most 256"),
        };
        let bundle = tiles::entry_bundle(part.iter().map(|(e, _)| e.body.as_slice()))
            .map_err(|e| format(format!("entry bundle {n}: {e}")))?;
        write_tile(dir, &id.entries_path(), &bundle)?;
        for (entry, _) in part {
            let leaf = leaf_hash(&entry.body);
            range.push(leaf);
            for (id, bytes) in stream.push(leaf) {
                write_tile(dir, &id.path(), &bytes)?;
            }
        }
    }
    Ok((stream, range))
}

/// Imports the tiles directory `dir` into `store`, a v2 log of `signer`'s
/// origin, through [`LogWriter`] as the sequencer writes: first audits the
/// whole directory under `signer`'s key as `tlog verify` does (every entry
/// re-admitted, every tile, the checkpoint; nothing is written if it
/// fails), then reads the bundles again, each checked against the first
/// pass, and commits them in chunks, each with its tiles and a checkpoint
/// `signer` signs (the last one is the directory's own, with its
/// cosignatures). The store must hold no log, or an interrupted import of
/// this one, which is then continued. Returns the imported checkpoint.
///
/// # Errors
/// A directory that does not verify, a store that holds another log, or a
/// storage failure (the chunks committed before it stay).
pub async fn import_tiles<S: LogWriter>(
    store: &S,
    dir: &Path,
    signer: &LogSigner,
    progress: &mut Progress,
) -> Result<StoredCheckpoint, TransferError> {
    let origin = signer
        .origin()
        .ok_or_else(|| format("a v2 import needs the v2 log's Ed25519 key".to_owned()))?
        .to_owned();
    let raw = c2sp::ed25519_raw(signer.public_key_der())
        .ok_or_else(|| format("a v2 import needs the v2 log's Ed25519 key".to_owned()))?;
    // Pass 1: audit everything before touching the store.
    let source = TileSource::Dir(dir.to_owned());
    let mut roots = Vec::new();
    let report = verify_source(&source, &raw, None, CONCURRENCY, Some(&mut roots)).await;
    if let Some(problem) = &report.problem {
        let at = problem
            .index
            .map_or_else(String::new, |i| format!(" (entry {i})"));
        return Err(format(format!("{}: {}{at}", dir.display(), problem.reason)));
    }
    if report.origin.as_deref() != Some(origin.as_str()) {
        return Err(format(format!(
            "{} holds the log {:?}, not {origin:?} (v2.origin)",
            dir.display(),
            report.origin.as_deref().unwrap_or("")
        )));
    }
    let note = source.get("/checkpoint", 1 << 20).await.map_err(format)?;
    let note = String::from_utf8(note).map_err(|_| format("the checkpoint changed".to_owned()))?;
    let head = c2sp::verify_log_checkpoint(&note, &origin, &raw)
        .map_err(|e| format(format!("the checkpoint changed: {e}")))?;
    let last = StoredCheckpoint {
        size: head.size,
        root: head.root,
        note,
    };
    if roots.len() as u64 != last.size.div_ceil(u64::from(TILE_WIDTH)) {
        return Err(format(
            "the checkpoint changed during the import".to_owned(),
        ));
    }
    progress.total = last.size;
    let sign = |size: u64, root: Hash| {
        let checkpoint = crate::note::Checkpoint {
            origin: origin.clone(),
            size,
            root,
        };
        let note = signer
            .sign_checkpoint(&checkpoint, &origin)
            .map_err(|e| format(format!("couldn't sign a checkpoint: {e}")))?;
        Ok::<_, TransferError>(StoredCheckpoint { size, root, note })
    };
    let current = import_start(store, signer, &last, &sign).await?;

    // Pass 2: read the bundles again, each as the audit saw it, and commit.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Batch, Hash)>(2);
    let owned = dir.to_owned();
    let size = last.size;
    let reader = tokio::task::spawn_blocking(move || read_batches(&owned, size, &roots, &tx));
    let current = commit_batches(store, current, &last, &mut rx, &sign, progress).await?;
    reader
        .await
        .map_err(|e| format(format!("reader task failed: {e}")))??;
    if current != last {
        return Err(format(format!(
            "{}: the directory changed during the import",
            dir.display()
        )));
    }
    Ok(last)
}

/// Where a v2 import starts: an empty log it initialises under `signer`'s
/// key, or the checkpoint of an interrupted import under the same key.
async fn import_start<S: LogWriter>(
    store: &S,
    signer: &LogSigner,
    last: &StoredCheckpoint,
    sign: &impl Fn(u64, Hash) -> Result<StoredCheckpoint, TransferError>,
) -> Result<StoredCheckpoint, TransferError> {
    let held = || {
        TransferError::Store(StoreError::Conflict(
            "the v2 log already holds entries; import needs an empty one".to_owned(),
        ))
    };
    match store.identity().await? {
        None => {
            let identity = LogIdentity {
                tree_id: crate::log::random_tree_id(),
                public_key: signer.public_key_der().to_vec(),
            };
            let first = sign(0, crate::merkle::empty_root())?;
            store.init(&identity, &first).await?;
            Ok(first)
        }
        Some(existing) if existing.public_key == signer.public_key_der() => {
            let stored = store
                .checkpoint()
                .await?
                .ok_or_else(|| StoreError::Corrupt("log has no checkpoint".into()))?;
            if stored.size >= last.size {
                return Err(held());
            }
            Ok(stored)
        }
        Some(_) => Err(held()),
    }
}

/// Reads every bundle of a log of `size` again, checks its leaves against
/// the first pass's `roots`, and sends them in chunks with their tiles.
fn read_batches(
    dir: &Path,
    size: u64,
    roots: &[Hash],
    tx: &tokio::sync::mpsc::Sender<(Batch, Hash)>,
) -> Result<(), TransferError> {
    let mut tree = Tree::default();
    let mut pending: Vec<NewEntry> = Vec::with_capacity(IMPORT_CHUNK);
    let flush = |pending: &mut Vec<NewEntry>, tree: &mut Tree| {
        tx.blocking_send(stage_batch(tree, std::mem::take(pending)))
            .is_ok()
    };
    for (n, expected) in (0u64..).zip(roots) {
        let width = (size - n * u64::from(TILE_WIDTH)).min(u64::from(TILE_WIDTH));
        let id = TileId {
            level: 0,
            index: n,
            width: u16::try_from(width).expect("at most 256"),
        };
        let changed = || {
            format(format!(
                "{}: the directory changed during the import",
                dir.display()
            ))
        };
        let bytes = std::fs::read(dir.join("tile").join(id.entries_path()))
            .map_err(io("read an entry bundle"))?;
        let entries = tiles::parse_entry_bundle(&bytes).map_err(|_| changed())?;
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        if tiles::leaves_root(&leaves) != *expected {
            return Err(changed());
        }
        for (offset, (entry, leaf)) in (0u64..).zip(entries.iter().zip(leaves)) {
            pending.push(NewEntry {
                entry: StoredEntry {
                    index: n * u64::from(TILE_WIDTH) + offset,
                    body: entry.to_vec(),
                    integrated_time: 0,
                    set: Vec::new(),
                },
                leaf_hash: leaf,
                index_keys: Vec::new(),
            });
        }
        if pending.len() >= IMPORT_CHUNK && !flush(&mut pending, &mut tree) {
            return Ok(());
        }
    }
    if !pending.is_empty() {
        flush(&mut pending, &mut tree);
    }
    Ok(())
}
