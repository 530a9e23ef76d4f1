//! The `db.jsonl` format (docs/db-jsonl.md): one JSON object per line, a
//! header, entries in index order and signed checkpoints. The embedded store
//! appends to it as a journal, `tlog export` writes it, `tlog import` and the
//! replica read it.
//!
//! This module encodes records and walks a file, checking it line by line:
//! index order, leaf hashes, and every checkpoint against the tree rebuilt so
//! far (and its signature, when a key is given). It does not keep entries;
//! callers see each entry through a visitor and keep what they need.

use std::borrow::Cow;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::{Deserialize, Serialize};

use super::{LogIdentity, StoredCheckpoint, StoredEntry};
use crate::entries;
use crate::merkle::{self, Hash, Tree};
use crate::note::SignedCheckpoint;
use crate::signing::LogVerifier;

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The first line: who the log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Tree ID (rekor-v1.md C-01).
    pub tree_id: i64,
    /// `<hostname> - <treeID>`.
    pub origin: String,
    /// The checkpoint signer name.
    pub hostname: String,
    /// DER SubjectPublicKeyInfo of the log key.
    pub public_key: Vec<u8>,
    /// The global index of the first entry: 0 for an unsharded log, the
    /// sizes of the shards before it summed for a shard of a time-sharded
    /// one (its SETs sign the global index; its entries are numbered from
    /// 0 in the file, as in its own tree).
    pub index_offset: u64,
}

impl Header {
    /// The header for `identity`, named after `checkpoint`'s origin and signer.
    ///
    /// # Errors
    /// The checkpoint note does not parse.
    pub fn for_log(identity: &LogIdentity, checkpoint: &StoredCheckpoint) -> Result<Self, String> {
        let signed = SignedCheckpoint::parse(&checkpoint.note).map_err(|e| e.to_string())?;
        let hostname = hostname_of(&signed.checkpoint.origin, identity.tree_id)?;
        Ok(Self {
            tree_id: identity.tree_id,
            origin: signed.checkpoint.origin,
            hostname,
            public_key: identity.public_key.clone(),
            index_offset: 0,
        })
    }

    /// The identity it names.
    #[must_use]
    pub fn identity(&self) -> LogIdentity {
        LogIdentity {
            tree_id: self.tree_id,
            public_key: self.public_key.clone(),
        }
    }
}

/// The header of the file at `path`, if its first line is one.
#[must_use]
pub fn read_header(path: &std::path::Path) -> Option<Header> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).ok()?;
    // A header is a few hundred bytes; a longer first line is not one.
    let mut line = Vec::new();
    std::io::BufReader::new(file.take(1 << 20))
        .read_until(b'\n', &mut line)
        .ok()?;
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    match parse_record(line).ok()? {
        Record::Header(header) => Some(header),
        _ => None,
    }
}

/// `<hostname>` of a Rekor origin `<hostname> - <treeID>`.
///
/// # Errors
/// The origin does not end in this tree's ID.
pub fn hostname_of(origin: &str, tree_id: i64) -> Result<String, String> {
    origin
        .strip_suffix(&format!(" - {tree_id}"))
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("checkpoint origin {origin:?} is not \"<hostname> - {tree_id}\""))
}

/// An entry with the search keys it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// The entry.
    pub entry: StoredEntry,
    /// Search-index keys, sorted and deduplicated.
    pub index_keys: Vec<String>,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `"type":"log"`.
    Header(Header),
    /// `"type":"entry"`.
    Entry(EntryRecord),
    /// `"type":"checkpoint"`.
    Checkpoint(StoredCheckpoint),
}

// Serialisation structs: field order here is the byte order on disk.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeaderOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
    tree_id: i64,
    origin: &'a str,
    hostname: &'a str,
    public_key: String,
    #[serde(skip_serializing_if = "is_zero")]
    log_index_offset: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u64,
    integrated_time: i64,
    body: String,
    set: String,
    index_keys: &'a [String],
}

#[derive(Serialize)]
struct CheckpointOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    size: u64,
    root: String,
    note: &'a str,
}

