// npm run build: the static app in dist/ (docs/edge.md).
//
//   dist/index.html, app.js, styles.css, sw.js   the page, the engine, the service worker
//   dist/ort/ort-wasm-simd-threaded.wasm         onnxruntime-web's WASM runtime
//   dist/bundle/                                 manifest.json, the edge graphs, the models
//
// The bundle comes from MIXAI_BUNDLE (default: ../data/06_models/bundle, what `make demo`
// exports); every file the manifest lists is copied and checked against its sha256.

import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = resolve(process.env.MIXAI_EDGE_DIST ?? join(root, "dist"));
const bundleDir = resolve(process.env.MIXAI_BUNDLE ?? join(root, "..", "data", "06_models", "bundle"));
const wasm = join(root, "node_modules", "onnxruntime-web", "dist", "ort-wasm-simd-threaded.wasm");

function fail(message) {
  console.error(`web build: ${message}`);
  process.exit(1);
}

const manifestPath = join(bundleDir, "manifest.json");
if (!existsSync(manifestPath)) {
  fail(`no bundle at ${bundleDir}: run \`make demo\` (or kedro run --pipelines=export) first, or set MIXAI_BUNDLE`);
}
const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
if (!manifest.edge?.features || !manifest.edge?.alignment) {
  fail(`${manifestPath} lists no edge graphs: re-run the export pipeline (kedro run --pipelines=export)`);
}
const listed = [
  ...Object.values(manifest.tasks ?? {}).flatMap((task) => Object.values(task.models ?? {})),
  ...Object.values(manifest.edge),
];

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "bundle"), { recursive: true });
mkdirSync(join(dist, "ort"), { recursive: true });

copyFileSync(manifestPath, join(dist, "bundle", "manifest.json"));
for (const { file, sha256 } of listed) {
  const content = readFileSync(join(bundleDir, file));
  const digest = createHash("sha256").update(content).digest("hex");
  if (digest !== sha256) fail(`${file}: sha256 ${digest} differs from the manifest's ${sha256}`);
  writeFileSync(join(dist, "bundle", file), content);
}
copyFileSync(wasm, join(dist, "ort", "ort-wasm-simd-threaded.wasm"));
for (const page of ["index.html", "styles.css"]) copyFileSync(join(root, page), join(dist, page));

await build({
  entryPoints: [join(root, "src", "main.ts")],
  outfile: join(dist, "app.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
});

// The service worker precaches every file of the app; its cache name is their hash.
const files = ["index.html", "styles.css", "app.js", "ort/ort-wasm-simd-threaded.wasm", "bundle/manifest.json"];
files.push(...listed.map(({ file }) => `bundle/${file}`));
const version = createHash("sha256");
for (const file of files) version.update(file).update(readFileSync(join(dist, file)));
await build({
  entryPoints: [join(root, "src", "sw.ts")],
  outfile: join(dist, "sw.js"),
  bundle: true,
  format: "iife",
  target: "es2022",
  minify: true,
  define: {
    __PRECACHE__: JSON.stringify(["./", ...files]),
    __VERSION__: JSON.stringify(version.digest("hex").slice(0, 16)),
  },
  logLevel: "warning",
});

const total = [...files, "sw.js"].reduce((sum, file) => sum + statSync(join(dist, file)).size, 0);
console.log(`web build: ${relative(process.cwd(), dist) || "."} (${files.length + 1} files, ${(total / 1e6).toFixed(1)} MB)`);
