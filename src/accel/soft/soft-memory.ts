// Guest memory for the software CPU. The core is WebAssembly, so guest RAM must live inside its
// (shared) WebAssembly.Memory: this allocates one, reserves the front for the vCPU state blocks
// and TLBs, and wraps the rest in an ordinary GuestMemory (the buffer is a SharedArrayBuffer, so
// device models, workers and even KVM can use it like any other guest memory).
// The VMM must allocate through here for --accel soft; SoftCpu refuses other memories.

import { GuestMemory, GuestMemoryError, MiB } from '../../memory/guest-memory.js';
import { GUEST_BASE, WASM_PAGE } from './layout.js';

/** A WebAssembly.Memory as far as this module needs it (lib ES2024 has no wasm typings). */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}

interface WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** wasm32 addresses at most 4 GiB, the state area included. */
export const MAX_SOFT_GUEST_BYTES = 4 * 1024 * MiB - GUEST_BASE;

export function allocateSoftMemory(ramSize: number, romSize = 0): GuestMemory {
  const total = ramSize + romSize;
  if (total > MAX_SOFT_GUEST_BYTES) {
    throw new GuestMemoryError(
      `the software CPU addresses at most ${Math.floor(MAX_SOFT_GUEST_BYTES / MiB)} MiB of guest RAM+ROM; ask for less with --memory`,
    );
  }
  const pages = Math.ceil((GUEST_BASE + total) / WASM_PAGE);
  let memory: WasmMemory;
  try {
    memory = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
  } catch {
    throw new GuestMemoryError(`cannot allocate ${Math.round(total / MiB)} MiB of guest memory for the software CPU`);
  }
  return new GuestMemory(ramSize, romSize, { buffer: memory.buffer as SharedArrayBuffer, base: GUEST_BASE, wasmMemory: memory });
}

/** The wasm memory behind a GuestMemory from allocateSoftMemory (GuestMemory.wasmMemory), or undefined. */
export function wasmMemoryOf(mem: GuestMemory): WasmMemory | undefined {
  return mem.base === GUEST_BASE ? mem.wasmMemory as WasmMemory | undefined : undefined;
}
