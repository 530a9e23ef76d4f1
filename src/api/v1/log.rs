//! `GET /api/v1/log`, `/log/publicKey`, `/log/proof` (E-01..E-03).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::models::{write_consistency_proof, InactiveShard, LogInfoBody};
use super::shards;
use crate::api::{json_bytes, json_response, query_pairs, query_value, ApiError, ApiState};

/// E-01: the current signed tree head of the active shard, and the final
/// one of each frozen shard (`inactiveShards`, oldest first, as Rekor).
pub async fn get_log_info(state: web::Data<ApiState>) -> HttpResponse {
    let log = state.log();
    let checkpoint = log.checkpoint();
    let info = log.info();
    let frozen: Vec<_> = state
        .frozen_shards()
        .iter()
        .map(|shard| (shard.checkpoint(), shard.info().tree_id))
        .collect();
    let inactive_shards = (!frozen.is_empty()).then(|| {
        frozen
            .iter()
            .map(|(checkpoint, tree_id)| InactiveShard {
                root_hash: hex::encode(checkpoint.root.0),
                signed_tree_head: &checkpoint.note,
                tree_id: tree_id.to_string(),
                tree_size: checkpoint.size,
            })
            .collect()
    });
    json_response(
        StatusCode::OK,
        &LogInfoBody {
            inactive_shards,
            root_hash: hex::encode(checkpoint.root.0),
            signed_tree_head: &checkpoint.note,
            tree_id: info.tree_id.to_string(),
            tree_size: checkpoint.size,
        },
    )
}

/// E-02: the log's public key as PEM; with `treeID`, that shard's.
///
/// # Errors
/// 422 for a non-decimal `treeID`, 400 for a tree no shard has.
pub async fn get_public_key(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let mut log = state.log();
    let pairs = query_pairs(&req);
    if let Some(tree) = query_value(&pairs, "treeID") {
        if !tree.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::pattern("treeID", "query", "^[0-9]+$"));
        }
        log = tree
            .parse::<i64>()
            .ok()
            .and_then(|tree| shards::by_tree(&state, tree))
            .ok_or_else(|| ApiError::BadRequest("Bad Request".to_owned()))?;
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .body(log.info().public_key_pem.clone()))
}

/// E-03: a consistency proof between two sizes, with the latest root.
///
/// # Errors
/// 422 for schema errors, 400 for sizes or tree IDs out of range (in E-03's order).
pub async fn get_log_proof(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let mut log = state.log();
    let pairs = query_pairs(&req);
    let last =
        query_value(&pairs, "lastSize").ok_or_else(|| ApiError::required("lastSize", "query"))?;
    let last = parse_size("lastSize", last)?;
    let first = match query_value(&pairs, "firstSize") {
        Some(first) => parse_size("firstSize", first)?,
        None => 1,
    };
    if first > last {
        return Err(ApiError::BadRequest(format!(
            "firstSize({first}) must be less than lastSize({last})"
        )));
    }
    if let Some(tree) = query_value(&pairs, "treeID") {
        let id: i64 = tree
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid tree ID specified: {tree}")))?;
        // A frozen shard's proofs are within its final tree.
        log = shards::by_tree(&state, id)
            .ok_or_else(|| ApiError::BadRequest(format!("no log range found for tree ID {id}")))?;
    }
    let size = log.checkpoint().size;
    let proof = log.consistency_proof(first, last).await;
    let (hashes, checkpoint) = proof.map_err(|err| match err {
        crate::log::ReadError::Proof(_) => ApiError::BadRequest(format!(
            "the tree size requested({last}) was greater than what is currently observable({size})"
        )),
        crate::log::ReadError::Store(err) => err.into(),
    })?;
    let mut body = Vec::new();
    write_consistency_proof(&mut body, &hashes, &checkpoint.root);
    body.push(b'\n');
    Ok(json_bytes(body))
}

fn parse_size(name: &str, value: &str) -> Result<u64, ApiError> {
    let n: i64 = value
        .parse()
        .map_err(|_| ApiError::not_int64(name, "query", value))?;
    u64::try_from(n)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| ApiError::below_minimum(name, "query", 1))
}
