/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. Physical memory, paging and the software TLB.
//
// Physical addresses map to RAM through the region table the host writes at O_REGIONS (the same
// regions as GuestMemory); anything else is MMIO and goes to the host bus (which answers all
// ones when nothing claims it). ROM is read like RAM; writes to it go to the bus.
//
// Linear addresses are translated by the page walk of SDM vol. 3A chapter 4: 32-bit paging
// (4.3, with PSE 4 MiB pages), PAE paging (4.4) and 4-level paging (4.5), with the access rights
// of 4.6 (U/S, R/W with CR0.WP, XD with EFER.NXE), accessed/dirty flags (4.8) and page-fault
// error codes (4.7). Successful translations of RAM pages are cached in direct-mapped TLBs,
// one per access kind (read, write, fetch) and privilege (supervisor, user), so a hit costs
// one compare; a write entry exists only once the dirty flag is set. MOV CR3 flushes all but
// global entries, INVLPG one page (4.10.4).

import {
  S, O_REGIONS, O_TLB, O_FILL_LOG, O_CR3, O_CR2, ld64, st64, cr0, cr4, efer, pagingOn, longMode,
  CR0_WP, CR4_PAE, CR4_PSE, CR4_PGE, EFER_NXE,
} from './state';
import { fault, PF } from './fault';
import { mmioRead, mmioWrite } from './host';
import { invalidateWindow } from './decode';
import { jitNoteWrite, jitNewEpoch } from './jit';

export const K_READ: i32 = 0;
export const K_WRITE: i32 = 1;
export const K_FETCH: i32 = 2;

const TLB_BITS: u32 = 12;
const TLB_N: u32 = 1 << TLB_BITS;
const TLB_BYTES: u32 = 0x11000; // tags (8 * N) + addends (8 * N) + flags (N)
const TLB_FLAG_GLOBAL: u8 = 1;
const TLB_FLAG_2M: u8 = 2; // filled from a 2 MiB (or 4 MiB) page
const TLB_FLAG_1G: u8 = 4; // filled from a 1 GiB page

// Fill logs. A flush used to visit all 6 x 4096 entries, and an INVLPG did too as soon as one
// entry came from a large page (Linux maps its kernel with them): Linux switches CR3 and toggles
// CR4.PGE thousands of times while booting (text_poke's temporary mm, TLB shootdowns), and each
// scan cost tens of microseconds. Instead every fill appends its (table, index) to a log in the
// state block, so a flush visits only what was filled since; past a log's capacity the next flush
// that needs it scans everything once. Global fills have a log of their own, which only a flush
// of global entries (CR4.PGE toggled, CR0.PG or CR4 paging bits changed) visits: a MOV CR3 leaves
// them, and visiting the kernel's thousands of global entries at each of Linux's ~16,000 CR3
// switches (its text patching's temporary mm) cost more than page-table isolation saved.
// Large-page fills have a third log, for INVLPG. Entries may appear in a log twice, be invalid
// already, or have been refilled since with a translation of the other kind: all harmless (a
// flush checks the global flag of what it finds; invalidating twice is a no-op).
const LOG_CAP: u32 = 4096; // each log: u32 (table << 12 | index) items, from O_FILL_LOG in the state block
const O_GLOBAL_LOG: u32 = O_FILL_LOG + LOG_CAP * 4;
const O_LARGE_LOG: u32 = O_GLOBAL_LOG + LOG_CAP * 4;
let fillCount: u32 = 0;
let fillOverflow: bool = true; // the TLBs' contents are unknown until the first full scan
let globalCount: u32 = 0;
let globalOverflow: bool = true;
let largeCount: u32 = 0;
let largeOverflow: bool = true;

function logFill(t: u32, i: u32, large: bool, global: bool): void {
  const item = (t << 12) | i;
  if (global) {
    if (globalCount < LOG_CAP) store<u32>(S + O_GLOBAL_LOG + (globalCount++ << 2), item);
    else globalOverflow = true;
  } else if (fillCount < LOG_CAP) {
    store<u32>(S + O_FILL_LOG + (fillCount++ << 2), item);
  } else {
    fillOverflow = true;
  }
  if (large) logLarge(item);
}

function logLarge(item: u32): void {
  if (largeCount < LOG_CAP) store<u32>(S + O_LARGE_LOG + (largeCount++ << 2), item);
  else largeOverflow = true;
}

