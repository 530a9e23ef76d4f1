//! Shared by the kind parser targets: every input is fed to the parsers twice,
//! as a raw request body (the seed corpus holds real requests) and split into
//! fields placed in a valid template of the kind, so that mutations reach key
//! parsing and signature verification instead of stopping at the JSON.

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::Value;

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
