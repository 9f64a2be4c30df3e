// Builds the oracle's guest image from a list of cases: generates cases.inc / boundaries.inc,
// assembles guests/oracle/harness.asm with nasm once, then fills in what nasm cannot (the GDT,
// IDT, TSS and page tables, the control page's inputs), appends the case table and the pool, and
// returns the image together with everything the result reader needs (snippet addresses and the
// start of every instruction, for fault attribution).

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { nasm, repoRoot } from '../support/guests.js';
import { instructions, type OracleCase } from './case.js';
import * as L from './layout.js';

const execFileP = promisify(execFile);

/** Where harness.asm puts its header (right after the 32-byte multiboot header). */
const HEADER_OFFSET = 0x20;
const HEADER_MAGIC = 0x4c43524f; // 'ORCL'
export const POOL_SIZE = 0x10000;
const MiB = 1024 * 1024;
const TWO_MIB = 2 * MiB;

export interface HarnessAddresses {
  stubs: number;
  doneHandler: number;
  userEntry: number;
  snippetsStart: number;
  snippetsEnd: number;
  userStore: number;
  caseEnd: number;
}

export interface OracleImage {
  /** The multiboot image file's bytes. */
  bytes: Uint8Array;
  /** Guest RAM the image needs (image, results, slack). */
  memoryBytes: number;
  cases: OracleCase[];
  /** Per case: the address of each instruction, then the address of the final `jmp case_end`. */
  boundaries: number[][];
  resultsAddr: number;
  poolAddr: number;
  caseTableAddr: number;
  harness: HarnessAddresses;
}

/** The pool: POOL_SIZE bytes from the seed, the initial window of each case is a slice of it. */
export function makePool(seed: number): Uint8Array {
  const pool = new Uint8Array(POOL_SIZE);
  let s = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < POOL_SIZE; i++) {
    // xorshift32: cheap, deterministic, good enough for memory contents
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    pool[i] = s & 0xff;
  }
  // Some regions of repeated bytes and zeros, so that REPE CMPS/SCAS and friends run longer.
  pool.fill(0, 0, 0x400);
  pool.fill(0xaa, 0x400, 0x800);
  for (let i = 0x800; i < 0xc00; i++) pool[i] = i & 0xff;
  return pool;
}

function casesInc(cases: OracleCase[]): { source: string; boundaries: string } {
  const src: string[] = [];
  const bnd: string[] = [];
  cases.forEach((c, i) => {
    src.push(`c${i}:`);
    const labels: string[] = [];
    let k = 0;
    for (const line of c.lines) {
      if (line.label) {
        src.push(line.text);
      } else {
        src.push(`.i${k}: ${line.text}`);
        labels.push(`c${i}.i${k}`);
        k++;
      }
    }
    src.push('.end: jmp case_end');
    labels.push(`c${i}.end`);
    bnd.push(`dd ${labels.join(',')}`);
  });
  return { source: src.join('\n') + '\n', boundaries: bnd.join('\n') + '\n' };
}

/** Runs nasm on harness.asm with the generated includes; returns the flat binary. */
export async function assembleHarness(cases: OracleCase[]): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpdir(), 'tsvm-oracle-'));
  try {
    const inc = casesInc(cases);
    await writeFile(join(dir, 'layout.inc'), L.layoutInc());
    await writeFile(join(dir, 'cases.inc'), inc.source);
    await writeFile(join(dir, 'boundaries.inc'), inc.boundaries);
    const out = join(dir, 'oracle.bin');
    const src = join(repoRoot(), 'guests', 'oracle', 'harness.asm');
    try {
      await execFileP(await nasm(), ['-f', 'bin', '-w-prefix-lock', '-w-number-overflow', '-i', `${dir}/`, '-o', out, src], { maxBuffer: 64 * MiB });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`nasm could not assemble the oracle image: ${explainNasm(e.stderr ?? e.message, inc.source, cases)}`);
    }
    return new Uint8Array(await readFile(out));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Maps nasm's "cases.inc:LINE: error" messages back to the cases that produced them. */
