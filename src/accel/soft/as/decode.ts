/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. Instruction decoding state: prefixes, ModR/M + SIB + displacement, operand
// and address sizes (SDM vol. 2A chapter 2: 2.1 prefixes, 2.1.5 ModR/M and SIB tables 2-1..2-3,
// 2.2.1 REX and RIP-relative addressing), plus the operand accessors the interpreter uses.

import {
  codeBits, cpl, segBase, segLimit, stackMask, gpr, setGpr, readReg, writeReg, maskOf,
  CS, SS, DS,
} from './state';
import { gp, ud } from './fault';
import { fetchLin8, fetchHost, Lin } from './mmu';
import { linAddr } from './seg';

export let opsize: i32 = 4; // operand size in bytes: 2, 4 or 8
export let adsize: i32 = 4; // address size in bytes: 2, 4 or 8
export let segOvr: i32 = -1;
export let rep: i32 = 0; // 0, 0xf2 (REPNE) or 0xf3 (REP/REPE)
export let lock: bool = false;
export let rex: u32 = 0; // the REX byte, 0 when absent
export let has66: bool = false;

export let modrmMod: i32 = 0;
export let modrmReg: i32 = 0; // with REX.R
export let modrmRm: i32 = 0; // with REX.B (a register when modrmMod == 3)
export let eaSeg: i32 = DS;
export let eaOff: u64 = 0;
let eaRipRel: bool = false;
/** The last memory operand's base register is rSP (POP r/m adjusts its address, see interp.ts). */
export let eaSpBase: bool = false;

export function setOpsize(v: i32): void { opsize = v; }
export function setAdsize(v: i32): void { adsize = v; }
export function setSegOvr(v: i32): void { segOvr = v; }
export function setRep(v: i32): void { rep = v; }
export function setLock(v: bool): void { lock = v; }
export function setRex(v: u32): void { rex = v; }
export function setHas66(v: bool): void { has66 = v; }

export function ipMask(): u64 {
  return codeBits == 64 ? 0xffffffffffffffff : codeBits == 32 ? 0xffffffff : 0xffff;
}

// ---------------------------------------------------------------- fetch

// The fetch window: the code bytes at offsets [winStart, winStart + winLen) lie at host addresses
// from winHost (one page of code, clipped to the CS limit and to where the offset would wrap).
// Rebuilt by fetch8Slow on a miss; dropped by invalidateWindow() whenever CS, the CPL or the TLB
// changes (mmu.invalidateFetch calls it).
//
// `pc` is the next code byte: inside the window (pc < pcEnd) its host address, so that a fetch is
// one compare, a load and an increment; otherwise (pcEnd 0) its offset. Either way pc + pcDelta
// is the offset, RIP (ip()).
let winStart: u64 = 1;
let winLen: u64 = 0;
let winHost: u64 = 0;
let pc: u64 = 0;
let pcEnd: u64 = 0;
let pcDelta: u64 = 0;

/** Offset (RIP) of the next instruction byte. */
export function ip(): u64 { return pc + pcDelta; }

/** Continue fetching at offset `v` (a jump, or the interpreter starting where a block stopped). */
export function setIp(v: u64): void {
  const d = v - winStart;
  if (d < winLen) {
    pc = winHost + d;
    pcEnd = winHost + winLen;
    pcDelta = winStart - winHost;
  } else {
    pc = v;
    pcEnd = 0;
    pcDelta = 0;
  }
}

export function invalidateWindow(): void {
  winLen = 0;
  pc += pcDelta;
  pcEnd = 0;
  pcDelta = 0;
}

export function fetch8(): u32 {
  const p = pc;
  if (p < pcEnd) {
    pc = p + 1;
    return <u32>load<u8>(<usize>p);
  }
  return fetch8Slow(p + pcDelta);
}

/**
 * Fetch the byte at `off` the slow way (also exported for debugging; the second caller keeps
 * binaryen from inlining this into fetch8, which then stays small enough to inline everywhere).
 */
export function fetch8Slow(off: u64): u32 {
  let lin: u64;
  let room: u64; // bytes left in the segment from off
  if (codeBits == 64) {
    lin = off;
    room = 0xffffffffffffffff;
  } else {
    const lim = <u64>segLimit(CS);
    if (off > lim) gp(0);
    lin = (segBase(CS) + off) & 0xffffffff;
    room = lim - off + 1;
  }
  const b = fetchLin8(lin, cpl == 3);
  const h = fetchHost(lin);
  // window: the rest of this page, within the segment, short of the last offset before the offset
  // wraps (16- and 32-bit code): that byte is fetched here, where the next offset becomes 0
  let len = 0x1000 - (lin & 0xfff);
  if (room < len) len = room;
  const wrap = ipMask() - off + 1; // bytes from off to the wrap (0: 2^64)
  if (wrap != 0 && wrap <= len) len = wrap - 1;
  if (h >= 0 && len > 0) {
    winStart = off;
    winLen = len;
    winHost = <u64>h;
    pc = <u64>h + 1;
    pcEnd = <u64>h + len;
    pcDelta = off - <u64>h;
  } else {
    pc = (off + 1) & ipMask();
    pcEnd = 0;
    pcDelta = 0;
  }
  return b;
}

