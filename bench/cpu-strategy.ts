// Execution-strategy prototype for the software CPU (see docs/soft-cpu-strategy.md).
//
// The same tiny x86-64 interpreter loop is written three ways and run on the same guest loop:
//   (a) TypeScript, 64-bit registers as two 32-bit halves in an Int32Array
//   (b) TypeScript, 64-bit registers as BigInt (BigUint64Array)
//   (c) AssemblyScript (i64 native) compiled to wasm; guest RAM lives in a shared
//       WebAssembly.Memory whose buffer (a SharedArrayBuffer) is what GuestMemory wraps.
// Each interpreter fetches through a code TLB, decodes REX + opcode + ModRM (+disp8), keeps
// flags lazily (last result/operands/op) and translates data addresses through a software TLB.
//
// Guest loop at 0x1000 (64-bit code), 5 instructions per iteration:
//   48 8B 06        mov rax, [rsi]
//   48 01 D8        add rax, rbx
//   48 89 46 08     mov [rsi+8], rax
//   48 FF C9        dec rcx
//   75 F1           jnz loop
//
// Run: npx tsc -p tsconfig.json && node dist/bench/cpu-strategy.js [iterations] [soft]
// (`soft` runs only (d), the real interpreter.)
// (c) needs the `assemblyscript` dev dependency; it is skipped when that is not installed.

import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { Bus } from '../src/devices/bus.js';
import { longModeState } from '../src/accel/cpu-state.js';
import { allocateSoftMemory } from '../src/accel/soft/soft-memory.js';
import { SoftCpu } from '../src/accel/soft/soft-cpu.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CODE = [0x48, 0x8b, 0x06, 0x48, 0x01, 0xd8, 0x48, 0x89, 0x46, 0x08, 0x48, 0xff, 0xc9, 0x75, 0xf1];
const CODE_ADDR = 0x1000;
const DATA_ADDR = 0x2000;
const RAM_SIZE = 1 << 20;
const INSNS_PER_ITER = 5;

function loadGuest(bytes: Uint8Array, base: number): void {
  bytes.set(CODE, base + CODE_ADDR);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  dv.setUint32(base + DATA_ADDR, 0x89abcdef, true);
  dv.setUint32(base + DATA_ADDR + 4, 0x01234567, true);
}

const TLB_SIZE = 256;

