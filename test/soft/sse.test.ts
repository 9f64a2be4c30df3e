// SSE/SSE2 (SDM vol. 1 chapters 10-11; instruction pages in vol. 2), x87 control instructions,
// FXSAVE/FXRSTOR. MMX is in mmx.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, FL, type Machine } from './harness.js';
import type { CpuState } from '../../src/accel/cpu-state.js';

const X = 0x20000; // 16-byte aligned data

function sseOn(s: CpuState): void { s.cr4 |= 0x600n; } // OSFXSR | OSXMMEXCPT

function bytes(m: Machine, addr: number, n = 16): number[] { return [...m.mem.read(addr, n)]; }
function u64(m: Machine, addr: number): bigint { return m.mem.readU64(addr); }

test('SSE needs CR4.OSFXSR (#UD) and faults #NM with CR0.TS', async () => {
  const a = await runAsm('long', `movdqa xmm0, [${X}]\nhlt`);
  assert.equal(a.m.cpu.lastException?.vector, 6);
  const b = await runAsm('long', `movdqa xmm0, [${X}]\nhlt`, (s) => { sseOn(s); s.cr0 |= 8n; });
  assert.equal(b.m.cpu.lastException?.vector, 7);
  const c = await runAsm('long', `movdqa xmm0, [${X + 8}]\nhlt`, sseOn);
  assert.equal(c.m.cpu.lastException?.vector, 13, 'misaligned MOVDQA');
});

test('moves: MOVDQA/MOVDQU/MOVAPS/MOVUPS, MOVD/MOVQ, MOVSS/MOVSD, MOVLPS/MOVHPS, MOVHLPS/MOVLHPS', async () => {
  const r = await runAsm('long', `
    movdqa xmm1, [${X}]
    movdqu xmm9, [${X + 1}]
    movups [${X + 0x101}], xmm9
    movaps xmm2, xmm1
    movdqa [${X + 0x20}], xmm2
    mov rax, 0x1122334455667788
    movq xmm3, rax
    movq [${X + 0x30}], xmm3
    movd eax, xmm1
    mov ebx, eax
    movq rcx, xmm1
    movss xmm4, [${X}]           ; load: upper lanes zeroed
    movdqa xmm5, xmm1
    movsd xmm5, xmm3             ; register form: only the low quadword changes
    movdqa [${X + 0x40}], xmm4
    movdqa [${X + 0x50}], xmm5
    pxor xmm6, xmm6
    movhps xmm6, [${X}]
    movdqa [${X + 0x60}], xmm6
    movhlps xmm7, xmm1
    movq [${X + 0x70}], xmm7
    hlt
  `, (s, m) => { sseOn(s); for (let i = 0; i < 32; i++) m.mem.writeU8(X + i, i + 1); });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  const m = r.m;
  const src = Array.from({ length: 16 }, (_, i) => i + 1);
  assert.deepEqual(bytes(m, X + 0x101), src.map((v) => v + 1));
  assert.deepEqual(bytes(m, X + 0x20), src);
  assert.equal(u64(m, X + 0x30), 0x1122334455667788n);
  assert.equal(r.state.regs.rbx, 0x04030201n);
  assert.equal(r.state.regs.rcx, 0x0807060504030201n);
  assert.deepEqual(bytes(m, X + 0x40), [1, 2, 3, 4, ...new Array(12).fill(0)]);
  assert.equal(u64(m, X + 0x50), 0x1122334455667788n);
  assert.equal(u64(m, X + 0x58), 0x100f0e0d0c0b0a09n);
  assert.equal(u64(m, X + 0x60), 0n);
  assert.equal(u64(m, X + 0x68), 0x0807060504030201n);
  assert.equal(u64(m, X + 0x70), 0x100f0e0d0c0b0a09n);
});

