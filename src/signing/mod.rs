//! The log's identity and the two signatures it emits: Signed Entry Timestamps
//! (rekor-v1.md C-09) and checkpoint signatures (C-11). ECDSA P-256 over SHA-256,
//! ASN.1 DER, as every Rekor v1 client requires (C-06).
//!
//! No HTTP, no database. Key files are read by the caller. Keys are parsed
//! once, when a [`LogSigner`] or [`LogVerifier`] is built: the sequencer
//! signs a SET per entry and the read path one per response.
//!
//! A [`LogSigner`] holds the private key in one of two places: a PKCS#8 key
//! in memory (aws-lc-rs), or a key that never leaves an HSM, reached through
//! PKCS#11 ([`pkcs11`]). Both emit the same DER signatures, so verifiers
//! cannot tell them apart. Signing through an HSM can fail while the log
//! serves (the device is unreachable, a session was lost); the signing
//! methods return [`SignError`] then, and the caller acknowledges nothing.

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ParsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use sha2::{Digest as _, Sha256};

use crate::note::{self, Checkpoint, NoteError, NoteVerifier, SignedCheckpoint};

pub mod pkcs11;

pub use pkcs11::{Pkcs11Error, Pkcs11Settings};

/// PEM label of a PKCS#8 private key.
const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// PEM label of a DER `SubjectPublicKeyInfo`.
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// Errors from loading or generating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM is not a PKCS#8 ECDSA P-256 private key.
    #[error("couldn't parse log signing key: {0}")]
    Parse(String),
    /// The input is not an ECDSA P-256 public key.
    #[error("couldn't parse log public key: {0}")]
    PublicKey(String),
    /// The system random source failed.
    #[error("couldn't generate log signing key")]
    Generate,
}

/// The log key could not sign (only an HSM-held key fails): the caller must
/// not acknowledge what it was signing, and may retry later.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("couldn't sign with the log key: {0}")]
pub struct SignError(pub String);

/// The fields of one entry that its SET signs (C-09).
#[derive(Debug, Clone, Copy)]
pub struct SetFields<'a> {
    /// The entry's canonical body, base64.
    pub body_b64: &'a str,
    /// `integratedTime`, Unix seconds.
    pub integrated_time: i64,
    /// `logIndex`.
    pub log_index: u64,
}

/// A signature that does not verify under the log's key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("signature does not verify")]
pub struct SignatureError;

/// The SET payload (C-09): JCS over exactly `body`, `integratedTime`,
/// `logID` (lowercase hex) and `logIndex`.
///
/// Serialised by `serde_json_canonicalizer`, so key order and string
/// escaping are RFC 8785's even if `body` is not base64.
///
/// # Panics
/// Never: the struct has only strings and integers.
#[must_use]
pub fn set_payload(
    body_b64: &str,
    integrated_time: i64,
    log_id_hex: &str,
    log_index: u64,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        body: &'a str,
        #[serde(rename = "integratedTime")]
        integrated_time: i64,
        #[serde(rename = "logID")]
        log_id: &'a str,
        #[serde(rename = "logIndex")]
        log_index: u64,
    }
    serde_json_canonicalizer::to_vec(&Payload {
        body: body_b64,
        integrated_time,
        log_id: log_id_hex,
        log_index,
    })
    .expect("strings and integers always serialise")
}

/// PEM `PUBLIC KEY` of a DER SPKI: `-----BEGIN PUBLIC KEY-----`,
/// 64-character base64 lines, `\n` endings, trailing newline (E-02, V-04).
#[must_use]
pub fn public_key_pem(spki_der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(PUBLIC_KEY_LABEL, spki_der), config)
}

/// The raw key of a PEM text holding exactly one `PUBLIC KEY` block, an
/// Ed25519 SPKI (a Rekor v2 log's key, as `openssl pkey -pubout` writes
/// it); `None` for anything else.
#[must_use]
pub fn ed25519_public_key(text: &str) -> Option<[u8; 32]> {
    match pem::parse_many(text).ok()?.as_slice() {
        [block] if block.tag() == PUBLIC_KEY_LABEL => note::c2sp::ed25519_raw(block.contents()),
        _ => None,
    }
}

/// The contents of the first PEM block, which must carry `label`.
fn pem_contents(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let block = pem::parse(text).map_err(|e| format!("not PEM: {e}"))?;
    if block.tag() != label {
        return Err(format!("expected PEM {label:?}, found {:?}", block.tag()));
    }
    Ok(block.into_contents())
}

/// Where the private key lives.
enum Backend {
    /// A PKCS#8 key in memory.
    File {
        /// The P-256 key pair, parsed once.
        key: EcdsaKeyPair,
        /// Random source for ECDSA nonces.
        rng: SystemRandom,
    },
    /// A key on a PKCS#11 token; the process only holds sessions.
    Pkcs11(pkcs11::Pkcs11Key),
    /// A Rekor v2 log's Ed25519 key: C2SP checkpoints, no SETs.
    Ed25519(Box<note::c2sp::Ed25519NoteKey>),
}

