// Exceptions and interrupts (SDM vol. 3A chapter 6): IDT delivery in every mode, error codes,
// privilege changes with stack switches (TSS, IST), double and triple faults, INT n / INT3 /
// INTO, IRET, SYSCALL/SYSRET, SWAPGS, CPL/IOPL checks, external interrupts and the STI shadow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, SEL, STACK, USER_STACK, TSS, TSS32, TO_USER64, SYSCALL_MSRS, stubRip, FL, type Machine } from './harness.js';


function setGate64(m: Machine, vec: number, target: number, opts: { dpl?: number; ist?: number; type?: number; present?: boolean } = {}): void {
  const type = opts.type ?? 0xe;
  const attr = BigInt(type) | (BigInt(opts.dpl ?? 0) << 5n) | ((opts.present ?? true) ? 0x80n : 0n);
  const lo = BigInt(target & 0xffff) | (BigInt(SEL.code64) << 16n) | (BigInt(opts.ist ?? 0) << 32n) | (attr << 40n) | (BigInt((target >>> 16) & 0xffff) << 48n);
  m.mem.writeU64(0x4000 + vec * 16, lo);
  m.mem.writeU64(0x4000 + vec * 16 + 8, 0n);
}

test('#UD (UD2) and #GP from privileged instructions in ring 3 push the faulting RIP', async () => {
  const ud = await runAsm('long', 'nop\nud2\nhlt');
  assert.equal(ud.m.cpu.lastException?.vector, 6);
  assert.equal(ud.state.regs.rip, stubRip(6));
  assert.equal(ud.m.mem.readU64(Number(ud.state.regs.rsp)), 0x10001n);

  for (const insn of ['hlt', 'cli', 'mov rax, cr3', 'wrmsr', 'lgdt [0x20000]', 'invlpg [0]', 'mov cr3, rax', 'swapgs', 'rdmsr']) {
    const r = await runAsm('long', `${TO_USER64}\nuser:\n ${insn}\n hlt`);
    assert.equal(r.m.cpu.lastException?.vector, 13, insn);
    assert.equal(r.m.cpu.lastException?.errorCode, 0, insn);
    // frame on the RSP0 stack: RIP, CS, RFLAGS, RSP, SS (+ error code below)
    const sp = Number(r.state.regs.rsp);
    assert.equal(r.m.mem.readU64(sp + 16), BigInt(SEL.user64), `${insn}: CS in the frame`);
    assert.equal(r.m.mem.readU64(sp + 32), BigInt(USER_STACK), `${insn}: RSP in the frame`);
    assert.equal(r.m.mem.readU64(sp + 40), BigInt(SEL.userData), `${insn}: SS in the frame`);
    assert.equal(sp, STACK - 48, `${insn}: stack switched to RSP0`);
  }
});

test('INT n from ring 3: DPL 3 gate switches to RSP0; DPL 0 gate gives #GP(vector*8+2)', async () => {
  const ok = await runAsm('long', `${TO_USER64}\nuser:\n int 0x80\n hlt`, (_s, m) => setGate64(m, 0x80, 0x5000 + 0x80 * 2, { dpl: 3 }));
  assert.equal(ok.state.regs.rip, stubRip(0x80));
  assert.equal(ok.state.cs.selector, SEL.code64);
  assert.equal(ok.state.regs.rsp, BigInt(STACK - 40));
  assert.equal(ok.state.ss.selector, 0, 'null SS with RPL 0 after a privilege change in IA-32e mode');

  const bad = await runAsm('long', `${TO_USER64}\nuser:\n int 0x81\n hlt`);
  assert.equal(bad.m.cpu.lastException?.vector, 13);
  assert.equal(bad.m.cpu.lastException?.errorCode, 0x81 * 8 + 2);
});