function entryBase(item: u32): u32 { return S + O_TLB + (item >> 12) * TLB_BYTES; }
export const MAXPHYADDR: u32 = 40;
const PHYS_MASK: u64 = ((<u64>1 << MAXPHYADDR) - 1) & ~(<u64>0xfff);

/** Physical address of the last translation that ended outside RAM (for the bus). */
export let lastPhys: u64 = 0;

// ---------------------------------------------------------------- physical memory

/** Host offset (in the wasm memory) of [pa, pa+len), or -1 when it is not all RAM/ROM. */
export function physToHost(pa: u64, len: u32, write: bool): i64 {
  if (pa + <u64>len < pa) return -1; // wraps around the address space (kvmclock.ts passes guest-chosen addresses)
  const n = load<u32>(S + O_REGIONS);
  for (let i: u32 = 0; i < n; i++) {
    const e = S + O_REGIONS + 8 + i * 32;
    const gpa = load<u64>(e);
    const size = load<u64>(e, 8);
    if (pa >= gpa && pa + <u64>len <= gpa + size) {
      if (write && load<u64>(e, 24) != 0) return -1;
      return <i64>(load<u64>(e, 16) + (pa - gpa));
    }
  }
  return -1;
}

/** A 1-, 2-, 4- or 8-byte little-endian value at host address `p` (guest RAM in this memory). */
function loadHost(p: usize, size: i32): u64 {
  if (size == 1) return <u64>load<u8>(p);
  if (size == 2) return <u64>load<u16>(p);
  if (size == 4) return <u64>load<u32>(p);
  return load<u64>(p);
}

function storeHost(p: usize, size: i32, v: u64): void {
  if (size == 1) store<u8>(p, <u8>v);
  else if (size == 2) store<u16>(p, <u16>v);
  else if (size == 4) store<u32>(p, <u32>v);
  else store<u64>(p, v);
}

export function physRead(pa: u64, size: i32): u64 {
  const h = physToHost(pa, <u32>size, false);
  if (h >= 0) {
    return loadHost(<usize>h, size);
  }
  return mmioReadSized(pa, size);
}

export function physWrite(pa: u64, size: i32, v: u64): void {
  const h = physToHost(pa, <u32>size, true);
  if (h >= 0) {
    const p = <usize>h;
    jitNoteWrite(<u32>p);
    storeHost(p, size, v);
    return;
  }
  mmioWriteSized(pa, size, v);
}

export function mmioReadSized(pa: u64, size: i32): u64 {
  if (size == 8) {
    const lo = <u64>mmioRead(<f64>pa, 4);
    const hi = <u64>mmioRead(<f64>(pa + 4), 4);
    return lo | (hi << 32);
  }
  return <u64>mmioRead(<f64>pa, <u32>size);
}

export function mmioWriteSized(pa: u64, size: i32, v: u64): void {
  if (size == 8) {
    mmioWrite(<f64>pa, 4, <u32>v);
    mmioWrite(<f64>(pa + 4), 4, <u32>(v >> 32));
    return;
  }
  mmioWrite(<f64>pa, <u32>size, <u32>v);
}

// ---------------------------------------------------------------- TLB

function tlbBase(kind: i32, user: bool): u32 {
  return S + O_TLB + (<u32>(kind * 2 + (user ? 1 : 0))) * TLB_BYTES;
}

