//! Operating tlog: metrics, graceful shutdown under load, and database faults
//! (issue 5).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::helpers::{config_for, only_entry, spawn_app, spawn_with, ClientKey};

#[tokio::test]
async fn metrics_report_requests_entries_batches_and_tree_size() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    for i in 0..3u8 {
        assert_eq!(app.create(&key.hashedrekord(&[i])).await.status(), 201);
    }
    assert_eq!(
        app.get("/api/v1/log/entries?logIndex=99").await.status(),
        404
    );
    let text = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        r#"tlog_entries_appended_total{kind="hashedrekord"} 3"#,
        r#"tlog_http_requests_total{method="POST",route="/api/v1/log/entries",status="201"} 3"#,
        r#"tlog_http_requests_total{method="GET",route="/api/v1/log/entries",status="404"} 1"#,
        "tlog_tree_size 3",
        "tlog_pool_depth 0",
        r#"tlog_batch_commits_total{outcome="ok"}"#,
        "tlog_batch_size_entries_sum 3",
        "tlog_batch_commit_duration_seconds_count",
        r#"tlog_db_connections{state="idle"}"#,
        "tlog_checkpoint_age_seconds",
        "tlog_pushbacks_total 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_stopped_database_gives_503_quickly_reads_keep_working_and_writes_recover() {
    let mut cluster = Cluster::start().await;
    let database_url = cluster.create_database().await;
    let key_file = std::env::temp_dir().join(format!("tlog-dbfault-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(
        &key_file,
        tlog::signing::LogSigner::generate_pkcs8_pem().unwrap(),
    )
    .unwrap();
    let app = spawn_with(config_for(&database_url, &key_file)).await;
    let key = ClientKey::new();
    let first = app.create(&key.hashedrekord(b"before")).await;
    assert_eq!(first.status(), 201);
    let id = first.headers()["etag"].to_str().unwrap().to_owned();

    cluster.stop();
    // A create must not hang: it gets 503 with Retry-After within a few seconds.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for i in 0..3u8 {
        let started = Instant::now();
        let response = client
            .post(app.url("/api/v1/log/entries"))
            .json(&key.hashedrekord(&[b'x', i]))
            .send()
            .await
            .expect("answered, not hung");
        assert_eq!(response.status(), 503, "create while the database is down");
        assert!(response.headers().contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
    }
    // Not ready while storage fails; liveness still answers.
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
    // Reads of committed data are served from memory.
    let read = app.get(&format!("/api/v1/log/entries/{id}")).await;
    assert_eq!(read.status(), 200);
    let info: Value = app.get("/api/v1/log").await.json().await.unwrap();
    assert_eq!(info["treeSize"], 1);

    cluster.start_again();
    let back = Instant::now();
    let mut recovered = false;
    while back.elapsed() < Duration::from_secs(5) {
        let response = app.create(&key.hashedrekord(b"after")).await;
        if response.status() == 201 {
            let body: Value = response.json().await.unwrap();
            let (_, entry) = only_entry(&body);
            assert_eq!(entry["logIndex"], 1, "nothing refused was appended");
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "writes recover within 5 s of the database returning"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_optional_rate_limit_answers_429_in_json_per_client() {
    let mut config = crate::helpers::test_config().await;
    config.rate_limit = tlog::config::RateLimitConfig {
        per_second: 1,
        burst: 2,
        ..Default::default()
    };
    let app = spawn_with(config).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/api/v1/log").await);
    }
    assert_eq!(statuses[0].status(), 200);
    assert_eq!(statuses[1].status(), 200);
    let limited = statuses.pop().unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["code"], 429);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("rate limit exceeded"));
}

#[tokio::test]
async fn the_rate_limit_keys_on_the_forwarded_client_only_behind_a_trusted_proxy() {
    let limited = |proxies: &[&str]| {
        let proxies: Vec<ipnet::IpNet> = proxies.iter().map(|p| p.parse().unwrap()).collect();
        async move {
            let mut config = crate::helpers::test_config().await;
            config.rate_limit = tlog::config::RateLimitConfig {
                per_second: 1,
                burst: 1,
                trusted_proxies: proxies,
            };
            spawn_with(config).await
        }
    };
    let get_as = |app: &crate::helpers::TestApp, forwarded: &str| {
        app.client
            .get(app.url("/api/v1/log"))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    // The tests' requests come from 127.0.0.1: trusted here, so two clients
    // behind it have a bucket each, and a forged left-most hop is ignored.
    let app = limited(&["127.0.0.1/32"]).await;
    assert_eq!(get_as(&app, "198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(get_as(&app, "198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(
        get_as(&app, "203.0.113.9, 198.51.100.1")
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(get_as(&app, "198.51.100.2").await.unwrap().status(), 200);
    app.stop().await;
    // Not trusted: the header is ignored and both share the peer's bucket.
    let app = limited(&["10.0.0.0/8"]).await;
    assert_eq!(get_as(&app, "198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(get_as(&app, "198.51.100.2").await.unwrap().status(), 429);
    app.stop().await;
}
