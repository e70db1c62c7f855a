#!/usr/bin/env bash
# Measures the desktop app as a user runs it: resident memory of every
# process it consists of (the app, WebKitWebProcess, WebKitNetworkProcess),
# CPU use over a window, and time from start to the first event shown.
# Runs under a private Xvfb and D-Bus session; needs a built
# target/<profile>/riskwatch-desktop (PROFILE=debug|release|desktop, default
# release; `desktop` is the size-optimised build scripts/run.sh ships).
#   MODE=demo  (default) the embedded hub with simulators: live dashboards
#   MODE=idle  connected to a hub that publishes nothing: the idle cost
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

export RISKWATCH_DATA_DIR="$WORK/data" XDG_RUNTIME_DIR="$WORK/run" XDG_DATA_HOME="$WORK/share" \
  XDG_CONFIG_HOME="$WORK/config" XDG_CACHE_HOME="$WORK/cache"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
if [ "$MODE" = idle ]; then
  port=$((20000 + RANDOM % 20000))
  setsid "$HUB" serve --insecure-dev --listen "127.0.0.1:$port" >"$WORK/hub.log" 2>&1 &
  PIDS+=($!)
  export RISKWATCH_URL="ws://127.0.0.1:$port/api/v1/stream" RISKWATCH_CHANNELS="sessions:demo"
  sleep 1
fi
start=$(date +%s.%N)
setsid dbus-run-session -- "$BIN" >"$WORK/app.log" 2>&1 &
APP=$!
PIDS+=($APP)

# Start to live: the window is mapped and the client reports connected
# (the demo hub publishes at once, so the first events follow within one
# simulator tick, 0.5 s).
first=""
for _ in $(seq 300); do
  if grep -q -m1 "connected" "$WORK/app.log" 2>/dev/null && xwininfo -root -tree 2>/dev/null | grep -q '"riskwatch"'; then
    first=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.2f", a - b}'); break
  fi
  sleep 0.05
done
# Settle: WebKit finishes loading, the charts fill, and the threads the
# start-up used go idle and exit (WebKit's pools after 10 s or so); an idle
# app is one that has been sitting, so idle settles longer.
if [ "$MODE" = idle ]; then SETTLE=${SETTLE:-30}; else SETTLE=${SETTLE:-10}; fi
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
exit 0
