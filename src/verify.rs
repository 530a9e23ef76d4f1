//! `tlog verify FILE`: an audit of a `db.jsonl` export that trusts nothing
//! in it but the key it is given (issue 15).
//!
//! What [`storage::jsonl::scan`](crate::storage::jsonl::scan) checks already:
//! the header names the given key, entries come in index order, every body
//! hashes to its leaf, and every checkpoint's size, root and signature match
//! the tree rebuilt from the entries before it. On top of that this checks:
//! - every entry's Signed Entry Timestamp under the key, which also covers
//!   its `integratedTime`, index and body;
//! - every entry's index keys against the ones its body yields
//!   ([`entries::committed_index_keys`], which reads them without
//!   re-verifying the entry's signature): none missing (a removed key would
//!   hide the entry from search) and none added. Keys that come from outside
//!   the committed body (the in-toto statement digests of a `dsse` or
//!   `intoto` entry, whose payload is not stored; an SSH key's comment) are
//!   checked for their form only, and the report counts those entries;
//! - with `--since`, that a checkpoint seen earlier (signed by the same key)
//!   is a prefix of this log: its root is the root of the file's first
//!   entries.
//!
//! The first problem ends the audit, with its line and entry index.

mod remote;
mod tiles;

pub use remote::{verify_url, DEFAULT_CONCURRENCY};
pub use tiles::{verify_source, verify_tiles, TileSource};

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::Serialize;

use crate::entries;
use crate::note::Checkpoint;
use crate::signing::LogVerifier;
use crate::storage::jsonl::{self, Bodies, KeyPolicy, ScanOutcome, TailPolicy, Visited};

/// Entries checked together, spread over the cores.
const CHUNK: usize = 4096;

/// What the audit found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The file audited.
    pub source: String,
    /// The log's origin line, once the header was read.
    pub origin: Option<String>,
    /// The global index of the file's first entry: a shard's offset (its
    /// header's `logIndexOffset`), else 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub first_index: u64,
    /// Entries checked (up to the problem, if there was one).
    pub entries: u64,
    /// Entries by kind.
    pub kinds: BTreeMap<String, u64>,
    /// Bytes of entry bodies.
    pub body_bytes: u64,
    /// Size of the tree at the last checkpoint.
    pub tree_size: u64,
    /// Its root, in hex.
    pub root: Option<String>,
    /// SETs that verified.
    pub sets_verified: u64,
    /// Entries whose index keys were re-derived from their bodies and found
    /// equal to the file's.
    pub index_keys_checked: u64,
    /// Of those, entries that may carry keys their body cannot show (in-toto
    /// statement digests, an SSH key's comment), which were only checked
    /// for their form.
    pub index_keys_not_derivable: u64,
    /// The `--since` checkpoint's size, when one was given and it holds.
    pub consistent_with: Option<u64>,
    /// A time-sharded log's shards, oldest first (URL audits of more than
    /// one shard only); `tree_size` and `root` are then the active one's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardSummary>,
    /// A Rekor v2 (tiles) log's hash tiles compared with the ones computed
    /// from its entries, every level, full and partial; `None` for v1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiles_verified: Option<u64>,
    /// A tiles log's cosignature lines on its checkpoint (counted, not
    /// verified: a witness policy says whose count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosignatures: Option<u64>,
    /// Why index keys were not compared, when they could not be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_keys_note: Option<String>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
    /// Seconds the audit took.
    pub seconds: f64,
}

/// One shard of a log audited over HTTP.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ShardSummary {
    /// Its checkpoint origin.
    pub origin: String,
    /// The global index of its first entry.
    pub first_index: u64,
    /// Its tree size.
    pub tree_size: u64,
    /// Its root, in hex.
    pub root: String,
    /// Whether it is frozen.
    pub frozen: bool,
}

/// The first thing wrong with the file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem is on one.
    pub line: Option<u64>,
    /// The entry's index, when the problem is an entry.
    pub index: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    /// A problem of the whole source, at no line or entry.
    fn plain(reason: String) -> Self {
        Self {
            line: None,
            index: None,
            reason,
        }
    }
}

