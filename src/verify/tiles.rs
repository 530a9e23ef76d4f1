//! `tlog verify URL` of a Rekor v2 log: the audit of a C2SP tlog-tiles log
//! (rekor-v2-tiles.md R- items) from its checkpoint, hash tiles and entry
//! bundles alone, as a CDN or bucket in front of the log serves them.
//!
//! - the checkpoint verifies under the log's Ed25519 key (K-02), named by
//!   its origin; cosignature lines beside it are counted, not checked;
//! - every entry bundle up to the checkpoint's size is fetched; every entry
//!   in it is a hashedrekord 0.0.2 whose signature verifies and whose bytes
//!   are canonical ([`hashedrekord_v2::recheck_entry`]): a v2 log issues no
//!   SETs, so the entry's own signature is what shows the log did not make
//!   it up;
//! - the tree rebuilt from the bundles' leaf hashes has the checkpoint's
//!   root, and every hash tile the checkpoint's size implies, full
//!   and partial, at every level, holds exactly the hashes computed from
//!   the entries: a client's inclusion and consistency proofs are built
//!   from those tiles;
//! - with `--since`, the root at the earlier checkpoint's size is its root.
//!
//! Memory is bounded: one window of bundles, one compact range and at most
//! 255 hashes per tile level are held at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::{Problem, Progress, Report};
use crate::entries::hashedrekord_v2;
use crate::merkle::{leaf_hash, CompactRange, Hash};
use crate::monitor::LogClient;
use crate::note::c2sp::{self, CheckpointText};
use crate::storage::tiles_dir::Digests;
use crate::tiles::{self, TileId, TileStream, TILE_WIDTH};

/// Time one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest checkpoint accepted (`signed_note`'s own limit is 1 MB).
const MAX_CHECKPOINT: usize = 1 << 20;
/// Largest hash tile: 256 hashes.
const MAX_TILE: usize = 256 * 32;
/// Largest entry bundle: 256 entries of at most 65 535 bytes, each with
/// its two-byte length.
const MAX_BUNDLE: usize = 256 * (2 + 65_535);
/// Bundles fetched, then checked on every core, at a time.
const WINDOW: u64 = 64;

/// Where the audit reads a tiles log: a URL, or a directory holding the
/// same paths (`tlog export --v2`'s output). Paths start with `/`.
#[derive(Clone)]
pub enum TileSource {
    /// Over HTTP(S).
    Http(LogClient),
    /// Files below this directory.
    Dir(std::path::PathBuf),
    /// Files below this directory, each read's SHA-256 kept by its path
    /// (without the leading `/`): what a replica then serves.
    Recorded(std::path::PathBuf, Arc<Mutex<Digests>>),
}

impl TileSource {
    /// The bytes at `path`, at most `cap` of them.
    ///
    /// # Errors
    /// Why they could not be read, as a sentence.
    pub async fn get(&self, path: &str, cap: usize) -> Result<Vec<u8>, String> {
        match self {
            TileSource::Http(client) => {
                client.get_bytes(path, cap).await.map_err(|e| e.to_string())
            }
            TileSource::Dir(dir) | TileSource::Recorded(dir, _) => {
                let name = path.trim_start_matches('/').to_owned();
                let file = dir.join(&name);
                let bytes = tokio::task::spawn_blocking(move || read_capped(&file, cap))
                    .await
                    .map_err(|e| format!("reading task failed: {e}"))??;
                if let TileSource::Recorded(_, digests) = self {
                    digests.lock().insert(name, Sha256::digest(&bytes).into());
                }
                Ok(bytes)
            }
        }
    }

    fn name(&self) -> String {
        match self {
            TileSource::Http(client) => client.base().to_owned(),
            TileSource::Dir(dir) | TileSource::Recorded(dir, _) => dir.display().to_string(),
        }
    }
}

fn read_capped(file: &std::path::Path, cap: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let opened =
        std::fs::File::open(file).map_err(|e| format!("couldn't open {}: {e}", file.display()))?;
    let mut bytes = Vec::new();
    opened
        .take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("couldn't read {}: {e}", file.display()))?;
    if bytes.len() > cap {
        return Err(format!("{} is over {cap} bytes", file.display()));
    }
    Ok(bytes)
}

/// Audits the tiles log at `url` (its `checkpoint` and `tile/…` are below
/// it) under the raw Ed25519 key `key`; `since` is a checkpoint of the
/// same log seen earlier, which it must extend. Every problem is in the
/// report.
pub async fn verify_tiles(
    url: &str,
    key: &[u8; 32],
    since: Option<&str>,
    concurrency: usize,
    ca_file: Option<&std::path::Path>,
) -> Report {
    match LogClient::new(url, REQUEST_TIMEOUT, ca_file) {
        Ok(client) => verify_source(&TileSource::Http(client), key, since, concurrency, None).await,
        Err(e) => Report::empty(url).finished(Instant::now(), Err(plain(e.to_string()))),
    }
}

