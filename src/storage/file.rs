//! The embedded store: the log in one `db.jsonl` journal (docs/db-jsonl.md)
//! plus an in-memory index, and the same file opened read-only as a
//! replica's snapshot.
//!
//! Each commit appends the batch's entry lines and then its checkpoint line
//! in one positioned write, and fsyncs once before returning, so an
//! acknowledged batch is on disk. On open the journal is replayed and checked
//! against every checkpoint; a tail that no checkpoint covers (a crash
//! mid-batch) is truncated, and a covered line that does not match refuses
//! the open with its line number.
//!
//! In memory: each entry's line position, the level-0 leaf hashes and the
//! search keys. Entries are read back from the file on demand (the log keeps
//! its own cache) and checked against their leaf hash, so a file rewritten
//! under a running reader gives an error, never a wrong entry.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::jsonl::{
    self, Bodies, EntryCheck, KeyPolicy, PackedEntry, Record, ScanOutcome, TailPolicy,
};
use super::{
    newest_of_union, Batch, KeyMatch, LeafIndex, LogIdentity, LogReader, LogWriter, StoreError,
    StoredCheckpoint, StoredEntry,
};
use crate::merkle::{self, Hash, Tree};

mod cache;

pub use cache::INDEX_CACHE_FILE;

/// The journal's name inside the data directory.
pub const JOURNAL_FILE: &str = "db.jsonl";

/// Where a snapshot's entries are read from once it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entries {
    /// Kept in memory: a replica serving reads.
    InMemory,
    /// Read back from the file: one pass over the log, as an export makes.
    OnDisk,
}

/// A log kept in one journal file.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.inner.path)
            .field("read_only", &self.inner.read_only)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    file: File,
    read_only: bool,
    index: RwLock<Index>,
    /// The tree the open built, until the log takes it.
    tree: Mutex<Option<Tree>>,
    /// The leaf index the open built, until the log takes it.
    leaf_index: Mutex<Option<LeafIndex>>,
    /// Serialises writers; held across the write and the fsync.
    writer: Mutex<()>,
}

#[derive(Default)]
struct Index {
    identity: Option<LogIdentity>,
    checkpoint: Option<StoredCheckpoint>,
    /// (offset, length) of each entry's line, newline included.
    lines: Vec<(u64, u32)>,
    leaves: Vec<Hash>,
    keys: Keys,
    /// End of the committed journal.
    end: u64,
    /// The tree at `checkpoint`, as the open built it.
    tree: Option<Tree>,
    /// A snapshot's entries (body, SET and integrated time), in memory.
    resident: Vec<(PackedEntry, i64)>,
    /// Leaf hash → index at `checkpoint`, as the open built it.
    leaf_index: Option<LeafIndex>,
    /// The header's `logIndexOffset`: a shard's first global index.
    index_offset: u64,
}

/// The search keys: in memory (the journal, and a snapshot verified in
/// full), or read from a replica's index cache on disk, which keeps them
/// out of anonymous memory (a warm start; see [`cache`]).
enum Keys {
    Memory(HashMap<String, Postings, foldhash::fast::RandomState>),
    Disk(cache::DiskKeys),
}

impl Default for Keys {
    fn default() -> Self {
        Self::Memory(HashMap::default())
    }
}

impl Keys {
    /// The entries that wrote `key`, ascending.
    fn get(&self, key: &str) -> Result<Option<std::borrow::Cow<'_, [u64]>>, StoreError> {
        match self {
            Self::Memory(map) => Ok(map
                .get(key)
                .map(|p| std::borrow::Cow::Borrowed(p.as_slice()))),
            Self::Disk(disk) => Ok(disk.get(key)?.map(std::borrow::Cow::Owned)),
        }
    }
}

impl Index {
    fn add(&mut self, index: u64, leaf: Hash, keys: Vec<String>, offset: u64, len: u64) {
        debug_assert_eq!(index, self.leaves.len() as u64);
        self.leaves.push(leaf);
        self.lines
            .push((offset, u32::try_from(len).expect("lines stay below 4 GiB")));
        let Keys::Memory(map) = &mut self.keys else {
            unreachable!("only a snapshot's index is on disk, and it is never written")
        };
        for key in keys {
            map.entry(key)
                .and_modify(|p| p.push(index))
                .or_insert(Postings::One(index));
        }
    }
}

