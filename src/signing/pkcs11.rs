//! The log key on a PKCS#11 token (an HSM, a cloud HSM's client library, or
//! SoftHSM2 in tests): ECDSA P-256 signatures made on the token, so the
//! private key never enters the process.
//!
//! PKCS#11 2.40 section 2.3.1 (`CKM_ECDSA`): the token signs a digest we
//! compute and returns `r || s`, each 32 bytes for P-256; Rekor clients need
//! ASN.1 DER (rekor-v1.md C-06), so the signature is re-encoded here.
//! `CKM_ECDSA_SHA256` would hash on the token, but SoftHSM2 2.6 and several
//! HSMs lack it, and hashing a SET payload on our side costs nothing.
//!
//! Sessions are not thread-safe (PKCS#11 section 6.6.2), so the key keeps a
//! pool of logged-in sessions and a thread takes one for as long as it
//! signs. A session that fails is dropped, and the pool is emptied: after an
//! outage every session of the old connection is dead, and the next
//! signature opens a fresh one (finding the token, logging in and finding
//! the key again), so signing resumes by itself when the HSM is back.
//!
//! What this module does not do: it never creates, imports or exports
//! private keys, except [`generate`] for `tlog keygen --pkcs11`, which makes
//! a key that the token refuses to let out.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_ASN1};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

use super::SignError;

/// DER of the P-256 curve OID (1.2.840.10045.3.1.7), as `CKA_EC_PARAMS`
/// holds it (PKCS#11 2.40 section 2.3.3).
pub const P256_EC_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Least time between two re-initialisations of a module.
const REINIT_SPACING: Duration = Duration::from_secs(1);
/// Fewest signatures worth another thread in a batch.
const MIN_PER_THREAD: usize = 8;

/// Where the key is and how to reach it (`signer.pkcs11.*`).
#[derive(Clone)]
pub struct Pkcs11Settings {
    /// Path of the PKCS#11 library (`signer.pkcs11.module`).
    pub module: PathBuf,
    /// Label of the token that holds the key (`signer.pkcs11.token_label`).
    pub token_label: String,
    /// `CKA_LABEL` of the key pair (`signer.pkcs11.key_label`).
    pub key_label: String,
    /// The user PIN, read from `signer.pkcs11.pin_file`; never printed.
    pub pin: SecretString,
    /// Most sessions signing at once (`signer.pkcs11.sessions`).
    pub sessions: usize,
}

impl fmt::Debug for Pkcs11Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Settings")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("pin", &"[REDACTED]")
            .field("sessions", &self.sessions)
            .finish()
    }
}

/// Why the HSM key could not be opened or made. Each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// The library could not be loaded or initialised.
    #[error("couldn't load the PKCS#11 module {path} (signer.pkcs11.module): {cause}")]
    Module {
        /// The configured path.
        path: PathBuf,
        /// What the loader or `C_Initialize` said.
        cause: String,
    },
    /// No slot holds a token with the label.
    #[error(
        "no PKCS#11 token labelled {label:?} (signer.pkcs11.token_label); tokens found: {found}"
    )]
    NoToken {
        /// The configured label.
        label: String,
        /// Labels of the tokens that are present.
        found: String,
    },
    /// The token refused the PIN.
    #[error("the token {label:?} refused the PIN from signer.pkcs11.pin_file: {cause}")]
    Login {
        /// The token's label.
        label: String,
        /// Incorrect, locked, expired.
        cause: String,
    },
    /// No usable key pair has the label.
    #[error("no ECDSA P-256 key pair labelled {label:?} on token {token:?} (signer.pkcs11.key_label): {cause}; hint: create one with `tlog keygen --pkcs11`")]
    NoKey {
        /// The configured key label.
        label: String,
        /// The token's label.
        token: String,
        /// What is missing or wrong.
        cause: String,
    },
    /// `tlog keygen --pkcs11` would shadow a key that exists.
    #[error("the token {token:?} already has a key labelled {label:?} (signer.pkcs11.key_label); choose another label")]
    KeyExists {
        /// The configured key label.
        label: String,
        /// The token's label.
        token: String,
    },
    /// Any other PKCS#11 call failed.
    #[error("PKCS#11 call failed: {0}")]
    Call(String),
}