/// The log's signing key and the identifiers derived from it: a front over
/// a key file or an HSM key.
pub struct LogSigner {
    /// The private key.
    backend: Backend,
    /// DER `SubjectPublicKeyInfo` of the public key.
    spki_der: Vec<u8>,
    /// `SHA256(spki_der)`.
    log_id: [u8; 32],
    /// Lowercase hex of `log_id`, as it goes into SET payloads.
    log_id_hex: String,
}

impl fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        let backend = match &self.backend {
            Backend::File { .. } => "file",
            Backend::Pkcs11(_) => "pkcs11",
            Backend::Ed25519(_) => "ed25519",
        };
        f.debug_struct("LogSigner")
            .field("backend", &backend)
            .field("log_id", &self.log_id_hex)
            .finish_non_exhaustive()
    }
}

impl LogSigner {
    /// Loads a PKCS#8 PEM ECDSA P-256 private key.
    ///
    /// # Errors
    /// `KeyError::Parse` for anything else.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let der = pem_contents(pem, PRIVATE_KEY_LABEL).map_err(KeyError::Parse)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .map_err(|e| KeyError::Parse(format!("not a PKCS#8 ECDSA P-256 key: {e}")))?;
        let spki_der = key
            .public_key()
            .as_der()
            .map_err(|_| KeyError::Parse("couldn't encode the public key".into()))?
            .as_ref()
            .to_vec();
        Ok(Self::with_backend(
            Backend::File {
                key,
                rng: SystemRandom::new(),
            },
            spki_der,
        ))
    }
    /// Opens the key `settings` names on a PKCS#11 token: loads the module,
    /// finds the token, logs in, finds the key pair and reads its public key
    /// from the token. The private key never leaves the token.
    ///
    /// # Errors
    /// A [`Pkcs11Error`] naming the `signer.pkcs11.*` setting at fault: the
    /// module cannot be loaded, no token has the label, the PIN is wrong, or
    /// no P-256 key pair has the label.
    pub fn open_pkcs11(settings: Pkcs11Settings) -> Result<Self, Pkcs11Error> {
        let (key, spki_der) = pkcs11::Pkcs11Key::open(settings)?;
        Ok(Self::with_backend(Backend::Pkcs11(key), spki_der))
    }
    /// A Rekor v2 log's signer: the Ed25519 key of origin `origin` from its
    /// PKCS#8 PEM (`tlog keygen --algorithm ed25519`). It signs C2SP
    /// checkpoints named by the origin and issues no SETs; its log ID is the
    /// C2SP key ID (rekor-v2-tiles.md K-02).
    ///
    /// # Errors
    /// `KeyError::Parse` for another key, or an origin that is not a valid
    /// key name.
    pub fn from_ed25519_pem(pem: &str, origin: &str) -> Result<Self, KeyError> {
        let der = pem_contents(pem, PRIVATE_KEY_LABEL).map_err(KeyError::Parse)?;
        let seed = ed25519_seed_from_pkcs8(&der)
            .ok_or_else(|| KeyError::Parse("not a PKCS#8 Ed25519 key".into()))?;
        let key = note::c2sp::Ed25519NoteKey::new(origin, &seed)
            .map_err(|e| KeyError::Parse(format!("v2.origin: {e}")))?;
        let spki_der = key.public_key_der();
        let log_id = key.log_id();
        Ok(Self {
            backend: Backend::Ed25519(Box::new(key)),
            log_id_hex: hex::encode(log_id),
            log_id,
            spki_der,
        })
    }
    /// Generates a new Ed25519 key, as PKCS#8 PEM (RFC 8410).
    ///
    /// # Errors
    /// If the random source fails.
    pub fn generate_ed25519_pem() -> Result<String, KeyError> {
        use aws_lc_rs::rand::SecureRandom as _;
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| KeyError::Generate)?;
        let der = [&ED25519_PKCS8_PREFIX[..], &seed].concat();
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        Ok(pem::encode_config(
            &pem::Pem::new(PRIVATE_KEY_LABEL, der),
            config,
        ))
    }
    /// The checkpoint origin this key fixes, if it does: a v2 log's key is
    /// bound to its origin, a v1 log's origin comes from its host name.
    #[must_use]
    pub fn origin(&self) -> Option<&str> {
        match &self.backend {
            Backend::Ed25519(key) => Some(key.name()),
            Backend::File { .. } | Backend::Pkcs11(_) => None,
        }
    }
    fn with_backend(backend: Backend, spki_der: Vec<u8>) -> Self {
        let log_id: [u8; 32] = Sha256::digest(&spki_der).into();
        Self {
            backend,
            log_id_hex: hex::encode(log_id),
            log_id,
            spki_der,
        }
    }
    /// Generates a new key, as PKCS#8 PEM.
    ///
    /// # Errors
    /// If the random source fails.
    pub fn generate_pkcs8_pem() -> Result<String, KeyError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Generate)?;
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        let block = pem::Pem::new(PRIVATE_KEY_LABEL, document.as_ref());
        Ok(pem::encode_config(&block, config))
    }
    /// DER `SubjectPublicKeyInfo` of the public key.
    #[must_use]
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }
    /// PEM `PUBLIC KEY` with 64-character lines (E-02, V-04).
    #[must_use]
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.spki_der)
    }
    /// `SHA256(DER SPKI)`: the Rekor log ID (C-04).
    #[must_use]
    pub fn log_id(&self) -> [u8; 32] {
        self.log_id
    }
    /// The log ID as lowercase hex, as in `LogEntry.logID` (C-04).
    #[must_use]
    pub fn log_id_hex(&self) -> &str {
        &self.log_id_hex
    }
    /// The checkpoint key hint: the first four bytes of the log ID (C-11).
    #[must_use]
    pub fn key_hint(&self) -> [u8; 4] {
        note::key_hint(&self.spki_der)
    }
    /// A verifier for this signer's public key.
    ///
    /// # Panics
    /// Never: the key was valid when the signer was built.
    #[must_use]
    pub fn verifier(&self) -> LogVerifier {
        LogVerifier::from_spki_der(&self.spki_der).expect("our own public key parses")
    }
    /// DER ECDSA-SHA256 signature over `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.backend {
            Backend::File { key, rng } => Ok(key
                .sign(rng, message)
                .expect("ECDSA signing with a valid key does not fail")
                .as_ref()
                .to_vec()),
            Backend::Pkcs11(key) => key.sign_digest(&Sha256::digest(message).into()),
            Backend::Ed25519(_) => Err(SignError("a v2 log key signs checkpoints only".into())),
        }
    }
    /// Signs the SET payload (C-09) and returns the DER signature.
    ///
    /// # Errors
    /// `SignError` if the HSM could not sign; a key file always signs.
    pub fn sign_set(
        &self,
        body_b64: &str,
        integrated_time: i64,
        log_index: u64,
    ) -> Result<Vec<u8>, SignError> {
        let payload = set_payload(body_b64, integrated_time, &self.log_id_hex, log_index);
        self.sign(&payload)
    }
    /// Signs the SETs of a batch, in order, and returns their DER signatures.
    ///
    /// An HSM key signs them in parallel over its pool of sessions (v1 signs
    /// one SET per entry, and one HSM round trip per entry in a row would
    /// make signing, not the database, the sequencer's limit).
    ///
    /// # Errors
    /// `SignError` if the HSM could not sign one of them; then none is returned.
    pub fn sign_sets(&self, sets: &[SetFields<'_>]) -> Result<Vec<Vec<u8>>, SignError> {
        let payloads = sets.iter().map(|set| {
            set_payload(
                set.body_b64,
                set.integrated_time,
                &self.log_id_hex,
                set.log_index,
            )
        });
        match &self.backend {
            // Rekor v2 has no SETs (W-09): entries keep an empty one.
            Backend::Ed25519(_) => Ok(vec![Vec::new(); sets.len()]),
            Backend::File { .. } => payloads.map(|payload| self.sign(&payload)).collect(),
            Backend::Pkcs11(key) => {
                let digests: Vec<[u8; 32]> = payloads
                    .map(|payload| Sha256::digest(payload).into())
                    .collect();
                key.sign_digests(&digests)
            }
        }
    }
    /// Checks that the key signs (a key file always does); the sequencer
    /// calls it while an HSM is out, to know when to resume.
    ///
    /// # Errors
    /// `SignError` if the HSM still cannot sign.
    pub fn probe(&self) -> Result<(), SignError> {
        match &self.backend {
            Backend::File { .. } | Backend::Ed25519(_) => Ok(()),
            Backend::Pkcs11(key) => key.sign_digest(&[0x5a; 32]).map(drop),
        }
    }
    /// Signs a checkpoint and returns the whole signed note text (C-11).
    ///
    /// `name` is the log's hostname; it must pass [`note::is_valid_name`]
    /// (configuration validates it once).
    ///
    /// # Errors
    /// `SignError` if the HSM could not sign; a key file always signs.
    pub fn sign_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        name: &str,
    ) -> Result<String, SignError> {
        if let Backend::Ed25519(key) = &self.backend {
            // C2SP: the key's name is the origin; `name` is not used.
            let text = note::c2sp::CheckpointText {
                origin: checkpoint.origin.clone(),
                size: checkpoint.size,
                root: checkpoint.root,
                extensions: Vec::new(),
            };
            return key
                .sign_checkpoint(&text)
                .map_err(|e| SignError(e.to_string()));
        }
        let signature = self.sign(checkpoint.body().as_bytes())?;
        Ok(note::format_signed(
            checkpoint,
            name,
            self.key_hint(),
            signature,
        ))
    }
}

