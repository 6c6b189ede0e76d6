// Build the playground page into the Python package (src/embedrouter/api/playground/), or into
// the directory given as the first argument.
//
// The output must be byte-for-byte reproducible: tests/api/test_playground_build.py rebuilds it
// and compares with what is committed. So: fixed esbuild options, content-hashed names (no dates,
// no absolute paths), and the directory holds exactly the files of one build.
import { build } from "esbuild";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = resolve(here, "..");
const outDir = resolve(process.argv[2] ?? join(packageRoot, "../../src/embedrouter/api/playground"));

const result = await build({
  absWorkingDir: packageRoot,
  entryPoints: ["playground/src/main.tsx"],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome111", "firefox113", "safari16.4"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  entryNames: "app-[hash]",
  legalComments: "eof",
  charset: "utf8",
  sourcemap: false,
  metafile: true,
  write: false,
  outdir: "out",
  logLevel: "warning",
});

const files = new Map();
for (const file of result.outputFiles) {
  files.set(basename(file.path), file.contents);
}
const pick = (ext) => {
  const names = [...files.keys()].filter((n) => n.endsWith(ext));
  if (names.length !== 1) {
    throw new Error(`expected one ${ext} output, got ${names.join(", ") || "none"}`);
  }
  return names[0];
};
const html = readFileSync(join(here, "index.html"), "utf8")
  .replace("{{js}}", pick(".js"))
  .replace("{{css}}", pick(".css"));
files.set("index.html", Buffer.from(html, "utf8"));

// Replace the directory's contents with exactly this build (old hashed files go).
mkdirSync(outDir, { recursive: true });
for (const name of readdirSync(outDir)) {
  if (!files.has(name)) {
    rmSync(join(outDir, name), { recursive: true });
  }
}
for (const [name, contents] of files) {
  writeFileSync(join(outDir, name), contents);
}
console.log(
  [...files].map(([name, c]) => `${name} ${c.length} bytes`).join("\n"),
);
