//! HTTP: every route in one chain, the request plumbing they share, and (in
//! `error`) the single mapping from errors to Rekor's status codes and bodies.

pub mod byte_budget;
pub mod error;
pub mod health;
pub mod rate_limit;
pub mod request;
pub mod unread;
pub mod v1;
pub mod v2;
pub mod validation;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
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
    /// Longest time a client may take to send a request body.
    pub body_timeout: Duration,
    /// Where entry validation runs, off the HTTP workers.
    pub validation: Arc<validation::ValidationPool>,
    /// Which signers may write; `None` admits every valid entry.
    pub write_policy: Option<crate::policy::WritePolicy>,
    /// Tokens a create must carry; `None` asks for none.
    pub bearer_tokens: Option<crate::policy::BearerTokens>,
    /// What may be spent draining bodies answered before they were read.
    pub unread_drain: unread::DrainBudget,
    /// The Rekor v2 log, when `v2.key_file` is set.
    v2: Option<Arc<Log<Store>>>,
    /// The v2 logs frozen by `tlog log rotate --v2`, oldest first.
    frozen_v2: Vec<Arc<Log<Store>>>,
    /// Witness cosignatures of the v2 log, when `v2.witness_policy` is set.
    witnessing: Option<Arc<crate::witness::Witnessing>>,
    /// The frozen v1 shards, oldest first, read-only (`tlog log rotate`).
    frozen: Vec<Arc<Log<Store>>>,
    /// A replica's verified v2 tiles directory (`replica.v2_tiles`).
    tiles_dir: Option<Arc<crate::storage::tiles_dir::TilesDir>>,
}

/// Body timeout of a state built with [`ApiState::new`] alone.
const DEFAULT_BODY_TIMEOUT: Duration =
    Duration::from_millis(crate::config::DEFAULT_REQUEST_BODY_TIMEOUT_MS);

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
            body_timeout: DEFAULT_BODY_TIMEOUT,
            validation: Arc::new(validation::ValidationPool::new(1, 0)),
            write_policy: None,
            bearer_tokens: None,
            unread_drain: unread::DrainBudget::new(0),
            v2: None,
            frozen_v2: Vec::new(),
            witnessing: None,
            frozen: Vec::new(),
            tiles_dir: None,
        }
    }

    /// The same state, serving the verified v2 tiles directory `dir` as the
    /// v2 log (a replica's; a v2 log of the state's own comes first).
    #[must_use]
    pub fn with_tiles_dir(mut self, dir: Option<Arc<crate::storage::tiles_dir::TilesDir>>) -> Self {
        self.tiles_dir = dir;
        self
    }

    /// The replica's verified v2 tiles directory, if it serves one.
    #[must_use]
    pub fn tiles_dir(&self) -> Option<&Arc<crate::storage::tiles_dir::TilesDir>> {
        self.tiles_dir.as_ref()
    }

    /// The same state, serving `frozen` as the v1 log's frozen shards
    /// (oldest first) beside the active one.
    #[must_use]
    pub fn with_frozen_shards(mut self, frozen: Vec<Arc<Log<Store>>>) -> Self {
        self.frozen = frozen;
        self
    }

    /// The frozen v1 shards, oldest first.
    #[must_use]
    pub fn frozen_shards(&self) -> &[Arc<Log<Store>>] {
        &self.frozen
    }

    /// The same state, draining unread bodies at most `bytes_per_second`
    /// (0: all of them).
    #[must_use]
    pub fn with_unread_drain(mut self, bytes_per_second: u64) -> Self {
        self.unread_drain = unread::DrainBudget::new(bytes_per_second);
        self
    }

    /// The same state, serving `log` as the Rekor v2 log.
    #[must_use]
    pub fn with_v2(mut self, log: Option<Arc<Log<Store>>>) -> Self {
        self.v2 = log;
        self
    }

    /// The same state, with the v2 log's checkpoints witnessed by `witnessing`.
    #[must_use]
    pub fn with_witnessing(mut self, witnessing: Option<Arc<crate::witness::Witnessing>>) -> Self {
        self.witnessing = witnessing;
        self
    }

    /// Witnessing of the v2 log, if a policy is configured.
    #[must_use]
    pub fn witnessing(&self) -> Option<Arc<crate::witness::Witnessing>> {
        self.witnessing.clone()
    }

    /// The Rekor v2 log, if one is configured.
    #[must_use]
    pub fn v2_log(&self) -> Option<Arc<Log<Store>>> {
        self.v2.clone()
    }

    /// The same state, serving `frozen` as the frozen v2 logs (read-only,
    /// under `/logs/<origin>/`).
    #[must_use]
    pub fn with_frozen_v2(mut self, frozen: Vec<Arc<Log<Store>>>) -> Self {
        self.frozen_v2 = frozen;
        self
    }

    /// The frozen v2 logs, oldest first.
    #[must_use]
    pub fn frozen_v2(&self) -> &[Arc<Log<Store>>] {
        &self.frozen_v2
    }

    /// The v2 log of `origin`, active or frozen.
    #[must_use]
    pub fn v2_log_of(&self, origin: &str) -> Option<Arc<Log<Store>>> {
        self.v2
            .iter()
            .chain(&self.frozen_v2)
            .find(|log| log.info().origin == origin)
            .cloned()
    }

    /// The same state, with bodies bounded to `timeout`.
    #[must_use]
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The same state, validating entries on `pool`.
    #[must_use]
    pub fn with_validation(mut self, pool: Arc<validation::ValidationPool>) -> Self {
        self.validation = pool;
        self
    }

    /// The same state with a write policy and bearer tokens (each optional).
    #[must_use]
    pub fn with_write_access(
        mut self,
        policy: Option<crate::policy::WritePolicy>,
        tokens: Option<crate::policy::BearerTokens>,
    ) -> Self {
        self.write_policy = policy;
        self.bearer_tokens = tokens;
        self
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

/// Registers the Rekor v1 API, the Rekor v2 API with its tiles (404 unless
/// a v2 log is configured) and the auxiliary routes on an actix `App`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    api_routes(cfg, web::post().to(v1::entries::create_entry));
    cfg.service(resource("/api/v2/log/entries", "POST").route(web::post().to(v2::create_entry)));
    v2_read_routes(cfg);
}

