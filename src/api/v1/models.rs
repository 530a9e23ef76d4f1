//! Rekor v1 wire models, hand-written. Glossary (internal → wire):
//! leaf index → `logIndex`; tree size → `treeSize`; root hash → `rootHash`;
//! signed checkpoint → `signedTreeHead` / `inclusionProof.checkpoint`;
//! leaf hash → the UUID; tree ID ‖ leaf hash → the entry ID.

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::Serialize;

use crate::log::{LogInfo, Proof};
use crate::merkle::Hash;
use crate::storage::StoredEntry;

/// The 80-hex entry ID: 16-hex tree ID then the 64-hex leaf hash (C-03).
#[must_use]
pub fn entry_id(tree_id: i64, leaf: &Hash) -> String {
    format!("{tree_id:016x}{}", hex::encode(leaf.0))
}

/// A parsed `entryUUID`: 64 hex (leaf hash only) or 80 hex (tree ID + leaf hash).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntryUuid {
    /// Tree ID prefix, when the 80-hex form was given.
    pub tree_id: Option<u64>,
    /// The leaf hash.
    pub leaf: Hash,
}

/// The pattern `entryUUID` must match (E-06).
pub const ENTRY_UUID_PATTERN: &str = "^([0-9a-fA-F]{64}|[0-9a-fA-F]{80})$";

impl EntryUuid {
    /// Parses either form, any case. `None` if it doesn't match [`ENTRY_UUID_PATTERN`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (tree, leaf) = match s.len() {
            64 => (None, s),
            80 => (Some(u64::from_str_radix(&s[..16], 16).ok()?), &s[16..]),
            _ => return None,
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(leaf, &mut bytes).ok()?;
        Some(Self {
            tree_id: tree,
            leaf: Hash(bytes),
        })
    }

    /// Whether this ID can name an entry of the tree `tree_id`.
    #[must_use]
    pub fn is_for_tree(&self, tree_id: i64) -> bool {
        self.tree_id
            .is_none_or(|t| i64::try_from(t).is_ok_and(|t| t == tree_id))
    }
}

/// `GET /api/v1/log` (E-01).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogInfoBody<'a> {
    /// The frozen shards, oldest first (`null` when there are none, as
    /// Rekor's nil slice).
    pub inactive_shards: Option<Vec<InactiveShard<'a>>>,
    /// Hex root of the current tree.
    pub root_hash: String,
    /// The signed checkpoint.
    pub signed_tree_head: &'a str,
    /// Decimal tree ID, as a string.
    #[serde(rename = "treeID")]
    pub tree_id: String,
    /// Current tree size.
    pub tree_size: u64,
}

/// One of `inactiveShards` in `GET /api/v1/log`: a frozen shard's final
/// tree head (Rekor's `InactiveShardLogInfo`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InactiveShard<'a> {
    /// Hex root of its final tree.
    pub root_hash: String,
    /// Its final signed checkpoint.
    pub signed_tree_head: &'a str,
    /// Decimal tree ID, as a string.
    #[serde(rename = "treeID")]
    pub tree_id: String,
    /// Its final tree size.
    pub tree_size: u64,
}

/// Appends the ConsistencyProof body of `GET /api/v1/log/proof` (E-03):
/// `{"hashes":[hex…],"rootHash":hex}`, `[]` when the sizes are equal. What
/// `serde_json` writes for the model, without a `String` per hash: auditors
/// poll this as often as clients fetch entries.
pub fn write_consistency_proof(out: &mut Vec<u8>, hashes: &[Hash], root: &Hash) {
    out.reserve(32 + (hashes.len() + 1) * 67);
    out.extend_from_slice(b"{\"hashes\":[");
    push_hex_list(out, hashes);
    out.extend_from_slice(b"],\"rootHash\":\"");
    push_hex(out, &root.0);
    out.extend_from_slice(b"\"}");
}