impl Report {
    /// The report once an audit that began at `started` ended with
    /// `outcome`.
    fn finished(mut self, started: Instant, outcome: Result<(), Problem>) -> Self {
        self.problem = outcome.err();
        self.seconds = started.elapsed().as_secs_f64();
        self
    }

    /// A report of nothing checked yet, on `source`.
    fn empty(source: &str) -> Self {
        Self {
            source: source.to_owned(),
            origin: None,
            first_index: 0,
            entries: 0,
            kinds: BTreeMap::new(),
            body_bytes: 0,
            tree_size: 0,
            root: None,
            sets_verified: 0,
            index_keys_checked: 0,
            index_keys_not_derivable: 0,
            consistent_with: None,
            shards: Vec::new(),
            tiles_verified: None,
            cosignatures: None,
            index_keys_note: None,
            problem: None,
            seconds: 0.0,
        }
    }

    /// Adds the tallies of `other`'s entries to these.
    fn add(&mut self, other: &Self) {
        self.entries += other.entries;
        self.sets_verified += other.sets_verified;
        self.body_bytes += other.body_bytes;
        self.index_keys_checked += other.index_keys_checked;
        self.index_keys_not_derivable += other.index_keys_not_derivable;
        for (kind, n) in &other.kinds {
            *self.kinds.entry(kind.clone()).or_default() += n;
        }
    }

    /// Whether the file passed.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }

    /// The human-readable audit.
    #[must_use]
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "tlog verify {}", self.source);
        if let Some(origin) = &self.origin {
            let _ = writeln!(out, "  log          {origin}");
        }
        if self.first_index > 0 {
            let _ = writeln!(
                out,
                "  shard        its entries are global indexes {} on (SETs checked over them)",
                self.first_index
            );
        }
        let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            out,
            "  entries      {} ({}), {} bytes of bodies",
            self.entries,
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            },
            self.body_bytes
        );
        if let Some(root) = &self.root {
            let _ = writeln!(
                out,
                "  tree         size {}, root {root}, checkpoint signature verified",
                self.tree_size
            );
        }
        for shard in &self.shards {
            let _ = writeln!(
                out,
                "  shard        {} ({}): entries {}..{}, size {}, root {}",
                shard.origin,
                if shard.frozen { "frozen" } else { "active" },
                shard.first_index,
                shard.first_index + shard.tree_size,
                shard.tree_size,
                shard.root
            );
        }
        match self.tiles_verified {
            Some(tiles) => {
                let _ = writeln!(
                    out,
                    "  entries      every signature verified and every body canonical (a v2 log issues no SETs)"
                );
                let _ = writeln!(
                    out,
                    "  tiles        {tiles} hash tiles equal to the ones computed from the entries"
                );
            }
            None => {
                let _ = writeln!(out, "  SETs         {} verified", self.sets_verified);
            }
        }
        if let Some(n) = self.cosignatures {
            let _ = writeln!(out, "  cosignatures {n} on the checkpoint (not verified)");
        }
        match &self.index_keys_note {
            Some(note) => {
                let _ = writeln!(out, "  index keys   {note}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "  index keys   {} entries re-derived from their bodies ({} with keys from outside the body, checked for form only)",
                    self.index_keys_checked, self.index_keys_not_derivable
                );
            }
        }
        if let Some(size) = self.consistent_with {
            let _ = writeln!(
                out,
                "  since        the checkpoint at size {size} is a prefix of this log"
            );
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = self.entries as f64 / self.seconds.max(1e-6);
        match &self.problem {
            None => {
                let _ = writeln!(
                    out,
                    "  result       OK in {:.2} s ({rate:.0} entries/s)",
                    self.seconds
                );
            }
            Some(problem) => {
                let mut place = Vec::new();
                if let Some(line) = problem.line {
                    place.push(format!("line {line}"));
                }
                if let Some(index) = problem.index {
                    place.push(format!("entry {index}"));
                }
                let place = if place.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", place.join(", "))
                };
                let _ = writeln!(
                    out,
                    "  result       FAILED{place}: {} (after {:.2} s)",
                    problem.reason, self.seconds
                );
            }
        }
        out
    }
}

