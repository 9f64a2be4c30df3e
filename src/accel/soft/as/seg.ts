/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. Segmentation: linear addresses with the limit and type checks of SDM vol. 3A
// 5.3 and 5.4 (real mode: vol. 3B 20.1), descriptor loads from the GDT/LDT (vol. 3A 3.4, 5.5,
// and the "Operation" sections of MOV/POP/LDS... in vol. 2), and the 64-bit rules (vol. 3A
// 3.4.4, 5.3.1: no limits, FS/GS bases only, canonical addresses).

import {
  S, O_GDTR_BASE, O_GDTR_LIMIT, codeBits, protMode, cpl, longMode,
  segAttr, segLimit, segBase, segSel, setSeg, updateMode,
  ATTR_UNUSABLE, ATTR_DB, ATTR_P, ATTR_L, ATTR_S, ES, CS, SS, FS, GS, LDTR,
} from './state';
import { fault, gp, NP, SSF } from './fault';
import { readLin, writeLin, invalidateFetch } from './mmu';

function segFault(seg: i32): void {
  if (seg == SS) fault(SSF, 0, true);
  else gp(0);
}

export function isCanonical(a: u64): bool {
  return <u64>((<i64>(a << 16)) >> 16) == a;
}

/**
 * Linear address of [off, off+size) in segment `seg` for a read or write, after the checks of
 * vol. 3A 5.3/5.4 (or the canonical check in 64-bit mode, 3.3.7.1). `off` is already
 * truncated to the address size.
 */
export function linAddr(seg: i32, off: u64, size: i32, write: bool): u64 {
  if (codeBits == 64) {
    let a = off;
    if (seg >= FS) a += segBase(seg);
    if (!isCanonical(a)) segFault(seg);
    return a;
  }
  const attr = segAttr(seg);
  if (protMode) {
    if ((attr & ATTR_UNUSABLE) != 0) segFault(seg);
    const type = attr & 0xf;
    if (write) {
      if ((type & 0xa) != 2) segFault(seg); // must be a writable data segment
    } else if ((type & 0xa) == 8) {
      segFault(seg); // execute-only code
    }
  }
  const lim = <u64>segLimit(seg);
  const last = off + <u64>(size - 1);
  if ((attr & 0x1c) == 0x14) {
    // expand-down data segment: valid offsets are (limit, 0xFFFF or 0xFFFFFFFF]
    const upper: u64 = (attr & ATTR_DB) != 0 ? 0xffffffff : 0xffff;
    if (off <= lim || last > upper) segFault(seg);
  } else if (last > lim) {
    segFault(seg);
  }
  return (segBase(seg) + off) & 0xffffffff;
}

// ---------------------------------------------------------------- descriptors

/** Descriptor table entry address for a selector, or #GP(selector) when outside the table. */
export function descAddr(sel: u32, errIfOutside: bool): u64 {
  const idx = <u64>(sel & 0xfff8);
  let base: u64, limit: u64;
  if ((sel & 4) != 0) {
    if ((segAttr(LDTR) & ATTR_UNUSABLE) != 0 || (segSel(LDTR) & 0xfffc) == 0) {
      if (errIfOutside) gp(sel & 0xfffc);
      return 0xffffffffffffffff;
    }
    base = segBase(LDTR);
    limit = <u64>segLimit(LDTR);
  } else {
    base = load<u64>(S + O_GDTR_BASE);
    limit = load<u64>(S + O_GDTR_LIMIT);
  }
  if (idx + 7 > limit) {
    if (errIfOutside) gp(sel & 0xfffc);
    return 0xffffffffffffffff;
  }
  return base + idx;
}

/** Descriptor tables are read with supervisor rights whatever the CPL (vol. 3A 4.6). */
export function readDesc(addr: u64): u64 {
  return readLin(codeBits == 64 ? addr : addr & 0xffffffff, 8, false);
}

export function descBase(d: u64): u64 {
  return ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
}
export function descLimit(d: u64): u32 {
  let l = <u32>(d & 0xffff) | (<u32>(d >> 32) & 0xf0000);
  if (((d >> 55) & 1) != 0) l = (l << 12) | 0xfff;
  return l;
}
export function descAttr(d: u64): u32 {
  return <u32>(d >> 40) & 0xf0ff;
}

/** Set the accessed bit of a code/data descriptor in memory (vol. 3A 3.4.5.1). */
function markAccessed(addr: u64, d: u64): void {
  if ((d & (<u64>1 << 40)) == 0) writeLin(codeBits == 64 ? addr + 5 : (addr + 5) & 0xffffffff, 1, (d >> 40) | 1, false);
}

function loadFromDesc(seg: i32, sel: u32, addr: u64, d: u64): void {
  markAccessed(addr, d);
  setSeg(seg, sel, descBase(d), descLimit(d), descAttr(d) | 1);
}

/** Real mode (or virtual-8086) segment load: base = selector * 16, other fields unchanged. */
export function loadSegReal(seg: i32, sel: u32): void {
  setSeg(seg, sel & 0xffff, <u64>(sel & 0xffff) << 4, segLimit(seg), (segAttr(seg) & ~ATTR_UNUSABLE) | ATTR_P);
}

