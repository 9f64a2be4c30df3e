// 16- and 32-bit forms that firmware and boot loaders use: PUSHA/POPA, LDS/LES/LSS, BCD
// adjustments (DAA/DAS/AAA/AAS/AAM/AAD), string instructions with segment overrides in real
// mode, LAR/LSL/VERR/VERW, and operand/address-size prefixes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, SEL } from './harness.js';

test('PUSHA / POPA in 16- and 32-bit code', async () => {
  const r = await runAsm('prot32', `
    mov eax, 1
    mov ecx, 2
    mov edx, 3
    mov ebx, 4
    mov ebp, 6
    mov esi, 7
    mov edi, 8
    pushad
    mov eax, [esp + 28]     ; EAX is pushed first
    mov ebx, [esp + 12]     ; the original ESP
    mov [0x20000], eax
    mov [0x20004], ebx
    xor eax, eax
    xor ecx, ecx
    popad
    hlt
  `);
  assert.equal(r.m.mem.readU32(0x20000), 1);
  assert.equal(r.m.mem.readU32(0x20004), 0x80000);
  assert.equal(r.state.regs.rax, 1n);
  assert.equal(r.state.regs.rcx, 2n);
  assert.equal(r.state.regs.rsp, 0x80000n);
});

test('real mode: LDS/LES, string copy with segment override, 32-bit operand/address prefixes', async () => {
  const r = await runAsm('real', `
    xor ax, ax
    mov ds, ax
    mov word [0x600], 0x10
    mov word [0x602], 0x2000   ; far pointer 2000:0010
    lds si, [0x600]
    mov ax, 0x3000
    mov es, ax
    xor di, di
    mov cx, 4
    cld
    rep movsb                  ; 2000:0010 -> 3000:0000
    mov eax, 0x12345678        ; 66 prefix
    mov ebx, 0x8000
    mov [es:ebx + 0x10], eax   ; 67 prefix: 32-bit address in real mode (within the 64 KiB limit)
    les di, [cs:far_ptr]
    hlt
  far_ptr: dw 0x1234, 0x5678
  `, (_s, m) => m.mem.write(0x20010, new Uint8Array([1, 2, 3, 4])));
  assert.deepEqual([...r.m.mem.read(0x30000, 4)], [1, 2, 3, 4]);
  assert.equal(r.m.mem.readU32(0x38010), 0x12345678);
  assert.equal(r.state.ds.selector, 0x2000);
  assert.equal(r.state.es.selector, 0x5678);
  assert.equal(r.state.regs.rdi & 0xffffn, 0x1234n);
});

test('DAA / DAS / AAA / AAS / AAM / AAD (vol. 2A)', async () => {
  const r = await runAsm('prot32', `
    mov al, 0x79
    add al, 0x35       ; 0xae
    daa                ; 0x14, CF=1
    setc bl
    mov cl, al
    mov al, 0x35
    sub al, 0x47       ; 0xee
    das                ; 0x88, CF=1
    mov dl, al
    mov ax, 0x0009
    add al, 0x08
    aaa                ; AX = 0x0107
    mov si, ax
    mov ax, 0x0102
    sub al, 0x05
    aas                ; AX = 0x0007 (AH-1), AL=7
    mov di, ax
    mov al, 73
    aam                ; AH = 7, AL = 3
    mov bp, ax
    mov ax, 0x0703
    aad                ; AL = 73
    hlt
  `);
  const g = r.state.regs;
  assert.equal(g.rcx & 0xffn, 0x14n);
  assert.equal(g.rbx & 0xffn, 1n);
  assert.equal(g.rdx & 0xffn, 0x88n);
  assert.equal(g.rsi & 0xffffn, 0x0107n);
  assert.equal(g.rdi & 0xffffn, 0x0007n);
  assert.equal(g.rbp & 0xffffn, 0x0703n);
  assert.equal(g.rax & 0xffffn, 73n);
});

test('LAR / LSL / VERR / VERW on GDT descriptors', async () => {
  const r = await runAsm('prot32', `
    mov ax, ${SEL.data}
    lsl ebx, ax
    lar ecx, ax
    verr ax
    setz dl
    mov ax, ${SEL.code32}
    verw ax
    setz dh
    mov ax, 0x1f8              ; beyond the GDT limit
    lsl esi, ax
    setz al
    hlt
  `);
  const g = r.state.regs;
  assert.equal(g.rbx, 0xffffffffn);
  assert.equal(g.rcx, 0x00c09300n, 'access rights: G, D/B, P, DPL, S, type (limit bits masked)');
  assert.equal(g.rdx & 0xffffn, 0x0001n, 'data readable; code not writable');
  assert.equal(g.rax & 0xffn, 0n);
});

test('32-bit code: near CALL/RET, 16-bit operand size push, JMP through a table', async () => {
  const r = await runAsm('prot32', `
    call f
    push word 0x1234
    pop bx
    mov eax, 1
    jmp [table + eax*4]
  table: dd 0, target
  f: mov ecx, 0x77
    ret
  target:
    mov edx, 0x99
    hlt
  `);
  assert.equal(r.state.regs.rcx, 0x77n);
  assert.equal(r.state.regs.rbx & 0xffffn, 0x1234n);
  assert.equal(r.state.regs.rdx, 0x99n);
  assert.equal(r.state.regs.rsp, 0x80000n);
});
