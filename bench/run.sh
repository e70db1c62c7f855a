#!/usr/bin/env bash
# The side-by-side benchmark in one command (bench/README.md):
#   bash bench/run.sh [--quick] [--hubs riskwatch,node-ws,...]
# Installs the reference hubs (npm packages in bench/node_modules, Python
# packages in bench/.venv, both pinned), builds riskwatch and its load tool
# in release, then runs bench/bench.py: every scenario against every hub,
# the bare-TCP floor beside them. Loopback only. About 12 minutes (--quick:
# about 5). Run it on a quiet machine: the hubs and the load tool share its
# cores, so anything else running shows in the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bench: %s\n' "$*"; }

command -v node >/dev/null || { say "needs Node.js (20 or later) and npm" >&2; exit 1; }
if [ ! -d bench/node_modules ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  say "npm ci in bench/ (ws, socket.io)"
  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -x bench/.venv/bin/python ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    say "installing python3-venv"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  say "creating bench/.venv"
  python3 -m venv bench/.venv
fi
if ! cmp -s bench/requirements.txt bench/.venv/requirements.installed; then
  say "pip install -r bench/requirements.txt (websockets, FastAPI, uvicorn, matplotlib)"
  bench/.venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
  cp bench/requirements.txt bench/.venv/requirements.installed
fi
say "building riskwatch and riskwatch-load (release)"
cargo build --release --locked -q -p riskwatch -p riskwatch-load
exec bench/.venv/bin/python bench/bench.py "$@"
