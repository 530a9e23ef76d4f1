//! A replica's warm start: the index a full verification of a snapshot
//! built, kept in `replica.state_dir` beside the high-water mark, and bound
//! to the snapshot by the SHA-256 of its bytes and to the key it was
//! verified under.
//!
//! A restart on the same file (a pod rescheduled, a rollout that did not
//! change the snapshot) then hashes the file instead of verifying every
//! entry's SET, re-deriving its index keys and rebuilding the tree from the
//! JSON: the digest proves the bytes are the ones verified before. What is
//! still checked on every warm start: the digest, the cache's own checksum,
//! the tree rebuilt from the cached leaves against the snapshot's signed
//! checkpoint (by the log above the store), and every entry served against
//! its leaf hash as on a cold start. A file that changed in any byte, a
//! different key, or a damaged cache is a cold start.
//!
//! The state directory is trusted as the high-water mark is: whoever can
//! write it can also make the replica forget what it served.
//!
//! The search keys stay in the cache file and are read from it per search
//! (through a sparse in-memory index of every [`BLOCK`]th key): they are
//! most of a snapshot's index, and on disk they cost page cache, not
//! anonymous memory. Line positions, leaf hashes and the leaf look-up stay
//! in memory (about 100 bytes an entry).
//!
//! Format (little-endian): magic, snapshot length and SHA-256, the key's
//! DER, the log's identity, its index offset (a shard's) and last checkpoint, the entry lines' positions,
//! the leaf hashes, the sparse key index, then the key records sorted by
//! key (`u32` length, key, `u32` count, postings as `u64`); then SHA-256 of
//! all of it.

use std::fs::File;
use std::io::{BufWriter, Read as _, Write};
use std::path::Path;

use aws_lc_rs::digest;

use super::{Index, Keys, Postings};
use crate::merkle::{Hash, Tree};
use crate::storage::{LeafIndex, LogIdentity, StoreError, StoredCheckpoint};

/// The cache's file name inside the state directory.
pub const INDEX_CACHE_FILE: &str = "replica-index.bin";

const MAGIC: &[u8; 16] = b"tlog-rindex-v3\n\0";

/// Key records per block of the sparse index: one pread of a block per
/// key looked up.
const BLOCK: usize = 128;

/// SHA-256 of `file`'s first `len` bytes (all of a snapshot), read by
/// position: the file's cursor is wherever its last reader left it.
fn file_digest(file: &File, len: u64) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::FileExt as _;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from((len - at).min(buf.len() as u64)).expect("below 1 MiB");
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(std::io::Error::other("the snapshot is shorter than it was"));
        }
        ctx.update(&buf[..n]);
        at += n as u64;
    }
    Ok(ctx
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes"))
}

/// A writer that hashes what it writes, and counts it.
struct Hashing<W> {
    out: W,
    ctx: digest::Context,
    at: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.ctx.update(bytes);
        self.at += bytes.len() as u64;
        self.out.write_all(bytes)
    }
    fn u32(&mut self, n: usize) -> std::io::Result<()> {
        let n = u32::try_from(n).map_err(|_| std::io::Error::other("a field over 4 GiB"))?;
        self.put(&n.to_le_bytes())
    }
    fn u64(&mut self, n: u64) -> std::io::Result<()> {
        self.put(&n.to_le_bytes())
    }
    fn bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.u32(b.len())?;
        self.put(b)
    }
}

