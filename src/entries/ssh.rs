//! OpenSSH keys and `SSHSIG` signatures as Rekor's `ssh` PKI reads them, for
//! `rekord` entries and `publicKey` searches.
//!
//! Spec: rekor-v1.md T-06, E-08. Mirrors sigstore/rekor `pkg/pki/ssh/{ssh,
//! encode,verify}.go` on `golang.org/x/crypto/ssh`:
//!
//! - a key is the first `authorized_keys` line that parses (options allowed,
//!   blank and `#` lines skipped); its canonical form is `<type> <base64>\n`
//!   without the comment, and the comment is a subject when it is an e-mail;
//! - a signature is an armored `SSH SIGNATURE` (version 1, namespace `file`,
//!   hash `sha256` or `sha512`). Rekor re-armors it with hash `sha512` and
//!   verifies the re-armored form, so only SHA-512 signatures (what
//!   `ssh-keygen -Y sign` makes) verify. The key inside the signature is kept,
//!   but the submitted key is the one that must verify.
//!
//! `ssh-key` parses keys and checks the raw signatures; the `SSHSIG` wrapper
//! is read here so that the error messages are Go's.

use std::str::FromStr as _;

use ed25519_dalek::Verifier as _;
use memchr::memmem::Finder;
use sha2::{Digest as _, Sha256, Sha512};
use ssh_key::authorized_keys::Entry;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, PublicKey};

use super::decoding::to_base64;
use super::pki::encode_pem;

/// Go's `http.MaxBytesReader` limit in `NewPublicKey`.
const MAX_KEY_LEN: usize = 65_536;
const MAGIC: &[u8; 6] = b"SSHSIG";
const NAMESPACE: &str = "file";
const PEM_TYPE: &str = "SSH SIGNATURE";
/// The hash Rekor writes into the re-armored signature, and so verifies with.
const CANONICAL_HASH: &str = "sha512";

/// A parsed `authorized_keys` key.
#[derive(Debug)]
pub(crate) struct SshKey {
    key: PublicKey,
}

impl SshKey {
    /// `ssh.ParseAuthorizedKey` behind Rekor's 64 KiB reader.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_KEY_LEN {
            return Err("http: request body too large".to_owned());
        }
        // Go reads bytes; a line that is not UTF-8 cannot hold a key anyway.
        let text = String::from_utf8_lossy(bytes);
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .find_map(|line| Entry::from_str(line).ok())
            .map(|entry| Self {
                key: entry.public_key().clone(),
            })
            .ok_or_else(|| "ssh: no key found".to_owned())
    }

    /// `ssh.MarshalAuthorizedKey`: `<type> <base64 wire key>\n`.
    pub(crate) fn canonical(&self) -> Result<Vec<u8>, String> {
        let wire = self.key.to_bytes().map_err(|e| format!("ssh: {e}"))?;
        Ok(format!("{} {}\n", self.key.algorithm().as_str(), to_base64(&wire)).into_bytes())
    }

    /// The comment, when it is an e-mail address (Rekor's `Subjects`).
    pub(crate) fn subjects(&self) -> Vec<String> {
        let comment = self.key.comment();
        if is_email(comment) {
            vec![comment.to_owned()]
        } else {
            Vec::new()
        }
    }
}

/// The E-08 `publicKey` search key for format `ssh`: hex SHA-256 of the
/// canonical key line.
///
/// # Errors
/// The key does not parse.
pub(crate) fn search_key(bytes: &[u8]) -> Result<String, String> {
    Ok(hex::encode(Sha256::digest(
        SshKey::parse(bytes)?.canonical()?,
    )))
}

/// A decoded `SSHSIG` signature.
#[derive(Debug)]
pub(crate) struct SshSignature {
    /// The wire key embedded in the signature (kept in the canonical form).
    public_key: Vec<u8>,
    /// The `ssh.Signature` wire blob (format and signature bytes).
    signature: Vec<u8>,
    format: String,
    blob: Vec<u8>,
}

