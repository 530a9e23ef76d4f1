//! The Rekor v2 log beside the v1 one: `POST /api/v2/log/entries` and the
//! tiles it serves (rekor-v2-tiles.md W-, R- items), over HTTP against a
//! real server on Postgres. A tile client rebuilds every root and proof
//! from the tiles and entry bundles alone.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tlog::merkle::{self, Hash, Tree};
use tlog::note::c2sp::{CheckpointText, Ed25519NoteKey};

use crate::helpers::{spawn_with, test_config, TestApp};

const ORIGIN: &str = "rekor.example.test";

struct V2App {
    app: TestApp,
    key: Ed25519NoteKey,
}

async fn spawn_v2() -> V2App {
    let key_file = std::env::temp_dir().join(format!("tlog-v2-{}.pem", uuid::Uuid::new_v4()));
    tlog::app::keygen_ed25519(&key_file).unwrap();
    spawn_v2_keyed(key_file).await
}

/// A v2 log of origin [`ORIGIN`] on a database of its own, signed by the
/// Ed25519 key in `key_file`.
async fn spawn_v2_keyed(key_file: std::path::PathBuf) -> V2App {
    let mut config = test_config().await;
    let pem = pem::parse(std::fs::read(&key_file).unwrap()).unwrap();
    let seed: [u8; 32] = pem.contents()[16..].try_into().unwrap();
    config.v2.key_file = Some(key_file);
    config.v2.origin = Some(ORIGIN.into());
    V2App {
        app: spawn_with(config).await,
        key: Ed25519NoteKey::new(ORIGIN, &seed).unwrap(),
    }
}

/// A P-256 client key, signing digests as hashedrekord 0.0.2 requests.
struct Client {
    pair: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl Client {
    fn new() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key())
            .unwrap()
            .as_ref()
            .to_vec();
        Self { pair, spki }
    }

    fn request(&self, artifact: &[u8]) -> Value {
        let sig = self.pair.sign(&SystemRandom::new(), artifact).unwrap();
        json!({"hashedRekordRequestV002": {
            "digest": BASE64_STANDARD.encode(Sha256::digest(artifact)),
            "signature": {"content": BASE64_STANDARD.encode(sig.as_ref()), "verifier": {
                "publicKey": {"rawBytes": BASE64_STANDARD.encode(&self.spki)},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}})
    }
}

impl V2App {
    async fn create(&self, body: &Value) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}/api/v2/log/entries", self.app.address))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.app.get(path).await
    }

    async fn bytes(&self, path: &str) -> Vec<u8> {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["cache-control"],
            "max-age=604800,immutable",
            "{path}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        response.bytes().await.unwrap().to_vec()
    }

    /// The checkpoint served now, checked under the log's key.
    async fn checkpoint(&self) -> CheckpointText {
        let response = self.get("/checkpoint").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-cache");
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        let note = response.text().await.unwrap();
        verify_note(&self.key, &note)
    }
}

fn verify_note(key: &Ed25519NoteKey, note: &str) -> CheckpointText {
    let verifier = signed_note::StandardVerifier::new(&key.vkey()).unwrap();
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let parsed = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
    parsed.verify(&list).expect("the checkpoint verifies");
    assert_eq!(note.matches("\n\n").count(), 1, "N-03");
    CheckpointText::parse(std::str::from_utf8(parsed.text()).unwrap()).unwrap()
}

fn hash(b64: &Value) -> Hash {
    Hash(
        BASE64_STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    )
}

#[tokio::test]
async fn v2_create_answers_201_with_a_transparency_log_entry_that_verifies() {
    let v2 = spawn_v2().await;
    let client = Client::new();
    for i in 0..3u64 {
        let response = v2
            .create(&client.request(format!("artifact {i}").as_bytes()))
            .await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["content-type"], "application/json");
        let tle: Value = response.json().await.unwrap();
        // W-09: int64 as strings, no SET, integratedTime 0.
        assert_eq!(tle["logIndex"], i.to_string());
        assert_eq!(tle["integratedTime"], "0");
        assert!(tle["inclusionPromise"].is_null());
        assert_eq!(
            tle["kindVersion"],
            json!({"kind": "hashedrekord", "version": "0.0.2"})
        );
        assert_eq!(
            tle["logId"]["keyId"],
            BASE64_STANDARD.encode(v2.key.log_id())
        );
        let proof = &tle["inclusionProof"];
        assert_eq!(proof["logIndex"], i.to_string());
        let size: u64 = proof["treeSize"].as_str().unwrap().parse().unwrap();
        assert!(size > i);
        let hashes: Vec<Hash> = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(hash)
            .collect();
        if size == 1 {
            assert_eq!(proof["hashes"], json!([]));
        }
        // The proof leads from the canonical body to the root the
        // checkpoint it comes with signs.
        let body = BASE64_STANDARD
            .decode(tle["canonicalizedBody"].as_str().unwrap())
            .unwrap();
        let root = hash(&proof["rootHash"]);
        merkle::verify_inclusion(merkle::leaf_hash(&body), i, size, &hashes, root).unwrap();
        let signed = verify_note(&v2.key, proof["checkpoint"]["envelope"].as_str().unwrap());
        assert_eq!(
            (signed.origin.as_str(), signed.size, signed.root),
            (ORIGIN, size, root)
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["kind"], "hashedrekord");
        assert_eq!(body["apiVersion"], "0.0.2");
    }
    // The v1 log beside it is untouched.
    let v1: Value = v2.get("/api/v1/log").await.json().await.unwrap();
    assert_eq!(v1["treeSize"], 0);
}

