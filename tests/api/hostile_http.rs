//! Issue 12, the HTTP layer: requests written to hurt the server must not
//! stall the other routes, hold connections, or cost unbounded work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{spawn_with, test_config, ClientKey};

/// Fills every thread and queue place of `app`'s small validation lane with
/// jobs that block until the returned sender is dropped.
async fn occupy_validation(
    app: &crate::helpers::TestApp,
    jobs: usize,
) -> std::sync::mpsc::Sender<()> {
    occupy_lane(app, jobs, 0).await
}

/// The same for the lane of `body_bytes`-byte bodies.
async fn occupy_lane(
    app: &crate::helpers::TestApp,
    jobs: usize,
    body_bytes: usize,
) -> std::sync::mpsc::Sender<()> {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = Arc::new(Mutex::new(wait));
    for _ in 0..jobs {
        let (pool, wait) = (Arc::clone(&app.validation), Arc::clone(&wait));
        tokio::spawn(async move {
            let _ = pool
                .run(body_bytes, move || {
                    let _ = wait.lock().unwrap().recv();
                })
                .await;
        });
    }
    while app.validation.in_use() < jobs {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    release
}

#[tokio::test]
async fn a_busy_validation_pool_leaves_probes_and_reads_answering_and_sheds_writes_with_503() {
    let mut config = test_config().await;
    config.validation.threads = Some(1);
    config.validation.queue = Some(1);
    let app = spawn_with(config).await;
    let key = ClientKey::new();
    let first = key.hashedrekord(b"before the flood");
    assert_eq!(app.create(&first).await.status(), 201);

    let release = occupy_validation(&app, 2).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for path in [
        "/ping",
        "/healthz",
        "/readyz",
        "/api/v1/log",
        "/api/v1/log/entries?logIndex=0",
    ] {
        let r = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path} while validation is busy");
    }
    let by_index = app
        .post_json("/api/v1/log/entries/retrieve", &json!({"logIndexes": [0]}))
        .await;
    assert_eq!(
        by_index.status(),
        200,
        "a search without proposals needs no validation"
    );

    let proposal = key.hashedrekord(b"during the flood");
    for (path, body) in [
        ("/api/v1/log/entries", proposal.clone()),
        ("/api/v1/log/entries/retrieve", json!({"entries": [first]})),
    ] {
        let r = app.post_json(path, &body).await;
        assert_eq!(r.status(), 503, "POST {path} over the pool's capacity");
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], 503, "{body}");
    }

    drop(release);
    while app.validation.in_use() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(app.create(&proposal).await.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn a_full_large_lane_sheds_a_large_body_before_reading_it() {
    let mut config = test_config().await;
    config.validation.threads = Some(1);
    config.validation.queue = Some(0);
    let app = spawn_with(config).await;
    // One thread and one place in the large lane.
    let release = occupy_lane(&app, 2, tlog::api::validation::LARGE_JOB_BYTES).await;
    for path in ["/api/v1/log/entries", "/api/v1/log/entries/retrieve"] {
        // The head announces 10 MB, none of which is ever sent.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        );
        let addr = app.address.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
            .await
            .expect("answered without waiting for the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 503"), "POST {path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("retry-after: 1"),
            "{answer}"
        );
    }
    // Small bodies have their own lane: an honest create still lands.
    let honest = ClientKey::new().hashedrekord(b"beside the large flood");
    assert_eq!(app.create(&honest).await.status(), 201);
    drop(release);
    app.stop().await;
}

#[tokio::test]
async fn large_bodies_still_arriving_hold_the_large_lanes_places() {
    let mut config = test_config().await;
    config.validation.threads = Some(1);
    config.validation.queue = Some(0);
    let app = spawn_with(config).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let head = "POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n";
    // Two large bodies (the lane's thread and its one waiting place) start
    // to arrive and stall: each is being read, none is validated yet.
    let mut arriving = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[b' '; 1024]).await.unwrap();
        arriving.push(stream);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.validation.in_use() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "bodies being read took no place"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let metrics = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tlog_validation_jobs{lane=\"large\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tlog_validation_jobs{lane=\"small\"} 0"),
        "{metrics}"
    );
    // A third is refused on its head: at most two are in memory at once.
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    third.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // Small bodies are not held up by them.
    let honest = ClientKey::new().hashedrekord(b"beside two stalled large bodies");
    assert_eq!(app.create(&honest).await.status(), 201);
    // A client that gives up frees its place.
    drop(arriving);
    while app.validation.in_use() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    app.stop().await;
}

