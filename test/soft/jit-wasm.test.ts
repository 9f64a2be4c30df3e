// The JIT's wasm byte writer (src/accel/soft/jit/wasm.ts): its LEB128 encodings against a
// straightforward BigInt encoder (core spec 5.2.2), and appends of short and long buffers; what
// a block module imports (batch.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bytes } from '../../src/wasm/writer.js';
import { BlockCompiler, CHAIN_FUNC, F } from '../../src/accel/soft/jit/compiler.js';
import { compileBatch, FUNCS } from '../../src/accel/soft/jit/batch.js';

/** The part of the WebAssembly API this file uses (the project's TypeScript has no wasm types). */
interface WasmModuleApi {
  Module: { new (bytes: Uint8Array): object; imports(m: object): { module: string; name: string; kind: string }[] };
}

/** Signed LEB128 of a 64-bit integer, the plain way. */
function referenceS64(v: bigint): number[] {
  const out: number[] = [];
  let x = BigInt.asIntN(64, v);
  for (;;) {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    if ((x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0)) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}

test('s64 encodes every 64-bit value as signed LEB128 (edges, kernel addresses, pseudo-random values)', () => {
  const values = [0n, 1n, -1n, 63n, 64n, -64n, -65n, 0x7ffffffn, 0x8000000n, -0x8000000n, -0x8000001n, 0x7fffffffn, 0x80000000n,
    0xffffffffn, 0x100000000n, -0x100000000n, 0xffffffff81000000n, 0xffffffffffe00000n, 0x7fffffffffffffffn,
    -0x8000000000000000n, 0x8000000000000000n, 0xffffffffffffffffn, 0x00ff00ff00ff00ffn];
  let x = 0x9e3779b97f4a7c15n;
  for (let i = 0; i < 5000; i++) {
    x = BigInt.asUintN(64, x * 6364136223846793005n + 1442695040888963407n);
    values.push(x >> BigInt(i % 64)); // every magnitude
    values.push(BigInt.asIntN(64, x));
  }
  for (const v of values) {
    assert.deepEqual([...new Bytes().s64(v).view()], referenceS64(v), `s64(${v})`);
  }
});

test('append copies short and long buffers, growing the destination', () => {
  const short = new Bytes(4);
  for (let i = 0; i < 40; i++) short.byte(i);
  const long = new Bytes(4);
  for (let i = 0; i < 300; i++) long.byte(i & 0xff);
  const out = new Bytes(8).byte(0xaa).append(short).append(long).append(short);
  assert.deepEqual([...out.view()], [0xaa, ...short.view(), ...long.view(), ...short.view()]);
  assert.equal(out.length, 1 + 40 + 300 + 40);
});

test('block modules import one function, the chain trampoline; the other helpers come through a table', () => {
  // V8 compiles a JavaScript call wrapper for each imported function signature with every module
  // (it cannot know the import will be a wasm function): six helpers imported as functions took
  // ~60 % of V8's time per module (batch.ts FUNCS). This keeps them out.
  const mem = new Uint8Array(new SharedArrayBuffer(16 * 1024 * 1024));
  const host = 0x900000;
  mem.set([0x48, 0x83, 0xc0, 0x01, 0x48, 0x0f, 0x42, 0xc3, 0xeb, 0xf6], host); // add rax, 1; cmovb rax, rbx; jmp back
  const batch = compileBatch(new BlockCompiler(mem), [{ e: -1, rip: 0x401000n, host, cpl: 0, gen: 1, count: 0 }], () => -1, 1);
  assert.ok(batch.bytes, 'the block compiled');
  const wasm = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;
  const imports = wasm.Module.imports(new wasm.Module(batch.bytes));
  assert.deepEqual(imports.filter((i) => i.kind === 'function').map((i) => i.name), ['f']);
  assert.deepEqual(imports.filter((i) => i.kind === 'table').map((i) => i.name), ['h']);
  assert.equal(FUNCS[F.chain]?.[0], 'chain');
  assert.equal(CHAIN_FUNC, 0, 'the imported function is function 0');
});
