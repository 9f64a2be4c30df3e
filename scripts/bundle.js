#!/usr/bin/env node
// Bundles the compiled command line (dist/src/cli/main.js and every module it imports) into one
// file, dist/src/tsvm.bundle.js, which bin/tsvm runs: node loaded our ~130 ES modules one by one
// in 60-80 ms at every `tsvm` start, the bundle in ~35 ms. npm dependencies stay outside it, and
// worker threads and the soft CPU's core are loaded from dist/src/ by path (src/paths.ts), so
// the bundle lives there. Run by `npm run build` / `npm ci` after tsc; bin/tsvm falls back to the
// separate modules when any of them is newer than the bundle (a `tsc` run without this script).
// Plain JavaScript so that it runs before anything is compiled.
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const outfile = join(root, 'dist/src/tsvm.bundle.js');
try {
  const { build } = await import('esbuild');
  await build({
    entryPoints: [join(root, 'dist/src/cli/main.js')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    legalComments: 'none',
    logLevel: 'warning',
  });
  process.stderr.write(`bundled ${outfile}\n`);
} catch (e) {
  // esbuild ships a native binary per platform: without one (or if bundling fails), tsvm still
  // runs, from the separate modules (bin/tsvm uses the bundle only when there is a current one)
  rmSync(outfile, { force: true });
  process.stderr.write(`bundle: not bundled (${String(e?.message ?? e).split('\n')[0]}); tsvm runs from the separate modules\n`);
}