/// A short form of a cryptoki error: the function and the `CKR_` name.
fn describe(err: &CkError) -> String {
    match err {
        CkError::Pkcs11(rv, function) => format!("{function}: {rv:?}"),
        other => other.to_string(),
    }
}

impl From<CkError> for Pkcs11Error {
    fn from(err: CkError) -> Self {
        Pkcs11Error::Call(describe(&err))
    }
}

/// A loaded, initialised PKCS#11 library: one global state inside the
/// process (`C_Initialize` may be called once), shared by every key on it.
struct Module {
    ctx: Pkcs11,
    /// Bumped by each re-initialisation: sessions of an older generation are
    /// dead, and their handles may now name someone else's session, so they
    /// are forgotten, never closed.
    generation: AtomicU64,
    /// Held while re-initialising; the time of the last one.
    reinit: Mutex<Option<Instant>>,
}

impl Module {
    /// Finalises and initialises the library again: the only way to make
    /// some modules (SoftHSM2 among them) look for a token that went away
    /// and came back, or to drop a connection to a network HSM that broke.
    /// Skipped when another thread did it within [`REINIT_SPACING`].
    fn reinitialize(&self, path: &Path) -> Result<(), Pkcs11Error> {
        let mut last = self
            .reinit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < REINIT_SPACING) {
            return Ok(());
        }
        *last = Some(Instant::now());
        self.generation.fetch_add(1, Ordering::SeqCst);
        let _ = self.ctx.clone().finalize();
        initialize(&self.ctx, path)
    }
}

fn initialize(ctx: &Pkcs11, path: &Path) -> Result<(), Pkcs11Error> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(Pkcs11Error::Module {
            path: path.to_owned(),
            cause: describe(&e),
        }),
    }
}

/// Loads `module` once per process and initialises it; it is never
/// finalised except to re-initialise it.
fn module(path: &Path) -> Result<Arc<Module>, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(module) = modules.get(path) {
        return Ok(Arc::clone(module));
    }
    let failed = |cause: String| Pkcs11Error::Module {
        path: path.to_owned(),
        cause,
    };
    if !path.is_file() {
        return Err(failed("no such file".into()));
    }
    let ctx = Pkcs11::new(path).map_err(|e| failed(describe(&e)))?;
    initialize(&ctx, path)?;
    let module = Arc::new(Module {
        ctx,
        generation: AtomicU64::new(0),
        reinit: Mutex::new(None),
    });
    modules.insert(path.to_owned(), Arc::clone(&module));
    Ok(module)
}

