#!/usr/bin/env bash
# The test command: Rust tests and the end-to-end suites (sigstore-js, then
# sigstore-python with the OpenAPI schema check, then the sigstore crate) against a
# throwaway PostgreSQL cluster that is removed again on exit (also on failure), with
# aics-witness (scripts/aics-witness.sh) cosigning the Rekor v2 log's checkpoints.
# sigstore-js and sigstore-python run twice: with a key file, and with the log key
# on a throwaway SoftHSM2 token (scripts/softhsm.sh installs softhsm2 when missing).
#
#   scripts/test.sh              everything
#   scripts/test.sh --no-e2e     cargo test only
#   scripts/test.sh --e2e-only   the end-to-end suite only (builds the binary)
#
# Environment: CARGO_TEST_ARGS (extra args for cargo test, e.g. a filter after --),
# TLOG_KEEP_PG=1 keeps the cluster directory for inspection.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUN_CARGO=1
RUN_E2E=1
for arg in "$@"; do
  case "$arg" in
    --no-e2e) RUN_E2E=0 ;;
    --e2e-only) RUN_CARGO=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

section() { printf '\n======== %s ========\n' "$*"; }

# sqlx's query! macros must not look at the (empty) test database while compiling:
# they use the committed .sqlx/ data instead (cargo sqlx prepare).
export SQLX_OFFLINE="${SQLX_OFFLINE:-true}"

LOCKED=()
if [ "${CI:-}" = "true" ]; then LOCKED=(--locked); fi

START=$(date +%s)