/// The entries that wrote one search key, ascending. Most keys (artifact
/// digests) name a single entry, which then costs no allocation of its own.
#[derive(Debug)]
enum Postings {
    One(u64),
    Many(Vec<u64>),
}

impl Postings {
    fn push(&mut self, index: u64) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, index]),
            Self::Many(all) => all.push(index),
        }
    }

    fn as_slice(&self) -> &[u64] {
        match self {
            Self::One(index) => std::slice::from_ref(index),
            Self::Many(all) => all,
        }
    }

    /// Keeps indexes below `size`; false when none are left.
    fn truncate_below(&mut self, size: u64) -> bool {
        match self {
            Self::One(index) => *index < size,
            Self::Many(all) => {
                all.retain(|&i| i < size);
                !all.is_empty()
            }
        }
    }
}

/// The newest `limit` indexes in every one of the ascending `lists`, ascending.
fn newest_of_intersection(lists: &[&[u64]], limit: usize) -> Vec<u64> {
    let Some(shortest) = lists.iter().min_by_key(|list| list.len()) else {
        return Vec::new();
    };
    let mut found: Vec<u64> = shortest
        .iter()
        .rev()
        .filter(|index| lists.iter().all(|list| list.binary_search(index).is_ok()))
        .take(limit)
        .copied()
        .collect();
    found.reverse();
    found
}

fn io_error(path: &Path, what: &str, err: &std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("couldn't {what} {}: {err}", path.display()))
}

