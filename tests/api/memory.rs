//! Memory independent of the log's size (issue 13, item 4): a server on
//! Postgres loads only the checkpoint, the level-1 tiles and the last level-0
//! tile, and reads the other level-0 tiles when a proof needs them, checking
//! each against the hash it holds.

use serde_json::Value;
use sqlx::Connection;
use tlog::merkle::{leaf_hash, verify_inclusion};

use crate::helpers::{config_for, hex_hashes, only_entry, spawn_app, spawn_with, ClientKey};

#[tokio::test]
async fn a_restarted_server_reads_level_0_tiles_only_when_a_proof_needs_them() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let proposals: Vec<Value> = (0..300u32)
        .map(|i| key.hashedrekord(&i.to_be_bytes()))
        .collect();
    let mut ids = Vec::new();
    for proposal in &proposals {
        let created = app.create(proposal).await;
        assert_eq!(created.status(), 201);
        let body: Value = created.json().await.unwrap();
        ids.push(only_entry(&body).0);
    }
    let (database_url, key_file) = (app.database_url.clone(), app.key_file.clone());
    app.stop().await;

    // Damage the first, complete, level-0 tile. A server that rebuilt its tree
    // from every leaf would refuse to start (its root no longer matches).
    let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
    sqlx::query(
        "UPDATE tiles SET hashes = overlay(hashes placing '\\xff'::bytea from 33 for 1) \
         WHERE level = 0 AND idx = 0",
    )
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();

    let app = spawn_with(config_for(&database_url, &key_file)).await;
    assert_eq!(app.log.checkpoint().size, 300, "loaded without tile 0");

    // An entry in the last, partial tile is served with a proof that verifies.
    let path = format!("/api/v1/log/entries/{}", ids[299]);
    let body: Value = app.get(&path).await.json().await.unwrap();
    let (_, entry) = only_entry(&body);
    let proof = &entry["verification"]["inclusionProof"];
    let checkpoint = app.log.checkpoint();
    let body_bytes = base64_decode(entry["body"].as_str().unwrap());
    verify_inclusion(
        leaf_hash(&body_bytes),
        299,
        300,
        &hex_hashes(&proof["hashes"]),
        checkpoint.root,
    )
    .unwrap();

    // One in the damaged tile: its tile does not hash to the level-1 tile the
    // server loaded, so it answers 500 rather than a proof that would not
    // verify, by UUID and by index alike.
    let damaged = app.get(&format!("/api/v1/log/entries/{}", ids[1])).await;
    assert_eq!(damaged.status(), 500);
    let damaged = app.get("/api/v1/log/entries?logIndex=1").await;
    assert_eq!(damaged.status(), 500);
    let proof = app.get("/api/v1/log/proof?firstSize=10&lastSize=300").await;
    assert_eq!(proof.status(), 500, "a consistency proof needs tile 0 too");

    // Duplicates are still found, through the database's leaf index.
    assert_eq!(app.create(&proposals[1]).await.status(), 409);
    assert_eq!(app.create(&proposals[298]).await.status(), 409);
    assert_eq!(
        app.create(&key.hashedrekord(b"new after restart"))
            .await
            .status(),
        201
    );
    app.stop().await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::prelude::*;
    BASE64_STANDARD.decode(text).unwrap()
}