function explainNasm(stderr: string, source: string, cases: OracleCase[]): string {
  const lines = source.split('\n');
  const out: string[] = [];
  for (const m of stderr.matchAll(/cases\.inc:(\d+): (.*)/g)) {
    const n = Number(m[1]) - 1;
    let j = n;
    while (j >= 0 && !/^c\d+:$/.test(lines[j])) j--;
    const idx = j >= 0 ? Number(lines[j].slice(1, -1)) : -1;
    out.push(`${m[2]}\n    in "${lines[n]}" of case ${idx} (${cases[idx]?.family}: ${cases[idx]?.name})`);
    if (out.length >= 10) break;
  }
  return out.length ? out.join('\n') : stderr.trim().split('\n').slice(0, 20).join('\n');
}

// Paging-structure bits (SDM vol. 3A 4.5, tables 4-14 to 4-20).
const P = 1n, RW = 2n, US = 4n, PS = 0x80n, NX = 1n << 63n;

function gdtEntries(): bigint[] {
  const tss = BigInt(L.TSS_ADDR);
  const limit = 0x67n;
  const tssLow = (limit & 0xffffn) | ((tss & 0xffffffn) << 16n) | (0x89n << 40n) | (((tss >> 24n) & 0xffn) << 56n);
  const tssHigh = tss >> 32n;
  return [
    0n,
    0x00af9b000000ffffn, // 0x08 kernel code: 64-bit (L=1), DPL 0, accessed
    0x00cf93000000ffffn, // 0x10 kernel data
    0x00cff3000000ffffn, // 0x18 user data: DPL 3
    0x00affb000000ffffn, // 0x20 user code: 64-bit, DPL 3
    tssLow, tssHigh, // 0x28 available 64-bit TSS (type 9)
  ];
}

function idtGate(handler: number, dpl: number): [bigint, bigint] {
  const h = BigInt(handler);
  const low = (h & 0xffffn) | (BigInt(L.SEL_KCODE) << 16n) | (BigInt(0x8e | (dpl << 5)) << 40n) | (((h >> 16n) & 0xffffn) << 48n);
  return [low, h >> 32n];
}

