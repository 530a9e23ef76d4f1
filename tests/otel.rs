//! Telemetry (issue 5): spans reach a real OTLP receiver with the caller's
//! trace and the batch's links; log lines carry the trace ID; secrets never
//! reach logs or error messages.
//!
//! A binary of its own: the tracing subscriber is global to the process, and
//! the first test installs one that exports to its collector.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use fake_opentelemetry_collector::{ExportedSpan, FakeCollectorServer};
use serde_json::Value;
use sqlx::Connection;
use tlog::signing::LogSigner;

use helpers::{create_database, spawn_app, ClientKey};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
}

/// An attribute's value as text. The collector keeps attributes as the
/// `Debug` form of OTLP's `AnyValue`, e.g. `Some(AnyValue { value: Some(IntValue(201)) })`.
fn attribute(span: &ExportedSpan, key: &str) -> String {
    let raw = span
        .attributes
        .get(key)
        .unwrap_or_else(|| panic!("span {} has no attribute {key}", span.name));
    let inner = raw
        .split_once("Value(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or(raw.as_str(), |(value, _)| value);
    inner.trim_matches('"').to_owned()
}

fn named<'a>(spans: &'a [ExportedSpan], name: &str) -> Vec<&'a ExportedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn only<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "exactly one {name:?} span: {found:#?}");
    found[0]
}

