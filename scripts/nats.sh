#!/usr/bin/env bash
# Starts and stops a private nats-server with JetStream for development and
# tests (the analytics stream, AUTHLEDGER_NATS_URL), so that a fresh machine
# needs nothing running. The server listens on 127.0.0.1 only and keeps its
# JetStream store in its own directory.
#
#   scripts/nats.sh install            install nats-server if missing (apt when root)
#   scripts/nats.sh start DIR          start (or reuse) the server in DIR; prints its nats:// URL
#                                      (a restarted server keeps its port while it is free, and
#                                      its streams: the store is DIR/jetstream)
#   scripts/nats.sh stop DIR           stop it
#   scripts/nats.sh with-temp CMD...   run CMD with AUTHLEDGER_TEST_NATS_URL set to a throwaway
#                                      server, stopped and removed on exit
set -euo pipefail

log() { echo "nats.sh: $*" >&2; }

bin=${AUTHLEDGER_NATS_SERVER:-nats-server}

install_nats() {
  if command -v "$bin" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ]; then
    log "nats-server not found; installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >&2
    command -v "$bin" >/dev/null 2>&1 || { log "nats-server still not found after install"; exit 1; }
  else
    log "nats-server is not installed. Install it with:"
    log "    sudo apt-get update && sudo apt-get install -y nats-server"
    exit 1
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# answers reports whether a NATS server on port greets a new connection
# (INFO {...}) within a second: a connection that never answers (a socket
# connected to itself) must not hang the script.
answers() {
  local reply
  reply=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -c 4 <&3' _ "$1" 2>/dev/null || true)
  [ "$reply" = "INFO" ]
}

running() {
  local dir=$1
  [ -f "$dir/nats.pid" ] && kill -0 "$(cat "$dir/nats.pid")" 2>/dev/null
}

start_server() {
  local dir=$1 port last="" tries=0
  install_nats
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running "$dir" && [ -f "$dir/port" ]; then
    echo "nats://127.0.0.1:$(cat "$dir/port")"
    return 0
  fi
  # A server started before comes back on its port when that is free, so
  # that its URL (and clients reconnecting to it) stay valid across a restart.
  if [ -f "$dir/port" ]; then last=$(cat "$dir/port"); fi
  while :; do
    if [ -n "$last" ]; then
      port=$last last=""
    else
      # Below Linux's ephemeral ports (32768 up by default): no client's source
      # port (a socket connected to itself, say) takes it from under us.
      port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    fi
    if port_free "$port"; then
      # -js: JetStream, its store under DIR. In the background with its pid
      # known at once, with no descriptor of ours: the caller's pipes close
      # when we exit.
      "$bin" -a 127.0.0.1 -p "$port" -js -sd "$dir/jetstream" -n "authledger-$port" \
        -l "$dir/nats.log" </dev/null >/dev/null 2>&1 &
      echo $! >"$dir/nats.pid"
      local i
      for i in $(seq 1 100); do
        # A server that could not bind has exited: try another port.
        running "$dir" || break
        if answers "$port"; then break 2; fi
        sleep 0.05
      done
      stop_server "$dir"
    fi
    tries=$((tries + 1))
    if [ $tries -ge 5 ]; then tail -20 "$dir/nats.log" >&2 || true; log "could not start nats-server"; exit 1; fi
  done
  echo "$port" >"$dir/port"
  echo "nats://127.0.0.1:$port"
}

stop_server() {
  local dir=$1 pid i
  [ -f "$dir/nats.pid" ] || return 0
  pid=$(cat "$dir/nats.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
  fi
  rm -f "$dir/nats.pid"
}

case "${1:-}" in
  install) install_nats ;;
  start) start_server "$2" ;;
  stop) stop_server "$2" ;;
  with-temp)
    shift
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/authledger-nats.XXXXXX")
    cleanup() { stop_server "$tmp"; rm -rf "$tmp"; }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    AUTHLEDGER_TEST_NATS_URL=$(start_server "$tmp")
    export AUTHLEDGER_TEST_NATS_URL
    log "nats-server for this run: $AUTHLEDGER_TEST_NATS_URL"
    "$@"
    ;;
  *) echo "usage: $0 install | start DIR | stop DIR | with-temp CMD..." >&2; exit 2 ;;
esac
