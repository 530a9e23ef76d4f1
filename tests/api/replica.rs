//! The read-only replica: a log with entries of every key type, exported,
//! served by `tlog replica`, must answer every read exactly as the
//! read-write server did; tampered files and forked snapshots are refused.

use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use tlog::config::Config;
use tlog::export::{Progress, SnapshotWriter};
use tlog::replica::{load_snapshot, Replica, TrustedKey};
use tlog::signing::{LogSigner, LogVerifier};

use crate::conformance::tempdir;
use crate::helpers::{only_entry, spawn_app, verify_entry, TestApp};

/// One client key of each kind hashedrekord accepts, with its hash.
enum AnyKey {
    Ecdsa(EcdsaKeyPair, &'static str),
    Rsa(RsaKeyPair),
    Ed25519(ed25519_dalek::SigningKey),
}

impl AnyKey {
    fn all() -> Vec<AnyKey> {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).unwrap();
        vec![
            AnyKey::Ecdsa(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap(),
                "sha256",
            ),
            AnyKey::Ecdsa(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_ASN1_SIGNING).unwrap(),
                "sha384",
            ),
            AnyKey::Ecdsa(
                EcdsaKeyPair::generate(&signature::ECDSA_P521_SHA512_ASN1_SIGNING).unwrap(),
                "sha512",
            ),
            AnyKey::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
            AnyKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)),
        ]
    }

    fn spki(&self) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer;
        match self {
            AnyKey::Ecdsa(k, _) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            AnyKey::Rsa(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            AnyKey::Ed25519(k) => {
                let mut der = vec![
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ];
                der.extend_from_slice(k.verifying_key().as_bytes());
                der
            }
        }
    }

    fn hashedrekord(&self, artifact: &[u8]) -> Value {
        let rng = SystemRandom::new();
        let (algorithm, digest, sig) = match self {
            AnyKey::Ecdsa(k, alg) => {
                let digest = match *alg {
                    "sha256" => Sha256::digest(artifact).to_vec(),
                    "sha384" => Sha384::digest(artifact).to_vec(),
                    _ => Sha512::digest(artifact).to_vec(),
                };
                (
                    *alg,
                    digest,
                    k.sign(&rng, artifact).unwrap().as_ref().to_vec(),
                )
            }
            AnyKey::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, artifact, &mut sig)
                    .unwrap();
                ("sha256", Sha256::digest(artifact).to_vec(), sig)
            }
            AnyKey::Ed25519(k) => {
                let mut pre = Sha512::new();
                pre.update(artifact);
                let sig = k.sign_prehashed(pre, None).unwrap().to_bytes().to_vec();
                ("sha512", Sha512::digest(artifact).to_vec(), sig)
            }
        };
        let pem = pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", self.spki()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": algorithm, "value": hex::encode(digest)}},
                "signature": {
                    "content": BASE64_STANDARD.encode(sig),
                    "publicKey": {"content": BASE64_STANDARD.encode(pem)}
                }
            }
        })
    }
}

/// Exports `app`'s log to a new file.
async fn export_app(app: &TestApp) -> PathBuf {
    let path = tempdir().join("db.jsonl");
    let mut out = Vec::new();
    tlog::export::export(app.log.store(), &mut out, &mut Progress::new("test", 0))
        .await
        .unwrap();
    std::fs::write(&path, out).unwrap();
    path
}

fn replica_config(db: &Path, public_key: Option<&Path>) -> Config {
    use figment::providers::{Format, Yaml};
    let key = public_key.map_or(String::new(), |p| {
        format!("  public_key: {}\n", p.display())
    });
    let yaml = format!(
        "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nreplica:\n  db: {}\n{key}  poll_interval_ms: 100\n",
        db.display()
    );
    let config: Config = figment::Figment::new()
        .merge(Yaml::string(&yaml))
        .extract()
        .unwrap();
    config.validate().unwrap();
    config
}

fn write_public_key(verifier: &LogVerifier) -> PathBuf {
    let path = tempdir().join("log.pub");
    std::fs::write(&path, verifier.public_key_pem()).unwrap();
    path
}

struct RunningReplica {
    address: String,
    replica_state: actix_web::web::Data<tlog::api::ApiState>,
    reloader: tlog::replica::Reloader,
    handle: actix_web::dev::ServerHandle,
}

