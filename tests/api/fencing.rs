//! The lease epoch checked inside the commit (issue 13, item 3), on its own:
//! the process-level tests in `ha.rs` also pass with it removed, because a
//! paused leader's own clock already stops it from signing. This test goes
//! below that guard, to the store.

use std::time::Duration;

use tlog::merkle::{self, Tree};
use tlog::note::Checkpoint;
use tlog::signing::LogSigner;
use tlog::storage::postgres::PgStore;
use tlog::storage::{
    Batch, Lease, LogIdentity, LogReader, LogWriter, NewEntry, StoreError, StoredCheckpoint,
    StoredEntry,
};

use crate::helpers::create_database;

fn signed(signer: &LogSigner, size: u64, root: merkle::Hash) -> StoredCheckpoint {
    let checkpoint = Checkpoint {
        origin: "fencing - 1".into(),
        size,
        root,
    };
    let note = signer.sign_checkpoint(&checkpoint, "fencing").unwrap();
    StoredCheckpoint { size, root, note }
}

#[tokio::test]
async fn a_commit_under_a_lease_another_process_took_over_is_fenced_and_writes_nothing() {
    let url = create_database().await;
    let signer = LogSigner::from_pkcs8_pem(&LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
    let (old, new) = (
        PgStore::open(&url, 2).await.unwrap(),
        PgStore::open(&url, 2).await.unwrap(),
    );
    let identity = LogIdentity {
        tree_id: 1,
        public_key: signer.public_key_der().to_vec(),
    };
    old.init(&identity, &signed(&signer, 0, merkle::empty_root()))
        .await
        .unwrap();
    let ttl = Duration::from_millis(300);
    let old_lease = old.lease(ttl);
    assert!(old_lease.acquire().await.unwrap().is_some());

    // The old holder stalls past its lease; another process takes it over.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let new_lease = new.lease(ttl);
    assert!(
        new_lease.acquire().await.unwrap().is_some(),
        "an expired lease is taken over"
    );

    // The old holder, resumed, commits a batch without asking again.
    let body = b"{\"fenced\":true}".to_vec();
    let leaf = merkle::leaf_hash(&body);
    let mut tree = Tree::default();
    let staged = tree.stage(&[leaf]);
    let tiles = tlog::tiles::changed_tiles(&tree, &staged);
    let checkpoint = signed(&signer, 1, staged.root());
    tree.apply(staged);
    let batch = Batch {
        entries: vec![NewEntry {
            entry: StoredEntry {
                index: 0,
                body,
                integrated_time: 1_700_000_000,
                set: signer.sign_set("eA==", 1_700_000_000, 0).unwrap(),
            },
            leaf_hash: leaf,
            index_keys: Vec::new(),
        }],
        tiles,
    };
    let result = old.commit(0, &batch, &checkpoint).await;
    assert!(
        matches!(result, Err(StoreError::Fenced)),
        "a commit from a lease that was taken over must be fenced, got {result:?}"
    );
    let stored = new.checkpoint().await.unwrap().unwrap();
    assert_eq!(stored.size, 0, "nothing was written");
    assert_eq!(new.entry(0).await.unwrap(), None);

    // The new holder commits the same size.
    new.commit(0, &batch, &checkpoint).await.unwrap();
    assert_eq!(new.checkpoint().await.unwrap().unwrap().size, 1);
}
