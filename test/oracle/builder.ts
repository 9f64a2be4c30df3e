// The pieces every case generator uses: a seeded PRNG, x86 register names, operand values with
// a bias towards boundaries, and `Builder`, which assembles one case: its initial registers and
// flags, its window contents (a slice of the pool), and its instructions, each annotated with
// the RFLAGS bits that are undefined when it starts (see flags.ts).
//
// A Builder knows the exact value of every register until an instruction writes it, so
// generators can make memory operands that land inside the window, counts for REP and shifts,
// and aligned addresses for CMPXCHG16B, without simulating the instructions.

import type { AsmLine, OracleCase } from './case.js';
import { DF, type FlagEffect, NONE, STATUS } from './flags.js';
import { POOL_SIZE } from './image.js';
import * as L from './layout.js';

// ---- PRNG (sfc32, seeded through splitmix32) ----

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next(); this.b = next(); this.c = next(); this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }

  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  bool(p = 0.5): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** A derived generator (for independent streams from one seed). */
  fork(salt: number): Rng {
    return new Rng((this.u32() ^ Math.imul(salt, 0x27d4eb2d)) >>> 0);
  }
}

// ---- Registers and operands ----

export type Size = 8 | 16 | 32 | 64;
export const SIZES: readonly Size[] = [8, 16, 32, 64];
export const WIDE: readonly Size[] = [16, 32, 64];

const R64 = L.REG64;
const R32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d', 'r15d'];
const R16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w', 'r15w'];
const R8 = ['al', 'cl', 'dl', 'bl', 'spl', 'bpl', 'sil', 'dil', 'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b', 'r15b'];
const HIGH8 = ['ah', 'ch', 'dh', 'bh'];
export const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7;

export interface Reg {
  kind: 'reg';
  idx: number;
  size: Size;
  /** AH, CH, DH, BH (idx 0-3): bits 15:8 of the register; unusable with a REX prefix. */
  high?: boolean;
}

export interface Mem {
  kind: 'mem';
  addr: number;
  size: Size;
  /** The operand as nasm wants it, size keyword included ("qword [rbx+0x10]"). */
  text: string;
  /** The address alone ("[rbx+0x10]"). */
  ea: string;
  /** Registers the address uses. */
  uses: number[];
}

export type Opnd = Reg | Mem;

export const KW: Record<Size, string> = { 8: 'byte', 16: 'word', 32: 'dword', 64: 'qword' };
export const mask = (s: number): bigint => (1n << BigInt(s)) - 1n;
export const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
export const reg = (idx: number, size: Size, high = false): Reg => ({ kind: 'reg', idx, size, ...(high ? { high } : {}) });

export function rname(r: Reg): string {
  if (r.high) return HIGH8[r.idx];
  return (r.size === 64 ? R64 : r.size === 32 ? R32 : r.size === 16 ? R16 : R8)[r.idx];
}

export const otext = (o: Opnd): string => (o.kind === 'reg' ? rname(o) : o.text);

/** Whether the operand forces a REX prefix (which rules out AH-BH in the same instruction). */
export function needsRex(o: Opnd): boolean {
  if (o.kind === 'mem') return o.uses.some((i) => i >= 8);
  return o.idx >= 8 || o.size === 64 || (o.size === 8 && !o.high && o.idx >= 4);
}

export const hex = (v: bigint | number): string => {
  const b = BigInt(v);
  return b < 0n ? `-0x${(-b).toString(16)}` : `0x${b.toString(16)}`;
};

/** Signed value of the low `size` bits of v. */
export const signed = (v: bigint, size: number): bigint => BigInt.asIntN(size, v);

/** An immediate as nasm text: signed for sign-extended encodings, unsigned otherwise. */
export function immText(v: bigint, bits: number, signExtended: boolean): string {
  return signExtended ? hex(BigInt.asIntN(bits, v)) : hex(BigInt.asUintN(bits, v));
}