async fn spawn_replica(config: &Config) -> RunningReplica {
    let replica = Replica::build(config).await.expect("replica starts");
    let running = RunningReplica {
        address: format!("http://127.0.0.1:{}", replica.port()),
        replica_state: replica.state().clone(),
        reloader: replica.reloader().clone(),
        handle: replica.server_handle(),
    };
    tokio::spawn(replica.run_until_stopped());
    running
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Vec<u8>) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> (u16, Vec<u8>) {
    let r = client.post(url).json(body).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn replica_answers_every_read_as_the_log_did() {
    let app = spawn_app().await;
    let mut proposals = Vec::new();
    for (i, key) in AnyKey::all().iter().enumerate() {
        for j in 0..2 {
            let proposal = key.hashedrekord(format!("artifact {i}/{j}").as_bytes());
            assert_eq!(app.create(&proposal).await.status(), 201, "key type {i}");
            proposals.push(proposal);
        }
    }
    let size = app.log.checkpoint().size;
    assert_eq!(size, 10);
    let db = export_app(&app).await;
    let public_key = write_public_key(&app.verifier);
    let replica = spawn_replica(&replica_config(&db, Some(&public_key))).await;
    let client = reqwest::Client::new();
    let both = |path: &str| (app.url(path), format!("{}{path}", replica.address));

    let mut paths = vec![
        "/api/v1/log".to_owned(),
        "/api/v1/log/publicKey".to_owned(),
        format!("/api/v1/log/publicKey?treeID={}", app.log.info().tree_id),
        "/api/v1/log/entries?logIndex=10".to_owned(),
        "/api/v1/log/proof?lastSize=11".to_owned(),
    ];
    for first in 1..=size {
        paths.push(format!(
            "/api/v1/log/proof?firstSize={first}&lastSize={size}"
        ));
    }
    let mut ids = Vec::new();
    for index in 0..size {
        paths.push(format!("/api/v1/log/entries?logIndex={index}"));
        let (status, body) = get(
            &client,
            both("").1 + &format!("/api/v1/log/entries?logIndex={index}"),
        )
        .await;
        assert_eq!(status, 200);
        let (id, entry) = only_entry(&serde_json::from_slice(&body).unwrap());
        verify_entry(&app, &id, &entry);
        paths.push(format!("/api/v1/log/entries/{id}"));
        paths.push(format!("/api/v1/log/entries/{}", &id[16..]));
        ids.push(id);
    }
    for path in &paths {
        let (rw, ro) = both(path);
        let (a, b) = (get(&client, rw).await, get(&client, ro).await);
        assert_eq!(a, b, "GET {path} differs");
    }
    let mut searches = vec![
        (
            "/api/v1/log/entries/retrieve",
            json!({"entryUUIDs": ids[..5]}),
        ),
        (
            "/api/v1/log/entries/retrieve",
            json!({"logIndexes": [0, 3, 9, 10]}),
        ),
        (
            "/api/v1/log/entries/retrieve",
            json!({"entries": proposals[..3]}),
        ),
    ];
    for proposal in &proposals {
        let hash = &proposal["spec"]["data"]["hash"];
        let algorithm = hash["algorithm"].as_str().unwrap();
        // Rekor's search schema takes SHA-1, SHA-256 and SHA-512 digests only.
        if algorithm != "sha384" {
            let value = format!("{algorithm}:{}", hash["value"].as_str().unwrap());
            searches.push(("/api/v1/index/retrieve", json!({"hash": value})));
        }
        searches.push((
            "/api/v1/index/retrieve",
            json!({"publicKey": {"format": "x509", "content": proposal["spec"]["signature"]["publicKey"]["content"]}}),
        ));
    }
    for (path, body) in &searches {
        let (rw, ro) = both(path);
        let (a, b) = (post(&client, rw, body).await, post(&client, ro, body).await);
        assert_eq!(a.0, 200, "{path} {body}");
        assert_eq!(a, b, "POST {path} {body} differs");
        assert_ne!(a.1, b"[]\n", "{path} {body} found something");
    }

    // Writes are refused with a JSON 405.
    let r = client
        .post(format!("{}/api/v1/log/entries", replica.address))
        .json(&AnyKey::all()[0].hashedrekord(b"new"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 405);
    assert!(
        body["message"].as_str().unwrap().contains("read-only"),
        "{body}"
    );
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(
            get(&client, format!("{}{probe}", replica.address)).await.0,
            200
        );
    }
    replica.handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn postgres_export_import_export_is_byte_identical() {
    let app = spawn_app().await;
    for (i, key) in AnyKey::all().iter().enumerate() {
        assert_eq!(
            app.create(&key.hashedrekord(format!("x{i}").as_bytes()))
                .await
                .status(),
            201
        );
    }
    let first = std::fs::read(export_app(&app).await).unwrap();
    let path = tempdir().join("db.jsonl");
    std::fs::write(&path, &first).unwrap();
    let key_file = app.key_file.clone();
    app.stop().await;

    let url = crate::helpers::create_database().await;
    let config = crate::helpers::config_for(&url, &key_file);
    tlog::app::import(&config, &path).await.unwrap();
    // Import into a log that is not empty is refused.
    let again = tlog::app::import(&config, &path).await.unwrap_err();
    assert!(
        format!("{again:#}").contains("already holds a log"),
        "{again:#}"
    );
    // The imported log opens (tiles rebuild the tree) and exports the same bytes.
    let imported = crate::helpers::spawn_with(config).await;
    let second = std::fs::read(export_app(&imported).await).unwrap();
    assert_eq!(first, second);
    let (_, body) = get(
        &imported.client,
        imported.url("/api/v1/log/entries?logIndex=4"),
    )
    .await;
    let (id, entry) = only_entry(&serde_json::from_slice(&body).unwrap());
    verify_entry(&imported, &id, &entry);
    imported.stop().await;
}

#[tokio::test]
async fn import_refuses_a_file_signed_by_another_key_and_writes_nothing() {
    let (path, _) = write_snapshot(&new_key(), 42, 5);
    let url = crate::helpers::create_database().await;
    let other_key = tempdir().join("other.pem");
    std::fs::write(&other_key, LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    let config = crate::helpers::config_for(&url, &other_key);
    let err = tlog::app::import(&config, &path).await.unwrap_err();
    assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    let store = tlog::app::connect(&config).await.unwrap();
    use tlog::storage::LogReader;
    assert_eq!(store.identity().await.unwrap(), None);
}

fn new_key() -> String {
    LogSigner::generate_pkcs8_pem().unwrap()
}

fn verifier_of(pem: &str) -> LogVerifier {
    LogSigner::from_pkcs8_pem(pem).unwrap().verifier()
}

/// A signed snapshot of `n` synthetic entries; returns its path and lines.
fn write_snapshot(key: &str, tree_id: i64, n: u64) -> (PathBuf, Vec<String>) {
    write_snapshot_with(
        key,
        tree_id,
        (0..n).map(|i| format!("{{\"n\":{i}}}")).collect(),
    )
}

/// A signed snapshot of one real `hashedrekord` entry per artifact (signed
/// by one fixed Ed25519 client key, so the same artifacts make the same
/// entries), with the index keys admission gives them.
fn write_snapshot_with(key: &str, tree_id: i64, artifacts: Vec<String>) -> (PathBuf, Vec<String>) {
    let client = AnyKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let entries = artifacts
        .iter()
        .map(|artifact| {
            let proposal = client.hashedrekord(artifact.as_bytes());
            let entry =
                tlog::entries::parse_proposed(&serde_json::to_vec(&proposal).unwrap()).unwrap();
            (entry.canonical, entry.index_keys)
        })
        .collect();
    write_raw_snapshot(key, tree_id, entries)
}

/// The body of entry `index` in `lines` of a snapshot.
fn body_in(lines: &[String], index: u64) -> Vec<u8> {
    let line: Value = serde_json::from_str(&lines[index as usize + 1]).unwrap();
    BASE64_STANDARD
        .decode(line["body"].as_str().unwrap())
        .unwrap()
}

/// A signed snapshot of `entries` as given (bodies need not be entries):
/// for the file format's own checks.
fn write_raw_snapshot(
    key: &str,
    tree_id: i64,
    entries: Vec<(Vec<u8>, Vec<String>)>,
) -> (PathBuf, Vec<String>) {
    let signer = LogSigner::from_pkcs8_pem(key).unwrap();
    let mut writer = SnapshotWriter::new(Vec::new(), signer, "replica.test", tree_id).unwrap();
    for (body, keys) in entries {
        writer.push(body, 1_700_000_000, &keys).unwrap();
    }
    let (bytes, _) = writer.finish().unwrap();
    let path = tempdir().join("db.jsonl");
    std::fs::write(&path, &bytes).unwrap();
    let lines = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (path, lines)
}

/// `lines` with the index keys of line `at` (0-based) edited, kept sorted
/// as the format requires.
fn edit_keys(lines: &[String], at: usize, edit: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
    let mut lines = lines.to_vec();
    let mut record: Value = serde_json::from_str(&lines[at]).unwrap();
    let mut keys: Vec<String> = serde_json::from_value(record["indexKeys"].take()).unwrap();
    edit(&mut keys);
    keys.sort();
    record["indexKeys"] = serde_json::to_value(keys).unwrap();
    lines[at] = serde_json::to_string(&record).unwrap();
    lines
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Why the file format's checks alone (no SET or index key checks) refuse
/// `path`.
fn format_refusal(path: &Path, key: &str) -> String {
    let verifier = verifier_of(key);
    match tlog::storage::file::FileStore::open_snapshot(
        path,
        tlog::storage::jsonl::KeyPolicy::Trusted(&verifier),
        tlog::storage::file::Entries::OnDisk,
    ) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(err) => err.to_string(),
    }
}

async fn refusal(path: &Path, key: &str) -> String {
    let trusted = TrustedKey::Configured(verifier_of(key));
    match load_snapshot(path, &trusted, 1 << 20, Default::default()).await {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test]
async fn tampered_snapshots_are_refused_naming_the_line() {
    let key = new_key();
    let (path, lines) = write_snapshot(&key, 7, 6);
    // Lines: 1 header, 2..=7 entries 0..=5, 8 checkpoint.
    assert_eq!(lines.len(), 8);
    let trusted = TrustedKey::Configured(verifier_of(&key));
    let log = load_snapshot(&path, &trusted, 1 << 20, Default::default())
        .await
        .expect("the untouched file loads");
    assert_eq!(log.checkpoint().size, 6);

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "flipped body byte",
            {
                let mut l = lines.clone();
                l[3] = l[3].replacen("\"body\":\"ey", "\"body\":\"fy", 1);
                l
            },
            "line 4: entry 2: its SET does not verify",
        ),
        (
            "dropped line",
            {
                let mut l = lines.clone();
                l.remove(4);
                l
            },
            "line 5: expected entry 3, found entry 4",
        ),
        (
            "duplicated line",
            {
                let mut l = lines.clone();
                l.insert(4, l[3].clone());
                l
            },
            "line 5: expected entry 3, found entry 2",
        ),
        (
            "reordered lines",
            {
                let mut l = lines.clone();
                l.swap(2, 3);
                l
            },
            "line 3: expected entry 1, found entry 2",
        ),
        (
            "truncated file",
            {
                let mut l = lines.clone();
                l.pop();
                l
            },
            "line 2: 6 entries after the last checkpoint",
        ),
        (
            "header not first",
            {
                let mut l = lines.clone();
                l.swap(0, 1);
                l
            },
            "line 1: the first line must be the log record",
        ),
        (
            "not JSON",
            {
                let mut l = lines.clone();
                l[2] = "{\"type\":\"entry\",".into();
                l
            },
            "line 3: not a JSON record",
        ),
        (
            "another entry's SET",
            {
                let mut l = lines.clone();
                let set = |line: &str| serde_json::from_str::<Value>(line).unwrap()["set"].clone();
                let mut record: Value = serde_json::from_str(&l[4]).unwrap();
                record["set"] = set(&l[5]);
                l[4] = serde_json::to_string(&record).unwrap();
                l
            },
            "entry 3: its SET does not verify",
        ),
        (
            "a changed integratedTime",
            {
                let mut l = lines.clone();
                let mut record: Value = serde_json::from_str(&l[6]).unwrap();
                record["integratedTime"] = Value::from(1_700_000_001);
                l[6] = serde_json::to_string(&record).unwrap();
                l
            },
            "line 7: entry 5: its SET does not verify",
        ),
        (
            "a removed index key",
            edit_keys(&lines, 3, |keys| {
                keys.pop();
            }),
            "line 4: entry 2: index key",
        ),
        (
            "an added index key",
            edit_keys(&lines, 5, |keys| keys.push("planted@example.com".into())),
            "line 6: entry 4: index key \"planted@example.com\" is in the file, but its body does not yield it",
        ),
    ];
    for (what, tampered, expected) in cases {
        write_lines(&path, &tampered);
        let err = refusal(&path, &key).await;
        assert!(err.contains(expected), "{what}: {err}");
    }

    // A file cut mid-line.
    let whole = lines.join("\n") + "\n";
    std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
    let err = refusal(&path, &key).await;
    assert!(err.contains("line 8: incomplete last line"), "{err}");

    // The same entries signed by another key: refused under ours.
    let other = new_key();
    let (forged, _) = write_snapshot_with(
        &other,
        7,
        (0..6).map(|i| format!("{{\"n\":{i}}}")).collect(),
    );
    let err = refusal(&forged, &key).await;
    assert!(err.contains("line 1: the file's public key"), "{err}");
    // ...and a checkpoint line from the other key spliced into our file.
    let (_, other_lines) = write_snapshot_with(
        &other,
        7,
        (0..6).map(|i| format!("{{\"n\":{i}}}")).collect(),
    );
    let mut spliced = lines.clone();
    spliced[7] = other_lines[7].clone();
    write_lines(&path, &spliced);
    let err = refusal(&path, &key).await;
    assert!(
        err.contains("line 8: the checkpoint is not signed by the log key"),
        "{err}"
    );
    // Trusting the embedded key is what accepts the other key's own file.
    assert!(
        load_snapshot(&forged, &TrustedKey::Embedded, 1 << 20, Default::default())
            .await
            .is_ok()
    );
}

/// The loader parses in blocks of a few MiB on worker threads and checks
/// order on one: a file of several blocks, with a line longer than a block,
/// loads whole, and problems deep inside it name their own line.
#[tokio::test]
async fn snapshots_of_many_parse_blocks_are_checked_line_by_line() {
    let key = new_key();
    let pad = "x".repeat(1500);
    let mut bodies: Vec<String> = (0..6000)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{pad}\"}}"))
        .collect();
    bodies[3000] = format!("{{\"big\":\"{}\"}}", "y".repeat(5 << 20));
    let big_len = bodies[3000].len();
    // Not entries: this is about the file format (the SETs and keys of
    // entries are checked in the other tests).
    let (path, lines) = write_raw_snapshot(
        &key,
        11,
        bodies
            .into_iter()
            .map(|b| (b.into_bytes(), Vec::new()))
            .collect(),
    );
    assert!(std::fs::metadata(&path).unwrap().len() > 16 << 20);
    let verifier = verifier_of(&key);
    let store = tlog::storage::file::FileStore::open_snapshot(
        &path,
        tlog::storage::jsonl::KeyPolicy::Trusted(&verifier),
        tlog::storage::file::Entries::OnDisk,
    )
    .expect("the untouched file loads");
    let log = tlog::log::Log::open_read_only(
        tlog::storage::Store::File(store),
        &verifier,
        tlog::log::CacheBytes {
            entries: 1 << 20,
            tiles: 1 << 20,
        },
        Default::default(),
        0,
    )
    .await
    .unwrap();
    assert_eq!(log.checkpoint().size, 6000);
    for index in [0, 2999, 3000, 3001, 5999] {
        let entry = log.entry(index).await.unwrap().expect("entry is served");
        assert_eq!(entry.index, index);
        assert_eq!(
            log.leaf_hash(index).await.unwrap(),
            Some(tlog::merkle::leaf_hash(&entry.body))
        );
    }
    assert_eq!(log.entry(3000).await.unwrap().unwrap().body.len(), big_len);
    drop(log);

    // Line of entry i is i + 2; the checkpoint is line 6002.
    let mut swapped = lines.clone();
    swapped.swap(5001, 5002);
    write_lines(&path, &swapped);
    let err = format_refusal(&path, &key);
    assert!(
        err.contains("line 5002: expected entry 5000, found entry 5001"),
        "{err}"
    );

    let mut garbled = lines.clone();
    garbled[4499] = "{\"type\":\"entry\",".into();
    write_lines(&path, &garbled);
    let err = format_refusal(&path, &key);
    assert!(err.contains("line 4500: not a JSON record"), "{err}");
    assert!(
        err.contains("covered by the checkpoint on line 6002"),
        "{err}"
    );

    let whole = lines.join("\n") + "\n";
    // Cut in the middle of the last entry's line, the checkpoint gone.
    let cut = lines[6001].len() + 1 + 100;
    std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
    let err = format_refusal(&path, &key);
    assert!(err.contains("line 6001: incomplete last line"), "{err}");
}

