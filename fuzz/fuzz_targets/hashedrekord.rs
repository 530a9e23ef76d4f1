#![no_main]
//! `hashedrekord` 0.0.1: fields are signature, key (PEM), hash value, algorithm.

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::hashedrekord(data));
