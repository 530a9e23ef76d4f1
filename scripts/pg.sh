#!/usr/bin/env bash
# Throwaway / local PostgreSQL clusters for tlog's tests and local runs.
#
#   scripts/pg.sh start DIR   start (creating if needed) a cluster under DIR
#   scripts/pg.sh stop DIR    stop it (no error if it is not running)
#   scripts/pg.sh status DIR  exit 0 if it is running
#   scripts/pg.sh bindir      print the directory holding initdb/pg_ctl (installs if needed)
#
# "start" initialises DIR/data with trust auth (superuser "postgres"), listens on
# 127.0.0.1 on a free high port and on a unix socket in DIR, waits until the server
# accepts connections, writes DIR/env (shell-sourceable, DATABASE_URL=...) and prints
# the DATABASE_URL line on stdout. Running it again on a running cluster only reprints.
#
# PostgreSQL refuses to run as root: as root, the server runs as the "postgres" user.
# If that user cannot reach DIR (e.g. DIR lies under a 0700 home), the cluster lives in
# /var/tmp/tlog-pg-<hash of DIR> instead and DIR/cluster points at it.
# If no PostgreSQL server binaries are found they are installed with apt-get.
set -euo pipefail

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Is PID a live (not zombie) postgres process?
pid_is_postgres() {
  local pid="$1" state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  grep -q '^postgres' "/proc/$pid/comm" 2>/dev/null || return 1
  state="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)"
  [ "$state" != "Z" ] && [ "$state" != "X" ]
}

find_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  fi
  # Highest installed major version first.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

install_postgres() {
  log "PostgreSQL server binaries not found; installing the 'postgresql' package with apt-get"
  local sudo=()
  if ! is_root; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install PostgreSQL (initdb, pg_ctl) yourself"
    sudo=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q >&2
  "${sudo[@]}" apt-get install -y -q --no-install-recommends postgresql postgresql-client >&2
}

ensure_bindir() {
  local d
  if d="$(find_bindir)"; then echo "$d"; return 0; fi
  install_postgres
  d="$(find_bindir)" || die "PostgreSQL installed but initdb/pg_ctl still not found"
  echo "$d"
}

