 
// AssemblyScript. The software CPU core's exports (the entry file of the wasm module).
// The TypeScript wrapper (src/accel/soft/soft-cpu.ts) writes the state at S (layout in
// state.ts / layout.ts), calls syncIn(), run() in slices, and syncOut() before reading it.
// A guest fault inside run() unwinds the call with a trap; the wrapper sees pendingVector() >= 0
// and calls deliverPending().

import {
  S, setS, rip, ld64, st64, O_RFLAGS, O_HALTED, O_INTR_REQUEST, O_ICOUNT, O_SHADOW, F_IF, updateMode, F_STATUS,
} from './state';
import { getFlags, setEager, setFlagsOther, flagsOther } from './flags';
import { tlbFlush, invalidateFetch, readLin } from './mmu';
import { Step, stopRun, clearStop, inhibitNext, clearInhibit, requestStop } from './interp';
import { fetch8Slow, setIp } from './decode';
import { pendVector, pendErr, pendHasErr, unsupported, clearUnsupported, clearPending } from './fault';
import { deliverPending as deliver, deliverExternal as external, lastVector, lastError } from './except';
import { setApicId, setApicPresent } from './cpuid';
import { fpuPowerOn } from './fpu';
import { jitOn, jitTry, jitSide, jitRefusedHere, jitFlushPending, jitNoteInterpreted, jitWhy, WHY_BUDGET, jitStats } from './jit';
import { codeBits } from './state';

// What compiled blocks (src/accel/soft/jit/) import from the core: flagsOther (the only hot state
// left in a wasm global; RIP and the lazy flags are in the state block), the lazy-flag helpers and
// the few operations they do not inline. (Blocks and the trampoline read the CPL from the state
// block's copy, O_CPL.)
export { cpl } from './state';
export { flagsOther, cond, getCF, getFlags, patchStatus } from './flags';
export { shift, bitScan } from './alu';
/** The TSC, for RDTSC in compiled blocks (batch.ts FUNCS). */
export { readTsc as rdtsc } from './msr';
/** SYSCALL and SYSRET for compiled blocks (batch.ts FUNCS). */
export { blockSys as sys } from './system';
/** REP MOVS and REP STOS for compiled blocks (batch.ts FUNCS). */
export { blockRepString as rep } from './string';
export { setWallClockBase } from './kvmclock';
export { jitEnable, jitStatsOn, jitMarkPage, jitPut, jitCount, jitTune, jitLookup, jitChained, jitCalls, jitInterpretedAfter, jitRuns, jitTlbMiss, jitClaims, jitSides, jitInvalidations } from './jit';

export const EXIT_BUDGET: i32 = 0;
export const EXIT_HLT: i32 = 1;
export const EXIT_SHUTDOWN: i32 = 2;
export const EXIT_UNSUPPORTED: i32 = 3;
export const EXIT_INTR: i32 = 4;

let icount: u64 = 0;
/** Straight-line instructions interpreted before the run loop looks for a compiled block again (see run). */
const STRAIGHT: i32 = 64;

export function init(stateBase: u32, apicId: u32): void {
  setS(stateBase);
  setApicId(apicId);
  fpuPowerOn();
  tlbFlush(true);
}

/** Load the hot copies from the state block (after the host wrote it; RIP is used in place). */
export function syncIn(): void {
  const f = <u32>ld64(O_RFLAGS);
  setEager(f & F_STATUS);
  setFlagsOther(f);
  const c = ld64(O_ICOUNT);
  icountMoved += c - icount;
  icount = c;
  if (load<i32>(S + O_SHADOW) != 0) clearInhibit();
  updateMode();
  tlbFlush(true);
  invalidateFetch();
}

/** Write the hot copies back to the state block. */
export function syncOut(): void {
  st64(O_RFLAGS, <u64>getFlags());
  st64(O_ICOUNT, icount);
  store<i32>(S + O_SHADOW, inhibitNext ? 1 : 0);
}

function interruptible(): bool {
  return load<i32>(S + O_INTR_REQUEST) != 0 && (flagsOther & F_IF) != 0;
}

/**
 * Instructions retired by compiled blocks, and how far the host moved the count (syncIn): what the
 * run loop interpreted is the rest of the count (jitInterpretedCount, for the JIT's statistics),
 * which saves a counter update per interpreted instruction.
 */
let compiledRetired: u64 = 0;
let icountMoved: u64 = 0;
function interpretedSoFar(): u64 { return icount - compiledRetired - icountMoved; }
/** Instructions the run loop interpreted. */
export function jitInterpretedCount(): f64 { return <f64>interpretedSoFar(); }

/**
 * Execute up to `budget` instructions. Returns an EXIT_* code; EXIT_INTR means an external
 * interrupt can be taken now (the host acknowledges it and calls deliverExternal()).
 */
