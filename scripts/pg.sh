#!/usr/bin/env bash
# Starts and stops a private PostgreSQL cluster for development and tests, so
# that a fresh machine needs nothing running. PostgreSQL refuses to run as
# root, so when invoked as root the server runs as the `postgres` user.
#
#   scripts/pg.sh install              install PostgreSQL if missing (apt when root)
#   scripts/pg.sh start DIR [fast]     start (or reuse) the cluster in DIR; prints its DATABASE_URL
#                                      (a restarted cluster keeps its port while it is free)
#   scripts/pg.sh stop DIR             stop it
#   scripts/pg.sh with-temp CMD...     run CMD with DATABASE_URL set to a throwaway cluster,
#                                      stopped and removed on exit
set -euo pipefail

log() { echo "pg.sh: $*" >&2; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

install_pg() {
  if find_bindir >/dev/null; then return 0; fi
  if [ "$(id -u)" = 0 ]; then
    log "PostgreSQL not found; installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    find_bindir >/dev/null || { log "PostgreSQL still not found after install"; exit 1; }
  else
    log "PostgreSQL is not installed. Install it with:"
    log "    sudo apt-get update && sudo apt-get install -y postgresql"
    exit 1
  fi
}

# as_pg runs a command as the user that owns the cluster.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_cluster() {
  local dir=$1 mode=${2:-durable} bindir port url
  install_pg
  bindir=$(find_bindir)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { log "user postgres does not exist (it comes with the postgresql package)"; exit 1; }
    chown postgres "$dir"
    # The server must be able to reach its data directory.
    if ! runuser -u postgres -- test -x "$dir"; then
      log "user postgres cannot reach $dir (a parent directory is not searchable); set DATABASE_URL or move the checkout"
      exit 1
    fi
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg mkdir -p "$dir/data"
    as_pg "$bindir/initdb" -D "$dir/data" -U authledger --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  if as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 && [ -f "$dir/port" ]; then
    port=$(cat "$dir/port")
  else
    # A cluster started before comes back on its port when that is free, so
    # that its DATABASE_URL (and clients holding it) stay valid.
    local last=""
    if [ -f "$dir/port" ]; then last=$(cat "$dir/port"); fi
    # Clients connect over TCP; the Unix socket is a convenience for psql. A
    # socket path over 107 bytes makes PostgreSQL refuse to start, so a deep
    # checkout goes without one.
    local sockets="$dir/data"
    # "/.s.PGSQL.NNNNN" adds 15 bytes to the directory.
    if [ $(( ${#sockets} + 15 )) -gt 107 ]; then sockets=""; fi
    local opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$sockets -c max_connections=400"
    if [ "$mode" = fast ]; then
      # Throwaway test clusters: durability buys nothing there.
      opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    local tries=0
    while :; do
      if [ -n "$last" ]; then
        port=$last last=""
      else
        port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
      fi
      port_free "$port" || continue
      if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 -o "-p $port $opts" start >/dev/null 2>&1; then
        break
      fi
      tries=$((tries + 1))
      if [ $tries -ge 5 ]; then tail -20 "$dir/data/server.log" >&2 || true; log "could not start PostgreSQL"; exit 1; fi
    done
    echo "$port" >"$dir/port"
  fi
  url="postgres://authledger@127.0.0.1:$port/authledger?sslmode=disable"
  if ! "$bindir/psql" "postgres://authledger@127.0.0.1:$port/postgres?sslmode=disable" -Atqc "select 1 from pg_database where datname='authledger'" | grep -q 1; then
    "$bindir/psql" "postgres://authledger@127.0.0.1:$port/postgres?sslmode=disable" -qc "create database authledger" >/dev/null
  fi
  echo "$url"
}

stop_cluster() {
  local dir=$1 bindir
  bindir=$(find_bindir) || return 0
  [ -f "$dir/data/PG_VERSION" ] || return 0
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  install) install_pg ;;
  start) start_cluster "$2" "${3:-durable}" ;;
  stop) stop_cluster "$2" ;;
  with-temp)
    shift
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/authledger-pg.XXXXXX")
    chmod 755 "$tmp"
    cleanup() { stop_cluster "$tmp"; rm -rf "$tmp"; }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    DATABASE_URL=$(start_cluster "$tmp" "${PG_MODE:-fast}")
    export DATABASE_URL
    log "PostgreSQL for this run: $DATABASE_URL"
    "$@"
    ;;
  *) echo "usage: $0 install | start DIR [fast] | stop DIR | with-temp CMD..." >&2; exit 2 ;;
esac
