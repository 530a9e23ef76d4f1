//! Rekor v1 checkpoints (signed tree heads): the note text, its signature line,
//! parsing and verification. Spec: rekor-v1.md C-11, C-12.
//!
//! Pure: no I/O and no key handling. The format is written by hand rather
//! than with `signed_note`: Rekor's key hint is the first four bytes of
//! SHA-256 over the DER `SubjectPublicKeyInfo` (not the C2SP key ID), and
//! Rekor clients add rules of their own (exactly one blank line, origin
//! `<host> - <treeID>`, every signature under the trusted key) that are
//! simplest to enforce on the text directly.
//!
//! ```text
//! <origin>\n<size>\n<base64 root>\n        the note body: these bytes are signed
//! \n
//! — <name> <base64(key hint || DER signature)>\n
//! ```
//!
//! The cryptography lives behind [`NoteVerifier`], implemented by
//! `signing::LogVerifier`.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use sha2::{Digest as _, Sha256};

use crate::merkle::Hash;

/// The signature line prefix: U+2014 EM DASH and one space (C-11).
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// An unsigned tree head: `<origin>\n<size>\n<base64 root>\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// `<hostname> - <treeID>`.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

/// Errors from parsing or verifying a signed checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// The text is not a well-formed checkpoint note.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No signature verified under the given key.
    #[error("checkpoint signature does not verify")]
    BadSignature,
}

/// Shorthand for a `Malformed` error.
fn malformed(why: &str) -> NoteError {
    NoteError::Malformed(why.to_owned())
}

impl Checkpoint {
    /// The exact bytes that are signed (C-11).
    #[must_use]
    pub fn body(&self) -> String {
        let root = BASE64_STANDARD.encode(self.root.0);
        format!("{}\n{}\n{root}\n", self.origin, self.size)
    }

    /// The Rekor v1 origin line, `<hostname> - <treeID>` (C-11).
    #[must_use]
    pub fn rekor_origin(hostname: &str, tree_id: u64) -> String {
        format!("{hostname} - {tree_id}")
    }

    /// Parses a note body: exactly three lines, each ending in `\n`.
    fn parse_body(body: &str) -> Result<Self, NoteError> {
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or_else(|| malformed("note body must end with a newline"))?
            .split('\n')
            .collect();
        let [origin, size, root] = lines[..] else {
            return Err(malformed("note body must have exactly three lines"));
        };
        if !is_rekor_origin(origin) {
            return Err(malformed("origin must look like `<hostname> - <treeID>`"));
        }
        let size = parse_size(size).ok_or_else(|| malformed("bad tree size"))?;
        let root = BASE64_STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| malformed("root must be 32 bytes in standard base64"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root: Hash(root),
        })
    }
}

