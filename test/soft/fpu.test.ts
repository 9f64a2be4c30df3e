// The x87 FPU (SDM vol. 1 chapter 8, instruction pages in vol. 2): loads and stores of every
// format, arithmetic in all operand forms, comparisons (FCOM + FNSTSW, FCOMI), the stack, control
// word rounding, FXAM, environment save/restore, and the 80-bit register image in FXSAVE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, FL } from './harness.js';

const X = 0x20000;
const f64At = (m: { mem: { read(a: number, n: number): Uint8Array } }, a: number) => new Float64Array(m.mem.read(a, 8).slice().buffer)[0];

test('FLD/FST/FSTP in 32, 64 and 80 bits; FILD/FIST/FISTP; FLD1/FLDZ/FLDPI', async () => {
  const r = await runAsm('long', `
    fninit
    fld dword [${X}]          ; 1.5f
    fstp qword [${X + 0x100}]
    fld qword [${X + 8}]      ; -2.25
    fld st0
    fstp tword [${X + 0x110}]
    fstp dword [${X + 0x120}]
    fild dword [${X + 16}]    ; 123456
    fistp word [${X + 0x130}] ; out of range for 16 bits: integer indefinite
    fild qword [${X + 24}]    ; -5
    fistp dword [${X + 0x134}]
    fld1
    fldz
    fldpi
    fstp qword [${X + 0x140}]
    fstp qword [${X + 0x148}]
    fstp qword [${X + 0x150}]
    fld tword [${X + 0x110}]
    fstp qword [${X + 0x158}]
    hlt
  `, (_s, m) => {
    m.mem.write(X, new Uint8Array(new Float32Array([1.5]).buffer));
    m.mem.write(X + 8, new Uint8Array(new Float64Array([-2.25]).buffer));
    m.mem.writeU32(X + 16, 123456);
    m.mem.writeU64(X + 24, BigInt.asUintN(64, -5n));
  });
  const m = r.m;
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(f64At(m, X + 0x100), 1.5);
  assert.equal(m.mem.readU64(X + 0x110), 0x9000000000000000n, '-2.25 significand');
  assert.equal(m.mem.readU16(X + 0x118), 0xc000, '-2.25 sign and exponent');
  assert.equal(new Float32Array(m.mem.read(X + 0x120, 4).slice().buffer)[0], -2.25);
  assert.equal(m.mem.readU16(X + 0x130), 0x8000);
  assert.equal(m.mem.readU32(X + 0x134), 0xfffffffb);
  assert.equal(f64At(m, X + 0x140), Math.PI);
  assert.equal(f64At(m, X + 0x148), 0);
  assert.equal(f64At(m, X + 0x150), 1);
  assert.equal(f64At(m, X + 0x158), -2.25);
});

test('arithmetic in every form: memory, ST(0) op ST(i), ST(i) op ST(0), the popping forms, reversed SUB/DIV', async () => {
  const r = await runAsm('long', `
    fninit
    fld qword [${X}]          ; 8
    fadd qword [${X + 8}]     ; 8 + 2 = 10
    fsub dword [${X + 16}]    ; 10 - 0.5 = 9.5
    fsubr qword [${X + 8}]    ; 2 - 9.5 = -7.5
    fmul qword [${X + 8}]     ; -15
    fdivr qword [${X}]        ; 8 / -15
    fstp qword [${X + 0x100}]
    fld qword [${X}]          ; st1 = 8
    fld qword [${X + 8}]      ; st0 = 2
    fsub st0, st1             ; 2 - 8 = -6
    fsub st1, st0             ; st1 = 8 - (-6) = 14
    fdivp st1, st0            ; st0 = 14 / -6
    fstp qword [${X + 0x108}]
    fld qword [${X}]
    fld qword [${X + 8}]
    fsubrp st1, st0           ; st0 = 2 - 8 = -6 (FSUBRP ST(1), ST(0): ST(1) = ST(0) - ST(1))
    fstp qword [${X + 0x110}]
    fild word [${X + 24}]     ; 3
    fimul dword [${X + 28}]   ; * 7
    fisub word [${X + 24}]    ; - 3 = 18
    fsqrt
    fstp qword [${X + 0x118}]
    fld qword [${X}]
    fchs
    fabs
    fld qword [${X + 8}]
    fxch st1
    fstp qword [${X + 0x120}] ; 8
    fstp qword [${X + 0x128}] ; 2
    hlt
  `, (_s, m) => {
    m.mem.write(X, new Uint8Array(new Float64Array([8, 2]).buffer));
    m.mem.write(X + 16, new Uint8Array(new Float32Array([0.5]).buffer));
    m.mem.writeU16(X + 24, 3);
    m.mem.writeU32(X + 28, 7);
  });
  const m = r.m;
  assert.equal(f64At(m, X + 0x100), 8 / -15);
  assert.equal(f64At(m, X + 0x108), 14 / -6);
  assert.equal(f64At(m, X + 0x110), -6);
  assert.equal(f64At(m, X + 0x118), Math.sqrt(18));
  assert.equal(f64At(m, X + 0x120), 8);
  assert.equal(f64At(m, X + 0x128), 2);
});