impl FileStore {
    /// Opens (creating if needed) the journal `dir/db.jsonl` for writing,
    /// takes an exclusive lock on it, replays it, and truncates a torn tail.
    ///
    /// # Errors
    /// `Conflict` if another process holds the lock; `Corrupt` naming the
    /// line if a covered entry or checkpoint does not match; `Unavailable`
    /// for I/O failures.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "create", &e))?;
        let path = dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&path, "open", &e))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(StoreError::Conflict(format!(
                    "another tlog server is writing to {}",
                    path.display()
                )))
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io_error(&path, "lock", &e)),
        }
        // A shard's snapshot (its entries' SETs sign later global indexes)
        // is never a journal: the journal is a log of its own from index 0.
        if let Some(header) = jsonl::read_header(&path).filter(|h| h.index_offset != 0) {
            return Err(StoreError::Corrupt(format!(
                "{} is a shard's snapshot (logIndexOffset {}), not a journal",
                path.display(),
                header.index_offset
            )));
        }
        let index = load(
            &file,
            &path,
            KeyPolicy::Unchecked,
            TailPolicy::Allow,
            Bodies::Drop,
            None,
        )?;
        let len = file
            .metadata()
            .map_err(|e| io_error(&path, "stat", &e))?
            .len();
        if len != index.end {
            tracing::warn!(
                path = %path.display(),
                kept = index.end,
                dropped = len - index.end,
                "truncating the journal's torn tail, which no checkpoint covers"
            );
            file.set_len(index.end)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error(&path, "truncate", &e))?;
        }
        Ok(Self::new(path, file, index, false))
    }

    /// Opens `path` read-only as a snapshot: every line must check out, the
    /// last line must be a checkpoint covering every entry, and checkpoints
    /// must verify under `keys`.
    ///
    /// With [`Entries::InMemory`] (a replica), every entry's body and SET
    /// stay in memory as they were verified, so reads never go back to the
    /// file (about 0.6 of its size: the base64 decoded, the search keys and
    /// JSON left out); with [`Entries::OnDisk`] (an export), entries are read
    /// back from the file and checked against their leaf hash.
    ///
    /// # Errors
    /// `Corrupt` naming the line and the reason; `Unavailable` for I/O.
    pub fn open_snapshot(
        path: &Path,
        keys: KeyPolicy<'_>,
        entries: Entries,
    ) -> Result<Self, StoreError> {
        Self::open_snapshot_checked(path, keys, entries, None)
    }

    /// [`FileStore::open_snapshot`], with `check` run on every entry on the
    /// parse workers (a replica's SETs and index keys).
    ///
    /// # Errors
    /// As [`FileStore::open_snapshot`], and the first entry `check` refuses,
    /// with its line.
    pub fn open_snapshot_checked(
        path: &Path,
        keys: KeyPolicy<'_>,
        entries: Entries,
        check: Option<EntryCheck<'_>>,
    ) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(|e| io_error(path, "open", &e))?;
        let bodies = match entries {
            Entries::InMemory => Bodies::Pack,
            Entries::OnDisk => Bodies::Drop,
        };
        let index = load(&file, path, keys, TailPolicy::Refuse, bodies, check)?;
        if index.checkpoint.is_none() {
            return Err(StoreError::Corrupt(format!(
                "{}: the file is empty",
                path.display()
            )));
        }
        Ok(Self::new(path.to_owned(), file, index, true))
    }

    /// Opens the snapshot `path` read-only from the index cache `cache`
    /// (see [`cache`]) if it was written for exactly these bytes under the
    /// key `key_der`; otherwise the reason, and the caller verifies the file
    /// in full ([`FileStore::open_snapshot_checked`]).
    ///
    /// # Errors
    /// `Unavailable` when the snapshot cannot be read.
    pub fn open_snapshot_cached(
        path: &Path,
        cache: &Path,
        key_der: &[u8],
    ) -> Result<Result<Self, String>, StoreError> {
        let file = File::open(path).map_err(|e| io_error(path, "open", &e))?;
        Ok(cache::read(cache, &file, key_der)?
            .map(|index| Self::new(path.to_owned(), file, index, true)))
    }

    /// Writes the index of this snapshot, verified under the key `key_der`,
    /// to `cache` for the next start ([`FileStore::open_snapshot_cached`]),
    /// and serves searches from that file from then on.
    ///
    /// # Errors
    /// I/O failures.
    pub fn write_index_cache(&self, cache: &Path, key_der: &[u8]) -> std::io::Result<()> {
        let disk = {
            let index = self.inner.index.read();
            cache::write(cache, &self.inner.file, &index, key_der)?
        };
        if !self.inner.read_only {
            return Ok(());
        }
        // From now on searches read the keys from the file just written, as
        // after a warm start, and the in-memory map (most of the index) is
        // freed: a first start ends as lean as later ones.
        let memory = std::mem::replace(&mut self.inner.index.write().keys, Keys::Disk(disk));
        drop(memory);
        Ok(())
    }

    fn new(path: PathBuf, file: File, mut index: Index, read_only: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                file,
                read_only,
                tree: Mutex::new(index.tree.take()),
                leaf_index: Mutex::new(index.leaf_index.take()),
                index: RwLock::new(index),
                writer: Mutex::new(()),
            }),
        }
    }

    /// Whether searches read the search keys from a replica's index cache
    /// file (a warm start, or a first start once it wrote the cache) rather
    /// than from memory.
    #[must_use]
    pub fn keys_on_disk(&self) -> bool {
        matches!(self.inner.index.read().keys, Keys::Disk(_))
    }

    /// The file behind the store.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The global index of the log's first entry, as its header (verified
    /// with the file) says: non-zero for a shard of a time-sharded log.
    #[must_use]
    pub fn index_offset(&self) -> u64 {
        self.inner.index.read().index_offset
    }

    /// Reads one entry line: its position and leaf hash, and the bytes.
    fn read_line(&self, index: u64) -> Result<Option<(Vec<u8>, u64, Hash)>, StoreError> {
        let (offset, len, leaf) = {
            let state = self.inner.index.read();
            let Some(i) = usize::try_from(index)
                .ok()
                .filter(|&i| i < state.lines.len())
            else {
                return Ok(None);
            };
            let (offset, len) = state.lines[i];
            (offset, len, state.leaves[i])
        };
        let mut buf = vec![0u8; len as usize];
        self.inner
            .file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| io_error(&self.inner.path, "read", &e))?;
        Ok(Some((buf, offset, leaf)))
    }

    fn changed(&self, index: u64, offset: u64, why: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "{}: entry {index} at byte {offset} {why}; was the file changed?",
            self.inner.path.display()
        ))
    }

    /// Checks one entry line read for `index` (newline included): `parse`
    /// must find the entry in it, at that index and with its leaf hash.
    fn check_line<T>(
        &self,
        index: u64,
        offset: u64,
        leaf: Hash,
        line: &[u8],
        parse: impl FnOnce(&[u8]) -> Option<(StoredEntry, T)>,
    ) -> Result<(StoredEntry, T), StoreError> {
        let Some(line) = line.strip_suffix(b"\n") else {
            return Err(self.changed(index, offset, "is not a whole line"));
        };
        match parse(line) {
            Some((entry, rest))
                if entry.index == index && merkle::leaf_hash(&entry.body) == leaf =>
            {
                Ok((entry, rest))
            }
            _ => Err(self.changed(index, offset, "no longer matches its leaf hash")),
        }
    }

    /// Reads and checks one entry line, without its search keys: the GET path.
    fn read_entry_only(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        {
            let state = self.inner.index.read();
            if !state.resident.is_empty() {
                let i = usize::try_from(index).unwrap_or(usize::MAX);
                return Ok(state
                    .resident
                    .get(i)
                    .map(|(packed, integrated_time)| StoredEntry {
                        index,
                        body: packed.body().to_vec(),
                        integrated_time: *integrated_time,
                        set: packed.set().to_vec(),
                    }));
            }
        }
        let Some((buf, offset, leaf)) = self.read_line(index)? else {
            return Ok(None);
        };
        let (entry, ()) = self.check_line(index, offset, leaf, &buf, |line| {
            jsonl::parse_entry(line).ok().map(|entry| (entry, ()))
        })?;
        Ok(Some(entry))
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.inner.read_only {
            Err(StoreError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Appends `bytes` at the committed end and fsyncs; on failure, cuts the
    /// file back so that no partial batch stays behind.
    fn append(&self, end: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let file = &self.inner.file;
        let result = file
            .write_all_at(bytes, end)
            .and_then(|()| file.sync_data());
        if let Err(err) = result {
            let _ = file.set_len(end);
            return Err(io_error(&self.inner.path, "append to", &err));
        }
        Ok(())
    }
}

/// Replays the file into an index.
fn load(
    file: &File,
    path: &Path,
    keys: KeyPolicy<'_>,
    tail: TailPolicy,
    bodies: Bodies,
    check: Option<EntryCheck<'_>>,
) -> Result<Index, StoreError> {
    let started = std::time::Instant::now();
    let mut index = Index::default();
    let reader = file;
    // The log needs a leaf-hash map too: a thread of its own builds it while
    // the scan runs, from chunks of leaves.
    const CHUNK: usize = 1 << 14;
    let (leaf_chunks, chunks) = std::sync::mpsc::sync_channel::<(u64, Vec<Hash>)>(16);
    let mapper = std::thread::spawn(move || {
        let mut map = LeafIndex::default();
        for (first, leaves) in chunks {
            map.reserve(leaves.len());
            for (i, leaf) in (first..).zip(leaves) {
                map.insert(leaf.0, i);
            }
        }
        map
    });
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut chunk_start = 0;
    let outcome = jsonl::scan_checked(reader, keys, tail, bodies, check, |v| {
        if let Some(packed) = v.packed {
            index
                .resident
                .push((packed, v.record.entry.integrated_time));
        }
        chunk.push(v.leaf);
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            let _ = leaf_chunks.send((chunk_start, full));
            chunk_start += CHUNK as u64;
        }
        index.add(
            v.record.entry.index,
            v.leaf,
            v.record.index_keys,
            v.offset,
            v.len,
        );
    })
    .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())));
    let _ = leaf_chunks.send((chunk_start, chunk));
    drop(leaf_chunks);
    let mut leaf_index = mapper
        .join()
        .map_err(|_| StoreError::Unavailable("the leaf index thread failed".into()))?;
    let ScanOutcome::Log(scanned) = outcome? else {
        return Ok(Index::default());
    };
    // Drop whatever the tail added past the last checkpoint.
    let size = usize::try_from(scanned.checkpoint.size).expect("size fits memory");
    for leaf in index.leaves.get(size..).unwrap_or_default() {
        if leaf_index
            .get(&leaf.0)
            .is_some_and(|&i| i >= scanned.checkpoint.size)
        {
            leaf_index.remove(&leaf.0);
        }
    }
    index.leaf_index = Some(leaf_index);
    if index.leaves.len() > size {
        index.leaves.truncate(size);
        index.lines.truncate(size);
        index.resident.truncate(size);
        let cut = scanned.checkpoint.size;
        if let Keys::Memory(map) = &mut index.keys {
            map.retain(|_, v| v.truncate_below(cut));
        }
    }
    if let Some(tail) = &scanned.tail {
        tracing::warn!(path = %path.display(), line = tail.line, reason = %tail.reason, "journal tail is not covered by a checkpoint");
    }
    index.identity = Some(scanned.header.identity());
    index.index_offset = scanned.header.index_offset;
    index.end = scanned.covered_bytes;
    index.tree = Some(scanned.tree);
    tracing::info!(
        path = %path.display(),
        size = scanned.checkpoint.size,
        elapsed_ms = started.elapsed().as_millis(),
        "loaded log file"
    );
    index.checkpoint = Some(scanned.checkpoint);
    Ok(index)
}

