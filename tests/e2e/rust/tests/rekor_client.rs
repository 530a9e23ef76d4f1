//! The `sigstore` crate's Rekor v1 client against a real tlog server.
//!
//! `create_log_entry` uploads hashedrekord entries; `get_log_entry_by_index`,
//! `get_log_entry_by_uuid` and `search_log_query` fetch them; the crate's own
//! `LogEntry::verify_inclusion` (inclusion proof + signed checkpoint over the
//! re-canonicalized body) and `LogInfo::verify_consistency` check them against the key
//! from `get_public_key`. The crate parses single-entry responses by byte offsets
//! (`parse_response`), so this also pins L-01's exact shape.

mod server;

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use sha2::{Digest, Sha256};
use sigstore::crypto::{CosignVerificationKey, SigningScheme};
use sigstore::rekor::apis::configuration::Configuration;
use sigstore::rekor::apis::{entries_api, pubkey_api, tlog_api};
use sigstore::rekor::models::hashedrekord::{
    AlgorithmKind, Data, Hash, PublicKey, Signature, Spec,
};
use sigstore::rekor::models::log_entry::Body;
use sigstore::rekor::models::{LogEntry, ProposedEntry, SearchLogQuery};

fn config(base_url: &str) -> Configuration {
    Configuration {
        base_path: base_url.to_string(),
        ..Default::default()
    }
}

