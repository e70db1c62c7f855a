#!/usr/bin/env bash
# Measures the desktop app as a user runs it: resident memory of every
# process it consists of (the app, WebKitWebProcess, WebKitNetworkProcess),
# CPU use over a window, and time from start to the first event shown.
# Runs under a private Xvfb and D-Bus session; needs a built
# target/<profile>/riskwatch-desktop (PROFILE=debug|release|desktop, default
# release; `desktop` is the size-optimised build scripts/run.sh ships).
#   MODE=demo  (default) the embedded hub with simulators: live dashboards
#   MODE=idle  connected to a hub that publishes nothing: the idle cost
#   MODE=tray  as idle, then the window closed (Ctrl+W): the cost of the app
#              idling in the tray; then opened again by a second launch,
#              timed from that launch to the window mapped and the page
#              holding its state (REOPENS times, default 5)
#   MODE=minimized  as idle, started with --minimized (start at login): no
#              window at all until a second launch opens it (timed as tray)
# Every wait is bounded; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
MODE=${MODE:-demo}
WINDOW=${WINDOW:-30}
TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/$PROFILE/riskwatch-desktop"
# The idle mode's hub: the same profile's, else any built one (the
# `desktop` profile builds only the app).
HUB="$TARGET/$PROFILE/riskwatch"
for h in "$HUB" "$TARGET/release/riskwatch" "$TARGET/debug/riskwatch"; do [ -x "$h" ] && { HUB=$h; break; }; done
[ -x "$BIN" ] || { echo "measure: $BIN not built (cargo build --workspace${PROFILE/debug/})" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

disp=$((200 + RANDOM % 300))
Xvfb ":$disp" -screen 0 960x680x24 -nolisten tcp >/dev/null 2>&1 &
PIDS+=($!)
export DISPLAY=":$disp"
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done

export NO_COLOR=1 RISKWATCH_DATA_DIR="$WORK/data" XDG_RUNTIME_DIR="$WORK/run" XDG_DATA_HOME="$WORK/share" \
  XDG_CONFIG_HOME="$WORK/config" XDG_CACHE_HOME="$WORK/cache"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
if [ "$MODE" != demo ]; then
  port=$((20000 + RANDOM % 20000))
  setsid "$HUB" serve --insecure-dev --listen "127.0.0.1:$port" >"$WORK/hub.log" 2>&1 &
  PIDS+=($!)
  export RISKWATCH_URL="ws://127.0.0.1:$port/api/v1/stream" RISKWATCH_CHANNELS="sessions:demo"
  sleep 1
fi
start=$(date +%s.%N)
args=()
[ "$MODE" = minimized ] && args=(--minimized)
setsid dbus-run-session -- "$BIN" "${args[@]}" >"$WORK/app.log" 2>&1 &
APP=$!
PIDS+=($APP)

# Start to live: the window is mapped and the client reports connected
# (the demo hub publishes at once, so the first events follow within one
# simulator tick, 0.5 s).
first=""
for _ in $(seq 300); do
  if grep -q -m1 "connected" "$WORK/app.log" 2>/dev/null &&
    { [ "$MODE" = minimized ] || xwininfo -root -tree 2>/dev/null | grep -q '"riskwatch"'; }; then
    first=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.2f", a - b}'); break
  fi
  sleep 0.05
done
# Settle: WebKit finishes loading, the charts fill, and the threads the
# start-up used go idle and exit (WebKit's pools after 10 s or so); an idle
# app is one that has been sitting, so idle settles longer.
if [ "$MODE" = demo ]; then SETTLE=${SETTLE:-10}; else SETTLE=${SETTLE:-30}; fi
mapped() { xwininfo -name riskwatch 2>/dev/null | grep -q 'Map State: IsViewable'; }
# Ctrl+W to the window, as a user closes it; waits up to 10 s for it to go.
close_window() {
  local win
  win=$(xdotool search --name '^riskwatch$' | head -n 1)
  [ -n "$win" ] || { echo "measure: no riskwatch window to close" >&2; exit 1; }
  xdotool windowfocus --sync "$win" key ctrl+w
  for _ in $(seq 100); do mapped || break; sleep 0.1; done
  if mapped; then echo "measure: Ctrl+W did not close the window" >&2; exit 1; fi
}
if [ "$MODE" = tray ]; then
  # Settle with the window open first (as a user who then closes it).
  sleep 5
  close_window
fi
sleep "$SETTLE"
procs() { pgrep -g "$(ps -o pgid= "$APP" | tr -d ' ')" 2>/dev/null || true; }
rss_total=0
pss_total=0
report=""
for p in $(procs); do
  name=$(ps -o comm= "$p" 2>/dev/null || true)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
  [ -n "$rss" ] || rss=0
  # Session services started by the private D-Bus, not part of the app.
  case "$name" in dbus-daemon|dbus-run-sessio|at-spi*|dunst) continue ;; esac
  # PSS shares each shared page among the processes mapping it, so the
  # sum does not count WebKit's and GTK's libraries once per process.
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
  [ -n "$pss" ] || pss=0
  rss_total=$((rss_total + rss))
  pss_total=$((pss_total + pss))
  report+=$(printf '%-22s RSS %8d KiB   PSS %8d KiB\n' "$name" "$rss" "$pss")$'\n'
