#!/usr/bin/env bash
# Desktop smoke test. Builds the UI and the desktop crate, runs
# riskwatch-desktop in demo mode (embedded hub + simulators) on a private Xvfb
# display inside its own D-Bus session, waits for the "riskwatch" window, lets
# events arrive, screenshots the screen to test-artifacts/desktop-demo.png and
# fails unless the window appeared, the app reached "connected", stored events
# in its inbox (under a temporary RISKWATCH_DATA_DIR) and is still running.
# Then it starts the app once per dashboard tab (--tab via RISKWATCH_TAB) and
# screenshots each to test-artifacts/desktop-TAB.png.
#
# Every wait is bounded; everything started here is stopped on exit.
# Environment: WINDOW_TIMEOUT (s, default 60), SETTLE (s after the window,
# default 8), RECONNECT=0 to skip the reconnect check (the app against a
# separate `riskwatch serve --demo`, killed and restarted: the badge must go to
# Reconnecting and back to Live, and the lost history must be reported), TAB_SETTLE (s per tab, default 7), TABS (default "trading hr
# merchant compliance operations inbox events settings"; empty to skip), SCREEN (default 960x680,
# the window's size, so the screenshot is the window), SKIP_BUILD=1 to use
# what is already built. BIN=path runs that binary instead of the debug build
# (scripts/package-test.sh: the installed package), KEEP_DATA=dir copies
# the app's data there at the end, PREFIX names the
# artifacts (default "desktop": test-artifacts/desktop-*.png).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

WINDOW_TIMEOUT=${WINDOW_TIMEOUT:-60}
SETTLE=${SETTLE:-8}
TAB_SETTLE=${TAB_SETTLE:-7}
TABS=${TABS-trading hr merchant compliance operations inbox events settings}
RECONNECT=${RECONNECT:-1}
HUB_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/riskwatch
SCREEN=${SCREEN:-960x680}
ARTIFACTS=$ROOT/test-artifacts
PREFIX=${PREFIX:-desktop}
SHOT=$ARTIFACTS/$PREFIX-demo.png
LOG=$ARTIFACTS/$PREFIX-demo.log
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/riskwatch-desktop}

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

# shellcheck source=lib/xsession.sh
. "$ROOT/scripts/lib/xsession.sh"

mkdir -p "$ARTIFACTS"
rm -f "$SHOT" "$LOG" "$ARTIFACTS/$PREFIX"-*.png "$ARTIFACTS/$PREFIX"-*.log
WORK=$(mktemp -d)
XVFB_PID=""
APP_PID=""
HUB_PID=""

cleanup() {
  [ -n "$APP_PID" ] && stop_group "$APP_PID"
  [ -n "$HUB_PID" ] && stop_group "$HUB_PID"
  # KEEP_DATA=dir keeps the app's data (its inbox) for the caller.
  if [ -n "${KEEP_DATA:-}" ] && [ -d "${RISKWATCH_DATA_DIR:-}" ]; then
    cp -a "$RISKWATCH_DATA_DIR/." "$KEEP_DATA/"
  fi
  close_session
}
# Xvfb, a private home for WebKit's caches and the app's data, demo mode.
open_session

# The app process itself (its name, cut to 15 characters by the kernel), not
# the dbus-run-session wrapper whose command line names it too.
app_pid() { pgrep -g "$APP_PID" -x "$(basename "$BIN" | cut -c1-15)" | head -n 1; }
app_alive() { [ -n "$(app_pid)" ]; }

# Starts the app (own process group via setsid, so cleanup reaches every
# child) with its log in $1, and waits for its window.
# Inside the app's D-Bus session, dbus-monitor records every call to the
# notification service in $NOTIFY_LOG, beside the app's log (dunst answers
# them on this display).
start_app() {
  local log=$1
  NOTIFY_LOG=${log%.log}.dbus.log
  setsid dbus-run-session -- bash -c \
    'dbus-monitor "interface='"'"'org.freedesktop.Notifications'"'"'" >"$0" 2>/dev/null & exec "$1"' \
    "$NOTIFY_LOG" "$BIN" >"$log" 2>&1 &
  APP_PID=$!
  local deadline=$((SECONDS + WINDOW_TIMEOUT))
  until xwininfo -root -tree 2>/dev/null | grep -q '"riskwatch"'; do
    kill -0 "$APP_PID" 2>/dev/null || fail "riskwatch-desktop exited before its window appeared"
    [ "$SECONDS" -lt "$deadline" ] || fail "no riskwatch window within ${WINDOW_TIMEOUT}s"
    sleep 0.5
  done
  say "window up after $((SECONDS - deadline + WINDOW_TIMEOUT))s"
}
stop_app() {
  stop_group "$APP_PID"
  APP_PID=""
}

say "waiting up to ${WINDOW_TIMEOUT}s for the riskwatch window"
start_app "$LOG"
say "letting events arrive for ${SETTLE}s"
sleep "$SETTLE"