/// The fixed head of an RFC 8410 PKCS#8 v1 Ed25519 private key, before
/// the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The seed of an RFC 8410 PKCS#8 v1 Ed25519 key (what `openssl genpkey
/// -algorithm ed25519` and `tlog keygen --algorithm ed25519` write).
fn ed25519_seed_from_pkcs8(der: &[u8]) -> Option<[u8; 32]> {
    der.strip_prefix(&ED25519_PKCS8_PREFIX[..])?.try_into().ok()
}

/// A log's public key: checks SETs and checkpoints (tests, the replica).
#[derive(Clone)]
pub struct LogVerifier {
    /// The parsed P-256 public key.
    key: ParsedPublicKey,
    /// DER `SubjectPublicKeyInfo`.
    spki_der: Vec<u8>,
    /// `SHA256(spki_der)`.
    log_id: [u8; 32],
}

impl fmt::Debug for LogVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogVerifier")
            .field("log_id", &hex::encode(self.log_id))
            .finish_non_exhaustive()
    }
}

impl LogVerifier {
    /// Loads a DER `SubjectPublicKeyInfo` holding an ECDSA P-256 key.
    ///
    /// # Errors
    /// `KeyError::PublicKey` for anything else, including a bare EC point
    /// (the log ID is defined over the SPKI bytes).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
            .map_err(|e| KeyError::PublicKey(format!("not an ECDSA P-256 key: {e}")))?;
        let canonical = key
            .as_der()
            .map_err(|_| KeyError::PublicKey("couldn't encode the public key".into()))?;
        if canonical.as_ref() != der {
            return Err(KeyError::PublicKey(
                "expected a DER SubjectPublicKeyInfo".into(),
            ));
        }
        Ok(Self {
            key,
            spki_der: der.to_vec(),
            log_id: Sha256::digest(der).into(),
        })
    }
    /// Loads a PEM `PUBLIC KEY` (as served at `/api/v1/log/publicKey`).
    ///
    /// # Errors
    /// `KeyError::PublicKey` unless it holds an ECDSA P-256 SPKI.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = pem_contents(pem, PUBLIC_KEY_LABEL).map_err(KeyError::PublicKey)?;
        Self::from_spki_der(&der)
    }
    /// DER `SubjectPublicKeyInfo` of the key.
    #[must_use]
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }
    /// PEM `PUBLIC KEY` with 64-character lines (E-02, V-04).
    #[must_use]
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.spki_der)
    }
    /// `SHA256(DER SPKI)`: the Rekor log ID (C-04).
    #[must_use]
    pub fn log_id(&self) -> [u8; 32] {
        self.log_id
    }
    /// Checks a SET (C-09) over the entry's base64 body, time and index.
    ///
    /// # Errors
    /// `SignatureError` if `signature` is not a valid DER ECDSA signature
    /// over the payload under this key.
    pub fn verify_set(
        &self,
        body_b64: &str,
        integrated_time: i64,
        log_index: u64,
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let payload = set_payload(
            body_b64,
            integrated_time,
            &hex::encode(self.log_id),
            log_index,
        );
        self.key
            .verify_sig(&payload, signature)
            .map_err(|_| SignatureError)
    }
    /// Parses a signed checkpoint strictly and checks its signatures (C-12).
    ///
    /// # Errors
    /// `NoteError::Malformed` if the text is not a well-formed Rekor v1
    /// checkpoint; `NoteError::BadSignature` unless every signature line
    /// carries this key's hint and verifies.
    pub fn verify_checkpoint(&self, text: &str) -> Result<Checkpoint, NoteError> {
        let signed = SignedCheckpoint::parse(text)?;
        signed.verify(self)?;
        Ok(signed.checkpoint)
    }
}