fn hashedrekord(artifact: &[u8]) -> ProposedEntry {
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    let pem = signer
        .to_sigstore_keypair()
        .unwrap()
        .public_key_to_pem()
        .unwrap();
    let signature = signer.sign(artifact).unwrap();
    ProposedEntry::Hashedrekord {
        api_version: "0.0.1".into(),
        spec: Spec::new(
            Signature::new(B64.encode(signature), PublicKey::new(B64.encode(pem))),
            Data::new(Hash::new(
                AlgorithmKind::sha256,
                hex(&Sha256::digest(artifact)),
            )),
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn log_key(conf: &Configuration) -> CosignVerificationKey {
    let pem = pubkey_api::get_public_key(conf, None)
        .await
        .expect("publicKey");
    CosignVerificationKey::from_pem(pem.as_bytes(), &SigningScheme::ECDSA_P256_SHA256_ASN1)
        .expect("log key")
}

fn same_entry(a: &LogEntry, b: &LogEntry) {
    assert_eq!(a.log_index, b.log_index);
    assert_eq!(a.log_i_d, b.log_i_d);
    assert_eq!(a.integrated_time, b.integrated_time);
    assert_eq!(a.body, b.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_fetch_and_verify_hashedrekord() {
    let server = server::Server::start();
    let conf = config(&server.base_url);
    let key = log_key(&conf).await;

    let mut created = Vec::new();
    for i in 0..3 {
        let entry = entries_api::create_log_entry(
            &conf,
            hashedrekord(format!("sigstore-rs {i}").as_bytes()),
        )
        .await
        .expect("create_log_entry");
        assert_eq!(entry.log_index, i);
        assert!(matches!(entry.body, Body::hashedrekord(_)));
        let uuid = entry.uuid.clone().expect("uuid");
        assert_eq!(uuid.len(), 80);
        entry
            .verify_inclusion(&key)
            .expect("inclusion proof and checkpoint of the create response");
        created.push(entry);
    }

    for entry in &created {
        let uuid = entry.uuid.as_deref().unwrap();
        let by_index = entries_api::get_log_entry_by_index(&conf, entry.log_index as i32)
            .await
            .expect("get_log_entry_by_index");
        same_entry(&by_index, entry);
        assert_eq!(by_index.uuid.as_deref(), Some(uuid));
        by_index.verify_inclusion(&key).expect("inclusion by index");

        let by_uuid = entries_api::get_log_entry_by_uuid(&conf, uuid)
            .await
            .expect("get_log_entry_by_uuid");
        same_entry(&by_uuid, entry);
        by_uuid.verify_inclusion(&key).expect("inclusion by uuid");
    }

    // search_log_query hands back the raw JSON array.
    let query = SearchLogQuery {
        entry_uuids: Some(created.iter().map(|e| e.uuid.clone().unwrap()).collect()),
        log_indexes: None,
        entries: None,
    };
    let raw = entries_api::search_log_query(&conf, query)
        .await
        .expect("search_log_query");
    let found: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&raw).unwrap();
    assert_eq!(found.len(), 3);
    for (item, entry) in found.iter().zip(&created) {
        assert_eq!(
            item.keys().collect::<Vec<_>>(),
            vec![entry.uuid.as_ref().unwrap()]
        );
    }

    // The log's own state, and consistency from the first entry on.
    let first = created[0].verification.inclusion_proof.clone().unwrap();
    let info = tlog_api::get_log_info(&conf).await.expect("get_log_info");
    assert_eq!(info.tree_size, 3);
    info.signed_tree_head
        .verify_signature(&key)
        .expect("signed tree head");
    let proof = tlog_api::get_log_proof(&conf, 3, Some("1"), None)
        .await
        .expect("get_log_proof");
    let mut old_root = [0u8; 32];
    old_root.copy_from_slice(&hex_decode(&first.root_hash));
    assert_eq!(first.tree_size, 1);
    info.verify_consistency(1, &old_root, &proof, &key)
        .expect("consistency 1 -> 3");

    // Negative cases: another log key, a tampered body, a tampered proof.
    let other = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap()
        .to_verification_key()
        .unwrap();
    assert!(
        created[2].verify_inclusion(&other).is_err(),
        "another log key must not verify"
    );
    assert!(info
        .verify_consistency(1, &old_root, &proof, &other)
        .is_err());

    let mut tampered = created[2].clone();
    let Body::hashedrekord(ref mut h) = tampered.body else {
        unreachable!()
    };
    let digest = h.spec["data"]["hash"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = if digest.starts_with('0') { "1" } else { "0" };
    h.spec["data"]["hash"]["value"] = format!("{flipped}{}", &digest[1..]).into();
    assert!(
        tampered.verify_inclusion(&key).is_err(),
        "a tampered body must not verify"
    );

    let mut tampered = created[2].clone();
    let proof = tampered.verification.inclusion_proof.as_mut().unwrap();
    proof.hashes[0] = hex(&Sha256::digest(b"not the sibling"));
    assert!(
        tampered.verify_inclusion(&key).is_err(),
        "a tampered proof must not verify"
    );

    let mut wrong_old = old_root;
    wrong_old[0] ^= 1;
    let proof = tlog_api::get_log_proof(&conf, 3, Some("1"), None)
        .await
        .unwrap();
    assert!(info
        .verify_consistency(1, &wrong_old, &proof, &key)
        .is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_and_invalid_entries_are_errors() {
    let server = server::Server::start();
    let conf = config(&server.base_url);
    let entry = hashedrekord(b"sigstore-rs duplicate");
    entries_api::create_log_entry(&conf, entry.clone())
        .await
        .expect("first upload");
    match entries_api::create_log_entry(&conf, entry).await {
        Err(sigstore::rekor::apis::Error::ResponseError(r)) => {
            assert_eq!(r.status.as_u16(), 409, "{}", r.content);
            let body: serde_json::Value = serde_json::from_str(&r.content).unwrap();
            assert_eq!(body["code"], 409);
        }
        other => panic!("a duplicate must be 409, got {other:?}"),
    }

    // The signature is over another artifact than the digest claims.
    let ProposedEntry::Hashedrekord {
        api_version,
        mut spec,
    } = hashedrekord(b"signed")
    else {
        unreachable!()
    };
    spec.data.hash.value = hex(&Sha256::digest(b"claimed"));
    match entries_api::create_log_entry(&conf, ProposedEntry::Hashedrekord { api_version, spec })
        .await
    {
        Err(sigstore::rekor::apis::Error::ResponseError(r)) => {
            assert_eq!(r.status.as_u16(), 400, "{}", r.content)
        }
        other => panic!("a bad signature must be 400, got {other:?}"),
    }
    match entries_api::get_log_entry_by_index(&conf, 7).await {
        Err(sigstore::rekor::apis::Error::ResponseError(r)) => assert_eq!(r.status.as_u16(), 404),
        other => panic!("a missing index must be 404, got {other:?}"),
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