/// Audits the `db.jsonl` file at `path` as a log signed by `verifier`;
/// `since` is a signed checkpoint seen earlier, which the log must extend.
/// Every problem is in the report, never an `Err`.
#[must_use]
pub fn verify_file(path: &Path, verifier: &LogVerifier, since: Option<&str>) -> Report {
    let started = Instant::now();
    let mut report = Report::empty(&path.display().to_string());
    let outcome = audit(path, verifier, since, &mut report);
    report.finished(started, outcome)
}

fn audit(
    path: &Path,
    verifier: &LogVerifier,
    since: Option<&str>,
    report: &mut Report,
) -> Result<(), Problem> {
    let plain = Problem::plain;
    // The earlier checkpoint must be the same key's, before anything else.
    let since: Option<Checkpoint> = since
        .map(|text| {
            verifier
                .verify_checkpoint(text)
                .map_err(|e| plain(format!("the --since checkpoint does not verify: {e}")))
        })
        .transpose()?;
    let file = std::fs::File::open(path).map_err(|e| plain(format!("couldn't open it: {e}")))?;
    // A shard's SETs sign global indexes from its header's offset on (a
    // header the scan refuses has none, and the scan names its problem).
    let index_offset = jsonl::read_header(path).map_or(0, |h| h.index_offset);
    let mut progress = Progress::new(file.metadata().map_or(0, |m| m.len()));
    // The scan (parsing and leaf hashes on its workers, the tree in order)
    // hands chunks of entries to a checker, which spreads SETs and index
    // keys over every core while the scan reads on.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (chunks, queue) = std::sync::mpsc::sync_channel::<Vec<Visited>>(2);
    let (outcome, (tally, first_problem)) = std::thread::scope(|scope| {
        let checker = scope.spawn(|| {
            let mut tally = Report::empty("");
            for mut chunk in queue {
                if let Err(problem) = check_chunk(&mut chunk, verifier, index_offset, &mut tally) {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    return (tally, Some(problem));
                }
            }
            (tally, None)
        });
        let mut chunk: Vec<Visited> = Vec::with_capacity(CHUNK);
        let outcome = jsonl::scan(
            file,
            KeyPolicy::Trusted(verifier),
            TailPolicy::Refuse,
            Bodies::Keep,
            |visited| {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                progress.advance(visited.len);
                chunk.push(visited);
                if chunk.len() >= CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    // A checker that stopped has its problem already.
                    let _ = chunks.send(full);
                }
            },
        );
        if !chunk.is_empty() {
            let _ = chunks.send(chunk);
        }
        drop(chunks);
        (outcome, checker.join().expect("the checker panicked"))
    });
    report.add(&tally);
    progress.finish();
    // A problem in an entry comes before any the scan found further on.
    if let Some(problem) = first_problem {
        return Err(problem);
    }
    let scanned = match outcome {
        Ok(ScanOutcome::Log(scanned)) => scanned,
        Ok(ScanOutcome::Empty) => return Err(plain("the file holds no log".to_owned())),
        Err(e) => {
            return Err(Problem {
                line: Some(e.line),
                index: None,
                reason: e.reason,
            })
        }
    };
    if scanned.header.index_offset != index_offset {
        return Err(plain("the file changed during the audit".to_owned()));
    }
    report.origin = Some(scanned.header.origin.clone());
    report.first_index = index_offset;
    report.tree_size = scanned.checkpoint.size;
    report.root = Some(hex::encode(scanned.checkpoint.root.0));
    if let Some(since) = since {
        if since.size > scanned.checkpoint.size {
            return Err(plain(format!(
                "the log is smaller ({}) than the --since checkpoint ({}): rolled back",
                scanned.checkpoint.size, since.size
            )));
        }
        let root = scanned
            .tree
            .root(since.size)
            .map_err(|e| plain(format!("couldn't compute the root at {}: {e}", since.size)))?;
        if root != since.root {
            return Err(plain(format!(
                "the log's first {} entries have root {}, not the --since checkpoint's {}: a fork",
                since.size,
                hex::encode(root.0),
                hex::encode(since.root.0)
            )));
        }
        report.consistent_with = Some(since.size);
    }
    Ok(())
}

