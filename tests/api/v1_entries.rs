//! `POST /api/v1/log/entries` and the entry reads.

use serde_json::{json, Value};
use tlog::merkle::{verify_consistency, Hash};

use crate::helpers::{
    config_for, hex_hashes, only_entry, spawn_app, spawn_with, verify_entry, ClientKey,
};

#[tokio::test]
async fn create_returns_201_with_etag_location_and_a_verifiable_entry() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let response = app.create(&key.hashedrekord(b"hello")).await;
    assert_eq!(response.status(), 201);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    let (id, entry) = only_entry(&body);
    assert_eq!(etag, id, "ETag is the raw, unquoted map key");
    assert_eq!(id.len(), 80);
    assert_eq!(location, format!("/api/v1/log/entries/{id}"));
    assert_eq!(&id[..16], format!("{:016x}", app.log.info().tree_id));
    assert_eq!(entry["logIndex"], 0);
    assert_eq!(entry["verification"]["inclusionProof"]["hashes"], json!([]));
    verify_entry(&app, &id, &entry);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let time = entry["integratedTime"].as_i64().unwrap();
    assert!(
        (now - 5..=now + 1).contains(&time),
        "integratedTime is wall-clock seconds"
    );
}

#[tokio::test]
async fn entries_are_readable_by_index_by_64_and_80_hex_uuid_and_by_search() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let mut ids = Vec::new();
    let proposals: Vec<Value> = (0..5u8).map(|i| key.hashedrekord(&[i; 3])).collect();
    for proposal in &proposals {
        let response = app.create(proposal).await;
        assert_eq!(response.status(), 201);
        ids.push(response.headers()["etag"].to_str().unwrap().to_owned());
    }
    for (index, id) in ids.iter().enumerate() {
        for path in [
            format!("/api/v1/log/entries?logIndex={index}"),
            format!("/api/v1/log/entries/{id}"),
            format!("/api/v1/log/entries/{}", &id[16..]),
            format!("/api/v1/log/entries/{}", id.to_uppercase()),
        ] {
            let response = app.get(&path).await;
            assert_eq!(response.status(), 200, "{path}");
            let body: Value = response.json().await.unwrap();
            let (got_id, entry) = only_entry(&body);
            assert_eq!(&got_id, id, "{path} answers with the 80-hex ID");
            assert_eq!(entry["logIndex"], index);
            assert_eq!(entry["verification"]["inclusionProof"]["treeSize"], 5);
            verify_entry(&app, &got_id, &entry);
        }
    }
    // sigstore-python posts with a trailing slash (G-02).
    // A proposed entry is found by its canonical body; re-signing would make a new one.
    let query = json!({"entryUUIDs": [ids[3]], "logIndexes": [1, 99], "entries": [proposals[4]]});
    let response = app.post_json("/api/v1/log/entries/retrieve/", &query).await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    let got: Vec<String> = results.iter().map(|r| only_entry(r).0).collect();
    assert_eq!(
        got,
        [ids[3].clone(), ids[4].clone(), ids[1].clone()],
        "UUIDs, entries, then indexes; misses left out"
    );
}

#[tokio::test]
async fn missing_entries_are_404_with_an_empty_body() {
    let app = spawn_app().await;
    let other_tree = format!("{:016x}{}", app.log.info().tree_id ^ 1, "ab".repeat(32));
    for path in [
        "/api/v1/log/entries?logIndex=0".to_owned(),
        format!("/api/v1/log/entries/{}", "ab".repeat(32)),
        format!("/api/v1/log/entries/{other_tree}"),
        format!("/api/v1/log/entries/0000000000000000{}", "ab".repeat(32)),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn duplicate_gets_409_with_location_of_the_existing_entry() {
    let app = spawn_app().await;
    let proposal = ClientKey::new().hashedrekord(b"once");
    let first = app.create(&proposal).await;
    assert_eq!(first.status(), 201);
    let id = first.headers()["etag"].to_str().unwrap().to_owned();
    let second = app.create(&proposal).await;
    assert_eq!(second.status(), 409);
    assert_eq!(
        second.headers()["location"].to_str().unwrap(),
        format!("/api/v1/log/entries/{id}")
    );
    assert!(second.headers().get("etag").is_none());
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["code"], 409);
    assert_eq!(
        body["message"],
        format!("an equivalent entry already exists in the transparency log with UUID {id}")
    );
}

#[tokio::test]
async fn racing_identical_submissions_make_exactly_one_entry() {
    let app = spawn_app().await;
    let proposal = ClientKey::new().hashedrekord(b"race");
    let requests = (0..16).map(|_| app.create(&proposal));
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        15,
        "{statuses:?}"
    );
    let info: Value = app.get("/api/v1/log").await.json().await.unwrap();
    assert_eq!(info["treeSize"], 1);
}

