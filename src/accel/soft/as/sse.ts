/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. SSE/SSE2 (SDM vol. 1 chapters 10-11, instruction pages in vol. 2) and
// FXSAVE/FXRSTOR/LDMXCSR/STMXCSR. The x87 instructions are in fpu.ts.
//
// The x87/SSE state lives in the state block as a live FXSAVE image (O_FX), so FXSAVE and
// FXRSTOR are copies and a JIT can address XMM registers directly. MMX and the SSE/SSE2 forms
// that take MMX registers are at the end (mmx()). Not here: SSE3+, MXCSR rounding modes other than round-to-nearest, the
// MXCSR exception flags and #XM.
// Legacy-SSE memory operands of 16 bytes must be aligned (#GP(0)) except for the unaligned moves.

import {
  S, O_FX, O_SSE_TMP, FX_MXCSR, FX_MXCSR_MASK, FX_XMM, FX_ST, FX_FSW, FX_FTW, cr0, cr4, cpl, codeBits,
  CR0_EM, CR0_TS, CR4_OSFXSR, readReg, writeReg, gpr, DS, F_ZF, F_PF, F_CF,
} from './state';
import { fault, gp, ud, NM } from './fault';
import { readLin, writeLin, probeWrite } from './mmu';
import { linAddr } from './seg';
import {
  modrmMod, modrmReg, modrmRm, eaSeg, ea, decodeModrm, fetch8, rex, has66, rep, adsize, segOvr,
} from './decode';
import { setEager } from './flags';

const MXCSR_MASK: u32 = 0xffbf; // DAZ is not supported

function xmm(i: i32): u32 { return S + O_FX + FX_XMM + (<u32>i << 4); }
function tmp(): u32 { return S + O_SSE_TMP; }

// ---------------------------------------------------------------- FXSAVE / FXRSTOR / MXCSR

function sseCheck(): void {
  const c0 = cr0();
  if ((cr4() & CR4_OSFXSR) == 0 || (c0 & CR0_EM) != 0) ud();
  if ((c0 & CR0_TS) != 0) fault(NM, 0, false);
}

/** 0F AE /0-/3 with a memory operand (vol. 2A FXSAVE, FXRSTOR, LDMXCSR, STMXCSR). */
export function fxGroup(op: i32): void {
  const p = S + O_FX;
  if (op <= 1) {
    if ((cr0() & (CR0_EM | CR0_TS)) != 0) fault(NM, 0, false);
    const lin = linAddr(eaSeg, ea(), 512, op == 0);
    if ((lin & 15) != 0) gp(0);
    const user = cpl == 3;
    const nx = codeBits == 64 ? 16 : 8;
    // the image holds ST(0)..ST(7) in stack order; the state keeps physical registers (R0..R7)
    if (op == 0) {
      probeWrite(lin, 512, user);
      store<u32>(p + FX_MXCSR_MASK, MXCSR_MASK);
      const top = (<u32>load<u16>(p + 2) >> 11) & 7;
      for (let i: u32 = 0; i < 160 + <u32>nx * 16; i += 8) {
        let src = p + i;
        if (i >= 32 && i < 160) src = p + 32 + ((((i - 32) >> 4) + top) & 7) * 16 + (i & 15);
        writeLin(lin + <u64>i, 8, load<u64>(src), user);
      }
    } else {
      const mx = <u32>readLin(lin + FX_MXCSR, 4, user);
      if ((mx & ~MXCSR_MASK) != 0) gp(0);
      const top = (<u32>readLin(lin + 2, 2, user) >> 11) & 7;
      for (let i: u32 = 0; i < 160 + <u32>nx * 16; i += 8) {
        if (i == 8 || i == 16 || i == 24) continue; // FIP/FDP are not kept; MXCSR below
        let dst = p + i;
        if (i >= 32 && i < 160) dst = p + 32 + ((((i - 32) >> 4) + top) & 7) * 16 + (i & 15);
        store<u64>(dst, readLin(lin + <u64>i, 8, user));
      }
      store<u32>(p + FX_MXCSR, mx);
    }
    return;
  }
  sseCheck();
  if (op == 2) { // LDMXCSR
    const v = <u32>readLin(linAddr(eaSeg, ea(), 4, false), 4, cpl == 3);
    if ((v & ~MXCSR_MASK) != 0) gp(0);
    store<u32>(p + FX_MXCSR, v);
  } else { // STMXCSR
    writeLin(linAddr(eaSeg, ea(), 4, true), 4, <u64>load<u32>(p + FX_MXCSR), cpl == 3);
  }
}

// ---------------------------------------------------------------- operands

/** The source operand (XMM register or 16 bytes of memory, copied to scratch); returns its address. */
function src128(aligned: bool): u32 {
  if (modrmMod == 3) return xmm(modrmRm);
  const lin = linAddr(eaSeg, ea(), 16, false);
  if (aligned && (lin & 15) != 0) gp(0);
  const user = cpl == 3;
  const lo = readLin(lin, 8, user);
  const hi = readLin(lin + 8, 8, user);
  store<u64>(tmp(), lo);
  store<u64>(tmp() + 8, hi);
  return tmp();
}

/** Low `size` bytes of the source (register or memory), zero-extended in scratch. */
function srcLow(size: i32): u32 {
  if (modrmMod == 3) return xmm(modrmRm);
  const v = readLin(linAddr(eaSeg, ea(), size, false), size, cpl == 3);
  store<u64>(tmp(), v);
  store<u64>(tmp() + 8, 0);
  return tmp();
}

function store128(p: u32, aligned: bool): void {
  if (modrmMod == 3) {
    copy128(xmm(modrmRm), p);
    return;
  }
  const lin = linAddr(eaSeg, ea(), 16, true);
  if (aligned && (lin & 15) != 0) gp(0);
  const user = cpl == 3;
  probeWrite(lin, 16, user);
  writeLin(lin, 8, load<u64>(p), user);
  writeLin(lin + 8, 8, load<u64>(p + 8), user);
}