/// The keys of a log's v1 shards, old and new: a PEM file of one or more
/// `PUBLIC KEY` blocks (`tlog monitor` and `tlog verify URL` follow a log
/// across `tlog log rotate --key-file`, which changes the key).
#[derive(Debug, Clone)]
pub struct LogKeys(Vec<LogVerifier>);

impl LogKeys {
    /// Every `PUBLIC KEY` block of `text`, in order.
    ///
    /// # Errors
    /// `KeyError::PublicKey` for text that is not PEM, holds no block, or
    /// holds a block that is not an ECDSA P-256 `PUBLIC KEY`.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let blocks =
            pem::parse_many(text).map_err(|e| KeyError::PublicKey(format!("not PEM: {e}")))?;
        if blocks.is_empty() {
            return Err(KeyError::PublicKey("no PEM PUBLIC KEY block".into()));
        }
        blocks
            .iter()
            .enumerate()
            .map(|(n, block)| {
                if block.tag() != PUBLIC_KEY_LABEL {
                    return Err(KeyError::PublicKey(format!(
                        "block {}: expected PEM {PUBLIC_KEY_LABEL:?}, found {:?}",
                        n + 1,
                        block.tag()
                    )));
                }
                LogVerifier::from_spki_der(block.contents()).map_err(|e| match e {
                    KeyError::PublicKey(why) => {
                        KeyError::PublicKey(format!("block {}: {why}", n + 1))
                    }
                    other => other,
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The keys, in file order.
    #[must_use]
    pub fn keys(&self) -> &[LogVerifier] {
        &self.0
    }

    /// The first key that verifies the checkpoint `text`, and what it says.
    ///
    /// # Errors
    /// As [`LogVerifier::verify_checkpoint`] with the last key tried.
    pub fn verify_checkpoint(&self, text: &str) -> Result<(Checkpoint, &LogVerifier), NoteError> {
        let mut last = None;
        for key in &self.0 {
            match key.verify_checkpoint(text) {
                Ok(checkpoint) => return Ok((checkpoint, key)),
                Err(NoteError::Malformed(why)) => return Err(NoteError::Malformed(why)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("LogKeys holds at least one key"))
    }
}

impl From<LogVerifier> for LogKeys {
    fn from(key: LogVerifier) -> Self {
        Self(vec![key])
    }
}

impl NoteVerifier for LogVerifier {
    fn key_hint(&self) -> [u8; 4] {
        note::key_hint(&self.spki_der)
    }
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, Hash};
    use base64::prelude::{Engine as _, BASE64_STANDARD};

    // Vectors from rekor-v1.md section 8 (a real Rekor v1 deployment).

    /// V-00: the log key, DER SPKI.
    const V00_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200049cfc9e54c2d158f250a421dc51d1b8d64fa82624048d7e2e1925fbba33c7ec8bf9cd00f755888787243fa0c26f735bf1fb6664d8305c06137d213d1e66307645";
    const V00_LOG_ID: &str = "f6fb357e481d95b94fc8cb9688b44041b120d219831c4e94c02f76571c8b4bc8";
    /// V-04: `/api/v1/log/publicKey` body.
    const V04_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnPyeVMLRWPJQpCHcUdG41k+oJiQE\njX4uGSX7ujPH7Iv5zQD3VYiHhyQ/oMJvc1vx+2Zk2DBcBhN9IT0eZjB2RQ==\n-----END PUBLIC KEY-----\n";
    /// V-01: `LogEntry.body`, `integratedTime`, `logIndex`, `signedEntryTimestamp`.
    const V01_BODY: &str = "eyJhcGlWZXJzaW9uIjoiMC4wLjEiLCJraW5kIjoiaGFzaGVkcmVrb3JkIiwic3BlYyI6eyJkYXRhIjp7Imhhc2giOnsiYWxnb3JpdGhtIjoic2hhMjU2IiwidmFsdWUiOiJiYzEwM2I0YTg0OTcxZWY2NDU5YjI5NGEyYjk4NTY4YTJiZmI3MmNkZWQwOWQ0YWNkMWUxNjM2NmE0MDFmOTViIn19LCJzaWduYXR1cmUiOnsiY29udGVudCI6Ik1FVUNJQ2pKYmY1ZXZRRzBjZUN1SHEvZ1VWeWI4dFU5OHBaaVFudTcxYkRuT2drbUFpRUF0bzZLeTJYQjhPeitab1NQRzRQSjg3cnNUejFkR1h0V3V5LzU4OXZXZlB3PSIsInB1YmxpY0tleSI6eyJjb250ZW50IjoiTFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2sxSlNVVjBWRU5EUVhBeVowRjNTVUpCWjBsVlVXOHdNRGQ2Y3pCUGFFZFBTemd2UVdOcGF5dGhlR0UzZG1Vd2QwUlJXVXBMYjFwSmFIWmpUa0ZSUlV3S1FsRkJkMlpxUlUxTlFXOUhRVEZWUlVKb1RVUldWazVDVFZKTmQwVlJXVVJXVVZGSlJYZHdSRmxYZUhCYWJUbDVZbTFzYUUxU1dYZEdRVmxFVmxGUlNBcEZkekZVV1ZjMFoxSnVTbWhpYlU1d1l6Sk9kazFTV1hkR1FWbEVWbEZSU2tWM01ERk9SR2RuVkZkR2VXRXlWakJKUms0d1RWRTBkMFJCV1VSV1VWRlNDa1YzVlRGT2Vra3pUa1JGV2sxQ1kwZEJNVlZGUTJoTlVWUkhiSFZrV0dkblVtMDVNV0p0VW1oa1IyeDJZbXBCWlVaM01IbE9SRUV6VFZSSmVFOVVRVElLVFdwb1lVWjNNSGxPUkVFelRWUkplRTlVUlRKTmFtaGhUVUZCZDFkVVFWUkNaMk54YUd0cVQxQlJTVUpDWjJkeGFHdHFUMUJSVFVKQ2QwNURRVUZSTWdwbVlYTmhUSHBCVVRaT1Z6RkVaVTQwTjJGb1RGRXJORUl2ZVhsclZFNXliRkJPTVV3MEwwWmtNbTQzSzB0b2F6Sk9jREJ6UTA5NmJqRnhNVW96UVRsakNuUlVZVXgzYUcxaFYzZzVPRlpZVm1GNE9YVk9ielJKUW1OcVEwTkJWelIzUkdkWlJGWlNNRkJCVVVndlFrRlJSRUZuWlVGTlFrMUhRVEZWWkVwUlVVMEtUVUZ2UjBORGMwZEJVVlZHUW5kTlJFMUNNRWRCTVZWa1JHZFJWMEpDVVdGMk4zcHBiV28yU1doU1NTOWlSWEoxTjFWT2IxVmtNazFOUkVGbVFtZE9WZ3BJVTAxRlIwUkJWMmRDVTFCRU5YWnNTR0ZZVmsxU1JEUlZiREJZSzNrdlQwRktSV3czVkVGelFtZE9Wa2hTUlVKQlpqaEZTV3BCWjI5Q05FZERhWE5IQ2tGUlVVSm5OemgzUVZGbFowVkJkMDlhYlRsMlNWYzVjRnBIVFhWaVJ6bHFXVmQzZDBwQldVdExkMWxDUWtGSFJIWjZRVUpCVVZGWFlVaFNNR05FYjNZS1RESTVjRnBIVFhWaVJ6bHFXVmQzTms5RVFUUk5SRUZ0UW1kdmNrSm5SVVZCV1U4dlRVRkZTVUpDWjAxR2JXZ3daRWhCTmt4NU9YWmhWMUpxVEcxNGRncFpNa1p6VDJwbmQwOUVRWGRuV1c5SFEybHpSMEZSVVVJeGJtdERRa0ZKUldaQlVqWkJTR2RCWkdkRVpYTklSRmxJZW10NVVGTkhUVFI2WlVkd2MxQnFDbWt3SzBacmRXODFTell3TVVSM1VrcFZWMUZFV0VGQlFVRmFRMjlXZGtkNFFVRkJSVUYzUWtoTlJWVkRTVVk0UzBGVWJrZFNMMEV3VFRBd2QyVkhXVWtLVTI1TGJFMUlkU3N2VUZGUVRGaDFOM2xQTUVjeWFYUm1RV2xGUVRKck1rSkhPVWg2WkhBeVFXTm5kbVZ5YUc1elpXZHVXSGhxUzA1UE5VWk9kRzUzVndvdmFtNVBTVzgwZDBSUldVcExiMXBKYUhaalRrRlJSVXhDVVVGRVoyZEpRa0ZIVDBSbEwzWlFVSHBFZUdGeWIwaHNTVzB2TW5WSGIwRnNOMkV2WVZkS0NscDJhbTlpWnpkaE9WRnhVMDAwTTI1R2FIQnlVa1l6UXpVeE9HcEJWRkI0YlhweU1IaDZiVVJOVDJOSk5pdGhWREZsZWtzMmNFSlNTelZWTDNaWksyMEtUSHBaU0hoQ1p6bERZMEpFWkRaQk9HMVBiRGc1VVc0eGVEWmhkMU5ZYjNFck0wUTVOVEJGZDNjemRraG1SVXBWVXpWblFVWm1SREJUUlRreFdUbE1OZ3BtVGpGMU9WWjZabU5DTWpkelZFaG1ibVpEYXpjNGFWRm1LM05CTUV0WFlWUkdaMlZyUTFSclYyVjBVRGs0TXpsbFptTlJielY0V1RWS2EzaElla05YQ25oTFJITmFjbHB4U0RObmIwZElRM0ZrU1V3NU0yY3dObEZNU2tsSWNVOUlNM3AwVFhabWExbGlURzFXZFZSV01sSnBlWE5rV1Zab1JEWnpTbEpzUlVzS2VXbFlkR0ZZZDNSb2NXUmljMmRpYVV0RU9HZFNiVkZTU21seU9UWXhVRzk0VkV0clUzWklhR1JoWmxadFZsVlpkR3RYVHpaM1VUazRVSGR0VDFrd1VBcHZhaXN6ZWxkdlQwRnpibnB4Y2pCcWQwWnVPRkZXVG1SbFYwdHNSRzE2V0hGa1dHNDFZVUp2V0VKd2FHeFJlUzlxTW5VeFZGZHpiRGhJWXpkS1RDdElDbWh0VmpOSGFIRlNZbWhFTXpGWGVGWkJVWEZwTUhCdlN6ZHBaek5hUWl0eE16WlVXSFpsYzIxTVJWZGxia2xEY0d4WWMyTlZlVEpNY2pNNVF6VnpRbVVLYVV4M1RITmxNMkZoV0hObE9UVlpTSEZLYTFsblVEUTBZMU16TXk5dGJWUnRlVEpETVVaak5GQjFNREZoYTFWb1RIZzJPUzl6WjB4SVV5OHpSeklyVlFweFowYzRibk5zZWpKT04ydzNVMVZZWVhRMFJHcHhaV014V0ZGMmIxZEhMMlkzYTFWaWJqTXJaSFF3VGpoMmRqUlpTRlp4Vm5saFZ6ZFJhMWhqVURab0NubHFibFE0WTJodGFuTnhRMU5EZVRoTFYzTm5lSEl3Y0hGd1RFTnljblZ0YkZOclpURkNTa2RNTkVWYWJUQm9VMFIyY21nd1pHaHhWR2R5YjNNNFIxb0tjMWx4T0VGS1FrRkJiWEZxQ2kwdExTMHRSVTVFSUVORlVsUkpSa2xEUVZSRkxTMHRMUzBLIn19fX0=";
    const V01_INTEGRATED_TIME: i64 = 1_720_811_189;
    const V01_LOG_INDEX: u64 = 3;
    const V01_SET: &str = "MEUCIQDlRe4vCqGTap9Bko4TN9scDU7E7ideUfC51cEwxJJVJwIgBhimuSEUEUTuJ8rISl9UyMZvZp2hi1m7SSDIZM/ZkAA=";
    const V01_LEAF: &str = "d18a0b811c7277620ff2f259b9f868681a60784b9e1acfca1e1e560cee6a6e06";
    /// V-01 (e): the checkpoint returned with the entry.
    const V01_CHECKPOINT: &str = "rekor-00001-deployment-56bf7777c9-jds5x - 6364419738405537866\n4\nuZYUY33ENx3NVSOphL2yVZLM+fjGXvOvRoQ15T82jp8=\n\n\u{2014} rekor-00001-deployment-56bf7777c9-jds5x 9vs1fjBFAiBU8kwsoJjjEntsK485B35Sa4xhVryfMnnsv+V3fjujFgIhAOe8Okg1uwIH0no5NG3YvR57Fq0rwdxTxLqrsj2Ox1aj\n";
    const V01_ROOT: &str = "b99614637dc4371dcd5523a984bdb25592ccf9f8c65ef3af468435e53f368e9f";

    fn v00() -> LogVerifier {
        LogVerifier::from_spki_der(&hex::decode(V00_SPKI).unwrap()).unwrap()
    }

    fn v01_set() -> Vec<u8> {
        BASE64_STANDARD.decode(V01_SET).unwrap()
    }

    fn new_signer() -> LogSigner {
        LogSigner::from_pkcs8_pem(&LogSigner::generate_pkcs8_pem().unwrap()).unwrap()
    }

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: Checkpoint::rekor_origin("rekor.example.com", 6_364_419_738_405_537_866),
            size,
            root: leaf_hash(&size.to_be_bytes()),
        }
    }

    #[test]
    fn v00_log_id_and_key_hint() {
        let key = v00();
        assert_eq!(hex::encode(key.log_id()), V00_LOG_ID);
        assert_eq!(hex::encode(NoteVerifier::key_hint(&key)), "f6fb357e");
    }

    #[test]
    fn v04_public_key_pem_is_byte_exact() {
        assert_eq!(v00().public_key_pem(), V04_PEM);
        let from_pem = LogVerifier::from_pem(V04_PEM).unwrap();
        assert_eq!(hex::encode(from_pem.public_key_der()), V00_SPKI);
    }

    #[test]
    fn v01_body_hashes_to_the_entry_uuid() {
        let body = BASE64_STANDARD.decode(V01_BODY).unwrap();
        assert_eq!(
            leaf_hash(&body),
            Hash(hex::decode(V01_LEAF).unwrap().try_into().unwrap())
        );
    }

    #[test]
    fn v01_set_verifies_over_our_payload() {
        let key = v00();
        key.verify_set(V01_BODY, V01_INTEGRATED_TIME, V01_LOG_INDEX, &v01_set())
            .unwrap();
        // Any change to the signed fields breaks it.
        let set = v01_set();
        assert_eq!(
            key.verify_set(V01_BODY, V01_INTEGRATED_TIME + 1, 3, &set),
            Err(SignatureError)
        );
        assert_eq!(
            key.verify_set(V01_BODY, V01_INTEGRATED_TIME, 4, &set),
            Err(SignatureError)
        );
        let body = V01_BODY.replacen('e', "f", 1);
        assert_eq!(
            key.verify_set(&body, V01_INTEGRATED_TIME, 3, &set),
            Err(SignatureError)
        );
        assert_eq!(
            new_signer()
                .verifier()
                .verify_set(V01_BODY, V01_INTEGRATED_TIME, 3, &set),
            Err(SignatureError)
        );
    }

    #[test]
    fn set_payload_has_c09_shape() {
        let payload = set_payload("AB+/cd==", 1_720_811_189, V00_LOG_ID, 3);
        let want = format!(
            "{{\"body\":\"AB+/cd==\",\"integratedTime\":1720811189,\"logID\":\"{V00_LOG_ID}\",\"logIndex\":3}}"
        );
        assert_eq!(String::from_utf8(payload).unwrap(), want);
    }

    #[test]
    fn v01_checkpoint_verifies_under_v00() {
        let cp = v00().verify_checkpoint(V01_CHECKPOINT).unwrap();
        assert_eq!(cp.size, 4);
        assert_eq!(hex::encode(cp.root.0), V01_ROOT);
        assert_eq!(
            cp.origin,
            "rekor-00001-deployment-56bf7777c9-jds5x - 6364419738405537866"
        );
        // The same text under another key: wrong key hint.
        assert!(matches!(
            new_signer().verifier().verify_checkpoint(V01_CHECKPOINT),
            Err(NoteError::BadSignature)
        ));
        // A different size with the original signature.
        let moved = V01_CHECKPOINT.replacen("\n4\n", "\n5\n", 1);
        assert!(matches!(
            v00().verify_checkpoint(&moved),
            Err(NoteError::BadSignature)
        ));
    }

    #[test]
    fn generated_key_signs_sets_and_checkpoints_that_verify() {
        let signer = new_signer();
        let verifier = signer.verifier();
        assert_eq!(signer.log_id(), verifier.log_id());
        assert_eq!(signer.log_id_hex(), hex::encode(signer.log_id()));
        assert_eq!(
            signer.log_id(),
            <[u8; 32]>::from(Sha256::digest(signer.public_key_der()))
        );
        assert_eq!(signer.key_hint()[..], signer.log_id()[..4]);

        let set = signer.sign_set("Ym9keQ==", 1_700_000_000, 12).unwrap();
        verifier
            .verify_set("Ym9keQ==", 1_700_000_000, 12, &set)
            .unwrap();
        assert_eq!(
            verifier.verify_set("Ym9keQ==", 1_700_000_000, 13, &set),
            Err(SignatureError)
        );

        let text = signer
            .sign_checkpoint(&checkpoint(9), "rekor.example.com")
            .unwrap();
        assert_eq!(verifier.verify_checkpoint(&text).unwrap(), checkpoint(9));
        assert!(text.starts_with(&checkpoint(9).body()));
        assert_eq!(text.matches("\n\n").count(), 1);
        let from_pem = LogVerifier::from_pem(&signer.public_key_pem()).unwrap();
        assert_eq!(from_pem.verify_checkpoint(&text).unwrap(), checkpoint(9));
    }

    #[test]
    fn checkpoint_signed_by_another_key_is_refused() {
        let (ours, theirs) = (new_signer(), new_signer());
        let text = theirs
            .sign_checkpoint(&checkpoint(3), "rekor.example.com")
            .unwrap();
        assert!(matches!(
            ours.verifier().verify_checkpoint(&text),
            Err(NoteError::BadSignature)
        ));

        // Their signature relabelled with our key hint still fails.
        let mut signed = SignedCheckpoint::parse(&text).unwrap();
        signed.signatures[0].key_hint = ours.key_hint();
        let relabelled = signed.to_text();
        assert!(matches!(
            ours.verifier().verify_checkpoint(&relabelled),
            Err(NoteError::BadSignature)
        ));
    }

    #[test]
    fn public_key_pem_has_64_character_lines() {
        let pem = new_signer().public_key_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("\n-----END PUBLIC KEY-----\n"));
        assert!(!pem.contains('\r'));
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1].len(), 64);
    }

