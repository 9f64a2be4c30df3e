// Directed tests for the soft-CPU bugs the differential oracle (test/oracle) found against the
// hardware: RF in fault frames, INT1, POP m with an RSP base, R13 as a base, CR2 of a
// page-crossing write, BSF/BSR and CMPXCHG leaving a 32-bit register alone, SHLD/SHRD r16 by 16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, FL, SEL, STACK, TO_USER64, stubRip, type Machine } from './harness.js';

const RF = 1n << 16n;


function setGate64(m: Machine, vec: number, target: number, dpl: number): void {
  const attr = 0xen | (BigInt(dpl) << 5n) | 0x80n;
  const lo = BigInt(target & 0xffff) | (BigInt(SEL.code64) << 16n) | (attr << 40n) | (BigInt((target >>> 16) & 0xffff) << 48n);
  m.mem.writeU64(0x4000 + vec * 16, lo);
  m.mem.writeU64(0x4000 + vec * 16 + 8, 0n);
}

test('fault-class exceptions push RFLAGS with RF=1; traps and INT n push RF=0 (SDM vol. 3B 17.3.1.1)', async () => {
  const ud = await runAsm('long', 'ud2\nhlt');
  assert.equal(ud.m.cpu.lastException?.vector, 6);
  const udFlags = ud.m.mem.readU64(Number(ud.state.regs.rsp) + 16);
  assert.equal(udFlags & RF, RF, '#UD frame');
  assert.equal(ud.state.regs.rflags & RF, 0n, 'delivery clears RF');

  const gp = await runAsm('long', 'mov rax, 0x0000800000000000\nmov rax, [rax]\nhlt');
  assert.equal(gp.m.cpu.lastException?.vector, 13);
  assert.equal(gp.m.mem.readU64(Number(gp.state.regs.rsp) + 24) & RF, RF, '#GP frame (after the error code)');

  const de = await runAsm('long', 'xor ecx, ecx\ndiv ecx\nhlt');
  assert.equal(de.m.cpu.lastException?.vector, 0);
  assert.equal(de.m.mem.readU64(Number(de.state.regs.rsp) + 16) & RF, RF, '#DE frame');

  const bp = await runAsm('long', 'int3\nhlt');
  assert.equal(bp.state.regs.rip, stubRip(3));
  assert.equal(bp.m.mem.readU64(Number(bp.state.regs.rsp) + 16) & RF, 0n, 'INT3 frame');
});

test('RF set by IRETQ lasts one instruction: a fault right after pushes RF=1, a later INT3 RF=0', async () => {
  // the #UD handler skips the UD2 (2 bytes) and returns with the pushed RF=1
  const src = `
    jmp start
  handler:
    add qword [rsp], 2
    iretq
  start:
    ud2
    nop
    int3
    hlt
  `;
  const r = await runAsm('long', src, (_s, m) => setGate64(m, 6, 0x10002, 0));
  assert.equal(r.state.regs.rip, stubRip(3));
  assert.equal(r.m.mem.readU64(Number(r.state.regs.rsp) + 16) & RF, 0n);
});

test('INT1 (ICEBP) from ring 3 is a #DB trap even through a DPL-0 gate (SDM vol. 2A INT1)', async () => {
  const r = await runAsm('long', `${TO_USER64}\nuser:\n nop\n int1\n hlt`);
  assert.equal(r.state.regs.rip, stubRip(1), 'delivered through vector 1, not #GP');
  const sp = Number(r.state.regs.rsp);
  assert.equal(sp, STACK - 40, 'no error code');
  const userRip = r.m.mem.readU64(sp);
  assert.equal(r.m.mem.readU8(Number(userRip) - 1), 0xf1, 'the pushed RIP follows the F1 byte');
  assert.equal(r.m.mem.readU64(sp + 16) & RF, 0n, 'a trap pushes RF=0');
});

test('POP m with an RSP base uses RSP after the pop (SDM vol. 2B POP)', async () => {
  const r = await runAsm('long', `
    mov rsp, 0x60000
    mov qword [rsp], 0x1111
    mov qword [rsp + 8], 0x2222
    mov qword [rsp + 16], 0
    pop qword [rsp + 8]     ; writes 0x1111 at 0x60010
    mov rax, [0x60010]
    mov rbx, rsp
    mov qword [rsp], 0x3333 ; at 0x60008
    pop qword [rsp]         ; reads 0x60008, writes at 0x60010
    mov rcx, [0x60010]
    mov rdx, rsp
    hlt
  `);
  const g = r.state.regs;
  assert.equal(g.rax, 0x1111n);
  assert.equal(g.rbx, 0x60008n);
  assert.equal(g.rcx, 0x3333n);
  assert.equal(g.rdx, 0x60010n);
});

