// A recording of what the JIT compiled during a run (TSVM_SOFT_JIT_RECORD=FILE), for measuring the
// compiler and V8's compile tiers offline on real guest code (bench/jit-compile.ts): the queued
// blocks of every batch in order, and the wasm memory the code was read from, as it was when the
// process exited (guest code the guest rewrote later is read as rewritten; sibling blocks are chosen
// from the block table as it was then).
import { readFileSync, writeFileSync } from 'node:fs';
import type { BatchItem } from './batch.js';

/** A queued block: RIP (hex), host address of its first byte, CPL, page generation. */
export type RecordedBlock = [string, number, number, number];

export interface Recording {
  siblingMinRuns: number;
  batches: RecordedBlock[][];
}

/** Write FILE (the batches, JSON) and FILE.mem (the memory up to the last recorded code page and the one after it). */
export function writeRecording(path: string, rec: Recording, memory: ArrayBufferLike): void {
  let end = 0;
  for (const b of rec.batches) for (const [, host] of b) end = Math.max(end, (host & ~0xfff) + 0x2000);
  writeFileSync(path, JSON.stringify(rec));
  writeFileSync(`${path}.mem`, new Uint8Array(memory, 0, Math.min(end, memory.byteLength)));
}

/** Read a recording; its memory in a SharedArrayBuffer, as the compiler thread sees the VM's. */
export function readRecording(path: string): { rec: Recording; mem: Uint8Array } {
  const rec = JSON.parse(readFileSync(path, 'utf8')) as Recording;
  const bytes = readFileSync(`${path}.mem`);
  const mem = new Uint8Array(new SharedArrayBuffer(bytes.length));
  mem.set(bytes);
  return { rec, mem };
}

/** A recorded batch as compileBatch takes it (no queue entries: nothing is installed). */
export function batchItems(batch: RecordedBlock[]): BatchItem[] {
  return batch.map(([rip, host, cpl, gen]) => ({ e: -1, rip: BigInt(`0x${rip}`), host, cpl, gen, count: 0 }));
}