/// Every field any record may have; which are required depends on `type`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LineIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    version: Option<u32>,
    tree_id: Option<i64>,
    #[serde(borrow)]
    origin: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hostname: Option<Cow<'a, str>>,
    #[serde(borrow)]
    public_key: Option<Cow<'a, str>>,
    log_index_offset: Option<u64>,
    index: Option<u64>,
    integrated_time: Option<i64>,
    #[serde(borrow)]
    body: Option<Cow<'a, str>>,
    #[serde(borrow)]
    set: Option<Cow<'a, str>>,
    index_keys: Option<Vec<String>>,
    size: Option<u64>,
    #[serde(borrow)]
    root: Option<Cow<'a, str>>,
    note: Option<String>,
}

fn line(value: &impl Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).expect("record serialises");
    out.push(b'\n');
    out
}

/// The header line, newline included.
#[must_use]
pub fn encode_header(header: &Header) -> Vec<u8> {
    line(&HeaderOut {
        kind: "log",
        version: FORMAT_VERSION,
        tree_id: header.tree_id,
        origin: &header.origin,
        hostname: &header.hostname,
        public_key: BASE64_STANDARD.encode(&header.public_key),
        log_index_offset: header.index_offset,
    })
}

/// An entry line, newline included. `index_keys` must be sorted and unique.
#[must_use]
pub fn encode_entry(entry: &StoredEntry, index_keys: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entry.body.len() * 4 / 3 + 256);
    write_entry(&mut out, entry, index_keys);
    out
}

/// Appends an entry line to `out`: [`encode_entry`] without its own buffer.
pub fn write_entry(out: &mut Vec<u8>, entry: &StoredEntry, index_keys: &[String]) {
    serde_json::to_writer(
        &mut *out,
        &EntryOut {
            kind: "entry",
            index: entry.index,
            integrated_time: entry.integrated_time,
            body: BASE64_STANDARD.encode(&entry.body),
            set: BASE64_STANDARD.encode(&entry.set),
            index_keys,
        },
    )
    .expect("record serialises");
    out.push(b'\n');
}

/// A checkpoint line, newline included.
#[must_use]
pub fn encode_checkpoint(checkpoint: &StoredCheckpoint) -> Vec<u8> {
    line(&CheckpointOut {
        kind: "checkpoint",
        size: checkpoint.size,
        root: hex::encode(checkpoint.root.0),
        note: &checkpoint.note,
    })
}

/// Sorted, deduplicated keys: the one order the format allows.
#[must_use]
pub fn normalize_keys(keys: &[String]) -> Vec<String> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Parses one line (without its newline).
///
/// # Errors
/// A reason naming the field, for anything that is not a well-formed record.
pub fn parse_record(bytes: &[u8]) -> Result<Record, String> {
    let mut line: LineIn<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON record: {e}"))?;
    let (index_keys, note) = (line.index_keys.take(), line.note.take());
    let need = |v: bool, field: &str| {
        if v {
            Ok(())
        } else {
            Err(format!("{} record without {field}", line.kind))
        }
    };
    let b64 = |field: &str, v: &Option<Cow<'_, str>>| -> Result<Vec<u8>, String> {
        let v = v
            .as_deref()
            .ok_or_else(|| format!("{} record without {field}", line.kind))?;
        BASE64_STANDARD
            .decode(v)
            .map_err(|e| format!("{field} is not base64: {e}"))
    };
    match &*line.kind {
        "log" => {
            let version = line.version.ok_or("log record without version")?;
            if version != FORMAT_VERSION {
                return Err(format!(
                    "format version {version} is not supported (this tlog reads {FORMAT_VERSION})"
                ));
            }
            need(line.tree_id.is_some(), "treeId")?;
            Ok(Record::Header(Header {
                tree_id: line.tree_id.unwrap_or_default(),
                origin: line
                    .origin
                    .as_deref()
                    .ok_or("log record without origin")?
                    .to_owned(),
                hostname: line
                    .hostname
                    .as_deref()
                    .ok_or("log record without hostname")?
                    .to_owned(),
                public_key: b64("publicKey", &line.public_key)?,
                index_offset: line.log_index_offset.unwrap_or_default(),
            }))
        }
        "entry" => {
            let keys = index_keys.ok_or("entry record without indexKeys")?;
            if keys.windows(2).any(|w| w[0] >= w[1]) {
                return Err("indexKeys are not sorted and unique".to_owned());
            }
            // The rule admission applies: a stored entry never carries such a key.
            if let Some(why) = keys.iter().find_map(|k| entries::check_index_key(k).err()) {
                return Err(format!("indexKeys: {why}"));
            }
            Ok(Record::Entry(EntryRecord {
                entry: StoredEntry {
                    index: line.index.ok_or("entry record without index")?,
                    body: b64("body", &line.body)?,
                    integrated_time: line
                        .integrated_time
                        .ok_or("entry record without integratedTime")?,
                    set: b64("set", &line.set)?,
                },
                index_keys: keys,
            }))
        }
        "checkpoint" => {
            let root = line
                .root
                .as_deref()
                .ok_or("checkpoint record without root")?;
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(root, &mut bytes)
                .map_err(|_| "root is not 64 hex digits".to_owned())?;
            Ok(Record::Checkpoint(StoredCheckpoint {
                size: line.size.ok_or("checkpoint record without size")?,
                root: Hash(bytes),
                note: note.ok_or("checkpoint record without note")?,
            }))
        }
        other => Err(format!("unknown record type {other:?}")),
    }
}

