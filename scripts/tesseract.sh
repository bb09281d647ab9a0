#!/usr/bin/env bash
# tesseract.sh makes sure the OCR engine the task worker runs is installed:
# as root it installs Debian's tesseract-ocr with apt-get; otherwise it
# prints the command to run and fails. `make run` and `make test` call it.
set -euo pipefail

bin=${AUTHLEDGER_TESSERACT:-tesseract}
if command -v "$bin" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  echo "tesseract.sh: tesseract not found; installing tesseract-ocr with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >&2
  command -v "$bin" >/dev/null 2>&1 || { echo "tesseract.sh: still not found after install" >&2; exit 1; }
else
  echo "tesseract.sh: tesseract (the OCR engine of the task worker) is not installed. Install it with:" >&2
  echo "    sudo apt-get update && sudo apt-get install -y tesseract-ocr" >&2
  exit 1
fi