function storeLow(p: u32, size: i32): void {
  if (modrmMod == 3) {
    if (size == 4) store<u32>(xmm(modrmRm), load<u32>(p));
    else store<u64>(xmm(modrmRm), load<u64>(p));
    return;
  }
  writeLin(linAddr(eaSeg, ea(), size, true), size, size == 4 ? <u64>load<u32>(p) : load<u64>(p), cpl == 3);
}

function copy128(dst: u32, src: u32): void {
  const lo = load<u64>(src);
  const hi = load<u64>(src + 8);
  store<u64>(dst, lo);
  store<u64>(dst + 8, hi);
}

// ---------------------------------------------------------------- lane helpers

const L_ADD: i32 = 0;
const L_SUB: i32 = 1;
const L_ADDUS: i32 = 2;
const L_SUBUS: i32 = 3;
const L_ADDS: i32 = 4;
const L_SUBS: i32 = 5;
const L_MINU: i32 = 6;
const L_MAXU: i32 = 7;
const L_MINS: i32 = 8;
const L_MAXS: i32 = 9;
const L_CMPEQ: i32 = 10;
const L_CMPGT: i32 = 11;
const L_AVG: i32 = 12;
const L_MULLO: i32 = 13;
const L_MULHS: i32 = 14;
const L_MULHU: i32 = 15;

function laneLoad(p: u32, w: i32, signed: bool): i64 {
  if (w == 1) return signed ? <i64>load<i8>(p) : <i64>load<u8>(p);
  if (w == 2) return signed ? <i64>load<i16>(p) : <i64>load<u16>(p);
  if (w == 4) return signed ? <i64>load<i32>(p) : <i64>load<u32>(p);
  return load<i64>(p);
}
function laneStore(p: u32, w: i32, v: i64): void {
  if (w == 1) store<u8>(p, <u8>v);
  else if (w == 2) store<u16>(p, <u16>v);
  else if (w == 4) store<u32>(p, <u32>v);
  else store<i64>(p, v);
}
function sat(v: i64, lo: i64, hi: i64): i64 { return v < lo ? lo : v > hi ? hi : v; }

/** dst[i] = dst[i] op src[i] for each `w`-byte lane of an `n`-byte register (16 XMM, 8 MMX). */
function lanes(op: i32, w: i32, d: u32, s: u32, n: u32 = 16): void {
  const bits = <i64>(w * 8);
  const umax: i64 = w == 8 ? -1 : (<i64>1 << bits) - 1;
  const smax: i64 = w == 8 ? 0x7fffffffffffffff : (<i64>1 << (bits - 1)) - 1;
  const smin: i64 = -smax - 1;
  const signed = op == L_ADDS || op == L_SUBS || op == L_MINS || op == L_MAXS || op == L_CMPGT || op == L_MULHS;
  for (let o: u32 = 0; o < n; o += <u32>w) {
    const a = laneLoad(d + o, w, signed);
    const b = laneLoad(s + o, w, signed);
    let r: i64;
    switch (op) {
      case L_ADD: r = a + b; break;
      case L_SUB: r = a - b; break;
      case L_ADDUS: r = sat(a + b, 0, umax); break;
      case L_SUBUS: r = sat(a - b, 0, umax); break;
      case L_ADDS: r = sat(a + b, smin, smax); break;
      case L_SUBS: r = sat(a - b, smin, smax); break;
      case L_MINU: case L_MINS: r = a < b ? a : b; break;
      case L_MAXU: case L_MAXS: r = a > b ? a : b; break;
      case L_CMPEQ: r = a == b ? -1 : 0; break;
      case L_CMPGT: r = a > b ? -1 : 0; break;
      case L_AVG: r = (a + b + 1) >> 1; break;
      case L_MULLO: r = a * b; break;
      case L_MULHS: case L_MULHU: r = (a * b) >> bits; break;
      default: r = 0;
    }
    laneStore(d + o, w, r);
  }
}

/** Shift each `w`-byte lane by `count` (kind 0 logical right, 1 arithmetic right, 2 left). */
function shiftLanes(kind: i32, w: i32, d: u32, count: u64, n: u32 = 16): void {
  const bits = <u64>(w * 8);
  for (let o: u32 = 0; o < n; o += <u32>w) {
    const a = laneLoad(d + o, w, kind == 1);
    let r: i64;
    if (kind == 1) r = a >> <i64>(count >= bits ? bits - 1 : count);
    else if (count >= bits) r = 0;
    else if (kind == 0) r = <i64>(<u64>a >> count);
    else r = a << <i64>count;
    laneStore(d + o, w, r);
  }
}

/** PSRLDQ / PSLLDQ: byte shifts of the whole register. */
function byteShift(d: u32, n: u32, left: bool): void {
  const t = tmp() + 16;
  copy128(t, d);
  for (let i: u32 = 0; i < 16; i++) {
    let v: u8 = 0;
    if (left) { if (i >= n) v = load<u8>(t + i - n); } else if (i + n < 16) v = load<u8>(t + i + n);
    store<u8>(d + i, v);
  }
}

/** Interleave the low (hi = false) or high halves of d and s, `w`-byte elements (PUNPCKL*, PUNPCKH*, UNPCK*). */
function unpack(d: u32, s: u32, w: i32, hi: bool, n: u32 = 16): void {
  const t = tmp() + 16;
  const half = n >> 1;
  const base: u32 = hi ? half : 0;
  for (let i: u32 = 0; i < half; i += <u32>w) {
    laneStore(t + 2 * i, w, laneLoad(d + base + i, w, false));
    laneStore(t + 2 * i + <u32>w, w, laneLoad(s + base + i, w, false));
  }
  if (n == 16) copy128(d, t); else store<u64>(d, load<u64>(t));
}

