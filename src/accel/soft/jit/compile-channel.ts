// How the CPU's thread hands batches to the compiler thread: a ring of 32-bit words in a
// SharedArrayBuffer and a futex-style wake-up (Atomics.notify / Atomics.wait). A MessagePort
// would do the same, but postMessage measured ~170 µs per batch on the CPU's thread while the
// compiler thread was busy (~0.1 s of the boot to Linux's /init); this costs a few stores.
// Replies, which carry WebAssembly.Module objects, still travel by MessagePort (see jit.ts poll).
//
// Words: [0] batches posted, [1] replies posted, [2] ring words written, [3] ring words consumed,
// then the ring. A batch is [id, siblingMinRuns, n] and n items of [e, host, cpl, gen, rip low,
// rip high].

import type { BatchItem } from './batch.js';

const POSTED = 0, REPLIES = 1, HEAD = 2, TAIL = 3, RING = 8;
const RING_WORDS = 1 << 14;
const ITEM_WORDS = 6;

/** One batch as the compiler thread reads it. */
export interface CompileRequest { id: number; items: BatchItem[]; siblingMinRuns: number }

export class CompileChannel {
  readonly words: Int32Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer((RING + RING_WORDS) * 4)) {
    this.words = new Int32Array(buffer);
  }

  get buffer(): SharedArrayBuffer { return this.words.buffer as SharedArrayBuffer; }

  /** CPU's thread: post a batch and wake the compiler thread; false when the ring has no room. */
  post(req: CompileRequest): boolean {
    const w = this.words;
    const need = 3 + req.items.length * ITEM_WORDS;
    let head = w[HEAD]!;
    if (head - Atomics.load(w, TAIL) + need > RING_WORDS) return false;
    const put = (x: number) => { w[RING + (head & (RING_WORDS - 1))] = x; head++; };
    put(req.id);
    put(req.siblingMinRuns);
    put(req.items.length);
    for (const it of req.items) {
      put(it.e);
      put(it.host);
      put(it.cpl);
      put(it.gen);
      put(Number(it.rip & 0xffffffffn));
      put(Number(it.rip >> 32n));
    }
    Atomics.store(w, HEAD, head);
    Atomics.add(w, POSTED, 1);
    Atomics.notify(w, POSTED);
    return true;
  }

  /** Compiler thread: the next batch, waiting for one when `taken` batches were all read. */
  private take(taken: number): CompileRequest {
    const w = this.words;
    while (Atomics.load(w, POSTED) === taken) Atomics.wait(w, POSTED, taken);
    let tail = w[TAIL]!;
    const get = () => w[RING + (tail++ & (RING_WORDS - 1))]!;
    const id = get();
    const siblingMinRuns = get();
    const n = get();
    const items: BatchItem[] = [];
    for (let i = 0; i < n; i++) {
      const e = get(), host = get() >>> 0, cpl = get(), gen = get();
      const lo = get() >>> 0, hi = get() >>> 0;
      items.push({ e, host, cpl, gen, rip: (BigInt(hi) << 32n) | BigInt(lo), count: 0 });
    }
    Atomics.store(w, TAIL, tail);
    return { id, items, siblingMinRuns };
  }

  /** Compiler thread: whether a batch is waiting after the `taken` read so far (without waiting). */
  pending(taken: number): boolean {
    return Atomics.load(this.words, POSTED) > taken;
  }

  /**
   * Compiler thread: the next batch (waiting for one) and whatever else is already posted, up to
   * `max` batches in all, to be compiled together. `taken`: batches read so far (the caller adds
   * the length of the result).
   */
  takeAll(taken: number, max: number): CompileRequest[] {
    const out = [this.take(taken)];
    while (Atomics.load(this.words, POSTED) > taken + out.length && out.length < max) out.push(this.take(taken + out.length));
    return out;
  }

  /** Compiler thread: a reply was posted. */
  replied(): void { Atomics.add(this.words, REPLIES, 1); }

  /** CPU's thread: replies posted so far. */
  replies(): number { return Atomics.load(this.words, REPLIES); }
}
