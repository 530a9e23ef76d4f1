//! `/api/v1/log/entries…` (E-04..E-07).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use std::sync::Arc;

use super::models::{entry_id, write_log_entry, EntryUuid, ENTRY_UUID_PATTERN};
use super::shards;
use crate::api::validation::LARGE_JOB_BYTES;
use crate::api::{
    declared_length, json_bytes, query_pairs, query_value, read_body_to_validate, read_json_body,
    ApiError, ApiState,
};
use crate::entries;
use crate::log::{Clock as _, Log, ReadError, SystemClock};
use crate::merkle::{self, Hash};
use crate::storage::Store;

/// Most items one search may name, per array and in total.
const MAX_SEARCH_ITEMS: usize = 10;

/// E-04: validates, appends, and answers once the entry is in a committed batch.
///
/// # Errors
/// 415, 413, 400, 422 for bad requests; 401 without a listed bearer token and
/// 403 outside the write policy (when configured); 409 for a duplicate; 503
/// on pushback.
pub async fn create_entry(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(tokens) = &state.bearer_tokens {
        let authorization = req.headers().get(header::AUTHORIZATION);
        if !tokens.accepts(authorization.map(header::HeaderValue::as_bytes)) {
            return Err(ApiError::Unauthorized);
        }
    }
    let (body, ticket) = read_body_to_validate(&req, payload, &state).await?;
    let body = body.freeze();
    let validation = tracing::info_span!("entry.validate", entry.kind = tracing::field::Empty);
    let job = {
        let (span, state) = (validation.clone(), state.clone());
        move || {
            span.in_scope(|| -> Result<entries::Entry, ApiError> {
                let entry =
                    entries::parse_for_insert(&body, |kind| !state.disabled_kinds.contains(&kind))?;
                // A certificate chain costs signature checks too: in the pool.
                if let Some(policy) = &state.write_policy {
                    policy.check(&entry.signers, SystemClock.now_unix())?;
                }
                Ok(entry)
            })
        }
    };
    let entry = state.validation.run_admitted(ticket, job).await??;
    validation.record("entry.kind", entry.kind.name());
    let leaf = merkle::leaf_hash(&entry.canonical);
    let log = &state.log();
    let location = |id: &str| format!("{}/{id}", req.path());
    let index = log.append(entry).await.map_err(|err| {
        ApiError::from_append(err, |_| {
            let entry_id = entry_id(log.info().tree_id, &leaf);
            ApiError::Duplicate {
                location: location(&entry_id),
                entry_id,
            }
        })
    })?;
    let body = entry_json(log, index, &leaf).await?;
    let id = entry_id(log.info().tree_id, &leaf);
    Ok(HttpResponse::Created()
        // Set by hand: a typed ETag would be quoted, and sigstore-go looks the
        // entry up by the raw header value (E-04).
        .insert_header((header::ETAG, id.as_str()))
        .insert_header((header::LOCATION, location(&id)))
        .content_type("application/json")
        .body(body))
}

/// E-05: `GET /api/v1/log/entries?logIndex=N`.
///
/// # Errors
/// 422 for a missing or malformed index, 404 past the end.
pub async fn get_entry_by_index(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(&req);
    let raw =
        query_value(&pairs, "logIndex").ok_or_else(|| ApiError::required("logIndex", "query"))?;
    let index = parse_index("logIndex", "query", raw)?;
    // A global index: the shard that holds it, and the index in its tree.
    let (log, index) = shards::resolve_index(&state, index).ok_or(ApiError::EntryNotFound)?;
    let leaf = log.leaf_hash(index).await?;
    let leaf = leaf.ok_or(ApiError::EntryNotFound)?;
    let body = entry_json(&log, index, &leaf).await?;
    Ok(json_bytes(body))
}