// ---------------------------------------------------------------- (a) 32-bit halves
class HalvesCpu {
  readonly r = new Int32Array(32); // reg i: lo at 2i, hi at 2i+1
  ripLo = 0;
  ripHi = 0;
  // lazy flags: the last ALU result and operation
  fOp = 0;
  fResLo = 0;
  fResHi = 0;
  fSrcLo = 0;
  fSrcHi = 0;
  // software TLB: virtual page (lo 32 bits >>> 12, hi 32 bits) -> byte offset of the page
  readonly tlbTagLo = new Int32Array(TLB_SIZE).fill(-1);
  readonly tlbTagHi = new Int32Array(TLB_SIZE).fill(-1);
  readonly tlbOff = new Int32Array(TLB_SIZE);
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  // identity "page walk" for the prototype
  translate(lo: number, hi: number): number {
    const vpn = lo >>> 12;
    const i = vpn & (TLB_SIZE - 1);
    if (this.tlbTagLo[i] === vpn && this.tlbTagHi[i] === hi) return this.tlbOff[i] + (lo & 0xfff);
    if (hi !== 0 || (lo >>> 0) + 8 > this.bytes.length) throw new Error('fault');
    this.tlbTagLo[i] = vpn;
    this.tlbTagHi[i] = hi;
    this.tlbOff[i] = vpn << 12;
    return (vpn << 12) + (lo & 0xfff);
  }
  run(n: number): number {
    const r = this.r;
    const b = this.bytes;
    const v = this.view;
    let done = 0;
    while (done < n) {
      let p = this.translate(this.ripLo, this.ripHi);
      const start = p;
      let op = b[p++];
      let rex = 0;
      if ((op & 0xf0) === 0x40) { rex = op; op = b[p++]; }
      const w = (rex & 8) !== 0;
      switch (op) {
        case 0x8b: case 0x89: case 0x01: {
          const modrm = b[p++];
          const mod = modrm >> 6;
          const reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
          const rm = (modrm & 7) | ((rex & 1) << 3);
          if (mod === 3) {
            // register form: add r/m64, r64
            const aLo = r[rm * 2], aHi = r[rm * 2 + 1];
            const sLo = r[reg * 2], sHi = r[reg * 2 + 1];
            const lo = (aLo + sLo) | 0;
            const c = (lo >>> 0) < (aLo >>> 0) ? 1 : 0;
            const hi = w ? (aHi + sHi + c) | 0 : 0;
            r[rm * 2] = lo; r[rm * 2 + 1] = hi;
            this.fOp = 1; this.fResLo = lo; this.fResHi = hi; this.fSrcLo = sLo; this.fSrcHi = sHi;
          } else {
            let eLo = r[rm * 2], eHi = r[rm * 2 + 1];
            if (mod === 1) {
              const d = (b[p++] << 24) >> 24;
              const lo = (eLo + d) | 0;
              const c = (lo >>> 0) < (eLo >>> 0) ? 1 : 0;
              eHi = (eHi + c + (d >> 31)) | 0;
              eLo = lo;
            }
            const o = this.translate(eLo, eHi);
            if (op === 0x8b) {
              r[reg * 2] = v.getInt32(o, true);
              r[reg * 2 + 1] = w ? v.getInt32(o + 4, true) : 0;
            } else {
              v.setInt32(o, r[reg * 2], true);
              if (w) v.setInt32(o + 4, r[reg * 2 + 1], true);
            }
          }
          break;
        }
        case 0xff: {
          const modrm = b[p++];
          const rm = (modrm & 7) | ((rex & 1) << 3);
          // dec r64 (CF preserved: the lazy state keeps the old carry in fOp 2 form)
          const lo = (r[rm * 2] - 1) | 0;
          const hi = lo === -1 ? (r[rm * 2 + 1] - 1) | 0 : r[rm * 2 + 1];
          r[rm * 2] = lo; r[rm * 2 + 1] = hi;
          this.fOp = 2; this.fResLo = lo; this.fResHi = hi;
          break;
        }
        case 0x75: {
          const d = (b[p++] << 24) >> 24;
          const len = p - start;
          let lo = (this.ripLo + len) | 0;
          if ((this.fResLo | this.fResHi) !== 0) lo = (lo + d) | 0;
          this.ripLo = lo;
          done++;
          continue;
        }
        default:
          throw new Error(`op ${op.toString(16)}`);
      }
      this.ripLo = (this.ripLo + (p - start)) | 0;
      done++;
    }
    return done;
  }
}

