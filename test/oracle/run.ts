// The differential oracle's runner and comparison: generate cases, build one image, run it under
// two accelerators (normally --accel kvm, the reference, and --accel soft), decode both result
// tables and compare them case by case. The report is written for whoever debugs the CPU: each
// mismatch shows the snippet, the initial state, both outcomes and exactly which fields differ
// (with the flags that are deliberately not compared and why).

import { instructions, type OracleCase } from './case.js';
import { generateByIds, generateCases, type GenerateOptions } from './generate.js';
import { COMPARED, flagNames, showFlags } from './flags.js';
import { buildImage, type OracleImage } from './image.js';
import * as L from './layout.js';
import { runImage, type OracleAccel, type RawRun } from './vm-run.js';

/** Vectors that push an error code (SDM Vol. 3A, table 6-1). */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
const VECTOR_NAMES: Record<number, string> = {
  0: '#DE', 1: '#DB', 2: 'NMI', 3: '#BP', 4: '#OF', 5: '#BR', 6: '#UD', 7: '#NM', 8: '#DF', 10: '#TS', 11: '#NP',
  12: '#SS', 13: '#GP', 14: '#PF', 16: '#MF', 17: '#AC', 18: '#MC', 19: '#XM', 20: '#VE', 21: '#CP',
};
export const vectorName = (v: number): string => VECTOR_NAMES[v] ?? `vector ${v}`;

export interface CaseResult {
  reached: boolean;
  regs: bigint[];
  rflags: bigint;
  /** null: the snippet ran to its end. */
  vector: number | null;
  error: bigint;
  cr2: bigint;
  rip: bigint;
  window: Uint8Array;
}

export function decodeResult(run: RawRun, i: number): CaseResult {
  const off = i * L.RESULT_SIZE;
  if (off + L.RESULT_SIZE > run.results.length) {
    return { reached: false, regs: [], rflags: 0n, vector: null, error: 0n, cr2: 0n, rip: 0n, window: new Uint8Array(0) };
  }
  const dv = new DataView(run.results.buffer, run.results.byteOffset + off, L.RESULT_SIZE);
  const q = (k: number) => dv.getBigUint64(k, true);
  const regs: bigint[] = [];
  for (let r = 0; r < 16; r++) regs.push(q(8 * r));
  const vec = q(L.RES.vector);
  return {
    reached: q(L.RES.marker) === ((L.MARKER_MAGIC << 32n) | BigInt(i)),
    regs,
    rflags: q(L.RES.rflags),
    vector: vec === L.NO_VECTOR ? null : Number(vec),
    error: q(L.RES.error),
    cr2: q(L.RES.cr2),
    rip: q(L.RES.rip),
    window: run.results.subarray(off + L.RES.window, off + L.RESULT_SIZE),
  };
}

export interface FieldDiff {
  field: string;
  a: string;
  b: string;
  detail?: string;
}

export interface Mismatch {
  index: number;
  c: OracleCase;
  a: CaseResult;
  b: CaseResult;
  diffs: FieldDiff[];
  /** RFLAGS bits compared, and the ones skipped as undefined. */
  flagsCompared: number;
  flagsSkipped: number;
}

const h64 = (v: bigint) => `0x${v.toString(16).padStart(16, '0')}`;
const hx = (v: bigint | number) => `0x${v.toString(16)}`;

/** Which instruction a RIP is at: the boundary index (k = instruction k starts there; n = the end). */
function boundaryIndex(img: OracleImage, i: number, rip: bigint): number {
  return img.boundaries[i].indexOf(Number(rip));
}

/** The RFLAGS bits to compare for case i, given where it stopped. */
export function flagsMask(img: OracleImage, i: number, r: CaseResult): { compare: number; skipped: number } {
  const c = img.cases[i];
  const ins = instructions(c);
  let undef: number;
  if (r.vector === null) undef = c.undefEnd;
  else {
    // Faults leave the flags as they were before the faulting instruction; traps (#BP, #DB from
    // INT1) report the next instruction, whose "before" state is the same thing.
    const k = boundaryIndex(img, i, r.rip);
    if (k >= 0 && k < ins.length) undef = ins[k].undefBefore;
    else if (k === ins.length) undef = c.undefEnd;
    else undef = ins.reduce((u, l) => u | l.undefBefore, c.undefEnd); // stopped elsewhere: be lenient
  }
  return { compare: COMPARED & ~undef, skipped: COMPARED & undef };
}