/// Writes the cache of `index`, of the verified snapshot `file`, under the
/// key `key_der`, to `path` atomically (write, fsync, rename). Returns the
/// search keys as written, read from that file (through a handle opened
/// before the rename, so on the bytes written here), for the index to use
/// instead of its in-memory ones.
///
/// # Errors
/// I/O failures, or an index of no log.
pub(super) fn write(
    path: &Path,
    file: &File,
    index: &Index,
    key_der: &[u8],
) -> std::io::Result<DiskKeys> {
    let (Some(identity), Some(checkpoint)) = (&index.identity, &index.checkpoint) else {
        return Err(std::io::Error::other("the snapshot holds no log"));
    };
    let digest = file_digest(file, index.end)?;
    // Writers of two snapshots (a reload beside the first load) never share
    // a temporary file; the last rename wins.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}.{n}.tmp", std::process::id()));
    let written = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let mut w = Hashing {
        out: BufWriter::with_capacity(1 << 20, written.try_clone()?),
        ctx: digest::Context::new(&digest::SHA256),
        at: 0,
    };
    w.put(MAGIC)?;
    w.u64(index.end)?;
    w.put(&digest)?;
    w.bytes(key_der)?;
    w.put(&identity.tree_id.to_le_bytes())?;
    w.bytes(&identity.public_key)?;
    w.u64(index.index_offset)?;
    w.u64(checkpoint.size)?;
    w.put(&checkpoint.root.0)?;
    w.bytes(checkpoint.note.as_bytes())?;
    w.u64(index.lines.len() as u64)?;
    for &(offset, len) in &index.lines {
        w.u64(offset)?;
        w.put(&len.to_le_bytes())?;
    }
    for leaf in &index.leaves {
        w.put(&leaf.0)?;
    }
    let Keys::Memory(map) = &index.keys else {
        return Err(std::io::Error::other("the keys are already on disk"));
    };
    let mut keys: Vec<(&String, &Postings)> = map.iter().collect();
    keys.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let record_len = |key: &str, postings: &Postings| {
        8 + key.len() as u64 + 8 * postings.as_slice().len() as u64
    };
    w.u64(keys.len() as u64)?;
    let blocks = keys.len().div_ceil(BLOCK);
    w.u64(blocks as u64)?;
    let mut at = 0u64;
    let mut blocks: Vec<(Box<[u8]>, u64)> = Vec::with_capacity(blocks);
    for (i, (key, postings)) in keys.iter().enumerate() {
        if i % BLOCK == 0 {
            w.bytes(key.as_bytes())?;
            w.u64(at)?;
            blocks.push((key.as_bytes().into(), at));
        }
        at += record_len(key, postings);
    }
    w.u64(at)?;
    let start = w.at;
    for (key, postings) in &keys {
        w.bytes(key.as_bytes())?;
        let list = postings.as_slice();
        w.u32(list.len())?;
        for &i in list {
            w.u64(i)?;
        }
    }
    let Hashing { mut out, ctx, .. } = w;
    out.write_all(ctx.finish().as_ref())?;
    let file = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(DiskKeys {
        file: written,
        path: path.to_owned(),
        start,
        len: at,
        blocks,
        size: checkpoint.size,
    })
}

/// Reads a cache file front to back, hashing what it reads, up to the
/// checksum at its end.
struct Reader {
    input: std::io::BufReader<File>,
    ctx: digest::Context,
    /// Bytes read so far: the file offset.
    at: u64,
    /// Bytes left before the checksum.
    left: u64,
}

impl Reader {
    fn take(&mut self, n: u64) -> Result<Vec<u8>, String> {
        if n > self.left {
            return Err("truncated".into());
        }
        let mut buf = vec![0u8; usize::try_from(n).map_err(|_| "truncated")?];
        self.input
            .read_exact(&mut buf)
            .map_err(|e| format!("couldn't read it: {e}"))?;
        self.ctx.update(&buf);
        self.at += n;
        self.left -= n;
        Ok(buf)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N as u64)?.try_into().expect("N bytes"))
    }
    fn u32(&mut self) -> Result<u64, String> {
        Ok(u64::from(u32::from_le_bytes(self.array()?)))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()?;
        self.take(n)
    }
    /// Hashes `n` bytes without keeping them.
    fn skip(&mut self, n: u64) -> Result<(), String> {
        let mut rest = n;
        while rest > 0 {
            let part = rest.min(1 << 20);
            self.take(part)?;
            rest -= part;
        }
        Ok(())
    }
    /// The checksum must follow, and match.
    fn finish(mut self) -> Result<(), String> {
        if self.left != 0 {
            return Err("trailing bytes".into());
        }
        let mut sum = [0u8; 32];
        self.input
            .read_exact(&mut sum)
            .map_err(|_| "truncated".to_owned())?;
        if self.ctx.finish().as_ref() != sum {
            return Err("its checksum does not match: damaged".into());
        }
        Ok(())
    }
}

