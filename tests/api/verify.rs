//! `tlog verify FILE` (issue 15): a good export passes, and each tamper is
//! caught and named by its line.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tlog::export::SnapshotWriter;
use tlog::signing::LogSigner;

use crate::conformance::tempdir;
use crate::helpers::ClientKey;

const HOSTNAME: &str = "verify.test";
const TREE_ID: i64 = 77;

/// A signed export of `count` real hashedrekord entries, with a checkpoint
/// after the first three as well as the last one. Returns its lines and
/// the note of the checkpoint at size 3.
fn export(key_pem: &str, count: usize, salt: &str) -> (Vec<String>, String) {
    let signer = LogSigner::from_pkcs8_pem(key_pem).unwrap();
    let mut writer = SnapshotWriter::new(Vec::new(), signer, HOSTNAME, TREE_ID).unwrap();
    let client = ClientKey::new();
    let mut early = String::new();
    for i in 0..count {
        let proposed = client.hashedrekord(format!("{salt} artifact {i}").as_bytes());
        let entry = tlog::entries::parse_proposed(&serde_json::to_vec(&proposed).unwrap()).unwrap();
        writer
            .push(entry.canonical, 1_700_000_000 + i as i64, &entry.index_keys)
            .unwrap();
        if i == 2 {
            early = writer.checkpoint().unwrap().note;
        }
    }
    let (bytes, _) = writer.finish().unwrap();
    let lines = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, early)
}

struct Files {
    dir: PathBuf,
    public_key: PathBuf,
}

impl Files {
    fn new(key_pem: &str) -> Self {
        let dir = tempdir();
        let public_key = dir.join("log.pub");
        let signer = LogSigner::from_pkcs8_pem(key_pem).unwrap();
        std::fs::write(&public_key, signer.public_key_pem()).unwrap();
        Self { dir, public_key }
    }

    fn write(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }
}

/// Runs `tlog verify` and returns whether it passed, with its output.
fn verify(file: &Path, public_key: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tlog"))
        .arg("verify")
        .arg(file)
        .arg("--public-key")
        .arg(public_key)
        .args(extra)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => (true, text),
        Some(1) => (false, text),
        other => panic!("tlog verify exited with {other:?}: {text}"),
    }
}

fn edit_line(lines: &[String], line: usize, edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut lines = lines.to_vec();
    let mut record: Value = serde_json::from_str(&lines[line - 1]).unwrap();
    edit(&mut record);
    lines[line - 1] = serde_json::to_string(&record).unwrap();
    lines
}

#[test]
fn a_good_export_passes_with_a_full_report() {
    let key = LogSigner::generate_pkcs8_pem().unwrap();
    let files = Files::new(&key);
    let (lines, early) = export(&key, 6, "good");
    let file = files.write("db.jsonl", &lines);
    let (ok, text) = verify(&file, &files.public_key, &[]);
    assert!(ok, "{text}");
    assert!(text.contains("result       OK"), "{text}");
    assert!(text.contains("entries      6 (hashedrekord 6)"), "{text}");

    let since = files.dir.join("early.checkpoint");
    std::fs::write(&since, &early).unwrap();
    let (ok, text) = verify(
        &file,
        &files.public_key,
        &["--json", "--since", since.to_str().unwrap()],
    );
    assert!(ok, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["entries"], 6);
    assert_eq!(report["tree_size"], 6);
    assert_eq!(report["sets_verified"], 6);
    assert_eq!(report["index_keys_checked"], 6);
    assert_eq!(report["consistent_with"], 3);
    assert_eq!(report["problem"], Value::Null);
}

#[test]
fn each_tamper_fails_and_names_its_line() {
    let key = LogSigner::generate_pkcs8_pem().unwrap();
    let files = Files::new(&key);
    // Line 1 the header, 2-4 entries 0-2, 5 a checkpoint, 6-8 entries 3-5,
    // 9 the last checkpoint.
    let (lines, _) = export(&key, 6, "tamper");
    let (other_lines, _) = export(&key, 6, "another log");
    let other_key = LogSigner::generate_pkcs8_pem().unwrap();
    let (foreign_lines, _) = export(&other_key, 6, "tamper");

    let body_of = |lines: &[String], line: usize| -> Value {
        serde_json::from_str::<Value>(&lines[line - 1]).unwrap()["body"].clone()
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "a changed body",
            edit_line(&lines, 3, |r| r["body"] = body_of(&other_lines, 3)),
            "line 3, entry 1",
        ),
        (
            "a changed SET",
            edit_line(&lines, 6, |r| {
                r["set"] = serde_json::from_str::<Value>(&lines[6]).unwrap()["set"].clone();
            }),
            "line 6, entry 3",
        ),
        (
            "a changed integratedTime",
            edit_line(&lines, 7, |r| {
                r["integratedTime"] = Value::from(r["integratedTime"].as_i64().unwrap() + 1);
            }),
            "line 7, entry 4",
        ),
        (
            "a removed index key",
            edit_line(&lines, 4, |r| {
                r["indexKeys"].as_array_mut().unwrap().remove(0);
            }),
            "line 4, entry 2",
        ),
        (
            "an added index key",
            edit_line(&lines, 7, |r| {
                let keys = r["indexKeys"].as_array_mut().unwrap();
                keys.push(Value::from("a-planted@example.com"));
                // Still sorted, as the format requires: only the key is wrong.
                keys.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }),
            "line 7, entry 4",
        ),
        (
            "a reordered line",
            {
                let mut l = lines.clone();
                l.swap(6, 7);
                l
            },
            "line 7",
        ),
        (
            "a checkpoint signed by another key",
            {
                let mut l = lines.clone();
                l[8] = foreign_lines[8].clone();
                l
            },
            "line 9",
        ),
    ];
    for (what, tampered, place) in cases {
        let file = files.write("tampered.jsonl", &tampered);
        let (ok, text) = verify(&file, &files.public_key, &[]);
        assert!(!ok, "{what} passed: {text}");
        assert!(text.contains("FAILED"), "{what}: {text}");
        assert!(text.contains(&format!("at {place}")), "{what}: {text}");
    }
}

