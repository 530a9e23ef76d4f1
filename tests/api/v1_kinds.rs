//! dsse and intoto through the API, kinds disabled by config, and
//! `POST /api/v1/index/retrieve`.

use serde_json::{json, Value};

use crate::helpers::{only_entry, spawn_app, spawn_with, test_config, verify_entry, ClientKey};

const DSSE_REQUEST: &str = include_str!("../fixtures/v1/dsse-v01-request.json");
const DSSE_BODY: &str = include_str!("../fixtures/v1/dsse-v01-body.json");
const INTOTO_REQUEST: &str = include_str!("../fixtures/v1/intoto-v002-request.json");

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn real_dsse_and_intoto_entries_are_created_found_by_search_and_indexed() {
    use base64::prelude::{Engine, BASE64_STANDARD};
    let app = spawn_app().await;
    let dsse = fixture(DSSE_REQUEST);
    let response = app.create(&dsse).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let (dsse_id, entry) = only_entry(&body);
    verify_entry(&app, &dsse_id, &entry);
    assert_eq!(
        BASE64_STANDARD
            .decode(entry["body"].as_str().unwrap())
            .unwrap(),
        DSSE_BODY.as_bytes()
    );
    let response = app.create(&fixture(INTOTO_REQUEST)).await;
    assert_eq!(response.status(), 201);
    let intoto_id = response.headers()["etag"].to_str().unwrap().to_owned();

    // cosign's legacy verify searches with proposed entries; the committed
    // dsse form finds the same entry.
    let stored: Value = serde_json::from_str(DSSE_BODY).unwrap();
    let committed = json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": stored["spec"]});
    let query = json!({"entries": [dsse, fixture(INTOTO_REQUEST), committed]});
    let response = app.post_json("/api/v1/log/entries/retrieve", &query).await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    let ids: Vec<String> = results.iter().map(|r| only_entry(r).0).collect();
    assert_eq!(ids, [dsse_id.clone(), intoto_id.clone(), dsse_id.clone()]);

    // Index keys: the in-toto subject digest and the certificate's URI SAN.
    let subject = "sha256:c9709ce6fd5b67b59b4a28758cf14d3f411803c4b89b6068b1f1a8e4ee94c8ef";
    let found = index(&app, &json!({"hash": subject})).await;
    assert_eq!(found, std::slice::from_ref(&dsse_id));
    let found = index(&app, &json!({"email": "brian@dehamer.com"})).await;
    assert_eq!(found, [intoto_id]);
    app.stop().await;
}

#[tokio::test]
async fn a_broken_proposed_entry_fails_the_whole_search_with_400() {
    let app = spawn_app().await;
    let mut dsse = fixture(DSSE_REQUEST);
    dsse["spec"]["proposedContent"]["verifiers"] = json!(["bm90IGEga2V5"]);
    let response = app
        .post_json("/api/v1/log/entries/retrieve", &json!({"entries": [dsse]}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "could not parse public key as x509: invalid public key: failure decoding PEM"
    );
    app.stop().await;
}

#[tokio::test]
async fn disabled_kinds_are_refused_on_create_but_still_searchable() {
    let mut config = test_config().await;
    config.entries.disabled_kinds = vec!["dsse".to_owned()];
    config.validate().unwrap();
    let app = spawn_with(config).await;
    let response = app.create(&fixture(DSSE_REQUEST)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 400, "message": "error processing entry: entry kind 'dsse' is not enabled for submission on this server"})
    );
    let response = app
        .post_json(
            "/api/v1/log/entries/retrieve",
            &json!({"entries": [fixture(DSSE_REQUEST)]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!([]));
    assert_eq!(app.create(&fixture(INTOTO_REQUEST)).await.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn unknown_kinds_are_422_and_unknown_versions_400() {
    let app = spawn_app().await;
    let response = app
        .create(&json!({"kind": "rpm", "apiVersion": "0.0.1", "spec": {}}))
        .await;
    assert_eq!(response.status(), 422);
    let mut intoto = fixture(INTOTO_REQUEST);
    intoto["apiVersion"] = json!("0.0.9");
    let response = app.create(&intoto).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "error processing entry: intoto implementation for version '0.0.9' not found: unable to locate entry for version 0.0.9");
    app.stop().await;
}

async fn index(app: &crate::helpers::TestApp, query: &Value) -> Vec<String> {
    let response = app.post_json("/api/v1/index/retrieve", query).await;
    assert_eq!(response.status(), 200, "{query}");
    let mut ids: Vec<String> = response.json().await.unwrap();
    ids.sort();
    ids
}

#[tokio::test]
async fn index_retrieve_finds_hashedrekord_by_hash_and_key_with_and_or() {
    use base64::prelude::{Engine, BASE64_STANDARD};
    use sha2::{Digest, Sha256};
    let app = spawn_app().await;
    let (alice, bob) = (ClientKey::new(), ClientKey::new());
    let mut ids = Vec::new();
    for (key, artifact) in [(&alice, &b"one"[..]), (&alice, b"two"), (&bob, b"one")] {
        let response = app.create(&key.hashedrekord(artifact)).await;
        assert_eq!(response.status(), 201);
        ids.push(response.headers()["etag"].to_str().unwrap().to_owned());
    }
    let one = hex::encode(Sha256::digest(b"one"));
    let alice_key = json!({"format": "x509", "content": BASE64_STANDARD.encode(&alice.pem)});
    let mut by_hash = vec![ids[0].clone(), ids[2].clone()];
    by_hash.sort();
    assert_eq!(index(&app, &json!({"hash": one})).await, by_hash);
    assert_eq!(
        index(
            &app,
            &json!({"hash": format!("sha256:{}", one.to_uppercase())})
        )
        .await,
        by_hash
    );
    let mut alices = vec![ids[0].clone(), ids[1].clone()];
    alices.sort();
    assert_eq!(index(&app, &json!({"publicKey": alice_key})).await, alices);
    assert_eq!(
        index(
            &app,
            &json!({"publicKey": alice_key, "hash": one, "operator": "and"})
        )
        .await,
        [ids[0].clone()]
    );
    let mut all = ids.clone();
    all.sort();
    assert_eq!(
        index(
            &app,
            &json!({"publicKey": alice_key, "hash": one, "operator": "or"})
        )
        .await,
        all
    );
    assert!(index(&app, &json!({"email": "nobody@example.com"}))
        .await
        .is_empty());

    let bad = app
        .post_json(
            "/api/v1/index/retrieve",
            &json!({"publicKey": {"format": "x509", "content": "bm9wZQ=="}}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let bad = app
        .post_json(
            "/api/v1/index/retrieve",
            &json!({"publicKey": {"format": "pkcs7", "content": ""}}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    let bad = app
        .post_json("/api/v1/index/retrieve", &json!({"hash": "abc"}))
        .await;
    assert_eq!(bad.status(), 422);
    app.stop().await;
}