/// C-12: sigstore-go treats a checkpoint as Rekor v1 only if its origin
/// matches `.* - [0-9]+$`.
fn is_rekor_origin(origin: &str) -> bool {
    origin
        .rsplit_once(" - ")
        .is_some_and(|(_, id)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// A decimal tree size, no sign, no leading zeros (C2SP tlog-checkpoint).
fn parse_size(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// Whether `name` can stand in a signature line: non-empty and free of
/// whitespace, since clients split the line on spaces (C-12).
#[must_use]
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_whitespace)
}

/// Rekor's key hint: the first four bytes of `SHA256(DER SPKI)`, i.e. of the
/// log ID (C-11). Not the C2SP note key ID.
#[must_use]
pub fn key_hint(spki_der: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(spki_der);
    [digest[0], digest[1], digest[2], digest[3]]
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Signer name (the log's hostname).
    pub name: String,
    /// First four bytes of the signer's log ID.
    pub key_hint: [u8; 4],
    /// DER ECDSA signature over the note body.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line as it appears in the note, `— <name> <base64>\n`.
    #[must_use]
    pub fn line(&self) -> String {
        let mut blob = Vec::with_capacity(4 + self.signature.len());
        blob.extend_from_slice(&self.key_hint);
        blob.extend_from_slice(&self.signature);
        let blob = BASE64_STANDARD.encode(blob);
        format!("{SIGNATURE_PREFIX}{} {blob}\n", self.name)
    }

    /// Parses one line, without its trailing newline.
    fn parse(line: &str) -> Result<Self, NoteError> {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or_else(|| malformed("signature line must start with an em dash and a space"))?;
        let (name, blob) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("signature line needs a name and a signature"))?;
        if !is_valid_name(name) {
            return Err(malformed(
                "signature name must be non-empty, without spaces",
            ));
        }
        let blob = BASE64_STANDARD
            .decode(blob)
            .map_err(|_| malformed("signature must be standard base64"))?;
        if blob.len() <= 4 {
            return Err(malformed("signature too short"));
        }
        let (hint, signature) = blob.split_at(4);
        Ok(Self {
            name: name.to_owned(),
            key_hint: hint.try_into().expect("split at 4"),
            signature: signature.to_vec(),
        })
    }
}

/// Checks signatures over note bodies: a public key and its Rekor key hint.
pub trait NoteVerifier {
    /// The key hint signatures by this key carry.
    fn key_hint(&self) -> [u8; 4];
    /// Whether `signature` is valid for `message` under this key.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// A checkpoint with its signature lines, as parsed from text.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCheckpoint {
    /// The signed tree head.
    pub checkpoint: Checkpoint,
    /// Signature lines, in order; at least one.
    pub signatures: Vec<NoteSignature>,
}

impl SignedCheckpoint {
    /// Parses a signed Rekor v1 checkpoint strictly (C-11, C-12).
    ///
    /// # Errors
    /// `NoteError::Malformed` unless the text has exactly one blank line
    /// (sigstore-python), a three-line body with a `<host> - <treeID>`
    /// origin, a canonical decimal size and a 32-byte base64 root, and one
    /// or more well-formed signature lines each ending in `\n`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut blank_lines = text.match_indices("\n\n");
        let (split, _) = blank_lines
            .next()
            .ok_or_else(|| malformed("missing the blank line before signatures"))?;
        if blank_lines.next().is_some() {
            return Err(malformed("more than one blank line"));
        }
        let (body, signatures) = (&text[..=split], &text[split + 2..]);
        let checkpoint = Checkpoint::parse_body(body)?;
        let signatures = signatures
            .strip_suffix('\n')
            .ok_or_else(|| malformed("signatures must end with a newline"))?
            .split('\n')
            .map(NoteSignature::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            checkpoint,
            signatures,
        })
    }

    /// The full note text: body, blank line, signature lines.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut text = self.checkpoint.body();
        text.push('\n');
        for signature in &self.signatures {
            text.push_str(&signature.line());
        }
        text
    }

    /// Checks the signatures the way rekor's and sigstore-go's
    /// `SignedNote.Verify` do: every line must carry `verifier`'s key hint
    /// and verify under it.
    ///
    /// # Errors
    /// `NoteError::BadSignature` if any line has another key hint or does
    /// not verify, or there are no lines.
    pub fn verify(&self, verifier: &impl NoteVerifier) -> Result<(), NoteError> {
        let body = self.checkpoint.body();
        let hint = verifier.key_hint();
        let all_valid = self
            .signatures
            .iter()
            .all(|s| s.key_hint == hint && verifier.verify(body.as_bytes(), &s.signature));
        if all_valid && !self.signatures.is_empty() {
            Ok(())
        } else {
            Err(NoteError::BadSignature)
        }
    }
}