# Is PID a live process (zombies count as dead)?
alive() {
  [ -r "/proc/$1/stat" ] || return 1
  [ "$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# Clusters left behind by runs that were killed (SIGKILL skips our trap): stop them.
for old in "${TMPDIR:-/tmp}"/tlog-test-pg.*; do
  [ -d "$old" ] || continue
  owner="$(cat "$old/owner.pid" 2>/dev/null || true)"
  # No owner recorded (yet): leave it alone; a live owner: another run in progress.
  if [ -z "$owner" ] || alive "$owner"; then continue; fi
  echo "cleaning up $old from an earlier run"
  "$ROOT/scripts/pg.sh" stop "$old" >/dev/null 2>&1 || true
  rm -rf "$old"
done

PGDIR="$(mktemp -d "${TMPDIR:-/tmp}/tlog-test-pg.XXXXXX")"
echo $$ >"$PGDIR/owner.pid"
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/tlog-test-logs.XXXXXX")"
HSMDIR="$(mktemp -d "${TMPDIR:-/tmp}/tlog-test-softhsm.XXXXXX")"

PG_STOPPED=0
stop_pg() {
  [ "$PG_STOPPED" = 0 ] || return 0
  PG_STOPPED=1
  section "Stopping PostgreSQL"
  "$ROOT/scripts/pg.sh" stop "$PGDIR" || true
  if [ "${TLOG_KEEP_PG:-}" = "1" ]; then
    echo "kept $PGDIR"
  else
    rm -rf "$PGDIR"
  fi
}

cleanup() {
  local rc=$?
  set +e
  stop_pg
  rm -rf "$LOGDIR" "$HSMDIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "PostgreSQL (throwaway cluster)"
"$ROOT/scripts/pg.sh" start "$PGDIR"
set -a
# shellcheck disable=SC1091
. "$PGDIR/env"
set +a
export DATABASE_URL PG_BINDIR

section "SoftHSM2 (throwaway token)"
"$ROOT/scripts/softhsm.sh" "$HSMDIR"

# The witnessing tests (tests/api/witness.rs, tests/e2e/py/test_witness.py) run
# aics-witness from PyPI, a third-party C2SP tlog-witness, pinned in tests/witness/.
section "aics-witness (PyPI, tests/witness/requirements.txt)"
AICS_WITNESS="$("$ROOT/scripts/aics-witness.sh")"
export AICS_WITNESS

CARGO_RC=0
E2E_RC=0
CARGO_PASSED=0
CARGO_FAILED=0
E2E_PASSED=0
E2E_FAILED=0
PY_RC=0
PY_PASSED=0
PY_FAILED=0
RS_RC=0
RS_PASSED=0
RS_FAILED=0
HSM_JS_RC=0
HSM_JS_PASSED=0
HSM_JS_FAILED=0
HSM_PY_RC=0
HSM_PY_PASSED=0
HSM_PY_FAILED=0

# node's spec reporter ends with "ℹ pass N" / "ℹ fail N".
node_count() { sed -nE "s/^[^a-z]{0,6}$1 ([0-9]+)\$/\1/p" "$2" | tail -n1; }
# pytest's closing line: "==== 27 passed, 1 failed in 3.2s ====" (errors count as failed).
py_counts() {
  local summary passed failed
  summary="$(grep -E '^=+ .* in [0-9.]+s' "$1" | tail -n1 || true)"
  passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$summary")
  failed=$(( $(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary") + $(sed -nE 's/.* ([0-9]+) errors?.*/\1/p' <<<"$summary") + 0 ))
  echo "${passed:-0} $failed"
}

if [ "$RUN_CARGO" = 1 ]; then
  section "cargo test"
  # shellcheck disable=SC2086
  cargo test "${LOCKED[@]}" ${CARGO_TEST_ARGS:-} 2>&1 | tee "$LOGDIR/cargo.log" || CARGO_RC=$?
  CARGO_PASSED=$(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1/p' "$LOGDIR/cargo.log" | awk '{s+=$1} END {print s+0}')
  CARGO_FAILED=$(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\2/p' "$LOGDIR/cargo.log" | awk '{s+=$1} END {print s+0}')
  if [ "$CARGO_RC" != 0 ] && [ "$CARGO_FAILED" = 0 ]; then CARGO_FAILED=1; fi # build failure
fi

if [ "$RUN_E2E" = 1 ]; then
  section "e2e: build tlog"
  # --tests: the same feature set as cargo test, so the binary it built is reused.
  if cargo build "${LOCKED[@]}" --bins --tests; then
    export TLOG_BIN="$ROOT/target/debug/tlog"
    section "e2e: sigstore-js (tests/e2e/js)"
    "$ROOT/tests/e2e/js/run.sh" 2>&1 | tee "$LOGDIR/e2e.log" || E2E_RC=$?
    # node's spec reporter ends with "ℹ pass N" / "ℹ fail N".
    E2E_PASSED=$(sed -nE 's/^[^a-z]{0,6}pass ([0-9]+)$/\1/p' "$LOGDIR/e2e.log" | tail -n1)
    E2E_FAILED=$(sed -nE 's/^[^a-z]{0,6}fail ([0-9]+)$/\1/p' "$LOGDIR/e2e.log" | tail -n1)
    E2E_PASSED=${E2E_PASSED:-0}
    E2E_FAILED=${E2E_FAILED:-0}
    if [ "$E2E_RC" != 0 ] && [ "$E2E_FAILED" = 0 ]; then E2E_FAILED=1; fi

    section "e2e: sigstore-python + OpenAPI schema (tests/e2e/py)"
    "$ROOT/tests/e2e/py/run.sh" 2>&1 | tee "$LOGDIR/e2e-py.log" || PY_RC=$?
    # pytest's closing line: "==== 27 passed, 1 failed in 3.2s ====" (errors count as failed).
    py_summary="$(grep -E '^=+ .* in [0-9.]+s' "$LOGDIR/e2e-py.log" | tail -n1 || true)"
    PY_PASSED=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$py_summary")
    PY_FAILED=$(( $(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$py_summary") + $(sed -nE 's/.* ([0-9]+) errors?.*/\1/p' <<<"$py_summary") + 0 ))
    PY_PASSED=${PY_PASSED:-0}
    # Exit 5 is pytest's "no tests collected": a failure here, never a silent pass.
    if [ "$PY_RC" != 0 ] && [ "$PY_FAILED" = 0 ]; then PY_FAILED=1; fi

    section "e2e: sigstore crate (tests/e2e/rust)"
    "$ROOT/tests/e2e/rust/run.sh" 2>&1 | tee "$LOGDIR/e2e-rs.log" || RS_RC=$?
    RS_PASSED=$(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1/p' "$LOGDIR/e2e-rs.log" | awk '{s+=$1} END {print s+0}')
    RS_FAILED=$(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\2/p' "$LOGDIR/e2e-rs.log" | awk '{s+=$1} END {print s+0}')
    if [ "$RS_RC" != 0 ] && [ "$RS_FAILED" = 0 ]; then RS_FAILED=1; fi # build failure

    # The same client suites with the log key on the SoftHSM2 token (issue 16):
    # every SET and checkpoint they verify was signed on the token.
    section "e2e: sigstore-js, log key on SoftHSM2 (signer.kind pkcs11)"
    (set -a; . "$HSMDIR/env"; set +a; E2E_SIGNER=pkcs11 "$ROOT/tests/e2e/js/run.sh") 2>&1 | tee "$LOGDIR/e2e-hsm.log" || HSM_JS_RC=$?
    HSM_JS_PASSED=$(node_count pass "$LOGDIR/e2e-hsm.log"); HSM_JS_PASSED=${HSM_JS_PASSED:-0}
    HSM_JS_FAILED=$(node_count fail "$LOGDIR/e2e-hsm.log"); HSM_JS_FAILED=${HSM_JS_FAILED:-0}
    if [ "$HSM_JS_RC" != 0 ] && [ "$HSM_JS_FAILED" = 0 ]; then HSM_JS_FAILED=1; fi

    section "e2e: sigstore-python + OpenAPI, log key on SoftHSM2 (signer.kind pkcs11)"
    (set -a; . "$HSMDIR/env"; set +a; E2E_SIGNER=pkcs11 "$ROOT/tests/e2e/py/run.sh") 2>&1 | tee "$LOGDIR/e2e-py-hsm.log" || HSM_PY_RC=$?
    read -r HSM_PY_PASSED HSM_PY_FAILED < <(py_counts "$LOGDIR/e2e-py-hsm.log")
    if [ "$HSM_PY_RC" != 0 ] && [ "$HSM_PY_FAILED" = 0 ]; then HSM_PY_FAILED=1; fi
  else
    E2E_RC=1
    E2E_FAILED=1
  fi
fi

stop_pg

section "Summary ($(( $(date +%s) - START ))s)"
[ "$RUN_CARGO" = 1 ] && echo "cargo test: $CARGO_PASSED passed, $CARGO_FAILED failed (exit $CARGO_RC)"
[ "$RUN_E2E" = 1 ] && echo "e2e (sigstore-js): $E2E_PASSED passed, $E2E_FAILED failed (exit $E2E_RC)"
[ "$RUN_E2E" = 1 ] && echo "e2e (sigstore-python, OpenAPI): $PY_PASSED passed, $PY_FAILED failed (exit $PY_RC)"
[ "$RUN_E2E" = 1 ] && echo "e2e (sigstore crate): $RS_PASSED passed, $RS_FAILED failed (exit $RS_RC)"
[ "$RUN_E2E" = 1 ] && echo "e2e (sigstore-js, SoftHSM2 key): $HSM_JS_PASSED passed, $HSM_JS_FAILED failed (exit $HSM_JS_RC)"
[ "$RUN_E2E" = 1 ] && echo "e2e (sigstore-python, SoftHSM2 key): $HSM_PY_PASSED passed, $HSM_PY_FAILED failed (exit $HSM_PY_RC)"
echo "tests: $(( CARGO_PASSED + E2E_PASSED + PY_PASSED + RS_PASSED + HSM_JS_PASSED + HSM_PY_PASSED )) passed, $(( CARGO_FAILED + E2E_FAILED + PY_FAILED + RS_FAILED + HSM_JS_FAILED + HSM_PY_FAILED )) failed"
if [ "$CARGO_RC" != 0 ] || [ "$E2E_RC" != 0 ] || [ "$PY_RC" != 0 ] || [ "$RS_RC" != 0 ] || [ "$HSM_JS_RC" != 0 ] || [ "$HSM_PY_RC" != 0 ]; then exit 1; fi
