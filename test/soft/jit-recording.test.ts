// TSVM_SOFT_JIT_RECORD's file format (src/accel/soft/jit/recording.ts), which bench:jit-compile
// replays: a recording written and read back compiles to the same module as the live memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assemble } from './harness.js';
import { BlockCompiler } from '../../src/accel/soft/jit/compiler.js';
import { compileBatch } from '../../src/accel/soft/jit/batch.js';
import { batchItems, readRecording, writeRecording } from '../../src/accel/soft/jit/recording.js';
import { GUEST_BASE } from '../../src/accel/soft/layout.js';

const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;

test('a JIT recording reads back as it was written, and its blocks compile as from the live memory', async () => {
  const rip = 0x401000n;
  const host = GUEST_BASE + 0x1000;
  const memory = new SharedArrayBuffer(GUEST_BASE + 0x40000);
  new Uint8Array(memory).set(await assemble('add rax, rbx\nxor ecx, eax\nret', 64, Number(rip)), host);
  const batches: [string, number, number, number][][] = [[[rip.toString(16), host, 0, 1]]];
  const dir = mkdtempSync(join(tmpdir(), 'tsvm-rec-'));
  try {
    const file = join(dir, 'rec');
    writeRecording(file, { siblingMinRuns: 20, batches }, memory);
    assert.equal(statSync(`${file}.mem`).size, host + 0x2000, 'the memory up to the page after the last code page');
    const { rec, mem } = readRecording(file);
    assert.deepEqual(rec, { siblingMinRuns: 20, batches });
    const compile = (m: Uint8Array) => {
      return compileBatch(new BlockCompiler(m), batchItems(rec.batches[0]!), () => -1, rec.siblingMinRuns);
    };
    const live = compile(new Uint8Array(memory));
    const replayed = compile(mem);
    assert.equal(replayed.items[0]!.count, 3, 'the three instructions compiled');
    assert.deepEqual(replayed.bytes, live.bytes);
    assert.ok(replayed.bytes && wasm.validate(replayed.bytes), 'V8 accepts the module');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