test('comparisons: FCOM + FNSTSW AX + SAHF, FCOMPP, FUCOMI / FCOMIP flags, FTST, FXAM', async () => {
  const r = await runAsm('long', `
    fninit
    fld qword [${X + 8}]      ; 2
    fld qword [${X}]          ; 8
    fcom st1                  ; 8 > 2: C3 C2 C0 = 000
    fnstsw ax
    mov bx, ax
    fcomi st0, st1
    pushfq
    pop rcx
    fxch st1
    fcomi st0, st1            ; 2 < 8: CF
    pushfq
    pop rdx
    fcompp                    ; pops both
    fnstsw ax
    mov si, ax
    fldz
    ftst
    fnstsw ax
    mov di, ax
    fxam                      ; zero: C3
    fnstsw ax
    mov r8w, ax
    fstp st0
    fxam                      ; empty: C3 C0
    fnstsw ax
    mov r9w, ax
    hlt
  `, (_s, m) => m.mem.write(X, new Uint8Array(new Float64Array([8, 2]).buffer)));
  const g = r.state.regs;
  const CC = 0x4500n;
  assert.equal(g.rbx & CC, 0n);
  assert.equal(g.rcx & (FL.ZF | FL.PF | FL.CF), 0n);
  assert.equal(g.rdx & (FL.ZF | FL.PF | FL.CF), FL.CF);
  assert.equal(g.rsi & CC, 0x100n, '2 < 8: C0');
  assert.equal((g.rsi >> 11n) & 7n, 0n, 'TOP back to 0 after FCOMPP');
  assert.equal(g.rdi & CC, 0x4000n, 'FTST of zero: C3');
  assert.equal(g.r8 & CC, 0x4000n);
  assert.equal(g.r9 & CC, 0x4100n);
});

test('stack overflow sets IE, SF and C1; rounding control drives FRNDINT and FIST', async () => {
  const r = await runAsm('long', `
    fninit
    ${'fld1\n'.repeat(9)}
    fnstsw ax
    mov bx, ax
    fninit
    fld qword [${X}]          ; 2.5
    frndint                   ; nearest-even: 2
    fstp qword [${X + 0x100}]
    fstcw [${X + 0x10}]
    or word [${X + 0x10}], 0x0400   ; RC = down
    fldcw [${X + 0x10}]
    fld qword [${X + 8}]      ; -1.5
    fistp dword [${X + 0x108}]      ; -2
    hlt
  `, (_s, m) => m.mem.write(X, new Uint8Array(new Float64Array([2.5, -1.5]).buffer)));
  assert.equal(r.state.regs.rbx & 0x241n, 0x241n, 'IE | SF | C1');
  assert.equal(f64At(r.m, X + 0x100), 2);
  assert.equal(r.m.mem.readU32(X + 0x108), 0xfffffffe);
});

test('FNSTENV/FLDENV, FNSAVE/FRSTOR, and the 80-bit registers in the FXSAVE image', async () => {
  const r = await runAsm('long', `
    fninit
    fld1
    fldpi
    fnstenv [${X}]
    fnsave [${X + 0x40}]      ; then FNINIT
    fnstsw ax
    mov bx, ax
    frstor [${X + 0x40}]
    fstp qword [${X + 0x100}] ; pi again
    mov rax, cr4
    or eax, 0x200
    mov cr4, rax
    fxsave [${X + 0x200}]
    hlt
  `);
  const m = r.m.mem;
  assert.equal(m.readU16(X), 0x037f, 'FCW in the environment');
  assert.equal((m.readU16(X + 4) >> 11) & 7, 6, 'TOP = 6 after two pushes');
  assert.equal(m.readU16(X + 8) & 0xf000, 0x0000, 'tags of ST0/ST1 (physical 6, 7) valid');
  assert.equal(r.state.regs.rbx & 0x3800n, 0n, 'FNSAVE reinitialised');
  assert.equal(f64At(r.m, X + 0x100), Math.PI);
  // after the FSTP only 1.0 remains: ST0 in the FXSAVE image (ST0 is at offset 32)
  assert.equal(m.readU64(X + 0x200 + 32), 0x8000000000000000n);
  assert.equal(m.readU16(X + 0x200 + 40), 0x3fff);
  assert.equal(m.readU8(X + 0x200 + 4), 0x80, 'abridged tag: physical register 7 valid');
});

test('x87 faults #NM with CR0.EM or CR0.TS', async () => {
  const r = await runAsm('long', 'fld1\nhlt', (s) => { s.cr0 |= 4n; });
  assert.equal(r.m.cpu.lastException?.vector, 7);
});
