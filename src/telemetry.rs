//! Telemetry, in one place: the `tracing` subscriber that writes logs, and the
//! OpenTelemetry pipeline that exports spans over OTLP.
//!
//! - Logs go to stderr: JSON lines when stderr is not a terminal, pretty text
//!   when it is. The filter comes from `RUST_LOG`; unset, blank or invalid,
//!   it is `info` (see [`log_filter`]). A line written inside a span carries
//!   that span's trace ID (JSON: `openTelemetry.traceId`/`spanId`; pretty: a
//!   `trace_id=` prefix).
//! - Spans always get OpenTelemetry IDs, so logs and `traceparent` propagation
//!   work without a collector. They are exported over OTLP/gRPC only when an
//!   endpoint is configured: the `otlp_endpoint` config key, else
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`.
//!   The SDK reads the other standard variables itself (`OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
//!   `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`).
//! - A request gets a span when someone can use it ([`request_span`]): when
//!   spans are exported, when the request carries a W3C `traceparent` (which
//!   becomes the span's parent, so its log lines carry the caller's trace
//!   ID), or when `tlog` logs at debug level. Otherwise its trace ID would be
//!   made up and known to no collector, and the span would cost a replica a
//!   third of its read throughput.
//!
//! Span names and fields form a fixed vocabulary; no span records an entry
//! body, a key, or a database URL.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Instrumentation scope of every tlog span.
const TRACER_NAME: &str = "tlog";
/// `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "tlog";
/// Crates whose own spans must not be exported: the exporter's transport would
/// otherwise trace itself (and at `debug`, without end).
const UNEXPORTED_TARGETS: [&str; 6] = ["h2", "hyper", "tonic", "tower", "opentelemetry", "sqlx"];

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter refused its configuration.
    #[error("couldn't build the OTLP exporter: {0}; hint: check otlp_endpoint and the OTEL_EXPORTER_OTLP_* variables")]
    Exporter(String),
    /// tlog exports over gRPC only.
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0} is not supported; hint: tlog exports OTLP over gRPC, use `grpc` and the collector's gRPC port (4317)")]
    Protocol(String),
    /// A global subscriber was already installed (e.g. `init` called twice).
    #[error("couldn't install the tracing subscriber: {0}")]
    Subscriber(String),
}

/// Keeps the trace pipeline alive. [`TelemetryGuard::shutdown`] (or dropping
/// it) flushes the spans still queued and stops the exporter.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    /// The exporter's own runtime, so that flushing never waits on the runtime
    /// that serves requests (a current-thread runtime would deadlock).
    exporter_runtime: Option<tokio::runtime::Runtime>,
}

/// Installs the global subscriber and, when an OTLP endpoint is configured,
/// the span exporter. `otlp_endpoint` (config key `otlp_endpoint`) takes
/// precedence over the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables.
///
/// # Errors
/// A bad exporter configuration, or a subscriber already installed.
pub fn init(otlp_endpoint: Option<&str>) -> Result<TelemetryGuard, TelemetryError> {
    let mut guard = TelemetryGuard {
        provider: None,
        exporter_runtime: None,
    };
    let exporting = export_enabled(otlp_endpoint);
    let provider = if exporting {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let provider = exporting_provider(&runtime, otlp_endpoint)?;
        guard.exporter_runtime = Some(runtime);
        provider
    } else {
        SdkTracerProvider::builder()
            .with_resource(resource())
            .build()
    };
    guard.provider = Some(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (filter, bad_filter) = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    // Every layer carries the filter's most verbose level. A layer without a
    // filter, above one with a per-layer filter, would leave the subscriber
    // with no level hint at all: `tracing` and `log` would then treat every
    // `trace!` call in actix and mio as possibly enabled, and ask the
    // filter, on every request. That cost a replica about 8% of its CPU.
    let max_level = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(TRACER_NAME))
        // A thread name is a String per span; a worker's name tells nothing.
        .with_threads(false)
        // Unlike a filter function, a target filter is decided once per
        // call site rather than on every span and event.
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_default(max_level)
                .with_targets(UNEXPORTED_TARGETS.map(|t| (t, LevelFilter::OFF))),
        );
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = if std::io::stderr().is_terminal() {
        let pretty = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(WithTraceId(tracing_subscriber::fmt::format()))
            .with_filter(max_level);
        registry.with(pretty).try_init()
    } else {
        let json = json_subscriber::layer()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
            .with_opentelemetry_ids(true)
            .with_filter(max_level);
        registry.with(json).try_init()
    };
    installed.map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    if let Some(reason) = bad_filter {
        tracing::warn!("{reason}");
    }
    TRACE_EVERY_REQUEST.store(exporting, Ordering::Relaxed);
    Ok(guard)
}

