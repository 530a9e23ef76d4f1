//! The storage contract (src/storage/mod.rs), run against every store:
//! Postgres (a fresh database) and the embedded journal (a temp dir).

use std::future::Future;

use sqlx::Connection as _;
use tlog::merkle::{self, Tree};
use tlog::note::Checkpoint;
use tlog::signing::LogSigner;
use tlog::storage::file::{Entries, FileStore};
use tlog::storage::postgres::{ApiVersion, LogRecord, LogState, PgStore};
use tlog::storage::{
    Batch, KeyMatch, LogIdentity, LogReader, LogWriter, NewEntry, StoreError, StoredCheckpoint,
    StoredEntry,
};
use tlog::tiles;

use crate::helpers::create_database;

struct Fixture {
    signer: LogSigner,
    identity: LogIdentity,
    tree: Tree,
}

impl Fixture {
    fn new() -> Self {
        let signer = LogSigner::from_pkcs8_pem(&LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
        let identity = LogIdentity {
            tree_id: 1_234_567,
            public_key: signer.public_key_der().to_vec(),
        };
        Self {
            signer,
            identity,
            tree: Tree::default(),
        }
    }

    fn sign(&self, size: u64, root: merkle::Hash) -> StoredCheckpoint {
        let note = self
            .signer
            .sign_checkpoint(
                &Checkpoint {
                    origin: format!("conformance - {}", self.identity.tree_id),
                    size,
                    root,
                },
                "conformance",
            )
            .unwrap();
        StoredCheckpoint { size, root, note }
    }

    /// A batch of `n` entries after the current tree, and its checkpoint.
    fn batch(&mut self, n: u64) -> (u64, Batch, StoredCheckpoint) {
        let (old, batch, checkpoint) = self.proposed(n);
        let leaves: Vec<_> = batch.entries.iter().map(|e| e.leaf_hash).collect();
        self.tree.apply(self.tree.stage(&leaves));
        (old, batch, checkpoint)
    }

    /// Like [`Self::batch`], but the fixture's tree does not take it.
    fn proposed(&self, n: u64) -> (u64, Batch, StoredCheckpoint) {
        let old = self.tree.size();
        let entries: Vec<NewEntry> = (old..old + n)
            .map(|i| {
                let body = format!("{{\"entry\":{i}}}").into_bytes();
                NewEntry {
                    leaf_hash: merkle::leaf_hash(&body),
                    entry: StoredEntry {
                        index: i,
                        set: self
                            .signer
                            .sign_set("eA==", 1_700_000_000 + i as i64, i)
                            .unwrap(),
                        body,
                        integrated_time: 1_700_000_000 + i as i64,
                    },
                    // Unsorted, with a repeat and a key shared by every entry.
                    index_keys: vec![format!("key-{i}"), "shared".into(), format!("key-{i}")],
                }
            })
            .collect();
        let leaves: Vec<_> = entries.iter().map(|e| e.leaf_hash).collect();
        let staged = self.tree.stage(&leaves);
        let tiles = tiles::changed_tiles(&self.tree, &staged);
        let checkpoint = self.sign(staged.size(), staged.root());
        (old, Batch { entries, tiles }, checkpoint)
    }
}

/// The suite. `reopen` gives a new handle on the same durable state.
async fn run<S, F, Fut>(store: S, reopen: F)
where
    S: LogWriter,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let mut fx = Fixture::new();
    // A fresh store is empty, and "not found" is not an error.
    assert_eq!(store.identity().await.unwrap(), None);
    assert_eq!(store.checkpoint().await.unwrap(), None);
    assert_eq!(store.entry(0).await.unwrap(), None);
    assert!(search(&store, &["shared"], KeyMatch::Any, 10)
        .await
        .is_empty());

    // init, then a second init conflicts.
    let empty = fx.sign(0, merkle::empty_root());
    store.init(&fx.identity, &empty).await.unwrap();
    assert_eq!(store.identity().await.unwrap(), Some(fx.identity.clone()));
    assert_eq!(store.checkpoint().await.unwrap(), Some(empty.clone()));
    assert!(matches!(
        store.init(&fx.identity, &empty).await,
        Err(StoreError::Conflict(_))
    ));

