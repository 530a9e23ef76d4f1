//! `tlog verify URL`: the audit of a live Rekor v1 log, over its read API.
//!
//! The same checks as the file audit where the API allows them: every entry
//! at its index with a SET that verifies, every body a valid entry, the tree
//! rebuilt from the bodies' leaf hashes equal to the signed checkpoint's
//! root, and with `--since` the root at the earlier size equal to that
//! checkpoint's. Memory is bounded: the tree is a [`CompactRange`] (one hash
//! per level) and one window of entries is held at a time. What it cannot
//! check over v1: the index keys the server stores for each entry (the API
//! does not serve them per entry), and other checkpoints than the current one.
//!
//! A time-sharded log is audited shard by shard, oldest first, each under
//! the key that signed its head: `--public-key` may hold several keys.

use std::time::{Duration, Instant};

use base64::prelude::{Engine, BASE64_STANDARD};

use super::{Problem, Progress, Report, ShardSummary};
use crate::entries;
use crate::merkle::{leaf_hash, CompactRange, Hash};
use crate::monitor::shards::{layout, Shard};
use crate::monitor::{FetchedEntry, LogClient, ENTRIES_PER_REQUEST};
use crate::note::Checkpoint;
use crate::signing::{LogKeys, LogVerifier};

/// Entry requests in flight.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Time one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Entries fetched, then checked on every core, at a time.
const WINDOW: u64 = 64 * ENTRIES_PER_REQUEST;

/// Audits the log at `url` under `keys` (its shards' keys); `since` is a
/// signed checkpoint seen earlier, of any of its shards, which the log must
/// extend. Every problem is in the report.
pub async fn verify_url(
    url: &str,
    keys: &LogKeys,
    since: Option<&str>,
    concurrency: usize,
    ca_file: Option<&std::path::Path>,
) -> Report {
    let started = Instant::now();
    let mut report = Report::empty(url);
    report.index_keys_note = Some(
        "index keys stored by the server are not compared over HTTP (the v1 API does not serve them per entry)"
            .to_owned(),
    );
    let outcome = audit(url, keys, since, concurrency, ca_file, &mut report).await;
    report.finished(started, outcome)
}

fn plain(reason: String) -> Problem {
    Problem::plain(reason)
}

/// Every shard in order (`inactiveShards`, then the active one), each from
/// its first global index to its signed size: its entries' SETs under the
/// key that signed its head, and its tree rebuilt to that head's root.
async fn audit(
    url: &str,
    keys: &LogKeys,
    since: Option<&str>,
    concurrency: usize,
    ca_file: Option<&std::path::Path>,
    report: &mut Report,
) -> Result<(), Problem> {
    let since: Option<Checkpoint> = since
        .map(|text| {
            keys.verify_checkpoint(text)
                .map(|(checkpoint, _)| checkpoint)
                .map_err(|e| plain(format!("the --since checkpoint does not verify: {e}")))
        })
        .transpose()?;
    let client = LogClient::new(url, REQUEST_TIMEOUT, ca_file).map_err(|e| plain(e.to_string()))?;
    let info = client.log_info().await.map_err(|e| plain(e.to_string()))?;
    let shards = layout(&info, keys).map_err(|e| plain(e.message))?;
    let active = shards.last().expect("a layout ends with the active shard");
    report.origin = Some(active.head.origin.clone());
    report.tree_size = active.head.size;
    report.root = Some(hex::encode(active.head.root.0));
    if shards.len() > 1 {
        report.shards = shards
            .iter()
            .map(|s| ShardSummary {
                origin: s.head.origin.clone(),
                first_index: s.offset,
                tree_size: s.head.size,
                root: hex::encode(s.head.root.0),
                frozen: s.frozen,
            })
            .collect();
    }
    if let Some(since) = &since {
        let Some(shard) = shards.iter().find(|s| s.head.origin == since.origin) else {
            return Err(plain(format!(
                "the --since checkpoint is {:?}'s; no shard of this log is ({:?} and its inactive shards)",
                since.origin, active.head.origin
            )));
        };
        if since.size > shard.head.size {
            return Err(plain(format!(
                "{:?} is smaller ({}) than the --since checkpoint ({}): rolled back",
                since.origin, shard.head.size, since.size
            )));
        }
    }
    let mut progress = Progress::new(active.end());
    for shard in &shards {
        let since = since.as_ref().filter(|s| s.origin == shard.head.origin);
        audit_shard(&client, shard, since, concurrency, report, &mut progress).await?;
    }
    progress.finish();
    Ok(())
}

