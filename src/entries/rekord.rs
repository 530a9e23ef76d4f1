//! `rekord` 0.0.1: a detached signature over an artifact that travels with
//! the request, with the key that made it, in one of four PKI formats.
//!
//! Spec: rekor-v1.md T-01, T-06, X-02. Mirrors sigstore/rekor
//! `pkg/types/rekord/v0.0.1/entry.go` (`DecodeEntry`, the generated model's
//! `Validate`, `validate`, `fetchExternalEntities`, `Canonicalize`,
//! `IndexKeys`, `Insertable`) and `pkg/pki/{x509,ssh,minisign,pgp}`.
//!
//! The server hashes the artifact (SHA-256), checks it against `data.hash`
//! when one is given, and verifies the signature over the artifact bytes. The
//! canonical body keeps the format, the canonical signature and key, and the
//! hash; the artifact itself is dropped. There is no algorithm policy for this
//! kind (Rekor's `checkEntryAlgorithms` covers `hashedrekord` only).
//!
//! Formats: `x509` (ECDSA and RSA PKCS#1 v1.5 over SHA-256, pure Ed25519, as
//! sigstore's default verifiers), `ssh` (`SSHSIG`), `minisign`, `pgp`
//! (detached OpenPGP signatures, rekor-cli's default; see [`super::pgp`]).

use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use super::decoding::{object, spec_object, std_base64, string, to_base64, Digest, Violations};
use super::digest_signature::{self, HashAlgorithm};
use super::minisign::{MinisignKey, MinisignSignature};
use super::pgp::{PgpKey, PgpSignature};
use super::pki::{KeyAlgorithm, KeyError, PublicKey};
use super::ssh::{SshKey, SshSignature};
use super::{EntryError, Kind, Validated};

/// The only version of this kind.
pub(super) const API_VERSION: &str = "0.0.1";

/// `signature.format`'s enum, in the schema's order.
const FORMATS: [&str; 4] = ["pgp", "minisign", "x509", "ssh"];

fn invalid(msg: impl Into<String>) -> EntryError {
    EntryError::Invalid(msg.into())
}

/// `spec` as `DecodeEntry` reads it: base64 fields decoded, empty strings
/// and values of the wrong type treated as absent.
struct Decoded<'a> {
    signature: Option<SignatureFields<'a>>,
    data: Option<DataFields<'a>>,
}

struct SignatureFields<'a> {
    format: Option<&'a str>,
    content: Option<Vec<u8>>,
    /// `Some` when `publicKey` is an object; inside, its decoded content.
    public_key: Option<Option<Vec<u8>>>,
}

struct DataFields<'a> {
    hash: Option<Digest<'a>>,
    content: Vec<u8>,
}

/// A non-empty base64 string field, decoded; `what` names it in the error.
fn base64_field(
    map: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<Vec<u8>>, EntryError> {
    match string(map, key) {
        Some(text) if !text.is_empty() => std_base64(text)
            .map(Some)
            .map_err(|e| invalid(format!("failed parsing base64 data for {what}: {e}"))),
        _ => Ok(None),
    }
}

fn decode(spec: &Value) -> Result<Decoded<'_>, EntryError> {
    let spec = spec_object(spec)?;
    let signature = object(spec, "signature")
        .map(|s| {
            let content = base64_field(s, "content", "signature content")?;
            let public_key = object(s, "publicKey")
                .map(|k| base64_field(k, "content", "signature publicKey content"))
                .transpose()?;
            Ok::<_, EntryError>(SignatureFields {
                format: string(s, "format"),
                content,
                public_key,
            })
        })
        .transpose()?;
    let data = object(spec, "data")
        .map(|d| {
            Ok::<_, EntryError>(DataFields {
                hash: Digest::read(d, "hash"),
                content: base64_field(d, "content", "data content")?.unwrap_or_default(),
            })
        })
        .transpose()?;
    Ok(Decoded { signature, data })
}

/// The generated model's `Validate`: `data` first, then `signature`.
fn check_schema(d: &Decoded<'_>) -> Result<(), EntryError> {
    let mut v = Violations::default();
    match &d.data {
        None => v.required("data"),
        Some(data) => {
            if let Some(hash) = &data.hash {
                v.sha256_digest("data.hash", hash);
            }
        }
    }
    match &d.signature {
        None => v.required("signature"),
        Some(sig) => {
            if sig.content.is_none() {
                v.required("signature.content");
            }
            match sig.format {
                None => v.required("signature.format"),
                Some(f) if !FORMATS.contains(&f) => v.not_in_enum("signature.format", &FORMATS),
                Some(_) => {}
            }
            match &sig.public_key {
                None => v.required("signature.publicKey"),
                Some(None) => v.required("signature.publicKey.content"),
                Some(Some(_)) => {}
            }
        }
    }
    v.finish()
}

/// What the schema guarantees, pulled out of [`Decoded`].
struct Checked<'a> {
    format: &'a str,
    signature: Vec<u8>,
    key: Vec<u8>,
    hash: Option<&'a str>,
    artifact: Vec<u8>,
}