/// The value of the series `name` (with its labels, as exposed) in a
/// Prometheus text exposition.
fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The v2 log's own series are exported beside the v1 log's, labelled
/// `log="v2"`, each metric name once.
#[tokio::test]
async fn the_v2_logs_metrics_are_exported_with_a_log_label() {
    let v2 = spawn_v2().await;
    let client = Client::new();
    for artifact in [b"one".as_slice(), b"two"] {
        assert_eq!(v2.create(&client.request(artifact)).await.status(), 201);
    }
    let exposition = v2
        .app
        .client
        .get(format!("{}/metrics", v2.app.metrics_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&exposition, "tlog_tree_size{log=\"v2\"}"),
        Some(2.0),
        "{exposition}"
    );
    assert_eq!(sample(&exposition, "tlog_tree_size"), Some(0.0));
    let batched = sample(&exposition, "tlog_batch_size_entries_sum{log=\"v2\"}");
    assert_eq!(batched, Some(2.0));
    assert_eq!(
        sample(&exposition, "tlog_sequencer_leader{log=\"v2\"}"),
        Some(1.0)
    );
    let mut types: Vec<&str> = exposition
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .collect();
    let all = types.len();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), all, "a metric family is written twice");
}

#[tokio::test]
async fn v2_refusals_have_v2_status_bodies() {
    let v2 = spawn_v2().await;
    let client = Client::new();
    let request = client.request(b"once");
    assert_eq!(v2.create(&request).await.status(), 201);

    // W-07: a duplicate is 409 with x-log-index.
    let duplicate = v2.create(&request).await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(duplicate.headers()["x-log-index"], "0");
    let body: Value = duplicate.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 6, "message":
            "an equivalent entry already exists in the transparency log with index 0",
            "details": []})
    );

    // W-03: DSSE requests are gone since rekor-tiles 2.3.
    let dsse = v2
        .create(&json!({"dsseRequestV002": {"envelope": {}, "verifiers": []}}))
        .await;
    assert_eq!(dsse.status(), 400);
    let body: Value = dsse.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 3, "message": "invalid type, must be hashedrekord", "details": []})
    );

    // W-04: a signature over another artifact.
    let mut forged = client.request(b"signed");
    forged["hashedRekordRequestV002"]["digest"] =
        json!(BASE64_STANDARD.encode(Sha256::digest(b"other")));
    let response = v2.create(&forged).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 3, "message": "invalid hashedrekord request", "details": []})
    );
    // Nothing refused was logged.
    assert_eq!(v2.checkpoint().await.size, 1);
}

/// Fetches the level-0 tiles and entry bundles of a tree of `size`, checks
/// that each bundle entry hashes to its tile's leaf hash, and returns the
/// leaf hashes.
async fn leaves_from_tiles(v2: &V2App, size: u64) -> Vec<Hash> {
    let mut leaves = Vec::new();
    for n in 0..size.div_ceil(256) {
        let width = (size - n * 256).min(256);
        let suffix = if width == 256 {
            String::new()
        } else {
            format!(".p/{width}")
        };
        let tile = v2.bytes(&format!("/tile/0/{n:03}{suffix}")).await;
        let bundle = v2.bytes(&format!("/tile/entries/{n:03}{suffix}")).await;
        let hashes = tlog::tiles::hashes_from_tile(&tile).unwrap();
        let entries = tlog::tiles::parse_entry_bundle(&bundle).unwrap();
        assert_eq!(hashes.len() as u64, width);
        assert_eq!(entries.len() as u64, width);
        for (entry, leaf) in entries.iter().zip(&hashes) {
            assert_eq!(merkle::leaf_hash(entry), *leaf);
        }
        leaves.extend(hashes);
    }
    leaves
}

