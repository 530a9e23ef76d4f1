//! `rekord` 0.0.1 through the API: create, fetch, search by proposed entry,
//! index lookups by hash, key and e-mail for each supported format, and an
//! artifact-carrying body at the configured size limit.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::helpers::{only_entry, spawn_app, spawn_with, test_config, verify_entry, TestApp};

// sigstore/rekor pkg/pki/x509/testdata/{ec.pub,hello_world.txt.sig}.
pub(crate) const X509_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIxaAc+TaxYoQU0X9NNUJgWffbn6h\njuoEDPQQn80nX/Eus9I/t00ccNpcSrUw1+IPyGp1p9fgmL0DlBf05BNFNQ==\n-----END PUBLIC KEY-----\n";
pub(crate) const X509_SIG: &str = "MEYCIQDiFwPAGqJa++V9r+poXTz/pSsC5RseGJIbh5RImy1IEwIhAI2fsry4mQzqWKB/byojL4nsCW8pTaUYt+z3IdS/8QYk";
// sigstore/rekor pkg/pki/minisign/testdata/{minisign.pub,hello_world.txt.minisig}.
pub(crate) const MINISIGN_KEY: &str = "untrusted comment: minisign public key 9D92931126AE543F\nRWQ/VK4mEZOSnVFf2NhEt9WV8zE1RcN8mtKeOO7mVjj/MCDvb5tSV6RD\n";
pub(crate) const MINISIGN_SIG: &str = "untrusted comment: signature from minisign secret key\nRWQ/VK4mEZOSnVsP2aVAcwlCDu0V5VUqqGeE6mndH9v7wY4++PrZdB0HBRyVpt4/h0VDzQIvLenPpmTRSx1604Bac6Joz08phg4=\ntrusted comment: timestamp:1610131681\tfile:hello_world.txt\nSbpK5wWmI+aoiwXBitvDWszRT9dwH8ZMzVaGn+WHZQXz+xnnAWCTmikCYnVv67iffkmZr24wZmnMok6Fvv8HDQ==\n";
/// The artifact both vectors above sign (rekor's `hello_world.txt`).
pub(crate) const HELLO: &[u8] = b"Hello, World!\n";
// sigstore/rekor pkg/pki/ssh/testdata/{id_rsa.pub,hello_world.txt.sig}.
pub(crate) const SSH_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDNiZqGzHyM/v0RU/EVmxeMevapvJID6/ZcvHBixjA8yZ+Fm08pNeNVZV0XaIKT1hI+/Jx7JoYo4KdeK3yf7b4MAo5dwTJL0z0Hwh+TNLZW6cti1HaNST+/SjgMrLCqG/d4hjzwZzr4PGJV9x4Roul2bl6LzfZtQhu5qJ7NFWMnmi+/9VY+IkBgZFx+NY1Rvq1GQucWGOpTzM4MR5rJY80Yl/fa0KAGTsD41ZPB7g2+6jZI1ZQGme5H7Ru/0ONDai3IbMNUPzmJUKq3Um/q6eN2EznT6UfXjlG2rDpBt9vxg8+8pUu0O/uzpbUTU2pDpBUnP4fdYdYXH+/2A63jlKfVCk1+xBnQpowK5x2l5yrmUWehoLRrGWnjiibYFul3Gn3/MnWOGXSb0E85YTD6F7jgiqMg5Gypm5MBAJ/A9Z/ZTFLDZgDWbAhovWpY0G8WlmxUPx3lIIlOVPNdxsB0nuTTw6ld82LVahCaljBiDoVK4mCIKfsGshb8dwyF6e5BBms= test@rekor.dev\n";
pub(crate) const SSH_HELLO: &[u8] = b"Hello, ssh world!\n";
pub(crate) const SSH_SIG: &str = concat!(
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

pub(crate) fn rekord(format: &str, sig: &[u8], key: &[u8], artifact: &[u8]) -> Value {
    json!({"apiVersion": "0.0.1", "kind": "rekord", "spec": {
        "signature": {"format": format, "content": BASE64_STANDARD.encode(sig),
                      "publicKey": {"content": BASE64_STANDARD.encode(key)}},
        "data": {"content": BASE64_STANDARD.encode(artifact)}}})
}

async fn created(app: &TestApp, entry: &Value) -> (String, Value) {
    let response = app.create(entry).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let (id, entry) = only_entry(&body);
    verify_entry(app, &id, &entry);
    let stored: Value = serde_json::from_slice(
        &BASE64_STANDARD
            .decode(entry["body"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    (id, stored)
}

async fn index(app: &TestApp, query: &Value) -> Vec<String> {
    let response = app.post_json("/api/v1/index/retrieve", query).await;
    assert_eq!(response.status(), 200);
    let mut ids: Vec<String> = response.json().await.unwrap();
    ids.sort();
    ids
}

#[tokio::test]
async fn rekord_entries_of_each_format_are_created_searched_and_indexed() {
    let app = spawn_app().await;
    let x509 = rekord(
        "x509",
        &BASE64_STANDARD.decode(X509_SIG).unwrap(),
        X509_KEY.as_bytes(),
        HELLO,
    );
    let ssh = rekord("ssh", SSH_SIG.as_bytes(), SSH_KEY.as_bytes(), SSH_HELLO);
    let minisign = rekord(
        "minisign",
        MINISIGN_SIG.as_bytes(),
        MINISIGN_KEY.as_bytes(),
        HELLO,
    );
    let (x509_id, body) = created(&app, &x509).await;
    let hello_hash = hex::encode(Sha256::digest(HELLO));
    assert_eq!(body["kind"], "rekord");
    assert_eq!(
        body["spec"]["data"],
        json!({"hash": {"algorithm": "sha256", "value": hello_hash}})
    );
    assert_eq!(body["spec"]["signature"]["format"], "x509");
    let (ssh_id, body) = created(&app, &ssh).await;
    assert!(
        body["spec"]["data"].get("content").is_none(),
        "the artifact is not stored"
    );
    let (minisign_id, _) = created(&app, &minisign).await;

    // The same proposal again is a conflict on the same entry.
    let again = app.create(&x509).await;
    assert_eq!(again.status(), 409);

    let query = json!({"entries": [minisign, ssh, x509]});
    let response = app.post_json("/api/v1/log/entries/retrieve", &query).await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    let ids: Vec<String> = results.iter().map(|r| only_entry(r).0).collect();
    assert_eq!(ids, [minisign_id.clone(), ssh_id.clone(), x509_id.clone()]);

    let mut both = vec![x509_id.clone(), minisign_id.clone()];
    both.sort();
    assert_eq!(
        index(&app, &json!({"hash": format!("sha256:{hello_hash}")})).await,
        both
    );
    for (format, key, id) in [
        ("x509", X509_KEY, &x509_id),
        ("ssh", SSH_KEY, &ssh_id),
        ("minisign", MINISIGN_KEY, &minisign_id),
    ] {
        let query =
            json!({"publicKey": {"format": format, "content": BASE64_STANDARD.encode(key)}});
        assert_eq!(
            index(&app, &query).await,
            std::slice::from_ref(id),
            "{format}"
        );
    }
    assert_eq!(
        index(&app, &json!({"email": "Test@Rekor.dev"})).await,
        std::slice::from_ref(&ssh_id)
    );
    let query = json!({"operator": "and", "email": "test@rekor.dev",
                       "hash": hex::encode(Sha256::digest(SSH_HELLO))});
    assert_eq!(index(&app, &query).await, [ssh_id]);
    app.stop().await;
}

// tests/fixtures/pgp: a GnuPG Ed25519 key and its binary detached signature.
const PGP_KEY: &[u8] = include_bytes!("../fixtures/pgp/a.pub.asc");
const PGP_SIG: &[u8] = include_bytes!("../fixtures/pgp/a.sig");
const PGP_ARTIFACT: &[u8] = include_bytes!("../fixtures/pgp/artifact.txt");

#[tokio::test]
async fn pgp_rekord_is_created_searched_and_indexed_by_key_and_email() {
    let app = spawn_app().await;
    let entry = rekord("pgp", PGP_SIG, PGP_KEY, PGP_ARTIFACT);
    let (id, body) = created(&app, &entry).await;
    let stored_sig = BASE64_STANDARD
        .decode(body["spec"]["signature"]["content"].as_str().unwrap())
        .unwrap();
    assert!(stored_sig.starts_with(b"-----BEGIN PGP SIGNATURE-----\n\n"));
    let response = app
        .post_json("/api/v1/log/entries/retrieve", &json!({"entries": [entry]}))
        .await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    assert_eq!(only_entry(&results[0]).0, id);
    let by_key =
        json!({"publicKey": {"format": "pgp", "content": BASE64_STANDARD.encode(PGP_KEY)}});
    assert_eq!(index(&app, &by_key).await, std::slice::from_ref(&id));
    let by_email = json!({"email": "tlog-test@example.com"});
    assert_eq!(index(&app, &by_email).await, [id]);
    let bad_key =
        json!({"publicKey": {"format": "pgp", "content": BASE64_STANDARD.encode(b"not a key")}});
    let response = app.post_json("/api/v1/index/retrieve", &bad_key).await;
    assert_eq!(response.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn rekord_refusals_are_400_with_rekors_message() {
    let app = spawn_app().await;
    let sig = BASE64_STANDARD.decode(X509_SIG).unwrap();
    let cases = [
        (
            rekord("x509", &sig, X509_KEY.as_bytes(), b"tampered"),
            "error processing entry: invalid signature when validating ASN.1 encoded signature",
        ),
        (
            rekord("pgp", &sig, X509_KEY.as_bytes(), HELLO),
            "error processing entry: invalid PGP signature: openpgp: invalid data: tag byte does not have MSB set",
        ),
        (
            rekord("ssh", &sig, SSH_KEY.as_bytes(), HELLO),
            "error processing entry: unable to decode pem file",
        ),
    ];
    for (entry, message) in cases {
        let response = app.create(&entry).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], message);
        let search = app
            .post_json("/api/v1/log/entries/retrieve", &json!({"entries": [entry]}))
            .await;
        assert_eq!(search.status(), 400);
    }
    let response = app
        .post_json(
            "/api/v1/index/retrieve",
            &json!({"publicKey": {"format": "minisign", "content": "AAAA"}}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "public key provided could not be parsed");
    app.stop().await;
}

/// rekord carries the artifact, so a body just under the limit must be
/// accepted whole and one just over it refused with 413.
#[tokio::test]
async fn an_artifact_body_just_under_the_limit_is_accepted_and_one_over_gets_413() {
    const LIMIT: usize = 1 << 20;
    let mut config = test_config().await;
    config.max_request_body = LIMIT;
    let app = spawn_with(config).await;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
        pair.public_key(),
    )
    .unwrap();
    let key = pem::encode_config(
        &pem::Pem::new("PUBLIC KEY", der.as_ref()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    let proposal = |artifact: &[u8]| {
        let sig = pair.sign(&SystemRandom::new(), artifact).unwrap();
        serde_json::to_vec(&rekord("x509", sig.as_ref(), key.as_bytes(), artifact)).unwrap()
    };
    // Size the artifact so that the whole body is within 4 bytes of the limit.
    let overhead = proposal(b"").len();
    let mut artifact = vec![0x5a; (LIMIT - overhead) / 4 * 3];
    let body = proposal(&artifact);
    assert!(
        body.len() <= LIMIT && LIMIT - body.len() < 8,
        "{}",
        body.len()
    );
    let post = |body: Vec<u8>| {
        app.client
            .post(app.url("/api/v1/log/entries"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = post(body).await.unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let stored = BASE64_STANDARD
        .decode(only_entry(&created).1["body"].as_str().unwrap())
        .unwrap();
    assert!(
        stored.len() < 1024,
        "the artifact is not kept: {} bytes",
        stored.len()
    );

    artifact.extend_from_slice(&[0x5a; 6]);
    let response = post(proposal(&artifact)).await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        format!("Request Entity Too Large. Limit set to {LIMIT}")
    );
    app.stop().await;
}
