// The JIT's host side: when the core's queue of hot blocks fills (or a run slice ends), the core
// calls host.jitFlush(); this compiles every queued block (compiler.ts) into one wasm module,
// instantiates it against the same shared memory and the core's flagsOther global and helpers,
// puts the functions into the function table the core calls through, and writes the table
// indices back into the core's block table (layout in src/accel/soft/as/jit.ts).

import { writeFileSync } from 'node:fs';
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { BlockCompiler, F, O_TLB, TLB_BYTES, TLB_N } from './compiler.js';
import { Bytes, Emitter, OP, section, T_I32, T_I64 } from '../../../wasm/writer.js';
import { BLOCK_TYPE, FUNCS, GLOBAL_NAMES, SIBLING_MIN_RUNS, SIBLINGS_PER_BLOCK, WASM_HEADER, compileBatch, type BatchItem } from './batch.js';
import { E_CPL, E_FN, E_GEN, E_HOST, E_LEN, E_RIP, JIT_EPOCH, JIT_GEN, JIT_JUMP_CACHE, JIT_QUEUE, JIT_TABLE } from './block-table.js';
import type { CompileReply } from './compile-worker.js';
import { CompileChannel } from './compile-channel.js';
import { O, STATE_AREA } from '../layout.js';
import { distSrcUrl } from '../../../paths.js';
import { writeRecording, type RecordedBlock } from './recording.js';

/** Whether the JIT runs (TSVM_SOFT_JIT=0 turns it off, for comparison and bisection). */
export function jitWanted(): boolean {
  const v = process.env.TSVM_SOFT_JIT;
  return v === undefined || v === '' || v === '1' || v === 'on';
}

/**
 * Table slots in use before everything compiled so far is dropped and recompiled on demand (slots
 * of stale blocks are not reused one by one; this bounds the memory their code keeps alive).
 */
const MAX_SLOTS = 1 << 16;
/** The core's defaults (as/jit.ts JIT_HOT, JIT_WAIT). */
// 400: with the interpreter inlined into the run loop (~69 M instructions/s), interpreting a
// block's first runs became cheaper than compiling blocks that run a few hundred times (their
// module, its Liftoff compile and TurboFan's tier-up share this 2-core machine's second
// core with the compiler thread). Boot to /init, 8-10 interleaved boots each: 150 -> 2.31 s, 300
// -> 2.25 and 2.20 s, 500 -> 2.23 and 2.19 s, 800 -> 2.25 s, 1200 -> 2.33 s.
const DEFAULT_HOT = 400;
/**
 * The threshold while the compiler thread has no batch, as a part of the threshold (SoftJit.poll):
 * its idle time compiles blocks that are halfway there. Boot to /init: instructions interpreted
 * while counting 21 -> 17 M, queued the same; bench:ab-boot against none, four runs of 10-12
 * rounds: 0.990x, 1/1.012x, 1.006x, 1/1.009x (per-round medians), ~0.5 % faster, within the
 * host's noise. A quarter (100) queued more than it saved (queued 15 -> 21 M).
 */
const IDLE_PART = 0.5;
const DEFAULT_WAIT = 16;
/** ... when the compiler thread compiles (see `mode`). */
const THREAD_WAIT = 1;

/** What kept instructions interpreted (as/jit.ts WHY_*, in order). */
const WHY_NAMES = ['no lookup', 'fetch-TLB miss', 'set full', 'new start', 'over budget', 'page written', 'counting', 'queued', 'refused', 'side exit'];

