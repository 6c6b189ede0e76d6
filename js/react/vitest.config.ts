import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The tests import the package by name and get the BUILT files (dist/), so they exercise what
// npm would publish; `npm test` builds first (pretest).
export default defineConfig({
  resolve: {
    alias: {
      "@embedrouter/react": fileURLToPath(new URL("./dist/index.js", import.meta.url)),
    },
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.{ts,tsx}"],
    setupFiles: ["test/setup.ts"],
    testTimeout: 60_000,
    // One live server behind all files: no need for parallel workers on a 2-core CI box.
    fileParallelism: false,
  },
});
