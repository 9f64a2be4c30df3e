// The core's block table as the host reads it (layout and hash: src/accel/soft/as/jit.ts; keep the
// two in sync, test/soft/jit.test.ts checks that `countingRuns` agrees with the core's jitCount).
// The compiler thread reads it to pick same-page branch targets worth compiling along with a hot
// block; the table lives in the shared wasm memory, so it reads it while the CPU runs (a racy read
// only makes that choice a little better or worse, it cannot make a block wrong).

import { JIT_AREA } from '../layout.js';

export const JIT_QUEUE = JIT_AREA.QUEUE;
export const JIT_TABLE = JIT_AREA.TABLE;
export const JIT_EPOCH = JIT_AREA.EPOCH;
export const JIT_JUMP_CACHE = JIT_AREA.JUMP_CACHE;
export const JIT_GEN = JIT_AREA.GEN;
/** Entry fields (byte offsets in a 32-byte entry). */
export const E_RIP = 0, E_HOST = 8, E_FN = 12, E_GEN = 16, E_CPL = 18, E_LEN = 19, E_HOTN = 20;
/** Bytes per entry, ways per set. */
const ENTRY = 32, WAYS = 4;

/** Address of the first entry of the set where a block starting at `rip` lives (as/jit.ts slot()). */
export function setOf(rip: bigint): number {
  const lo = Number(rip & 0xffffffffn);
  const x = (lo ^ Number((rip >> 29n) & 0xffffffffn)) >>> 0;
  return JIT_TABLE + ((Math.imul(x, 0x9e3779b1) >>> 19) << 7);
}

/**
 * How often the start (rip, host, cpl) ran while counting towards compilation, or -1 when the
 * table has no counting entry for it (never seen, forgotten, queued, compiled or refused).
 */
export function countingRuns(view: DataView, rip: bigint, host: number, cpl: number): number {
  const set = setOf(rip);
  for (let w = 0; w < WAYS; w++) {
    const e = set + w * ENTRY;
    if (view.getBigUint64(e + E_RIP, true) !== rip || view.getUint32(e + E_HOST, true) !== host || view.getUint8(e + E_CPL) !== cpl) continue;
    return view.getInt32(e + E_FN, true) === 0 ? view.getUint32(e + E_HOTN, true) : -1;
  }
  return -1;
}