test('integer lanes: PADD/PSUB (wrap and saturate), PCMPEQ/PCMPGT, PMINUB/PMAXUB, PAVGB, PMOVMSKB', async () => {
  const r = await runAsm('long', `
    movdqa xmm0, [${X}]
    movdqa xmm1, [${X + 16}]
    movdqa xmm2, xmm0
    paddb xmm2, xmm1
    movdqa [${X + 0x100}], xmm2
    movdqa xmm2, xmm0
    paddusb xmm2, xmm1
    movdqa [${X + 0x110}], xmm2
    movdqa xmm2, xmm0
    psubsb xmm2, xmm1
    movdqa [${X + 0x120}], xmm2
    movdqa xmm2, xmm0
    pcmpeqb xmm2, xmm1
    pmovmskb eax, xmm2
    movdqa xmm2, xmm0
    pcmpgtb xmm2, xmm1
    pmovmskb ebx, xmm2
    movdqa xmm2, xmm0
    pminub xmm2, xmm1
    movdqa [${X + 0x130}], xmm2
    movdqa xmm2, xmm0
    pavgb xmm2, xmm1
    movdqa [${X + 0x140}], xmm2
    movdqa xmm2, xmm0
    paddq xmm2, xmm1
    movdqa [${X + 0x150}], xmm2
    hlt
  `, (s, m) => {
    sseOn(s);
    const a = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x30, 5, 6, 7, 8, 9, 10, 11, 0xfe];
    const b = [0, 2, 0x01, 0x80, 0x01, 0x10, 0x10, 0x40, 5, 0, 0, 0, 0, 0, 0, 0xfe];
    m.mem.write(X, new Uint8Array(a));
    m.mem.write(X + 16, new Uint8Array(b));
  });
  const m = r.m;
  const a = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x30, 5, 6, 7, 8, 9, 10, 11, 0xfe];
  const b = [0, 2, 0x01, 0x80, 0x01, 0x10, 0x10, 0x40, 5, 0, 0, 0, 0, 0, 0, 0xfe];
  const s8 = (v: number) => (v << 24) >> 24;
  assert.deepEqual(bytes(m, X + 0x100), a.map((v, i) => (v + b[i]) & 0xff));
  assert.deepEqual(bytes(m, X + 0x110), a.map((v, i) => Math.min(255, v + b[i])));
  assert.deepEqual(bytes(m, X + 0x120), a.map((v, i) => Math.max(-128, Math.min(127, s8(v) - s8(b[i]))) & 0xff));
  let eq = 0, gt = 0;
  a.forEach((v, i) => { if (v === b[i]) eq |= 1 << i; if (s8(v) > s8(b[i])) gt |= 1 << i; });
  assert.equal(Number(r.state.regs.rax), eq);
  assert.equal(Number(r.state.regs.rbx), gt);
  assert.deepEqual(bytes(m, X + 0x130), a.map((v, i) => Math.min(v, b[i])));
  assert.deepEqual(bytes(m, X + 0x140), a.map((v, i) => (v + b[i] + 1) >> 1));
  const qa = m.mem.readU64(X), qb = m.mem.readU64(X + 16);
  assert.equal(u64(m, X + 0x150), BigInt.asUintN(64, qa + qb));
});

