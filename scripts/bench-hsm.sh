#!/usr/bin/env bash
# Benchmark: hashedrekord creates/s with the log key in a file against the same
# log with the key on a SoftHSM2 token (issue 16), in one run, 64 clients.
#
#   scripts/bench-hsm.sh [COUNT] [CONCURRENCY] [ROUNDS]    defaults: 20000 64 3
#
# Builds the release binary and benches/load.rs, starts a throwaway PostgreSQL
# cluster (scripts/pg.sh) and a throwaway token (scripts/softhsm.sh), then runs
# `tlog serve` ROUNDS times with signer.kind file and ROUNDS times with
# signer.kind pkcs11, alternating, one server at a time, each on a fresh
# database and key. Each gets the same load (`cargo bench --bench load --
# create`). Alternating rounds and comparing medians keeps a busy machine's
# noise from landing on one side only. Prints every result and the ratio of the
# median rates. Everything is removed on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
COUNT="${1:-20000}"
CONCURRENCY="${2:-64}"
ROUNDS="${3:-3}"
export SQLX_OFFLINE=true

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tlog-bench-hsm.XXXXXX")"
SERVER_PID=""
cleanup() {
  set +e
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
  "$ROOT/scripts/pg.sh" stop "$WORK/pg" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --bin tlog
cargo bench --bench load --no-run
TLOG="$ROOT/target/release/tlog"

"$ROOT/scripts/pg.sh" start "$WORK/pg" >/dev/null
set -a
# shellcheck disable=SC1091
. "$WORK/pg/env"
set +a
"$ROOT/scripts/softhsm.sh" "$WORK/hsm"
set -a
# shellcheck disable=SC1091
. "$WORK/hsm/env"
set +a
PSQL="$("$ROOT/scripts/pg.sh" bindir)/psql"

PORT=3917
run() {
  local kind="$1" round="$2" db="tlog_bench_$1_$2"
  "$PSQL" -q "$DATABASE_URL" -c "CREATE DATABASE $db"
  local env=(
    TLOG_LISTEN="127.0.0.1:$PORT" TLOG_METRICS_LISTEN=127.0.0.1:0 TLOG_HOSTNAME=localhost
    TLOG_DATABASE_URL="${DATABASE_URL%/*}/$db" RUST_LOG=warn
  )
  if [ "$kind" = file ]; then
    env+=(TLOG_KEY_FILE="$WORK/key-$round.pem")
    env "${env[@]}" "$TLOG" keygen --out "$WORK/key-$round.pem"
  else
    env+=(
      TLOG_SIGNER__KIND=pkcs11 TLOG_SIGNER__PKCS11__MODULE="$E2E_PKCS11_MODULE"
      TLOG_SIGNER__PKCS11__TOKEN_LABEL="$E2E_PKCS11_TOKEN" TLOG_SIGNER__PKCS11__KEY_LABEL="bench-$round"
      TLOG_SIGNER__PKCS11__PIN_FILE="$E2E_PKCS11_PIN_FILE"
    )
    env "${env[@]}" "$TLOG" keygen --pkcs11 >/dev/null
  fi
  env "${env[@]}" "$TLOG" serve >"$WORK/$kind-$round.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/ping" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "== signer.kind $kind, round $round"
  cargo bench --bench load -- --url "http://127.0.0.1:$PORT" create --count "$COUNT" \
    --concurrency "$CONCURRENCY" --tlog-pid "$SERVER_PID" 2>/dev/null | tee -a "$WORK/$kind.out"
  kill "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=""
}

for round in $(seq "$ROUNDS"); do
  run file "$round"
  run pkcs11 "$round"
done

# The median of the rates in FILE ("creates: N ok, … = R/s; …").
median() {
  sed -nE 's/^creates: .* = ([0-9]+)\/s.*/\1/p' "$1" | sort -n | awk '{ r[NR] = $1 } END { print r[int((NR + 1) / 2)] }'
}
FILE_RATE="$(median "$WORK/file.out")"
HSM_RATE="$(median "$WORK/pkcs11.out")"
echo "== median creates/s over $ROUNDS rounds: file key $FILE_RATE, SoftHSM2 $HSM_RATE," \
  "ratio $(awk -v a="$HSM_RATE" -v b="$FILE_RATE" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
