#!/usr/bin/env bash
# Installs everything riskwatch needs on a fresh Debian/Ubuntu machine:
# system packages (WebKitGTK 4.1 and friends for the desktop shell, Xvfb, D-Bus,
# a notification server, gnome-keyring, redis-server), the UI's npm packages and
# the cargo tools the tests use. Idempotent: what is present is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  # build: the Tauri desktop shell
  pkg-config libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev
  librsvg2-dev libsoup-3.0-dev libssl-dev libdbus-1-dev
  # tests: display, session bus, notifications, keyring, webdriver, redis
  xvfb xauth x11-utils dbus dbus-x11 dunst gnome-keyring libsecret-tools
  at-spi2-core webkit2gtk-driver imagemagick redis-server procps python3
  # the package test (scripts/package-test.sh): launcher, AppStream, .rpm
  desktop-file-utils appstream rpm
  # scripts/measure-desktop.sh MODE=tray: closes the window with Ctrl+W
  xdotool
  # the hub's example systemd unit is checked with systemd-analyze verify
  systemd
  # the fault suite (scripts/faults.sh): network namespaces, packet drops
  iproute2 nftables
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is required (https://rustup.rs)" >&2
  exit 1
fi
if ! command -v cargo-nextest >/dev/null; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
if ! command -v tauri-driver >/dev/null; then
  echo "setup: installing tauri-driver"
  cargo install tauri-driver --locked --version '^2'
fi
# Fuzzing (scripts/fuzz.sh) needs a nightly toolchain for libFuzzer's
# sanitizer flags, and cargo-fuzz.
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "setup: installing the nightly toolchain (for scripts/fuzz.sh)"
  rustup toolchain install nightly --profile minimal ||
    echo "setup: warning: no nightly toolchain; scripts/fuzz.sh will not run" >&2
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "setup: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if [ -f ui/package.json ]; then
  if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
    echo "setup: npm ci in ui/"
    (cd ui && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
# The side-by-side benchmark's Node.js reference hubs (bench/), which the
# load tool's tests also run.
if [ ! -d bench/node_modules ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  echo "setup: npm ci in bench/"
  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: ok"
