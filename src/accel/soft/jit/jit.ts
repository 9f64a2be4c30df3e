// The JIT's host side: when the core's queue of hot blocks fills (or a run slice ends), the core
// calls host.jitFlush(); this compiles every queued block (compiler.ts) into one wasm module,
// instantiates it against the same shared memory and the core's exported globals and helpers,
// puts the functions into the function table the core calls through, and writes the table
// indices back into the core's block table (layout in src/accel/soft/as/jit.ts).

import { writeFileSync } from 'node:fs';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { JIT_AREA } from '../layout.js';
import { BlockCompiler } from './compiler.js';
import { Bytes, OP, section, T_I32, T_I64 } from './wasm.js';

/** Whether the JIT runs (TSVM_SOFT_JIT=0 turns it off, for comparison and bisection). */
export function jitWanted(): boolean {
  const v = process.env.TSVM_SOFT_JIT;
  return v === undefined || v === '' || v === '1' || v === 'on';
}

// the core's block table (as/jit.ts)
const JIT_QUEUE = JIT_AREA.QUEUE;
const JIT_GEN = JIT_AREA.GEN;
const E_RIP = 0, E_HOST = 8, E_FN = 12, E_GEN = 16, E_CPL = 18, E_LEN = 19;
/**
 * Table slots in use before everything compiled so far is dropped and recompiled on demand (slots
 * of stale blocks are not reused one by one; this bounds the memory their code keeps alive).
 */
const MAX_SLOTS = 1 << 16;
/** The core's defaults (as/jit.ts JIT_HOT, JIT_WAIT). */
const DEFAULT_HOT = 150;
const DEFAULT_WAIT = 16;
/** Same-page branch targets compiled along with each queued block, at most (see flush). */
const SIBLINGS_PER_BLOCK = 3;
/** ... that have run this often while the block counted to its compilation (the rest may be cold). */
const SIBLING_MIN_RUNS = 20;
/** Functions in one module, at most. */
const MAX_MODULE_FUNCS = 512;
/** The body of a function for a sibling that could not be compiled: (left, acc) -> acc. */
const STUB_BODY = new Bytes().u32(0).byte(OP.localGet).u32(1).byte(OP.end);

/** A block of a batch: its queue entry (-1 for a sibling), where it is, and what it compiled to. */
interface Item { e: number; rip: bigint; host: number; cpl: number; gen: number; count: number }
/** What kept instructions interpreted (as/jit.ts WHY_*, in order). */
const WHY_NAMES = ['no lookup', 'fetch-TLB miss', 'set full', 'new start', 'over budget', 'page written', 'counting', 'queued', 'refused', 'side exit'];

/** Magic and version of a wasm binary (core spec 5.5.16). */
const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/** The type of every block function: (budget, instructions retired before it) -> retired. */
const BLOCK_TYPE = [0x60, 2, T_I32, T_I32, 1, T_I32];

const GLOBAL_NAMES = ['rip', 'lfOp', 'lfSize', 'lfRes', 'lfA', 'lfB', 'lfCin', 'lfEager', 'flagsOther'] as const;
const GLOBAL_TYPES = [T_I64, T_I32, T_I32, T_I64, T_I64, T_I64, T_I32, T_I32, T_I32];
// imported helpers: name, params, results (type index = position + 1; type 0 is a block)
const FUNCS: [string, number[], number[]][] = [
  ['cond', [T_I32], [T_I32]],
  ['getCF', [], [T_I32]],
  ['shift', [T_I32, T_I32, T_I64, T_I32], [T_I64]],
  ['bitScan', [T_I32, T_I32, T_I64, T_I64], [T_I64]],
  ['getFlags', [], [T_I32]],
  ['patchStatus', [T_I32, T_I32], []],
  ['chain', [T_I64, T_I32, T_I32], [T_I32]], // the trampoline (chainTrampoline), not the core
];