/// [`verify_tiles`] of any source; with `bundle_roots`, also collects the
/// Merkle root of each entry bundle's leaves, in order, for a second pass
/// over the same files to be checked against (an import).
pub async fn verify_source(
    source: &TileSource,
    key: &[u8; 32],
    since: Option<&str>,
    concurrency: usize,
    bundle_roots: Option<&mut Vec<Hash>>,
) -> Report {
    let started = Instant::now();
    let mut report = Report::empty(&source.name());
    report.index_keys_note = Some("none to check: a Rekor v2 log keeps no search index".to_owned());
    let outcome = audit(source, key, since, concurrency, bundle_roots, &mut report).await;
    report.finished(started, outcome)
}

fn plain(reason: String) -> Problem {
    Problem::plain(reason)
}

/// The checkpoint `text` under `key`, named by its own origin line.
fn verified_checkpoint(text: &str, key: &[u8; 32]) -> Result<CheckpointText, String> {
    let origin = text.lines().next().unwrap_or_default();
    c2sp::verify_log_checkpoint(text, origin, key).map_err(|e| match e {
        c2sp::C2spError::BadSignature => format!(
            "it does not verify under the key (no signature of log key {:?} with key ID {})",
            origin,
            hex::encode(&c2sp::log_key_hash(origin, key)[..4])
        ),
        other => other.to_string(),
    })
}

async fn audit(
    source: &TileSource,
    key: &[u8; 32],
    since: Option<&str>,
    concurrency: usize,
    mut bundle_roots: Option<&mut Vec<Hash>>,
    report: &mut Report,
) -> Result<(), Problem> {
    let since = since
        .map(|text| {
            verified_checkpoint(text, key)
                .map_err(|e| plain(format!("the --since checkpoint does not verify: {e}")))
        })
        .transpose()?;
    let text = source
        .get("/checkpoint", MAX_CHECKPOINT)
        .await
        .map_err(plain)?;
    let text =
        String::from_utf8(text).map_err(|_| plain("the checkpoint is not UTF-8".to_owned()))?;
    let head = verified_checkpoint(&text, key)
        .map_err(|e| plain(format!("the checkpoint does not verify: {e}")))?;
    report.origin = Some(head.origin.clone());
    report.tree_size = head.size;
    report.root = Some(hex::encode(head.root.0));
    report.cosignatures = Some(
        c2sp::SignedNote::parse(&text)
            .map_err(|e| plain(format!("the checkpoint: {e}")))?
            .signatures()
            .len()
            .saturating_sub(1) as u64,
    );
    if let Some(since) = &since {
        if since.origin != head.origin {
            return Err(plain(format!(
                "the --since checkpoint is {:?}'s, not this log's ({:?})",
                since.origin, head.origin
            )));
        }
        if since.size > head.size {
            return Err(plain(format!(
                "the log is smaller ({}) than the --since checkpoint ({}): rolled back",
                head.size, since.size
            )));
        }
    }
    let mut audit = TileAudit {
        source: source.clone(),
        range: CompactRange::default(),
        stream: TileStream::default(),
        tiles_verified: 0,
    };
    let bundles = head.size.div_ceil(u64::from(TILE_WIDTH));
    let mut progress = Progress::new(head.size);
    let mut first = 0;
    while first < bundles {
        let last = (first + WINDOW).min(bundles);
        let fetched = audit.fetch(first, last, head.size, concurrency).await?;
        let checked = tokio::task::spawn_blocking(move || check_bundles(fetched))
            .await
            .expect("a verify worker panicked")?;
        for bundle in checked {
            let before = audit.range.size();
            if let Some(since) = since
                .as_ref()
                .filter(|s| s.size > before && s.size <= before + bundle.leaves.len() as u64)
            {
                let mut prefix = audit.range.clone();
                let within = usize::try_from(since.size - before).expect("at most 256");
                for leaf in &bundle.leaves[..within] {
                    prefix.push(*leaf);
                }
                check_since(&prefix, since)?;
                report.consistent_with = Some(since.size);
            }
            audit.bundle_done(&bundle).await?;
            if let Some(roots) = bundle_roots.as_deref_mut() {
                roots.push(tiles::leaves_root(&bundle.leaves));
            }
            report.entries += bundle.leaves.len() as u64;
            report.body_bytes += bundle.body_bytes;
            *report.kinds.entry("hashedrekord".to_owned()).or_default() +=
                bundle.leaves.len() as u64;
            progress.advance(bundle.leaves.len() as u64);
        }
        first = last;
    }
    progress.finish();
    if let Some(since) = since.as_ref().filter(|s| s.size == 0) {
        check_since(&audit.range, since)?;
        report.consistent_with = Some(0);
    }
    if audit.range.root() != head.root {
        return Err(plain(format!(
            "the {} entries in its bundles hash to root {}, not its signed checkpoint's {}",
            head.size,
            hex::encode(audit.range.root().0),
            hex::encode(head.root.0)
        )));
    }
    audit.partial_tiles().await?;
    report.tiles_verified = Some(audit.tiles_verified);
    Ok(())
}

/// The hash tiles still to compare as the audit walks the tree.
struct TileAudit {
    source: TileSource,
    range: CompactRange,
    /// The tiles the entries so far imply.
    stream: TileStream,
    tiles_verified: u64,
}

