// `npm run bench:jit-compile`: what compiling the JIT's blocks costs, on the blocks of a real boot.
// Boots the Debian cloud kernel under `tsvm run --accel soft` to the kernel's "Run /init" line with
// TSVM_SOFT_JIT_RECORD (src/accel/soft/jit/recording.ts), then compiles every recorded batch again
// in child processes, each on one thread (--single-threaded), and prints: the wasm bytes per guest
// instruction, our BlockCompiler's time (JavaScript, the best of 3 passes), and V8's time for the
// modules with lazy compilation (decoding and validation only, what the compiler thread pays),
// with Liftoff for every function, and with TurboFan for every function (the two tiers V8 uses,
// whose cost follows the size of the code). For comparing compiler changes on the same guest code:
// `node dist/bench/jit-compile.js --replay FILE` measures a recording made earlier
// (TSVM_SOFT_JIT_RECORD=FILE tsvm run ...) with the current compiler. Env: BENCH_RECORDING=FILE
// keeps the boot's recording there (default: a temporary file, removed at the end).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDefaultGuest } from '../scripts/build-guests.js';
import { ConsoleVm, INIT_LINE, tsvmCommand } from './console-vm.js';
import { BlockCompiler } from '../src/accel/soft/jit/compiler.js';
import { compileBatch } from '../src/accel/soft/jit/batch.js';
import { countingRuns } from '../src/accel/soft/jit/block-table.js';
import { batchItems, readRecording } from '../src/accel/soft/jit/recording.js';

interface WasmModuleApi { Module: new (bytes: Uint8Array) => object }
const wasm = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;

interface Replay { batches: number; modules: number; instructions: number; bytes: number; compilerMs: number; v8Ms: number }

/** Compile every batch of the recording with the current compiler, then have V8 compile the modules. */
function replay(path: string): Replay {
  const { rec, mem } = readRecording(path);
  const view = new DataView(mem.buffer);
  const compiler = new BlockCompiler(mem);
  const runs = (rip: bigint, host: number, cpl: number) => countingRuns(view, rip, host, cpl);
  let modules: Uint8Array[] = [];
  let instructions = 0;
  let compilerMs = Infinity;
  for (let pass = 0; pass < 3; pass++) {
    const out: Uint8Array[] = [];
    let n = 0;
    const t0 = performance.now();
    for (const b of rec.batches) {
      const batch = compileBatch(compiler, batchItems(b), runs, rec.siblingMinRuns);
      if (batch.bytes) out.push(batch.bytes.slice());
      for (const it of batch.items) n += it.count;
    }
    compilerMs = Math.min(compilerMs, performance.now() - t0);
    modules = out;
    instructions = n;
  }
  const t1 = performance.now();
  for (const m of modules) new wasm.Module(m);
  const v8Ms = performance.now() - t1;
  const bytes = modules.reduce((s, m) => s + m.length, 0);
  return { batches: rec.batches.length, modules: modules.length, instructions, bytes, compilerMs, v8Ms };
}

const log = (s: string) => process.stderr.write(`bench:jit-compile: ${s}\n`);
const at = process.argv.indexOf('--replay');
if (at >= 0) {
  // a child (or a developer): one replay, its result as JSON on stdout
  console.log(JSON.stringify(replay(process.argv[at + 1]!)));
} else {
  const guest = await ensureDefaultGuest({ flavor: 'cloud' });
  const dir = process.env.BENCH_RECORDING ? null : mkdtempSync(join(tmpdir(), 'tsvm-jit-'));
  const file = process.env.BENCH_RECORDING ?? join(dir!, 'boot');
  try {
    log('booting to /init with TSVM_SOFT_JIT_RECORD');
    process.env.TSVM_SOFT_JIT_RECORD = file;
    const vm = ConsoleVm.start(tsvmCommand(guest.kernel, guest.initrd));
    await vm.waitFor(INIT_LINE);
    await vm.terminate();
    delete process.env.TSVM_SOFT_JIT_RECORD;
    const self = fileURLToPath(import.meta.url);
    const tiers: [string, string[]][] = [
      ['lazy compilation (validation)', []],
      ['Liftoff, every function', ['--liftoff-only', '--no-wasm-lazy-compilation']],
      ['TurboFan, every function', ['--no-liftoff', '--no-wasm-lazy-compilation']],
    ];
    const results = tiers.map(([name, flags]) => {
      log(`replaying: ${name}`);
      const r = spawnSync(process.execPath, ['--single-threaded', ...flags, self, '--replay', file], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`replay (${name}) failed:\n${r.stderr}`);
      return [name, JSON.parse(r.stdout) as Replay] as const;
    });
    const first = results[0]![1];
    const perInsn = (ms: number) => `${((ms * 1000) / first.instructions).toFixed(2)} µs per instruction`;
    console.log(`Compiling the JIT's blocks of one boot to /init (Debian ${guest.kernelVersion}): ${first.batches} batches, ${first.modules} modules,`);
    console.log(`${first.instructions} guest instructions, ${(first.bytes / 1e6).toFixed(2)} MB of wasm (${(first.bytes / first.instructions).toFixed(1)} bytes per instruction)`);
    console.log(`  BlockCompiler (JavaScript, warm)  ${first.compilerMs.toFixed(0).padStart(6)} ms   ${perInsn(first.compilerMs)}`);
    for (const [name, r] of results) console.log(`  V8, ${name.padEnd(30)} ${r.v8Ms.toFixed(0).padStart(6)} ms   ${perInsn(r.v8Ms)}`);
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}