    // Two batches, the second crossing a tile boundary.
    let (old, first, cp1) = fx.batch(200);
    store.commit(old, &first, &cp1).await.unwrap();
    let (old, second, cp2) = fx.batch(100);
    // A stale old size conflicts and writes nothing.
    assert!(matches!(
        store.commit(old - 1, &second, &cp2).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.checkpoint().await.unwrap(), Some(cp1.clone()));
    assert_eq!(store.entry(200).await.unwrap(), None);
    store.commit(old, &second, &cp2).await.unwrap();

    // Index keys that no store keeps (a NUL, a control character, one over
    // the length limit) reject the batch, naming each entry at fault, and
    // write nothing.
    let (old, mut poisoned, cp3) = fx.proposed(5);
    poisoned.entries[1].index_keys.push("nul\0key".into());
    poisoned.entries[2].index_keys.push("bell\u{7}".into());
    poisoned.entries[4].index_keys.push("k".repeat(3000));
    poisoned.entries[3]
        .index_keys
        .push("k".repeat(tlog::entries::MAX_INDEX_KEY_LEN));
    match store.commit(old, &poisoned, &cp3).await {
        Err(StoreError::Rejected { culprits, .. }) => {
            let positions: Vec<usize> = culprits.iter().map(|(p, _)| *p).collect();
            assert_eq!(positions, vec![1, 2, 4]);
            assert!(culprits[2].1.contains("3000 bytes"), "{culprits:?}");
        }
        other => panic!("a poisoned batch must be rejected, got {other:?}"),
    }
    assert_eq!(store.checkpoint().await.unwrap(), Some(cp2.clone()));
    assert_eq!(store.entry(300).await.unwrap(), None);

    // An empty batch re-signs the head at the same size.
    let resigned = fx.sign(cp2.size, cp2.root);
    assert_ne!(resigned.note, cp2.note, "ECDSA signatures are randomised");
    store
        .commit(300, &Batch::default(), &resigned)
        .await
        .unwrap();

    check_contents(&store, &fx, &resigned).await;
    let reopened = reopen().await;
    check_contents(&reopened, &fx, &resigned).await;
}

async fn search<S: LogReader>(
    store: &S,
    keys: &[&str],
    matching: KeyMatch,
    limit: usize,
) -> Vec<u64> {
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    store.search(&keys, matching, limit).await.unwrap()
}

async fn check_contents<S: LogReader>(store: &S, fx: &Fixture, head: &StoredCheckpoint) {
    assert_eq!(store.checkpoint().await.unwrap().as_ref(), Some(head));
    assert_eq!(store.identity().await.unwrap(), Some(fx.identity.clone()));
    let entry = store.entry(250).await.unwrap().unwrap();
    assert_eq!(entry.index, 250);
    assert_eq!(entry.body, b"{\"entry\":250}");
    assert_eq!(entry.integrated_time, 1_700_000_250);
    assert_eq!(store.entry(300).await.unwrap(), None);
    let leaves = store.leaf_hashes(0, 1000).await.unwrap();
    assert_eq!(leaves.len(), 300, "fewer only because the log is smaller");
    assert_eq!(Tree::from_leaves(leaves).root(300).unwrap(), head.root);
    assert_eq!(store.leaf_hashes(250, 260).await.unwrap().len(), 10);
    // Block hashes: the root of each complete level-0 tile, what level-1
    // tiles hold; fewer only because the log has fewer complete tiles.
    let first_block = Tree::from_leaves(store.leaf_hashes(0, 256).await.unwrap());
    assert_eq!(
        store.block_hashes(0, 5).await.unwrap(),
        vec![first_block.root(256).unwrap()]
    );
    assert!(store.block_hashes(1, 2).await.unwrap().is_empty());
    // Leaves are found by hash, in the order asked; absent ones are None.
    let at = |i: u64| merkle::leaf_hash(format!("{{\"entry\":{i}}}").as_bytes());
    let absent = merkle::leaf_hash(b"never logged");
    assert_eq!(
        store
            .find_leaves(&[at(299), absent, at(0), at(256)])
            .await
            .unwrap(),
        vec![Some(299), None, Some(0), Some(256)]
    );
    assert!(store.find_leaves(&[]).await.unwrap().is_empty());
    assert_eq!(
        search(store, &["key-7"], KeyMatch::Any, 1000).await,
        vec![7]
    );
    assert_eq!(
        search(store, &["shared"], KeyMatch::Any, 1000).await,
        (0..300).collect::<Vec<_>>()
    );
    // A limit keeps the newest matches; the union and the intersection of
    // several keys are limited after they are combined.
    assert_eq!(
        search(store, &["shared"], KeyMatch::Any, 10).await,
        (290..300).collect::<Vec<_>>()
    );
    assert_eq!(
        search(store, &["key-7", "key-299", "key-250"], KeyMatch::Any, 2).await,
        vec![250, 299]
    );
    assert_eq!(
        search(store, &["shared", "key-7"], KeyMatch::All, 2).await,
        vec![7]
    );
    assert!(search(store, &["key-7", "key-8"], KeyMatch::All, 2)
        .await
        .is_empty());
    assert!(search(store, &["shared", "absent"], KeyMatch::All, 2)
        .await
        .is_empty());
    assert!(search(store, &[], KeyMatch::Any, 2).await.is_empty());
    let page = store.entry_page(298, 310).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].0.index, 298);
    assert_eq!(
        page[0].1,
        vec!["key-298".to_owned(), "shared".to_owned()],
        "keys sorted and unique"
    );
    // A page across every batch (the journal has checkpoint lines between
    // them) is the same entries one by one.
    let all = store.entry_page(0, 300).await.unwrap();
    assert_eq!(all.len(), 300);
    for (i, (entry, keys)) in all.iter().enumerate() {
        assert_eq!(store.entry(i as u64).await.unwrap().as_ref(), Some(entry));
        assert_eq!(keys, &vec![format!("key-{i}"), "shared".to_owned()]);
    }
}

