#!/usr/bin/env bash
# Runs every riskwatch check: formatting, clippy, the Rust unit and
# integration tests of the whole workspace, the UI's unit tests, and the
# desktop smoke test (the real app under Xvfb). Installs what is missing
# first (scripts/setup.sh). Exits non-zero on the first failure.
set -euo pipefail
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

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo tests (unit + integration)"
cargo nextest run --workspace --locked --no-fail-fast
# nextest does not run doctests
cargo test --workspace --locked --doc

step "ui unit tests (vitest)"
(cd ui && npm test --silent)

step "desktop smoke test (real window under Xvfb)"
bash scripts/desktop-smoke.sh

echo
echo "all checks passed"
