//! The Sigstore `ClientTrustConfig` for this server's logs (issue 14, item
//! 6): a trusted root with each log's key and IDs, and a signing config
//! v0.2 whose `rekorTlogUrls` list the v1 and v2 logs. Spec:
//! rekor-v2-tiles.md C-05, C-06.
//!
//! The trusted root lists only the logs: certificate authorities, CT logs
//! and timestamp authorities are the operator's (for the public-good Fulcio
//! and TSA, copy them from the public trusted root). The signing config
//! names the public-good Fulcio, OIDC and TSA services, as C-06 does.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde_json::{json, Value};

/// One log, as the trusted root and the signing config list it.
#[derive(Debug, Clone)]
pub struct TrustedLog {
    /// Where clients reach it (`https://…`); for a v2 log its origin must
    /// be a substring of this (sigstore-js, C-04).
    pub base_url: String,
    /// 1 (Rekor v1) or 2 (Rekor v2).
    pub major_api_version: u8,
    /// DER `SubjectPublicKeyInfo` of its key.
    pub public_key_der: Vec<u8>,
    /// `PKIX_ECDSA_P256_SHA_256` or `PKIX_ED25519`.
    pub key_details: &'static str,
    /// Its 32-byte log ID (v1: SHA-256 of the SPKI; v2: the C2SP key ID).
    pub log_id: [u8; 32],
    /// RFC 3339 start of its key's validity.
    pub valid_from: String,
    /// RFC 3339 end of its key's validity: when the last v1 shard signed by
    /// it was frozen (`tlog log rotate` with a new key). `None` while a
    /// shard still signs with it; only such logs get a `rekorTlogUrls` entry.
    pub valid_until: Option<String>,
    /// Who runs it. Every log of one server has the same operator, so that
    /// sigstore-python, which keeps the highest API version per operator,
    /// signs with the v2 log.
    pub operator: String,
}

/// The `ClientTrustConfig` JSON (mediaType v0.1 around a v0.2 signing
/// config, which is what sigstore-python 4.x reads; C-06).
#[must_use]
pub fn client_trust_config(logs: &[TrustedLog]) -> Value {
    let tlogs: Vec<Value> = logs
        .iter()
        .map(|log| {
            let id = BASE64_STANDARD.encode(log.log_id);
            let mut valid_for = json!({"start": log.valid_from});
            if let Some(end) = &log.valid_until {
                valid_for["end"] = json!(end);
            }
            json!({
                "baseUrl": log.base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": BASE64_STANDARD.encode(&log.public_key_der),
                    "keyDetails": log.key_details,
                    "validFor": valid_for,
                },
                "logId": {"keyId": id},
                "checkpointKeyId": {"keyId": id},
                "operator": log.operator,
            })
        })
        .collect();
    // Clients sign with current logs only: a frozen shard's key verifies.
    let rekor_urls: Vec<Value> = logs
        .iter()
        .filter(|log| log.valid_until.is_none())
        .map(|log| {
            json!({
                "url": log.base_url,
                "majorApiVersion": log.major_api_version,
                "validFor": {"start": log.valid_from},
                "operator": log.operator,
            })
        })
        .collect();
    json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": tlogs,
            "certificateAuthorities": [],
            "ctlogs": [],
            "timestampAuthorities": [],
        },
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [{"url": "https://fulcio.sigstore.dev", "majorApiVersion": 1,
                "validFor": {"start": "2022-04-13T20:06:15.000Z"}, "operator": "sigstore.dev"}],
            "oidcUrls": [{"url": "https://oauth2.sigstore.dev/auth", "majorApiVersion": 1,
                "validFor": {"start": "2022-04-13T20:06:15.000Z"}, "operator": "sigstore.dev"}],
            "rekorTlogUrls": rekor_urls,
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaUrls": [{"url": "https://timestamp.sigstore.dev/api/v1/timestamp",
                "majorApiVersion": 1, "validFor": {"start": "2025-07-04T00:00:00Z"},
                "operator": "sigstore.dev"}],
            "tsaConfig": {"selector": "ANY"},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_log_is_listed_as_c06_shows() {
        let spki = BASE64_STANDARD
            .decode("MCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
            .unwrap();
        let log_id: [u8; 32] = BASE64_STANDARD
            .decode("vq/laqS7fNMj2xWz5ZkrGdda3Iy+Myyv+xoNjK0u7x8=")
            .unwrap()
            .try_into()
            .unwrap();
        let config = client_trust_config(&[TrustedLog {
            base_url: "https://rekor.example.test".into(),
            major_api_version: 2,
            public_key_der: spki,
            key_details: "PKIX_ED25519",
            log_id,
            valid_from: "2026-01-01T00:00:00Z".into(),
            valid_until: None,
            operator: "example.test".into(),
        }]);
        assert_eq!(
            config["trustedRoot"]["tlogs"][0],
            json!({ "baseUrl": "https://rekor.example.test",
              "hashAlgorithm": "SHA2_256",
              "publicKey": { "rawBytes": "MCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
                             "keyDetails": "PKIX_ED25519",
                             "validFor": { "start": "2026-01-01T00:00:00Z" } },
              "logId":           { "keyId": "vq/laqS7fNMj2xWz5ZkrGdda3Iy+Myyv+xoNjK0u7x8=" },
              "checkpointKeyId": { "keyId": "vq/laqS7fNMj2xWz5ZkrGdda3Iy+Myyv+xoNjK0u7x8=" },
              "operator": "example.test" })
        );
        assert_eq!(
            config["signingConfig"]["rekorTlogUrls"][0],
            json!({ "url": "https://rekor.example.test", "majorApiVersion": 2,
                    "validFor": { "start": "2026-01-01T00:00:00Z" },
                    "operator": "example.test" })
        );
    }
}