/// The spans as an indented tree per trace, with links, for the eye.
fn span_tree(spans: &[ExportedSpan]) -> String {
    let mut children: HashMap<&str, Vec<&ExportedSpan>> = HashMap::new();
    for span in spans {
        children
            .entry(span.parent_span_id.as_str())
            .or_default()
            .push(span);
    }
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = String::new();
    fn walk(
        out: &mut String,
        span: &ExportedSpan,
        depth: usize,
        children: &HashMap<&str, Vec<&ExportedSpan>>,
    ) {
        let attributes: Vec<String> = span
            .attributes
            .iter()
            .filter(|(k, _)| {
                !(k.starts_with("code.")
                    || k.starts_with("thread.")
                    || matches!(k.as_str(), "busy_ns" | "idle_ns" | "target"))
            })
            .map(|(k, _)| format!("{k}={}", attribute(span, k)))
            .collect();
        out.push_str(&format!(
            "{}{} [trace {} span {}] {}\n",
            "  ".repeat(depth),
            span.name,
            span.trace_id,
            span.span_id,
            attributes.join(" ")
        ));
        for link in &span.links {
            out.push_str(&format!(
                "{}  -> link trace {} span {}\n",
                "  ".repeat(depth),
                link.trace_id,
                link.span_id
            ));
        }
        let mut kids = children
            .get(span.span_id.as_str())
            .cloned()
            .unwrap_or_default();
        kids.sort_by_key(|s| s.start_time_unix_nano);
        for kid in kids {
            walk(out, kid, depth + 1, children);
        }
    }
    let mut roots: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| !ids.contains(s.parent_span_id.as_str()))
        .collect();
    roots.sort_by_key(|s| s.start_time_unix_nano);
    for root in roots {
        if !root.parent_span_id.is_empty() {
            out.push_str(&format!("(remote parent {})\n", root.parent_span_id));
        }
        walk(&mut out, root, 0, &children);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_a_real_otlp_receiver_with_the_callers_trace_and_batch_links() {
    let mut collector = FakeCollectorServer::start()
        .await
        .expect("collector starts");
    let telemetry = tlog::telemetry::init(Some(&collector.endpoint())).expect("telemetry starts");
    let app = spawn_app().await;
    let key = ClientKey::new();
    let proposal = key.hashedrekord(b"traced artifact");
    let response = app
        .client
        .post(app.url("/api/v1/log/entries"))
        .header("content-type", "application/json")
        .header("traceparent", traceparent())
        .body(serde_json::to_vec(&proposal).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // With an exporter, a request without a traceparent is traced too.
    let response = app
        .client
        .get(app.url("/api/v1/log/entries?logIndex=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
    // Flushing blocks until the exporter is done; keep it off the runtime
    // that serves the collector.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    let spans = collector.exported_spans(1, Duration::from_secs(10)).await;
    let tree = span_tree(&spans);
    println!("{tree}");

    // The request span continues the caller's trace under the caller's span.
    let request = only(&spans, "POST /api/v1/log/entries");
    assert_eq!(request.trace_id, TRACE_ID, "{tree}");
    assert_eq!(request.parent_span_id, PARENT_SPAN_ID, "{tree}");
    assert_eq!(request.kind, "SPAN_KIND_SERVER");
    assert_eq!(attribute(request, "http.status_code"), "201");
    assert_eq!(attribute(request, "http.route"), "/api/v1/log/entries");

    let read = only(&spans, "GET /api/v1/log/entries");
    assert_ne!(read.trace_id, TRACE_ID);
    assert!(read.parent_span_id.is_empty(), "{tree}");
    assert_eq!(attribute(read, "http.status_code"), "200");
    assert_eq!(
        attribute(read, "http.target"),
        "/api/v1/log/entries?logIndex=0"
    );

    let validation = only(&spans, "entry.validate");
    assert_eq!(validation.trace_id, TRACE_ID);
    assert_eq!(validation.parent_span_id, request.span_id, "{tree}");
    assert_eq!(attribute(validation, "entry.kind"), "hashedrekord");

    // The batch is a trace of its own, linked to the request it answered.
    let batch = only(&spans, "sequencer.batch");
    assert_ne!(batch.trace_id, TRACE_ID);
    assert!(batch.parent_span_id.is_empty(), "{tree}");
    assert!(
        batch
            .links
            .iter()
            .any(|l| l.trace_id == TRACE_ID && l.span_id == request.span_id),
        "batch links to the request span: {tree}"
    );
    assert_eq!(attribute(batch, "batch.entries"), "1");
    assert_eq!(attribute(batch, "tree.size"), "1");
    for name in ["sign.set", "sign.checkpoint", "db.commit"] {
        let child = only(&spans, name);
        assert_eq!(
            child.parent_span_id, batch.span_id,
            "{name} in batch: {tree}"
        );
        assert_eq!(child.trace_id, batch.trace_id);
    }
    assert_eq!(
        attribute(only(&spans, "db.commit"), "db.system"),
        "postgresql"
    );
    // Start-up touched the database too, each call in a span.
    assert!(!named(&spans, "db.migrate").is_empty(), "{tree}");

    // Nothing exported carries the entry's content.
    let public_key_b64 = proposal["spec"]["signature"]["publicKey"]["content"]
        .as_str()
        .unwrap();
    let signature_b64 = proposal["spec"]["signature"]["content"].as_str().unwrap();
    for span in &spans {
        for value in span.attributes.values() {
            assert!(!value.contains(public_key_b64) && !value.contains(signature_b64));
        }
    }
}

/// A running `tlog serve` whose stderr is collected.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    async fn start(database_url: &str, key_file: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tlog_command(database_url, key_file)
            .env("TLOG_LISTEN", format!("127.0.0.1:{port}"))
            .spawn()
            .expect("tlog binary starts");
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(server.url("/api/v1/log")).send().await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stderr = server.stop();
        panic!("tlog did not come up: {stderr}");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Stops the server and returns what it wrote to stderr.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr).unwrap();
        }
        stderr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tlog_command(database_url: &str, key_file: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tlog"));
    command
        .arg("serve")
        .env("RUST_LOG", "debug")
        .env("TLOG_DATABASE_URL", database_url)
        .env("TLOG_KEY_FILE", key_file)
        .env("TLOG_HOSTNAME", "localhost")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs `tlog serve` that must fail at start-up; returns its stderr.
fn failed_start(database_url: &str, key_file: &std::path::Path) -> String {
    let output = tlog_command(database_url, key_file)
        .env("TLOG_LISTEN", "127.0.0.1:0")
        .output()
        .expect("tlog binary runs");
    assert!(!output.status.success(), "tlog must refuse to start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A database owned by a new login role with a random password; returns the
/// URL with that password in it, and the password.
async fn database_with_password() -> (String, String) {
    let admin = std::env::var("DATABASE_URL").expect("DATABASE_URL names the test cluster");
    let plain_url = create_database().await;
    let database = plain_url.rsplit_once('/').unwrap().1.to_owned();
    let role = format!("tlog_role_{}", uuid::Uuid::new_v4().simple());
    let password = format!("pw{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {database} OWNER TO {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let host = admin
        .split_once('@')
        .expect("DATABASE_URL has user@host")
        .1
        .rsplit_once('/')
        .unwrap()
        .0;
    (
        format!("postgres://{role}:{password}@{host}/{database}"),
        password,
    )
}

/// The secret lines of a PEM: its base64 body, and each line of it.
fn pem_body_lines(pem: &str) -> Vec<String> {
    let body: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut secrets = body.clone();
    secrets.push(body.concat());
    secrets
}

fn assert_no_secret(stderr: &str, secrets: &[String], context: &str) {
    for secret in secrets {
        assert!(
            !stderr.contains(secret.as_str()),
            "{context}: a secret ({} chars) appears in stderr:\n{stderr}",
            secret.len()
        );
    }
}

#[tokio::test]
async fn log_lines_are_json_and_carry_the_trace_id_of_their_request() {
    let database_url = create_database().await;
    let key_file = std::env::temp_dir().join(format!("tlog-logs-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    let mut server = Server::start(&database_url, &key_file).await;
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/log/entries"))
        .header("content-type", "application/json")
        .header("traceparent", traceparent())
        .body("{\"kind\": \"hashedrekord\"}")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    let stderr = server.stop();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let traced: Vec<&Value> = lines
        .iter()
        .filter(|l| l["openTelemetry"]["traceId"] == TRACE_ID)
        .collect();
    assert!(
        !traced.is_empty(),
        "a log line of the request carries its trace ID:\n{stderr}"
    );
    assert!(traced.iter().all(|l| l["openTelemetry"]["spanId"]
        .as_str()
        .is_some_and(|s| s.len() == 16)));
    // Lines outside any request have no trace ID, rather than a made-up one.
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"] == "tlog serving" && l.get("openTelemetry").is_none()));
}

#[tokio::test]
async fn the_signing_key_and_database_password_never_appear_in_logs_or_errors() {
    let (database_url, password) = database_with_password().await;
    let pem = LogSigner::generate_pkcs8_pem().unwrap();
    let key_file = std::env::temp_dir().join(format!("tlog-secret-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, &pem).unwrap();
    let mut secrets = pem_body_lines(&pem);
    secrets.push(password.clone());

    // A serving process, at debug level, through successes and failures.
    let mut server = Server::start(&database_url, &key_file).await;
    let client = reqwest::Client::new();
    let key = ClientKey::new();
    let entry = key.hashedrekord(b"secret test");
    for body in [
        serde_json::to_vec(&entry).unwrap(),
        serde_json::to_vec(&entry).unwrap(),
        b"{not json".to_vec(),
        br#"{"kind":"hashedrekord","apiVersion":"0.0.1","spec":{}}"#.to_vec(),
    ] {
        client
            .post(server.url("/api/v1/log/entries"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
    }
    for path in [
        "/api/v1/log",
        "/api/v1/log/publicKey",
        "/api/v1/log/entries?logIndex=9",
        "/nope",
    ] {
        client.get(server.url(path)).send().await.unwrap();
    }
    let stderr = server.stop();
    assert!(
        stderr.contains("tlog serving"),
        "the server logged:\n{stderr}"
    );
    assert_no_secret(&stderr, &secrets, "serving");

    // Start-up failures whose causes sit next to the secrets.
    let base = database_url.rsplit_once('/').unwrap().0;
    let missing_db = format!("{base}/tlog_missing_{}", uuid::Uuid::new_v4().simple());
    let stderr = failed_start(&missing_db, &key_file);
    assert!(stderr.contains("couldn't connect to Postgres"), "{stderr}");
    assert_no_secret(&stderr, &secrets, "missing database");

    let bad_port = format!("postgres://u:{password}@127.0.0.1:not-a-port/db");
    let stderr = failed_start(&bad_port, &key_file);
    assert_no_secret(&stderr, &secrets, "malformed URL");

    let refused = format!("postgres://u:{password}@127.0.0.1:1/db");
    let stderr = failed_start(&refused, &key_file);
    assert!(stderr.contains("couldn't connect to Postgres"), "{stderr}");
    assert_no_secret(&stderr, &secrets, "unreachable database");

    // A key file that holds secret bytes but is not a P-256 key.
    let mut random = [0u8; 96];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut random)
        .unwrap();
    let not_a_key = pem::encode(&pem::Pem::new("PRIVATE KEY", random.to_vec()));
    let bad_key_file =
        std::env::temp_dir().join(format!("tlog-badkey-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&bad_key_file, &not_a_key).unwrap();
    let mut bad_key_secrets = pem_body_lines(&not_a_key);
    bad_key_secrets.push(password);
    let stderr = failed_start(&database_url, &bad_key_file);
    assert!(stderr.contains("signing key"), "{stderr}");
    assert_no_secret(&stderr, &bad_key_secrets, "bad key");
}