/// E-06: `GET /api/v1/log/entries/{entryUUID}`.
///
/// # Errors
/// 422 for a malformed ID, 404 when absent.
pub async fn get_entry_by_uuid(
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let uuid = EntryUuid::parse(&path)
        .ok_or_else(|| ApiError::pattern("entryUUID", "path", ENTRY_UUID_PATTERN))?;
    // An 80-hex ID names its shard; a plain UUID is looked for in every
    // shard, the active one first (Rekor's `retrieveLogEntry`).
    for log in shards::for_id(&state, uuid.tree_id) {
        if let Some(index) = log.find_leaf(&uuid.leaf).await? {
            let body = entry_json(&log, index, &uuid.leaf).await?;
            return Ok(json_bytes(body));
        }
    }
    Err(ApiError::EntryNotFound)
}

/// E-07: `POST /api/v1/log/entries/retrieve`. Results by UUID, then by
/// proposed entry, then by index; missing items are left out.
///
/// # Errors
/// 422 over the limits or for malformed items, 400 for an invalid proposed entry.
pub async fn search_log_query(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    // A small query is parsed here, so that searches by UUID or index keep
    // answering while validation is busy; a large one would hold the worker
    // as long as validating it, so it waits its turn in the large lane.
    let large = declared_length(&req).is_none_or(|n| n >= LARGE_JOB_BYTES);
    let query: Value = if large {
        let (body, ticket) = read_body_to_validate(&req, payload, &state).await?;
        let body = body.freeze();
        state
            .validation
            .run_admitted(ticket, move || parse_search_query(&body))
            .await??
    } else {
        parse_search_query(&read_json_body(&req, payload, &state).await?)?
    };
    let Value::Object(query) = query else {
        return Err(ApiError::BadRequest(
            "search query must be a JSON object".to_owned(),
        ));
    };
    let uuids = search_array(&query, "entryUUIDs")?;
    let proposals = search_array(&query, "entries")?;
    let indexes = search_array(&query, "logIndexes")?;
    if uuids.len() + proposals.len() + indexes.len() > MAX_SEARCH_ITEMS {
        return Err(ApiError::Unprocessable {
            code: 422,
            message: format!("more than max allowed {MAX_SEARCH_ITEMS} entries in request"),
        });
    }
    let mut found: Vec<(Arc<Log<Store>>, u64, Hash)> = Vec::new();
    // Each leaf wanted, with the tree its 80-hex ID names (`None`: any).
    let mut wanted: Vec<(Hash, Option<u64>)> = Vec::new();
    for (i, item) in uuids.iter().enumerate() {
        let uuid = item.as_str().and_then(EntryUuid::parse).ok_or_else(|| {
            ApiError::pattern(&format!("entryUUIDs.{i}"), "body", ENTRY_UUID_PATTERN)
        })?;
        if uuid.tree_id == Some(0) {
            return Err(ApiError::BadRequest(format!(
                "invalid entryID {}",
                item.as_str().unwrap_or("")
            )));
        }
        wanted.push((uuid.leaf, uuid.tree_id));
    }
    let proposed = proposal_leaves(&state, proposals).await?;
    wanted.extend(proposed.into_iter().map(|leaf| (leaf, None)));
    // One look-up per shard for every UUID and proposed entry it may hold;
    // each is answered from the first shard that has it (active first).
    let mut located: Vec<Option<(Arc<Log<Store>>, u64)>> = vec![None; wanted.len()];
    for shard in shards::all(&state) {
        let tree = u64::try_from(shard.info().tree_id).ok();
        let (positions, leaves): (Vec<usize>, Vec<Hash>) = wanted
            .iter()
            .enumerate()
            .filter(|(i, (_, named))| {
                located[*i].is_none() && named.is_none_or(|t| Some(t) == tree)
            })
            .map(|(i, (leaf, _))| (i, *leaf))
            .unzip();
        if leaves.is_empty() {
            continue;
        }
        let indexes_found = shard.view().find_leaves(&leaves).await?;
        for (position, index) in positions.into_iter().zip(indexes_found) {
            located[position] = index.map(|index| (Arc::clone(&shard), index));
        }
    }
    for ((leaf, _), at) in wanted.into_iter().zip(located) {
        if let Some((shard, index)) = at {
            found.push((shard, index, leaf));
        }
    }
    for (i, item) in indexes.iter().enumerate() {
        let name = format!("logIndexes.{i}");
        let index = match item {
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| ApiError::not_int64(&name, "body", &n.to_string()))?,
            other => return Err(ApiError::not_int64(&name, "body", &other.to_string())),
        };
        let index = u64::try_from(index).map_err(|_| ApiError::below_minimum(&name, "body", 0))?;
        let Some((shard, index)) = shards::resolve_index(&state, index) else {
            continue;
        };
        if let Some(leaf) = shard.leaf_hash(index).await? {
            found.push((shard, index, leaf));
        }
    }
    // A JSON array of the same one-key maps the GET endpoints serve.
    let mut results = vec![b'['];
    for (i, (shard, index, leaf)) in found.into_iter().enumerate() {
        if i > 0 {
            results.push(b',');
        }
        let entry = entry_json(&shard, index, &leaf).await?;
        results.extend_from_slice(entry.trim_ascii_end());
    }
    results.extend_from_slice(b"]\n");
    Ok(json_bytes(results))
}

