// Directed cases: for every integer instruction family the soft CPU implements, at least ~100
// cases over every operand size and encoding form, with boundary operands (0, 1, -1, 0x7f..,
// 0x80.., ...) mixed with random ones, and random initial flags (so CF-consuming and
// condition-code instructions see both values). Each family is a function of the generator
// context, so the cases are deterministic for a seed.

import type { OracleCase } from './case.js';
import {
  Builder, Gen, type Opnd, type Reg, type Size, KW, RAX, RCX, RDI, RDX, RSI, RSP, SIZES, WIDE,
  boundaryValues, hex, immText, mask, otext, reg, rname,
} from './builder.js';
import { AC, CF, CONDITIONS, DF, ID, NT, NONE, OF, STATUS, ZF, effectOf, shiftEffect, type FlagEffect, type ShiftOp } from './flags.js';
import * as L from './layout.js';

/** Shown with cases whose outcome the two vendors' manuals describe differently. */
export const BITSCAN_NOTE = 'BSF/BSR with a zero source: the SDM calls the destination undefined, AMD\'s APM says it is unchanged '
  + '(all 64 bits, also for 32-bit operands); compared, because the hardware here does that and software (Linux\'s ffs/fls) relies on it';
export const CMPXCHG_NOTE = 'CMPXCHG r32 that fails: the SDM pseudocode writes the destination back (a 32-bit write, clearing bits 63:32), '
  + 'AMD hardware leaves the register alone; compared against this host (AMD)';

export interface Family {
  name: string;
  generate(g: Gen): OracleCase[];
}

const fam = (name: string, generate: (g: Gen) => OracleCase[]): Family => ({ name, generate });

/** Two 8-bit registers that can appear in one instruction: either both REX-style (al..r15b) or both legacy (may be AH-BH). */
function regs8(b: Builder, n: number): { regs: Reg[]; legacy: boolean } {
  if (b.rng.bool(0.35)) {
    // Legacy encoding: AL CL DL BL AH CH DH BH, no REX anywhere in the instruction.
    const names: Reg[] = [];
    const pool = [0, 1, 2, 3].filter((i) => !b.reserved.has(i));
    const choices: Reg[] = pool.flatMap((i) => [reg(i, 8), reg(i, 8, true)]);
    while (names.length < n && choices.length) {
      const k = b.rng.int(choices.length);
      const [r] = choices.splice(k, 1);
      // the same byte twice only if asked explicitly; the same register's other byte is fine
      names.push(r);
    }
    if (names.length === n) {
      for (const r of names) b.reserve(r.idx);
      return { regs: names, legacy: true };
    }
  }
  const regs: Reg[] = [];
  for (let i = 0; i < n; i++) regs.push(reg(b.take(), 8));
  return { regs, legacy: false };
}

function regsOf(b: Builder, size: Size, n: number): { regs: Reg[]; legacy: boolean } {
  if (size === 8) return regs8(b, n);
  const regs: Reg[] = [];
  for (let i = 0; i < n; i++) regs.push(reg(b.take(), size));
  return { regs, legacy: false };
}

/** A value pair for a binary operation: interesting pairs first, then boundaries and random. */
function pair(g: Gen, size: number, i: number): [bigint, bigint] {
  const m = mask(size);
  const h = 1n << BigInt(size - 1);
  const special: [bigint, bigint][] = [
    [0n, 0n], [m, 1n], [h - 1n, 1n], [h, m], [h, h], [1n, m], [h - 1n, h - 1n], [0n, 1n], [m, m], [h, 1n], [0x0fn, 0x01n], [h - 1n, h],
  ];
  if (i < special.length && g.rng.bool(0.6)) return special[i];
  return [g.value(size), g.value(size)];
}

const opWrites = (o: Opnd): number[] => (o.kind === 'reg' ? [o.idx] : []);

// ---------------------------------------------------------------------------------------------
// ALU: add adc sub sbb and or xor cmp test

const ALU_BASE: Record<string, number> = { add: 0x00, or: 0x08, adc: 0x10, sbb: 0x18, and: 0x20, sub: 0x28, xor: 0x30, cmp: 0x38 };

/** `op dst, src` with the reg,reg operands in the RM encoding (opcode 02/03 + base), which nasm never emits for reg,reg. */
function rmFormBytes(base: number, d: Reg, s: Reg): string {
  const code = (r: Reg) => (r.high ? r.idx + 4 : r.idx);
  const bytes: number[] = [];
  if (d.size === 16) bytes.push(0x66);
  const w = d.size === 64 ? 8 : 0;
  const r = code(d) >= 8 ? 4 : 0;
  const x = code(s) >= 8 ? 1 : 0;
  const byteRex = d.size === 8 && ((!d.high && d.idx >= 4) || (!s.high && s.idx >= 4));
  if (w || r || x || byteRex) bytes.push(0x40 | w | r | x);
  bytes.push(base + (d.size === 8 ? 2 : 3));
  bytes.push(0xc0 | ((code(d) & 7) << 3) | (code(s) & 7));
  return `db ${bytes.map((v) => `0x${v.toString(16)}`).join(', ')}`;
}

