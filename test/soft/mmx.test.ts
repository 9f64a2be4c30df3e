// MMX (SDM vol. 1 chapter 9; instruction pages in vol. 2) and the SSE/SSE2 integer forms that take
// MMX registers. MMi is the mantissa of physical x87 register Ri (vol. 1 9.5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, type Machine } from './harness.js';

const X = 0x20000;

function u64(m: Machine, addr: number): bigint { return m.mem.readU64(addr); }
function fill(m: Machine): void {
  for (let i = 0; i < 32; i++) m.mem.writeU8(X + i, (i * 37 + 0x81) & 0xff);
}
/** Little-endian lanes of a 64-bit value. */
function lanesOf(v: bigint, w: number): bigint[] {
  const bits = BigInt(w * 8);
  const mask = (1n << bits) - 1n;
  return Array.from({ length: 8 / w }, (_, i) => (v >> (BigInt(i) * bits)) & mask);
}
function join(l: bigint[], w: number): bigint {
  const bits = BigInt(w * 8);
  const mask = (1n << bits) - 1n;
  return l.reduce((acc, v, i) => acc | ((v & mask) << (BigInt(i) * bits)), 0n);
}
function sx(v: bigint, w: number): bigint { return BigInt.asIntN(w * 8, v); }
function sat(v: bigint, lo: bigint, hi: bigint): bigint { return v < lo ? lo : v > hi ? hi : v; }

test('MMX faults: #UD with CR0.EM, #NM with CR0.TS (no CR4.OSFXSR needed)', async () => {
  const a = await runAsm('long', 'movq mm0, [0x20000]\nhlt', (s) => { s.cr0 |= 4n; });
  assert.equal(a.m.cpu.lastException?.vector, 6);
  const b = await runAsm('long', 'emms\nhlt', (s) => { s.cr0 |= 8n; });
  assert.equal(b.m.cpu.lastException?.vector, 7);
  const c = await runAsm('long', 'mov eax, 5\nmovd mm1, eax\nmovd ebx, mm1\nhlt');
  assert.deepEqual(c.exit, { kind: 'hlt' });
  assert.equal(c.state.regs.rbx, 5n);
});

test('MOVD/MOVQ (incl. REX.W), aliasing with x87: TOP=0, tags valid, exponent ones; EMMS; FXSAVE', async () => {
  const r = await runAsm('long', `
    fninit
    fld1
    fld1                          ; TOP = 6
    mov rax, 0x1122334455667788
    movq mm2, rax
    movd mm3, eax                 ; zero-extended
    movq [${X + 0x40}], mm2
    movq mm4, [${X + 0x40}]
    movq mm5, mm4
    movq rcx, mm3
    movd edx, mm5
    mov rsi, -1
    movq mm6, rsi
    movd [${X + 0x48}], mm6
    movq [${X + 0x50}], mm3
    fnstsw ax
    mov r8d, eax
    fxsave [${X + 0x200}]
    emms
    fxsave [${X + 0x400}]
    mov r9, 0x0102030405060708
    movq mm7, r9
    fxrstor [${X + 0x200}]        ; MM7 back to what the image holds (the fld1 value)
    movq r10, mm7
    hlt
  `, (s) => { s.cr4 |= 0x600n; });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  const m = r.m;
  const g = r.state.regs;
  assert.equal(u64(m, X + 0x40), 0x1122334455667788n);
  assert.equal(g.rcx, 0x55667788n);
  assert.equal(g.rdx, 0x55667788n);
  assert.equal(m.mem.readU32(X + 0x48), 0xffffffff);
  assert.equal(u64(m, X + 0x50), 0x55667788n);
  assert.equal((g.r8 >> 11n) & 7n, 0n, 'TOP = 0 after MMX');
  const img = X + 0x200;
  assert.equal(m.mem.readU8(img + 4), 0xff, 'all tags valid');
  assert.equal(u64(m, img + 32 + 2 * 16), 0x1122334455667788n, 'MM2 = ST(2) when TOP = 0');
  assert.equal(m.mem.readU16(img + 32 + 2 * 16 + 8), 0xffff, 'exponent bits all ones');
  assert.equal(u64(m, img + 32 + 7 * 16), 0x8000000000000000n, 'R7 still holds 1.0 (first fld1 at TOP 7)');
  assert.equal(m.mem.readU16(img + 32 + 7 * 16 + 8), 0x3fff);
  assert.equal(m.mem.readU8(X + 0x400 + 4), 0, 'EMMS: all tags empty');
  assert.equal(g.r10, 0x8000000000000000n, 'FXRSTOR restores MM7');
});

