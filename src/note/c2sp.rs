//! C2SP signed notes, checkpoints and cosignatures (c2sp.org/signed-note,
//! tlog-checkpoint, tlog-cosignature), as a Rekor v2 log writes them.
//! Spec: rekor-v2-tiles.md K-01…K-03, N-01…N-04, X-04.
//!
//! The note framing (several signature lines, each `— <name>
//! base64(key ID || signature)`) is the `signed_note` crate's; this module
//! adds what that crate leaves to its callers: the checkpoint text, the
//! Ed25519 log key with its 32-byte log ID, and witness cosignatures.
//!
//! Pure: keys come in as bytes; nothing here reads files or the clock.
//! Checkpoints are signed by the log first, with cosignatures after it and
//! no "grease" lines, because sigstore-python takes the first line whose
//! key ID matches and fails rather than trying the next (N-03).

use base64::prelude::{Engine as _, BASE64_STANDARD};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};
use signed_note::{Note, Signature};

use crate::merkle::Hash;

/// Signature type byte of an Ed25519 note key (C2SP signed-note).
const TYPE_ED25519: u8 = 0x01;
/// Signature type byte of an Ed25519 cosignature/v1 key (C2SP tlog-cosignature).
const TYPE_COSIGNATURE_V1: u8 = 0x04;

/// Errors from building, parsing or verifying C2SP notes.
#[derive(Debug, thiserror::Error)]
pub enum C2spError {
    /// The text is not a well-formed note or checkpoint.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// A signature that should verify does not.
    #[error("signature does not verify")]
    BadSignature,
}

fn malformed(why: &str) -> C2spError {
    C2spError::Malformed(why.to_owned())
}

/// Whether `name` may name a key and so be an origin: non-empty, and no
/// Unicode whitespace or `+` (K-01).
#[must_use]
pub fn is_valid_origin(name: &str) -> bool {
    signed_note::is_key_name_valid(name)
}

/// `SHA-256(name || "\n" || type || key)`: the hash whose first four bytes
/// are the key ID in a signature line (K-02, X-04).
fn key_hash(name: &str, key_type: u8, raw_key: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([key_type]);
    hasher.update(raw_key);
    hasher.finalize().into()
}

/// The checkpoint text of a C2SP log (N-01): origin, size, root, then
/// optional extension lines.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointText {
    /// The log's origin (K-01), also its key name.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
    /// Extension lines, each without its newline (NOT RECOMMENDED; N-01).
    pub extensions: Vec<String>,
}

impl CheckpointText {
    /// The note text: `<origin>\n<size>\n<base64 root>\n[extensions\n]`.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64_STANDARD.encode(self.root.0)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses note text: size in decimal without leading zeros, a standard
    /// base64 32-byte root, extension lines non-empty.
    ///
    /// # Errors
    /// `Malformed` naming the first line at fault.
    pub fn parse(text: &str) -> Result<Self, C2spError> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("text must end with a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed("a checkpoint has at least three lines"));
        };
        if origin.is_empty() {
            return Err(malformed("empty origin"));
        }
        let canonical = size == "0" || (!size.starts_with('0') && !size.is_empty());
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| canonical && size.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| malformed("size must be decimal without leading zeros"))?;
        let root: [u8; 32] = BASE64_STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| malformed("root must be 32 bytes of standard base64"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(malformed("empty extension line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root: Hash(root),
            extensions,
        })
    }
}

/// A log's Ed25519 note key (K-02). Built from the 32-byte seed, which the
/// caller reads from `v2.key_file`.
pub struct Ed25519NoteKey {
    name: String,
    key: SigningKey,
    key_hash: [u8; 32],
}

