/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. Interrupt and exception delivery (SDM vol. 3A chapter 6) and IRET.
//
// Real mode uses the interrupt vector table (vol. 3B 20.1.4); protected mode the 8-byte gates of
// 6.10-6.12 with the stack switch through the TSS (7.2.1) on a privilege change; long mode the
// 16-byte gates of 6.14 with IST and the 16-byte stack alignment. A fault while delivering
// another event becomes a double fault per table 6-5, and a fault while delivering a double
// fault shuts the processor down (6.15, interrupt 8).
// Delivery computes and checks everything (and writes the frame to memory) before it changes
// any register, so a fault part-way leaves the state as it was.

import {
  S, O_IDTR_BASE, O_IDTR_LIMIT, O_GPR, O_HALTED, O_SHADOW, rip, setRip, cpl, codeBits, longMode, protMode,
  segSel, segBase, segAttr, segLimit, setSeg, gpr, setGpr, updateMode, stackMask, maskOf,
  CS, SS, TR, ATTR_UNUSABLE, ATTR_P, ATTR_S, ATTR_L, ATTR_DB, ES, DS, FS, GS,
  F_IF, F_TF, F_NT, F_RF, F_VM, F_AC, F_IOPL, F_STATUS, F_ID, F_DF, F_VIF, F_VIP,
} from './state';
import { fault, gp, pendVector, pendErr, pendHasErr, clearPending, DF, PF, NP, TS, SSF, GP } from './fault';
import { readLin, writeLin, invalidateFetch } from './mmu';
import { getFlags, setEager, flagsOther, setFlagsOther } from './flags';
import { descAddr, readDesc, descBase, descLimit, descAttr, checkCodeDesc, setCS, nullifyForOuter, isCanonical } from './seg';

/** Vector being delivered (256 + n for software INT n), or -1. */
let delivering: i32 = -1;
/** The last exception delivered by deliverPending (after the double-fault rules), for the host. */
export let lastVector: i32 = -1;
export let lastError: i32 = -1;

export const DELIVER_OK: i32 = 0;
export const DELIVER_SHUTDOWN: i32 = 2;

function contributory(v: i32): bool { return v == 0 || (v >= 10 && v <= 13); }

/** Deliver the exception recorded by fault(); returns DELIVER_SHUTDOWN on a triple fault. */
export function deliverPending(): i32 {
  let vec = pendVector;
  let err = pendErr;
  let hasErr = pendHasErr;
  clearPending();
  if (vec < 0) return DELIVER_OK;
  const first = delivering;
  delivering = -1;
  if (first >= 0) {
    if (first == DF) return DELIVER_SHUTDOWN;
    if (first < 32 && ((contributory(first) && contributory(vec)) || (first == PF && (vec == PF || contributory(vec))))) {
      vec = DF;
      err = 0;
      hasErr = true;
    }
  }
  store<i32>(S + O_HALTED, 0);
  lastVector = vec;
  lastError = hasErr ? <i32>err : -1;
  deliver(vec, err, hasErr, false, true, rip(), faultClass(vec));
  return DELIVER_OK;
}

/**
 * Fault-class exceptions (SDM vol. 3A 6.5, table 6-1). For these the RFLAGS image pushed has RF=1
 * (SDM vol. 3B 17.3.1.1 "Instruction-Breakpoint Exception Condition": "For any fault-class
 * exception except a debug exception generated in response to an instruction breakpoint, the
 * value pushed for RF is 1"; AMD APM vol. 2 13.1.1.6 likewise). #DB never arrives here as a fault
 * (no instruction breakpoints), #BP/#OF are traps, #DF is an abort.
 */
function faultClass(vec: i32): bool {
  return vec == 0 || vec == 5 || vec == 6 || vec == 7 || (vec >= 10 && vec <= 14) ||
    vec == 16 || vec == 17 || vec == 19 || vec == 20;
}

/** An external interrupt (from the host's interrupt controller), delivered at an instruction boundary. */
export function deliverExternal(vec: i32): void {
  store<i32>(S + O_HALTED, 0);
  deliver(vec, 0, false, false, true, rip());
}