impl SshSignature {
    /// Rekor's `Decode`: PEM, the wrapper, its checks in Go's order, the
    /// inner signature and the embedded key.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let block = first_pem_block(bytes).ok_or_else(|| "unable to decode pem file".to_owned())?;
        if block.tag() != PEM_TYPE {
            return Err(format!(
                "wrong pem block type: {}. Expected SSH-SIGNATURE",
                block.tag()
            ));
        }
        let wrapped = Wrapped::read(block.contents()).ok_or_else(parse_error)?;
        if wrapped.version != 1 {
            return Err(format!(
                "unsupported signature version: {}",
                wrapped.version
            ));
        }
        if wrapped.magic != *MAGIC {
            return Err(format!(
                "invalid magic header: {}",
                String::from_utf8_lossy(&wrapped.magic)
            ));
        }
        if wrapped.namespace != NAMESPACE.as_bytes() {
            return Err(format!(
                "invalid signature namespace: {}",
                String::from_utf8_lossy(wrapped.namespace)
            ));
        }
        if !matches!(wrapped.hash_algorithm, b"sha256" | b"sha512") {
            return Err(format!(
                "unsupported hash algorithm: {}",
                String::from_utf8_lossy(wrapped.hash_algorithm)
            ));
        }
        let mut sig = Reader(wrapped.signature);
        let (format, blob) = sig.string().zip(sig.string()).ok_or_else(parse_error)?;
        let format = String::from_utf8(format.to_vec()).map_err(|_| parse_error())?;
        PublicKey::from_bytes(wrapped.public_key).map_err(|e| format!("ssh: {e}"))?;
        Ok(Self {
            public_key: wrapped.public_key.to_vec(),
            signature: wrapped.signature.to_vec(),
            format,
            blob: blob.to_vec(),
        })
    }

    /// Rekor's `Armor`: the signature re-wrapped with hash `sha512`, in Go's
    /// 64-column PEM.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let mut wire = Vec::with_capacity(self.public_key.len() + self.signature.len() + 64);
        wire.extend_from_slice(MAGIC);
        wire.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut wire, &self.public_key);
        put_string(&mut wire, NAMESPACE.as_bytes());
        put_string(&mut wire, b"");
        put_string(&mut wire, CANONICAL_HASH.as_bytes());
        put_string(&mut wire, &self.signature);
        let mut out = Vec::new();
        encode_pem(PEM_TYPE, &wire, &mut out);
        out
    }

    /// Verifies the canonical (SHA-512) signature over `message` with `key`.
    pub(crate) fn verify(&self, key: &SshKey, message: &[u8]) -> Result<(), String> {
        let key_data = key.key.key_data();
        let key_type = key.key.algorithm();
        if !format_fits_key(&self.format, &key_type) {
            return Err(format!(
                "ssh: signature type {} for key type {}",
                self.format,
                key_type.as_str()
            ));
        }
        let mut signed = Vec::with_capacity(6 + 4 * 4 + NAMESPACE.len() + 6 + 64);
        signed.extend_from_slice(MAGIC);
        put_string(&mut signed, NAMESPACE.as_bytes());
        put_string(&mut signed, b"");
        put_string(&mut signed, CANONICAL_HASH.as_bytes());
        put_string(&mut signed, &Sha512::digest(message));
        let failed = || verify_failure(key_data);
        let algorithm = Algorithm::new(&self.format).map_err(|_| failed())?;
        let signature =
            ssh_key::Signature::new(algorithm, self.blob.clone()).map_err(|_| failed())?;
        key_data.verify(&signed, &signature).map_err(|_| failed())
    }
}

/// The signature formats x/crypto/ssh accepts for a key type.
fn format_fits_key(format: &str, key: &Algorithm) -> bool {
    match key {
        Algorithm::Rsa { .. } => matches!(format, "ssh-rsa" | "rsa-sha2-256" | "rsa-sha2-512"),
        other => format == other.as_str(),
    }
}

/// x/crypto/ssh's failure for each key type (RSA reports `crypto/rsa`'s).
fn verify_failure(key: &KeyData) -> String {
    if key.is_rsa() {
        "crypto/rsa: verification error".to_owned()
    } else {
        "ssh: signature did not verify".to_owned()
    }
}

fn parse_error() -> String {
    "ssh: parse error in message type 0".to_owned()
}

