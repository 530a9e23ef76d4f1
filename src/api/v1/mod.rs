//! Rekor v1 JSON API (rekor-v1.md E-01..E-08).

pub mod entries;
pub mod index;
pub mod log;
pub mod models;
pub mod shards;
