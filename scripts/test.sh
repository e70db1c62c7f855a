#!/usr/bin/env bash
# Runs every riskwatch check: formatting, clippy, the Rust unit and
# integration tests of the whole workspace, the UI's unit tests, and the
# desktop smoke test (the real app under Xvfb) and the end-to-end test of the
# real webview over WebDriver (scripts/desktop-e2e.sh), and a bounded fuzzing
# run of every parser (scripts/fuzz.sh; FUZZ_SECONDS per target, default 30,
# 0 skips it), the fault scenarios (scripts/faults.sh, as root; FAULTS=0
# skips them), and the Linux packages: the .deb and .rpm built by the Tauri
# CLI, the .deb installed with apt and the installed app run in demo mode
# (scripts/package.sh, scripts/package-test.sh; root or sudo; PACKAGE=0 skips
# them). Installs what is missing first (scripts/setup.sh). Exits non-zero on
# the first failure.
set -euo pipefail
export NO_COLOR=1
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

# One cargo selection everywhere (--workspace), so features unify the same
# way in every step and nothing is rebuilt between them.
step "ui build (the desktop crate embeds ui/dist)"
(cd ui && npm run build --silent)

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p riskwatch --features portable-io --all-targets --locked -- -D warnings

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# Fuzzing comes before the tests build: its sanitizer build (about 2.5 GB)
# and the test build (about 4 GB) need not sit on the disk together when CI
# discards the first (FUZZ_DISCARD_BUILD=1, .ci/run).
fuzz_seconds=${FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" != 0 ]; then
  step "fuzzing every parser, ${fuzz_seconds}s each (scripts/fuzz.sh)"
  bash scripts/fuzz.sh "$fuzz_seconds" 2>&1 | tee "$logs/fuzz.log"
fi

step "cargo tests (unit + integration)"
cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee "$logs/nextest.log"

# Windows and macOS cannot be built here; the hub's portable socket path,
# which they run, is tested on Linux with the fast path compiled out
# (docs/ARCHITECTURE.md, "Platforms").
step "hub tests on the portable socket path (--features portable-io)"
cargo nextest run -p riskwatch --features portable-io --locked --no-fail-fast \
    -E 'binary(hub) | test(/directly_only_where_the_fast_path/)' 2>&1 | tee "$logs/portable.log"

# The long fault scenarios (root: network namespaces; about 14 minutes):
# FAULTS=0 skips them.
if [ "${FAULTS:-1}" != 0 ]; then
  step "fault scenarios: kill -9, stall, flapping, throttling, a stopped desk, a full disk, Redis restarted (scripts/faults.sh)"
  bash scripts/faults.sh 2>&1 | tee "$logs/faults.log"
fi

step "ui unit tests (vitest)"
(cd ui && npm test --silent) 2>&1 | tee "$logs/vitest.log"

step "desktop smoke test (real window under Xvfb)"
bash scripts/desktop-smoke.sh

step "desktop end-to-end test (the real webview over WebDriver)"
SKIP_BUILD=1 bash scripts/desktop-e2e.sh 2>&1 | tee "$logs/e2e.log"

packages=skipped
if [ "${PACKAGE:-1}" != 0 ]; then
  step "Linux packages: .deb and .rpm built, the .deb installed with apt, the installed app run (scripts/package.sh, scripts/package-test.sh)"
  bash scripts/package.sh
  bash scripts/package-test.sh
  packages="built, installed and run"
fi

# One closing line for the whole run, counted from the runners' own summaries.
rust=$(sed -n 's/.*tests run: \([0-9]*\) passed.*/\1/p' "$logs/nextest.log" | tail -1)
portable=$(sed -n 's/.*tests run: \([0-9]*\) passed.*/\1/p' "$logs/portable.log" | tail -1)
ui=$(sed -n 's/^ *Tests *\([0-9]*\) passed.*/\1/p' "$logs/vitest.log" | tail -1)
e2e=$(sed -n 's/.*tests\? run: \([0-9]*\) passed.*/\1/p' "$logs/e2e.log" | tail -1)
faults=0
if [ -f "$logs/faults.log" ]; then
  faults=$(grep -cE '^faults: [a-z0-9]+ +(native|trading|hr) +sent' "$logs/faults.log" || true)
fi
echo
echo "all checks passed (Rust: ${rust:-?} tests, portable socket path: ${portable:-?}, UI: ${ui:-?} tests, end-to-end: ${e2e:-?}, fault scenario x desk: ${faults}, desktop smoke test, packages: ${packages})"
echo "$(( ${rust:-0} + ${portable:-0} + ${ui:-0} + ${e2e:-0} + faults )) passed, 0 failed"
