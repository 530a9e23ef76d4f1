//! Shared by the kind parser targets: every input is fed to the parsers twice,
//! as a raw request body (the seed corpus holds real requests) and split into
//! fields placed in a valid template of the kind, so that mutations reach key
//! parsing and signature verification instead of stopping at the JSON.
//!
//! One function per target holds what the target does with an input, so the
//! regression test (`tests/fuzz_regressions.rs`) runs the corpus through the
//! very same code.

// Each target uses its own function only.
#![allow(dead_code)]

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};

/// Runs every public entry point on one body; none may panic.
pub fn parse_all(body: &[u8]) {
    let _ = tlog::entries::parse_proposed(body);
    let _ = tlog::entries::parse_search(body);
}

/// The raw input, then the input split on 0xFF into `n` fields (missing ones
/// empty) for `template`.
pub fn run(data: &[u8], n: usize, template: impl Fn(&[&[u8]]) -> Value) {
    parse_all(data);
    let mut fields: Vec<&[u8]> = data.splitn(n, |&b| b == 0xff).collect();
    fields.resize(n, &[]);
    let body = serde_json::to_vec(&template(&fields)).expect("a JSON value serialises");
    parse_all(&body);
}

pub fn b64(bytes: &[u8]) -> String {
    BASE64_STANDARD.encode(bytes)
}

/// A field used as a JSON string (lossy UTF-8).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `hashedrekord` target: fields are signature, key (PEM), hash value
/// and hash algorithm.
pub fn hashedrekord(data: &[u8]) {
    run(data, 4, |f| {
        json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "signature": {"content": b64(f[0]), "publicKey": {"content": b64(f[1])}},
            "data": {"hash": {"algorithm": text(f[3]), "value": text(f[2])}}}})
    });
}

/// The `dsse` target: fields are payload, payload type, signature, verifier
/// (PEM); the envelope is built from them, and the committed (search) form too.
pub fn dsse(data: &[u8]) {
    run(data, 4, |f| {
        let envelope = json!({"payload": b64(f[0]), "payloadType": text(f[1]),
                              "signatures": [{"sig": b64(f[2])}]});
        json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
            "envelope": envelope.to_string(), "verifiers": [b64(f[3])]}}})
    });
    let mut fields: Vec<&[u8]> = data.splitn(3, |&b| b == 0xff).collect();
    fields.resize(3, &[]);
    let committed = json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "signatures": [{"signature": b64(fields[0]), "verifier": b64(fields[1])}],
        "envelopeHash": {"algorithm": "sha256", "value": text(fields[2])},
        "payloadHash": {"algorithm": "sha256", "value": text(fields[2])}}});
    parse_all(&serde_json::to_vec(&committed).unwrap());
}

/// The `intoto` target: fields are payload, payload type, signature, key
/// (PEM); 0.0.2 double-base64-encodes payload and signature, 0.0.1 carries
/// the envelope as a string.
pub fn intoto(data: &[u8]) {
    run(data, 4, |f| {
        json!({"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {"envelope": {
            "payload": b64(b64(f[0]).as_bytes()),
            "payloadType": text(f[1]),
            "signatures": [{"sig": b64(b64(f[2]).as_bytes()),
                            "publicKey": b64(f[3])}]}}}})
    });
    let mut f: Vec<&[u8]> = data.splitn(4, |&b| b == 0xff).collect();
    f.resize(4, &[]);
    let envelope = json!({"payload": b64(f[0]), "payloadType": text(f[1]),
                          "signatures": [{"sig": b64(f[2])}]});
    let v001 = json!({"apiVersion": "0.0.1", "kind": "intoto", "spec": {
        "content": {"envelope": envelope.to_string()}, "publicKey": b64(f[3])}});
    parse_all(&serde_json::to_vec(&v001).unwrap());
}

/// The PKI formats of `rekord`, chosen by the first byte of an input.
const REKORD_FORMATS: [&str; 4] = ["x509", "ssh", "minisign", "pgp"];

/// The `rekord` target: the first byte picks the format (and, with its top
/// bit, whether a hash is given); fields are signature, key, artifact and
/// the hash value.
pub fn rekord(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        parse_all(data);
        return;
    };
    parse_all(data);
    let format = REKORD_FORMATS[usize::from(selector) % REKORD_FORMATS.len()];
    run(rest, 4, |f| {
        let mut spec = json!({
            "signature": {"format": format, "content": b64(f[0]),
                          "publicKey": {"content": b64(f[1])}},
            "data": {"content": b64(f[2])}});
        if selector & 0x80 != 0 {
            spec["data"]["hash"] = json!({"algorithm": "sha256", "value": text(f[3])});
        }
        json!({"apiVersion": "0.0.1", "kind": "rekord", "spec": spec})
    });
}