export function compareCase(img: OracleImage, i: number, a: CaseResult, b: CaseResult): Mismatch | null {
  const c = img.cases[i];
  const diffs: FieldDiff[] = [];
  if (!a.reached || !b.reached) {
    diffs.push({ field: 'reached', a: a.reached ? 'yes' : 'NOT RUN', b: b.reached ? 'yes' : 'NOT RUN', detail: 'the run stopped before this case wrote its result' });
    return { index: i, c, a, b, diffs, flagsCompared: 0, flagsSkipped: 0 };
  }
  const outcome = (r: CaseResult) => (r.vector === null ? 'ran to the end' : vectorName(r.vector));
  if (a.vector !== b.vector) diffs.push({ field: 'exception', a: outcome(a), b: outcome(b) });
  if (a.vector !== null && a.vector === b.vector) {
    if (a.rip !== b.rip) diffs.push({ field: 'RIP', a: describeRip(img, i, a.rip), b: describeRip(img, i, b.rip) });
    if (ERROR_CODE_VECTORS.has(a.vector) && a.error !== b.error) {
      diffs.push({ field: 'error code', a: hx(a.error), b: hx(b.error), ...(a.vector === 14 ? { detail: `#PF error bits: ${pfBits(a.error)} vs ${pfBits(b.error)}` } : {}) });
    }
    if (a.vector === 14 && a.cr2 !== b.cr2) diffs.push({ field: 'CR2', a: hx(a.cr2), b: hx(b.cr2) });
  }
  for (let r = 0; r < 16; r++) {
    if (c.ignoreRegs && c.ignoreRegs & (1 << r)) continue;
    if (a.regs[r] !== b.regs[r]) {
      diffs.push({ field: L.REG64[r], a: h64(a.regs[r]), b: h64(b.regs[r]), detail: `xor ${hx(a.regs[r] ^ b.regs[r])}` });
    }
  }
  const fm = flagsMask(img, i, a);
  const fa = Number(a.rflags & 0xffffffffn);
  const fb = Number(b.rflags & 0xffffffffn);
  const fdiff = (fa ^ fb) & fm.compare;
  if (fdiff) {
    diffs.push({
      field: 'RFLAGS',
      a: hx(fa),
      b: hx(fb),
      detail: `differ in ${flagNames(fdiff)}: ${showFlags(fa, fdiff)} vs ${showFlags(fb, fdiff)}`,
    });
  }
  for (let k = 0; k < L.WINDOW_SIZE; k += 8) {
    let same = true;
    for (let j = 0; j < 8; j++) if (a.window[k + j] !== b.window[k + j]) same = false;
    if (same) continue;
    const addr = L.WINDOW_START + k;
    diffs.push({ field: `mem ${hx(addr)}`, a: bytesHex(a.window.subarray(k, k + 8)), b: bytesHex(b.window.subarray(k, k + 8)) });
  }
  if (diffs.length === 0) return null;
  return { index: i, c, a, b, diffs, flagsCompared: fm.compare, flagsSkipped: fm.skipped };
}

const bytesHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

function pfBits(e: bigint): string {
  const n = Number(e);
  return [n & 1 ? 'P' : 'not-present', n & 2 ? 'W' : 'R', n & 4 ? 'U' : 'S', ...(n & 8 ? ['RSVD'] : []), ...(n & 16 ? ['I/D'] : [])].join('/');
}

function describeRip(img: OracleImage, i: number, rip: bigint): string {
  const k = boundaryIndex(img, i, rip);
  const start = BigInt(img.boundaries[i][0]);
  const ins = instructions(img.cases[i]);
  if (k >= 0 && k < ins.length) return `${hx(rip)} (+${hx(rip - start)}: instruction ${k + 1}, "${ins[k].text}")`;
  if (k === ins.length) return `${hx(rip)} (+${hx(rip - start)}: after the last instruction)`;
  return `${hx(rip)} (${symbolize(img, rip)})`;
}