/** Invalidate everything (global too when `all`). */
export function tlbFlush(all: bool): void {
  jitNewEpoch(); // the JIT's jump cache remembers translations (jit.ts)
  if (fillOverflow || (all && globalOverflow)) {
    // scan every entry once; the survivors (global entries, unless `all`) stay in the global log
    // (complete unless it overflowed) and start the large-page log again
    largeCount = 0;
    largeOverflow = false;
    for (let t: u32 = 0; t < 6; t++) {
      const b = S + O_TLB + t * TLB_BYTES;
      for (let i: u32 = 0; i < TLB_N; i++) {
        const f = load<u8>(b + 16 * TLB_N + i);
        if (all || (f & TLB_FLAG_GLOBAL) == 0) store<u64>(b + 8 * i, 0xffffffffffffffff);
        else if ((f & (TLB_FLAG_2M | TLB_FLAG_1G)) != 0 && load<u64>(b + 8 * i) != 0xffffffffffffffff) logLarge((t << 12) | i);
      }
    }
  } else {
    // visit what was filled since the last flush: the non-global fills, and the global ones too
    // when they go
    flushLogged(O_FILL_LOG, fillCount, all);
    if (all) flushLogged(O_GLOBAL_LOG, globalCount, true);
    if (!largeOverflow) {
      let kept: u32 = 0;
      for (let k: u32 = 0; k < largeCount; k++) {
        const item = load<u32>(S + O_LARGE_LOG + (k << 2));
        if (load<u64>(entryBase(item) + 8 * (item & (TLB_N - 1))) != 0xffffffffffffffff) store<u32>(S + O_LARGE_LOG + (kept++ << 2), item);
      }
      largeCount = kept;
    }
  }
  fillCount = 0;
  fillOverflow = false;
  if (all) {
    globalCount = 0;
    globalOverflow = false;
  }
  invalidateFetch();
}

/** Invalidate the entries of the `count` items logged at `log` (global ones only when `all`). */
function flushLogged(log: u32, count: u32, all: bool): void {
  for (let k: u32 = 0; k < count; k++) {
    const item = load<u32>(S + log + (k << 2));
    const b = entryBase(item);
    const i = item & (TLB_N - 1);
    if (all || (load<u8>(b + 16 * TLB_N + i) & TLB_FLAG_GLOBAL) == 0) store<u64>(b + 8 * i, 0xffffffffffffffff);
  }
}

function dropIfInLargePage(b: u32, k: u32, vpn: u64): void {
  const f = load<u8>(b + 16 * TLB_N + k);
  if ((f & (TLB_FLAG_2M | TLB_FLAG_1G)) == 0) return;
  const tag = load<u64>(b + 8 * k);
  const shift: u64 = (f & TLB_FLAG_1G) != 0 ? 18 : 9;
  if ((tag >> shift) == (vpn >> shift)) store<u64>(b + 8 * k, 0xffffffffffffffff);
}

export function tlbFlushPage(lin: u64): void {
  jitNewEpoch();
  const vpn = lin >> 12;
  const i = <u32>vpn & (TLB_N - 1);
  for (let t: u32 = 0; t < 6; t++) {
    const b = S + O_TLB + t * TLB_BYTES;
    if (load<u64>(b + 8 * i) == vpn) store<u64>(b + 8 * i, 0xffffffffffffffff);
  }
  // INVLPG drops every translation of the (large) page containing lin (vol. 3A 4.10.4.1)
  if (largeOverflow) {
    for (let t: u32 = 0; t < 6; t++) {
      const b = S + O_TLB + t * TLB_BYTES;
      for (let k: u32 = 0; k < TLB_N; k++) dropIfInLargePage(b, k, vpn);
    }
  } else {
    for (let k: u32 = 0; k < largeCount; k++) {
      const item = load<u32>(S + O_LARGE_LOG + (k << 2));
      dropIfInLargePage(entryBase(item), item & (TLB_N - 1), vpn);
    }
  }
  invalidateFetch();
}

// ---------------------------------------------------------------- page walk

let walkGlobal: bool = false;
let walkSize: u8 = 0; // TLB_FLAG_2M / TLB_FLAG_1G for large pages

function pageFault(lin: u64, err: u32): void {
  st64(O_CR2, lin);
  fault(PF, err, true);
}

/** Set the accessed (and for the leaf on writes, dirty) flag of a paging entry (vol. 3A 4.8). */
function markEntry(addr: u64, entry: u64, bits: u64, wide: bool): void {
  if ((entry & bits) == bits) return;
  if (wide) physWrite(addr, 8, entry | bits);
  else physWrite(addr, 4, (entry | bits) & 0xffffffff);
}

/**
 * Translate a linear address for an access of `kind`, checking the rights of `user` (CPL 3, or
 * not an implicit supervisor access). Returns the physical address or raises #PF.
 */