// ---- Values ----

export function boundaryValues(size: number): bigint[] {
  const m = mask(size);
  const h = 1n << BigInt(size - 1);
  const set = [0n, 1n, 2n, m, m - 1n, h - 1n, h, h + 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n];
  return [...new Set(set.map((v) => v & m))];
}

// ---- The generator context: RNG + pool ----

export class Gen {
  constructor(readonly rng: Rng, readonly pool: Uint8Array) {}

  /** A value of `size` bits, boundaries half of the time. */
  value(size: number): bigint {
    const r = this.rng;
    const x = r.int(10);
    if (x < 5) return r.pick(boundaryValues(size));
    if (x < 6) return BigInt(r.int(17)) & mask(size); // small
    if (x < 7) return (mask(size) - BigInt(r.int(17))) & mask(size); // small negative
    return r.u64() & mask(size);
  }

  /** A 64-bit register value: boundaries, small numbers, or random bits. */
  value64(): bigint {
    const r = this.rng;
    const x = r.int(10);
    if (x < 2) return r.pick(boundaryValues(64));
    if (x < 3) return u64(BigInt(r.range(-16, 16)));
    if (x < 4) return BigInt(r.u32());
    return r.u64();
  }

  poolOffset(): number {
    const r = this.rng;
    const x = r.int(10);
    if (x === 0) return 0; // all zeros
    if (x === 1) return 0x400 + 8 * r.int(32); // 0xaa
    return 8 * r.int((POOL_SIZE - L.WINDOW_SIZE) / 8 + 1);
  }
}

export interface InsOptions {
  /** Registers (by index) the instruction writes: their known value is forgotten. */
  writes?: number[];
  /** Flags it reads: generators must not read undefined ones (checked). */
  reads?: number;
  /** A local label it may jump to (forward only). */
  jumpTo?: string;
  comment?: string;
}

export class Builder {
  readonly regs: bigint[] = [];
  rflags: bigint;
  poolOffset: number;
  readonly lines: AsmLine[] = [];
  undef = 0;
  ignoreRegs = 0;
  readonly notes: string[] = [];
  /** Current exact value of each register, when known. */
  readonly known: (bigint | undefined)[];
  /** Registers given a role in this case (directed generators take operands from the rest). */
  readonly reserved = new Set<number>([RSP]);
  /** DF when known. */
  df: boolean | undefined;
  private readonly jumps = new Map<string, number>();
  /** Register values (and DF) known on every jump to a label so far: merged at the label. */
  private readonly jumpKnown = new Map<string, { known: (bigint | undefined)[]; df: boolean | undefined }>();
  private labels = 0;
  private started = false;

  constructor(readonly g: Gen, opts: { poolOffset?: number; rflags?: bigint } = {}) {
    for (let i = 0; i < 16; i++) this.regs.push(g.value64());
    this.regs[RSP] = BigInt(L.STACK_INIT);
    const r = g.rng;
    this.rflags = opts.rflags ?? (0x202n | BigInt(r.u32() & STATUS) | (r.bool(0.25) ? BigInt(DF) : 0n));
    this.poolOffset = opts.poolOffset ?? g.poolOffset();
    this.known = [...this.regs];
    this.df = (this.rflags & BigInt(DF)) !== 0n;
  }

  get rng(): Rng {
    return this.g.rng;
  }

  // ---- initial state (before the first instruction) ----

  private init(): void {
    if (this.started) throw new Error('Builder: initial state set after the first instruction');
  }

  setReg(idx: number, v: bigint): void {
    this.init();
    this.regs[idx] = u64(v);
    this.known[idx] = this.regs[idx];
  }

  /** Sets the bits of `r` (e.g. AH, or the low 16 bits) in its register's initial value. */
  setOp(r: Reg, v: bigint): void {
    const shift = r.high ? 8n : 0n;
    const m = mask(r.size === 64 ? 64 : r.size) << shift;
    this.setReg(r.idx, (this.regs[r.idx] & ~m) | ((v << shift) & m));
  }