/** PACKSSWB / PACKSSDW / PACKUSWB: narrow d then s with saturation. */
function pack(d: u32, s: u32, w: i32, unsigned: bool, len: u32 = 16): void {
  const t = tmp() + 16;
  const nw = w / 2;
  const nbits = <i64>(nw * 8);
  const lo: i64 = unsigned ? 0 : -(<i64>1 << (nbits - 1));
  const hi: i64 = unsigned ? (<i64>1 << nbits) - 1 : (<i64>1 << (nbits - 1)) - 1;
  const n = len / <u32>w;
  for (let i: u32 = 0; i < n; i++) {
    laneStore(t + i * <u32>nw, nw, sat(laneLoad(d + i * <u32>w, w, true), lo, hi));
    laneStore(t + (n + i) * <u32>nw, nw, sat(laneLoad(s + i * <u32>w, w, true), lo, hi));
  }
  if (len == 16) copy128(d, t); else store<u64>(d, load<u64>(t));
}

// ---------------------------------------------------------------- floating point

function fpOp(op: u32, a: f64, b: f64): f64 {
  switch (op) {
    case 0x58: return a + b;
    case 0x59: return a * b;
    case 0x5c: return a - b;
    case 0x5e: return a / b;
    case 0x5d: return a < b ? a : b; // MIN: the second operand when unordered or both zero
    case 0x5f: return a > b ? a : b;
    default: return sqrt<f64>(b); // 0x51
  }
}

/** ADD/MUL/SUB/DIV/MIN/MAX/SQRT in PS, SS, PD, SD forms. */
function fpArith(b: u32, pfx: i32): void {
  const d = xmm(modrmReg);
  if (pfx == 2 || pfx == 3) { // scalar: F3 single, F2 double
    const single = pfx == 2;
    const s = srcLow(single ? 4 : 8);
    if (single) store<f32>(d, <f32>fpOp(b, <f64>load<f32>(d), <f64>load<f32>(s)));
    else store<f64>(d, fpOp(b, load<f64>(d), load<f64>(s)));
    return;
  }
  const s = src128(true);
  if (pfx == 0) for (let o: u32 = 0; o < 16; o += 4) store<f32>(d + o, <f32>fpOp(b, <f64>load<f32>(d + o), <f64>load<f32>(s + o)));
  else for (let o: u32 = 0; o < 16; o += 8) store<f64>(d + o, fpOp(b, load<f64>(d + o), load<f64>(s + o)));
}

/** CVTT*2SI / CVT*2SI: out-of-range and NaN give the "integer indefinite" value. */
function toInt(v: f64, size: i32, truncate: bool): u64 {
  const r = truncate ? trunc<f64>(v) : nearest<f64>(v);
  if (size == 8) {
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0)) return 0x8000000000000000;
    return <u64><i64>r;
  }
  if (!(r >= -2147483648.0 && r < 2147483648.0)) return 0x80000000;
  return <u64><u32><i32>r;
}

/** CMPPS/CMPSS/CMPPD/CMPSD predicate (imm8 0-7). */
function fpCmp(pred: u32, a: f64, b: f64): bool {
  const unord = isNaN(a) || isNaN(b);
  switch (pred & 7) {
    case 0: return a == b;
    case 1: return a < b;
    case 2: return a <= b;
    case 3: return unord;
    case 4: return !(a == b);
    case 5: return !(a < b);
    case 6: return !(a <= b);
    default: return !unord;
  }
}

// ---------------------------------------------------------------- dispatch

/** Prefix class of the current instruction: 0 none, 1 = 66, 2 = F3, 3 = F2. */
function prefixClass(): i32 {
  if (rep == 0xf3) return 2;
  if (rep == 0xf2) return 3;
  return has66 ? 1 : 0;
}

/** Whether 0F `b` is in the SSE/SSE2 opcode space handled by sse(). */
export function isSseOpcode(b: u32): bool {
  return (b >= 0x10 && b <= 0x17) || (b >= 0x28 && b <= 0x2f) || (b >= 0x50 && b <= 0x7f) || (b >= 0xc2 && b <= 0xc6) || (b >= 0xd0 && b <= 0xfe);
}

