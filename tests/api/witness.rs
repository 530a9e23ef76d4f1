//! Witness cosignatures of the Rekor v2 log (rekor-v2-tiles.md X-01…X-04),
//! over real HTTP against a real server on Postgres, with a real
//! third-party witness: aics-witness from PyPI (scripts/aics-witness.sh
//! installs it; `AICS_WITNESS` names its command). Misbehaving witnesses are
//! raw HTTP servers here, each breaking the protocol one way.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{SigningKey, Verifier as _};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tlog::config::Config;
use tlog::note::c2sp::Ed25519NoteKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{config_for, spawn_with, test_config, TestApp};

const ORIGIN: &str = "rekor.example.test";
const WITNESS_NAME: &str = "witness.example.test";

/// The aics-witness command: `AICS_WITNESS`, else the one
/// scripts/aics-witness.sh installs under `.cache/`.
fn aics_witness_command() -> PathBuf {
    if let Some(path) = std::env::var_os("AICS_WITNESS") {
        return PathBuf::from(path);
    }
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/aics-witness/bin/aics-witness");
    assert!(
        path.exists(),
        "aics-witness is missing; run scripts/aics-witness.sh (scripts/test.sh does) \
         or set AICS_WITNESS"
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running aics-witness, trusting our v2 log's key; its state (SQLite)
/// outlives a stop, so it can be stopped and started again.
struct AicsWitness {
    dir: PathBuf,
    port: u16,
    seed: [u8; 32],
    child: Option<Child>,
}

impl AicsWitness {
    fn new(log_vkey: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tlog-aics-witness-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let seed: [u8; 32] = std::array::from_fn(|i| 0x40 + i as u8);
        let port = free_port();
        let config = dir.join("witness.json");
        let run = |args: &[&str]| {
            let out = Command::new(aics_witness_command())
                .args(args)
                .env("WITNESS_SEED_HEX", hex::encode(seed))
                .output()
                .expect("aics-witness runs");
            assert!(out.status.success(), "aics-witness {args:?}: {out:?}");
        };
        let config_arg = config.to_str().unwrap();
        let listen = format!("127.0.0.1:{port}");
        // --new-database: a key from WITNESS_SEED_HEX counts as existing,
        // and this one never cosigned.
        run(&[
            "init",
            "--config",
            config_arg,
            "--name",
            WITNESS_NAME,
            "--listen",
            &listen,
            "--new-database",
        ]);
        run(&[
            "add-log", "--config", config_arg, "--origin", ORIGIN, "--vkey", log_vkey,
        ]);
        let mut witness = Self {
            dir,
            port,
            seed,
            child: None,
        };
        witness.start();
        witness
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its cosignature vkey, computed here from the seed.
    fn vkey(&self) -> String {
        let raw = SigningKey::from_bytes(&self.seed)
            .verifying_key()
            .to_bytes();
        let id = key_id(WITNESS_NAME, 0x04, &raw);
        let key = BASE64_STANDARD.encode([&[0x04][..], &raw].concat());
        format!("{WITNESS_NAME}+{}+{key}", hex::encode(id))
    }

    fn start(&mut self) {
        let config = self.dir.join("witness.json");
        let child = Command::new(aics_witness_command())
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("WITNESS_SEED_HEX", hex::encode(self.seed))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aics-witness serve starts");
        self.child = Some(child);
        // Ready once it accepts connections.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aics-witness did not start listening");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for AicsWitness {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn key_id(name: &str, key_type: u8, raw: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([key_type]);
    hasher.update(raw);
    hasher.finalize()[..4].try_into().unwrap()
}

/// The v2 log's key, made before the server so that witnesses can trust it.
struct LogKey {
    file: PathBuf,
    key: Ed25519NoteKey,
}

fn log_key() -> LogKey {
    let file = std::env::temp_dir().join(format!("tlog-v2-{}.pem", uuid::Uuid::new_v4()));
    tlog::app::keygen_ed25519(&file).unwrap();
    let pem = pem::parse(std::fs::read(&file).unwrap()).unwrap();
    let seed: [u8; 32] = pem.contents()[16..].try_into().unwrap();
    LogKey {
        file,
        key: Ed25519NoteKey::new(ORIGIN, &seed).unwrap(),
    }
}

async fn v2_config(key: &LogKey, policy: &str, fail_closed: bool, timeout_ms: u64) -> Config {
    let mut config = test_config().await;
    let policy_file =
        std::env::temp_dir().join(format!("tlog-witness-policy-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(&policy_file, policy).unwrap();
    config.v2.key_file = Some(key.file.clone());
    config.v2.origin = Some(ORIGIN.into());
    config.v2.witness_policy = Some(policy_file);
    config.v2.witness_fail_closed = fail_closed;
    config.v2.witness_timeout_ms = timeout_ms;
    config.validate().unwrap();
    config
}

/// A hashedrekord 0.0.2 request for a fresh artifact.
fn request() -> Value {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
    let artifact = uuid::Uuid::new_v4().to_string();
    let sig = pair
        .sign(&SystemRandom::new(), artifact.as_bytes())
        .unwrap();
    json!({"hashedRekordRequestV002": {
        "digest": BASE64_STANDARD.encode(Sha256::digest(artifact.as_bytes())),
        "signature": {"content": BASE64_STANDARD.encode(sig.as_ref()), "verifier": {
            "publicKey": {"rawBytes": BASE64_STANDARD.encode(spki.as_ref())},
            "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}})
}

async fn create(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v2/log/entries"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn served_checkpoint(app: &TestApp) -> String {
    let response = app.get("/checkpoint").await;
    assert_eq!(response.status(), 200);
    let note = response.text().await.unwrap();
    let alias = app.get("/api/v2/checkpoint").await.text().await.unwrap();
    assert_eq!(alias, note, "/api/v2/checkpoint serves the same note");
    note
}

/// Splits a signed note into its text and signature lines, checking the
/// framing clients need (N-03): one blank line, the log's line first.
fn split(note: &str, log: &Ed25519NoteKey) -> (String, Vec<String>) {
    assert_eq!(note.matches("\n\n").count(), 1, "{note:?}");
    let (text, sigs) = note.split_once("\n\n").unwrap();
    let lines: Vec<String> = sigs.lines().map(str::to_owned).collect();
    assert!(
        lines[0].starts_with(&format!("\u{2014} {} ", log.name())),
        "the log's own line first: {note:?}"
    );
    let verifier = signed_note::StandardVerifier::new(&log.vkey()).unwrap();
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    signed_note::Note::from_bytes(note.as_bytes())
        .unwrap()
        .verify(&list)
        .expect("the log's signature verifies");
    (format!("{text}\n"), lines)
}

/// Checks a cosignature line with ed25519-dalek alone: the key ID,
/// then the signature over `cosignature/v1\ntime <t>\n<text>`. Returns t.
fn check_cosignature(line: &str, text: &str, seed: &[u8; 32]) -> u64 {
    let public = SigningKey::from_bytes(seed).verifying_key();
    let b64 = line
        .strip_prefix(&format!("\u{2014} {WITNESS_NAME} "))
        .expect("a line of the witness");
    let bytes = BASE64_STANDARD.decode(b64).unwrap();
    assert_eq!(bytes.len(), 4 + 8 + 64);
    assert_eq!(bytes[..4], key_id(WITNESS_NAME, 0x04, public.as_bytes()));
    let time = u64::from_be_bytes(bytes[4..12].try_into().unwrap());
    let sig = ed25519_dalek::Signature::from_slice(&bytes[12..]).unwrap();
    let message = format!("cosignature/v1\ntime {time}\n{text}");
    public
        .verify(message.as_bytes(), &sig)
        .expect("the cosignature verifies under the witness key");
    time
}

fn size_of(text: &str) -> u64 {
    text.lines().nth(1).unwrap().parse().unwrap()
}

async fn metric(app: &TestApp, needle: &str) -> u64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|line| line.starts_with(needle))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

/// Polls the served checkpoint until it has size `size` and a line of the
/// witness, and returns it.
async fn wait_cosigned(app: &TestApp, size: u64) -> String {
    for _ in 0..100 {
        let note = served_checkpoint(app).await;
        if note.contains(&format!("\u{2014} {WITNESS_NAME} "))
            && size_of(note.split_once("\n\n").unwrap().0) == size
        {
            return note;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no cosigned checkpoint of size {size}: {}",
        served_checkpoint(app).await
    );
}

#[tokio::test]
async fn aics_witness_cosigns_what_tlog_serves_and_answers() {
    let key = log_key();
    let witness = AicsWitness::new(&key.key.vkey());
    let policy = format!(
        "log {} https://{ORIGIN}\nwitness aics {} {}\nquorum aics\n",
        key.key.vkey(),
        witness.vkey(),
        witness.url()
    );
    let config = v2_config(&key, &policy, false, 2000).await;
    let v2 = config.v2.clone();
    let app = spawn_with(config).await;

    for n in 1..=3u64 {
        let response = create(&app, &request()).await;
        assert_eq!(response.status(), 201);
        let tle: Value = response.json().await.unwrap();
        // Fail-open with a live witness: the answer carries the cosigned
        // checkpoint its proof is against.
        let envelope = tle["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap();
        let (text, lines) = split(envelope, &key.key);
        assert_eq!(lines.len(), 2, "{envelope}");
        check_cosignature(&lines[1], &text, &witness.seed);
        assert_eq!(
            size_of(&text),
            tle["inclusionProof"]["treeSize"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        );
        assert!(size_of(&text) >= n);
    }
    let note = wait_cosigned(&app, 3).await;
    let (text, lines) = split(&note, &key.key);
    let time = check_cosignature(&lines[1], &text, &witness.seed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(time.abs_diff(now) < 60, "timestamped now: {time} vs {now}");
    assert!(metric(&app, "tlog_witness_quorum_total{result=\"met\"}").await >= 1);
    assert_eq!(
        metric(&app, "tlog_witness_quorum_total{result=\"missed\"}").await,
        0
    );

    // A restarted tlog forgets the witness's size: the witness's 409 teaches
    // it, and the retry carries a consistency proof from 3.
    let mut config = config_for(&app.database_url, &app.key_file);
    config.v2 = v2;
    app.stop().await;
    let app = spawn_with(config).await;
    let response = create(&app, &request()).await;
    assert_eq!(response.status(), 201);
    let note = wait_cosigned(&app, 4).await;
    let (text, lines) = split(&note, &key.key);
    check_cosignature(&lines[1], &text, &witness.seed);
    assert!(
        metric(&app, "tlog_witness_requests_total{witness=\"aics\"}").await >= 2,
        "old 0, then 409, then old 3 with a proof"
    );
    assert_eq!(metric(&app, "tlog_witness_failures_total").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_witness_cosigns_when_its_ca_is_trusted_and_not_otherwise() {
    // The same real witness, behind a TLS-terminating proxy with a private
    // CA's certificate: with v2.witness_ca_file tlog reaches it; without,
    // the handshake fails and fail-open creates go on uncosigned.
    let key = log_key();
    let witness = AicsWitness::new(&key.key.vkey());
    let dir = crate::conformance::tempdir();
    let ca = crate::tls::TestCa::new(&dir);
    let port = ca.front(&witness.url(), &["localhost"]).await;
    let policy = format!(
        "log {} https://{ORIGIN}\nwitness aics {} https://localhost:{port}\nquorum aics\n",
        key.key.vkey(),
        witness.vkey(),
    );

    let untrusting = spawn_with(v2_config(&key, &policy, false, 2000).await).await;
    assert_eq!(create(&untrusting, &request()).await.status(), 201);
    assert!(metric(&untrusting, "tlog_witness_failures_total").await >= 1);
    assert!(!served_checkpoint(&untrusting)
        .await
        .contains(&format!("\u{2014} {WITNESS_NAME} ")));
    untrusting.stop().await;

    let mut config = v2_config(&key, &policy, false, 2000).await;
    config.v2.witness_ca_file = Some(ca.pem_file.clone());
    let app = spawn_with(config).await;
    assert_eq!(create(&app, &request()).await.status(), 201);
    let note = wait_cosigned(&app, 1).await;
    let (text, lines) = split(&note, &key.key);
    check_cosignature(&lines[1], &text, &witness.seed);
    app.stop().await;
}

#[tokio::test]
async fn fail_closed_answers_503_until_the_quorum_cosigns() {
    let key = log_key();
    let mut witness = AicsWitness::new(&key.key.vkey());
    witness.stop();
    let policy = format!(
        "witness aics {} {}\nquorum aics\n",
        witness.vkey(),
        witness.url()
    );
    let app = spawn_with(v2_config(&key, &policy, true, 300).await).await;

    // Witness down: the entry is sequenced but not answered 201.
    let body = request();
    let started = std::time::Instant::now();
    let response = create(&app, &body).await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5), "a bounded wait");
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(response.headers()["x-log-index"], "0");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], 14, "UNAVAILABLE: {error}");
    // Its retry is still 503, not 409: the entry is not witnessed yet.
    let response = create(&app, &body).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-log-index"], "0");
    assert_eq!(app.log.checkpoint().size, 0, "the v1 log is untouched");
    // Nothing unwitnessed is served.
    assert!(!served_checkpoint(&app).await.contains(WITNESS_NAME));
    assert!(metric(&app, "tlog_witness_quorum_total{result=\"missed\"}").await >= 1);

    // Witness back: the retry learns its entry is in the (witnessed) log.
    witness.start();
    let mut status = 0;
    for _ in 0..10 {
        let response = create(&app, &body).await;
        status = response.status().as_u16();
        if status == 409 {
            assert_eq!(response.headers()["x-log-index"], "0");
            break;
        }
        assert_eq!(status, 503);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 409, "a witnessed duplicate is 409 with x-log-index");
    // And new creates get 201 with a cosigned checkpoint.
    let response = create(&app, &request()).await;
    assert_eq!(response.status(), 201);
    let tle: Value = response.json().await.unwrap();
    let envelope = tle["inclusionProof"]["checkpoint"]["envelope"]
        .as_str()
        .unwrap();
    let (text, lines) = split(envelope, &key.key);
    check_cosignature(&lines[1], &text, &witness.seed);
    let note = wait_cosigned(&app, 2).await;
    assert!(note.starts_with(&format!("{ORIGIN}\n2\n")));
    app.stop().await;
}

#[tokio::test]
async fn fail_open_answers_without_a_witness_and_counts_it() {
    let key = log_key();
    let witness = AicsWitness::new(&key.key.vkey());
    let dead = format!("http://127.0.0.1:{}", free_port());
    let policy = format!("witness down {} {dead}\nquorum down\n", witness.vkey());
    let app = spawn_with(v2_config(&key, &policy, false, 300).await).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let response = create(&app, &request()).await;
        assert_eq!(response.status(), 201);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded by the timeout"
        );
        let tle: Value = response.json().await.unwrap();
        let envelope = tle["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap();
        let (_, lines) = split(envelope, &key.key);
        assert_eq!(lines.len(), 1, "no cosignature: {envelope}");
    }
    // The checkpoint is published all the same, with the log's line only.
    let mut note = String::new();
    for _ in 0..40 {
        note = served_checkpoint(&app).await;
        if note.starts_with(&format!("{ORIGIN}\n3\n")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(note.starts_with(&format!("{ORIGIN}\n3\n")), "{note}");
    assert_eq!(split(&note, &key.key).1.len(), 1);
    assert!(metric(&app, "tlog_witness_quorum_total{result=\"missed\"}").await >= 1);
    assert!(
        metric(
            &app,
            "tlog_witness_failures_total{reason=\"transport\",witness=\"down\"}"
        )
        .await
            >= 1
    );
    app.stop().await;
}

/// Ways a witness breaks the protocol.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// 200 with bytes that are no signature lines.
    Garbage,
    /// 200 with a valid cosignature by another key of the same name.
    WrongKey,
    /// 200 with the witness key's cosignature, timestamped an hour ahead.
    FutureTime,
    /// 200 with the witness key's cosignature of another checkpoint.
    OtherCheckpoint,
    /// 200 with a body far over the answer cap.
    Oversized,
    /// Answers after the timeout.
    Slow,
    /// 409 naming a size larger than the log's.
    AheadConflict,
    /// 409 without the size content type.
    BareConflict,
    /// 500.
    Error,
}

/// Serves `mode` on a local port until the runtime ends; returns its URL.
async fn hostile_witness(mode: Hostile, seed: [u8; 32]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Some(body) = read_request(&mut stream).await else {
                    return;
                };
                let note = body.split_once("\n\n").map_or("", |(_, note)| note);
                let text = note.split_once("\n\n").map_or("", |(text, _)| text);
                let (status, content_type, answer): (&str, &str, Vec<u8>) = match mode {
                    Hostile::Garbage => ("200 OK", "text/plain", b"\x00\xffnot a line\n".to_vec()),
                    Hostile::WrongKey => {
                        let line = tlog::note::c2sp::cosign(
                            WITNESS_NAME,
                            &[0x77; 32],
                            1_767_225_600,
                            &format!("{text}\n"),
                        );
                        ("200 OK", "text/plain", line.to_bytes())
                    }
                    Hostile::FutureTime => {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let line = tlog::note::c2sp::cosign(
                            WITNESS_NAME,
                            &seed,
                            now + 3600,
                            &format!("{text}\n"),
                        );
                        ("200 OK", "text/plain", line.to_bytes())
                    }
                    Hostile::OtherCheckpoint => {
                        let line = tlog::note::c2sp::cosign(
                            WITNESS_NAME,
                            &seed,
                            1_767_225_600,
                            &format!("{text}\nextension\n"),
                        );
                        ("200 OK", "text/plain", line.to_bytes())
                    }
                    Hostile::Oversized => ("200 OK", "text/plain", vec![b'a'; 1 << 20]),
                    Hostile::Slow => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        ("200 OK", "text/plain", Vec::new())
                    }
                    Hostile::AheadConflict => {
                        ("409 Conflict", "text/x.tlog.size", b"1000000\n".to_vec())
                    }
                    Hostile::BareConflict => ("409 Conflict", "text/plain", b"1\n".to_vec()),
                    Hostile::Error => ("500 Internal Server Error", "text/plain", b"boom".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Some(body.to_owned());
            }
        }
    }
}

#[tokio::test]
async fn malformed_witness_answers_never_break_the_log() {
    let key = log_key();
    let witness = AicsWitness::new(&key.key.vkey());
    let modes = [
        Hostile::Garbage,
        Hostile::WrongKey,
        Hostile::FutureTime,
        Hostile::OtherCheckpoint,
        Hostile::Oversized,
        Hostile::Slow,
        Hostile::AheadConflict,
        Hostile::BareConflict,
        Hostile::Error,
    ];
    let mut policy = String::new();
    let mut names = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        // Each hostile witness at its own URL, under the real witness's key
        // (so a forged line would be checked against a key that exists).
        let url = hostile_witness(*mode, witness.seed).await;
        policy.push_str(&format!("witness h{i} {} {url}\n", witness.vkey()));
        names.push(format!("h{i}"));
    }
    policy.push_str(&format!(
        "witness aics {} {}\n",
        witness.vkey(),
        witness.url()
    ));
    // Quorum: the real witness and any one hostile one. Never met...
    policy.push_str(&format!("group hostile any {}\n", names.join(" ")));
    policy.push_str("group strict all aics hostile\nquorum strict\n");
    let app = spawn_with(v2_config(&key, &policy, false, 500).await).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let response = create(&app, &request()).await;
        assert_eq!(response.status(), 201);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    let mut note = String::new();
    for _ in 0..60 {
        note = served_checkpoint(&app).await;
        if note.starts_with(&format!("{ORIGIN}\n3\n")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...so fail-open publishes the log's line only, whatever came back.
    assert!(note.starts_with(&format!("{ORIGIN}\n3\n")), "{note}");
    assert_eq!(split(&note, &key.key).1.len(), 1, "{note}");
    for (i, reason) in [
        "malformed",
        "bad_cosignature",
        "bad_cosignature",
        "bad_cosignature",
        "malformed",
        "timeout",
        "conflict",
        "malformed",
        "status",
    ]
    .iter()
    .enumerate()
    {
        let needle = format!("tlog_witness_failures_total{{reason=\"{reason}\",witness=\"h{i}\"}}");
        assert!(metric(&app, &needle).await >= 1, "{:?}: {needle}", modes[i]);
    }
    // The log itself is fine: reads and proofs work.
    assert_eq!(app.get("/tile/0/000.p/3").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_policy_file_stops_start_up_naming_file_and_line() {
    let key = log_key();
    let mut config = test_config().await;
    let policy_file =
        std::env::temp_dir().join(format!("tlog-witness-policy-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(
        &policy_file,
        "# ok\nwitness w not-a-vkey http://127.0.0.1:1\nquorum w\n",
    )
    .unwrap();
    config.v2.key_file = Some(key.file.clone());
    config.v2.origin = Some(ORIGIN.into());
    config.v2.witness_policy = Some(policy_file.clone());
    let err = match tlog::app::Application::build(&config).await {
        Ok(_) => panic!("a bad policy must stop start-up"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains(&policy_file.display().to_string()), "{err}");
    assert!(err.contains("line 2"), "{err}");
}
