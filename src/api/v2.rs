//! Rekor v2 and C2SP tlog-tiles: `POST /api/v2/log/entries`, and the read
//! API (`/checkpoint`, `/tile/…`, `/tile/entries/…`, also under `/api/v2/`).
//! Spec: rekor-v2-tiles.md W-01…W-13, R-01…R-07.
//!
//! Errors have v2's own body, grpc-gateway's `google.rpc.Status` JSON
//! (`{"code","message","details"}`, W-11), not v1's `{"code","message"}`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::Serialize;
use std::sync::Arc;

use super::{read_json_body, ApiError, ApiState};
use crate::entries::hashedrekord_v2::{self, V2EntryError};
use crate::entries::{Entry, Kind};
use crate::log::{AppendError, Log, Proof, Served};
use crate::merkle;
use crate::storage::{LogReader as _, Store, StoredCheckpoint};
use crate::tiles::{TileId, TILE_WIDTH};

/// gRPC status codes the v2 API answers with (google.rpc.Code).
const INVALID_ARGUMENT: u16 = 3;
const NOT_FOUND: u16 = 5;
const ALREADY_EXISTS: u16 = 6;
const UNAVAILABLE: u16 = 14;
const UNKNOWN: u16 = 2;

/// rekor-tiles' answer for a frozen log (W-10), as plain text.
const FROZEN: &str = "This log has been frozen, please switch to the latest log.\n";
/// Cache-Control of tiles and entry bundles, full or partial.
const IMMUTABLE: &str = "max-age=604800,immutable";

/// A v2 error: an HTTP status and a `google.rpc.Status` body (W-10, W-11).
#[derive(Debug)]
pub struct V2Error {
    status: StatusCode,
    code: u16,
    message: String,
    /// `x-log-index` of a duplicate (W-07), or of an entry sequenced but
    /// not yet witnessed (fail-closed).
    log_index: Option<u64>,
    /// `Retry-After` seconds of a 503.
    retry_after: Option<u64>,
}

impl V2Error {
    fn new(status: StatusCode, code: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            log_index: None,
            retry_after: None,
        }
    }

    /// Fail-closed: the entry is sequenced at `index`, but no checkpoint
    /// that includes it met the witness quorum within the bounded wait.
    fn unwitnessed(index: u64, retry_after: std::time::Duration) -> Self {
        Self {
            log_index: Some(index),
            retry_after: Some(retry_after.as_secs().max(1)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                format!(
                    "the entry is in the log with index {index}, but the witness quorum has not \
                     cosigned a checkpoint that includes it yet; retry the same request"
                ),
            )
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, NOT_FOUND, "not found")
    }
}

impl std::fmt::Display for V2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl ResponseError for V2Error {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(index) = self.log_index {
            response.insert_header(("x-log-index", index.to_string()));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            return response.content_type("text/plain").body(FROZEN);
        }
        let body = serde_json::json!({"code": self.code, "message": self.message, "details": []});
        response
            .content_type("application/json")
            .body(body.to_string())
    }
}

/// Request-plumbing failures (media type, size, timeout) keep their HTTP
/// status and message, in v2's body.
impl From<ApiError> for V2Error {
    fn from(err: ApiError) -> Self {
        Self::new(err.status_code(), INVALID_ARGUMENT, err.to_string())
    }
}

impl From<V2EntryError> for V2Error {
    fn from(err: V2EntryError) -> Self {
        let message = match &err {
            V2EntryError::NotHashedRekord => hashedrekord_v2::NOT_HASHEDREKORD,
            V2EntryError::Invalid { detail } => {
                // The detail goes to the server log only (W-04).
                tracing::info!(detail = %detail, "refused a v2 entry");
                hashedrekord_v2::INVALID_REQUEST
            }
        };
        Self::new(StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message)
    }
}

