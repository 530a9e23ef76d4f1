#!/usr/bin/env bash
# Start-up time and resident memory of `tlog serve` on a Postgres log of N
# entries (issue 13, item 4). Fills a fresh database with benches/fill.rs,
# then starts the release binary three times and reports, for each start, the
# seconds until /readyz answers 200 and VmRSS right then and 2 s later.
#
#   scripts/measure-start.sh 1000000 10000000
#
# Needs DATABASE_URL naming a cluster (scripts/pg.sh start DIR; . DIR/env) and
# `cargo build --release --bin tlog --bench fill` done. Cache settings are the
# defaults unless TLOG_ENTRY_CACHE_BYTES / TLOG_TILE_CACHE_BYTES are set.
set -euo pipefail
cd "$(dirname "$0")/.."
fill=$(ls -t target/release/deps/fill-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
key="$work/log.pem"
target/release/tlog keygen --out "$key" >/dev/null 2>&1 || \
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key"
base=${DATABASE_URL%/*}
for n in "$@"; do
  db="tlog_fill_$n"
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  url="$base/$db"
  "$fill" --database-url "$url" --key-file "$key" --count "$n" 2>/dev/null
  psql "$url" -qAtc "SELECT 'db bytes: ' || pg_database_size(current_database()), \
    'entries: ' || pg_total_relation_size('entries'), 'tiles: ' || pg_total_relation_size('tiles')"
  for run in 1 2 3; do
    port=$((39000 + run))
    cat > "$work/cfg.yaml" <<YAML
listen: 127.0.0.1:$port
metrics_listen: 127.0.0.1:$((port + 100))
hostname: localhost
database_url: $url
key_file: $key
YAML
    start=$(date +%s.%N)
    target/release/tlog serve --config "$work/cfg.yaml" 2>"$work/log" &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.01; done
    ready=$(date +%s.%N)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    sleep 2
    rss2=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    kill "$pid"; wait "$pid" || true
    printf 'n=%s run=%s start=%.2fs rss_at_ready=%sKiB rss_after_2s=%sKiB\n' \
      "$n" "$run" "$(echo "$ready - $start" | bc)" "$rss" "$rss2"
  done
done
rm -rf "$work"