/// A replica keeps the entries it verified in memory: overwriting the file
/// in place afterwards changes nothing it serves.
#[tokio::test]
async fn a_loaded_snapshot_serves_its_entries_from_memory() {
    use std::os::unix::fs::FileExt;
    use tlog::storage::LogReader;

    let key = new_key();
    let (path, lines) = write_snapshot(&key, 12, 50);
    let trusted = TrustedKey::Configured(verifier_of(&key));
    let log = tlog::replica::load_snapshot_with(
        &path,
        &trusted,
        tlog::storage::file::Entries::InMemory,
        1 << 20,
        Default::default(),
    )
    .await
    .unwrap();
    assert!(log.store().entries_in_memory());
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&vec![b'#'; usize::try_from(len).unwrap()], 0)
        .unwrap();
    for index in 0..50 {
        let entry = log.entry(index).await.unwrap().expect("served");
        assert_eq!(entry.index, index);
        assert_eq!(entry.body, body_in(&lines, index));
        assert_eq!(
            log.leaf_hash(index).await.unwrap(),
            Some(tlog::merkle::leaf_hash(&entry.body))
        );
        assert_eq!(entry.integrated_time, 1_700_000_000);
        let line: Value = serde_json::from_str(&lines[index as usize + 1]).unwrap();
        let set = BASE64_STANDARD
            .decode(line["set"].as_str().unwrap())
            .unwrap();
        assert_eq!(entry.set, set);
    }
    assert!(log.entry(50).await.unwrap().is_none());
}