/// The search keys of a warm-started snapshot, in its cache file: a
/// sparse index of every [`BLOCK`]th key in memory, the records on disk.
pub(super) struct DiskKeys {
    file: File,
    path: std::path::PathBuf,
    /// File offset and length of the sorted records.
    start: u64,
    len: u64,
    /// The first key of each block and its offset in the records.
    blocks: Vec<(Box<[u8]>, u64)>,
    /// Postings must be below this (the checkpoint's size).
    size: u64,
}

impl DiskKeys {
    /// The entries that wrote `key`, ascending: one read of its block.
    ///
    /// # Errors
    /// `Unavailable` if the file cannot be read, `Corrupt` if the block
    /// does not parse.
    pub(super) fn get(&self, key: &str) -> Result<Option<Vec<u64>>, StoreError> {
        use std::os::unix::fs::FileExt as _;
        let key = key.as_bytes();
        let i = self
            .blocks
            .partition_point(|(first, _)| first.as_ref() <= key);
        if i == 0 {
            return Ok(None);
        }
        let from = self.blocks[i - 1].1;
        let to = self.blocks.get(i).map_or(self.len, |b| b.1);
        let corrupt = || {
            StoreError::Corrupt(format!(
                "{}: a key block does not parse; was it changed?",
                self.path.display()
            ))
        };
        let mut buf = vec![0u8; usize::try_from(to - from).map_err(|_| corrupt())?];
        self.file
            .read_exact_at(&mut buf, self.start + from)
            .map_err(|e| {
                StoreError::Unavailable(format!("couldn't read {}: {e}", self.path.display()))
            })?;
        let mut at = 0usize;
        while at < buf.len() {
            let key_len = le_u32(&buf, at).ok_or_else(corrupt)?;
            let record_key = buf.get(at + 4..at + 4 + key_len).ok_or_else(corrupt)?;
            at += 4 + key_len;
            let n = le_u32(&buf, at).ok_or_else(corrupt)?;
            at += 4;
            let postings = buf.get(at..at + 8 * n).ok_or_else(corrupt)?;
            at += 8 * n;
            match record_key.cmp(key) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Greater => return Ok(None),
                std::cmp::Ordering::Equal => {
                    let list: Vec<u64> = postings
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect();
                    if n == 0 || list.iter().any(|&i| i >= self.size) {
                        return Err(corrupt());
                    }
                    return Ok(Some(list));
                }
            }
        }
        Ok(None)
    }
}

fn le_u32(buf: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b) as usize)
}

/// The index the cache at `path` holds for the snapshot `file`, if it was
/// written for exactly these bytes under `key_der`; `Ok(None)` with the
/// reason otherwise (a cold start follows). The file is hashed on one
/// thread while the index is rebuilt on another.
///
/// # Errors
/// Only what a cold start would hit too (the snapshot cannot be read).
pub(super) fn read(
    path: &Path,
    file: &File,
    key_der: &[u8],
) -> Result<Result<Index, String>, StoreError> {
    let len = file
        .metadata()
        .map_err(|e| StoreError::Unavailable(format!("couldn't stat the snapshot: {e}")))?
        .len();
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| file_digest(file, len));
        let parsed = parse(path, key_der);
        let digest = hashing
            .join()
            .map_err(|_| StoreError::Unavailable("the digest thread failed".into()))?
            .map_err(|e| StoreError::Unavailable(format!("couldn't read the snapshot: {e}")))?;
        Ok(parsed.and_then(|(end, want, index)| {
            if end != len || want != digest {
                Err("the snapshot's bytes are not the ones it was built from".into())
            } else {
                Ok(index)
            }
        }))
    })
}

