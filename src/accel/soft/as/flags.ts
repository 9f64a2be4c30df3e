 
// AssemblyScript. Lazy arithmetic flags: ALU instructions record the operation, operand size,
// operands and result; CF/PF/AF/ZF/SF/OF are computed only when something reads them.
// Definitions: SDM vol. 1 3.4.3.1 (status flags) and the "Flags Affected" section of each
// instruction in vol. 2. Instructions with unusual flag rules (shifts, multiplies...) compute the
// flags themselves and store them eagerly (OP_EAGER).

import {
  F_CF, F_PF, F_AF, F_ZF, F_SF, F_OF, F_STATUS, maskOf, signOf,
  S, O_LF_OP, O_LF_SIZE, O_LF_RES, O_LF_A, O_LF_B, O_LF_CIN, O_LF_EAGER,
} from './state';

export const OP_EAGER: i32 = 0;
export const OP_ADD: i32 = 1;
export const OP_ADC: i32 = 2; // add with carry-in 1
export const OP_SUB: i32 = 3;
export const OP_SBB: i32 = 4; // subtract with borrow-in 1
export const OP_LOGIC: i32 = 5;
export const OP_INC: i32 = 6; // CF comes from lfCin
export const OP_DEC: i32 = 7;
/** IMUL r, r/m[, imm]: lfA/lfB the sign-extended factors, lfRes the truncated product; CF = OF =
 * "the product did not fit" (vol. 2A IMUL), computed only when read; AF clear, SF/ZF/PF of the
 * result, as for the eager form the core used before (those four are undefined for IMUL). */
export const OP_IMUL: i32 = 8;
/** MUL: lfRes the low half, lfA the high half; CF = OF = (high half != 0), AF clear, SF/ZF/PF of
 * the low half (as mulFlags computes eagerly; only the JIT records it lazily). */
export const OP_MUL: i32 = 9;

// The lazy flags live in the state block (O_LF_*), not in wasm globals: compiled blocks store them
// at every exit that has flags pending, and a store at a fixed address of the shared memory is one
// machine store where an imported mutable global is a load of its cell's address first (and a
// value TurboFan must keep ordered with every call). The recorded operation, its operand size in
// bytes, operands A and B, result, INC/DEC's carry-in, and the status flags when OP_EAGER.
export function lfOp(): i32 { return load<i32>(S + O_LF_OP); }
export function lfSize(): i32 { return load<i32>(S + O_LF_SIZE); }
export function lfRes(): u64 { return load<u64>(S + O_LF_RES); }
export function lfA(): u64 { return load<u64>(S + O_LF_A); }
export function lfB(): u64 { return load<u64>(S + O_LF_B); }
export function lfCin(): u32 { return load<u32>(S + O_LF_CIN); }
export function lfEager(): u32 { return load<u32>(S + O_LF_EAGER); }
function setLfOp(v: i32): void { store<i32>(S + O_LF_OP, v); }
function setLfSize(v: i32): void { store<i32>(S + O_LF_SIZE, v); }
function setLfRes(v: u64): void { store<u64>(S + O_LF_RES, v); }
function setLfA(v: u64): void { store<u64>(S + O_LF_A, v); }
function setLfB(v: u64): void { store<u64>(S + O_LF_B, v); }
function setLfCin(v: u32): void { store<u32>(S + O_LF_CIN, v); }
function setLfEager(v: u32): void { store<u32>(S + O_LF_EAGER, v); }

/** The non-status bits of RFLAGS (bit 1 always set). */
export let flagsOther: u32 = 2;

export function setLazy(op: i32, size: i32, a: u64, b: u64, res: u64): void {
  setLfOp(op);
  setLfSize(size);
  setLfA(a);
  setLfB(b);
  setLfRes(res);
}

/** INC/DEC keep CF (vol. 2A INC/DEC "Flags Affected"). */
export function setLazyIncDec(op: i32, size: i32, a: u64, res: u64): void {
  setLfCin(getCF() ? 1 : 0);
  setLfOp(op);
  setLfSize(size);
  setLfA(a);
  setLfB(1);
  setLfRes(res);
}

export function setEager(status: u32): void {
  setLfOp(OP_EAGER);
  setLfEager(status & F_STATUS);
}

export function setFlagsOther(v: u32): void { flagsOther = (v & ~F_STATUS) | 2; }

/** Whether the IMUL recorded in the lazy flags overflowed its operand size. */
function imulOverflow(): bool {
  const a = <i64>lfA();
  const b = <i64>lfB();
  const p = a * b;
  if (lfSize() != 8) {
    // 1-, 2- and 4-byte factors: the 64-bit product is exact
    const sh = <i64>(64 - 8 * lfSize());
    return ((p << sh) >> sh) != p;
  }
  // 8 bytes: the wrapped product is the true one exactly when dividing it back gives b
  // (a remainder would have to be a non-zero multiple of 2^64, larger than |a|)
  if (a == 0) return false;
  if (a == -1) return b == i64.MIN_VALUE;
  return p / a != b;
}