  /** The initial value of `r`'s bits. */
  opValue(r: Reg): bigint {
    return (this.regs[r.idx] >> (r.high ? 8n : 0n)) & mask(r.size);
  }

  setFlags(set: number, clear: number): void {
    this.init();
    this.rflags = (this.rflags | BigInt(set)) & ~BigInt(clear);
    this.df = (this.rflags & BigInt(DF)) !== 0n;
  }

  // ---- registers with roles ----

  /** A random free register (never RSP), now reserved. */
  take(opts: { legacy?: boolean; avoid?: number[] } = {}): number {
    const free: number[] = [];
    for (let i = 0; i < 16; i++) {
      if (this.reserved.has(i) || (opts.legacy && i >= 8) || opts.avoid?.includes(i)) continue;
      free.push(i);
    }
    if (free.length === 0) throw new Error('Builder: no free register');
    const idx = this.rng.pick(free);
    this.reserved.add(idx);
    return idx;
  }

  reserve(...idx: number[]): void {
    for (const i of idx) this.reserved.add(i);
  }

  /** A free register operand of `size`. `high`: may pick AH-BH (the instruction then must not need REX). */
  reg(size: Size, opts: { legacy?: boolean; high?: boolean } = {}): Reg {
    if (size === 8 && opts.high && this.rng.bool(0.4)) {
      const free = [0, 1, 2, 3].filter((i) => !this.reserved.has(i));
      if (free.length) {
        const idx = this.rng.pick(free);
        this.reserved.add(idx);
        return reg(idx, 8, true);
      }
    }
    return reg(this.take({ legacy: opts.legacy || opts.high }), size);
  }

  // ---- the window ----

  windowByte(addr: number): number {
    if (addr < L.WINDOW_START || addr >= L.WINDOW_END) throw new Error(`Builder: 0x${addr.toString(16)} is outside the window`);
    return this.g.pool[this.poolOffset + addr - L.WINDOW_START];
  }

  /** The window's initial little-endian value at addr. */
  peek(addr: number, size: number): bigint {
    let v = 0n;
    for (let i = size / 8 - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.windowByte(addr + i));
    return v;
  }

  /** A random address of an operand of `bytes` bytes inside the data part of the window (or `region`). */
  pickAddr(bytes: number, opts: { align?: number; lo?: number; hi?: number } = {}): number {
    const lo = opts.lo ?? L.DATA_START;
    const hi = (opts.hi ?? L.WINDOW_END) - bytes;
    const align = opts.align ?? (this.rng.bool(0.7) ? Math.min(bytes, 8) : 1);
    const n = Math.floor((hi - lo) / align);
    return lo + align * this.rng.int(n + 1);
  }

  /**
   * A memory operand of `size` at `addr` (random in the data part by default). In directed cases
   * the base is a fresh register set to addr - disp; `legacy` keeps base/index among RAX-RDI.
   */
  mem(size: Size, opts: { addr?: number; legacy?: boolean; align?: number; bytes?: number; noSize?: boolean } = {}): Mem {
    const bytes = opts.bytes ?? size / 8;
    const addr = opts.addr ?? this.pickAddr(bytes, { align: opts.align });
    const r = this.rng;
    const x = r.int(8);
    const disp = x < 3 ? 0 : x < 6 ? r.range(-64, 64) : r.range(-0x400, 0x400);
    const base = this.take({ legacy: opts.legacy });
    this.setReg(base, BigInt(addr - disp));
    const ea = `[${R64[base]}${disp < 0 ? '-' : '+'}${hex(Math.abs(disp))}]`;
    return { kind: 'mem', addr, size, ea, text: opts.noSize ? ea : `${KW[size]} ${ea}`, uses: [base] };
  }

