// Builds the window's page into ui/dist, which Tauri embeds (see
// tauri.conf.json at the repository root). Vitest runs the unit tests
// beside the source.
import { defineConfig } from "vitest/config";

export default defineConfig({
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // WebKitGTK 2.4x and WebView2 both run ES2022.
    target: "es2022",
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
