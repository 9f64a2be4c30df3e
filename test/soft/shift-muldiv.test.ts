// Shifts, rotates (SDM vol. 2B SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD/SHRD) and
// MUL/IMUL/DIV/IDIV (vol. 2A/2B) against references written from the SDM's "Operation".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, FL, stubRip } from './harness.js';

const SIZES = [1, 2, 4, 8] as const;
type Size = (typeof SIZES)[number];
const A: Record<Size, string> = { 1: 'al', 2: 'ax', 4: 'eax', 8: 'rax' };
const B: Record<Size, string> = { 1: 'bl', 2: 'bx', 4: 'ebx', 8: 'rbx' };
const mask = (s: Size) => (1n << BigInt(s * 8)) - 1n;
const sign = (s: Size) => 1n << BigInt(s * 8 - 1);
const sx = (v: bigint, s: Size) => BigInt.asIntN(s * 8, v);

function parity(v: bigint): boolean {
  let n = 0;
  for (let i = 0n; i < 8n; i++) if ((v >> i) & 1n) n++;
  return n % 2 === 0;
}
function szp(r: bigint, s: Size): bigint {
  return ((r & mask(s)) === 0n ? FL.ZF : 0n) | (r & sign(s) ? FL.SF : 0n) | (parity(r) ? FL.PF : 0n);
}

/** Reference shift/rotate: returns result, flags and which flags are defined for this count. */
function refShift(op: string, s: Size, a: bigint, count: number, cf: boolean): { r: bigint; f: bigint; defined: bigint } {
  const bits = s * 8;
  const m = mask(s);
  const c = count & (s === 8 ? 0x3f : 0x1f);
  a &= m;
  if (c === 0) return { r: a, f: cf ? FL.CF : 0n, defined: FL.CF };
  const msb = (v: bigint) => (v & sign(s)) !== 0n;
  let r = a;
  let ncf = false;
  let of = false;
  switch (op) {
    case 'shl': {
      r = (a << BigInt(c)) & m;
      ncf = c <= bits ? ((a >> BigInt(bits - c)) & 1n) === 1n : false;
      of = msb(r) !== ncf;
      const defined = (c <= bits ? FL.CF : 0n) | (c === 1 ? FL.OF : 0n) | FL.ZF | FL.SF | FL.PF;
      return { r, f: szp(r, s) | (ncf ? FL.CF : 0n) | (of ? FL.OF : 0n), defined };
    }
    case 'shr': {
      r = a >> BigInt(c);
      ncf = ((a >> BigInt(c - 1)) & 1n) === 1n;
      of = msb(a);
      const defined = (c <= bits ? FL.CF : 0n) | (c === 1 ? FL.OF : 0n) | FL.ZF | FL.SF | FL.PF;
      return { r, f: szp(r, s) | (ncf ? FL.CF : 0n) | (of ? FL.OF : 0n), defined };
    }
    case 'sar': {
      const v = sx(a, s);
      r = BigInt.asUintN(bits, v >> BigInt(Math.min(c, bits - 1)));
      ncf = ((v >> BigInt(Math.min(c - 1, bits - 1))) & 1n) !== 0n;
      const defined = FL.CF | (c === 1 ? FL.OF : 0n) | FL.ZF | FL.SF | FL.PF;
      return { r, f: szp(r, s) | (ncf ? FL.CF : 0n), defined };
    }
    case 'rol': {
      const n = c % bits;
      r = n === 0 ? a : ((a << BigInt(n)) | (a >> BigInt(bits - n))) & m;
      ncf = (r & 1n) === 1n;
      of = msb(r) !== ncf;
      return { r, f: (ncf ? FL.CF : 0n) | (of ? FL.OF : 0n), defined: FL.CF | (c === 1 ? FL.OF : 0n) };
    }
    case 'ror': {
      const n = c % bits;
      r = n === 0 ? a : ((a >> BigInt(n)) | (a << BigInt(bits - n))) & m;
      ncf = msb(r);
      of = msb(r) !== ((r & (sign(s) >> 1n)) !== 0n);
      return { r, f: (ncf ? FL.CF : 0n) | (of ? FL.OF : 0n), defined: FL.CF | (c === 1 ? FL.OF : 0n) };
    }
    case 'rcl': case 'rcr': {
      const n = s <= 2 ? c % (bits + 1) : c;
      let carry = cf;
      const orig = r;
      for (let i = 0; i < n; i++) {
        if (op === 'rcl') {
          const out = msb(r);
          r = ((r << 1n) | (carry ? 1n : 0n)) & m;
          carry = out;
        } else {
          const out = (r & 1n) === 1n;
          r = (r >> 1n) | (carry ? sign(s) : 0n);
          carry = out;
        }
      }
      of = op === 'rcl' ? msb(r) !== carry : msb(orig) !== cf;
      return { r, f: (carry ? FL.CF : 0n) | (of ? FL.OF : 0n), defined: FL.CF | (c === 1 ? FL.OF : 0n) };
    }
    default: throw new Error(op);
  }
}

