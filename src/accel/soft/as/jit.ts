/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. The core's half of the JIT (the compiler itself is TypeScript:
// src/accel/soft/jit/). Hot 64-bit guest code is compiled to wasm functions that live in the
// function table the core imports ("env.table"); this file finds them and calls them.
//
// Block cache: a four-way set-associative table keyed by (RIP, host address of the code byte, CPL).
// (Direct-mapped, ~3 M lookups on the way to Linux's /init found their slot taken by another live
// block and stayed interpreted; two-way, some boots still had three hot starts fighting over one
// set, ~8 M instructions interpreted, while others had none: 4.5 vs 5.3 s.) The host
// address is where the guest-physical code lives in this wasm memory, found through the fetch TLB,
// so a block is reused only for the same linear address mapped to the same physical page.
// An entry first counts executions (interpreted); at JIT_HOT it is queued, and the host compiles
// the queue in one wasm module (jitFlush) and writes the table index back into the entry.
//
// Self-modifying code: each host page has a 16-bit generation. A page that holds compiled code has
// an odd generation and no write-TLB entry (jitMarkPage drops them), so every write to it takes the
// TLB fill path (mmu.translateSlow), which makes the generation even again: every block compiled
// from the page is then stale (its entry remembers the generation it was compiled under). Compiled
// code itself only writes through write-TLB hits, so it never writes a page with live code.
//
// Compiled blocks never fault: every memory access checks the TLB inline and, on a miss, a page
// crossing or anything unusual, the block returns before that instruction has changed anything
// (a "side exit"); the interpreter then executes that one instruction, faults and all.
// A block returns n >= 0 (n instructions retired, RIP set to the next one) or -(n + 1) for a side
// exit after n instructions (RIP set to the instruction the interpreter must execute).
//
// Memory used (only vCPU 0 runs the JIT; the area between the state blocks and GUEST_BASE):
//   JIT_QUEUE  0x410000  u32 count, then u32 entry addresses waiting for the compiler
//   JIT_WHY    0x418000  u64 counters for the statistics (jitInterpretedAfter)
//   JIT_EPOCH  0x41f000  u32, changed by whatever may make the chain trampoline's jump cache wrong
//   JIT_TABLE  0x420000  JIT_N entries of 32 bytes (layout below)
//   (0x520000: the chain trampoline's jump cache, 4096 x 16 bytes, src/accel/soft/jit/jit.ts)
//   JIT_GEN    0x600000  u16 generation per 4 KiB host page (up to 4 GiB: 2 MiB, up to GUEST_BASE)

import { S, rip, cpl, O_TLB, O_INTR_REQUEST } from './state';
import { jitFlush } from './host';
import { translate, K_FETCH } from './mmu';

export const JIT_QUEUE: u32 = 0x410000;
export const JIT_QUEUE_MAX: u32 = 128;
/** u64 counters of jitInterpretedAfter (after the queue's 4 + 4 * JIT_QUEUE_MAX bytes). */
const JIT_WHY: u32 = 0x418000;
/**
 * u32 bumped whenever a translation the chain trampoline's jump cache relied on may have changed:
 * a TLB flush, a write to a code page, the block table reset (src/accel/soft/jit/jit.ts).
 */
const JIT_EPOCH: u32 = 0x41f000;
export function jitNewEpoch(): void { store<u32>(JIT_EPOCH, load<u32>(JIT_EPOCH) + 1); }
export const JIT_TABLE: u32 = 0x420000;
export const JIT_N: u32 = 1 << 15;
export const JIT_GEN: u32 = 0x600000;
/** Executions of a block start before it is queued for compilation. */
let JIT_HOT: u32 = 400; // the host sets it (src/accel/soft/jit/jit.ts DEFAULT_HOT)
/** Executions a compiled block whose page was written runs interpreted before it is queued again. */
const RECOUNT: u32 = 16;
/** Run slices a non-empty queue may wait before it is compiled though not full (0: compile at once). */
let JIT_WAIT: u32 = 16;

