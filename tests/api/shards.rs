//! Time-sharded v1 logs (issue 14, item 5): `tlog log rotate` beside running
//! servers, `inactiveShards`, the global `logIndex` (rekor-v1.md C-05) on
//! every read path, 80-hex IDs selecting their shard, proofs of frozen
//! entries against the frozen checkpoint, and the trust configuration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use sqlx::Connection;
use tlog::app::{Application, ShardRotated};
use tlog::config::Config;
use tlog::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use tlog::signing::{LogSigner, LogVerifier};

use crate::helpers::{
    config_for, hex_hashes, only_entry, spawn_with, test_config, ClientKey, TestApp,
};

/// Checks one served entry as a client does, with Rekor's two indexes: the
/// SET signs the global `logIndex`, the proof uses the shard-local one
/// against the shard's own checkpoint, signed by `verifier`.
fn verify_sharded(verifier: &LogVerifier, id: &str, entry: &Value, global: u64, local: u64) {
    let body_b64 = entry["body"].as_str().unwrap();
    let leaf = leaf_hash(&BASE64_STANDARD.decode(body_b64).unwrap());
    assert_eq!(&id[16..], hex::encode(leaf.0));
    assert_eq!(entry["logID"], hex::encode(verifier.log_id()));
    assert_eq!(entry["logIndex"], global, "logIndex is global: {entry}");
    let proof = &entry["verification"]["inclusionProof"];
    assert_eq!(
        proof["logIndex"], local,
        "the proof's logIndex is the shard's"
    );
    let set = entry["verification"]["signedEntryTimestamp"]
        .as_str()
        .unwrap();
    verifier
        .verify_set(
            body_b64,
            entry["integratedTime"].as_i64().unwrap(),
            global,
            &BASE64_STANDARD.decode(set).unwrap(),
        )
        .expect("the SET signs the global index");
    let checkpoint = verifier
        .verify_checkpoint(proof["checkpoint"].as_str().unwrap())
        .expect("the shard's checkpoint verifies under its key");
    assert_eq!(checkpoint.size, proof["treeSize"].as_u64().unwrap());
    assert_eq!(
        hex::encode(checkpoint.root.0),
        proof["rootHash"].as_str().unwrap()
    );
    verify_inclusion(
        leaf,
        local,
        checkpoint.size,
        &hex_hashes(&proof["hashes"]),
        checkpoint.root,
    )
    .expect("inclusion proof verifies in the shard's tree");
}

fn database_url(config: &Config) -> String {
    use secrecy::ExposeSecret;
    config
        .database_url
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned()
}

/// Another copy of `config` (the same database and key).
fn same(config: &Config) -> Config {
    config_for(&database_url(config), &config.key_file)
}

async fn created(app: &TestApp, key: &ClientKey, artifact: &[u8]) -> (String, Value) {
    let res = app.create(&key.hashedrekord(artifact)).await;
    assert_eq!(res.status(), 201);
    only_entry(&res.json().await.unwrap())
}

