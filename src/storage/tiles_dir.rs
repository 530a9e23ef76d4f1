//! A Rekor v2 log's tiles directory (`tlog export --v2`), served read-only
//! by the replica: only the files its verification read, and each only
//! while its bytes are the ones verified (their SHA-256 is kept, 32 bytes
//! per file: about 0.25 byte per entry, so 25 MB at 100M entries). A file
//! changed after the check is refused, not served. Bytes read and checked
//! are kept in a cache bounded in bytes, so that hot tiles are neither read
//! nor hashed again.
//!
//! The digests can be kept beside the replica's high-water mark
//! ([`encode_digests`]), bound to the checkpoint they were verified under,
//! so that a restart on the same directory serves it at once instead of
//! re-auditing every entry: every file is still checked when it is read.

use std::collections::HashMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::StoreError;

/// The digests of the files a verification read, by their path below the
/// directory (`tile/0/000`, `tile/entries/001.p/7`, …).
pub type Digests = HashMap<String, [u8; 32]>;

/// First word of a digests file ([`encode_digests`]).
const DIGESTS_MAGIC: &str = "tlog-v2-tiles-digests";

/// The digests of a directory verified under the checkpoint note
/// `checkpoint`, as text: a line `tlog-v2-tiles-digests <SHA-256 of the
/// note>`, then one `<SHA-256>  <name>` line per file, sorted (the lines
/// `sha256sum` writes, so `tail -n +2 | sha256sum -c` checks a directory
/// by hand).
#[must_use]
pub fn encode_digests(checkpoint: &str, digests: &Digests) -> Vec<u8> {
    use std::fmt::Write;
    let mut names: Vec<_> = digests.iter().collect();
    names.sort_unstable();
    let mut out = format!(
        "{DIGESTS_MAGIC} {}\n",
        hex::encode(Sha256::digest(checkpoint.as_bytes()))
    );
    for (name, digest) in names {
        let _ = writeln!(out, "{}  {name}", hex::encode(digest));
    }
    out.into_bytes()
}

/// The digests [`encode_digests`] wrote for the checkpoint note
/// `checkpoint`; `None` for digests of another checkpoint, or for text that
/// is not such a file.
#[must_use]
pub fn decode_digests(text: &[u8], checkpoint: &str) -> Option<Digests> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.lines();
    let bound = lines
        .next()?
        .strip_prefix(DIGESTS_MAGIC)?
        .strip_prefix(' ')?;
    if bound != hex::encode(Sha256::digest(checkpoint.as_bytes())) {
        return None;
    }
    let mut digests = Digests::new();
    for line in lines {
        let (digest, name) = line.split_once("  ")?;
        let digest: [u8; 32] = hex::decode(digest).ok()?.try_into().ok()?;
        if !name.starts_with("tile/") || name.split('/').any(|part| part == "..") {
            return None;
        }
        digests.insert(name.to_owned(), digest);
    }
    Some(digests)
}

/// A verified tiles directory.
pub struct TilesDir {
    dir: PathBuf,
    origin: String,
    checkpoint: String,
    digests: Digests,
    /// Files read and checked, by name.
    checked: quick_cache::sync::Cache<String, bytes::Bytes, BytesWeighter>,
}

impl std::fmt::Debug for TilesDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TilesDir")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .field("files", &self.digests.len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct BytesWeighter;

impl quick_cache::Weighter<String, bytes::Bytes> for BytesWeighter {
    fn weight(&self, name: &String, bytes: &bytes::Bytes) -> u64 {
        (name.len() + bytes.len() + 64) as u64
    }
}

/// Longest file served: an entry bundle of 256 entries of 65 535 bytes.
const MAX_FILE: u64 = 256 * (2 + 65_535);

impl TilesDir {
    /// The directory `dir` of the log `origin`, as verified: its signed
    /// `checkpoint` note and the digest of every tile and bundle read;
    /// files checked since are cached up to `cache_bytes`.
    #[must_use]
    pub fn new(
        dir: PathBuf,
        origin: String,
        checkpoint: String,
        digests: Digests,
        cache_bytes: u64,
    ) -> Self {
        // Items for the cache's sizing: full hash tiles of 8 KiB.
        let items = usize::try_from(cache_bytes / 8192)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            dir,
            origin,
            checkpoint,
            digests,
            checked: quick_cache::sync::Cache::with_weighter(items, cache_bytes, BytesWeighter),
        }
    }

    /// The log's origin.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verified checkpoint note, served from memory.
    #[must_use]
    pub fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    /// The bytes of `tile/<path>` when the verification read that file;
    /// `None` for any other path.
    ///
    /// # Errors
    /// `Corrupt` when the file no longer holds the verified bytes;
    /// `Unavailable` when it cannot be read.
    pub async fn read(&self, path: &str) -> Result<Option<bytes::Bytes>, StoreError> {
        let name = format!("tile/{path}");
        let Some(expected) = self.digests.get(&name).copied() else {
            return Ok(None);
        };
        if let Some(bytes) = self.checked.get(&name) {
            return Ok(Some(bytes));
        }
        let file = self.dir.join(&name);
        let key = name.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut bytes = Vec::new();
            std::fs::File::open(&file)?
                .take(MAX_FILE + 1)
                .read_to_end(&mut bytes)?;
            Ok::<_, std::io::Error>(bytes)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading task failed: {e}")))?
        .map_err(|e| StoreError::Unavailable(format!("couldn't read {name}: {e}")))?;
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != expected {
            return Err(StoreError::Corrupt(format!(
                "{name} changed since it was verified"
            )));
        }
        let bytes = bytes::Bytes::from(bytes);
        self.checked.insert(key, bytes.clone());
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests() -> Digests {
        [
            ("tile/0/000", 1u8),
            ("tile/entries/000.p/7", 2),
            ("tile/1/000.p/2", 3),
        ]
        .into_iter()
        .map(|(name, byte)| (name.to_owned(), [byte; 32]))
        .collect()
    }

    #[test]
    fn digests_come_back_only_for_the_checkpoint_they_were_written_for() {
        let text = encode_digests("log.test\n5\nroot\n", &digests());
        assert_eq!(
            decode_digests(&text, "log.test\n5\nroot\n"),
            Some(digests())
        );
        assert_eq!(decode_digests(&text, "log.test\n6\nroot\n"), None);
        let lines: Vec<_> = std::str::from_utf8(&text).unwrap().lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].ends_with("  tile/0/000"), "sorted: {lines:?}");
    }

    #[test]
    fn a_damaged_digests_file_is_not_used() {
        let checkpoint = "log.test\n5\nroot\n";
        let good = String::from_utf8(encode_digests(checkpoint, &digests())).unwrap();
        let damaged = [
            good.replacen("tlog-v2-tiles-digests", "tlog-v2-tiles", 1),
            good.replacen("  tile/0/000", " tile/0/000", 1),
            good.replacen("tile/0/000", "../0/000", 1),
            good.replacen("tile/0/000", "tile/../../etc", 1),
            good.replacen(&hex::encode([1u8; 32]), &hex::encode([1u8; 31]), 1),
        ];
        for text in damaged {
            assert_eq!(decode_digests(text.as_bytes(), checkpoint), None, "{text}");
        }
    }
}
