// Random sequences: 1-8 instructions drawn from the same families as the directed cases, with
// random registers, immediates and operand sizes. Constraints that keep a sequence meaningful:
//   - RSP is never a destination; pushes and pops stay within the stack part of the window.
//   - memory operands address the data part of the window through a register whose value the
//     generator knows (it sets them up, and forgets a register once something writes it), with
//     small displacements; only a few deliberate "wild" loads go elsewhere (they fault, or read
//     something both CPUs see identically);
//   - an instruction that reads a flag the SDM leaves undefined at that point (e.g. JO after a
//     multi-bit shift) is preceded by a CMP that defines all six status flags;
//   - jumps are forward only; CALL/RET come as a matched pair around a short body.
// Faults (#DE from DIV, #PF/#GP from wild loads, #UD) are allowed and compared like any result.

import type { OracleCase } from './case.js';
import {
  Builder, Gen, type Mem, type Opnd, type Reg, type Size, KW, RAX, RCX, RDI, RDX, RSI, RSP, SIZES, WIDE,
  hex, immText, otext, reg, rname,
} from './builder.js';
import { CF, CONDITIONS, NONE, OF, STATUS, type FlagEffect, effectOf, shiftEffect, type ShiftOp } from './flags.js';
import { BITSCAN_NOTE, CMPXCHG_NOTE } from './families.js';
import * as L from './layout.js';

const ALU = ['add', 'adc', 'sub', 'sbb', 'and', 'or', 'xor', 'cmp', 'test'];
const SHIFTS: ShiftOp[] = ['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr'];

/** Any register but RSP, as an operand of `size` (8-bit: the REX forms, never AH-BH). */
function anyReg(b: Builder, size: Size, avoid: number[] = []): Reg {
  const cands: number[] = [];
  for (let i = 0; i < 16; i++) if (i !== RSP && !avoid.includes(i)) cands.push(i);
  return reg(b.rng.pick(cands), size);
}

/** Sets a register to a known value with a MOV (so later instructions can rely on it). */
function load(b: Builder, idx: number, v: bigint): void {
  const text = v < 0x100000000n ? `mov ${rname(reg(idx, 32))}, ${hex(v)}` : `mov ${rname(reg(idx, 64))}, ${hex(v)}`;
  b.ins(text, NONE, { writes: [idx] });
  b.setKnown(idx, v);
}

/** A memory operand in the data part of the window, through a known register (made if needed). */
function dataMem(b: Builder, size: Size, opts: { align?: number; bytes?: number; noSize?: boolean; avoid?: number[] } = {}): Mem {
  const bytes = opts.bytes ?? size / 8;
  const addr = b.pickAddr(bytes, { align: opts.align });
  const m = b.memVia(size, addr, opts);
  if (m) return m;
  const r = anyReg(b, 64, opts.avoid).idx;
  load(b, r, BigInt(L.DATA_MID));
  return b.memVia(size, addr, opts)!;
}

function dstOpnd(b: Builder, size: Size, memP = 0.3): Opnd {
  return b.rng.bool(memP) ? dataMem(b, size) : anyReg(b, size);
}

const writesOf = (o: Opnd): number[] => (o.kind === 'reg' ? [o.idx] : []);

/** Makes sure `reads` are defined: a CMP defines all six status flags. */
function defineFlags(b: Builder, reads: number): void {
  if (!(reads & b.undef)) return;
  const size = b.rng.pick(SIZES);
  b.ins(`cmp ${rname(anyReg(b, size))}, ${rname(anyReg(b, size))}`, effectOf('cmp'), { comment: 'defines the flags the next instruction reads' });
}

function imm(b: Builder, size: Size): string {
  const bits = size === 64 ? 32 : size;
  return immText(b.g.value(bits), bits, size === 64);
}

type Emitter = (b: Builder, ctx: Ctx) => void;
interface Ctx {
  /** Stack depth in qwords below STACK_INIT (pushes positive). */
  depth: number;
  /** Inside a jump-over or call body: no stack changes, no nested control flow. */
  nested: boolean;
}