/// Which key checkpoint signatures must verify under.
#[derive(Debug, Clone, Copy)]
pub enum KeyPolicy<'a> {
    /// Don't check signatures (the store's own journal: it signed them).
    Unchecked,
    /// This key, which must also be the header's.
    Trusted(&'a LogVerifier),
    /// The key in the header (an explicit opt-in: it proves nothing about who wrote the file).
    Embedded,
}

/// What to do with lines after the last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailPolicy {
    /// Report them: the embedded store truncates a torn journal tail.
    Allow,
    /// Refuse the file: a snapshot must end with a checkpoint covering everything.
    Refuse,
}

/// Why a file was refused: the 1-based line and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct FormatError {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// An entry as the scan saw it.
#[derive(Debug)]
pub struct Visited {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line in the file.
    pub offset: u64,
    /// Length of the line, newline included.
    pub len: u64,
    /// The entry.
    pub record: EntryRecord,
    /// `SHA256(0x00 || body)`.
    pub leaf: Hash,
    /// With [`Bodies::Pack`], the body and SET.
    pub packed: Option<PackedEntry>,
}

/// The lines after the last checkpoint, which no checkpoint covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// First line of the tail.
    pub line: u64,
    /// Why it is not part of the log.
    pub reason: String,
}

/// The verified content of a file.
#[derive(Debug)]
pub struct Scanned {
    /// The header.
    pub header: Header,
    /// The last checkpoint; it covers exactly the entries before it.
    pub checkpoint: StoredCheckpoint,
    /// The tree at the checkpoint's size.
    pub tree: Tree,
    /// Bytes up to and including the last checkpoint line.
    pub covered_bytes: u64,
    /// Lines after it, with [`TailPolicy::Allow`].
    pub tail: Option<Tail>,
}

/// A file that holds no checkpoint at all (a journal torn during creation).
#[derive(Debug)]
pub enum ScanOutcome {
    /// A log.
    Log(Box<Scanned>),
    /// Nothing committed: empty, or a header without a checkpoint.
    Empty,
}

/// Bytes of whole lines handed to one parse job.
const BLOCK_BYTES: usize = 4 << 20;

/// One line of a block, parsed off the reading thread.
struct ParsedLine {
    /// Length, newline included.
    len: u64,
    /// Whether it ends in a newline (only the file's last line may not).
    complete: bool,
    /// The record, with the leaf hash of an entry's body.
    record: Result<(Record, Option<Hash>), String>,
    /// With [`Bodies::Pack`]: where an entry's body and SET start in the
    /// block's buffer, and their lengths.
    packed: Option<(u32, u32, u32)>,
    /// What the caller's [`EntryCheck`] found wrong with an entry.
    problem: Option<String>,
}

/// A check of each entry record that needs nothing but the record (a SET,
/// the index keys against the body), run on the parse workers, so on every
/// core; a problem refuses the file at the entry's line.
pub type EntryCheck<'a> = &'a (dyn Fn(&EntryRecord) -> Result<(), String> + Sync);

/// An entry line as the read path needs it: base64 borrowed, search keys
/// skipped (the file was checked when it was opened; each read is checked
/// again against its leaf hash by the caller).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryLineIn<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    index: u64,
    integrated_time: i64,
    body: &'a str,
    set: &'a str,
}