/** Tuning (tests compile everything at once: hot 1, wait 0). */
export function jitTune(hot: u32, wait: u32): void {
  JIT_HOT = hot < 1 ? 1 : hot;
  JIT_WAIT = wait;
}
let waited: u32 = 0;

// entry layout (byte offsets)
const E_RIP: u32 = 0; // u64
const E_HOST: u32 = 8; // u32 host address of the first code byte
const E_FN: u32 = 12; // i32: > 0 table index; 0 counting; -1 queued; -2 the compiler refused
const E_GEN: u32 = 16; // u16 page generation the block was compiled under
const E_CPL: u32 = 18; // u8
const E_LEN: u32 = 19; // u8 instructions in the block (at most)
const E_HOTN: u32 = 20; // u32 execution count while not compiled

// TLB geometry (mirrors mmu.ts)
const TLB_N: u32 = 4096;
const TLB_BYTES: u32 = 0x11000;

export let jitOn: bool = false;
/** Set by jitTry when the block ended with a side exit (the interpreter takes the next instruction). */
export let jitSide: bool = false;
/** Set by jitTry when RIP starts no block because its first instruction cannot be compiled: the
 * instruction after it may start one (the run loop looks it up). */
export let jitRefusedHere: bool = false;
/**
 * Why the last lookup ran nothing (WHY_*), for the statistics: the instructions interpreted until
 * the next lookup are charged to it (jitNoteInterpreted), which shows what keeps code interpreted.
 */
export let jitWhy: i32 = 0;
export const WHY_OTHER: i32 = 0; // no lookup yet (or below 64-bit mode, where there are none)
export const WHY_TLB_MISS: i32 = 1; // the fetch TLB has no entry for RIP
export const WHY_BUSY: i32 = 2; // every way of the set holds a compiled or queued block
export const WHY_NEW: i32 = 3; // a start seen for the first time
export const WHY_BUDGET: i32 = 4; // the block is longer than the budget left
export const WHY_STALE: i32 = 5; // its page was written since it was compiled
export const WHY_COUNTING: i32 = 6; // not hot yet
export const WHY_QUEUED: i32 = 7; // hot, waiting for the compiler or V8
export const WHY_REFUSED: i32 = 8; // its first instruction cannot be compiled
export const WHY_SIDE: i32 = 9; // the instruction a block stopped before
const WHY_N: i32 = 10;
let whyMark: u64 = 0;

/** Charge the instructions interpreted since the last lookup (`interpreted`: the running total). */
export function jitNoteInterpreted(interpreted: u64): void {
  const a = JIT_WHY + (<u32>jitWhy << 3);
  store<u64>(a, load<u64>(a) + interpreted - whyMark);
  whyMark = interpreted;
}

/** Instructions interpreted after lookups that ended with `why` (WHY_*). */
export function jitInterpretedAfter(why: i32): f64 {
  return why >= 0 && why < WHY_N ? <f64>load<u64>(JIT_WHY + (<u32>why << 3)) : 0;
}

export function jitEnable(on: bool): void {
  jitOn = on;
  memory.fill(JIT_TABLE, 0, JIT_N * 32);
  jitNewEpoch();
  store<u32>(JIT_QUEUE, 0);
}

/** Ways per set of the block table. */
const JIT_WAYS: u32 = 4;

/** The first entry of the set where a block starting at `r` lives (sets of JIT_WAYS entries). */
function slot(r: u64): u32 {
  const x = <u32>r ^ <u32>(r >> 29);
  return JIT_TABLE + (((x * 0x9e3779b1) >> 19) << 7);
}

function pageGen(host: u32): u32 { return <u32>load<u16>(JIT_GEN + ((host >> 12) << 1)); }

/**
 * Whether the host prints the JIT's statistics (TSVM_SOFT_JIT_STATS): the counters updated at
 * every lookup (jitCalls, jitRuns) and the instructions charged to each lookup's outcome
 * (jitNoteInterpreted) are kept only then, off the run loop's path otherwise.
 */
