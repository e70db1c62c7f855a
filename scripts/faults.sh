#!/usr/bin/env bash
# The fault suite's long scenarios against the real hub and three real
# `riskwatch watch` desks (native, trading seed, HR seed), in a private
# network namespace (docs/RELIABILITY.md, "Fault suite"):
#   scripts/faults.sh [SCENARIO...] [--stop-seconds N]
# Scenarios: kill9, stall, flap, throttle, sigstop, diskfull, redis
# (default: all; scripts/faults.py says what each does). Needs root
# (network namespaces, nftables, tc, a tmpfs mount) and redis-server;
# about 14 minutes for all seven. Results:
# test-artifacts/faults/results.{md,json}. Exit 1 when a desk missed a goal
# (0 lost, 0 duplicated, back; detection within 15 s where the link is cut;
# a full disk said and nothing it showed missing from its inbox). RISKWATCH_BIN picks the binary
# (default: target/debug/riskwatch, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${RISKWATCH_BIN:-target/debug/riskwatch}
if [ ! -x "$bin" ]; then
  cargo build -p riskwatch --bin riskwatch --locked
fi
exec python3 scripts/faults.py "$@" --riskwatch "$bin" --out test-artifacts/faults
