//! `kill -9` of a real `tlog serve` process under load loses no acknowledged
//! entry, and the restarted log continues the same tree (issue 2).

use std::process::Command;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::Value;
use tlog::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use tlog::signing::{LogSigner, LogVerifier};

use crate::helpers::{create_database, hex_hashes, ClientKey};
use crate::process::{free_port, start_server, ServerProcess};

async fn start(database_url: &str, key_file: &std::path::Path) -> ServerProcess {
    start_server(
        free_port(),
        &[
            ("TLOG_DATABASE_URL", std::ffi::OsStr::new(database_url)),
            ("TLOG_KEY_FILE", key_file.as_os_str()),
            ("TLOG_HOSTNAME", std::ffi::OsStr::new("localhost")),
        ],
    )
    .await
}

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_entry() {
    let database_url = create_database().await;
    let key_file = std::env::temp_dir().join(format!("tlog-crash-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    let pem = std::fs::read_to_string(&key_file).unwrap();
    let verifier: LogVerifier = LogSigner::from_pkcs8_pem(&pem).unwrap().verifier();

    let mut server = start(&database_url, &key_file).await;
    let client = reqwest::Client::new();
    let key = ClientKey::new();
    let proposals: Vec<Value> = (0..2000u32)
        .map(|i| key.hashedrekord(&i.to_be_bytes()))
        .collect();

    // 32 clients post until the server dies; each keeps what was acknowledged.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let proposals = std::sync::Arc::new(proposals);
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (client, url, tx, next, proposals) = (
            client.clone(),
            server.url.clone(),
            tx.clone(),
            next.clone(),
            proposals.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(proposal) = proposals.get(i) else {
                    break;
                };
                let Ok(response) = client
                    .post(format!("{url}/api/v1/log/entries"))
                    .json(proposal)
                    .send()
                    .await
                else {
                    break; // the server is gone
                };
                if response.status() == 201 {
                    let id = response.headers()["etag"].to_str().unwrap().to_owned();
                    if let Ok(body) = response.json::<Value>().await {
                        let _ = tx.send((id, body));
                    }
                }
            }
        }));
    }
    drop(tx);
    // Let a few hundred entries through, then kill -9 in the middle of the load.
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    let mut acknowledged = Vec::new();
    while let Some(item) = rx.recv().await {
        acknowledged.push(item);
    }
    assert!(
        acknowledged.len() > 50,
        "the load ran before the kill: {}",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() < 2000,
        "the kill happened during the load"
    );

    // The largest checkpoint any client was shown before the kill.
    let last_seen = acknowledged
        .iter()
        .map(|(_, body)| {
            let entry = body.as_object().unwrap().values().next().unwrap();
            let text = entry["verification"]["inclusionProof"]["checkpoint"]
                .as_str()
                .unwrap();
            verifier.verify_checkpoint(text).unwrap()
        })
        .max_by_key(|c| c.size)
        .unwrap();

    let server = start(&database_url, &key_file).await;
    for (id, _) in &acknowledged {
        let response = client
            .get(format!("{}/api/v1/log/entries/{id}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "acknowledged entry {id} survived");
        let body: Value = response.json().await.unwrap();
        let entry = body.as_object().unwrap().values().next().unwrap();
        let leaf = leaf_hash(
            &BASE64_STANDARD
                .decode(entry["body"].as_str().unwrap())
                .unwrap(),
        );
        let proof = &entry["verification"]["inclusionProof"];
        let checkpoint = verifier
            .verify_checkpoint(proof["checkpoint"].as_str().unwrap())
            .unwrap();
        verify_inclusion(
            leaf,
            entry["logIndex"].as_u64().unwrap(),
            checkpoint.size,
            &hex_hashes(&proof["hashes"]),
            checkpoint.root,
        )
        .unwrap();
    }
    let info: Value = client
        .get(format!("{}/api/v1/log", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now = verifier
        .verify_checkpoint(info["signedTreeHead"].as_str().unwrap())
        .unwrap();
    assert!(now.size >= last_seen.size);
    let proof: Value = client
        .get(format!(
            "{}/api/v1/log/proof?firstSize={}&lastSize={}",
            server.url, last_seen.size, now.size
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    verify_consistency(
        last_seen.size,
        last_seen.root,
        now.size,
        now.root,
        &hex_hashes(&proof["hashes"]),
    )
    .expect("the restarted log is consistent with what clients saw");
}

#[tokio::test]
async fn sigterm_under_load_exits_cleanly_and_loses_no_acknowledged_entry() {
    let database_url = create_database().await;
    let key_file = std::env::temp_dir().join(format!("tlog-term-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    let mut server = start(&database_url, &key_file).await;
    let client = reqwest::Client::new();
    let key = ClientKey::new();
    let proposals = std::sync::Arc::new(
        (0..3000u32)
            .map(|i| key.hashedrekord(&i.to_be_bytes()))
            .collect::<Vec<Value>>(),
    );
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (client, url, next, proposals) = (
            client.clone(),
            server.url.clone(),
            next.clone(),
            proposals.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(proposal) = proposals.get(i) else {
                    break;
                };
                let Ok(response) = client
                    .post(format!("{url}/api/v1/log/entries"))
                    .json(proposal)
                    .send()
                    .await
                else {
                    break;
                };
                if response.status() == 201 {
                    acknowledged.push(response.headers()["etag"].to_str().unwrap().to_owned());
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(35),
            "exits within the grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.unwrap());
    }
    assert!(acknowledged.len() > 50, "load ran: {}", acknowledged.len());

    let server = start(&database_url, &key_file).await;
    for id in &acknowledged {
        let response = client
            .get(format!("{}/api/v1/log/entries/{id}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged entry {id} survived SIGTERM"
        );
    }
}
