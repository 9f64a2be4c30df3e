// The JIT's compiler thread (a worker_threads Worker started by SoftJit). The CPU's thread marks
// the queued blocks' pages as code pages and posts them here (compile-channel.ts); this thread decodes the guest code
// from the shared memory, emits the module (batch.ts), has V8 compile it, and posts the
// WebAssembly.Module back (V8 shares compiled modules between threads of one process). The CPU's
// thread only instantiates it and enters the blocks in the core's block table, between two run
// slices (SoftJit.poll).
//
// Decoding and emitting cost ~4 µs per guest instruction when they ran on the CPU's thread (~0.5 s
// of the Debian kernel's boot to /init; ~1-2 µs since), and V8 adds ~0.2 ms per module; here
// both run on the host's other core.
//
// A guest may rewrite its code while this thread reads it: the page's generation was taken before
// the batch was posted, and a write made it even (stale) at once, so such a block is installed
// stale and never runs. Torn or garbage bytes only make the compiler stop early (it bails on what
// it does not know).

import { workerData, type MessagePort } from 'node:worker_threads';
import { currentThreadId, lowerThreadPriority } from '../helper-threads.js';
import { BlockCompiler } from './compiler.js';
import { countingRuns } from './block-table.js';
import { compileBatch, type BatchItem } from './batch.js';
import { CompileChannel } from './compile-channel.js';
import { warmUp, WARM_UP_MS } from './warm-up.js';

/** What this thread posts back: the batch's blocks (with their lengths) and the compiled module. */
export interface CompileReply {
  /** The batches compiled together (see the loop below). */
  ids: number[];
  items: BatchItem[];
  /** A WebAssembly.Module, or null when nothing compiled. */
  module: object | null;
  bytes: number;
  /** Milliseconds this thread spent on the batch (decode, emit, V8's compile). */
  ms: number;
  /** Instructions compilation stopped at, when statistics level 2 is on (see BlockCompiler.stops). */
  stops?: [string, number][];
  error?: string;
}

/** Batches merged into one module at most (a module holds at most 512 functions anyway). */
const MERGE_MAX = 8;

/** What SoftJit starts the thread with: the VM's memory, the request channel, the reply port. */
interface Setup { memory: { buffer: ArrayBufferLike }; channel: SharedArrayBuffer; port: MessagePort }

interface WasmModuleApi { Module: new (bytes: Uint8Array) => object }
const wasm = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;

const setup = workerData as Setup | null;
if (setup?.port) {
  const { memory, port } = setup;
  const channel = new CompileChannel(setup.channel);
  const compiler = new BlockCompiler(new Uint8Array(memory.buffer));
  if (process.env.TSVM_SOFT_JIT_STATS === '2') compiler.stops = new Map();
  const view = new DataView(memory.buffer);
  lowerThreadPriority(currentThreadId());
  // while the VMM loads the kernel, and until the first batch: see warm-up.ts
  try {
    warmUp(WARM_UP_MS, () => channel.pending(0));
  } catch {
    // a compiler that cannot compile the sample still compiles what it can of the guest's code
  }
  // This thread does nothing else: it blocks in Atomics.wait between batches (no event loop).
  // Whatever was posted while it compiled is compiled next as one module: the CPU's thread posts
  // hot blocks soon after they become hot, and the batches grow by themselves when it posts
  // faster than this thread compiles (fewer modules to instantiate, each block waits less).
  for (let taken = 0; ;) {
    const reqs = channel.takeAll(taken, MERGE_MAX);
    taken += reqs.length;
    const items = reqs.flatMap((r) => r.items);
    const t0 = performance.now();
    let reply: CompileReply;
    try {
      const batch = compileBatch(compiler, items, (rip, host, cpl) => countingRuns(view, rip, host, cpl), reqs[0]!.siblingMinRuns);
      const module = batch.bytes ? new wasm.Module(batch.bytes) : null;
      reply = { ids: reqs.map((r) => r.id), items: batch.items, module, bytes: batch.bytes?.length ?? 0, ms: performance.now() - t0 };
    } catch (err) {
      reply = { ids: reqs.map((r) => r.id), items, module: null, bytes: 0, ms: performance.now() - t0, error: String(err) };
    }
    if (compiler.stops && compiler.stops.size > 0) {
      reply.stops = [...compiler.stops];
      compiler.stops.clear();
    }
    port.postMessage(reply);
    // the CPU's thread checks this counter after every run slice and then takes the reply
    // synchronously (SoftJit.poll), without waiting for its event loop
    channel.replied();
  }
}
