//! Test-only keys, signatures and certificates, generated fresh per test so
//! that nothing the code computes is hard-coded.
//!
//! PEM here is written by its own small encoder, independent of
//! `pki::encode_pem`, so the tests check the production encoder.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use core::fmt::Write as _;

use base64::Engine as _;
use ed25519_dalek::SigningKey;

use super::digest_signature::Prehashed;
use super::pki::{der_tlv, Curve};

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// PEM with `width`-column lines and `eol` line endings.
pub(crate) fn pem_with(tag: &str, der: &[u8], width: usize, eol: &str) -> Vec<u8> {
    let body = b64(der);
    let mut out = format!("-----BEGIN {tag}-----{eol}");
    for chunk in body.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str(eol);
    }
    write!(out, "-----END {tag}-----{eol}").unwrap();
    out.into_bytes()
}

/// Canonical PEM as Go's `pem.Encode` writes it.
pub(crate) fn pem(tag: &str, der: &[u8]) -> Vec<u8> {
    pem_with(tag, der, 64, "\n")
}

/// A freshly generated signing key of each kind hashedrekord accepts.
pub(crate) enum TestKey {
    Ecdsa(EcdsaKeyPair, Curve),
    Rsa(RsaKeyPair),
    Ed25519(SigningKey),
}

impl TestKey {
    pub(crate) fn ecdsa(curve: Curve) -> Self {
        let alg = match curve {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        };
        Self::Ecdsa(EcdsaKeyPair::generate(alg).unwrap(), curve)
    }

    pub(crate) fn rsa(size: KeySize) -> Self {
        Self::Rsa(RsaKeyPair::generate(size).unwrap())
    }

