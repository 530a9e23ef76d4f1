//! The outermost middleware: what every request goes through before routing.
//!
//! - Path cleaning (G-02), as actix's `NormalizePath::trim()`: repeated
//!   slashes merge and a trailing slash goes (`/entries/retrieve/` is what
//!   sigstore-python posts to). Nearly every path is clean already, so it
//!   looks before it allocates, where actix runs a regex on every request.
//! - The request span ([`crate::telemetry::request_span`]), entered while the
//!   request is handled, and its status and error once it is answered.
//! - A log line for each failed request: a warning for 4xx, an error for 5xx,
//!   with the error's details (a traced request's line carries its trace ID).
//! - Metrics: every request counted by route pattern, method and status, and
//!   timed by route.
//! - No-cache headers on every GET answer (G-09), as Rekor sends them.
//! - A body answered before it was read is drained only within the drain
//!   budget ([`super::unread`]); past it the connection stops reading.
//!
//! It is one hand-written middleware rather than `tracing-actix-web` and three
//! `from_fn` ones: those cost a replica about a sixth of its read throughput
//! (a boxed future each, two boxed extensions, a random request ID and a body
//! wrapper per request) for features tlog does not use.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, Error, ResponseError};
use tracing::Span;

use super::unread::Watch;
use super::{ApiState, RouteLabel};
use crate::telemetry;

/// Sent with every GET answer (G-09).
const NO_CACHE: [(&str, &str); 4] = [
    (
        "cache-control",
        "no-cache, no-store, no-transform, must-revalidate, private, max-age=0",
    ),
    ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
    ("pragma", "no-cache"),
    ("x-accel-expires", "0"),
];

/// The middleware; wrap it last, so that it runs first.
pub struct Outermost;

impl<S, B> Transform<S, ServiceRequest> for Outermost
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = OutermostService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(OutermostService { service }))
    }
}

/// [`Outermost`] around the rest of the app.
pub struct OutermostService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for OutermostService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Answer<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        clean_request_path(&mut req);
        let unread = Watch::start(&mut req);
        let span = telemetry::request_span(&req);
        let inner = span.in_scope(|| self.service.call(req));
        Answer {
            inner,
            span,
            started: Instant::now(),
            unread,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, polled inside the request span.
    pub struct Answer<F> {
        #[pin]
        inner: F,
        span: Span,
        started: Instant,
        unread: Option<Watch>,
    }
}

impl<F, B> Future for Answer<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut outcome = std::task::ready!(this.inner.poll(cx));
        let (status, error) = match &outcome {
            Ok(response) => (
                response.status(),
                response.response().error().map(Error::as_response_error),
            ),
            Err(error) => {
                let error = error.as_response_error();
                (error.status_code(), Some(error))
            }
        };
        telemetry::end_request_span(this.span, status, error);
        if let Some(error) = error {
            log_failure(status, error);
        }
        if let Ok(response) = &mut outcome {
            if let Some(watch) = this.unread.take() {
                cut_if_over_budget(watch, response.request());
            }
            count(response, *this.started);
            // A handler that set its own Cache-Control (the immutable
            // tiles of a v2 log, R-06) keeps it.
            if response.request().method() == Method::GET
                && !response
                    .headers()
                    .contains_key(actix_web::http::header::CACHE_CONTROL)
            {
                let headers = response.headers_mut();
                for (name, value) in NO_CACHE {
                    headers.insert(
                        HeaderName::from_static(name),
                        HeaderValue::from_static(value),
                    );
                }
            }
        }
        Poll::Ready(outcome)
    }
}

/// Ends the request's body early when draining it would exceed the budget
/// ([`super::unread`]).
fn cut_if_over_budget(watch: Watch, request: &actix_web::HttpRequest) {
    let Some(state) = request.app_data::<web::Data<ApiState>>() else {
        return;
    };
    if watch.answered(request, &state.unread_drain, state.max_request_body) {
        state.log().metrics().unread_bodies_cut.inc();
    }
}

/// Counts the request by route pattern (a fixed set) and status, and times it.
fn count<B>(response: &ServiceResponse<B>, started: Instant) {
    let request = response.request();
    let Some(state) = request.app_data::<web::Data<ApiState>>() else {
        return;
    };
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = request
        .app_data::<RouteLabel>()
        .map_or("unmatched", |label| label.0);
    let log = state.log();
    let metrics = log.metrics();
    metrics
        .http_requests
        .with_label_values(&[route, method, response.status().as_str()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
}

fn log_failure(status: StatusCode, error: &dyn ResponseError) {
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), "request failed: {error:?}");
    } else {
        tracing::warn!(status = status.as_u16(), "request refused: {error:?}");
    }
}

/// Rewrites the request's path if [`clean_path`] changes it.
fn clean_request_path(req: &mut ServiceRequest) {
    let Some(clean) = clean_path(req.path()) else {
        return;
    };
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
