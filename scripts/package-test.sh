#!/usr/bin/env bash
# Tests the Linux packages scripts/package.sh built, as a user gets them:
# checks what the .deb and .rpm declare and hold, installs the .deb with apt
# (its dependencies from the distribution), validates the installed launcher
# and AppStream metadata, runs the *installed* app in demo mode under Xvfb
# (scripts/desktop-smoke.sh with BIN=/usr/bin/riskwatch-desktop: the window,
# the demo hub connected, a critical alert on D-Bus, the second launch, the
# tray start), checks that live data from the demo desk reached its inbox,
# then removes the package again and checks that nothing of it is left.
# Root, or sudo. PROFILE as for scripts/package.sh (default desktop).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=${PROFILE:-desktop}
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/bundle
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
say() { echo "package-test: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

deb=$(ls "$OUT"/deb/*.deb 2>/dev/null | head -n 1)
rpm=$(ls "$OUT"/rpm/*.rpm 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no .deb under $OUT/deb (run scripts/package.sh)"
[ -n "$rpm" ] || fail "no .rpm under $OUT/rpm (run scripts/package.sh)"

# --- what the .deb declares and holds
control=$(dpkg-deb -f "$deb")
field() { printf '%s\n' "$control" | sed -n "s/^$1: //p"; }
[ "$(field Package)" = riskwatch ] || fail "the .deb's package is '$(field Package)', not riskwatch"
depends=$(field Depends)
for dep in 'libwebkit2gtk-4.1-0' 'libgtk-3-0 | libgtk-3-0t64' 'libayatana-appindicator3-1' 'libdbus-1-3'; do
  printf '%s\n' "$depends" | tr ',' '\n' | sed 's/^ *//' | grep -qxF -- "$dep" ||
    fail "the .deb does not depend on '$dep' (Depends: $depends)"
done
if printf '%s\n' "$depends" | tr ',' '\n' | sed 's/^ *//' | grep -qx 'libgtk-3-0'; then
  fail "the .deb still depends on bare libgtk-3-0 (Depends: $depends)"
fi
files=$(dpkg-deb -c "$deb" | awk '{print $NF}')
expect_files=(
  ./usr/bin/riskwatch-desktop
  ./usr/share/applications/riskwatch.desktop
  ./usr/share/metainfo/dev.riskwatch.client.metainfo.xml
  ./usr/share/icons/hicolor/scalable/apps/riskwatch-desktop.svg
)
for size in 16x16 24x24 32x32 48x48 64x64 128x128 256x256 512x512; do
  expect_files+=("./usr/share/icons/hicolor/$size/apps/riskwatch-desktop.png")
done
for f in "${expect_files[@]}"; do
  printf '%s\n' "$files" | grep -qxF -- "$f" || fail "the .deb holds no $f"
done
say ".deb: $(basename "$deb"), Depends: $depends; binary, launcher, metainfo and ${#expect_files[@]} files checked"

# --- what the .rpm declares and holds (rpm reads it; it need not install)
if command -v rpm >/dev/null; then
  requires=$(rpm -qp --requires "$rpm" 2>/dev/null)
  for req in 'libwebkit2gtk-4.1.so.0()(64bit)' 'libgtk-3.so.0()(64bit)'; do
    printf '%s\n' "$requires" | grep -qxF -- "$req" || fail "the .rpm does not require $req"
  done
  rfiles=$(rpm -qpl "$rpm" 2>/dev/null)
  for f in "${expect_files[@]}"; do
    printf '%s\n' "$rfiles" | grep -qxF -- "${f#.}" || fail "the .rpm holds no ${f#.}"
  done
  say ".rpm: $(basename "$rpm"), requires WebKitGTK 4.1 and GTK 3, same files"
else
  fail "rpm is missing (run scripts/setup.sh)"
fi

# --- install with apt, as a user would
say "apt-get install $deb"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$deb" >/dev/null ||
  fail "apt-get install of the .deb failed"
cleanup_pkg() { DEBIAN_FRONTEND=noninteractive $SUDO apt-get purge -y -qq riskwatch >/dev/null 2>&1 || true; }
trap cleanup_pkg EXIT
dpkg-query -W -f='${Status}' riskwatch | grep -q 'install ok installed' || fail "riskwatch is not installed"
BIN=/usr/bin/riskwatch-desktop
[ -x "$BIN" ] || fail "$BIN not installed"
"$BIN" --help | grep -q -- '--minimized' || fail "$BIN is not the desktop app (no --minimized in its --help)"
desktop-file-validate /usr/share/applications/riskwatch.desktop || fail "the installed launcher is not valid"
grep -qx 'Exec=riskwatch-desktop' /usr/share/applications/riskwatch.desktop || fail "the launcher does not start riskwatch-desktop"
appstreamcli validate --no-net /usr/share/metainfo/dev.riskwatch.client.metainfo.xml >/dev/null ||
  fail "the installed AppStream metadata is not valid"
say "installed: $BIN, launcher and AppStream metadata valid"

# --- the installed app, in demo mode, under Xvfb
KEEP=$(mktemp -d)
PREFIX=package BIN=$BIN SKIP_BUILD=1 TABS="" RECONNECT=0 KEEP_DATA=$KEEP bash scripts/desktop-smoke.sh ||
  fail "the installed app failed the smoke test"
INBOX=$KEEP/desktop/inbox.sqlite3
[ -s "$INBOX" ] || fail "the installed app left no inbox"
# The smoke test published three events of its own (subject SMOKE, WARN,
# STOP); anything else came live from the demo desk's simulators.
live=$(python3 -c 'import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("SELECT count(*) FROM alerts WHERE coalesce(subject, \"\") NOT IN (\"SMOKE\", \"WARN\", \"STOP\")").fetchone()[0])' "$INBOX")
[ "${live:-0}" -gt 0 ] || fail "no live data from the demo desk reached the installed app's inbox"
say "the installed app stored $live alerts from the demo desk"
rm -rf "$KEEP"

# --- remove it again
trap - EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get purge -y -qq riskwatch >/dev/null || fail "apt-get purge failed"
for f in "$BIN" /usr/share/applications/riskwatch.desktop /usr/share/metainfo/dev.riskwatch.client.metainfo.xml; do
  [ ! -e "$f" ] || fail "$f is left after apt-get purge"
done
say "ok: built, installed with apt, ran in demo mode with live data, removed cleanly"
