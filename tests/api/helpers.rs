//! `spawn_app()` and typed helpers shared by the API tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use tlog::app::Application;
use tlog::config::Config;
use tlog::log::Log;
use tlog::signing::{LogSigner, LogVerifier};
use tlog::storage::Store;

/// A running server and what tests need to talk to it.
pub struct TestApp {
    pub address: String,
    pub metrics_address: String,
    pub client: reqwest::Client,
    pub database_url: String,
    pub key_file: std::path::PathBuf,
    pub log: Arc<Log<Store>>,
    pub verifier: LogVerifier,
    pub validation: Arc<tlog::api::validation::ValidationPool>,
    /// Ends the sequencer task, as if it had died.
    pub sequencer: tokio::task::AbortHandle,
    server: actix_web::dev::ServerHandle,
    stopped: tokio::sync::oneshot::Receiver<()>,
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must name a Postgres cluster the tests may create databases in; \
         run the tests with scripts/test.sh, which starts a throwaway one",
    )
}

fn init_logging() {
    static ONCE: AtomicBool = AtomicBool::new(false);
    if std::env::var_os("TEST_LOG").is_some() && !ONCE.swap(true, Ordering::SeqCst) {
        // No exporter: dropping the guard stops nothing that logs need. Another
        // test binary may have installed its own subscriber already.
        drop(tlog::telemetry::init(None));
    }
}

/// Creates an empty database and returns its URL.
pub async fn create_database() -> String {
    let admin = admin_url();
    let name = format!("tlog_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (base, _) = admin
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    format!("{base}/{name}")
}

/// A config for a fresh log: new database, new key, port 0, quick batches.
pub async fn test_config() -> Config {
    let database_url = create_database().await;
    let key_file = std::env::temp_dir().join(format!("tlog-test-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    config_for(&database_url, &key_file)
}

/// A config for an existing database and key.
pub fn config_for(database_url: &str, key_file: &std::path::Path) -> Config {
    let yaml = format!(
        "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nhostname: localhost\ndatabase_url: {database_url}\n\
         key_file: {}\nbatch: {{interval_ms: 5}}\n",
        key_file.display()
    );
    let config: Config = serde_yaml_from(&yaml);
    config.validate().unwrap();
    config
}

fn serde_yaml_from(yaml: &str) -> Config {
    use figment::providers::{Format, Yaml};
    figment::Figment::new()
        .merge(Yaml::string(yaml))
        .extract()
        .expect("test config parses")
}

/// Starts a server on a fresh log.
pub async fn spawn_app() -> TestApp {
    spawn_with(test_config().await).await
}

/// Starts a server with `config`.
pub async fn spawn_with(config: Config) -> TestApp {
    init_logging();
    let app = Application::build(&config).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = format!("http://127.0.0.1:{}", app.metrics_port());
    let log = Arc::clone(app.log());
    let validation = Arc::clone(app.validation_pool());
    // The key the log serves; with a key file, the test checks it is that file's.
    let verifier = LogVerifier::from_pem(&log.info().public_key_pem).unwrap();
    if config.signer.kind == tlog::config::SignerKind::File {
        let pem = std::fs::read_to_string(&config.key_file).unwrap();
        let configured = LogSigner::from_pkcs8_pem(&pem).unwrap().verifier();
        assert_eq!(configured.public_key_der(), verifier.public_key_der());
    }
    let server = app.server_handle();
    let sequencer = app.sequencer_abort_handle();
    let (done, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
        let _ = done.send(());
    });
    let database_url = {
        use secrecy::ExposeSecret;
        config
            .database_url
            .as_ref()
            .map(|url| url.expose_secret().to_owned())
            .unwrap_or_default()
    };
    TestApp {
        address,
        metrics_address,
        client: reqwest::Client::new(),
        database_url,
        key_file: config.key_file.clone(),
        log,
        verifier,
        validation,
        sequencer,
        server,
        stopped,
    }
}

impl TestApp {
    /// Stops the server and waits until it has released the database.
    pub async fn stop(self) {
        let Self {
            server,
            stopped,
            log,
            ..
        } = self;
        // Let go of the log first: the server waits for every holder.
        drop(log);
        server.stop(true).await;
        let _ = stopped.await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap()
    }

    pub async fn create(&self, entry: &Value) -> reqwest::Response {
        self.post_json("/api/v1/log/entries", entry).await
    }
}

/// An ECDSA P-256 client key that signs hashedrekord entries.
pub struct ClientKey {
    pair: EcdsaKeyPair,
    pub pem: String,
}

impl ClientKey {
    pub fn new() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            pair.public_key(),
        )
        .unwrap();
        let pem = pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", der.as_ref()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Self { pair, pem }
    }

    /// Base64 of a signature over the DSSE pre-authentication encoding of
    /// `payload` (what a dsse or intoto envelope signs).
    pub fn sign(&self, payload_type: &str, payload: &[u8]) -> String {
        let mut pae = format!(
            "DSSEv1 {} {payload_type} {} ",
            payload_type.len(),
            payload.len()
        )
        .into_bytes();
        pae.extend_from_slice(payload);
        BASE64_STANDARD.encode(self.pair.sign(&SystemRandom::new(), &pae).unwrap())
    }

    /// A hashedrekord proposal signing `artifact`.
    pub fn hashedrekord(&self, artifact: &[u8]) -> Value {
        let digest = hex::encode(Sha256::digest(artifact));
        let sig = self.pair.sign(&SystemRandom::new(), artifact).unwrap();
        json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest}},
                "signature": {
                    "content": BASE64_STANDARD.encode(sig.as_ref()),
                    "publicKey": {"content": BASE64_STANDARD.encode(&self.pem)}
                }
            }
        })
    }
}