/// Appends the one-key LogEntry map for `entry` to `out`: the bytes
/// `serde_json` writes for the LogEntry models, without building them. This is
/// the read path's hot loop (a replica answers tens of thousands of these a
/// second), so it writes straight into one buffer: every value but the
/// checkpoint note is base64, hex or a number and needs no escaping.
pub fn write_log_entry(
    out: &mut Vec<u8>,
    info: &LogInfo,
    entry: &StoredEntry,
    leaf: &Hash,
    proof: &Proof,
) {
    let b64 = |n: usize| n.div_ceil(3) * 4;
    out.reserve(
        256 + info.log_id.len()
            + b64(entry.body.len())
            + b64(entry.set.len())
            + proof.checkpoint.note.len() * 2
            + proof.hashes.len() * 67,
    );
    out.extend_from_slice(b"{\"");
    push_hex(out, &info.tree_id.to_be_bytes());
    push_hex(out, &leaf.0);
    out.extend_from_slice(b"\":{\"body\":\"");
    push_base64(out, &entry.body);
    out.extend_from_slice(b"\",\"integratedTime\":");
    out.extend_from_slice(itoa::Buffer::new().format(entry.integrated_time).as_bytes());
    out.extend_from_slice(b",\"logID\":");
    serde_json::to_writer(&mut *out, &info.log_id).expect("writing to a Vec");
    // As Rekor: `logIndex` is global across shards (the SET signs it), the
    // proof's `logIndex` is the leaf's index in this shard's own tree.
    out.extend_from_slice(b",\"logIndex\":");
    let global = info.index_offset + entry.index;
    out.extend_from_slice(itoa::Buffer::new().format(global).as_bytes());
    out.extend_from_slice(b",\"verification\":{\"inclusionProof\":{\"checkpoint\":");
    serde_json::to_writer(&mut *out, &proof.checkpoint.note).expect("writing to a Vec");
    out.extend_from_slice(b",\"hashes\":[");
    push_hex_list(out, &proof.hashes);
    out.extend_from_slice(b"],\"logIndex\":");
    out.extend_from_slice(itoa::Buffer::new().format(entry.index).as_bytes());
    out.extend_from_slice(b",\"rootHash\":\"");
    push_hex(out, &proof.checkpoint.root.0);
    out.extend_from_slice(b"\",\"treeSize\":");
    out.extend_from_slice(itoa::Buffer::new().format(proof.checkpoint.size).as_bytes());
    out.extend_from_slice(b"},\"signedEntryTimestamp\":\"");
    push_base64(out, &entry.set);
    out.extend_from_slice(b"\"}}}");
}

/// Appends lowercase hex of `bytes`.
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + 2 * bytes.len(), 0);
    faster_hex::hex_encode(bytes, &mut out[start..]).expect("sized for the hex");
}

/// Appends `hashes` as comma-separated JSON strings of lowercase hex.
fn push_hex_list(out: &mut Vec<u8>, hashes: &[Hash]) {
    for (i, hash) in hashes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        push_hex(out, &hash.0);
        out.push(b'"');
    }
}

/// Appends standard, padded base64 of `bytes`.
fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = BASE64_STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("sized for padded base64");
    out.truncate(start + written);
}

/// The LogEntry wire model (L-01) as serde structs: the reference that
/// [`write_log_entry`]'s bytes are tested against.
#[cfg(test)]
mod reference {
    use std::collections::BTreeMap;

    use base64::prelude::{Engine, BASE64_STANDARD};
    use serde::Serialize;

    use super::entry_id;
    use crate::log::{LogInfo, Proof};
    use crate::merkle::Hash;
    use crate::storage::StoredEntry;

    /// `GET /api/v1/log/proof` (E-03).
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ConsistencyProofBody {
        /// Proof hashes, hex; `[]` when the sizes are equal.
        pub hashes: Vec<String>,
        /// Root of the latest tree head.
        pub root_hash: String,
    }

    /// The value of a LogEntry map (L-01). Fields are in alphabetical order.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct LogEntryBody<'a> {
        /// Base64 of the canonical body.
        pub body: String,
        /// Unix seconds.
        pub integrated_time: i64,
        /// Hex log ID.
        #[serde(rename = "logID")]
        pub log_id: &'a str,
        /// Global index: the shard's offset plus its leaf index.
        pub log_index: u64,
        /// Proof and SET.
        pub verification: Verification<'a>,
    }

    /// `verification` of a LogEntry.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Verification<'a> {
        /// Inclusion proof against the latest checkpoint.
        pub inclusion_proof: InclusionProof<'a>,
        /// Base64 DER SET.
        pub signed_entry_timestamp: String,
    }

    /// `verification.inclusionProof` (C-13).
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InclusionProof<'a> {
        /// The checkpoint the proof is against.
        pub checkpoint: &'a str,
        /// Audit path, hex, leaf to root; `[]` for a tree of one.
        pub hashes: Vec<String>,
        /// Leaf index in this tree.
        pub log_index: u64,
        /// Hex root at `treeSize`.
        pub root_hash: String,
        /// Tree size of the proof.
        pub tree_size: u64,
    }

    /// A LogEntry response: exactly one key, the entry ID.
    pub type LogEntryMap<'a> = BTreeMap<String, LogEntryBody<'a>>;

    /// Builds the one-key LogEntry map for `entry` as serde models.
    pub fn log_entry<'a>(
        info: &'a LogInfo,
        entry: &StoredEntry,
        leaf: &Hash,
        proof: &'a Proof,
    ) -> (String, LogEntryBody<'a>) {
        let id = entry_id(info.tree_id, leaf);
        let body = LogEntryBody {
            body: BASE64_STANDARD.encode(&entry.body),
            integrated_time: entry.integrated_time,
            log_id: &info.log_id,
            log_index: info.index_offset + entry.index,
            verification: Verification {
                inclusion_proof: InclusionProof {
                    checkpoint: &proof.checkpoint.note,
                    hashes: proof.hashes.iter().map(|h| hex::encode(h.0)).collect(),
                    log_index: entry.index,
                    root_hash: hex::encode(proof.checkpoint.root.0),
                    tree_size: proof.checkpoint.size,
                },
                signed_entry_timestamp: BASE64_STANDARD.encode(&entry.set),
            },
        };
        (id, body)
    }
}

