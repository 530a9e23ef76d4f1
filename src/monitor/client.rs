//! A bounded client for the Rekor v1 read API of a log we do not trust:
//! every request has a timeout and every body a size cap, so a hostile or
//! broken log costs the monitor bounded time and memory.
//!
//! `http://` or `https://` ([`crate::http_client`]: the system's roots plus
//! an optional CA file).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::Deserialize;

use crate::merkle::Hash;

/// Largest `/api/v1/log` or `/api/v1/log/proof` body accepted: a proof is
/// at most 64 hashes (4.2 KB of hex) and a checkpoint a few hundred bytes.
const MAX_SMALL_BODY: usize = 64 << 10;
/// Largest retrieve body accepted: 10 entries, each within the server's
/// default request limit (32 MiB) once base64-encoded, with proofs.
const MAX_ENTRIES_BODY: usize = 10 * (44 << 20);
/// Entries asked for in one retrieve request (Rekor's limit).
pub const ENTRIES_PER_REQUEST: u64 = 10;

/// Why a request to the log failed; not an alert, the poll is retried.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, timeout or transport failure.
    #[error("couldn't reach the log: {0}")]
    Transport(String),
    /// A status other than 200.
    #[error("the log answered {status} to {path}: {body}")]
    Status {
        /// The path asked for.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, for the log line.
        body: String,
    },
    /// A body over the cap, or not the JSON we asked for.
    #[error("the log's answer to {path} is unusable: {reason}")]
    Malformed {
        /// The path asked for.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `GET /api/v1/log`, as far as the monitor reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogInfo {
    /// Hex root hash.
    pub root_hash: String,
    /// The signed checkpoint (note text).
    pub signed_tree_head: String,
    /// The tree size.
    pub tree_size: u64,
    /// The tree ID (decimal), as Rekor serves it.
    #[serde(default, rename = "treeID")]
    pub tree_id: Option<String>,
    /// The frozen shards, oldest first (Rekor's `inactiveShards`; absent or
    /// `null` for a log never rotated).
    #[serde(default)]
    pub inactive_shards: Option<Vec<InactiveShard>>,
}

/// One of `inactiveShards`: a frozen shard's final signed tree head.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InactiveShard {
    /// Hex root hash.
    pub root_hash: String,
    /// The final signed checkpoint (note text).
    pub signed_tree_head: String,
    /// The final tree size.
    pub tree_size: u64,
    /// The tree ID (decimal).
    #[serde(default, rename = "treeID")]
    pub tree_id: Option<String>,
}

#[derive(Deserialize)]
struct ProofBody {
    hashes: Vec<String>,
}

/// One entry of a retrieve answer, as far as the monitor reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchedEntry {
    /// Base64 canonical body.
    pub body: String,
    /// Unix seconds of integration.
    pub integrated_time: i64,
    /// Its index.
    pub log_index: u64,
    /// SET and inclusion proof.
    pub verification: Verification,
}

/// `verification` of an entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Base64 SET.
    pub signed_entry_timestamp: String,
    /// Inclusion proof against a checkpoint.
    pub inclusion_proof: InclusionProof,
}

/// `verification.inclusionProof`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    /// Hex sibling hashes.
    pub hashes: Vec<String>,
    /// The entry's index in its shard's tree (its global `logIndex` less
    /// the sizes of the shards before it).
    #[serde(default)]
    pub log_index: Option<u64>,
    /// The signed checkpoint the proof leads to.
    pub checkpoint: String,
}

impl FetchedEntry {
    /// The decoded body.
    ///
    /// # Errors
    /// The body is not base64.
    pub fn body_bytes(&self) -> Result<Vec<u8>, String> {
        BASE64_STANDARD
            .decode(&self.body)
            .map_err(|e| format!("its body is not base64: {e}"))
    }
}

/// The HTTP side of the monitor.
#[derive(Clone)]
pub struct LogClient {
    http: reqwest::Client,
    base: String,
}