grep -q 'state=connected' "$LOG" || fail "the client never reported connected"
HUB=$(sed -n 's/.*hub listening addr=\([0-9.:]*\).*/\1/p' "$LOG" | head -n 1)
[ -n "$HUB" ] || fail "the embedded demo hub did not start"

# A critical alert whose text is markup and script: it must reach the inbox,
# raise an OS notification (urgency 2 on D-Bus) and show as plain text.
XSS='<img src=x onerror=document.body.replaceChildren()><script>document.body.replaceChildren()</script>'
curl -fsS -X POST "http://$HUB/api/v1/publish" -H 'content-type: application/json' \
  --data "{\"channel\":\"sessions:demo\",\"type\":\"risk_alert\",\"severity\":\"critical\",\"data\":{\"sessionId\":\"SMOKE\",\"alertLevel\":\"critical\",\"alertType\":\"smoke_test\",\"message\":\"$XSS\"}}" \
  >/dev/null || fail "cannot publish to the demo hub at $HUB"
# A session near its loss limit (gauge warning) and one emergency-stopped
# (the banner), so the screenshot shows both.
curl -fsS -X POST "http://$HUB/api/v1/publish" -H 'content-type: application/json' --data '[
  {"channel":"sessions:demo","type":"session_status","data":{"sessionId":"WARN","status":"active","data":{"currentPnL":-4250,"totalTrades":12,"lossLimitUtilization":85}}},
  {"channel":"sessions:demo","type":"session_status","data":{"sessionId":"STOP","status":"emergency_stopped","data":{"currentPnL":-5000,"totalTrades":20,"lossLimitUtilization":100}}}
]' >/dev/null || fail "cannot publish sessions to the demo hub at $HUB"
deadline=$((SECONDS + 10))
until grep -q 'byte 2' "$NOTIFY_LOG" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "no critical OS notification on D-Bus within 10 s"
  sleep 0.5
done
say "critical notification seen on D-Bus"
sleep 1

/usr/bin/import -window root "$SHOT" || fail "screenshot failed"
say "screenshot: $SHOT"

app_alive || fail "riskwatch-desktop is no longer running"
INBOX=$RISKWATCH_DATA_DIR/desktop/inbox.sqlite3
[ -s "$INBOX" ] || fail "no inbox at $INBOX"

# Single instance: a second launch on the same session bus hands over to the
# first (which shows its window) and exits.
BUS=$(tr '\0' '\n' <"/proc/$(app_pid)/environ" | sed -n 's/^DBUS_SESSION_BUS_ADDRESS=//p')
[ -n "$BUS" ] || fail "cannot read the app's D-Bus address"
DBUS_SESSION_BUS_ADDRESS=$BUS timeout 30 "$BIN" >"$ARTIFACTS/$PREFIX-second.log" 2>&1 \
  || fail "a second instance did not exit cleanly (see $ARTIFACTS/$PREFIX-second.log)"
app_alive || fail "the first instance stopped when a second was launched"
if grep -q 'hub listening' "$ARTIFACTS/$PREFIX-second.log"; then
  fail "the second instance started a hub before handing over"
fi
say "second instance handed over and exited"

# The bubble's Acknowledge: the notification server's ActionInvoked signal
# (dunst numbers notifications from 1 in this fresh session) must
# acknowledge the alert in the inbox. The app starts listening for a
# bubble's actions just after showing it, so a click that comes within the
# same moment can precede the listener: like a person trying again, the
# signal is re-sent each second until the deadline.
deadline=$((SECONDS + 10))
until grep -q 'acknowledged from a notification stored=[1-9]' "$LOG"; do
  [ "$SECONDS" -lt "$deadline" ] || fail "Acknowledge on a notification did not acknowledge its alert"
  notified=$(grep -c 'member=Notify$' "$NOTIFY_LOG" || true)
  for id in $(seq 1 "${notified:-0}"); do
    DBUS_SESSION_BUS_ADDRESS=$BUS dbus-send --session --type=signal /org/freedesktop/Notifications \
      org.freedesktop.Notifications.ActionInvoked "uint32:$id" string:acknowledge
  done
  sleep 1
done
say "acknowledged from the notification"
stop_app
say "ok: window up, demo connected, inbox written, app still running"

# Start at login runs `--minimized`: the app in the tray, no window shown.
# A second launch with `--tab inbox` then shows the window, on the inbox.
MLOG=$ARTIFACTS/$PREFIX-minimized.log
setsid dbus-run-session -- "$BIN" --minimized >"$MLOG" 2>&1 &
APP_PID=$!
deadline=$((SECONDS + WINDOW_TIMEOUT))
until grep -q 'state=connected' "$MLOG" 2>/dev/null; do
  kill -0 "$APP_PID" 2>/dev/null || fail "riskwatch-desktop --minimized exited (see $MLOG)"
  [ "$SECONDS" -lt "$deadline" ] || fail "riskwatch-desktop --minimized did not connect within ${WINDOW_TIMEOUT}s"
  sleep 0.5
