// Operating modes and the transitions between them (SDM vol. 3A 9.8 protected mode, 9.8.5
// IA-32e mode), real-mode segmentation and the IVT, compatibility mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, SEL, CODE, DATA } from './harness.js';

test('real mode: segment:offset addressing, 16-bit wrap, far jump, IVT interrupt + IRET', async () => {
  const r = await runAsm('real', `
    mov word [0x21*4], handler      ; IVT entry 0x21 -> 0x1000:handler (DS = 0)
    mov word [0x21*4+2], 0x1000
    mov ax, 0x2000
    mov ds, ax
    mov word [0x10], 0x1234        ; linear 0x20010
    mov bx, 0xffff
    add bx, 2                       ; 16-bit wrap: BX = 1
    int 0x21
    jmp 0x1000:far_target
    hlt
far_target:
    mov cx, 0x55
    hlt
handler:
    mov si, 0xabcd
    iret
  `, (s, m) => { m.mem.fill(0, 0x400, 0); s.ds.base = 0n; });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.m.mem.readU16(0x20010), 0x1234);
  assert.equal(r.state.regs.rbx & 0xffffn, 1n);
  assert.equal(r.state.regs.rsi & 0xffffn, 0xabcdn);
  assert.equal(r.state.regs.rcx & 0xffffn, 0x55n);
  assert.equal(r.state.cs.selector, 0x1000);
  assert.equal(r.state.regs.rsp, 0xfff0n, 'INT/IRET balance the stack');
});

test('real mode: IP wraps from 0xFFFF to 0 when an instruction ends at the top of the segment', async () => {
  // two NOPs at CS:FFFE and CS:FFFF (CS = 0x1000, base 0x10000); after the second, IP is 0 and
  // the code at the start of the segment runs again (SDM vol. 3A 20.1.1: 16-bit offsets wrap)
  const r = await runAsm('real', `
    inc bx
    cmp bx, 2
    je done
    jmp 0xfffe
done:
    hlt
  `, (s, m) => { m.mem.writeU8(CODE + 0xfffe, 0x90); m.mem.writeU8(CODE + 0xffff, 0x90); s.regs.rbx = 0n; });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.m.cpu.lastException, undefined, 'no #GP for an offset past the limit');
  assert.equal(r.state.regs.rbx & 0xffffn, 2n, 'ran the start of the segment twice');
  assert.ok(r.state.regs.rip < 0x20n, `stopped at the HLT near offset 0: ${r.state.regs.rip}`);
});

test('real mode: the IVT lives at IDTR.base and the handler sees FLAGS, CS, IP on the stack', async () => {
  const r = await runAsm('real', `
    mov ax, 0
    mov ds, ax
    mov word [0x20*4], handler
    mov word [0x20*4+2], 0x1000
    sti
    int 0x20
after:
    hlt
handler:
    mov bp, sp
    mov ax, [ss:bp]      ; IP
    mov bx, [ss:bp+2]    ; CS
    mov cx, [ss:bp+4]    ; FLAGS
    pushf
    pop dx               ; IF cleared inside the handler
    hlt
  `);
  assert.equal(r.state.regs.rax & 0xffffn, 0x14n, 'return IP = after (3+2+6+6+1+2 bytes in)');
  assert.equal(r.state.regs.rbx & 0xffffn, 0x1000n);
  assert.equal(r.state.regs.rcx & 0x200n, 0x200n, 'pushed FLAGS had IF');
  assert.equal(r.state.regs.rdx & 0x200n, 0n);
});

const TO_LONG = `
    cli
    xor ax, ax
    mov ds, ax
    lgdt [gdtr - 0]           ; DS = 0: the pointer is at its linear address below
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp dword ${SEL.code32}:(0x10000 + pm32)
gdtr_real:
bits 32
pm32:
    mov ax, ${SEL.data}
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x80000
    mov dword [0x20000], 0x32323232
    mov eax, cr4
    or eax, 0x20              ; PAE
    mov cr4, eax
    mov eax, 0x1000
    mov cr3, eax
    mov ecx, 0xc0000080       ; EFER.LME
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000000        ; PG: enters IA-32e mode (compatibility)
    mov cr0, eax
    mov ecx, 0xc0000080
    rdmsr
    mov [0x20004], eax        ; EFER with LMA
    jmp ${SEL.code64}:(0x10000 + lm64)
bits 64
lm64:
    mov rax, 0x1122334455667788
    mov [0x20008], rax
    lea rbx, [rel lm64]
    hlt
`;

test('real mode -> protected mode -> long mode, as an OS does it (vol. 3A 9.9.1, 9.8.5)', async () => {
  const r = await runAsm('real', `${TO_LONG}
gdtr equ 0x600
  `, (_s, m) => {
    m.mem.writeU16(0x600, 0x4f);
    m.mem.writeU32(0x602, 0x500);
  });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.m.mem.readU32(0x20000), 0x32323232);
  assert.equal(r.m.mem.readU32(0x20004) & 0x500, 0x500, 'EFER.LME and LMA');
  assert.equal(r.m.mem.readU64(0x20008), 0x1122334455667788n);
  assert.equal(r.state.cs.selector, SEL.code64);
  assert.ok(r.state.cs.l);
  assert.ok(r.state.regs.rbx > BigInt(CODE) && r.state.regs.rbx < BigInt(CODE + 0x200), 'RIP-relative LEA');
  assert.equal(r.state.efer & 0x500n, 0x500n);
});

