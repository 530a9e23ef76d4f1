//! `tlog monitor` (issue 15, item 2) against real `tlog serve` processes
//! over HTTP: consistent growth passes; a fork, a split view, a rollback and
//! a state from another log raise alerts; watched identities are reported;
//! a log that stops growing is stale; alerts reach the webhook and metrics.
//!
//! The logs are embedded (`data_dir`) servers whose journal is written
//! beforehand with [`SnapshotWriter`], so two servers can share one key, one
//! origin and a common prefix, and then diverge.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tlog::export::SnapshotWriter;
use tlog::signing::LogSigner;

use crate::conformance::tempdir;
use crate::helpers::{spawn_with, ClientKey, TestApp};
use crate::write_policy::{hashedrekord, pem, Ca, Key};

const HOSTNAME: &str = "monitor.test";
const TREE_ID: i64 = 4242;
const WATCHED: &str = "release-bot@example.com";
const ISSUER: &str = "https://issuer.example";

/// A log key and the files the monitor needs.
pub(crate) struct Setup {
    dir: PathBuf,
    key_pem: String,
    key_file: PathBuf,
    pub(crate) public_key: PathBuf,
}

impl Setup {
    pub(crate) fn new() -> Self {
        let dir = tempdir();
        let key_pem = LogSigner::generate_pkcs8_pem().unwrap();
        let key_file = dir.join("log-key.pem");
        std::fs::write(&key_file, &key_pem).unwrap();
        let public_key = dir.join("log.pub");
        let signer = LogSigner::from_pkcs8_pem(&key_pem).unwrap();
        std::fs::write(&public_key, signer.public_key_pem()).unwrap();
        Self {
            dir,
            key_pem,
            key_file,
            public_key,
        }
    }

    /// Starts an embedded server whose journal holds `bodies`, signed by
    /// this key as log [`TREE_ID`].
    pub(crate) async fn serve(&self, name: &str, bodies: &[Vec<u8>]) -> TestApp {
        self.serve_tree(name, bodies, TREE_ID).await
    }

    /// [`Setup::serve`] as the log of tree `tree_id`.
    async fn serve_tree(&self, name: &str, bodies: &[Vec<u8>], tree_id: i64) -> TestApp {
        let data = self.dir.join(name);
        std::fs::create_dir_all(&data).unwrap();
        let signer = LogSigner::from_pkcs8_pem(&self.key_pem).unwrap();
        let file = std::fs::File::create(data.join("db.jsonl")).unwrap();
        let mut writer = SnapshotWriter::new(file, signer, HOSTNAME, tree_id).unwrap();
        for (i, body) in bodies.iter().enumerate() {
            let keys = tlog::entries::parse_search(body).unwrap().index_keys;
            writer
                .push(body.clone(), 1_700_000_000 + i as i64, &keys)
                .unwrap();
        }
        writer.finish().unwrap();
        let yaml = format!(
            "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nhostname: {HOSTNAME}\n\
             data_dir: {}\nkey_file: {}\nbatch: {{interval_ms: 5}}\n",
            data.display(),
            self.key_file.display()
        );
        use figment::providers::{Format, Yaml};
        let config = figment::Figment::new()
            .merge(Yaml::string(&yaml))
            .extract()
            .unwrap();
        spawn_with(config).await
    }

