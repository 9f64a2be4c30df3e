// Loads the AssemblyScript core (soft-core.wasm, built by scripts/build-soft-cpu.js from
// src/accel/soft/as/). In a development tree the wasm is rebuilt on demand when it is missing or
// older than its sources, so `tsc` + `node --test` is enough to run the tests.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distSrcUrl } from '../../paths.js';

const here = fileURLToPath(distSrcUrl('accel/soft/')); // dist/src/accel/soft
const wasmPath = join(here, 'soft-core.wasm');
const root = join(here, '..', '..', '..', '..');
const sourceDir = join(root, 'src', 'accel', 'soft', 'as');
const buildScript = join(root, 'scripts', 'build-soft-cpu.js');

interface WasmModuleApi {
  Module: new (bytes: Uint8Array) => object;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;

let cached: object | undefined;

function newestSource(): number {
  if (!existsSync(sourceDir)) return 0;
  let t = 0;
  for (const f of readdirSync(sourceDir)) if (f.endsWith('.ts')) t = Math.max(t, statSync(join(sourceDir, f)).mtimeMs);
  return t;
}

/** The compiled core module (compiled once per thread). */
export function coreModule(): object {
  if (cached) return cached;
  const stale = !existsSync(wasmPath) || statSync(wasmPath).mtimeMs < newestSource();
  if (stale && existsSync(buildScript)) {
    const r = spawnSync(process.execPath, [buildScript], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the software CPU core failed:\n${r.stderr}`);
  }
  if (!existsSync(wasmPath)) throw new Error(`software CPU core ${wasmPath} is missing (run npm run build:soft-cpu)`);
  cached = new wasm.Module(readFileSync(wasmPath));
  return cached;
}