test('shifts and rotates: results and defined flags, counts 0..bits+1 and masking', async () => {
  for (const op of ['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr']) {
    for (const s of SIZES) {
      for (const a of [0x81n, 0x8000000000000001n, 0x0123456789abcdefn, 0xfedcba9876543210n, 1n, 0n]) {
        for (const count of [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]) {
          for (const cf of [false, true]) {
            const src = `${cf ? 'stc' : 'clc'}\n${op} ${A[s]}, cl\npushfq\npop rdx\nhlt`;
            const r = await runAsm('long', src, (st) => { st.regs.rax = a; st.regs.rcx = BigInt(count); });
            const e = refShift(op, s, a, count, cf);
            const label = `${op} ${A[s]}=${(a & mask(s)).toString(16)}, ${count} (cf=${cf})`;
            assert.equal((r.state.regs.rax & mask(s)).toString(16), e.r.toString(16), label);
            assert.equal((r.state.regs.rdx & e.defined).toString(16), (e.f & e.defined).toString(16), `${label}: flags`);
          }
        }
      }
    }
  }
});

test('shift forms: by 1 (D1), by imm8 (C1), memory operand', async () => {
  const r = await runAsm('long', 'shl rax, 1\nshr rbx, 4\nsar dword [0x20000], 31\nrol word [0x20008], 4\nhlt', (s, m) => {
    s.regs.rax = 0x4000000000000001n;
    s.regs.rbx = 0xf0n;
    m.mem.writeU32(0x20000, 0x80000000);
    m.mem.writeU16(0x20008, 0x1234);
  });
  assert.equal(r.state.regs.rax, 0x8000000000000002n);
  assert.equal(r.state.regs.rbx, 0xfn);
  assert.equal(r.m.mem.readU32(0x20000), 0xffffffff);
  assert.equal(r.m.mem.readU16(0x20008), 0x2341);
});

test('SHLD / SHRD: results, CF and OF for count 1', async () => {
  const cases: [string, Size, bigint, bigint, number, bigint, boolean][] = [
    ['shld', 4, 0x12345678n, 0x9abcdef0n, 8, 0x3456789an, false],
    ['shrd', 4, 0x12345678n, 0x9abcdef0n, 8, 0xf0123456n, false],
    ['shld', 8, 0x8000000000000000n, 0xffffffffffffffffn, 1, 0x1n, true],
    ['shrd', 8, 0x1n, 0n, 1, 0n, true],
    ['shld', 2, 0x1234n, 0x5678n, 4, 0x2345n, true],
    ['shrd', 2, 0x1234n, 0x5678n, 4, 0x8123n, false],
  ];
  for (const [op, s, a, b, c, want, wantCf] of cases) {
    const r = await runAsm('long', `${op} ${A[s]}, ${B[s]}, ${c}\npushfq\npop rdx\nhlt`, (st) => { st.regs.rax = a; st.regs.rbx = b; });
    assert.equal((r.state.regs.rax & mask(s)).toString(16), want.toString(16), `${op} ${c}`);
    assert.equal((r.state.regs.rdx & FL.CF) !== 0n, wantCf, `${op} ${c} CF`);
  }
  // OF (count 1): set when the sign changes
  const r = await runAsm('long', 'shld eax, ebx, 1\npushfq\npop rdx\nhlt', (st) => { st.regs.rax = 0x40000000n; st.regs.rbx = 0n; });
  assert.equal(r.state.regs.rdx & FL.OF, FL.OF);
});

test('MUL / IMUL: all widths, CF=OF when the high half is significant', async () => {
  for (const s of SIZES) {
    for (const [a, b] of [[3n, 5n], [mask(s), mask(s)], [sign(s), 2n], [mask(s), 1n], [0x7fn, 0x7fn], [sign(s) - 1n, 3n]]) {
      const mr = await runAsm('long', `mul ${B[s]}\npushfq\npop rsi\nhlt`, (st) => { st.regs.rax = a; st.regs.rbx = b; st.regs.rdx = 0x5555n; });
      const p = (a & mask(s)) * (b & mask(s));
      const bits = BigInt(s * 8);
      let lo: bigint, hi: bigint;
      if (s === 1) { lo = mr.state.regs.rax & 0xffn; hi = (mr.state.regs.rax >> 8n) & 0xffn; } else {
        lo = mr.state.regs.rax & mask(s); hi = mr.state.regs.rdx & mask(s);
      }
      assert.equal(lo, p & mask(s), `mul ${s} lo`);
      assert.equal(hi, p >> bits, `mul ${s} hi`);
      assert.equal((mr.state.regs.rsi & (FL.CF | FL.OF)) !== 0n, (p >> bits) !== 0n, `mul ${s} flags`);

      const ir = await runAsm('long', `imul ${B[s]}\npushfq\npop rsi\nhlt`, (st) => { st.regs.rax = a; st.regs.rbx = b; });
      const sp = sx(a, s) * sx(b, s);
      const slo = BigInt.asUintN(s * 8, sp);
      const shi = BigInt.asUintN(s * 8, sp >> bits);
      if (s === 1) {
        assert.equal(ir.state.regs.rax & 0xffffn, BigInt.asUintN(16, sp), 'imul8');
      } else {
        assert.equal(ir.state.regs.rax & mask(s), slo, `imul ${s} lo`);
        assert.equal(ir.state.regs.rdx & mask(s), shi, `imul ${s} hi`);
      }
      assert.equal((ir.state.regs.rsi & FL.CF) !== 0n, sx(slo, s) !== sp, `imul ${s} CF`);
      if (s > 1) {
        const tr = await runAsm('long', `imul ${A[s]}, ${B[s]}\npushfq\npop rsi\nimul ${B[s]}, ${B[s]}, -3\nhlt`, (st) => { st.regs.rax = a; st.regs.rbx = b; });
        assert.equal(tr.state.regs.rax & mask(s), slo, `imul r,r ${s}`);
        assert.equal((tr.state.regs.rsi & FL.OF) !== 0n, sx(slo, s) !== sp, `imul r,r ${s} OF`);
        assert.equal(tr.state.regs.rbx & mask(s), BigInt.asUintN(s * 8, sx(b, s) * -3n), `imul r,r,imm ${s}`);
      }
    }
  }
});