test('IST: the gate\'s IST index selects the stack from the TSS, 16-byte aligned', async () => {
  const r = await runAsm('long', 'mov rsp, 0x60008\nint3\nhlt', (_s, m) => setGate64(m, 3, 0x5000 + 6, { ist: 1, dpl: 0 }));
  assert.equal(r.state.regs.rip, stubRip(3));
  assert.equal(r.state.regs.rsp, BigInt(STACK - 0x8000 - 40));
  assert.equal(r.m.mem.readU64(Number(r.state.regs.rsp) + 24), 0x60008n, 'old RSP in the frame');
  assert.equal(r.m.mem.readU64(Number(r.state.regs.rsp)), 0x10000n + 5n + 1n, 'INT3 pushes the next RIP (mov esp, imm32 is 5 bytes)');
});

test('IRETQ round trip through an interrupt gate from ring 3 (frame, RFLAGS, segments)', async () => {
  const src = `
    jmp start
  handler:
    mov r8, [rsp + 8]        ; CS pushed by the interrupt
    mov r9, [rsp + 32]       ; SS
    iretq
  start:
    ${TO_USER64}
  user:
    mov rbx, 0x1234
    int 0x80
    mov rdx, 0x5678
    mov r10, rsp
    mov r11w, ss
    hlt
  `;
  const r = await runAsm('long', src, (_s, m) => setGate64(m, 0x80, 0x10002, { dpl: 3 }));
  assert.equal(r.state.regs.r8, BigInt(SEL.user64));
  assert.equal(r.state.regs.r9, BigInt(SEL.userData));
  assert.equal(r.state.regs.rdx, 0x5678n);
  assert.equal(r.state.regs.r10, BigInt(USER_STACK));
  assert.equal(r.state.regs.r11 & 0xffffn, BigInt(SEL.userData));
  assert.equal(r.m.cpu.lastException?.vector, 13, 'the final HLT faults in ring 3');
});

test('32-bit protected mode: interrupt gate with privilege change pushes SS:ESP, IRETD returns', async () => {
  const src = `
    jmp start
  handler:
    mov esi, [esp + 12]      ; ESP pushed
    mov edi, [esp + 16]      ; SS pushed
    iretd
  start:
    push ${SEL.userData}
    push ${USER_STACK}
    pushfd
    push ${SEL.user32}
    push user
    iretd
  user:
    int 0x40
    mov ebx, esp
    mov ecx, 0xc0de
    hlt
  `;
  const r = await runAsm('prot32', src, (_s, m) => {
    const target = 0x10002;
    m.mem.writeU64(0x7000 + 0x40 * 8, BigInt(target & 0xffff) | (BigInt(SEL.code32) << 16n) | (0xeen << 40n) | (BigInt(target >>> 16) << 48n));
  });
  assert.equal(r.state.regs.rsi, BigInt(USER_STACK));
  assert.equal(r.state.regs.rdi, BigInt(SEL.userData));
  assert.equal(r.state.regs.rbx, BigInt(USER_STACK));
  assert.equal(r.state.regs.rcx, 0xc0den);
  assert.equal(r.m.cpu.lastException?.vector, 13);
  assert.equal(r.m.mem.readU32(TSS32 + 4), STACK);
});

test('double fault: #NP while delivering #GP becomes #DF with error code 0', async () => {
  const r = await runAsm('long', 'ud2\nhlt', (_s, m) => {
    setGate64(m, 6, 0x5000 + 12, { present: false });
  });
  // #UD is benign: the #NP is delivered serially
  assert.equal(r.m.cpu.lastException?.vector, 11);
  assert.equal(r.m.cpu.lastException?.errorCode, 6 * 16 / 2 + 2 + 1, '#NP(vector*8+2+EXT)');

  const df = await runAsm('long', 'mov rax, 0x0000800000000000\nmov rax, [rax]\nhlt', (_s, m) => {
    setGate64(m, 13, 0x5000 + 26, { present: false });
  });
  assert.equal(df.m.cpu.lastException?.vector, 8);
  assert.equal(df.m.cpu.lastException?.errorCode, 0);
  assert.equal(df.state.regs.rip, stubRip(8));
});