/// The Rekor v2 reads: the checkpoint and tiles of the v2 log (or of the
/// replica's verified tiles directory), and of every v2 log by its origin.
fn v2_read_routes(cfg: &mut web::ServiceConfig) {
    for path in ["/checkpoint", "/api/v2/checkpoint"] {
        cfg.service(resource(path, "GET").route(web::get().to(v2::get_checkpoint)));
    }
    for path in ["/tile/{path:.*}", "/api/v2/tile/{path:.*}"] {
        cfg.service(resource(path, "GET").route(web::get().to(v2::get_tile)));
    }
    // Every v2 log by its origin, the active one and those a rotation froze.
    cfg.service(
        resource("/logs/{origin}/checkpoint", "GET").route(web::get().to(v2::get_checkpoint_of)),
    );
    cfg.service(
        resource("/logs/{origin}/tile/{path:.*}", "GET").route(web::get().to(v2::get_tile_of)),
    );
}

/// The read-only replica's routes: the reads, with create refused 405 before
/// any of its body is read, so no write can cost the replica work.
pub fn read_routes(cfg: &mut web::ServiceConfig) {
    api_routes(cfg, web::post().to(refuse_write));
    v2_read_routes(cfg);
}

fn api_routes(cfg: &mut web::ServiceConfig, create: actix_web::Route) {
    use v1::{entries, index, log};
    cfg.service(resource("/api/v1/log", "GET").route(web::get().to(log::get_log_info)))
        .service(resource("/api/v1/log/publicKey", "GET").route(web::get().to(log::get_public_key)))
        .service(resource("/api/v1/log/proof", "GET").route(web::get().to(log::get_log_proof)))
        .service(
            resource("/api/v1/log/entries", "GET, POST")
                .route(create)
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

async fn refuse_write() -> Result<HttpResponse, ApiError> {
    Err(ApiError::ReadOnly)
}

/// Middleware for the whole API: outermost path cleaning (G-02), the request
/// span (issue 5), metrics and no-cache headers on GET (G-09), all in
/// [`request`]; then CORS (G-10), the optional rate limit, and a JSON 404 for
/// unknown paths (G-07).
pub fn app_with_api(
    state: web::Data<ApiState>,
    rate_limit: Option<&rate_limit::RateLimit>,
    routes: fn(&mut web::ServiceConfig),
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
        .wrap(rate_limit::middleware(rate_limit))
        .wrap(cors)
        .wrap(request::Outermost)
}

/// The route pattern of the resource that answered, for metrics: cheaper
/// than `HttpRequest::match_pattern`, which matches the path again.
pub struct RouteLabel(pub &'static str);

fn resource(path: &'static str, allowed: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(RouteLabel(path))
        .default_service(web::to(move |req: HttpRequest| async move {
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

/// [`read_json_body`] for a body that will be validated in the pool. Its
/// place is taken first, by its declared length (an undeclared one counts
/// as large): when that lane is full it answers 503 + `Retry-After` before
/// reading a byte, and a large body holds its place while it arrives, so no
/// more large bodies are in memory at once than the large lane can take.
///
/// # Errors
/// As [`read_json_body`], and [`ApiError::Pushback`] when the lane is full.
pub async fn read_body_to_validate(
    req: &HttpRequest,
    payload: web::Payload,
    state: &ApiState,
) -> Result<(web::BytesMut, validation::Ticket), ApiError> {
    // A head that is refused anyway takes no place and spends no budget.
    check_json_head(req, state)?;
    let declared = declared_length(req);
    let ticket = state.validation.admit(declared)?;
    let body = read_json_body(req, payload, state).await?;
    if declared.is_none() {
        state.validation.charge_large_bytes(body.len());
    }
    Ok((body, ticket))
}

/// The request's `Content-Length`, if it has a valid one.
#[must_use]
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
}

/// Reads a POST body: `application/json` only (G-03), at most
/// `state.max_request_body` bytes (G-12), within `state.body_timeout`.
///
/// # Errors
/// 415 for another media type, 413 over the limit, 408 (closing the
/// connection) when the body takes too long, 400 if the stream breaks.
pub async fn read_json_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &ApiState,
) -> Result<web::BytesMut, ApiError> {
    check_json_head(req, state)?;
    let limit = state.max_request_body;
    let declared = declared_length(req);
    // The head timeout ends once the head is in; without this a client that
    // trickles its body would hold the connection and its buffer forever.
    tokio::time::timeout(state.body_timeout, read_body(payload, limit, declared))
        .await
        .map_err(|_| ApiError::BodyTimeout(state.body_timeout))?
}

/// What the head alone can refuse: another media type than JSON (415), or a
/// `Content-Length` over the limit (413).
fn check_json_head(req: &HttpRequest, state: &ApiState) -> Result<(), ApiError> {
    let media_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map_or("application/octet-stream", |v| v.to_str().unwrap_or(""));
    let essence = media_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType(media_type.to_owned()));
    }
    let limit = state.max_request_body;
    if declared_length(req).is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(())
}

async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    declared: Option<usize>,
) -> Result<web::BytesMut, ApiError> {
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

/// Query parameters as (name, value) pairs, percent-decoded as
/// `application/x-www-form-urlencoded`: bad escapes stay as written and
/// invalid UTF-8 becomes U+FFFD, so each handler's checks of the value are
/// what refuse malformed input. Borrowed unless decoded.
#[must_use]
pub fn query_pairs(req: &HttpRequest) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(req.query_string().as_bytes()).collect()
}

/// The first non-empty value of `name` (empty counts as absent, X-07).
#[must_use]
pub fn query_value<'a>(pairs: &'a [(Cow<'_, str>, Cow<'_, str>)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_ref())
}

/// A 200 whose JSON body is already written, newline included (G-06).
#[must_use]
pub fn json_bytes(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
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