impl LogClient {
    /// A client for the log at `base` (no trailing `/api/v1`), trusting the
    /// system's CA certificates and those in `ca_file`.
    ///
    /// # Errors
    /// Not an `http://` or `https://` URL, an unusable `ca_file`, or the
    /// HTTP client cannot be built.
    pub fn new(base: &str, timeout: Duration, ca_file: Option<&Path>) -> Result<Self, FetchError> {
        if !crate::http_client::is_http_url(base) {
            return Err(FetchError::Transport(format!(
                "{base}: not an http:// or https:// URL"
            )));
        }
        let http = crate::http_client::builder(ca_file)
            .map_err(|e| FetchError::Transport(e.to_string()))?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("tlog-monitor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport(crate::http_client::describe(&e)))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The log's current signed tree head.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn log_info(&self) -> Result<LogInfo, FetchError> {
        let path = "/api/v1/log";
        let body = self.get(path, MAX_SMALL_BODY).await?;
        parse(path, &body)
    }

    /// A consistency proof from `first` to `last` in the tree `tree_id`
    /// (the active shard's without one).
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn consistency_proof(
        &self,
        first: u64,
        last: u64,
        tree_id: Option<&str>,
    ) -> Result<Vec<Hash>, FetchError> {
        let mut path = format!("/api/v1/log/proof?firstSize={first}&lastSize={last}");
        if let Some(tree) = tree_id {
            if !tree.bytes().all(|b| b.is_ascii_digit()) || tree.is_empty() {
                return Err(FetchError::Malformed {
                    path: "/api/v1/log".to_owned(),
                    reason: format!("treeID {tree:?} is not decimal"),
                });
            }
            path.push_str("&treeID=");
            path.push_str(tree);
        }
        let body = self.get(&path, MAX_SMALL_BODY).await?;
        let proof: ProofBody = parse(&path, &body)?;
        proof
            .hashes
            .iter()
            .map(|h| {
                parse_hash(h).ok_or_else(|| FetchError::Malformed {
                    path: path.clone(),
                    reason: format!("{h:?} is not a hex SHA-256 hash"),
                })
            })
            .collect()
    }

    /// The entries at `indexes` (at most [`ENTRIES_PER_REQUEST`]), in the
    /// order the log answers.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn entries(&self, indexes: &[u64]) -> Result<Vec<FetchedEntry>, FetchError> {
        let path = "/api/v1/log/entries/retrieve";
        let request = serde_json::json!({ "logIndexes": indexes });
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
            .await
            .map_err(|e| FetchError::Transport(crate::http_client::describe(&e)))?;
        let body = read_capped(path, response, MAX_ENTRIES_BODY).await?;
        // `[{uuid: entry}, ...]`, one object per entry found.
        let found: Vec<BTreeMap<String, FetchedEntry>> = parse(path, &body)?;
        Ok(found.into_iter().flat_map(BTreeMap::into_values).collect())
    }

    /// The entries `[start, end)`, `concurrency` requests at once, in index
    /// order; each index must be served exactly once.
    ///
    /// # Errors
    /// See [`FetchError`]; an index missing or served twice is `Malformed`.
    pub async fn entries_range(
        &self,
        start: u64,
        end: u64,
        concurrency: usize,
    ) -> Result<Vec<FetchedEntry>, FetchError> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut entries = Vec::new();
        let mut first = start;
        while first < end || !tasks.is_empty() {
            while first < end && tasks.len() < concurrency.max(1) {
                let last = (first + ENTRIES_PER_REQUEST).min(end);
                let indexes: Vec<u64> = (first..last).collect();
                let client = self.clone();
                tasks.spawn(async move { client.entries(&indexes).await });
                first = last;
            }
            if let Some(joined) = tasks.join_next().await {
                entries.extend(joined.expect("an entry request panicked")?);
            }
        }
        entries.sort_by_key(|e| e.log_index);
        let expected = (start..end).map(Some);
        let served = entries.iter().map(|e| Some(e.log_index));
        if let Some((want, got)) = expected
            .chain(std::iter::repeat(None))
            .zip(served.chain(std::iter::repeat(None)))
            .take_while(|(w, g)| w.is_some() || g.is_some())
            .find(|(w, g)| w != g)
        {
            return Err(FetchError::Malformed {
                path: "/api/v1/log/entries/retrieve".to_owned(),
                reason: match (want, got) {
                    (Some(w), _) => format!("entry {w} is missing or served twice"),
                    (None, g) => format!("entry {g:?} was served unasked or twice"),
                },
            });
        }
        Ok(entries)
    }

    /// The base URL, without a trailing `/`.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The 200 body of `GET <base><path>`, at most `cap` bytes: for
    /// resources other than the v1 API's (a v2 log's tiles).
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn get_bytes(&self, path: &str, cap: usize) -> Result<Vec<u8>, FetchError> {
        self.get(path, cap).await
    }

    async fn get(&self, path: &str, cap: usize) -> Result<Vec<u8>, FetchError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| FetchError::Transport(crate::http_client::describe(&e)))?;
        read_capped(path, response, cap).await
    }
}

/// Reads a 200 body of at most `cap` bytes, chunk by chunk.
async fn read_capped(
    path: &str,
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, FetchError> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::Transport(crate::http_client::describe(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(FetchError::Malformed {
                path: path.to_owned(),
                reason: format!("its body is over {cap} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    if status != 200 {
        body.truncate(200);
        return Err(FetchError::Status {
            path: path.to_owned(),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    Ok(body)
}

fn parse<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, FetchError> {
    serde_json::from_slice(body).map_err(|e| FetchError::Malformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A 64-digit hex hash.
#[must_use]
pub fn parse_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(Hash(out))
}