test('R13 as a base register defaults to DS: non-canonical [r13+d] is #GP, [rbp+d] #SS (SDM vol. 1 3.7.4)', async () => {
  const r13 = await runAsm('long', 'mov r13, 0x0000800000000000\nmov rax, [r13 + 8]\nhlt');
  assert.equal(r13.m.cpu.lastException?.vector, 13);
  const r13b = await runAsm('long', 'mov r13, 0x0000800000000000\nmov rax, [r13 + rcx]\nhlt');
  assert.equal(r13b.m.cpu.lastException?.vector, 13, 'SIB base r13');
  const rbp = await runAsm('long', 'mov rbp, 0x0000800000000000\nmov rax, [rbp + 8]\nhlt');
  assert.equal(rbp.m.cpu.lastException?.vector, 12);
});

test('a page-crossing write that faults on the second page reports that page\'s first byte in CR2', async () => {
  const r = await runAsm('long', 'mov rax, -1\nmov [0x1ffffc], rax\nhlt', (_s, m) => {
    m.mem.writeU64(0x3008, 0n); // 0x200000-0x3fffff not present
  });
  assert.equal(r.m.cpu.lastException?.vector, 14);
  assert.equal(r.m.cpu.lastException?.errorCode, 2, 'not present, write, supervisor');
  assert.equal(r.state.cr2, 0x200000n);
  assert.equal(r.m.mem.readU32(0x1ffffc), 0, 'nothing written to the first page');
});

test('BSF/BSR r32 with a zero source and a failing CMPXCHG r32 leave all 64 bits of the register (AMD)', async () => {
  const r = await runAsm('long', `
    mov rax, -1
    mov rbx, -1
    xor ecx, ecx
    bsf eax, ecx
    bsr ebx, ecx
    mov rdx, 0xffffffff00000005
    mov eax, 1
    mov esi, 7
    cmpxchg edx, esi        ; EAX != EDX: ZF=0, EAX = 5, RDX unchanged
    hlt
  `);
  const g = r.state.regs;
  assert.equal(g.rbx, 0xffffffffffffffffn);
  assert.equal(g.rdx, 0xffffffff00000005n);
  assert.equal(g.rax, 5n);
  assert.equal(r.state.regs.rflags & FL.ZF, 0n);
});

test('SHLD/SHRD r16 by 16: the destination becomes the source, CF is the last bit shifted out', async () => {
  const run = async (insn: string, a: number): Promise<{ ax: bigint; cf: bigint }> => {
    const r = await runAsm('long', `mov eax, ${a}\nmov ebx, 0x1234\nmov cl, 16\nclc\n${insn}\nhlt`);
    return { ax: r.state.regs.rax & 0xffffn, cf: r.state.regs.rflags & FL.CF };
  };
  assert.deepEqual(await run('shld ax, bx, 16', 0x0001), { ax: 0x1234n, cf: 1n });
  assert.deepEqual(await run('shld ax, bx, cl', 0x8000), { ax: 0x1234n, cf: 0n });
  assert.deepEqual(await run('shrd ax, bx, 16', 0x8000), { ax: 0x1234n, cf: 1n });
  assert.deepEqual(await run('shrd ax, bx, cl', 0x0001), { ax: 0x1234n, cf: 0n });
});

test('an interrupt taken between the chunks of a long REP STOS pushes RF=1 and the REP\'s RIP', async () => {
  // DF=1 keeps it on the element loop, which stops every 16384 iterations to let interrupts in
  const src = 'sti\nstd\nmov ecx, 100000\nmov edi, 0x40000\nrep stosb\nhlt';
  const r = await runAsm('long', src, undefined, 5);
  assert.equal(r.exit.kind, 'budget');
  const repRip = r.state.regs.rip;
  assert.equal(r.m.mem.readU8(Number(repRip)), 0xf3, 'stopped at the REP, part-way');
  assert.ok(r.state.regs.rcx > 0n && r.state.regs.rcx < 100000n);
  let pending = 1;
  r.m.cpu.interruptSource = { pending: () => pending > 0, acknowledge: () => { pending--; return 0x30; } };
  r.m.cpu.run(10);
  const s = r.m.cpu.getState();
  assert.equal(s.regs.rip, stubRip(0x30));
  const sp = Number(s.regs.rsp);
  assert.equal(r.m.mem.readU64(sp), repRip, 'returns to the REP');
  assert.equal(r.m.mem.readU64(sp + 16) & RF, RF, 'RF=1 in the frame');
});