#[tokio::test]
async fn replica_refuses_to_start_without_a_trusted_key_or_on_a_bad_file() {
    let key = new_key();
    let (path, mut lines) = write_snapshot(&key, 9, 3);
    let err = Replica::build(&replica_config(&path, None))
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("--public-key"), "{err:#}");
    lines.remove(2);
    write_lines(&path, &lines);
    let public_key = write_public_key(&verifier_of(&key));
    let err = Replica::build(&replica_config(&path, Some(&public_key)))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("line 3: expected entry 1, found entry 2"),
        "{err:#}"
    );
}

#[tokio::test]
async fn replica_reloads_only_consistent_successors() {
    let key = new_key();
    let bodies = |n: u64, fork_at: u64| -> Vec<String> {
        (0..n)
            .map(|i| {
                if i >= fork_at {
                    format!("{{\"fork\":{i}}}")
                } else {
                    format!("{{\"n\":{i}}}")
                }
            })
            .collect()
    };
    let (path, _) = write_snapshot_with(&key, 11, bodies(5, 99));
    let public_key = write_public_key(&verifier_of(&key));
    let replica = spawn_replica(&replica_config(&path, Some(&public_key))).await;
    let size = || replica.replica_state.log().checkpoint().size;
    assert_eq!(size(), 5);
    let replace = |bodies: Vec<String>| {
        let (new, _) = write_snapshot_with(&key, 11, bodies);
        std::fs::rename(new, &path).unwrap();
    };

    // A fork of the served history (same key and tree, entry 2 differs).
    replace(bodies(8, 2));
    let err = replica.reloader.reload().await.unwrap_err();
    assert!(format!("{err:#}").contains("not consistent"), "{err:#}");
    assert_eq!(size(), 5);
    // A smaller snapshot, and another log, are refused too.
    replace(bodies(4, 99));
    assert!(format!("{:#}", replica.reloader.reload().await.unwrap_err()).contains("fewer"));
    let (other, _) = write_snapshot_with(&key, 12, bodies(6, 99));
    std::fs::rename(other, &path).unwrap();
    assert!(format!("{:#}", replica.reloader.reload().await.unwrap_err()).contains("another log"));
    // A tampered file is refused and the old snapshot keeps serving.
    std::fs::write(&path, b"{}\n").unwrap();
    assert!(replica.reloader.reload().await.is_err());
    assert_eq!(size(), 5);
    let client = reqwest::Client::new();
    assert_eq!(
        get(
            &client,
            format!("{}/api/v1/log/entries?logIndex=4", replica.address)
        )
        .await
        .0,
        200
    );

    // A consistent successor is picked up from the file change alone.
    replace(bodies(9, 99));
    for _ in 0..100 {
        if size() == 9 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(size(), 9, "the poller reloaded the grown snapshot");
    let (status, body) = get(
        &client,
        format!("{}/api/v1/log/entries?logIndex=8", replica.address),
    )
    .await;
    assert_eq!(status, 200);
    let (_, entry) = only_entry(&serde_json::from_slice(&body).unwrap());
    assert_eq!(entry["verification"]["inclusionProof"]["treeSize"], 9);
    replica.handle.stop(true).await;
}

/// `tlog replica` as a process: a refused reload is logged with its reason
/// (on stderr, as a JSON line), and the old snapshot keeps serving.
#[tokio::test]
async fn a_refused_reload_is_logged_with_its_reason() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let key = new_key();
    let (path, _) = write_snapshot(&key, 21, 5);
    let public_key = write_public_key(&verifier_of(&key));
    let port = crate::process::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlog"))
        .arg("replica")
        .arg("--db")
        .arg(&path)
        .arg("--public-key")
        .arg(&public_key)
        .env_clear()
        .env("TLOG_LISTEN", format!("127.0.0.1:{port}"))
        .env("TLOG_METRICS_LISTEN", "127.0.0.1:0")
        .env("TLOG_REPLICA__POLL_INTERVAL_MS", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tlog binary starts");
    let (lines, received) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next_line_with = |needle: &str| -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = received
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
    };
    next_line_with("tlog replica serving");

    // A fork of the served history, picked up by the file poller.
    let forked = (0..8)
        .map(|i| {
            if i >= 2 {
                format!("{{\"fork\":{i}}}")
            } else {
                format!("{{\"n\":{i}}}")
            }
        })
        .collect();
    let (fork, _) = write_snapshot_with(&key, 21, forked);
    std::fs::rename(fork, &path).unwrap();
    let refused = next_line_with("kept serving the old snapshot");
    assert_eq!(refused["level"], "ERROR", "{refused}");
    let error = refused["fields"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("not consistent"), "{refused}");

    let (status, body) = get(
        &reqwest::Client::new(),
        format!("http://127.0.0.1:{port}/api/v1/log"),
    )
    .await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["treeSize"], 5);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_replica_refuses_writes_with_405_before_reading_their_body() {
    let key = new_key();
    let (path, _) = write_snapshot(&key, 9, 3);
    let public_key = write_public_key(&verifier_of(&key));
    let mut config = replica_config(&path, Some(&public_key));
    config.max_request_body = 1024;
    let replica = spawn_replica(&config).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/log/entries", replica.address);
    // Over the body limit, of another media type, or not JSON at all: none
    // of it is read or validated, so none of it costs the replica anything.
    let oversized = vec![b'['; 4096];
    for (content_type, body) in [
        ("application/json", oversized),
        ("text/plain", b"hello".to_vec()),
        ("application/json", b"{not json".to_vec()),
    ] {
        let r = client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{content_type}");
        assert_eq!(r.headers()["allow"], "GET");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], 405);
        assert!(
            body["message"].as_str().unwrap().contains("read-only"),
            "{body}"
        );
    }
    // The reads are still there.
    let r = client
        .get(format!("{url}?logIndex=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    replica.handle.stop(true).await;
}

#[tokio::test]
async fn a_replica_applies_the_header_and_body_timeouts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = new_key();
    let (path, _) = write_snapshot(&key, 9, 3);
    let public_key = write_public_key(&verifier_of(&key));
    let mut config = replica_config(&path, Some(&public_key));
    config.request_header_timeout_ms = 300;
    config.request_body_timeout_ms = 300;
    let replica = spawn_replica(&config).await;
    let addr = replica.address.trim_start_matches("http://").to_owned();
    // A head that never ends is cut off at the configured 300 ms (the
    // default is 5 s), and a search body that never ends likewise.
    for partial in [
        "GET /ping HTTP/1.1\r\nHost: localhost\r\n".to_owned(),
        "POST /api/v1/log/entries/retrieve HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            .to_owned(),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(partial.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            stream.read_to_end(&mut answer),
        )
        .await
        .is_ok();
        let answer = String::from_utf8_lossy(&answer);
        assert!(closed, "{partial:?} is cut off in time");
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{partial:?}: {answer:?}"
        );
    }
    replica.handle.stop(true).await;
}