    pub(crate) fn ed25519() -> Self {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).unwrap();
        Self::Ed25519(SigningKey::from_bytes(&seed))
    }

    /// DER `SubjectPublicKeyInfo`.
    pub(crate) fn spki(&self) -> Vec<u8> {
        match self {
            Self::Ecdsa(k, _) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            Self::Rsa(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            Self::Ed25519(k) => {
                // SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING { key } }
                let mut der = vec![
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ];
                der.extend_from_slice(k.verifying_key().as_bytes());
                der
            }
        }
    }

    pub(crate) fn public_pem(&self) -> Vec<u8> {
        pem("PUBLIC KEY", &self.spki())
    }

    /// Signs a digest the way the matching Sigstore client does: ECDSA in
    /// ASN.1 DER, RSA PKCS#1 v1.5, Ed25519ph.
    pub(crate) fn sign_digest(&self, digest: &[u8]) -> Vec<u8> {
        match self {
            Self::Ecdsa(k, _) => {
                let alg = match digest.len() {
                    32 => &digest::SHA256,
                    48 => &digest::SHA384,
                    _ => &digest::SHA512,
                };
                let d = Digest::import_less_safe(digest, alg).unwrap();
                k.sign_digest(&d).unwrap().as_ref().to_vec()
            }
            Self::Rsa(k) => {
                let (alg, enc) = match digest.len() {
                    32 => (&digest::SHA256, &signature::RSA_PKCS1_SHA256),
                    48 => (&digest::SHA384, &signature::RSA_PKCS1_SHA384),
                    _ => (&digest::SHA512, &signature::RSA_PKCS1_SHA512),
                };
                let d = Digest::import_less_safe(digest, alg).unwrap();
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign_digest(enc, &d, &mut sig).unwrap();
                sig
            }
            Self::Ed25519(k) => {
                let pre = Prehashed::from_slice(digest).unwrap();
                k.sign_prehashed(pre, None).unwrap().to_bytes().to_vec()
            }
        }
    }

    /// Signs a whole message (for certificates): ECDSA P-256 with SHA-256 only.
    pub(crate) fn sign_message(&self, message: &[u8]) -> Vec<u8> {
        let Self::Ecdsa(k, Curve::P256) = self else {
            panic!("certificate issuers in tests are P-256 keys");
        };
        k.sign(&SystemRandom::new(), message)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

/// ECDSA DER `SEQUENCE { r, s }` to IEEE P1363 `r ‖ s`.
pub(crate) fn der_to_p1363(der: &[u8], scalar_len: usize) -> Vec<u8> {
    let (_, body, _) = der_tlv(der).unwrap();
    let (_, r, rest) = der_tlv(body).unwrap();
    let (_, s, _) = der_tlv(rest).unwrap();
    let mut out = Vec::new();
    for int in [r, s] {
        let int = &int[int.iter().position(|&b| b != 0).unwrap_or(int.len())..];
        out.extend(std::iter::repeat_n(0, scalar_len - int.len()));
        out.extend_from_slice(int);
    }
    out
}

// ---- A minimal DER writer for test certificates ----

pub(crate) fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    let byte = |n: usize| u8::try_from(n & 0xff).unwrap();
    if len < 0x80 {
        out.push(byte(len));
    } else if len < 0x100 {
        out.extend([0x81, byte(len)]);
    } else {
        out.extend([0x82, byte(len >> 8), byte(len)]);
    }
    out.extend_from_slice(body);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn name(common_name: &str) -> Vec<u8> {
    let cn = seq(&[
        vec![0x06, 0x03, 0x55, 0x04, 0x03],
        tlv(0x0c, common_name.as_bytes()),
    ]);
    seq(&[tlv(0x31, &cn)])
}

/// SAN `GeneralName` encoders.
pub(crate) fn san_dns(s: &str) -> Vec<u8> {
    tlv(0x82, s.as_bytes())
}
pub(crate) fn san_email(s: &str) -> Vec<u8> {
    tlv(0x81, s.as_bytes())
}
pub(crate) fn san_uri(s: &str) -> Vec<u8> {
    tlv(0x86, s.as_bytes())
}
pub(crate) fn san_ip(b: &[u8]) -> Vec<u8> {
    tlv(0x87, b)
}
/// Fulcio's username `OtherName`, OID 1.3.6.1.4.1.57264.1.7.
pub(crate) fn san_fulcio_username(s: &str) -> Vec<u8> {
    let oid = tlv(
        0x06,
        &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x07],
    );
    tlv(0xa0, &[oid, tlv(0xa0, &tlv(0x0c, s.as_bytes()))].concat())
}

/// Fulcio's OIDC issuer extension: 1.3.6.1.4.1.57264.1.8 holding a DER
/// `UTF8String`, or the deprecated 1.3.6.1.4.1.57264.1.1 holding the raw text.
pub(crate) fn fulcio_issuer(issuer: &str, legacy: bool) -> Vec<u8> {
    let last = if legacy { 0x01 } else { 0x08 };
    let oid = tlv(
        0x06,
        &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, last],
    );
    let value = if legacy {
        issuer.as_bytes().to_vec()
    } else {
        tlv(0x0c, issuer.as_bytes())
    };
    seq(&[oid, tlv(0x04, &value)])
}

/// What goes into a test certificate.
pub(crate) struct CertSpec<'a> {
    pub(crate) subject: &'a str,
    pub(crate) issuer: &'a str,
    /// `UTCTime` strings, `YYMMDDHHMMSSZ`.
    pub(crate) not_before: &'a str,
    pub(crate) not_after: &'a str,
    pub(crate) sans: Vec<Vec<u8>>,
    /// Adds `basicConstraints` CA=true.
    pub(crate) ca: bool,
    /// The CA's `pathLenConstraint`, if any.
    pub(crate) path_len: Option<u8>,
    /// More DER `Extension`s, written after the others.
    pub(crate) extensions: Vec<Vec<u8>>,
}

