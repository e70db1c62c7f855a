#!/usr/bin/env bash
# Starts the riskwatch desktop app. With no server configured it runs in demo
# mode: a built-in server on 127.0.0.1 plays a simulated trading desk, so it
# works offline. Set RISKWATCH_URL (and RISKWATCH_TOKEN) to watch a real
# backend instead. Installs what is missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
(cd ui && npm run build --silent)
# The build the app ships as (Cargo.toml's `desktop` profile: optimised for
# size, what docs/PERFORMANCE.md measures). The first build takes several
# minutes; later ones only rebuild what changed.
cargo build --profile desktop -p riskwatch-desktop --locked
exec "${CARGO_TARGET_DIR:-target}/desktop/riskwatch-desktop" "$@"
