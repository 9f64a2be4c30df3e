// The JIT's wasm byte writer (src/accel/soft/jit/wasm.ts): its LEB128 encodings against a
// straightforward BigInt encoder (core spec 5.2.2), and appends of short and long buffers; what
// a block module imports (batch.ts); how many bytes of locals a block function declares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bytes } from '../../src/wasm/writer.js';
import { BlockCompiler, CHAIN_FUNC, F } from '../../src/accel/soft/jit/compiler.js';
import { compileBatch, FUNCS } from '../../src/accel/soft/jit/batch.js';
import { compileWarmSample, WARM_CODE, WARM_STARTS } from '../../src/accel/soft/jit/warm-up.js';
import { assemble } from './harness.js';

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

test("the compiler thread's warm-up sample is the code its comment shows, and every block start in it compiles", async () => {
  const src = `
  f1:
    push rbp
    mov rbp, rsp
    push rbx
    push r12
    mov rbx, rdi
    mov r12d, esi
    mov eax, [rdi+0x10]
    test eax, eax
    je .out
    mov rcx, [rbx+8]
    add rax, rcx
    cmp rax, 0x40
    jae .big
    lea rdx, [rax+rax*2]
    mov [rbx+0x18], rdx
    movzx esi, byte [rbx+4]
    shl rsi, 3
    or rdx, rsi
    xor edx, 0x55
    sub r12d, 1
    jnz .loop
  .big:
    mov rdi, rbx
    call f2
    jmp .out
  .loop:
    inc dword [rbx+0x20]
    dec r12d
    jne .loop
  .out:
    pop r12
    pop rbx
    pop rbp
    ret
  f2:
    mov rax, [rdi]
    mov rdx, [rdi+8]
    imul rax, rdx
    mov [rdi+0x28], rax
    setne cl
    movsx ecx, cl
    cmovz eax, ecx
    and eax, 0xfff
    shr rdx, 7
    rol rdx, 3
    bt edx, 5
    jc .c
    mov qword [rdi+0x30], 0
    sar rax, 2
    neg rax
    not rdx
    test rdx, rax
    jg .c
    mov r8, [rel f1+0x100]
    lea r9, [rel f1+0x200]
    add r8, r9
  .c:
    movzx eax, word [rdi+rcx*2+6]
    cdqe
    cqo
    xchg rax, rdx
    ret
  f3:
    xor eax, eax
    mov ecx, 16
  .l:
    add eax, [rdi+rcx*4]
    adc edx, 0
    sub ecx, 1
    jnz .l
    mov [rsi], eax
    ret
  `;
  assert.deepEqual([...await assemble(src, 64, 0)], [...WARM_CODE]);
  // a compiler change that refuses part of the sample would leave the warm-up with less to do
  const batch = compileWarmSample();
  WARM_STARTS.forEach((s, i) => assert.ok(batch.items[i]!.count > 0, `the block at 0x${s.toString(16)} compiled`));
  assert.ok(batch.bytes);
  const wasm = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object } }).WebAssembly;
  assert.doesNotThrow(() => new wasm.Module(batch.bytes!), 'V8 validates the module');
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
  // ...and that one's signature is one JavaScript cannot call (a v128 parameter), so that V8 does
  // not compile a JavaScript wrapper for it with every module either (~90 µs of ~120 µs).
  const params = importedFunctionParams(batch.bytes, 'f');
  assert.ok(params.includes(0x7b), `c.f's parameters (${params.map((t) => t.toString(16)).join(' ')}) include a v128 (0x7b)`);
});

/** A reader over a module's bytes (core spec 5.1-5.5: LEB128 integers, names, sections). */
class ModuleReader {
  p = 8; // after the magic and version
  constructor(private readonly m: Uint8Array) {}
  byte(): number { return this.m[this.p++]!; }
  leb(): number { let r = 0, s = 0, b; do { b = this.byte(); r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; }
  name(): string { const n = this.leb(); const v = new TextDecoder().decode(this.m.subarray(this.p, this.p + n)); this.p += n; return v; }
  /** Move to the contents of the next section with id `id` (false: none follows). */
  seek(id: number): boolean {
    while (this.p < this.m.length) {
      const at = this.byte();
      const size = this.leb();
      if (at === id) return true;
      this.p += size;
    }
    return false;
  }
}

/** Value types of the parameters of the function a module imports as c.`name` (core spec 5.5.2, 5.5.5). */
function importedFunctionParams(module: Uint8Array, name: string): number[] {
  const r = new ModuleReader(module);
  const types: number[][] = [];
  assert.ok(r.seek(1), 'a type section');
  for (let n = r.leb(); n > 0; n--) {
    assert.equal(r.byte(), 0x60, 'a function type');
    const ps: number[] = [];
    for (let k = r.leb(); k > 0; k--) ps.push(r.byte());
    const results = r.leb();
    r.p += results; // one byte each (`r.p += r.leb()` would add to the position before the count)
    types.push(ps);
  }
  assert.ok(r.seek(2), 'an import section');
  for (let n = r.leb(); n > 0; n--) {
    const field = `${r.name()}.${r.name()}`;
    const kind = r.byte();
    if (kind === 0x00) { const t = r.leb(); if (field === `c.${name}`) return types[t]!; continue; }
    if (kind === 0x01) { r.byte(); if (r.byte() & 1) r.leb(); r.leb(); continue; } // table: type, limits
    if (kind === 0x02) { if (r.byte() & 1) r.leb(); r.leb(); continue; } // memory: limits
    r.p += 2; // global: type, mutability
  }
  assert.fail(`no function import c.${name}`);
}

/** Bytes of declared locals (parameters excluded) of each function in a module's code section (i32 4, i64 8). */
function localFrames(module: Uint8Array): number[] {
  const r = new ModuleReader(module);
  if (!r.seek(10)) return [];
  const frames: number[] = [];
  for (let n = r.leb(); n > 0; n--) {
    const end = r.leb() + r.p;
    let bytes = 0;
    for (let runs = r.leb(); runs > 0; runs--) {
      const count = r.leb();
      bytes += count * (r.byte() === 0x7e ? 8 : 4); // 0x7e: i64
    }
    frames.push(bytes);
    r.p = end;
  }
  return frames;
}

test('block functions that do not loop declare under 128 bytes of locals (Liftoff zero-fills them at every entry)', () => {
  // Liftoff clears a function's locals at every call: measured on this project's V8, up to 40
  // bytes ~2 ns, 48-120 bytes ~5 ns, 128 bytes and more ~13 ns per entry. Three i64 locals more on
  // every block (104 -> 128 bytes) made the boot to Linux's /init 5 % slower (~12 M entries run
  // Liftoff code): docs/soft-cpu-strategy.md, "Fourteenth session".
  const batch = compileWarmSample();
  const frames = localFrames(batch.bytes!);
  assert.equal(frames.length, batch.items.length, 'one function per block');
  const loops = new Set([0x47, 0xba]); // the sample's blocks that branch back to their start (registers in locals)
  let checked = 0;
  batch.items.forEach((it, i) => {
    const at = Number(it.rip - batch.items[0]!.rip);
    if (loops.has(at)) return;
    checked++;
    assert.ok(frames[i]! < 128, `the block at 0x${at.toString(16)} declares ${frames[i]} bytes of locals`);
  });
  assert.ok(checked >= 6, `${checked} blocks checked`);
});