interface WasmTable {
  length: number;
  grow(n: number): number;
  set(i: number, f: unknown): void;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
  Table: new (d: { element: string; initial: number; maximum?: number }) => WasmTable;
  compile(bytes: Uint8Array): Promise<object>;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export function newFunctionTable(): WasmTable {
  return new wasm.Table({ element: 'anyfunc', initial: 1024 });
}

export interface JitStats {
  blocks: number;
  /** Of `blocks`, the blocks compiled as same-page branch targets of hot blocks. */
  siblings: number;
  /** Forward branches kept inside blocks (compiler.ts BlockCompiler `targets`). */
  kept: number;
  refused: number;
  instructions: number;
  modules: number;
  /** Milliseconds of JIT work on the CPU's thread (flush, compile when not on the compiler thread, install). */
  compileMs: number;
  /** Of those, in synchronous WebAssembly.Module. */
  wasmMs: number;
  /** Milliseconds the compiler thread spent (decode, emit, V8's compile). */
  threadMs: number;
  wasmBytes: number;
}

/**
 * Where modules are compiled: on the compiler thread (compile-worker.ts, the default), on V8's
 * background threads after decoding and emitting on the CPU's thread (`async`), or entirely on the
 * CPU's thread (`sync`: the tests' stress mode, and TSVM_SOFT_JIT_SYNC=1).
 */
export type JitMode = 'thread' | 'async' | 'sync';

/** A compiler thread (compile-worker.ts), its request ring and its reply port. */
interface CompilerThread {
  worker: Worker;
  port: MessagePort;
  channel: CompileChannel;
  /** Set by the SoftJit that uses the thread: told when the thread fails or exits. */
  onLost?: (why: string) => void;
  /** A failure before any SoftJit took the thread. */
  failure?: string;
}

function spawnCompilerThread(memory: { buffer: ArrayBufferLike }): CompilerThread {
  const channel = new CompileChannel();
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(distSrcUrl('accel/soft/jit/compile-worker.js'), {
    workerData: { memory, channel: channel.buffer, port: port2 },
    transferList: [port2],
  });
  worker.unref();
  const t: CompilerThread = { worker, port: port1, channel };
  // (listeners from the start: an 'error' event nobody listens to would end the process)
  const lost = (why: string) => { if (t.onLost) t.onLost(why); else t.failure ??= why; };
  worker.on('error', (err) => lost(`failed: ${err.message}`));
  worker.on('exit', (code) => lost(`exited with code ${code}`));
  return t;
}

/** Compiler threads started ahead of their SoftJit, by guest memory. */
const prestarted = new WeakMap<object, CompilerThread>();

/**
 * Start the compiler thread for the VM with this wasm memory now, while the VMM still loads and
 * decompresses the kernel: the thread's start-up (a worker and its modules, ~60 ms from the first
 * batch to the first compiled module when started on demand) then overlaps that instead of the
 * guest's first instructions, all interpreted until it answers. The VM's SoftJit takes it at its
 * first batch, or stops it in close().
 */
export function prestartCompilerThread(memory: { buffer: ArrayBufferLike }): number {
  let t = prestarted.get(memory);
  if (!t) prestarted.set(memory, (t = spawnCompilerThread(memory)));
  return t.worker.threadId;
}

/** Stop a thread prestartCompilerThread started for `memory` that no SoftJit took (the VM never ran). */
export function dropPrestartedCompilerThread(memory: { buffer: ArrayBufferLike }): void {
  const t = prestarted.get(memory);
  if (!t) return;
  prestarted.delete(memory);
  t.onLost = () => {}; // its exit is expected
  t.port.close();
  void t.worker.terminate();
}

/** A batch posted to the compiler thread, until its reply is installed. */
interface Pending { items: BatchItem[]; epoch: number; posted: number }

export class SoftJit {
  readonly stats: JitStats = { blocks: 0, siblings: 0, kept: 0, refused: 0, instructions: 0, modules: 0, compileMs: 0, wasmMs: 0, threadMs: 0, wasmBytes: 0 };
  private readonly view: DataView;
  private readonly compiler: BlockCompiler;
  private readonly imports: object;
  private next = 1;
  private epoch = 0;
  private currentMode: JitMode = 'thread';
  private hot = DEFAULT_HOT;
  /** TSVM_SOFT_JIT_HOT_IDLE: the threshold while the compiler thread is idle (0: the same as `hot`). */
  private hotIdleSet: number | undefined;
  /** Run slices the core's queue may wait, when set by tune() or TSVM_SOFT_JIT_WAIT (else by mode). */
  private waitSet: number | undefined;

  /** See JitMode; tune(_, 0) makes it `sync`, TSVM_SOFT_JIT_THREAD=0 `async`. */
  get mode(): JitMode { return this.currentMode; }
  set mode(m: JitMode) {
    this.currentMode = m;
    // The compiler thread merges what was posted while it compiled (compile-worker.ts), so the
    // queue goes to it after every run slice: on the way to Linux's /init, instructions
    // interpreted while their block was queued fell from 21 M to 14 M and the median time from
    // hot to installed from 1.7 to 1.1 ms (mean of 6 boots 3.89 -> 3.70 s, within this machine's
    // noise). Compiling here, each flush is a module of its own: batches wait up to 16 slices.
    if (this.waitSet === undefined) this.setCore(this.hot, m === 'thread' ? THREAD_WAIT : DEFAULT_WAIT);
  }
  /** Modules V8 is compiling in mode `async` (installed only when the event loop runs). */
  private asyncCompiles = 0;
  /** Runs a same-page branch target needs before it is compiled along with a hot block (batch.ts). */
  siblingMinRuns = SIBLING_MIN_RUNS;
  /** Milliseconds from flush to install of each asynchronously compiled module (statistics). */
  private readonly latencies: number[] = [];
  private readonly markPage: (host: number) => number;
  private readonly count: (rip: bigint, host: number, cpl: number) => number;
  private readonly put: (rip: bigint, host: number, cpl: number, fn: number, gen: number, len: number) => number;
  private readonly enable: (on: number) => void;
  /** The chain trampoline's lookup (for tests: it must agree with the core's jitLookup). */
  readonly find: (target: bigint, left: number) => number;
  private readonly stops?: Map<string, number>;
  // the compiler thread (mode `thread`), taken at the first batch: started by then through
  // prestartCompilerThread, or started there
  private worker: Worker | null = null;
  private port: MessagePort | null = null;
  private channel: CompileChannel | null = null;
  /** Replies taken from the port (the channel counts those posted). */
  private received = 0;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** TSVM_SOFT_JIT_RECORD=FILE: every batch's queued blocks, written with the memory at exit (recording.ts). */
  private readonly recorded: RecordedBlock[][] | null = null;