/// The whole signed note text for one signature (C-11). `name` must pass
/// [`is_valid_name`]; the log checks its configured hostname at start-up.
#[must_use]
pub fn format_signed(
    checkpoint: &Checkpoint,
    name: &str,
    key_hint: [u8; 4],
    signature: Vec<u8>,
) -> String {
    debug_assert!(is_valid_name(name), "invalid signer name {name:?}");
    SignedCheckpoint {
        checkpoint: checkpoint.clone(),
        signatures: vec![NoteSignature {
            name: name.to_owned(),
            key_hint,
            signature,
        }],
    }
    .to_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// V-01 (e): the checkpoint a real Rekor v1 log returned (rekor-v1.md).
    const V01_CHECKPOINT: &str = "rekor-00001-deployment-56bf7777c9-jds5x - 6364419738405537866\n4\nuZYUY33ENx3NVSOphL2yVZLM+fjGXvOvRoQ15T82jp8=\n\n\u{2014} rekor-00001-deployment-56bf7777c9-jds5x 9vs1fjBFAiBU8kwsoJjjEntsK485B35Sa4xhVryfMnnsv+V3fjujFgIhAOe8Okg1uwIH0no5NG3YvR57Fq0rwdxTxLqrsj2Ox1aj\n";
    const V01_ROOT: &str = "b99614637dc4371dcd5523a984bdb25592ccf9f8c65ef3af468435e53f368e9f";
    /// V-00: the log's DER SPKI.
    const V00_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200049cfc9e54c2d158f250a421dc51d1b8d64fa82624048d7e2e1925fbba33c7ec8bf9cd00f755888787243fa0c26f735bf1fb6664d8305c06137d213d1e66307645";

    /// A stand-in for ECDSA: a "signature" is SHA-256 of key || message.
    struct FakeKey(u8);

    impl FakeKey {
        fn sign(&self, message: &[u8]) -> Vec<u8> {
            Sha256::new()
                .chain_update([self.0])
                .chain_update(message)
                .finalize()
                .to_vec()
        }
    }

    impl NoteVerifier for FakeKey {
        fn key_hint(&self) -> [u8; 4] {
            [self.0; 4]
        }
        fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            self.sign(message) == signature
        }
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: Checkpoint::rekor_origin("rekor.example.com", 42),
            size: 7,
            root: Hash([9; 32]),
        }
    }

    fn signed_by(key: &FakeKey, cp: &Checkpoint) -> String {
        format_signed(
            cp,
            "rekor.example.com",
            key.key_hint(),
            key.sign(cp.body().as_bytes()),
        )
    }

    #[test]
    fn body_is_origin_size_and_base64_root() {
        assert_eq!(
            checkpoint().body(),
            "rekor.example.com - 42\n7\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n"
        );
    }

    #[test]
    fn rekor_v01_checkpoint_parses_with_its_key_hint_and_root() {
        let signed = SignedCheckpoint::parse(V01_CHECKPOINT).unwrap();
        let cp = &signed.checkpoint;
        assert_eq!(
            cp.body(),
            "rekor-00001-deployment-56bf7777c9-jds5x - 6364419738405537866\n4\nuZYUY33ENx3NVSOphL2yVZLM+fjGXvOvRoQ15T82jp8=\n"
        );
        assert_eq!(cp.size, 4);
        assert_eq!(hex::encode(cp.root.0), V01_ROOT);
        assert_eq!(signed.signatures.len(), 1);
        let signature = &signed.signatures[0];
        assert_eq!(signature.name, "rekor-00001-deployment-56bf7777c9-jds5x");
        assert_eq!(
            signature.key_hint,
            key_hint(&hex::decode(V00_SPKI).unwrap())
        );
        assert_eq!(hex::encode(signature.key_hint), "f6fb357e");
        assert_eq!(
            signed.to_text(),
            V01_CHECKPOINT,
            "re-serialises byte for byte"
        );
    }

    #[test]
    fn signed_note_round_trips_and_verifies() {
        let key = FakeKey(1);
        let text = signed_by(&key, &checkpoint());
        assert_eq!(text.matches("\n\n").count(), 1);
        assert!(text.contains("\n\n\u{2014} rekor.example.com "));
        let signed = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(signed.checkpoint, checkpoint());
        signed.verify(&key).unwrap();
        assert_eq!(signed.to_text(), text);
    }

    #[test]
    fn signatures_under_another_key_or_hint_do_not_verify() {
        let (key, other) = (FakeKey(1), FakeKey(2));
        let signed = SignedCheckpoint::parse(&signed_by(&other, &checkpoint())).unwrap();
        assert!(matches!(signed.verify(&key), Err(NoteError::BadSignature)));

        // Our key hint, but someone else's signature.
        let mut forged = signed.clone();
        forged.signatures[0].key_hint = key.key_hint();
        assert!(matches!(forged.verify(&key), Err(NoteError::BadSignature)));

        // A valid signature plus a foreign one: rekor rejects the note.
        let mut both = SignedCheckpoint::parse(&signed_by(&key, &checkpoint())).unwrap();
        both.verify(&key).unwrap();
        both.signatures.push(signed.signatures[0].clone());
        let both = SignedCheckpoint::parse(&both.to_text()).unwrap();
        assert!(matches!(both.verify(&key), Err(NoteError::BadSignature)));

        // A signature over a different body.
        let mut moved = SignedCheckpoint::parse(&signed_by(&key, &checkpoint())).unwrap();
        moved.checkpoint.size += 1;
        assert!(matches!(moved.verify(&key), Err(NoteError::BadSignature)));
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let good = signed_by(&FakeKey(1), &checkpoint());
        assert!(SignedCheckpoint::parse(&good).is_ok());
        let (body, sig) = good.split_once("\n\n").unwrap();
        let sig_line = sig.trim_end_matches('\n');
        let root = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
        let cases = [
            ("missing blank line", format!("{body}\n{sig}")),
            ("two blank lines", format!("{body}\n\n\n{sig}")),
            (
                "blank line in body",
                format!("rekor.example.com - 42\n\n7\n{root}\n\n{sig}"),
            ),
            ("no signatures", format!("{body}\n\n")),
            ("no final newline", format!("{body}\n\n{sig_line}")),
            ("extra body line", format!("{body}\nTimestamp: 1\n\n{sig}")),
            (
                "two-line body",
                format!("rekor.example.com - 42\n7\n\n{sig}"),
            ),
            (
                "origin without tree id",
                format!("rekor.example.com\n7\n{root}\n\n{sig}"),
            ),
            (
                "origin with text id",
                format!("rekor - x1\n7\n{root}\n\n{sig}"),
            ),
            ("empty origin", format!("\n7\n{root}\n\n{sig}")),
            (
                "leading zero size",
                format!("rekor - 42\n07\n{root}\n\n{sig}"),
            ),
            ("signed size", format!("rekor - 42\n+7\n{root}\n\n{sig}")),
            ("negative size", format!("rekor - 42\n-7\n{root}\n\n{sig}")),
            (
                "bad root base64",
                format!("rekor - 42\n7\nnot base64!\n\n{sig}"),
            ),
            ("short root", format!("rekor - 42\n7\nAAAA\n\n{sig}")),
            (
                "root without padding",
                format!("rekor - 42\n7\n{}\n\n{sig}", &root[..43]),
            ),
            (
                "hyphen not em dash",
                format!("{body}\n\n{}", sig.replacen('\u{2014}', "-", 1)),
            ),
            (
                "two spaces after dash",
                format!("{body}\n\n{}", sig.replacen(' ', "  ", 1)),
            ),
            (
                "name with tab",
                format!("{body}\n\n{}", sig.replacen("rekor.", "rekor\t", 1)),
            ),
            (
                "no signature blob",
                format!("{body}\n\n\u{2014} rekor.example.com\n"),
            ),
            (
                "bad signature base64",
                format!("{body}\n\n\u{2014} rekor.example.com ***\n"),
            ),
            (
                "signature only a hint",
                format!("{body}\n\n\u{2014} rekor.example.com AQEBAQ==\n"),
            ),
            ("trailing space", format!("{body}\n\n{sig_line} \n")),
            ("crlf", good.replace('\n', "\r\n")),
        ];
        for (why, text) in cases {
            assert!(
                matches!(SignedCheckpoint::parse(&text), Err(NoteError::Malformed(_))),
                "{why}: accepted {text:?}"
            );
        }
    }

    #[test]
    fn names_must_be_non_empty_without_whitespace() {
        assert!(is_valid_name("rekor.example.com"));
        for name in ["", "a b", "a\tb", "a\u{a0}b", "x\n"] {
            assert!(!is_valid_name(name), "{name:?}");
        }
    }
}
