#![no_main]
//! `dsse` 0.0.1: fields are payload, payload type, signature, verifier (PEM);
//! the envelope is built from them, and the committed (search) form too.

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::dsse(data));