/** INT n / INT3 / INTO: `next` is the address of the following instruction (a trap). */
export function softwareInterrupt(vec: i32, next: u64): void {
  deliver(vec, 0, false, true, false, next);
}

/**
 * INT1 / ICEBP (F1): a trap-like #DB (RIP after the instruction) delivered as a privileged software
 * exception: no gate DPL check, EXT set in error codes raised while delivering, like a hardware
 * event (SDM vol. 3A 6.13 on EXT; vol. 2A "INT n/INTO/INT3/INT1": "INT1 ... does not ... check
 * the DPL of the IDT gate"; vol. 3B 17.3.1 lists INT1 with the trap-class debug conditions).
 */
export function privilegedSoftwareException(vec: i32, next: u64): void {
  deliver(vec, 0, false, false, true, next);
}

function push16(lin: u64, v: u64, user: bool): void { writeLin(lin, 2, v, user); }

/**
 * Deliver vector `vec`. `soft` for INT n (gate DPL check, no EXT), `ext` sets the EXT bit of
 * error codes raised while delivering, `ret` is the return address pushed.
 */
export function deliver(vec: i32, err: u32, hasErr: bool, soft: bool, ext: bool, ret: u64, setRf: bool = false): void {
  delivering = soft ? 256 + vec : vec;
  // `setRf`: a fault-class exception pushes RF=1 (see faultClass)
  const flags = setRf ? getFlags() | F_RF : getFlags();
  const extBit: u32 = ext ? 1 : 0;
  const idtBase = load<u64>(S + O_IDTR_BASE);
  const idtLimit = load<u64>(S + O_IDTR_LIMIT);
  if (!protMode) {
    // real mode: 4-byte IVT entries (offset, segment) (vol. 3B 20.1.4)
    const ent = <u64>vec * 4;
    if (ent + 3 > idtLimit) gp(0);
    const v = readLin((idtBase + ent) & 0xffffffff, 4, false);
    const sp = gpr(4);
    const ssb = segBase(SS);
    push16((ssb + ((sp - 2) & 0xffff)) & 0xffffffff, <u64>flags, false);
    push16((ssb + ((sp - 4) & 0xffff)) & 0xffffffff, <u64>segSel(CS), false);
    push16((ssb + ((sp - 6) & 0xffff)) & 0xffffffff, ret, false);
    setGpr(4, (sp & 0xffffffffffff0000) | ((sp - 6) & 0xffff));
    const sel = <u32>(v >> 16);
    setSeg(CS, sel, <u64>sel << 4, segLimit(CS), segAttr(CS));
    setRip(v & 0xffff);
    setFlagsOther(flagsOther & ~(F_IF | F_TF | F_AC | F_RF));
    finishDelivery();
    return;
  }
  const gateSize: u64 = longMode ? 16 : 8;
  const idtErr: u32 = (<u32>vec << 3) | 2 | extBit;
  if (<u64>vec * gateSize + gateSize - 1 > idtLimit) gp(idtErr);
  const gateAddr = idtBase + <u64>vec * gateSize;
  const g = readLin(longMode ? gateAddr : gateAddr & 0xffffffff, 8, false);
  const gType = <u32>(g >> 40) & 0x1f; // includes S (bit 4)
  const gDpl = <i32>((g >> 45) & 3);
  let is32 = true;
  let trapGate = false;
  if (longMode) {
    if (gType != 0xe && gType != 0xf) gp(idtErr);
    trapGate = gType == 0xf;
  } else if (gType == 0xe || gType == 0xf || gType == 6 || gType == 7) {
    is32 = gType >= 0xe;
    trapGate = (gType & 1) != 0;
  } else {
    gp(idtErr); // task gates are not implemented
  }
  if (soft && gDpl < cpl) gp(idtErr);
  if (((g >> 47) & 1) == 0) fault(NP, idtErr, true);
  let target: u64 = (g & 0xffff) | (((g >> 48) & 0xffff) << 16);
  if (longMode) {
    const hi = readLin(gateAddr + 8, 8, false);
    target |= (hi & 0xffffffff) << 32;
  }
  const csSel = <u32>(g >> 16) & 0xffff;
  if ((csSel & 0xfffc) == 0) gp(extBit);
  const dAddr = descAddr(csSel, false);
  if (dAddr == 0xffffffffffffffff) gp((csSel & 0xfffc) | extBit);
  const d = readDesc(dAddr);
  const dAttr = descAttr(d);
  const dDpl = <i32>((dAttr >> 5) & 3);
  if ((dAttr & ATTR_S) == 0 || (dAttr & 8) == 0 || dDpl > cpl) gp((csSel & 0xfffc) | extBit);
  if ((dAttr & ATTR_P) == 0) fault(NP, (csSel & 0xfffc) | extBit, true);
  if (longMode && ((dAttr & ATTR_L) == 0 || (dAttr & ATTR_DB) != 0)) gp((csSel & 0xfffc) | extBit);
  const conforming = (dAttr & 4) != 0;
  const newCpl = conforming ? cpl : dDpl;
  const user = newCpl == 3;
  const oldSs = segSel(SS);
  const oldSp = gpr(4);
  const oldCs = segSel(CS);

  if (longMode) {
    // 64-bit frame (vol. 3A 6.14.2-6.14.5)
    const ist = <u32>(g >> 32) & 7;
    let sp: u64;
    if (ist != 0) sp = readTss64(0x24 + (ist - 1) * 8);
    else if (newCpl < cpl) sp = readTss64(4 + <u32>newCpl * 8);
    else sp = oldSp;
    if (!isCanonical(sp)) fault(SSF, extBit, true);
    sp &= ~(<u64>15);
    let p = sp;
    p -= 8; writeLin(p, 8, <u64>oldSs, user);
    p -= 8; writeLin(p, 8, oldSp, user);
    p -= 8; writeLin(p, 8, <u64>flags, user);
    p -= 8; writeLin(p, 8, <u64>oldCs, user);
    p -= 8; writeLin(p, 8, ret, user);
    if (hasErr) { p -= 8; writeLin(p, 8, <u64>err, user); }
    if (newCpl < cpl) {
      // a privilege change loads SS with a null selector whose RPL is the new CPL
      setSeg(SS, <u32>newCpl, 0, 0, ATTR_UNUSABLE | (<u32>newCpl << 5) | ATTR_S | ATTR_DB | 3);
    }
    setCS(csSel, d, newCpl);
    setGpr(4, p);
    setRip(target);
  } else {
    let sp: u64;
    let ssSel: u32;
    let ssBaseN: u64;
    let ssMask: u64;
    let newSs: u64 = 0;
    const privChange = newCpl < cpl;
    if (privChange) {
      // new stack from the TSS (vol. 3A 7.2.1): 32-bit TSS ESPn at 4+8n, SSn at 8+8n
      const tssType = segAttr(TR) & 0xf;
      if ((tssType & 8) != 0) {
        sp = readTss(4 + <u32>newCpl * 8, 4);
        ssSel = <u32>readTss(8 + <u32>newCpl * 8, 2);
      } else {
        sp = readTss(2 + <u32>newCpl * 4, 2);
        ssSel = <u32>readTss(4 + <u32>newCpl * 4, 2);
      }
      if ((ssSel & 0xfffc) == 0) fault(TS, extBit, true);
      const sAddr = descAddr(ssSel, false);
      if (sAddr == 0xffffffffffffffff) fault(TS, (ssSel & 0xfffc) | extBit, true);
      newSs = readDesc(sAddr);
      const sa = descAttr(newSs);
      if (<i32>(ssSel & 3) != newCpl || <i32>((sa >> 5) & 3) != newCpl || (sa & ATTR_S) == 0 || (sa & 0xa) != 2) {
        fault(TS, (ssSel & 0xfffc) | extBit, true);
      }
      if ((sa & ATTR_P) == 0) fault(SSF, (ssSel & 0xfffc) | extBit, true);
      ssBaseN = descBase(newSs);
      ssMask = (sa & ATTR_DB) != 0 ? 0xffffffff : 0xffff;
    } else {
      sp = oldSp;
      ssSel = oldSs;
      ssBaseN = segBase(SS);
      ssMask = stackMask;
    }
    const w: u64 = is32 ? 4 : 2;
    let p = sp;
    if (privChange) {
      p -= w; writeLin((ssBaseN + (p & ssMask)) & 0xffffffff, <i32>w, <u64>oldSs, user);
      p -= w; writeLin((ssBaseN + (p & ssMask)) & 0xffffffff, <i32>w, oldSp, user);
    }
    p -= w; writeLin((ssBaseN + (p & ssMask)) & 0xffffffff, <i32>w, <u64>flags, user);
    p -= w; writeLin((ssBaseN + (p & ssMask)) & 0xffffffff, <i32>w, <u64>oldCs, user);
    p -= w; writeLin((ssBaseN + (p & ssMask)) & 0xffffffff, <i32>w, ret, user);
    if (hasErr) { p -= w; writeLin((ssBaseN + (p & ssMask)) & 0xffffffff, <i32>w, <u64>err, user); }
    if (privChange) {
      setSeg(SS, ssSel, descBase(newSs), descLimit(newSs), descAttr(newSs) | 1);
    }
    setCS(csSel, d, newCpl);
    updateMode();
    setGpr(4, (sp & ~ssMask) | (p & ssMask));
    setRip(is32 ? target & 0xffffffff : target & 0xffff);
  }
  // interrupt gates clear IF; both clear TF, NT, RF, VM (vol. 3A 6.12.1.3)
  let fo = flagsOther & ~(F_TF | F_NT | F_RF | F_VM);
  if (!trapGate) fo &= ~F_IF;
  setFlagsOther(fo);
  finishDelivery();
}