export let jitStats: bool = false;
export function jitStatsOn(on: bool): void { jitStats = on; }
/** Counters for tuning: calls of jitTry, blocks it ran, fetch-TLB misses, entries claimed, side exits. */
export let jitCalls: u64 = 0;
export let jitRuns: u64 = 0;
export let jitTlbMiss: u64 = 0;
export let jitClaims: u64 = 0;
export let jitSides: u64 = 0;
/** Blocks entered by a tail call from another block (jitLookup). */
export let jitChained: u64 = 0;
/** Code pages made stale by a write (guest writes through the TLB fill path or physWrite). */
export let jitInvalidations: u64 = 0;

/** Host address of the code byte at RIP `r` through the fetch TLB, or -1 when it has no entry. */
function codeHost(r: u64): i64 {
  const vpn = r >> 12;
  const tb = S + O_TLB + (4 + (cpl == 3 ? 1 : 0)) * TLB_BYTES; // fetch TLB (K_FETCH = 2)
  const i = (<u32>vpn & (TLB_N - 1)) << 3;
  if (load<u64>(tb + i) != vpn) return -1;
  return <i64>(<u32>(r + load<u64>(tb + TLB_N * 8 + i)));
}

/**
 * Run the compiled block at RIP if there is one (64-bit mode; the caller checked). Returns the
 * instructions retired, or -1 when nothing ran. `left` is the budget: a longer block is not run.
 */
export function jitTry(left: i32): i32 {
  jitSide = false;
  jitRefusedHere = false;
  if (jitStats) jitCalls++;
  const r = rip();
  let h = codeHost(r);
  if (h < 0) {
    // Fill the fetch TLB as the instruction's own fetch would, then look again (else the code
    // after a TLB flush ran interpreted up to the next lookup: ~1 M instructions to Linux's
    // /init). A page fault here is the one that fetch would raise, for the same RIP.
    jitTlbMiss++;
    translate(r, K_FETCH, cpl == 3);
    h = codeHost(r);
    if (h < 0) { jitWhy = WHY_TLB_MISS; return -1; }
  }
  const host = <u32>h;
  let e = Sets.find(r, host, <u8>cpl);
  if (e == 0) {
    // a new start: take the way of the set that is cheapest to lose (see victim)
    e = victim(slot(r));
    if (e == 0) { jitWhy = WHY_BUSY; return -1; }
    jitClaims++;
    claim(e, r, host, cpl);
    store<i32>(e, 0, E_FN);
    store<u32>(e, 1, E_HOTN);
    if (JIT_HOT <= 1 && enqueue(e)) return runEntry(e, host, left);
    jitWhy = WHY_NEW;
    return -1;
  }
  const fn = load<i32>(e, E_FN);
  if (fn > 0) {
    if (<u32>load<u16>(e, E_GEN) == pageGen(host)) {
      if (<i32>load<u8>(e, E_LEN) > left) { jitWhy = WHY_BUDGET; return -1; }
      if (jitStats) jitRuns++;
      const n = call_indirect<i32>(<u32>fn, left, 0);
      if (n >= 0) return n;
      jitSide = true;
      jitWhy = WHY_SIDE;
      jitSides++;
      return -n - 1;
    }
    // The page was written since: count again, but from near the threshold. The block was hot,
    // and Linux's boot-time text patching (~95,000 sites, on most pages of its text) invalidates
    // the pages of its own hot code again and again: recounting from 1 interpreted ~0.8 M
    // instructions on the way to /init. A page rewritten between every few runs (code next to
    // data) still waits RECOUNT runs per compile.
    store<i32>(e, 0, E_FN);
    store<u32>(e, JIT_HOT > RECOUNT ? JIT_HOT - RECOUNT : 1, E_HOTN);
    jitWhy = WHY_STALE;
    return -1;
  }
  jitWhy = fn == 0 ? WHY_COUNTING : fn == -1 ? WHY_QUEUED : WHY_REFUSED;
  if (fn == 0) {
    const h = load<u32>(e, E_HOTN) + 1;
    store<u32>(e, h, E_HOTN);
    if (h >= JIT_HOT && enqueue(e)) return runEntry(e, host, left);
  } else if (fn == -2) {
    if (<u32>load<u16>(e, E_GEN) != pageGen(host)) {
      store<i32>(e, 0, E_FN); // refused before the page changed: try again
      store<u32>(e, 1, E_HOTN);
    } else {
      jitRefusedHere = true;
    }
  }
  return -1;
}