interface WasmTable {
  length: number;
  grow(n: number): number;
  set(i: number, f: unknown): void;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
  Table: new (d: { element: string; initial: number }) => WasmTable;
  compile(bytes: Uint8Array): Promise<object>;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export function newFunctionTable(): WasmTable {
  return new wasm.Table({ element: 'anyfunc', initial: 1024 });
}

export interface JitStats {
  blocks: number;
  /** Of `instructions`, the blocks compiled as same-page branch targets of hot blocks. */
  siblings: number;
  refused: number;
  instructions: number;
  modules: number;
  compileMs: number;
  wasmMs: number;
  wasmBytes: number;
}

export class SoftJit {
  readonly stats: JitStats = { blocks: 0, siblings: 0, refused: 0, instructions: 0, modules: 0, compileMs: 0, wasmMs: 0, wasmBytes: 0 };
  private readonly view: DataView;
  private readonly compiler: BlockCompiler;
  private readonly imports: object;
  private next = 1;
  private epoch = 0;
  /** Compile modules asynchronously (V8's background threads); tune(_, 0) makes it synchronous. */
  async = true;
  /** Modules being compiled on V8's threads (their blocks wait, interpreted, until installed). */
  inFlight = 0;
  /** Runs a same-page branch target needs before it is compiled along with a hot block (flush). */
  siblingMinRuns = SIBLING_MIN_RUNS;
  /** Milliseconds from flush to install of each asynchronously compiled module (statistics). */
  private readonly latencies: number[] = [];
  private readonly markPage: (host: number) => number;
  private readonly count: (rip: bigint, host: number, cpl: number) => number;
  private readonly put: (rip: bigint, host: number, cpl: number, fn: number, gen: number, len: number) => number;
  private readonly enable: (on: number) => void;