/// Decodes a cache: (snapshot length, its digest, the index).
fn parse(path: &Path, key_der: &[u8]) -> Result<(u64, [u8; 32], Index), String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("no index cache yet".into())
        }
        Err(e) => return Err(format!("couldn't open it: {e}")),
    };
    let total = file
        .metadata()
        .map_err(|e| format!("couldn't stat it: {e}"))?
        .len();
    let mut r = Reader {
        input: std::io::BufReader::with_capacity(
            1 << 20,
            file.try_clone().map_err(|e| e.to_string())?,
        ),
        ctx: digest::Context::new(&digest::SHA256),
        at: 0,
        left: total.checked_sub(32).ok_or("truncated")?,
    };
    if &r.array::<16>()? != MAGIC {
        return Err("not a tlog replica index cache of this version".into());
    }
    let end = r.u64()?;
    let digest: [u8; 32] = r.array()?;
    if r.bytes()? != key_der {
        return Err("it was verified under another key".into());
    }
    let identity = LogIdentity {
        tree_id: i64::from_le_bytes(r.array()?),
        public_key: r.bytes()?,
    };
    let index_offset = r.u64()?;
    let checkpoint = StoredCheckpoint {
        size: r.u64()?,
        root: Hash(r.array()?),
        note: String::from_utf8(r.bytes()?).map_err(|_| "its note is not UTF-8")?,
    };
    let count = r.u64()?;
    if count != checkpoint.size {
        return Err("its entries are not its checkpoint's".into());
    }
    let mut index = Index::default();
    let lines = r.take(count.checked_mul(12).ok_or("too many entries")?)?;
    index.lines = lines
        .chunks_exact(12)
        .map(|c| {
            let offset = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
            (
                offset,
                u32::from_le_bytes(c[8..].try_into().expect("4 bytes")),
            )
        })
        .collect();
    drop(lines);
    let leaves = r.take(count.checked_mul(32).ok_or("too many entries")?)?;
    index.leaves = leaves
        .chunks_exact(32)
        .map(|c| Hash(c.try_into().expect("32 bytes")))
        .collect();
    drop(leaves);
    let n_keys = r.u64()?;
    let n_blocks = r.u64()?;
    if n_blocks != n_keys.div_ceil(BLOCK as u64) {
        return Err("its key index does not count its keys".into());
    }
    let mut blocks: Vec<(Box<[u8]>, u64)> = Vec::new();
    for _ in 0..n_blocks {
        let first = r.bytes()?.into_boxed_slice();
        let offset = r.u64()?;
        if blocks
            .last()
            .is_some_and(|(k, o)| *k >= first || *o >= offset)
        {
            return Err("its key index is not sorted".into());
        }
        blocks.push((first, offset));
    }
    let records = r.u64()?;
    if blocks.last().is_some_and(|(_, o)| *o >= records) || (n_keys > 0 && blocks[0].1 != 0) {
        return Err("its key index points past its keys".into());
    }
    let start = r.at;
    r.skip(records)?;
    r.finish()?;
    index.keys = Keys::Disk(DiskKeys {
        file,
        path: path.to_owned(),
        start,
        len: records,
        blocks,
        size: checkpoint.size,
    });
    let mut leaf_index = LeafIndex::default();
    leaf_index.reserve(index.leaves.len());
    for (i, leaf) in (0u64..).zip(&index.leaves) {
        leaf_index.insert(leaf.0, i);
    }
    index.leaf_index = Some(leaf_index);
    let tree = Tree::from_leaves(index.leaves.iter().copied());
    if tree.root(checkpoint.size).ok() != Some(checkpoint.root) {
        return Err("its leaves do not hash to the checkpoint's root".into());
    }
    index.tree = Some(tree);
    index.identity = Some(identity);
    index.index_offset = index_offset;
    index.end = end;
    index.checkpoint = Some(checkpoint);
    Ok((end, digest, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An index of `count` entries whose keys span many blocks, over a
    /// snapshot file of arbitrary bytes.
    fn fixture(dir: &Path, count: u64) -> (File, Index, HashMap<String, Vec<u64>>) {
        let snapshot = dir.join("db.jsonl");
        std::fs::write(&snapshot, b"any bytes: the cache binds them by digest\n").unwrap();
        let file = File::open(&snapshot).unwrap();
        let mut index = Index::default();
        let mut want: HashMap<String, Vec<u64>> = HashMap::new();
        for i in 0..count {
            let leaf = crate::merkle::leaf_hash(format!("entry {i}").as_bytes());
            // Every entry a key of its own, and one of eleven shared ones.
            let keys = vec![format!("sha256:{i:064x}"), format!("shared-{}", i % 11)];
            for key in &keys {
                want.entry(key.clone()).or_default().push(i);
            }
            index.add(i, leaf, keys, i * 100, 100);
        }
        let tree = Tree::from_leaves(index.leaves.iter().copied());
        index.identity = Some(LogIdentity {
            tree_id: 7,
            public_key: vec![1, 2, 3],
        });
        index.checkpoint = Some(StoredCheckpoint {
            size: count,
            root: tree.root(count).unwrap(),
            note: "a note\n".into(),
        });
        index.end = file.metadata().unwrap().len();
        (file, index, want)
    }

    #[test]
    fn keys_read_back_from_disk_as_they_were_in_memory() {
        let dir = crate::storage::file::tests_dir();
        let (file, index, want) = fixture(&dir, 1000);
        let cache = dir.join(INDEX_CACHE_FILE);
        let written = write(&cache, &file, &index, &[9; 4]).unwrap();
        // The keys as written serve the store that wrote them at once.
        for (key, postings) in &want {
            assert_eq!(written.get(key).unwrap().as_ref(), Some(postings), "{key}");
        }
        assert_eq!(written.get("shared-11").unwrap(), None);
        let warm = read(&cache, &file, &[9; 4]).unwrap().unwrap();
        assert_eq!(warm.lines, index.lines);
        assert_eq!(warm.leaves, index.leaves);
        let Keys::Disk(disk) = &warm.keys else {
            panic!("a warm index reads its keys from disk")
        };
        assert!(disk.blocks.len() > 1, "the keys span blocks");
        for (key, postings) in &want {
            assert_eq!(disk.get(key).unwrap().as_ref(), Some(postings), "{key}");
        }
        for missing in ["", "a", "sha256:", "sha256:zz", "shared-11", "zzz"] {
            assert_eq!(disk.get(missing).unwrap(), None, "{missing:?}");
        }
        // Another key, or the snapshot changed: not usable.
        assert!(read(&cache, &file, &[8; 4]).unwrap().is_err());
        std::fs::write(dir.join("db.jsonl"), b"other bytes\n").unwrap();
        let changed = File::open(dir.join("db.jsonl")).unwrap();
        assert!(read(&cache, &changed, &[9; 4]).unwrap().is_err());
    }

    #[test]
    fn a_damaged_or_truncated_cache_is_not_used() {
        let dir = crate::storage::file::tests_dir();
        let (file, index, _) = fixture(&dir, 300);
        let cache = dir.join(INDEX_CACHE_FILE);
        write(&cache, &file, &index, &[9; 4]).unwrap();
        let good = std::fs::read(&cache).unwrap();
        for at in [0, 20, good.len() / 2, good.len() - 40, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&cache, &bad).unwrap();
            assert!(read(&cache, &file, &[9; 4]).unwrap().is_err(), "byte {at}");
        }
        for len in [0, 10, good.len() / 3, good.len() - 1] {
            std::fs::write(&cache, &good[..len]).unwrap();
            assert!(
                read(&cache, &file, &[9; 4]).unwrap().is_err(),
                "{len} bytes"
            );
        }
        std::fs::write(&cache, &good).unwrap();
        assert!(read(&cache, &file, &[9; 4]).unwrap().is_ok());
    }
}
