//! `write_policy`: allowed keys, trusted roots with allowed identities, and
//! bearer tokens, through the real server. Certificates are made here, fresh
//! per test, by a small DER writer.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tlog::app::Application;
use tlog::config::{Config, IdentityConfig};

use crate::helpers::{spawn_with, test_config, ClientKey, TestApp};

const ISSUER: &str = "https://issuer.example";
const DSSE_REQUEST: &str = include_str!("../fixtures/v1/dsse-v01-request.json");
const INTOTO_REQUEST: &str = include_str!("../fixtures/v1/intoto-v002-request.json");

// ---- A minimal DER writer for certificates ----

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len();
    let mut out = vec![tag];
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(body);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn name(cn: &str) -> Vec<u8> {
    let attr = seq(&[vec![0x06, 0x03, 0x55, 0x04, 0x03], tlv(0x0c, cn.as_bytes())]);
    seq(&[tlv(0x31, &attr)])
}

fn ecdsa_sha256() -> Vec<u8> {
    seq(&[tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])])
}

pub(crate) fn pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der))
}

/// An ECDSA P-256 key that signs certificates and artifacts.
pub(crate) struct Key(EcdsaKeyPair);

impl Key {
    pub(crate) fn new() -> Self {
        Self(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap())
    }
    pub(crate) fn spki(&self) -> Vec<u8> {
        AsDer::<PublicKeyX509Der>::as_der(self.0.public_key())
            .unwrap()
            .as_ref()
            .to_vec()
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0
            .sign(&SystemRandom::new(), message)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

/// A CA: its key, name and self-signed certificate.
pub(crate) struct Ca {
    key: Key,
    name: &'static str,
    der: Vec<u8>,
}

impl Ca {
    pub(crate) fn new(name: &'static str) -> Self {
        let key = Key::new();
        // basicConstraints, critical, CA=true.
        let bc = seq(&[
            tlv(0x06, &[0x55, 0x1d, 0x13]),
            vec![0x01, 0x01, 0xff],
            tlv(0x04, &seq(&[vec![0x01, 0x01, 0xff]])),
        ]);
        let der = certificate(name, name, &key.spki(), &key, vec![bc]);
        Self { key, name, der }
    }

    /// A Fulcio-style leaf for `key`: an email SAN and the OIDC issuer
    /// extension (1.3.6.1.4.1.57264.1.8, a DER UTF8String).
    pub(crate) fn issue(&self, key: &Key, email: &str, issuer: &str) -> String {
        let san = seq(&[
            tlv(0x06, &[0x55, 0x1d, 0x11]),
            tlv(0x04, &seq(&[tlv(0x81, email.as_bytes())])),
        ]);
        let oidc = seq(&[
            tlv(
                0x06,
                &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x08],
            ),
            tlv(0x04, &tlv(0x0c, issuer.as_bytes())),
        ]);
        pem(
            "CERTIFICATE",
            &certificate("leaf", self.name, &key.spki(), &self.key, vec![san, oidc]),
        )
    }
}

fn certificate(
    subject: &str,
    issuer: &str,
    spki: &[u8],
    signer: &Key,
    extensions: Vec<Vec<u8>>,
) -> Vec<u8> {
    // Valid from 2020 to 2049: these tests are about names and keys; expiry
    // is covered by the policy's unit tests.
    let validity = seq(&[tlv(0x17, b"200101000000Z"), tlv(0x17, b"491231235959Z")]);
    let tbs = seq(&[
        tlv(0xa0, &[0x02, 0x01, 0x02]),
        vec![0x02, 0x01, 0x01],
        ecdsa_sha256(),
        name(issuer),
        validity,
        name(subject),
        spki.to_vec(),
        tlv(0xa3, &seq(&extensions)),
    ]);
    let sig = signer.sign(&tbs);
    seq(&[tbs, ecdsa_sha256(), tlv(0x03, &[&[0u8][..], &sig].concat())])
}

/// A hashedrekord of `artifact` signed by `key`, verified with `verifier`
/// (a public key or certificate PEM).
pub(crate) fn hashedrekord(key: &Key, verifier: &str, artifact: &[u8]) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(artifact))}},
            "signature": {
                "content": BASE64_STANDARD.encode(key.sign(artifact)),
                "publicKey": {"content": BASE64_STANDARD.encode(verifier)}
            }
        }
    })
}

fn write_file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("tlog-policy-{}", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}

fn alice() -> IdentityConfig {
    IdentityConfig {
        san: Some("alice@example.com".into()),
        san_regex: None,
        issuer: ISSUER.into(),
    }
}

async fn spawn_with_policy(edit: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config().await;
    edit(&mut config);
    config.validate().unwrap();
    spawn_with(config).await
}

/// Asserts a Rekor error body with `status` whose message names `rule`.
async fn assert_refused(response: reqwest::Response, status: u16, rule: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], status, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(rule), "{message} names {rule}");
}

#[tokio::test]
async fn listed_keys_are_logged_and_unlisted_keys_get_403() {
    let listed = ClientKey::new();
    let keys = write_file(&listed.pem);
    let app = spawn_with_policy(|c| c.write_policy.allowed_keys = Some(keys)).await;
    let response = app.create(&listed.hashedrekord(b"allowed")).await;
    assert_eq!(response.status(), 201);
    let response = app
        .create(&ClientKey::new().hashedrekord(b"stranger"))
        .await;
    assert_refused(response, 403, "write_policy.allowed_keys").await;
    assert_eq!(
        app.log.checkpoint().size,
        1,
        "the refused entry is not logged"
    );
    app.stop().await;
}