#[tokio::test]
async fn concurrent_distinct_submissions_all_land_in_one_consistent_tree() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let proposals: Vec<Value> = (0..300u32)
        .map(|i| key.hashedrekord(&i.to_le_bytes()))
        .collect();
    let responses = futures_util::future::join_all(proposals.iter().map(|p| app.create(p))).await;
    let mut indexes = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let (id, entry) = only_entry(&body);
        verify_entry(&app, &id, &entry);
        indexes.push(entry["logIndex"].as_u64().unwrap());
    }
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..300).collect::<Vec<u64>>(),
        "indexes are dense and unique"
    );
}

#[tokio::test]
async fn a_restarted_server_continues_the_same_tree_and_a_second_one_follows() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let proposals: Vec<Value> = (0..260u32)
        .map(|i| key.hashedrekord(&i.to_be_bytes()))
        .collect();
    for proposal in &proposals {
        // Crosses a full tile (256), so full and partial tiles are both reloaded.
        assert_eq!(app.create(proposal).await.status(), 201);
    }
    // A second server on the same database follows the first: it does not
    // sequence, but takes creates and hands them over.
    let second = spawn_with(config_for(&app.database_url, &app.key_file)).await;
    assert!(app.log.is_leader());
    assert!(!second.log.is_leader(), "one leader at a time");
    let handed = second
        .create(&key.hashedrekord(&260u32.to_be_bytes()))
        .await;
    assert_eq!(handed.status(), 201);
    let body: Value = handed.json().await.unwrap();
    let (id, _) = only_entry(&body);
    let path = format!("/api/v1/log/entries/{id}");
    assert_eq!(second.get(&path).await.status(), 200, "read your write");
    assert_eq!(app.get(&path).await.status(), 200, "the leader has it");
    assert_eq!(second.create(&proposals[3]).await.status(), 409);
    second.stop().await;
    let before: Value = app.get("/api/v1/log").await.json().await.unwrap();
    let old = app
        .verifier
        .verify_checkpoint(before["signedTreeHead"].as_str().unwrap())
        .unwrap();
    let (database_url, key_file) = (app.database_url.clone(), app.key_file.clone());
    app.stop().await;
    let app = spawn_with(config_for(&database_url, &key_file)).await;
    let after: Value = app.get("/api/v1/log").await.json().await.unwrap();
    assert_eq!(
        after["signedTreeHead"], before["signedTreeHead"],
        "same checkpoint after restart"
    );
    for i in 261..270u32 {
        assert_eq!(
            app.create(&key.hashedrekord(&i.to_be_bytes()))
                .await
                .status(),
            201
        );
    }
    // Entries from before the restart are still duplicates.
    assert_eq!(app.create(&proposals[7]).await.status(), 409);
    let info: Value = app.get("/api/v1/log").await.json().await.unwrap();
    let new = app
        .verifier
        .verify_checkpoint(info["signedTreeHead"].as_str().unwrap())
        .unwrap();
    assert_eq!(new.size, 270);
    let proof: Value = app
        .get(&format!(
            "/api/v1/log/proof?firstSize={}&lastSize=270",
            old.size
        ))
        .await
        .json()
        .await
        .unwrap();
    let hashes: Vec<Hash> = hex_hashes(&proof["hashes"]);
    verify_consistency(old.size, old.root, new.size, new.root, &hashes).unwrap();
}

#[tokio::test]
async fn a_changed_hostname_re_signs_the_checkpoint_once() {
    let app = spawn_app().await;
    let proposal = ClientKey::new().hashedrekord(b"host");
    assert_eq!(app.create(&proposal).await.status(), 201);
    let (database_url, key_file) = (app.database_url.clone(), app.key_file.clone());
    let tree_id = app.log.info().tree_id;
    app.stop().await;

    let renamed = || {
        let mut config = config_for(&database_url, &key_file);
        config.hostname = "rekor.example.test".to_owned();
        config
    };
    let app = spawn_with(renamed()).await;
    let info: Value = app.get("/api/v1/log").await.json().await.unwrap();
    let note = info["signedTreeHead"].as_str().unwrap().to_owned();
    let checkpoint = app.verifier.verify_checkpoint(&note).unwrap();
    assert_eq!(checkpoint.origin, format!("rekor.example.test - {tree_id}"));
    assert_eq!(checkpoint.size, 1, "same tree, re-signed");
    assert!(note.contains("\n— rekor.example.test "), "{note}");
    app.stop().await;

    // The same host name again: the stored checkpoint is served as it is.
    let app = spawn_with(renamed()).await;
    let again: Value = app.get("/api/v1/log").await.json().await.unwrap();
    assert_eq!(again["signedTreeHead"], note.as_str());
    app.stop().await;
}