/// Rekor's cross-field `validate`, after the schema passed.
fn cross_check(d: Decoded<'_>) -> Result<Checked<'_>, EntryError> {
    let (Some(sig), Some(data)) = (d.signature, d.data) else {
        return Err(invalid("missing signature"));
    };
    let (Some(format), Some(signature), Some(Some(key))) =
        (sig.format, sig.content, sig.public_key)
    else {
        return Err(invalid("missing signature"));
    };
    let hash = match data.hash {
        Some(hash) => {
            let value = hash.value.unwrap_or_default();
            if value.is_empty() {
                return Err(invalid("missing hash value"));
            }
            if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid("invalid value for hash"));
            }
            Some(value)
        }
        None if data.content.is_empty() => {
            return Err(invalid("'content' must be specified for data"));
        }
        None => None,
    };
    Ok(Checked {
        format,
        signature,
        key,
        hash,
        artifact: data.content,
    })
}

/// A verified signature and key in their canonical forms.
struct Verified {
    signature: Vec<u8>,
    key: Vec<u8>,
    subjects: Vec<String>,
}

/// Validates a `rekord` 0.0.1 `spec`: decoding, schema, cross-field checks,
/// the artifact hash, then the signature over the artifact.
pub(super) fn validate(spec: &Value) -> Result<Validated, EntryError> {
    let decoded = decode(spec)?;
    check_schema(&decoded)?;
    let c = cross_check(decoded)?;
    let computed = hex::encode(Sha256::digest(&c.artifact));
    if let Some(given) = c.hash {
        if given != computed {
            return Err(invalid(format!("SHA mismatch: {computed} != {given}")));
        }
    }
    let verified = match c.format {
        "x509" => verify_x509(&c.signature, &c.key, &c.artifact),
        "ssh" => verify_ssh(&c.signature, &c.key, &c.artifact),
        "minisign" => verify_minisign(&c.signature, &c.key, &c.artifact),
        _ => verify_pgp(&c.signature, &c.key, &c.artifact),
    }
    .map_err(invalid)?;

    let mut index_keys = Vec::with_capacity(2 + verified.subjects.len());
    index_keys.push(hex::encode(Sha256::digest(&verified.key)));
    index_keys.extend(verified.subjects.iter().map(|s| s.to_lowercase()));
    index_keys.push(format!("sha256:{computed}"));
    let body = json!({
        "apiVersion": API_VERSION,
        "kind": Kind::Rekord.name(),
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": computed}},
            "signature": {
                "content": to_base64(&verified.signature),
                "format": c.format,
                "publicKey": {"content": to_base64(&verified.key)},
            },
        },
    });
    Ok(Validated {
        body,
        index_keys,
        // Only reachable with a hash of the empty artifact and a signature over it.
        not_insertable: c.artifact.is_empty().then_some("missing data content"),
    })
}

/// x509: the PEM key or certificate (chain) of `hashedrekord`, and sigstore's
/// default verifier for it: SHA-256 for ECDSA (any curve) and RSA PKCS#1
/// v1.5, pure Ed25519 over the artifact.
fn verify_x509(sig: &[u8], key_pem: &[u8], artifact: &[u8]) -> Result<Verified, String> {
    let key = PublicKey::parse(key_pem).map_err(|e| match e {
        KeyError::Invalid(m) | KeyError::Chain(m) => m,
    })?;
    match key.algorithm() {
        KeyAlgorithm::Ed25519 => {
            const FAILED: &str = "failed to verify signature";
            let bytes: &[u8; 32] = key.key_bytes().try_into().map_err(|_| FAILED.to_owned())?;
            let vk =
                ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| FAILED.to_owned())?;
            let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| FAILED.to_owned())?;
            ed25519_dalek::Verifier::verify(&vk, artifact, &sig).map_err(|_| FAILED.to_owned())?;
        }
        KeyAlgorithm::Ecdsa(_) | KeyAlgorithm::Rsa { .. } => {
            digest_signature::verify(&key, HashAlgorithm::Sha256, &Sha256::digest(artifact), sig)?;
        }
    }
    Ok(Verified {
        signature: sig.to_vec(),
        key: key.canonical_pem().to_vec(),
        subjects: key.subjects().to_vec(),
    })
}

fn verify_ssh(sig: &[u8], key: &[u8], artifact: &[u8]) -> Result<Verified, String> {
    let sig = SshSignature::parse(sig)?;
    let key = SshKey::parse(key)?;
    sig.verify(&key, artifact)?;
    Ok(Verified {
        signature: sig.canonical(),
        key: key.canonical()?,
        subjects: key.subjects(),
    })
}

fn verify_minisign(sig: &[u8], key: &[u8], artifact: &[u8]) -> Result<Verified, String> {
    let sig = MinisignSignature::parse(sig)?;
    let key = MinisignKey::parse(key)?;
    sig.verify(&key, artifact)?;
    Ok(Verified {
        signature: sig.canonical(),
        key: key.canonical(),
        subjects: Vec::new(),
    })
}