/// Parses an entry line for serving, without its search keys.
///
/// # Errors
/// Anything that is not an entry record with base64 `body` and `set`.
pub fn parse_entry(bytes: &[u8]) -> Result<StoredEntry, String> {
    let line: EntryLineIn<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("not an entry record: {e}"))?;
    if line.kind != "entry" {
        return Err(format!("a {:?} record, not an entry", line.kind));
    }
    let decode = |field: &str, v: &str| {
        BASE64_STANDARD
            .decode(v)
            .map_err(|e| format!("{field} is not base64: {e}"))
    };
    Ok(StoredEntry {
        index: line.index,
        body: decode("body", line.body)?,
        integrated_time: line.integrated_time,
        set: decode("set", line.set)?,
    })
}

/// Whether [`scan`] hands each entry's body and SET to its visitor, or only
/// the leaf hash (they are decoded and checked either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// The visitor gets the whole entry.
    Keep,
    /// `body` and `set` arrive empty: the visitor needs only hashes and keys.
    Drop,
    /// `body` and `set` arrive empty, and are in [`Visited::packed`]
    /// instead: packed with the rest of their block into one buffer, so a
    /// reader that keeps every entry in memory pays no allocation per entry.
    Pack,
}

/// An entry's body and SET, kept in a buffer shared with its neighbours.
#[derive(Debug, Clone)]
pub struct PackedEntry {
    buf: std::sync::Arc<Vec<u8>>,
    start: u32,
    body_len: u32,
    set_len: u32,
}

impl PackedEntry {
    /// The canonical body.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        let start = self.start as usize;
        &self.buf[start..start + self.body_len as usize]
    }

    /// The SET.
    #[must_use]
    pub fn set(&self) -> &[u8] {
        let start = self.start as usize + self.body_len as usize;
        &self.buf[start..start + self.set_len as usize]
    }
}

/// The lines of one block, parsed.
struct ParsedBlock {
    lines: Vec<ParsedLine>,
    /// With [`Bodies::Pack`]: every entry's body and SET, back to back.
    packed: std::sync::Arc<Vec<u8>>,
}

/// Parses every line of `block`, hashing entry bodies.
fn parse_block(block: &[u8], bodies: Bodies, check: Option<EntryCheck<'_>>) -> ParsedBlock {
    let mut lines = Vec::with_capacity(block.len() / 512 + 1);
    let mut buf = Vec::new();
    if bodies == Bodies::Pack {
        // Decoded base64 is three quarters of its text.
        buf.reserve(block.len() * 3 / 4);
    }
    let mut rest = block;
    while !rest.is_empty() {
        let (line, complete, len) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], true, i + 1),
            None => (rest, false, rest.len()),
        };
        let mut packed = None;
        let mut problem = None;
        let record = parse_record(line).map(|mut record| {
            let leaf = match &mut record {
                Record::Entry(r) => {
                    let leaf = merkle::leaf_hash(&r.entry.body);
                    if let Some(check) = check {
                        problem = check(r).err();
                    }
                    if bodies == Bodies::Pack {
                        let fits = |n: usize| u32::try_from(n).expect("a block stays below 4 GiB");
                        packed = Some((
                            fits(buf.len()),
                            fits(r.entry.body.len()),
                            fits(r.entry.set.len()),
                        ));
                        buf.extend_from_slice(&r.entry.body);
                        buf.extend_from_slice(&r.entry.set);
                    }
                    if bodies != Bodies::Keep {
                        r.entry.body = Vec::new();
                        r.entry.set = Vec::new();
                    }
                    Some(leaf)
                }
                _ => None,
            };
            (record, leaf)
        });
        lines.push(ParsedLine {
            len: len as u64,
            complete,
            record,
            packed,
            problem,
        });
        rest = &rest[len..];
    }
    buf.shrink_to_fit();
    ParsedBlock {
        lines,
        packed: std::sync::Arc::new(buf),
    }
}

/// Reads blocks of whole lines from `reader`; the last block of the file may
/// end in an incomplete line.
struct Blocks<R> {
    reader: R,
    carry: Vec<u8>,
    done: bool,
}

impl<R: std::io::Read> Blocks<R> {
    fn next_block(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        use std::io::Read as _;
        if self.done {
            return Ok(None);
        }
        let mut block = std::mem::take(&mut self.carry);
        block.reserve(BLOCK_BYTES);
        loop {
            let want = BLOCK_BYTES.max(block.len());
            let n = (&mut self.reader)
                .take(want as u64)
                .read_to_end(&mut block)?;
            if n == 0 {
                self.done = true;
                return Ok((!block.is_empty()).then_some(block));
            }
            // Cut after the last whole line; a line longer than a block
            // makes the block grow until it ends.
            if let Some(last) = memchr::memrchr(b'\n', &block) {
                self.carry = block[last + 1..].to_vec();
                block.truncate(last + 1);
                return Ok(Some(block));
            }
        }
    }
}