export function walk(lin: u64, kind: i32, user: bool): u64 {
  walkGlobal = false;
  walkSize = 0;
  if (!pagingOn) return lin & 0xffffffff;
  const c4 = cr4();
  const nxe = (efer() & EFER_NXE) != 0;
  const write = kind == K_WRITE;
  const fetch = kind == K_FETCH;
  // error code bits (vol. 3A 4.7): P, W/R, U/S, RSVD, I/D
  let err: u32 = (write ? 2 : 0) | (user ? 4 : 0);
  if (fetch && nxe && (c4 & CR4_PAE) != 0) err |= 16;
  let rw = true;
  let us = true;
  let xd = false;
  let phys: u64 = 0;
  let leafAddr: u64 = 0;
  let leaf: u64 = 0;
  // the (at most four) non-leaf entries used, for the accessed flags
  let a1: u64 = 0, e1: u64 = 0, a2: u64 = 0, e2: u64 = 0, a3: u64 = 0, e3: u64 = 0;
  let levels = 0;
  let wide = true;
  const rsvdHigh: u64 = ~((<u64>1 << MAXPHYADDR) - 1) & 0x7fffffffffffffff;
  const xdRsvd: u64 = nxe ? 0 : 0x8000000000000000;
  const cr3 = ld64(O_CR3);

  if ((c4 & CR4_PAE) == 0) {
    // 32-bit paging (vol. 3A 4.3)
    wide = false;
    const pdeAddr = (cr3 & 0xfffff000) | ((lin >> 20) & 0xffc);
    const pde = physRead(pdeAddr, 4);
    if ((pde & 1) == 0) { pageFault(lin, err); return 0; }
    rw = (pde & 2) != 0;
    us = (pde & 4) != 0;
    if ((pde & 0x80) != 0 && (c4 & CR4_PSE) != 0) {
      // 4 MiB page; PDE bits 20:13 are physical address bits 39:32 (PSE-36), bit 21 reserved
      if ((pde & 0x200000) != 0) { pageFault(lin, err | 9); return 0; }
      phys = (pde & 0xffc00000) | (((pde >> 13) & 0xff) << 32) | (lin & 0x3fffff);
      walkSize = TLB_FLAG_1G; // 4 MiB: dropped like a 1 GiB page by INVLPG (a superset)
      leafAddr = pdeAddr;
      leaf = pde;
    } else {
      a1 = pdeAddr; e1 = pde; levels = 1;
      const pteAddr = (pde & 0xfffff000) | ((lin >> 10) & 0xffc);
      const pte = physRead(pteAddr, 4);
      if ((pte & 1) == 0) { pageFault(lin, err); return 0; }
      rw = rw && (pte & 2) != 0;
      us = us && (pte & 4) != 0;
      phys = (pte & 0xfffff000) | (lin & 0xfff);
      leafAddr = pteAddr;
      leaf = pte;
    }
  } else {
    let table: u64;
    let level: i32;
    if (longMode) {
      // 4-level paging (vol. 3A 4.5): PML4E
      const addr = (cr3 & PHYS_MASK) | ((lin >> 36) & 0xff8);
      const e = physRead(addr, 8);
      if ((e & 1) == 0) { pageFault(lin, err); return 0; }
      if ((e & (rsvdHigh | xdRsvd | 0x80)) != 0) { pageFault(lin, err | 9); return 0; }
      rw = (e & 2) != 0;
      us = (e & 4) != 0;
      xd = (e >> 63) != 0;
      a1 = addr; e1 = e; levels = 1;
      table = e & PHYS_MASK;
      level = 3;
    } else {
      // PAE paging (vol. 3A 4.4): the PDPTE has no R/W, U/S or XD
      const addr = (cr3 & 0xffffffe0) | ((lin >> 27) & 0x18);
      const e = physRead(addr, 8);
      if ((e & 1) == 0) { pageFault(lin, err); return 0; }
      if ((e & (rsvdHigh | 0x8000000000000000 | 0x1e6)) != 0) { pageFault(lin, err | 9); return 0; }
      table = e & PHYS_MASK;
      level = 2;
    }
    while (true) {
      const shift = <u64>(12 + 9 * (level - 1));
      const addr = table | (((lin >> shift) & 0x1ff) << 3);
      const e = physRead(addr, 8);
      if ((e & 1) == 0) { pageFault(lin, err); return 0; }
      if ((e & (rsvdHigh | xdRsvd)) != 0) { pageFault(lin, err | 9); return 0; }
      rw = rw && (e & 2) != 0;
      us = us && (e & 4) != 0;
      xd = xd || (e >> 63) != 0;
      if (level == 1 || (e & 0x80) != 0) {
        if (level == 3 && (e & 0x80) != 0) {
          // 1 GiB page: bits 29:13 reserved
          if ((e & 0x3fffe000) != 0) { pageFault(lin, err | 9); return 0; }
          phys = (e & PHYS_MASK & ~(<u64>0x3fffffff)) | (lin & 0x3fffffff);
          walkSize = TLB_FLAG_1G;
        } else if (level == 2) {
          if ((e & 0x1fe000) != 0) { pageFault(lin, err | 9); return 0; }
          phys = (e & PHYS_MASK & ~(<u64>0x1fffff)) | (lin & 0x1fffff);
          walkSize = TLB_FLAG_2M;
        } else {
          phys = (e & PHYS_MASK) | (lin & 0xfff);
        }
        leafAddr = addr;
        leaf = e;
        break;
      }
      if (levels == 0) { a1 = addr; e1 = e; } else if (levels == 1) { a2 = addr; e2 = e; } else { a3 = addr; e3 = e; }
      levels++;
      table = e & PHYS_MASK;
      level--;
    }
  }
  // access rights (vol. 3A 4.6)
  if (user && !us) { pageFault(lin, err | 1); return 0; }
  if (write && !rw && (user || (cr0() & CR0_WP) != 0)) { pageFault(lin, err | 1); return 0; }
  if (fetch && xd && nxe) { pageFault(lin, err | 1); return 0; }
  if (levels > 0) markEntry(a1, e1, 0x20, wide);
  if (levels > 1) markEntry(a2, e2, 0x20, wide);
  if (levels > 2) markEntry(a3, e3, 0x20, wide);
  markEntry(leafAddr, leaf, write ? 0x60 : 0x20, wide);
  walkGlobal = (leaf & 0x100) != 0 && (c4 & CR4_PGE) != 0;
  return phys;
}