/** MOV/POP/LxS to DS, ES, FS, GS or SS (vol. 2B MOV "Operation"). */
export function loadSeg(seg: i32, sel: u32): void {
  sel &= 0xffff;
  if (!protMode) {
    loadSegReal(seg, sel);
    if (seg == SS) updateMode();
    return;
  }
  const rpl = <i32>(sel & 3);
  if (seg == SS) {
    if ((sel & 0xfffc) == 0) {
      // a null SS is allowed only in 64-bit mode below CPL 3 with RPL = CPL (vol. 2B MOV)
      if (codeBits == 64 && cpl != 3 && rpl == cpl) {
        setSeg(SS, sel, 0, 0, ATTR_UNUSABLE | (<u32>cpl << 5) | ATTR_DB | 3 | ATTR_S);
        updateMode();
        return;
      }
      gp(0);
    }
    const addr = descAddr(sel, true);
    const d = readDesc(addr);
    const attr = descAttr(d);
    const dpl = <i32>((attr >> 5) & 3);
    if (rpl != cpl || (attr & ATTR_S) == 0 || (attr & 0xa) != 2 || dpl != cpl) gp(sel & 0xfffc);
    if ((attr & ATTR_P) == 0) fault(SSF, sel & 0xfffc, true);
    loadFromDesc(SS, sel, addr, d);
    updateMode();
    return;
  }
  if ((sel & 0xfffc) == 0) {
    // null selector: the register becomes unusable (vol. 3A 5.4.1)
    setSeg(seg, sel, 0, 0, ATTR_UNUSABLE);
    return;
  }
  const addr = descAddr(sel, true);
  const d = readDesc(addr);
  const attr = descAttr(d);
  const type = attr & 0xf;
  const dpl = <i32>((attr >> 5) & 3);
  // data or readable code
  if ((attr & ATTR_S) == 0 || (type & 0xa) == 8) gp(sel & 0xfffc);
  // data or non-conforming code: RPL and CPL must not exceed DPL
  if ((type & 0xc) != 0xc && (rpl > dpl || cpl > dpl)) gp(sel & 0xfffc);
  if ((attr & ATTR_P) == 0) fault(NP, sel & 0xfffc, true);
  loadFromDesc(seg, sel, addr, d);
}

/**
 * Check a code-segment descriptor for a far JMP/CALL/RET target and return it (vol. 2A JMP
 * "Operation", protected-mode branch). `retRpl` >= 0 for RET (the new CPL), else -1.
 */
export function checkCodeDesc(sel: u32, retRpl: i32): u64 {
  if ((sel & 0xfffc) == 0) gp(0);
  const addr = descAddr(sel, true);
  const d = readDesc(addr);
  const attr = descAttr(d);
  const type = attr & 0xf;
  const dpl = <i32>((attr >> 5) & 3);
  const rpl = <i32>(sel & 3);
  if ((attr & ATTR_S) == 0 || (type & 8) == 0) {
    // call gates, task gates and TSS targets are not implemented
    gp(sel & 0xfffc);
  }
  if (retRpl >= 0) {
    if (rpl < cpl) gp(sel & 0xfffc);
    if ((type & 4) != 0 ? dpl > rpl : dpl != rpl) gp(sel & 0xfffc);
  } else if ((type & 4) != 0) {
    if (dpl > cpl) gp(sel & 0xfffc);
  } else if (rpl > cpl || dpl != cpl) {
    gp(sel & 0xfffc);
  }
  if ((attr & ATTR_P) == 0) fault(NP, sel & 0xfffc, true);
  if (longMode && (attr & ATTR_L) != 0 && (attr & ATTR_DB) != 0) gp(sel & 0xfffc);
  markAccessed(addr, d);
  return d;
}

/** Check an SS selector for a stack switch to privilege `newCpl` (#GP(sel), #SS(sel) when not present). */
export function checkStackDesc(sel: u32, newCpl: i32): u64 {
  if ((sel & 0xfffc) == 0) gp(0);
  const addr = descAddr(sel, true);
  const d = readDesc(addr);
  const attr = descAttr(d);
  if (<i32>(sel & 3) != newCpl || (attr & ATTR_S) == 0 || (attr & 0xa) != 2 || <i32>((attr >> 5) & 3) != newCpl) gp(sel & 0xfffc);
  if ((attr & ATTR_P) == 0) fault(SSF, sel & 0xfffc, true);
  markAccessed(addr, d);
  return d;
}

/** Load CS from a checked descriptor with the given CPL (selector RPL := cpl). */
export function setCS(sel: u32, d: u64, newCpl: i32): void {
  setSeg(CS, (sel & 0xfffc) | <u32>newCpl, descBase(d), descLimit(d), descAttr(d) | 1);
  updateMode();
  invalidateFetch();
}

/** After a return to an outer level, data segments the new CPL may not use become null (vol. 2A RET). */
export function nullifyForOuter(): void {
  for (let s = ES; s <= GS; s++) {
    if (s == CS || s == SS) continue;
    const a = segAttr(s);
    const type = a & 0xf;
    const dpl = <i32>((a >> 5) & 3);
    if ((a & ATTR_UNUSABLE) != 0) continue;
    if (((type & 8) == 0 || (type & 4) == 0) && dpl < cpl) setSeg(s, 0, 0, 0, ATTR_UNUSABLE);
  }
}

export function gpOrUnusable(seg: i32): void {
  if ((segAttr(seg) & ATTR_UNUSABLE) != 0) gp(0);
}
