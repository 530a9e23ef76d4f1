#![no_main]
//! `intoto` 0.0.2 and 0.0.1: fields are payload, payload type, signature, key
//! (PEM); 0.0.2 double-base64-encodes payload and signature, 0.0.1 carries
//! the envelope as a string.

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    common::run(data, 4, |f| {
        json!({"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {"envelope": {
            "payload": common::b64(common::b64(f[0]).as_bytes()),
            "payloadType": common::text(f[1]),
            "signatures": [{"sig": common::b64(common::b64(f[2]).as_bytes()),
                            "publicKey": common::b64(f[3])}]}}}})
    });
    let mut f: Vec<&[u8]> = data.splitn(4, |&b| b == 0xff).collect();
    f.resize(4, &[]);
    let envelope = json!({"payload": common::b64(f[0]), "payloadType": common::text(f[1]),
                          "signatures": [{"sig": common::b64(f[2])}]});
    let v001 = json!({"apiVersion": "0.0.1", "kind": "intoto", "spec": {
        "content": {"envelope": envelope.to_string()}, "publicKey": common::b64(f[3])}});
    common::parse_all(&serde_json::to_vec(&v001).unwrap());
});