#[tokio::test]
async fn a_tile_client_rebuilds_roots_and_proofs_from_the_tiles_it_serves() {
    let v2 = spawn_v2().await;
    let client = Client::new();
    let mut checkpoints = Vec::new();
    let mut artifact = 0u32;
    for batch in [40u32, 100, 160] {
        let requests: Vec<Value> = (0..batch)
            .map(|_| {
                artifact += 1;
                client.request(&artifact.to_be_bytes())
            })
            .collect();
        let answers = futures_util::future::join_all(requests.iter().map(|r| v2.create(r))).await;
        assert!(answers.iter().all(|a| a.status() == 201));
        checkpoints.push(v2.checkpoint().await);
    }
    let latest = checkpoints.last().unwrap().clone();
    assert_eq!(latest.size, 300);

    let leaves = leaves_from_tiles(&v2, latest.size).await;
    let tree = Tree::from_leaves(leaves.clone());
    assert_eq!(tree.root(latest.size).unwrap(), latest.root);
    // Level 1: the root of the first full subtree of 256 leaves.
    let level1 = v2.bytes("/tile/1/000.p/1").await;
    assert_eq!(level1, tree.root(256).unwrap().0);
    // The same bytes under /api/v2.
    assert_eq!(
        v2.bytes("/api/v2/tile/0/000").await,
        v2.bytes("/tile/0/000").await
    );
    assert_eq!(
        v2.bytes("/api/v2/tile/entries/001.p/44").await,
        v2.bytes("/tile/entries/001.p/44").await
    );
    // An older partial width is still served; absent or non-canonical are 404.
    assert_eq!(v2.bytes("/tile/0/001.p/10").await.len(), 320);
    for missing in [
        "/tile/0/001",
        "/tile/0/001.p/45",
        "/tile/0/1",
        "/tile/entries/002",
        "/tile/1/000",
        "/tile/0/000.p/256",
    ] {
        assert_eq!(v2.get(missing).await.status(), 404, "{missing}");
    }
    // Tiles are served from a cache once encoded: a path asked for before
    // it existed is served once the tree has it, and what was served before
    // is unchanged.
    let before = v2.bytes("/tile/0/001.p/44").await;
    artifact += 1;
    assert_eq!(
        v2.create(&client.request(&artifact.to_be_bytes()))
            .await
            .status(),
        201
    );
    let grown = leaves_from_tiles(&v2, latest.size + 1).await;
    assert_eq!(grown[..leaves.len()], leaves[..]);
    let wider = tlog::tiles::hashes_from_tile(&v2.bytes("/tile/0/001.p/45").await).unwrap();
    assert_eq!(wider[..], grown[256..]);
    let bundle = v2.bytes("/tile/entries/001.p/45").await;
    assert_eq!(tlog::tiles::parse_entry_bundle(&bundle).unwrap().len(), 45);
    assert_eq!(v2.bytes("/tile/0/001.p/44").await, before);
    // Every inclusion proof, from the tiles alone.
    for index in 0..latest.size {
        let proof = tree.inclusion_proof(index, latest.size).unwrap();
        let leaf = tree.leaf(index).unwrap();
        merkle::verify_inclusion(leaf, index, latest.size, &proof, latest.root).unwrap();
    }
    // Every earlier checkpoint is consistent with the latest.
    for old in checkpoints.iter().filter(|c| c.size < latest.size) {
        let proof = tree.consistency_proof(old.size, latest.size).unwrap();
        merkle::verify_consistency(old.size, old.root, latest.size, latest.root, &proof).unwrap();
    }
}

