# Sourced by scripts/redis.sh and scripts/nats.sh: a private server in a
# directory of its own, on a free 127.0.0.1 port that it keeps across
# restarts, with install, start, stop and with-temp. The sourcing script
# sets
#   script   its name in messages (redis.sh)
#   bin      the server's binary (redis-server)
#   pkg      the Debian package that installs it
#   pidname  the base name of the pid file in DIR (redis: DIR/redis.pid)
#   envvar   the variable with-temp sets to the URL (AUTHLEDGER_TEST_REDIS_URL)
# and defines
#   launch DIR PORT  start the server in the background, with no descriptor of ours
#   answers PORT     succeed once the server on PORT answers (bounded: a
#                    connection that never answers, such as a socket connected
#                    to itself, must not hang the script)
#   url PORT         print the server's URL

log() { echo "$script: $*" >&2; }

install_server() {
  if command -v "$bin" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ]; then
    log "$bin not found; installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2
    command -v "$bin" >/dev/null 2>&1 || { log "$bin still not found after install"; exit 1; }
  else
    log "$bin is not installed. Install it with:"
    log "    sudo apt-get update && sudo apt-get install -y $pkg"
    exit 1
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() {
  local dir=$1
  [ -f "$dir/$pidname.pid" ] && kill -0 "$(cat "$dir/$pidname.pid")" 2>/dev/null
}

start_server() {
  local dir=$1 port last="" tries=0
  install_server
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running "$dir" && [ -f "$dir/port" ]; then
    url "$(cat "$dir/port")"
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
      # In the background rather than as a daemon, so that its pid is
      # known at once (a daemon writes its pid file some time later).
      launch "$dir" "$port"
      echo $! >"$dir/$pidname.pid"
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
    if [ $tries -ge 5 ]; then tail -20 "$dir/$pidname.log" >&2 || true; log "could not start $bin"; exit 1; fi
  done
  echo "$port" >"$dir/port"
  url "$port"
}

stop_server() {
  local dir=$1 pid i
  [ -f "$dir/$pidname.pid" ] || return 0
  pid=$(cat "$dir/$pidname.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
  fi
  rm -f "$dir/$pidname.pid"
}

# main dispatches the script's command line.
main() {
  case "${1:-}" in
    install) install_server ;;
    start) start_server "$2" ;;
    stop) stop_server "$2" ;;
    with-temp)
      shift
      tmp=$(mktemp -d "${TMPDIR:-/tmp}/authledger-$pidname.XXXXXX")
      cleanup() { stop_server "$tmp"; rm -rf "$tmp"; }
      trap cleanup EXIT
      trap 'exit 130' INT TERM
      local u
      u=$(start_server "$tmp")
      export "$envvar=$u"
      log "$bin for this run: $u"
      "$@"
      ;;
    *) echo "usage: $0 install | start DIR | stop DIR | with-temp CMD..." >&2; exit 2 ;;
  esac
}