/** Execute an SSE/SSE2 instruction 0F `b`; returns false if it is not implemented. */
export function sse(b: u32): bool {
  const pfx = prefixClass();
  // MMX forms: no prefix on the integer opcodes (and PSHUFW, PINSRW, PEXTRW)
  if (pfx == 0 && ((b >= 0x60 && b <= 0x7f) || b >= 0xd0 || b == 0xc4 || b == 0xc5)) return mmx(b);
  sseCheck();
  decodeModrm();
  const d = xmm(modrmReg);
  switch (b) {
    case 0x10: // MOVUPS/MOVUPD, MOVSS, MOVSD (load)
      if (pfx >= 2) {
        const n = pfx == 2 ? 4 : 8;
        if (modrmMod == 3) {
          if (n == 4) store<u32>(d, load<u32>(xmm(modrmRm)));
          else store<u64>(d, load<u64>(xmm(modrmRm)));
        } else {
          copy128(d, srcLow(n));
        }
      } else copy128(d, src128(false));
      return true;
    case 0x11:
      if (pfx >= 2) storeLow(d, pfx == 2 ? 4 : 8);
      else store128(d, false);
      return true;
    case 0x12: case 0x13: case 0x16: case 0x17: { // MOVLPS/PD, MOVHLPS, MOVHPS/PD, MOVLHPS
      if (pfx >= 2) return false; // SSE3
      const high = b >= 0x16;
      if ((b & 1) == 0) {
        if (modrmMod == 3) {
          if (pfx == 1) ud();
          // MOVHLPS: low = source high; MOVLHPS: high = source low
          if (high) store<u64>(d + 8, load<u64>(xmm(modrmRm)));
          else store<u64>(d, load<u64>(xmm(modrmRm) + 8));
        } else {
          const v = readLin(linAddr(eaSeg, ea(), 8, false), 8, cpl == 3);
          store<u64>(d + (high ? 8 : 0), v);
        }
      } else {
        if (modrmMod == 3) ud();
        writeLin(linAddr(eaSeg, ea(), 8, true), 8, load<u64>(d + (high ? 8 : 0)), cpl == 3);
      }
      return true;
    }
    case 0x14: case 0x15: { // UNPCKLPS/PD, UNPCKHPS/PD
      if (pfx >= 2) return false;
      unpack(d, src128(true), pfx == 1 ? 8 : 4, b == 0x15);
      return true;
    }
    case 0x28: if (pfx >= 2) return false; copy128(d, src128(true)); return true; // MOVAPS/MOVAPD
    case 0x29: case 0x2b: if (pfx >= 2) return false; store128(d, true); return true; // MOVAPS store, MOVNTPS/PD
    case 0x2a: { // CVTSI2SS / CVTSI2SD
      if (pfx < 2) return false;
      const size = (rex & 8) != 0 ? 8 : 4;
      const v = modrmMod == 3 ? readReg(size, modrmRm, true) : readLin(linAddr(eaSeg, ea(), size, false), size, cpl == 3);
      const f = size == 8 ? <f64><i64>v : <f64><i32>v;
      if (pfx == 2) store<f32>(d, <f32>f);
      else store<f64>(d, f);
      return true;
    }
    case 0x2c: case 0x2d: { // CVTT(SS|SD)2SI, CVT(SS|SD)2SI
      if (pfx < 2) return false;
      const s = srcLow(pfx == 2 ? 4 : 8);
      const f = pfx == 2 ? <f64>load<f32>(s) : load<f64>(s);
      const size = (rex & 8) != 0 ? 8 : 4;
      writeReg(size, modrmReg, toInt(f, size, b == 0x2c), true);
      return true;
    }
    case 0x2e: case 0x2f: { // UCOMISS/SD, COMISS/SD: ZF PF CF, others cleared
      if (pfx >= 2) return false;
      const s = srcLow(pfx == 1 ? 8 : 4);
      const a = pfx == 1 ? load<f64>(d) : <f64>load<f32>(d);
      const c = pfx == 1 ? load<f64>(s) : <f64>load<f32>(s);
      let f: u32 = 0;
      if (isNaN(a) || isNaN(c)) f = F_ZF | F_PF | F_CF;
      else if (a < c) f = F_CF;
      else if (a == c) f = F_ZF;
      setEager(f);
      return true;
    }
    case 0x50: { // MOVMSKPS / MOVMSKPD
      if (pfx >= 2 || modrmMod != 3) return false;
      const s = xmm(modrmRm);
      let m: u64 = 0;
      if (pfx == 0) for (let i: u32 = 0; i < 4; i++) m |= <u64>(load<u32>(s + i * 4) >> 31) << i;
      else for (let i: u32 = 0; i < 2; i++) m |= (load<u64>(s + i * 8) >> 63) << i;
      writeReg(4, modrmReg, m, true);
      return true;
    }
    case 0x51: case 0x58: case 0x59: case 0x5c: case 0x5d: case 0x5e: case 0x5f:
      fpArith(b, pfx);
      return true;
    case 0x5a: { // CVTSS2SD / CVTSD2SS / CVTPS2PD / CVTPD2PS
      if (pfx == 2) { store<f64>(d, <f64>load<f32>(srcLow(4))); return true; }
      if (pfx == 3) { store<f32>(d, <f32>load<f64>(srcLow(8))); return true; }
      if (pfx == 0) {
        const s = srcLow(8);
        const x = load<f32>(s);
        const y = load<f32>(s + 4);
        store<f64>(d, <f64>x);
        store<f64>(d + 8, <f64>y);
      } else {
        const s = src128(true);
        const x = <f32>load<f64>(s);
        const y = <f32>load<f64>(s + 8);
        store<f32>(d, x);
        store<f32>(d + 4, y);
        store<u64>(d + 8, 0);
      }
      return true;
    }
    case 0x5b: { // CVTDQ2PS (none), CVTPS2DQ (66), CVTTPS2DQ (F3)
      if (pfx == 3) return false;
      const s = src128(true);
      const t = tmp() + 16;
      for (let o: u32 = 0; o < 16; o += 4) {
        if (pfx == 0) store<f32>(t + o, <f32>load<i32>(s + o));
        else store<u32>(t + o, <u32>toInt(<f64>load<f32>(s + o), 4, pfx == 2));
      }
      copy128(d, t);
      return true;
    }
    case 0xe6: { // CVTDQ2PD (F3), CVTPD2DQ (F2), CVTTPD2DQ (66)
      if (pfx == 0) return false;
      if (pfx == 2) {
        const s = srcLow(8);
        const x = <f64>load<i32>(s);
        const y = <f64>load<i32>(s + 4);
        store<f64>(d, x);
        store<f64>(d + 8, y);
      } else {
        const s = src128(true);
        const x = <u32>toInt(load<f64>(s), 4, pfx == 1);
        const y = <u32>toInt(load<f64>(s + 8), 4, pfx == 1);
        store<u32>(d, x);
        store<u32>(d + 4, y);
        store<u64>(d + 8, 0);
      }
      return true;
    }
    case 0x52: case 0x53: { // RSQRTPS/SS, RCPPS/SS (computed exactly; the SDM allows 1.5 * 2^-12 error)
      if (pfx == 1 || pfx == 3) return false;
      const scalar = pfx == 2;
      const s = scalar ? srcLow(4) : src128(true);
      const n: u32 = scalar ? 1 : 4;
      const t = tmp() + 16;
      copy128(t, s);
      for (let i: u32 = 0; i < n; i++) {
        const v = load<f32>(t + i * 4);
        store<f32>(d + i * 4, b == 0x52 ? <f32>1.0 / sqrt<f32>(v) : <f32>1.0 / v);
      }
      return true;
    }
    case 0xf7: { // MASKMOVDQU: byte stores to [DS:rDI] where the mask byte's top bit is set
      if (pfx != 1 || modrmMod != 3) return false;
      const mask = xmm(modrmRm);
      const base = gpr(7);
      for (let i: u32 = 0; i < 16; i++) {
        if ((load<u8>(mask + i) & 0x80) == 0) continue;
        const off = (base + <u64>i) & (adsize == 8 ? 0xffffffffffffffff : adsize == 4 ? 0xffffffff : 0xffff);
        writeLin(linAddr(segOvr >= 0 ? segOvr : DS, off, 1, true), 1, <u64>load<u8>(d + i), cpl == 3);
      }
      return true;
    }
    case 0x54: case 0x55: case 0x56: case 0x57: case 0xdb: case 0xdf: case 0xeb: case 0xef: {
      if (pfx >= 2) return false;
      const s = src128(true);
      for (let o: u32 = 0; o < 16; o += 8) {
        const a = load<u64>(d + o);
        const c = load<u64>(s + o);
        let r: u64;
        if (b == 0x54 || b == 0xdb) r = a & c;
        else if (b == 0x55 || b == 0xdf) r = ~a & c;
        else if (b == 0x56 || b == 0xeb) r = a | c;
        else r = a ^ c;
        store<u64>(d + o, r);
      }
      return true;
    }
    case 0x60: case 0x61: case 0x62: case 0x6c: // PUNPCKL BW WD DQ QDQ
      if (pfx != 1) return false;
      unpack(d, src128(true), b == 0x60 ? 1 : b == 0x61 ? 2 : b == 0x62 ? 4 : 8, false);
      return true;
    case 0x68: case 0x69: case 0x6a: case 0x6d: // PUNPCKH BW WD DQ QDQ
      if (pfx != 1) return false;
      unpack(d, src128(true), b == 0x68 ? 1 : b == 0x69 ? 2 : b == 0x6a ? 4 : 8, true);
      return true;
    case 0x63: if (pfx != 1) return false; pack(d, src128(true), 2, false); return true; // PACKSSWB
    case 0x6b: if (pfx != 1) return false; pack(d, src128(true), 4, false); return true; // PACKSSDW
    case 0x67: if (pfx != 1) return false; pack(d, src128(true), 2, true); return true; // PACKUSWB
    case 0x64: case 0x65: case 0x66: // PCMPGT B W D
      if (pfx != 1) return false;
      lanes(L_CMPGT, 1 << <i32>(b - 0x64), d, src128(true));
      return true;
    case 0x74: case 0x75: case 0x76: // PCMPEQ B W D
      if (pfx != 1) return false;
      lanes(L_CMPEQ, 1 << <i32>(b - 0x74), d, src128(true));
      return true;
    case 0x6e: { // MOVD / MOVQ xmm, r/m
      if (pfx != 1) return false;
      const size = (rex & 8) != 0 ? 8 : 4;
      const v = modrmMod == 3 ? readReg(size, modrmRm, true) : readLin(linAddr(eaSeg, ea(), size, false), size, cpl == 3);
      store<u64>(d, v);
      store<u64>(d + 8, 0);
      return true;
    }
    case 0x7e: {
      if (pfx == 2) { // MOVQ xmm, xmm/m64
        const s = srcLow(8);
        store<u64>(d, load<u64>(s));
        store<u64>(d + 8, 0);
        return true;
      }
      if (pfx != 1) return false;
      const size = (rex & 8) != 0 ? 8 : 4; // MOVD / MOVQ r/m, xmm
      const v = size == 8 ? load<u64>(d) : <u64>load<u32>(d);
      if (modrmMod == 3) writeReg(size, modrmRm, v, true);
      else writeLin(linAddr(eaSeg, ea(), size, true), size, v, cpl == 3);
      return true;
    }
    case 0x6f: // MOVDQA / MOVDQU
      if (pfx != 1 && pfx != 2) return false;
      copy128(d, src128(pfx == 1));
      return true;
    case 0x7f:
      if (pfx != 1 && pfx != 2) return false;
      store128(d, pfx == 1);
      return true;
    case 0x70: { // PSHUFD / PSHUFHW / PSHUFLW
      const s = src128(true);
      const imm = fetch8();
      const t = tmp() + 16;
      copy128(t, s);
      if (pfx == 1) {
        for (let i: u32 = 0; i < 4; i++) store<u32>(d + i * 4, load<u32>(t + ((imm >> (i * 2)) & 3) * 4));
      } else if (pfx == 2 || pfx == 3) {
        const base: u32 = pfx == 2 ? 8 : 0;
        store<u64>(d + (8 - base), load<u64>(t + (8 - base)));
        for (let i: u32 = 0; i < 4; i++) store<u16>(d + base + i * 2, load<u16>(t + base + ((imm >> (i * 2)) & 3) * 2));
      } else return false;
      return true;
    }
    case 0x71: case 0x72: case 0x73: { // shifts by immediate
      if (pfx != 1 || modrmMod != 3) return false;
      const imm = <u64>fetch8();
      const r = xmm(modrmRm);
      const op = modrmReg & 7;
      const w = b == 0x71 ? 2 : b == 0x72 ? 4 : 8;
      if (b == 0x73 && op == 3) { byteShift(r, imm > 16 ? 16 : <u32>imm, false); return true; } // PSRLDQ
      if (b == 0x73 && op == 7) { byteShift(r, imm > 16 ? 16 : <u32>imm, true); return true; } // PSLLDQ
      if (op == 2) shiftLanes(0, w, r, imm);
      else if (op == 4 && b != 0x73) shiftLanes(1, w, r, imm);
      else if (op == 6) shiftLanes(2, w, r, imm);
      else ud();
      return true;
    }
    case 0xd1: case 0xd2: case 0xd3: case 0xe1: case 0xe2: case 0xf1: case 0xf2: case 0xf3: { // shifts by xmm/m128
      if (pfx != 1) return false;
      const count = load<u64>(src128(true));
      const w = 1 << <i32>(b & 3);
      shiftLanes(b >= 0xf0 ? 2 : b >= 0xe0 ? 1 : 0, w, d, count);
      return true;
    }
    case 0xc2: { // CMPPS / CMPSS / CMPPD / CMPSD
      const single = pfx == 0 || pfx == 2;
      const s = pfx >= 2 ? srcLow(single ? 4 : 8) : src128(true);
      const pred = fetch8();
      const n: u32 = pfx >= 2 ? 1 : single ? 4 : 2;
      for (let i: u32 = 0; i < n; i++) {
        if (single) store<u32>(d + i * 4, fpCmp(pred, <f64>load<f32>(d + i * 4), <f64>load<f32>(s + i * 4)) ? 0xffffffff : 0);
        else store<u64>(d + i * 8, fpCmp(pred, load<f64>(d + i * 8), load<f64>(s + i * 8)) ? 0xffffffffffffffff : 0);
      }
      return true;
    }
    case 0xc4: { // PINSRW
      if (pfx != 1) return false;
      const v = modrmMod == 3 ? readReg(2, modrmRm, true) : readLin(linAddr(eaSeg, ea(), 2, false), 2, cpl == 3);
      const imm = fetch8() & 7;
      store<u16>(d + imm * 2, <u16>v);
      return true;
    }
    case 0xc5: { // PEXTRW r, xmm, imm
      if (pfx != 1 || modrmMod != 3) return false;
      const imm = fetch8() & 7;
      writeReg(4, modrmReg, <u64>load<u16>(xmm(modrmRm) + imm * 2), true);
      return true;
    }
    case 0xc6: { // SHUFPS / SHUFPD
      if (pfx >= 2) return false;
      const s = src128(true);
      const imm = fetch8();
      const t = tmp() + 16;
      if (pfx == 0) {
        store<u32>(t, load<u32>(d + (imm & 3) * 4));
        store<u32>(t + 4, load<u32>(d + ((imm >> 2) & 3) * 4));
        store<u32>(t + 8, load<u32>(s + ((imm >> 4) & 3) * 4));
        store<u32>(t + 12, load<u32>(s + ((imm >> 6) & 3) * 4));
      } else {
        store<u64>(t, load<u64>(d + (imm & 1) * 8));
        store<u64>(t + 8, load<u64>(s + ((imm >> 1) & 1) * 8));
      }
      copy128(d, t);
      return true;
    }
    case 0xd6: { // MOVQ xmm/m64, xmm
      if (pfx != 1) return false;
      if (modrmMod == 3) {
        store<u64>(xmm(modrmRm), load<u64>(d));
        store<u64>(xmm(modrmRm) + 8, 0);
      } else writeLin(linAddr(eaSeg, ea(), 8, true), 8, load<u64>(d), cpl == 3);
      return true;
    }
    case 0xd7: { // PMOVMSKB
      if (pfx != 1 || modrmMod != 3) return false;
      const s = xmm(modrmRm);
      let m: u64 = 0;
      for (let i: u32 = 0; i < 16; i++) m |= <u64>(load<u8>(s + i) >> 7) << i;
      writeReg(4, modrmReg, m, true);
      return true;
    }
    case 0xe7: // MOVNTDQ
      if (pfx != 1 || modrmMod == 3) return false;
      store128(d, true);
      return true;
    case 0xf4: { // PMULUDQ
      if (pfx != 1) return false;
      const s = src128(true);
      store<u64>(d, <u64>load<u32>(d) * <u64>load<u32>(s));
      store<u64>(d + 8, <u64>load<u32>(d + 8) * <u64>load<u32>(s + 8));
      return true;
    }
    case 0xf5: { // PMADDWD
      if (pfx != 1) return false;
      const s = src128(true);
      for (let o: u32 = 0; o < 16; o += 4) {
        const r = <i32>load<i16>(d + o) * <i32>load<i16>(s + o) + <i32>load<i16>(d + o + 2) * <i32>load<i16>(s + o + 2);
        store<i32>(d + o, r);
      }
      return true;
    }
    case 0xf6: { // PSADBW
      if (pfx != 1) return false;
      const s = src128(true);
      for (let h: u32 = 0; h < 16; h += 8) {
        let sum: u64 = 0;
        for (let i: u32 = 0; i < 8; i++) {
          const x = <i32>load<u8>(d + h + i) - <i32>load<u8>(s + h + i);
          sum += <u64>(x < 0 ? -x : x);
        }
        store<u64>(d + h, sum);
      }
      return true;
    }
    default:
      break;
  }
  if (pfx != 1) return false;
  // the remaining 66 0F Dx-Fx integer lane operations
  const lw = laneOp(b);
  if (lw < 0) return false;
  lanes(lw >> 4, lw & 15, d, src128(true));
  return true;
}