// ---------------------------------------------------------------- (b) BigInt
class BigCpu {
  readonly r = new BigUint64Array(16);
  rip = 0n;
  fOp = 0;
  fRes = 0n;
  fSrc = 0n;
  readonly tlbTag: bigint[] = new Array<bigint>(TLB_SIZE).fill(-1n);
  readonly tlbOff = new Int32Array(TLB_SIZE);
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  translate(a: bigint): number {
    const vpn = a >> 12n;
    const i = Number(vpn & BigInt(TLB_SIZE - 1));
    if (this.tlbTag[i] === vpn) return this.tlbOff[i] + Number(a & 0xfffn);
    if (a + 8n > BigInt(this.bytes.length)) throw new Error('fault');
    this.tlbTag[i] = vpn;
    this.tlbOff[i] = Number(vpn) << 12;
    return Number(a);
  }
  run(n: number): number {
    const r = this.r;
    const b = this.bytes;
    const v = this.view;
    let done = 0;
    while (done < n) {
      let p = this.translate(this.rip);
      const start = p;
      let op = b[p++];
      let rex = 0;
      if ((op & 0xf0) === 0x40) { rex = op; op = b[p++]; }
      const w = (rex & 8) !== 0;
      switch (op) {
        case 0x8b: case 0x89: case 0x01: {
          const modrm = b[p++];
          const mod = modrm >> 6;
          const reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
          const rm = (modrm & 7) | ((rex & 1) << 3);
          if (mod === 3) {
            const s = r[reg];
            const res = w ? BigInt.asUintN(64, r[rm] + s) : BigInt.asUintN(32, r[rm] + s);
            r[rm] = res;
            this.fOp = 1; this.fRes = res; this.fSrc = s;
          } else {
            let ea = r[rm];
            if (mod === 1) ea = BigInt.asUintN(64, ea + BigInt((b[p++] << 24) >> 24));
            const o = this.translate(ea);
            if (op === 0x8b) r[reg] = w ? v.getBigUint64(o, true) : BigInt(v.getUint32(o, true));
            else if (w) v.setBigUint64(o, r[reg], true);
            else v.setUint32(o, Number(r[reg] & 0xffffffffn), true);
          }
          break;
        }
        case 0xff: {
          const modrm = b[p++];
          const rm = (modrm & 7) | ((rex & 1) << 3);
          const res = BigInt.asUintN(64, r[rm] - 1n);
          r[rm] = res;
          this.fOp = 2; this.fRes = res;
          break;
        }
        case 0x75: {
          const d = (b[p++] << 24) >> 24;
          let nrip = this.rip + BigInt(p - start);
          if (this.fRes !== 0n) nrip += BigInt(d);
          this.rip = BigInt.asUintN(64, nrip);
          done++;
          continue;
        }
        default:
          throw new Error(`op ${op.toString(16)}`);
      }
      this.rip = BigInt.asUintN(64, this.rip + BigInt(p - start));
      done++;
    }
    return done;
  }
}

// ---------------------------------------------------------------- (c) AssemblyScript
// Memory layout inside the wasm memory: [0, 64 KiB) CPU state (regs at 0, TLB at 0x1000),
// guest RAM from RAM_BASE. In the product the GuestMemory would wrap memory.buffer at RAM_BASE.
const AS_RAM_BASE = 0x10000;
const AS_SOURCE = `
const RAM_BASE: u32 = ${AS_RAM_BASE};
const RAM_SIZE: u64 = ${RAM_SIZE};
const REGS: u32 = 0;
const TLB_TAG: u32 = 0x1000;      // i64 tags
const TLB_OFF: u32 = 0x1000 + ${TLB_SIZE * 8};
let rip: u64 = 0;
let fOp: i32 = 0;
let fRes: u64 = 0;
let fSrc: u64 = 0;

@inline function reg(i: u32): u64 { return load<u64>(REGS + (i << 3)); }
@inline function setReg(i: u32, v: u64): void { store<u64>(REGS + (i << 3), v); }

export function setRip(v: u64): void { rip = v; }
export function getRip(): u64 { return rip; }
export function resetTlb(): void {
  for (let i: u32 = 0; i < ${TLB_SIZE}; i++) store<i64>(TLB_TAG + (i << 3), -1);
}

@inline function translate(a: u64): u32 {
  const vpn = a >> 12;
  const i = <u32>(vpn & ${TLB_SIZE - 1});
  if (load<u64>(TLB_TAG + (i << 3)) == vpn) return load<u32>(TLB_OFF + (i << 2)) + <u32>(a & 0xfff);
  return translateSlow(a);
}
function translateSlow(a: u64): u32 {
  if (a + 8 > RAM_SIZE) unreachable();
  const vpn = a >> 12;
  const i = <u32>(vpn & ${TLB_SIZE - 1});
  store<u64>(TLB_TAG + (i << 3), vpn);
  store<u32>(TLB_OFF + (i << 2), RAM_BASE + (<u32>vpn << 12));
  return RAM_BASE + <u32>a;
}

export function run(n: i32): i32 {
  let done: i32 = 0;
  while (done < n) {
    let p = translate(rip);
    const start = p;
    let op: u32 = load<u8>(p++);
    let rex: u32 = 0;
    if ((op & 0xf0) == 0x40) { rex = op; op = load<u8>(p++); }
    const w = (rex & 8) != 0;
    switch (op) {
      case 0x8b: case 0x89: case 0x01: {
        const modrm: u32 = load<u8>(p++);
        const mod = modrm >> 6;
        const r = ((modrm >> 3) & 7) | ((rex & 4) << 1);
        const rm = (modrm & 7) | ((rex & 1) << 3);
        if (mod == 3) {
          const s = reg(r);
          let res = reg(rm) + s;
          if (!w) res &= 0xffffffff;
          setReg(rm, res);
          fOp = 1; fRes = res; fSrc = s;
        } else {
          let ea = reg(rm);
          if (mod == 1) ea += <u64><i64>load<i8>(p++);
          const o = translate(ea);
          if (op == 0x8b) setReg(r, w ? load<u64>(o) : <u64>load<u32>(o));
          else if (w) store<u64>(o, reg(r));
          else store<u32>(o, <u32>reg(r));
        }
        break;
      }
      case 0xff: {
        const modrm: u32 = load<u8>(p++);
        const rm = (modrm & 7) | ((rex & 1) << 3);
        const res = reg(rm) - 1;
        setReg(rm, res);
        fOp = 2; fRes = res;
        break;
      }
      case 0x75: {
        const d = <i64>load<i8>(p++);
        let nrip = rip + <u64>(p - start);
        if (fRes != 0) nrip += <u64>d;
        rip = nrip;
        done++;
        continue;
      }
      default:
        unreachable();
    }
    rip += <u64>(p - start);
    done++;
  }
  return done;
}
`;