  constructor(private readonly memory: { buffer: ArrayBufferLike }, private readonly table: WasmTable, core: Record<string, unknown>) {
    const buf = memory.buffer as SharedArrayBuffer;
    this.view = new DataView(buf);
    this.compiler = new BlockCompiler(new Uint8Array(buf));
    const c: Record<string, unknown> = { m: memory };
    const trampoline = chainTrampoline(table, memory, core);
    const chain = trampoline.chain;
    this.find = trampoline.find as (target: bigint, left: number) => number;
    GLOBAL_NAMES.forEach((n, i) => { c[`g${i}`] = core[n]; });
    const helpers = new wasm.Table({ element: 'anyfunc', initial: FUNCS.length, maximum: FUNCS.length });
    FUNCS.forEach(([n], i) => { helpers.set(i, n === 'chain' ? chain : core[n]); });
    c.h = helpers;
    c.f = chain;
    this.imports = { c };
    this.markPage = core.jitMarkPage as (host: number) => number;
    this.count = core.jitCount as (rip: bigint, host: number, cpl: number) => number;
    this.put = core.jitPut as (rip: bigint, host: number, cpl: number, fn: number, gen: number, len: number) => number;
    this.enable = core.jitEnable as (on: number) => void;
    this.enable(1);
    this.tuneCore = core.jitTune as (hot: number, wait: number) => void;
    // Tuning knobs for experiments (docs/soft-cpu-strategy.md): TSVM_SOFT_JIT_HOT=N executions
    // before a block is compiled (N <= 2 also compiles each block at once), TSVM_SOFT_JIT_WAIT=N
    // run slices a non-empty queue may wait, TSVM_SOFT_JIT_SYNC=1 compiles on the CPU's thread,
    // TSVM_SOFT_JIT_THREAD=0 decodes and emits on the CPU's thread and leaves only V8's compile to
    // its background threads (the second session's way), TSVM_SOFT_JIT_HOT_IDLE=N the threshold
    // while the compiler thread is idle (0: no lower threshold then).
    const env = process.env;
    const hot = Number(env.TSVM_SOFT_JIT_HOT ?? '');
    const wait = env.TSVM_SOFT_JIT_WAIT ? Number(env.TSVM_SOFT_JIT_WAIT) : hot > 0 && hot <= 2 ? 0 : undefined;
    if (hot > 0) this.hot = hot;
    if (env.TSVM_SOFT_JIT_HOT_IDLE) this.hotIdleSet = Number(env.TSVM_SOFT_JIT_HOT_IDLE);
    if (wait !== undefined) this.tune(this.hot, wait);
    if (env.TSVM_SOFT_JIT_THREAD === '0' && this.mode === 'thread') this.mode = 'async';
    if (env.TSVM_SOFT_JIT_SYNC === '1') this.mode = 'sync';
    this.mode = this.currentMode; // the core's wait for the mode
    const record = env.TSVM_SOFT_JIT_RECORD;
    if (record) {
      const batches: RecordedBlock[][] = [];
      this.recorded = batches;
      process.once('exit', () => writeRecording(record, { siblingMinRuns: this.siblingMinRuns, batches }, this.memory.buffer));
    }
    if (process.env.TSVM_SOFT_JIT_STATS) {
      (core.jitStatsOn as (on: number) => void)(1);
      const stops = process.env.TSVM_SOFT_JIT_STATS === '2' ? new Map<string, number>() : undefined;
      this.stops = this.compiler.stops = stops;
      process.once('exit', () => {
        const s = this.stats;
        const g = (n: string) => Number((core[n] as { value: bigint } | undefined)?.value ?? 0n);
        process.stderr.write(`tsvm: soft JIT: lookups ${g('jitCalls')}, blocks run ${g('jitRuns')} (+ ${g('jitChained')} entered by tail calls), fetch-TLB misses ${g('jitTlbMiss')}, entries claimed ${g('jitClaims')}, side exits ${g('jitSides')}, code pages written ${g('jitInvalidations')}, ${((core.jitInterpretedCount as () => number)() / 1e6).toFixed(1)} M instructions interpreted of ${(Number((core.instructionCount as () => bigint | number)()) / 1e6).toFixed(1)} M retired\n`);
        const after = core.jitInterpretedAfter as (why: number) => number;
        const whys = WHY_NAMES.map((n, i) => `${n} ${(after(i) / 1e6).toFixed(1)} M`).join(', ');
        process.stderr.write(`tsvm: soft JIT: interpreted after a lookup found: ${whys}\n`);
        const lat = this.latencies.sort((a, b) => a - b);
        const q = (f: number) => (lat[Math.floor(f * (lat.length - 1))] ?? 0).toFixed(1);
        if (lat.length > 0) process.stderr.write(`tsvm: soft JIT: from queue flush to installed: median ${q(0.5)} ms, 90th percentile ${q(0.9)} ms\n`);
        if (stops) {
          const top = [...stops].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, n]) => `${k}: ${n}`);
          process.stderr.write(`tsvm: soft JIT: blocks stopped at: ${top.join('; ')}\n`);
        }
        process.stderr.write(`tsvm: soft JIT: ${s.blocks} blocks (${s.siblings} of them branch targets compiled along, ${s.instructions} instructions, ${s.kept} forward branches kept inside, ${s.refused} refused) in ${s.modules} modules (${(s.wasmBytes / 1048576).toFixed(1)} MiB), ${s.compileMs.toFixed(0)} ms of JIT work on the CPU's thread (${s.wasmMs.toFixed(0)} ms in synchronous WebAssembly.Module), ${s.threadMs.toFixed(0)} ms on the compiler thread\n`);
      });
    }
  }

  private readonly tuneCore: (hot: number, wait: number) => void;
  /** What the core was last told (tuneCore): its threshold (JIT_HOT) and wait (JIT_WAIT). */
  private coreHot = DEFAULT_HOT;
  private coreWait = DEFAULT_WAIT;

  private idleHot(): number {
    const set = this.hotIdleSet;
    if (set === undefined) return Math.max(1, Math.round(this.hot * IDLE_PART));
    return set > 0 ? Math.min(set, this.hot) : this.hot;
  }

  private setCore(hot: number, wait: number): void {
    this.coreHot = hot;
    this.coreWait = wait;
    this.tuneCore(hot, wait);
  }

  /**
   * Executions before a block is compiled, and run slices the queue may wait (0: compile as soon
   * as a block is hot, and synchronously).
   */
  tune(hot: number, wait: number): void {
    this.hot = hot;
    this.waitSet = wait;
    this.setCore(hot, wait);
    if (wait === 0) this.mode = 'sync';
    else if (this.mode === 'sync') this.mode = 'thread';
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
      if (g & 1) {
        v.setUint16(JIT_GEN + p * 2, g + 1, true);
        v.setUint32(JIT_EPOCH, v.getUint32(JIT_EPOCH, true) + 1, true); // the jump cache forgets
      }
    }
  }

  /** Compile everything the core queued. Called by the core (host.jitFlush). */
  flush(): void {
    const v = this.view;
    const n = v.getUint32(JIT_QUEUE, true);
    if (n === 0) return;
    const t0 = performance.now();
    if (this.next + this.inFlightSlots() + n * (1 + SIBLINGS_PER_BLOCK) > MAX_SLOTS) {
      // start over: the core forgets every block (and the queue); the table slots are reused, and
      // batches still compiling are dropped when they come back (epoch)
      this.enable(1);
      for (let i = 1; i < this.next; i++) this.table.set(i, null); // let the old modules go
      this.next = 1;
      this.epoch++;
      return;
    }
    const queued: BatchItem[] = [];
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) {
      const e = v.getUint32(JIT_QUEUE + 4 + i * 4, true);
      if (v.getInt32(e + E_FN, true) !== -1 || seen.has(e)) continue;
      seen.add(e);
      const host = v.getUint32(e + E_HOST, true);
      const gen = this.markPage(host) >>> 0; // before reading the code: later writes make it stale
      queued.push({ e, rip: v.getBigUint64(e + E_RIP, true), host, cpl: v.getUint8(e + E_CPL), gen, count: 0 });
    }
    v.setUint32(JIT_QUEUE, 0, true);
    this.recorded?.push(queued.map((it) => [it.rip.toString(16), it.host, it.cpl, it.gen]));
    if (this.mode === 'thread' && this.post(queued)) {
      this.stats.compileMs += performance.now() - t0;
      return;
    }
    const batch = compileBatch(this.compiler, queued, this.count, this.siblingMinRuns);
    const epoch = this.epoch;
    if (!batch.bytes) {
      this.settle(batch.items, null, epoch);
    } else {
      const bytes = batch.bytes;
      this.dump(bytes);
      this.stats.wasmBytes += bytes.length;
      this.stats.modules++;
      if (this.mode === 'sync') {
        const t1 = performance.now();
        const mod = new wasm.Module(bytes);
        this.stats.wasmMs += performance.now() - t1;
        this.settle(batch.items, mod, epoch);
      } else {
        // V8 compiles on its background threads; the blocks are installed when the event loop
        // runs (the soft accelerator yields every few milliseconds). Until then they stay queued
        // (E_FN -1) and the interpreter runs them.
        this.asyncCompiles++;
        const flushed = performance.now();
        wasm.compile(bytes).then(
          (mod) => { this.asyncCompiles--; this.settle(batch.items, mod, epoch, flushed); },
          (err: unknown) => { this.asyncCompiles--; this.failed(String(err)); },
        );
      }
    }
    this.stats.compileMs += performance.now() - t0;
  }

  /** Table slots the batches still compiling may take (so that flush can bound the total). */
  private inFlightSlots(): number {
    let k = 0;
    for (const p of this.pending.values()) k += p.items.length * (1 + SIBLINGS_PER_BLOCK);
    return k;
  }

  /** Post a batch to the compiler thread (started on first use); false when it cannot take it. */
  private post(items: BatchItem[]): boolean {
    if (!this.worker) {
      try {
        const t = prestarted.get(this.memory) ?? spawnCompilerThread(this.memory);
        prestarted.delete(this.memory);
        this.worker = t.worker;
        this.port = t.port;
        this.channel = t.channel;
        t.onLost = (why) => this.lostThread(why);
        if (t.failure !== undefined) {
          this.lostThread(t.failure);
          return false;
        }
      } catch (err) {
        this.lostThread(`could not start: ${(err as Error).message}`);
        return false;
      }
    }
    const id = this.nextId;
    if (!this.channel!.post({ id, items, siblingMinRuns: this.siblingMinRuns })) return false; // ring full
    this.nextId++;
    this.pending.set(id, { items, epoch: this.epoch, posted: performance.now() });
    return true;
  }

  /**
   * Install what the compiler thread has finished. The CPU's thread calls this after every run
   * slice (SoftCpu.run): a shared counter says whether a reply is waiting, and the reply is taken
   * synchronously (receiveMessageOnPort), so installing does not wait for the event loop.
   */
  poll(): void {
    const ch = this.channel;
    if (ch && ch.replies() !== this.received) {
      for (;;) {
        const m = receiveMessageOnPort(this.port!);
        if (!m) break;
        this.received++;
        this.receive(m.message as CompileReply);
      }
    }
    // while the compiler thread has nothing to do, blocks are queued at a lower count (IDLE_PART)
    const hot = this.mode === 'thread' && this.pending.size === 0 ? this.idleHot() : this.hot;
    if (hot !== this.coreHot) this.setCore(hot, this.coreWait);
  }

  /** Whether modules are compiling that only the event loop can install (mode `async`). */
  waitsForEventLoop(): boolean {
    return this.asyncCompiles > 0;
  }

  /** The compiler thread's id (worker_threads threadId), or -1 before it started or without one. */
  get threadId(): number {
    return this.worker?.threadId ?? -1;
  }

  /** Stop the compiler thread (the VM is gone). */
  close(): void {
    dropPrestartedCompilerThread(this.memory);
    const w = this.worker;
    if (!w) return;
    this.mode = 'sync';
    this.worker = null;
    this.channel = null;
    this.port?.close();
    this.port = null;
    void w.terminate();
  }

  private receive(r: CompileReply): void {
    const t0 = performance.now();
    const batches = r.ids.map((id) => this.pending.get(id)).filter((p): p is Pending => p !== undefined);
    if (batches.length === 0) return;
    for (const id of r.ids) this.pending.delete(id);
    this.stats.threadMs += r.ms;
    if (r.stops && this.stops) for (const [k, n] of r.stops) this.stops.set(k, (this.stops.get(k) ?? 0) + n);
    if (r.error !== undefined || batches.some((p) => p.epoch !== this.epoch)) {
      // a failed compile, or batches from before a reset merged with later ones: count them again
      if (r.error !== undefined) this.failed(r.error);
      for (const p of batches) this.requeue(p);
    } else {
      if (r.module) {
        this.stats.wasmBytes += r.bytes;
        this.stats.modules++;
      }
      this.settle(r.items, r.module, this.epoch, Math.min(...batches.map((p) => p.posted)));
    }
    this.stats.compileMs += performance.now() - t0;
  }

  /** The compiler thread is gone: compile on this thread from now on, and redo what it had. */
  private lostThread(why: string): void {
    if (this.mode !== 'thread') return;
    process.stderr.write(`tsvm: soft JIT: the compiler thread ${why}; compiling on the CPU's thread instead\n`);
    this.mode = 'async';
    this.worker = null;
    this.port = null;
    this.channel = null;
    for (const p of this.pending.values()) this.requeue(p);
    this.pending.clear();
  }

  /** A batch that did not compile: its queued entries count again from 1 (so they are retried later). */
  private requeue(p: Pending): void {
    if (p.epoch !== this.epoch) return;
    const v = this.view;
    for (const it of p.items) {
      if (this.stillQueued(it)) v.setInt32(it.e + E_FN, 0, true);
    }
  }

  private failed(err: string): void {
    process.stderr.write(`tsvm: soft JIT: a module failed to compile: ${err}\n`);
  }

  private dump(bytes: Uint8Array): void {
    if (process.env.TSVM_SOFT_JIT_DUMP && this.stats.modules < 50) {
      writeFileSync(`${process.env.TSVM_SOFT_JIT_DUMP}/jit-${this.stats.modules}.wasm`, bytes);
    }
  }

  /** Whether queue entry it.e still waits for this block (a reset or another start clears it). */
  private stillQueued(it: BatchItem): boolean {
    const v = this.view;
    return it.e >= 0 && v.getInt32(it.e + E_FN, true) === -1 && v.getBigUint64(it.e + E_RIP, true) === it.rip && v.getUint32(it.e + E_HOST, true) === it.host;
  }

  /**
   * A batch is back: mark the queued blocks that did not compile as refused, instantiate the
   * module (when something compiled) and hand its blocks to the core. `posted`: when the batch
   * left the queue (for the latency statistics).
   */
  private settle(items: BatchItem[], mod: object | null, epoch: number, posted?: number): void {
    if (epoch !== this.epoch) return;
    const v = this.view;
    for (const it of items) {
      if (it.count > 0 || !this.stillQueued(it)) continue;
      v.setInt32(it.e + E_FN, -2, true);
      v.setUint16(it.e + E_GEN, it.gen, true);
      this.stats.refused++;
    }
    if (!mod) return;
    if (posted !== undefined && this.latencies.length < 100_000) this.latencies.push(performance.now() - posted);
    const inst = new wasm.Instance(mod, this.imports);
    const need = this.next + items.length;
    if (need > this.table.length) this.table.grow(Math.max(need - this.table.length, this.table.length));
    items.forEach((it, i) => {
      if (it.count === 0) return; // not compiled
      const { e, gen, count, rip, host, cpl } = it;
      if (e < 0) {
        // a sibling: into the block table too, unless its set has no room for it
        if (!this.put(rip, host, cpl, this.next, gen, count)) return;
        this.table.set(this.next++, inst.exports[`f${i}`]);
        this.stats.siblings++;
      } else {
        if (!this.stillQueued(it)) return;
        const slot = this.next++;
        this.table.set(slot, inst.exports[`f${i}`]);
        v.setUint16(e + E_GEN, gen, true);
        v.setUint8(e + E_LEN, count);
        v.setInt32(e + E_FN, slot, true);
      }
      this.stats.blocks++;
      this.stats.instructions += count;
      this.stats.kept += it.kept ?? 0;
    });
  }
}