    /// A fresh state directory.
    fn state_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

/// Canonical bodies of `count` hashedrekord entries by a fresh client key.
pub(crate) fn bodies(count: usize, salt: &str) -> Vec<Vec<u8>> {
    let client = ClientKey::new();
    (0..count)
        .map(|i| canonical(&client.hashedrekord(format!("{salt} {i}").as_bytes())))
        .collect()
}

fn canonical(proposal: &Value) -> Vec<u8> {
    tlog::entries::parse_proposed(&serde_json::to_vec(proposal).unwrap())
        .unwrap()
        .canonical
}

/// Runs `tlog monitor URL --once` with `args`; returns the exit code and
/// the findings (stdout JSON lines), with stderr for messages.
async fn monitor_once(
    url: &str,
    setup: &Setup,
    state: &Path,
    args: &[&str],
) -> (i32, Vec<Value>, String) {
    monitor_with_key(url, &setup.public_key, state, args).await
}

/// [`monitor_once`] with the key file `public_key`.
pub(crate) async fn monitor_with_key(
    url: &str,
    public_key: &Path,
    state: &Path,
    args: &[&str],
) -> (i32, Vec<Value>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tlog"));
    command
        .arg("monitor")
        .arg(url)
        .arg("--once")
        .arg("--public-key")
        .arg(public_key)
        .arg("--state-dir")
        .arg(state)
        .args(args);
    let out: Output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let findings = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    let code = out.status.code().expect("the monitor exits");
    (code, findings, stderr)
}

pub(crate) fn alert_kinds(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f["event"] == "alert")
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn stored_size(state: &Path) -> u64 {
    let text = std::fs::read_to_string(state.join("monitor-state.json")).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    let note = state["checkpoint"].as_str().unwrap();
    note.lines().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_growth_passes_and_advances_the_state() {
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(5, "growth")).await;
    let state = setup.state_dir("state");
    let (code, findings, err) =
        monitor_once(&app.address, &setup, &state, &["--start-index", "0"]).await;
    assert_eq!((code, findings.len()), (0, 0), "{findings:?} {err}");
    assert_eq!(stored_size(&state), 5);

    let client = ClientKey::new();
    for i in 0..7 {
        let created = app
            .create(&client.hashedrekord(format!("more {i}").as_bytes()))
            .await;
        assert_eq!(created.status(), 201);
    }
    let (code, findings, err) = monitor_once(&app.address, &setup, &state, &[]).await;
    assert_eq!((code, findings.len()), (0, 0), "{findings:?} {err}");
    assert_eq!(stored_size(&state), 12);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_signed_by_the_same_key_is_caught_within_one_poll() {
    let setup = Setup::new();
    let prefix = bodies(3, "shared");
    let a = setup
        .serve("a", &[prefix.clone(), bodies(2, "only a")].concat())
        .await;
    let b = setup
        .serve("b", &[prefix.clone(), bodies(2, "only b")].concat())
        .await;
    let state = setup.state_dir("state");
    let (code, findings, err) = monitor_once(&a.address, &setup, &state, &[]).await;
    assert_eq!((code, findings.len()), (0, 0), "{findings:?} {err}");
    let saved = std::fs::read(state.join("monitor-state.json")).unwrap();

    // The other branch at the same size: two signed roots for size 5.
    let (code, findings, _) = monitor_once(&b.address, &setup, &state, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["split_view"]);
    assert_eq!(findings[0]["evidence"].as_array().unwrap().len(), 2);
    // The alert leaves the verified state as it was.
    assert_eq!(
        std::fs::read(state.join("monitor-state.json")).unwrap(),
        saved
    );

    // The other branch grown past it: no consistency proof can exist.
    let client = ClientKey::new();
    assert_eq!(
        b.create(&client.hashedrekord(b"b grows")).await.status(),
        201
    );
    let (code, findings, _) = monitor_once(&b.address, &setup, &state, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["inconsistent"]);

    // A grown past the state's size, then B (size 6) polled with A's state
    // at size 8: a rollback.
    for i in 0..3 {
        let entry = client.hashedrekord(format!("a grows {i}").as_bytes());
        assert_eq!(a.create(&entry).await.status(), 201);
    }
    let (code, findings, err) = monitor_once(&a.address, &setup, &state, &[]).await;
    assert_eq!((code, findings.len()), (0, 0), "{findings:?} {err}");
    let (code, findings, _) = monitor_once(&b.address, &setup, &state, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["rollback"]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_from_another_log_raises_an_alert() {
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(3, "this log")).await;
    // Another key's log, followed into its own state.
    let other = Setup::new();
    let other_app = other.serve("other", &bodies(3, "other log")).await;
    let state = setup.state_dir("state");
    let (code, _, err) = monitor_once(&other_app.address, &other, &state, &[]).await;
    assert_eq!(code, 0, "{err}");

    let (code, findings, _) = monitor_once(&app.address, &setup, &state, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["bad_checkpoint"]);
    // And the other log under this key: its checkpoint does not verify.
    let (code, findings, _) =
        monitor_once(&other_app.address, &setup, &setup.state_dir("fresh"), &[]).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["bad_checkpoint"]);
    app.stop().await;
    other_app.stop().await;
}

/// Another log under the same key (another tree ID), which does not list
/// the stored one among its inactive shards: not a rotation to follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_of_another_tree_under_the_same_key_is_an_origin_change() {
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(3, "this tree")).await;
    let other = setup
        .serve_tree("other", &bodies(4, "other tree"), TREE_ID + 1)
        .await;
    let state = setup.state_dir("state");
    let (code, _, err) = monitor_once(&app.address, &setup, &state, &[]).await;
    assert_eq!(code, 0, "{err}");
    let saved = std::fs::read(state.join("monitor-state.json")).unwrap();
    let (code, findings, _) = monitor_once(&other.address, &setup, &state, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["origin_changed"]);
    assert_eq!(
        std::fs::read(state.join("monitor-state.json")).unwrap(),
        saved
    );
    app.stop().await;
    other.stop().await;
}