const emitAlu: Emitter = (b) => {
  const r = b.rng;
  const op = r.pick(ALU);
  const size = r.pick(SIZES);
  const fx = effectOf(op);
  const reads = op === 'adc' || op === 'sbb' ? CF : 0;
  defineFlags(b, reads);
  const writes = op !== 'cmp' && op !== 'test';
  const form = r.int(6);
  let dst: Opnd;
  let text: string;
  if (form === 0) {
    dst = anyReg(b, size);
    text = `${op} ${rname(dst)}, ${rname(anyReg(b, size))}`;
  } else if (form === 1 && op !== 'test') {
    dst = anyReg(b, size);
    text = `${op} ${rname(dst)}, ${dataMem(b, size).text}`;
  } else if (form <= 2) {
    dst = dataMem(b, size);
    text = `${writes && r.bool(0.2) ? 'lock ' : ''}${op} ${dst.text}, ${rname(anyReg(b, size))}`;
  } else if (form === 3 && size !== 8 && op !== 'test') {
    dst = dstOpnd(b, size);
    text = `${op} ${otext(dst)}, byte ${immText(b.g.value(8), 8, true)}`;
  } else {
    dst = dstOpnd(b, size);
    text = `${op} ${otext(dst)}, ${size === 8 ? '' : `strict ${KW[size]} `}${imm(b, size)}`;
  }
  b.ins(text, fx, { writes: writes ? writesOf(dst) : [], reads });
};

const emitUnary: Emitter = (b) => {
  const op = b.rng.pick(['inc', 'dec', 'neg', 'not']);
  const size = b.rng.pick(SIZES);
  const dst = dstOpnd(b, size);
  b.ins(`${dst.kind === 'mem' && b.rng.bool(0.2) ? 'lock ' : ''}${op} ${otext(dst)}`, effectOf(op), { writes: writesOf(dst) });
};

const emitShift: Emitter = (b) => {
  const r = b.rng;
  const op = r.pick(SHIFTS);
  const size = r.pick(SIZES);
  const reads = op === 'rcl' || op === 'rcr' ? CF : 0;
  defineFlags(b, reads);
  const dst = dstOpnd(b, size, 0.2);
  const form = r.int(3);
  let count: number | undefined;
  let text: string;
  if (form === 0) { count = 1; text = `${op} ${otext(dst)}, 1`; }
  else if (form === 1) { count = r.bool(0.7) ? r.int(size + 2) : r.int(256); text = `${op} ${otext(dst)}, ${count}`; }
  else {
    const k = b.known[RCX];
    count = k === undefined ? undefined : Number(k & 0xffn);
    text = `${op} ${otext(dst)}, cl`;
  }
  b.ins(text, shiftEffect(op, size, count), { writes: writesOf(dst), reads });
};

const emitDoubleShift: Emitter = (b) => {
  const r = b.rng;
  const op = r.pick(['shld', 'shrd'] as const);
  const size = r.pick(WIDE);
  const dst = dstOpnd(b, size, 0.2);
  const src = anyReg(b, size);
  let count: number | undefined = r.int(size + 1);
  let text = `${op} ${otext(dst)}, ${rname(src)}, ${count}`;
  if (r.bool(0.4)) {
    const k = b.known[RCX];
    count = k === undefined ? undefined : Number(k & 0xffn);
    text = `${op} ${otext(dst)}, ${rname(src)}, cl`;
  }
  const e = shiftEffect(op, size, count);
  if (e.resultUndefined) { // a 16-bit shift by more than 16: avoid the undefined result
    b.ins(`${op} ${otext(dst)}, ${rname(src)}, 3`, shiftEffect(op, size, 3), { writes: writesOf(dst) });
    return;
  }
  b.ins(text, e, { writes: writesOf(dst) });
};

