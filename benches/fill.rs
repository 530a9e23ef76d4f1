//! Fills an empty Postgres log with synthetic entries, fast, for measuring
//! start-up time and memory at millions of entries (issue 13, item 4).
//!
//! ```text
//! cargo bench --bench fill -- --database-url postgres://… --key-file log.pem --count 10000000
//! cargo bench --bench fill -- --database-url postgres://… --key-file v2.pem --v2-origin ORIGIN --count 1000000
//! ```
//!
//! With `--v2-origin`, it fills a new Rekor v2 log of that origin instead, with
//! `--key-file` an Ed25519 key (`tlog keygen --algorithm ed25519`): serve it
//! with `v2.key_file` and `v2.origin` set to the same (issue 14's tile GETs).
//!
//! Writes through `LogWriter::commit`, as the sequencer and `tlog import` do,
//! in batches of 65,536: real leaf hashes, real tiles at every level and a
//! checkpoint signed with `--key-file` (origin `<--hostname> - <tree ID>`),
//! so `tlog serve` verifies the tree it loads as for any log. The bodies are
//! hashedrekord-shaped JSON of a typical size (about 700 bytes) whose
//! signatures are not real, and the SETs are placeholders of a real SET's
//! length: nothing reads either at start-up. No search keys are written.

use std::time::Instant;

use tlog::merkle::{self, Tree};
use tlog::note::Checkpoint;
use tlog::signing::LogSigner;
use tlog::storage::postgres::{ApiVersion, PgStore};
use tlog::storage::{
    Batch, LogIdentity, LogReader, LogWriter, NewEntry, StoredCheckpoint, StoredEntry,
};
use tlog::tiles;

const BATCH: u64 = 1 << 16;

struct Args {
    database_url: String,
    key_file: String,
    hostname: String,
    count: u64,
    v2_origin: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        database_url: String::new(),
        key_file: String::new(),
        hostname: "localhost".into(),
        count: 1_000_000,
        v2_origin: None,
    };
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--database-url" => args.database_url = value(),
            "--key-file" => args.key_file = value(),
            "--hostname" => args.hostname = value(),
            "--count" => args.count = value().parse().expect("--count"),
            "--v2-origin" => args.v2_origin = Some(value()),
            other => panic!("unknown argument {other}; see the doc comment in benches/fill.rs"),
        }
    }
    assert!(
        !args.database_url.is_empty() && !args.key_file.is_empty(),
        "--database-url and --key-file are required"
    );
    args
}

/// A hashedrekord-shaped canonical body, distinct per index.
fn body(index: u64) -> Vec<u8> {
    let digest = hex::encode(merkle::leaf_hash(&index.to_be_bytes()).0);
    let filler = "A".repeat(96);
    let key = "B".repeat(240);
    format!(
        "{{\"apiVersion\":\"0.0.1\",\"kind\":\"hashedrekord\",\"spec\":{{\"data\":{{\"hash\":\
         {{\"algorithm\":\"sha256\",\"value\":\"{digest}\"}}}},\"signature\":{{\"content\":\
         \"{filler}\",\"publicKey\":{{\"content\":\"{key}\"}}}}}}}}"
    )
    .into_bytes()
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let pem = std::fs::read_to_string(&args.key_file).expect("read --key-file");
    let (signer, origin, name) = match &args.v2_origin {
        Some(origin) => (
            LogSigner::from_ed25519_pem(&pem, origin).expect("an Ed25519 key"),
            origin.clone(),
            origin.clone(),
        ),
        None => (
            LogSigner::from_pkcs8_pem(&pem).expect("a PKCS#8 key"),
            String::new(),
            args.hostname.clone(),
        ),
    };
    let v1 = PgStore::open(&args.database_url, 4)
        .await
        .expect("reach and migrate the database");
    let store = match &args.v2_origin {
        Some(origin) => v1
            .register_log(ApiVersion::V2, Some(origin))
            .await
            .expect("register a new v2 log (none of this origin may exist)"),
        None => v1,
    };
    assert!(
        store.identity().await.unwrap().is_none(),
        "the database must hold no log yet"
    );
    let identity = LogIdentity {
        tree_id: 4_242_424_242,
        public_key: signer.public_key_der().to_vec(),
    };
    let origin = if args.v2_origin.is_some() {
        origin
    } else {
        format!("{} - {}", args.hostname, identity.tree_id)
    };
    let sign = |size: u64, root: merkle::Hash| {
        let checkpoint = Checkpoint {
            origin: origin.clone(),
            size,
            root,
        };
        let note = signer
            .sign_checkpoint(&checkpoint, &name)
            .expect("sign a checkpoint");
        StoredCheckpoint { size, root, note }
    };
    store
        .init(&identity, &sign(0, merkle::empty_root()))
        .await
        .expect("init the log");
    let started = Instant::now();
    let mut tree = Tree::default();
    while tree.size() < args.count {
        let old = tree.size();
        let end = (old + BATCH).min(args.count);
        let entries: Vec<NewEntry> = (old..end)
            .map(|index| {
                let body = body(index);
                NewEntry {
                    leaf_hash: merkle::leaf_hash(&body),
                    entry: StoredEntry {
                        index,
                        body,
                        integrated_time: 1_700_000_000,
                        set: vec![0x30; 71],
                    },
                    index_keys: Vec::new(),
                }
            })
            .collect();
        let leaves: Vec<_> = entries.iter().map(|e| e.leaf_hash).collect();
        let staged = tree.stage(&leaves);
        let tiles = tiles::changed_tiles(&tree, &staged);
        let checkpoint = sign(staged.size(), staged.root());
        store
            .commit(old, &Batch { entries, tiles }, &checkpoint)
            .await
            .expect("commit a batch");
        tree.apply(staged);
        if tree.size() % (1 << 20) < BATCH {
            eprintln!(
                "{} entries, {:.0}/s",
                tree.size(),
                tree.size() as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "filled {} entries in {:.1} s",
        tree.size(),
        started.elapsed().as_secs_f64()
    );
}
