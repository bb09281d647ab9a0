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

script=redis.sh
bin=${AUTHLEDGER_REDIS_SERVER:-redis-server}
pkg=redis-server
pidname=redis
envvar=AUTHLEDGER_TEST_REDIS_URL

launch() {
  # --save "" and --appendonly no: nothing persists; the counters are
  # worth losing. --protected-mode stays on (no password, loopback only).
  "$bin" --port "$2" --bind 127.0.0.1 --dir "$1" --save "" --appendonly no \
    --logfile "$1/redis.log" </dev/null >/dev/null 2>&1 &
}

# answers: a PING answered with +PONG within a second.
answers() {
  local reply
  reply=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 && head -c 7 <&3' _ "$1" 2>/dev/null || true)
  [ "${reply%$'\r'}" = "+PONG" ]
}

url() { echo "redis://127.0.0.1:$1/0"; }

# shellcheck source=scripts/lib/private-server.sh
. "$(dirname "$0")/lib/private-server.sh"
main "$@"