/// pgp: Rekor parses the signature, then the key, then verifies.
fn verify_pgp(sig: &[u8], key: &[u8], artifact: &[u8]) -> Result<Verified, String> {
    let sig = PgpSignature::parse(sig)?;
    let key = PgpKey::parse(key)?;
    sig.verify(&key, artifact)?;
    Ok(Verified {
        signature: sig.canonical(),
        key: key.canonical(),
        subjects: key.subjects(),
    })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rsa::KeySize;
    use ssh_key::private::Ed25519Keypair;
    use ssh_key::{HashAlg, LineEnding, PrivateKey, SshSig};

    use super::super::pki::Curve;
    use super::super::test_support::{b64, certificate, pem, san_email, CertSpec, TestKey};
    use super::super::{parse_for_insert, parse_proposed, parse_search, Entry};
    use super::*;

    // sigstore/rekor pkg/pki/x509/testdata/{ec.pub,hello_world.txt,hello_world.txt.sig}.
    const X509_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIxaAc+TaxYoQU0X9NNUJgWffbn6h\njuoEDPQQn80nX/Eus9I/t00ccNpcSrUw1+IPyGp1p9fgmL0DlBf05BNFNQ==\n-----END PUBLIC KEY-----\n";
    const X509_SIG: &str = "MEYCIQDiFwPAGqJa++V9r+poXTz/pSsC5RseGJIbh5RImy1IEwIhAI2fsry4mQzqWKB/byojL4nsCW8pTaUYt+z3IdS/8QYk";
    const HELLO: &[u8] = b"Hello, World!\n";
    // sigstore/rekor pkg/pki/ssh/testdata/{id_rsa.pub,hello_world.txt,hello_world.txt.sig}.
    const SSH_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDNiZqGzHyM/v0RU/EVmxeMevapvJID6/ZcvHBixjA8yZ+Fm08pNeNVZV0XaIKT1hI+/Jx7JoYo4KdeK3yf7b4MAo5dwTJL0z0Hwh+TNLZW6cti1HaNST+/SjgMrLCqG/d4hjzwZzr4PGJV9x4Roul2bl6LzfZtQhu5qJ7NFWMnmi+/9VY+IkBgZFx+NY1Rvq1GQucWGOpTzM4MR5rJY80Yl/fa0KAGTsD41ZPB7g2+6jZI1ZQGme5H7Ru/0ONDai3IbMNUPzmJUKq3Um/q6eN2EznT6UfXjlG2rDpBt9vxg8+8pUu0O/uzpbUTU2pDpBUnP4fdYdYXH+/2A63jlKfVCk1+xBnQpowK5x2l5yrmUWehoLRrGWnjiibYFul3Gn3/MnWOGXSb0E85YTD6F7jgiqMg5Gypm5MBAJ/A9Z/ZTFLDZgDWbAhovWpY0G8WlmxUPx3lIIlOVPNdxsB0nuTTw6ld82LVahCaljBiDoVK4mCIKfsGshb8dwyF6e5BBms= test@rekor.dev\n";
    const SSH_SIG: &str = concat!(
        "-----BEGIN SSH SIGNATURE-----\n",
        "U1NIU0lHAAAAAQAAAZcAAAAHc3NoLXJzYQAAAAMBAAEAAAGBAM2JmobMfIz+/RFT8RWbF4\n",
        "x69qm8kgPr9ly8cGLGMDzJn4WbTyk141VlXRdogpPWEj78nHsmhijgp14rfJ/tvgwCjl3B\n",
        "MkvTPQfCH5M0tlbpy2LUdo1JP79KOAyssKob93iGPPBnOvg8YlX3HhGi6XZuXovN9m1CG7\n",
        "mons0VYyeaL7/1Vj4iQGBkXH41jVG+rUZC5xYY6lPMzgxHmsljzRiX99rQoAZOwPjVk8Hu\n",
        "Db7qNkjVlAaZ7kftG7/Q40NqLchsw1Q/OYlQqrdSb+rp43YTOdPpR9eOUbasOkG32/GDz7\n",
        "ylS7Q7+7OltRNTakOkFSc/h91h1hcf7/YDreOUp9UKTX7EGdCmjArnHaXnKuZRZ6GgtGsZ\n",
        "aeOKJtgW6Xcaff8ydY4ZdJvQTzlhMPoXuOCKoyDkbKmbkwEAn8D1n9lMUsNmANZsCGi9al\n",
        "jQbxaWbFQ/HeUgiU5U813GwHSe5NPDqV3zYtVqEJqWMGIOhUriYIgp+wayFvx3DIXp7kEG\n",
        "awAAAARmaWxlAAAAAAAAAAZzaGE1MTIAAAGUAAAADHJzYS1zaGEyLTUxMgAAAYCKb6hW7f\n",
        "e+oN2hTje0ymbQbm6RCxvUID+qxA3uXpGaHXXOh2JDkjqTZE0aCbFIhrjLKsl5L4eu2Upn\n",
        "OmJf1og4Wi4qpMaFu1QS5j5OMzimJl/60iP0GklpQvfj/BaP2S2NoelTiHvZcbOUxtwVwX\n",
        "/ya5+MdB21mriZDXL8krEnx9XqHMga6ReCUJ1wN/IeA30xWg9k7acoR9q/UfaTauwbEa67\n",
        "upCfAWLSlQxfTd5LZpw2Re695vXRZnKT3Xf7vXVPhLSLAZBn2zHm+Mk++oy5VGAxjf8+o1\n",
        "yYSGv6xpiBynenZv50WffLyaZ1X1YtZ/WBiiz7lSdeulZAR3iDSWJYUDo7kREb68trygjV\n",
        "a68kEamlIMCDOo2wbWk8Z+yoYyT6qp9EbiWBuqexFonAnvabxOp3kQ4bGDeXkcjIyauhtZ\n",
        "Y92S+qadtwmi+4cLzo/yVEvIeNsA7NOGSpVI+fdOW45R8E1nQLnf8LczXRESVgv//9KMtx\n",
        "QM1YRBRG6BaBhg8=\n",
        "-----END SSH SIGNATURE-----\n",
    );
    const SSH_HELLO: &[u8] = b"Hello, ssh world!\n";
    // sigstore/rekor pkg/pki/minisign/testdata: minisign.pub, minisign_key_only.pub,
    // hello_world.txt.minisig; minisign_hashed.pub, hello_world_hashed.txt.minisig.
    const MINISIGN_KEY: &str = "untrusted comment: minisign public key 9D92931126AE543F\nRWQ/VK4mEZOSnVFf2NhEt9WV8zE1RcN8mtKeOO7mVjj/MCDvb5tSV6RD\n";
    const MINISIGN_SIG: &str = "untrusted comment: signature from minisign secret key\nRWQ/VK4mEZOSnVsP2aVAcwlCDu0V5VUqqGeE6mndH9v7wY4++PrZdB0HBRyVpt4/h0VDzQIvLenPpmTRSx1604Bac6Joz08phg4=\ntrusted comment: timestamp:1610131681\tfile:hello_world.txt\nSbpK5wWmI+aoiwXBitvDWszRT9dwH8ZMzVaGn+WHZQXz+xnnAWCTmikCYnVv67iffkmZr24wZmnMok6Fvv8HDQ==\n";
    const MINISIGN_HASHED_KEY: &str = "untrusted comment: minisign public key 71418543D227848\nRWRIeCI9VBgUB0FAABABUrdfRVLBsRhOC63S9bDOAeWkCmnT38a1sUDb";
    const MINISIGN_HASHED_SIG: &str = "untrusted comment: signature from minisign secret key\nRURIeCI9VBgUB9kPHyUwRtxZycb78g9wT6d+oRuXEKquv665OMM6CI64Z+hGcKiJg2ErfA50FCgmdiUw4EHErNMivjYajjO4EAQ=\ntrusted comment: timestamp:1643685548\tfile:hello_world.txt\thashed\ncueBI9ab3mX+ZGQoBFSq49wrxZMTrLjX1Q0LlNhUmnA7dIptKj/KrpbfDJDCPtbxd3lbeo0zKGVNwpW/EQo3Dw==\n";

    fn invalid(msg: &str) -> EntryError {
        EntryError::Invalid(msg.to_owned())
    }

    fn sig_bytes(text: &str) -> Vec<u8> {
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text).unwrap()
    }

    /// A request with keys out of JCS order; `hash` is put in when given.
    fn request(format: &str, sig: &[u8], key: &[u8], artifact: &[u8], hash: Option<&str>) -> Value {
        let mut data = json!({"content": b64(artifact)});
        if let Some(h) = hash {
            data["hash"] = json!({"value": h, "algorithm": "sha256"});
        }
        json!({"spec": {"signature": {"publicKey": {"content": b64(key)}, "content": b64(sig), "format": format},
                        "data": data},
               "kind": "rekord", "apiVersion": "0.0.1"})
    }

    fn submit(value: &Value) -> Result<Entry, EntryError> {
        parse_proposed(&serde_json::to_vec(value).unwrap())
    }

    /// The canonical body written out in JCS order.
    fn expected(format: &str, sig: &[u8], key: &[u8], artifact: &[u8]) -> String {
        format!(
            r#"{{"apiVersion":"0.0.1","kind":"rekord","spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","format":"{format}","publicKey":{{"content":"{}"}}}}}}}}"#,
            hex::encode(Sha256::digest(artifact)),
            b64(sig),
            b64(key)
        )
    }

    fn accepted(format: &str, sig: &[u8], key: &[u8], artifact: &[u8]) -> Entry {
        let entry = submit(&request(format, sig, key, artifact, None)).unwrap();
        assert_eq!(entry.kind, Kind::Rekord);
        entry
    }

    #[test]
    fn rekor_x509_vector_is_accepted_with_its_canonical_body_and_keys() {
        let sig = sig_bytes(X509_SIG);
        let entry = accepted("x509", &sig, X509_KEY.as_bytes(), HELLO);
        assert_eq!(
            String::from_utf8(entry.canonical).unwrap(),
            expected("x509", &sig, X509_KEY.as_bytes(), HELLO)
        );
        assert_eq!(
            entry.index_keys,
            [
                hex::encode(Sha256::digest(X509_KEY)),
                format!("sha256:{}", hex::encode(Sha256::digest(HELLO))),
            ]
        );
        // A given hash that matches changes nothing.
        let with_hash = request(
            "x509",
            &sig,
            X509_KEY.as_bytes(),
            HELLO,
            Some(&hex::encode(Sha256::digest(HELLO))),
        );
        assert_eq!(
            submit(&with_hash).unwrap().canonical,
            submit(&request("x509", &sig, X509_KEY.as_bytes(), HELLO, None))
                .unwrap()
                .canonical
        );
        // Another artifact does not verify.
        assert_eq!(
            submit(&request(
                "x509",
                &sig,
                X509_KEY.as_bytes(),
                b"Hello, World?\n",
                None
            ))
            .unwrap_err(),
            invalid("invalid signature when validating ASN.1 encoded signature")
        );
    }

    #[test]
    fn x509_keys_of_every_type_verify_over_the_artifact_with_sha256_or_pure_ed25519() {
        let artifact = b"rekord artifact".as_slice();
        let digest = Sha256::digest(artifact);
        // P-384 over SHA-256 (hashedrekord's policy refuses it; rekord has
        // none): made with `openssl pkeyutl -sign` over SHA-256("tlog test
        // artifact"), since aws-lc-rs signs only P-384 with SHA-384.
        const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEAi5rr5bfYmN7xLj2TE0jkmD5zWxplkzW\no9uhLZy8KxDY5H1xIDx0BHRlnwey6Q99gdkfsh6rciBHz0BFU90Iw7nEVUTaZbNE\neh9RL20ObWKxkQovSHdIHY4j0cTamz2b\n-----END PUBLIC KEY-----\n";
        const P384_SIG: &str = "MGQCMCptB3ZSrR3+Yl2Gpl+6yUNkya0HDvzCF45+YJyr7pMDEmQQGd+gAgU7rYUSpUcVCwIwW0L1Vk7rlohNtz4+zqCCs75TVpIGsOC4JrxKzc6V2ViHDv66ZfO+WL53D5jCGG0h";
        accepted(
            "x509",
            &sig_bytes(P384_SIG),
            P384_PEM.as_bytes(),
            b"tlog test artifact",
        );
        for key in [TestKey::ecdsa(Curve::P256), TestKey::rsa(KeySize::Rsa2048)] {
            let sig = key.sign_digest(&digest);
            let entry = accepted("x509", &sig, &key.public_pem(), artifact);
            assert_eq!(
                String::from_utf8(entry.canonical).unwrap(),
                expected("x509", &sig, &key.public_pem(), artifact)
            );
        }
        let TestKey::Ed25519(signing) = TestKey::ed25519() else {
            unreachable!()
        };
        let pure = ed25519_dalek::Signer::sign(&signing, artifact).to_bytes();
        let ed = TestKey::Ed25519(signing);
        accepted("x509", &pure, &ed.public_pem(), artifact);
        // Ed25519ph, which hashedrekord wants, is not what rekord verifies.
        let ph = ed.sign_digest(&sha2::Sha512::digest(artifact));
        assert_eq!(
            submit(&request("x509", &ph, &ed.public_pem(), artifact, None)).unwrap_err(),
            invalid("failed to verify signature")
        );
        let rsa = TestKey::rsa(KeySize::Rsa2048);
        let mut sig = rsa.sign_digest(&digest);
        sig[3] ^= 1;
        assert_eq!(
            submit(&request("x509", &sig, &rsa.public_pem(), artifact, None)).unwrap_err(),
            invalid("crypto/rsa: verification error")
        );
    }

    #[test]
    fn x509_certificates_index_their_sans_and_key_errors_are_raw() {
        let ca = TestKey::ecdsa(Curve::P256);
        let leaf = TestKey::ecdsa(Curve::P256);
        let mut spec = CertSpec::leaf("", "CA");
        spec.sans = vec![san_email("Dev@Example.com")];
        let cert = pem("CERTIFICATE", &certificate(&spec, &leaf.spki(), &ca));
        let artifact = b"signed by a certificate";
        let sig = leaf.sign_digest(&Sha256::digest(artifact));
        let entry = accepted("x509", &sig, &cert, artifact);
        assert_eq!(entry.index_keys[1], "dev@example.com");
        assert_eq!(
            submit(&request("x509", &sig, b"not a pem", artifact, None)).unwrap_err(),
            invalid("invalid public key: failure decoding PEM")
        );
    }

    #[test]
    fn a_pgp_signature_nested_5000_deep_is_invalid_on_a_small_stack() {
        use super::super::test_support::{nested_pgp_signature, on_small_stack};
        let proposal = request("pgp", &nested_pgp_signature(5000), b"key", HELLO, None);
        let err = on_small_stack(move || submit(&proposal).unwrap_err());
        assert!(
            matches!(&err, EntryError::Invalid(m) if m.ends_with("embedded signatures nested more than 8 deep")),
            "{err:?}"
        );
    }

    #[test]
    fn rekor_ssh_vector_is_re_armored_and_indexes_the_comment_email() {
        let entry = accepted("ssh", SSH_SIG.as_bytes(), SSH_KEY.as_bytes(), SSH_HELLO);
        // Canonical key: the line without its comment; signature: 64 columns.
        let key_line = SSH_KEY.trim_end().rsplit_once(' ').unwrap().0.to_owned() + "\n";
        let block = pem::parse(SSH_SIG).unwrap();
        let canonical_sig = pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        assert_ne!(canonical_sig, SSH_SIG);
        assert_eq!(
            String::from_utf8(entry.canonical).unwrap(),
            expected(
                "ssh",
                canonical_sig.as_bytes(),
                key_line.as_bytes(),
                SSH_HELLO
            )
        );
        assert_eq!(
            entry.index_keys,
            [
                hex::encode(Sha256::digest(&key_line)),
                "test@rekor.dev".to_owned(),
                format!("sha256:{}", hex::encode(Sha256::digest(SSH_HELLO))),
            ]
        );
        assert_eq!(
            submit(&request(
                "ssh",
                SSH_SIG.as_bytes(),
                SSH_KEY.as_bytes(),
                b"Hello, ssh world?\n",
                None
            ))
            .unwrap_err(),
            invalid("crypto/rsa: verification error")
        );
        // Options and comment lines before the key are skipped, as by Go.
        let with_options = format!("# keys\n\nno-pty,from=\"10.0.0.1\" {SSH_KEY}");
        let entry = accepted(
            "ssh",
            SSH_SIG.as_bytes(),
            with_options.as_bytes(),
            SSH_HELLO,
        );
        assert_eq!(entry.index_keys[0], hex::encode(Sha256::digest(&key_line)));
    }

    fn ed25519_ssh(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn ssh_sign(key: &PrivateKey, namespace: &str, hash: HashAlg, msg: &[u8]) -> Vec<u8> {
        SshSig::sign(key, namespace, hash, msg)
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap()
            .into_bytes()
    }

    fn ssh_pub(key: &PrivateKey, comment: &str) -> Vec<u8> {
        let mut public = key.public_key().clone();
        public.set_comment(comment);
        (public.to_openssh().unwrap() + "\n").into_bytes()
    }

    #[test]
    fn ssh_ed25519_signatures_verify_only_with_sha512_and_namespace_file() {
        let key = ed25519_ssh(7);
        let public = ssh_pub(&key, "not an email");
        let artifact = b"ssh artifact";
        let entry = accepted(
            "ssh",
            &ssh_sign(&key, "file", HashAlg::Sha512, artifact),
            &public,
            artifact,
        );
        assert_eq!(
            entry.index_keys.len(),
            2,
            "a comment that is no e-mail is not a subject"
        );
        let refusal = |sig: Vec<u8>, key: &[u8]| {
            submit(&request("ssh", &sig, key, artifact, None)).unwrap_err()
        };
        // Rekor re-armors with sha512 and verifies that: sha256 ones fail.
        assert_eq!(
            refusal(ssh_sign(&key, "file", HashAlg::Sha256, artifact), &public),
            invalid("ssh: signature did not verify")
        );
        assert_eq!(
            refusal(ssh_sign(&key, "git", HashAlg::Sha512, artifact), &public),
            invalid("invalid signature namespace: git")
        );
        assert_eq!(
            refusal(
                ssh_sign(&ed25519_ssh(8), "file", HashAlg::Sha512, artifact),
                &public
            ),
            invalid("ssh: signature did not verify")
        );
        assert_eq!(
            refusal(SSH_SIG.as_bytes().to_vec(), &public),
            invalid("ssh: signature type rsa-sha2-512 for key type ssh-ed25519")
        );
        assert_eq!(
            refusal(
                ssh_sign(&key, "file", HashAlg::Sha512, artifact),
                b"ssh-ed25519 AAAA"
            ),
            invalid("ssh: no key found")
        );
        assert_eq!(
            refusal(
                ssh_sign(&key, "file", HashAlg::Sha512, artifact),
                &vec![b'a'; 65_537]
            ),
            invalid("http: request body too large")
        );
    }

    #[test]
    fn malformed_ssh_signatures_get_gos_messages() {
        let key = ed25519_ssh(9);
        let public = ssh_pub(&key, "me@example.com");
        let artifact = b"x";
        let good = SshSig::sign(&key, "file", HashAlg::Sha512, artifact).unwrap();
        let wire = pem::parse(good.to_pem(LineEnding::LF).unwrap())
            .unwrap()
            .into_contents();
        let armor = |bytes: &[u8]| {
            let mut out = Vec::new();
            super::super::pki::encode_pem("SSH SIGNATURE", bytes, &mut out);
            out
        };
        let refusal =
            |sig: Vec<u8>| submit(&request("ssh", &sig, &public, artifact, None)).unwrap_err();
        assert_eq!(
            refusal(b"no pem here".to_vec()),
            invalid("unable to decode pem file")
        );
        assert_eq!(
            refusal(pem("PUBLIC KEY", &wire)),
            invalid("wrong pem block type: PUBLIC KEY. Expected SSH-SIGNATURE")
        );
        assert_eq!(
            refusal(armor(&wire[..20])),
            invalid("ssh: parse error in message type 0")
        );
        let mut v2 = wire.clone();
        v2[9] = 2;
        assert_eq!(
            refusal(armor(&v2)),
            invalid("unsupported signature version: 2")
        );
        let mut magic = wire.clone();
        magic[..6].copy_from_slice(b"SSHSIX");
        assert_eq!(
            refusal(armor(&magic)),
            invalid("invalid magic header: SSHSIX")
        );
        let text = String::from_utf8(armor(&wire)).unwrap();
        // Text around the block is ignored, as by Go's pem.Decode.
        let entry = accepted(
            "ssh",
            format!("junk\n{text}trailer").as_bytes(),
            &public,
            artifact,
        );
        assert_eq!(entry.index_keys[1], "me@example.com");
    }

    #[test]
    fn rekor_minisign_vectors_verify_plain_and_prehashed() {
        let entry = accepted(
            "minisign",
            MINISIGN_SIG.as_bytes(),
            MINISIGN_KEY.as_bytes(),
            HELLO,
        );
        let key_b64 = "RWQ/VK4mEZOSnVFf2NhEt9WV8zE1RcN8mtKeOO7mVjj/MCDvb5tSV6RD";
        let sig_line = MINISIGN_SIG.lines().nth(1).unwrap();
        assert_eq!(
            String::from_utf8(entry.canonical.clone()).unwrap(),
            expected(
                "minisign",
                format!("untrusted comment:\n{sig_line}").as_bytes(),
                key_b64.as_bytes(),
                HELLO
            )
        );
        assert_eq!(entry.index_keys[0], hex::encode(Sha256::digest(key_b64)));
        // The same key as a bare base64 line, or as its 32 raw bytes (key id then zero).
        assert_eq!(
            accepted(
                "minisign",
                MINISIGN_SIG.as_bytes(),
                key_b64.as_bytes(),
                HELLO
            )
            .canonical,
            entry.canonical
        );
        let raw = &sig_bytes(key_b64)[10..];
        let raw_entry = accepted("minisign", MINISIGN_SIG.as_bytes(), raw, HELLO);
        let zero_id = b64(&[b"Ed".as_slice(), &[0; 8], raw].concat());
        assert_eq!(
            raw_entry.index_keys[0],
            hex::encode(Sha256::digest(&zero_id))
        );
        // Two lines (no trusted comment) are enough.
        let two = MINISIGN_SIG.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(
            accepted("minisign", two.as_bytes(), MINISIGN_KEY.as_bytes(), HELLO).canonical,
            entry.canonical
        );
        // BLAKE2b-512 pre-hashed ("ED").
        accepted(
            "minisign",
            MINISIGN_HASHED_SIG.as_bytes(),
            MINISIGN_HASHED_KEY.as_bytes(),
            HELLO,
        );
        assert_eq!(
            submit(&request(
                "minisign",
                MINISIGN_HASHED_SIG.as_bytes(),
                MINISIGN_KEY.as_bytes(),
                HELLO,
                None
            ))
            .unwrap_err(),
            invalid("failed to verify signature")
        );
    }

    #[test]
    fn malformed_minisign_inputs_get_rekors_messages() {
        let refusal = |sig: &[u8], key: &[u8]| {
            submit(&request("minisign", sig, key, HELLO, None)).unwrap_err()
        };
        assert_eq!(
            refusal(b"one line", MINISIGN_KEY.as_bytes()),
            invalid("invalid signature provided: 1 lines detected")
        );
        assert_eq!(
            refusal(b"c\n!!!!", MINISIGN_KEY.as_bytes()),
            invalid("invalid signature provided: base64 decoding failed")
        );
        assert_eq!(
            refusal(b"c\nAAAA", MINISIGN_KEY.as_bytes()),
            invalid("invalid signature provided: incorrect size 3 detected")
        );
        assert_eq!(
            refusal(MINISIGN_SIG.as_bytes(), b"untrusted comment: x\nAAAA\n"),
            invalid("unable to read minisign public key: Invalid encoded public key")
        );
    }

    /// A valid x509 request as a JSON value, for breaking parts.
    fn valid() -> Value {
        request(
            "x509",
            &sig_bytes(X509_SIG),
            X509_KEY.as_bytes(),
            HELLO,
            None,
        )
    }

    fn refusal(edit: impl FnOnce(&mut Value)) -> EntryError {
        let mut value = valid();
        edit(&mut value);
        submit(&value).unwrap_err()
    }

    #[test]
    fn bad_base64_names_its_field() {
        for (path, what) in [
            (&["signature", "content"][..], "signature content"),
            (
                &["signature", "publicKey", "content"],
                "signature publicKey content",
            ),
            (&["data", "content"], "data content"),
        ] {
            let err =
                refusal(|v| *path.iter().fold(&mut v["spec"], |v, k| &mut v[*k]) = json!("AA*A"));
            assert_eq!(
                err,
                invalid(&format!(
                    "failed parsing base64 data for {what}: illegal base64 data at input byte 2"
                ))
            );
        }
    }

    #[test]
    fn schema_violations_are_listed_in_go_openapis_order() {
        let list =
            |lines: &[&str]| invalid(&format!("validation failure list:\n{}", lines.join("\n")));
        assert_eq!(
            refusal(|v| v["spec"] = json!({})),
            list(&["data in body is required", "signature in body is required"])
        );
        assert_eq!(
            refusal(|v| v["spec"]["signature"] = json!({"content": ""})),
            list(&[
                "signature.content in body is required",
                "signature.format in body is required",
                "signature.publicKey in body is required"
            ])
        );
        assert_eq!(
            refusal(|v| {
                v["spec"]["signature"]["format"] = json!("X509");
                v["spec"]["signature"]["publicKey"] = json!({"content": 5});
                v["spec"]["data"]["hash"] = json!({"algorithm": "sha1"});
            }),
            list(&[
                "data.hash.algorithm in body should be one of [sha256]",
                "data.hash.value in body is required",
                "signature.format in body should be one of [pgp minisign x509 ssh]",
                "signature.publicKey.content in body is required",
            ])
        );
        assert_eq!(
            refusal(|v| v["spec"] = json!([])),
            invalid("unsupported input type []interface {} for DecodeEntry")
        );
    }

    #[test]
    fn data_and_hash_cross_checks() {
        let digest = hex::encode(Sha256::digest(HELLO));
        let set_hash = |value: &str| {
            let value = value.to_owned();
            move |v: &mut Value| {
                v["spec"]["data"]["hash"] = json!({"algorithm": "sha256", "value": value})
            }
        };
        assert_eq!(refusal(set_hash("")), invalid("missing hash value"));
        assert_eq!(
            refusal(set_hash(&digest[..62])),
            invalid("invalid value for hash")
        );
        assert_eq!(
            refusal(set_hash(&format!("{}zz", &digest[..62]))),
            invalid("invalid value for hash")
        );
        assert_eq!(
            refusal(|v| v["spec"]["data"] = json!({})),
            invalid("'content' must be specified for data")
        );
        let other = hex::encode(Sha256::digest(b"other"));
        assert_eq!(
            refusal(set_hash(&other)),
            invalid(&format!("SHA mismatch: {digest} != {other}"))
        );
        // Go compares the hex strings: upper case does not match.
        let upper = digest.to_uppercase();
        assert_eq!(
            refusal(set_hash(&upper)),
            invalid(&format!("SHA mismatch: {digest} != {upper}"))
        );
    }

    // tests/fixtures/pgp: a GnuPG Ed25519 key and its detached signatures.
    const PGP_KEY: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pgp/a.pub.asc"
    ));
    const PGP_BINARY_SIG: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pgp/a.sig"
    ));
    const PGP_ARMORED_SIG: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pgp/a.sig.asc"
    ));
    const PGP_ARTIFACT: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pgp/artifact.txt"
    ));

    #[test]
    fn pgp_entries_store_the_armored_signature_and_gos_canonical_key() {
        let key = super::super::pgp::PgpKey::parse(PGP_KEY)
            .unwrap()
            .canonical();
        assert!(key.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nx"));
        // An armored signature is stored as sent.
        let entry = accepted("pgp", PGP_ARMORED_SIG, PGP_KEY, PGP_ARTIFACT);
        assert_eq!(
            String::from_utf8(entry.canonical).unwrap(),
            expected("pgp", PGP_ARMORED_SIG, &key, PGP_ARTIFACT)
        );
        assert_eq!(
            entry.index_keys,
            [
                hex::encode(Sha256::digest(&key)),
                "tlog-test@example.com".to_owned(),
                format!("sha256:{}", hex::encode(Sha256::digest(PGP_ARTIFACT))),
            ]
        );
        assert_eq!(
            super::super::pgp::search_key(PGP_KEY).unwrap(),
            entry.index_keys[0]
        );
        // A binary one is armored; the key may be binary too.
        let binary_key = super::super::armor::decode(PGP_KEY).unwrap().body;
        let entry = accepted("pgp", PGP_BINARY_SIG, &binary_key, PGP_ARTIFACT);
        let armored = super::super::armor::encode("PGP SIGNATURE", PGP_BINARY_SIG);
        assert_eq!(
            String::from_utf8(entry.canonical).unwrap(),
            expected("pgp", &armored, &key, PGP_ARTIFACT)
        );
        // Searching finds the same canonical body.
        let body = serde_json::to_vec(&request("pgp", PGP_BINARY_SIG, PGP_KEY, PGP_ARTIFACT, None))
            .unwrap();
        assert_eq!(
            parse_search(&body).unwrap().canonical,
            expected("pgp", &armored, &key, PGP_ARTIFACT).into_bytes()
        );
    }

    #[test]
    fn pgp_refusals_carry_gos_messages() {
        let refusal = |sig: &[u8], key: &[u8], artifact: &[u8]| {
            submit(&request("pgp", sig, key, artifact, None)).unwrap_err()
        };
        assert_eq!(
            refusal(PGP_BINARY_SIG, PGP_KEY, b"another artifact"),
            invalid("openpgp: invalid signature: EdDSA verification failure")
        );
        // An x509 PEM does not start with `-----BEGIN PGP`, so it is read as binary.
        // The signature is read before the key, as Rekor does.
        assert_eq!(
            refusal(b"bad", b"bad", PGP_ARTIFACT),
            invalid("invalid PGP signature: openpgp: invalid data: tag byte does not have MSB set")
        );
        assert_eq!(
            refusal(PGP_BINARY_SIG, X509_KEY.as_bytes(), PGP_ARTIFACT),
            invalid(
                "error reading binary PGP public key: openpgp: invalid data: tag byte does not have MSB set"
            )
        );
        assert_eq!(
            refusal(PGP_KEY, PGP_KEY, PGP_ARTIFACT),
            invalid("invalid PGP signature provided")
        );
    }

    #[test]
    fn an_empty_artifact_with_its_hash_can_be_searched_but_not_written() {
        let TestKey::Ed25519(signing) = TestKey::ed25519() else {
            unreachable!()
        };
        let sig = ed25519_dalek::Signer::sign(&signing, b"").to_bytes();
        let key = TestKey::Ed25519(signing).public_pem();
        let mut value = request(
            "x509",
            &sig,
            &key,
            b"",
            Some(&hex::encode(Sha256::digest(b""))),
        );
        value["spec"]["data"]
            .as_object_mut()
            .unwrap()
            .remove("content");
        let body = serde_json::to_vec(&value).unwrap();
        assert!(parse_search(&body).is_ok());
        assert_eq!(
            parse_for_insert(&body, |_| true).unwrap_err(),
            invalid("entry not insertable into log: missing data content")
        );
    }

    #[test]
    fn search_keys_hash_each_formats_canonical_key() {
        let key_line = SSH_KEY.trim_end().rsplit_once(' ').unwrap().0.to_owned() + "\n";
        assert_eq!(
            super::super::ssh::search_key(SSH_KEY.as_bytes()).unwrap(),
            hex::encode(Sha256::digest(key_line))
        );
        assert_eq!(
            super::super::minisign::search_key(MINISIGN_KEY.as_bytes()).unwrap(),
            hex::encode(Sha256::digest(
                "RWQ/VK4mEZOSnVFf2NhEt9WV8zE1RcN8mtKeOO7mVjj/MCDvb5tSV6RD"
            ))
        );
        assert!(super::super::ssh::search_key(b"nope").is_err());
        assert!(super::super::minisign::search_key(b"nope").is_err());
    }
}
