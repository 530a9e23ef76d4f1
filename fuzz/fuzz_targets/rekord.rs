#![no_main]
//! `rekord` 0.0.1: the first byte picks the format (x509, ssh, minisign,
//! pgp); fields are signature, key, artifact and an optional hash value.

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::rekord(data));