async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let res = app.get(path).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn scalar(url: &str, sql: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

/// Two servers (leader and follower) on one database take creates while
/// `tlog log rotate` runs: both stop with `ShardRotated`, nothing commits to
/// the frozen shard after the freeze, every acknowledged entry is served
/// after the restart, and the new shard continues the global index.
#[tokio::test]
async fn rotation_under_running_servers_freezes_and_the_restart_serves_both_shards() {
    let config = test_config().await;
    let db = database_url(&config);
    let leader = Application::build(&config).await.unwrap();
    let follower = Application::build(&config).await.unwrap();
    let urls = [leader.port(), follower.port()].map(|p| format!("http://127.0.0.1:{p}"));
    let runs = [leader, follower].map(|app| tokio::spawn(app.run_until_stopped()));

    // Load on both servers until they stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for (n, url) in urls.iter().enumerate() {
        let (url, stop) = (url.clone(), Arc::clone(&stop));
        load.push(tokio::spawn(async move {
            let key = ClientKey::new();
            let client = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for i in 0u32.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let entry = key.hashedrekord(format!("load {n} {i}").as_bytes());
                let sent = client
                    .post(format!("{url}/api/v1/log/entries"))
                    .json(&entry)
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status() == 201 => {
                        let (id, entry) = only_entry(&res.json().await.unwrap());
                        acknowledged.push((id, entry["logIndex"].as_u64().unwrap()));
                    }
                    // 503 (fenced, or the sequencer gone) or a closed
                    // connection while the server stops: not acknowledged.
                    Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rotation = tlog::app::rotate(&config, None).await.unwrap();
    assert_eq!((rotation.frozen, rotation.active), (1, 2));
    for run in runs {
        let outcome = tokio::time::timeout(Duration::from_secs(15), run)
            .await
            .expect("a server of the frozen shard stops on its own")
            .unwrap();
        let err = outcome.expect_err("it exits with an error, for its supervisor");
        assert!(
            err.get_ref().is_some_and(|e| e.is::<ShardRotated>()),
            "{err}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for task in load {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        rotation.frozen_size > 0,
        "the load committed before the rotation"
    );
    // The fence: the frozen shard is exactly what the rotation froze.
    let frozen_size = rotation.frozen_size;
    assert_eq!(
        scalar(&db, "SELECT size FROM checkpoint WHERE log_id = 1").await,
        i64::try_from(frozen_size).unwrap()
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM entries WHERE log_id = 1").await,
        i64::try_from(frozen_size).unwrap()
    );

    // The restart serves the new shard, and the frozen one read-only.
    let app = spawn_with(same(&config)).await;
    assert_eq!(app.log.info().index_offset, frozen_size);
    for (id, global) in &acknowledged {
        let (status, body) = get_json(&app, &format!("/api/v1/log/entries/{id}")).await;
        assert_eq!(status, 200, "acknowledged entry {id} is served");
        assert_eq!(only_entry(&body).1["logIndex"], *global);
    }

    let (_, info) = get_json(&app, "/api/v1/log").await;
    let shards = info["inactiveShards"]
        .as_array()
        .expect("one inactive shard");
    assert_eq!(shards.len(), 1);
    let frozen = &shards[0];
    assert_eq!(frozen["treeSize"], frozen_size);
    let frozen_tree: i64 = frozen["treeID"].as_str().unwrap().parse().unwrap();
    assert_ne!(info["treeID"], frozen["treeID"]);
    assert_eq!(info["treeSize"], 0, "the top level is the active shard's");
    let frozen_checkpoint = app
        .verifier
        .verify_checkpoint(frozen["signedTreeHead"].as_str().unwrap())
        .unwrap();
    assert_eq!(frozen_checkpoint.size, frozen_size);
    assert_eq!(hex::encode(frozen_checkpoint.root.0), frozen["rootHash"]);
    assert_eq!(
        frozen_checkpoint.origin,
        format!("localhost - {frozen_tree}")
    );

    // An entry of the new shard continues the global index.
    let key = ClientKey::new();
    let (new_id, new_entry) = created(&app, &key, b"first of shard two").await;
    verify_sharded(&app.verifier, &new_id, &new_entry, frozen_size, 0);
    let (second_id, second) = created(&app, &key, b"second of shard two").await;
    verify_sharded(&app.verifier, &second_id, &second, frozen_size + 1, 1);

    // GET by global index: the last frozen entry and the active ones.
    let last_frozen = frozen_size - 1;
    let (status, body) =
        get_json(&app, &format!("/api/v1/log/entries?logIndex={last_frozen}")).await;
    assert_eq!(status, 200);
    let (old_id, old_entry) = only_entry(&body);
    assert_eq!(i64::from_str_radix(&old_id[..16], 16).unwrap(), frozen_tree);
    verify_sharded(&app.verifier, &old_id, &old_entry, last_frozen, last_frozen);
    let frozen_proof = &old_entry["verification"]["inclusionProof"];
    assert_eq!(frozen_proof["checkpoint"], frozen["signedTreeHead"]);
    let (_, body) = get_json(
        &app,
        &format!("/api/v1/log/entries?logIndex={}", frozen_size + 1),
    )
    .await;
    assert_eq!(only_entry(&body).0, second_id);
    let (status, _) = get_json(
        &app,
        &format!("/api/v1/log/entries?logIndex={}", frozen_size + 2),
    )
    .await;
    assert_eq!(status, 404, "past the active shard's end");

    // 80-hex IDs select their shard; a 64-hex UUID is found in any shard.
    let (status, body) = get_json(&app, &format!("/api/v1/log/entries/{old_id}")).await;
    assert_eq!((status, only_entry(&body).0), (200, old_id.clone()));
    let (status, body) = get_json(&app, &format!("/api/v1/log/entries/{}", &old_id[16..])).await;
    assert_eq!((status, only_entry(&body).0), (200, old_id.clone()));
    let wrong_shard = format!("{}{}", &new_id[..16], &old_id[16..]);
    let (status, _) = get_json(&app, &format!("/api/v1/log/entries/{wrong_shard}")).await;
    assert_eq!(
        status, 404,
        "the 80-hex ID names the active tree, which lacks it"
    );

    // Retrieve: UUIDs of both shards, a wrong-shard ID (silently missing),
    // and global indexes, in Rekor's order.
    let res = app
        .post_json(
            "/api/v1/log/entries/retrieve",
            &json!({
                "entryUUIDs": [old_id, &new_id[16..], wrong_shard],
                "logIndexes": [frozen_size + 1, 0, frozen_size + 9],
            }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let found: Vec<Value> = res.json().await.unwrap();
    let ids: Vec<String> = found.iter().map(|e| only_entry(e).0).collect();
    let (_, first_body) = get_json(&app, "/api/v1/log/entries?logIndex=0").await;
    let first_id = only_entry(&first_body).0;
    assert_eq!(
        ids,
        [old_id.clone(), new_id.clone(), second_id.clone(), first_id]
    );
    assert_eq!(only_entry(&found[2]).1["logIndex"], frozen_size + 1);

    // A re-submission of a frozen shard's entry is a new entry of the active
    // shard, as in Rekor (Trillian deduplicates per tree).
    let old_body = BASE64_STANDARD
        .decode(old_entry["body"].as_str().unwrap())
        .unwrap();
    let old_proposal: Value = serde_json::from_slice(&old_body).unwrap();
    let res = app.create(&old_proposal).await;
    assert_eq!(res.status(), 201, "not a duplicate across shards");
    let (again_id, again) = only_entry(&res.json().await.unwrap());
    assert_eq!(&again_id[16..], &old_id[16..]);
    assert_eq!(&again_id[..16], &new_id[..16]);
    verify_sharded(&app.verifier, &again_id, &again, frozen_size + 2, 2);
    let res = app.create(&old_proposal).await;
    assert_eq!(res.status(), 409, "a duplicate within the active shard");

    // The search index spans shards: the same artifact's hash finds both.
    let digest = old_proposal["spec"]["data"]["hash"]["value"]
        .as_str()
        .unwrap();
    let res = app
        .post_json(
            "/api/v1/index/retrieve",
            &json!({"hash": format!("sha256:{digest}")}),
        )
        .await;
    let ids: Vec<String> = res.json().await.unwrap();
    assert_eq!(ids, [old_id.clone(), again_id.clone()]);

    // Proofs of the frozen shard, by its tree ID, against its final tree.
    let path = format!("/api/v1/log/proof?firstSize=1&lastSize={frozen_size}&treeID={frozen_tree}");
    let (status, proof) = get_json(&app, &path).await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["rootHash"], frozen["rootHash"]);
    let first_root = {
        let (_, body) = get_json(&app, "/api/v1/log/entries?logIndex=0").await;
        let (_, e) = only_entry(&body);
        let body = BASE64_STANDARD.decode(e["body"].as_str().unwrap()).unwrap();
        leaf_hash(&body)
    };
    verify_consistency(
        1,
        first_root,
        frozen_size,
        frozen_checkpoint.root,
        &hex_hashes(&proof["hashes"]),
    )
    .expect("consistency within the frozen tree");
    let (status, _) = get_json(
        &app,
        &format!(
            "/api/v1/log/proof?lastSize={}&treeID={frozen_tree}",
            frozen_size + 1
        ),
    )
    .await;
    assert_eq!(status, 400, "the frozen tree does not grow");
    let (status, body) = get_json(&app, "/api/v1/log/proof?lastSize=1&treeID=12x").await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": 400, "message": "invalid tree ID specified: 12x"})
        )
    );
    let (status, body) = get_json(&app, "/api/v1/log/proof?lastSize=1&treeID=42").await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": 400, "message": "no log range found for tree ID 42"})
        )
    );
    let res = app
        .get(&format!("/api/v1/log/publicKey?treeID={frozen_tree}"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), app.log.info().public_key_pem);
    let (status, _) = get_json(&app, "/api/v1/log/publicKey?treeID=42").await;
    assert_eq!(status, 400);

    // `tlog log list` shows both, with the global indexes each holds.
    let list = tlog::app::list_shards(&config).await.unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[1].starts_with(&format!(
            "1\tfrozen\t{frozen_tree}\t{frozen_size}\t0..{last_frozen}\t"
        )),
        "{list}"
    );
    assert!(lines[2].starts_with("2\tactive\t"), "{list}");
    assert!(
        lines[2].contains(&format!("\t3\t{frozen_size}..{}\t", frozen_size + 2)),
        "{list}"
    );

    // One db.jsonl holds one shard: export without --shard says so.
    let out = std::env::temp_dir().join(format!("tlog-shard-{}.jsonl", uuid::Uuid::new_v4()));
    let err = tlog::app::export(&config, &out).await.unwrap_err();
    assert!(format!("{err:#}").contains("--shard"), "{err:#}");
    app.stop().await;
}

/// Rotating to a new key: entries of each shard verify under their own
/// key, and the trust configuration lists both with `validFor`.
#[tokio::test]
async fn a_rotation_to_a_new_key_keeps_both_keys_trusted() {
    let config = test_config().await;
    let app = spawn_with(same(&config)).await;
    let key = ClientKey::new();
    let (old_id, old_entry) = created(&app, &key, b"signed by the first key").await;
    let old_verifier = app.verifier.clone();
    app.stop().await;

    let new_key = std::env::temp_dir().join(format!("tlog-test-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&new_key, LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    tlog::app::rotate(&config, Some(&new_key)).await.unwrap();

    // The old key no longer opens the active shard: it refuses to start.
    let err = Application::build(&config).await.err().expect("wrong key");
    assert!(format!("{err:#}").contains("does not match"), "{err:#}");

    let config = config_for(&database_url(&config), &new_key);
    let app = spawn_with(same(&config)).await;
    assert_ne!(app.verifier.log_id(), old_verifier.log_id());
    let (new_id, new_entry) = created(&app, &key, b"signed by the second key").await;
    verify_sharded(&app.verifier, &new_id, &new_entry, 1, 0);
    let (_, body) = get_json(&app, "/api/v1/log/entries?logIndex=0").await;
    let (id, entry) = only_entry(&body);
    assert_eq!(id, old_id);
    assert_eq!(entry, old_entry, "a frozen entry is served as it was");
    verify_sharded(&old_verifier, &id, &entry, 0, 0);
    let frozen_tree = i64::from_str_radix(&old_id[..16], 16).unwrap();
    let res = app
        .get(&format!("/api/v1/log/publicKey?treeID={frozen_tree}"))
        .await;
    assert_eq!(res.text().await.unwrap(), old_verifier.public_key_pem());

    let trust: Value = serde_json::from_str(
        &tlog::app::trust_config(
            &config,
            Some("https://log.test"),
            None,
            "2020-01-01T00:00:00Z",
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let tlogs = trust["trustedRoot"]["tlogs"].as_array().unwrap();
    assert_eq!(tlogs.len(), 2, "{trust}");
    let ids: Vec<&str> = tlogs
        .iter()
        .map(|t| t["logId"]["keyId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            BASE64_STANDARD.encode(old_verifier.log_id()),
            BASE64_STANDARD.encode(app.verifier.log_id())
        ]
    );
    let old_validity = &tlogs[0]["publicKey"]["validFor"];
    assert_eq!(old_validity["start"], "2020-01-01T00:00:00Z");
    let end = old_validity["end"]
        .as_str()
        .expect("the frozen key's validity ends");
    let new_start = tlogs[1]["publicKey"]["validFor"]["start"].as_str().unwrap();
    assert!(tlogs[1]["publicKey"]["validFor"].get("end").is_none());
    assert!(end.ends_with('Z') && new_start.ends_with('Z'));
    assert!(
        new_start <= end,
        "the new shard was registered as the old one froze"
    );
    let urls = trust["signingConfig"]["rekorTlogUrls"].as_array().unwrap();
    assert_eq!(urls.len(), 1, "clients sign with the active shard only");
    app.stop().await;
}

/// A rotation that keeps the key lists it once, valid from the start on.
#[tokio::test]
async fn a_rotation_that_keeps_the_key_lists_it_once() {
    let config = test_config().await;
    let app = spawn_with(same(&config)).await;
    app.stop().await;
    tlog::app::rotate(&config, None).await.unwrap();
    let trust: Value = serde_json::from_str(
        &tlog::app::trust_config(&config, None, None, "2021-01-01T00:00:00Z")
            .await
            .unwrap(),
    )
    .unwrap();
    let tlogs = trust["trustedRoot"]["tlogs"].as_array().unwrap();
    assert_eq!(tlogs.len(), 1, "{trust}");
    assert_eq!(
        tlogs[0]["publicKey"]["validFor"],
        json!({"start": "2021-01-01T00:00:00Z"})
    );
}

/// Rotating a log that was never started has nothing to freeze; the embedded
/// journal cannot shard at all.
#[tokio::test]
async fn rotation_refuses_a_log_never_started_and_the_embedded_journal() {
    let config = test_config().await;
    tlog::app::connect(&config).await.unwrap();
    let err = tlog::app::rotate(&config, None).await.unwrap_err();
    assert!(format!("{err:#}").contains("never started"), "{err:#}");

    let mut embedded = same(&config);
    embedded.database_url = None;
    let err = tlog::app::rotate(&embedded, None).await.unwrap_err();
    assert!(format!("{err:#}").contains("needs Postgres"), "{err:#}");
    let err = tlog::app::list_shards(&embedded).await.unwrap_err();
    assert!(format!("{err:#}").contains("need Postgres"), "{err:#}");
}

/// `tlog monitor` and `tlog verify URL` follow `tlog log rotate` to a new
/// key: the monitor reads the rest of the frozen shard, then the new one,
/// by global index, each shard under its own key; with the old key alone
/// the new shard's checkpoint is refused. Before shards were followed, the
/// poll after the rotation was an `origin_changed` alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_and_verify_follow_a_rotation_to_a_new_key() {
    use crate::monitor::{alert_kinds, monitor_with_key};
    use crate::verify::verify_url;
    use crate::write_policy::{hashedrekord, pem, Key};

    let config = test_config().await;
    let dir = crate::conformance::tempdir();
    let app = spawn_with(same(&config)).await;
    let old_pub = dir.join("old.pub");
    std::fs::write(&old_pub, app.verifier.public_key_pem()).unwrap();
    // The monitor watches one bare key.
    let watched = Key::new();
    let watched_pem = pem("PUBLIC KEY", &watched.spki());
    let fingerprint = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(watched.spki()));
    let watch = dir.join("monitor.yaml");
    std::fs::write(
        &watch,
        format!("monitor:\n  watch:\n    fingerprints: [\"{fingerprint}\"]\n"),
    )
    .unwrap();
    let watch = ["--config", watch.to_str().unwrap()];
    let state = dir.join("state");
    let stored = || -> Value {
        serde_json::from_slice(&std::fs::read(state.join("monitor-state.json")).unwrap()).unwrap()
    };

    let key = ClientKey::new();
    for i in 0..3 {
        created(&app, &key, format!("before the poll {i}").as_bytes()).await;
    }
    let (code, findings, err) = monitor_with_key(&app.address, &old_pub, &state, &watch).await;
    assert_eq!((code, findings.len()), (0, 0), "{findings:?} {err}");
    let first_checkpoint = stored()["checkpoint"].as_str().unwrap().to_owned();
    let since = dir.join("since.checkpoint");
    std::fs::write(&since, &first_checkpoint).unwrap();

    // Two more in the first shard after the poll, one of them watched.
    let res = app
        .create(&hashedrekord(
            &watched,
            &watched_pem,
            b"watched in shard one",
        ))
        .await;
    assert_eq!(res.status(), 201);
    created(&app, &key, b"last of shard one").await;
    app.stop().await;

    // Rotate to a new key, and serve the new shard with it.
    let new_key = dir.join("new-key.pem");
    std::fs::write(&new_key, LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    let rotation = tlog::app::rotate(&config, Some(&new_key)).await.unwrap();
    assert_eq!(rotation.frozen_size, 5);
    let mut rotated = same(&config);
    rotated.key_file.clone_from(&new_key);
    let app = spawn_with(rotated).await;
    let new_pub = dir.join("new.pub");
    std::fs::write(&new_pub, app.verifier.public_key_pem()).unwrap();
    let res = app
        .create(&hashedrekord(
            &watched,
            &watched_pem,
            b"watched in shard two",
        ))
        .await;
    assert_eq!(res.status(), 201);
    let (_, entry) = only_entry(&res.json().await.unwrap());
    assert_eq!(entry["logIndex"], 5);
    created(&app, &key, b"second of shard two").await;

    // The old key alone cannot vouch for the new shard: refused, state kept.
    let saved = stored();
    let (code, findings, _) = monitor_with_key(&app.address, &old_pub, &state, &watch).await;
    assert_eq!(code, 1);
    assert_eq!(alert_kinds(&findings), ["bad_checkpoint"], "{findings:?}");
    assert_eq!(stored(), saved);

    // Both keys: the frozen shard's tail, then the new shard.
    let both = dir.join("both.pub");
    std::fs::write(
        &both,
        std::fs::read_to_string(&old_pub).unwrap() + &std::fs::read_to_string(&new_pub).unwrap(),
    )
    .unwrap();
    let (code, findings, err) = monitor_with_key(&app.address, &both, &state, &watch).await;
    assert_eq!(code, 0, "{findings:?} {err}");
    let reported: Vec<(Value, Value)> = findings
        .iter()
        .map(|f| (f["event"].clone(), f["log_index"].clone()))
        .collect();
    assert_eq!(
        reported,
        [
            (json!("identity_match"), json!(3)),
            (json!("identity_match"), json!(5))
        ],
        "the watched entries of both shards, by global index"
    );
    let now = stored();
    assert_eq!(
        (&now["index_offset"], &now["next_index"]),
        (&json!(5), &json!(7))
    );
    let new_verifier = LogVerifier::from_pem(&std::fs::read_to_string(&new_pub).unwrap()).unwrap();
    let head = new_verifier
        .verify_checkpoint(now["checkpoint"].as_str().unwrap())
        .unwrap();
    assert_eq!(head.size, 2, "the state holds the new shard's checkpoint");
    let (code, findings, _) = monitor_with_key(&app.address, &both, &state, &watch).await;
    assert_eq!((code, findings.len()), (0, 0), "nothing new: {findings:?}");

    // `tlog verify URL`: every shard, each under its key and root.
    let since_arg = ["--json", "--since", since.to_str().unwrap()];
    let (ok, out) = verify_url(&app.address, &both, &since_arg).await;
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"], 7);
    assert_eq!(report["sets_verified"], 7);
    assert_eq!(report["tree_size"], 2);
    assert_eq!(report["consistent_with"], 3);
    let shards: Vec<(Value, Value, Value)> = report["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["first_index"].clone(),
                s["tree_size"].clone(),
                s["frozen"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shards,
        [
            (json!(0), json!(5), json!(true)),
            (json!(5), json!(2), json!(false))
        ]
    );
    let (ok, out) = verify_url(&app.address, &old_pub, &[]).await;
    assert!(
        !ok && out.contains("does not verify under the key"),
        "{out}"
    );
    app.stop().await;
}

/// `tlog export --shard` and `tlog replica --frozen-shard` (a replica of a
/// time-sharded log): each shard exports to a file of its own whose header
/// gives its first global index, `tlog verify` checks its SETs over the
/// global indexes, and a replica given every shard answers each read as the
/// server does, across both shards and both keys. A shard file is not an
/// unsharded log: import and the embedded journal refuse it, and a replica
/// refuses it without the shards before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_every_shard_of_a_sharded_log_from_their_exports() {
    let config = test_config().await;
    let app = spawn_with(same(&config)).await;
    let key = ClientKey::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            created(&app, &key, format!("first shard {i}").as_bytes())
                .await
                .0,
        );
    }
    let old_pem = app.verifier.public_key_pem();
    app.stop().await;
    let new_key = std::env::temp_dir().join(format!("tlog-test-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&new_key, LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    let rotation = tlog::app::rotate(&config, Some(&new_key)).await.unwrap();
    let config = config_for(&database_url(&config), &new_key);
    let app = spawn_with(same(&config)).await;
    for i in 0..2 {
        ids.push(
            created(&app, &key, format!("second shard {i}").as_bytes())
                .await
                .0,
        );
    }
    let dir = crate::conformance::tempdir();
    let err = tlog::app::export_v1(&config, &dir.join("all.jsonl"), None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--shard"), "{err:#}");
    let (frozen, active) = (dir.join("frozen.jsonl"), dir.join("active.jsonl"));
    tlog::app::export_v1(&config, &frozen, Some(rotation.frozen))
        .await
        .unwrap();
    tlog::app::export_v1(&config, &active, Some(rotation.active))
        .await
        .unwrap();
    let header: Value = serde_json::from_str(
        std::fs::read_to_string(&active)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["logIndexOffset"], 3, "{header}");
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&frozen)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        first.get("logIndexOffset").is_none(),
        "an offset of 0 is not written"
    );

    // `tlog verify` checks the active shard's SETs over global indexes 3 and 4.
    let new_pub = dir.join("new.pub");
    std::fs::write(&new_pub, app.verifier.public_key_pem()).unwrap();
    let (ok, out) =
        crate::verify::verify_url(active.to_str().unwrap(), &new_pub, &["--json"]).await;
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            report["first_index"].as_u64(),
            report["sets_verified"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let text = std::fs::read_to_string(&active).unwrap();
    let moved = dir.join("moved.jsonl");
    std::fs::write(
        &moved,
        text.replacen("\"logIndexOffset\":3", "\"logIndexOffset\":2", 1),
    )
    .unwrap();
    let (ok, out) = crate::verify::verify_url(moved.to_str().unwrap(), &new_pub, &["--json"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("SET"), "{out}");

    // A shard file is not an unsharded log.
    let empty = config_for(&crate::helpers::create_database().await, &new_key);
    let err = tlog::app::import(&empty, &active).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("a shard of a time-sharded log"),
        "{err:#}"
    );
    let journal = dir.join("journal");
    std::fs::create_dir(&journal).unwrap();
    std::fs::copy(&active, journal.join("db.jsonl")).unwrap();
    let err = tlog::storage::file::FileStore::open(&journal)
        .err()
        .unwrap();
    assert!(err.to_string().contains("shard's snapshot"), "{err}");

    // A replica of both shards answers as the server does.
    let keys = dir.join("keys.pem");
    std::fs::write(&keys, format!("{old_pem}{}", app.verifier.public_key_pem())).unwrap();
    let replica_config = |frozen: &[&std::path::Path]| {
        use figment::providers::{Format, Yaml};
        let list: Vec<String> = frozen
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        let yaml = format!(
            "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nreplica:\n  db: {}\n  public_key: {}\n  \
             poll_interval_ms: 0\n  frozen_shards: [{}]\n",
            active.display(),
            keys.display(),
            list.join(", ")
        );
        let config: Config = figment::Figment::new()
            .merge(Yaml::string(&yaml))
            .extract()
            .unwrap();
        config.validate().unwrap();
        config
    };
    let replica = tlog::replica::Replica::build(&replica_config(&[&frozen]))
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", replica.port());
    let handle = replica.server_handle();
    tokio::spawn(replica.run_until_stopped());
    let frozen_tree = i64::from_str_radix(&ids[0][..16], 16).unwrap();
    let mut paths = vec![
        "/api/v1/log".to_owned(),
        "/api/v1/log/publicKey".to_owned(),
        format!("/api/v1/log/publicKey?treeID={frozen_tree}"),
        format!("/api/v1/log/proof?lastSize=3&firstSize=1&treeID={frozen_tree}"),
        "/api/v1/log/proof?lastSize=2&firstSize=1".to_owned(),
        "/api/v1/log/entries?logIndex=5".to_owned(),
    ];
    for index in 0..5 {
        paths.push(format!("/api/v1/log/entries?logIndex={index}"));
    }
    for id in &ids {
        paths.push(format!("/api/v1/log/entries/{id}"));
    }
    let http = reqwest::Client::new();
    for path in &paths {
        let served = app.get(path).await;
        let replicated = http.get(format!("{address}{path}")).send().await.unwrap();
        assert_eq!(served.status(), replicated.status(), "{path}");
        let (a, b) = (
            served.text().await.unwrap(),
            replicated.text().await.unwrap(),
        );
        assert_eq!(a, b, "{path}");
    }
    let (_, body) = get_json(&app, "/api/v1/log/entries?logIndex=1").await;
    let (id, entry) = only_entry(&body);
    verify_sharded(&LogVerifier::from_pem(&old_pem).unwrap(), &id, &entry, 1, 1);
    handle.stop(true).await;

    // Without the shards before it, or with them out of order: refused.
    let err = tlog::replica::Replica::build(&replica_config(&[]))
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("--frozen-shard"), "{err:#}");
    let err = tlog::replica::Replica::build(&replica_config(&[&frozen, &frozen]))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("starts at global index 0, not 3"),
        "{err:#}"
    );
    app.stop().await;
}
