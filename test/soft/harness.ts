// Test harness for the software CPU: assemble a snippet with nasm (Debian's, fetched by
// test/support/guests.ts), load it into a small machine, set up the mode, run to HLT.
//
// Memory map of the test machine (all identity mapped):
//   0x0000 real-mode IVT            0x0500 GDT (see SEL)       0x1000 PML4  0x2000 PDPT  0x3000 PD
//   0x4000 IDT (16-byte gates)      0x5000 exception stubs (HLT)             0x8000 TSS (+ I/O bitmap)
//   0x7000 32-bit IDT (8-byte gates)
//   0x10000 code                    0x20000 data               0x80000 stack top (ring 0)
//   0x70000 stack top (ring 3)

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Bus } from '../../src/devices/bus.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import {
  flatSegment, protectedModeState, realModeSegment, resetState, type CpuState, type SegmentState,
} from '../../src/accel/cpu-state.js';
import { allocateSoftMemory } from '../../src/accel/soft/soft-memory.js';
import { SoftCpu, type SoftExit } from '../../src/accel/soft/soft-cpu.js';
import { nasm } from '../support/guests.js';

const execFileP = promisify(execFile);

export const CODE = 0x10000;
export const DATA = 0x20000;
export const STACK = 0x80000;
export const USER_STACK = 0x70000;
export const STUB = 0x5000;
export const TSS = 0x8000; // 64-bit TSS
export const TSS32 = 0xb000; // 32-bit TSS
const TSS_LIMIT = 0x68 + 0x2000;

/** GDT selectors of the test machine. */
export const SEL = {
  code64: 0x08, data: 0x10, code32: 0x18, user32: 0x23, userData: 0x2b, user64: 0x33, code16: 0x38, tss: 0x40, tss32: 0x50,
} as const;

const cache = new Map<string, Uint8Array>();