/** Builds the image for `cases` with the given pool (see makePool). */
export async function buildImage(cases: OracleCase[], pool: Uint8Array): Promise<OracleImage> {
  if (pool.length !== POOL_SIZE) throw new Error('the pool must be POOL_SIZE bytes');
  const raw = await assembleHarness(cases);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const u64 = (off: number) => Number(dv.getBigUint64(off, true));
  if (dv.getUint32(HEADER_OFFSET, true) !== HEADER_MAGIC) throw new Error('harness.asm: no oracle header at offset 0x20');
  const harness: HarnessAddresses = {
    stubs: u64(HEADER_OFFSET + 8),
    doneHandler: u64(HEADER_OFFSET + 16),
    userEntry: u64(HEADER_OFFSET + 24),
    snippetsStart: u64(HEADER_OFFSET + 32),
    snippetsEnd: u64(HEADER_OFFSET + 40),
    userStore: u64(HEADER_OFFSET + 64),
    caseEnd: u64(HEADER_OFFSET + 72),
  };
  const boundaryTable = u64(HEADER_OFFSET + 48) - L.IMAGE_BASE;
  const imageEnd = u64(HEADER_OFFSET + 56) - L.IMAGE_BASE;

  // Per-case boundaries from the dropped table.
  const boundaries: number[][] = [];
  let off = boundaryTable;
  for (const c of cases) {
    const n = instructions(c).length + 1;
    const b: number[] = [];
    for (let k = 0; k < n; k++) b.push(dv.getUint32(off + 4 * k, true));
    off += 4 * n;
    boundaries.push(b);
  }
  if (off !== raw.length) throw new Error(`boundary table size mismatch (${off} != ${raw.length})`);

  const caseTableAddr = L.IMAGE_BASE + imageEnd;
  const poolAddr = L.roundUp(caseTableAddr + cases.length * L.CASE_SIZE, 4096);
  const fileSize = poolAddr + POOL_SIZE - L.IMAGE_BASE;
  const resultsAddr = L.roundUp(L.IMAGE_BASE + fileSize, TWO_MIB);
  const resultsEnd = L.roundUp(resultsAddr + Math.max(1, cases.length) * L.RESULT_SIZE, TWO_MIB);
  if (resultsEnd > 1024 * 1024 * 1024) throw new Error('too many cases for one image (results past 1 GiB)');

  const img = new Uint8Array(fileSize);
  img.set(raw.subarray(0, imageEnd));
  const iv = new DataView(img.buffer);
  const at = (addr: number) => addr - L.IMAGE_BASE;
  const w64 = (addr: number, v: bigint | number) => iv.setBigUint64(at(addr), BigInt.asUintN(64, BigInt(v)), true);

  // GDT, TSS (RSP0; I/O map base past the limit: no I/O bitmap, IOPL 0 -> every port #GP in ring 3).
  gdtEntries().forEach((e, i) => w64(L.GDT_ADDR + 8 * i, e));
  w64(L.TSS_ADDR + 4, L.KSTACK_TOP);
  iv.setUint16(at(L.TSS_ADDR + 0x66), 0x68, true);
  // IDT: vectors 0-31 to the stubs (3 = #BP with DPL 3 so that INT3 in ring 3 traps as on an OS).
  // Every other gate is not present.
  for (let v = 0; v < 32; v++) {
    const [lo, hi] = idtGate(harness.stubs + 16 * v, v === 3 ? 3 : 0);
    w64(L.IDT_ADDR + 16 * v, lo);
    w64(L.IDT_ADDR + 16 * v + 8, hi);
  }

  // Page tables: 4 KiB pages for 0-2 MiB, 2 MiB pages above. Upper levels allow everything; the
  // leaf entries decide.
  w64(L.PML4_ADDR, BigInt(L.PDPT_ADDR) | P | RW | US);
  w64(L.PDPT_ADDR, BigInt(L.PD_ADDR) | P | RW | US);
  w64(L.PD_ADDR, BigInt(L.PT0_ADDR) | P | RW | US);
  for (let page = 0x1000; page < 0x200000; page += 0x1000) {
    let e: bigint;
    if (page < L.CONTROL_ADDR) e = P | RW; // low memory and the kernel: supervisor only
    else if (page === L.CONTROL_ADDR) e = P | RW | US | NX;
    else if (page === L.SUPERVISOR_PAGE) e = P | RW | NX;
    else if (page === L.READONLY_PAGE) e = P | US | NX;
    else if (page === L.DATA_PAGE) e = P | RW | US | NX;
    else continue; // not present
    w64(L.PT0_ADDR + (page >> 12) * 8, BigInt(page) | e);
  }
  const userEnd = L.roundUp(L.IMAGE_BASE + fileSize, TWO_MIB);
  for (let a = L.USER_CODE; a < userEnd; a += TWO_MIB) w64(L.PD_ADDR + (a / TWO_MIB) * 8, BigInt(a) | P | US | PS);
  for (let a = resultsAddr; a < resultsEnd; a += TWO_MIB) w64(L.PD_ADDR + (a / TWO_MIB) * 8, BigInt(a) | P | RW | US | PS | NX);

  // The READONLY page: recognisable contents for loads from it.
  for (let i = 0; i < 4096; i += 8) w64(L.READONLY_PAGE + i, 0x5244524f00000000n | BigInt(i)); // "RDRO"

  // Control page inputs.
  w64(L.CONTROL_ADDR + L.CTL.count, cases.length);
  w64(L.CONTROL_ADDR + L.CTL.cases, caseTableAddr);
  w64(L.CONTROL_ADDR + L.CTL.results, resultsAddr);
  w64(L.CONTROL_ADDR + L.CTL.snipStart, harness.snippetsStart);
  w64(L.CONTROL_ADDR + L.CTL.snipEnd, harness.snippetsEnd);

  // The case table and the pool.
  cases.forEach((c, i) => {
    const base = caseTableAddr + i * L.CASE_SIZE;
    if (c.regs.length !== 16) throw new Error(`case ${i}: 16 registers expected`);
    if (c.poolOffset % 8 !== 0 || c.poolOffset < 0 || c.poolOffset + L.WINDOW_SIZE > POOL_SIZE) throw new Error(`case ${i}: bad pool offset`);
    c.regs.forEach((r, k) => w64(base + 8 * k, r));
    w64(base + L.CASE_RFLAGS, c.rflags);
    w64(base + L.CASE_CODE, boundaries[i][0]);
    w64(base + L.CASE_POOL, poolAddr + c.poolOffset);
  });
  img.set(pool, at(poolAddr));

  return {
    bytes: img,
    memoryBytes: L.roundUp(resultsEnd + TWO_MIB, MiB),
    cases,
    boundaries,
    resultsAddr,
    poolAddr,
    caseTableAddr,
    harness,
  };
}