done
sleep 2
viewable() { xwininfo -name riskwatch 2>/dev/null | grep -q 'Map State: IsViewable'; }
if viewable; then fail "--minimized showed the window"; fi
say "--minimized: running in the tray, no window shown"
BUS=$(tr '\0' '\n' <"/proc/$(app_pid)/environ" | sed -n 's/^DBUS_SESSION_BUS_ADDRESS=//p')
DBUS_SESSION_BUS_ADDRESS=$BUS timeout 30 "$BIN" --tab inbox >"$ARTIFACTS/$PREFIX-second-tab.log" 2>&1 \
  || fail "the second launch with --tab did not exit cleanly"
deadline=$((SECONDS + 10))
until viewable && grep -q 'a second launch asked for a tab tab=inbox' "$MLOG"; do
  [ "$SECONDS" -lt "$deadline" ] || fail "a second launch with --tab inbox did not show the window on the inbox"
  sleep 0.5
done
sleep 1
/usr/bin/import -window root "$ARTIFACTS/$PREFIX-second-tab.png" || fail "screenshot failed"
stop_app
say "second launch showed the window and forwarded --tab inbox"

for tab in $TABS; do
  export RISKWATCH_TAB=$tab
  start_app "$ARTIFACTS/$PREFIX-$tab.log"
  sleep "$TAB_SETTLE"
  /usr/bin/import -window root "$ARTIFACTS/$PREFIX-$tab.png" || fail "screenshot of $tab failed"
  app_alive || fail "riskwatch-desktop stopped on the $tab tab"
  stop_app
  say "screenshot: $ARTIFACTS/$PREFIX-$tab.png"
done
unset RISKWATCH_TAB
say "ok: every tab shown"

# Waits up to $3 s for at least $2 lines matching $1 in the reconnect log.
wait_log() {
  local deadline=$((SECONDS + $3))
  until [ "$(grep -c -- "$1" "$RLOG" 2>/dev/null)" -ge "$2" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "no '$1' (x$2) in $RLOG within $3 s"
    sleep 0.5
  done
}
# Starts `riskwatch serve --demo` on $1 and sets ADDR to where it listens.
start_hub() {
  local before
  before=$(grep -c 'hub listening' "$ARTIFACTS/$PREFIX-hub.log" 2>/dev/null || true)
  setsid "$HUB_BIN" serve --listen "$1" --demo >>"$ARTIFACTS/$PREFIX-hub.log" 2>&1 &
  HUB_PID=$!
  local deadline=$((SECONDS + 20))
  until [ "$(grep -c 'hub listening' "$ARTIFACTS/$PREFIX-hub.log" 2>/dev/null)" -gt "${before:-0}" ]; do
    kill -0 "$HUB_PID" 2>/dev/null || fail "riskwatch serve exited (see $ARTIFACTS/$PREFIX-hub.log)"
    [ "$SECONDS" -lt "$deadline" ] || fail "riskwatch serve not up within 20 s"
    sleep 0.2
  done
  ADDR=$(sed -n 's/.*hub listening addr=\([0-9.:]*\).*/\1/p' "$ARTIFACTS/$PREFIX-hub.log" | tail -n 1)
  [ -n "$ADDR" ] || fail "riskwatch serve did not say where it listens"
}

if [ "$RECONNECT" = 1 ]; then
  [ -x "$HUB_BIN" ] || fail "$HUB_BIN not built"
  : >"$ARTIFACTS/$PREFIX-hub.log"
  start_hub 127.0.0.1:0
  RLOG=$ARTIFACTS/$PREFIX-reconnect.log
  RISKWATCH_URL=ws://$ADDR/api/v1/stream \
    RISKWATCH_CHANNELS=sessions:demo,market:SPY,market:QQQ,market:TSLA,market:AAPL \
    start_app "$RLOG"
  wait_log 'state=connected' 1 20
  sleep 3
  stop_group "$HUB_PID"
  HUB_PID=""
  wait_log 'state=reconnecting' 1 20
  # The tray follows the window's events on its own (it listens to them).
  wait_log 'tray="\{0,1\}reconnecting' 1 10
  sleep 1
  /usr/bin/import -window root "$ARTIFACTS/$PREFIX-reconnecting.png" || fail "screenshot failed"
  say "hub down: the app is reconnecting ($ARTIFACTS/$PREFIX-reconnecting.png)"
  start_hub "$ADDR"
  wait_log 'state=connected' 2 60
  # The restarted hub (no --data-dir) lost its history: the app must say so
  # (inbox entry, header line, tray tooltip), never stay silent.
  wait_log 'history gap' 1 20
  sleep 1
  /usr/bin/import -window root "$ARTIFACTS/$PREFIX-reconnected.png" || fail "screenshot failed"
  app_alive || fail "riskwatch-desktop stopped during the reconnect check"
  stop_app
  stop_group "$HUB_PID"
  HUB_PID=""
  say "ok: hub back, the app is live again ($ARTIFACTS/$PREFIX-reconnected.png)"
fi
