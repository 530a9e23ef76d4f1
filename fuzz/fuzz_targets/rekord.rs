#![no_main]
//! `rekord` 0.0.1: the first byte picks the format (x509, ssh, minisign,
//! pgp); fields are signature, key, artifact and an optional hash value.

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::json;

const FORMATS: [&str; 4] = ["x509", "ssh", "minisign", "pgp"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        common::parse_all(data);
        return;
    };
    common::parse_all(data);
    let format = FORMATS[usize::from(selector) % FORMATS.len()];
    common::run(rest, 4, |f| {
        let mut spec = json!({
            "signature": {"format": format, "content": common::b64(f[0]),
                          "publicKey": {"content": common::b64(f[1])}},
            "data": {"content": common::b64(f[2])}});
        if selector & 0x80 != 0 {
            spec["data"]["hash"] = json!({"algorithm": "sha256", "value": common::text(f[3])});
        }
        json!({"apiVersion": "0.0.1", "kind": "rekord", "spec": spec})
    });
});