/// Go's `pem.Decode`: the first well-formed block, text around it ignored.
///
/// Linear in the input, however many markers it holds: a `-----BEGIN ` is
/// tried only when no other one comes before the first `-----END ` after
/// it (a body holding a marker is never valid base64; one in a header line
/// is not supported), and the search stops when no `-----END ` is left. Each
/// marker search starts where the last one ended, and the blocks tried do
/// not overlap, so every byte is read a bounded number of times.
fn first_pem_block(text: &[u8]) -> Option<pem::Pem> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    let (begins, ends) = (Finder::new(BEGIN), Finder::new(END));
    let mut candidate = begins.find(text);
    // The first END after the current candidate's BEGIN.
    let mut end: Option<usize> = None;
    while let Some(at) = candidate {
        let body = at + BEGIN.len();
        let e = match end {
            Some(e) if e >= body => e,
            _ => body + ends.find(&text[body..])?,
        };
        end = Some(e);
        let next = begins.find(&text[at + 1..]).map(|i| at + 1 + i);
        if next.is_none_or(|n| n > e) {
            #[cfg(test)]
            PEM_ATTEMPTS.with(|n| n.set(n.get() + 1));
            if let Ok(block) = pem::parse(&text[at..]) {
                return Some(block);
            }
        }
        candidate = next;
    }
    None
}

#[cfg(test)]
thread_local! {
    /// Blocks [`first_pem_block`] handed to the PEM parser on this thread.
    static PEM_ATTEMPTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The `WrappedSig` struct as `ssh.Unmarshal` reads it: every field present
/// and nothing left over.
struct Wrapped<'a> {
    magic: [u8; 6],
    version: u32,
    public_key: &'a [u8],
    namespace: &'a [u8],
    hash_algorithm: &'a [u8],
    signature: &'a [u8],
}

impl<'a> Wrapped<'a> {
    fn read(bytes: &'a [u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let magic = r.take(6)?.try_into().ok()?;
        let version = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        let public_key = r.string()?;
        let namespace = r.string()?;
        let _reserved = r.string()?;
        let hash_algorithm = r.string()?;
        let signature = r.string()?;
        r.0.is_empty().then_some(Self {
            magic,
            version,
            public_key,
            namespace,
            hash_algorithm,
            signature,
        })
    }
}

/// An SSH wire-format reader (RFC 4251 `string`s).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        self.take(usize::try_from(len).ok()?)
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// govalidator's `IsEmail`, reduced to what a key comment can be checked by:
/// one `@`, a non-empty local part, a dotted domain, no spaces.
pub(super) fn is_email(value: &str) -> bool {
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !value.contains(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "-----BEGIN X-----\nAQID\n-----END X-----\n";

    /// The block found and how many candidates went to the PEM parser.
    fn attempts(text: &str) -> (Option<Vec<u8>>, usize) {
        PEM_ATTEMPTS.with(|n| n.set(0));
        let block = first_pem_block(text.as_bytes()).map(|b| b.contents().to_vec());
        (block, PEM_ATTEMPTS.with(std::cell::Cell::get))
    }

    #[test]
    fn begin_markers_without_an_end_are_not_parsed_one_by_one() {
        // Each parse would scan to the end of the input: quadratic.
        assert_eq!(attempts(&"-----BEGIN ".repeat(10_000)), (None, 0));
        assert_eq!(attempts(&BLOCK.replace("END", "EDN")), (None, 0));
    }

    #[test]
    fn the_first_good_block_is_found_past_broken_ones_in_few_attempts() {
        let ok = Some(vec![1, 2, 3]);
        assert_eq!(attempts(BLOCK), (ok.clone(), 1));
        // Markers that open no block before the END are skipped unparsed.
        let text = format!(
            "junk\n{}{BLOCK}trailer",
            "-----BEGIN X-----\n".repeat(10_000)
        );
        assert_eq!(attempts(&text), (ok.clone(), 1));
        // A block that fails (its END names another type) gives way to the next.
        let text = format!("-----BEGIN Y-----\nAQID\n-----END Z-----\n{BLOCK}");
        assert_eq!(attempts(&text), (ok, 2));
    }
}