/** Assemble `src` (nasm syntax; the caller gives `bits` / `org` or the mode default is used). */
export async function assemble(src: string, bits: 16 | 32 | 64, org = CODE): Promise<Uint8Array> {
  const key = `${bits}:${org}:${src}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const dir = await mkdtemp(join(tmpdir(), 'tsvm-soft-'));
  try {
    const file = join(dir, 't.asm');
    await writeFile(file, `bits ${bits}\norg 0x${org.toString(16)}\n${src}\n`);
    await execFileP(await nasm(), ['-f', 'bin', '-o', join(dir, 't.bin'), file]);
    const out = new Uint8Array(await readFile(join(dir, 't.bin')));
    cache.set(key, out);
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface Machine {
  mem: GuestMemory;
  bus: Bus;
  cpu: SoftCpu;
}

export function machine(ramMiB = 4): Machine {
  const mem = allocateSoftMemory(ramMiB * 1024 * 1024);
  const bus = new Bus();
  const cpu = new SoftCpu({ mem, bus });
  // Compile in this thread (V8 compiles in the background; nothing here runs the event loop, so
  // those modules never install unless a test tunes the JIT): a compiler thread per machine would
  // outlive each of the hundreds of short tests. The compiler thread has its own tests (jit.test.ts).
  if (cpu.jit) cpu.jit.mode = 'async';
  return { mem, bus, cpu };
}

function desc(base: number, limit: number, type: number, flags: { s?: boolean; dpl?: number; l?: boolean; db?: boolean; g?: boolean }): bigint {
  const s = flags.s ?? true;
  let hi = (base >>> 16) & 0xff;
  hi |= (type & 0xf) << 8;
  if (s) hi |= 1 << 12;
  hi |= ((flags.dpl ?? 0) & 3) << 13;
  hi |= 1 << 15; // present
  hi |= ((limit >>> 16) & 0xf) << 16;
  if (flags.l) hi |= 1 << 21;
  if (flags.db) hi |= 1 << 22;
  if (flags.g) hi |= 1 << 23;
  hi |= base & 0xff000000;
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Write the GDT, page tables (identity, 2 MiB pages, first 1 GiB), the TSS and both IDTs. */
export function writeTables(mem: GuestMemory): void {
  const gdt: bigint[] = [
    0n,
    desc(0, 0xfffff, 0xb, { l: true, g: true }), // 0x08 64-bit code
    desc(0, 0xfffff, 0x3, { db: true, g: true }), // 0x10 data
    desc(0, 0xfffff, 0xb, { db: true, g: true }), // 0x18 32-bit code
    desc(0, 0xfffff, 0xb, { db: true, g: true, dpl: 3 }), // 0x20 32-bit user code (0x23)
    desc(0, 0xfffff, 0x3, { db: true, g: true, dpl: 3 }), // 0x28 user data (0x2b)
    desc(0, 0xfffff, 0xb, { l: true, g: true, dpl: 3 }), // 0x30 64-bit user code (0x33)
    desc(CODE, 0xffff, 0xb, {}), // 0x38 16-bit code at CODE
    desc(TSS, TSS_LIMIT, 0x9, { s: false }), // 0x40 TSS (16 bytes in long mode)
    0n,
    desc(TSS32, TSS_LIMIT, 0x9, { s: false }), // 0x50 32-bit TSS
    0n,
  ];
  gdt.forEach((d, i) => mem.writeU64(0x500 + i * 8, d));
  // identity map: PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB (RW, user)
  mem.writeU64(0x1000, 0x2000n | 7n);
  mem.writeU64(0x2000, 0x3000n | 7n);
  for (let i = 0; i < 512; i++) mem.writeU64(0x3000 + i * 8, BigInt(i) * 0x200000n | 0x87n);
  // 64-bit TSS: RSP0 = STACK, IST1 = STACK - 0x8000; 32-bit TSS: ESP0 @4 = STACK, SS0 @8 = data
  mem.writeU64(TSS + 4, BigInt(STACK));
  mem.writeU64(TSS + 0x24, BigInt(STACK - 0x8000));
  mem.writeU16(TSS + 0x66, 0x68); // I/O bitmap right after the TSS (all ports allowed)
  mem.writeU32(TSS32 + 4, STACK);
  mem.writeU32(TSS32 + 8, SEL.data);
  mem.writeU16(TSS32 + 0x66, 0x68);
  // every vector: a HLT stub; 64-bit gates at 0x4000, 32-bit gates at 0x7000
  for (let v = 0; v < 256; v++) {
    const target = STUB + v * 2;
    mem.writeU8(target, 0xf4); // hlt
    mem.writeU8(target + 1, 0xf4);
    const lo64 = BigInt(target & 0xffff) | (BigInt(SEL.code64) << 16n) | (0x8en << 40n) | (BigInt(target >>> 16) << 48n);
    mem.writeU64(0x4000 + v * 16, lo64);
    mem.writeU64(0x4000 + v * 16 + 8, 0n);
    const lo32 = BigInt(target & 0xffff) | (BigInt(SEL.code32) << 16n) | (0x8en << 40n) | (BigInt(target >>> 16) << 48n);
    mem.writeU64(0x7000 + v * 8, lo32);
  }
}

function tssSegment(wide: boolean): SegmentState {
  return { selector: wide ? SEL.tss : SEL.tss32, base: BigInt(wide ? TSS : TSS32), limit: TSS_LIMIT, type: 0xb, present: true, dpl: 0, db: false, s: false, l: false, g: false };
}

export type Mode = 'real' | 'prot16' | 'prot32' | 'long' | 'compat';

/** Architectural state to start `mode` at CODE, with the test tables in place. */
export function stateFor(mode: Mode): CpuState {
  if (mode === 'real') {
    const s = resetState();
    const z = realModeSegment(0);
    s.cs = realModeSegment(CODE >> 4, 0xb);
    s.ds = { ...z }; s.es = { ...z }; s.ss = { ...z }; s.fs = { ...z }; s.gs = { ...z };
    s.regs.rip = 0n;
    s.regs.rsp = 0xfff0n;
    s.ss = realModeSegment(0x7000);
    s.regs.rdx = 0n;
    s.idt = { base: 0n, limit: 0x3ff };
    return s;
  }
  const s = protectedModeState(BigInt(CODE));
  s.gdt = { base: 0x500n, limit: 0x5f };
  s.tr = tssSegment(mode === 'long' || mode === 'compat');
  s.regs.rsp = BigInt(STACK);
  const data = flatSegment(SEL.data, false);
  s.ds = { ...data }; s.es = { ...data }; s.fs = { ...data }; s.gs = { ...data }; s.ss = { ...data };
  if (mode === 'prot32') {
    s.cs = flatSegment(SEL.code32, true);
    s.idt = { base: 0x7000n, limit: 0x7ff };
    return s;
  }
  if (mode === 'prot16') {
    s.cs = { selector: SEL.code16, base: BigInt(CODE), limit: 0xffff, type: 0xb, present: true, dpl: 0, db: false, s: true, l: false, g: false };
    s.regs.rip = 0n;
    s.idt = { base: 0x7000n, limit: 0x7ff };
    return s;
  }
  s.cr0 = 0x80050033n; // PE MP ET NE WP PG
  s.cr3 = 0x1000n;
  s.cr4 = 0x20n; // PAE
  s.efer = 0xd01n; // SCE LME LMA NXE
  s.idt = { base: 0x4000n, limit: 0xfff };
  s.cs = mode === 'long' ? flatSegment(SEL.code64, true, true) : flatSegment(SEL.code32, true);
  return s;
}

export interface RunResult {
  exit: SoftExit;
  state: CpuState;
  m: Machine;
}

/**
 * Assemble `src` for `mode`, run it until it stops (it should end with HLT), and return the
 * exit and final state. `setup` may adjust the state or memory first.
 */
export async function runAsm(
  mode: Mode,
  src: string,
  setup?: (s: CpuState, m: Machine) => void,
  budget = 1_000_000,
): Promise<RunResult> {
  const bits = mode === 'real' || mode === 'prot16' ? 16 : mode === 'long' ? 64 : 32;
  const org = mode === 'real' || mode === 'prot16' ? 0 : CODE;
  const code = await assemble(src, bits, org);
  const m = machine();
  writeTables(m.mem);
  m.mem.write(CODE, code);
  const s = stateFor(mode);
  setup?.(s, m);
  m.cpu.setState(s);
  const exit = m.cpu.run(budget);
  return { exit, state: m.cpu.getState(), m };
}

/** RFLAGS status bits by name. */
export const FL = { CF: 1n, PF: 4n, AF: 16n, ZF: 64n, SF: 128n, TF: 256n, IF: 512n, DF: 1024n, OF: 2048n } as const;
export const STATUS = FL.CF | FL.PF | FL.AF | FL.ZF | FL.SF | FL.OF;

/** Address of the HLT stub of vector `v` (+1: where RIP stops after the HLT). */
export function stubRip(v: number): bigint {
  return BigInt(STUB + v * 2 + 1);
}

/** 64-bit tests: IRETQ to the label `user` at CPL 3 (the harness's ring-3 selectors, USER_STACK). */
export const TO_USER64 = `
    push ${SEL.userData}
    push ${USER_STACK}
    pushfq
    push ${SEL.user64}
    lea rax, [rel user]
    push rax
    iretq
`;

/** 64-bit tests: STAR (SYSCALL CS 0x08, SYSRET base 0x20: CS 0x33, SS 0x2b), LSTAR = the label `entry`, SFMASK = IF | DF. */
export const SYSCALL_MSRS = `
    mov ecx, 0xc0000081
    xor eax, eax
    mov edx, 0x00200008
    wrmsr
    mov ecx, 0xc0000082
    lea rax, [rel entry]
    mov rdx, rax
    shr rdx, 32
    wrmsr
    mov ecx, 0xc0000084
    mov eax, 0x600
    xor edx, edx
    wrmsr
`;
