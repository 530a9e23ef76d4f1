#!/usr/bin/env bash
# Runs the sigstore crate (sigstore-rs) end-to-end tests: a cargo project of its own
# (its own [workspace] and Cargo.lock, so the main build never compiles it), built
# into the repo's target/ so dependencies it shares with tlog (aws-lc-sys, tokio, ...)
# are compiled once. Needs DATABASE_URL (scripts/test.sh sets it) and the tlog binary
# (TLOG_BIN, default target/debug/tlog).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(cd ../../.. && pwd)"

LOCKED=()
if [ "${CI:-}" = "true" ]; then LOCKED=(--locked); fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# --test: only the integration test binary (the placeholder lib has no tests).
exec cargo test "${LOCKED[@]}" --test rekor_client "$@"