/// A log of `others` unwatched entries with three entries by a watched
/// certificate identity and one by a watched bare key spread among them,
/// and two certificates that look alike but are not watched. Returns the
/// bodies, the indexes of the watched ones and the watch config.
fn watched_log(others: usize) -> (Vec<Vec<u8>>, Vec<u64>, String) {
    let ca = Ca::new("Test Fulcio");
    // (body, watched)
    let mut all: Vec<(Vec<u8>, bool)> = bodies(others, "noise")
        .into_iter()
        .map(|b| (b, false))
        .collect();
    let key = Key::new();
    let stranger = ca.issue(&key, "someone@example.com", ISSUER);
    all.insert(
        1,
        (
            canonical(&hashedrekord(&key, &stranger, b"stranger")),
            false,
        ),
    );
    let wrong_issuer = ca.issue(&key, WATCHED, "https://other-issuer.example");
    all.insert(
        2,
        (
            canonical(&hashedrekord(&key, &wrong_issuer, b"wrong issuer")),
            false,
        ),
    );
    for (i, at) in [others / 4, others / 2, others].into_iter().enumerate() {
        let key = Key::new();
        let cert = ca.issue(&key, WATCHED, ISSUER);
        let body = canonical(&hashedrekord(
            &key,
            &cert,
            format!("watched {i}").as_bytes(),
        ));
        all.insert(at, (body, true));
    }
    let bare = Key::new();
    let bare_pem = pem("PUBLIC KEY", &bare.spki());
    all.push((
        canonical(&hashedrekord(&bare, &bare_pem, b"bare key")),
        true,
    ));
    let watched = (0..all.len() as u64)
        .filter(|&i| all[i as usize].1)
        .collect();
    let fingerprint = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bare.spki()));
    let config = format!(
        "monitor:\n  watch:\n    identities:\n      - san: {WATCHED}\n        issuer: {ISSUER}\n    fingerprints: [\"{fingerprint}\"]\n"
    );
    (all.into_iter().map(|(b, _)| b).collect(), watched, config)
}

