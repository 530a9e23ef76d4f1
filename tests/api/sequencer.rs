//! The sequencer under hostile input and faults (issue 12): a poisoned entry
//! never fails its batch, the pool and batches are bounded in bytes, and the
//! health probes tell the truth when the sequencer cannot commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use tlog::config::{BatchConfig, PoolConfig};
use tlog::entries::{Entry, Kind};
use tlog::log::{AppendError, Log, Options, SystemClock};
use tlog::metrics::Metrics;
use tlog::signing::LogSigner;
use tlog::storage::file::FileStore;
use tlog::storage::{KeyMatch, LogReader, Store};

use crate::conformance::tempdir;
use crate::helpers::{spawn_with, test_config, ClientKey, TestApp};

/// An entry the log takes as it is: the entry layer's checks are not under
/// test here, and the poisoned ones are what admission would refuse.
fn entry(canonical: String, keys: Vec<String>) -> Entry {
    Entry {
        kind: Kind::HashedRekord,
        canonical: canonical.into_bytes(),
        index_keys: keys,
        signers: Vec::new(),
    }
}

fn honest(i: usize) -> Entry {
    entry(
        format!("{{\"honest\":{i}}}"),
        vec![format!("sha256:{i:064x}"), "shared@example.com".into()],
    )
}

/// A server whose batches linger long enough that concurrent appends share one.
async fn lingering_app() -> TestApp {
    let mut config = test_config().await;
    config.batch.interval_ms = 500;
    spawn_with(config).await
}