  constructor(memory: { buffer: ArrayBufferLike }, private readonly table: WasmTable, core: Record<string, unknown>) {
    const buf = memory.buffer as SharedArrayBuffer;
    this.view = new DataView(buf);
    this.compiler = new BlockCompiler(new Uint8Array(buf));
    const c: Record<string, unknown> = { m: memory };
    const chain = chainTrampoline(table, core.jitLookup);
    GLOBAL_NAMES.forEach((n, i) => { c[`g${i}`] = core[n]; });
    FUNCS.forEach(([n], i) => { c[`f${i}`] = n === 'chain' ? chain : core[n]; });
    this.imports = { c };
    this.markPage = core.jitMarkPage as (host: number) => number;
    this.count = core.jitCount as (rip: bigint, host: number, cpl: number) => number;
    this.put = core.jitPut as (rip: bigint, host: number, cpl: number, fn: number, gen: number, len: number) => number;
    this.enable = core.jitEnable as (on: number) => void;
    this.enable(1);
    this.tuneCore = core.jitTune as (hot: number, wait: number) => void;
    // Tuning knobs for experiments (docs/soft-cpu-strategy.md): TSVM_SOFT_JIT_HOT=N executions
    // before a block is compiled (N <= 2 also compiles each block at once), TSVM_SOFT_JIT_WAIT=N
    // run slices a non-empty queue may wait, TSVM_SOFT_JIT_SYNC=1 compiles on the CPU's thread.
    const env = process.env;
    const hot = Number(env.TSVM_SOFT_JIT_HOT ?? '');
    const wait = env.TSVM_SOFT_JIT_WAIT ? Number(env.TSVM_SOFT_JIT_WAIT) : hot > 0 && hot <= 2 ? 0 : DEFAULT_WAIT;
    if (hot > 0 || wait !== DEFAULT_WAIT) this.tune(hot > 0 ? hot : DEFAULT_HOT, wait);
    if (env.TSVM_SOFT_JIT_SYNC === '1') this.async = false;
    if (process.env.TSVM_SOFT_JIT_STATS) {
      const stops = (this.compiler.stops = new Map());
      process.once('exit', () => {
        const s = this.stats;
        const g = (n: string) => Number((core[n] as { value: bigint } | undefined)?.value ?? 0n);
        process.stderr.write(`tsvm: soft JIT: lookups ${g('jitCalls')}, blocks run ${g('jitRuns')} (+ ${g('jitChained')} entered by tail calls), fetch-TLB misses ${g('jitTlbMiss')}, entries claimed ${g('jitClaims')}, side exits ${g('jitSides')}, code pages written ${g('jitInvalidations')}, ${(g('jitInterpreted') / 1e6).toFixed(1)} M instructions interpreted\n`);
        const after = core.jitInterpretedAfter as (why: number) => number;
        const whys = WHY_NAMES.map((n, i) => `${n} ${(after(i) / 1e6).toFixed(1)} M`).join(', ');
        process.stderr.write(`tsvm: soft JIT: interpreted after a lookup found: ${whys}\n`);
        const lat = this.latencies.sort((a, b) => a - b);
        const q = (f: number) => (lat[Math.floor(f * (lat.length - 1))] ?? 0).toFixed(1);
        if (lat.length > 0) process.stderr.write(`tsvm: soft JIT: from queue flush to installed: median ${q(0.5)} ms, 90th percentile ${q(0.9)} ms\n`);
        if (process.env.TSVM_SOFT_JIT_STATS === '2') {
          const top = [...stops].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, n]) => `${k}: ${n}`);
          process.stderr.write(`tsvm: soft JIT: blocks stopped at: ${top.join('; ')}\n`);
        }
        process.stderr.write(`tsvm: soft JIT: ${s.blocks} blocks (${s.siblings} of them branch targets compiled along, ${s.instructions} instructions, ${s.refused} refused) in ${s.modules} modules (${(s.wasmBytes / 1048576).toFixed(1)} MiB), ${s.compileMs.toFixed(0)} ms compiling on the CPU's thread (${s.wasmMs.toFixed(0)} ms in synchronous WebAssembly.Module)\n`);
      });
    }
  }

  private readonly tuneCore: (hot: number, wait: number) => void;

  /**
   * Executions before a block is compiled, and run slices the queue may wait (0: compile as soon
   * as a block is hot, and synchronously).
   */
  tune(hot: number, wait: number): void {
    this.tuneCore(hot, wait);
    this.async = wait !== 0;
  }

  /**
   * Host-side writes into guest RAM (device DMA: virtio buffers, loaders) do not go through the
   * core's write TLB, so they would not make compiled code stale. Wrap the writing entry points of
   * this GuestMemory instance (the one the devices share with the CPU) so that every range they
   * hand out for writing bumps the generation of the code pages in it. A view handed out for
   * writing (writableOffset, slice) is treated as written at once: a guest does not run code from
   * a buffer while a device fills it.
   */
  watchHostWrites(mem: GuestMemory): void {
    const m = mem as unknown as Record<string, (...a: unknown[]) => unknown>;
    const note = (gpa: number, len: number) => {
      const off = mem.gpaToOffset(gpa, len);
      if (off >= 0 && len > 0) this.noteHostWrite(mem.base + off, len);
    };
    for (const name of ['write', 'fill', 'slice', 'writableOffset', 'writeU8', 'writeU16', 'writeU32', 'writeU64'] as const) {
      const orig = m[name]!.bind(mem);
      const len = (a: unknown[]): number => {
        switch (name) {
          case 'write': return (a[1] as Uint8Array).length;
          case 'fill': case 'slice': return a[1] as number;
          case 'writableOffset': return (a[1] as number | undefined) ?? 1;
          case 'writeU8': return 1;
          case 'writeU16': return 2;
          case 'writeU32': return 4;
          default: return 8;
        }
      };
      m[name] = (...a: unknown[]) => {
        const r = orig(...a);
        note(a[0] as number, len(a));
        return r;
      };
    }
  }

  /** The host wrote [host, host + len) of the wasm memory: code compiled from it is stale. */
  noteHostWrite(host: number, len: number): void {
    const v = this.view;
    for (let p = Math.floor(host / 4096), end = Math.floor((host + len - 1) / 4096); p <= end; p++) {
      const g = v.getUint16(JIT_GEN + p * 2, true);
      if (g & 1) v.setUint16(JIT_GEN + p * 2, g + 1, true);
    }
  }

  /** Compile everything the core queued. Called by the core (host.jitFlush). */
  flush(): void {
    const v = this.view;
    const n = v.getUint32(JIT_QUEUE, true);
    if (n === 0) return;
    const t0 = performance.now();
    if (this.next + n * (1 + SIBLINGS_PER_BLOCK) > MAX_SLOTS) {
      // start over: the core forgets every block (and the queue); the table slots are reused
      this.enable(1);
      for (let i = 1; i < this.next; i++) this.table.set(i, null); // let the old modules go
      this.next = 1;
      this.epoch++;
      return;
    }
    // The queued blocks, then the same-page targets of their taken branches ("siblings", up to
    // SIBLINGS_PER_BLOCK per queued block, found while compiling): a branch to a sibling
    // tail-calls it directly, without the trampoline and the core's lookup, and the sibling is
    // compiled now rather than after 150 more interpreted executions. Two in three block-to-block
    // transitions on the way to Linux's /init stayed on the page (measured with a temporary
    // counter in jitLookup; docs/soft-cpu-strategy.md).
    const items: Item[] = [];
    const index = new Map<string, number>();
    const key = (rip: bigint, host: number, cpl: number) => `${rip}:${host}:${cpl}`;
    for (let i = 0; i < n; i++) {
      const e = v.getUint32(JIT_QUEUE + 4 + i * 4, true);
      if (v.getInt32(e + E_FN, true) !== -1) continue;
      const rip = v.getBigUint64(e + E_RIP, true);
      const host = v.getUint32(e + E_HOST, true);
      const cpl = v.getUint8(e + E_CPL);
      const k = key(rip, host, cpl);
      if (index.has(k)) continue;
      const gen = this.markPage(host) >>> 0; // before reading the code: later writes make it stale
      index.set(k, items.length);
      items.push({ e, rip, host, cpl, gen, count: 0 });
    }
    const cap = Math.min(MAX_MODULE_FUNCS, items.length * (1 + SIBLINGS_PER_BLOCK));
    const bodies: Bytes[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const sibling = (target: bigint): number => {
        const host = (it.host & ~0xfff) + Number(target & 0xfffn);
        const k = key(target, host, it.cpl);
        let j = index.get(k);
        if (j === undefined) {
          // only targets that have run a while (not compiled elsewhere, not queued elsewhere)
          if (items.length >= cap || this.count(target, host, it.cpl) < this.siblingMinRuns) return -1;
          j = items.length;
          index.set(k, j);
          items.push({ e: -1, rip: target, host, cpl: it.cpl, gen: it.gen, count: 0 });
        }
        return FUNCS.length + j;
      };
      const r = this.compiler.compile(it.rip, it.host, it.cpl, sibling);
      if (!r) {
        // a block may already tail-call this index: it returns at once, RIP is already the target
        bodies.push(STUB_BODY);
        if (it.e >= 0) {
          v.setInt32(it.e + E_FN, -2, true);
          v.setUint16(it.e + E_GEN, it.gen, true);
          this.stats.refused++;
        }
        continue;
      }
      it.count = r.count;
      bodies.push(r.body);
      this.stats.instructions += r.count;
      if (it.e < 0) this.stats.siblings++;
    }
    v.setUint32(JIT_QUEUE, 0, true);
    if (items.some((it) => it.count > 0)) {
      const bytes = buildModule(bodies);
      if (process.env.TSVM_SOFT_JIT_DUMP && this.stats.modules < 50) {
        writeFileSync(`${process.env.TSVM_SOFT_JIT_DUMP}/jit-${this.stats.modules}.wasm`, bytes);
      }
      this.stats.wasmBytes += bytes.length;
      this.stats.modules++;
      if (this.async) {
        // V8 compiles on its background threads; the blocks are installed when the event loop
        // runs (the soft accelerator yields every few milliseconds). Until then they stay queued
        // (E_FN -1) and the interpreter runs them.
        const epoch = this.epoch;
        this.inFlight++;
        const flushed = performance.now();
        wasm.compile(bytes).then(
          (mod) => {
            this.inFlight--;
            if (epoch === this.epoch) this.install(mod, items);
            if (this.latencies.length < 100_000) this.latencies.push(performance.now() - flushed);
          },
          (err: unknown) => { this.inFlight--; process.stderr.write(`tsvm: soft JIT: a module failed to compile: ${String(err)}\n`); },
        );
      } else {
        const t1 = performance.now();
        const mod = new wasm.Module(bytes);
        this.stats.wasmMs += performance.now() - t1;
        this.install(mod, items);
      }
    }
    this.stats.compileMs += performance.now() - t0;
  }

  /** Instantiate a compiled batch and hand its blocks to the core. */
  private install(mod: object, done: Item[]): void {
    const t0 = performance.now();
    const v = this.view;
    const inst = new wasm.Instance(mod, this.imports);
    const need = this.next + done.length;
    if (need > this.table.length) this.table.grow(Math.max(need - this.table.length, this.table.length));
    done.forEach(({ e, gen, count, rip, host, cpl }, i) => {
      if (count === 0) return; // not compiled
      if (e < 0) {
        // a sibling: into the block table too, unless its set has no room for it
        if (this.put(rip, host, cpl, this.next, gen, count)) {
          this.table.set(this.next++, inst.exports[`f${i}`]);
          this.stats.blocks++;
        }
        return;
      }
      // still the queued entry this block was compiled for (a reset or another start clears it)
      if (v.getInt32(e + E_FN, true) !== -1 || v.getBigUint64(e + E_RIP, true) !== rip || v.getUint32(e + E_HOST, true) !== host) return;
      const slot = this.next++;
      this.table.set(slot, inst.exports[`f${i}`]);
      v.setUint16(e + E_GEN, gen, true);
      v.setUint8(e + E_LEN, count);
      v.setInt32(e + E_FN, slot, true);
      this.stats.blocks++;
    });
    this.stats.compileMs += performance.now() - t0;
  }
}

