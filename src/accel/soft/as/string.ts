/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. String instructions MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with REP/REPE/REPNE
// (SDM vol. 2B "REP/REPE/REPZ/REPNE/REPNZ"; vol. 1 7.3.9). Each iteration commits RSI/RDI/RCX,
// so a fault part-way restarts the instruction with the registers of the completed iterations
// (the SDM's "a repeating string operation can be suspended by an exception"). Long repeats
// stop after a chunk and re-execute, which lets the host deliver interrupts in between.

import { gpr, setGpr, maskOf, cpl, codeBits, ES, DS, FS, F_DF, F_RF, rip, segBase } from './state';
import { adsize, segOvr, rep, memRead, memWrite, setIp } from './decode';
import { flagsOther, setFlagsOther, getZF } from './flags';
import { alu } from './alu';
import { pioRead, pioWrite } from './host';
import { linAddr, isCanonical } from './seg';
import { probeWrite, translate, translateHit, K_READ, K_WRITE } from './mmu';

export const S_MOVS: i32 = 0;
export const S_CMPS: i32 = 1;
export const S_STOS: i32 = 2;
export const S_LODS: i32 = 3;
export const S_SCAS: i32 = 4;
export const S_INS: i32 = 5;
export const S_OUTS: i32 = 6;

const CHUNK: i32 = 16384;

function setAddrReg(i: i32, v: u64): void {
  if (adsize == 8) setGpr(i, v);
  else if (adsize == 4) setGpr(i, v & 0xffffffff);
  else setGpr(i, (gpr(i) & 0xffffffffffff0000) | (v & 0xffff));
}

/**
 * REP MOVS / REP STOS in 64-bit mode with DF=0, a page at a time on the host (memory.copy /
 * stores in a tight loop). Same results and same fault points as the element loop; stops early
 * (leaving the rest to it) at MMIO, page-crossing elements and overlapping copies. With `hitsOnly`
 * (compiled blocks: blockRepString) it also stops where it would fault or walk the page tables: at
 * a non-canonical address and at a page the TLB does not have.
 */
function bulk(op: i32, size: i32, src: i32, hitsOnly: bool): void {
  const user = cpl == 3;
  const sh = ctz<u64>(<u64>size); // elements of 1, 2, 4 or 8 bytes: shifts, not 64-bit divisions
  let left: u64 = 1 << 20; // elements per execution, then re-execute
  while (left > 0) {
    const count = gpr(1);
    if (count == 0) return;
    const di = gpr(7);
    // ES has no base in 64-bit mode; only FS and GS do (vol. 1 3.3.4.1)
    const dlin = hitsOnly ? di : linAddr(ES, di, size, true);
    if (hitsOnly && !isCanonical(dlin)) return;
    let n = (0x1000 - (dlin & 0xfff)) >> sh;
    if (n == 0) return;
    if (n > count) n = count;
    if (n > left) n = left;
    let si: u64 = 0;
    let slin: u64 = 0;
    if (op == S_MOVS) {
      si = gpr(6);
      slin = hitsOnly ? si + (src >= FS ? segBase(src) : 0) : linAddr(src, si, size, false);
      if (hitsOnly && !isCanonical(slin)) return;
      const sroom = (0x1000 - (slin & 0xfff)) >> sh;
      if (sroom == 0) return;
      if (sroom < n) n = sroom;
    }
    const bytes = n << sh;
    const hd = hitsOnly ? translateHit(dlin, K_WRITE, user) : translate(dlin, K_WRITE, user);
    if (hd < 0) return;
    if (op == S_MOVS) {
      const hs = hitsOnly ? translateHit(slin, K_READ, user) : translate(slin, K_READ, user);
      if (hs < 0) return;
      // forward element-by-element semantics: a destination just above the source repeats it
      if (hd > hs && <u64>(hd - hs) < bytes) return;
      memory.copy(<usize>hd, <usize>hs, <usize>bytes);
      setGpr(6, si + bytes);
    } else {
      const v = gpr(0);
      const p = <usize>hd;
      if (size == 1) memory.fill(p, <u8>v, <usize>bytes);
      else if (size == 2) for (let k: usize = 0; k < <usize>bytes; k += 2) store<u16>(p + k, <u16>v);
      else if (size == 4) for (let k: usize = 0; k < <usize>bytes; k += 4) store<u32>(p + k, <u32>v);
      else for (let k: usize = 0; k < <usize>bytes; k += 8) store<u64>(p + k, v);
    }
    setGpr(7, di + bytes);
    setGpr(1, count - n);
    left -= n;
  }
}