/// The embedded journal's format is a v1 log's: a v2 log there is refused
/// at start, with the reason, rather than written in a form it can't reopen.
#[tokio::test]
async fn the_embedded_journal_refuses_a_v2_log_with_a_hint() {
    let dir = std::env::temp_dir().join(format!("tlog-v2-embedded-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let v2_key = dir.join("v2-key.pem");
    tlog::app::keygen_ed25519(&v2_key).unwrap();
    let config: tlog::config::Config = {
        use figment::providers::{Format, Yaml};
        let yaml = format!(
            "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\ndata_dir: {}\nkey_file: {}\n\
             v2: {{key_file: {}, origin: {ORIGIN}}}\n",
            dir.join("data").display(),
            dir.join("tlog-key.pem").display(),
            v2_key.display()
        );
        figment::Figment::new()
            .merge(Yaml::string(&yaml))
            .extract()
            .unwrap()
    };
    let err = tlog::app::Application::build(&config)
        .await
        .err()
        .expect("a v2 log on the embedded journal is refused");
    assert!(format!("{err:#}").contains("needs Postgres"), "{err:#}");
}

/// On Postgres the v2 log is a row of `logs` with its origin: a changed
/// origin is refused too, and the v1 log of the same database is untouched.
#[tokio::test]
async fn postgres_refuses_to_open_the_v2_log_under_another_origin() {
    let v2 = spawn_v2().await;
    assert_eq!(v2.create(&Client::new().request(b"pg")).await.status(), 201);
    let key_file = v2.app.key_file.clone();
    let url = v2.app.database_url.clone();
    v2.app.stop().await;
    let mut config = crate::helpers::config_for(&url, &key_file);
    let v2_key = std::env::temp_dir().join(format!("tlog-v2-{}.pem", uuid::Uuid::new_v4()));
    tlog::app::keygen_ed25519(&v2_key).unwrap();
    config.v2.key_file = Some(v2_key);
    config.v2.origin = Some("rekor.other.test".into());
    let err = tlog::app::Application::build(&config)
        .await
        .err()
        .expect("another origin is refused");
    assert!(format!("{err:#}").contains("origin"), "{err:#}");
}

/// A config for database `url` with the v1 key `key_file` and the v2 log
/// of `origin` signed with `v2_key`.
fn v2_config(
    url: &str,
    key_file: &std::path::Path,
    v2_key: &std::path::Path,
    origin: &str,
) -> tlog::config::Config {
    let mut config = crate::helpers::config_for(url, key_file);
    config.v2.key_file = Some(v2_key.to_owned());
    config.v2.origin = Some(origin.to_owned());
    config
}

/// A new Ed25519 v2 key file and its note key for `origin`.
fn v2_key(origin: &str) -> (std::path::PathBuf, Ed25519NoteKey) {
    let key_file = std::env::temp_dir().join(format!("tlog-v2-{}.pem", uuid::Uuid::new_v4()));
    tlog::app::keygen_ed25519(&key_file).unwrap();
    let pem = pem::parse(std::fs::read(&key_file).unwrap()).unwrap();
    let seed: [u8; 32] = pem.contents()[16..].try_into().unwrap();
    (key_file, Ed25519NoteKey::new(origin, &seed).unwrap())
}

/// `tlog log rotate --v2` (issue 14, item 5), as the public instance turns
/// its v2 log over: beside a running server it freezes the v2 log, which
/// stops the server; the old configuration is refused with a hint; the new
/// one serves a new log of a new origin from index 0, while the frozen log
/// keeps its final checkpoint and its tiles at `/logs/<origin>/`; and the
/// trust configuration lists the frozen key until its end. Reusing an
/// origin is refused and freezes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_v2_log_is_frozen_served_by_origin_and_trusted_until_it_froze() {
    const NEXT: &str = "log2027-1.example.test";
    let first = test_config().await;
    let url = {
        use secrecy::ExposeSecret;
        first
            .database_url
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned()
    };
    let (old_key_file, old_key) = v2_key(ORIGIN);
    let old_config = v2_config(&url, &first.key_file, &old_key_file, ORIGIN);
    let server = tlog::app::Application::build(&old_config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", server.port());
    let run = tokio::spawn(server.run_until_stopped());
    let http = reqwest::Client::new();
    let client = Client::new();
    for i in 0..3 {
        let res = http
            .post(format!("{base}/api/v2/log/entries"))
            .json(&client.request(format!("before {i}").as_bytes()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let get = |path: String| {
        let http = http.clone();
        async move { http.get(path).send().await.unwrap() }
    };
    let old_note = get(format!("{base}/checkpoint"))
        .await
        .text()
        .await
        .unwrap();
    let old_checkpoint = verify_note(&old_key, &old_note);
    assert_eq!(old_checkpoint.size, 3);
    let old_bundle = get(format!("{base}/tile/entries/000.p/3"))
        .await
        .bytes()
        .await
        .unwrap();

    // The same origin again is no rotation: refused, nothing frozen.
    let err = tlog::app::rotate_v2(&old_config).await.unwrap_err();
    assert!(format!("{err:#}").contains("already has origin"), "{err:#}");

    let (new_key_file, new_key) = v2_key(NEXT);
    let new_config = || v2_config(&url, &first.key_file, &new_key_file, NEXT);
    let rotation = tlog::app::rotate_v2(&new_config()).await.unwrap();
    assert_eq!(rotation.frozen_size, 3);
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(15), run)
        .await
        .expect("the server of the frozen v2 log stops on its own")
        .unwrap();
    let err = outcome.expect_err("it exits with an error, for its supervisor");
    assert!(
        err.get_ref()
            .is_some_and(|e| e.is::<tlog::app::ShardRotated>()),
        "{err}"
    );
    let err = tlog::app::Application::build(&old_config)
        .await
        .err()
        .expect("the old v2 origin is no longer the active log's");
    assert!(
        format!("{err:#}").contains("tlog log rotate --v2"),
        "{err:#}"
    );

    let app = spawn_with(new_config()).await;
    let v2 = V2App { app, key: new_key };
    let res = v2.create(&client.request(b"first of the new log")).await;
    assert_eq!(res.status(), 201);
    let tle: Value = res.json().await.unwrap();
    assert_eq!(tle["logIndex"], "0", "a new log starts at 0");
    let head = v2.checkpoint().await;
    assert_eq!((head.origin.as_str(), head.size), (NEXT, 1));
    // A resubmission of a frozen log's entry is new to the new log.
    let res = v2.create(&client.request(b"before 0")).await;
    assert_eq!(res.status(), 201);

    // The frozen log by its origin: its final checkpoint, its tiles.
    let frozen = v2.get(&format!("/logs/{ORIGIN}/checkpoint")).await;
    assert_eq!(frozen.status(), 200);
    assert_eq!(frozen.headers()["cache-control"], "no-cache");
    let frozen_note = frozen.text().await.unwrap();
    assert_eq!(verify_note(&old_key, &frozen_note), old_checkpoint);
    assert_eq!(
        v2.bytes(&format!("/logs/{ORIGIN}/tile/entries/000.p/3"))
            .await,
        old_bundle
    );
    let level0 = v2.bytes(&format!("/logs/{ORIGIN}/tile/0/000.p/3")).await;
    assert_eq!(level0.len(), 3 * 32);
    let leaves: Vec<Hash> = level0
        .chunks(32)
        .map(|c| Hash(c.try_into().unwrap()))
        .collect();
    let tree = Tree::from_leaves(leaves);
    assert_eq!(tree.root(3).unwrap(), old_checkpoint.root);
    let past = v2.get(&format!("/logs/{ORIGIN}/tile/0/000.p/4")).await;
    assert_eq!(past.status(), 404, "a frozen log does not grow");
    // `tlog verify` audits the frozen log at its path, under its own key.
    let old_pub = crate::conformance::tempdir().join("old.pub");
    std::fs::write(
        &old_pub,
        tlog::signing::public_key_pem(&tlog::note::c2sp::ed25519_spki(&old_key.public_key())),
    )
    .unwrap();
    let frozen_url = format!("{}/logs/{ORIGIN}", v2.app.address);
    let (ok, out) = crate::verify::verify_url(&frozen_url, &old_pub, &["--json"]).await;
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["entries"].as_u64(), report["origin"].as_str()),
        (Some(3), Some(ORIGIN))
    );
    // The active log by its origin too; an unknown origin is 404.
    let active = v2.get(&format!("/logs/{NEXT}/checkpoint")).await;
    assert_eq!(verify_note(&v2.key, &active.text().await.unwrap()).size, 2);
    assert_eq!(v2.get("/logs/nobody.test/checkpoint").await.status(), 404);

    // Trust: both keys, the frozen one until it froze, at its path; clients
    // sign with the new log only.
    let trust = tlog::app::trust_config(
        &new_config(),
        None,
        Some("https://tlog.test"),
        "2026-01-01T00:00:00Z",
    )
    .await
    .unwrap();
    let trust: Value = serde_json::from_str(&trust).unwrap();
    let v2_logs: Vec<&Value> = trust["trustedRoot"]["tlogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["publicKey"]["keyDetails"] == "PKIX_ED25519")
        .collect();
    assert_eq!(v2_logs.len(), 2, "{trust}");
    let old_id = BASE64_STANDARD.encode(old_key.log_id());
    let new_id = BASE64_STANDARD.encode(v2.key.log_id());
    assert_eq!(v2_logs[0]["logId"]["keyId"], old_id);
    assert_eq!(
        v2_logs[0]["baseUrl"],
        format!("https://tlog.test/logs/{ORIGIN}")
    );
    assert!(v2_logs[0]["publicKey"]["validFor"]["end"].is_string());
    assert_eq!(v2_logs[1]["logId"]["keyId"], new_id);
    assert_eq!(v2_logs[1]["baseUrl"], "https://tlog.test");
    assert!(v2_logs[1]["publicKey"]["validFor"]["end"].is_null());
    let signing: Vec<&Value> = trust["signingConfig"]["rekorTlogUrls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["majorApiVersion"] == 2)
        .collect();
    assert_eq!(signing.len(), 1);
    assert_eq!(signing[0]["url"], "https://tlog.test");

    // Back to the first origin: refused, and the active log keeps working.
    let back = v2_config(&url, &first.key_file, &new_key_file, ORIGIN);
    let err = tlog::app::rotate_v2(&back).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("names one log forever"),
        "{err:#}"
    );
    assert_eq!(
        v2.create(&client.request(b"still open")).await.status(),
        201
    );
    let list = tlog::app::list_shards(&new_config()).await.unwrap();
    assert!(list.contains(&format!("\tfrozen\t{ORIGIN}\t3\t")), "{list}");
    assert!(list.contains(&format!("\tactive\t{NEXT}\t3\t")), "{list}");
    v2.app.stop().await;
}

/// Creates `count` entries, `at_once` at a time, and returns the signed
/// checkpoint notes served after each round.
async fn fill(v2: &V2App, client: &Client, salt: &str, count: u32, at_once: u32) -> Vec<String> {
    let mut notes = Vec::new();
    let mut next = 0;
    while next < count {
        let round = at_once.min(count - next);
        let requests: Vec<Value> = (next..next + round)
            .map(|i| client.request(format!("{salt} {i}").as_bytes()))
            .collect();
        let answers = futures_util::future::join_all(requests.iter().map(|r| v2.create(r))).await;
        assert!(answers.iter().all(|a| a.status() == 201));
        notes.push(v2.get("/checkpoint").await.text().await.unwrap());
        next += round;
    }
    notes
}

/// The hash tiles a tree of `size` has: at each level, its full
/// tiles and a partial one for the rest.
fn tile_count(size: u64) -> u64 {
    let mut count = 0;
    let mut nodes = size;
    while nodes > 0 {
        count += nodes.div_ceil(256);
        nodes >>= 8;
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlog_verify_audits_a_v2_log_by_its_tiles_and_names_what_was_tampered() {
    use crate::monitor::{hostile, Hostility};
    use crate::verify::verify_url;
    let key_file = std::env::temp_dir().join(format!("tlog-v2-{}.pem", uuid::Uuid::new_v4()));
    tlog::app::keygen_ed25519(&key_file).unwrap();
    let v2 = spawn_v2_keyed(key_file.clone()).await;
    let client = Client::new();
    let notes = fill(&v2, &client, "audited", 600, 100).await;
    let dir = crate::conformance::tempdir();
    let public_key = dir.join("v2.pub");
    std::fs::write(
        &public_key,
        tlog::signing::public_key_pem(&tlog::note::c2sp::ed25519_spki(&v2.key.public_key())),
    )
    .unwrap();
    let since = dir.join("since");
    std::fs::write(&since, &notes[0]).unwrap();
    let since_arg = since.to_str().unwrap();

    for base in [format!("{}/api/v2", v2.app.address), v2.app.address.clone()] {
        let (ok, out) = verify_url(&base, &public_key, &["--json", "--since", since_arg]).await;
        assert!(ok, "{out}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["entries"], 600, "{out}");
        assert_eq!(report["tree_size"], 600);
        assert_eq!(report["kinds"]["hashedrekord"], 600);
        assert_eq!(report["tiles_verified"], tile_count(600));
        assert_eq!(report["consistent_with"], 100);
        assert_eq!(report["origin"], ORIGIN);
    }
    let (ok, out) = verify_url(&v2.app.address, &public_key, &[]).await;
    assert!(ok && out.contains("hash tiles equal"), "{out}");
    // A server that gzips its tiles unasked (as C2SP allows) audits the same.
    let gzip = hostile(v2.app.address.clone(), Hostility::GzipTiles).await;
    let (ok, out) = verify_url(&gzip, &public_key, &["--json"]).await;
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"], 600, "{out}");

    // Each tamper, served by a proxy in front of the log, is named.
    let cases = [
        // The last entry of the second bundle: no longer JSON.
        ("/tile/entries/001", "511"),
        ("/tile/0/000", "/tile/0/000 does not hold the leaf hashes"),
        (
            "/tile/1/000.p/2",
            "/tile/1/000.p/2 does not hold the hashes",
        ),
        ("/checkpoint", "the checkpoint does not verify"),
    ];
    for (path, expected) in cases {
        let url = hostile(v2.app.address.clone(), Hostility::FlipLastByte(path.into())).await;
        let (ok, out) = verify_url(&url, &public_key, &["--json"]).await;
        assert!(!ok, "{path}: {out}");
        let report: Value = serde_json::from_str(&out).unwrap();
        let problem = format!(
            "{} {}",
            report["problem"]["index"], report["problem"]["reason"]
        );
        assert!(problem.contains(expected), "{path}: {problem}");
    }

    // Another key's log fails at its checkpoint.
    let other = dir.join("other.pub");
    let seed = [7u8; 32];
    let other_key = Ed25519NoteKey::new(ORIGIN, &seed).unwrap();
    std::fs::write(
        &other,
        tlog::signing::public_key_pem(&tlog::note::c2sp::ed25519_spki(&other_key.public_key())),
    )
    .unwrap();
    let (ok, out) = verify_url(&v2.app.address, &other, &[]).await;
    assert!(
        !ok && out.contains("does not verify under the key"),
        "{out}"
    );

    // A log the same key signed that does not extend the checkpoint: a fork.
    let fork = spawn_v2_keyed(key_file).await;
    fill(&fork, &client, "forked", 150, 150).await;
    let (ok, out) = verify_url(&fork.app.address, &public_key, &["--since", since_arg]).await;
    assert!(!ok && out.contains("a fork"), "{out}");
    // And one smaller than it: rolled back.
    let late = dir.join("late");
    std::fs::write(&late, notes.last().unwrap()).unwrap();
    let (ok, out) = verify_url(
        &fork.app.address,
        &public_key,
        &["--since", late.to_str().unwrap()],
    )
    .await;
    assert!(!ok && out.contains("rolled back"), "{out}");
    fork.app.stop().await;
    v2.app.stop().await;
}

/// The note key of the Ed25519 key file `path`, for `origin`.
fn note_key(path: &std::path::Path, origin: &str) -> Ed25519NoteKey {
    let pem = pem::parse(std::fs::read(path).unwrap()).unwrap();
    let seed: [u8; 32] = pem.contents()[16..].try_into().unwrap();
    Ed25519NoteKey::new(origin, &seed).unwrap()
}

/// Every file below `dir`, by its path relative to it, with its bytes.
/// Flips one bit of byte `at` of the file `path` in place; returns its
/// bytes before and after.
fn flip_byte(path: &std::path::Path, at: usize) -> (Vec<u8>, Vec<u8>) {
    let good = std::fs::read(path).unwrap();
    let mut bad = good.clone();
    bad[at] ^= 1;
    std::fs::write(path, &bad).unwrap();
    (good, bad)
}

fn files(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut std::collections::BTreeMap<String, Vec<u8>>,
    ) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `tlog export --v2` and `tlog import --v2` (issue 14: export and import
/// carry v2 logs): the export is the log's C2SP tiles, byte for byte what
/// the server serves, deterministic, and audited by `tlog verify`; imported
/// into another database, the log serves the same checkpoint and tiles and
/// takes new entries after the imported ones, refusing their duplicates. A
/// tampered directory, or one another key signed, is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_log_moves_to_another_database_as_its_tiles_and_carries_on() {
    use secrecy::ExposeSecret;
    let url_of = |config: &tlog::config::Config| {
        config
            .database_url
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned()
    };
    let (key_file, _) = v2_key(ORIGIN);
    let first = test_config().await;
    let config_a = v2_config(&url_of(&first), &first.key_file, &key_file, ORIGIN);
    let a = V2App {
        app: spawn_with(v2_config(
            &url_of(&first),
            &first.key_file,
            &key_file,
            ORIGIN,
        ))
        .await,
        key: note_key(&key_file, ORIGIN),
    };
    let client = Client::new();
    fill(&a, &client, "moved", 600, 200).await;
    let served = a.get("/checkpoint").await.text().await.unwrap();

    let dir = crate::conformance::tempdir();
    let exported = dir.join("a");
    tlog::app::export_v2(&config_a, None, &exported)
        .await
        .unwrap();
    let tiles = files(&exported);
    assert_eq!(tiles["checkpoint"], served.as_bytes());
    let tile_files = tiles
        .keys()
        .filter(|p| p.starts_with("tile/") && !p.starts_with("tile/entries/"));
    assert_eq!(tile_files.count() as u64, tile_count(600));
    assert_eq!(
        tiles
            .keys()
            .filter(|p| p.starts_with("tile/entries/"))
            .count(),
        3
    );
    for (path, bytes) in &tiles {
        if path != "checkpoint" {
            assert_eq!(a.bytes(&format!("/{path}")).await, *bytes, "{path}");
        }
    }
    // The same log gives the same files; an existing directory is refused.
    let again = dir.join("again");
    tlog::app::export_v2(&config_a, None, &again).await.unwrap();
    assert_eq!(files(&again), tiles);
    let err = tlog::app::export_v2(&config_a, None, &again)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("exists"), "{err:#}");
    // `tlog verify` audits the directory as it would the URL.
    let public_key = dir.join("v2.pub");
    std::fs::write(
        &public_key,
        tlog::signing::public_key_pem(&tlog::note::c2sp::ed25519_spki(&a.key.public_key())),
    )
    .unwrap();
    let (ok, out) =
        crate::verify::verify_url(exported.to_str().unwrap(), &public_key, &["--json"]).await;
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            report["entries"].as_u64(),
            report["tiles_verified"].as_u64()
        ),
        (Some(600), Some(tile_count(600)))
    );

    // Into another database: the same log, which carries on.
    let second = test_config().await;
    let config_b = v2_config(&url_of(&second), &second.key_file, &key_file, ORIGIN);
    tlog::app::import_v2(&config_b, &exported).await.unwrap();
    let err = tlog::app::import_v2(&config_b, &exported)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("already holds entries"),
        "{err:#}"
    );
    let b = V2App {
        app: spawn_with(v2_config(
            &url_of(&second),
            &second.key_file,
            &key_file,
            ORIGIN,
        ))
        .await,
        key: note_key(&key_file, ORIGIN),
    };
    assert_eq!(b.get("/checkpoint").await.text().await.unwrap(), served);
    for (path, bytes) in &tiles {
        if path != "checkpoint" {
            assert_eq!(b.bytes(&format!("/{path}")).await, *bytes, "{path}");
        }
    }
    // Entry 321 again, as its bundle holds it (a client's signature is
    // randomized: the same request, not the same artifact).
    let bundle = &tiles["tile/entries/001"];
    let logged: Value =
        serde_json::from_slice(tlog::tiles::parse_entry_bundle(bundle).unwrap()[321 - 256])
            .unwrap();
    let spec = &logged["spec"]["hashedRekordV002"];
    let again_321 = json!({"hashedRekordRequestV002": {
        "digest": spec["data"]["digest"], "signature": spec["signature"]}});
    let duplicate = b.create(&again_321).await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(duplicate.headers()["x-log-index"], "321");
    let new = b.create(&client.request(b"after the move")).await;
    assert_eq!(new.status(), 201);
    let tle: Value = new.json().await.unwrap();
    assert_eq!(tle["logIndex"], "600");
    let head = b.checkpoint().await;
    assert_eq!(head.size, 601);

    // A tampered directory, or another key's, is refused and writes nothing.
    let tampered = dir.join("tampered");
    std::fs::rename(&again, &tampered).unwrap();
    let bundle = tampered.join("tile/entries/001");
    let mut bytes = std::fs::read(&bundle).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    let third = test_config().await;
    let config_c = v2_config(&url_of(&third), &third.key_file, &key_file, ORIGIN);
    let err = tlog::app::import_v2(&config_c, &tampered)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("entry 511"), "{err:#}");
    let (other_key, _) = v2_key(ORIGIN);
    let config_d = v2_config(&url_of(&third), &third.key_file, &other_key, ORIGIN);
    let err = tlog::app::import_v2(&config_d, &exported)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("does not verify"), "{err:#}");
    let err = tlog::app::export_v2(&config_c, None, &dir.join("c"))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("holds no log"), "{err:#}");
    a.app.stop().await;
    b.app.stop().await;
}