/// Sends `head` and then the body one byte every 100 ms, and returns all the
/// server answered until it closed the connection (or `wait` passed).
async fn trickle(address: &str, head: &str, wait: Duration) -> (String, bool) {
    let addr = address.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickler = tokio::spawn(async move {
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(wait, reader.read_to_end(&mut answer))
        .await
        .is_ok();
    trickler.abort();
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[tokio::test]
async fn a_trickled_body_gets_408_in_json_and_the_connection_is_closed() {
    let mut config = test_config().await;
    config.request_body_timeout_ms = 300;
    let app = spawn_with(config).await;
    let head = "POST /api/v1/log/entries HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";
    let (answer, closed) = trickle(&app.address, head, Duration::from_secs(10)).await;
    assert!(
        closed,
        "the server closes the connection; got so far: {answer:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    assert_eq!(body["code"], 408);
    assert!(
        body["message"].as_str().unwrap().contains("300 ms"),
        "{body}"
    );
    // The server still serves others.
    assert_eq!(app.get("/ping").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn index_search_answers_at_most_the_newest_thousand_matches() {
    use tlog::api::v1::index::MAX_INDEX_RESULTS;
    let app = spawn_with(test_config().await).await;
    let key = ClientKey::new();
    let total = MAX_INDEX_RESULTS + 5;
    let proposals: Vec<Value> = (0..total)
        .map(|i| key.hashedrekord(format!("artifact {i}").as_bytes()))
        .collect();
    // The first one alone, so that it is entry 0; the rest in parallel.
    assert_eq!(app.create(&proposals[0]).await.status(), 201);
    for chunk in proposals[1..].chunks(50) {
        let creates = chunk.iter().map(|p| app.create(p));
        for r in futures_util::future::join_all(creates).await {
            assert_eq!(r.status(), 201);
        }
    }
    let size = app.log.checkpoint().size;
    assert_eq!(size, total as u64);
    let mut ids_by_index = Vec::with_capacity(total);
    for index in 0..size {
        let leaf = app.log.leaf_hash(index).await.unwrap().unwrap();
        ids_by_index.push(format!(
            "{:016x}{}",
            app.log.info().tree_id,
            hex::encode(leaf.0)
        ));
    }
    let id_of = |index: u64| ids_by_index[usize::try_from(index).unwrap()].clone();
    let public_key = json!({"format": "x509", "content": proposals[0]["spec"]["signature"]["publicKey"]["content"]});
    let r = app
        .post_json("/api/v1/index/retrieve", &json!({"publicKey": public_key}))
        .await;
    assert_eq!(r.status(), 200);
    let ids: Vec<String> = r.json().await.unwrap();
    let newest: Vec<String> = (size - MAX_INDEX_RESULTS as u64..size).map(id_of).collect();
    assert_eq!(ids.len(), MAX_INDEX_RESULTS);
    assert_eq!(ids, newest, "the newest matches, in log order");

    // `and` combines before it limits: the oldest entry is still found.
    let oldest = &proposals[0]["spec"]["data"]["hash"]["value"];
    let r = app
        .post_json(
            "/api/v1/index/retrieve",
            &json!({"publicKey": public_key, "hash": format!("sha256:{}", oldest.as_str().unwrap()), "operator": "and"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let ids: Vec<String> = r.json().await.unwrap();
    assert_eq!(ids, [id_of(0)], "entry 0, older than the newest thousand");
    app.stop().await;
}

/// Sends a head announcing a body of `declared` bytes, then writes body
/// bytes until `want` are written, the write fails, or 10 s pass, reading
/// the answer meanwhile. Returns what it wrote, whether a write failed,
/// and the answer.
async fn push_refused_body(address: &str, declared: usize, want: usize) -> (usize, bool, String) {
    let addr = address.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let answer = tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    let chunk = vec![b' '; 64 << 10];
    let mut written = 0;
    let mut failed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while written < want {
        match tokio::time::timeout_at(deadline, writer.write(&chunk)).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(_)) => {
                failed = true;
                break;
            }
            Err(_) => break,
        }
    }
    drop(writer);
    (written, failed, answer.await.unwrap())
}

#[tokio::test]
async fn refused_bodies_are_drained_only_within_the_drain_budget() {
    const MIB: usize = 1 << 20;
    let mut config = test_config().await;
    config.max_request_body = MIB;
    config.unread_body_drain_bytes_per_second = 4 * MIB as u64;
    // Long enough that a drained body is read to the end of the test's push.
    config.unread_body_linger_ms = 20_000;
    let app = spawn_with(config).await;
    let declared = 200 * MIB;
    let push = 48 * MIB;

    // The budget has room: the server answers 413 and keeps reading, so the
    // client can push far more than the sockets' buffers hold.
    let (written, failed, answer) = push_refused_body(&app.address, declared, push).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        !failed && written >= push,
        "drained: wrote {written} bytes, failed: {failed}"
    );

    // The first body took the budget into debt (its 200 MiB rest): the next
    // one is answered, then the connection reads no more and is reset.
    let (written, failed, answer) = push_refused_body(&app.address, declared, push).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "the answer still arrives: {answer}"
    );
    assert!(
        failed && written < push,
        "cut: wrote {written} bytes, failed: {failed}"
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tlog_unread_bodies_cut_total 1"),
        "{metrics}"
    );

    // An honest create on a new connection is not affected.
    let honest = ClientKey::new().hashedrekord(b"after the cut");
    assert_eq!(app.create(&honest).await.status(), 201);
    app.stop().await;
}