async fn pg_store(url: &str) -> PgStore {
    let store = PgStore::connect_lazy(url, 4).unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn postgres_store_keeps_the_contract() {
    let url = create_database().await;
    let store = pg_store(&url).await;
    run(store, || pg_store(&url)).await;
}

/// A second log in the same database keeps the same contract, and neither
/// log sees the other's entries, tiles, search keys or checkpoint.
#[tokio::test]
async fn a_second_postgres_log_keeps_the_contract_apart_from_the_first() {
    let url = create_database().await;
    let first = pg_store(&url).await;
    run(first.clone(), || pg_store(&url)).await;
    let head = first.checkpoint().await.unwrap().unwrap();

    let second = first
        .register_log(ApiVersion::V2, Some("rekor.example.test"))
        .await
        .unwrap();
    assert_eq!(second.log_id(), 2);
    run(second.clone(), || async { pg_store(&url).await.for_log(2) }).await;

    // The first log is as it was; the second has its own head and keys.
    assert_eq!(first.checkpoint().await.unwrap(), Some(head));
    assert_ne!(
        second.checkpoint().await.unwrap(),
        first.checkpoint().await.unwrap()
    );
    assert_eq!(
        search(&first, &["shared"], KeyMatch::Any, 1000).await.len(),
        300
    );
    let logs = first.logs().await.unwrap();
    assert_eq!(
        logs,
        vec![
            LogRecord {
                id: 1,
                api_version: ApiVersion::V1,
                state: LogState::Active,
                origin: None
            },
            LogRecord {
                id: 2,
                api_version: ApiVersion::V2,
                state: LogState::Active,
                origin: Some("rekor.example.test".into())
            },
        ]
    );
    // Origins are unique, a log that was never registered can't be
    // initialised, and freezing is recorded per log.
    assert!(matches!(
        first
            .register_log(ApiVersion::V2, Some("rekor.example.test"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let fx = Fixture::new();
    assert!(first
        .for_log(9)
        .init(&fx.identity, &fx.sign(0, merkle::empty_root()))
        .await
        .is_err());
    second.freeze().await.unwrap();
    let logs = first.logs().await.unwrap();
    assert_eq!(logs[0].state, LogState::Active);
    assert_eq!(logs[1].state, LogState::Frozen);
}

/// Each log has its own sequencer lease: two processes can each hold one.
#[tokio::test]
async fn each_postgres_log_has_its_own_sequencer_lease() {
    use tlog::storage::Lease as _;
    let url = create_database().await;
    let first = pg_store(&url).await;
    let second = first.register_log(ApiVersion::V2, None).await.unwrap();
    let ttl = std::time::Duration::from_secs(30);
    let (a1, a2) = (first.lease(ttl), second.lease(ttl));
    assert!(a1.acquire().await.unwrap().is_some());
    assert!(a2.acquire().await.unwrap().is_some(), "log 2 is free");
    // Another process finds both held.
    let other = pg_store(&url).await;
    assert!(other.lease(ttl).acquire().await.unwrap().is_none());
    assert!(other
        .for_log(2)
        .lease(ttl)
        .acquire()
        .await
        .unwrap()
        .is_none());
}

/// A database from before migration 0005 (one log, no log IDs) becomes log
/// 1 of the many-log schema, with every row it had.
#[tokio::test]
async fn a_single_log_database_from_before_0005_becomes_log_1() {
    let url = create_database().await;
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let all = sqlx::migrate!("./migrations");
    let before = sqlx::migrate::Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.version < 5)
            .cloned()
            .collect(),
        ..sqlx::migrate!("./migrations")
    };
    assert_eq!(before.migrations.len(), 4);
    before.run(&mut db).await.unwrap();

    // Rows as the single-log store wrote them.
    let mut fx = Fixture::new();
    let (_, batch, head) = fx.batch(3);
    sqlx::query("INSERT INTO log_identity (tree_id, public_key) VALUES ($1, $2)")
        .bind(fx.identity.tree_id)
        .bind(&fx.identity.public_key)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO checkpoint (size, root, note) VALUES ($1, $2, $3)")
        .bind(3_i64)
        .bind(&head.root.0[..])
        .bind(&head.note)
        .execute(&mut db)
        .await
        .unwrap();
    for new in &batch.entries {
        let e = &new.entry;
        sqlx::query(
            "INSERT INTO entries (idx, leaf_hash, body, integrated_time, set_signature) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.index as i64)
        .bind(&new.leaf_hash.0[..])
        .bind(&e.body)
        .bind(e.integrated_time)
        .bind(&e.set)
        .execute(&mut db)
        .await
        .unwrap();
        sqlx::query("INSERT INTO index_keys (key, entry_idx) VALUES ($1, $2)")
            .bind(&new.index_keys[0])
            .bind(e.index as i64)
            .execute(&mut db)
            .await
            .unwrap();
    }
    for (tile, bytes) in &batch.tiles {
        sqlx::query("INSERT INTO tiles (level, idx, width, hashes) VALUES ($1, $2, $3, $4)")
            .bind(i16::from(tile.level))
            .bind(tile.index as i64)
            .bind(tile.width as i16)
            .bind(bytes)
            .execute(&mut db)
            .await
            .unwrap();
    }

    let store = pg_store(&url).await;
    assert_eq!(store.log_id(), 1);
    assert_eq!(store.identity().await.unwrap(), Some(fx.identity.clone()));
    assert_eq!(store.checkpoint().await.unwrap(), Some(head.clone()));
    assert_eq!(
        store.entry(2).await.unwrap().unwrap().body,
        b"{\"entry\":2}"
    );
    let leaves = store.leaf_hashes(0, 3).await.unwrap();
    assert_eq!(Tree::from_leaves(leaves).root(3).unwrap(), head.root);
    assert_eq!(search(&store, &["key-1"], KeyMatch::Any, 10).await, vec![1]);
    assert_eq!(store.logs().await.unwrap()[0].api_version, ApiVersion::V1);
    // The old log keeps growing under its lease, as before.
    let lease = store.lease(std::time::Duration::from_secs(30));
    use tlog::storage::Lease as _;
    assert!(lease.acquire().await.unwrap().is_some());
    let (old, next, cp) = fx.batch(2);
    store.commit(old, &next, &cp).await.unwrap();
    assert_eq!(store.entry(4).await.unwrap().unwrap().index, 4);
}

/// The journal, reopened as a snapshot whose entries are in memory (a
/// replica) or read back from the file (an export).
#[tokio::test]
async fn file_store_keeps_the_contract() {
    for entries in [Entries::InMemory, Entries::OnDisk] {
        let dir = tempdir();
        let store = FileStore::open(&dir).unwrap();
        let reopen_dir = dir.clone();
        // The first handle holds the journal's lock; a second writer is refused.
        assert!(matches!(
            FileStore::open(&dir),
            Err(StoreError::Conflict(_))
        ));
        let first = store.clone();
        run(store, move || {
            let dir = reopen_dir.clone();
            let _ = &first;
            async move {
                let snapshot = FileStore::open_snapshot(
                    &dir.join("db.jsonl"),
                    tlog::storage::jsonl::KeyPolicy::Unchecked,
                    entries,
                )
                .unwrap();
                assert_eq!(snapshot.entries_in_memory(), entries == Entries::InMemory);
                snapshot
            }
        })
        .await;
    }
}

#[tokio::test]
async fn file_store_reopens_for_writing_after_close() {
    let dir = tempdir();
    let mut fx = Fixture::new();
    {
        let store = FileStore::open(&dir).unwrap();
        store
            .init(&fx.identity, &fx.sign(0, merkle::empty_root()))
            .await
            .unwrap();
        let (old, batch, cp) = fx.batch(10);
        store.commit(old, &batch, &cp).await.unwrap();
    }
    let store = FileStore::open(&dir).unwrap();
    assert_eq!(store.checkpoint().await.unwrap().unwrap().size, 10);
    let (old, batch, cp) = fx.batch(5);
    store.commit(old, &batch, &cp).await.unwrap();
    assert_eq!(store.entry(14).await.unwrap().unwrap().index, 14);
}

/// A torn tail (a batch cut mid-write) is dropped on open; a covered
/// entry that does not match refuses the open, naming the line.
#[tokio::test]
async fn file_store_truncates_a_torn_tail_and_refuses_covered_damage() {
    let dir = tempdir();
    let path = dir.join("db.jsonl");
    let mut fx = Fixture::new();
    {
        let store = FileStore::open(&dir).unwrap();
        store
            .init(&fx.identity, &fx.sign(0, merkle::empty_root()))
            .await
            .unwrap();
        let (old, batch, cp) = fx.batch(3);
        store.commit(old, &batch, &cp).await.unwrap();
    }
    let good = std::fs::read(&path).unwrap();
    // Entries after the last checkpoint, the last one cut in the middle.
    let mut torn = good.clone();
    torn.extend_from_slice(b"{\"type\":\"entry\",\"index\":3,\"integratedTime\":1,\"body\":\"eA==\",\"set\":\"eA==\",\"indexKeys\":[]}\n");
    torn.extend_from_slice(b"{\"type\":\"entry\",\"index\":4,\"integr");
    std::fs::write(&path, &torn).unwrap();
    let store = FileStore::open(&dir).unwrap();
    assert_eq!(store.checkpoint().await.unwrap().unwrap().size, 3);
    assert_eq!(store.entry(3).await.unwrap(), None);
    // The leaf index the open built for the log holds the covered entries
    // only: the uncovered one may be submitted again.
    let leaf_index = store.take_leaf_index().expect("built while opening");
    let leaves = store.leaf_hashes(0, 3).await.unwrap();
    assert_eq!(leaf_index.len(), 3);
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(leaf_index.get(&leaf.0), Some(&(i as u64)));
    }
    assert!(!leaf_index.contains_key(&merkle::leaf_hash(b"x").0));
    drop(store);
    assert_eq!(std::fs::read(&path).unwrap(), good, "tail truncated");

    // A flipped byte in a covered entry's body.
    let text = String::from_utf8(good).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[3] = lines[3].replacen("\"body\":\"ey", "\"body\":\"fy", 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = FileStore::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("line 6"),
        "names the covering checkpoint's line: {err}"
    );
    assert!(err.contains("an entry was altered"), "{err}");
}

pub fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tlog-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
