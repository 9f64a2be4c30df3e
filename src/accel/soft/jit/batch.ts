// One batch of the JIT: the blocks the core queued, plus the same-page branch targets compiled
// along with them ("siblings"), compiled by BlockCompiler into the bytes of one wasm module.
// Pure with respect to the VM: it reads guest code bytes and (through `runs`) the block table, and
// writes nothing, so it runs on the compiler thread (compile-worker.ts) as well as on the CPU's
// thread (SoftJit in synchronous mode).

import { BlockCompiler, CHAIN_FUNC, F, type SiblingFn } from './compiler.js';
import { Bytes, OP, section, T_I32, T_I64, T_V128 } from '../../../wasm/writer.js';

/** Branch targets compiled along with each queued block ("siblings", see compileBatch), at most. */
export const SIBLINGS_PER_BLOCK = 3;
/** ... that have run this often while the block counted to its compilation (the rest may be cold). */
export const SIBLING_MIN_RUNS = 20;
/** Functions in one module, at most. */
const MAX_MODULE_FUNCS = 512;
/** The body of a function for a sibling that could not be compiled: (left, acc) -> acc. */
const STUB_BODY = new Bytes().u32(0).byte(OP.localGet).u32(1).byte(OP.end);

/**
 * A block of a batch: its queue entry (-1 for a sibling), where it is (RIP, host address of its
 * first byte, CPL, the page generation it is compiled under) and how many instructions it
 * compiled to (0: refused, or not compiled yet).
 */
export interface BatchItem { e: number; rip: bigint; host: number; cpl: number; gen: number; count: number; kept?: number }

export interface Batch {
  /** The queued blocks, then the siblings; function i of the module is items[i]. */
  items: BatchItem[];
  /** The module's bytes, or null when nothing compiled. */
  bytes: Uint8Array | null;
}

/** Magic and version of a wasm binary (core spec 5.5.16). */
export const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/** The type of every block function: (budget, instructions retired before it) -> retired. */
export const BLOCK_TYPE = [0x60, 2, T_I32, T_I32, 1, T_I32];

/** The core's exported globals a block module imports (as c.g0, c.g1, ...; compiler.ts G). */
export const GLOBAL_NAMES = ['flagsOther'] as const;
const GLOBAL_TYPES = [T_I32];
/**
 * The helpers a block calls (compiler.ts F): name, params, results; type index = position + 1.
 * They sit in a small table of their own, imported as c.h, and blocks call them with
 * call_indirect at a constant index. Imported as functions they cost every module V8's
 * compilation of one JavaScript call wrapper per signature (it cannot know the imports will be
 * wasm functions): six TurboFan compilations, ~60 % of V8's time per module, on the compiler
 * thread. That table never changes, so V8 keeping every importing instance's copy of it current
 * (see jit.ts chainTrampoline) costs nothing. The exception is `chain`, which ~27 M block exits
 * on the way to Linux's /init tail-call: it stays an imported function (c.f, function 0), as a
 * tail call through the table cost ~3 ns more each (~90 ms a boot). Its signature has a v128
 * parameter that nothing reads: V8 (11.3, Node 20) compiles the speculative wrapper only for a
 * signature JavaScript can call, and v128 is not one. That wrapper took ~90 µs of the ~120 µs
 * that V8 spent on a small module (compiler.ts returnCallChain).
 */
export const FUNCS: [string, number[], number[]][] = [
  ['cond', [T_I32], [T_I32]],
  ['getCF', [], [T_I32]],
  ['shift', [T_I32, T_I32, T_I64, T_I32], [T_I64]],
  ['bitScan', [T_I32, T_I32, T_I64, T_I64], [T_I64]],
  ['getFlags', [], [T_I32]],
  ['patchStatus', [T_I32, T_I32], []],
  ['rdtsc', [], [T_I64]],
  ['sys', [T_I32, T_I64], [T_I32]],
  ['rep', [T_I32, T_I32, T_I32], [T_I32]],
  ['chain', [T_I64, T_I32, T_I32, T_V128], [T_I32]], // the trampoline (jit.ts chainTrampoline), not the core
];

/**
 * Compile `queued` (deduplicated, pages already marked as code pages) and their siblings.
 * `runs(rip, host, cpl)` is the block table's count of a start still counting (countingRuns),
 * or -1.
 *
 * Siblings: the constant targets of the queued blocks' exits that are still counting (up to
 * SIBLINGS_PER_BLOCK per queued block, found while compiling), or queued in the same batch. A
 * branch to a sibling tail-calls it directly, without the trampoline and the core's lookup (0.5 ns
 * against at least 4.3 ns), and the sibling is compiled now rather than after JIT_HOT (400) more
 * interpreted executions. A target on the block's page needs no check (two in three block-to-block
 * transitions on the way to Linux's /init stayed on the page); one on another page must be on a
 * page that holds compiled code (the compiler passes its host address and generation as `other`),
 * and the call checks that page's fetch-TLB entry and generation first (compiler.ts siblingFor).
 */
