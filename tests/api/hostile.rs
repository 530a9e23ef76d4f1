//! Requests written to hurt the log (issue 12): each is refused with a 4xx
//! and Rekor's `{code, message}` body, and honest entries around it still
//! commit.

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, test_config, ClientKey, TestApp};

const INTOTO: &str = "application/vnd.in-toto+json";

/// A P-256 key of the attacker's own, signing DSSE envelopes.
/// A `dsse` proposal of `payload` with `signatures` and `verifiers`.
fn dsse(payload: &[u8], signatures: &[String], verifiers: &[&ClientKey]) -> Value {
    let signatures: Vec<Value> = signatures
        .iter()
        .map(|s| json!({"keyid": "", "sig": s}))
        .collect();
    let envelope = json!({"payloadType": INTOTO, "payload": BASE64_STANDARD.encode(payload),
                          "signatures": signatures});
    let verifiers: Vec<String> = verifiers
        .iter()
        .map(|k| BASE64_STANDARD.encode(&k.pem))
        .collect();
    json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": envelope.to_string(), "verifiers": verifiers}}})
}

/// A statement whose one subject digest is `digest` (JSON text).
fn statement(digest_json: &str) -> Vec<u8> {
    format!(r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"a","digest":{{"sha256":{digest_json}}}}}],"predicateType":"x","predicate":{{}}}}"#).into_bytes()
}

/// Posts raw bytes as JSON.
async fn post_bytes(app: &TestApp, path: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Asserts a Rekor error body with `code` and a message containing `part`.
async fn assert_refused(response: reqwest::Response, code: u16, part: &str) {
    assert_eq!(response.status(), code);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(part), "{message:?} lacks {part:?}");
}

#[tokio::test]
async fn a_body_of_millions_of_zeros_is_refused_before_it_is_parsed() {
    let app = spawn_app().await;
    // Just under the 32 MiB body limit: as a `Value` it would take 500 MB.
    let mut zeros = b"[".to_vec();
    zeros.extend(b"0,".repeat((32 << 20) / 2 - 8));
    zeros.extend(b"0]");
    for path in ["/api/v1/log/entries", "/api/v1/log/entries/retrieve"] {
        let response = post_bytes(&app, path, zeros.clone()).await;
        assert_refused(response, 400, "JSON document holds more than 100000 values").await;
    }
    let deep = format!("{{\"entries\":{}{}}}", "[".repeat(100), "]".repeat(100));
    let response = post_bytes(&app, "/api/v1/log/entries/retrieve", deep.into_bytes()).await;
    assert_refused(response, 400, "JSON nested deeper than 64 levels").await;
    // The server lives on.
    let key = ClientKey::new();
    assert_eq!(app.create(&key.hashedrekord(b"after")).await.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn envelopes_with_more_than_sixteen_signatures_or_verifiers_get_400() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let payload = statement(r#""ab""#);
    let sig = key.sign(INTOTO, &payload);
    let response = app
        .create(&dsse(&payload, &vec![sig.clone(); 17], &[&key]))
        .await;
    assert_refused(
        response,
        400,
        "DSSE envelope has 17 signatures; at most 16 are accepted",
    )
    .await;
    let response = app
        .create(&dsse(&payload, std::slice::from_ref(&sig), &[&key; 17]))
        .await;
    assert_refused(response, 400, "17 verifiers given; at most 16 are accepted").await;
    // The same refusal on the read path, which verifies too.
    let search = json!({"entries": [dsse(&payload, &vec![sig; 17], &[&key])]});
    let response = app.post_json("/api/v1/log/entries/retrieve", &search).await;
    assert_refused(response, 400, "at most 16 are accepted").await;
    app.stop().await;
}

#[tokio::test]
async fn an_ssh_rekord_of_begin_markers_without_an_end_gets_400() {
    let app = spawn_app().await;
    let sig = "-----BEGIN ".repeat(200_000);
    let proposal = json!({"apiVersion": "0.0.1", "kind": "rekord", "spec": {
        "signature": {"format": "ssh", "content": BASE64_STANDARD.encode(sig),
                      "publicKey": {"content": BASE64_STANDARD.encode("ssh-ed25519 AAAA")}},
        "data": {"content": BASE64_STANDARD.encode("x")}}});
    assert_eq!(app.create(&proposal).await.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn a_pgp_signature_nested_5000_deep_gets_400() {
    let app = spawn_app().await;
    // Signature packets embedding one another in their unhashed area.
    let mut body = vec![4u8, 0, 1, 8, 0, 0, 0, 0];
    for _ in 0..5000 {
        let len = body.len() + 1;
        let mut area = Vec::new();
        if len < 192 {
            area.push(u8::try_from(len).unwrap());
        } else if len < 16320 {
            area.push(u8::try_from(((len - 192) >> 8) + 192).unwrap());
            area.push(u8::try_from((len - 192) & 0xff).unwrap());
        } else {
            area.push(255);
            area.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        }
        area.push(32);
        area.extend_from_slice(&body);
        body = [
            &[4u8, 0, 1, 8, 0, 0][..],
            &u16::try_from(area.len()).unwrap().to_be_bytes(),
            &area,
        ]
        .concat();
    }
    let mut packet = vec![0xc2, 255];
    packet.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    packet.extend_from_slice(&body);
    let proposal = json!({"apiVersion": "0.0.1", "kind": "rekord", "spec": {
        "signature": {"format": "pgp", "content": BASE64_STANDARD.encode(&packet),
                      "publicKey": {"content": BASE64_STANDARD.encode("key")}},
        "data": {"content": BASE64_STANDARD.encode("x")}}});
    assert_refused(
        app.create(&proposal).await,
        400,
        "embedded signatures nested more than 8 deep",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn poisoned_entries_get_400_and_every_honest_entry_of_their_batch_commits() {
    let mut config = test_config().await;
    // A long linger puts the poison and the honest entries in one batch.
    config.batch.interval_ms = 300;
    let app = spawn_with(config).await;
    let attacker = ClientKey::new();
    let poisons: Vec<(Value, &str)> = [
        (
            statement(r#""\u0000""#),
            "contains the control character U+0000",
        ),
        (
            statement(&format!("\"{}\"", "a".repeat(3000))),
            "3007 bytes long, more than the 512 allowed",
        ),
    ]
    .into_iter()
    .map(|(payload, why)| {
        let sig = attacker.sign(INTOTO, &payload);
        (dsse(&payload, &[sig], &[&attacker]), why)
    })
    .collect();
    let honest: Vec<Value> = (0..8)
        .map(|i| ClientKey::new().hashedrekord(format!("honest {i}").as_bytes()))
        .collect();
    let requests = poisons
        .iter()
        .map(|(p, _)| p)
        .chain(&honest)
        .map(|p| app.create(p));
    let responses = futures_util::future::join_all(requests).await;
    let mut responses = responses.into_iter();
    for (_, why) in &poisons {
        assert_refused(responses.next().unwrap(), 400, why).await;
    }
    for response in responses {
        assert_eq!(response.status(), 201);
    }
    // A retry of the poison is refused the same way, never stored.
    assert_refused(app.create(&poisons[0].0).await, 400, poisons[0].1).await;
    assert_eq!(app.log.checkpoint().size, 8);
    app.stop().await;
}
