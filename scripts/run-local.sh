#!/usr/bin/env bash
# Runs tlog locally: a persistent PostgreSQL cluster under ./.cache/pg (started if it
# is not running), a log signing key in ./.cache/tlog-key.pem (generated once),
# `tlog migrate`, then `tlog serve` (release build) on TLOG_LISTEN.
#
#   scripts/run-local.sh            serve on 127.0.0.1:3000 as "localhost"
#   scripts/run-local.sh --stop-db  stop the local PostgreSQL cluster
#
# Any TLOG_* variable set in the environment wins over these defaults.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="$ROOT/.cache"
mkdir -p "$CACHE"

if [ "${1:-}" = "--stop-db" ]; then
  exec "$ROOT/scripts/pg.sh" stop "$CACHE/pg"
fi

"$ROOT/scripts/pg.sh" start "$CACHE/pg" >/dev/null
set -a
# shellcheck disable=SC1091
. "$CACHE/pg/env"
set +a

DB=tlog
if [ -z "$(psql -X -qAt -d "$DATABASE_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
  echo "creating database $DB"
  psql -X -q -d "$DATABASE_URL" -c "CREATE DATABASE $DB"
fi

export TLOG_DATABASE_URL="${TLOG_DATABASE_URL:-postgres://postgres@127.0.0.1:${PGPORT}/${DB}}"
export TLOG_LISTEN="${TLOG_LISTEN:-127.0.0.1:3000}"
export TLOG_HOSTNAME="${TLOG_HOSTNAME:-localhost}"
export TLOG_KEY_FILE="${TLOG_KEY_FILE:-$CACHE/tlog-key.pem}"
export RUST_LOG="${RUST_LOG:-info}"

cargo build --release --bin tlog
BIN="$ROOT/target/release/tlog"
if [ ! -f "$TLOG_KEY_FILE" ]; then
  echo "generating the log signing key in $TLOG_KEY_FILE"
  "$BIN" keygen --out "$TLOG_KEY_FILE"
fi
"$BIN" migrate
echo "tlog: http://$TLOG_LISTEN (hostname $TLOG_HOSTNAME, database $TLOG_DATABASE_URL)"
exec "$BIN" serve
