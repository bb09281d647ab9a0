#!/usr/bin/env bash
# chromium.sh makes sure the browser the console's browser tests drive
# (cmd/authledger, chromedp) is installed: as root it installs Debian's
# chromium with apt-get; otherwise it prints the command to run and
# fails. `make test` calls it; it prints the browser's path.
set -euo pipefail

bin=${AUTHLEDGER_CHROMIUM:-chromium}
if command -v "$bin" >/dev/null 2>&1; then
  command -v "$bin"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  echo "chromium.sh: chromium not found; installing chromium with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  command -v "$bin" >/dev/null 2>&1 || { echo "chromium.sh: still not found after install" >&2; exit 1; }
  command -v "$bin"
else
  echo "chromium.sh: chromium (the browser of the console's browser tests) is not installed. Install it with:" >&2
  echo "    sudo apt-get update && sudo apt-get install -y chromium" >&2
  exit 1
fi
