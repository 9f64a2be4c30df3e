/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. Integer arithmetic with exact flags: ADD/ADC/SUB/SBB/AND/OR/XOR/CMP,
// shifts and rotates (SDM vol. 2B SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD, SHRD),
// MUL/IMUL/DIV/IDIV of every width (vol. 2A/2B; #DE on a zero divisor or an overflowing
// quotient), and bit scans. Undefined flags are given fixed values (noted per function).

import { maskOf, signOf, sext, F_CF, F_OF, F_AF, F_ZF, F_STATUS } from './state';
import {
  setLazy, getCF, getStatus, setEager, szp, OP_ADD, OP_ADC, OP_SUB, OP_SBB, OP_LOGIC, OP_IMUL,
} from './flags';
import { fault, DE } from './fault';

/** ALU operation `op` (the reg field of opcodes 80-83: ADD OR ADC SBB AND SUB XOR CMP). */
export function alu(op: i32, size: i32, a: u64, b: u64): u64 { return Alu.run(op, size, a, b); }

/** alu() for inlining: the interpreter's one-byte ALU opcodes (interp.ts Exec1) use it in place. */
export class Alu {
  @inline static run(op: i32, size: i32, a: u64, b: u64): u64 {
  const m = maskOf(size);
  a &= m;
  b &= m;
  let r: u64;
  switch (op) {
    case 0: r = (a + b) & m; setLazy(OP_ADD, size, a, b, r); break;
    case 1: r = a | b; setLazy(OP_LOGIC, size, a, b, r); break;
    case 2: {
      const c = getCF();
      r = (a + b + (c ? 1 : 0)) & m;
      setLazy(c ? OP_ADC : OP_ADD, size, a, b, r);
      break;
    }
    case 3: {
      const c = getCF();
      r = (a - b - (c ? 1 : 0)) & m;
      setLazy(c ? OP_SBB : OP_SUB, size, a, b, r);
      break;
    }
    case 4: r = a & b; setLazy(OP_LOGIC, size, a, b, r); break;
    case 6: r = a ^ b; setLazy(OP_LOGIC, size, a, b, r); break;
    default: r = (a - b) & m; setLazy(OP_SUB, size, a, b, r); break; // SUB, CMP
  }
  return r;
}
}

// ---------------------------------------------------------------- shifts and rotates

/**
 * Group-2 shift/rotate `op` (ROL ROR RCL RCR SHL SHR SAL SAR) of a `size`-byte value by
 * `count` (already masked to 5 or 6 bits). A zero count changes nothing, flags included.
 * AF is left 0 where it is undefined; OF is computed for every count as for a count of 1.
 */
export function shift(op: i32, size: i32, a: u64, count: u32): u64 {
  const m = maskOf(size);
  const bits = <u32>(size * 8);
  a &= m;
  if (count == 0) return a;
  const c = <u64>count;
  let r: u64 = 0;
  let cf: bool = false;
  let ovf: bool = false;
  const sb = signOf(size);
  switch (op) {
    case 0: { // ROL: only CF and OF change
      const n = <u64>(count % bits);
      r = n == 0 ? a : ((a << n) | (a >> (<u64>bits - n))) & m;
      cf = (r & 1) != 0;
      ovf = ((r & sb) != 0) != cf;
      setEager((getStatus() & ~(F_CF | F_OF)) | (cf ? F_CF : 0) | (ovf ? F_OF : 0));
      return r;
    }
    case 1: { // ROR
      const n = <u64>(count % bits);
      r = n == 0 ? a : ((a >> n) | (a << (<u64>bits - n))) & m;
      cf = (r & sb) != 0;
      ovf = cf != ((r & (sb >> 1)) != 0);
      setEager((getStatus() & ~(F_CF | F_OF)) | (cf ? F_CF : 0) | (ovf ? F_OF : 0));
      return r;
    }
    case 2: { // RCL: rotate through CF, count mod (bits + 1) for 8/16-bit operands
      let n = count;
      if (bits < 32) n = count % (bits + 1);
      r = a;
      cf = getCF();
      for (let i: u32 = 0; i < n; i++) {
        const out = (r & sb) != 0;
        r = ((r << 1) | (cf ? 1 : 0)) & m;
        cf = out;
      }
      ovf = ((r & sb) != 0) != cf;
      setEager((getStatus() & ~(F_CF | F_OF)) | (cf ? F_CF : 0) | (ovf ? F_OF : 0));
      return r;
    }
    case 3: { // RCR
      let n = count;
      if (bits < 32) n = count % (bits + 1);
      r = a;
      cf = getCF();
      ovf = ((a & sb) != 0) != cf;
      for (let i: u32 = 0; i < n; i++) {
        const out = (r & 1) != 0;
        r = (r >> 1) | (cf ? sb : 0);
        cf = out;
      }
      setEager((getStatus() & ~(F_CF | F_OF)) | (cf ? F_CF : 0) | (ovf ? F_OF : 0));
      return r;
    }
    case 4:
    case 6: // SHL/SAL
      if (c > <u64>bits) { r = 0; cf = false; } else if (c == <u64>bits) { r = 0; cf = (a & 1) != 0; } else {
        r = (a << c) & m;
        cf = ((a >> (<u64>bits - c)) & 1) != 0;
      }
      ovf = ((r & sb) != 0) != cf;
      break;
    case 5: // SHR
      if (c > <u64>bits) { r = 0; cf = false; } else {
        cf = ((a >> (c - 1)) & 1) != 0;
        r = c == <u64>bits ? 0 : a >> c;
      }
      ovf = (a & sb) != 0;
      break;
    default: { // SAR
      const s = <i64>sext(a, size);
      const n = c >= <u64>bits ? <u64>bits - 1 : c;
      cf = ((s >> <i64>(c >= <u64>bits ? <u64>bits - 1 : c - 1)) & 1) != 0;
      r = <u64>(s >> <i64>n) & m;
      ovf = false;
      break;
    }
  }
  setEager(szp(r, size) | (cf ? F_CF : 0) | (ovf ? F_OF : 0));
  return r;
}