  /** A memory operand through a register whose current value is known (random sequences). */
  memVia(size: Size, addr: number, opts: { legacy?: boolean; noSize?: boolean; avoid?: number[] } = {}): Mem | undefined {
    const cands: number[] = [];
    for (let i = 0; i < 16; i++) {
      const k = this.known[i];
      if (k === undefined || (opts.legacy && i >= 8) || opts.avoid?.includes(i)) continue;
      const d = BigInt(addr) - k;
      if (d >= -0x80000000n && d < 0x80000000n) cands.push(i);
    }
    if (cands.length === 0) return undefined;
    // Prefer bases that point into the window (small displacements).
    const near = cands.filter((i) => { const d = BigInt(addr) - this.known[i]!; return d >= -0x400n && d <= 0x400n; });
    const base = near.length && this.rng.bool(0.9) ? this.rng.pick(near) : this.rng.pick(cands);
    const disp = BigInt(addr) - this.known[base]!;
    const ea = `[${R64[base]}${disp < 0n ? '-' : '+'}${hex(disp < 0n ? -disp : disp)}]`;
    return { kind: 'mem', addr, size, ea, text: opts.noSize ? ea : `${KW[size]} ${ea}`, uses: [base] };
  }

  // ---- instructions ----

  newLabel(): string {
    return `.L${this.labels++}`;
  }

  label(name: string): void {
    this.undef |= this.jumps.get(name) ?? 0;
    this.jumps.delete(name);
    // a value is known after the label only if every path into it agrees (a skipped `mov ecx, k`
    // must not make a later `shl r, cl` look like a shift by k)
    const jk = this.jumpKnown.get(name);
    if (jk) {
      for (let i = 0; i < 16; i++) if (jk.known[i] !== this.known[i]) this.known[i] = undefined;
      if (jk.df !== this.df) this.df = undefined;
      this.jumpKnown.delete(name);
    }
    this.lines.push({ text: `${name}:`, label: true, undefBefore: this.undef });
  }

  ins(text: string, fx: FlagEffect = NONE, opts: InsOptions = {}): void {
    this.started = true;
    if (opts.reads && opts.reads & this.undef) {
      throw new Error(`generator bug: "${text}" reads flags that are undefined here (0x${(opts.reads & this.undef).toString(16)})`);
    }
    this.lines.push({ text, undefBefore: this.undef, ...(opts.comment ? { comment: opts.comment } : {}) });
    if (opts.jumpTo) {
      this.jumps.set(opts.jumpTo, (this.jumps.get(opts.jumpTo) ?? 0) | this.undef);
      const prev = this.jumpKnown.get(opts.jumpTo);
      const known = this.known.map((v, i) => (prev && prev.known[i] !== v ? undefined : v));
      this.jumpKnown.set(opts.jumpTo, { known, df: prev && prev.df !== this.df ? undefined : this.df });
    }
    this.undef = (this.undef & ~fx.defined) | fx.undef;
    for (const w of opts.writes ?? []) this.known[w] = undefined;
  }

  /** Marks register `idx` as known to hold v from here on (e.g. after `mov reg, imm`). */
  setKnown(idx: number, v: bigint | undefined): void {
    this.known[idx] = v === undefined ? undefined : u64(v);
  }

  note(text: string): void {
    if (!this.notes.includes(text)) this.notes.push(text);
  }

  build(family: string, name: string): OracleCase {
    if (this.jumps.size) throw new Error(`generator bug: labels ${[...this.jumps.keys()].join(', ')} never placed`);
    return {
      family,
      name,
      lines: this.lines,
      regs: [...this.regs],
      rflags: this.rflags,
      poolOffset: this.poolOffset,
      undefEnd: this.undef,
      ...(this.ignoreRegs ? { ignoreRegs: this.ignoreRegs } : {}),
      ...(this.notes.length ? { note: this.notes.join('; ') } : {}),
    };
  }
}
