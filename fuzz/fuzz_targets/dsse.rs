#![no_main]
//! `dsse` 0.0.1: fields are payload, payload type, signature, verifier (PEM);
//! the envelope is built from them, and the committed (search) form too.

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    common::run(data, 4, |f| {
        let envelope = json!({"payload": common::b64(f[0]), "payloadType": common::text(f[1]),
                              "signatures": [{"sig": common::b64(f[2])}]});
        json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
            "envelope": envelope.to_string(), "verifiers": [common::b64(f[3])]}}})
    });
    let mut fields: Vec<&[u8]> = data.splitn(3, |&b| b == 0xff).collect();
    fields.resize(3, &[]);
    let committed = json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "signatures": [{"signature": common::b64(fields[0]), "verifier": common::b64(fields[1])}],
        "envelopeHash": {"algorithm": "sha256", "value": common::text(fields[2])},
        "payloadHash": {"algorithm": "sha256", "value": common::text(fields[2])}}});
    common::parse_all(&serde_json::to_vec(&committed).unwrap());
});
