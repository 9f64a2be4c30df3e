 
// AssemblyScript. Raising exceptions from the middle of an instruction.
//
// A fault must leave the architectural state as it was before the instruction (SDM vol. 3A
// 6.5: faults are reported with the saved RIP pointing at the faulting instruction). The
// interpreter commits registers only after the accesses that can fault, so raising a fault just
// records it and unwinds the whole wasm call with a trap; the host catches the trap and calls
// deliverPending() (except.ts), which delivers it through the IDT and resumes.

export const DE: i32 = 0;
export const DB: i32 = 1;
export const NMI: i32 = 2;
export const BP: i32 = 3;
export const OF: i32 = 4;
export const BR: i32 = 5;
export const UD: i32 = 6;
export const NM: i32 = 7;
export const DF: i32 = 8;
export const TS: i32 = 10;
export const NP: i32 = 11;
export const SSF: i32 = 12;
export const GP: i32 = 13;
export const PF: i32 = 14;
export const MF: i32 = 16;
export const AC: i32 = 17;
export const XM: i32 = 19;

/** Vector waiting for delivery, or -1. */
export let pendVector: i32 = -1;
export let pendErr: u32 = 0;
export let pendHasErr: bool = false;
/** Set when the core stopped on something it cannot do (the host reports an error). */
export let unsupported: i32 = 0;

export function clearPending(): void { pendVector = -1; }

/** Record the fault and unwind (the host delivers it). Never returns. */
export function fault(vector: i32, err: u32, hasErr: bool): void {
  pendVector = vector;
  pendErr = err;
  pendHasErr = hasErr;
  unreachable(); // RIP is still the faulting instruction's (state.ts rip)
}

export function gp(err: u32): void { fault(GP, err, true); }
export function ud(): void { fault(UD, 0, false); }

/** Stop with an error for something not implemented (the host reads O_EXIT_*). */
export function stopUnsupported(code: i32): void {
  unsupported = code;
  unreachable();
}
export function clearUnsupported(): void { unsupported = 0; }