#[test]
fn a_log_that_does_not_extend_the_since_checkpoint_fails() {
    let key = LogSigner::generate_pkcs8_pem().unwrap();
    let files = Files::new(&key);
    let (lines, _) = export(&key, 6, "ours");
    let file = files.write("db.jsonl", &lines);
    // A fork: the same key signed other entries at size 3.
    let (_, forked) = export(&key, 4, "theirs");
    let since = files.dir.join("forked.checkpoint");
    std::fs::write(&since, &forked).unwrap();
    let (ok, text) = verify(
        &file,
        &files.public_key,
        &["--since", since.to_str().unwrap()],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("a fork"), "{text}");

    // A rollback: the earlier checkpoint is larger than the log.
    let (_, bigger) = export(&key, 3, "ours");
    let (small, _) = export(&key, 2, "ours");
    let small_file = files.write("small.jsonl", &small);
    std::fs::write(&since, &bigger).unwrap();
    let (ok, text) = verify(
        &small_file,
        &files.public_key,
        &["--since", since.to_str().unwrap()],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("rolled back"), "{text}");

    // And a --since checkpoint from another key is refused outright.
    let other = LogSigner::generate_pkcs8_pem().unwrap();
    let (_, foreign) = export(&other, 3, "ours");
    std::fs::write(&since, &foreign).unwrap();
    let (ok, text) = verify(
        &file,
        &files.public_key,
        &["--since", since.to_str().unwrap()],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("--since checkpoint does not verify"),
        "{text}"
    );
}

/// Runs `tlog verify URL` from a test on a multi-threaded runtime (the
/// servers it reads run in this process).
pub(crate) async fn verify_url(url: &str, public_key: &Path, extra: &[&str]) -> (bool, String) {
    let (url, public_key) = (url.to_owned(), public_key.to_owned());
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        verify(Path::new(&url), &public_key, &extra)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_log_verifies_by_url_and_a_tampering_one_fails() {
    use crate::monitor::{bodies, hostile, Hostility, Setup};
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(1234, "by url")).await;
    let (ok, out) = verify_url(&app.address, &setup.public_key, &["--json"]).await;
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"], 1234);
    assert_eq!(report["sets_verified"], 1234);
    assert_eq!(report["tree_size"], 1234);
    assert_eq!(report["kinds"]["hashedrekord"], 1234);

    let url = hostile(app.address.clone(), Hostility::ShiftIntegratedTime).await;
    let (ok, out) = verify_url(&url, &setup.public_key, &["--json"]).await;
    assert!(!ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["problem"]["index"], 0, "{out}");
    assert!(report["problem"]["reason"]
        .as_str()
        .unwrap()
        .contains("SET"));

    // Another key's log fails at its checkpoint.
    let other = Setup::new();
    let (ok, out) = verify_url(&app.address, &other.public_key, &[]).await;
    assert!(
        !ok && out.contains("does not verify under the key"),
        "{out}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_log_must_extend_the_since_checkpoint() {
    use crate::monitor::{bodies, Setup};
    let setup = Setup::new();
    let prefix = bodies(30, "shared");
    let a = setup
        .serve("a", &[prefix.clone(), bodies(5, "a")].concat())
        .await;
    let b = setup.serve("b", &[prefix, bodies(5, "b")].concat()).await;
    let a_note = a.get("/api/v1/log").await.json::<Value>().await.unwrap()["signedTreeHead"]
        .as_str()
        .unwrap()
        .to_owned();
    let since = setup.public_key.with_file_name("since.txt");
    std::fs::write(&since, &a_note).unwrap();
    let since_arg = since.to_str().unwrap();
    let (ok, out) = verify_url(&a.address, &setup.public_key, &["--since", since_arg]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("the checkpoint at size 35 is a prefix"),
        "{out}"
    );
    // B has the same key, origin and size, but another branch: a fork.
    let (ok, out) = verify_url(&b.address, &setup.public_key, &["--since", since_arg]).await;
    assert!(!ok && out.contains("a fork"), "{out}");
    // B's entries (every SET valid) under A's checkpoint: the rebuilt root differs.
    use crate::monitor::{hostile, Hostility};
    let mixed = hostile(b.address.clone(), Hostility::LogInfoFrom(a.address.clone())).await;
    let (ok, out) = verify_url(&mixed, &setup.public_key, &[]).await;
    assert!(!ok && out.contains("hash to root"), "{out}");
    a.stop().await;
    b.stop().await;
}
