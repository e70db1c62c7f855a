#!/usr/bin/env bash
# Fuzzes everything riskwatch parses from a server, a client or a file, each
# target for a bounded time (docs/RELIABILITY.md, "Fuzzing"):
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Default 30 s each, every target in fuzz/Cargo.toml. Each run starts from the
# committed seeds (fuzz/seeds/TARGET, from the tests: fuzz/seed-corpus.py)
# plus what earlier runs on this machine found (fuzz/corpus/TARGET, not
# committed). A crash stops the script with exit 1 and leaves the input in
# fuzz/artifacts/TARGET/; the line to reproduce it is printed. Needs the
# nightly toolchain and cargo-fuzz (scripts/setup.sh installs cargo-fuzz).
# FUZZ_DISCARD_BUILD=1 removes the sanitizer build (fuzz/target, about
# 2.5 GB) at the end, pass or fail: CI sets it to keep its disk use low.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-30}
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml | grep -v '^riskwatch-fuzz$')
fi
case $seconds in
  ''|*[!0-9]*) echo "fuzz: SECONDS_PER_TARGET must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac

say() { printf 'fuzz: %s\n' "$*"; }
rustup toolchain list | grep -q '^nightly' || { say "needs the nightly toolchain" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || { say "needs cargo-fuzz (scripts/setup.sh)" >&2; exit 1; }

# The fuzzers must run the product's dependency versions: every package both
# lock files hold must have the same versions in both.
python3 - <<'PY' || exit 1
import re, sys
def packages(path):
    text = open(path).read()
    out = {}
    for name, version in re.findall(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', text):
        out.setdefault(name, set()).add(version)
    return out
root, fuzz = packages("../Cargo.lock"), packages("Cargo.lock")
drift = sorted(f"{n} {sorted(v)} (root: {sorted(root[n])})" for n, v in fuzz.items() if n in root and not v <= root[n])
if drift:
    print("fuzz: fuzz/Cargo.lock has versions the product does not use:\n  " + "\n  ".join(drift)
          + "\nfuzz: start it again from the root's: cp Cargo.lock fuzz/Cargo.lock", file=sys.stderr)
    sys.exit(1)
PY

# Every target at once (the product's versions: fuzz/Cargo.lock starts from
# the root Cargo.lock), with the address sanitizer, debug assertions and
# overflow checks.
if [ "${FUZZ_DISCARD_BUILD:-0}" = 1 ]; then
  trap 'rm -rf target; say "discarded the sanitizer build (FUZZ_DISCARD_BUILD=1)"' EXIT
fi
say "building the targets (nightly, address sanitizer, overflow checks)"
build_log=$(mktemp)
if ! cargo +nightly fuzz build >"$build_log" 2>&1; then
  tail -n 40 "$build_log"
  say "build failed" >&2
  exit 1
fi
rm -f "$build_log"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  say "$t: ${seconds}s from $(find "seeds/$t" -type f | wc -l) seeds and $(find "corpus/$t" -type f | wc -l) found before"
  log=$(mktemp)
  # The time limit is libFuzzer's; `timeout` is the backstop should it hang.
  if timeout --kill-after=10 $((seconds + 120)) \
      cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    say "$t: ok, ${runs:-?} inputs, ${cov:-cov: ?}"
  else
    failed+=("$t")
    grep -E 'panicked|ERROR: |SUMMARY|Test unit written' "$log" | head -n 8 || tail -n 20 "$log"
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    say "$t: FAILED; reproduce: (cd fuzz && cargo +nightly fuzz run $t ${crash:-artifacts/$t/...})"
  fi
  rm -f "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "all ${#targets[@]} targets ran ${seconds}s each without a crash"
