//! Signed notes and checkpoints, in two layers.
//!
//! - [`c2sp`]: the C2SP formats every tlog-tiles log and witness speaks
//!   (c2sp.org/signed-note, tlog-checkpoint, tlog-cosignature): notes with
//!   several signatures, each under a key ID derived from its name and key,
//!   checkpoint text with extension lines, and witness cosignatures. A Rekor
//!   v2 log signs with these (rekor-v2-tiles.md N-, K-, X- items).
//! - [`v1`]: the Rekor v1 profile: origin `<host> - <treeID>`, the key hint
//!   over the DER SPKI, exactly one signature under the log's key
//!   (rekor-v1.md C-11, C-12). The SET is signed in `signing`.
//!
//! Pure: no I/O. The v1 items are re-exported here, where every v1 caller
//! has always found them.

pub mod c2sp;
pub mod v1;

pub use v1::{
    format_signed, is_valid_name, key_hint, Checkpoint, NoteError, NoteSignature, NoteVerifier,
    SignedCheckpoint,
};