/** The lookup of jitTry (the run loop's hot path), jitLookup, jitCount and jitPut, as a class only so that it can be inlined. */
class Sets {
  /** The entry of the set of `r` that holds (r, host, CPL c), or 0 (the four ways unrolled). */
  @inline static find(r: u64, host: u32, c: u8): u32 {
    const e = slot(r);
    if (Sets.holds(e, r, host, c)) return e;
    if (Sets.holds(e + 32, r, host, c)) return e + 32;
    if (Sets.holds(e + 64, r, host, c)) return e + 64;
    if (Sets.holds(e + 96, r, host, c)) return e + 96;
    return 0;
  }

  /** Whether entry `e` is the block table's entry for (r, host, CPL c). */
  @inline static holds(e: u32, r: u64, host: u32, c: u8): bool {
    return load<u64>(e, E_RIP) == r && load<u32>(e, E_HOST) == host && load<u8>(e, E_CPL) == c;
  }
}

/** Entry `e` now belongs to the start (r, host, CPL c); the caller sets its state. */
function claim(e: u32, r: u64, host: u32, c: u32): void {
  store<u64>(e, r, E_RIP);
  store<u32>(e, host, E_HOST);
  store<u8>(e, <u8>c, E_CPL);
}

/**
 * The way of set `set` a new start may take, or 0 when all four hold current compiled blocks or
 * queued ones. Preference: an unused or stale entry, else the counting entry with the fewest
 * executions (so that two starts sharing a set do not keep resetting each other's counts).
 */
function victim(set: u32): u32 {
  let best: u32 = 0;
  let bestHot: u32 = 0xffffffff;
  for (let w: u32 = 0; w < JIT_WAYS; w++) {
    const e = set + (w << 5);
    const fn = load<i32>(e, E_FN);
    if (fn > 0) {
      if (<u32>load<u16>(e, E_GEN) != pageGen(load<u32>(e, E_HOST))) return e; // stale block
      continue;
    }
    if (fn == -1) continue; // queued: the compiler will write its index here
    const hot: u32 = fn == -2 ? 0 : load<u32>(e, E_HOTN); // refused entries only remember a refusal
    if (hot == 0) return e; // unused
    if (hot < bestHot) { best = e; bestHot = hot; }
  }
  return best;
}

/**
 * How often the start (r, host, CPL c) ran while counting towards JIT_HOT, or -1 when the table
 * has no counting entry for it (never seen, forgotten, queued, compiled or refused).
 */
export function jitCount(r: u64, host: u32, c: u32): i32 {
  const e = Sets.find(r, host, <u8>c);
  if (e == 0 || load<i32>(e, E_FN) != 0) return -1;
  return <i32>load<u32>(e, E_HOTN);
}

/**
 * Enter a block the host compiled without it being queued (a branch target compiled along with a
 * hot block): (r, host, CPL c) runs table function `fn`, compiled under page generation `gen`,
 * `len` instructions at most. Returns false when it was not entered: its set has no way to spare,
 * or it is queued (that compilation will enter it) or already compiled and current.
 */
export function jitPut(r: u64, host: u32, c: u32, fn: i32, gen: u32, len: u32): bool {
  let e = Sets.find(r, host, <u8>c);
  if (e != 0) {
    const cur = load<i32>(e, E_FN);
    if (cur == -1 || (cur > 0 && <u32>load<u16>(e, E_GEN) == pageGen(host))) return false;
  } else {
    e = victim(slot(r));
    if (e == 0) return false;
    claim(e, r, host, c);
  }
  store<u32>(e, 0, E_HOTN);
  store<u16>(e, <u16>gen, E_GEN);
  store<u8>(e, <u8>len, E_LEN);
  store<i32>(e, fn, E_FN);
  return true;
}