const emitMulDiv: Emitter = (b) => {
  const r = b.rng;
  const size = r.pick(SIZES);
  const accWrites = size === 8 ? [RAX] : [RAX, RDX];
  const k = r.int(6);
  if (k <= 1) {
    const op = k === 0 ? 'mul' : 'imul';
    const src = r.bool(0.3) ? dataMem(b, size) : anyReg(b, size);
    b.ins(`${op} ${otext(src)}`, effectOf(op), { writes: accWrites });
  } else if (k <= 3 && size !== 8) {
    const d = anyReg(b, size);
    const src = r.bool(0.3) ? dataMem(b, size) : anyReg(b, size);
    const three = k === 3 ? `, ${r.bool() ? `byte ${immText(b.g.value(8), 8, true)}` : `strict ${KW[size]} ${imm(b, size)}`}` : '';
    b.ins(`imul ${rname(d)}, ${otext(src)}${three}`, effectOf('imul'), { writes: [d.idx] });
  } else {
    const op = r.bool() ? 'div' : 'idiv';
    // Usually make the dividend's upper half sensible so that the division does not overflow.
    if (r.bool(0.7)) {
      if (size === 8) b.ins(op === 'div' ? 'movzx eax, al' : 'cbw', NONE, { writes: [RAX] });
      else if (op === 'div') b.ins(`xor ${rname(reg(RDX, 32))}, ${rname(reg(RDX, 32))}`, effectOf('xor'), { writes: [RDX] });
      else b.ins(size === 16 ? 'cwd' : size === 32 ? 'cdq' : 'cqo', NONE, { writes: [RDX] });
    }
    const src = r.bool(0.3) ? dataMem(b, size) : anyReg(b, size, [RAX, RDX]);
    b.ins(`${op} ${otext(src)}`, effectOf(op), { writes: accWrites });
  }
};

const emitBit: Emitter = (b) => {
  const r = b.rng;
  const size = r.pick(WIDE);
  const k = r.int(5);
  if (k <= 1) {
    const op = r.pick(['bsf', 'bsr']);
    const d = anyReg(b, size);
    const src = r.bool(0.3) ? dataMem(b, size) : anyReg(b, size);
    if (size === 32) b.note(BITSCAN_NOTE);
    b.ins(`${op} ${rname(d)}, ${otext(src)}`, effectOf(op), { writes: [d.idx] });
    return;
  }
  const op = r.pick(['bt', 'bts', 'btr', 'btc']);
  const fx = effectOf(op);
  const writes = op !== 'bt';
  if (k === 2) {
    const d = dstOpnd(b, size);
    b.ins(`${op} ${otext(d)}, ${r.int(256)}`, fx, { writes: writes ? writesOf(d) : [] });
  } else if (k === 3) {
    const d = anyReg(b, size);
    b.ins(`${op} ${rname(d)}, ${rname(anyReg(b, size))}`, fx, { writes: writes ? [d.idx] : [] });
  } else {
    // memory bit string with a register offset: load a small signed offset first
    const m = dataMem(b, size, { align: size / 8 });
    const base = m.uses[0];
    const off = anyReg(b, 64, [base]);
    const lo = -(m.addr - L.DATA_START) * 8;
    const hi = (L.WINDOW_END - 8 - m.addr) * 8;
    load(b, off.idx, BigInt.asUintN(64, BigInt(r.range(lo, Math.max(lo, hi)))));
    const m2 = b.memVia(size, m.addr) ?? m;
    b.ins(`${writes && r.bool(0.3) ? 'lock ' : ''}${op} ${m2.text}, ${rname(reg(off.idx, size))}`, fx);
  }
};

const emitCond: Emitter = (b) => {
  const r = b.rng;
  const defined = CONDITIONS.filter(([, reads]) => !(reads & b.undef));
  if (defined.length === 0) defineFlags(b, STATUS);
  const [cc, reads] = r.pick(defined.length ? defined : CONDITIONS);
  if (r.bool()) {
    const size = r.pick(WIDE);
    const d = anyReg(b, size);
    const src = r.bool(0.3) ? dataMem(b, size) : anyReg(b, size);
    b.ins(`cmov${cc} ${rname(d)}, ${otext(src)}`, NONE, { writes: [d.idx], reads });
  } else {
    const d = dstOpnd(b, 8, 0.2);
    b.ins(`set${cc} ${otext(d)}`, NONE, { writes: writesOf(d), reads });
  }
};

const emitMovx: Emitter = (b) => {
  const r = b.rng;
  const k = r.int(5);
  if (k === 4) {
    const d = anyReg(b, 64);
    const src = r.bool(0.3) ? dataMem(b, 32) : anyReg(b, 32);
    b.ins(`movsxd ${rname(d)}, ${otext(src)}`, NONE, { writes: [d.idx] });
    return;
  }
  const op = k < 2 ? 'movzx' : 'movsx';
  const ss: Size = r.bool() ? 8 : 16;
  const ds: Size = ss === 8 ? r.pick(WIDE) : r.pick([32, 64] as const);
  const d = anyReg(b, ds);
  const src = r.bool(0.3) ? dataMem(b, ss) : anyReg(b, ss);
  b.ins(`${op} ${rname(d)}, ${otext(src)}`, NONE, { writes: [d.idx] });
};