/// The filter when `RUST_LOG` names none.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// The log filter for a `RUST_LOG` value. Unset or blank means
/// [`DEFAULT_LOG_FILTER`], as in the compose file (`${RUST_LOG:-info}`) and
/// for a chart whose `logLevel` is left empty: an empty filter would
/// otherwise silence every line, errors included. A value that does not parse
/// falls back to the default too, with the reason returned for [`init`] to
/// log once the subscriber is up.
#[must_use]
pub fn log_filter(rust_log: Option<&str>) -> (EnvFilter, Option<String>) {
    let default = || EnvFilter::new(DEFAULT_LOG_FILTER);
    match rust_log.map(str::trim) {
        None | Some("") => (default(), None),
        Some(raw) => match EnvFilter::try_new(raw) {
            Ok(filter) => (filter, None),
            Err(err) => (
                default(),
                Some(format!(
                    "RUST_LOG={raw:?} is not a log filter ({err}); logging at {DEFAULT_LOG_FILTER}"
                )),
            ),
        },
    }
}

impl TelemetryGuard {
    /// Flushes queued spans to the collector and stops the exporter. Call it
    /// after the server has stopped, so the last requests' spans go out.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Without an exporter there is nothing to flush; the SDK reports
            // that as an error, which is not one here.
            if self.exporter_runtime.is_some() {
                if let Err(err) = provider.shutdown() {
                    tracing::warn!(error = %err, "couldn't flush spans to the OTLP collector");
                }
            }
        }
        if let Some(runtime) = self.exporter_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether spans are exported: a configured endpoint, or the standard variables.
fn export_enabled(otlp_endpoint: Option<&str>) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    otlp_endpoint.is_some_and(|e| !e.is_empty())
        || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        || set("OTEL_EXPORTER_OTLP_ENDPOINT")
}

/// A tracer provider with a batching OTLP/gRPC exporter built on `runtime`.
fn exporting_provider(
    runtime: &tokio::runtime::Runtime,
    otlp_endpoint: Option<&str>,
) -> Result<SdkTracerProvider, TelemetryError> {
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(protocol) = std::env::var(var) {
            if !protocol.is_empty() && protocol != "grpc" {
                return Err(TelemetryError::Protocol(protocol));
            }
        }
    }
    // The tonic channel spawns its connection task on the current runtime.
    let _entered = runtime.enter();
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = otlp_endpoint.filter(|e| !e.is_empty()) {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    Ok(SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(exporter)
        .build())
}

