//! Bad input gets Rekor's status and `{"code","message"}` body, and the server
//! keeps serving (rekor-v1.md G-03, G-07, G-12, E-04..E-07, X-04, X-05).

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, test_config, ClientKey};

async fn error_body(response: reqwest::Response) -> Value {
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn create_rejects_other_media_types_with_415() {
    let app = spawn_app().await;
    for content_type in [Some("text/plain"), None] {
        let mut request = app.client.post(app.url("/api/v1/log/entries")).body("{}");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415);
        let body = error_body(response).await;
        assert_eq!(body["code"], 415);
        let shown = content_type.unwrap_or("application/octet-stream");
        assert_eq!(
            body["message"],
            format!("unsupported media type \"{shown}\", only [application/json] are allowed")
        );
    }
    let with_charset = app
        .client
        .post(app.url("/api/v1/log/entries"))
        .header("content-type", "application/json; charset=utf-8")
        .body(serde_json::to_vec(&ClientKey::new().hashedrekord(b"cs")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_charset.status(),
        201,
        "parameters after ';' are ignored"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_in_json() {
    let mut config = test_config().await;
    config.max_request_body = 1024;
    let app = spawn_with(config).await;
    let big = json!({"kind": "hashedrekord", "pad": "x".repeat(2048)});
    for path in ["/api/v1/log/entries", "/api/v1/log/entries/retrieve"] {
        let response = app.post_json(path, &big).await;
        assert_eq!(response.status(), 413, "{path}");
        let body = error_body(response).await;
        assert_eq!(
            body["message"],
            "Request Entity Too Large. Limit set to 1024"
        );
    }
}

#[tokio::test]
async fn malformed_create_bodies_get_rekors_status_and_code() {
    let app = spawn_app().await;
    let raw = |body: &'static str| {
        app.client
            .post(app.url("/api/v1/log/entries"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = raw("{not json").await.unwrap();
    assert_eq!(
        response.status(),
        400,
        "invalid JSON is a client error, never 5xx"
    );
    assert_eq!(error_body(response).await["code"], 400);

    let cases = [
        (
            json!({"apiVersion": "0.0.1", "spec": {}}),
            422,
            602,
            "kind in body is required",
        ),
        (
            json!({"kind": "nope", "apiVersion": "0.0.1", "spec": {}}),
            422,
            422,
            "invalid kind value: \"nope\"",
        ),
    ];
    for (body, status, code, message) in cases {
        let response = app.create(&body).await;
        assert_eq!(response.status(), status, "{body}");
        let got = error_body(response).await;
        assert_eq!(got["code"], code, "{body}");
        assert_eq!(got["message"], message, "{body}");
    }
    let mut wrong_sig = ClientKey::new().hashedrekord(b"a");
    wrong_sig["spec"]["signature"]["content"] =
        ClientKey::new().hashedrekord(b"a")["spec"]["signature"]["content"].clone();
    let response = app.create(&wrong_sig).await;
    assert_eq!(response.status(), 400);
    let got = error_body(response).await;
    assert!(
        got["message"]
            .as_str()
            .unwrap()
            .starts_with("error processing entry: verifying signature"),
        "{got}"
    );
    // Nothing malformed left a partial entry, and the server still serves.
    let info: Value = app.get("/api/v1/log").await.json().await.unwrap();
    assert_eq!(info["treeSize"], 0);
    assert_eq!(
        app.create(&ClientKey::new().hashedrekord(b"ok"))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn entry_reads_validate_their_parameters() {
    let app = spawn_app().await;
    let cases: &[(&str, u16, &str)] = &[
        ("/api/v1/log/entries", 602, "logIndex in query is required"),
        (
            "/api/v1/log/entries?logIndex=",
            602,
            "logIndex in query is required",
        ),
        (
            "/api/v1/log/entries?logIndex=abc",
            601,
            "logIndex in query must be of type int64: \"abc\"",
        ),
        (
            "/api/v1/log/entries?logIndex=-1",
            609,
            "logIndex in query should be greater than or equal to 0",
        ),
        (
            "/api/v1/log/entries/xyz",
            605,
            "entryUUID in path should match '^([0-9a-fA-F]{64}|[0-9a-fA-F]{80})$'",
        ),
    ];
    for (path, code, message) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status(), 422, "{path}");
        let body = error_body(response).await;
        assert_eq!(body["code"], *code, "{path}");
        assert_eq!(body["message"], *message, "{path}");
    }
}

#[tokio::test]
async fn search_enforces_rekors_limits() {
    let app = spawn_app().await;
    let eleven: Vec<u64> = (0..11).collect();
    let response = app
        .post_json(
            "/api/v1/log/entries/retrieve",
            &json!({"logIndexes": eleven}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let body = error_body(response).await;
    assert_eq!(body["code"], 611);
    assert_eq!(
        body["message"],
        "logIndexes in body should have at most 10 items"
    );

    let six: Vec<u64> = (0..6).collect();
    let uuids: Vec<String> = (0..5).map(|i| format!("{i:064x}")).collect();
    let response = app
        .post_json(
            "/api/v1/log/entries/retrieve",
            &json!({"logIndexes": six, "entryUUIDs": uuids}),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        error_body(response).await["message"],
        "more than max allowed 10 entries in request"
    );

    let response = app
        .post_json(
            "/api/v1/log/entries/retrieve",
            &json!({"entryUUIDs": ["nothex"]}),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(error_body(response).await["code"], 605);

    let response = app
        .post_json("/api/v1/log/entries/retrieve", &json!({"logIndexes": [-1]}))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(error_body(response).await["code"], 609);

    let response = app
        .post_json(
            "/api/v1/log/entries/retrieve",
            &json!({"entries": ["a string"]}),
        )
        .await;
    assert_eq!(
        response.status(),
        400,
        "a malformed proposed entry is a 400"
    );

    let response = app
        .post_json(
            "/api/v1/log/entries/retrieve",
            &json!({"entryUUIDs": [], "logIndexes": [0]}),
        )
        .await;
    assert_eq!(response.status(), 200, "empty arrays count as absent");
    assert_eq!(response.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_404_and_405() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/x").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        error_body(response).await["message"],
        "path /api/v1/x was not found"
    );

    let response = app.client.put(app.url("/api/v1/log")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    assert_eq!(
        error_body(response).await["message"],
        "method PUT is not allowed, but [GET] are"
    );
}

#[tokio::test]
async fn paths_are_cleaned_and_ping_answers() {
    let app = spawn_app().await;
    assert_eq!(app.get("/api/v1/log/").await.status(), 200);
    assert_eq!(app.get("/api/v1//log").await.status(), 200);
    let ping = app.get("/ping").await;
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.unwrap(), ".");
    let cors = app
        .client
        .get(app.url("/api/v1/log"))
        .header("origin", "https://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(cors.headers()["access-control-allow-origin"], "*");
}