test('MMX arithmetic: PADD/PSUB (wrap, S, US, Q), PAND/PANDN/POR/PXOR, PCMPEQ/PCMPGT', async () => {
  const ops: [string, number, (a: bigint, b: bigint) => bigint][] = [
    ['paddb', 1, (a, b) => a + b], ['paddw', 2, (a, b) => a + b], ['paddd', 4, (a, b) => a + b], ['paddq', 8, (a, b) => a + b],
    ['psubb', 1, (a, b) => a - b], ['psubw', 2, (a, b) => a - b], ['psubd', 4, (a, b) => a - b], ['psubq', 8, (a, b) => a - b],
    ['paddsb', 1, (a, b) => sat(sx(a, 1) + sx(b, 1), -128n, 127n)], ['paddsw', 2, (a, b) => sat(sx(a, 2) + sx(b, 2), -32768n, 32767n)],
    ['psubsb', 1, (a, b) => sat(sx(a, 1) - sx(b, 1), -128n, 127n)], ['psubsw', 2, (a, b) => sat(sx(a, 2) - sx(b, 2), -32768n, 32767n)],
    ['paddusb', 1, (a, b) => sat(a + b, 0n, 255n)], ['paddusw', 2, (a, b) => sat(a + b, 0n, 65535n)],
    ['psubusb', 1, (a, b) => sat(a - b, 0n, 255n)], ['psubusw', 2, (a, b) => sat(a - b, 0n, 65535n)],
    ['pand', 8, (a, b) => a & b], ['pandn', 8, (a, b) => ~a & b], ['por', 8, (a, b) => a | b], ['pxor', 8, (a, b) => a ^ b],
    ['pcmpeqb', 1, (a, b) => (a === b ? -1n : 0n)], ['pcmpeqw', 2, (a, b) => (a === b ? -1n : 0n)], ['pcmpeqd', 4, (a, b) => (a === b ? -1n : 0n)],
    ['pcmpgtb', 1, (a, b) => (sx(a, 1) > sx(b, 1) ? -1n : 0n)], ['pcmpgtw', 2, (a, b) => (sx(a, 2) > sx(b, 2) ? -1n : 0n)],
    ['pcmpgtd', 4, (a, b) => (sx(a, 4) > sx(b, 4) ? -1n : 0n)],
    ['pmullw', 2, (a, b) => a * b], ['pmulhw', 2, (a, b) => (sx(a, 2) * sx(b, 2)) >> 16n],
    ['pmulhuw', 2, (a, b) => (a * b) >> 16n], ['pminub', 1, (a, b) => (a < b ? a : b)], ['pmaxub', 1, (a, b) => (a > b ? a : b)],
    ['pminsw', 2, (a, b) => (sx(a, 2) < sx(b, 2) ? a : b)], ['pmaxsw', 2, (a, b) => (sx(a, 2) > sx(b, 2) ? a : b)],
    ['pavgb', 1, (a, b) => (a + b + 1n) >> 1n], ['pavgw', 2, (a, b) => (a + b + 1n) >> 1n],
  ];
  // each op twice: register source (mm1) and memory source
  const body = ops.map(([op], i) => `
    movq mm0, [${X}]
    ${op} mm0, mm1
    movq [${X + 0x100 + i * 16}], mm0
    movq mm2, [${X}]
    ${op} mm2, [${X + 8}]
    movq [${X + 0x108 + i * 16}], mm2`).join('');
  const r = await runAsm('long', `movq mm1, [${X + 8}]\n${body}\nhlt`, (_s, m) => {
    fill(m);
    m.mem.writeU8(X + 3, 0x7f); m.mem.writeU8(X + 11, 0x7f); // equal lanes for PCMPEQ
    m.mem.writeU16(X + 4, 0x8000); m.mem.writeU16(X + 12, 0x8000);
  });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  const a = u64(r.m, X);
  const b = u64(r.m, X + 8);
  ops.forEach(([op, w, f], i) => {
    const la = lanesOf(a, w);
    const lb = lanesOf(b, w);
    const want = join(la.map((v, k) => f(v, lb[k])), w);
    assert.equal(u64(r.m, X + 0x100 + i * 16).toString(16), want.toString(16), `${op} mm, mm`);
    assert.equal(u64(r.m, X + 0x108 + i * 16).toString(16), want.toString(16), `${op} mm, m64`);
  });
});

