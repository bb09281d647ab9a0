#!/usr/bin/env bash
# Starts and stops a private redis-server for development and tests (the
# shared rate-limit counters, AUTHLEDGER_REDIS_URL), so that a fresh machine
# needs nothing running. The server listens on 127.0.0.1 only, keeps nothing
# on disk (no RDB snapshots, no AOF) and lives in its own directory.
#
#   scripts/redis.sh install            install redis-server if missing (apt when root)
#   scripts/redis.sh start DIR          start (or reuse) the server in DIR; prints its redis:// URL
#                                       (a restarted server keeps its port while it is free)
#   scripts/redis.sh stop DIR           stop it
#   scripts/redis.sh with-temp CMD...   run CMD with AUTHLEDGER_TEST_REDIS_URL set to a throwaway
#                                       server, stopped and removed on exit
set -euo pipefail

log() { echo "redis.sh: $*" >&2; }

bin=${AUTHLEDGER_REDIS_SERVER:-redis-server}

install_redis() {
  if command -v "$bin" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ]; then
    log "redis-server not found; installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
    command -v "$bin" >/dev/null 2>&1 || { log "redis-server still not found after install"; exit 1; }
  else
    log "redis-server is not installed. Install it with:"
    log "    sudo apt-get update && sudo apt-get install -y redis-server"
    exit 1
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# answers reports whether the server on port replies to PING, within a
# second: a connection that never answers (a socket connected to itself,
# which TCP allows when nothing listens) must not hang the script.
answers() {
  local reply
  reply=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 && head -c 7 <&3' _ "$1" 2>/dev/null || true)
  [ "${reply%$'\r'}" = "+PONG" ]
}

running() {
  local dir=$1
  [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null
}

start_server() {
  local dir=$1 port last="" tries=0
  install_redis
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running "$dir" && [ -f "$dir/port" ]; then
    echo "redis://127.0.0.1:$(cat "$dir/port")/0"
    return 0
  fi
  # A server started before comes back on its port when that is free, so
  # that its URL (and clients holding it) stay valid across a restart.
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
      # --save "" and --appendonly no: nothing persists; the counters are
      # worth losing. --protected-mode stays on (no password, loopback only).
      # In the background rather than --daemonize, so that its pid is
      # known at once (a daemon writes its pid file some time later), with
      # no descriptor of ours: the caller's pipes close when we exit.
      "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
        --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
      echo $! >"$dir/redis.pid"
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
    if [ $tries -ge 5 ]; then tail -20 "$dir/redis.log" >&2 || true; log "could not start redis-server"; exit 1; fi
  done
  echo "$port" >"$dir/port"
  echo "redis://127.0.0.1:$port/0"
}

stop_server() {
  local dir=$1 pid i
  [ -f "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
  fi
  rm -f "$dir/redis.pid"
}

case "${1:-}" in
  install) install_redis ;;
  start) start_server "$2" ;;
  stop) stop_server "$2" ;;
  with-temp)
    shift
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/authledger-redis.XXXXXX")
    cleanup() { stop_server "$tmp"; rm -rf "$tmp"; }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    AUTHLEDGER_TEST_REDIS_URL=$(start_server "$tmp")
    export AUTHLEDGER_TEST_REDIS_URL
    log "redis-server for this run: $AUTHLEDGER_TEST_REDIS_URL"
    "$@"
    ;;
  *) echo "usage: $0 install | start DIR | stop DIR | with-temp CMD..." >&2; exit 2 ;;
esac
