#!/usr/bin/env node
// Builds the software CPU core (AssemblyScript, src/accel/soft/as/) into
// dist/src/accel/soft/soft-core.wasm. Run by `npm run build:soft-cpu`; the loader
// (src/accel/soft/core-loader.ts) also runs it on demand when the wasm is missing or older
// than its sources. Plain JavaScript so that it runs before anything is compiled.
// Usage: node scripts/build-soft-cpu.js [--debug]
import { mkdirSync, renameSync, readdirSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const srcDir = join(root, 'src/accel/soft/as');
const outDir = join(root, 'dist/src/accel/soft');
const out = join(outDir, 'soft-core.wasm');

/** Newest modification time of the core's sources (the loader compares it with the wasm's). */
export function newestSource() {
  let t = 0;
  for (const f of readdirSync(srcDir)) if (f.endsWith('.ts')) t = Math.max(t, statSync(join(srcDir, f)).mtimeMs);
  return t;
}

/**
 * A second binaryen pass with a larger inlining limit: asc's defaults leave the tiny hot
 * accessors (fetch8, register reads) as calls; inlining them is worth ~13% on the interpreter.
 * binaryen comes with assemblyscript (same version asc itself uses).
 */
async function inlineMore(file) {
  const binaryen = (await import('binaryen')).default;
  const mod = binaryen.readBinary(readFileSync(file));
  mod.setFeatures(binaryen.Features.Atomics | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt |
    binaryen.Features.SignExt | binaryen.Features.MutableGlobals | binaryen.Features.NontrappingFPToInt);
  binaryen.setOptimizeLevel(3); if (process.env.TSVM_CORE_NAMES) binaryen.setDebugInfo(true);
  binaryen.setShrinkLevel(0);
  // Limits measured with bench/soft-loop.ts (interpreter, mean of its six loops, best of 3):
  // flexible 60 / always 30 -> 59 M insn/s, 120/30 -> 62, 200/40 -> 66, 300/40 and 200/80 -> 64
  // (the core grows from 71 to 135 KiB; step and exec1 are inlined into run by @inline).
  binaryen.setFlexibleInlineMaxSize(200);
  // Small functions are inlined even when they call others (binaryen's flexible limit skips those):
  // fetch8 calls its slow path; measured: interpreter 42 -> 55 M insn/s (bench/soft-loop.ts), core +14%.
  binaryen.setAlwaysInlineMaxSize(40);
  mod.optimize();
  if (!mod.validate()) throw new Error('binaryen: the optimized core does not validate');
  writeFileSync(file, mod.emitBinary());
  mod.dispose();
}

export async function build(debug = false) {
  const asc = (await import('assemblyscript/asc')).default;
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const args = [
    join(srcDir, 'index.ts'), '-o', tmp,
    '--runtime', 'stub', '--noAssert',
    // guest RAM and the CPU state live in one shared memory that the TypeScript side creates
    '--importMemory', '--sharedMemory', '--enable', 'threads',
    // the JIT's compiled blocks live in a function table the TypeScript side creates (as/jit.ts)
    '--importTable',
    ...(process.env.TSVM_CORE_NAMES ? ['--debug'] : []), '--initialMemory', '1', '--maximumMemory', '65536', '--memoryBase', '1024',
    ...(debug ? ['--debug', '-O1'] : ['-O3']),
  ];
  const res = await asc.main(args, {});
  if (res.error) {
    throw new Error(`asc failed: ${res.error.message}\n${res.stderr.toString()}`);
  }
  if (!debug) await inlineMore(tmp);
  renameSync(tmp, out);
  return out;
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  build(process.argv.includes('--debug')).then(
    (p) => process.stderr.write(`built ${p}\n`),
    (e) => { process.stderr.write(`${e.message}\n`); process.exit(1); },
  );
}