/**
 * Host offset for a linear address (filling the TLB), or -1 when it is not RAM (then
 * `lastPhys` holds the physical address for the bus).
 */
export function translateSlow(lin: u64, kind: i32, user: bool): i64 {
  const pa = walk(lin, kind, user);
  const h = physToHost(pa & ~(<u64>0xfff), 4096, kind == K_WRITE);
  if (h < 0) {
    lastPhys = pa;
    return -1;
  }
  if (kind == K_WRITE) jitNoteWrite(<u32>h); // compiled code on this page is now stale (jit.ts)
  const vpn = lin >> 12;
  const b = tlbBase(kind, user);
  const i = <u32>vpn & (TLB_N - 1);
  store<u64>(b + 8 * i, vpn);
  store<u64>(b + 8 * TLB_N + 8 * i, <u64>h - (vpn << 12));
  store<u8>(b + 16 * TLB_N + i, (walkGlobal ? TLB_FLAG_GLOBAL : 0) | walkSize);
  logFill(<u32>(kind * 2 + (user ? 1 : 0)), i, walkSize != 0, walkGlobal);
  return <i64>(<u64>h + (lin & 0xfff));
}

/** The host address of `lin` when the TLB of `kind` has it, else -1 (no walk, so no fault). */
export function translateHit(lin: u64, kind: i32, user: bool): i64 {
  const vpn = lin >> 12;
  const b = tlbBase(kind, user);
  const i = <u32>vpn & (TLB_N - 1);
  if (load<u64>(b + 8 * i) == vpn) return <i64>(lin + load<u64>(b + 8 * TLB_N + 8 * i));
  return -1;
}

export function translate(lin: u64, kind: i32, user: bool): i64 {
  const h = translateHit(lin, kind, user); // host addresses are below 4 GiB: never negative
  return h >= 0 ? h : translateSlow(lin, kind, user);
}

// ---------------------------------------------------------------- linear accesses

// Lin.read and Lin.write are the TLB-hit path of a linear access, inlined into the interpreter's
// operand accessors (decode.ts, interp.ts): the common case, RAM within one page, is a few loads;
// crossings, misses and MMIO go through readLinSlow / writeLinSlow, out of line. (Inlining them
// measured +10 % on the interpreter.) Static methods only so that AssemblyScript's @inline
// applies (the TypeScript the linter parses allows decorators on class members only). readLin
// and writeLin are the same as calls, for everything else.
export class Lin {
  @inline static read(lin: u64, size: i32, user: bool): u64 {
    if ((<u32>lin & 0xfff) <= <u32>(0x1000 - size)) {
      const vpn = lin >> 12;
      const b = tlbBase(K_READ, user);
      const i = <u32>vpn & (TLB_N - 1);
      if (load<u64>(b + 8 * i) == vpn) return loadHost(<usize>(lin + load<u64>(b + 8 * TLB_N + 8 * i)), size);
    }
    return readLinSlow(lin, size, user);
  }