test('setting CR0.PG with EFER.LME but without CR4.PAE raises #GP (vol. 3A 9.8.5)', async () => {
  const r = await runAsm('prot32', `
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, 0x1000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    hlt
  `);
  assert.equal(r.m.cpu.lastException?.vector, 13);
});

test('long mode -> compatibility mode and back with far return / far jump', async () => {
  const r = await runAsm('long', `
    mov rsp, 0x80000
    push ${SEL.code32}
    lea rax, [rel compat]
    push rax
    retfq
bits 32
compat:
    mov eax, 0xffffffff
    add eax, 1               ; 32-bit arithmetic in compatibility mode
    mov [0x20000], eax
    mov edx, esp
    jmp ${SEL.code64}:back
bits 64
back:
    mov rcx, 0x123456789
    hlt
  `);
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.m.mem.readU32(0x20000), 0);
  assert.equal(r.state.regs.rcx, 0x123456789n);
  assert.equal(r.state.regs.rdx, 0x80000n);
});

test('16-bit protected mode: default 16-bit operands, 66 prefix for 32-bit', async () => {
  const r = await runAsm('prot16', `
    mov ax, 0xffff
    inc ax
    mov ebx, 0x12345678
    mov [0x2000], bx
    hlt
  `);
  assert.equal(r.state.regs.rax & 0xffffn, 0n);
  assert.equal(r.state.regs.rbx, 0x12345678n);
  assert.equal(r.m.mem.readU16(0x2000), 0x5678);
});

test('protected mode segmentation: limit violation #GP, null selector use #GP, #NP on a not-present segment', async () => {
  // a small data segment: base DATA, limit 0xff
  const lim = await runAsm('prot32', 'mov ax, 0x48\nmov es, ax\nmov eax, [es:0xfd]\nhlt', (_s, m) => {
    m.mem.writeU64(0x548, 0x004093020000_00ffn); // base 0x20000, limit 0xff, data RW, 32-bit
  });
  assert.equal(lim.m.cpu.lastException?.vector, 13);
  assert.equal(lim.m.cpu.lastException?.errorCode, 0);

  const nul = await runAsm('prot32', 'xor eax, eax\nmov es, ax\nmov eax, [es:0]\nhlt');
  assert.equal(nul.m.cpu.lastException?.vector, 13);

  const np = await runAsm('prot32', 'mov ax, 0x48\nmov ds, ax\nhlt', (_s, m) => {
    m.mem.writeU64(0x548, 0x004013020000_00ffn); // P = 0
  });
  assert.equal(np.m.cpu.lastException?.vector, 11);
  assert.equal(np.m.cpu.lastException?.errorCode, 0x48);

  const ro = await runAsm('prot32', 'mov ax, 0x48\nmov ds, ax\nmov byte [0], 1\nhlt', (_s, m) => {
    m.mem.writeU64(0x548, 0x004091020000_00ffn); // read-only data
  });
  assert.equal(ro.m.cpu.lastException?.vector, 13);

  const ok = await runAsm('prot32', 'mov ax, 0x48\nmov ds, ax\nmov byte [0xff], 7\nhlt', (_s, m) => {
    m.mem.writeU64(0x548, 0x004093020000_00ffn);
  });
  assert.deepEqual(ok.exit, { kind: 'hlt' });
  assert.equal(ok.m.mem.readU8(DATA + 0xff), 7);
  assert.equal(ok.m.mem.readU8(0x548 + 5) & 1, 1, 'accessed bit set in the descriptor');
  assert.equal(ok.state.ds.base, BigInt(DATA));
});

test('loading SS with a selector whose DPL differs from CPL raises #GP(selector)', async () => {
  const r = await runAsm('prot32', `mov ax, ${SEL.userData}\nmov ss, ax\nhlt`);
  assert.equal(r.m.cpu.lastException?.vector, 13);
  assert.equal(r.m.cpu.lastException?.errorCode, SEL.userData & ~3);
});

test('64-bit mode: non-canonical addresses raise #GP(0), stack ones #SS(0)', async () => {
  const g = await runAsm('long', 'mov rax, 0x0000800000000000\nmov rbx, [rax]\nhlt');
  assert.equal(g.m.cpu.lastException?.vector, 13);
  // the #SS handler needs a good stack: IST1
  const s = await runAsm('long', 'mov rsp, 0x0000800000000008\npush rax\nhlt', (_s, m) => m.mem.writeU8(0x4000 + 12 * 16 + 4, 1));
  assert.equal(s.m.cpu.lastException?.vector, 12);
});

test('FS/GS bases apply in 64-bit mode (WRMSR FS_BASE/GS_BASE), other segment bases do not', async () => {
  const r = await runAsm('long', `
    mov ecx, 0xc0000100
    mov eax, 0x20000
    xor edx, edx
    wrmsr
    mov ecx, 0xc0000101
    mov eax, 0x20100
    wrmsr
    mov qword [fs:8], 0x11
    mov qword [gs:8], 0x22
    mov qword [ds:0x20010], 0x33
    hlt
  `);
  assert.equal(r.m.mem.readU64(0x20008), 0x11n);
  assert.equal(r.m.mem.readU64(0x20108), 0x22n);
  assert.equal(r.m.mem.readU64(0x20010), 0x33n);
  assert.equal(r.state.fs.base, 0x20000n);
});
