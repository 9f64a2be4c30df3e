 
// AssemblyScript. System instructions: MOV to/from CRn (SDM vol. 2B MOV—Move to/from Control
// Registers; vol. 3A 2.5 and 9.8/9.9 for the mode transitions), LLDT/LTR (vol. 2A), SYSCALL /
// SYSRET (vol. 2B), SWAPGS, and the I/O permission check of vol. 1 19.5 (IOPL, then the TSS
// I/O permission bitmap).

import {
  ld64, st64, O_CR0, O_CR2, O_CR3, O_CR4, O_CR8, O_EFER, O_STAR, O_LSTAR, O_CSTAR, O_SFMASK, O_KGSBASE,
  cr0, cr4, efer, updateMode, longMode, protMode, cpl, codeBits, segAttr, segBase, segLimit, setSeg, setSegBase,
  gpr, setGpr, setRip, CR0_PE, CR0_PG, CR0_WP, CR0_ET, CR0_CD, CR0_NW, CR4_PAE, CR4_PGE, CR4_PSE,
  EFER_LME, EFER_LMA, EFER_SCE, ATTR_L, ATTR_S, ATTR_P, ATTR_DB, ATTR_G, ATTR_UNUSABLE, CS, SS, GS, TR, LDTR,
  F_IOPL, F_RF, F_VM, } from './state';
import { gp, ud, fault, NP } from './fault';
import { tlbFlush, readLin, writeLin, invalidateFetch } from './mmu';
import { descAddr, descBase, descLimit, descAttr, isCanonical } from './seg';
import { flagsOther, setFlagsOther, getFlags, setEager } from './flags';

// CR4 bits this core accepts: VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT
const CR4_ALLOWED: u64 = 0x7ff & ~(<u64>3);

export function readCr(n: i32): u64 {
  switch (n) {
    case 0: return cr0();
    case 2: return ld64(O_CR2);
    case 3: return ld64(O_CR3);
    case 4: return cr4();
    case 8: return ld64(O_CR8);
    default: ud(); return 0;
  }
}

export function writeCr(n: i32, v: u64): void {
  switch (n) {
    case 0: {
      if (codeBits != 64) v &= 0xffffffff;
      if ((v >> 32) != 0) gp(0);
      if ((v & CR0_PG) != 0 && (v & CR0_PE) == 0) gp(0);
      if ((v & CR0_NW) != 0 && (v & CR0_CD) == 0) gp(0);
      const old = cr0();
      const e = efer();
      if ((v & CR0_PG) != 0 && (old & CR0_PG) == 0 && (e & EFER_LME) != 0) {
        // activating IA-32e mode (vol. 3A 9.8.5): needs PAE and a non-64-bit CS
        if ((cr4() & CR4_PAE) == 0 || (segAttr(CS) & ATTR_L) != 0) gp(0);
        st64(O_EFER, e | EFER_LMA);
      } else if ((v & CR0_PG) == 0 && (old & CR0_PG) != 0 && (e & EFER_LMA) != 0) {
        // leaving IA-32e mode must happen from compatibility mode (9.8.5.4)
        if (codeBits == 64) gp(0);
        st64(O_EFER, e & ~EFER_LMA);
      }
      st64(O_CR0, v | CR0_ET);
      if (((old ^ v) & (CR0_PG | CR0_WP | CR0_PE)) != 0) tlbFlush(true);
      updateMode();
      invalidateFetch();
      return;
    }
    case 2: st64(O_CR2, v); return;
    case 3:
      if (codeBits != 64) v &= 0xffffffff;
      st64(O_CR3, v);
      tlbFlush(false);
      return;
    case 4: {
      if (codeBits != 64) v &= 0xffffffff;
      if ((v & ~CR4_ALLOWED) != 0) gp(0);
      const old = cr4();
      if (longMode && (v & CR4_PAE) == 0) gp(0);
      st64(O_CR4, v);
      if (((old ^ v) & (CR4_PAE | CR4_PGE | CR4_PSE)) != 0) tlbFlush(true);
      return;
    }
    case 8:
      if ((v >> 4) != 0) gp(0);
      st64(O_CR8, v);
      return;
    default:
      ud();
  }
}

/** LLDT (vol. 2A LLDT): a null selector makes LDTR unusable. */
export function lldt(sel: u32): void {
  if ((sel & 0xfffc) == 0) {
    setSeg(LDTR, sel, 0, 0, ATTR_UNUSABLE);
    return;
  }
  if ((sel & 4) != 0) gp(sel & 0xfffc);
  const addr = descAddr(sel, true);
  const d = readLin(addr, 8, false);
  const attr = descAttr(d);
  if ((attr & ATTR_S) != 0 || (attr & 0xf) != 2) gp(sel & 0xfffc);
  if ((attr & ATTR_P) == 0) fault(NP, sel & 0xfffc, true);
  let base = descBase(d);
  if (longMode) base |= (readLin(addr + 8, 8, false) & 0xffffffff) << 32;
  setSeg(LDTR, sel, base, descLimit(d), attr);
}