  @inline static write(lin: u64, size: i32, v: u64, user: bool): void {
    if ((<u32>lin & 0xfff) <= <u32>(0x1000 - size)) {
      const vpn = lin >> 12;
      const b = tlbBase(K_WRITE, user);
      const i = <u32>vpn & (TLB_N - 1);
      if (load<u64>(b + 8 * i) == vpn) {
        storeHost(<usize>(lin + load<u64>(b + 8 * TLB_N + 8 * i)), size, v);
        return;
      }
    }
    writeLinSlow(lin, size, v, user);
  }
}

export function readLin(lin: u64, size: i32, user: bool): u64 { return Lin.read(lin, size, user); }
export function writeLin(lin: u64, size: i32, v: u64, user: bool): void { Lin.write(lin, size, v, user); }

function readLinSlow(lin: u64, size: i32, user: bool): u64 {
  if ((<u32>lin & 0xfff) > <u32>(0x1000 - size)) {
    // crosses a page: byte by byte (both pages are checked before anything is returned)
    let v: u64 = 0;
    for (let k = 0; k < size; k++) {
      const sh = <u64>(8 * k);
      v |= readLinSlow(lin + <u64>k, 1, user) << sh;
    }
    return v;
  }
  const h = translate(lin, K_READ, user);
  if (h >= 0) {
    return loadHost(<usize>h, size);
  }
  return mmioReadSized(lastPhys, size);
}

function writeLinSlow(lin: u64, size: i32, v: u64, user: bool): void {
  if ((<u32>lin & 0xfff) > <u32>(0x1000 - size)) {
    // crosses a page: check that both pages are writable first, so a fault leaves memory unchanged
    // (the second check is at the first byte of the second page: a #PF there reports that byte in
    // CR2, the linear address whose access caused the fault, SDM vol. 3A 4.7 / 6.15 "Interrupt 14")
    translate(lin, K_WRITE, user);
    translate((lin + <u64>(size - 1)) & ~(<u64>0xfff), K_WRITE, user);
    for (let k = 0; k < size; k++) writeLinSlow(lin + <u64>k, 1, v >> (<u64>(8 * k)), user);
    return;
  }
  const h = translate(lin, K_WRITE, user);
  if (h >= 0) {
    storeHost(<usize>h, size, v);
    return;
  }
  mmioWriteSized(lastPhys, size, v);
}

/** Check that a write would succeed (for instructions that must not fault half-way). */
export function probeWrite(lin: u64, size: i32, user: bool): void {
  translate(lin, K_WRITE, user);
  // the second page is checked at its first byte, which a #PF reports in CR2 (SDM vol. 3A 4.7)
  if ((<u32>lin & 0xfff) > <u32>(0x1000 - size)) translate((lin + <u64>(size - 1)) & ~(<u64>0xfff), K_WRITE, user);
}

// ---------------------------------------------------------------- instruction fetch

let fetchVpn: u64 = 0xffffffffffffffff;
let fetchAdd: u64 = 0;

export function invalidateFetch(): void {
  fetchVpn = 0xffffffffffffffff;
  invalidateWindow();
}

/** Host address of a linear code address that fetchLin8 just translated (RAM), or -1. */
export function fetchHost(lin: u64): i64 {
  if ((lin >> 12) == fetchVpn) return <i64>(lin + fetchAdd);
  return -1;
}

export function fetchLin8(lin: u64, user: bool): u32 {
  if ((lin >> 12) == fetchVpn) return <u32>load<u8>(<usize>(lin + fetchAdd));
  const h = translate(lin, K_FETCH, user);
  if (h < 0) return <u32>mmioReadSized(lastPhys, 1);
  fetchVpn = lin >> 12;
  fetchAdd = <u64>h - lin;
  return <u32>load<u8>(<usize>h);
}

/** Flush everything when paging/mode settings change. */
export function mmuReset(): void {
  tlbFlush(true);
}
