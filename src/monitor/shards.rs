//! A Rekor v1 log's shards as a client of `GET /api/v1/log` sees them: the
//! frozen shards (`inactiveShards`, oldest first), then the active one. Each
//! signed tree head is verified under one of the known keys, and each shard
//! gets the global index of its first entry: the sizes of the shards before
//! it, summed (Rekor's virtual index). An unsharded log is one shard at 0.

use super::client::{parse_hash, LogInfo};
use crate::note::Checkpoint;
use crate::signing::{LogKeys, LogVerifier};

/// One shard, verified.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Its tree ID as served, for `treeID=` on proof requests.
    pub tree_id: Option<String>,
    /// The global index of its first entry.
    pub offset: u64,
    /// Its signed tree head (note text): the final one of a frozen shard.
    pub note: String,
    /// What the note says.
    pub head: Checkpoint,
    /// The key that signed it, which signs the shard's SETs too.
    pub key: LogVerifier,
    /// Whether it is one of `inactiveShards`.
    pub frozen: bool,
}

impl Shard {
    /// One past the global index of its last entry.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.offset + self.head.size
    }
}

/// Why the shard list cannot be used: a head that does not verify or that
/// disagrees with the fields beside it, or two shards of one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError {
    /// What is wrong, for a person.
    pub message: String,
    /// The note at fault.
    pub note: String,
}

/// The shards of `info`, oldest first, the active one last.
///
/// # Errors
/// See [`LayoutError`].
pub fn layout(info: &LogInfo, keys: &LogKeys) -> Result<Vec<Shard>, LayoutError> {
    let inactive = info.inactive_shards.as_deref().unwrap_or_default();
    let frozen = inactive.iter().map(|s| {
        (
            s.signed_tree_head.as_str(),
            s.tree_size,
            s.root_hash.as_str(),
            s.tree_id.as_deref(),
            true,
        )
    });
    let active = std::iter::once((
        info.signed_tree_head.as_str(),
        info.tree_size,
        info.root_hash.as_str(),
        info.tree_id.as_deref(),
        false,
    ));
    let mut shards: Vec<Shard> = Vec::with_capacity(inactive.len() + 1);
    let mut offset = 0u64;
    for (note, size, root, tree_id, is_frozen) in frozen.chain(active) {
        let what = if is_frozen {
            "an inactive shard's signed tree head"
        } else {
            "the log's checkpoint"
        };
        let bad = |message: String| LayoutError {
            message,
            note: note.to_owned(),
        };
        let (head, key) = keys
            .verify_checkpoint(note)
            .map_err(|e| bad(format!("{what} does not verify under the key: {e}")))?;
        if head.size != size || parse_hash(root) != Some(head.root) {
            return Err(bad(format!(
                "/api/v1/log says size {size} root {root} for {what}, its signed note size {} root {}",
                head.size,
                hex::encode(head.root.0)
            )));
        }
        if shards.iter().any(|s| s.head.origin == head.origin) {
            return Err(bad(format!(
                "two shards sign as {:?}: a shard's tree ID must be its own",
                head.origin
            )));
        }
        let next = offset
            .checked_add(head.size)
            .ok_or_else(|| bad("the shards' sizes overflow the global index".to_owned()))?;
        shards.push(Shard {
            tree_id: tree_id.map(str::to_owned),
            offset,
            note: note.to_owned(),
            head,
            key: key.clone(),
            frozen: is_frozen,
        });
        offset = next;
    }
    Ok(shards)
}
