//! The monitor's memory between polls and runs: `monitor-state.json` in
//! `monitor.state_dir`, replaced atomically (write, fsync, rename).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "monitor-state.json";

/// What the monitor has verified so far.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// The last checkpoint verified consistent with every one before it,
    /// as the signed note text.
    pub checkpoint: String,
    /// The global index of the first entry of that checkpoint's shard (0
    /// for a log that was never rotated, and in states written before
    /// shards were followed).
    #[serde(default)]
    pub index_offset: u64,
    /// Entries below this global index have had their identities checked.
    pub next_index: u64,
    /// Unix seconds when the monitor last saw the tree grow (or first saw it).
    pub grew_at: i64,
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file in `dir`.
    #[must_use]
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join(STATE_FILE),
        }
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state, `None` before the first verified checkpoint.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed: the monitor must not
    /// silently start over, which would forget the checkpoint it vouches for.
    pub fn load(&self) -> std::io::Result<Option<State>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                std::io::Error::other(format!(
                    "{} is not a monitor state: {e}",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the stored state.
    ///
    /// # Errors
    /// Writing, syncing or renaming fails.
    pub fn store(&self, state: &State) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}