/// Builds a replica of `path` with `state_dir` (and optionally a pinned
/// checkpoint), as a restarted pod with the same volume would, and returns
/// why it refused to start, or `None` if it started.
async fn restart_with(
    path: &Path,
    public_key: &Path,
    state_dir: &Path,
    min_checkpoint: Option<&Path>,
) -> Option<String> {
    let mut config = replica_config(path, Some(public_key));
    config.replica.state_dir = Some(state_dir.to_owned());
    config.replica.min_checkpoint = min_checkpoint.map(Path::to_owned);
    match Replica::build(&config).await {
        Ok(replica) => {
            let handle = replica.server_handle();
            let running = tokio::spawn(replica.run_until_stopped());
            handle.stop(false).await;
            let _ = running.await;
            None
        }
        Err(err) => Some(format!("{err:#}")),
    }
}

#[tokio::test]
async fn after_a_restart_the_replica_refuses_an_older_or_forked_snapshot() {
    let key = new_key();
    let public_key = write_public_key(&verifier_of(&key));
    let state_dir = tempdir();
    let bodies = |n: u64, fork_at: u64| -> Vec<String> {
        (0..n)
            .map(|i| {
                if i >= fork_at {
                    format!("{{\"fork\":{i}}}")
                } else {
                    format!("{{\"n\":{i}}}")
                }
            })
            .collect()
    };
    let (path, _) = write_snapshot_with(&key, 21, bodies(6, 99));
    assert_eq!(
        restart_with(&path, &public_key, &state_dir, None).await,
        None
    );
    let mark = tlog::replica::HighWaterMark::load(&state_dir)
        .unwrap()
        .unwrap();
    assert_eq!(mark.size, 6);

    // A new pod, the same volume: an older prefix, validly signed.
    let (older, _) = write_snapshot_with(&key, 21, bodies(4, 99));
    let err = restart_with(&older, &public_key, &state_dir, None)
        .await
        .expect("refused");
    assert!(err.contains("refusing a rollback"), "{err}");
    // A longer snapshot the same key signed, that forks at entry 3.
    let (forked, _) = write_snapshot_with(&key, 21, bodies(8, 3));
    let err = restart_with(&forked, &public_key, &state_dir, None)
        .await
        .expect("refused");
    assert!(err.contains("a fork"), "{err}");
    // Another log signed with the same key.
    let (other, _) = write_snapshot_with(&key, 22, bodies(8, 99));
    let err = restart_with(&other, &public_key, &state_dir, None)
        .await
        .expect("refused");
    assert!(err.contains("another log"), "{err}");
    // The mark is unchanged by the refusals; a consistent successor
    // starts and raises it.
    assert_eq!(
        tlog::replica::HighWaterMark::load(&state_dir)
            .unwrap()
            .unwrap(),
        mark
    );
    let (newer, _) = write_snapshot_with(&key, 21, bodies(9, 99));
    assert_eq!(
        restart_with(&newer, &public_key, &state_dir, None).await,
        None
    );
    assert_eq!(
        tlog::replica::HighWaterMark::load(&state_dir)
            .unwrap()
            .unwrap()
            .size,
        9
    );
    // Without the volume there is no memory: the older file would start.
    assert_eq!(
        restart_with(&older, &public_key, &tempdir(), None).await,
        None
    );
}