const emitLea: Emitter = (b) => {
  const r = b.rng;
  const size = r.pick(WIDE);
  const d = anyReg(b, size);
  const a32 = r.bool(0.2);
  const ar = (i: number) => rname(reg(i, a32 ? 32 : 64));
  const base = r.int(16);
  const index = r.pick([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  const disp = r.bool() ? r.range(-128, 127) : r.range(-0x80000000, 0x7fffffff);
  const parts = [ar(base)];
  if (r.bool(0.6)) parts.push(`${ar(index)}*${r.pick([1, 2, 4, 8])}`);
  b.ins(`lea ${rname(d)}, [${parts.join('+')}${disp < 0 ? '-' : '+'}${hex(Math.abs(disp))}]`, NONE, { writes: [d.idx] });
};

const emitXchg: Emitter = (b) => {
  const r = b.rng;
  const size = r.pick(SIZES);
  const k = r.int(7);
  if (k === 0) {
    const a = anyReg(b, size); const c = anyReg(b, size);
    b.ins(`xchg ${rname(a)}, ${rname(c)}`, NONE, { writes: [a.idx, c.idx] });
  } else if (k === 1) {
    const a = anyReg(b, size);
    b.ins(`xchg ${dataMem(b, size).text}, ${rname(a)}`, NONE, { writes: [a.idx] });
  } else if (k <= 3) {
    const s = anyReg(b, size);
    const d = dstOpnd(b, size);
    b.ins(`${d.kind === 'mem' && r.bool(0.3) ? 'lock ' : ''}xadd ${otext(d)}, ${rname(s)}`, effectOf('xadd'), { writes: [...writesOf(d), s.idx] });
  } else if (k <= 5) {
    const s = anyReg(b, size);
    const d = dstOpnd(b, size);
    if (d.kind === 'reg' && size === 32) b.note(CMPXCHG_NOTE);
    b.ins(`${d.kind === 'mem' && r.bool(0.3) ? 'lock ' : ''}cmpxchg ${otext(d)}, ${rname(s)}`, effectOf('cmpxchg'), { writes: [...writesOf(d), RAX] });
  } else {
    const wide = r.bool();
    const m = dataMem(b, 64, { align: wide ? 16 : 8, bytes: wide ? 16 : 8, noSize: true });
    b.ins(`${r.bool(0.3) ? 'lock ' : ''}cmpxchg${wide ? '16b oword' : '8b qword'} ${m.text}`, effectOf('cmpxchg8b'), { writes: [RAX, RDX] });
  }
};

const emitMisc: Emitter = (b) => {
  const r = b.rng;
  const k = r.int(4);
  if (k === 0) {
    const d = anyReg(b, r.pick([32, 64] as const));
    b.ins(`bswap ${rname(d)}`, NONE, { writes: [d.idx] });
  } else if (k === 1) {
    const [op, w] = r.pick([['cbw', RAX], ['cwde', RAX], ['cdqe', RAX], ['cwd', RDX], ['cdq', RDX], ['cqo', RDX]] as const);
    b.ins(op, NONE, { writes: [w] });
  } else if (k === 2) {
    const size = r.pick(SIZES);
    const f = r.int(5);
    if (f === 0) { const d = anyReg(b, size); b.ins(`mov ${rname(d)}, ${rname(anyReg(b, size))}`, NONE, { writes: [d.idx] }); }
    else if (f === 1) { const d = anyReg(b, size); b.ins(`mov ${rname(d)}, ${hex(b.g.value(size))}`, NONE, { writes: [d.idx] }); }
    else if (f === 2) { const d = anyReg(b, size); b.ins(`mov ${rname(d)}, ${dataMem(b, size).text}`, NONE, { writes: [d.idx] }); }
    else if (f === 3) b.ins(`mov ${dataMem(b, size).text}, ${rname(anyReg(b, size))}`);
    else b.ins(`mov ${dataMem(b, size).text}, ${imm(b, size)}`);
  } else {
    const t = r.pick(['lahf', 'sahf', 'clc', 'stc', 'cmc', 'cld', 'std']);
    const reads = t === 'lahf' ? STATUS & ~OF : t === 'cmc' ? CF : 0;
    defineFlags(b, reads);
    const fx: FlagEffect = t === 'lahf' ? NONE : effectOf(t);
    b.ins(t, fx, { reads, writes: t === 'lahf' ? [RAX] : [] });
    if (t === 'cld') b.df = false;
    if (t === 'std') b.df = true;
  }
};

const SUFFIX: Record<number, string> = { 8: 'b', 16: 'w', 32: 'd', 64: 'q' };

const emitString: Emitter = (b) => {
  const r = b.rng;
  const op = r.pick(['movs', 'stos', 'lods', 'cmps', 'scas']);
  const size = r.pick(SIZES);
  const e = size / 8;
  const rep = r.bool(0.7);
  const n = rep ? r.int(10) : 1;
  const span = Math.max(n, 1) * e;
  if (b.df === undefined) { // DF differs between the paths into here (a skipped CLD/STD)
    b.ins('cld', effectOf('cld'));
    b.df = false;
  }
  const df = b.df;
  const place = () => {
    const lo = df ? L.DATA_START + span - e : L.DATA_START;
    const hi = df ? L.WINDOW_END - e : L.WINDOW_END - span;
    return lo + r.int(hi - lo + 1);
  };
  const usesSrc = op === 'movs' || op === 'lods' || op === 'cmps';
  const usesDst = op !== 'lods';
  if (usesSrc) load(b, RSI, BigInt(place()));
  if (usesDst) load(b, RDI, BigInt(place()));
  if (rep) load(b, RCX, BigInt(n));
  const prefix = !rep ? '' : op === 'cmps' || op === 'scas' ? r.pick(['repe ', 'repne ']) : 'rep ';
  const fx = op === 'cmps' || op === 'scas' ? (rep && n === 0 ? NONE : effectOf(op)) : NONE;
  b.ins(`${prefix}${op}${SUFFIX[size]}`, fx, {
    writes: [...(usesSrc ? [RSI] : []), ...(usesDst ? [RDI] : []), ...(rep ? [RCX] : []), ...(op === 'lods' ? [RAX] : [])],
    comment: `DF=${df ? 1 : 0}`,
  });
};

const emitStack: Emitter = (b, ctx) => {
  const r = b.rng;
  const rsp = b.known[RSP];
  if (rsp === undefined) return;
  const canPush = ctx.depth < 14;
  const canPop = ctx.depth > -14;
  if (canPush && (r.bool() || !canPop)) {
    const k = r.int(4);
    if (k === 0) b.ins(`push ${rname(anyReg(b, 64))}`);
    else if (k === 1) b.ins(`push ${r.bool() ? 'byte' : 'strict dword'} ${immText(b.g.value(8), 8, true)}`);
    else if (k === 2) b.ins(`push ${dataMem(b, 64).text}`);
    else {
      // PUSHF stores every flag: the undefined ones must not get into memory.
      defineFlags(b, STATUS);
      b.ins('pushfq', NONE, { reads: STATUS });
    }
    b.setKnown(RSP, rsp - 8n);
    ctx.depth++;
  } else if (canPop) {
    if (r.bool(0.8)) {
      const d = anyReg(b, 64);
      b.ins(`pop ${rname(d)}`, NONE, { writes: [d.idx] });
    } else {
      // Not through RSP: POP computes an RSP-based address after incrementing RSP, which the
      // directed "stack" family tests on its own.
      b.ins(`pop ${dataMem(b, 64, { avoid: [RSP] }).text}`);
    }
    b.setKnown(RSP, rsp + 8n);
    ctx.depth--;
  }
};

/** Instructions that may be skipped or called: no stack or control-flow changes. */
const SIMPLE: [Emitter, number][] = [[emitAlu, 5], [emitUnary, 2], [emitShift, 2], [emitMovx, 1], [emitLea, 1], [emitMisc, 2], [emitBit, 1], [emitCond, 1]];

const emitJump: Emitter = (b, ctx) => {
  const r = b.rng;
  const defined = CONDITIONS.filter(([, reads]) => !(reads & b.undef));
  if (defined.length === 0) defineFlags(b, STATUS);
  const [cc, reads] = r.pick(defined.length ? defined : CONDITIONS);
  const lbl = b.newLabel();
  b.ins(`j${cc} ${lbl}`, NONE, { reads, jumpTo: lbl });
  const inner: Ctx = { ...ctx, nested: true };
  for (let i = r.range(1, 2); i > 0; i--) pickWeighted(b, SIMPLE)(b, inner);
  b.label(lbl);
};

const emitCall: Emitter = (b, ctx) => {
  const rsp = b.known[RSP];
  if (rsp === undefined || ctx.depth > 12) return;
  const f = b.newLabel();
  const after = b.newLabel();
  b.ins(`call ${f}`, NONE, { jumpTo: f });
  b.ins(`jmp ${after}`, NONE, { jumpTo: after });
  b.label(f);
  b.setKnown(RSP, rsp - 8n);
  const inner: Ctx = { ...ctx, nested: true };
  for (let i = b.rng.range(1, 2); i > 0; i--) pickWeighted(b, SIMPLE)(b, inner);
  b.ins('ret');
  b.setKnown(RSP, rsp);
  b.label(after);
};

/** Rarely: something that faults on purpose (or reads an odd place that both CPUs see alike). */
const emitFault: Emitter = (b) => {
  const r = b.rng;
  const k = r.int(5);
  if (k === 0) b.ins('ud2');
  else if (k === 1) {
    // A load through a register that holds whatever it holds: usually #GP or #PF. Never a
    // store (it could land in the result table), and never the upper canonical half (PVM sets
    // RSVD in the #PF error code there).
    const a = anyReg(b, 64);
    const v = b.known[a.idx];
    if (v === undefined || v >= 0xffff800000000000n) { b.ins('ud2'); return; }
    const d = anyReg(b, r.pick(SIZES));
    b.ins(`mov ${rname(d)}, [${rname(a)}]`, NONE, { writes: [d.idx] });
  } else if (k === 2) {
    // a load just past the data (mostly through a non-pointer: #GP/#PF; through a pointer: the guard page)
    const a = anyReg(b, 64);
    const v = b.known[a.idx];
    const disp = BigInt(L.WINDOW_END - L.DATA_MID - 4);
    if (v === undefined || BigInt.asUintN(64, v + disp) >= 0xffff800000000000n) { b.ins('ud2'); return; }
    const d = anyReg(b, 64, [a.idx]);
    b.ins(`mov ${rname(d)}, [${rname(a)}+${hex(disp)}]`, NONE, { writes: [d.idx] });
  } else if (k === 3) {
    // read across the end of the window into the guard page
    const m = b.memVia(64, L.WINDOW_END - r.range(1, 7));
    if (m) b.ins(`mov rax, ${m.text}`, NONE, { writes: [RAX] });
    else b.ins('ud2');
  } else {
    const d = anyReg(b, 32);
    b.ins(`mov ${rname(d)}, [abs ${hex(L.READONLY_PAGE + 8 * r.int(16))}]`, NONE, { writes: [d.idx] });
  }
};

const TOP: [Emitter, number][] = [
  [emitAlu, 14], [emitUnary, 4], [emitShift, 6], [emitDoubleShift, 2], [emitMulDiv, 5], [emitBit, 4], [emitCond, 4],
  [emitMovx, 3], [emitLea, 3], [emitXchg, 4], [emitMisc, 6], [emitString, 4], [emitStack, 4], [emitJump, 3], [emitCall, 2], [emitFault, 1],
];

function pickWeighted(b: Builder, table: [Emitter, number][]): Emitter {
  const total = table.reduce((s, [, w]) => s + w, 0);
  let x = b.rng.int(total);
  for (const [e, w] of table) {
    if (x < w) return e;
    x -= w;
  }
  return table[0][0];
}

export function randomCase(g: Gen, n: number): OracleCase {
  const b = new Builder(g);
  const r = g.rng;
  // 2-4 registers point into the data part of the window (some aligned, some not).
  const ptrs = r.range(2, 4);
  for (let i = 0; i < ptrs; i++) {
    const idx = r.pick([RAX, RCX, RDX, 3, 5, RSI, RDI, 8, 9, 10, 11, 12, 13, 14, 15]);
    b.setReg(idx, BigInt(b.pickAddr(8, { lo: L.DATA_START + 0x40, hi: L.WINDOW_END - 0x40 })));
  }
  if (r.bool(0.3)) b.setReg(RCX, BigInt(r.int(70)));
  const count = r.range(1, 8);
  const ctx: Ctx = { depth: 0, nested: false };
  for (let i = 0; i < count; i++) pickWeighted(b, TOP)(b, ctx);
  if (b.lines.length === 0) b.ins('nop');
  return b.build('random', `random sequence #${n}`);
}