/** Names a harness address (for panics and wild RIPs). */
export function symbolize(img: OracleImage, addr: bigint): string {
  const a = Number(addr);
  const h = img.harness;
  const named: [number, string][] = [
    [h.userEntry, 'driver (user_next)'], [h.caseEnd, 'epilogue (case_end)'], [h.userStore, 'user_store'], [h.snippetsStart, 'snippets'],
  ];
  if (a >= h.snippetsStart && a < h.snippetsEnd) {
    const i = img.boundaries.findIndex((b) => a >= b[0] && a <= b[b.length - 1] + 5);
    if (i >= 0) return `in the snippet of case ${i} at +${hx(a - img.boundaries[i][0])}`;
    return 'in the snippets';
  }
  let best: [number, string] | undefined;
  for (const n of named) if (a >= n[0] && (!best || n[0] > best[0]) && n[0] < h.snippetsStart + 1) best = n;
  if (best && a < h.snippetsStart) return `${best[1]}+${hx(a - best[0])}`;
  if (a >= L.IMAGE_BASE && a < L.KERNEL_END) return `kernel code/tables at ${hx(a)}`;
  if (a >= L.WINDOW_START && a < L.WINDOW_END) return 'the window';
  return 'outside the harness';
}

// ---------------------------------------------------------------------------------------------
// Whole runs

export interface SideSummary {
  accel: OracleAccel;
  outcome: RawRun['outcome'];
  wallMs: number;
  message: string;
  /** Cases whose result was written. */
  reached: number;
  faults: number;
  /** For panics / timeouts: the case in progress. */
  stuckCase?: number;
  panicText?: string;
}

export interface OracleReport {
  seed: number;
  cases: number;
  image: OracleImage;
  a: SideSummary;
  b: SideSummary;
  mismatches: Mismatch[];
  /** Cases compared (reached on both sides). */
  compared: number;
  buildMs: number;
  generateMs: number;
  /** The pool the windows were filled from (for "before" bytes in reports). */
  pool?: Uint8Array;
  ok: boolean;
}

function summarize(img: OracleImage, run: RawRun): SideSummary {
  const cv = new DataView(run.control.buffer, run.control.byteOffset, run.control.byteLength);
  const index = Number(cv.getBigUint64(L.CTL.index, true));
  let reached = 0;
  for (let i = 0; i < img.cases.length; i++) if (decodeResult(run, i).reached) reached++;
  const s: SideSummary = {
    accel: run.accel,
    outcome: run.outcome,
    wallMs: run.wallMs,
    message: run.exit.message,
    reached,
    faults: Number(cv.getBigUint64(L.CTL.faults, true)),
  };
  if (run.outcome !== 'done' && index < img.cases.length) s.stuckCase = index;
  if (run.outcome === 'panic') {
    const pv = new DataView(run.panic.buffer, run.panic.byteOffset, run.panic.byteLength);
    const q = (k: number) => pv.getBigUint64(k, true);
    const vec = Number(q(L.RES.vector));
    const regs = L.REG64.map((n, r) => `${n}=${h64(q(8 * r))}`);
    s.panicText = [
      `the harness itself took ${vectorName(vec)} (error ${hx(q(L.RES.error))}, CR2 ${hx(q(L.RES.cr2))}) at RIP ${hx(q(L.RES.rip))} = ${symbolize(img, q(L.RES.rip))}`,
      `while running case ${index}; RFLAGS ${hx(q(L.RES.rflags))}`,
      ...chunk(regs, 4).map((l) => `  ${l.join(' ')}`),
    ].join('\n');
  }
  return s;
}

const chunk = <T>(xs: T[], n: number): T[][] => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));