function finishDelivery(): void {
  delivering = -1;
  store<i32>(S + O_SHADOW, 0);
  updateMode();
  invalidateFetch();
}

function readTss(off: u32, size: i32): u64 {
  if (<u32>off + <u32>size - 1 > segLimit(TR)) fault(TS, segSel(TR) & 0xfffc, true);
  return readLin((segBase(TR) + <u64>off) & 0xffffffff, size, false);
}

function readTss64(off: u32): u64 {
  if (off + 7 > segLimit(TR)) fault(TS, segSel(TR) & 0xfffc, true);
  return readLin(segBase(TR) + <u64>off, 8, false);
}

/** Apply a popped FLAGS image with the privilege rules of POPF/IRET (vol. 2B POPF, IRET). */
export function loadFlags(v: u32, size: i32, iret: bool): void {
  let mask: u32 = F_STATUS | F_TF | F_DF | F_NT | 0x200000 | F_AC;
  const iopl = <i32>((flagsOther >> 12) & 3);
  if (cpl == 0) mask |= F_IOPL | F_IF;
  else if (cpl <= iopl) mask |= F_IF;
  if (iret) mask |= F_RF;
  if (!protMode) mask |= F_IOPL | F_IF;
  if (size == 2) mask &= 0xffff;
  const cur = getFlags();
  const nv = (cur & ~mask) | (v & mask);
  setEager(nv);
  setFlagsOther(nv & ~(F_VIF | F_VIP | F_VM) | (cur & (F_VIF | F_VIP)));
}