/// Reads a whole file, checking each line and every checkpoint, and calls
/// `visit` for each entry in order (including any that end up in the tail;
/// the caller keeps the first `checkpoint.size`).
///
/// Lines are parsed and entry bodies hashed on worker threads, a block of
/// lines at a time; the checks that depend on order (indexes, the tree,
/// checkpoints) run here, in file order, so errors name the same first line
/// as a line-by-line reading would.
///
/// # Errors
/// The first problem, with its line: malformed records, entries out of
/// order, a checkpoint whose size, root or note disagrees with the entries
/// before it, a signature that does not verify, a key that is not the
/// trusted one, an I/O failure; and with [`TailPolicy::Refuse`], anything
/// after the last checkpoint.
pub fn scan(
    reader: impl std::io::Read,
    keys: KeyPolicy<'_>,
    tail_policy: TailPolicy,
    bodies: Bodies,
    visit: impl FnMut(Visited),
) -> Result<ScanOutcome, FormatError> {
    scan_checked(reader, keys, tail_policy, bodies, None, visit)
}

/// [`scan`], with `check` run on every entry record on the parse workers:
/// an entry it refuses refuses the file at that line (after the order
/// checks, which name their own lines first).
///
/// # Errors
/// As [`scan`], and the first entry `check` refuses.
pub fn scan_checked(
    reader: impl std::io::Read,
    keys: KeyPolicy<'_>,
    tail_policy: TailPolicy,
    bodies: Bodies,
    check: Option<EntryCheck<'_>>,
    mut visit: impl FnMut(Visited),
) -> Result<ScanOutcome, FormatError> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    let mut blocks = Blocks {
        reader,
        carry: Vec::new(),
        done: false,
    };
    let mut walk = Walk::new(keys);
    let mut cursor = Cursor::default();
    type Job = (Vec<u8>, std::sync::mpsc::SyncSender<ParsedBlock>);
    let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(workers);
    let queue = std::sync::Mutex::new(queue);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let queue = &queue;
            scope.spawn(move || loop {
                let job = queue
                    .lock()
                    .map_err(|_| ())
                    .and_then(|q| q.recv().map_err(|_| ()));
                let Ok((block, reply)) = job else { return };
                let _ = reply.send(parse_block(&block, bodies, check));
            });
        }
        // Parsed blocks in file order, at most 2 per worker in flight.
        let mut pending = std::collections::VecDeque::new();
        let mut result = Ok(());
        loop {
            let block = match blocks.next_block() {
                Ok(block) => block,
                Err(e) => {
                    result = Err(FormatError {
                        line: cursor.line + 1,
                        reason: format!("couldn't read: {e}"),
                    });
                    break;
                }
            };
            let eof = block.is_none();
            if let Some(block) = block {
                let (reply, parsed) = std::sync::mpsc::sync_channel(1);
                if jobs.send((block, reply)).is_err() {
                    unreachable!("parse workers outlive the job queue");
                }
                pending.push_back(parsed);
            }
            while pending.len() > 2 * workers || (eof && !pending.is_empty()) {
                let lines = pending
                    .pop_front()
                    .and_then(|p: std::sync::mpsc::Receiver<_>| p.recv().ok())
                    .expect("a parse worker answers every block");
                if let Err(e) = cursor.walk(&mut walk, lines, &mut visit) {
                    result = Err(e);
                    break;
                }
            }
            if eof || result.is_err() {
                break;
            }
        }
        drop(jobs);
        result
    })?;
    if let Some((line, reason)) = cursor.tail.take() {
        walk.note_tail(line, reason);
    }
    walk.finish(tail_policy, cursor.line)
}

/// Where the in-order walk over parsed lines is.
#[derive(Default)]
struct Cursor {
    line: u64,
    offset: u64,
    /// A bad line that may be a torn tail: it is one unless a checkpoint
    /// follows it, which would cover it.
    tail: Option<(u64, String)>,
}