export function compileBatch(
  compiler: BlockCompiler,
  queued: BatchItem[],
  runs: (rip: bigint, host: number, cpl: number) => number,
  siblingMinRuns: number,
): Batch {
  const items = queued.map((it) => ({ ...it, count: 0 }));
  const index = new Map<string, number>();
  const key = (rip: bigint, host: number, cpl: number) => `${rip}:${host}:${cpl}`;
  items.forEach((it, i) => index.set(key(it.rip, it.host, it.cpl), i));
  const cap = Math.min(MAX_MODULE_FUNCS, items.length * (1 + SIBLINGS_PER_BLOCK));
  const bodies: Bytes[] = [];
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    const sibling: SiblingFn = (target, other) => {
      const host = other ? other.host : (it.host & ~0xfff) + Number(target & 0xfffn);
      const k = key(target, host, it.cpl);
      let j = index.get(k);
      if (j === undefined) {
        // only targets that have run a while (not compiled elsewhere, not queued elsewhere)
        if (items.length >= cap || runs(target, host, it.cpl) < siblingMinRuns) return -1;
        j = items.length;
        index.set(k, j);
        items.push({ e: -1, rip: target, host, cpl: it.cpl, gen: other ? other.gen : it.gen, count: 0 });
      }
      return CHAIN_FUNC + 1 + j;
    };
    const r = compiler.compile(it.rip, it.host, it.cpl, sibling);
    // a block may already tail-call a refused sibling's index: the stub returns at once, with RIP
    // already the target
    bodies.push(r ? r.body : STUB_BODY);
    if (r) { it.count = r.count; it.kept = r.kept; }
  }
  const names = NAMES ? items.map((it) => `${it.e < 0 ? 'sib' : 'blk'}_${it.rip.toString(16)}`) : null;
  return { items, bytes: items.some((it) => it.count > 0) ? buildModule(bodies, names) : null };
}

/**
 * TSVM_SOFT_JIT_NAMES=1: name each block function after its guest RIP (wasm name section), so
 * that `node --cpu-prof` profiles say which guest code a hot compiled function is.
 */
const NAMES = process.env.TSVM_SOFT_JIT_NAMES === '1';

/** The type and import sections, the same in every block module (built once). */
let prelude: Uint8Array | null = null;

function modulePrelude(): Uint8Array {
  if (prelude) return prelude;
  const out = new Bytes();
  // types: 0 = block (i32, i32) -> i32, then one per helper
  const types = new Bytes();
  types.u32(1 + FUNCS.length);
  types.bytes(BLOCK_TYPE);
  for (const [, params, results] of FUNCS) {
    types.byte(0x60).u32(params.length).bytes(params).u32(results.length).bytes(results);
  }
  section(out, 1, types);
  // imports: the shared memory, the core's globals, the helper table (funcref, exactly
  // FUNCS.length), the chain trampoline (function CHAIN_FUNC)
  const imp = new Bytes();
  imp.u32(3 + GLOBAL_NAMES.length);
  imp.name('c').name('m').byte(0x02).byte(0x03).u32(1).u32(65536);
  GLOBAL_TYPES.forEach((t, i) => { imp.name('c').name(`g${i}`).byte(0x03).byte(t).byte(1); });
  imp.name('c').name('h').byte(0x01).byte(0x70).byte(0x01).u32(FUNCS.length).u32(FUNCS.length);
  imp.name('c').name('f').byte(0x00).u32(F.chain + 1);
  section(out, 2, imp);
  prelude = out.view().slice();
  return prelude;
}

/** Bytes of the unsigned LEB128 encoding of `n`. */
function lebSize(n: number): number {
  let k = 1;
  while (n >= 0x80) { n = Math.floor(n / 128); k++; }
  return k;
}

/** Export entries "f<i>" -> function CHAIN_FUNC + 1 + i, encoded once per index. */
const exportEntries: Uint8Array[] = [];

function exportEntry(i: number): Uint8Array {
  return (exportEntries[i] ??= new Bytes().name(`f${i}`).byte(0x00).u32(CHAIN_FUNC + 1 + i).view().slice());
}

function buildModule(bodies: Bytes[], names: string[] | null): Uint8Array {
  let size = 0;
  for (const b of bodies) size += b.length + 8;
  const out = new Bytes(size + 1024);
  out.bytes(WASM_HEADER);
  out.bytes(modulePrelude());
  const funcs = new Bytes();
  funcs.u32(bodies.length);
  for (let i = 0; i < bodies.length; i++) funcs.u32(0);
  section(out, 3, funcs);
  const exp = new Bytes(bodies.length * 6 + 8);
  exp.u32(bodies.length);
  for (let i = 0; i < bodies.length; i++) exp.bytes(exportEntry(i));
  section(out, 7, exp);
  // the code section, written in place (its size is known: no second copy of every body)
  let codeSize = lebSize(bodies.length);
  for (const b of bodies) codeSize += lebSize(b.length) + b.length;
  out.byte(10).u32(codeSize).u32(bodies.length);
  for (const b of bodies) out.u32(b.length).append(b);
  if (names) {
    // custom section "name", subsection 1: function names (core spec, appendix 7.4)
    const fn = new Bytes();
    fn.u32(names.length);
    names.forEach((n, i) => fn.u32(CHAIN_FUNC + 1 + i).name(n));
    const body = new Bytes().name('name').byte(1).u32(fn.length).append(fn);
    section(out, 0, body);
  }
  return out.view();
}