// Immediates and displacements whose bytes are all in the window are read with one load (the
// window never wraps the offset); else a byte at a time, which may leave the window or fault.
export function fetch16(): u32 {
  const p = pc;
  if (p < pcEnd && pcEnd - p >= 2) {
    pc = p + 2;
    return <u32>load<u16>(<usize>p);
  }
  const lo = fetch8();
  return lo | (fetch8() << 8);
}

export function fetch32(): u32 {
  const p = pc;
  if (p < pcEnd && pcEnd - p >= 4) {
    pc = p + 4;
    return load<u32>(<usize>p);
  }
  const lo = fetch16();
  return lo | (fetch16() << 16);
}

export function fetch64(): u64 {
  const lo = <u64>fetch32();
  return lo | (<u64>fetch32() << 32);
}

/** Immediate of operand size, sign-extended to 64 bits when the operand is 64-bit (Iz). */
export function fetchImmZ(size: i32): u64 {
  if (size == 2) return <u64>fetch16();
  if (size == 4) return <u64>fetch32();
  return <u64><i64><i32>fetch32();
}

export function fetchImm(size: i32): u64 {
  if (size == 1) return <u64>fetch8();
  return fetchImmZ(size);
}

/** Sign-extended 8-bit immediate (Ib as a displacement or with 83/6B). */
export function fetchS8(): u64 { return <u64><i64><i8>fetch8(); }

// ---------------------------------------------------------------- ModR/M

/**
 * The ModR/M byte at ip(), decoded (Modrm.decode inlined into the interpreter's opcode map, which
 * decodes most operands; decodeModrm as a call for the rest): the register form (mod 3), about
 * half of them, in place; memory operands through decodeModrmByte, out of line. A static method
 * only so that AssemblyScript's @inline applies (see mmu.ts Lin).
 */
export class Modrm {
  @inline static decode(): void {
    const m = fetch8();
    if (m >= 0xc0) {
      modrmMod = 3;
      modrmReg = <i32>((m >> 3) & 7) | (<i32>(rex & 4) << 1);
      modrmRm = <i32>(m & 7) | (<i32>(rex & 1) << 3);
      return; // eaRipRel and eaSpBase describe memory operands only (ea(), POP r/m)
    }
    decodeModrmByte(m);
  }
}

export function decodeModrm(): void { Modrm.decode(); }

/** Decode a ModR/M byte the caller already fetched (x87 escapes look at it first). */
export function decodeModrmByte(m: u32): void {
  const mod = <i32>(m >> 6);
  const reg = <i32>((m >> 3) & 7) | (<i32>(rex & 4) << 1);
  let rm = <i32>(m & 7);
  modrmMod = mod;
  modrmReg = reg;
  if (mod == 3) {
    modrmRm = rm | (<i32>(rex & 1) << 3);
    return;
  }
  eaRipRel = false;
  eaSpBase = false;
  let seg = DS;
  let off: u64 = 0;
  if (adsize == 2) {
    // 16-bit addressing (table 2-1)
    switch (rm) {
      case 0: off = gpr(3) + gpr(6); break;
      case 1: off = gpr(3) + gpr(7); break;
      case 2: off = gpr(5) + gpr(6); seg = SS; break;
      case 3: off = gpr(5) + gpr(7); seg = SS; break;
      case 4: off = gpr(6); break;
      case 5: off = gpr(7); break;
      case 6:
        if (mod == 0) off = <u64>fetch16();
        else { off = gpr(5); seg = SS; }
        break;
      default: off = gpr(3); break;
    }
    if (mod == 1) off += fetchS8();
    else if (mod == 2) off += <u64>fetch16();
    off &= 0xffff;
  } else {
    // 32/64-bit addressing (tables 2-2, 2-3)
    if (rm == 4) {
      const sib = fetch8();
      const scale = <u64>(sib >> 6);
      const idx = <i32>((sib >> 3) & 7) | (<i32>(rex & 2) << 2);
      let base = <i32>(sib & 7);
      if (base == 5 && mod == 0) {
        off = fetchS32();
      } else {
        base |= <i32>(rex & 1) << 3;
        off = gpr(base);
        if (base == 4 || base == 5) seg = SS;
        eaSpBase = base == 4;
      }
      if (idx != 4) off += gpr(idx) << scale;
    } else if (rm == 5 && mod == 0) {
      off = fetchS32();
      if (codeBits == 64) eaRipRel = true;
    } else {
      rm |= <i32>(rex & 1) << 3;
      off = gpr(rm);
      // only rBP (and rSP, through a SIB) default to SS; R13 (REX.B + 101) uses DS like any other
      // base (SDM vol. 1 3.7.4 / table 3-5 "Default Segment Selection Rules"; vol. 2A 2.2.1.2)
      if (rm == 5) seg = SS;
    }
    if (mod == 1) off += fetchS8();
    else if (mod == 2) off += fetchS32();
    if (adsize == 4) off &= 0xffffffff;
  }
  eaSeg = segOvr >= 0 ? segOvr : seg;
  eaOff = off;
  modrmRm = -1;
}

