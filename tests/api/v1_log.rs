//! `GET /api/v1/log`, `/log/publicKey`, `/log/proof`.

use serde_json::Value;
use tlog::merkle::{verify_consistency, Hash};

use crate::helpers::{spawn_app, ClientKey};

fn hash(hex_str: &str) -> Hash {
    Hash(hex::decode(hex_str).unwrap().try_into().unwrap())
}

#[tokio::test]
async fn empty_log_reports_size_zero_with_a_signed_checkpoint() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/log").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["treeSize"], 0);
    assert_eq!(
        info["rootHash"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let tree_id = info["treeID"].as_str().expect("treeID is a string");
    assert!(tree_id.parse::<i64>().unwrap() > 0);
    let checkpoint = app
        .verifier
        .verify_checkpoint(info["signedTreeHead"].as_str().unwrap())
        .unwrap();
    assert_eq!(checkpoint.origin, format!("localhost - {tree_id}"));
    assert_eq!(checkpoint.size, 0);
}

#[tokio::test]
async fn public_key_is_served_as_pem_and_checks_the_tree_id() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/log/publicKey").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-pem-file");
    assert_eq!(
        response.text().await.unwrap(),
        app.verifier.public_key_pem()
    );

    let tree_id = app.log.info().tree_id;
    let ok = app
        .get(&format!("/api/v1/log/publicKey?treeID={tree_id}"))
        .await;
    assert_eq!(ok.status(), 200);
    let empty = app.get("/api/v1/log/publicKey?treeID=").await;
    assert_eq!(empty.status(), 200, "an empty treeID counts as absent");
    let other = app
        .get(&format!("/api/v1/log/publicKey?treeID={}", tree_id ^ 1))
        .await;
    assert_eq!(other.status(), 400);
    let bad = app.get("/api/v1/log/publicKey?treeID=abc").await;
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], 605);
}

#[tokio::test]
async fn consistency_proofs_verify_between_every_pair_of_signed_sizes() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let mut heads = Vec::new();
    for i in 0..7u32 {
        let response = app.create(&key.hashedrekord(&i.to_be_bytes())).await;
        assert_eq!(response.status(), 201);
        let info: Value = app.get("/api/v1/log").await.json().await.unwrap();
        let checkpoint = app
            .verifier
            .verify_checkpoint(info["signedTreeHead"].as_str().unwrap())
            .unwrap();
        heads.push(checkpoint);
    }
    for old in &heads {
        for new in heads.iter().filter(|h| h.size >= old.size) {
            let path = format!(
                "/api/v1/log/proof?firstSize={}&lastSize={}",
                old.size, new.size
            );
            let proof: Value = app.get(&path).await.json().await.unwrap();
            let hashes: Vec<Hash> = proof["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| hash(h.as_str().unwrap()))
                .collect();
            verify_consistency(old.size, old.root, new.size, new.root, &hashes)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                proof["rootHash"],
                hex::encode(heads.last().unwrap().root.0),
                "rootHash is the latest root"
            );
        }
    }
}

#[tokio::test]
async fn proof_parameters_are_checked_in_rekors_order() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    for i in 0..3u8 {
        assert_eq!(app.create(&key.hashedrekord(&[i])).await.status(), 201);
    }
    let cases: &[(&str, u16, &str)] = &[
        ("", 422, "lastSize in query is required"),
        (
            "?lastSize=x",
            422,
            "lastSize in query must be of type int64: \"x\"",
        ),
        (
            "?lastSize=0",
            422,
            "lastSize in query should be greater than or equal to 1",
        ),
        (
            "?firstSize=0&lastSize=2",
            422,
            "firstSize in query should be greater than or equal to 1",
        ),
        (
            "?firstSize=3&lastSize=2",
            400,
            "firstSize(3) must be less than lastSize(2)",
        ),
        (
            "?lastSize=2&treeID=zz",
            400,
            "invalid tree ID specified: zz",
        ),
        (
            "?lastSize=2&treeID=7",
            400,
            "no log range found for tree ID 7",
        ),
        (
            "?lastSize=4",
            400,
            "the tree size requested(4) was greater than what is currently observable(3)",
        ),
    ];
    for (query, status, message) in cases {
        let response = app.get(&format!("/api/v1/log/proof{query}")).await;
        assert_eq!(response.status(), *status, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], *message, "{query}");
    }
    let same: Value = app
        .get("/api/v1/log/proof?firstSize=2&lastSize=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(same["hashes"], serde_json::json!([]));
}