impl<'a> CertSpec<'a> {
    pub(crate) fn leaf(subject: &'a str, issuer: &'a str) -> Self {
        Self {
            subject,
            issuer,
            not_before: "240101000000Z",
            not_after: "240102000000Z",
            sans: Vec::new(),
            ca: false,
            path_len: None,
            extensions: Vec::new(),
        }
    }

    pub(crate) fn ca(subject: &'a str, issuer: &'a str) -> Self {
        Self {
            not_before: "230101000000Z",
            not_after: "300101000000Z",
            ca: true,
            ..Self::leaf(subject, issuer)
        }
    }
}

/// A v3 certificate for `subject_spki`, signed ECDSA-SHA256 by `issuer`.
pub(crate) fn certificate(spec: &CertSpec<'_>, subject_spki: &[u8], issuer: &TestKey) -> Vec<u8> {
    let ecdsa_sha256 = seq(&[tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])]);
    let mut extensions = Vec::new();
    if !spec.sans.is_empty() {
        let value = seq(&spec.sans);
        extensions.push(seq(&[tlv(0x06, &[0x55, 0x1d, 0x11]), tlv(0x04, &value)]));
    }
    if spec.ca {
        let mut bc = vec![vec![0x01, 0x01, 0xff]];
        bc.extend(spec.path_len.map(|n| vec![0x02, 0x01, n]));
        extensions.push(seq(&[
            tlv(0x06, &[0x55, 0x1d, 0x13]),
            vec![0x01, 0x01, 0xff],
            tlv(0x04, &seq(&bc)),
        ]));
    }
    extensions.extend(spec.extensions.iter().cloned());
    let mut tbs = vec![
        tlv(0xa0, &[0x02, 0x01, 0x02]),
        vec![0x02, 0x01, 0x01],
        ecdsa_sha256.clone(),
        name(spec.issuer),
        seq(&[
            tlv(0x17, spec.not_before.as_bytes()),
            tlv(0x17, spec.not_after.as_bytes()),
        ]),
        name(spec.subject),
        subject_spki.to_vec(),
    ];
    if !extensions.is_empty() {
        tbs.push(tlv(0xa3, &seq(&extensions)));
    }
    let tbs = seq(&tbs);
    let sig = issuer.sign_message(&tbs);
    seq(&[tbs, ecdsa_sha256, tlv(0x03, &[&[0u8][..], &sig].concat())])
}

/// An OpenPGP signature packet whose signatures embed one another `depth`
/// levels deep, each an embedded-signature subpacket (type 32) of the
/// unhashed area around it; nothing else in it is valid (version 4, a
/// binary signature, RSA, SHA-256, no hashed area, no values). 5,000 levels
/// fit in one packet.
pub(crate) fn nested_pgp_signature(depth: usize) -> Vec<u8> {
    const HEAD: [u8; 6] = [4, 0, 1, 8, 0, 0];
    let mut body = [&HEAD[..], &[0, 0]].concat();
    for _ in 0..depth {
        let len = body.len() + 1;
        let mut area = Vec::with_capacity(len + 5);
        if len < 192 {
            area.push(u8::try_from(len).unwrap());
        } else if len < 16320 {
            let rest = len - 192;
            area.push(u8::try_from((rest >> 8) + 192).unwrap());
            area.push(u8::try_from(rest & 0xff).unwrap());
        } else {
            area.push(255);
            area.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        }
        area.push(32);
        area.extend_from_slice(&body);
        let mut outer = HEAD.to_vec();
        outer.extend_from_slice(&u16::try_from(area.len()).unwrap().to_be_bytes());
        outer.extend_from_slice(&area);
        body = outer;
    }
    // A new-format signature packet header with a five-octet length.
    let mut packet = vec![0xc2, 255];
    packet.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    packet.extend_from_slice(&body);
    packet
}

/// Runs `f` on a thread with a 2 MiB stack (an HTTP worker thread's),
/// so that unbounded recursion shows up as a failed test.
pub(crate) fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .expect("the thread finished")
}