/** IRET / IRETD / IRETQ (vol. 2A IRET "Operation"); `size` is the operand size. */
export function iret(size: i32): void {
  const m = maskOf(size);
  if (!protMode) {
    const sp = gpr(4);
    const ssb = segBase(SS);
    const sm = stackMask;
    const ip = readLin((ssb + (sp & sm)) & 0xffffffff, size, false);
    const cs = readLin((ssb + ((sp + <u64>size) & sm)) & 0xffffffff, size, false) & 0xffff;
    const fl = readLin((ssb + ((sp + <u64>(2 * size)) & sm)) & 0xffffffff, size, false);
    setGpr(4, (sp & ~sm) | ((sp + <u64>(3 * size)) & sm));
    setSeg(CS, <u32>cs, cs << 4, segLimit(CS), segAttr(CS));
    setRip(ip & m);
    loadFlags(<u32>fl, size, true);
    invalidateFetch();
    updateMode();
    return;
  }
  if ((flagsOther & F_NT) != 0 && !longMode) gp(0); // task return is not implemented
  const user = cpl == 3;
  const sp = gpr(4);
  const ssb = codeBits == 64 ? 0 : segBase(SS);
  const sm = stackMask;
  const lin0 = (ssb + (sp & sm));
  const linMask: u64 = codeBits == 64 ? 0xffffffffffffffff : 0xffffffff;
  const nip = readLin(lin0 & linMask, size, user);
  const ncs = <u32>(readLin((ssb + ((sp + <u64>size) & sm)) & linMask, size, user) & 0xffff);
  const nfl = <u32>readLin((ssb + ((sp + <u64>(2 * size)) & sm)) & linMask, size, user);
  if ((nfl & F_VM) != 0 && cpl == 0 && !longMode && size == 4) gp(0); // virtual-8086 mode is not implemented
  const rpl = <i32>(ncs & 3);
  const d = checkCodeDesc(ncs, rpl);
  const attr = descAttr(d);
  if (codeBits == 64 || rpl > cpl) {
    // the stack pointer and SS are popped too
    const nsp = readLin((ssb + ((sp + <u64>(3 * size)) & sm)) & linMask, size, user);
    const nss = <u32>(readLin((ssb + ((sp + <u64>(4 * size)) & sm)) & linMask, size, user) & 0xffff);
    let ssDesc: u64 = 0;
    let ssNull = false;
    if ((nss & 0xfffc) == 0) {
      // null SS: only when returning to 64-bit code below CPL 3 (vol. 2A IRET)
      if (!(longMode && (attr & ATTR_L) != 0 && rpl != 3)) gp(0);
      ssNull = true;
    } else {
      if (<i32>(nss & 3) != rpl) gp(nss & 0xfffc);
      const sAddr = descAddr(nss, true);
      ssDesc = readDesc(sAddr);
      const sa = descAttr(ssDesc);
      if ((sa & ATTR_S) == 0 || (sa & 0xa) != 2 || <i32>((sa >> 5) & 3) != rpl) gp(nss & 0xfffc);
      if ((sa & ATTR_P) == 0) fault(SSF, nss & 0xfffc, true);
    }
    const oldCpl = cpl;
    loadFlags(nfl, size, true);
    setCS(ncs, d, rpl);
    if (ssNull) setSeg(SS, nss, 0, 0, ATTR_UNUSABLE | (<u32>rpl << 5) | ATTR_S | ATTR_DB | 3);
    else setSeg(SS, nss, descBase(ssDesc), descLimit(ssDesc), descAttr(ssDesc) | 1);
    updateMode();
    const nm: u64 = (segAttr(SS) & ATTR_DB) != 0 || codeBits == 64 ? 0xffffffffffffffff : 0xffff;
    setGpr(4, size == 8 ? nsp : (size == 4 && nm != 0xffff) ? nsp & 0xffffffff : (gpr(4) & ~nm) | (nsp & nm));
    setRip(codeBits == 64 ? nip : nip & 0xffffffff);
    if (rpl > oldCpl) nullifyForOuter();
  } else {
    loadFlags(nfl, size, true);
    setCS(ncs, d, rpl);
    setGpr(4, (sp & ~sm) | ((sp + <u64>(3 * size)) & sm));
    setRip(nip & m & (codeBits == 64 ? 0xffffffffffffffff : 0xffffffff));
  }
  updateMode();
  invalidateFetch();
}

export { ES, DS, FS, GS, GP, O_GPR, F_ID };