/**
 * The one module that tail-calls from block to block: chain(target, left, retired) finds the
 * target's compiled block and tail-calls it (return_call_indirect) with the budget left and the
 * count retired so far, or returns that count when there is none. Blocks reach it with
 * return_call, so a chain of any length runs on a flat wasm stack. It is kept out of the block
 * modules on purpose: V8 copies an imported table's dispatch entries into every instance that
 * imports it (and updates all of them on every table.set/grow), which made instantiating
 * thousands of small block modules quadratic when each imported the table.
 *
 * The lookup is the core's jitLookup (as/jit.ts) written out here in wasm over the shared memory
 * (fetch TLB, block table, page generations), rather than a call into the core: one call between
 * instances less per transition (~30 M of them on the way to Linux's /init; ~2.5 ns each, measured
 * on a two-page loop). Same checks, same order; test/soft/jit.test.ts compares `find` with the
 * core's jitLookup on every entry of a table.
 */
function chainTrampoline(table: WasmTable, memory: unknown, core: Record<string, unknown>): { chain: unknown; find: unknown } {
  const out = new Bytes();
  out.bytes(WASM_HEADER);
  const types = new Bytes();
  types.u32(3);
  types.bytes(BLOCK_TYPE); // 0
  const [, chainParams, chainResults] = FUNCS[F.chain]!;
  types.byte(0x60).u32(chainParams.length).bytes(chainParams).u32(chainResults.length).bytes(chainResults); // 1: chain, as blocks import it
  types.byte(0x60).u32(2).byte(T_I64).byte(T_I32).u32(1).byte(T_I32); // 2: find(target, left) -> table index or 0
  section(out, 1, types);
  const imp = new Bytes();
  imp.u32(3);
  imp.name('c').name('t').byte(0x01).byte(0x70).byte(0x00).u32(1); // funcref table, min 1
  imp.name('c').name('m').byte(0x02).byte(0x03).u32(1).u32(65536); // the shared memory
  imp.name('c').name('n').byte(0x03).byte(T_I64).byte(1); // global 0: jitChained (statistics)
  section(out, 2, imp);
  section(out, 3, new Bytes().u32(2).u32(1).u32(2)); // 0 chain, 1 find
  const exp = new Bytes();
  exp.u32(2).name('chain').byte(0x00).u32(0).name('find').byte(0x00).u32(1);
  section(out, 7, exp);
  const code = new Bytes();
  // The count of blocks entered through here is for the statistics: an imported global's update
  // on every transition is left out unless they are asked for.
  const chain = lookupBody(true, process.env.TSVM_SOFT_JIT_STATS !== undefined);
  const find = lookupBody(false, false);
  code.u32(2).u32(chain.length).append(chain).u32(find.length).append(find);
  section(out, 10, code);
  const inst = new wasm.Instance(new wasm.Module(out.view()), { c: { t: table, m: memory, n: core.jitChained } });
  return { chain: inst.exports.chain, find: inst.exports.find };
}