/// The SDK's resource (from `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`),
/// named `tlog` unless those name the service, plus `service.version`.
fn resource() -> Resource {
    let service_name = opentelemetry::Key::from_static_str("service.name");
    let detected = Resource::builder().build();
    let unnamed = detected
        .get(&service_name)
        .is_none_or(|name| name.as_str().starts_with("unknown_service"));
    let mut builder = Resource::builder();
    if unnamed {
        builder = builder.with_service_name(DEFAULT_SERVICE_NAME);
    }
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The OpenTelemetry span context of the current span (invalid outside any
/// span); the sequencer links its batch span to these.
#[must_use]
pub fn current_span_context() -> opentelemetry::trace::SpanContext {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .clone()
}

/// Adds a link from the current span to each valid span context in `links`.
pub fn link_current_span(links: impl IntoIterator<Item = opentelemetry::trace::SpanContext>) {
    let span = tracing::Span::current();
    for link in links {
        span.add_link(link);
    }
}

/// Whether every request gets a span (spans are exported), or only those
/// that carry a `traceparent`. Set by [`init`].
static TRACE_EVERY_REQUEST: AtomicBool = AtomicBool::new(false);

/// The root span of an HTTP request, whose parent is the W3C `traceparent`
/// of the request, if any; see the module's notes for which requests get
/// one (the others get [`tracing::Span::none`]). Its fields are
/// OpenTelemetry's HTTP server attributes that tell requests apart:
/// `http.method`, `http.route`, `http.target`, `http.user_agent`, and
/// `otel.name` = "METHOD route"; [`end_request_span`] adds the status.
///
/// Left out, as costing more than they tell on the hot path: the client
/// address, host and scheme (a `ConnectionInfo` per request, which parses
/// forwarding headers and formats the peer; behind an ingress they name the
/// ingress), the HTTP version, a random request ID, and a `trace_id` field
/// (log lines carry the trace ID already). Each field is formatted by every
/// layer, and a replica answers tens of thousands of requests a second.
#[must_use]
pub fn request_span(request: &ServiceRequest) -> tracing::Span {
    let traced = request.headers().contains_key("traceparent");
    if !traced
        && !TRACE_EVERY_REQUEST.load(Ordering::Relaxed)
        && !tracing::enabled!(target: "tlog", tracing::Level::DEBUG)
    {
        return tracing::Span::none();
    }
    let method = request.method().as_str();
    let route = request.match_pattern();
    let route = route.as_deref().unwrap_or("default");
    let span = tracing::info_span!(
        "HTTP request",
        http.method = method,
        http.route = route,
        http.target = request.uri().path_and_query().map_or("", |p| p.as_str()),
        http.user_agent = request
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        http.status_code = tracing::field::Empty,
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        exception.message = tracing::field::Empty,
        exception.details = tracing::field::Empty,
    );
    if traced {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        if parent.span().span_context().is_valid() {
            // Fails only when tracing is off for this span; nothing to do then.
            let _ = span.set_parent(parent);
        }
    }
    span
}

/// Records how the request of `span` was answered: its status and, for an
/// error, the message and details. Only server errors set the OpenTelemetry
/// status; the HTTP conventions leave it unset for everything else.
pub fn end_request_span(
    span: &tracing::Span,
    status: StatusCode,
    error: Option<&dyn actix_web::ResponseError>,
) {
    span.record("http.status_code", status.as_u16());
    if let Some(error) = error {
        span.record("exception.message", tracing::field::display(error));
        span.record("exception.details", tracing::field::debug(error));
    }
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

struct HeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(actix_web::http::header::HeaderName::as_str)
            .collect()
    }
}

/// Pretty log lines, prefixed with `trace_id=<hex>` inside a traced span.
struct WithTraceId<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let context = opentelemetry::Context::current();
        let span = context.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            write!(writer, "trace_id={} ", span_context.trace_id())?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::EnvFilter;

    use super::request_span;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn an_unset_blank_or_unparsable_rust_log_means_the_default_filter() {
        use tracing_subscriber::filter::LevelFilter;

        let level = |raw: Option<&str>| {
            let (filter, reason) = super::log_filter(raw);
            (filter.max_level_hint(), reason)
        };
        for raw in [None, Some(""), Some("  ")] {
            assert_eq!(level(raw), (Some(LevelFilter::INFO), None), "{raw:?}");
        }
        assert_eq!(level(Some("debug")), (Some(LevelFilter::DEBUG), None));
        assert_eq!(level(Some("warn,tlog=trace")).0, Some(LevelFilter::TRACE));
        let (hint, reason) = level(Some("tlog=loud"));
        assert_eq!(hint, Some(LevelFilter::INFO));
        let reason = reason.expect("an unparsable filter is reported");
        assert!(reason.contains("RUST_LOG=\"tlog=loud\""), "{reason}");
    }

    /// Runs `f` under a subscriber like [`super::init`]'s without an
    /// exporter, at the `filter` level.
    fn with_subscriber<T>(filter: &str, f: impl FnOnce() -> T) -> T {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new(filter))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn an_untraced_request_gets_no_span_when_nothing_would_use_it() {
        let request = TestRequest::get().uri("/api/v1/log").to_srv_request();
        let span = with_subscriber("info", || request_span(&request));
        assert!(span.is_none(), "{span:?}");
    }

    #[test]
    fn a_request_with_a_traceparent_gets_a_span_in_the_callers_trace() {
        let request = TestRequest::get()
            .uri("/api/v1/log?x=1")
            .insert_header(("traceparent", TRACEPARENT))
            .to_srv_request();
        let trace_id = with_subscriber("info", || {
            let span = request_span(&request);
            assert!(!span.is_disabled());
            assert_eq!(
                span.metadata().map(tracing::Metadata::name),
                Some("HTTP request")
            );
            span.context().span().span_context().trace_id().to_string()
        });
        assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn every_request_gets_a_span_at_debug_level() {
        let request = TestRequest::get().uri("/api/v1/log").to_srv_request();
        let valid = with_subscriber("debug", || {
            let span = request_span(&request);
            assert!(!span.is_disabled());
            span.context().span().span_context().is_valid()
        });
        assert!(valid, "a debug-level request span has OpenTelemetry IDs");
    }
}