impl Cursor {
    fn walk(
        &mut self,
        walk: &mut Walk<'_>,
        block: ParsedBlock,
        visit: &mut impl FnMut(Visited),
    ) -> Result<(), FormatError> {
        for parsed in block.lines {
            self.line += 1;
            let offset = self.offset;
            self.offset += parsed.len;
            if let Some((line, reason)) = &self.tail {
                if parsed.complete && matches!(parsed.record, Ok((Record::Checkpoint(_), _))) {
                    return Err(FormatError {
                        line: *line,
                        reason: format!(
                            "{reason} (covered by the checkpoint on line {})",
                            self.line
                        ),
                    });
                }
                continue;
            }
            let result = if parsed.complete {
                let packed = parsed.packed.map(|(start, body_len, set_len)| PackedEntry {
                    buf: std::sync::Arc::clone(&block.packed),
                    start,
                    body_len,
                    set_len,
                });
                walk.step(
                    parsed.record,
                    parsed.problem,
                    packed,
                    self.line,
                    offset,
                    parsed.len,
                    visit,
                )
            } else {
                Err(Problem::Tail(
                    "incomplete last line (no newline at the end of the file)".to_owned(),
                ))
            };
            match result {
                Ok(()) => {}
                Err(Problem::Fatal(reason)) => {
                    return Err(FormatError {
                        line: self.line,
                        reason,
                    })
                }
                Err(Problem::Tail(reason)) => self.tail = Some((self.line, reason)),
            }
        }
        Ok(())
    }
}

enum Problem {
    /// The file is wrong where a checkpoint covers it.
    Fatal(String),
    /// The line cannot be part of the log; fatal only if a checkpoint follows.
    Tail(String),
}

struct Walk<'k> {
    keys: KeyPolicy<'k>,
    embedded: Option<LogVerifier>,
    header: Option<Header>,
    tree: Tree,
    pending: Vec<Hash>,
    checkpoint: Option<StoredCheckpoint>,
    covered_bytes: u64,
    tail: Option<Tail>,
}

impl<'k> Walk<'k> {
    fn new(keys: KeyPolicy<'k>) -> Self {
        Self {
            keys,
            embedded: None,
            header: None,
            tree: Tree::default(),
            pending: Vec::new(),
            checkpoint: None,
            covered_bytes: 0,
            tail: None,
        }
    }

    fn next_index(&self) -> u64 {
        self.tree.size() + self.pending.len() as u64
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        parsed: Result<(Record, Option<Hash>), String>,
        problem: Option<String>,
        packed: Option<PackedEntry>,
        line: u64,
        offset: u64,
        len: u64,
        visit: &mut impl FnMut(Visited),
    ) -> Result<(), Problem> {
        let (record, leaf) = parsed.map_err(|reason| {
            if self.header.is_none() {
                Problem::Fatal(reason)
            } else {
                Problem::Tail(reason)
            }
        })?;
        match (record, &self.header) {
            (Record::Header(header), None) => self.on_header(header),
            (_, None) => Err(Problem::Fatal(
                "the first line must be the log record (\"type\":\"log\")".to_owned(),
            )),
            (Record::Header(_), Some(_)) => Err(Problem::Fatal("a second log record".to_owned())),
            (Record::Entry(record), Some(_)) => {
                let expected = self.next_index();
                if record.entry.index != expected {
                    return Err(Problem::Fatal(format!(
                        "expected entry {expected}, found entry {} (a line is missing, repeated or out of order)",
                        record.entry.index
                    )));
                }
                if let Some(problem) = problem {
                    return Err(Problem::Fatal(format!(
                        "entry {}: {problem}",
                        record.entry.index
                    )));
                }
                let leaf = leaf.expect("entries are hashed with their parse");
                self.pending.push(leaf);
                visit(Visited {
                    line,
                    offset,
                    len,
                    record,
                    leaf,
                    packed,
                });
                Ok(())
            }
            (Record::Checkpoint(checkpoint), Some(_)) => {
                self.on_checkpoint(checkpoint)?;
                self.covered_bytes = offset + len;
                Ok(())
            }
        }
    }

    fn on_header(&mut self, header: Header) -> Result<(), Problem> {
        if header.tree_id <= 0 {
            return Err(Problem::Fatal(format!(
                "invalid tree ID {}",
                header.tree_id
            )));
        }
        let ours = LogVerifier::from_spki_der(&header.public_key)
            .map_err(|e| Problem::Fatal(format!("publicKey: {e}")))?;
        match self.keys {
            KeyPolicy::Trusted(trusted) if trusted.public_key_der() != header.public_key => {
                return Err(Problem::Fatal(format!(
                    "the file's public key (log ID {}) is not the trusted key (log ID {})",
                    hex::encode(ours.log_id()),
                    hex::encode(trusted.log_id())
                )));
            }
            KeyPolicy::Embedded => self.embedded = Some(ours),
            _ => {}
        }
        self.header = Some(header);
        Ok(())
    }

