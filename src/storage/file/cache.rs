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
//! Format (little-endian): magic, snapshot length and SHA-256, the key's
//! DER, the log's identity and last checkpoint, the entry lines' positions, the
//! leaf hashes, the search keys with their postings; then SHA-256 of all
//! of it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use aws_lc_rs::digest;

use super::{Index, Postings};
use crate::merkle::{Hash, Tree};
use crate::storage::{LeafIndex, LogIdentity, StoreError, StoredCheckpoint};

/// The cache's file name inside the state directory.
pub const INDEX_CACHE_FILE: &str = "replica-index.bin";

const MAGIC: &[u8; 16] = b"tlog-rindex-v1\n\0";

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

/// A writer that hashes what it writes.
struct Hashing<W> {
    out: W,
    ctx: digest::Context,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.ctx.update(bytes);
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
/// key `key_der`, to `path` atomically (write, fsync, rename).
///
/// # Errors
/// I/O failures, or an index of no log.
pub(super) fn write(
    path: &Path,
    file: &File,
    index: &Index,
    key_der: &[u8],
) -> std::io::Result<()> {
    let (Some(identity), Some(checkpoint)) = (&index.identity, &index.checkpoint) else {
        return Err(std::io::Error::other("the snapshot holds no log"));
    };
    let digest = file_digest(file, index.end)?;
    // Writers of two snapshots (a reload beside the first load) never share
    // a temporary file; the last rename wins.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}.{n}.tmp", std::process::id()));
    let mut w = Hashing {
        out: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
        ctx: digest::Context::new(&digest::SHA256),
    };
    w.put(MAGIC)?;
    w.u64(index.end)?;
    w.put(&digest)?;
    w.bytes(key_der)?;
    w.put(&identity.tree_id.to_le_bytes())?;
    w.bytes(&identity.public_key)?;
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
    w.u64(index.keys.len() as u64)?;
    for (key, postings) in &index.keys {
        w.bytes(key.as_bytes())?;
        let list = postings.as_slice();
        w.u32(list.len())?;
        for &i in list {
            w.u64(i)?;
        }
    }
    let Hashing { mut out, ctx } = w;
    out.write_all(ctx.finish().as_ref())?;
    let file = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads a cache, checking its checksum.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("truncated".into());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()?;
        self.take(n)
    }
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
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err("no index cache yet".into()))
        }
        Err(e) => return Ok(Err(format!("couldn't read it: {e}"))),
    };
    let len = file
        .metadata()
        .map_err(|e| StoreError::Unavailable(format!("couldn't stat the snapshot: {e}")))?
        .len();
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| file_digest(file, len));
        let parsed = parse(&bytes, key_der);
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
fn parse(bytes: &[u8], key_der: &[u8]) -> Result<(u64, [u8; 32], Index), String> {
    let Some((body, sum)) = bytes.split_last_chunk::<32>() else {
        return Err("truncated".into());
    };
    if digest::digest(&digest::SHA256, body).as_ref() != sum {
        return Err("its checksum does not match: damaged".into());
    }
    let mut r = Reader { rest: body };
    if r.take(MAGIC.len())? != MAGIC {
        return Err("not a tlog replica index cache of this version".into());
    }
    let end = r.u64()?;
    let digest: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    if r.bytes()? != key_der {
        return Err("it was verified under another key".into());
    }
    let identity = LogIdentity {
        tree_id: i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes")),
        public_key: r.bytes()?.to_vec(),
    };
    let checkpoint = StoredCheckpoint {
        size: r.u64()?,
        root: Hash(r.take(32)?.try_into().expect("32 bytes")),
        note: String::from_utf8(r.bytes()?.to_vec()).map_err(|_| "its note is not UTF-8")?,
    };
    let count = usize::try_from(r.u64()?).map_err(|_| "too many entries")?;
    if u64::try_from(count).ok() != Some(checkpoint.size) {
        return Err("its entries are not its checkpoint's".into());
    }
    let mut index = Index::default();
    index.lines.reserve_exact(count);
    for _ in 0..count {
        let offset = r.u64()?;
        let len = u32::try_from(r.u32()?).expect("read as u32");
        index.lines.push((offset, len));
    }
    let leaves = r.take(count.checked_mul(32).ok_or("too many entries")?)?;
    index.leaves = leaves
        .chunks_exact(32)
        .map(|c| Hash(c.try_into().expect("32 bytes")))
        .collect();
    let keys = usize::try_from(r.u64()?).map_err(|_| "too many keys")?;
    let mut map: HashMap<String, Postings, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(keys.min(count * 8 + 16), Default::default());
    for _ in 0..keys {
        let key = std::str::from_utf8(r.bytes()?).map_err(|_| "a key is not UTF-8")?;
        let n = r.u32()?;
        let postings = match n {
            0 => return Err("a key without entries".into()),
            1 => Postings::One(r.u64()?),
            _ => Postings::Many((0..n).map(|_| r.u64()).collect::<Result<_, _>>()?),
        };
        if postings.as_slice().iter().any(|&i| i >= checkpoint.size) {
            return Err("a key names an entry past the checkpoint".into());
        }
        map.insert(key.to_owned(), postings);
    }
    if !r.rest.is_empty() {
        return Err("trailing bytes".into());
    }
    index.keys = map;
    let mut leaf_index = LeafIndex::default();
    leaf_index.reserve(count);
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
    index.end = end;
    index.checkpoint = Some(checkpoint);
    Ok((end, digest, index))
}