impl From<AppendError> for V2Error {
    fn from(err: AppendError) -> Self {
        match err {
            AppendError::Duplicate(index) => Self {
                log_index: Some(index),
                ..Self::new(
                    StatusCode::CONFLICT,
                    ALREADY_EXISTS,
                    format!(
                        "an equivalent entry already exists in the transparency log with index {index}"
                    ),
                )
            },
            AppendError::Pushback => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "reached max pushback; retry",
            ),
            AppendError::Unavailable(why) => {
                tracing::warn!(error = %why, "couldn't append a v2 entry");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, "log unavailable; retry")
            }
            AppendError::ReadOnly => Self::new(StatusCode::METHOD_NOT_ALLOWED, 12, FROZEN),
            AppendError::Rejected(why) => {
                tracing::info!(error = %why, "storage refused a v2 entry");
                Self::new(
                    StatusCode::BAD_REQUEST,
                    INVALID_ARGUMENT,
                    hashedrekord_v2::INVALID_REQUEST,
                )
            }
        }
    }
}

/// `dev.sigstore.rekor.v1.TransparencyLogEntry` in protojson (W-09): int64
/// as strings, standard base64, no SET, `integratedTime` 0.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransparencyLogEntry {
    log_index: String,
    log_id: KeyId,
    kind_version: KindVersion,
    integrated_time: &'static str,
    inclusion_promise: Option<()>,
    inclusion_proof: InclusionProof,
    canonicalized_body: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyId {
    key_id: String,
}

#[derive(Serialize)]
struct KindVersion {
    kind: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProof {
    log_index: String,
    root_hash: String,
    tree_size: String,
    hashes: Vec<String>,
    checkpoint: Envelope,
}

#[derive(Serialize)]
struct Envelope {
    envelope: String,
}

fn v2_log(state: &ApiState) -> Result<std::sync::Arc<Log<Store>>, V2Error> {
    state.v2_log().ok_or_else(V2Error::not_found)
}

/// `POST /api/v2/log/entries`: validates, appends, and answers once the
/// entry's batch is committed with a checkpoint that covers it (W-08),
/// with an inclusion proof checked here before it is sent.
///
/// # Errors
/// See [`V2Error`]: 400, 409 with `x-log-index`, 503, 405 when frozen.
pub async fn create_entry(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, V2Error> {
    let log = v2_log(&state)?;
    let body = read_json_body(&req, payload, &state).await?;
    // Signature checks cost up to ~1 ms (RSA-4096): off the HTTP worker.
    let parsed = web::block(move || hashedrekord_v2::parse_create_request(&body))
        .await
        .map_err(|_| {
            V2Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                UNKNOWN,
                "failed to integrate entry",
            )
        })??;
    let leaf = merkle::leaf_hash(&parsed.canonical);
    let entry = Entry {
        kind: Kind::HashedRekord,
        canonical: parsed.canonical,
        index_keys: Vec::new(),
        signers: Vec::new(),
    };
    let canonical = entry.canonical.clone();
    let witnessing = state.witnessing();
    let index = match (log.append(entry).await, &witnessing) {
        (Ok(index), _) => index,
        // Fail-closed: a duplicate is answered 409 (it is in the log) only
        // once the quorum cosigned a checkpoint with it; until then a
        // retry after 503 gets 503 again.
        (Err(AppendError::Duplicate(index)), Some(w)) if w.fail_closed() => {
            if w.wait_covering(index).await.is_none() {
                return Err(V2Error::unwitnessed(index, w.wait_bound()));
            }
            return Err(AppendError::Duplicate(index).into());
        }
        (Err(err), _) => return Err(err.into()),
    };
    // With witnesses, the answer carries the checkpoint served at
    // /checkpoint: cosigned once the quorum met, else (fail-open) the
    // log's own.
    let checkpoint = match &witnessing {
        None => None,
        Some(w) => match w.wait_covering(index).await {
            Some(published) => Some(Arc::clone(&published.checkpoint)),
            None if w.fail_closed() => return Err(V2Error::unwitnessed(index, w.wait_bound())),
            None => None,
        },
    };
    let tle = transparency_log_entry(&log, index, leaf, &canonical, checkpoint).await?;
    Ok(HttpResponse::Created()
        .content_type("application/json")
        .body(serde_json::to_vec(&tle).expect("the entry serialises")))
}

async fn transparency_log_entry(
    log: &Log<Store>,
    index: u64,
    leaf: merkle::Hash,
    canonical: &[u8],
    checkpoint: Option<Arc<StoredCheckpoint>>,
) -> Result<TransparencyLogEntry, V2Error> {
    let failed = || {
        V2Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            UNKNOWN,
            "failed to integrate entry",
        )
    };
    let proof = match checkpoint {
        Some(checkpoint) => Proof {
            hashes: log
                .inclusion_proof_at(index, checkpoint.size)
                .await
                .map_err(|_| failed())?,
            checkpoint,
        },
        None => log.inclusion_proof(index).await.map_err(|_| failed())?,
    };
    let checkpoint = &proof.checkpoint;
    // The proof is checked against the very checkpoint it is sent with.
    merkle::verify_inclusion(leaf, index, checkpoint.size, &proof.hashes, checkpoint.root)
        .map_err(|_| failed())?;
    let log_id = hex::decode(&log.info().log_id).map_err(|_| failed())?;
    Ok(TransparencyLogEntry {
        log_index: index.to_string(),
        log_id: KeyId {
            key_id: BASE64_STANDARD.encode(log_id),
        },
        kind_version: KindVersion {
            kind: "hashedrekord",
            version: "0.0.2",
        },
        integrated_time: "0",
        inclusion_promise: None,
        inclusion_proof: InclusionProof {
            log_index: index.to_string(),
            root_hash: BASE64_STANDARD.encode(checkpoint.root.0),
            tree_size: checkpoint.size.to_string(),
            hashes: proof
                .hashes
                .iter()
                .map(|h| BASE64_STANDARD.encode(h.0))
                .collect(),
            checkpoint: Envelope {
                envelope: checkpoint.note.clone(),
            },
        },
        canonicalized_body: BASE64_STANDARD.encode(canonical),
    })
}

