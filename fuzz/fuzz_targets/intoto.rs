#![no_main]
//! `intoto` 0.0.2 and 0.0.1: fields are payload, payload type, signature, key
//! (PEM); 0.0.2 double-base64-encodes payload and signature, 0.0.1 carries
//! the envelope as a string.

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::intoto(data));
