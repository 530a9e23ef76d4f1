//! Time-sharded v1 logs (issue 14, item 5), as Rekor's `pkg/sharding`: the
//! active shard takes entries, the frozen ones are served read-only, and the
//! global `logIndex` of an entry is the sizes of the shards before its own,
//! summed, plus its index in its shard's tree (Rekor's virtual index).

use std::sync::Arc;

use crate::api::ApiState;
use crate::log::Log;
use crate::storage::Store;

/// The shard holding global index `global`, and the index in its tree;
/// `None` past the end of the active shard.
#[must_use]
pub fn resolve_index(state: &ApiState, global: u64) -> Option<(Arc<Log<Store>>, u64)> {
    for shard in state.frozen_shards() {
        let local = global.checked_sub(shard.info().index_offset)?;
        if local < shard.checkpoint().size {
            return Some((Arc::clone(shard), local));
        }
    }
    let active = state.log();
    let local = global.checked_sub(active.info().index_offset)?;
    (local < active.checkpoint().size).then_some((active, local))
}

/// The shard of tree `tree_id`, active or frozen.
#[must_use]
pub fn by_tree(state: &ApiState, tree_id: i64) -> Option<Arc<Log<Store>>> {
    let active = state.log();
    if active.info().tree_id == tree_id {
        return Some(active);
    }
    state
        .frozen_shards()
        .iter()
        .find(|shard| shard.info().tree_id == tree_id)
        .cloned()
}

/// Every shard in the order Rekor looks a plain 64-hex UUID up: the active
/// one, then the frozen ones, oldest first.
#[must_use]
pub fn all(state: &ApiState) -> Vec<Arc<Log<Store>>> {
    let mut shards = Vec::with_capacity(1 + state.frozen_shards().len());
    shards.push(state.log());
    shards.extend(state.frozen_shards().iter().cloned());
    shards
}

/// The shards an entry ID may name: the one of its tree ID for the 80-hex
/// form (none if no shard has it), every shard for a plain UUID.
#[must_use]
pub fn for_id(state: &ApiState, tree_id: Option<u64>) -> Vec<Arc<Log<Store>>> {
    match tree_id {
        None => all(state),
        Some(tree) => i64::try_from(tree)
            .ok()
            .and_then(|tree| by_tree(state, tree))
            .into_iter()
            .collect(),
    }
}
