/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. The x87 FPU (SDM vol. 1 chapter 8; instruction pages in vol. 2; opcode map
// vol. 2D A.5). The registers live in the FXSAVE image of the state block as 80-bit values
// (ST(i) is physical register (TOP + i) mod 8, FSW.TOP in bits 11-13, the abridged tag byte
// marks valid registers), so FXSAVE/FXRSTOR and a debugger see the real format.
//
// Arithmetic is done in double precision (f64), not the 64-bit significand of the extended
// format; results are converted back to 80 bits. Exceptions are always treated as masked: the
// status flags (IE, ZE, SF...) are set and the masked response (QNaN indefinite, infinities) is
// produced, but #MF is never raised. Transcendentals call the host's Math functions.

import { S, O_FX, FX_FCW, FX_FSW, FX_FTW, FX_ST, cr0, cpl, codeBits, CR0_EM, CR0_TS, writeReg, F_ZF, F_PF, F_CF } from './state';
import { fault, NM } from './fault';
import { readLin, writeLin, probeWrite } from './mmu';
import { linAddr } from './seg';
import { modrmMod, eaSeg, ea, decodeModrmByte, fetch8, opsize } from './decode';
import { setEager, cond } from './flags';
import { fmath } from './host';

// FSW bits
const IE: u32 = 1;
const ZE: u32 = 4;
const SF: u32 = 64;
const C0: u32 = 0x100;
const C1: u32 = 0x200;
const C2: u32 = 0x400;
const C3: u32 = 0x4000;

// host Math functions (fmath op codes)
const M_SIN: i32 = 0;
const M_COS: i32 = 1;
const M_TAN: i32 = 2;
const M_ATAN2: i32 = 3;
const M_POW2: i32 = 4;
const M_LOG2: i32 = 5;

function fx(): u32 { return S + O_FX; }
function fsw(): u32 { return <u32>load<u16>(fx() + FX_FSW); }
function setFsw(v: u32): void { store<u16>(fx() + FX_FSW, <u16>v); }
function fcw(): u32 { return <u32>load<u16>(fx() + FX_FCW); }
function top(): u32 { return (fsw() >> 11) & 7; }
function setTop(t: u32): void { setFsw((fsw() & ~(<u32>0x3800)) | ((t & 7) << 11)); }
function phys(i: u32): u32 { return (top() + i) & 7; }
function regAddr(p: u32): u32 { return fx() + FX_ST + (p << 4); }
function isValid(p: u32): bool { return (load<u8>(fx() + FX_FTW) & (<u8>1 << <u8>p)) != 0; }
function setValid(p: u32, v: bool): void {
  const t = load<u8>(fx() + FX_FTW);
  store<u8>(fx() + FX_FTW, v ? t | (<u8>1 << <u8>p) : t & ~(<u8>1 << <u8>p));
}
function flag(bits: u32): void { setFsw(fsw() | bits); }
function setCC(bits: u32): void { setFsw((fsw() & ~(C0 | C1 | C2 | C3)) | bits); }

// ---------------------------------------------------------------- 80-bit <-> f64

/** Store an f64 as an 80-bit extended value at p (vol. 1 4.2.2, table 4-3). */
export function f64ToF80(p: u32, v: f64): void {
  const bits = reinterpret<u64>(v);
  const sign = <u16>((bits >> 63) << 15);
  const e = <i32>((bits >> 52) & 0x7ff);
  const m = bits & 0xfffffffffffff;
  let exp: i32;
  let sig: u64;
  if (e == 0x7ff) {
    exp = 0x7fff;
    sig = 0x8000000000000000 | (m << 11);
  } else if (e == 0) {
    if (m == 0) { exp = 0; sig = 0; } else {
      // f64 denormal m * 2^-1074: normalize (every f64 denormal is a normal extended value)
      const lz = <i32>clz<u64>(m);
      sig = m << <u64>lz;
      exp = (63 - lz) - 1074 + 16383;
    }
  } else {
    exp = e - 1023 + 16383;
    sig = 0x8000000000000000 | (m << 11);
  }
  store<u64>(p, sig);
  store<u16>(p + 8, sign | <u16>exp);
}

/** Read an 80-bit extended value at p as the nearest f64. */
export function f80ToF64(p: u32): f64 {
  const sig = load<u64>(p);
  const se = <u32>load<u16>(p + 8);
  const neg = (se & 0x8000) != 0;
  const exp = <i32>(se & 0x7fff);
  let r: f64;
  if (exp == 0x7fff) {
    r = (sig << 1) == 0 ? Infinity : NaN;
  } else if (sig == 0) {
    r = 0;
  } else {
    // value = sig * 2^(exp - 16383 - 63); f64 conversion of sig rounds to nearest
    r = <f64>sig * pow2(exp - 16383 - 63);
  }
  return neg ? -r : r;
}

function pow2(n: i32): f64 {
  // exact scaling in steps that stay within the f64 exponent range
  let r: f64 = 1;
  while (n > 1000) { r *= reinterpret<f64>(<u64>(1023 + 1000) << 52); n -= 1000; }
  while (n < -1000) { r *= reinterpret<f64>(<u64>(1023 - 1000) << 52); n += 1000; }
  return r * reinterpret<f64>(<u64>(1023 + n) << 52);
}

// ---------------------------------------------------------------- the register stack

const INDEFINITE: f64 = NaN; // the QNaN "real indefinite" (sign set), see setIndefinite

function st(i: u32): f64 {
  const p = phys(i);
  if (!isValid(p)) {
    flag(IE | SF);
    setFsw(fsw() & ~C1);
    return INDEFINITE;
  }
  return f80ToF64(regAddr(p));
}

function setSt(i: u32, v: f64): void {
  const p = phys(i);
  f64ToF80(regAddr(p), v);
  if (isNaN(v)) store<u16>(regAddr(p) + 8, 0xffff); // negative QNaN indefinite
  setValid(p, true);
}

function push(v: f64): void {
  const t = (top() - 1) & 7;
  if (isValid(t)) {
    flag(IE | SF | C1); // stack overflow: masked response loads the indefinite
    v = INDEFINITE;
  }
  setTop(t);
  setSt(0, v);
}

function pop(): void {
  setValid(phys(0), false);
  setTop(top() + 1);
}

// ---------------------------------------------------------------- helpers

function roundByRc(v: f64): f64 {
  switch ((fcw() >> 10) & 3) {
    case 0: return nearest<f64>(v);
    case 1: return floor<f64>(v);
    case 2: return ceil<f64>(v);
    default: return trunc<f64>(v);
  }
}

/** Integer conversion for FIST/FISTP/FISTTP; out of range or NaN: the integer indefinite. */
function toInt(v: f64, size: i32, truncate: bool): u64 {
  const r = truncate ? trunc<f64>(v) : roundByRc(v);
  const lim: f64 = size == 2 ? 32768.0 : size == 4 ? 2147483648.0 : 9223372036854775808.0;
  if (!(r >= -lim && r < lim)) {
    flag(IE);
    return size == 2 ? 0x8000 : size == 4 ? 0x80000000 : 0x8000000000000000;
  }
  return <u64><i64>r;
}

function arith(op: i32, a: f64, b: f64): f64 {
  switch (op) {
    case 0: return a + b;
    case 1: return a * b;
    case 4: return a - b;
    case 5: return b - a;
    case 6:
      if (b == 0 && !isNaN(a) && a != 0) flag(ZE);
      return a / b;
    default:
      if (a == 0 && !isNaN(b) && b != 0) flag(ZE);
      return b / a;
  }
}

/** FCOM/FUCOM condition codes (C3 C2 C0). */
function compare(a: f64, b: f64, unordered: bool): void {
  if (isNaN(a) || isNaN(b)) {
    if (!unordered) flag(IE);
    setCC(C3 | C2 | C0);
  } else if (a > b) setCC(0);
  else if (a < b) setCC(C0);
  else setCC(C3);
}

/** FCOMI/FUCOMI: ZF PF CF (OF SF AF cleared). */
function compareFlags(a: f64, b: f64): void {
  if (isNaN(a) || isNaN(b)) setEager(F_ZF | F_PF | F_CF);
  else if (a < b) setEager(F_CF);
  else if (a == b) setEager(F_ZF);
  else setEager(0);
  setFsw(fsw() & ~C1);
}

function memLin(size: i32, write: bool): u64 { return linAddr(eaSeg, ea(), size, write); }
function memRead(size: i32): u64 { return readLin(memLin(size, false), size, cpl == 3); }
function memWrite(size: i32, v: u64): void { writeLin(memLin(size, true), size, v, cpl == 3); }

function loadReal(size: i32): f64 {
  if (size == 4) return <f64>reinterpret<f32>(<u32>memRead(4));
  if (size == 8) return reinterpret<f64>(memRead(8));
  const lin = memLin(10, false);
  const lo = readLin(lin, 8, cpl == 3);
  const hi = readLin(lin + 8, 2, cpl == 3);
  const t = fx() + 0x1f0; // a reserved corner of the FXSAVE image as scratch
  store<u64>(t, lo);
  store<u16>(t + 8, <u16>hi);
  return f80ToF64(t);
}

function storeReal(size: i32, v: f64): void {
  if (size == 4) { memWrite(4, <u64>reinterpret<u32>(<f32>v)); return; }
  if (size == 8) { memWrite(8, reinterpret<u64>(v)); return; }
  const lin = memLin(10, true);
  probeWrite(lin, 10, cpl == 3);
  const p = regAddr(phys(0));
  writeLin(lin, 8, load<u64>(p), cpl == 3);
  writeLin(lin + 8, 2, <u64>load<u16>(p + 8), cpl == 3);
}

function loadInt(size: i32): f64 {
  const v = memRead(size);
  if (size == 2) return <f64><i16>v;
  if (size == 4) return <f64><i32>v;
  return <f64><i64>v;
}

/** Full 2-bit tag word from the abridged tags (vol. 1 8.1.7). */
function fullTags(): u32 {
  let t: u32 = 0;
  for (let p: u32 = 0; p < 8; p++) {
    let tag: u32 = 3;
    if (isValid(p)) {
      const a = regAddr(p);
      const exp = <u32>load<u16>(a + 8) & 0x7fff;
      const sig = load<u64>(a);
      if (exp == 0 && sig == 0) tag = 1;
      else if (exp == 0x7fff || exp == 0 || (sig >> 63) == 0) tag = 2;
      else tag = 0;
    }
    t |= tag << (p * 2);
  }
  return t;
}

/** FNSTENV / FLDENV image (32-bit format, 28 bytes; the 16-bit format is 14 bytes). */
function envSize(): i32 { return opsize == 2 && codeBits != 64 ? 14 : 28; }

function storeEnv(lin: u64): void {
  const user = cpl == 3;
  const w = envSize() == 14 ? 2 : 4;
  writeLin(lin, w, <u64>fcw() | (w == 4 ? 0xffff0000 : 0), user);
  writeLin(lin + <u64>w, w, <u64>fsw() | (w == 4 ? 0xffff0000 : 0), user);
  writeLin(lin + <u64>(2 * w), w, <u64>fullTags() | (w == 4 ? 0xffff0000 : 0), user);
  for (let k = 3; k < 7; k++) writeLin(lin + <u64>(k * w), w, 0, user); // FIP, FCS/FOP, FDP, FDS
}

function loadEnv(lin: u64): void {
  const user = cpl == 3;
  const w = envSize() == 14 ? 2 : 4;
  const cw = <u32>readLin(lin, 2, user);
  const sw = <u32>readLin(lin + <u64>w, 2, user);
  const tw = <u32>readLin(lin + <u64>(2 * w), 2, user);
  store<u16>(fx() + FX_FCW, <u16>cw);
  setFsw(sw);
  let ab: u8 = 0;
  for (let p: u32 = 0; p < 8; p++) if (((tw >> (p * 2)) & 3) != 3) ab |= <u8>1 << <u8>p;
  store<u8>(fx() + FX_FTW, ab);
}

// ---------------------------------------------------------------- control state

/** Power-up x87/SSE state (vol. 3A table 9-1): FCW 0040, MXCSR 1F80, everything else 0. */
export function fpuPowerOn(): void {
  for (let i: u32 = 0; i < 512; i += 8) store<u64>(fx() + i, 0);
  store<u16>(fx() + FX_FCW, 0x0040);
  store<u32>(fx() + 24, 0x1f80);
}

/** FNINIT (vol. 2A FINIT/FNINIT): control word 037F, status and tags cleared. */
export function fpuReset(): void {
  store<u16>(fx() + FX_FCW, 0x037f);
  setFsw(0);
  store<u8>(fx() + FX_FTW, 0);
}

// ---------------------------------------------------------------- execution

/** x87 escape opcode D8-DF; returns false for an encoding that is not implemented. */
export function x87(b: u32): bool {
  if ((cr0() & (CR0_EM | CR0_TS)) != 0) fault(NM, 0, false);
  const m = fetch8();
  if (m < 0xc0) {
    decodeModrmByte(m);
    return x87Mem(b, (m >> 3) & 7);
  }
  return x87Reg(b, m);
}

function x87Mem(b: u32, op: u32): bool {
  if (modrmMod == 3) return false;
  switch (b) {
    case 0xd8: case 0xdc: case 0xda: case 0xde: { // arithmetic with m32fp / m64fp / m32int / m16int
      const v = b == 0xd8 ? loadReal(4) : b == 0xdc ? loadReal(8) : b == 0xda ? loadInt(4) : loadInt(2);
      const a = st(0);
      if (op == 2 || op == 3) {
        compare(a, v, false);
        if (op == 3) pop();
      } else setSt(0, arith(<i32>op, a, v));
      return true;
    }
    case 0xd9:
      switch (op) {
        case 0: push(loadReal(4)); return true; // FLD m32
        case 2: case 3: storeReal(4, st(0)); if (op == 3) pop(); return true; // FST/FSTP m32
        case 4: loadEnv(memLin(envSize(), false)); return true; // FLDENV
        case 5: store<u16>(fx() + FX_FCW, <u16>memRead(2)); return true; // FLDCW
        case 6: { const lin = memLin(envSize(), true); probeWrite(lin, envSize(), cpl == 3); storeEnv(lin); return true; } // FNSTENV
        case 7: memWrite(2, <u64>fcw()); return true; // FNSTCW
        default: return false;
      }
    case 0xdb:
      switch (op) {
        case 0: push(loadInt(4)); return true; // FILD m32
        case 1: case 2: case 3: memWrite(4, toInt(st(0), 4, op == 1)); if (op != 2) pop(); return true; // FISTTP/FIST/FISTP
        case 5: push(loadReal(10)); return true; // FLD m80
        case 7: storeReal(10, st(0)); pop(); return true; // FSTP m80
        default: return false;
      }
    case 0xdd:
      switch (op) {
        case 0: push(loadReal(8)); return true; // FLD m64
        case 1: memWrite(8, toInt(st(0), 8, true)); pop(); return true; // FISTTP m64
        case 2: case 3: storeReal(8, st(0)); if (op == 3) pop(); return true; // FST/FSTP m64
        case 4: { // FRSTOR
          const lin = memLin(envSize() + 80, false);
          loadEnv(lin);
          for (let i: u32 = 0; i < 8; i++) {
            const a = lin + <u64>(envSize() + <i32>i * 10);
            const p = regAddr(phys(i));
            store<u64>(p, readLin(a, 8, cpl == 3));
            store<u16>(p + 8, <u16>readLin(a + 8, 2, cpl == 3));
          }
          return true;
        }
        case 6: { // FNSAVE, then FNINIT
          const lin = memLin(envSize() + 80, true);
          probeWrite(lin, envSize() + 80, cpl == 3);
          storeEnv(lin);
          for (let i: u32 = 0; i < 8; i++) {
            const a = lin + <u64>(envSize() + <i32>i * 10);
            const p = regAddr(phys(i));
            writeLin(a, 8, load<u64>(p), cpl == 3);
            writeLin(a + 8, 2, <u64>load<u16>(p + 8), cpl == 3);
          }
          fpuReset();
          return true;
        }
        case 7: memWrite(2, <u64>fsw()); return true; // FNSTSW m16
        default: return false;
      }
    case 0xdf:
      switch (op) {
        case 0: push(loadInt(2)); return true; // FILD m16
        case 1: case 2: case 3: memWrite(2, toInt(st(0), 2, op == 1)); if (op != 2) pop(); return true;
        case 5: push(loadInt(8)); return true; // FILD m64
        case 7: memWrite(8, toInt(st(0), 8, false)); pop(); return true; // FISTP m64
        default: return false; // FBLD / FBSTP (packed BCD)
      }
    default:
      return false;
  }
}

function x87Reg(b: u32, m: u32): bool {
  const i = m & 7;
  const op = (m >> 3) & 7;
  switch (b) {
    case 0xd8: { // ST(0) = ST(0) op ST(i)
      const a = st(0);
      const c = st(i);
      if (op == 2 || op == 3) { compare(a, c, false); if (op == 3) pop(); } else setSt(0, arith(<i32>op, a, c));
      return true;
    }
    case 0xdc: case 0xde: { // ST(i) = ST(i) op ST(0) (SUB/SUBR and DIV/DIVR encodings swapped), DE pops
      if (op == 2 || op == 3) {
        if (b == 0xde && m == 0xd9) { compare(st(0), st(1), false); pop(); pop(); return true; } // FCOMPP
        if (b == 0xdc) { compare(st(0), st(i), false); if (op == 3) pop(); return true; }
        return false;
      }
      const sw: i32 = op >= 4 ? <i32>(op ^ 1) : <i32>op;
      setSt(i, arith(sw, st(i), st(0)));
      if (b == 0xde) pop();
      return true;
    }
    case 0xd9:
      if (op == 0) { push(st(i)); return true; } // FLD ST(i)
      if (op == 1) { // FXCH
        const a = st(0);
        const c = st(i);
        setSt(0, c);
        setSt(i, a);
        return true;
      }
      switch (m) {
        case 0xd0: return true; // FNOP
        case 0xe0: setSt(0, -st(0)); return true; // FCHS
        case 0xe1: setSt(0, abs<f64>(st(0))); return true; // FABS
        case 0xe4: compare(st(0), 0, false); return true; // FTST
        case 0xe5: fxam(); return true;
        case 0xe8: push(1); return true; // FLD1
        case 0xe9: push(3.321928094887362347870319429489390175864831393); return true; // FLDL2T
        case 0xea: push(1.442695040888963407359924681001892137426645954); return true; // FLDL2E
        case 0xeb: push(3.141592653589793238462643383279502884197169399); return true; // FLDPI
        case 0xec: push(0.301029995663981195213738894724493026768189881); return true; // FLDLG2
        case 0xed: push(0.693147180559945309417232121458176568075500134); return true; // FLDLN2
        case 0xee: push(0); return true; // FLDZ
        case 0xf0: setSt(0, fmath(M_POW2, st(0), 0) - 1); return true; // F2XM1
        case 0xf1: { const v = st(1) * fmath(M_LOG2, st(0), 0); pop(); setSt(0, v); return true; } // FYL2X
        case 0xf2: setSt(0, fmath(M_TAN, st(0), 0)); push(1); setFsw(fsw() & ~C2); return true; // FPTAN
        case 0xf3: { const v = fmath(M_ATAN2, st(1), st(0)); pop(); setSt(0, v); return true; } // FPATAN
        case 0xf4: { // FXTRACT
          const v = st(0);
          if (v == 0 || !isFinite(v)) { setSt(0, v == 0 ? -Infinity : v); push(v); return true; }
          const bits = reinterpret<u64>(v);
          let e = <i32>((bits >> 52) & 0x7ff) - 1023;
          let sig = reinterpret<f64>((bits & 0x800fffffffffffff) | (<u64>1023 << 52));
          if (((bits >> 52) & 0x7ff) == 0) { // denormal
            const n = v * pow2(64);
            const nb = reinterpret<u64>(n);
            e = <i32>((nb >> 52) & 0x7ff) - 1023 - 64;
            sig = reinterpret<f64>((nb & 0x800fffffffffffff) | (<u64>1023 << 52));
          }
          setSt(0, <f64>e);
          push(sig);
          return true;
        }
        case 0xf5: case 0xf8: { // FPREM1, FPREM: a complete remainder in one step
          const a = st(0);
          const c = st(1);
          const q = m == 0xf8 ? trunc<f64>(a / c) : nearest<f64>(a / c);
          const r = m == 0xf8 ? a % c : a - q * c;
          setSt(0, r);
          const qi = isFinite(q) ? <u64><i64>abs<f64>(q % 8) : 0;
          setCC(((qi & 4) != 0 ? C0 : 0) | ((qi & 2) != 0 ? C3 : 0) | ((qi & 1) != 0 ? C1 : 0));
          return true;
        }
        case 0xf6: setTop(top() - 1); return true; // FDECSTP
        case 0xf7: setTop(top() + 1); return true; // FINCSTP
        case 0xf9: { const v = st(1) * fmath(M_LOG2, st(0) + 1, 0); pop(); setSt(0, v); return true; } // FYL2XP1
        case 0xfa: setSt(0, sqrt<f64>(st(0))); return true; // FSQRT
        case 0xfb: { const v = st(0); setSt(0, fmath(M_SIN, v, 0)); push(fmath(M_COS, v, 0)); setFsw(fsw() & ~C2); return true; } // FSINCOS
        case 0xfc: setSt(0, roundByRc(st(0))); return true; // FRNDINT
        case 0xfd: setSt(0, st(0) * pow2(<i32>trunc<f64>(st(1)))); return true; // FSCALE
        case 0xfe: setSt(0, fmath(M_SIN, st(0), 0)); setFsw(fsw() & ~C2); return true; // FSIN
        case 0xff: setSt(0, fmath(M_COS, st(0), 0)); setFsw(fsw() & ~C2); return true; // FCOS
        default: return false;
      }
    case 0xda: case 0xdb: {
      if (b == 0xda && m == 0xe9) { compare(st(0), st(1), true); pop(); pop(); return true; } // FUCOMPP
      if (b == 0xdb && m == 0xe2) { setFsw(fsw() & 0x7f00); return true; } // FNCLEX
      if (b == 0xdb && m == 0xe3) { fpuReset(); return true; } // FNINIT
      if (b == 0xdb && (op == 5 || op == 6)) { compareFlags(st(0), st(i)); return true; } // FUCOMI, FCOMI
      if (op < 4) { // FCMOVcc: B E BE U (DA) and their negations (DB)
        const ccs: i32 = op == 0 ? 2 : op == 1 ? 4 : op == 2 ? 6 : 10; // below, equal, below-or-equal, parity
        const take = cond(b == 0xda ? ccs : ccs + 1);
        if (take) setSt(0, st(i));
        return true;
      }
      return false;
    }
    case 0xdd:
      if (op == 0) { setValid(phys(i), false); return true; } // FFREE
      if (op == 2 || op == 3) { setSt(i, st(0)); if (op == 3) pop(); return true; } // FST/FSTP ST(i)
      if (op == 4 || op == 5) { compare(st(0), st(i), true); if (op == 5) pop(); return true; } // FUCOM/FUCOMP
      return false;
    case 0xdf:
      if (m == 0xe0) { writeReg(2, 0, <u64>fsw(), false); return true; } // FNSTSW AX
      if (op == 5 || op == 6) { compareFlags(st(0), st(i)); pop(); return true; } // FUCOMIP, FCOMIP
      return false;
    default:
      return false;
  }
}

/** FXAM: class of ST(0) in C3 C2 C0, sign in C1 (vol. 2A FXAM). */
function fxam(): void {
  const p = phys(0);
  const a = regAddr(p);
  const neg = (load<u16>(a + 8) & 0x8000) != 0;
  const c1 = neg ? C1 : 0;
  if (!isValid(p)) { setCC(C3 | C0 | c1); return; }
  const exp = <u32>load<u16>(a + 8) & 0x7fff;
  const sig = load<u64>(a);
  if (exp == 0x7fff) setCC(((sig << 1) == 0 ? C2 | C0 : C0) | c1);
  else if (exp == 0 && sig == 0) setCC(C3 | c1);
  else if (exp == 0) setCC(C3 | C2 | c1);
  else setCC(C2 | c1);
}