export function getCF(): bool {
  const m = maskOf(lfSize());
  switch (lfOp()) {
    case OP_ADD: return (lfRes() & m) < (lfA() & m);
    case OP_ADC: return (lfRes() & m) <= (lfA() & m);
    case OP_SUB: return (lfA() & m) < (lfB() & m);
    case OP_SBB: return (lfA() & m) <= (lfB() & m);
    case OP_LOGIC: return false;
    case OP_IMUL: return imulOverflow();
    case OP_MUL: return lfA() != 0;
    case OP_INC:
    case OP_DEC: return lfCin() != 0;
    default: return (lfEager() & F_CF) != 0;
  }
}

export function getZF(): bool {
  if (lfOp() == OP_EAGER) return (lfEager() & F_ZF) != 0;
  return (lfRes() & maskOf(lfSize())) == 0;
}

export function getSF(): bool {
  if (lfOp() == OP_EAGER) return (lfEager() & F_SF) != 0;
  return (lfRes() & signOf(lfSize())) != 0;
}

export function getOF(): bool {
  const sb = signOf(lfSize());
  switch (lfOp()) {
    case OP_ADD:
    case OP_ADC:
    case OP_INC: return ((lfA() ^ lfRes()) & (lfB() ^ lfRes()) & sb) != 0;
    case OP_SUB:
    case OP_SBB:
    case OP_DEC: return ((lfA() ^ lfB()) & (lfA() ^ lfRes()) & sb) != 0;
    case OP_LOGIC: return false;
    case OP_IMUL: return imulOverflow();
    case OP_MUL: return lfA() != 0;
    default: return (lfEager() & F_OF) != 0;
  }
}

export function parity(v: u64): bool {
  return (popcnt<u32>(<u32>v & 0xff) & 1) == 0;
}

export function getPF(): bool {
  if (lfOp() == OP_EAGER) return (lfEager() & F_PF) != 0;
  return parity(lfRes());
}

export function getAF(): bool {
  if (lfOp() == OP_EAGER) return (lfEager() & F_AF) != 0;
  if (lfOp() == OP_LOGIC || lfOp() == OP_IMUL || lfOp() == OP_MUL) return false;
  return ((lfA() ^ lfB() ^ lfRes()) & 0x10) != 0;
}

export function getStatus(): u32 {
  if (lfOp() == OP_EAGER) return lfEager();
  let f: u32 = 0;
  if (getCF()) f |= F_CF;
  if (getPF()) f |= F_PF;
  if (getAF()) f |= F_AF;
  if (getZF()) f |= F_ZF;
  if (getSF()) f |= F_SF;
  if (getOF()) f |= F_OF;
  return f;
}

export function getFlags(): u32 { return getStatus() | flagsOther; }

/** Replace the status flags named by `which` (e.g. for instructions that change only some). */
export function patchStatus(which: u32, values: u32): void {
  setEager((getStatus() & ~which) | (values & which));
}

/** Flags of a result for instructions that set ZF/SF/PF from it (and CF/OF/AF explicitly). */
export function szp(res: u64, size: i32): u32 {
  let f: u32 = 0;
  if ((res & maskOf(size)) == 0) f |= F_ZF;
  if ((res & signOf(size)) != 0) f |= F_SF;
  if (parity(res)) f |= F_PF;
  return f;
}

/**
 * cond(cc) for the interpreter's Jcc, with ZF's two conditions (E and NE: about half of the Jcc
 * interpreted code runs) worked out in place and the others through cond. (Blocks call cond only
 * when they do not know the flags.) A static method only so that @inline applies (see mmu.ts Lin).
 */
export class Cond {
  @inline static test(cc: i32): bool {
    if ((cc >> 1) != 2) return cond(cc);
    const z = lfOp() == OP_EAGER ? (lfEager() & F_ZF) != 0 : (lfRes() & maskOf(lfSize())) == 0;
    return (cc & 1) != 0 ? !z : z;
  }
}

/** Evaluate condition code cc (the low nibble of Jcc/SETcc/CMOVcc, vol. 1 appendix B). */
export function cond(cc: i32): bool {
  let r: bool;
  switch (cc >> 1) {
    case 0: r = getOF(); break;
    case 1: r = getCF(); break;
    case 2: r = getZF(); break;
    case 3: r = getCF() || getZF(); break;
    case 4: r = getSF(); break;
    case 5: r = getPF(); break;
    case 6: r = getSF() != getOF(); break;
    default: r = getZF() || getSF() != getOF(); break;
  }
  return (cc & 1) != 0 ? !r : r;
}