#[cfg(test)]
mod tests {
    use super::reference::{log_entry, LogEntryMap};
    use super::*;

    /// `write_log_entry` writes exactly what serde writes for the models,
    /// for proofs of every length, empty and odd-length bytes, and a note
    /// that needs escaping.
    #[test]
    fn hand_written_entry_json_is_byte_identical_to_the_serde_models() {
        use std::sync::Arc;

        use crate::storage::StoredCheckpoint;

        let info = LogInfo {
            tree_id: 0x0123_4567_89ab_cdef,
            hostname: "tlog.example".into(),
            origin: "tlog.example - 81985529216486895".into(),
            log_id: "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d".into(),
            public_key_pem: String::new(),
            index_offset: 1_000_003,
        };
        let note = "tlog.example - 81985529216486895\n7\nq83vEjRWeJA=\n\n\u{2014} tlog.example \"quoted\" \\ tab\t\u{1}\n";
        for (i, hashes) in [0usize, 1, 2, 5, 20].into_iter().enumerate() {
            let checkpoint = Arc::new(StoredCheckpoint {
                size: 7 + i as u64 * 1_000_000_007,
                root: Hash([i as u8 + 1; 32]),
                note: note.into(),
            });
            let proof = Proof {
                checkpoint,
                hashes: (0..hashes).map(|h| Hash([(h * 17) as u8; 32])).collect(),
            };
            for (body, set) in [
                (vec![], vec![]),
                (vec![0xff], vec![1, 2]),
                (b"{\"a\":1}".to_vec(), vec![9; 71]),
            ] {
                let entry = StoredEntry {
                    index: i as u64 * 12_345,
                    body,
                    integrated_time: 1_700_000_000 + i as i64,
                    set,
                };
                let leaf = Hash([0xa5; 32]);
                let (id, model) = log_entry(&info, &entry, &leaf, &proof);
                let map: LogEntryMap = [(id, model)].into_iter().collect();
                let expected = serde_json::to_vec(&map).unwrap();
                let mut written = b"prefix".to_vec();
                write_log_entry(&mut written, &info, &entry, &leaf, &proof);
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    format!("prefix{}", String::from_utf8(expected).unwrap())
                );
            }
        }
    }

    /// `write_consistency_proof` writes exactly what serde writes for the
    /// model, for proofs of every length.
    #[test]
    fn hand_written_proof_json_is_byte_identical_to_the_serde_model() {
        use super::reference::ConsistencyProofBody;

        for n in [0usize, 1, 2, 7, 40] {
            let hashes: Vec<Hash> = (0..n).map(|h| Hash([(h * 29 + 3) as u8; 32])).collect();
            let root = Hash([n as u8 ^ 0x5c; 32]);
            let expected = serde_json::to_vec(&ConsistencyProofBody {
                hashes: hashes.iter().map(|h| hex::encode(h.0)).collect(),
                root_hash: hex::encode(root.0),
            })
            .unwrap();
            let mut written = b"prefix".to_vec();
            write_consistency_proof(&mut written, &hashes, &root);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                format!("prefix{}", String::from_utf8(expected).unwrap())
            );
        }
    }

    #[test]
    fn entry_id_pads_tree_id_to_sixteen_hex_digits() {
        // V-01: tree 6364419738405537866 is 5852f6082d25884a.
        let leaf =
            EntryUuid::parse("d18a0b811c7277620ff2f259b9f868681a60784b9e1acfca1e1e560cee6a6e06")
                .unwrap()
                .leaf;
        assert_eq!(
            entry_id(6_364_419_738_405_537_866, &leaf),
            "5852f6082d25884ad18a0b811c7277620ff2f259b9f868681a60784b9e1acfca1e1e560cee6a6e06"
        );
        assert!(entry_id(1, &leaf).starts_with("0000000000000001d18a"));
    }

    #[test]
    fn entry_uuid_accepts_64_and_80_hex_in_any_case() {
        let short = "D18A0B811C7277620FF2F259B9F868681A60784B9E1ACFCA1E1E560CEE6A6E06";
        let parsed = EntryUuid::parse(short).unwrap();
        assert_eq!(parsed.tree_id, None);
        let long = format!("5852f6082d25884a{short}");
        let parsed_long = EntryUuid::parse(&long).unwrap();
        assert_eq!(parsed_long.tree_id, Some(0x5852_f608_2d25_884a));
        assert_eq!(parsed_long.leaf, parsed.leaf);
        assert!(parsed_long.is_for_tree(6_364_419_738_405_537_866));
        assert!(!parsed_long.is_for_tree(7));
    }

    #[test]
    fn entry_uuid_rejects_other_lengths_and_non_hex() {
        for bad in ["", "abc", &"0".repeat(63), &"0".repeat(81), &"g".repeat(64)] {
            assert!(EntryUuid::parse(bad).is_none(), "{bad}");
        }
    }
}
