#!/usr/bin/env node
// Bundles the compiled command line (dist/src/cli/main.js and every module it imports) into one
// file, dist/src/tsvm.bundle.js, which bin/tsvm runs: node loaded our ~130 ES modules one by one
// in 60-80 ms at every `tsvm` start, the bundle in ~35 ms. npm dependencies stay outside it, and
// worker threads and the soft CPU's core are loaded from dist/src/ by path (src/paths.ts), so
// the bundle lives there. Run by `npm run build` / `npm ci` after tsc; bin/tsvm falls back to the
// separate modules when any of them is newer than the bundle (a `tsc` run without this script).
// Plain JavaScript so that it runs before anything is compiled.
import { build } from 'esbuild';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
await build({
  entryPoints: [join(root, 'dist/src/cli/main.js')],
  outfile: join(root, 'dist/src/tsvm.bundle.js'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  legalComments: 'none',
  logLevel: 'warning',
});
process.stderr.write(`bundled ${join(root, 'dist/src/tsvm.bundle.js')}\n`);