/** LTR (vol. 2A LTR): loads an available TSS and marks it busy in the GDT. */
export function ltr(sel: u32): void {
  if ((sel & 0xfffc) == 0 || (sel & 4) != 0) gp(sel & 0xfffc);
  const addr = descAddr(sel, true);
  const d = readLin(addr, 8, false);
  const attr = descAttr(d);
  const type = attr & 0xf;
  if ((attr & ATTR_S) != 0 || (longMode ? type != 9 : type != 1 && type != 9)) gp(sel & 0xfffc);
  if ((attr & ATTR_P) == 0) fault(NP, sel & 0xfffc, true);
  let base = descBase(d);
  if (longMode) base |= (readLin(addr + 8, 8, false) & 0xffffffff) << 32;
  writeLin(addr + 5, 1, (d >> 40) | 2, false);
  setSeg(TR, sel, base, descLimit(d), attr | 2);
}

/** SYSCALL (vol. 2B): IA-32e mode only, EFER.SCE must be set. `next` is the return RIP. */
export function syscall(next: u64): void {
  if (!longMode || (efer() & EFER_SCE) == 0) ud();
  const star = ld64(O_STAR);
  const target = codeBits == 64 ? ld64(O_LSTAR) : ld64(O_CSTAR);
  const sel = <u32>(star >> 32) & 0xfffc;
  const fl = getFlags();
  setGpr(1, next);
  setGpr(11, <u64>(fl & ~F_RF));
  const mask = <u32>ld64(O_SFMASK);
  setEager(fl & ~mask);
  setFlagsOther((fl & ~mask) & ~F_RF);
  // flat 64-bit code and data, DPL 0 (the descriptors are not read)
  setSeg(CS, sel, 0, 0xffffffff, 0xb | ATTR_S | ATTR_P | ATTR_L | ATTR_G);
  setSeg(SS, sel + 8, 0, 0xffffffff, 0x3 | ATTR_S | ATTR_P | ATTR_DB | ATTR_G);
  updateMode();
  setRip(target);
  invalidateFetch();
}

/** SYSRET (vol. 2B): back to CPL 3; REX.W returns to 64-bit code, otherwise to compatibility mode. */
export function sysret(to64: bool): void {
  if ((efer() & EFER_SCE) == 0) ud();
  if (!longMode || cpl != 0) gp(0);
  const rcx = gpr(1);
  if (to64 && !isCanonical(rcx)) gp(0);
  const base = <u32>(ld64(O_STAR) >> 48) & 0xffff;
  const r11 = <u32>gpr(11);
  const fl = (r11 & ~(F_RF | F_VM)) | 2;
  setEager(fl);
  setFlagsOther(fl);
  if (to64) {
    setSeg(CS, (base + 16) | 3, 0, 0xffffffff, 0xb | ATTR_S | ATTR_P | ATTR_L | ATTR_G | (3 << 5));
  } else {
    setSeg(CS, base | 3, 0, 0xffffffff, 0xb | ATTR_S | ATTR_P | ATTR_DB | ATTR_G | (3 << 5));
  }
  setSeg(SS, (base + 8) | 3, 0, 0xffffffff, 0x3 | ATTR_S | ATTR_P | ATTR_DB | ATTR_G | (3 << 5));
  updateMode();
  setRip(to64 ? rcx : rcx & 0xffffffff);
  invalidateFetch();
}

/**
 * SYSCALL (`op` 0, returning to `next`) or 64-bit SYSRET (`op` 1) for a compiled block (the JIT's
 * `sys` helper, batch.ts FUNCS): 1 when done, 0 when the instruction would fault, which the block
 * then leaves to the interpreter (compiled code never faults). Only from 64-bit code.
 */
export function blockSys(op: i32, next: u64): i32 {
  if (!longMode || (efer() & EFER_SCE) == 0) return 0;
  if (op == 0) {
    syscall(next);
    return 1;
  }
  if (cpl != 0 || !isCanonical(gpr(1))) return 0;
  sysret(true);
  return 1;
}

export function swapgs(): void {
  if (codeBits != 64) ud();
  if (cpl != 0) gp(0);
  const t = segBase(GS);
  setSegBase(GS, ld64(O_KGSBASE));
  st64(O_KGSBASE, t);
}

/**
 * IN/OUT/INS/OUTS permission (vol. 1 19.5.1-19.5.2): allowed when CPL <= IOPL, otherwise every
 * bit of the port range must be clear in the TSS I/O permission bitmap.
 */
export function checkIo(port: u32, size: i32): void {
  if (!protMode) return;
  const iopl = <i32>((flagsOther & F_IOPL) >> 12);
  if (cpl <= iopl && (flagsOther & F_VM) == 0) return;
  const trType = segAttr(TR) & 0xf;
  if ((trType & 8) == 0 || segLimit(TR) < 0x67) gp(0); // a 16-bit TSS has no bitmap
  const mapBase = <u32>readLin(segBase(TR) + 0x66, 2, false);
  const byteOff = mapBase + (port >> 3);
  if (byteOff + 1 > segLimit(TR)) gp(0);
  const bits = <u32>readLin(segBase(TR) + <u64>byteOff, 2, false);
  const want: u32 = ((1 << <u32>size) - 1) << (port & 7);
  if ((bits & want) != 0) gp(0);
}

/** CLI/STI permission (vol. 2A CLI: protected mode needs CPL <= IOPL; no VME/PVI support). */
export function checkIfChange(): void {
  if (!protMode) return;
  const iopl = <i32>((flagsOther & F_IOPL) >> 12);
  if (cpl > iopl) gp(0);
}
