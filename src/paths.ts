// Where tsvm's own files are, for the code that loads them by path (worker threads, the soft CPU's
// core, docs/openapi.json, package.json, bin/tsvm). The compiled modules live in dist/src/, and
// `tsvm` runs them from one bundle there too (dist/src/tsvm.bundle.js, scripts/bundle.js): a URL
// taken relative to this module is the same in both, where one relative to a module's own URL is
// not once the modules are bundled.

import { readFileSync } from 'node:fs';

/** A file under dist/src/ (`rel` like 'accel/soft/jit/compile-worker.js'), or above it ('../../docs/...'). */
export function distSrcUrl(rel: string): URL {
  return new URL(rel, import.meta.url);
}

let version: string | undefined;

/** tsvm's version (package.json). */
export function tsvmVersion(): string {
  version ??= (JSON.parse(readFileSync(distSrcUrl('../../package.json'), 'utf8')) as { version: string }).version;
  return version;
}
