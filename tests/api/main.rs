//! API integration tests: the real server on port 0 against a throwaway
//! Postgres database per test (`DATABASE_URL` names the cluster; see
//! `scripts/test.sh`).

mod helpers;

mod architecture;
mod cluster;
mod conformance;
mod crash;
mod embedded;
mod fencing;
mod ha;
mod hostile;
mod hostile_http;
mod hsm;
mod memory;
mod monitor;
mod operations;
mod process;
mod release;
mod replica;
mod sequencer;
mod shards;
mod tls;
mod v1_entries;
mod v1_errors;
mod v1_kinds;
mod v1_log;
mod v1_rekord;
mod v2_tiles;
mod verify;
mod witness;
mod write_policy;