async fn audit_shard(
    client: &LogClient,
    shard: &Shard,
    since: Option<&Checkpoint>,
    concurrency: usize,
    report: &mut Report,
    progress: &mut Progress,
) -> Result<(), Problem> {
    let mut range = CompactRange::default();
    let mut start = shard.offset;
    while start < shard.end() {
        let end = (start + WINDOW).min(shard.end());
        let entries = client
            .entries_range(start, end, concurrency)
            .await
            .map_err(|e| plain(e.to_string()))?;
        let owned = shard.key.clone();
        let checked = tokio::task::spawn_blocking(move || check_window(&entries, &owned))
            .await
            .expect("a verify worker panicked");
        for result in checked {
            let (index, kind, leaf, len) = result?;
            range.push(leaf);
            report.entries += 1;
            report.sets_verified += 1;
            report.body_bytes += len;
            *report.kinds.entry(kind.to_owned()).or_default() += 1;
            if let Some(since) = since.filter(|s| s.size == index - shard.offset + 1) {
                check_since(&range, since)?;
                report.consistent_with = Some(since.size);
            }
        }
        progress.advance(end - start);
        start = end;
    }
    if let Some(since) = since.filter(|s| s.size == 0) {
        check_since(&range, since)?;
        report.consistent_with = Some(0);
    }
    if range.root() != shard.head.root {
        return Err(plain(format!(
            "the {} entries served of {:?} hash to root {}, not its signed checkpoint's {}",
            shard.head.size,
            shard.head.origin,
            hex::encode(range.root().0),
            hex::encode(shard.head.root.0)
        )));
    }
    Ok(())
}

fn check_since(range: &CompactRange, since: &Checkpoint) -> Result<(), Problem> {
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

/// An entry checked: its index, kind, leaf hash and body length.
type Checked = (u64, &'static str, Hash, u64);

/// Checks a window's entries on every core, in order.
fn check_window(entries: &[FetchedEntry], verifier: &LogVerifier) -> Vec<Result<Checked, Problem>> {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let per = entries.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|e| check_entry(e, verifier))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verify worker panicked"))
            .collect()
    })
}

fn check_entry(entry: &FetchedEntry, verifier: &LogVerifier) -> Result<Checked, Problem> {
    let problem = |reason: String| Problem {
        line: None,
        index: Some(entry.log_index),
        reason,
    };
    let body = entry.body_bytes().map_err(problem)?;
    let set = BASE64_STANDARD
        .decode(&entry.verification.signed_entry_timestamp)
        .map_err(|_| problem("its SET is not base64".to_owned()))?;
    verifier
        .verify_set(&entry.body, entry.integrated_time, entry.log_index, &set)
        .map_err(|_| {
            problem(
                "its SET does not verify under the key (body, integratedTime or index changed, or another key signed it)"
                    .to_owned(),
            )
        })?;
    // The body must be an entry this log writes; its signatures were
    // verified at admission, and the SET says it was admitted.
    let parsed = entries::committed_index_keys(&body)
        .map_err(|e| problem(format!("its body is not a valid entry: {e}")))?;
    Ok((
        entry.log_index,
        parsed.kind.name(),
        leaf_hash(&body),
        body.len() as u64,
    ))
}