#[tokio::test]
async fn a_pinned_min_checkpoint_must_be_extended() {
    let key = new_key();
    let public_key = write_public_key(&verifier_of(&key));
    let bodies = |n: u64| (0..n).map(|i| format!("{{\"n\":{i}}}")).collect::<Vec<_>>();
    let (five, lines) = write_snapshot_with(&key, 31, bodies(5));
    let note: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let pin = tempdir().join("min.checkpoint");
    std::fs::write(&pin, note["note"].as_str().unwrap()).unwrap();
    // The pinned snapshot itself and a successor start; a prefix does not.
    assert_eq!(
        restart_with(&five, &public_key, &tempdir(), Some(&pin)).await,
        None
    );
    let (seven, _) = write_snapshot_with(&key, 31, bodies(7));
    assert_eq!(
        restart_with(&seven, &public_key, &tempdir(), Some(&pin)).await,
        None
    );
    let (three, _) = write_snapshot_with(&key, 31, bodies(3));
    let err = restart_with(&three, &public_key, &tempdir(), Some(&pin))
        .await
        .expect("refused");
    assert!(err.contains("replica.min_checkpoint"), "{err}");
    // A pin signed by another key is an error, not a silent pass.
    let other = new_key();
    let (_, other_lines) = write_snapshot_with(&other, 31, bodies(5));
    let note: serde_json::Value = serde_json::from_str(other_lines.last().unwrap()).unwrap();
    std::fs::write(&pin, note["note"].as_str().unwrap()).unwrap();
    let err = restart_with(&seven, &public_key, &tempdir(), Some(&pin))
        .await
        .expect("refused");
    assert!(err.contains("does not verify"), "{err}");
}

#[tokio::test]
async fn an_interrupted_import_is_continued_where_it_stopped() {
    let key = new_key();
    let bodies: Vec<String> = (0..8200).map(|i| format!("{{\"n\":{i}}}")).collect();
    // The database as an import of `full` leaves it after its first chunk.
    let (prefix, _) = write_snapshot_with(&key, 42, bodies[..8192].to_vec());
    let (full, _) = write_snapshot_with(&key, 42, bodies);
    let key_file = tempdir().join("key.pem");
    std::fs::write(&key_file, &key).unwrap();
    let config = crate::helpers::config_for(&crate::helpers::create_database().await, &key_file);
    tlog::app::import(&config, &prefix).await.unwrap();

    tlog::app::import(&config, &full).await.unwrap();
    let expected = tlog::export::verify_file(&full, &verifier_of(&key))
        .unwrap()
        .checkpoint;
    let store = tlog::app::connect(&config).await.unwrap();
    use tlog::storage::LogReader;
    assert_eq!(
        store.checkpoint().await.unwrap(),
        Some(expected),
        "the file's own"
    );
    let app = crate::helpers::spawn_with(config).await;
    let (_, body) = get(&app.client, app.url("/api/v1/log/entries?logIndex=8199")).await;
    let (id, entry) = only_entry(&serde_json::from_slice(&body).unwrap());
    verify_entry(&app, &id, &entry);
    app.stop().await;
}

#[tokio::test]
async fn import_refuses_to_continue_a_log_that_is_not_the_files_prefix() {
    let key = new_key();
    let (other, _) = write_snapshot_with(&key, 42, vec!["{\"other\":1}".to_owned()]);
    let (path, _) = write_snapshot(&key, 42, 5);
    let key_file = tempdir().join("key.pem");
    std::fs::write(&key_file, &key).unwrap();
    let config = crate::helpers::config_for(&crate::helpers::create_database().await, &key_file);
    tlog::app::import(&config, &other).await.unwrap();
    let err = tlog::app::import(&config, &path).await.unwrap_err();
    assert!(format!("{err:#}").contains("inside a chunk"), "{err:#}");
}

