#![no_main]
//! `hashedrekord` 0.0.1: fields are signature, key (PEM), hash value, algorithm.

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    common::run(data, 4, |f| {
        json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "signature": {"content": common::b64(f[0]), "publicKey": {"content": common::b64(f[1])}},
            "data": {"hash": {"algorithm": common::text(f[3]), "value": common::text(f[2])}}}})
    });
});