/** log2 of the jump cache's entries (16 bytes each, at JIT_JUMP_CACHE). */
const JC_BITS = 12;

/**
 * The core's jitLookup (as/jit.ts) in wasm: as chain(target, left, acc), tail-calling the block
 * it finds (and, with statistics on, counting it in jitChained) or returning acc; else as find(target, left),
 * returning the block's table index or 0 (the same code: tests check find against jitLookup).
 */
function lookupBody(chain: boolean, count: boolean): Bytes {
  // params: 0 target (i64), 1 left, (2 acc, 3 a v128 nothing reads: batch.ts FUNCS); locals: vpn
  // (i64), tag address, host, entry, fn, jump-cache entry, its key, CPL, the target's hash
  const TARGET = 0, LEFT = 1, ACC = 2;
  const VPN = chain ? 4 : 2, TAG = VPN + 1, HOST = VPN + 2, E = VPN + 3, FN = VPN + 4, JC = VPN + 5, KEY = VPN + 6, CPL = VPN + 7, HASH = VPN + 8;
  const c = new Emitter();
  c.u32(2).u32(1).byte(T_I64).u32(8).byte(T_I32);
  const nothing = () => (chain ? c.get(ACC) : c.i32c(0));
  const none = () => { c.op(OP.if).byte(0x40); nothing(); c.op(OP.return).op(OP.end); };
  // an interrupt request is pending: back to the core's loop
  c.i32c(0).mem(OP.i32Load, 2, STATE_AREA + O.INTR_REQUEST); none();
  // the CPL, from the state block's copy (one load; the core's exported global takes three)
  c.i32c(0).mem(OP.i32Load, 2, STATE_AREA + O.CPL).set(CPL);
  // the hash of the target (as/jit.ts slot), for the block table's set and the jump cache's entry
  c.get(TARGET).op(OP.i32WrapI64).get(TARGET).i64c(29n).op(OP.i64ShrU).op(OP.i32WrapI64).op(OP.i32Xor);
  c.i32c(0x9e3779b1 | 0).op(OP.i32Mul).set(HASH);
  if (chain) {
    // The jump cache (2^JC_BITS direct-mapped entries of {rip u64, fn | len << 24, epoch * 4 + CPL}):
    // a target found by the full lookup below under the current epoch and CPL is entered with a
    // hash and two loads. The epoch (as/jit.ts JIT_EPOCH) changes with every TLB flush, code-page
    // write and block-table reset, so an entry is only used while its translation, its block's
    // page generation and its table slot are the ones the full lookup saw.
    c.get(HASH).i32c(32 - JC_BITS).op(OP.i32ShrU).i32c(4).op(OP.i32Shl).i32c(JIT_JUMP_CACHE).op(OP.i32Add).set(JC);
    c.i32c(0).mem(OP.i32Load, 2, JIT_EPOCH).i32c(2).op(OP.i32Shl).get(CPL).op(OP.i32Or).set(KEY);
    c.get(JC).mem(OP.i64Load, 3, 0).get(TARGET).op(OP.i64Eq);
    c.get(JC).mem(OP.i32Load, 2, 12).get(KEY).op(OP.i32Eq).op(OP.i32And);
    c.op(OP.if).byte(0x40);
    c.get(JC).mem(OP.i32Load, 2, 8).tee(FN).i32c(24).op(OP.i32ShrU).get(LEFT).op(OP.i32LeS);
    c.op(OP.if).byte(0x40);
    if (count) c.gget(0).i64c(1n).op(OP.i64Add).gset(0);
    c.get(LEFT).get(ACC).get(FN).i32c(0xffffff).op(OP.i32And).op(OP.returnCallIndirect).u32(0).u32(0);
    c.op(OP.end);
    c.op(OP.end);
  }
  // the fetch TLB (supervisor or user) must translate the target: host address of its code byte
  c.get(TARGET).i64c(12n).op(OP.i64ShrU).set(VPN);
  c.get(VPN).op(OP.i32WrapI64).i32c(TLB_N - 1).op(OP.i32And).i32c(3).op(OP.i32Shl);
  c.get(CPL).i32c(3).op(OP.i32Eq).i32c(TLB_BYTES).op(OP.i32Mul).op(OP.i32Add).tee(TAG);
  c.mem(OP.i64Load, 3, STATE_AREA + O_TLB + 4 * TLB_BYTES).get(VPN).op(OP.i64Ne); none();
  c.get(TAG).mem(OP.i64Load, 3, STATE_AREA + O_TLB + 4 * TLB_BYTES + TLB_N * 8).get(TARGET).op(OP.i64Add).op(OP.i32WrapI64).set(HOST);
  // its set in the block table (as/jit.ts slot), four ways
  c.get(HASH).i32c(19).op(OP.i32ShrU).i32c(7).op(OP.i32Shl).i32c(JIT_TABLE).op(OP.i32Add).set(E);
  c.op(OP.block).byte(0x40);
  for (let w = 0; w < 4; w++) {
    c.get(E).mem(OP.i64Load, 3, E_RIP).get(TARGET).op(OP.i64Eq);
    c.get(E).mem(OP.i32Load, 2, E_HOST).get(HOST).op(OP.i32Eq).op(OP.i32And);
    c.get(E).mem(OP.i32Load8U, 0, E_CPL).get(CPL).op(OP.i32Eq).op(OP.i32And);
    c.op(OP.brIf).u32(0); // found
    if (w < 3) c.get(E).i32c(32).op(OP.i32Add).set(E);
  }
  nothing(); c.op(OP.return); // not in the table
  c.op(OP.end);
  // compiled, current (its page's generation), and no longer than the budget left
  c.get(E).mem(OP.i32Load, 2, E_FN).tee(FN).i32c(0).op(OP.i32LeS); none();
  c.get(E).mem(OP.i32Load16U, 1, E_GEN).get(HOST).i32c(12).op(OP.i32ShrU).i32c(1).op(OP.i32Shl).mem(OP.i32Load16U, 1, JIT_GEN);
  c.op(OP.i32Ne); none();
  c.get(E).mem(OP.i32Load8U, 0, E_LEN).get(LEFT).op(OP.i32GtS); none();
  if (chain) {
    if (count) c.gget(0).i64c(1n).op(OP.i64Add).gset(0);
    c.get(JC).get(TARGET).mem(OP.i64Store, 3, 0);
    c.get(JC).get(FN).get(E).mem(OP.i32Load8U, 0, E_LEN).i32c(24).op(OP.i32Shl).op(OP.i32Or).mem(OP.i32Store, 2, 8);
    c.get(JC).get(KEY).mem(OP.i32Store, 2, 12);
    c.get(LEFT).get(ACC).get(FN).op(OP.returnCallIndirect).u32(0).u32(0);
  } else {
    c.get(FN);
  }
  c.op(OP.end);
  return c;
}
