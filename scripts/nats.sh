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

script=nats.sh
bin=${AUTHLEDGER_NATS_SERVER:-nats-server}
pkg=nats-server
pidname=nats
envvar=AUTHLEDGER_TEST_NATS_URL

launch() {
  # -js: JetStream, its store under DIR.
  "$bin" -a 127.0.0.1 -p "$2" -js -sd "$1/jetstream" -n "authledger-$2" \
    -l "$1/nats.log" </dev/null >/dev/null 2>&1 &
}

# answers: the server's greeting (INFO {...}) to a new connection within
# a second.
answers() {
  local reply
  reply=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -c 4 <&3' _ "$1" 2>/dev/null || true)
  [ "$reply" = "INFO" ]
}

url() { echo "nats://127.0.0.1:$1"; }

# shellcheck source=scripts/lib/private-server.sh
. "$(dirname "$0")/lib/private-server.sh"
main "$@"