/// `tlog replica` with `replica.v2_tiles` (issue 14: a replica of a v2 log
/// serves its tiles and checkpoint): it verifies the directory first and
/// serves exactly what it verified at every v2 path, refuses a file
/// changed since, and after a restart with the same state volume refuses
/// an older directory or one of a fork the same key signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_a_verified_v2_tiles_directory_and_refuses_rollback() {
    use secrecy::ExposeSecret;
    let url_of = |config: &tlog::config::Config| {
        config
            .database_url
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned()
    };
    let (key_file, _) = v2_key(ORIGIN);
    let first = test_config().await;
    let config = || v2_config(&url_of(&first), &first.key_file, &key_file, ORIGIN);
    let v2 = V2App {
        app: spawn_with(config()).await,
        key: note_key(&key_file, ORIGIN),
    };
    let client = Client::new();
    fill(&v2, &client, "replicated", 300, 150).await;
    let dir = crate::conformance::tempdir();
    let older = dir.join("older");
    tlog::app::export_v2(&config(), None, &older).await.unwrap();
    let db = dir.join("db.jsonl");
    let mut snapshot = Vec::new();
    tlog::export::export(
        v2.app.log.store(),
        &mut snapshot,
        &mut tlog::export::Progress::new("test", 0),
    )
    .await
    .unwrap();
    std::fs::write(&db, snapshot).unwrap();
    let v1_pub = dir.join("v1.pub");
    std::fs::write(&v1_pub, v2.app.verifier.public_key_pem()).unwrap();
    let v2_pub = dir.join("v2.pub");
    std::fs::write(
        &v2_pub,
        tlog::signing::public_key_pem(&tlog::note::c2sp::ed25519_spki(&v2.key.public_key())),
    )
    .unwrap();
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    let replica_config = |tiles: &std::path::Path, v2_key: Option<&std::path::Path>| {
        use figment::providers::{Format, Yaml};
        let key = v2_key.map_or(String::new(), |k| {
            format!("  v2_public_key: {}\n", k.display())
        });
        let yaml = format!(
            "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nreplica:\n  db: {}\n  public_key: {}\n  \
             state_dir: {}\n  v2_tiles: {}\n{key}",
            db.display(),
            v1_pub.display(),
            state.display(),
            tiles.display()
        );
        let config: tlog::config::Config = figment::Figment::new()
            .merge(Yaml::string(&yaml))
            .extract()
            .unwrap();
        config.validate().unwrap();
        config
    };
    let start = |config: tlog::config::Config| async move {
        let replica = tlog::replica::Replica::build(&config).await?;
        let address = format!("http://127.0.0.1:{}", replica.port());
        let handle = replica.server_handle();
        tokio::spawn(replica.run_until_stopped());
        Ok::<_, anyhow::Error>((address, handle))
    };

    let err = start(replica_config(&older, None)).await.err().unwrap();
    assert!(format!("{err:#}").contains("v2_public_key"), "{err:#}");
    let (address, handle) = start(replica_config(&older, Some(&v2_pub))).await.unwrap();
    let http = reqwest::Client::new();
    let checkpoint = http
        .get(format!("{address}/checkpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(checkpoint.headers()["cache-control"], "no-cache");
    let tiles = files(&older);
    assert_eq!(
        checkpoint.text().await.unwrap().as_bytes(),
        tiles["checkpoint"]
    );
    for (path, bytes) in tiles.iter().filter(|(p, _)| *p != "checkpoint") {
        for prefix in ["", "/api/v2", &format!("/logs/{ORIGIN}")] {
            let res = http
                .get(format!("{address}{prefix}/{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{prefix}/{path}");
            assert_eq!(res.headers()["cache-control"], "max-age=604800,immutable");
            assert_eq!(res.bytes().await.unwrap(), bytes, "{prefix}/{path}");
        }
    }
    for missing in [
        "/tile/0/1",
        "/tile/0/001",
        "/tile/..%2fcheckpoint",
        "/logs/other.test/checkpoint",
    ] {
        let res = http
            .get(format!("{address}{missing}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{missing}");
    }
    let (ok, out) =
        crate::verify::verify_url(&format!("{address}/api/v2"), &v2_pub, &["--json"]).await;
    assert!(ok, "{out}");
    // A file changed after it was checked and served: the checked bytes
    // stay served, from the cache.
    let tile = older.join("tile/0/000");
    let (good, _) = flip_byte(&tile, 0);
    let res = http
        .get(format!("{address}/tile/0/000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), good);
    std::fs::write(&tile, &good).unwrap();
    handle.stop(true).await;

    // The log grows; the replica restarts on the newer export.
    fill(&v2, &client, "grown", 300, 150).await;
    let newer = dir.join("newer");
    tlog::app::export_v2(&config(), None, &newer).await.unwrap();
    let (address, handle) = start(replica_config(&newer, Some(&v2_pub))).await.unwrap();
    let head = http
        .get(format!("{address}/checkpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.text().await.unwrap().as_bytes(),
        files(&newer)["checkpoint"]
    );
    // A file changed after the check, before it was served: refused.
    let tile = newer.join("tile/0/001");
    let (good, bad) = flip_byte(&tile, 0);
    let res = http
        .get(format!("{address}/tile/0/001"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_ne!(res.bytes().await.unwrap(), bad);
    std::fs::write(&tile, &good).unwrap();
    let res = http
        .get(format!("{address}/tile/0/001"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.bytes().await.unwrap(),
        good,
        "served once it is as checked"
    );
    handle.stop(true).await;
    // A restart on the same directory resumes from the digests kept in the
    // state directory instead of auditing it again: a bundle changed while
    // the replica was down is refused when asked for (an audit would refuse
    // to start).
    let bundle = newer.join("tile/entries/000");
    let (good_bundle, bad) = flip_byte(&bundle, 10);
    let (address, handle) = start(replica_config(&newer, Some(&v2_pub))).await.unwrap();
    let res = http
        .get(format!("{address}/tile/entries/000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_ne!(res.bytes().await.unwrap(), bad);
    for (path, bytes) in files(&newer)
        .iter()
        .filter(|(p, _)| !["checkpoint", "tile/entries/000"].contains(&p.as_str()))
    {
        let res = http.get(format!("{address}/{path}")).send().await.unwrap();
        assert_eq!(res.bytes().await.unwrap(), bytes, "{path}");
    }
    handle.stop(true).await;
    // Digests kept for another checkpoint are not used: the directory is
    // audited, and the changed bundle refused at start.
    let kept = state.join(tlog::replica::V2_DIGESTS_FILE);
    let text = std::fs::read_to_string(&kept).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let other = format!("tlog-v2-tiles-digests {}\n{rest}", "0".repeat(64));
    assert_ne!(first, other.lines().next().unwrap());
    std::fs::write(&kept, other).unwrap();
    let err = start(replica_config(&newer, Some(&v2_pub)))
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("refusing to serve"), "{err:#}");
    std::fs::write(&bundle, &good_bundle).unwrap();
    let (_, handle) = start(replica_config(&newer, Some(&v2_pub))).await.unwrap();
    handle.stop(true).await;
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        text,
        "rewritten by the audit"
    );
    // Back to the older directory, with the same state: refused.
    let err = start(replica_config(&older, Some(&v2_pub)))
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("rolled back"), "{err:#}");
    // A fork the same key signed, larger than what was served: refused.
    let second = test_config().await;
    let fork = V2App {
        app: spawn_with(v2_config(
            &url_of(&second),
            &second.key_file,
            &key_file,
            ORIGIN,
        ))
        .await,
        key: note_key(&key_file, ORIGIN),
    };
    fill(&fork, &client, "forked", 700, 350).await;
    let forked = dir.join("forked");
    tlog::app::export_v2(
        &v2_config(&url_of(&second), &second.key_file, &key_file, ORIGIN),
        None,
        &forked,
    )
    .await
    .unwrap();
    let err = start(replica_config(&forked, Some(&v2_pub)))
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("a fork"), "{err:#}");
    fork.app.stop().await;
    v2.app.stop().await;
}