/// By default a replica reads entries back from the file: nothing but the
/// index stays in memory, and a file overwritten under it gives errors,
/// never another entry.
#[tokio::test]
async fn a_loaded_snapshot_serves_its_entries_from_the_file() {
    use std::os::unix::fs::FileExt;
    use tlog::storage::LogReader;

    let key = new_key();
    let (path, lines) = write_snapshot(&key, 13, 40);
    let trusted = TrustedKey::Configured(verifier_of(&key));
    // No entry cache: every read goes to the file.
    let log = load_snapshot(&path, &trusted, 0, Default::default())
        .await
        .unwrap();
    assert!(!log.store().entries_in_memory());
    for index in 0..40 {
        let entry = log.entry(index).await.unwrap().expect("served");
        assert_eq!(entry.body, body_in(&lines, index));
    }
    // Same length, other bytes: entry 5's body changed in place.
    let mut changed = lines.clone();
    changed[6] = changed[6].replacen("\"body\":\"ey", "\"body\":\"fy", 1);
    assert_ne!(changed[6], lines[6]);
    let bytes = changed.join("\n") + "\n";
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(bytes.as_bytes(), 0)
        .unwrap();
    let err = log
        .entry(5)
        .await
        .expect_err("a changed line is not served");
    assert!(format!("{err}").contains("entry 5"), "{err}");
    assert_eq!(
        log.entry(4).await.unwrap().unwrap().body,
        body_in(&lines, 4)
    );
}