/**
 * REP MOVS / REP STOS for compiled blocks (src/accel/soft/jit/compiler.ts repString): 64-bit code,
 * 64-bit address size, `src` the source's segment. `bulk` on TLB hits only, so it never faults
 * (a compiled block must not). 1 when RCX reached 0; 0 when it stopped before (DF set, a TLB miss,
 * a page-crossing or overlapping element, MMIO, a non-canonical address), with RCX, RSI and RDI
 * saying how far it got, as after a repeat suspended between iterations (vol. 2B REP): the block
 * side-exits and the interpreter executes the rest of the instruction.
 */
export function blockRepString(op: i32, size: i32, src: i32): i32 {
  if ((flagsOther & F_DF) == 0) bulk(op, size, src, true);
  return gpr(1) == 0 ? 1 : 0;
}

export function stringOp(op: i32, size: i32): void {
  const am = maskOf(adsize);
  if (rep != 0 && (op == S_MOVS || op == S_STOS) && codeBits == 64 && adsize == 8 && (flagsOther & F_DF) == 0) {
    const src0 = segOvr >= 0 ? segOvr : DS;
    bulk(op, size, src0, false);
  }
  const delta: u64 = (flagsOther & F_DF) != 0 ? <u64>(0 - size) : <u64>size;
  const src = segOvr >= 0 ? segOvr : DS;
  const repeat = rep != 0;
  let left: i32 = CHUNK;
  while (true) {
    if (repeat && (gpr(1) & am) == 0) return;
    const si = gpr(6) & am;
    const di = gpr(7) & am;
    let stopZ = false;
    switch (op) {
      case S_MOVS: {
        const v = memRead(src, si, size);
        memWrite(ES, di, size, v);
        setAddrReg(6, si + delta);
        setAddrReg(7, di + delta);
        break;
      }
      case S_CMPS: {
        const a = memRead(src, si, size);
        const b = memRead(ES, di, size);
        alu(7, size, a, b);
        setAddrReg(6, si + delta);
        setAddrReg(7, di + delta);
        stopZ = true;
        break;
      }
      case S_STOS:
        memWrite(ES, di, size, gpr(0));
        setAddrReg(7, di + delta);
        break;
      case S_LODS: {
        const v = memRead(src, si, size);
        if (size == 1) setGpr(0, (gpr(0) & 0xffffffffffffff00) | v);
        else if (size == 2) setGpr(0, (gpr(0) & 0xffffffffffff0000) | v);
        else setGpr(0, v);
        setAddrReg(6, si + delta);
        break;
      }
      case S_SCAS: {
        const b = memRead(ES, di, size);
        alu(7, size, gpr(0), b);
        setAddrReg(7, di + delta);
        stopZ = true;
        break;
      }
      case S_INS: {
        const lin = linAddr(ES, di, size, true);
        probeWrite(lin, size, cpl == 3);
        const v = <u64>pioRead(<u32>gpr(2) & 0xffff, <u32>size);
        memWrite(ES, di, size, v);
        setAddrReg(7, di + delta);
        break;
      }
      default: { // OUTS
        const v = memRead(src, si, size);
        pioWrite(<u32>gpr(2) & 0xffff, <u32>size, <u32>v);
        setAddrReg(6, si + delta);
        break;
      }
    }
    if (!repeat) return;
    const c = (gpr(1) - 1) & am;
    setAddrReg(1, c);
    if (c == 0) return;
    if (stopZ) {
      const z = getZF();
      if (rep == 0xf3 && !z) return;
      if (rep == 0xf2 && z) return;
    }
    if (--left == 0) {
      // not finished: execute this instruction again (after a possible interrupt). An interrupt
      // taken here pushes RF=1 ("for any interrupt arriving after any iteration of a repeated
      // string instruction but the last iteration, the value pushed for RF is 1", SDM vol. 3B
      // 17.3.1.1); Step.run() clears it when the instruction resumes.
      setFlagsOther(flagsOther | F_RF);
      setIp(rip()); // the instruction's own address (state.ts rip)
      return;
    }
  }
}