test('#PF while delivering #PF (unmapped stack) is a double fault; a fault delivering #DF is a triple fault', async () => {
  const df = await runAsm('long', 'mov rsp, 0x200100\nmov rax, [0x200000]\nhlt', (_s, m) => {
    m.mem.writeU64(0x3008, 0n); // 0x200000-0x3fffff not present
    setGate64(m, 8, 0x5000 + 16, { ist: 1 });
  });
  assert.equal(df.m.cpu.lastException?.vector, 8);
  assert.equal(df.state.regs.rip, stubRip(8));

  const tf = await runAsm('long', 'mov rsp, 0x200100\nmov rax, [0x200000]\nhlt', (_s, m) => {
    m.mem.writeU64(0x3008, 0n);
  });
  assert.equal(tf.exit.kind, 'shutdown');

  const empty = await runAsm('long', 'ud2', (s) => { s.idt = { base: 0x4000n, limit: 0 }; });
  assert.equal(empty.exit.kind, 'shutdown');
});

test('INTO traps through vector 4 when OF=1 (32-bit mode); INT3 through vector 3', async () => {
  const r = await runAsm('prot32', 'mov al, 0x7f\nadd al, 1\ninto\nhlt');
  assert.equal(r.m.cpu.lastException, undefined, 'software interrupts are not exceptions');
  assert.equal(r.state.regs.rip, stubRip(4));
  const n = await runAsm('prot32', 'xor eax, eax\ninto\nint3\nhlt');
  assert.equal(n.state.regs.rip, stubRip(3));
});

test('SYSCALL / SYSRET and SWAPGS (vol. 2B)', async () => {
  const src = `
    ${SYSCALL_MSRS}
    mov ecx, 0xc0000102      ; KERNEL_GS_BASE
    mov eax, 0x20000
    xor edx, edx
    wrmsr
    ${TO_USER64}
  user:
    std
    mov rbx, 0x42
    syscall
    mov r12w, cs
    mov r13w, ss
    pushfq
    pop r14
    hlt
  entry:
    swapgs
    mov r8, rcx              ; return RIP
    mov r9, r11              ; saved RFLAGS
    pushfq
    pop r10                  ; RFLAGS inside (IF, DF masked)
    mov r15w, cs
    mov qword [gs:0], 0x99
    swapgs
    o64 sysret
  `;
  const r = await runAsm('long', src, (s) => { s.regs.rflags |= FL.IF; });
  assert.equal(r.state.regs.r15 & 0xffffn, BigInt(SEL.code64));
  assert.equal(r.state.regs.r10 & (FL.IF | FL.DF), 0n);
  assert.equal(r.state.regs.r9 & FL.DF, FL.DF);
  assert.equal(r.m.mem.readU64(0x20000), 0x99n);
  assert.equal(r.state.regs.r12 & 0xffffn, 0x33n);
  assert.equal(r.state.regs.r13 & 0xffffn, 0x2bn);
  assert.equal(r.state.regs.r14 & FL.DF, FL.DF, 'SYSRET restores RFLAGS from R11');
  assert.equal(r.state.gs.base, 0n);
  assert.equal(r.m.cpu.lastException?.vector, 13, 'HLT in ring 3');
});

test('IOPL and the TSS I/O bitmap: IN/OUT from ring 3', async () => {
  const allowed = await runAsm('long', `${TO_USER64}\nuser:\n mov al, 0x41\n out 0x80, al\n in al, 0x80\n mov rbx, 1\n hlt`, (_s, m) => {
    m.bus.addPio(0x80, 1, { name: 'p80', pioRead: () => 0x5a, pioWrite: () => {} });
  });
  assert.equal(allowed.state.regs.rbx, 1n);
  assert.equal(allowed.state.regs.rax & 0xffn, 0x5an);
  const denied = await runAsm('long', `${TO_USER64}\nuser:\n out 0x80, al\n mov rbx, 1\n hlt`, (_s, m) => {
    m.mem.writeU8(TSS + 0x68 + (0x80 >> 3), 1);
  });
  assert.equal(denied.m.cpu.lastException?.vector, 13);
  assert.equal(denied.state.regs.rbx, 0n);
});