impl std::fmt::Debug for Ed25519NoteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Ed25519NoteKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Ed25519NoteKey {
    /// The key of origin `name` with this seed.
    ///
    /// # Errors
    /// `Malformed` if `name` is not a valid key name.
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, C2spError> {
        if !is_valid_origin(name) {
            return Err(malformed("the origin is not a valid key name"));
        }
        let key = SigningKey::from_bytes(seed);
        let key_hash = key_hash(name, TYPE_ED25519, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_hash,
        })
    }

    /// The key name: the log's origin.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-byte raw public key.
    #[must_use]
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// DER `SubjectPublicKeyInfo` of the public key (44 bytes), as the
    /// trusted root carries it (C-05).
    #[must_use]
    pub fn public_key_der(&self) -> Vec<u8> {
        ed25519_spki(&self.public_key())
    }

    /// The full 32-byte log ID: `SHA-256(origin || 0x0A || 0x01 || key)`
    /// (K-02), `logId.keyId` in entries and the trusted root.
    #[must_use]
    pub fn log_id(&self) -> [u8; 32] {
        self.key_hash
    }

    /// The verifier key string `<name>+<hex key ID>+<base64(0x01 || key)>`.
    #[must_use]
    pub fn vkey(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.name, &self.key.verifying_key())
    }

    /// Signs `checkpoint` and returns the signed note: the text, a blank
    /// line, then this key's signature line, and nothing else.
    ///
    /// # Errors
    /// `Malformed` if the checkpoint's origin is not this key's name.
    pub fn sign_checkpoint(&self, checkpoint: &CheckpointText) -> Result<String, C2spError> {
        if checkpoint.origin != self.name {
            return Err(malformed("a log signs only checkpoints of its own origin"));
        }
        let mut note = Note::new(checkpoint.to_text().as_bytes(), &[])
            .map_err(|e| C2spError::Malformed(e.to_string()))?;
        note.add_sigs(&[self])
            .map_err(|e| C2spError::Malformed(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|_| malformed("note is not UTF-8"))
    }
}

impl signed_note::Signer for Ed25519NoteKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        u32::from_be_bytes(self.key_hash[..4].try_into().expect("four bytes"))
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// DER SPKI of a raw Ed25519 public key: the fixed 12-byte RFC 8410 prefix.
#[must_use]
pub fn ed25519_spki(raw: &[u8; 32]) -> Vec<u8> {
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    [&PREFIX[..], raw].concat()
}

/// The raw Ed25519 key in a DER SPKI that [`ed25519_spki`] writes.
#[must_use]
pub fn ed25519_raw(spki: &[u8]) -> Option<[u8; 32]> {
    let raw: [u8; 32] = spki.get(12..)?.try_into().ok()?;
    (ed25519_spki(&raw) == spki).then_some(raw)
}

/// A v2 log's ID: the full key hash of its Ed25519 note key named
/// `origin` (K-02), whose first four bytes are its key ID.
#[must_use]
pub fn log_key_hash(origin: &str, raw_key: &[u8; 32]) -> [u8; 32] {
    key_hash(origin, TYPE_ED25519, raw_key)
}

/// Verifies a log's own signature on a checkpoint note: a line named
/// `origin` with the Ed25519 note key ID of `raw_key` (K-02) that verifies
/// over the text, whose origin line must be `origin`. Cosignature lines
/// beside it are not checked. Returns the checkpoint.
///
/// # Errors
/// `Malformed` for a note or checkpoint that does not parse or names
/// another origin; `BadSignature` without a valid line of this key.
pub fn verify_log_checkpoint(
    text: &str,
    origin: &str,
    raw_key: &[u8; 32],
) -> Result<CheckpointText, C2spError> {
    let note =
        Note::from_bytes(text.as_bytes()).map_err(|e| C2spError::Malformed(e.to_string()))?;
    let body = std::str::from_utf8(note.text()).map_err(|_| malformed("not UTF-8"))?;
    let checkpoint = CheckpointText::parse(body)?;
    if checkpoint.origin != origin {
        return Err(malformed("the checkpoint names another origin"));
    }
    let hash = key_hash(origin, TYPE_ED25519, raw_key);
    let vkey = format!(
        "{origin}+{}+{}",
        hex::encode(&hash[..4]),
        BASE64_STANDARD.encode([&[TYPE_ED25519][..], raw_key].concat())
    );
    let verifier = signed_note::StandardVerifier::new(&vkey)
        .map_err(|e| C2spError::Malformed(format!("the log key: {e}")))?;
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    note.verify(&list).map_err(|_| C2spError::BadSignature)?;
    Ok(checkpoint)
}