/// What one entry's checks found.
struct Checked {
    kind: &'static str,
    /// Some keys the entry may have come from outside its body.
    partial: bool,
}

/// Checks the SETs and index keys of `chunk` on every core, tallies them
/// into `report`, and empties it. The first failing entry is the problem.
fn check_chunk(
    chunk: &mut Vec<Visited>,
    verifier: &LogVerifier,
    index_offset: u64,
    report: &mut Report,
) -> Result<(), Problem> {
    if chunk.is_empty() {
        return Ok(());
    }
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let per = chunk.len().div_ceil(workers);
    let results: Vec<Result<Checked, Problem>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunk
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|v| check_entry(v, verifier, index_offset))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verify worker panicked"))
            .collect()
    });
    for (visited, result) in chunk.iter().zip(results) {
        let checked = result?;
        report.entries += 1;
        report.sets_verified += 1;
        report.body_bytes += visited.record.entry.body.len() as u64;
        *report.kinds.entry(checked.kind.to_owned()).or_default() += 1;
        report.index_keys_checked += 1;
        if checked.partial {
            report.index_keys_not_derivable += 1;
        }
    }
    chunk.clear();
    Ok(())
}

fn check_entry(
    visited: &Visited,
    verifier: &LogVerifier,
    index_offset: u64,
) -> Result<Checked, Problem> {
    let derived =
        check_record(&visited.record, verifier, index_offset).map_err(|reason| Problem {
            line: Some(visited.line),
            index: Some(visited.record.entry.index),
            reason,
        })?;
    Ok(Checked {
        kind: derived.kind.name(),
        partial: derived.unstored.statement_digests || derived.unstored.ssh_comment,
    })
}

/// Checks one committed record of a snapshot as the audit and the replica
/// both do: its SET verifies under `verifier` (over its global index, the
/// file's `index_offset` on), and the keys its committed
/// body yields, read without re-verifying its signatures (the SET says the
/// log accepted it), match the record's: none missing, and none added but
/// those the body cannot show. Returns the derived keys.
///
/// # Errors
/// Why the record fails, as a sentence about "it".
pub fn check_record(
    record: &jsonl::EntryRecord,
    verifier: &LogVerifier,
    index_offset: u64,
) -> Result<entries::CommittedKeys, String> {
    let entry = &record.entry;
    // A shard's SETs sign the global index (its header's logIndexOffset on).
    verifier
        .verify_set(
            &BASE64_STANDARD.encode(&entry.body),
            entry.integrated_time,
            index_offset + entry.index,
            &entry.set,
        )
        .map_err(|_| {
            "its SET does not verify under the key (body, integratedTime or index changed, or another key signed it)"
                .to_owned()
        })?;
    let derived = entries::committed_index_keys(&entry.body)
        .map_err(|e| format!("its body is not a valid entry: {e}"))?;
    derived.check(&record.index_keys)?;
    Ok(derived)
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A progress bar over the file's bytes, on stderr when it is a terminal.
struct Progress {
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
    enabled: bool,
}

impl Progress {
    fn new(total: u64) -> Self {
        let now = Instant::now();
        Self {
            total,
            done: 0,
            started: now,
            last: now,
            enabled: std::io::stderr().is_terminal() && total > 0,
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        #[allow(clippy::cast_precision_loss)]
        let share = self.done as f64 / self.total as f64;
        let width = 40;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let filled = ((share * f64::from(width)) as u32).min(width);
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if share > 0.0 {
            elapsed / share - elapsed
        } else {
            0.0
        };
        eprint!(
            "\r[{}{}] {:>3.0}%  ETA {eta:.0}s ",
            "#".repeat(filled as usize),
            " ".repeat((width - filled) as usize),
            share * 100.0
        );
    }

    fn finish(&self) {
        if self.enabled && self.started.elapsed() >= Duration::from_millis(200) {
            eprintln!();
        }
    }
}