/** 0F Dx-Fx integer lane operations: (operation << 4) | lane width, or -1. */
function laneOp(b: u32): i32 {
  switch (b) {
    case 0xd4: return (L_ADD << 4) | 8;
    case 0xd5: return (L_MULLO << 4) | 2;
    case 0xd8: return (L_SUBUS << 4) | 1;
    case 0xd9: return (L_SUBUS << 4) | 2;
    case 0xda: return (L_MINU << 4) | 1;
    case 0xdc: return (L_ADDUS << 4) | 1;
    case 0xdd: return (L_ADDUS << 4) | 2;
    case 0xde: return (L_MAXU << 4) | 1;
    case 0xe0: return (L_AVG << 4) | 1;
    case 0xe3: return (L_AVG << 4) | 2;
    case 0xe4: return (L_MULHU << 4) | 2;
    case 0xe5: return (L_MULHS << 4) | 2;
    case 0xe8: return (L_SUBS << 4) | 1;
    case 0xe9: return (L_SUBS << 4) | 2;
    case 0xea: return (L_MINS << 4) | 2;
    case 0xec: return (L_ADDS << 4) | 1;
    case 0xed: return (L_ADDS << 4) | 2;
    case 0xee: return (L_MAXS << 4) | 2;
    case 0xf8: return (L_SUB << 4) | 1;
    case 0xf9: return (L_SUB << 4) | 2;
    case 0xfa: return (L_SUB << 4) | 4;
    case 0xfb: return (L_SUB << 4) | 8;
    case 0xfc: return (L_ADD << 4) | 1;
    case 0xfd: return (L_ADD << 4) | 2;
    case 0xfe: return (L_ADD << 4) | 4;
    default: return -1;
  }
}