#[tokio::test]
async fn certificates_need_a_trusted_root_and_a_listed_identity() {
    let (root, stranger) = (Ca::new("fulcio"), Ca::new("stranger"));
    let roots = write_file(&pem("CERTIFICATE", &root.der));
    let app = spawn_with_policy(|c| {
        c.write_policy.trusted_roots = Some(roots);
        c.write_policy.allowed_identities = vec![alice()];
    })
    .await;
    let key = Key::new();
    let good = root.issue(&key, "alice@example.com", ISSUER);
    assert_eq!(
        app.create(&hashedrekord(&key, &good, b"a")).await.status(),
        201
    );
    let cases = [
        (
            root.issue(&key, "mallory@example.com", ISSUER),
            "write_policy.allowed_identities",
        ),
        (
            root.issue(&key, "alice@example.com", "https://other.example"),
            "write_policy.allowed_identities",
        ),
        (
            stranger.issue(&key, "alice@example.com", ISSUER),
            "write_policy.trusted_roots",
        ),
        (pem("PUBLIC KEY", &key.spki()), "write_policy.trusted_roots"),
    ];
    for (i, (verifier, rule)) in cases.into_iter().enumerate() {
        let entry = hashedrekord(&key, &verifier, format!("case {i}").as_bytes());
        assert_refused(app.create(&entry).await, 403, rule).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn dsse_and_intoto_signers_are_checked_too() {
    use x509_parser::prelude::{FromDer, X509Certificate};
    // The fixtures' verifier: the leaf certificate's key is what signed.
    let dsse: Value = serde_json::from_str(DSSE_REQUEST).unwrap();
    let verifier = dsse["spec"]["proposedContent"]["verifiers"][0]
        .as_str()
        .unwrap();
    let verifier = BASE64_STANDARD.decode(verifier).unwrap();
    let leaf = pem::parse_many(&verifier).unwrap().remove(0);
    let (_, cert) = X509Certificate::from_der(leaf.contents()).unwrap();
    let fixture_key = pem("PUBLIC KEY", cert.public_key().raw);

    let other = write_file(&ClientKey::new().pem);
    let app = spawn_with_policy(|c| c.write_policy.allowed_keys = Some(other)).await;
    let intoto: Value = serde_json::from_str(INTOTO_REQUEST).unwrap();
    for entry in [&dsse, &intoto] {
        assert_refused(app.create(entry).await, 403, "write_policy.allowed_keys").await;
    }
    app.stop().await;

    let listed = write_file(&fixture_key);
    let app = spawn_with_policy(|c| c.write_policy.allowed_keys = Some(listed)).await;
    assert_eq!(app.create(&dsse).await.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn creates_need_a_listed_bearer_token_when_tokens_are_configured() {
    let tokens = write_file("# CI runners\nrunner-token-1\n");
    let app = spawn_with_policy(|c| c.write_policy.bearer_tokens_file = Some(tokens)).await;
    let key = ClientKey::new();
    let post = |entry: Value, auth: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/api/v1/log/entries"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&entry).unwrap());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    for auth in [
        None,
        Some("Bearer runner-token-2"),
        Some("Basic runner-token-1"),
    ] {
        let response = post(key.hashedrekord(b"x"), auth).await.unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"tlog\""
        );
        assert_refused(response, 401, "bearer token").await;
    }
    let response = post(key.hashedrekord(b"x"), Some("Bearer runner-token-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // Reads stay open.
    assert_eq!(app.get("/api/v1/log").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn malformed_policy_files_stop_start_up_naming_the_setting() {
    let mut config = test_config().await;
    config.write_policy.allowed_keys = Some(write_file("not a key"));
    let err = Application::build(&config).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("write_policy.allowed_keys"),
        "{err:#}"
    );

    let mut config = test_config().await;
    config.write_policy.trusted_roots = Some(write_file(&pem("CERTIFICATE", &Ca::new("r").der)));
    config.write_policy.allowed_identities = vec![IdentityConfig {
        san: None,
        san_regex: Some("(unclosed".into()),
        issuer: ISSUER.into(),
    }];
    let err = Application::build(&config).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("allowed_identities[0].san_regex"),
        "{err:#}"
    );
}

#[tokio::test]
async fn rekord_x509_keys_follow_the_policy_and_other_formats_are_refused() {
    use crate::v1_rekord::{
        rekord, HELLO, MINISIGN_KEY, MINISIGN_SIG, SSH_HELLO, SSH_KEY, SSH_SIG, X509_KEY, X509_SIG,
    };
    let keys = write_file(X509_KEY);
    let app = spawn_with_policy(|c| c.write_policy.allowed_keys = Some(keys)).await;
    let x509 = rekord(
        "x509",
        &BASE64_STANDARD.decode(X509_SIG).unwrap(),
        X509_KEY.as_bytes(),
        HELLO,
    );
    assert_eq!(app.create(&x509).await.status(), 201);
    let minisig = rekord(
        "minisign",
        MINISIGN_SIG.as_bytes(),
        MINISIGN_KEY.as_bytes(),
        HELLO,
    );
    let ssh = rekord("ssh", SSH_SIG.as_bytes(), SSH_KEY.as_bytes(), SSH_HELLO);
    for (entry, format) in [(minisig, "minisign"), (ssh, "ssh")] {
        let response = app.create(&entry).await;
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{format} keys are not admitted"))
                && message.contains("write_policy.allowed_keys"),
            "{message}"
        );
    }
    app.stop().await;
}