function aluFamily(op: string): Family {
  const fx = effectOf(op);
  const writes = op !== 'cmp' && op !== 'test';
  const reads = op === 'adc' || op === 'sbb' ? CF : 0;
  const forms = op === 'test'
    ? ['r,r', 'r,r same', 'm,r', 'r,imm', 'acc,imm', 'm,imm']
    : ['r,r', 'r,r RM', 'r,r same', 'r,m', 'm,r', 'r,imm8', 'r,imm', 'acc,imm', 'm,imm8', 'm,imm', ...(writes ? ['lock m,r', 'lock m,imm8'] : [])];
  return fam(op, (g) => {
    const out: OracleCase[] = [];
    for (const size of SIZES) {
      for (const form of forms) {
        if (form.includes('imm8') && size === 8 && form !== 'r,imm8' && form !== 'm,imm8') continue;
        const reps = form.startsWith('lock') ? 2 : op === 'test' ? 5 : 4;
        for (let i = 0; i < reps; i++) {
          const b = new Builder(g);
          const [a, c] = pair(g, size, i);
          const lock = form.startsWith('lock ') ? 'lock ' : '';
          const f = form.replace('lock ', '');
          let text: string;
          let comment: string | undefined;
          let dst: Opnd;
          if (f === 'r,r' || f === 'r,r RM') {
            const { regs: [d, s] } = regsOf(b, size, 2);
            b.setOp(d, a); b.setOp(s, c);
            dst = d;
            text = `${op} ${rname(d)}, ${rname(s)}`;
            if (f === 'r,r RM') { comment = `${text}, RM encoding`; text = rmFormBytes(ALU_BASE[op], d, s); }
          } else if (f === 'r,r same') {
            const { regs: [d] } = regsOf(b, size, 1);
            b.setOp(d, a);
            dst = d;
            text = `${op} ${rname(d)}, ${rname(d)}`;
          } else if (f === 'r,m' || f === 'm,r') {
            const { regs: [r], legacy } = regsOf(b, size, 1);
            b.setOp(r, f === 'r,m' ? a : c);
            const m = b.mem(size, { legacy });
            dst = f === 'r,m' ? r : m;
            text = f === 'r,m' ? `${op} ${rname(r)}, ${m.text}` : `${op} ${m.text}, ${rname(r)}`;
          } else if (f === 'r,imm8' || f === 'm,imm8') {
            const imm = size === 8 ? c : BigInt.asUintN(8, g.rng.bool(0.5) ? g.rng.pick([0n, 1n, 0x7fn, 0x80n, 0xffn]) : BigInt(g.rng.int(256)));
            const d: Opnd = f === 'r,imm8' ? regsOf(b, size, 1).regs[0] : b.mem(size);
            if (d.kind === 'reg') b.setOp(d, a);
            dst = d;
            const immTxt = size === 8 ? immText(imm, 8, false) : `byte ${immText(imm, 8, true)}`;
            text = `${op} ${otext(d)}, ${immTxt}`;
          } else {
            // full immediate: r,imm (not the accumulator), acc,imm (short form), m,imm
            let d: Opnd;
            if (f === 'acc,imm') { b.reserve(RAX); d = reg(RAX, size); } else if (f === 'r,imm') d = reg(b.take({ avoid: [RAX] }), size); else d = b.mem(size);
            if (d.kind === 'reg') b.setOp(d, a);
            dst = d;
            const bits = size === 64 ? 32 : size;
            text = `${op} ${otext(d)}, strict ${KW[size]} ${immText(c, bits, size === 64)}`;
          }
          b.ins(lock + text, fx, { writes: writes ? opWrites(dst) : [], reads, ...(comment ? { comment } : {}) });
          out.push(b.build(op, `${op} ${form} (${size}-bit)`));
        }
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// inc/dec, neg/not

function unaryFamily(name: string, ops: string[]): Family {
  return fam(name, (g) => {
    const out: OracleCase[] = [];
    for (const op of ops) {
      const fx = effectOf(op);
      for (const size of SIZES) {
        for (const form of ['r', 'm', 'lock m']) {
          const vals = boundaryValues(size).slice(0, form === 'r' ? 9 : 4);
          for (const v of [...vals, g.value(size)]) {
            const b = new Builder(g);
            let o: Opnd;
            if (form === 'r') { o = regsOf(b, size, 1).regs[0]; b.setOp(o, v); } else o = b.mem(size);
            b.ins(`${form === 'lock m' ? 'lock ' : ''}${op} ${otext(o)}`, fx, { writes: opWrites(o) });
            out.push(b.build(name, `${op} ${form === 'r' ? 'r' : form} (${size}-bit)`));
          }
        }
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// shifts and rotates

function shiftFamily(op: ShiftOp): Family {
  return fam(op, (g) => {
    const out: OracleCase[] = [];
    for (const size of SIZES) {
      const counts = [...new Set([0, 1, 2, 3, size / 2, size - 1, size, size + 1, 9, 17, 31, 32, 33, 63, 64, 65, 0x80, 0xff])];
      const emit = (form: 'one' | 'cl' | 'imm', count: number, memDst: boolean) => {
        const b = new Builder(g);
        b.reserve(RCX);
        let d: Opnd;
        if (memDst) d = b.mem(size);
        else {
          d = regsOf(b, size, 1).regs[0];
          b.setOp(d, g.value(size));
        }
        const e = shiftEffect(op, size, count);
        const mnem = op === 'shl' && g.rng.bool(0.3) ? 'sal' : op;
        let text: string;
        if (form === 'one') text = `${mnem} ${otext(d)}, 1`;
        else if (form === 'cl') {
          b.setReg(RCX, (g.rng.u64() & ~0xffn) | BigInt(count));
          text = `${mnem} ${otext(d)}, cl`;
        } else text = `${mnem} ${otext(d)}, strict byte ${count}`;
        const mc = count & (size === 64 ? 63 : 31);
        b.ins(text, e, { writes: opWrites(d), reads: op === 'rcl' || op === 'rcr' ? CF : 0, comment: mc === 0 ? 'masked count 0: nothing changes' : `masked count ${mc}` });
        out.push(b.build(op, `${op} ${memDst ? 'm' : 'r'}${size}, ${form === 'one' ? '1' : form === 'cl' ? `cl=${count}` : `imm8 ${count}`}`));
      };
      for (let i = 0; i < 3; i++) emit('one', 1, i === 2);
      for (const c of counts) {
        emit('cl', c, false);
        emit('imm', c, false);
      }
      for (const c of [1, 4, size - 1, g.rng.int(256)]) emit(g.rng.bool() ? 'cl' : 'imm', c, true);
    }
    return out;
  });
}

function doubleShiftFamily(op: 'shld' | 'shrd'): Family {
  return fam(op, (g) => {
    const out: OracleCase[] = [];
    for (const size of WIDE) {
      const counts = [...new Set([0, 1, 2, 7, 8, size / 2, size - 1, size, size + 1, 31, 32, 33, 63, 64, g.rng.int(256)])];
      for (const c of counts) {
        for (const form of ['imm', 'cl'] as const) {
          for (const memDst of [false, true]) {
            const e = shiftEffect(op, size, c);
            if (memDst && (e.resultUndefined || g.rng.bool(0.5))) continue;
            const b = new Builder(g);
            b.reserve(RCX);
            const s = reg(b.take(), size);
            b.setOp(s, g.value(size));
            let d: Opnd;
            if (memDst) d = b.mem(size);
            else { d = reg(b.take(), size); b.setOp(d, g.value(size)); }
            let text: string;
            if (form === 'cl') {
              b.setReg(RCX, (g.rng.u64() & ~0xffn) | BigInt(c));
              text = `${op} ${otext(d)}, ${rname(s)}, cl`;
            } else text = `${op} ${otext(d)}, ${rname(s)}, ${c}`;
            if (e.resultUndefined && d.kind === 'reg') {
              b.ignoreRegs |= 1 << d.idx;
              b.note(`count ${c & 31} > operand size ${size}: the destination and the flags are undefined (SDM SHLD/SHRD); ${rname(reg(d.idx, 64))} not compared`);
            }
            b.ins(text, e, { writes: opWrites(d) });
            out.push(b.build(op, `${op} ${memDst ? 'm' : 'r'}${size}, r${size}, ${form === 'cl' ? `cl=${c}` : `imm8 ${c}`}`));
          }
        }
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// mul / imul / div / idiv

const ACC_WRITES = (size: Size) => (size === 8 ? [RAX] : [RAX, RDX]);

function mulFamily(): Family {
  return fam('mul', (g) => {
    const out: OracleCase[] = [];
    const fx = effectOf('mul');
    for (const size of SIZES) {
      for (const form of ['r', 'm', 'acc']) {
        const n = form === 'acc' ? 3 : 12;
        for (let i = 0; i < n; i++) {
          const b = new Builder(g);
          b.reserve(RAX, RDX);
          const [x, y] = pair(g, size, i);
          b.setOp(reg(RAX, size), x);
          let src: Opnd;
          if (form === 'r') { src = regsOf(b, size, 1).regs[0]; b.setOp(src, y); } else if (form === 'm') src = b.mem(size); else src = reg(RAX, size);
          b.ins(`mul ${otext(src)}`, fx, { writes: ACC_WRITES(size) });
          out.push(b.build('mul', `mul ${form === 'acc' ? 'the accumulator itself' : form}${size}`));
        }
      }
    }
    return out;
  });
}

function imulFamily(): Family {
  return fam('imul', (g) => {
    const out: OracleCase[] = [];
    const fx = effectOf('imul');
    for (const size of SIZES) {
      for (const form of ['r', 'm']) {
        for (let i = 0; i < 6; i++) {
          const b = new Builder(g);
          b.reserve(RAX, RDX);
          const [x, y] = pair(g, size, i);
          b.setOp(reg(RAX, size), x);
          let src: Opnd;
          if (form === 'r') { src = regsOf(b, size, 1).regs[0]; b.setOp(src, y); } else src = b.mem(size);
          b.ins(`imul ${otext(src)}`, fx, { writes: ACC_WRITES(size) });
          out.push(b.build('imul', `imul ${form}${size} (one operand)`));
        }
      }
    }
    for (const size of WIDE) {
      for (const form of ['r,r', 'r,m', 'r,r,imm8', 'r,m,imm8', 'r,r,imm', 'r,m,imm']) {
        for (let i = 0; i < 5; i++) {
          const b = new Builder(g);
          const [x, y] = pair(g, size, i);
          const d = reg(b.take(), size);
          b.setOp(d, x);
          let src: Opnd;
          if (form.startsWith('r,r')) { src = reg(b.take(), size); b.setOp(src, y); } else src = b.mem(size);
          let text = `imul ${rname(d)}, ${otext(src)}`;
          if (form.endsWith('imm8')) text += `, byte ${immText(g.value(8), 8, true)}`;
          else if (form.endsWith(',imm')) text += `, strict ${KW[size]} ${immText(g.value(size === 64 ? 32 : size), size === 64 ? 32 : size, size === 64)}`;
          b.ins(text, fx, { writes: [d.idx] });
          out.push(b.build('imul', `imul ${form.replace(/r/g, `r${size}`).replace(/m/, `m${size}`)}`));
        }
      }
    }
    return out;
  });
}

function divFamily(op: 'div' | 'idiv'): Family {
  return fam(op, (g) => {
    const out: OracleCase[] = [];
    const fx = effectOf(op);
    for (const size of SIZES) {
      const m = mask(size);
      const h = 1n << BigInt(size - 1);
      for (const form of ['r', 'm']) {
        for (let i = 0; i < 14; i++) {
          const b = new Builder(g);
          b.reserve(RAX, RDX);
          let src: Opnd;
          if (form === 'r') src = regsOf(b, size, 1).regs[0];
          else src = b.mem(size);
          const divisorNow = src.kind === 'mem' ? b.peek(src.addr, size) : undefined;
          // Choose divisor (for registers) and dividend so that the kind of outcome is varied:
          // 0..1 divide by zero, 2..3 quotient overflow, else a valid division.
          let divisor = divisorNow ?? (i < 2 ? 0n : g.value(size) || 1n);
          if (src.kind === 'reg') {
            if (i >= 2 && divisor === 0n) divisor = 1n;
            if (op === 'idiv' && i === 4) divisor = m; // -1
            b.setOp(src, divisor);
          }
          let hi: bigint;
          let lo: bigint;
          if (i === 2 || i === 3 || divisor === 0n) {
            hi = divisor === 0n ? g.value(size) : op === 'div' ? divisor + BigInt(g.rng.int(3)) : h; // overflow
            hi &= m;
            lo = g.value(size);
            if (op === 'div' && hi < divisor) hi = divisor;
          } else if (op === 'idiv' && i === 4) {
            hi = m; lo = h; // INT_MIN / -1: #DE
          } else if (op === 'div') {
            hi = divisor === 0n ? 0n : (g.rng.u64() & m) % divisor;
            lo = g.value(size);
          } else {
            // a sign-extended dividend whose quotient fits: |dividend| < |divisor| * 2^(size-1)
            lo = g.value(size);
            hi = BigInt.asIntN(size, lo) < 0n ? m : 0n;
          }
          if (size === 8) b.setOp(reg(RAX, 16), (hi << 8n) | lo);
          else { b.setOp(reg(RAX, size), lo); b.setOp(reg(RDX, size), hi); }
          b.ins(`${op} ${otext(src)}`, fx, { writes: ACC_WRITES(size) });
          out.push(b.build(op, `${op} ${form}${size}`));
        }
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// bt bts btr btc, bsf bsr

function btFamily(op: 'bt' | 'bts' | 'btr' | 'btc'): Family {
  return fam(op, (g) => {
    const out: OracleCase[] = [];
    const fx = effectOf(op);
    const writesDst = op !== 'bt';
    for (const size of WIDE) {
      const offs = [0, 1, size - 1, size, size + 1, 63, 64, 100, g.rng.int(256)];
      for (const off of offs) {
        // r, r: the offset is taken modulo the operand size
        const b = new Builder(g);
        const d = reg(b.take(), size);
        const s = reg(b.take(), size);
        b.setOp(d, g.value(size));
        b.setReg(s.idx, (g.rng.u64() & ~0xffn) | BigInt(off));
        b.ins(`${op} ${rname(d)}, ${rname(s)}`, fx, { writes: writesDst ? [d.idx] : [] });
        out.push(b.build(op, `${op} r${size}, r${size} (offset ${off})`));
        const b2 = new Builder(g);
        const d2 = reg(b2.take(), size);
        b2.setOp(d2, g.value(size));
        b2.ins(`${op} ${rname(d2)}, ${off & 0xff}`, fx, { writes: writesDst ? [d2.idx] : [] });
        out.push(b2.build(op, `${op} r${size}, imm8 ${off}`));
      }
      // m, r: a signed bit offset reaching anywhere in the window (bit-string addressing)
      for (let i = 0; i < 12; i++) {
        const b = new Builder(g);
        const addr = b.pickAddr(size / 8, { lo: L.DATA_START + 0x40, hi: L.WINDOW_END - 8, align: 1 });
        const lo = -(addr - L.WINDOW_START - 8) * 8;
        const hi = (L.WINDOW_END - 8 - addr) * 8;
        const off = i === 0 ? -1 : i === 1 ? size : b.rng.range(lo, hi);
        const s = reg(b.take(), size);
        const m = b.mem(size, { addr });
        // Bits above the operand size are ignored: fill them with garbage.
        b.setReg(s.idx, (g.rng.u64() & ~mask(size)) | (BigInt(off) & mask(size)));
        const lock = writesDst && i % 3 === 2 ? 'lock ' : '';
        b.ins(`${lock}${op} ${m.text}, ${rname(s)}`, fx);
        out.push(b.build(op, `${lock}${op} m${size}, r${size} (bit offset ${off})`));
      }
      for (let i = 0; i < 4; i++) {
        const b = new Builder(g);
        const m = b.mem(size);
        const lock = writesDst && i === 3 ? 'lock ' : '';
        b.ins(`${lock}${op} ${m.text}, ${g.rng.int(256)}`, fx);
        out.push(b.build(op, `${lock}${op} m${size}, imm8`));
      }
    }
    return out;
  });
}

function bitScanFamily(op: 'bsf' | 'bsr'): Family {
  return fam(op, (g) => {
    const out: OracleCase[] = [];
    const fx = effectOf(op);
    for (const size of WIDE) {
      for (const form of ['r', 'm']) {
        for (let i = 0; i < 20; i++) {
          const b = new Builder(g);
          const d = reg(b.take(), size);
          let src: Opnd;
          const v = i < 4 ? 0n : i < 8 ? 1n << BigInt(g.rng.int(size)) : i === 8 ? mask(size) : g.value(size);
          if (form === 'r') { src = reg(b.take(), size); b.setOp(src, v); } else src = b.mem(size, { addr: i < 4 ? zeroAddr(b, size) : undefined });
          const isZero = src.kind === 'reg' ? v === 0n : b.peek(src.addr, size) === 0n;
          if (isZero) b.note(BITSCAN_NOTE);
          b.ins(`${op} ${rname(d)}, ${otext(src)}`, fx, { writes: [d.idx] });
          out.push(b.build(op, `${op} r${size}, ${form}${size}${isZero ? ' (zero source)' : ''}`));
        }
      }
    }
    return out;
  });
}

/** An address in the data part whose `size` bits are zero in this case's window, if any. */
function zeroAddr(b: Builder, size: number): number | undefined {
  for (let a = L.DATA_START; a + size / 8 <= L.WINDOW_END; a += size / 8) if (b.peek(a, size) === 0n) return a;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// cmovcc, setcc, jcc (and loop/jrcxz)

function cmovFamily(): Family {
  return fam('cmovcc', (g) => {
    const out: OracleCase[] = [];
    for (const [cc, reads] of CONDITIONS) {
      for (const size of WIDE) {
        for (const form of ['r', 'm']) {
          for (let i = 0; i < 2; i++) {
            const b = new Builder(g);
            const d = reg(b.take(), size);
            let src: Opnd;
            if (form === 'r') { src = reg(b.take(), size); b.setOp(src, g.value(size)); } else src = b.mem(size);
            b.ins(`cmov${cc} ${rname(d)}, ${otext(src)}`, NONE, { writes: [d.idx], reads });
            out.push(b.build('cmovcc', `cmov${cc} r${size}, ${form}${size}`));
          }
        }
      }
    }
    return out;
  });
}

function setccFamily(): Family {
  return fam('setcc', (g) => {
    const out: OracleCase[] = [];
    for (const [cc, reads] of CONDITIONS) {
      for (let i = 0; i < 8; i++) {
        const b = new Builder(g);
        const o: Opnd = i < 6 ? regsOf(b, 8, 1).regs[0] : b.mem(8);
        b.ins(`set${cc} ${otext(o)}`, NONE, { writes: opWrites(o), reads });
        out.push(b.build('setcc', `set${cc} ${o.kind === 'reg' ? 'r8' : 'm8'}`));
      }
    }
    return out;
  });
}

function jccFamily(): Family {
  return fam('jcc', (g) => {
    const out: OracleCase[] = [];
    for (const [cc, reads] of CONDITIONS) {
      for (let i = 0; i < 8; i++) {
        const b = new Builder(g);
        const r = reg(b.take(), 64);
        const near = i % 2 === 1;
        const lbl = b.newLabel();
        b.ins(`j${cc} ${near ? 'near ' : 'short '}${lbl}`, NONE, { reads, jumpTo: lbl });
        b.ins(`mov ${rname(r)}, 0x1111`, NONE, { writes: [r.idx], comment: 'skipped when the jump is taken' });
        if (near) b.ins(`times 130 nop`, NONE, { comment: 'padding: a rel8 could not reach' });
        b.label(lbl);
        b.ins(`inc ${rname(r)}`, effectOf('inc'), { writes: [r.idx] });
        out.push(b.build('jcc', `j${cc} ${near ? 'rel32' : 'rel8'}`));
      }
    }
    // loop, loope, loopne, jrcxz, jecxz: RCX-driven branches
    const rcxValues = [0n, 1n, 2n, 0x100000000n, 0xffffffff00000000n, 0xffffffffffffffffn];
    for (const op of ['loop', 'loope', 'loopne', 'jrcxz', 'jecxz']) {
      for (const v of rcxValues) {
        const b = new Builder(g);
        b.reserve(RCX);
        b.setReg(RCX, v);
        const r = reg(b.take(), 64);
        const lbl = b.newLabel();
        b.ins(`${op} ${lbl}`, NONE, { reads: op === 'loope' || op === 'loopne' ? ZF : 0, jumpTo: lbl, writes: op.startsWith('loop') ? [RCX] : [] });
        b.ins(`mov ${rname(r)}, 0x2222`, NONE, { writes: [r.idx] });
        b.label(lbl);
        out.push(b.build('jcc', `${op} (rcx=${hex(v)})`));
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// movzx / movsx / movsxd, mov, lea, addressing forms

function movxFamily(): Family {
  return fam('movsx/movzx', (g) => {
    const out: OracleCase[] = [];
    const combos: [string, Size, Size][] = [
      ['movzx', 16, 8], ['movzx', 32, 8], ['movzx', 64, 8], ['movzx', 32, 16], ['movzx', 64, 16],
      ['movsx', 16, 8], ['movsx', 32, 8], ['movsx', 64, 8], ['movsx', 32, 16], ['movsx', 64, 16],
      ['movsxd', 64, 32],
    ];
    for (const [op, ds, ss] of combos) {
      for (let i = 0; i < 12; i++) {
        const b = new Builder(g);
        const v = i < 6 ? boundaryValues(ss)[i] : g.value(ss);
        // AH-BH as the source: the instruction must not need a REX prefix (destination RAX-RDI, not 64-bit)
        const high = ss === 8 && ds !== 64 && i % 4 === 3;
        const d = reg(b.take({ legacy: high }), ds);
        let src: Opnd;
        if (i % 3 === 2) src = b.mem(ss);
        else {
          const freeHigh = [0, 1, 2, 3].filter((k) => !b.reserved.has(k));
          src = high && freeHigh.length ? reg(b.rng.pick(freeHigh), 8, true) : reg(b.take(), ss);
          b.reserve(src.idx);
          b.setOp(src, v);
        }
        const text = src.kind === 'mem' ? `${op} ${rname(d)}, ${src.text}` : `${op} ${rname(d)}, ${rname(src)}`;
        b.ins(text, NONE, { writes: [d.idx] });
        out.push(b.build('movsx/movzx', `${op} r${ds}, ${src.kind === 'mem' ? 'm' : 'r'}${ss}`));
      }
    }
    return out;
  });
}

function movFamily(): Family {
  return fam('mov', (g) => {
    const out: OracleCase[] = [];
    for (const size of SIZES) {
      for (const form of ['r,r', 'r,imm', 'r,m', 'm,r', 'm,imm', 'acc,moffs', 'moffs,acc']) {
        for (let i = 0; i < 5; i++) {
          const b = new Builder(g);
          let text: string;
          let writes: number[] = [];
          if (form === 'r,r') {
            const { regs: [d, s] } = regsOf(b, size, 2);
            text = `mov ${rname(d)}, ${rname(s)}`; writes = [d.idx];
          } else if (form === 'r,imm') {
            const { regs: [d] } = regsOf(b, size, 1);
            const v = g.value(size);
            // 64-bit: imm64 (B8+r), sign-extended imm32 (C7 /0), or whatever nasm picks (B8+r imm32 zero-extends)
            if (size !== 64) text = `mov ${rname(d)}, ${hex(v)}`;
            else if (i % 3 === 0) text = `mov ${rname(d)}, strict qword ${hex(v)}`;
            else if (i % 3 === 1) text = `mov ${rname(d)}, ${hex(BigInt.asIntN(32, v))}`;
            else text = `mov ${rname(d)}, ${hex(v)}`;
            writes = [d.idx];
          } else if (form === 'r,m' || form === 'm,r') {
            const { regs: [r], legacy } = regsOf(b, size, 1);
            const m = b.mem(size, { legacy });
            text = form === 'r,m' ? `mov ${rname(r)}, ${m.text}` : `mov ${m.text}, ${rname(r)}`;
            writes = form === 'r,m' ? [r.idx] : [];
          } else if (form === 'm,imm') {
            const m = b.mem(size);
            text = `mov ${m.text}, ${immText(g.value(size === 64 ? 32 : size), size === 64 ? 32 : size, size === 64)}`;
          } else {
            b.reserve(RAX);
            const addr = b.pickAddr(size / 8);
            const acc = rname(reg(RAX, size));
            text = form === 'acc,moffs' ? `mov ${acc}, [qword ${hex(addr)}]` : `mov [qword ${hex(addr)}], ${acc}`;
            writes = form === 'acc,moffs' ? [RAX] : [];
          }
          b.ins(text, NONE, { writes });
          out.push(b.build('mov', `mov ${form} (${size}-bit)`));
        }
      }
    }
    return out;
  });
}

/** Register names for an address: 64-bit or 32-bit (address-size override). */
const areg = (idx: number, a32: boolean) => rname(reg(idx, a32 ? 32 : 64));

function leaFamily(): Family {
  return fam('lea', (g) => {
    const out: OracleCase[] = [];
    const forms = ['b', 'b+d8', 'b+d32', 'b+i*s', 'b+i*s+d8', 'b+i*s+d32', 'i*s+d32', 'd32', 'rip', 'rbp', 'r13', 'rsp', 'r12', 'rsp+d8'];
    for (const form of forms) {
      for (const size of WIDE) {
        for (const a32 of [false, true]) {
          if (form === 'rip' && a32) continue;
          for (let i = 0; i < 2; i++) {
            const b = new Builder(g);
            const d = reg(b.take(), size);
            const r = g.rng;
            const scale = r.pick([1, 2, 4, 8]);
            const d8 = r.range(-128, 127);
            const d32 = r.bool() ? r.range(-0x80000000, 0x7fffffff) : r.range(-0x10000, 0x10000);
            const base = () => areg(b.take(), a32);
            const index = () => areg(b.take(), a32);
            const sd = (v: number) => (v < 0 ? `-${hex(-v)}` : `+${hex(v)}`);
            let ea: string;
            switch (form) {
              case 'b': ea = `[${base()}]`; break;
              case 'b+d8': ea = `[${base()}${sd(d8)}]`; break;
              case 'b+d32': ea = `[${base()}${sd(d32)}]`; break;
              case 'b+i*s': ea = `[${base()}+${index()}*${scale}]`; break;
              case 'b+i*s+d8': ea = `[${base()}+${index()}*${scale}${sd(d8)}]`; break;
              case 'b+i*s+d32': ea = `[${base()}+${index()}*${scale}${sd(d32)}]`; break;
              case 'i*s+d32': ea = `[${index()}*${scale}${sd(d32)}]`; break;
              case 'd32': ea = a32 ? `[${hex(d32 >>> 0)}]` : `[abs ${hex(d32)}]`; break;
              case 'rip': ea = `[rel $${sd(d8)}]`; break;
              case 'rbp': b.reserve(5); ea = `[${areg(5, a32)}]`; break;
              case 'r13': b.reserve(13); ea = `[${areg(13, a32)}]`; break;
              case 'rsp': ea = `[${areg(RSP, a32)}]`; break;
              case 'r12': b.reserve(12); ea = `[${areg(12, a32)}+${index()}*${scale}]`; break;
              default: ea = `[${areg(RSP, a32)}${sd(d8)}]`; break;
            }
            b.ins(`${a32 && form === 'd32' ? 'a32 ' : ''}lea ${rname(d)}, ${ea}`, NONE, { writes: [d.idx] });
            out.push(b.build('lea', `lea r${size}, ${form}${a32 ? ' (32-bit address)' : ''}`));
          }
        }
      }
    }
    return out;
  });
}

/** Loads and stores through every addressing form, the address landing in the window. */
function addressingFamily(): Family {
  return fam('addressing', (g) => {
    const out: OracleCase[] = [];
    const forms = ['b+i*s+d', 'i*s+d32', 'a32 b+i*s+d (wraps)', 'rbp+d', 'r13+i', 'rsp+d', 'r12+i*s', 'rip'];
    for (const form of forms) {
      for (let i = 0; i < 14; i++) {
        const b = new Builder(g);
        const r = g.rng;
        const size = r.pick(SIZES);
        const dst = reg(b.take(), size);
        const addr = b.pickAddr(size / 8);
        const scale = r.pick([1, 2, 4, 8]);
        const disp = r.bool() ? r.range(-128, 127) : r.range(-0x10000, 0x10000);
        const sd = (v: number | bigint) => (BigInt(v) < 0n ? `-${hex(-BigInt(v))}` : `+${hex(v)}`);
        let ea: string;
        if (form === 'b+i*s+d') {
          const bi = b.take(); const ii = b.take();
          const iv = BigInt(r.range(-64, 64));
          b.setReg(ii, iv);
          b.setReg(bi, BigInt(addr) - iv * BigInt(scale) - BigInt(disp));
          ea = `[${areg(bi, false)}+${areg(ii, false)}*${scale}${sd(disp)}]`;
        } else if (form === 'i*s+d32') {
          const ii = b.take();
          const iv = BigInt(r.range(0, 0x1000));
          b.setReg(ii, iv);
          ea = `[${areg(ii, false)}*${scale}${sd(BigInt(addr) - iv * BigInt(scale))}]`;
        } else if (form.startsWith('a32')) {
          // 32-bit address: the sum wraps at 4 GiB and the registers' upper halves are ignored.
          const bi = b.take(); const ii = b.take();
          const iv = BigInt(r.u32());
          const bv = BigInt.asUintN(32, BigInt(addr) - iv * BigInt(scale) - BigInt(disp));
          b.setReg(ii, (r.u64() & ~0xffffffffn) | iv);
          b.setReg(bi, (r.u64() & ~0xffffffffn) | bv);
          ea = `[${areg(bi, true)}+${areg(ii, true)}*${scale}${sd(disp)}]`;
        } else if (form === 'rbp+d' || form === 'rsp+d') {
          const bi = form === 'rbp+d' ? 5 : RSP;
          const d = r.range(-128, 127);
          if (bi === RSP) {
            // RSP stays STACK_INIT: address the stack part of the window.
            ea = `[rsp${sd(d & ~7)}]`;
          } else {
            b.reserve(5);
            b.setReg(5, BigInt(addr - d));
            ea = `[rbp${sd(d)}]`;
          }
        } else if (form === 'r13+i' || form === 'r12+i*s') {
          const bi = form === 'r13+i' ? 13 : 12;
          b.reserve(bi);
          const ii = b.take();
          const sc = form === 'r13+i' ? 1 : scale;
          const iv = BigInt(r.range(-32, 32));
          b.setReg(ii, iv);
          b.setReg(bi, BigInt(addr) - iv * BigInt(sc));
          ea = `[${areg(bi, false)}+${areg(ii, false)}${sc === 1 ? '' : `*${sc}`}]`;
        } else {
          ea = `[rel $${sd(r.range(-64, 64))}]`; // reads code bytes (the user part is readable)
        }
        b.ins(`mov ${rname(dst)}, ${KW[size]} ${ea}`, NONE, { writes: [dst.idx] });
        out.push(b.build('addressing', `load ${KW[size]} ${form}`));
        if (form !== 'rip' && i % 2 === 0) {
          // and a store through the same kind of address
          const b2 = new Builder(g);
          const src = reg(b2.take(), 64);
          const a2 = b2.pickAddr(8);
          const bi = b2.take();
          b2.setReg(bi, BigInt(a2 - disp));
          b2.ins(`mov qword [${areg(bi, false)}${sd(disp)}], ${rname(src)}`);
          out.push(b2.build('addressing', 'store qword b+d'));
        }
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// xchg, xadd, cmpxchg, cmpxchg8b/16b, bswap, cbw..cqo

function xchgFamily(): Family {
  return fam('xchg', (g) => {
    const out: OracleCase[] = [];
    for (const size of SIZES) {
      for (const form of ['r,r', 'acc,r', 'r,m', 'm,r', 'same']) {
        for (let i = 0; i < 6; i++) {
          const b = new Builder(g);
          let text: string;
          let writes: number[];
          if (form === 'r,r' || form === 'same') {
            const { regs } = regsOf(b, size, form === 'same' ? 1 : 2);
            const [a, c] = form === 'same' ? [regs[0], regs[0]] : regs;
            text = `xchg ${rname(a)}, ${rname(c)}`; writes = [a.idx, c.idx];
          } else if (form === 'acc,r') {
            b.reserve(RAX);
            const r = reg(b.take(), size);
            text = size === 8 ? `xchg al, ${rname(r)}` : `xchg ${rname(reg(RAX, size))}, ${rname(r)}`; writes = [RAX, r.idx];
          } else {
            const { regs: [r], legacy } = regsOf(b, size, 1);
            const m = b.mem(size, { legacy });
            text = form === 'r,m' ? `xchg ${rname(r)}, ${m.text}` : `xchg ${m.text}, ${rname(r)}`; writes = [r.idx];
          }
          b.ins(text, NONE, { writes });
          out.push(b.build('xchg', `xchg ${form} (${size}-bit)`));
        }
      }
    }
    return out;
  });
}

function xaddFamily(): Family {
  return fam('xadd', (g) => {
    const out: OracleCase[] = [];
    const fx = effectOf('xadd');
    for (const size of SIZES) {
      for (const form of ['r,r', 'm,r', 'lock m,r', 'same']) {
        for (let i = 0; i < 7; i++) {
          const b = new Builder(g);
          const [x, y] = pair(g, size, i);
          let text: string;
          let writes: number[];
          if (form === 'r,r' || form === 'same') {
            const { regs } = regsOf(b, size, form === 'same' ? 1 : 2);
            const [d, s] = form === 'same' ? [regs[0], regs[0]] : regs;
            b.setOp(d, x); if (form !== 'same') b.setOp(s, y);
            text = `xadd ${rname(d)}, ${rname(s)}`; writes = [d.idx, s.idx];
          } else {
            const { regs: [s], legacy } = regsOf(b, size, 1);
            b.setOp(s, y);
            const m = b.mem(size, { legacy });
            text = `${form.startsWith('lock') ? 'lock ' : ''}xadd ${m.text}, ${rname(s)}`; writes = [s.idx];
          }
          b.ins(text, fx, { writes });
          out.push(b.build('xadd', `xadd ${form} (${size}-bit)`));
        }
      }
    }
    return out;
  });
}

function cmpxchgFamily(): Family {
  return fam('cmpxchg', (g) => {
    const out: OracleCase[] = [];
    const fx = effectOf('cmpxchg');
    for (const size of SIZES) {
      for (const form of ['r,r', 'm,r', 'lock m,r', 'acc']) {
        for (let i = 0; i < 7; i++) {
          const b = new Builder(g);
          b.reserve(RAX);
          const acc = reg(RAX, size);
          const equal = i % 2 === 0;
          let text: string;
          let writes = [RAX];
          if (form === 'r,r') {
            const d = reg(b.take(), size);
            const s = reg(b.take(), size);
            const dv = g.value(size);
            b.setOp(d, dv); b.setOp(s, g.value(size));
            b.setOp(acc, equal ? dv : g.value(size));
            text = `cmpxchg ${rname(d)}, ${rname(s)}`; writes = [RAX, d.idx];
            if (size === 32 && !equal) b.note(CMPXCHG_NOTE);
          } else if (form === 'acc') {
            const s = reg(b.take(), size);
            text = `cmpxchg ${rname(acc)}, ${rname(s)}`; writes = [RAX];
          } else {
            const s = reg(b.take(), size);
            const m = b.mem(size);
            b.setOp(acc, equal ? b.peek(m.addr, size) : g.value(size));
            text = `${form.startsWith('lock') ? 'lock ' : ''}cmpxchg ${m.text}, ${rname(s)}`;
          }
          b.ins(text, fx, { writes });
          out.push(b.build('cmpxchg', `cmpxchg ${form} (${size}-bit, ${equal ? 'equal' : 'maybe unequal'})`));
        }
      }
    }
    return out;
  });
}

function cmpxchg8b16bFamily(): Family {
  return fam('cmpxchg8b/16b', (g) => {
    const out: OracleCase[] = [];
    const fx = effectOf('cmpxchg8b');
    for (const wide of [false, true]) {
      for (let i = 0; i < 56; i++) {
        const b = new Builder(g);
        b.reserve(RAX, RDX, 3, RCX);
        const bytes = wide ? 16 : 8;
        const misaligned = wide && i % 14 === 13;
        const addr = misaligned ? b.pickAddr(16, { align: 8 }) | 8 : b.pickAddr(bytes, { align: i % 4 === 3 && !wide ? 1 : bytes });
        const m = b.mem(64, { addr, noSize: true, bytes });
        const equal = i % 2 === 0;
        const half = wide ? 64 : 32;
        if (equal) {
          b.setOp(reg(RAX, half as Size), b.peek(addr, half));
          b.setOp(reg(RDX, half as Size), b.peek(addr + half / 8, half));
        }
        const lock = i % 3 === 0 ? 'lock ' : '';
        b.ins(`${lock}cmpxchg${wide ? '16b' : '8b'} ${wide ? 'oword' : 'qword'} ${m.text}`, fx, { writes: [RAX, RDX] });
        out.push(b.build('cmpxchg8b/16b', `${lock}cmpxchg${wide ? '16b' : '8b'} (${equal ? 'equal' : 'unequal'}${misaligned ? ', misaligned: #GP' : ''})`));
      }
    }
    return out;
  });
}

function bswapFamily(): Family {
  return fam('bswap', (g) => {
    const out: OracleCase[] = [];
    for (const size of [32, 64] as const) {
      for (let i = 0; i < 56; i++) {
        const b = new Builder(g);
        const r = reg(b.take(), size);
        b.setOp(r, g.value(size));
        b.ins(`bswap ${rname(r)}`, NONE, { writes: [r.idx] });
        out.push(b.build('bswap', `bswap r${size}`));
      }
    }
    return out;
  });
}

function convertFamily(): Family {
  return fam('cbw..cqo', (g) => {
    const out: OracleCase[] = [];
    const ops: [string, Size, number[]][] = [['cbw', 8, [RAX]], ['cwde', 16, [RAX]], ['cdqe', 32, [RAX]], ['cwd', 16, [RDX]], ['cdq', 32, [RDX]], ['cqo', 64, [RDX]]];
    for (const [op, src, writes] of ops) {
      for (let i = 0; i < 20; i++) {
        const b = new Builder(g);
        b.setOp(reg(RAX, src), i < 8 ? boundaryValues(src)[i] : g.value(src));
        b.ins(op, NONE, { writes });
        out.push(b.build('cbw..cqo', op));
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// string instructions

type StrOp = 'movs' | 'stos' | 'lods' | 'cmps' | 'scas';
const SUFFIX: Record<number, string> = { 8: 'b', 16: 'w', 32: 'd', 64: 'q' };

function stringFamily(op: StrOp): Family {
  const usesSrc = op === 'movs' || op === 'lods' || op === 'cmps';
  const usesDst = op !== 'lods';
  const prefixes = op === 'cmps' || op === 'scas' ? ['', 'repe ', 'repne '] : ['', 'rep '];
  const fx: FlagEffect = op === 'cmps' || op === 'scas' ? effectOf(op) : NONE;
  return fam(op, (g) => {
    const out: OracleCase[] = [];
    for (const size of SIZES) {
      const e = size / 8;
      for (const prefix of prefixes) {
        for (const df of [false, true]) {
          const counts = prefix ? [0, 1, 2, 3, 5, 8, 17] : [1, 1, 1, 1];
          for (const count of counts) {
            for (const a32 of prefix ? [false, true] : [false]) {
              if (a32 && count !== 3) continue;
              const b = new Builder(g, { poolOffset: g.rng.bool(0.5) ? g.rng.pick([0, 0x400, 0x800]) : undefined });
              b.setFlags(df ? DF : 0, df ? 0 : DF);
              b.reserve(RSI, RDI, RCX, RAX);
              const n = Math.max(count, 1);
              const span = n * e;
              // The addresses the instruction will touch, for DF=0 upwards from p, for DF=1 downwards.
              const place = () => {
                const lo = df ? L.DATA_START + span - e : L.DATA_START;
                const hi = df ? L.WINDOW_END - e : L.WINDOW_END - span;
                return lo + e * g.rng.int(Math.floor((hi - lo) / e) + 1);
              };
              const hiBits = (v: number) => (a32 ? (g.rng.u64() & ~0xffffffffn) | BigInt(v) : BigInt(v));
              if (usesSrc) b.setReg(RSI, hiBits(place()));
              if (usesDst) {
                // cmps: half of the time compare a region with itself (REPE then runs to the end)
                const same = op === 'cmps' && g.rng.bool(0.3);
                b.setReg(RDI, same ? b.regs[RSI] : hiBits(place()));
              }
              b.setReg(RCX, prefix ? hiBits(count) : g.value64());
              if (op === 'scas' || op === 'stos') {
                // scas: look for a byte that is there half of the time
                const di = Number(b.regs[RDI] & 0xffffffffn);
                const hitAt = di + (df ? -1 : 1) * e * g.rng.int(n);
                b.setOp(reg(RAX, size), op === 'scas' && g.rng.bool(0.5) ? b.peek(hitAt, size) : g.value(size));
              }
              const text = `${a32 ? 'a32 ' : ''}${prefix}${op}${SUFFIX[size]}`;
              const writes = [...(usesSrc ? [RSI] : []), ...(usesDst ? [RDI] : []), ...(prefix ? [RCX] : []), ...(op === 'lods' ? [RAX] : [])];
              b.ins(text, prefix && count === 0 ? NONE : fx, { writes, comment: `${prefix ? `count ${count}, ` : ''}DF=${df ? 1 : 0}` });
              out.push(b.build(op, `${text} (DF=${df ? 1 : 0}${prefix ? `, rcx=${count}` : ''})`));
            }
          }
        }
      }
      // Running into the guard page after the window: #PF in the middle of a REP, with RCX/RSI/RDI
      // telling how far it got.
      {
        const b = new Builder(g);
        b.setFlags(0, DF);
        b.reserve(RSI, RDI, RCX, RAX);
        const start = L.WINDOW_END - 3 * e - (size === 8 ? 1 : 0);
        if (usesSrc) b.setReg(RSI, BigInt(usesDst ? L.DATA_START : start));
        if (usesDst) b.setReg(RDI, BigInt(start));
        b.setReg(RCX, 6n);
        b.setOp(reg(RAX, size), b.peek(start, size) ^ 1n);
        const text = `${prefixes[1]}${op}${SUFFIX[size]}`;
        b.ins(text, fx, { writes: [RSI, RDI, RCX, RAX] });
        out.push(b.build(op, `${text} into the guard page (#PF mid-way)`));
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// push/pop/call/ret/enter/leave/pushf/popf

function stackFamily(): Family {
  return fam('stack', (g) => {
    const out: OracleCase[] = [];
    const forms = ['push/pop r', 'push imm', 'push/pop m', 'push/pop r16', 'push rsp/pop rsp', 'pop m rsp-based', 'call/ret', 'call/ret imm', 'call r', 'call m', 'pushf/popf', 'enter/leave', 'rsp-relative'];
    for (const form of forms) {
      for (let i = 0; i < 10; i++) {
        const b = new Builder(g);
        const r = g.rng;
        const name = `stack ${form}`;
        switch (form) {
          case 'push/pop r': {
            const a = b.take(); const c = b.take(); const d = b.take();
            b.ins(`push ${rname(reg(a, 64))}`);
            b.ins(`push ${rname(reg(c, 64))}`);
            b.ins(`pop ${rname(reg(d, 64))}`, NONE, { writes: [d] });
            if (i % 2) b.ins(`pop ${rname(reg(a, 64))}`, NONE, { writes: [a] });
            break;
          }
          case 'push imm': {
            const d = b.take();
            const v = g.value(32);
            const enc = r.pick(['byte', 'strict dword', 'word']);
            if (enc === 'byte') b.ins(`push byte ${hex(BigInt.asIntN(8, v))}`);
            else if (enc === 'word') b.ins(`push word ${hex(v & 0xffffn)}`, NONE, { comment: '66 prefix: pushes 2 bytes' });
            else b.ins(`push strict dword ${hex(BigInt.asIntN(32, v))}`, NONE, { comment: 'sign-extended to 64 bits' });
            b.ins(`pop ${rname(reg(d, 64))}`, NONE, { writes: [d] });
            break;
          }
          case 'push/pop m': {
            const m = b.mem(64);
            const m2 = b.mem(64);
            b.ins(`push ${m.text}`);
            b.ins(`pop ${m2.text}`);
            break;
          }
          case 'push/pop r16': {
            const a = b.take(); const d = b.take();
            b.ins(`push ${rname(reg(a, 16))}`);
            b.ins(`push ${rname(reg(a, 64))}`);
            b.ins(`pop ${rname(reg(d, 16))}`, NONE, { writes: [d] });
            b.ins(`pop ${rname(reg(d, 64))}`, NONE, { writes: [d], comment: 'stack now misaligned by 2 in the middle' });
            break;
          }
          case 'push rsp/pop rsp': {
            const d = b.take();
            b.ins('push rsp', NONE, { comment: 'pushes the value before the decrement' });
            b.ins(`mov ${rname(reg(d, 64))}, [rsp]`, NONE, { writes: [d] });
            if (i % 2) b.ins('pop rsp', NONE, { writes: [RSP], comment: 'RSP = the popped value' });
            break;
          }
          case 'pop m rsp-based': {
            b.ins('push qword 0x55');
            b.ins(`pop qword [rsp${i % 2 ? '+8' : '-8'}]`, NONE, { comment: 'the address uses RSP after the pop (SDM POP)' });
            break;
          }
          case 'call/ret':
          case 'call/ret imm': {
            const f = b.newLabel(); const after = b.newLabel();
            const d = b.take();
            b.ins(`call ${f}`, NONE, { jumpTo: f });
            b.ins(`jmp ${after}`, NONE, { jumpTo: after });
            b.label(f);
            b.ins(`mov ${rname(reg(d, 64))}, [rsp]`, NONE, { writes: [d], comment: 'the return address' });
            b.ins(form === 'call/ret imm' ? `ret ${8 * r.int(5)}` : 'ret');
            b.label(after);
            break;
          }
          case 'call r': {
            const f = b.newLabel(); const after = b.newLabel();
            const t = b.take();
            b.ins(`lea ${rname(reg(t, 64))}, [rel ${f}]`, NONE, { writes: [t] });
            b.ins(`call ${rname(reg(t, 64))}`, NONE, { jumpTo: f });
            b.ins(`jmp ${after}`, NONE, { jumpTo: after });
            b.label(f);
            b.ins('pop rax', NONE, { writes: [RAX] });
            b.ins('push rax');
            b.ins('ret');
            b.label(after);
            break;
          }
          case 'call m': {
            const f = b.newLabel(); const after = b.newLabel();
            const m = b.mem(64, { align: 8 });
            const t = b.take();
            b.ins(`lea ${rname(reg(t, 64))}, [rel ${f}]`, NONE, { writes: [t] });
            b.ins(`mov ${m.text}, ${rname(reg(t, 64))}`);
            b.ins(`call ${m.text}`, NONE, { jumpTo: f });
            b.ins(`jmp ${after}`, NONE, { jumpTo: after });
            b.label(f);
            b.ins('ret');
            b.label(after);
            break;
          }
          case 'pushf/popf': {
            // Load RFLAGS from a value (TF kept clear); at CPL 3 with IOPL 0, IF and IOPL stay.
            const t = b.take();
            const v = (r.u64() & BigInt(STATUS | DF | AC | NT | ID | 0x3000 | 0x200)) | 2n;
            b.setReg(t, v);
            b.ins(`push ${rname(reg(t, 64))}`);
            b.ins('popfq', { defined: STATUS | DF, undef: 0 }, { comment: `loads ${hex(v)} (IF, IOPL ignored at CPL 3)` });
            const d = b.take();
            b.ins('pushfq');
            b.ins(`pop ${rname(reg(d, 64))}`, NONE, { writes: [d] });
            if (i % 2) { b.ins('push 0x202'); b.ins('popfq', { defined: STATUS | DF, undef: 0 }); }
            break;
          }
          case 'enter/leave': {
            const level = i % 3 === 2 ? 1 : 0;
            b.reserve(5);
            b.setReg(5, BigInt(L.STACK_INIT + 0x40));
            b.ins(`enter ${8 * r.int(6)}, ${level}`, NONE, { writes: [5] });
            const d = b.take();
            b.ins(`mov ${rname(reg(d, 64))}, rsp`, NONE, { writes: [d] });
            if (i % 2 === 0) b.ins('leave', NONE, { writes: [5] });
            break;
          }
          default: {
            const d = b.take();
            b.ins(`mov ${rname(reg(d, 64))}, [rsp${r.bool() ? '+' : '-'}${hex(8 * r.int(12))}]`, NONE, { writes: [d] });
            b.ins(`mov [rsp-8], ${rname(reg(d, 32))}`);
            break;
          }
        }
        out.push(b.build('stack', name));
      }
    }
    return out;
  });
}

function flagOpsFamily(): Family {
  return fam('lahf/sahf/clc/stc/cmc/cld/std', (g) => {
    const out: OracleCase[] = [];
    const seqs: [string, FlagEffect, number][][] = [
      [['lahf', NONE, STATUS & ~OF]], [['sahf', effectOf('sahf'), 0]], [['sahf', effectOf('sahf'), 0], ['lahf', NONE, STATUS & ~OF]],
      [['clc', effectOf('clc'), 0]], [['stc', effectOf('stc'), 0]], [['cmc', effectOf('cmc'), CF]], [['stc', effectOf('stc'), 0], ['cmc', effectOf('cmc'), CF]],
      [['cld', effectOf('cld'), 0]], [['std', effectOf('std'), 0]], [['std', effectOf('std'), 0], ['cld', effectOf('cld'), 0]],
      [['clc', effectOf('clc'), 0], ['lahf', NONE, STATUS & ~OF]], [['cmc', effectOf('cmc'), CF], ['lahf', NONE, STATUS & ~OF]],
    ];
    for (const seq of seqs) {
      for (let i = 0; i < 10; i++) {
        const b = new Builder(g);
        b.setOp(reg(RAX, 8, true), g.value(8));
        for (const [op, e, reads] of seq) b.ins(op, e, { reads, writes: op === 'lahf' ? [RAX] : [] });
        out.push(b.build('lahf/sahf/clc/stc/cmc/cld/std', seq.map((s) => s[0]).join('; ')));
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Exceptions: every case here faults (or traps), and the vector, error code, CR2 and RIP must match.

function faultFamily(): Family {
  return fam('faults', (g) => {
    const out: OracleCase[] = [];
    const one = (name: string, setup: (b: Builder) => string, note?: string) => {
      const b = new Builder(g);
      const text = setup(b);
      b.ins(text);
      if (note) b.note(note);
      out.push(b.build('faults', name));
    };
    const via = (b: Builder, addr: bigint) => { const r = b.take(); b.setReg(r, addr); return rname(reg(r, 64)); };
    // #UD
    for (const t of ['ud2', 'db 0x0f, 0xb9, 0xc0', 'db 0x0f, 0xff, 0xc0', 'lock add eax, ebx', 'db 0xf0, 0x90', 'lock mov [rsp-8], eax', 'lock cmp [rsp-8], eax', 'db 0xce', 'db 0x06', 'db 0x07', 'db 0x0e', 'db 0x16', 'db 0x17', 'db 0x1e', 'db 0x1f', 'db 0x27', 'db 0x2f', 'db 0x37', 'db 0x3f', 'db 0x60', 'db 0x61', 'db 0x82, 0xc0, 0x01', 'db 0x9a, 0, 0, 0, 0, 0, 0', 'db 0xd4, 0x0a', 'db 0xd5, 0x0a', 'db 0xd6', 'db 0xea, 0, 0, 0, 0, 0, 0']) {
      one(`#UD ${t}`, () => t, t.startsWith('db') ? 'an opcode that is invalid in 64-bit mode' : undefined);
    }
    // #BP (a trap: RIP after the INT3). Not here because PVM gets them wrong (see README.md,
    // "PVM quirks"): INT n other than INT3 (#UD instead of the gate's #GP/#NP), INT1/ICEBP
    // (#DB reported at the instruction instead of after it), SYSCALL (ignores EFER.SCE).
    one('#BP int3', () => 'int3');
    // #DE
    for (const size of SIZES) {
      one(`#DE div by zero (${size}-bit)`, (b) => { b.reserve(RAX, RDX); const r = reg(b.take(), size); b.setOp(r, 0n); return `div ${rname(r)}`; });
      one(`#DE idiv overflow (${size}-bit)`, (b) => {
        b.reserve(RAX, RDX); const r = reg(b.take(), size); b.setOp(r, mask(size));
        if (size === 8) b.setOp(reg(RAX, 16), 0xff80n); else { b.setOp(reg(RAX, size), 1n << BigInt(size - 1)); b.setOp(reg(RDX, size), mask(size)); }
        return `idiv ${rname(r)}`;
      });
    }
    // #GP(0): non-canonical addresses (loads, stores, RMW, jumps)
    const nonCanonical = [0x0000800000000000n, 0x7fffffffffffff00n, 0xffff7ffffffffff8n, 0x8000000000000000n, 0x0001000000000000n];
    for (const a of nonCanonical) {
      one(`#GP load non-canonical ${hex(a)}`, (b) => `mov rax, [${via(b, a)}]`);
      one(`#GP store non-canonical ${hex(a)}`, (b) => `mov [${via(b, a)}], eax`);
      one(`#GP rmw non-canonical ${hex(a)}`, (b) => `add dword [${via(b, a)}+4], 1`);
    }
    one('#GP access that becomes non-canonical by its displacement', (b) => `mov rax, [${via(b, 0x00007ffffffffff0n)}+0x20]`);
    for (const a of [0x0000800000000000n, 0xdead000000000000n]) one(`#GP jmp to non-canonical ${hex(a)}`, (b) => `jmp ${via(b, a)}`, 'Intel reports the #GP at the JMP; AMD hardware too (RIP is never non-canonical)');
    // #SS(0): non-canonical stack references (RSP or RBP as the base)
    for (const t of ['push rax', 'pop rax', 'mov rax, [rsp]', 'call $+5']) {
      one(`#SS ${t} with a non-canonical RSP`, (b) => { b.setReg(RSP, 0x0000800000000010n); return t; });
    }
    one('#SS mov rax, [rbp+8] with a non-canonical RBP', (b) => { b.reserve(5); b.setReg(5, 0x8000000000000000n); return 'mov rax, [rbp+8]'; });
    // #PF: not present, protection, write to read-only, page-crossing, instruction fetch. Nothing
    // in the upper canonical half: PVM reports user accesses there with RSVD set in the error code.
    const pf: [string, bigint, string][] = [
      ['not-present read', BigInt(L.UNMAPPED_PAGE + 0x10), 'mov rax, [%]'],
      ['not-present write', BigInt(L.UNMAPPED_PAGE + 0x10), 'mov [%], rax'],
      ['not-present read (guard page)', BigInt(L.GUARD_PAGE), 'mov al, [%]'],
      ['null read', 0n, 'mov eax, [%]'],
      ['null write', 8n, 'mov [%], eax'],
      ['unmapped PML4 slot read', 0x00007fffffffe000n, 'mov rax, [%]'],
      ['supervisor page read', BigInt(L.SUPERVISOR_PAGE + 0x20), 'mov rax, [%]'],
      ['supervisor page write', BigInt(L.SUPERVISOR_PAGE + 0x20), 'mov [%], rax'],
      ['kernel code read', BigInt(L.IMAGE_BASE), 'mov rax, [%]'],
      ['read-only page write', BigInt(L.READONLY_PAGE + 0x40), 'mov [%], rax'],
      ['read-only page rmw', BigInt(L.READONLY_PAGE + 0x40), 'inc qword [%]'],
      ['read-only page read (no fault)', BigInt(L.READONLY_PAGE + 0x40), 'mov rax, [%]'],
      ['code page write', BigInt(L.USER_CODE + 0x10), 'mov [%], al'],
      ['crossing into the guard page (read)', BigInt(L.WINDOW_END - 4), 'mov rax, [%]'],
      ['crossing into the guard page (write)', BigInt(L.WINDOW_END - 2), 'mov [%], eax'],
      ['crossing into the guard page (xchg)', BigInt(L.WINDOW_END - 1), 'xchg [%], cx'],
      ['execute the guard page', BigInt(L.GUARD_PAGE), 'jmp %'],
      ['execute the data page (NX)', BigInt(L.DATA_START), 'call %'],
      ['execute the supervisor page', BigInt(L.SUPERVISOR_PAGE), 'jmp %'],
      ['execute the kernel', BigInt(L.IMAGE_BASE + 0x100), 'jmp %'],
    ];
    for (const [name, addr, tmpl] of pf) {
      one(`#PF ${name}`, (b) => tmpl.replace('%', via(b, addr)));
      one(`#PF ${name} (other size)`, (b) => tmpl.replace(/\brax\b/, 'ax').replace(/\beax\b/, 'al').replace('%', via(b, addr)));
    }
    one('#PF push into an unmapped stack', (b) => { b.setReg(RSP, BigInt(L.UNMAPPED_PAGE + 0x1000)); return 'push rax'; });
    one('#PF rep stosb over the window end', (b) => { b.reserve(RDI, RCX); b.setReg(RDI, BigInt(L.WINDOW_END - 5)); b.setReg(RCX, 9n); b.setFlags(0, DF); return 'rep stosb'; });
    // #GP(0): privileged or I/O instructions at CPL 3
    for (const t of ['hlt', 'cli', 'sti', 'in al, 0x80', 'out 0x80, al', 'in eax, dx', 'out dx, ax', 'insb', 'outsb', 'mov rax, cr0', 'mov cr3, rax', 'mov rax, cr4', 'mov rax, dr7', 'mov dr0, rax', 'clts', 'wbinvd', 'invd', 'rdmsr', 'wrmsr', 'rdpmc', 'lmsw ax', 'lgdt [rsp]', 'lidt [rsp]', 'lldt ax', 'ltr ax', 'invlpg [rsp]', 'swapgs']) {
      one(`#GP ${t} at CPL 3`, () => t);
    }
    // cmpxchg16b on a misaligned operand
    one('#GP cmpxchg16b misaligned', (b) => `cmpxchg16b oword [${via(b, BigInt(L.DATA_START + 8))}]`);
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// MMX (SDM vol. 1 chapter 9) and the SSE/SSE2 integer forms on MMX registers. The MMX registers
// are not compared directly: every case loads the ones it reads from GPRs, moves the result to a
// GPR (or stores it into the window) and ends with EMMS, so no MMX state carries between cases.

const MMX_BINARY = [
  'paddb', 'paddw', 'paddd', 'paddq', 'psubb', 'psubw', 'psubd', 'psubq',
  'paddsb', 'paddsw', 'paddusb', 'paddusw', 'psubsb', 'psubsw', 'psubusb', 'psubusw',
  'pand', 'pandn', 'por', 'pxor', 'pcmpeqb', 'pcmpeqw', 'pcmpeqd', 'pcmpgtb', 'pcmpgtw', 'pcmpgtd',
  'packsswb', 'packssdw', 'packuswb', 'punpckhbw', 'punpckhwd', 'punpckhdq',
  'pmullw', 'pmulhw', 'pmulhuw', 'pmaddwd', 'pmuludq', 'pminub', 'pmaxub', 'pminsw', 'pmaxsw',
  'pavgb', 'pavgw', 'psadbw', 'psllw', 'pslld', 'psllq', 'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad',
];
const MMX_UNPACKL = ['punpcklbw', 'punpcklwd', 'punpckldq'];
const MMX_SHIFT_IMM = ['psllw', 'pslld', 'psllq', 'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad'];

/** A 64-bit MMX operand value: boundary lanes, equal lanes, shift counts, or random. */
function mmxValue(g: Gen, shiftCount: boolean): bigint {
  const r = g.rng;
  if (shiftCount && r.bool(0.7)) return BigInt(r.pick([0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 0x10000]));
  const x = r.int(6);
  if (x === 0) return r.pick([0n, 1n, mask(64), 0x8000000000000000n, 0x7fffffffffffffffn, 0x7fff80007fff8000n, 0x80ff7f0001fe00ffn]);
  if (x === 1) { const w = BigInt(r.u32() & 0xffff); return w | (w << 16n) | (w << 32n) | (w << 48n); }
  return g.value64();
}

function mmxFamily(): Family {
  return fam('mmx', (g) => {
    const out: OracleCase[] = [];
    const r64 = (i: number) => rname(reg(i, 64));
    const r32 = (i: number) => rname(reg(i, 32));
    /** One case: MMa, MMb loaded from GPRs, then `body`, then the result MMa to a GPR and EMMS. */
    /** `memSize`: a window operand of that size is made before the first instruction, passed as `m`. */
    const one = (name: string, body: (b: Builder, a: number, bb: number, m: string) => void, shiftSrc = false, memSize?: Size): void => {
      const b = new Builder(g);
      const a = b.rng.int(8);
      const bb = b.rng.int(8);
      const ra = b.take();
      const rb = b.take();
      b.setReg(ra, mmxValue(g, false));
      b.setReg(rb, mmxValue(g, shiftSrc));
      const m = memSize ? b.mem(memSize, { noSize: true }).text : '';
      b.ins(`movq mm${bb}, ${r64(rb)}`);
      b.ins(`movq mm${a}, ${r64(ra)}`);
      body(b, a, bb, m);
      const rd = b.take();
      b.ins(`movq ${r64(rd)}, mm${a}`, NONE, { writes: [rd] });
      b.ins('emms');
      out.push(b.build('mmx', name));
    };
    for (const op of MMX_BINARY) {
      const shift = /^ps[lr]/.test(op);
      for (let i = 0; i < 4; i++) {
        if (i < 2) one(`${op} mm, mm`, (b, a, bb) => b.ins(`${op} mm${a}, mm${bb}`), shift);
        else {
          one(`${op} mm, m64`, (b, a, _bb, m) => b.ins(`${op} mm${a}, ${m}`), false, 64);
        }
      }
    }
    for (const op of MMX_UNPACKL) {
      for (let i = 0; i < 4; i++) {
        if (i < 2) one(`${op} mm, mm`, (b, a, bb) => b.ins(`${op} mm${a}, mm${bb}`));
        else one(`${op} mm, m32`, (b, a, _bb, m) => b.ins(`${op} mm${a}, ${m}`), false, 32);
      }
    }
    for (const op of MMX_SHIFT_IMM) {
      for (let i = 0; i < 4; i++) {
        const imm = g.rng.pick([0, 1, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 200, 255]);
        one(`${op} mm, imm8`, (b, a) => b.ins(`${op} mm${a}, ${imm}`));
      }
    }
    for (let i = 0; i < 6; i++) {
      const imm = g.rng.int(256);
      one('pshufw mm, mm, imm8', (b, a, bb) => b.ins(`pshufw mm${a}, mm${bb}, ${imm}`));
      one('pshufw mm, m64, imm8', (b, a, _bb, m) => b.ins(`pshufw mm${a}, ${m}, ${imm}`), false, 64);
      one('pinsrw mm, r32, imm8', (b, a) => {
        const r = b.take();
        b.ins(`pinsrw mm${a}, ${r32(r)}, ${imm}`);
      });
      one('pinsrw mm, m16, imm8', (b, a, _bb, m) => b.ins(`pinsrw mm${a}, ${m}, ${imm}`), false, 16);
      one('pextrw r32, mm, imm8', (b, a) => {
        const r = b.take();
        b.ins(`pextrw ${r32(r)}, mm${a}, ${imm}`, NONE, { writes: [r] });
      });
      one('pmovmskb r32, mm', (b, a, bb) => {
        const r = b.take();
        b.ins(`pmovmskb ${r32(r)}, mm${bb}`, NONE, { writes: [r] });
      });
    }
    for (let i = 0; i < 4; i++) {
      one('movd mm, r32', (b, a) => { const r = b.take(); b.ins(`movd mm${a}, ${r32(r)}`); });
      one('movd mm, m32', (b, a, _bb, m) => b.ins(`movd mm${a}, ${m}`), false, 32);
      one('movq mm, m64', (b, a, _bb, m) => b.ins(`movq mm${a}, ${m}`), false, 64);
      one('movq mm, mm', (b, a, bb) => b.ins(`movq mm${a}, mm${bb}`));
      one('movd r32, mm', (b, a, bb) => { const r = b.take(); b.ins(`movd ${r32(r)}, mm${bb}`, NONE, { writes: [r] }); });
      one('movd m32, mm', (b, a, bb, m) => b.ins(`movd ${m}, mm${bb}`), false, 32);
      one('movq m64, mm', (b, a, bb, m) => b.ins(`movq ${m}, mm${bb}`), false, 64);
      one('movntq m64, mm', (b, a, bb, m) => b.ins(`movntq ${m}, mm${bb}`), false, 64);
    }
    return out;
  });
}

export const FAMILIES: Family[] = [
  ...['add', 'adc', 'sub', 'sbb', 'and', 'or', 'xor', 'cmp', 'test'].map(aluFamily),
  unaryFamily('inc/dec', ['inc', 'dec']),
  unaryFamily('neg/not', ['neg', 'not']),
  ...(['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr'] as const).map(shiftFamily),
  doubleShiftFamily('shld'),
  doubleShiftFamily('shrd'),
  mulFamily(),
  imulFamily(),
  divFamily('div'),
  divFamily('idiv'),
  ...(['bt', 'bts', 'btr', 'btc'] as const).map(btFamily),
  bitScanFamily('bsf'),
  bitScanFamily('bsr'),
  cmovFamily(),
  setccFamily(),
  jccFamily(),
  movxFamily(),
  movFamily(),
  leaFamily(),
  addressingFamily(),
  xchgFamily(),
  xaddFamily(),
  cmpxchgFamily(),
  cmpxchg8b16bFamily(),
  bswapFamily(),
  convertFamily(),
  ...(['movs', 'stos', 'lods', 'cmps', 'scas'] as const).map(stringFamily),
  stackFamily(),
  flagOpsFamily(),
  faultFamily(),
  mmxFamily(),
];

