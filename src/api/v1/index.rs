//! `POST /api/v1/index/retrieve` (E-08): entry IDs by artifact hash, public
//! key fingerprint, e-mail or certificate subject.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde::Deserialize;

use std::sync::Arc;

use super::models::entry_id;
use super::shards;
use crate::api::{json_response, read_json_body, ApiError, ApiState};
use crate::entries::{self, pki};
use crate::log::Log;
use crate::storage::Store;
use crate::storage::{KeyMatch, LogReader};

/// Most entry IDs one search answers: the newest matches. Rekor returns every
/// match and has no paging (rekor-v1.md X-05); a key shared by a million
/// entries must not cost a million-row response.
pub const MAX_INDEX_RESULTS: usize = 1000;

const HASH_PATTERN: &str =
    "^(sha512:)?[0-9a-fA-F]{128}$|^(sha256:)?[0-9a-fA-F]{64}$|^(sha1:)?[0-9a-fA-F]{40}$";
const KEY_FORMATS: &[&str] = &["pgp", "x509", "minisign", "ssh", "tuf"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchIndex {
    hash: Option<String>,
    public_key: Option<SearchKey>,
    email: Option<String>,
    subject: Option<String>,
    operator: Option<String>,
}

#[derive(Deserialize)]
struct SearchKey {
    format: Option<String>,
    content: Option<String>,
}

/// E-08: entry IDs matching every (`and`) or any (`or`, the default)
/// criterion, in log order; the newest [`MAX_INDEX_RESULTS`] if there are more.
///
/// # Errors
/// 422 for schema errors, 400 for a key that does not parse, 503 if storage fails.
pub async fn search_index(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_json_body(&req, payload, &state).await?;
    let query: SearchIndex = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("couldn't parse search index query: {e}")))?;
    let keys = lookup_keys(&query)?;
    let matching = match query.operator.as_deref() {
        None | Some("or") => KeyMatch::Any,
        Some("and") => KeyMatch::All,
        Some(_) => return Err(enum_error("operator", &["and", "or"])),
    };
    // Each shard keeps its own index keys: the newest matches of every
    // shard, by global index, then the newest of those.
    let mut found: Vec<(u64, Arc<Log<Store>>, u64)> = Vec::new();
    for shard in shards::all(&state) {
        let indexes = shard
            .store()
            .search(&keys, matching, MAX_INDEX_RESULTS)
            .await?;
        let offset = shard.info().index_offset;
        found.extend(
            indexes
                .into_iter()
                .map(|index| (offset + index, Arc::clone(&shard), index)),
        );
    }
    found.sort_unstable_by_key(|(global, _, _)| *global);
    let found = found.split_off(found.len().saturating_sub(MAX_INDEX_RESULTS));
    let mut ids: Vec<String> = Vec::with_capacity(found.len());
    for (_, shard, index) in found {
        if let Some(leaf) = shard.leaf_hash(index).await? {
            ids.push(entry_id(shard.info().tree_id, &leaf));
        }
    }
    Ok(json_response(StatusCode::OK, &ids))
}

/// The lowercased index keys a query names, validated as Rekor's schema does.
fn lookup_keys(query: &SearchIndex) -> Result<Vec<String>, ApiError> {
    let mut keys = Vec::new();
    if let Some(hash) = &query.hash {
        let key = pki::normalize_hash_search_key(hash)
            .ok_or_else(|| ApiError::pattern("hash", "body", HASH_PATTERN))?;
        keys.push(key);
    }
    if let Some(key) = &query.public_key {
        keys.push(public_key_key(key)?);
    }
    if let Some(email) = &query.email {
        if !is_email(email) {
            return Err(ApiError::Unprocessable {
                code: 601,
                message: format!("email in body must be of type email: {email:?}"),
            });
        }
        keys.push(email.to_lowercase());
    }
    if let Some(subject) = &query.subject {
        if subject.is_empty() || subject.chars().count() > 512 {
            return Err(ApiError::Unprocessable {
                code: 603,
                message: "subject in body should be between 1 and 512 characters".to_owned(),
            });
        }
        keys.push(subject.to_lowercase());
    }
    Ok(keys)
}

fn public_key_key(key: &SearchKey) -> Result<String, ApiError> {
    let format = key
        .format
        .as_deref()
        .ok_or_else(|| ApiError::required("publicKey.format", "body"))?;
    if !KEY_FORMATS.contains(&format) {
        return Err(enum_error("publicKey.format", KEY_FORMATS));
    }
    let unparsable = || ApiError::BadRequest("public key provided could not be parsed".to_owned());
    let content = key
        .content
        .as_deref()
        .ok_or_else(|| ApiError::required("publicKey.content", "body"))?;
    let pem = BASE64_STANDARD.decode(content).map_err(|_| unparsable())?;
    // Each format hashes its own canonical key, as `rekord` indexes it.
    match format {
        "x509" => pki::public_key_search_key(&pem).map_err(|_| unparsable()),
        "ssh" => entries::ssh::search_key(&pem).map_err(|_| unparsable()),
        "minisign" => entries::minisign::search_key(&pem).map_err(|_| unparsable()),
        "pgp" => entries::pgp::search_key(&pem).map_err(|_| unparsable()),
        // tuf keys only appear in a kind this log does not store.
        _ => Err(unparsable()),
    }
}

fn enum_error(name: &str, values: &[&str]) -> ApiError {
    ApiError::Unprocessable {
        code: 606,
        message: format!("{name} in body should be one of [{}]", values.join(" ")),
    }
}

/// A plain `local@domain` check, enough to refuse what cannot be an address.
fn is_email(value: &str) -> bool {
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !value.contains(char::is_whitespace)
    })
}