done
ticks() { local t=0; for p in $(procs); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
per_proc() { for p in $(procs); do echo "$p $(ps -o comm= "$p" 2>/dev/null) $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)"; done; }
before=$(per_proc)
t0=$(ticks); sleep "$WINDOW"; t1=$(ticks)
after=$(per_proc)
hz=$(getconf CLK_TCK)
cpu=$(awk -v d="$((t1 - t0))" -v hz="$hz" -v w="$WINDOW" 'BEGIN {printf "%.2f", d * 100 / hz / w}')
echo "mode=$MODE profile=$PROFILE settle=${SETTLE}s window=${WINDOW}s"
printf '%s' "$report"
echo "total RSS: $((rss_total / 1024)) MiB   total PSS: $((pss_total / 1024)) MiB"
echo "CPU over ${WINDOW}s: ${cpu}% of one core (all processes)"
# Each process's share, to see which one is busy.
join <(sort <<<"$before") <(sort <<<"$after") | awk -v hz="$hz" -v w="$WINDOW" \
  '$2 !~ /^(dbus-daemon|dbus-run-sessio|at-spi|dunst)/ {printf "  %-22s %.2f%%\n", $2, ($5 - $3) * 100 / hz / w}'
[ -n "$first" ] && echo "start to window shown and connected: ${first}s"
if [ "$MODE" = tray ] || [ "$MODE" = minimized ]; then
  # Reopen: a second launch (as the launcher or `--tab` would) hands over to
  # the running app, which builds the window again; timed to the window
  # mapped and the page's snapshot served (the log's "took its state").
  app_pid=$(pgrep -g "$(ps -o pgid= "$APP" | tr -d ' ')" -x riskwatch-deskt | head -n 1)
  bus=$(tr '\0' '\n' <"/proc/$app_pid/environ" | sed -n 's/^DBUS_SESSION_BUS_ADDRESS=//p')
  times=()
  for i in $(seq "${REOPENS:-5}"); do
    if [ "$i" -gt 1 ]; then
      close_window
      sleep 3
    fi
    states=$(grep -c 'took its state' "$WORK/app.log" || true)
    t0=$(date +%s.%N)
    DBUS_SESSION_BUS_ADDRESS=$bus timeout 20 "$BIN" >/dev/null 2>&1 || true
    for _ in $(seq 400); do
      mapped && [ "$(grep -c 'took its state' "$WORK/app.log" || true)" -gt "$states" ] && break
      sleep 0.01
    done
    t1=$(date +%s.%N)
    # The snapshot's own log time, not when this loop saw it.
    at=$(grep 'took its state' "$WORK/app.log" | tail -n 1 | cut -c1-30)
    served=$(date -d "$at" +%s.%N 2>/dev/null || echo "$t1")
    times+=("$(awk -v a="$served" -v b="$t0" 'BEGIN {printf "%.3f", a - b}')")
  done
  echo "reopen (second launch to window shown with its state), ${#times[@]} times: ${times[*]} s"
fi
exit 0