/// A bundle as fetched: its level-0 tile, its bytes and the tile's bytes.
struct Fetched {
    id: TileId,
    bundle: Vec<u8>,
    tile: Vec<u8>,
}

/// A bundle checked: its leaves, which its level-0 tile holds.
struct CheckedBundle {
    leaves: Vec<Hash>,
    body_bytes: u64,
}

impl TileAudit {
    /// Bundles `[first, last)` of a tree of `size`, with their level-0
    /// tiles, `concurrency` requests at once, in order.
    async fn fetch(
        &self,
        first: u64,
        last: u64,
        size: u64,
        concurrency: usize,
    ) -> Result<Vec<Fetched>, Problem> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut fetched = Vec::new();
        let mut next = first;
        while next < last || !tasks.is_empty() {
            while next < last && tasks.len() < concurrency.max(1) {
                let width = (size - next * u64::from(TILE_WIDTH)).min(u64::from(TILE_WIDTH));
                let id = TileId {
                    level: 0,
                    index: next,
                    width: u16::try_from(width).expect("at most 256"),
                };
                let source = self.source.clone();
                tasks.spawn(async move {
                    let bundle = source
                        .get(&format!("/tile/{}", id.entries_path()), MAX_BUNDLE)
                        .await?;
                    let tile = source
                        .get(&format!("/tile/{}", id.path()), MAX_TILE)
                        .await?;
                    Ok::<_, String>(Fetched { id, bundle, tile })
                });
                next += 1;
            }
            if let Some(joined) = tasks.join_next().await {
                fetched.push(joined.expect("a tile request panicked").map_err(plain)?);
            }
        }
        fetched.sort_by_key(|f| f.id.index);
        Ok(fetched)
    }

    /// Pushes a checked bundle's leaves (its level-0 tile was compared with
    /// them already); every higher tile they complete is fetched and compared.
    async fn bundle_done(&mut self, bundle: &CheckedBundle) -> Result<(), Problem> {
        self.tiles_verified += 1;
        for leaf in &bundle.leaves {
            self.range.push(*leaf);
            for (id, bytes) in self.stream.push(*leaf) {
                if id.level > 0 {
                    self.compare(id, &bytes).await?;
                }
            }
        }
        Ok(())
    }

    /// The partial tiles at the right edge of every level above 0 (level
    /// 0's partial tile came with its bundle).
    async fn partial_tiles(&mut self) -> Result<(), Problem> {
        for (id, bytes) in self.stream.edge() {
            if id.level > 0 {
                self.compare(id, &bytes).await?;
            }
        }
        Ok(())
    }

    /// Fetches tile `id` and compares it with `hashes`.
    async fn compare(&mut self, id: TileId, expected: &[u8]) -> Result<(), Problem> {
        let path = format!("/tile/{}", id.path());
        let bytes = self.source.get(&path, MAX_TILE).await.map_err(plain)?;
        if bytes != expected {
            return Err(plain(format!(
                "{path} does not hold the hashes of the entries below it (a client's proofs from it would not verify)"
            )));
        }
        self.tiles_verified += 1;
        Ok(())
    }
}

/// Checks every bundle's entries on every core, in order: each parses,
/// holds as many entries as its tile is wide, each entry rechecks, and its
/// level-0 tile holds their leaf hashes.
fn check_bundles(fetched: Vec<Fetched>) -> Result<Vec<CheckedBundle>, Problem> {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let per = fetched.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = fetched
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(check_bundle).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verify worker panicked"))
            .collect()
    })
}

fn check_bundle(fetched: &Fetched) -> Result<CheckedBundle, Problem> {
    let id = fetched.id;
    let first = id.index * u64::from(TILE_WIDTH);
    let path = format!("/tile/{}", id.entries_path());
    let entries =
        tiles::parse_entry_bundle(&fetched.bundle).map_err(|e| plain(format!("{path}: {e}")))?;
    if entries.len() != usize::from(id.width) {
        return Err(plain(format!(
            "{path} holds {} entries, not {}",
            entries.len(),
            id.width
        )));
    }
    let mut leaves = Vec::with_capacity(entries.len());
    let mut body_bytes = 0;
    for (n, entry) in entries.iter().enumerate() {
        hashedrekord_v2::recheck_entry(entry).map_err(|reason| Problem {
            line: None,
            index: Some(first + n as u64),
            reason,
        })?;
        leaves.push(leaf_hash(entry));
        body_bytes += entry.len() as u64;
    }
    let tile: Vec<u8> = leaves.iter().flat_map(|h| h.0).collect();
    if fetched.tile != tile {
        return Err(plain(format!(
            "/tile/{} does not hold the leaf hashes of {path} (a client's proofs from it would not verify)",
            id.path()
        )));
    }
    Ok(CheckedBundle { leaves, body_bytes })
}

fn check_since(range: &CompactRange, since: &CheckpointText) -> Result<(), Problem> {
    if range.root() == since.root {
        return Ok(());
    }
    Err(plain(format!(
        "the log's first {} entries have root {}, not the --since checkpoint's {}: a fork",
        since.size,
        hex::encode(range.root().0),
        hex::encode(since.root.0)
    )))
}