/// Appends every entry at once and returns the answers in order.
async fn append_all(log: &Arc<Log<Store>>, entries: Vec<Entry>) -> Vec<Result<u64, AppendError>> {
    let tasks: Vec<_> = entries
        .into_iter()
        .map(|e| {
            let log = Arc::clone(log);
            tokio::spawn(async move { log.append(e).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Every honest entry was committed, at 0..n, readable and searchable, under
/// a checkpoint that verifies and that a restart accepts.
async fn check_honest_committed(app: TestApp, answers: &[Result<u64, AppendError>], n: usize) {
    let mut indexes: Vec<u64> = answers[..n]
        .iter()
        .map(|a| *a.as_ref().expect("every honest entry is committed"))
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..n as u64).collect::<Vec<_>>());
    let checkpoint = app.log.checkpoint();
    assert_eq!(checkpoint.size, n as u64, "nothing else was appended");
    let signed = app.verifier.verify_checkpoint(&checkpoint.note).unwrap();
    assert_eq!(
        (signed.size, signed.root),
        (checkpoint.size, checkpoint.root)
    );
    for (i, answer) in answers[..n].iter().enumerate() {
        let index = *answer.as_ref().unwrap();
        let stored = app.log.entry(index).await.unwrap().unwrap();
        assert_eq!(stored.body, honest(i).canonical);
        let found = app
            .log
            .store()
            .search(&[format!("sha256:{i:064x}")], KeyMatch::Any, 10)
            .await
            .unwrap();
        assert_eq!(found, vec![index]);
    }
    // The stored tree and checkpoint agree: a restart rebuilds and checks them.
    let (url, key_file) = (app.database_url.clone(), app.key_file.clone());
    app.stop().await;
    let again = spawn_with(crate::helpers::config_for(&url, &key_file)).await;
    assert_eq!(again.log.checkpoint().size, n as u64);
    again.stop().await;
}

#[tokio::test]
async fn a_batch_with_poisoned_index_keys_commits_every_honest_entry() {
    let app = lingering_app().await;
    let n = 24;
    let mut entries: Vec<Entry> = (0..n).map(honest).collect();
    // What Postgres refuses (a NUL, a key over the btree row limit) and what
    // no store keeps (a control character, a key over the length limit).
    entries.push(entry("{\"poison\":\"nul\"}".into(), vec!["a\0b".into()]));
    entries.push(entry(
        "{\"poison\":\"long\"}".into(),
        vec!["k".repeat(3000)],
    ));
    entries.push(entry("{\"poison\":\"bell\"}".into(), vec!["\u{7}".into()]));
    // The same poison twice in one batch: the repeat shares its fate.
    entries.push(entry("{\"poison\":\"nul\"}".into(), vec!["a\0b".into()]));
    let answers = append_all(&app.log, entries).await;
    let commits = &app.log.metrics().batch_commits;
    assert_eq!(
        commits.with_label_values(&["ok"]).get(),
        1,
        "the honest entries shared one batch with the poison, and it committed"
    );
    assert_eq!(commits.with_label_values(&["failed"]).get(), 0);
    for (i, answer) in answers[n..].iter().enumerate() {
        match answer {
            Err(AppendError::Rejected(why)) => assert!(
                why.contains("control character") || why.contains("3000 bytes"),
                "poison {i}: {why}"
            ),
            other => panic!("poison {i} must be rejected on its own, got {other:?}"),
        }
    }
    // Over HTTP the refusal is a 400 in Rekor's body, not a 503.
    let api = tlog::api::error::ApiError::from_append(
        answers[n].clone().unwrap_err(),
        |_| unreachable!(),
    );
    let response = actix_web::ResponseError::error_response(&api);
    assert_eq!(response.status(), 400);
    check_honest_committed(app, &answers, n).await;
}

#[tokio::test]
async fn an_entry_the_database_refuses_without_naming_it_is_found_by_bisection() {
    let app = lingering_app().await;
    // A data exception the store's own checks do not foresee: the database
    // refuses some keys, and does not say which entry held them.
    let mut db = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.key LIKE 'poison%' THEN \
         RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON index_keys \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let n = 21;
    let mut entries: Vec<Entry> = (0..n).map(honest).collect();
    for p in 0..3 {
        entries.push(entry(
            format!("{{\"poison\":{p}}}"),
            vec![format!("poison-{p}")],
        ));
    }
    let answers = append_all(&app.log, entries).await;
    for answer in &answers[n..] {
        assert!(
            matches!(answer, Err(AppendError::Rejected(_))),
            "each poison is rejected on its own, got {answer:?}"
        );
    }
    let commits = &app.log.metrics().batch_commits;
    assert_eq!(commits.with_label_values(&["failed"]).get(), 0);
    assert!(commits.with_label_values(&["rejected"]).get() > 1);
    check_honest_committed(app, &answers, n).await;
}

async fn metrics_text(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_commit_conflict_makes_readyz_and_healthz_fail() {
    let app = crate::helpers::spawn_app().await;
    let key = ClientKey::new();
    assert_eq!(app.create(&key.hashedrekord(b"first")).await.status(), 201);
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert!(metrics_text(&app)
        .await
        .contains("tlog_sequencer_state{state=\"running\"} 1"));

    // A second writer moves the log under the server.
    let mut db = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("UPDATE checkpoint SET size = size + 1")
        .execute(&mut db)
        .await
        .unwrap();
    let response = app.create(&key.hashedrekord(b"second")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    // Nothing more can be committed: not ready, and not healthy, so that the
    // orchestrator restarts the server (which then refuses the moved log).
    assert_eq!(app.get("/readyz").await.status(), 503);
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["sequencer"], "conflicted");
    let again = app.create(&key.hashedrekord(b"third")).await;
    assert_eq!(again.status(), 503, "later writes fail fast too");
    let text = metrics_text(&app).await;
    for expected in [
        "tlog_sequencer_state{state=\"conflicted\"} 1",
        "tlog_sequencer_state{state=\"running\"} 0",
        "tlog_sequencer_up 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // Reads of what was committed still work.
    assert_eq!(app.get("/api/v1/log").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_dead_sequencer_makes_healthz_fail() {
    let app = crate::helpers::spawn_app().await;
    let key = ClientKey::new();
    assert_eq!(app.create(&key.hashedrekord(b"first")).await.status(), 201);
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert!(metrics_text(&app).await.contains("tlog_sequencer_up 1"));

    app.sequencer.abort();
    let started = Instant::now();
    while app.get("/healthz").await.status() != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "/healthz must fail once the sequencer is gone"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.get("/readyz").await.status(), 503);
    let response = app.create(&key.hashedrekord(b"second")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let text = metrics_text(&app).await;
    assert!(text.contains("tlog_sequencer_up 0"), "{text}");
    assert!(
        text.contains("tlog_sequencer_state{state=\"stopped\"} 1"),
        "{text}"
    );
    assert_eq!(app.get("/api/v1/log").await.status(), 200);
    app.stop().await;
}

/// A canonical body of exactly `len` bytes.
fn sized(tag: usize, len: usize) -> Entry {
    let head = format!("{{\"n\":{tag},\"pad\":\"");
    let pad = "x".repeat(len - head.len() - 2);
    entry(format!("{head}{pad}\"}}"), vec![format!("tag-{tag}")])
}

/// An append that must be answered without the (stopped) sequencer: one
/// that got queued instead would wait forever, so the wait is cut short.
async fn refused_at_once(log: &Log<Store>, entry: Entry) -> Result<u64, AppendError> {
    tokio::time::timeout(Duration::from_secs(5), log.append(entry))
        .await
        .expect("refused at once, not queued")
}

#[tokio::test]
async fn the_pool_and_batches_are_bounded_in_bytes() {
    let store = Store::File(FileStore::open(&tempdir()).unwrap());
    let signer = LogSigner::from_pkcs8_pem(&LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    let (log, mut sequencer) = Log::open(
        store,
        signer,
        Options {
            hostname: "localhost".into(),
            batch: BatchConfig {
                max_entries: 100,
                interval_ms: 0,
                max_bytes: 2000,
            },
            pool: PoolConfig {
                capacity: 100,
                max_bytes: 3000,
            },
            entry_cache_bytes: 1 << 20,
            tile_cache_bytes: 1 << 20,
            clock: Arc::new(SystemClock),
            metrics: Arc::new(Metrics::new()),
            lease: Arc::new(tlog::storage::lease::FileLease),
            index_offset: 0,
        },
    )
    .await
    .unwrap();
    let waiting_bytes = |log: &Log<Store>| {
        log.update_gauges();
        log.metrics().pool_bytes.get()
    };
    // Three entries of 1000 bytes fill the pool's 3000 bytes; the sequencer
    // is not running, so they wait.
    let mut waiters = Vec::new();
    for i in 0..3 {
        let task_log = Arc::clone(&log);
        waiters.push(tokio::spawn(async move {
            task_log.append(sized(i, 1000)).await
        }));
        while waiting_bytes(&log) < 1000 * (i as i64 + 1) {
            tokio::task::yield_now().await;
        }
    }
    // One more would go over the byte budget, though the pool has room
    // for 97 more entries.
    assert!(matches!(
        refused_at_once(&log, sized(3, 1000)).await,
        Err(AppendError::Pushback)
    ));
    assert_eq!(log.metrics().pushbacks.get(), 1);

    // A batch closes once it holds batch.max_bytes: two of the three.
    assert!(sequencer.sequence_once().await);
    assert_eq!(log.checkpoint().size, 2);
    assert_eq!(waiting_bytes(&log), 1000, "taken entries free their bytes");
    assert!(sequencer.sequence_once().await);
    assert_eq!(log.checkpoint().size, 3);
    assert_eq!(waiting_bytes(&log), 0);
    for waiter in waiters {
        assert!(waiter.await.unwrap().is_ok());
    }

    // Into an empty pool, an entry larger than the whole budget still goes:
    // otherwise it could never be logged.
    let big = {
        let log = Arc::clone(&log);
        tokio::spawn(async move { log.append(sized(4, 5000)).await })
    };
    while waiting_bytes(&log) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        refused_at_once(&log, sized(5, 100)).await,
        Err(AppendError::Pushback)
    ));
    assert!(sequencer.sequence_once().await);
    assert_eq!(big.await.unwrap().unwrap(), 3);
}