/// The leaf hashes of proposed entries, validated (signatures checked) on
/// the validation pool as a create's are.
async fn proposal_leaves(state: &ApiState, proposals: &[Value]) -> Result<Vec<Hash>, ApiError> {
    if proposals.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<Vec<u8>> = proposals
        .iter()
        .map(|item| serde_json::to_vec(item).expect("value serialises"))
        .collect();
    let body_bytes = items.iter().map(Vec::len).sum();
    state
        .validation
        .run(body_bytes, move || {
            items
                .iter()
                .map(|bytes| {
                    let entry = entries::parse_search(bytes)
                        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                    Ok(merkle::leaf_hash(&entry.canonical))
                })
                .collect()
        })
        .await?
}

/// The search query as JSON, bounded before it becomes a `Value` (32 bytes
/// per element, whatever its text).
fn parse_search_query(body: &[u8]) -> Result<Value, ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        ApiError::BadRequest(format!("couldn't parse search query: {e}"))
    };
    entries::json_limits::check(body).map_err(|e| failed(&e))?;
    serde_json::from_slice(body).map_err(|e| failed(&e))
}

/// One search array; absent, null and empty are the same.
fn search_array<'a>(
    query: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a [Value], ApiError> {
    match query.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) if items.len() > MAX_SEARCH_ITEMS => {
            Err(ApiError::Unprocessable {
                code: 611,
                message: format!("{name} in body should have at most {MAX_SEARCH_ITEMS} items"),
            })
        }
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(ApiError::Unprocessable {
            code: 601,
            message: format!(
                "{name} in body must be of type array: {:?}",
                entries::json_type(other)
            ),
        }),
    }
}

fn parse_index(name: &str, place: &str, raw: &str) -> Result<u64, ApiError> {
    let n: i64 = raw
        .parse()
        .map_err(|_| ApiError::not_int64(name, place, raw))?;
    u64::try_from(n).map_err(|_| ApiError::below_minimum(name, place, 0))
}

/// The serialised one-key LogEntry map for the entry at `index` of shard
/// `log`'s tree, with its proof against that shard's latest (for a frozen
/// shard: final) checkpoint.
async fn entry_json(log: &Log<Store>, index: u64, leaf: &Hash) -> Result<Vec<u8>, ApiError> {
    let entry = log.entry(index).await?.ok_or(ApiError::EntryNotFound)?;
    let proof = log.inclusion_proof(index).await.map_err(|err| match err {
        ReadError::Proof(_) => ApiError::EntryNotFound,
        ReadError::Store(err) => err.into(),
    })?;
    let mut bytes = Vec::new();
    write_log_entry(&mut bytes, log.info(), &entry, leaf, &proof);
    bytes.push(b'\n');
    Ok(bytes)
}