test('DIV / IDIV: all widths, remainders and signs', async () => {
  for (const s of SIZES) {
    const bits = BigInt(s * 8);
    for (const [n, d] of [[100n, 7n], [mask(s), 3n], [(5n << bits) + 17n, 9n], [1n << (bits + bits - 2n), mask(s)]]) {
      const r = await runAsm('long', `div ${B[s]}\nhlt`, (st) => {
        if (s === 1) st.regs.rax = n & 0xffffn;
        else { st.regs.rax = n & mask(s); st.regs.rdx = n >> bits; }
        st.regs.rbx = d;
      });
      const q = n / d;
      if (q > mask(s)) continue;
      if (s === 1) assert.equal(r.state.regs.rax & 0xffffn, ((n % d) << 8n) | q, 'div8');
      else {
        assert.equal(r.state.regs.rax & mask(s), q, `div ${s} q`);
        assert.equal(r.state.regs.rdx & mask(s), n % d, `div ${s} r`);
      }
    }
    for (const [n, d] of [[-100n, 7n], [100n, -7n], [-100n, -7n], [-(sign(s)), 1n], [BigInt(sign(s)) - 1n, -1n]]) {
      const un = BigInt.asUintN(s * 16, n);
      const r = await runAsm('long', `idiv ${B[s]}\nhlt`, (st) => {
        if (s === 1) st.regs.rax = un & 0xffffn;
        else { st.regs.rax = un & mask(s); st.regs.rdx = un >> bits; }
        st.regs.rbx = BigInt.asUintN(s * 8, d);
      });
      const q = n / d; // BigInt division truncates toward zero, as IDIV does
      const rem = n % d;
      if (s === 1) {
        assert.equal(r.state.regs.rax & 0xffn, BigInt.asUintN(8, q), 'idiv8 q');
        assert.equal((r.state.regs.rax >> 8n) & 0xffn, BigInt.asUintN(8, rem), 'idiv8 r');
      } else {
        assert.equal(r.state.regs.rax & mask(s), BigInt.asUintN(s * 8, q), `idiv ${s} q (${n}/${d})`);
        assert.equal(r.state.regs.rdx & mask(s), BigInt.asUintN(s * 8, rem), `idiv ${s} r`);
      }
    }
  }
});

test('#DE: divide by zero and quotient overflow, RIP at the faulting instruction', async () => {
  for (const s of SIZES) {
    for (const [insn, setup] of [
      [`div ${B[s]}`, { rax: 1n, rdx: 0n, rbx: 0n }],
      [`idiv ${B[s]}`, { rax: 1n, rdx: 0n, rbx: 0n }],
      [`div ${B[s]}`, { rax: 0n, rdx: 1n, rbx: 1n }],
      [`idiv ${B[s]}`, { rax: s === 1 ? 0x8000n : sign(s), rdx: s === 1 ? 0n : mask(s), rbx: mask(s) }],
    ] as [string, Record<string, bigint>][]) {
      const r = await runAsm('long', `nop\n${insn}\nhlt`, (st) => {
        st.regs.rax = setup.rax; st.regs.rdx = setup.rdx; st.regs.rbx = setup.rbx;
        if (s === 1 && insn.startsWith('div') && setup.rdx === 1n) st.regs.rax = 0x100n; // AX/1 = 0x100 overflows AL
      });
      assert.equal(r.m.cpu.lastException?.vector, 0, `${insn} (${s})`);
      assert.equal(r.state.regs.rip, stubRip(0));
      assert.equal(r.m.mem.readU64(Number(r.state.regs.rsp)), 0x10001n, 'pushed RIP = the DIV');
    }
  }
});