async fn reports_watched_entries(others: usize) {
    let setup = Setup::new();
    let (all, watched, watch) = watched_log(others);
    let app = setup.serve("log", &all).await;
    let config = setup.dir.join("monitor.yaml");
    std::fs::write(&config, watch).unwrap();
    let state = setup.state_dir("state");
    let config_arg = config.to_str().unwrap();
    let started = std::time::Instant::now();
    let (code, findings, err) = monitor_once(
        &app.address,
        &setup,
        &state,
        &["--start-index", "0", "--config", config_arg],
    )
    .await;
    eprintln!(
        "monitor checked {} entries in {:?}",
        all.len(),
        started.elapsed()
    );
    assert_eq!(code, 0, "{err}");
    let reported: Vec<u64> = findings
        .iter()
        .map(|f| {
            assert_eq!(f["event"], "identity_match", "{f}");
            f["log_index"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(reported, watched);
    let rules: Vec<&str> = findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["identity", "identity", "identity", "fingerprint"]);
    assert_eq!(findings[0]["sans"][0], WATCHED);
    assert_eq!(findings[0]["issuer"], ISSUER);

    // Already checked entries are not reported again.
    let (code, findings, _) =
        monitor_once(&app.address, &setup, &state, &["--config", config_arg]).await;
    assert_eq!((code, findings.len()), (0, 0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_watched_identities_and_keys_are_reported() {
    reports_watched_entries(300).await;
}

/// Issue 15's figure, in the test command: about two minutes of a debug
/// build on two cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_watched_entries_are_found_among_100_000() {
    reports_watched_entries(100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_stops_growing_is_stale() {
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(2, "stale")).await;
    let state = setup.state_dir("state");
    let args = ["--stale-after-secs", "60"];
    let (code, findings, _) = monitor_once(&app.address, &setup, &state, &args).await;
    assert_eq!((code, findings.len()), (0, 0));
    // Let two minutes pass, as far as the state knows.
    let path = state.join("monitor-state.json");
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    saved["grew_at"] = (saved["grew_at"].as_i64().unwrap() - 120).into();
    std::fs::write(&path, saved.to_string()).unwrap();
    let (code, findings, _) = monitor_once(&app.address, &setup, &state, &args).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["stale"]);

    // Growth clears it.
    let created = app.create(&ClientKey::new().hashedrekord(b"alive")).await;
    assert_eq!(created.status(), 201);
    let (code, findings, _) = monitor_once(&app.address, &setup, &state, &args).await;
    assert_eq!((code, findings.len()), (0, 0));
    app.stop().await;
}

/// A webhook receiver: every POSTed JSON body.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = web::Data::from(Arc::clone(&received));
    let server = HttpServer::new(move || {
        App::new().app_data(sink.clone()).route(
            "/hook",
            web::post().to(
                |body: web::Bytes, sink: web::Data<Mutex<Vec<Value>>>| async move {
                    sink.lock().push(serde_json::from_slice(&body).unwrap());
                    HttpResponse::NoContent().finish()
                },
            ),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}/hook"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_monitor_posts_alerts_to_the_webhook_and_counts_them() {
    let setup = Setup::new();
    let prefix = bodies(2, "shared");
    let a = setup
        .serve("a", &[prefix.clone(), bodies(1, "a")].concat())
        .await;
    let b = setup.serve("b", &[prefix, bodies(1, "b")].concat()).await;
    let state = setup.state_dir("state");
    let (code, _, err) = monitor_once(&a.address, &setup, &state, &[]).await;
    assert_eq!(code, 0, "{err}");
    let (hook, received) = webhook().await;
    let metrics_port = crate::process::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlog"))
        .arg("monitor")
        .arg(&b.address)
        .arg("--public-key")
        .arg(&setup.public_key)
        .arg("--state-dir")
        .arg(&state)
        .args(["--interval-secs", "1", "--webhook-url", &hook])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut metrics = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if received.lock().len() >= 2 {
            metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    let got = received.lock().clone();
    assert!(got.len() >= 2, "two polls, two alerts: {got:?}");
    for post in &got {
        assert_eq!(post["log"], b.address);
        assert_eq!(post["finding"]["event"], "alert");
        assert_eq!(post["finding"]["kind"], "split_view");
    }
    let count = metrics
        .lines()
        .find(|l| l.starts_with("tlog_monitor_alerts_total{kind=\"split_view\"}"))
        .unwrap_or_else(|| panic!("no split_view counter in {metrics}"));
    let n: u64 = count.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2, "{count}");
    assert!(metrics.contains("tlog_monitor_polls_total{outcome=\"alert\"}"));
    a.stop().await;
    b.stop().await;
}

/// How the hostile log in front of a real one misbehaves.
#[derive(Clone)]
pub(crate) enum Hostility {
    /// Serves another log's `/api/v1/log` (same key, another branch).
    LogInfoFrom(String),
    /// Serves every entry with its `integratedTime` moved by a second.
    ShiftIntegratedTime,
    /// Answers `/api/v1/log` with a body far over any checkpoint's size.
    HugeLogInfo,
    /// Serves every answer to a path that starts with this one with its
    /// last byte changed (a tile, a bundle or a checkpoint).
    FlipLastByte(String),
    /// Serves every tile and bundle gzip-compressed, with
    /// `Content-Encoding: gzip` whether asked for or not (C2SP tlog-tiles
    /// allows it).
    GzipTiles,
}

/// A hostile log: a proxy to `upstream` that tampers with its answers.
pub(crate) async fn hostile(upstream: String, how: Hostility) -> String {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let forward = move |req: HttpRequest, body: web::Bytes| {
        let mut upstream = upstream.clone();
        let how = how.clone();
        async move {
            let path = req.uri().path_and_query().unwrap().as_str().to_owned();
            if let (Hostility::LogInfoFrom(other), "/api/v1/log") = (&how, path.as_str()) {
                upstream.clone_from(other);
            }
            if matches!(how, Hostility::HugeLogInfo) && path == "/api/v1/log" {
                return HttpResponse::Ok().body(vec![b' '; 1 << 20]);
            }
            let client = reqwest::Client::new();
            let response = client
                .request(
                    reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap(),
                    format!("{upstream}{path}"),
                )
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let mut bytes = response.bytes().await.unwrap().to_vec();
            if matches!(how, Hostility::ShiftIntegratedTime) && path.ends_with("/retrieve") {
                let mut found: Value = serde_json::from_slice(&bytes).unwrap();
                for object in found.as_array_mut().unwrap() {
                    for entry in object.as_object_mut().unwrap().values_mut() {
                        let time = entry["integratedTime"].as_i64().unwrap();
                        entry["integratedTime"] = (time + 1).into();
                    }
                }
                bytes = serde_json::to_vec(&found).unwrap();
            }
            if matches!(how, Hostility::GzipTiles) && path.contains("/tile/") {
                use std::io::Write;
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&bytes).unwrap();
                return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                    .insert_header(("content-encoding", "gzip"))
                    .body(gz.finish().unwrap());
            }
            if let Hostility::FlipLastByte(prefix) = &how {
                if path.starts_with(prefix.as_str()) {
                    *bytes.last_mut().unwrap() ^= 1;
                }
            }
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body(bytes)
        }
    };
    let server = HttpServer::new(move || App::new().default_service(web::to(forward.clone())))
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_set_does_not_verify_raises_an_alert() {
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(4, "tampered")).await;
    let url = hostile(app.address.clone(), Hostility::ShiftIntegratedTime).await;
    let state = setup.state_dir("state");
    let (code, findings, _) = monitor_once(&url, &setup, &state, &["--start-index", "0"]).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["bad_entry"]);
    assert!(
        findings[0]["message"].as_str().unwrap().contains("SET"),
        "{findings:?}"
    );
    // Nothing was vouched for.
    assert!(!state.join("monitor-state.json").exists());
    // The same log without the tampering passes.
    let (code, findings, _) =
        monitor_once(&app.address, &setup, &state, &["--start-index", "0"]).await;
    assert_eq!((code, findings.len()), (0, 0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_is_refused_without_reading_it_all() {
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(1, "huge")).await;
    let url = hostile(app.address.clone(), Hostility::HugeLogInfo).await;
    let state = setup.state_dir("state");
    let (code, findings, err) = monitor_once(&url, &setup, &state, &[]).await;
    assert_eq!((code, findings.len()), (2, 0), "{err}");
    assert!(err.contains("over 65536 bytes"), "{err}");
    app.stop().await;
}