// lib ES2023 without DOM has no WebAssembly typings; declare the little used here.
interface WasmMemory { readonly buffer: ArrayBufferLike }
declare const WebAssembly: {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  compile(b: Uint8Array): Promise<object>;
  instantiate(m: object, imports: object): Promise<{ exports: object }>;
};

interface AsExports {
  run(n: number): number;
  setRip(v: bigint): void;
  getRip(): bigint;
  resetTlb(): void;
}

async function buildAs(): Promise<{ exports: AsExports; memory: WasmMemory } | string> {
  let asc: { main(argv: string[], opts?: object): Promise<{ error: Error | null; stderr: { toString(): string } }> };
  try {
    const spec = 'assemblyscript/asc';
    asc = (await import(spec)) as typeof asc;
  } catch {
    return 'assemblyscript is not installed (npm i -D assemblyscript)';
  }
  const dir = mkdtempSync(join(tmpdir(), 'tsvm-as-'));
  try {
    const src = join(dir, 'core.ts');
    const out = join(dir, 'core.wasm');
    writeFileSync(src, AS_SOURCE);
    const res = await asc.main([src, '-O3', '--runtime', 'stub', '--importMemory', '--sharedMemory', '--enable', 'threads',
      '--initialMemory', String((AS_RAM_BASE + RAM_SIZE) / 65536), '--maximumMemory', '1024', '--noAssert', '-o', out]);
    if (res.error) return `asc failed: ${res.error.message} ${res.stderr.toString()}`;
    const memory = new WebAssembly.Memory({ initial: (AS_RAM_BASE + RAM_SIZE) / 65536, maximum: 1024, shared: true });
    const mod = await WebAssembly.compile(readFileSync(out));
    const inst = await WebAssembly.instantiate(mod, { env: { memory, abort: () => { throw new Error('abort'); } } });
    return { exports: inst.exports as unknown as AsExports, memory };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function time(label: string, iters: number, fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  const ns = Number(process.hrtime.bigint() - t0);
  const mips = (iters * INSNS_PER_ITER) / (ns / 1e3);
  console.log(`${label.padEnd(40)} ${(ns / 1e6).toFixed(1).padStart(8)} ms  ${mips.toFixed(1).padStart(7)} M guest insn/s`);
  return mips;
}

/** (d) the real interpreter (src/accel/soft) on the same loop, in 64-bit mode with 4-level paging. */
function runSoftCpu(iters: number): void {
  const mem = allocateSoftMemory(RAM_SIZE * 4);
  loadGuest(mem.bytes, 0);
  // identity map with 2 MiB pages: PML4 0x10000 -> PDPT 0x11000 -> PD 0x12000
  mem.writeU64(0x10000, 0x11000n | 3n);
  mem.writeU64(0x11000, 0x12000n | 3n);
  mem.writeU64(0x12000, 0x83n);
  mem.writeU64(0x13008, 0x00af9b000000ffffn); // GDT[1]: 64-bit code
  mem.writeU64(0x13010, 0x00cf93000000ffffn); // GDT[2]: data
  const cpu = new SoftCpu({ mem, bus: new Bus() });
  const st = longModeState(BigInt(CODE_ADDR), 0x10000n, 0x13000n, 0x17);
  st.cs.selector = 0x08;
  st.regs.rbx = 0x100000001n;
  st.regs.rsi = BigInt(DATA_ADDR);
  st.regs.rcx = BigInt(iters);
  cpu.setState(st);
  const n = iters * INSNS_PER_ITER;
  time('(d) src/accel/soft interpreter (AS core)', iters, () => {
    const exit = cpu.run(n);
    if (exit.kind !== 'budget') throw new Error(JSON.stringify(exit));
  });
  if (cpu.getState().regs.rcx !== 0n) throw new Error('(d) rcx not zero');
}

async function main(): Promise<void> {
  const iters = Number(process.argv[2] ?? 20_000_000);
  const rounds = 3;
  if (process.argv[3] === 'soft') {
    for (let k = 0; k < rounds; k++) runSoftCpu(iters);
    return;
  }
  // (a)
  for (let k = 0; k < rounds; k++) {
    const bytes = new Uint8Array(new SharedArrayBuffer(RAM_SIZE));
    loadGuest(bytes, 0);
    const cpu = new HalvesCpu(bytes);
    cpu.ripLo = CODE_ADDR;
    cpu.r[2 * 3] = 1; cpu.r[2 * 3 + 1] = 1; // rbx = 0x1_0000_0001 (exercises the high half)
    cpu.r[2 * 6] = DATA_ADDR; // rsi
    cpu.r[2 * 1] = iters; // rcx
    const n = iters * INSNS_PER_ITER;
    time('(a) TS, Int32Array halves', iters, () => { cpu.run(n); });
    if (cpu.r[2] !== 0) throw new Error('(a) rcx not zero');
  }
  // (b)
  const bigIters = Math.max(1, Math.floor(iters / 10));
  for (let k = 0; k < rounds; k++) {
    const bytes = new Uint8Array(new SharedArrayBuffer(RAM_SIZE));
    loadGuest(bytes, 0);
    const cpu = new BigCpu(bytes);
    cpu.rip = BigInt(CODE_ADDR);
    cpu.r[3] = 0x100000001n;
    cpu.r[6] = BigInt(DATA_ADDR);
    cpu.r[1] = BigInt(bigIters);
    time('(b) TS, BigInt', bigIters, () => { cpu.run(bigIters * INSNS_PER_ITER); });
    if (cpu.r[1] !== 0n) throw new Error('(b) rcx not zero');
  }
  // (c)
  const as = await buildAs();
  if (typeof as === 'string') {
    console.log(`(c) AssemblyScript: skipped: ${as}`);
    return;
  }
  for (let k = 0; k < rounds; k++) {
    const bytes = new Uint8Array(as.memory.buffer as unknown as SharedArrayBuffer);
    bytes.fill(0);
    loadGuest(bytes, AS_RAM_BASE);
    const regs = new BigUint64Array(as.memory.buffer as unknown as SharedArrayBuffer, 0, 16);
    regs[3] = 0x100000001n;
    regs[6] = BigInt(DATA_ADDR);
    regs[1] = BigInt(iters);
    as.exports.resetTlb();
    as.exports.setRip(BigInt(CODE_ADDR));
    const n = iters * INSNS_PER_ITER;
    time('(c) AssemblyScript i64 (wasm)', iters, () => {
      // the real core returns to JS on a budget; do the same in slices of 1M instructions
      for (let left = n; left > 0; left -= 1_000_000) as.exports.run(Math.min(left, 1_000_000));
    });
    if (regs[1] !== 0n) throw new Error('(c) rcx not zero');
  }
  for (let k = 0; k < rounds; k++) runSoftCpu(iters);
}

await main();