impl LogReader for FileStore {
    async fn identity(&self) -> Result<Option<LogIdentity>, StoreError> {
        Ok(self.inner.index.read().identity.clone())
    }

    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self.inner.index.read().checkpoint.clone())
    }

    async fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        self.read_entry_only(index)
    }

    async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        let state = self.inner.index.read();
        let len = state.leaves.len();
        let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(len);
        let (start, end) = (clamp(start), clamp(end));
        Ok(state.leaves.get(start..end).unwrap_or_default().to_vec())
    }

    /// A scan of every leaf, newest first: the log itself never calls this
    /// for the journal, whose leaf index it takes over at open and keeps in
    /// memory (see [`LogReader::take_leaf_index`]); tools and the
    /// conformance suite do.
    async fn find_leaves(&self, leaves: &[Hash]) -> Result<Vec<Option<u64>>, StoreError> {
        let state = self.inner.index.read();
        Ok(leaves
            .iter()
            .map(|leaf| {
                let at = state.leaves.iter().rposition(|l| l == leaf);
                at.map(|i| i as u64)
            })
            .collect())
    }

    async fn search(
        &self,
        keys: &[String],
        matching: KeyMatch,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let state = self.inner.index.read();
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            match state.keys.get(key)? {
                Some(postings) => found.push(postings),
                // A key no entry wrote: nothing has them all.
                None if matching == KeyMatch::All => return Ok(Vec::new()),
                None => {}
            }
        }
        let lists: Vec<&[u64]> = found.iter().map(AsRef::as_ref).collect();
        Ok(match matching {
            KeyMatch::Any => newest_of_union(lists, limit),
            KeyMatch::All => newest_of_intersection(&lists, limit),
        })
    }

    async fn entry_page(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(StoredEntry, Vec<String>)>, StoreError> {
        // The lines of a page lie in one stretch of the file (with the
        // journal's checkpoint lines between them): one read for all.
        let (spans, leaves) = {
            let state = self.inner.index.read();
            let len = state.lines.len();
            let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(len);
            let (start, end) = (clamp(start), clamp(end));
            if start >= end {
                return Ok(Vec::new());
            }
            (
                state.lines[start..end].to_vec(),
                state.leaves[start..end].to_vec(),
            )
        };
        let base = spans[0].0;
        let (last_offset, last_len) = spans[spans.len() - 1];
        let mut buf = vec![
            0u8;
            usize::try_from(last_offset + u64::from(last_len) - base)
                .expect("a page fits in memory")
        ];
        self.inner
            .file
            .read_exact_at(&mut buf, base)
            .map_err(|e| io_error(&self.inner.path, "read", &e))?;
        let mut page = Vec::with_capacity(spans.len());
        for (i, ((offset, len), leaf)) in spans.into_iter().zip(leaves).enumerate() {
            let index = start + i as u64;
            let at = usize::try_from(offset - base).expect("inside the buffer");
            let line = &buf[at..at + len as usize];
            page.push(self.check_line(
                index,
                offset,
                leaf,
                line,
                |line| match jsonl::parse_record(line) {
                    Ok(Record::Entry(r)) => Some((r.entry, r.index_keys)),
                    _ => None,
                },
            )?);
        }
        Ok(page)
    }

    fn take_tree(&self) -> Option<Tree> {
        self.inner.tree.lock().take()
    }

    fn entries_in_memory(&self) -> bool {
        !self.inner.index.read().resident.is_empty()
    }

    fn take_leaf_index(&self) -> Option<LeafIndex> {
        self.inner.leaf_index.lock().take()
    }
}

