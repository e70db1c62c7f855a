#!/usr/bin/env bash
# Regenerates the app's icon set in icons/ from its one source, icons/icon.svg,
# with the Tauri CLI (`tauri icon`, from ui/node_modules): the PNG sizes the
# Linux packages install into the hicolor theme (16 to 512 px, and 256 px as
# 128x128@2x), icon.ico for Windows and icon.icns for macOS. The store and
# mobile icons the CLI also draws are not kept: riskwatch ships neither.
# The tray's state icons (icons/tray-*.png) are drawn separately.
set -euo pipefail
cd "$(dirname "$0")/.."
TAURI=ui/node_modules/.bin/tauri
[ -x "$TAURI" ] || (cd ui && npm ci --no-audit --no-fund --loglevel=error)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$TAURI" icon icons/icon.svg -o "$out/set" >/dev/null 2>&1
"$TAURI" icon icons/icon.svg -o "$out/sizes" -p 16,24,48,256 >/dev/null 2>&1
for f in 32x32.png 64x64.png 128x128.png 128x128@2x.png icon.png icon.ico icon.icns; do
  cp "$out/set/$f" icons/
done
cp "$out/sizes/"*.png icons/
echo "icons: $(cd icons && ls -- *.png *.ico *.icns | grep -v '^tray-' | tr '\n' ' ')"