/** Queue entry `e` for compilation; true when it was compiled right away (JIT_WAIT 0). */
function enqueue(e: u32): bool {
  const q = load<u32>(JIT_QUEUE);
  store<u32>(JIT_QUEUE + 4 + (q << 2), e);
  store<u32>(JIT_QUEUE, q + 1);
  store<i32>(e, -1, E_FN);
  if (q + 1 >= JIT_QUEUE_MAX || JIT_WAIT == 0) {
    jitFlush();
    return true;
  }
  return false;
}

/** Run the block of entry `e` if it is compiled and current (after an immediate compile). */
function runEntry(e: u32, host: u32, left: i32): i32 {
  const fn = load<i32>(e, E_FN);
  if (fn <= 0 || <u32>load<u16>(e, E_GEN) != pageGen(host) || <i32>load<u8>(e, E_LEN) > left) return -1;
  const n = call_indirect<i32>(<u32>fn, left, 0);
  if (n >= 0) return n;
  jitSide = true;
  jitWhy = WHY_SIDE;
  return -n - 1;
}

/**
 * For a compiled block that leaves for `target` (RIP already set) with `left` instructions of
 * budget: the function-table index of the target's compiled block when it is current, fits the
 * budget and no interrupt request is pending (the block then tail-calls it), else 0 (the block
 * returns to the run loop, which delivers the interrupt or looks the target up itself).
 * The chain trampoline (src/accel/soft/jit/jit.ts lookupBody) does exactly this in its own wasm
 * over the shared memory, saving a call into this module per transition; this is the reference
 * its test compares it with. Keep the two in step. (The trampoline also keeps a jump cache of what
 * this lookup found, valid until JIT_EPOCH changes: a TLB flush, a code-page write or a reset.)
 */
export function jitLookup(target: u64, left: i32): i32 {
  if (load<i32>(S + O_INTR_REQUEST) != 0) return 0;
  const h = codeHost(target);
  if (h < 0) return 0;
  const host = <u32>h;
  const e = Sets.find(target, host, <u8>cpl);
  if (e == 0) return 0;
  const fn = load<i32>(e, E_FN);
  if (fn <= 0 || <u32>load<u16>(e, E_GEN) != pageGen(host) || <i32>load<u8>(e, E_LEN) > left) return 0;
  jitChained++;
  return fn;
}

/** Compile whatever is queued (end of a run slice). */
export function jitFlushPending(): void {
  const q = load<u32>(JIT_QUEUE);
  if (q == 0) return;
  if (q >= JIT_QUEUE_MAX / 2 || ++waited >= JIT_WAIT) {
    waited = 0;
    jitFlush();
  }
}

/**
 * The compiler is about to read code from the host page of `host`: make the page a code page
 * (odd generation, no write-TLB entries) and return its generation.
 */
export function jitMarkPage(host: u32): u32 {
  const p = JIT_GEN + ((host >> 12) << 1);
  let g = <u32>load<u16>(p);
  if ((g & 1) != 0) return g;
  if (g >= 0xfffe) {
    // generations wrap: forget every block first so that no old entry can match again
    memory.fill(JIT_TABLE, 0, JIT_N * 32);
    jitNewEpoch();
    g = 0;
  }
  g++;
  store<u16>(p, <u16>g);
  // drop the write-TLB entries (supervisor and user) that point into this page
  const page = host >> 12;
  for (let t: u32 = 2; t < 4; t++) {
    const b = S + O_TLB + t * TLB_BYTES;
    for (let k: u32 = 0; k < TLB_N; k++) {
      const tag = load<u64>(b + 8 * k);
      if (tag == 0xffffffffffffffff) continue;
      const h = <u32>((tag << 12) + load<u64>(b + TLB_N * 8 + 8 * k));
      if ((h >> 12) == page) store<u64>(b + 8 * k, 0xffffffffffffffff);
    }
  }
  return g;
}

/** A write is about to go to host page of `host` through a new write-TLB entry (or physWrite). */
export function jitNoteWrite(host: u32): void {
  const p = JIT_GEN + ((host >> 12) << 1);
  const g = load<u16>(p);
  if ((g & 1) != 0) {
    store<u16>(p, g + 1);
    jitNewEpoch();
    jitInvalidations++;
  }
}
