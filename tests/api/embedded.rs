//! The embedded default: `tlog serve` with no database keeps the log in
//! `data_dir`, and every acknowledged entry survives `kill -9`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tlog::signing::{LogSigner, LogVerifier};

use crate::conformance::tempdir;
use crate::helpers::{hex_hashes, only_entry, ClientKey};
use crate::process::{free_port, start_server, ServerProcess};

async fn start(dir: &std::path::Path, key: &std::path::Path, port: u16) -> ServerProcess {
    start_server(
        port,
        &[
            ("TLOG_DATA_DIR", dir.as_os_str()),
            ("TLOG_KEY_FILE", key.as_os_str()),
        ],
    )
    .await
}

/// Checks an entry as a client does: SET, inclusion proof and checkpoint.
fn verify(verifier: &LogVerifier, entry: &Value) {
    use base64::prelude::{Engine, BASE64_STANDARD};
    use tlog::merkle::{leaf_hash, verify_inclusion, Hash};
    let body_b64 = entry["body"].as_str().unwrap();
    let index = entry["logIndex"].as_u64().unwrap();
    let set = BASE64_STANDARD
        .decode(
            entry["verification"]["signedEntryTimestamp"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    verifier
        .verify_set(
            body_b64,
            entry["integratedTime"].as_i64().unwrap(),
            index,
            &set,
        )
        .expect("SET verifies");
    let proof = &entry["verification"]["inclusionProof"];
    let checkpoint = verifier
        .verify_checkpoint(proof["checkpoint"].as_str().unwrap())
        .expect("checkpoint verifies");
    let hashes: Vec<Hash> = hex_hashes(&proof["hashes"]);
    let leaf = leaf_hash(&BASE64_STANDARD.decode(body_b64).unwrap());
    verify_inclusion(leaf, index, checkpoint.size, &hashes, checkpoint.root)
        .expect("inclusion proof verifies");
}

#[tokio::test]
async fn embedded_server_keeps_every_acknowledged_entry_through_kill_9() {
    let dir = tempdir();
    let key = dir.join("key.pem");
    let pem = LogSigner::generate_pkcs8_pem().unwrap();
    std::fs::write(&key, &pem).unwrap();
    let verifier = LogSigner::from_pkcs8_pem(&pem).unwrap().verifier();
    let port = free_port();
    let mut server = start(&dir.join("data"), &key, port).await;

    // Writers post until the server dies under them.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..16 {
        let (acked, address) = (Arc::clone(&acked), server.url.clone());
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let key = ClientKey::new();
            for i in 0.. {
                let proposal = key.hashedrekord(format!("{w}/{i}").as_bytes());
                let Ok(r) = client
                    .post(format!("{address}/api/v1/log/entries"))
                    .json(&proposal)
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != 201 {
                    continue;
                }
                let Ok(body) = r.json::<Value>().await else {
                    return;
                };
                let (id, entry) = only_entry(&body);
                acked.lock().push((id, entry["logIndex"].as_u64().unwrap()));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().clone();
    assert!(acked.len() > 20, "the writers got going: {}", acked.len());

    let mut server = start(&dir.join("data"), &key, port).await;
    let client = reqwest::Client::new();
    let info: Value = client
        .get(format!("{}/api/v1/log", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info["treeSize"].as_u64().unwrap() >= acked.len() as u64);
    verifier
        .verify_checkpoint(info["signedTreeHead"].as_str().unwrap())
        .expect("the restarted log's checkpoint verifies");
    for (id, index) in &acked {
        let r = client
            .get(format!("{}/api/v1/log/entries/{id}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged entry {id} survived");
        let (_, entry) = only_entry(&r.json().await.unwrap());
        assert_eq!(entry["logIndex"].as_u64(), Some(*index));
        verify(&verifier, &entry);
    }
    // And the log still takes writes.
    let r = client
        .post(format!("{}/api/v1/log/entries", server.url))
        .json(&ClientKey::new().hashedrekord(b"after the crash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn serve_without_database_or_key_creates_a_key_and_a_persistent_log() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tlog-first-run-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("tlog-key.pem");
    let config = || -> tlog::config::Config {
        use figment::providers::{Format, Yaml};
        let yaml = format!(
            "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\ndata_dir: {}\nkey_file: {}\n",
            dir.join("data").display(),
            key_file.display()
        );
        figment::Figment::new()
            .merge(Yaml::string(&yaml))
            .extract()
            .unwrap()
    };
    let app = crate::helpers::spawn_with(config()).await;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the generated key is readable by its owner only"
    );
    let proposal = crate::helpers::ClientKey::new().hashedrekord(b"first run");
    let created = app.create(&proposal).await;
    assert_eq!(created.status(), 201);
    let id = created.headers()["etag"].to_str().unwrap().to_owned();
    app.stop().await;

    // The same key is reused, and the entry is still there.
    let before = std::fs::read(&key_file).unwrap();
    let app = crate::helpers::spawn_with(config()).await;
    assert_eq!(std::fs::read(&key_file).unwrap(), before);
    assert_eq!(
        app.get(&format!("/api/v1/log/entries/{id}")).await.status(),
        200
    );
    assert_eq!(app.create(&proposal).await.status(), 409);
    app.stop().await;
}

/// Waits until `url/readyz` answers 200.
async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        let ready = client.get(format!("{url}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no server became ready on {url}");
}

/// Kills and reaps a child on every path.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_and_replica_flags_win_over_the_environment() {
    use crate::process::free_port;
    use std::process::{Command, Stdio};
    let dir = tempdir();
    let key = dir.join("flag-key.pem");
    let (env_port, port, metrics_port) = (free_port(), free_port(), free_port());
    let serve = Command::new(env!("CARGO_BIN_EXE_tlog"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--hostname", "flags.example"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--key-file")
        .arg(&key)
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .env_clear()
        .env("TLOG_LISTEN", format!("127.0.0.1:{env_port}"))
        .env("TLOG_HOSTNAME", "env.example")
        .env("TLOG_DATA_DIR", dir.join("env-data"))
        .env("TLOG_KEY_FILE", dir.join("env-key.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serve = Reaped(serve);
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&url).await;
    let info: Value = reqwest::get(format!("{url}/api/v1/log"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let note = info["signedTreeHead"].as_str().unwrap();
    assert!(note.starts_with("flags.example - "), "{note}");
    assert!(key.exists() && dir.join("data").join("db.jsonl").exists());
    assert!(!dir.join("env-key.pem").exists() && !dir.join("env-data").exists());
    assert!(reqwest::get(format!("http://127.0.0.1:{env_port}/readyz"))
        .await
        .is_err());
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    drop(serve);

    // The replica takes the same flags.
    let verifier = LogVerifier::from_pem(
        &LogSigner::from_pkcs8_pem(&std::fs::read_to_string(&key).unwrap())
            .unwrap()
            .public_key_pem(),
    )
    .unwrap();
    let public_key = dir.join("log.pub");
    std::fs::write(&public_key, verifier.public_key_pem()).unwrap();
    let replica_port = free_port();
    let replica = Command::new(env!("CARGO_BIN_EXE_tlog"))
        .arg("replica")
        .arg("--db")
        .arg(dir.join("data").join("db.jsonl"))
        .arg("--public-key")
        .arg(&public_key)
        .args(["--listen", &format!("127.0.0.1:{replica_port}")])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env_clear()
        .env("TLOG_LISTEN", format!("127.0.0.1:{env_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _replica = Reaped(replica);
    wait_ready(&format!("http://127.0.0.1:{replica_port}")).await;
}