function fetchS32(): u64 { return <u64><i64><i32>fetch32(); }

/**
 * The effective address offset. RIP-relative addresses are relative to the end of the
 * instruction, so handlers fetch their immediates before touching the memory operand.
 */
export function ea(): u64 {
  if (eaRipRel) {
    const a = eaOff + ip();
    return adsize == 4 ? a & 0xffffffff : a;
  }
  return eaOff;
}

// ---------------------------------------------------------------- operands

/**
 * A memory operand at seg:off: inlined into rmRead and rmWrite, so that the TLB hit (Lin.read,
 * Lin.write) is there rather than one call further; memRead and memWrite for the other callers.
 * Static methods only so that AssemblyScript's @inline applies (see mmu.ts Lin).
 */
class Mem {
  @inline static read(seg: i32, off: u64, size: i32): u64 {
    return Lin.read(linAddr(seg, off, size, false), size, cpl == 3);
  }

  @inline static write(seg: i32, off: u64, size: i32, v: u64): void {
    Lin.write(linAddr(seg, off, size, true), size, v, cpl == 3);
  }
}

export function memRead(seg: i32, off: u64, size: i32): u64 { return Mem.read(seg, off, size); }
export function memWrite(seg: i32, off: u64, size: i32, v: u64): void { Mem.write(seg, off, size, v); }

/**
 * rmRead and rmWrite with their register forms inlined (the memory forms, with their TLB lookups,
 * stay calls): the interpreter's opcode map reaches most r/m operands through here.
 */
export class Rm {
  @inline static read(size: i32): u64 {
    if (modrmMod == 3 && !lock) return readReg(size, modrmRm, rex != 0);
    return rmRead(size);
  }

  /** rmWrite with its register form inlined. */
  @inline static write(size: i32, v: u64): void {
    if (modrmMod == 3) writeReg(size, modrmRm, v, rex != 0);
    else rmWrite(size, v);
  }
}

export function rmRead(size: i32): u64 {
  if (lock) ud(); // a locked instruction reads its destination through the read-modify-write path
  if (modrmMod == 3) return readReg(size, modrmRm, rex != 0);
  return Mem.read(eaSeg, ea(), size);
}

export function rmWrite(size: i32, v: u64): void {
  if (modrmMod == 3) writeReg(size, modrmRm, v, rex != 0);
  else Mem.write(eaSeg, ea(), size, v);
}

export function regRead(size: i32): u64 { return readReg(size, modrmReg, rex != 0); }
export function regWrite(size: i32, v: u64): void { writeReg(size, modrmReg, v, rex != 0); }

// ---------------------------------------------------------------- stack

export function stackLin(off: u64, size: i32, write: bool): u64 {
  return linAddr(SS, off & stackMask, size, write);
}

export function push(size: i32, v: u64): void {
  const sp = gpr(4);
  const nsp = (sp - <u64>size) & stackMask;
  Lin.write(stackLin(nsp, size, true), size, v & maskOf(size), cpl == 3);
  setGpr(4, (sp & ~stackMask) | nsp);
}

export function pop(size: i32): u64 {
  const sp = gpr(4);
  const v = Lin.read(stackLin(sp, size, false), size, cpl == 3);
  setGpr(4, (sp & ~stackMask) | ((sp + <u64>size) & stackMask));
  return v;
}

/** Read the stack `depth` bytes above the stack pointer without popping. */
export function peek(depth: u64, size: i32): u64 {
  return Lin.read(stackLin(gpr(4) + depth, size, false), size, cpl == 3);
}

/** Operand size of PUSH/POP/CALL/RET: 64 by default in 64-bit mode (vol. 2A 2.2.1.7). */
export function stackOpsize(): i32 {
  if (codeBits == 64) return has66 ? 2 : 8;
  return opsize;
}