    #[test]
    fn keys_that_are_not_p256_pkcs8_are_refused() {
        assert!(matches!(
            LogSigner::from_pkcs8_pem("garbage"),
            Err(KeyError::Parse(_))
        ));
        assert!(matches!(
            LogSigner::from_pkcs8_pem(V04_PEM),
            Err(KeyError::Parse(_))
        ));
        let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let p384_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", p384.as_ref()));
        assert!(matches!(
            LogSigner::from_pkcs8_pem(&p384_pem),
            Err(KeyError::Parse(_))
        ));

        let point = &hex::decode(V00_SPKI).unwrap()[26..];
        assert!(matches!(
            LogVerifier::from_spki_der(point),
            Err(KeyError::PublicKey(_))
        ));
        assert!(matches!(
            LogVerifier::from_spki_der(b"junk"),
            Err(KeyError::PublicKey(_))
        ));
        let private = LogSigner::generate_pkcs8_pem().unwrap();
        assert!(matches!(
            LogVerifier::from_pem(&private),
            Err(KeyError::PublicKey(_))
        ));
    }

    #[test]
    fn a_key_file_of_several_keys_verifies_each_ones_checkpoints() {
        let signer =
            |_| LogSigner::from_pkcs8_pem(&LogSigner::generate_pkcs8_pem().unwrap()).unwrap();
        let [a, b, c] = [0, 1, 2].map(signer);
        let bundle = a.public_key_pem() + &b.public_key_pem();
        let keys = LogKeys::from_pem(&bundle).unwrap();
        assert_eq!(keys.keys().len(), 2);
        let checkpoint = |size| Checkpoint {
            origin: "host - 1".to_owned(),
            size,
            root: Hash([7; 32]),
        };
        for (signer, size) in [(&a, 3), (&b, 4)] {
            let note = signer.sign_checkpoint(&checkpoint(size), "host").unwrap();
            let (seen, key) = keys.verify_checkpoint(&note).unwrap();
            assert_eq!(seen.size, size);
            assert_eq!(key.log_id(), signer.log_id());
        }
        let stranger = c.sign_checkpoint(&checkpoint(5), "host").unwrap();
        assert!(matches!(
            keys.verify_checkpoint(&stranger),
            Err(NoteError::BadSignature)
        ));
        // No block, a private key among them, garbage: refused, never skipped.
        let private = LogSigner::generate_pkcs8_pem().unwrap();
        for bad in ["", "not pem", &(bundle.clone() + &private)] {
            assert!(
                matches!(LogKeys::from_pem(bad), Err(KeyError::PublicKey(_))),
                "{bad}"
            );
        }
    }
}