/// A signed note split into its text and signature lines (N-02), with the
/// `signed_note` crate's limits (1 MB, 100 signatures).
#[derive(Debug)]
pub struct SignedNote {
    note: Note,
}

impl SignedNote {
    /// Parses a signed note.
    ///
    /// # Errors
    /// `Malformed` for anything `signed_note` refuses.
    pub fn parse(text: &str) -> Result<Self, C2spError> {
        let note =
            Note::from_bytes(text.as_bytes()).map_err(|e| C2spError::Malformed(e.to_string()))?;
        Ok(Self { note })
    }

    /// The signed text.
    #[must_use]
    pub fn text(&self) -> &[u8] {
        self.note.text()
    }

    /// The signature lines, in order.
    #[must_use]
    pub fn signatures(&self) -> Vec<Signature> {
        // `signed_note` keeps them private; its own encoding round-trips.
        let encoded = self.note.to_bytes();
        let tail = &encoded[self.note.text().len() + 1..];
        tail.split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| Signature::from_bytes(line).ok())
            .collect()
    }

    /// Appends cosignature lines after the existing signatures, replacing an
    /// earlier line of the same key, and returns the note text.
    #[must_use]
    pub fn with_cosignatures(&self, lines: &[Signature]) -> String {
        let mut sigs: Vec<Signature> = self
            .signatures()
            .into_iter()
            .filter(|old| {
                !lines
                    .iter()
                    .any(|new| new.name() == old.name() && new.id() == old.id())
            })
            .collect();
        sigs.extend_from_slice(lines);
        let note = Note::new(self.note.text(), &sigs).expect("the text was already checked");
        String::from_utf8(note.to_bytes()).expect("notes are UTF-8")
    }
}

/// A witness's cosignature/v1 key: Ed25519, type 0x04.
#[derive(Debug, Clone)]
pub struct CosignatureVerifier {
    name: String,
    key: VerifyingKey,
    key_id: u32,
}

impl CosignatureVerifier {
    /// Parses a witness vkey `<name>+<hex key ID>+<base64(type || key)>`,
    /// checking that the key ID is the one the name, type and key give.
    /// Type 0x04 is a cosignature/v1 key; a type 0x01 (Ed25519 note) vkey
    /// is accepted too and re-keyed as 0x04, as Tessera's policy reader
    /// does: its cosignature lines carry the 0x04 key ID.
    ///
    /// # Errors
    /// `Malformed` for another format, type or key ID.
    pub fn from_vkey(vkey: &str) -> Result<Self, C2spError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a vkey is <name>+<id>+<key>"));
        };
        let bytes = BASE64_STANDARD
            .decode(key_b64)
            .map_err(|_| malformed("vkey key is not base64"))?;
        let (Some(&key_type @ (TYPE_COSIGNATURE_V1 | TYPE_ED25519)), Ok(raw)) = (
            bytes.first(),
            <[u8; 32]>::try_from(&bytes[1.min(bytes.len())..]),
        ) else {
            return Err(malformed("not an Ed25519 cosignature/v1 key"));
        };
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| malformed("bad Ed25519 key"))?;
        let id_of = |key_type| {
            let hash = key_hash(name, key_type, &raw);
            u32::from_be_bytes(hash[..4].try_into().expect("four bytes"))
        };
        let vkey_id = id_of(key_type);
        if !is_valid_origin(name) || id_hex.len() != 8 || id_hex != format!("{vkey_id:08x}") {
            return Err(malformed("vkey name or key ID does not match its key"));
        }
        let key_id = id_of(TYPE_COSIGNATURE_V1);
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// The witness's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID its cosignature lines carry.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Verifies one signature line over `checkpoint` (the note text): it
    /// must be this witness's (name and key ID) and verify. Returns its
    /// timestamp (Unix seconds), which the caller checks against its clock.
    ///
    /// # Errors
    /// `BadSignature` for another key's line or one that does not verify.
    pub fn verify_signature(&self, checkpoint: &str, sig: &Signature) -> Result<u64, C2spError> {
        if sig.name() != self.name || sig.id() != self.key_id {
            return Err(C2spError::BadSignature);
        }
        self.verify_line(checkpoint, sig.signature())
            .ok_or(C2spError::BadSignature)
    }

    /// Finds this witness's line among `note`'s signatures and verifies it
    /// over the checkpoint text; returns its timestamp (Unix seconds).
    ///
    /// # Errors
    /// `BadSignature` if the note has no valid line of this witness.
    pub fn verify(&self, note: &SignedNote) -> Result<u64, C2spError> {
        let text = std::str::from_utf8(note.text()).map_err(|_| malformed("not UTF-8"))?;
        note.signatures()
            .iter()
            .filter(|sig| sig.name() == self.name && sig.id() == self.key_id)
            .find_map(|sig| self.verify_line(text, sig.signature()))
            .ok_or(C2spError::BadSignature)
    }

    fn verify_line(&self, checkpoint: &str, sig: &[u8]) -> Option<u64> {
        let (time, sig) = sig.split_first_chunk::<8>()?;
        let time = u64::from_be_bytes(*time);
        let sig = ed25519_dalek::Signature::from_slice(sig).ok()?;
        let message = cosigned_message(time, checkpoint);
        self.key.verify(message.as_bytes(), &sig).ok()?;
        Some(time)
    }
}