/// issue 15: after a restart with the same state volume, the replica
/// refuses each tamper `tlog verify` catches, naming the line, and the
/// high-water mark stays where it was.
/// Waits until the index cache the first (cold) load writes in the
/// background is in `state_dir`.
async fn wait_for_index_cache(state_dir: &Path) -> PathBuf {
    let cache = state_dir.join(tlog::storage::file::INDEX_CACHE_FILE);
    for _ in 0..200 {
        if cache.exists() {
            return cache;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no index cache was written to {}", state_dir.display());
}

/// Starts a replica of `path` with `state_dir` and returns how it loaded
/// (`warm`, `cold`), or why it refused to start.
async fn start_kind(
    path: &Path,
    public_key: &Path,
    state_dir: &Path,
) -> Result<&'static str, String> {
    let mut config = replica_config(path, Some(public_key));
    config.replica.state_dir = Some(state_dir.to_owned());
    let replica = Replica::build(&config)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let log = replica.state().log();
    let loads = &log.metrics().replica_loads;
    let kind = match (
        loads.with_label_values(&["warm"]).get(),
        loads.with_label_values(&["cold"]).get(),
    ) {
        (1, 0) => "warm",
        (0, 1) => "cold",
        other => panic!("one load counted, not {other:?}"),
    };
    let handle = replica.server_handle();
    let running = tokio::spawn(replica.run_until_stopped());
    handle.stop(false).await;
    let _ = running.await;
    Ok(kind)
}

/// The artifact digest key (`sha256:…`) a snapshot's entry line lists in
/// its `indexKeys`; `None` for a line without them (the header, a
/// checkpoint).
fn artifact_key(line: &str) -> Option<String> {
    let record: Value = serde_json::from_str(line).unwrap();
    let keys = record["indexKeys"].as_array()?;
    Some(
        keys.iter()
            .filter_map(Value::as_str)
            .find(|k| k.contains(':'))
            .expect("an entry lists its artifact's digest")
            .to_owned(),
    )
}

/// Issue 15: a first (cold) start, once it has written the index cache,
/// searches the keys in that file as a warm start does, and finds what it
/// found from memory: the in-memory key map, most of the index, is freed
/// without waiting for a restart.
#[tokio::test]
async fn a_cold_replica_moves_its_search_keys_to_the_cache_it_wrote() {
    let key = new_key();
    let public_key = write_public_key(&verifier_of(&key));
    let state_dir = tempdir();
    let (path, lines) = write_snapshot(&key, 47, 9);
    let mut config = replica_config(&path, Some(&public_key));
    config.replica.state_dir = Some(state_dir.clone());
    let replica = Replica::build(&config).await.unwrap();
    let log = replica.state().log();
    let tlog::storage::Store::File(store) = log.store() else {
        panic!("a replica serves a file")
    };
    let store = store.clone();
    let address = format!("http://127.0.0.1:{}", replica.port());
    let handle = replica.server_handle();
    tokio::spawn(replica.run_until_stopped());
    let client = reqwest::Client::new();
    let digests: Vec<String> = lines[1..].iter().filter_map(|l| artifact_key(l)).collect();
    assert_eq!(digests.len(), 9);
    let search = |hash: String| {
        let client = client.clone();
        let url = format!("{address}/api/v1/index/retrieve");
        async move {
            let (status, found) = post(&client, url, &json!({ "hash": hash })).await;
            assert_eq!(status, 200);
            serde_json::from_slice::<Vec<String>>(&found).unwrap()
        }
    };
    let mut from_memory = Vec::new();
    for digest in &digests {
        from_memory.push(search(digest.clone()).await);
    }
    wait_for_index_cache(&state_dir).await;
    for _ in 0..200 {
        if store.keys_on_disk() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(store.keys_on_disk(), "the keys moved to the cache file");
    for (digest, found) in digests.iter().zip(&from_memory) {
        assert_eq!(found.len(), 1, "{digest}");
        assert_eq!(&search(digest.clone()).await, found, "{digest}");
    }
    assert!(search(format!("sha256:{}", "0".repeat(64)))
        .await
        .is_empty());
    handle.stop(true).await;
}

/// Issue 15's warm start: a restart on the very bytes verified before
/// reuses the index in `state_dir`; a file changed in one byte (same
/// length), a damaged cache, or another key is verified in full again.
#[tokio::test]
async fn a_restart_on_the_same_snapshot_is_warm_and_any_change_is_cold() {
    let key = new_key();
    let public_key = write_public_key(&verifier_of(&key));
    let state_dir = tempdir();
    let (path, lines) = write_snapshot(&key, 43, 6);
    assert_eq!(start_kind(&path, &public_key, &state_dir).await, Ok("cold"));
    let cache = wait_for_index_cache(&state_dir).await;
    assert_eq!(start_kind(&path, &public_key, &state_dir).await, Ok("warm"));
    // The warm replica serves what the cold one did: search and entries.
    let mut config = replica_config(&path, Some(&public_key));
    config.replica.state_dir = Some(state_dir.clone());
    let replica = spawn_replica(&config).await;
    let client = reqwest::Client::new();
    let (status, entry) = get(
        &client,
        format!("{}/api/v1/log/entries?logIndex=4", replica.address),
    )
    .await;
    assert_eq!(status, 200);
    let (uuid, entry) = only_entry(&serde_json::from_slice(&entry).unwrap());
    let body = body_in(&lines, 4);
    assert_eq!(
        BASE64_STANDARD
            .decode(entry["body"].as_str().unwrap())
            .unwrap(),
        body
    );
    let digest = artifact_key(&lines[5]).unwrap();
    let (status, found) = post(
        &client,
        format!("{}/api/v1/index/retrieve", replica.address),
        &json!({ "hash": digest }),
    )
    .await;
    assert_eq!(status, 200);
    let found: Vec<String> = serde_json::from_slice(&found).unwrap();
    assert_eq!(found, [uuid], "the cached search index finds it");
    replica.handle.stop(true).await;

    // One byte of a SET changed, the length kept: verified in full, refused.
    let record: Value = serde_json::from_str(&lines[4]).unwrap();
    let set = record["set"].as_str().unwrap();
    let flipped = if set.starts_with('M') {
        set.replacen('M', "N", 1)
    } else {
        format!("M{}", &set[1..])
    };
    let original = std::fs::read(&path).unwrap();
    let changed = String::from_utf8(original.clone())
        .unwrap()
        .replacen(set, &flipped, 1);
    assert_eq!(changed.len(), original.len());
    std::fs::write(&path, &changed).unwrap();
    let err = start_kind(&path, &public_key, &state_dir)
        .await
        .unwrap_err();
    assert!(
        err.contains("line 5: entry 3: its SET does not verify"),
        "{err}"
    );
    std::fs::write(&path, &original).unwrap();
    assert_eq!(start_kind(&path, &public_key, &state_dir).await, Ok("warm"));

    // Another key: never the cache's verification.
    let other_key = write_public_key(&verifier_of(&new_key()));
    assert!(start_kind(&path, &other_key, &state_dir).await.is_err());

    // A damaged cache: a cold start, which writes it again.
    let mut bytes = std::fs::read(&cache).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&cache, &bytes).unwrap();
    assert_eq!(start_kind(&path, &public_key, &state_dir).await, Ok("cold"));
    for _ in 0..200 {
        if std::fs::read(&cache).unwrap() != bytes {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(start_kind(&path, &public_key, &state_dir).await, Ok("warm"));
}

#[tokio::test]
async fn after_a_restart_each_tamper_is_refused_naming_the_line() {
    let key = new_key();
    let public_key = write_public_key(&verifier_of(&key));
    let state_dir = tempdir();
    // Lines: 1 header, 2..=7 entries 0..=5, 8 checkpoint.
    let (path, lines) = write_snapshot(&key, 41, 6);
    assert_eq!(
        restart_with(&path, &public_key, &state_dir, None).await,
        None
    );
    // With the warm-start cache of the good file beside the mark: a tamper
    // is still verified in full.
    wait_for_index_cache(&state_dir).await;
    let mark = tlog::replica::HighWaterMark::load(&state_dir)
        .unwrap()
        .unwrap();
    let (other, other_lines) =
        write_snapshot_with(&key, 41, (0..6).map(|i| format!("another {i}")).collect());
    let (_, foreign_lines) = write_snapshot(&new_key(), 41, 6);
    let record = |line: &str| serde_json::from_str::<Value>(line).unwrap();
    let edit = |at: usize, f: &dyn Fn(&mut Value)| {
        let mut l = lines.clone();
        let mut r = record(&l[at]);
        f(&mut r);
        l[at] = serde_json::to_string(&r).unwrap();
        l
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "a changed body",
            edit(3, &|r| r["body"] = record(&other_lines[3])["body"].clone()),
            "line 4: entry 2: its SET does not verify",
        ),
        (
            "a changed SET",
            edit(4, &|r| r["set"] = record(&lines[5])["set"].clone()),
            "line 5: entry 3: its SET does not verify",
        ),
        (
            "a changed integratedTime",
            edit(6, &|r| r["integratedTime"] = Value::from(1_700_000_002)),
            "line 7: entry 5: its SET does not verify",
        ),
        (
            "a removed index key",
            edit_keys(&lines, 2, |keys| {
                keys.remove(0);
            }),
            "line 3: entry 1: index key",
        ),
        (
            "an added index key",
            edit_keys(&lines, 2, |keys| keys.push("sha256:00".into())),
            "line 3: entry 1: index key \"sha256:00\" is in the file",
        ),
        (
            "a reordered line",
            {
                let mut l = lines.clone();
                l.swap(5, 6);
                l
            },
            "line 6: expected entry 4, found entry 5",
        ),
        (
            "a checkpoint signed by another key",
            {
                let mut l = lines.clone();
                l[7] = foreign_lines[7].clone();
                l
            },
            "line 8",
        ),
    ];
    let tampered = tempdir().join("db.jsonl");
    for (what, tampered_lines, expected) in cases {
        write_lines(&tampered, &tampered_lines);
        let err = restart_with(&tampered, &public_key, &state_dir, None)
            .await
            .unwrap_or_else(|| panic!("{what} was served"));
        assert!(err.contains(expected), "{what}: {err}");
    }
    // A snapshot the same key signed that does not extend what was served.
    let err = restart_with(&other, &public_key, &state_dir, None)
        .await
        .expect("a fork is refused");
    assert!(err.contains("a fork"), "{err}");
    assert_eq!(
        tlog::replica::HighWaterMark::load(&state_dir)
            .unwrap()
            .unwrap(),
        mark
    );
    assert_eq!(
        restart_with(&path, &public_key, &state_dir, None).await,
        None
    );
}