export interface OracleOptions extends GenerateOptions {
  /** The reference side (normally kvm) and the side under test (normally soft). */
  accelA?: OracleAccel;
  accelB?: OracleAccel;
  timeoutMs?: number;
  /** Run only these cases (ids such as "adc#12" or "random#345"), e.g. to reproduce one. */
  only?: string[];
  /** Called with the raw runs before comparison (tests use it to plant a difference). */
  tamper?: (a: RawRun, b: RawRun) => void;
}

export interface PreparedOracle {
  image: OracleImage;
  pool: Uint8Array;
  seed: number;
  generateMs: number;
  buildMs: number;
}

/** Generates the cases and builds the image (nasm runs in a child process, so this overlaps a run). */
export async function prepareOracle(opts: OracleOptions): Promise<PreparedOracle> {
  const t0 = performance.now();
  const gen = opts.only ? generateByIds(opts.seed, opts.only) : generateCases(opts);
  const t1 = performance.now();
  const image = await buildImage(gen.cases, gen.pool);
  return { image, pool: gen.pool, seed: opts.seed, generateMs: t1 - t0, buildMs: performance.now() - t1 };
}

/** Runs a prepared image on both sides and compares. */
export async function runPrepared(p: PreparedOracle, opts: Omit<OracleOptions, 'seed' | 'random'> = {}): Promise<OracleReport> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const runA = await runImage(p.image, opts.accelA ?? 'kvm', { timeoutMs });
  const runB = await runImage(p.image, opts.accelB ?? 'soft', { timeoutMs });
  opts.tamper?.(runA, runB);
  return compareRuns(p.image, runA, runB, { seed: p.seed, generateMs: p.generateMs, buildMs: p.buildMs, pool: p.pool });
}

export async function runOracle(opts: OracleOptions): Promise<OracleReport> {
  return runPrepared(await prepareOracle(opts), opts);
}

export function compareRuns(image: OracleImage, runA: RawRun, runB: RawRun, meta: { seed: number; generateMs: number; buildMs: number; pool?: Uint8Array }): OracleReport {
  const mismatches: Mismatch[] = [];
  let compared = 0;
  const bothDone = runA.outcome === 'done' && runB.outcome === 'done';
  for (let i = 0; i < image.cases.length; i++) {
    const a = decodeResult(runA, i);
    const b = decodeResult(runB, i);
    if (a.reached && b.reached) compared++;
    // A case one side never reached because its run stopped is part of that run's failure,
    // reported once; between two finished runs it would be a harness bug, so it is reported.
    if ((!a.reached || !b.reached) && !bothDone) continue;
    const m = compareCase(image, i, a, b);
    if (m) mismatches.push(m);
  }
  const a = summarize(image, runA);
  const b = summarize(image, runB);
  return {
    seed: meta.seed,
    cases: image.cases.length,
    image,
    a,
    b,
    mismatches,
    compared,
    buildMs: meta.buildMs,
    generateMs: meta.generateMs,
    pool: meta.pool,
    ok: a.outcome === 'done' && b.outcome === 'done' && mismatches.length === 0,
  };
}

// ---------------------------------------------------------------------------------------------
// The report

function formatState(c: OracleCase, img: OracleImage): string[] {
  const regs = c.regs.map((v, r) => `${L.REG64[r].padStart(3)}=${h64(v)}`);
  const rf = Number(c.rflags);
  const out = ['  initial state:', ...chunk(regs, 4).map((l) => `    ${l.join(' ')}`)];
  out.push(`    rflags=${hx(rf)} (${showFlags(rf)})   window ${hx(L.WINDOW_START)}-${hx(L.WINDOW_END)} = pool+${hx(c.poolOffset)} (pool at ${hx(img.poolAddr)})`);
  return out;
}

function formatOutcome(img: OracleImage, i: number, r: CaseResult): string {
  if (!r.reached) return 'did not run';
  if (r.vector === null) return `ran to the end, RFLAGS ${hx(r.rflags)}`;
  const parts = [`${vectorName(r.vector)}`];
  if (ERROR_CODE_VECTORS.has(r.vector)) parts.push(`error ${hx(r.error)}${r.vector === 14 ? ` (${pfBits(r.error)})` : ''}`);
  if (r.vector === 14) parts.push(`CR2 ${hx(r.cr2)}`);
  parts.push(`at ${describeRip(img, i, r.rip)}`);
  return parts.join(', ');
}

