// The shared-memory channel between a vCPU worker and the device thread (the main thread, which
// owns every device model). One small Int32Array per vCPU on a SharedArrayBuffer: the worker
// writes a request and blocks with Atomics.wait; the device thread, woken by Atomics.waitAsync,
// runs the access on the bus and writes the answer. No objects cross threads, only numbers.
//
// The same block carries the control word (run / pause / stop) and the worker's thread id, which
// the device thread needs to kick a vCPU out of KVM_RUN with a signal.

export const MB_STATE = 0; // MailboxState
export const MB_KIND = 1; // RequestKind
export const MB_ADDR_LO = 2;
export const MB_ADDR_HI = 3;
export const MB_SIZE = 4;
export const MB_DATA_LO = 5;
export const MB_DATA_HI = 6;
export const MB_CONTROL = 8; // Control
export const MB_TID = 9; // Linux thread id of the worker, for tgkill
export const MB_EXITS = 10; // exits seen (all reasons), for metrics
export const MB_IO_EXITS = 11;
export const MB_MMIO_EXITS = 12;
export const MB_FORWARDED = 13; // exits forwarded to the device thread
export const MB_WORDS = 16;

export const enum MailboxState { Idle = 0, Request = 1, Response = 2 }
export const enum RequestKind { PioIn = 1, PioOut = 2, MmioRead = 3, MmioWrite = 4 }
export const enum Control { Run = 0, Pause = 1, Stop = 2 }

export function createMailbox(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(MB_WORDS * 4));
}