/// What a cosignature/v1 signs: a header line, the time, then the
/// checkpoint text.
#[must_use]
pub fn cosigned_message(time: u64, checkpoint: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{checkpoint}")
}

/// Signs a cosignature/v1 line as a witness would; tests use it to stand
/// in for a witness's answer when no real witness is at hand.
#[must_use]
pub fn cosign(name: &str, seed: &[u8; 32], time: u64, checkpoint: &str) -> Signature {
    let key = SigningKey::from_bytes(seed);
    let hash = key_hash(name, TYPE_COSIGNATURE_V1, key.verifying_key().as_bytes());
    let id = u32::from_be_bytes(hash[..4].try_into().expect("four bytes"));
    let sig = key.sign(cosigned_message(time, checkpoint).as_bytes());
    let bytes = [&time.to_be_bytes()[..], &sig.to_bytes()].concat();
    Signature::new(name.to_owned(), id, bytes).expect("a valid witness name")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rekor-v2-tiles.md V-06: the test-only seed 0x00..0x1f.
    fn v06_key() -> Ed25519NoteKey {
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        Ed25519NoteKey::new("rekor.example.test", &seed).unwrap()
    }

    fn v06_checkpoint() -> CheckpointText {
        let root = BASE64_STANDARD
            .decode("Uym3efeSrMCTH0BDFLAnqwbi1GjOYfydlkHmJc5gw9o=")
            .unwrap();
        CheckpointText {
            origin: "rekor.example.test".into(),
            size: 1,
            root: Hash(root.try_into().unwrap()),
            extensions: Vec::new(),
        }
    }

    const V06_ENVELOPE: &str = "rekor.example.test\n1\nUym3efeSrMCTH0BDFLAnqwbi1GjOYfydlkHmJc5gw9o=\n\n\u{2014} rekor.example.test vq/lasklCgeloa9lCirEJKu9oYAmnqvE3defDaIiHNo5JOEUsGSWW6PSBPSyxK87hRIj0pRh/IeSzeVJEne9A77o5gc=\n";

    #[test]
    fn ed25519_log_key_matches_v06_spki_vkey_and_log_id() {
        let key = v06_key();
        assert_eq!(
            BASE64_STANDARD.encode(key.public_key_der()),
            "MCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
        );
        assert_eq!(
            key.vkey(),
            "rekor.example.test+beafe56a+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
        );
        assert_eq!(
            BASE64_STANDARD.encode(key.log_id()),
            "vq/laqS7fNMj2xWz5ZkrGdda3Iy+Myyv+xoNjK0u7x8="
        );
    }

    #[test]
    fn public_shard_log_id_matches_v05() {
        let spki = BASE64_STANDARD
            .decode("MCowBQYDK2VwAyEAt8rlp1knGwjfbcXAYPYAkn0XiLz1x8O4t0YkEhie244=")
            .unwrap();
        let raw: [u8; 32] = spki[12..].try_into().unwrap();
        assert_eq!(ed25519_spki(&raw), spki);
        let id = key_hash("log2025-1.rekor.sigstore.dev", TYPE_ED25519, &raw);
        assert_eq!(
            BASE64_STANDARD.encode(id),
            "zxGZFVvd0FEmjR8WrFwMdcAJ9vtaY/QXf44Y1wUeP6A="
        );
    }

    #[test]
    fn signed_checkpoint_is_the_v06_envelope_byte_for_byte() {
        let note = v06_key().sign_checkpoint(&v06_checkpoint()).unwrap();
        assert_eq!(note, V06_ENVELOPE);
        // And it verifies under the vkey, through signed_note's own verifier.
        let verifier = signed_note::StandardVerifier::new(&v06_key().vkey()).unwrap();
        let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
        let parsed = Note::from_bytes(note.as_bytes()).unwrap();
        let (verified, unknown) = parsed.verify(&list).unwrap();
        assert_eq!((verified.len(), unknown.len()), (1, 0));
    }

    #[test]
    fn a_logs_own_line_verifies_and_nothing_else_does() {
        let raw = v06_key().public_key();
        assert_eq!(ed25519_raw(&v06_key().public_key_der()), Some(raw));
        assert_eq!(ed25519_raw(&[0; 44]), None);
        let origin = "rekor.example.test";
        let got = verify_log_checkpoint(V06_ENVELOPE, origin, &raw).unwrap();
        assert_eq!(got, v06_checkpoint());
        // With a witness's line after it, still the log's line that counts.
        let cosigned = SignedNote::parse(V06_ENVELOPE)
            .unwrap()
            .with_cosignatures(&[cosign("witness.test", &[9; 32], 1, "x")]);
        assert!(verify_log_checkpoint(&cosigned, origin, &raw).is_ok());
        let other = Ed25519NoteKey::new("rekor.example.test", &[7; 32]).unwrap();
        assert!(matches!(
            verify_log_checkpoint(V06_ENVELOPE, origin, &other.public_key()),
            Err(C2spError::BadSignature)
        ));
        assert!(matches!(
            verify_log_checkpoint(V06_ENVELOPE, "rekor.other.test", &raw),
            Err(C2spError::Malformed(_))
        ));
        let tampered = V06_ENVELOPE.replacen("\n1\n", "\n2\n", 1);
        assert!(verify_log_checkpoint(&tampered, origin, &raw).is_err());
    }

    #[test]
    fn a_log_refuses_to_sign_another_origin() {
        let mut other = v06_checkpoint();
        other.origin = "rekor.other.test".into();
        assert!(v06_key().sign_checkpoint(&other).is_err());
        assert!(Ed25519NoteKey::new("has space", &[0; 32]).is_err());
        assert!(Ed25519NoteKey::new("a+b", &[0; 32]).is_err());
    }

    #[test]
    fn witness_cosignature_matches_v06_and_follows_the_log_line() {
        let seed = [0x42; 32];
        let line = cosign(
            "witness.example.test",
            &seed,
            1_767_225_600,
            &v06_checkpoint().to_text(),
        );
        assert_eq!(
            String::from_utf8(line.to_bytes()).unwrap(),
            "\u{2014} witness.example.test msVy7wAAAABpVbkAFTCgPiyCmxdKlurmiDYifFQMtK+sYqSsFlPBhE9FtpeU7lmmkjmfHiTvNHPgADZrWdQ4I3UmJ/wXrC+Sr7rFBQ==\n"
        );
        let note = SignedNote::parse(V06_ENVELOPE).unwrap();
        let cosigned = note.with_cosignatures(std::slice::from_ref(&line));
        assert!(cosigned.starts_with(V06_ENVELOPE), "log line first");
        assert_eq!(cosigned.matches("\n\n").count(), 1, "one blank line (N-03)");
        // Cosigning again replaces the witness's line instead of adding one.
        let again = SignedNote::parse(&cosigned)
            .unwrap()
            .with_cosignatures(&[line]);
        assert_eq!(again, cosigned);

        let witness = CosignatureVerifier::from_vkey(
            "witness.example.test+9ac572ef+BCFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS",
        )
        .unwrap();
        let parsed = SignedNote::parse(&cosigned).unwrap();
        assert_eq!(witness.verify(&parsed).unwrap(), 1_767_225_600);
        // The log's own note has no line of the witness.
        assert!(witness.verify(&note).is_err());
        // A cosignature over another checkpoint does not verify.
        let mut other = v06_checkpoint();
        other.size = 2;
        let wrong = cosign(
            "witness.example.test",
            &seed,
            1_767_225_600,
            &other.to_text(),
        );
        let forged = SignedNote::parse(&note.with_cosignatures(&[wrong])).unwrap();
        assert!(witness.verify(&forged).is_err());
    }

    #[test]
    fn witness_vkeys_with_a_wrong_id_or_type_are_refused() {
        for vkey in [
            "witness.example.test+9ac572ee+BCFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS",
            "other.example.test+9ac572ef+BCFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS",
            // A 0x01 vkey with a key ID computed as if it were 0x04.
            "rekor.example.test+2ade43d1+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4",
            // Type 0x02 (ECDSA) is no cosignature key.
            "rekor.example.test+beafe56a+AgOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4",
            "no-plus-signs",
        ] {
            assert!(CosignatureVerifier::from_vkey(vkey).is_err(), "{vkey}");
        }
    }

    #[test]
    fn a_type_0x01_vkey_is_re_keyed_as_a_cosignature_key() {
        // The V-06 witness seed, given as an Ed25519 note vkey (0x01).
        let seed = [0x42; 32];
        let public = SigningKey::from_bytes(&seed).verifying_key();
        let vkey = signed_note::new_ed25519_verifier_key("witness.example.test", &public);
        assert!(vkey.contains("+AS"), "{vkey}");
        let witness = CosignatureVerifier::from_vkey(&vkey).unwrap();
        // The cosignature line carries the 0x04 key ID of V-06, not the vkey's.
        assert_eq!(format!("{:08x}", witness.key_id()), "9ac572ef");
        let text = v06_checkpoint().to_text();
        let line = cosign("witness.example.test", &seed, 1_767_225_600, &text);
        assert_eq!(
            witness.verify_signature(&text, &line).unwrap(),
            1_767_225_600
        );
        let other = v06_checkpoint();
        let other = CheckpointText { size: 2, ..other }.to_text();
        assert!(witness.verify_signature(&other, &line).is_err());
    }

    #[test]
    fn checkpoint_text_round_trips_and_refuses_non_canonical_sizes() {
        let mut cp = v06_checkpoint();
        assert_eq!(CheckpointText::parse(&cp.to_text()).unwrap(), cp);
        cp.extensions = vec!["Log frozen \u{2014} Thu Jan  1 00:00:00 UTC 2026".into()];
        assert_eq!(CheckpointText::parse(&cp.to_text()).unwrap(), cp);
        let root = "Uym3efeSrMCTH0BDFLAnqwbi1GjOYfydlkHmJc5gw9o=";
        for bad in [
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("\n1\n{root}\n"),
            format!("o\n1\n{root}"),
            format!("o\n1\n{root}\n\n"),
            "o\n1\nAAAA\n".to_owned(),
        ] {
            assert!(CheckpointText::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