test('shuffles, unpacks, packs and shifts: PSHUFD, PUNPCKLBW, PACKUSWB, PSRLDQ, PSLLQ, PSRAW, SHUFPS', async () => {
  const r = await runAsm('long', `
    movdqa xmm0, [${X}]
    pshufd xmm1, xmm0, 0x1b       ; reverse dwords
    movdqa [${X + 0x100}], xmm1
    movdqa xmm2, xmm0
    pxor xmm3, xmm3
    punpcklbw xmm2, xmm3          ; bytes -> words
    movdqa [${X + 0x110}], xmm2
    packuswb xmm2, xmm2           ; and back
    movdqa [${X + 0x120}], xmm2
    movdqa xmm4, xmm0
    psrldq xmm4, 3
    movdqa [${X + 0x130}], xmm4
    movdqa xmm5, xmm0
    psllq xmm5, 8
    movdqa [${X + 0x140}], xmm5
    mov eax, 0x8000
    movd xmm6, eax
    psraw xmm6, 4
    movd ebx, xmm6
    movdqa xmm7, xmm0
    shufps xmm7, xmm0, 0x4e       ; swap the quadword halves
    movdqa [${X + 0x150}], xmm7
    hlt
  `, (s, m) => { sseOn(s); for (let i = 0; i < 16; i++) m.mem.writeU8(X + i, i + 1); });
  const m = r.m;
  const src = Array.from({ length: 16 }, (_, i) => i + 1);
  assert.deepEqual(bytes(m, X + 0x100), [13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4]);
  assert.deepEqual(bytes(m, X + 0x110), [1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0]);
  assert.deepEqual(bytes(m, X + 0x120), [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(bytes(m, X + 0x130), [...src.slice(3), 0, 0, 0]);
  assert.deepEqual(bytes(m, X + 0x140), [0, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 12, 13, 14, 15]);
  assert.equal(r.state.regs.rbx, 0xf800n);
  assert.deepEqual(bytes(m, X + 0x150), [...src.slice(8), ...src.slice(0, 8)]);
});

test('floating point: ADDSD/MULSD/DIVSD/SQRTSD, ADDPS, CVTSI2SD/CVTTSD2SI, UCOMISD flags, CMPPD, MINSD', async () => {
  const r = await runAsm('long', `
    mov rax, 7
    cvtsi2sd xmm0, rax
    mov rax, 2
    cvtsi2sd xmm1, rax
    movsd xmm2, xmm0
    addsd xmm2, xmm1             ; 9
    mulsd xmm2, xmm1             ; 18
    divsd xmm2, xmm1             ; 9
    sqrtsd xmm3, xmm2            ; 3
    cvttsd2si rbx, xmm3
    movsd [${X + 0x100}], xmm2
    ucomisd xmm0, xmm1
    pushfq
    pop rcx
    ucomisd xmm1, xmm0
    pushfq
    pop rdx
    movaps xmm4, [${X}]
    addps xmm4, [${X + 16}]
    movaps [${X + 0x110}], xmm4
    movapd xmm5, [${X + 32}]
    cmppd xmm5, [${X + 48}], 1   ; LT
    movapd [${X + 0x120}], xmm5
    minsd xmm1, xmm0
    cvttsd2si rsi, xmm1
    mov rax, 0x7ff8000000000000  ; NaN -> integer indefinite
    movq xmm6, rax
    cvttsd2si edi, xmm6
    hlt
  `, (s, m) => {
    sseOn(s);
    const f = new Float32Array([1.5, 2, 3, 4, 0.5, 0.5, 0.5, -4]);
    m.mem.write(X, new Uint8Array(f.buffer));
    const d = new Float64Array([1, 5, 2, 5]);
    m.mem.write(X + 32, new Uint8Array(d.buffer));
  });
  const m = r.m;
  assert.equal(r.state.regs.rbx, 3n);
  assert.equal(new Float64Array(m.mem.read(X + 0x100, 8).buffer)[0], 9);
  assert.equal(r.state.regs.rcx & (FL.ZF | FL.PF | FL.CF), 0n, '7 > 2');
  assert.equal(r.state.regs.rdx & (FL.ZF | FL.PF | FL.CF), FL.CF, '2 < 7');
  assert.deepEqual([...new Float32Array(m.mem.read(X + 0x110, 16).buffer)], [2, 2.5, 3.5, 0]);
  assert.equal(u64(m, X + 0x120), 0xffffffffffffffffn, '1 < 2');
  assert.equal(u64(m, X + 0x128), 0n, '5 < 5 is false');
  assert.equal(r.state.regs.rsi, 2n);
  assert.equal(r.state.regs.rdi, 0x80000000n);
});

test('x87 control: FNINIT, FNSTCW/FLDCW, FNSTSW; FXSAVE/FXRSTOR round trip; LDMXCSR/STMXCSR', async () => {
  const r = await runAsm('long', `
    fnstcw [${X}]                ; power-up 0x0040
    fninit
    fnstcw [${X + 2}]            ; 0x037f
    mov word [${X + 4}], 0x027f
    fldcw [${X + 4}]
    fnstcw [${X + 6}]
    fnstsw ax
    mov ebx, eax
    stmxcsr [${X + 8}]           ; 0x1f80
    mov dword [${X + 12}], 0x9f80
    ldmxcsr [${X + 12}]
    mov rax, 0x1234
    movq xmm3, rax
    movq xmm12, rax
    fxsave [${X + 0x200}]
    pxor xmm3, xmm3
    pxor xmm12, xmm12
    fxrstor [${X + 0x200}]
    movq rcx, xmm3
    movq rdx, xmm12
    mov dword [${X + 0x200 + 24}], 0xffffffff
    fxrstor [${X + 0x200}]       ; reserved MXCSR bits: #GP
    hlt
  `, sseOn);
  const m = r.m;
  assert.equal(m.mem.readU16(X), 0x0040);
  assert.equal(m.mem.readU16(X + 2), 0x037f);
  assert.equal(m.mem.readU16(X + 6), 0x027f);
  assert.equal(r.state.regs.rbx & 0xffffn, 0n);
  assert.equal(m.mem.readU32(X + 8), 0x1f80);
  assert.equal(m.mem.readU32(X + 0x200 + 24), 0xffffffff);
  assert.equal(m.mem.readU16(X + 0x200), 0x027f, 'FCW in the image');
  assert.equal(m.mem.readU32(X + 0x200 + 28), 0xffbf, 'MXCSR_MASK');
  assert.equal(m.mem.readU64(X + 0x200 + 160 + 3 * 16), 0x1234n, 'XMM3 in the image');
  assert.equal(r.state.regs.rcx, 0x1234n);
  assert.equal(r.state.regs.rdx, 0x1234n);
  assert.equal(r.m.cpu.lastException?.vector, 13);
});

test('conversions: CVTDQ2PS, CVTTPS2DQ, CVTDQ2PD, CVTTPD2DQ, CVTSS2SD/CVTSD2SS; RCPSS; MASKMOVDQU', async () => {
  const r = await runAsm('long', `
    movdqa xmm0, [${X}]
    cvtdq2ps xmm1, xmm0
    movaps [${X + 0x100}], xmm1
    cvttps2dq xmm2, xmm1
    movdqa [${X + 0x110}], xmm2
    cvtdq2pd xmm3, xmm0
    movapd [${X + 0x120}], xmm3
    cvttpd2dq xmm4, xmm3
    movdqa [${X + 0x130}], xmm4
    cvtsd2ss xmm5, xmm3
    cvtss2sd xmm6, xmm5
    movsd [${X + 0x140}], xmm6
    mov eax, 0x40800000          ; 4.0f
    movd xmm7, eax
    rcpss xmm7, xmm7
    movd ebx, xmm7
    movdqa xmm8, [${X + 16}]     ; data
    mov rdi, ${X + 0x150}
    pcmpeqb xmm9, xmm9
    psrlw xmm9, 8                ; mask 0x00ff per word: only odd bytes have bit 7 clear
    psllw xmm9, 8                ; 0xff00: bit 7 set in the odd bytes
    maskmovdqu xmm8, xmm9
    hlt
  `, (s, m) => {
    sseOn(s);
    m.mem.write(X, new Uint8Array(new Int32Array([1, -2, 300000, -7]).buffer));
    for (let i = 0; i < 16; i++) m.mem.writeU8(X + 16 + i, 0xa0 + i);
  });
  const m = r.m;
  assert.deepEqual([...new Float32Array(m.mem.read(X + 0x100, 16).buffer)], [1, -2, 300000, -7]);
  assert.deepEqual([...new Int32Array(m.mem.read(X + 0x110, 16).buffer)], [1, -2, 300000, -7]);
  assert.deepEqual([...new Float64Array(m.mem.read(X + 0x120, 16).buffer)], [1, -2]);
  assert.deepEqual([...new Int32Array(m.mem.read(X + 0x130, 16).buffer)], [1, -2, 0, 0]);
  assert.equal(new Float64Array(m.mem.read(X + 0x140, 8).buffer)[0], 1);
  assert.equal(r.state.regs.rbx, 0x3e800000n, '1/4');
  assert.deepEqual(bytes(m, X + 0x150), Array.from({ length: 16 }, (_, i) => (i % 2 ? 0xa0 + i : 0)));
});