    fn on_checkpoint(&mut self, checkpoint: StoredCheckpoint) -> Result<(), Problem> {
        let fatal = |reason: String| Err(Problem::Fatal(reason));
        let expected = self.next_index();
        if checkpoint.size != expected {
            return fatal(format!(
                "checkpoint of size {} follows {expected} entries",
                checkpoint.size
            ));
        }
        if !self.pending.is_empty() {
            let staged = self.tree.stage(&self.pending);
            self.tree.apply(staged);
            self.pending.clear();
        }
        let root = self.tree.root(checkpoint.size).expect("size is the tree's");
        if root != checkpoint.root {
            return fatal(format!(
                "the {} entries before this line hash to root {}, but the checkpoint says {} \
                 (an entry was altered)",
                checkpoint.size,
                hex::encode(root.0),
                hex::encode(checkpoint.root.0)
            ));
        }
        let signed = SignedCheckpoint::parse(&checkpoint.note)
            .map_err(|e| Problem::Fatal(format!("note: {e}")))?;
        let header = self.header.as_ref().expect("checked by step");
        if signed.checkpoint.size != checkpoint.size || signed.checkpoint.root != checkpoint.root {
            return fatal("the signed note names another size or root than its record".to_owned());
        }
        if let Err(e) = hostname_of(&signed.checkpoint.origin, header.tree_id) {
            return fatal(e);
        }
        let verifier = match self.keys {
            KeyPolicy::Unchecked => None,
            KeyPolicy::Trusted(v) => Some(v),
            KeyPolicy::Embedded => self.embedded.as_ref(),
        };
        if let Some(verifier) = verifier {
            if signed.verify(verifier).is_err() {
                return fatal(format!(
                    "the checkpoint is not signed by the log key (log ID {})",
                    hex::encode(verifier.log_id())
                ));
            }
        }
        self.checkpoint = Some(checkpoint);
        Ok(())
    }

    fn note_tail(&mut self, line: u64, reason: String) {
        self.tail = Some(Tail { line, reason });
    }

    fn finish(self, policy: TailPolicy, last_line: u64) -> Result<ScanOutcome, FormatError> {
        let Some(header) = self.header else {
            return Ok(ScanOutcome::Empty);
        };
        let tail = match self.tail {
            Some(tail) => Some(tail),
            None if !self.pending.is_empty() => Some(Tail {
                line: last_line - self.pending.len() as u64 + 1,
                reason: format!(
                    "{} entries after the last checkpoint (the file is truncated or still being written)",
                    self.pending.len()
                ),
            }),
            None => None,
        };
        let Some(checkpoint) = self.checkpoint else {
            if policy == TailPolicy::Refuse {
                let (line, reason) = match tail {
                    Some(tail) => (tail.line, tail.reason),
                    None => (
                        last_line,
                        "the file has no checkpoint (it is truncated)".to_owned(),
                    ),
                };
                return Err(FormatError { line, reason });
            }
            return Ok(ScanOutcome::Empty);
        };
        if let (Some(tail), TailPolicy::Refuse) = (&tail, policy) {
            return Err(FormatError {
                line: tail.line,
                reason: tail.reason.clone(),
            });
        }
        Ok(ScanOutcome::Log(Box::new(Scanned {
            header,
            checkpoint,
            tree: self.tree,
            covered_bytes: self.covered_bytes,
            tail,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_line(keys: &[&str]) -> Vec<u8> {
        let entry = StoredEntry {
            index: 0,
            body: b"{}".to_vec(),
            integrated_time: 1,
            set: vec![1],
        };
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let mut line = encode_entry(&entry, &keys);
        line.pop();
        line
    }

    #[test]
    fn entry_records_with_keys_admission_refuses_are_refused() {
        assert!(parse_record(&entry_line(&["a", "sha256:ab"])).is_ok());
        assert_eq!(
            parse_record(&entry_line(&["a\0"])).err().unwrap(),
            r#"indexKeys: search index key "a\0" contains the control character U+0000"#
        );
        let long = "k".repeat(3000);
        assert!(parse_record(&entry_line(&[&long]))
            .err()
            .unwrap()
            .contains("3000 bytes long, more than the 512 allowed"));
    }
}
