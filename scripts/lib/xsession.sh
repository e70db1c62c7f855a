# Shared by the desktop test scripts (sourced, not run): a private Xvfb
# display, a private XDG home and a clean environment for the app under test,
# and a bounded stop of a whole process group. The caller defines `say` and
# `fail`, a $WORK directory and `cleanup` (which stops its own process
# groups, then calls close_session), and then calls open_session.

# Stops a process group: TERM, up to 5 s, then KILL.
stop_group() {
  local pid=$1
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

# Starts Xvfb on a free display it picks itself (written to fd 3), at
# $SCREEN (WxH); sets XVFB_PID and exports DISPLAY. Waits at most 10 s.
start_xvfb() {
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
}

# Stops the Xvfb that start_xvfb started, if any.
stop_xvfb() {
  if [ -n "${XVFB_PID:-}" ]; then
    kill -TERM "$XVFB_PID" 2>/dev/null || true
    wait "$XVFB_PID" 2>/dev/null || true
  fi
}

# A private home for WebKit's caches and the app's data, under $WORK.
private_xdg() {
  mkdir -m 700 "$WORK/run"
  export XDG_RUNTIME_DIR=$WORK/run XDG_DATA_HOME=$WORK/data XDG_CACHE_HOME=$WORK/cache \
    XDG_CONFIG_HOME=$WORK/config XDG_STATE_HOME=$WORK/state
  # The downloads folder (the inbox's exports), as xdg-user-dirs names it.
  mkdir -p "$WORK/config" "$WORK/downloads"
  printf 'XDG_DOWNLOAD_DIR="%s"\n' "$WORK/downloads" >"$WORK/config/user-dirs.dirs"
}

# The app under test runs as a new user would: in demo mode, with none of
# the caller's riskwatch settings, its data under $WORK, and plain logs.
app_env() {
  unset RISKWATCH_URL RISKWATCH_TOKEN RISKWATCH_TAB RISKWATCH_CHANNELS \
    RISKWATCH_STYLE RISKWATCH_DEMO RISKWATCH_WEBKIT_DEFAULTS
  export NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} RISKWATCH_DATA_DIR=$WORK/riskwatch-data
}

# Arms the caller's `cleanup` on exit and on INT / TERM, then starts the
# private session: Xvfb, XDG home, the app's environment (demo mode).
open_session() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  start_xvfb
  private_xdg
  app_env
}

# The end of the session open_session began: Xvfb stopped, $WORK removed.
close_session() {
  stop_xvfb
  rm -rf "$WORK"
}