/// `GET /checkpoint`: the latest signed checkpoint, never cached.
///
/// # Errors
/// 404 without a v2 log.
pub async fn get_checkpoint(state: web::Data<ApiState>) -> Result<HttpResponse, V2Error> {
    if let (None, Some(dir)) = (state.v2_log(), state.tiles_dir()) {
        return Ok(note_response(dir.checkpoint().to_owned()));
    }
    let log = v2_log(&state)?;
    Ok(checkpoint_response(&state, &log))
}

/// `GET /logs/<origin>/checkpoint`: the checkpoint of the v2 log of that
/// origin, active (as `/checkpoint`) or frozen (its final one).
///
/// # Errors
/// 404 for an origin no v2 log has.
pub async fn get_checkpoint_of(
    origin: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, V2Error> {
    if let Some(dir) = state.tiles_dir().filter(|d| d.origin() == origin.as_str()) {
        return Ok(note_response(dir.checkpoint().to_owned()));
    }
    let log = state.v2_log_of(&origin).ok_or_else(V2Error::not_found)?;
    Ok(checkpoint_response(&state, &log))
}

fn checkpoint_response(state: &ApiState, log: &Arc<Log<Store>>) -> HttpResponse {
    let active = state.v2_log().is_some_and(|v2| Arc::ptr_eq(&v2, log));
    // With witnesses: the newest checkpoint published after its round
    // (cosigned, or in fail-open the log's own when the quorum missed).
    let note = match state.witnessing().filter(|_| active) {
        Some(witnessing) => witnessing.published().checkpoint.note.clone(),
        None => log.checkpoint().note.clone(),
    };
    note_response(note)
}

fn note_response(note: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(note)
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `/tile/entries/<N>[.p/<W>]` (R-01…R-05).
///
/// # Errors
/// 404 for a path that is not canonical or a tile the tree does not have.
pub async fn get_tile(
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, V2Error> {
    if let (None, Some(dir)) = (state.v2_log(), state.tiles_dir()) {
        return dir_tile_response(dir, &path).await;
    }
    let log = v2_log(&state)?;
    tile_response(&log, &path).await
}

/// `GET /logs/<origin>/tile/...`: [`get_tile`] of the v2 log of that
/// origin, active or frozen.
///
/// # Errors
/// 404 for an origin no v2 log has, and as [`get_tile`].
pub async fn get_tile_of(
    path: web::Path<(String, String)>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, V2Error> {
    let (origin, path) = path.into_inner();
    if let Some(dir) = state.tiles_dir().filter(|d| d.origin() == origin) {
        return dir_tile_response(dir, &path).await;
    }
    let log = state.v2_log_of(&origin).ok_or_else(V2Error::not_found)?;
    tile_response(&log, &path).await
}

/// A tile or bundle of a replica's verified tiles directory: only the
/// canonical paths its verification read, each with the bytes it checked.
async fn dir_tile_response(
    dir: &crate::storage::tiles_dir::TilesDir,
    path: &str,
) -> Result<HttpResponse, V2Error> {
    let canonical = match path.strip_prefix("entries/") {
        Some(rest) => TileId::from_path(&format!("0/{rest}")).is_ok(),
        None => TileId::from_path(path).is_ok(),
    };
    if !canonical {
        return Err(V2Error::not_found());
    }
    let bytes = dir.read(path).await.map_err(|err| {
        tracing::error!(error = %err, "couldn't serve a tile of the v2 tiles directory");
        V2Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            UNKNOWN,
            "couldn't read the tile",
        )
    })?;
    let bytes = bytes.ok_or_else(V2Error::not_found)?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::CACHE_CONTROL, IMMUTABLE))
        .body(bytes))
}