/// The single (id, entry) of a LogEntry map, asserting there is exactly one.
pub fn only_entry(body: &Value) -> (String, Value) {
    let map = body.as_object().expect("LogEntry is an object");
    assert_eq!(map.len(), 1, "LogEntry must have exactly one key: {body}");
    let (id, entry) = map.iter().next().unwrap();
    (id.clone(), entry.clone())
}

/// Verifies an entry the way clients do: SET, inclusion proof, checkpoint.
pub fn verify_entry(app: &TestApp, id: &str, entry: &Value) {
    use tlog::merkle::{leaf_hash, verify_inclusion, Hash};
    let body_b64 = entry["body"].as_str().unwrap();
    let body = BASE64_STANDARD.decode(body_b64).unwrap();
    let leaf = leaf_hash(&body);
    assert_eq!(
        &id[16..],
        hex::encode(leaf.0),
        "entry ID ends with the leaf hash"
    );
    assert_eq!(entry["logID"], hex::encode(app.verifier.log_id()));
    let index = entry["logIndex"].as_u64().unwrap();
    let time = entry["integratedTime"].as_i64().unwrap();
    let set = BASE64_STANDARD
        .decode(
            entry["verification"]["signedEntryTimestamp"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    app.verifier
        .verify_set(body_b64, time, index, &set)
        .expect("SET verifies");
    let proof = &entry["verification"]["inclusionProof"];
    let checkpoint = app
        .verifier
        .verify_checkpoint(proof["checkpoint"].as_str().unwrap())
        .expect("checkpoint verifies");
    let root = hex::decode(proof["rootHash"].as_str().unwrap()).unwrap();
    assert_eq!(
        checkpoint.root.0.to_vec(),
        root,
        "checkpoint root equals rootHash"
    );
    assert_eq!(checkpoint.size, proof["treeSize"].as_u64().unwrap());
    let hashes: Vec<Hash> = hex_hashes(&proof["hashes"]);
    verify_inclusion(leaf, index, checkpoint.size, &hashes, checkpoint.root)
        .expect("inclusion proof verifies");
}

/// A JSON array of hex hashes (proof `hashes`), which must be an array, never null.
pub fn hex_hashes(value: &Value) -> Vec<tlog::merkle::Hash> {
    value
        .as_array()
        .expect("hashes is an array, never null")
        .iter()
        .map(|h| {
            tlog::merkle::Hash(
                hex::decode(h.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
            )
        })
        .collect()
}
