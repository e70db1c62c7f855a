#!/usr/bin/env bash
# Desktop smoke test. Builds the UI and the desktop crate, runs
# riskwatch-desktop in demo mode on a private Xvfb display inside its own D-Bus
# session, waits for the "riskwatch" window, lets events arrive, screenshots
# the screen to test-artifacts/desktop-demo.png and fails unless the window
# appeared, the app reached "connected" and is still running.
#
# Every wait is bounded; everything started here is stopped on exit.
# Environment: WINDOW_TIMEOUT (s, default 60), SETTLE (s after the window,
# default 8), SCREEN (default 960x680, the window's size, so the screenshot is
# the window), SKIP_BUILD=1 to use what is already built.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

WINDOW_TIMEOUT=${WINDOW_TIMEOUT:-60}
SETTLE=${SETTLE:-8}
SCREEN=${SCREEN:-960x680}
ARTIFACTS=$ROOT/test-artifacts
SHOT=$ARTIFACTS/desktop-demo.png
LOG=$ARTIFACTS/desktop-demo.log
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/riskwatch-desktop

say() { echo "desktop-smoke: $*" >&2; }
fail() {
  say "FAIL: $*"
  if [ -s "$LOG" ]; then
    say "last lines of $LOG:"
    tail -n 20 "$LOG" >&2
  fi
  exit 1
}

for tool in Xvfb xwininfo dbus-run-session setsid /usr/bin/import; do
  command -v "$tool" >/dev/null || fail "$tool is missing (run scripts/setup.sh)"
done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
    say "npm ci"
    (cd ui && npm ci --no-audit --no-fund --loglevel=error)
  fi
  say "building the UI"
  (cd ui && npm run --silent build >/dev/null)
  say "building riskwatch-desktop"
  cargo build --workspace
fi
[ -x "$BIN" ] || fail "$BIN not built"

mkdir -p "$ARTIFACTS"
rm -f "$SHOT" "$LOG"
WORK=$(mktemp -d)
XVFB_PID=""
APP_PID=""

# Stops the app's whole process group (dbus-run-session, dbus-daemon, the app
# and its WebKit processes), then Xvfb: TERM, up to 5 s, then KILL.
stop_group() {
  local pid=$1
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
cleanup() {
  [ -n "$APP_PID" ] && stop_group "$APP_PID"
  if [ -n "$XVFB_PID" ]; then
    kill -TERM "$XVFB_PID" 2>/dev/null || true
    wait "$XVFB_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Xvfb picks a free display itself and writes its number to fd 3.
Xvfb -displayfd 3 -screen 0 "${SCREEN}x24" -nolisten tcp 3>"$WORK/display" 2>"$WORK/xvfb.log" &
XVFB_PID=$!
for _ in $(seq 100); do
  [ -s "$WORK/display" ] && break
  kill -0 "$XVFB_PID" 2>/dev/null || fail "Xvfb exited: $(cat "$WORK/xvfb.log")"
  sleep 0.1
done
[ -s "$WORK/display" ] || fail "Xvfb did not start within 10 s"
export DISPLAY=":$(tr -d '[:space:]' <"$WORK/display")"
say "Xvfb on $DISPLAY"

# A private home for WebKit's caches and the app's data.
mkdir -m 700 "$WORK/run"
export XDG_RUNTIME_DIR=$WORK/run XDG_DATA_HOME=$WORK/data XDG_CACHE_HOME=$WORK/cache \
  XDG_CONFIG_HOME=$WORK/config
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-info}
# Demo mode: no URL configured.
unset RISKWATCH_URL RISKWATCH_TOKEN

# setsid: the app gets its own process group, so cleanup reaches every child.
setsid dbus-run-session -- "$BIN" >"$LOG" 2>&1 &
APP_PID=$!

app_alive() { pgrep -g "$APP_PID" -f -- "$BIN" >/dev/null; }

say "waiting up to ${WINDOW_TIMEOUT}s for the riskwatch window"
deadline=$((SECONDS + WINDOW_TIMEOUT))
until xwininfo -root -tree 2>/dev/null | grep -q '"riskwatch"'; do
  app_alive || fail "riskwatch-desktop exited before its window appeared"
  [ "$SECONDS" -lt "$deadline" ] || fail "no riskwatch window within ${WINDOW_TIMEOUT}s"
  sleep 0.5
done
say "window up after $((SECONDS - deadline + WINDOW_TIMEOUT))s; letting events arrive for ${SETTLE}s"
sleep "$SETTLE"

/usr/bin/import -window root "$SHOT" || fail "screenshot failed"
say "screenshot: $SHOT"

app_alive || fail "riskwatch-desktop is no longer running"
grep -q 'state=connected' "$LOG" || fail "the client never reported connected"
say "ok: window up, demo connected, app still running"
