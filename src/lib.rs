//! tlog: a self-hosted, Rekor-compatible transparency log.
//!
//! # Layout
//!
//! ```text
//! config ─┐
//! merkle ← tiles ← note ← signing
//!    ↑        ↑              ↑
//! entries ────┴──── storage(trait) ← log ← api ← app ← main
//!                      ↑
//!                  postgres
//! ```
//!
//! - `merkle`, `tiles`, `note` and `entries` are pure: bytes in, bytes or
//!   errors out, no I/O and nothing async (`tests/api/architecture.rs` checks).
//! - `storage` is the seam: a small reader/writer trait pair with a written
//!   contract, implemented by Postgres.
//! - `log` owns the write path: the bounded submission pool and the single
//!   sequencer that commits one batch per database transaction.
//! - `policy` decides which signers may write (the optional write policy);
//!   pure like the core, its files are read by `app`.
//! - `api` maps HTTP to `log` and `storage`, and errors to Rekor's bodies.
//! - `app` wires everything from a validated [`config::Config`].

pub mod entries;
pub mod merkle;
pub mod metrics;
pub mod note;
pub mod policy;
pub mod signing;
pub mod tiles;
pub mod trust;

pub mod api;
pub mod app;
pub mod config;
pub mod export;
pub mod http_client;
pub mod log;
pub mod monitor;
pub mod replica;
pub mod storage;
pub mod telemetry;
pub mod verify;
pub mod witness;