/** SHLD (left = true) / SHRD: shift `a` filling from `b` (vol. 2B SHLD, SHRD). */
export function shiftDouble(left: bool, size: i32, a: u64, b: u64, count: u32): u64 {
  const m = maskOf(size);
  const bits = <u64>(size * 8);
  a &= m;
  b &= m;
  if (count == 0) return a;
  let c = <u64>count;
  if (size == 2 && c > 16) {
    // result undefined by the SDM for counts above 16; behave as a 32-bit shift of b:a
    c = c & 31;
  }
  let r: u64;
  let cf: bool;
  // A count equal to the operand size (16 for r/m16) is defined (SDM vol. 2B SHLD/SHRD: only
  // "count is greater than the operand size" is undefined): the destination becomes the source
  // and CF is the last bit shifted out of the destination (bit 0 for SHLD, bit 15 for SHRD).
  if (left) {
    if (c > bits) { r = (b << (c - bits)) & m; cf = ((b >> (bits - (c - bits) - 1)) & 1) != 0; }
    else { r = ((a << c) | (b >> (bits - c))) & m; cf = ((a >> (bits - c)) & 1) != 0; }
  } else {
    if (c > bits) { r = (b >> (c - bits)) & m; cf = ((b >> (c - bits - 1)) & 1) != 0; }
    else { r = ((a >> c) | (b << (bits - c))) & m; cf = ((a >> (c - 1)) & 1) != 0; }
  }
  const sb = signOf(size);
  const ovf = ((r ^ a) & sb) != 0;
  setEager(szp(r, size) | (cf ? F_CF : 0) | (ovf ? F_OF : 0));
  return r;
}

// ---------------------------------------------------------------- multiply / divide

/** High 64 bits of the unsigned 128-bit product a * b. */
export function mulHiU(a: u64, b: u64): u64 {
  const aLo = a & 0xffffffff, aHi = a >> 32, bLo = b & 0xffffffff, bHi = b >> 32;
  const ll = aLo * bLo;
  const lh = aLo * bHi;
  const hl = aHi * bLo;
  const hh = aHi * bHi;
  const mid = (ll >> 32) + (lh & 0xffffffff) + (hl & 0xffffffff);
  return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

/** High 64 bits of the signed 128-bit product. */
export function mulHiS(a: u64, b: u64): u64 {
  let h = mulHiU(a, b);
  if (<i64>a < 0) h -= b;
  if (<i64>b < 0) h -= a;
  return h;
}

/** Flags after MUL/IMUL: CF = OF = `overflow`; SF/ZF/PF from the low result, AF 0 (undefined). */
export function mulFlags(lo: u64, size: i32, overflow: bool): void {
  setEager((szp(lo, size) & ~F_AF) | (overflow ? F_CF | F_OF : 0));
}

/** Truncated signed product for IMUL r, r/m (, imm); CF/OF (lazy, flags.ts OP_IMUL) tell whether it fit. */
export function imulTrunc(size: i32, a: u64, b: u64): u64 {
  const m = maskOf(size);
  const sa = sext(a & m, size);
  const sb = sext(b & m, size);
  const res = (sa * sb) & m;
  setLazy(OP_IMUL, size, sa, sb, res);
  return res;
}

/** Unsigned 128-by-64 division; q/r returned through globals. #DE on overflow (vol. 2A DIV). */
export let divQ: u64 = 0;
export let divR: u64 = 0;

export function divU128(hi: u64, lo: u64, d: u64): void {
  if (d == 0 || hi >= d) fault(DE, 0, false);
  if (hi == 0) {
    divQ = lo / d;
    divR = lo % d;
    return;
  }
  // restoring division, one bit at a time (the quotient fits in 64 bits since hi < d)
  let r = hi;
  let q: u64 = 0;
  for (let i = 63; i >= 0; i--) {
    const top = r >> 63;
    r = (r << 1) | ((lo >> <u64>i) & 1);
    q <<= 1;
    if (top != 0 || r >= d) {
      r -= d;
      q |= 1;
    }
  }
  divQ = q;
  divR = r;
}

/** Signed 128-by-64 division with the quotient range check of IDIV. */
export function divS128(hi: u64, lo: u64, d: u64): void {
  if (d == 0) fault(DE, 0, false);
  const negN = <i64>hi < 0;
  const negD = <i64>d < 0;
  let nh = hi, nl = lo;
  if (negN) { nl = ~lo + 1; nh = ~hi + (nl == 0 ? 1 : 0); }
  const ad = negD ? 0 - d : d;
  if (nh >= ad) fault(DE, 0, false);
  divU128(nh, nl, ad);
  let q = divQ;
  let r = divR;
  const negQ = negN != negD;
  if (negQ ? q > 0x8000000000000000 : q > 0x7fffffffffffffff) fault(DE, 0, false);
  if (negQ) q = 0 - q;
  if (negN) r = 0 - r;
  divQ = q;
  divR = r;
}

// ---------------------------------------------------------------- bit scans

/** BSF/BSR: ZF = 1 and destination unchanged when the source is 0 (vol. 2A BSF, BSR). */
export function bitScan(reverse: bool, size: i32, src: u64, old: u64): u64 {
  const v = src & maskOf(size);
  const st = getStatus() & ~F_STATUS;
  if (v == 0) {
    setEager(st | F_ZF);
    return old;
  }
  setEager(st);
  return reverse ? <u64>(63 - <i32>clz<u64>(v)) : ctz<u64>(v);
}