/** The window bytes of case i before it ran (from the pool), for the 8-byte row at addr. */
function initialRow(img: OracleImage, c: OracleCase, addr: number, pool: Uint8Array): string {
  const off = c.poolOffset + (addr - L.WINDOW_START);
  return bytesHex(pool.subarray(off, off + 8));
}

export function formatMismatch(m: Mismatch, img: OracleImage, names: [string, string], pool?: Uint8Array): string {
  const { c, index: i } = m;
  const lines: string[] = [];
  lines.push(`✗ case ${c.id ?? i} [${c.family}] ${c.name}`);
  let k = 0;
  for (const l of c.lines) {
    if (l.label) { lines.push(`      ${l.text}`); continue; }
    const addr = img.boundaries[i][k] - img.boundaries[i][0];
    lines.push(`    +${addr.toString(16).padStart(3, '0')}  ${l.text}${l.comment ? `    ; ${l.comment}` : ''}`);
    k++;
  }
  if (c.note) lines.push(`  note: ${c.note}`);
  lines.push(...formatState(c, img));
  const w = Math.max(names[0].length, names[1].length);
  lines.push(`  ${names[0].padEnd(w)}: ${formatOutcome(img, i, m.a)}`);
  lines.push(`  ${names[1].padEnd(w)}: ${formatOutcome(img, i, m.b)}`);
  lines.push('  differences:');
  const fw = Math.max(...m.diffs.map((d) => d.field.length));
  for (const d of m.diffs) {
    let extra = d.detail ? `   (${d.detail})` : '';
    if (d.field.startsWith('mem ') && pool) extra = `   (before: ${initialRow(img, c, Number(d.field.slice(4)), pool)})`;
    lines.push(`    ${d.field.padEnd(fw)}  ${names[0]} ${d.a}   ${names[1]} ${d.b}${extra}`);
  }
  if (m.flagsSkipped) lines.push(`  RFLAGS bits not compared here (undefined per the SDM at that point): ${flagNames(m.flagsSkipped)}`);
  if (c.ignoreRegs) lines.push(`  registers not compared (undefined result): ${L.REG64.filter((_, r) => c.ignoreRegs! & (1 << r)).join(' ')}`);
  return lines.join('\n');
}

/** What kind of mismatch this is: family + differing fields (RFLAGS by bit, memory as one). */
export function signature(m: Mismatch): string {
  const fields = new Set<string>();
  for (const d of m.diffs) {
    if (d.field.startsWith('mem ')) fields.add('memory');
    else if (d.field === 'RFLAGS') fields.add(`RFLAGS.${(d.detail ?? '').replace(/^differ in /, '').split(':')[0].replace(/ /g, '.')}`);
    else if ((L.REG64 as readonly string[]).includes(d.field)) fields.add('a register');
    else fields.add(d.field);
  }
  return `${m.c.family}|${[...fields].join(',')}`;
}

/** The first mismatch of every signature, then the others, each list in order. */
export function distinctFirst<T extends Mismatch>(ms: T[]): { firsts: T[]; rest: T[] } {
  const seen = new Set<string>();
  const firsts: T[] = [];
  const rest: T[] = [];
  for (const m of ms) {
    const s = signature(m);
    if (seen.has(s)) rest.push(m);
    else { seen.add(s); firsts.push(m); }
  }
  return { firsts, rest };
}

/** Mismatch counts by family and by differing field (RFLAGS split by flag, memory as one). */
export function tally(mismatches: Mismatch[]): { byFamily: Map<string, number>; byField: Map<string, number> } {
  const byFamily = new Map<string, number>();
  const byField = new Map<string, number>();
  for (const m of mismatches) {
    byFamily.set(m.c.family, (byFamily.get(m.c.family) ?? 0) + 1);
    const fields = new Set<string>();
    for (const d of m.diffs) {
      if (d.field.startsWith('mem ')) fields.add('memory');
      else if (d.field === 'RFLAGS') for (const f of (d.detail ?? '').replace(/^differ in /, '').split(':')[0].split(' ')) fields.add(`RFLAGS.${f}`);
      else fields.add(d.field);
    }
    for (const f of fields) byField.set(f, (byField.get(f) ?? 0) + 1);
  }
  return { byFamily, byField };
}