test('MMX pack/unpack, PMADDWD, PSADBW, PMULUDQ, PSHUFW, PINSRW/PEXTRW, PMOVMSKB', async () => {
  const r = await runAsm('long', `
    mov rax, 0x80017fff00ff0100
    movq mm0, rax
    mov rbx, 0xffff8000fffe0005
    movq mm1, rbx
    movq mm2, mm0
    packsswb mm2, mm1
    movq [${X + 0x100}], mm2
    movq mm2, mm0
    packuswb mm2, mm1
    movq [${X + 0x108}], mm2
    movq mm2, mm0
    packssdw mm2, mm1
    movq [${X + 0x110}], mm2
    movq mm2, mm0
    punpcklbw mm2, mm1
    movq [${X + 0x118}], mm2
    movq mm2, mm0
    punpckhwd mm2, mm1
    movq [${X + 0x120}], mm2
    movq mm2, mm0
    punpckldq mm2, [${X + 0x1fc}] ; m32 source: reads only 4 bytes
    movq [${X + 0x128}], mm2
    movq mm2, mm0
    pmaddwd mm2, mm1
    movq [${X + 0x130}], mm2
    movq mm2, mm0
    psadbw mm2, mm1
    movq [${X + 0x138}], mm2
    movq mm2, mm0
    pmuludq mm2, mm1
    movq [${X + 0x140}], mm2
    pshufw mm3, mm0, 0x1b
    movq [${X + 0x148}], mm3
    mov ecx, 0xabcd
    pinsrw mm3, ecx, 6             ; index mod 4 = 2
    movq [${X + 0x150}], mm3
    pextrw edx, mm0, 5             ; index mod 4 = 1
    pmovmskb esi, mm1
    hlt
  `, (s, m) => { s.cr4 |= 0x600n; m.mem.writeU32(X + 0x1fc, 0xdeadbeef); });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  const m = r.m;
  assert.equal(u64(m, X + 0x100), join([0x7fn, 0x7fn, 0x7fn, 0x80n, 5n, 0xfen, 0x80n, 0xffn], 1));
  assert.equal(u64(m, X + 0x108), join([0xffn, 0xffn, 0xffn, 0n, 5n, 0n, 0n, 0n], 1));
  assert.equal(u64(m, X + 0x110), join([0x7fffn, 0x8000n, 0x8000n, 0x8000n], 2));
  assert.equal(u64(m, X + 0x118), join([0n, 5n, 1n, 0n, 0xffn, 0xfen, 0n, 0xffn], 1));
  assert.equal(u64(m, X + 0x120), join([0x7fffn, 0x8000n, 0x8001n, 0xffffn], 2));
  assert.equal(u64(m, X + 0x128), 0xdeadbeef00ff0100n);
  const w0 = [0x0100n, 0x00ffn, 0x7fffn, 0x8001n].map((v) => sx(v, 2));
  const w1 = [0x0005n, 0xfffen, 0x8000n, 0xffffn].map((v) => sx(v, 2));
  assert.equal(u64(m, X + 0x130), join([w0[0] * w1[0] + w0[1] * w1[1], w0[2] * w1[2] + w0[3] * w1[3]], 4));
  const b0 = lanesOf(0x80017fff00ff0100n, 1);
  const b1 = lanesOf(0xffff8000fffe0005n, 1);
  assert.equal(u64(m, X + 0x138), b0.reduce((acc, v, i) => acc + (v > b1[i] ? v - b1[i] : b1[i] - v), 0n));
  assert.equal(u64(m, X + 0x140), 0x00ff0100n * 0xfffe0005n);
  assert.equal(u64(m, X + 0x148), join([0x8001n, 0x7fffn, 0x00ffn, 0x0100n], 2));
  assert.equal(u64(m, X + 0x150), join([0x8001n, 0x7fffn, 0xabcdn, 0x0100n], 2));
  assert.equal(r.state.regs.rdx, 0x00ffn);
  assert.equal(r.state.regs.rsi, 0b11101100n);
});

test('MMX shifts by mm, m64 and imm8; MOVNTQ; #UD for PSRLDQ without 66 and for register MOVNTQ', async () => {
  const r = await runAsm('long', `
    mov rax, 0x8000f00181234567
    movq mm0, rax
    movq mm1, mm0
    psllw mm1, 4
    movq [${X + 0x100}], mm1
    movq mm1, mm0
    psrad mm1, 8
    movq [${X + 0x108}], mm1
    movq mm1, mm0
    psrlq mm1, 60
    movq [${X + 0x110}], mm1
    movq mm1, mm0
    mov ecx, 3
    movd mm7, ecx
    psraw mm1, mm7
    movq [${X + 0x118}], mm1
    movq mm1, mm0
    psrld mm1, [${X + 0x1f0}]      ; count 32: all zero
    movq [${X + 0x120}], mm1
    movq mm1, mm0
    psllq mm1, 1
    movntq [${X + 0x128}], mm1
    movq mm1, mm0
    psraw mm1, 200
    movq [${X + 0x130}], mm1
    hlt
  `, (_s, m) => { m.mem.writeU64(X + 0x1f0, 32n); });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  const m = r.m;
  const v = 0x8000f00181234567n;
  const mask = (1n << 64n) - 1n;
  assert.equal(u64(m, X + 0x100), join(lanesOf(v, 2).map((x) => x << 4n), 2));
  assert.equal(u64(m, X + 0x108), join(lanesOf(v, 4).map((x) => sx(x, 4) >> 8n), 4));
  assert.equal(u64(m, X + 0x110), 8n);
  assert.equal(u64(m, X + 0x118), join(lanesOf(v, 2).map((x) => sx(x, 2) >> 3n), 2));
  assert.equal(u64(m, X + 0x120), 0n);
  assert.equal(u64(m, X + 0x128), (v << 1n) & mask);
  assert.equal(u64(m, X + 0x130), join(lanesOf(v, 2).map((x) => sx(x, 2) >> 15n), 2));
  const a = await runAsm('long', 'db 0x0f, 0x73, 0xd9, 0x04\nhlt'); // PSRLDQ mm1, 4: no MMX form
  assert.equal(a.m.cpu.lastException?.vector, 6);
  const b = await runAsm('long', 'db 0x0f, 0xe7, 0xc1\nhlt'); // MOVNTQ mm0, mm1 (register form)
  assert.equal(b.m.cpu.lastException?.vector, 6);
});