test('external interrupts: taken when IF=1, after the STI shadow, and they wake HLT', async () => {
  let pending = 0;
  const source = { pending: () => pending > 0, acknowledge: () => { pending--; return 0x30; } };
  const r = await runAsm('long', 'cli\nmov rcx, 1\nsti\nmov rbx, 1\nmov rdx, 1\nhlt', (_s, m) => {
    pending = 1;
    m.cpu.interruptSource = source;
  });
  assert.equal(r.state.regs.rip, stubRip(0x30));
  assert.equal(r.state.regs.rcx, 1n);
  assert.equal(r.state.regs.rbx, 1n, 'the instruction after STI runs first');
  assert.equal(r.state.regs.rdx, 0n);
  assert.equal(r.m.mem.readU64(Number(r.state.regs.rsp)), 0x10000n + 1n + 5n + 1n + 5n, 'return RIP');

  const h = await runAsm('long', 'sti\nhlt\nmov rbx, 7\nhlt', (_s, m) => { m.cpu.interruptSource = source; });
  assert.deepEqual(h.exit, { kind: 'hlt' });
  assert.ok(h.m.cpu.halted);
  pending = 1;
  const exit = h.m.cpu.run(1000);
  assert.deepEqual(exit, { kind: 'hlt' });
  assert.equal(h.m.cpu.getState().regs.rip, stubRip(0x30), 'woken by the interrupt, now in the handler');
});

test('an external interrupt whose delivery faults: the fault saves the RIP the interrupt would have', async () => {
  // gate 0x30 not present: #NP with the IDT bit and EXT set in the error code (SDM vol. 3A 6.13);
  // its saved RIP is the instruction the interrupt came before, not the one that ran last
  let pending = 0;
  const r = await runAsm('long', 'mov rcx, 1\nsti\nmov rbx, 1\nmov rdx, 1\nhlt', (_s, m) => {
    m.mem.writeU8(0x4000 + 0x30 * 16 + 5, m.mem.readU8(0x4000 + 0x30 * 16 + 5) & 0x7f);
    pending = 1;
    m.cpu.interruptSource = { pending: () => pending > 0, acknowledge: () => { pending--; return 0x30; } };
  });
  assert.equal(r.state.regs.rip, stubRip(11), 'in the #NP stub');
  assert.equal(r.state.regs.rbx, 1n);
  assert.equal(r.state.regs.rdx, 0n);
  const rsp = Number(r.state.regs.rsp);
  assert.equal(r.m.mem.readU64(rsp), BigInt(0x30 * 8 + 2 + 1), 'error code: IDT, EXT, vector 0x30');
  assert.equal(r.m.mem.readU64(rsp + 8), 0x10000n + 5n + 1n + 5n, 'saved RIP: MOV RDX, 1');
});

test('real mode exceptions go through the IVT (#DE)', async () => {
  const r = await runAsm('real', `
    xor ax, ax
    mov ds, ax
    mov word [0], handler
    mov word [2], 0x1000
    mov bl, 0
    div bl
    hlt
  handler:
    mov cx, 0xdede
    hlt
  `);
  assert.equal(r.state.regs.rcx & 0xffffn, 0xdeden);
  assert.equal(r.m.cpu.lastException?.vector, 0);
});

test('an interrupt raised by a device write is taken at the next instruction boundary', async () => {
  let line = false;
  const r = await runAsm('long', 'sti\nmov al, 1\nout 0x90, al\nmov rbx, 1\nhlt', (_s, m) => {
    m.bus.addPio(0x90, 1, { name: 'irq-raiser', pioRead: () => 0, pioWrite: () => { line = true; } });
    m.cpu.interruptSource = { pending: () => line, acknowledge: () => { line = false; return 0x41; } };
  });
  assert.equal(r.state.regs.rip, stubRip(0x41));
  assert.equal(r.state.regs.rbx, 0n, 'taken before the instruction after OUT');
});