export interface FormatOptions {
  /** Mismatches shown in full (the rest are counted). */
  limit?: number;
  /** How to re-run one case (printed with each mismatch). */
  reproduce?: (id: string) => string;
  pool?: Uint8Array;
}

export function formatReport(r: OracleReport, opts: FormatOptions = {}): string {
  const names: [string, string] = [r.a.accel, r.b.accel === r.a.accel ? `${r.b.accel}#2` : r.b.accel];
  const out: string[] = [];
  out.push(`differential CPU oracle: seed ${r.seed}, ${r.cases} cases, ${names[0]} vs ${names[1]}`);
  for (const [s, n] of [[r.a, names[0]], [r.b, names[1]]] as const) {
    const rate = s.wallMs > 0 ? ` (${Math.round((s.reached / s.wallMs) * 1000)} cases/s)` : '';
    out.push(`  ${n}: ${s.outcome}: ${s.reached}/${r.cases} cases ran in ${s.wallMs.toFixed(0)} ms${rate}, ${s.faults} exceptions; ${s.message.split('\n')[0]}`);
  }
  for (const [s, n] of [[r.a, names[0]], [r.b, names[1]]] as const) {
    if (s.outcome === 'done') continue;
    out.push('');
    out.push(`!! ${n} did not finish the run (${s.outcome}):`);
    out.push(s.message.split('\n').map((l) => `   ${l}`).join('\n'));
    if (s.panicText) out.push(s.panicText.split('\n').map((l) => `   ${l}`).join('\n'));
    if (s.stuckCase !== undefined) {
      const c = r.image.cases[s.stuckCase];
      out.push(`   case in progress: ${c.id ?? s.stuckCase} [${c.family}] ${c.name}:`);
      for (const l of c.lines) out.push(`      ${l.text}`);
      if (opts.reproduce) out.push(`   reproduce: ${opts.reproduce(c.id ?? String(s.stuckCase))}`);
    }
  }
  const notRun = r.cases - r.compared;
  out.push(`  compared ${r.compared} cases: ${r.mismatches.length} mismatch${r.mismatches.length === 1 ? '' : 'es'}${notRun ? `; ${notRun} cases did not run on both sides (see above)` : ''}`);
  if (r.mismatches.length) {
    // Where they are: by family and by field, so a systematic bug stands out.
    const { byFamily, byField } = tally(r.mismatches);
    const total = new Map<string, number>();
    for (const c of r.image.cases) total.set(c.family, (total.get(c.family) ?? 0) + 1);
    out.push(`  by family: ${[...byFamily].sort((x, y) => y[1] - x[1]).map(([f, n]) => `${f} ${n}/${total.get(f)}`).join(', ')}`);
    out.push(`  by field:  ${[...byField].sort((x, y) => y[1] - x[1]).map(([f, n]) => `${f} ${n}`).join(', ')}`);
    // Show one mismatch of each kind first (family + the set of differing fields), then the
    // rest, up to the limit: a systematic bug then takes one slot, not all of them.
    const limit = opts.limit ?? 40;
    const { firsts, rest } = distinctFirst(r.mismatches);
    const shown = [...firsts, ...rest].slice(0, limit);
    for (const m of shown) {
      out.push('');
      out.push(formatMismatch(m, r.image, names, opts.pool ?? r.pool));
      if (opts.reproduce) out.push(`  reproduce: ${opts.reproduce(m.c.id ?? String(m.index))}`);
    }
    if (r.mismatches.length > shown.length) out.push(`\n  ... and ${r.mismatches.length - shown.length} more mismatches`);
  }
  return out.join('\n');
}