impl LogWriter for FileStore {
    async fn init(
        &self,
        identity: &LogIdentity,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        let header = jsonl::Header::for_log(identity, checkpoint).map_err(StoreError::Corrupt)?;
        let mut bytes = jsonl::encode_header(&header);
        bytes.extend(jsonl::encode_checkpoint(checkpoint));
        let store = self.clone();
        let (identity, checkpoint) = (identity.clone(), checkpoint.clone());
        run_blocking(move || {
            let _writer = store.inner.writer.lock();
            if store.inner.index.read().identity.is_some() {
                return Err(StoreError::Conflict(
                    "the log is already initialised".into(),
                ));
            }
            store.append(0, &bytes)?;
            let mut state = store.inner.index.write();
            state.identity = Some(identity);
            state.checkpoint = Some(checkpoint);
            state.end = bytes.len() as u64;
            Ok(())
        })
        .await
    }

    async fn commit(
        &self,
        old_size: u64,
        batch: &Batch,
        new: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        // The same keys as Postgres keeps, so a journal always imports.
        super::check_index_keys(&batch.entries)?;
        // Encode on the caller's thread; write and fsync on a blocking one.
        let mut bytes = Vec::with_capacity(batch.entries.len() * 1024 + 512);
        let mut added = Vec::with_capacity(batch.entries.len());
        for new_entry in &batch.entries {
            let keys = jsonl::normalize_keys(&new_entry.index_keys);
            let line = jsonl::encode_entry(&new_entry.entry, &keys);
            added.push((
                new_entry.entry.index,
                new_entry.leaf_hash,
                keys,
                bytes.len() as u64,
                line.len() as u64,
            ));
            bytes.extend(line);
        }
        bytes.extend(jsonl::encode_checkpoint(new));
        let store = self.clone();
        let new = new.clone();
        run_blocking(move || {
            let _writer = store.inner.writer.lock();
            let end = {
                let state = store.inner.index.read();
                let current = state.checkpoint.as_ref().map(|c| c.size);
                if current != Some(old_size) {
                    return Err(StoreError::Conflict(format!(
                        "checkpoint is no longer at size {old_size}"
                    )));
                }
                if added.first().is_some_and(|a| a.0 != old_size) {
                    return Err(StoreError::Corrupt(
                        "batch does not start at the tree size".into(),
                    ));
                }
                state.end
            };
            store.append(end, &bytes)?;
            let mut state = store.inner.index.write();
            for (index, leaf, keys, offset, len) in added {
                state.add(index, leaf, keys, end + offset, len);
            }
            state.checkpoint = Some(new);
            state.end = end + bytes.len() as u64;
            Ok(())
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("journal writer task failed: {e}")))?
}

/// A fresh directory for a unit test.
#[cfg(test)]
fn tests_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tlog-unit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