function buildModule(bodies: Bytes[]): Uint8Array {
  let size = 0;
  for (const b of bodies) size += b.length + 8;
  const out = new Bytes(size + 1024);
  out.bytes(WASM_HEADER);
  // types: 0 = block (i32, i32) -> i32, then one per helper
  const types = new Bytes();
  types.u32(1 + FUNCS.length);
  types.bytes(BLOCK_TYPE);
  for (const [, params, results] of FUNCS) {
    types.byte(0x60).u32(params.length).bytes(params).u32(results.length).bytes(results);
  }
  section(out, 1, types);
  // imports: the shared memory, the core's globals, the core's helpers
  const imp = new Bytes();
  imp.u32(1 + GLOBAL_NAMES.length + FUNCS.length);
  imp.name('c').name('m').byte(0x02).byte(0x03).u32(1).u32(65536);
  GLOBAL_TYPES.forEach((t, i) => { imp.name('c').name(`g${i}`).byte(0x03).byte(t).byte(1); });
  FUNCS.forEach((_, i) => { imp.name('c').name(`f${i}`).byte(0x00).u32(i + 1); });
  section(out, 2, imp);
  const funcs = new Bytes();
  funcs.u32(bodies.length);
  for (let i = 0; i < bodies.length; i++) funcs.u32(0);
  section(out, 3, funcs);
  const exp = new Bytes();
  exp.u32(bodies.length);
  for (let i = 0; i < bodies.length; i++) exp.name(`f${i}`).byte(0x00).u32(FUNCS.length + i);
  section(out, 7, exp);
  const code = new Bytes(size + 16);
  code.u32(bodies.length);
  for (const b of bodies) code.u32(b.length).append(b);
  section(out, 10, code);
  return out.view();
}

