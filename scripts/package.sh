#!/usr/bin/env bash
# Builds the Linux packages of the desktop app, a .deb and an .rpm, with the
# Tauri CLI (@tauri-apps/cli, from ui/node_modules), from Cargo's `desktop`
# profile (the build scripts/run.sh ships; PROFILE=release for the other).
# They land in target/PROFILE/bundle/{deb,rpm}/; scripts/package-test.sh
# installs the .deb and runs it.
#
# The CLI is pointed at the desktop crate through a copy of the root
# tauri.conf.json in src-tauri/ (scripts/lib/package-config.mjs says why),
# removed again on exit. The CLI declares `libgtk-3-0`, which Debian 13 and
# Ubuntu 24.04 renamed `libgtk-3-0t64`; the .deb's control file is rewritten
# to accept either (`dpkg-deb -R`, then `-b` again).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=${PROFILE:-desktop}
TAURI=$ROOT/ui/node_modules/.bin/tauri
say() { echo "package: $*" >&2; }

if [ ! -x "$TAURI" ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi
say "building the UI"
(cd ui && npm run --silent build >/dev/null)

CONF=src-tauri/tauri.conf.json
[ -e "$CONF" ] && { say "$CONF exists; remove it first (the root tauri.conf.json is the one config)"; exit 1; }
trap 'rm -f "$ROOT/$CONF"' EXIT
node scripts/lib/package-config.mjs >"$CONF"

OUT=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/bundle
rm -rf "$OUT/deb" "$OUT/rpm"
say "tauri build --bundles deb,rpm (cargo --profile $PROFILE)"
(cd src-tauri && "$TAURI" build --ci --bundles deb,rpm -- --profile "$PROFILE" --locked)

deb=$(ls "$OUT"/deb/*.deb)
rpm=$(ls "$OUT"/rpm/*.rpm)

# Depends: the CLI's bare libgtk-3-0 becomes "libgtk-3-0 | libgtk-3-0t64".
work=$(mktemp -d)
trap 'rm -f "$ROOT/$CONF"; rm -rf "$work"' EXIT
dpkg-deb -R "$deb" "$work/root"
node -e '
  const fs = require("fs"), file = process.argv[1];
  const control = fs.readFileSync(file, "utf8").replace(/^Depends: (.*)$/m, (_, list) =>
    "Depends: " + [...new Set(list.split(/,\s*/).filter((dep) => dep !== "libgtk-3-0"))].join(", "));
  fs.writeFileSync(file, control);
' "$work/root/DEBIAN/control"
grep -q '^Depends:.*libgtk-3-0 | libgtk-3-0t64' "$work/root/DEBIAN/control" ||
  { say "the .deb's Depends lost its GTK alternative:"; grep '^Depends:' "$work/root/DEBIAN/control" >&2; exit 1; }
dpkg-deb --root-owner-group -Zxz -b "$work/root" "$deb" >/dev/null
say "$(grep '^Depends:' "$work/root/DEBIAN/control")"
say "built $deb ($(du -h "$deb" | cut -f1)) and $rpm ($(du -h "$rpm" | cut -f1))"
