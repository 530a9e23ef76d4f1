//! HTTP: every route in one chain, the request plumbing they share, and (in
//! `error`) the single mapping from errors to Rekor's status codes and bodies.

pub mod error;
pub mod health;
pub mod rate_limit;
pub mod v1;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

pub use error::ApiError;

use crate::log::Log;
use crate::storage::Store;

/// What every handler shares.
pub struct ApiState {
    /// The log; a replica swaps in a newer snapshot at run time.
    log: RwLock<Arc<Log<Store>>>,
    /// Largest accepted request body, in bytes.
    pub max_request_body: usize,
    /// Kinds refused on create (reads and search still serve them).
    pub disabled_kinds: Vec<crate::entries::Kind>,
    /// Whether the server can answer from a loaded, verified log (`/readyz`).
    ready: AtomicBool,
}

impl ApiState {
    /// State for `log`, ready to serve.
    #[must_use]
    pub fn new(
        log: Arc<Log<Store>>,
        max_request_body: usize,
        disabled_kinds: Vec<crate::entries::Kind>,
    ) -> Self {
        Self {
            log: RwLock::new(log),
            max_request_body,
            disabled_kinds,
            ready: AtomicBool::new(true),
        }
    }

    /// The log being served; a handler takes it once and uses that snapshot.
    #[must_use]
    pub fn log(&self) -> Arc<Log<Store>> {
        Arc::clone(&self.log.read())
    }

    /// Serves `log` from now on (a replica's reload).
    pub fn replace_log(&self, log: Arc<Log<Store>>) {
        *self.log.write() = log;
    }

    /// Whether `/readyz` answers 200.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Sets what `/readyz` answers.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

/// Registers the Rekor v1 API and the auxiliary routes on an actix `App`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use v1::{entries, index, log};
    cfg.service(resource("/api/v1/log", "GET").route(web::get().to(log::get_log_info)))
        .service(resource("/api/v1/log/publicKey", "GET").route(web::get().to(log::get_public_key)))
        .service(resource("/api/v1/log/proof", "GET").route(web::get().to(log::get_log_proof)))
        .service(
            resource("/api/v1/log/entries", "GET, POST")
                .route(web::post().to(entries::create_entry))
                .route(web::get().to(entries::get_entry_by_index)),
        )
        .service(
            resource("/api/v1/log/entries/retrieve", "POST")
                .route(web::post().to(entries::search_log_query)),
        )
        .service(
            resource("/api/v1/log/entries/{entryUUID}", "GET")
                .route(web::get().to(entries::get_entry_by_uuid)),
        )
        .service(
            resource("/api/v1/index/retrieve", "POST").route(web::post().to(index::search_index)),
        )
        .service(resource("/ping", "GET").route(web::get().to(ping)))
        .service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)));
}

/// Middleware for the whole API: path cleaning (G-02), CORS (G-10), no-cache
/// headers on GET (G-09), a JSON 404 for unknown paths (G-07), and outermost
/// a span per request (issue 5).
pub fn app_with_api(
    state: web::Data<ApiState>,
    rate_limit: Option<&rate_limit::RateLimit>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors = Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods([Method::GET, Method::POST, Method::HEAD])
        .allowed_headers([header::ORIGIN, header::ACCEPT, header::CONTENT_TYPE])
        .allowed_header("X-Requested-With");
    actix_web::App::new()
        .app_data(state)
        .configure(routes)
        .default_service(web::to(path_not_found))
        .wrap(from_fn(no_cache_on_get))
        .wrap(rate_limit::middleware(rate_limit))
        .wrap(from_fn(record_metrics))
        .wrap(cors)
        .wrap(from_fn(normalize_path))
        .wrap(tracing_actix_web::TracingLogger::<
            crate::telemetry::RequestSpan,
        >::new())
}

fn resource(path: &str, allowed: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allowed,
        })
    }))
}

async fn path_not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::PathNotFound(req.path().to_owned()))
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body(".")
}

/// Counts every request by route pattern (a fixed set) and status.
async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let state = req.app_data::<web::Data<ApiState>>().cloned();
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.call(req).await?;
    if let Some(state) = state {
        let route = response.request().match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        let status = response.status();
        let log = state.log();
        let metrics = log.metrics();
        metrics
            .http_requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        metrics
            .http_duration
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// Path cleaning (G-02), as actix's `NormalizePath::trim()`: repeated
/// slashes merge and a trailing slash goes (`/entries/retrieve/` is what
/// sigstore-python posts to). actix's middleware runs a regex replace on every
/// request; nearly every path is clean already, so this looks first.
async fn normalize_path(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(clean) = clean_path(req.path()) {
        let mut parts = req.head().uri.clone().into_parts();
        let path_and_query = match parts.path_and_query.as_ref().and_then(|pq| pq.query()) {
            Some(query) => format!("{clean}?{query}"),
            None => clean,
        };
        // A merged path of valid characters is still a valid path.
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = actix_web::http::Uri::from_parts(parts) {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}

/// The cleaned path, if `path` needs cleaning.
fn clean_path(path: &str) -> Option<String> {
    let trailing = path.len() > 1 && path.ends_with('/');
    if path.is_empty() || (!trailing && !path.contains("//")) {
        return None;
    }
    let mut clean = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        clean.push('/');
        clean.push_str(segment);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    (clean != path).then_some(clean)
}

async fn no_cache_on_get(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_get = req.method() == Method::GET;
    let mut response = next.call(req).await?;
    if is_get {
        let headers = response.headers_mut();
        for (name, value) in [
            (
                "cache-control",
                "no-cache, no-store, no-transform, must-revalidate, private, max-age=0",
            ),
            ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("pragma", "no-cache"),
            ("x-accel-expires", "0"),
        ] {
            headers.insert(
                header::HeaderName::from_static(name),
                header::HeaderValue::from_static(value),
            );
        }
    }
    Ok(response)
}

/// Reads a POST body: `application/json` only (G-03), at most `limit` bytes (G-12).
///
/// # Errors
/// 415 for another media type, 413 over the limit, 400 if the stream breaks.
pub async fn read_json_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let media_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map_or("application/octet-stream", |v| v.to_str().unwrap_or(""));
    let essence = media_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType(media_type.to_owned()));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("couldn't read request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Query parameters as (name, value) pairs. Malformed encoding is a 400.
///
/// # Errors
/// 400 when the query string is not `application/x-www-form-urlencoded`.
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("couldn't parse query string: {e}")))
}

/// The first non-empty value of `name` (empty counts as absent, X-07).
#[must_use]
pub fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// A compact JSON response followed by a newline (G-06).
pub fn json_response(
    status: actix_web::http::StatusCode,
    value: &impl serde::Serialize,
) -> HttpResponse {
    let mut body = serde_json::to_vec(value).expect("response serialises");
    body.push(b'\n');
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::clean_path;

    #[test]
    fn paths_are_cleaned_like_normalize_path_trim() {
        for (path, clean) in [
            ("/api/v1/log", None),
            ("/", None),
            ("", None),
            (
                "/api/v1/log/entries/retrieve/",
                Some("/api/v1/log/entries/retrieve"),
            ),
            ("//api//v1///log", Some("/api/v1/log")),
            ("/api/v1/log//", Some("/api/v1/log")),
            ("//", Some("/")),
            ("///", Some("/")),
        ] {
            assert_eq!(clean_path(path).as_deref(), clean, "{path:?}");
        }
    }
}
