#!/usr/bin/env bash
# The fault suite's long scenarios against the real hub and three real
# `riskwatch watch` desks (native, trading seed, HR seed), in a private
# network namespace (docs/RELIABILITY.md, "Fault suite"):
#   scripts/faults.sh [SCENARIO...]     kill9, stall, flap (default: all)
# Needs root (network namespaces, nftables); about 4 minutes for all three.
# Results: test-artifacts/faults/results.{md,json}. Exit 1 when a scenario
# missed a goal (0 lost, 0 duplicated, detection within 15 s, every desk
# back). RISKWATCH_BIN picks the binary (default: target/debug/riskwatch,
# built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${RISKWATCH_BIN:-target/debug/riskwatch}
if [ ! -x "$bin" ]; then
  cargo build -p riskwatch --bin riskwatch --locked
fi
exec python3 scripts/faults.py "$@" --riskwatch "$bin" --out test-artifacts/faults
