/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. String instructions MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with REP/REPE/REPNE
// (SDM vol. 2B "REP/REPE/REPZ/REPNE/REPNZ"; vol. 1 7.3.9). Each iteration commits RSI/RDI/RCX,
// so a fault part-way restarts the instruction with the registers of the completed iterations
// (the SDM's "a repeating string operation can be suspended by an exception"). Long repeats
// stop after a chunk and re-execute, which lets the host deliver interrupts in between.

import { gpr, setGpr, maskOf, cpl, ES, DS, F_DF, startRip, setRip } from './state';
import { adsize, segOvr, rep, memRead, memWrite, setIp } from './decode';
import { flagsOther, getZF } from './flags';
import { alu } from './alu';
import { pioRead, pioWrite } from './host';
import { linAddr } from './seg';
import { probeWrite } from './mmu';

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

export function stringOp(op: i32, size: i32): void {
  const am = maskOf(adsize);
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
      // not finished: execute this instruction again (after a possible interrupt)
      setIp(startRip);
      setRip(startRip);
      return;
    }
  }
}