async fn tile_response(log: &Arc<Log<Store>>, path: &str) -> Result<HttpResponse, V2Error> {
    // Tiles and bundles are encoded once and then served from the view's
    // byte-capped cache: what a path names never changes once it exists.
    let bytes = match path.strip_prefix("entries/") {
        Some(rest) => {
            // Same index and width grammar as a level-0 tile.
            let id = TileId::from_path(&format!("0/{rest}")).map_err(|_| V2Error::not_found())?;
            log.view()
                .served(Served::Bundle(id), entry_bundle(log, id))
                .await?
        }
        None => {
            let id = TileId::from_path(path).map_err(|_| V2Error::not_found())?;
            log.view()
                .served(Served::Tile(id), async {
                    log.view().read_tile(id).await.map_err(|err| {
                        tracing::error!("couldn't read tile {path}: {err}");
                        V2Error::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            UNKNOWN,
                            "couldn't read the tile",
                        )
                    })
                })
                .await?
        }
    }
    .ok_or_else(V2Error::not_found)?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::CACHE_CONTROL, IMMUTABLE))
        .body(bytes))
}

/// The entry bundle `id` names (`<N>[.p/<W>]`): each entry as a uint16
/// big-endian length and its canonical bytes. `None` past the tree.
async fn entry_bundle(log: &Log<Store>, id: TileId) -> Result<Option<Vec<u8>>, V2Error> {
    let start = id
        .index
        .checked_mul(u64::from(TILE_WIDTH))
        .ok_or_else(V2Error::not_found)?;
    let end = start + u64::from(id.width);
    if end > log.checkpoint().size {
        return Ok(None);
    }
    let page = log.store().entry_page(start, end).await.map_err(|e| {
        tracing::warn!(error = %e, "couldn't read an entry bundle");
        V2Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "storage unavailable",
        )
    })?;
    crate::tiles::entry_bundle(page.iter().map(|(entry, _)| &entry.body[..]))
        .map(Some)
        .map_err(|_| {
            V2Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                UNKNOWN,
                "entry too large for a bundle",
            )
        })
}