export function run(budget: i32, exact: bool): i32 {
  clearStop();
  clearUnsupported();
  if (load<i32>(S + O_HALTED) != 0) return interruptible() ? EXIT_INTR : EXIT_HLT;
  let side = false; // the last compiled block stopped before an instruction it cannot run
  // Where a block may start, the JIT looks for one: at branch targets, after a block and after the
  // instruction that follows a block (the one it stopped before). Straight-line interpreted code
  // in between is not looked up, which keeps the lookups (and the block table) for block starts.
  let look = true;
  let afterBlock = false;
  // Straight-line code longer than a compiled block (MAX_INSNS in src/accel/soft/jit/compiler.ts)
  // is looked up again every STRAIGHT instructions and at each new page: where a block compiled
  // from the last lookup would have ended. Without this, a long branch-free function (Linux's
  // unrolled blake2s and sha256 rounds, ~2 M instructions a boot) got one lookup per call at its
  // entry; its later parts were interpreted on every call, each becoming a block start only when
  // a block compiled before it ended there, 150 calls later for each 64 instructions.
  let straight = 0;
  // RIP, kept in a local: Step.run stores it in the state block, and reading it back at the next
  // instruction is a load that waits for that store. Reloaded only after a compiled block ran.
  // The fetch position follows it: an instruction leaves it at the next one (decode.ts setIp).
  let cur = rip();
  setIp(cur);
  for (let n = 0; n < budget;) {
    if (inhibitNext) {
      clearInhibit();
      side = true; // the instruction in the STI / MOV SS shadow runs alone, then interrupts are checked
    } else if (interruptible()) { jitFlushPending(); return EXIT_INTR; }
    if (jitOn && !side && look && codeBits == 64) {
      if (jitStats) jitNoteInterpreted(interpretedSoFar()); // what the last lookup's outcome cost
      const done = jitTry(budget - n);
      if (done >= 0) {
        icount += <u64>done;
        compiledRetired += <u64>done;
        n += done;
        side = jitSide;
        afterBlock = true;
        cur = rip();
        setIp(cur);
        continue;
      }
      if (jitRefusedHere) afterBlock = true; // no block starts here, but maybe right after
      // A compiled block here is longer than the budget left: unless the caller wants exactly
      // `budget` instructions, end the slice early rather than interpret up to a block's worth of
      // instructions (1.3 M on the way to Linux's /init); the next slice runs it. Not when nothing
      // ran yet (a small budget must still make progress).
      else if (!exact && jitWhy == WHY_BUDGET && n > 0) break;
    }
    // after the instruction in an STI / MOV SS shadow (run alone above, without a lookup), look
    // again: it may be the middle of a block that STI ended (Linux's local_irq_enable() at every
    // system call's exit was followed by ~10 interpreted instructions up to the next branch)
    const shadow = side;
    side = false;
    const before = cur;
    cur = Step.run(before); // the RIP it just stored
    // a branch, an instruction after a block or a shadow, a new code page, or STRAIGHT instructions in a row
    look = afterBlock || shadow || cur - before > 15 || ((cur ^ before) >> 12) != 0 || ++straight >= STRAIGHT;
    if (look) straight = 0;
    afterBlock = false;
    icount++;
    n++;
    if (stopRun) { jitFlushPending(); return EXIT_HLT; }
  }
  jitFlushPending();
  return EXIT_BUDGET;
}

/** Make run() return at the next instruction boundary (callable from inside a host import). */
export function requestExit(): void { requestStop(); }

/** Report a local APIC in CPUID (the host wires one up). */
export function setApic(present: bool): void { setApicPresent(present); }

export function pendingVector(): i32 { return pendVector; }
/** Error code of the pending exception, or -1 when it has none. */
export function pendingError(): f64 { return pendHasErr ? <f64>pendErr : -1; }
export function unsupportedCode(): i32 { return unsupported; }
export function clearFault(): void { clearPending(); clearUnsupported(); }
export function instructionCount(): f64 { return <f64>icount; }

/** Deliver the pending exception: 0 done, 2 triple fault (shutdown). */
export function deliverPending(): i32 { return deliver(); }
export function deliverExternal(vec: i32): void { external(vec); }
/** Vector and error code (-1: none) of the last exception deliverPending chose to deliver. */
export function deliveredVector(): i32 { return lastVector; }
export function deliveredError(): i32 { return lastError; }

/** Read a byte at a linear address with supervisor rights (for error messages; may trap). */
export function debugRead8(lin: f64): i32 { return <i32>readLin(<u64>lin, 1, false); }

/** Fetch the code byte at CS:off through the slow path (debugging aid; may trap). */
export function debugFetch8(off: f64): i32 {
  const v = <i32>fetch8Slow(<u64>off);
  setIp(rip());
  return v;
}