/// The slot whose token carries `label`.
fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot, Pkcs11Error> {
    let mut found = Vec::new();
    for slot in ctx.get_slots_with_token()? {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        if !info.token_initialized() {
            continue;
        }
        if info.label() == label {
            return Ok(slot);
        }
        found.push(format!("{:?}", info.label()));
    }
    Err(Pkcs11Error::NoToken {
        label: label.to_owned(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    })
}

/// Logs the user in. Login is per token and application, so a second
/// session finds the user already logged in.
fn login(session: &Session, settings: &Pkcs11Settings) -> Result<(), Pkcs11Error> {
    match session.login(UserType::User, Some(&settings.pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(
            e @ CkError::Pkcs11(
                RvError::PinIncorrect
                | RvError::PinLocked
                | RvError::PinExpired
                | RvError::PinInvalid
                | RvError::PinLenRange,
                _,
            ),
        ) => Err(Pkcs11Error::Login {
            label: settings.token_label.clone(),
            cause: describe(&e),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The one object of `class` that carries the key label, an EC key.
fn find_key(
    session: &Session,
    settings: &Pkcs11Settings,
    class: ObjectClass,
) -> Result<ObjectHandle, Pkcs11Error> {
    // Token objects only: not our own session copies (see `session_copy`).
    let template = [
        Attribute::Token(true),
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC),
        Attribute::Label(settings.key_label.as_bytes().to_vec()),
    ];
    let no_key = |cause: String| Pkcs11Error::NoKey {
        label: settings.key_label.clone(),
        token: settings.token_label.clone(),
        cause,
    };
    let what = if class == ObjectClass::PRIVATE_KEY {
        "private"
    } else {
        "public"
    };
    match session.find_objects(&template)?.as_slice() {
        [] => Err(no_key(format!("no EC {what} key has the label"))),
        [handle] => Ok(*handle),
        many => Err(no_key(format!(
            "{} EC {what} keys have the label",
            many.len()
        ))),
    }
}

/// A copy of the private key as an object of `session` (`CKA_TOKEN` false),
/// or the token object itself if the token refuses to copy it.
///
/// The copy never leaves the HSM and keeps the original's `CKA_SENSITIVE`
/// and `CKA_EXTRACTABLE` (PKCS#11 3.0 section 5.7: C_CopyObject cannot
/// weaken them); it vanishes when the session closes. It halves the cost of a
/// signature on SoftHSM2, which re-reads a token object's file, under a file
/// lock, every time the object is used, and keeps session objects in memory.
fn session_copy(session: &Session, key: ObjectHandle) -> ObjectHandle {
    match session.copy_object(key, &[Attribute::Token(false)]) {
        Ok(copy) => copy,
        Err(err) => {
            tracing::debug!(error = %describe(&err), "signing with the token object itself");
            key
        }
    }
}

/// The DER `SubjectPublicKeyInfo` of the public key object `handle`,
/// which must be on P-256.
fn public_key_spki(session: &Session, handle: ObjectHandle) -> Result<Vec<u8>, String> {
    let attributes = session
        .get_attributes(handle, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(|e| describe(&e))?;
    let mut point = None;
    for attribute in attributes {
        match attribute {
            Attribute::EcParams(params) if params != P256_EC_PARAMS => {
                return Err("the key is not on P-256".into());
            }
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let point = point.ok_or("the public key has no CKA_EC_POINT")?;
    // CKA_EC_POINT is DER OCTET STRING (PKCS#11 2.40 section 2.3.3); a few
    // tokens return the bare point.
    let bare = match point.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        bare => bare,
    };
    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, bare)
        .map_err(|e| format!("the public key is not a P-256 point: {e}"))?;
    Ok(key
        .as_der()
        .map_err(|_| "couldn't encode the public key".to_owned())?
        .as_ref()
        .to_vec())
}

/// ASN.1 DER `ECDSA-Sig-Value` from a PKCS#11 `r || s` P-256 signature.
fn raw_to_der(raw: &[u8]) -> Result<Vec<u8>, SignError> {
    let signature = ecdsa::Signature::<p256::NistP256>::from_slice(raw).map_err(|_| {
        SignError(format!(
            "the token returned a {}-byte signature, not a P-256 r||s",
            raw.len()
        ))
    })?;
    Ok(signature.to_der().as_bytes().to_vec())
}

/// One logged-in session and the private key's handle in it.
struct Worker {
    /// Opened without close-on-drop: see [`Module::generation`].
    session: Session,
    key: ObjectHandle,
    /// The module generation the session was opened in.
    generation: u64,
}

impl Worker {
    fn sign(&self, digest: &[u8; 32]) -> Result<Vec<u8>, CkError> {
        self.session.sign(&Mechanism::Ecdsa, self.key, digest)
    }
}

/// An ECDSA P-256 key on a token, with a pool of logged-in sessions.
pub(crate) struct Pkcs11Key {
    module: Arc<Module>,
    settings: Pkcs11Settings,
    /// Sessions not signing right now.
    idle: Mutex<Vec<Worker>>,
}

impl Drop for Pkcs11Key {
    fn drop(&mut self) {
        self.drop_idle();
    }
}

impl Pkcs11Key {
    /// Opens the key and returns it with the DER SPKI of its public key,
    /// read from the token. Signs once to check that the private key is the
    /// public key's half.
    pub(crate) fn open(settings: Pkcs11Settings) -> Result<(Self, Vec<u8>), Pkcs11Error> {
        let module = module(&settings.module)?;
        let key = Self {
            module,
            settings,
            idle: Mutex::default(),
        };
        let worker = key.connect()?;
        let public = find_key(&worker.session, &key.settings, ObjectClass::PUBLIC_KEY)?;
        let spki =
            public_key_spki(&worker.session, public).map_err(|cause| Pkcs11Error::NoKey {
                label: key.settings.key_label.clone(),
                token: key.settings.token_label.clone(),
                cause,
            })?;
        let probe = b"tlog: does the private key match the public key?";
        let digest: [u8; 32] = Sha256::digest(probe).into();
        let der = raw_to_der(&worker.sign(&digest)?).map_err(|e| Pkcs11Error::Call(e.0))?;
        let verifier = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki)
            .map_err(|e| Pkcs11Error::Call(e.to_string()))?;
        if verifier.verify_sig(probe, &der).is_err() {
            return Err(Pkcs11Error::NoKey {
                label: key.settings.key_label.clone(),
                token: key.settings.token_label.clone(),
                cause: "the private key does not match the public key with the label".into(),
            });
        }
        key.put_back(worker);
        Ok((key, spki))
    }

    /// A new logged-in session with the private key found in it. If the
    /// token cannot be reached, the module is re-initialised once and the
    /// token looked for again.
    fn connect(&self) -> Result<Worker, Pkcs11Error> {
        match self.connect_once() {
            Err(Pkcs11Error::NoToken { .. } | Pkcs11Error::Call(_)) => {
                self.drop_idle();
                self.module.reinitialize(&self.settings.module)?;
                self.connect_once()
            }
            other => other,
        }
    }

    fn connect_once(&self) -> Result<Worker, Pkcs11Error> {
        let generation = self.module.generation.load(Ordering::SeqCst);
        let ctx = &self.module.ctx;
        let slot = find_token(ctx, &self.settings.token_label)?;
        let session = ctx.open_ro_session_no_drop(slot)?;
        let worker = login(&session, &self.settings)
            .and_then(|()| find_key(&session, &self.settings, ObjectClass::PRIVATE_KEY))
            .map(|key| session_copy(&session, key));
        match worker {
            Ok(key) => Ok(Worker {
                session,
                key,
                generation,
            }),
            Err(err) => {
                let _ = session.close();
                Err(err)
            }
        }
    }

    fn take(&self) -> Result<Worker, SignError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(worker) => Ok(worker),
            None => self.connect().map_err(|e| SignError(e.to_string())),
        }
    }

    fn put_back(&self, worker: Worker) {
        if worker.generation == self.module.generation.load(Ordering::SeqCst) {
            self.idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(worker);
        }
    }

    /// Closes a session, unless the module was re-initialised since it was
    /// opened (then its handle is dead, or someone else's).
    fn close(&self, worker: Worker) {
        if worker.generation == self.module.generation.load(Ordering::SeqCst) {
            let _ = worker.session.close();
        }
    }

    /// Closes every idle session: after one failed, the others belong to
    /// the same lost connection or login.
    fn drop_idle(&self) {
        let stale = std::mem::take(
            &mut *self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for worker in stale {
            self.close(worker);
        }
    }

    /// Signs `digests` on one session, reconnecting once if a pooled session
    /// turns out to be dead (the HSM restarted, the login was lost).
    fn sign_run(&self, digests: &[[u8; 32]]) -> Result<Vec<Vec<u8>>, SignError> {
        let mut worker = self.take()?;
        let mut reconnected = false;
        let mut out = Vec::with_capacity(digests.len());
        for digest in digests {
            let raw = match worker.sign(digest) {
                Ok(raw) => raw,
                Err(first) => {
                    self.close(worker);
                    self.drop_idle();
                    if reconnected {
                        return Err(SignError(describe(&first)));
                    }
                    reconnected = true;
                    tracing::warn!(error = %describe(&first), "HSM session failed; reconnecting");
                    worker = self.connect().map_err(|e| SignError(e.to_string()))?;
                    worker.sign(digest).map_err(|e| SignError(describe(&e)))?
                }
            };
            out.push(raw_to_der(&raw)?);
        }
        self.put_back(worker);
        Ok(out)
    }

    /// DER signature over a SHA-256 digest.
    pub(crate) fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        let mut signatures = self.sign_run(std::slice::from_ref(digest))?;
        Ok(signatures.remove(0))
    }

    /// DER signatures over `digests`, in order, made in parallel on up to
    /// `sessions` sessions.
    pub(crate) fn sign_digests(&self, digests: &[[u8; 32]]) -> Result<Vec<Vec<u8>>, SignError> {
        let threads = self
            .settings
            .sessions
            .min(digests.len() / MIN_PER_THREAD)
            .max(1);
        if threads == 1 {
            return self.sign_run(digests);
        }
        let chunk = digests.len().div_ceil(threads);
        let parts: Vec<Result<Vec<Vec<u8>>, SignError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = digests
                .chunks(chunk)
                .map(|part| scope.spawn(move || self.sign_run(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(SignError("a signing thread panicked".into())))
                })
                .collect()
        });
        let mut out = Vec::with_capacity(digests.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }
}

/// Creates an ECDSA P-256 key pair labelled `settings.key_label` on the
/// token, for a new log (`tlog keygen --pkcs11`), and returns the DER SPKI
/// of its public key.
///
/// The private key is a token object that is sensitive and not extractable
/// (`CKA_TOKEN`, `CKA_SENSITIVE` true, `CKA_EXTRACTABLE` false): the token
/// never reveals it, not even wrapped.
///
/// # Errors
/// As [`super::LogSigner::open_pkcs11`], and [`Pkcs11Error::KeyExists`] if a
/// key with the label is already there.
pub fn generate(settings: &Pkcs11Settings) -> Result<Vec<u8>, Pkcs11Error> {
    let module = module(&settings.module)?;
    let ctx = &module.ctx;
    let slot = find_token(ctx, &settings.token_label)?;
    let session = ctx.open_rw_session(slot)?;
    login(&session, settings)?;
    let label = Attribute::Label(settings.key_label.as_bytes().to_vec());
    if !session
        .find_objects(&[Attribute::Token(true), label.clone()])?
        .is_empty()
    {
        return Err(Pkcs11Error::KeyExists {
            label: settings.key_label.clone(),
            token: settings.token_label.clone(),
        });
    }
    let public_template = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(P256_EC_PARAMS.to_vec()),
        label.clone(),
    ];
    let private_template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        label,
    ];
    let (public, _private) = session.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &public_template,
        &private_template,
    )?;
    public_key_spki(&session, public).map_err(Pkcs11Error::Call)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_signature_becomes_der() {
        let mut raw = [0u8; 64];
        raw[31] = 1;
        raw[32] = 0x80; // s with its top bit set needs a leading zero in DER
        raw[63] = 2;
        let der = raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 0x21, 0x00]);
        assert_eq!(der.len(), 2 + 3 + 3 + 32);
        assert!(raw_to_der(&raw[..63]).is_err());
    }

    #[test]
    fn debug_never_shows_the_pin() {
        let settings = Pkcs11Settings {
            module: "/lib/x.so".into(),
            token_label: "t".into(),
            key_label: "k".into(),
            pin: SecretString::from("hunter2-pin"),
            sessions: 2,
        };
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2-pin"), "{text}");
        assert!(text.contains("REDACTED"));
    }
}
