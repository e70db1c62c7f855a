#!/usr/bin/env bash
# End-to-end test of the real webview: riskwatch-desktop in demo mode, driven
# over WebDriver (tauri-driver + WebKitWebDriver) by src-tauri/tests/e2e.rs.
# Starts a private Xvfb display and a private D-Bus session (with dbus-monitor
# recording the notification calls and the replies, which carry their ids,
# answered by dunst), runs tauri-driver in
# it, and runs the test with RISKWATCH_E2E=1. Screenshots of every dashboard
# land in test-artifacts/e2e-TAB.png, the logs beside them.
#
# Every wait is bounded; everything started here is stopped on exit.
# Environment: SKIP_BUILD=1 to use what is already built; E2E_PORT (default
# 4444; WebKitWebDriver gets E2E_PORT+1); SCREEN (default 960x680); PROFILE
# (default debug; release drives target/release's app and hub, built with
# `cargo build --release --workspace`; desktop drives the size-optimised app
# that scripts/run.sh builds, `cargo build --profile desktop -p
# riskwatch-desktop`, with the release hub, as docs/PERFORMANCE.md's numbers
# are); RISKWATCH_E2E_INBOX_ROWS (default 100000) alerts added to the app's
# inbox for its large-inbox part (docs/PERFORMANCE.md measures 1000000);
# E2E_TIMEOUT (default 480 s) bounds the whole test.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCREEN=${SCREEN:-960x680}
E2E_PORT=${E2E_PORT:-4444}
ARTIFACTS=$ROOT/test-artifacts
PROFILE=${PROFILE:-debug}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/riskwatch-desktop
# The hub for the reconnect part: the same profile's, else the release one
# (the `desktop` profile builds only the app).
HUB=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/riskwatch
[ -x "$HUB" ] || HUB=${CARGO_TARGET_DIR:-$ROOT/target}/release/riskwatch
DRIVER_LOG=$ARTIFACTS/e2e-app.log
NOTIFY_LOG=$ARTIFACTS/e2e.dbus.log

say() { echo "desktop-e2e: $*" >&2; }
fail() {
  say "FAIL: $*"
  exit 1
}

for tool in Xvfb dbus-run-session dbus-monitor setsid tauri-driver WebKitWebDriver; do
  command -v "$tool" >/dev/null || fail "$tool is missing (run scripts/setup.sh)"
done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "building the UI and riskwatch-desktop"
  (cd ui && npm run --silent build >/dev/null)
  case "$PROFILE" in
    release) cargo build --release --workspace ;;
    desktop) cargo build --profile desktop -p riskwatch-desktop && cargo build --release -p riskwatch --bin riskwatch ;;
    *) cargo build --workspace ;;
  esac
fi
[ -x "$BIN" ] || fail "$BIN not built"

# shellcheck source=lib/xsession.sh
. "$ROOT/scripts/lib/xsession.sh"

mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/e2e-*.png "$ARTIFACTS/e2e-hub.log" "$DRIVER_LOG" "$NOTIFY_LOG"
WORK=$(mktemp -d)
XVFB_PID=""
SESSION_PID=""

cleanup() {
  [ -n "$SESSION_PID" ] && stop_group "$SESSION_PID"
  close_session
}
open_session

# The D-Bus session holds an unlocked gnome-keyring (the Secret Service
# the app keeps profile tokens in), dbus-monitor and tauri-driver; the app that
# WebKitWebDriver starts inherits the session (and its log lands in
# $DRIVER_LOG). The test itself runs outside, talking HTTP to tauri-driver.
setsid dbus-run-session -- bash -c '
  printf e2e | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
  dbus-monitor "interface='"'"'org.freedesktop.Notifications'"'"'" "type='"'"'method_return'"'"'" >"$0" 2>/dev/null &
  exec tauri-driver --port "$1" --native-port "$(($1 + 1))"' \
  "$NOTIFY_LOG" "$E2E_PORT" >"$DRIVER_LOG" 2>&1 &
SESSION_PID=$!
deadline=$((SECONDS + 20))
until (exec 3<>"/dev/tcp/127.0.0.1/$E2E_PORT") 2>/dev/null; do
  kill -0 "$SESSION_PID" 2>/dev/null || fail "tauri-driver exited: $(tail -n 20 "$DRIVER_LOG")"
  [ "$SECONDS" -lt "$deadline" ] || fail "tauri-driver not listening on $E2E_PORT within 20 s"
  sleep 0.2
done
say "tauri-driver on 127.0.0.1:$E2E_PORT"

status=0
RISKWATCH_E2E=1 RISKWATCH_E2E_WEBDRIVER=127.0.0.1:$E2E_PORT RISKWATCH_E2E_APP=$BIN \
  RISKWATCH_E2E_HUB=$HUB \
  RISKWATCH_E2E_APP_LOG=$DRIVER_LOG RISKWATCH_E2E_NOTIFY_LOG=$NOTIFY_LOG \
  RISKWATCH_E2E_ARTIFACTS=$ARTIFACTS \
  timeout "${E2E_TIMEOUT:-480}" cargo nextest run --workspace --locked --test e2e --run-ignored only --no-capture || status=$?
if [ "$status" -ne 0 ]; then
  say "last lines of $DRIVER_LOG:"
  tail -n 20 "$DRIVER_LOG" >&2
  fail "the end-to-end test failed (exit $status)"
fi
say "ok: screenshots in $ARTIFACTS/e2e-*.png"
