// ALU instructions against a reference written from the SDM's definitions of the status flags
// (vol. 1 3.4.3.1, appendix A) and each instruction's "Flags Affected" (vol. 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, FL, STATUS } from './harness.js';

const SIZES = [1, 2, 4, 8] as const;
type Size = (typeof SIZES)[number];
const REG_A: Record<Size, string> = { 1: 'al', 2: 'ax', 4: 'eax', 8: 'rax' };
const REG_B: Record<Size, string> = { 1: 'bl', 2: 'bx', 4: 'ebx', 8: 'rbx' };

const mask = (s: Size) => (1n << BigInt(s * 8)) - 1n;
const sign = (s: Size) => 1n << BigInt(s * 8 - 1);

function parity(v: bigint): boolean {
  let n = 0;
  for (let i = 0n; i < 8n; i++) if ((v >> i) & 1n) n++;
  return n % 2 === 0;
}

/** ZF, SF, PF of a result. */
function szp(r: bigint, s: Size): bigint {
  let f = 0n;
  if ((r & mask(s)) === 0n) f |= FL.ZF;
  if (r & sign(s)) f |= FL.SF;
  if (parity(r & 0xffn)) f |= FL.PF;
  return f;
}

interface Expect { result: bigint; flags: bigint; checked: bigint }

function reference(op: string, s: Size, a: bigint, b: bigint, cin: boolean): Expect {
  const m = mask(s);
  const sb = sign(s);
  a &= m;
  b &= m;
  const c = cin ? 1n : 0n;
  switch (op) {
    case 'add': case 'adc': {
      const cc = op === 'adc' ? c : 0n;
      const full = a + b + cc;
      const r = full & m;
      let f = szp(r, s);
      if (full > m) f |= FL.CF;
      if (((a ^ r) & (b ^ r) & sb) !== 0n) f |= FL.OF;
      if (((a ^ b ^ r) & 0x10n) !== 0n) f |= FL.AF;
      return { result: r, flags: f, checked: STATUS };
    }
    case 'sub': case 'sbb': case 'cmp': {
      const cc = op === 'sbb' ? c : 0n;
      const r = (a - b - cc) & m;
      let f = szp(r, s);
      if (a < b + cc) f |= FL.CF;
      if (((a ^ b) & (a ^ r) & sb) !== 0n) f |= FL.OF;
      if (((a ^ b ^ r) & 0x10n) !== 0n) f |= FL.AF;
      return { result: op === 'cmp' ? a : r, flags: f, checked: STATUS };
    }
    case 'and': case 'or': case 'xor': case 'test': {
      const r = op === 'and' || op === 'test' ? a & b : op === 'or' ? a | b : a ^ b;
      // CF = OF = 0; AF undefined
      return { result: op === 'test' ? a : r, flags: szp(r, s), checked: STATUS & ~FL.AF };
    }
    case 'inc': case 'dec': {
      const r = (op === 'inc' ? a + 1n : a - 1n) & m;
      let f = szp(r, s);
      if (op === 'inc' ? r === sb : a === sb) f |= FL.OF;
      if (((a ^ 1n ^ r) & 0x10n) !== 0n) f |= FL.AF;
      if (cin) f |= FL.CF; // CF is not affected
      return { result: r, flags: f, checked: STATUS };
    }
    case 'neg': {
      const r = (0n - a) & m;
      let f = szp(r, s);
      if (a !== 0n) f |= FL.CF;
      if (a === sb) f |= FL.OF;
      if (((a ^ r) & 0x10n) !== 0n) f |= FL.AF;
      return { result: r, flags: f, checked: STATUS };
    }
    default: throw new Error(op);
  }
}

function values(s: Size): bigint[] {
  const m = mask(s);
  const sb = sign(s);
  return [0n, 1n, 2n, 0xfn, 0x10n, sb - 1n, sb, sb + 1n, m - 1n, m, 0x5a5a5a5a5a5a5a5an & m, 0x0123456789abcdefn & m];
}

async function check(op: string, s: Size, a: bigint, b: bigint, cin: boolean): Promise<void> {
  const unary = op === 'inc' || op === 'dec' || op === 'neg';
  const insn = unary ? `${op} ${REG_A[s]}` : `${op} ${REG_A[s]}, ${REG_B[s]}`;
  const src = `${cin ? 'stc' : 'clc'}\n${insn}\npushfq\npop rdx\nhlt`;
  const r = await runAsm('long', src, (st) => {
    st.regs.rax = a;
    st.regs.rbx = b;
  });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  const e = reference(op, s, a, b, cin);
  const got = r.state.regs.rax & mask(s);
  const label = `${insn} a=${a.toString(16)} b=${b.toString(16)} cf=${cin}`;
  assert.equal(got.toString(16), e.result.toString(16), `${label}: result`);
  assert.equal((r.state.regs.rdx & e.checked).toString(16), (e.flags & e.checked).toString(16), `${label}: flags`);
  // upper bits: 8/16-bit writes merge, 32-bit writes zero-extend
  if (s === 4 && !['cmp', 'test'].includes(op)) assert.equal(r.state.regs.rax >> 32n, 0n, `${label}: zero-extended`);
  if (s < 4) assert.equal(r.state.regs.rax & ~mask(s), a & ~mask(s), `${label}: merged`);
}

for (const op of ['add', 'adc', 'sub', 'sbb', 'cmp', 'and', 'or', 'xor', 'test']) {
  test(`ALU ${op}: result and OF/SF/ZF/AF/PF/CF for every width`, async () => {
    for (const s of SIZES) {
      const vs = values(s);
      for (const a of vs) for (const b of [vs[0], vs[1], vs[5], vs[6], vs[9], vs[11]]) {
        await check(op, s, a | (s < 8 ? 0x7700000000000000n : 0n), b, false);
        if (op === 'adc' || op === 'sbb') await check(op, s, a, b, true);
      }
    }
  });
}

for (const op of ['inc', 'dec', 'neg']) {
  test(`ALU ${op}: every width, CF preserved by INC/DEC`, async () => {
    for (const s of SIZES) {
      for (const a of values(s)) {
        await check(op, s, a, 0n, false);
        await check(op, s, a, 0n, true);
      }
    }
  });
}

test('ALU: 8-bit high registers without REX, r8b-r15b and sil/dil with REX', async () => {
  const r = await runAsm('long', 'mov ah, 0x12\nadd ah, 0x34\nmov r9b, 0xff\nadd r9b, 1\nmov sil, 0x80\nhlt', (s) => {
    s.regs.rax = 0x1111111111110011n;
    s.regs.r9 = 0x2222222222222222n;
    s.regs.rsi = 0x3333333333333333n;
  });
  assert.equal(r.state.regs.rax, 0x1111111111114611n);
  assert.equal(r.state.regs.r9, 0x2222222222222200n);
  assert.equal(r.state.regs.rsi, 0x3333333333333380n);
});

test('ALU: memory destinations and immediates (80/81/83 groups)', async () => {
  const r = await runAsm('long', [
    'mov qword [0x20000], 5',
    'add qword [0x20000], 0x7fffffff',
    'sub dword [0x20008], 1',
    'or byte [0x20010], 0x81',
    'xor word [0x20018], -2',
    'adc qword [0x20000], -1',
    'hlt',
  ].join('\n'));
  const m = r.m.mem;
  assert.equal(m.readU64(0x20000), 5n + 0x7fffffffn - 1n); // adc with CF=0 after xor
  assert.equal(m.readU32(0x20008), 0xffffffff);
  assert.equal(m.readU8(0x20010), 0x81);
  assert.equal(m.readU16(0x20018), 0xfffe);
});