# Run a command as the user that owns the cluster (postgres when we are root).
as_pg() {
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Resolve the directory that holds data/ and the socket for cluster DIR.
cluster_root() {
  local dir="$1"
  if [ -L "$dir/cluster" ]; then readlink -f "$dir/cluster"; return 0; fi
  if ! is_root; then echo "$dir"; return 0; fi
  id -u postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user"
  chown postgres: "$dir"
  chmod 0700 "$dir"
  if runuser -u postgres -- test -w "$dir" -a -x "$dir" 2>/dev/null; then
    echo "$dir"
    return 0
  fi
  # DIR is not reachable by postgres: keep the cluster elsewhere and point at it.
  chown root: "$dir"
  local alt
  alt="/var/tmp/tlog-pg-$(printf '%s' "$dir" | sha256sum | cut -c1-16)"
  mkdir -p "$alt"
  chown postgres: "$alt"
  chmod 0700 "$alt"
  ln -sfn "$alt" "$dir/cluster"
  log "postgres cannot reach $dir; the cluster lives in $alt"
  echo "$alt"
}

port_in_use() {
  local port="$1"
  if command -v ss >/dev/null 2>&1; then
    ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
  fi
  # Fallback: can we connect to it?
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
  return 1
}

pick_port() {
  local port i
  for i in $(seq 1 50); do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! port_in_use "$port"; then echo "$port"; return 0; fi
  done
  die "could not find a free port"
}

# Remove a postmaster.pid whose process is gone (or is not a postgres server).
clear_stale_pid() {
  local root="$1" bindir="$2" pidfile pid
  pidfile="$root/data/postmaster.pid"
  [ -f "$pidfile" ] || return 0
  if as_pg "$bindir/pg_ctl" -D "$root/data" status >/dev/null 2>&1; then
    pid="$(head -n1 "$pidfile")"
    if pid_is_postgres "$pid"; then return 0; fi
  fi
  log "removing stale $pidfile"
  rm -f "$pidfile"
  rm -f "$root"/.s.PGSQL.*.lock 2>/dev/null || true
}

is_running() {
  local root="$1" bindir="$2"
  [ -f "$root/data/postmaster.pid" ] || return 1
  as_pg "$bindir/pg_ctl" -D "$root/data" status >/dev/null 2>&1 || return 1
  local pid
  pid="$(head -n1 "$root/data/postmaster.pid")"
  pid_is_postgres "$pid"
}

# The socket directory: $root unless its path is too long for a unix socket.
socket_dir() {
  local root="$1"
  if [ "${#root}" -le 80 ]; then echo "$root"; return 0; fi
  local alt
  alt="/tmp/tlog-pgsock-$(printf '%s' "$root" | sha256sum | cut -c1-12)"
  mkdir -p "$alt"
  if is_root; then chown postgres: "$alt"; fi
  chmod 0700 "$alt"
  echo "$alt"
}

write_env() {
  local dir="$1" root="$2" port="$3" sock="$4" bindir="$5"
  local url="postgres://postgres@127.0.0.1:${port}/postgres"
  cat >"$dir/env.tmp" <<EOF
DATABASE_URL=$url
PGHOST=127.0.0.1
PGPORT=$port
PGUSER=postgres
PGDATABASE=postgres
PG_SOCKET_DIR=$sock
PG_DATA=$root/data
PG_BINDIR=$bindir
EOF
  mv "$dir/env.tmp" "$dir/env"
  echo "DATABASE_URL=$url"
}

cmd_start() {
  local dir="$1"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)"
  local bindir root sock port
  bindir="$(ensure_bindir)"
  root="$(cluster_root "$dir")"
  sock="$(socket_dir "$root")"

  if [ ! -s "$root/data/PG_VERSION" ]; then
    rm -rf "$root/data"
    log "initdb $root/data"
    as_pg "$bindir/initdb" -D "$root/data" -A trust -U postgres -E UTF8 --locale=C >"$root/initdb.log" 2>&1 \
      || { cat "$root/initdb.log" >&2; die "initdb failed"; }
  fi

  if is_running "$root" "$bindir"; then
    port="$(cat "$root/port")"
    log "already running on 127.0.0.1:$port"
    write_env "$dir" "$root" "$port" "$sock" "$bindir"
    return 0
  fi
  clear_stale_pid "$root" "$bindir"

  # Reuse the previous port if it is free (stable URLs for persistent clusters).
  local attempt
  for attempt in 1 2 3 4 5; do
    port=""
    if [ -f "$root/port" ]; then port="$(cat "$root/port")"; fi
    if [ -z "$port" ] || port_in_use "$port"; then port="$(pick_port)"; fi
    echo "$port" >"$root/port"
    log "starting on 127.0.0.1:$port (socket in $sock)"
    if as_pg "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
         -o "-p $port -k $sock -c listen_addresses=127.0.0.1" start >&2; then
      write_env "$dir" "$root" "$port" "$sock" "$bindir"
      return 0
    fi
    if tail -n 20 "$root/server.log" 2>/dev/null | grep -qiE 'could not bind|address already in use|could not create any TCP/IP sockets|lock file .* already exists'; then
      log "port $port was taken; trying another"
      rm -f "$root/port"
      clear_stale_pid "$root" "$bindir"
      continue
    fi
    tail -n 30 "$root/server.log" >&2 || true
    die "pg_ctl start failed (log: $root/server.log)"
  done
  die "could not start PostgreSQL after 5 attempts"
}

cmd_stop() {
  local dir="$1"
  [ -d "$dir" ] || { log "$dir does not exist; nothing to stop"; return 0; }
  dir="$(cd "$dir" && pwd -P)"
  local bindir root
  bindir="$(find_bindir)" || { log "no PostgreSQL binaries; nothing to stop"; return 0; }
  if [ -L "$dir/cluster" ]; then root="$(readlink -f "$dir/cluster")"; else root="$dir"; fi
  if [ ! -f "$root/data/postmaster.pid" ]; then log "not running"; return 0; fi
  if ! is_running "$root" "$bindir"; then clear_stale_pid "$root" "$bindir"; log "not running"; return 0; fi
  log "stopping $root/data"
  if ! as_pg "$bindir/pg_ctl" -D "$root/data" -m fast -w -t 30 stop >&2; then
    log "fast shutdown failed; trying immediate"
    as_pg "$bindir/pg_ctl" -D "$root/data" -m immediate -w -t 30 stop >&2
  fi
}

cmd_status() {
  local dir="$1" bindir root
  [ -d "$dir" ] || return 1
  dir="$(cd "$dir" && pwd -P)"
  bindir="$(find_bindir)" || return 1
  if [ -L "$dir/cluster" ]; then root="$(readlink -f "$dir/cluster")"; else root="$dir"; fi
  is_running "$root" "$bindir"
}

usage() { echo "usage: $0 {start DIR|stop DIR|status DIR|bindir}" >&2; exit 2; }

case "${1:-}" in
  start) [ $# -eq 2 ] || usage; cmd_start "$2" ;;
  stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
  status) [ $# -eq 2 ] || usage; cmd_status "$2" ;;
  bindir) ensure_bindir ;;
  *) usage ;;
esac