/**
 * The one module that tail-calls from block to block: chain(target, left, retired) asks the core's
 * jitLookup for the target's compiled block and tail-calls it (return_call_indirect) with the
 * budget left and the count retired so far, or returns that count when there is none. Blocks
 * reach it with return_call, so a chain of any length runs on a flat wasm stack. It is kept out
 * of the block modules on purpose: V8 copies an imported table's dispatch entries into every
 * instance that imports it (and updates all of them on every table.set/grow), which made
 * instantiating thousands of small block modules quadratic when each imported the table.
 */
function chainTrampoline(table: WasmTable, lookup: unknown): unknown {
  const out = new Bytes();
  out.bytes(WASM_HEADER);
  const types = new Bytes();
  types.u32(3);
  types.bytes(BLOCK_TYPE); // 0
  types.byte(0x60).u32(2).byte(T_I64).byte(T_I32).u32(1).byte(T_I32); // 1: jitLookup(target, left) -> table index
  types.byte(0x60).u32(3).byte(T_I64).byte(T_I32).byte(T_I32).u32(1).byte(T_I32); // 2: chain
  section(out, 1, types);
  const imp = new Bytes();
  imp.u32(2);
  imp.name('c').name('t').byte(0x01).byte(0x70).byte(0x00).u32(1); // funcref table, min 1
  imp.name('c').name('l').byte(0x00).u32(1);
  section(out, 2, imp);
  section(out, 3, new Bytes().u32(1).u32(2));
  const exp = new Bytes();
  exp.u32(1).name('chain').byte(0x00).u32(1);
  section(out, 7, exp);
  const body = new Bytes();
  body.u32(1).u32(1).byte(T_I32); // one i32 local (index 3): the table index
  body.byte(OP.localGet).u32(0).byte(OP.localGet).u32(1).byte(OP.call).u32(0).byte(OP.localTee).u32(3);
  body.byte(OP.if).byte(0x40);
  body.byte(OP.localGet).u32(1).byte(OP.localGet).u32(2).byte(OP.localGet).u32(3).byte(OP.returnCallIndirect).u32(0).u32(0);
  body.byte(OP.end).byte(OP.localGet).u32(2).byte(OP.end);
  const code = new Bytes();
  code.u32(1).u32(body.length).append(body);
  section(out, 10, code);
  const inst = new wasm.Instance(new wasm.Module(out.view()), { c: { t: table, l: lookup } });
  return inst.exports.chain;
}