// ---------------------------------------------------------------- MMX

// MMX (SDM vol. 1 chapter 9; instruction pages in vol. 2). MMi is the mantissa (bits 63:0) of
// physical x87 register Ri (vol. 1 9.5, figure 9-2), kept in the FXSAVE image at FX_ST + 16 * i.
// Vol. 1 9.5.1: every MMX instruction except EMMS sets the x87 TOP to 0 and all tags to valid;
// one that writes an MMX register also sets that register's bits 79:64 to all ones. EMMS sets
// all tags empty. Exceptions (vol. 2 table "Exception Conditions for MMX Instructions"):
// #UD with CR0.EM = 1, #NM with CR0.TS = 1 (no CR4.OSFXSR requirement; #MF is never raised
// here, see fpu.ts). MMX memory operands have no alignment requirement. REX.R/REX.B do not
// extend an MMX register number (vol. 2A 2.2.1.2: they select only MM0-7).

function mm(i: i32): u32 { return S + O_FX + FX_ST + (<u32>(i & 7) << 4); }

/** x87 state after an MMX instruction (vol. 1 9.5.1): TOP = 0, all tags valid. */
function mmxTouch(): void {
  const p = S + O_FX;
  store<u16>(p + FX_FSW, load<u16>(p + FX_FSW) & ~(<u16>0x3800));
  store<u8>(p + FX_FTW, 0xff);
}

