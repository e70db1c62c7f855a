// Prints the root tauri.conf.json with its file paths rebased for a copy in
// src-tauri/, for scripts/package.sh.
//
// The Tauri CLI takes the directory of its tauri.conf.json as the Rust crate
// to build and bundle. The config sits at the repository root (where the
// desktop crate's build script reads it), and the root Cargo.toml is the
// `riskwatch` library and CLI, so the CLI run from the root would bundle the
// wrong binary. The packaging run therefore gives the CLI this copy inside the
// desktop crate; paths in the root config are relative to the root, the CLI
// resolves them against src-tauri/, hence "../".
import { readFileSync } from "node:fs";

const config = JSON.parse(readFileSync(new URL("../../tauri.conf.json", import.meta.url), "utf8"));
const up = (path) => `../${path}`;
const rebaseFiles = (files = {}) =>
  Object.fromEntries(Object.entries(files).map(([dest, src]) => [dest, up(src)]));

config.build.frontendDist = up(config.build.frontendDist);
config.bundle.icon = config.bundle.icon.map(up);
for (const kind of ["deb", "rpm"]) {
  const linux = config.bundle.linux?.[kind];
  if (!linux) continue;
  if (linux.desktopTemplate) linux.desktopTemplate = up(linux.desktopTemplate);
  if (linux.files) linux.files = rebaseFiles(linux.files);
}
process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