/** Write an MMX register's exponent/sign bits (79:64) to ones and apply mmxTouch. */
function mmxWrote(i: i32): void {
  store<u16>(mm(i) + 8, 0xffff);
  mmxTouch();
}

/** The 64-bit source operand (MMX register or memory copied to scratch); returns its address. */
function src64(): u32 {
  if (modrmMod == 3) return mm(modrmRm);
  store<u64>(tmp(), readLin(linAddr(eaSeg, ea(), 8, false), 8, cpl == 3));
  return tmp();
}

/** PUNPCKL* mm, mm/m32: a memory source is 32 bits (vol. 2B PUNPCKLBW). */
function src32(): u32 {
  if (modrmMod == 3) return mm(modrmRm);
  store<u64>(tmp(), readLin(linAddr(eaSeg, ea(), 4, false), 4, cpl == 3));
  return tmp();
}

/** Execute the MMX form (no prefix) of 0F `b`; returns false if it does not exist. */
function mmx(b: u32): bool {
  // no MMX form (vol. 2D A.3 opcode map): left to the caller
  if (b == 0x6c || b == 0x6d || (b >= 0x78 && b <= 0x7d) || b == 0xd0 || b == 0xd6) return false;
  const c0 = cr0();
  if ((c0 & CR0_EM) != 0) ud();
  if ((c0 & CR0_TS) != 0) fault(NM, 0, false);
  if (b == 0x77) { // EMMS (vol. 2A EMMS): all tags empty
    store<u8>(S + O_FX + FX_FTW, 0);
    return true;
  }
  decodeModrm();
  const r = modrmReg & 7;
  const d = mm(r);
  switch (b) {
    case 0x6e: { // MOVD/MOVQ mm, r/m32/64 (vol. 2B MOVD/MOVQ): zero-extended
      const size = (rex & 8) != 0 ? 8 : 4;
      const v = modrmMod == 3 ? readReg(size, modrmRm, true) : readLin(linAddr(eaSeg, ea(), size, false), size, cpl == 3);
      store<u64>(d, v);
      break;
    }
    case 0x7e: { // MOVD/MOVQ r/m32/64, mm
      const size = (rex & 8) != 0 ? 8 : 4;
      const v = size == 8 ? load<u64>(d) : <u64>load<u32>(d);
      if (modrmMod == 3) writeReg(size, modrmRm, v, true);
      else writeLin(linAddr(eaSeg, ea(), size, true), size, v, cpl == 3);
      mmxTouch();
      return true;
    }
    case 0x6f: store<u64>(d, load<u64>(src64())); break; // MOVQ mm, mm/m64
    case 0x7f: case 0xe7: { // MOVQ mm/m64, mm; MOVNTQ m64, mm (vol. 2B MOVNTQ: memory only)
      if (modrmMod == 3) {
        if (b == 0xe7) ud();
        store<u64>(mm(modrmRm), load<u64>(d));
        mmxWrote(modrmRm);
        return true;
      }
      writeLin(linAddr(eaSeg, ea(), 8, true), 8, load<u64>(d), cpl == 3);
      mmxTouch();
      return true;
    }
    case 0x60: case 0x61: case 0x62: // PUNPCKL BW WD DQ mm, mm/m32
      unpack(d, src32(), 1 << <i32>(b - 0x60), false, 8);
      break;
    case 0x68: case 0x69: case 0x6a: // PUNPCKH BW WD DQ mm, mm/m64
      unpack(d, src64(), 1 << <i32>(b - 0x68), true, 8);
      break;
    case 0x63: pack(d, src64(), 2, false, 8); break; // PACKSSWB (vol. 2B PACKSSWB/PACKSSDW)
    case 0x6b: pack(d, src64(), 4, false, 8); break; // PACKSSDW
    case 0x67: pack(d, src64(), 2, true, 8); break; // PACKUSWB
    case 0x64: case 0x65: case 0x66: // PCMPGT B W D
      lanes(L_CMPGT, 1 << <i32>(b - 0x64), d, src64(), 8);
      break;
    case 0x74: case 0x75: case 0x76: // PCMPEQ B W D
      lanes(L_CMPEQ, 1 << <i32>(b - 0x74), d, src64(), 8);
      break;
    case 0x70: { // PSHUFW mm, mm/m64, imm8 (vol. 2B PSHUFW)
      const s = load<u64>(src64());
      const imm = fetch8();
      let v: u64 = 0;
      for (let i: u32 = 0; i < 4; i++) v |= ((s >> (<u64>((imm >> (i * 2)) & 3) * 16)) & 0xffff) << (<u64>i * 16);
      store<u64>(d, v);
      break;
    }
    case 0x71: case 0x72: case 0x73: { // PSRL/PSRA/PSLL W D Q mm, imm8 (vol. 2B PSLLW..., PSRAW..., PSRLW...)
      if (modrmMod != 3) ud();
      const imm = <u64>fetch8();
      const t = mm(modrmRm);
      const op = modrmReg & 7;
      const w = b == 0x71 ? 2 : b == 0x72 ? 4 : 8;
      if (op == 2) shiftLanes(0, w, t, imm, 8);
      else if (op == 4 && b != 0x73) shiftLanes(1, w, t, imm, 8);
      else if (op == 6) shiftLanes(2, w, t, imm, 8);
      else ud(); // PSRLDQ/PSLLDQ have no MMX form
      mmxWrote(modrmRm);
      return true;
    }
    case 0xd1: case 0xd2: case 0xd3: case 0xe1: case 0xe2: case 0xf1: case 0xf2: case 0xf3: // shifts by mm/m64
      shiftLanes(b >= 0xf0 ? 2 : b >= 0xe0 ? 1 : 0, 1 << <i32>(b & 3), d, load<u64>(src64()), 8);
      break;
    case 0xc4: { // PINSRW mm, r32/m16, imm8 (vol. 2B PINSRW)
      const v = modrmMod == 3 ? readReg(2, modrmRm, true) : readLin(linAddr(eaSeg, ea(), 2, false), 2, cpl == 3);
      const imm = fetch8() & 3;
      store<u16>(d + imm * 2, <u16>v);
      break;
    }
    case 0xc5: { // PEXTRW r32, mm, imm8 (vol. 2B PEXTRW): the register form only
      if (modrmMod != 3) ud();
      const imm = fetch8() & 3;
      writeReg(4, modrmReg, <u64>load<u16>(mm(modrmRm) + imm * 2), true);
      mmxTouch();
      return true;
    }
    case 0xd7: { // PMOVMSKB r32, mm (vol. 2B PMOVMSKB)
      if (modrmMod != 3) ud();
      const s = mm(modrmRm);
      let m: u64 = 0;
      for (let i: u32 = 0; i < 8; i++) m |= <u64>(load<u8>(s + i) >> 7) << i;
      writeReg(4, modrmReg, m, true);
      mmxTouch();
      return true;
    }
    case 0xdb: case 0xdf: case 0xeb: case 0xef: { // PAND PANDN POR PXOR
      const a = load<u64>(d);
      const c = load<u64>(src64());
      store<u64>(d, b == 0xdb ? a & c : b == 0xdf ? ~a & c : b == 0xeb ? a | c : a ^ c);
      break;
    }
    case 0xf4: { // PMULUDQ mm, mm/m64 (vol. 2B PMULUDQ)
      const s = src64();
      store<u64>(d, <u64>load<u32>(d) * <u64>load<u32>(s));
      break;
    }
    case 0xf5: { // PMADDWD (vol. 2B PMADDWD)
      const s = src64();
      for (let o: u32 = 0; o < 8; o += 4) {
        const v = <i32>load<i16>(d + o) * <i32>load<i16>(s + o) + <i32>load<i16>(d + o + 2) * <i32>load<i16>(s + o + 2);
        store<i32>(d + o, v);
      }
      break;
    }
    case 0xf6: { // PSADBW mm, mm/m64 (vol. 2B PSADBW): the sum in bits 15:0, the rest zero
      const s = src64();
      let sum: u64 = 0;
      for (let i: u32 = 0; i < 8; i++) {
        const x = <i32>load<u8>(d + i) - <i32>load<u8>(s + i);
        sum += <u64>(x < 0 ? -x : x);
      }
      store<u64>(d, sum);
      break;
    }
    case 0xf7: { // MASKMOVQ mm1, mm2 (vol. 2B MASKMOVQ): byte stores to [DS:rDI]
      if (modrmMod != 3) ud();
      const mask = mm(modrmRm);
      const base = gpr(7);
      for (let i: u32 = 0; i < 8; i++) {
        if ((load<u8>(mask + i) & 0x80) == 0) continue;
        const off = (base + <u64>i) & (adsize == 8 ? 0xffffffffffffffff : adsize == 4 ? 0xffffffff : 0xffff);
        writeLin(linAddr(segOvr >= 0 ? segOvr : DS, off, 1, true), 1, <u64>load<u8>(d + i), cpl == 3);
      }
      mmxTouch();
      return true;
    }
    default: {
      const lw = laneOp(b);
      if (lw < 0) return false;
      lanes(lw >> 4, lw & 15, d, src64(), 8);
    }
  }
  mmxWrote(r);
  return true;
}

/** MOVNTI m32/m64, r (0F C3): a plain store here. */
export function movnti(): void {
  decodeModrm();
  if (modrmMod == 3) ud();
  const size = (rex & 8) != 0 ? 8 : 4;
  writeLin(linAddr(eaSeg, ea(), size, true), size, readReg(size, modrmReg, true), cpl == 3);
}
